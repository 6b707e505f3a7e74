//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets the
//! way Kubernetes' `pkg/controller/deployment` does.
//!
//! Every Deployment owns one ReplicaSet per template it has run, named
//! `<deployment>-<pod-template-hash>` ([`hash`]). A reconcile reads the caches, plans the
//! whole step without side effects ([`sync::plan`], built from the pure rules in [`rolling`],
//! [`recreate`], [`scale`], [`revision`], [`progress`] and [`status`]), then applies it:
//! ReplicaSet writes, the Deployment's status, Events. ReplicaSets do the pod work; this
//! controller only sizes them.

pub mod hash;
pub mod progress;
pub mod recreate;
pub mod revision;
pub mod rolling;
pub mod scale;
pub mod sets;
pub mod status;
pub mod sync;

#[cfg(test)]
mod simulation;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use runtime::controller::{Controller, ControllerConfig, Expect, Reconciler};
use runtime::events::{EventRecorder, object_reference};
use runtime::informer::{Event, Informer, object_key};
use runtime::objects::{
    CONTROLLER_UID_INDEX, controller_of, controller_ref, controller_uid_index, label_selector,
};
use runtime::queue::WorkQueue;
use runtime::request::Preconditions;
use runtime::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::debug;

use crate::claim::{self, Claims};
use crate::context::Context;
use recreate::PodPhases;
use sync::{Action, Observed};

/// The name `--controllers` knows this controller by.
pub const NAME: &str = "deployment";

/// The Deployment reconciler: caches in, planned actions out.
pub struct DeploymentReconciler {
    client: runtime::Client,
    deployments: Arc<Informer<Deployment>>,
    replica_sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    recorder: Arc<EventRecorder>,
    /// The controller's queue, for re-checking a rollout when its deadline may pass.
    queue: OnceLock<WorkQueue<String>>,
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("default", key))
}

impl DeploymentReconciler {
    /// The ReplicaSets `d` owns and still selects, and the adoptions and releases due
    /// (Kubernetes' `ClaimReplicaSets`, through the shared [`claim`] rules).
    fn claim(&self, d: &Deployment) -> (Vec<Arc<ReplicaSet>>, Option<Claims<Arc<ReplicaSet>>>) {
        let ns = d.metadata.namespace.as_deref().unwrap_or("default");
        let Some(uid) = d.metadata.uid.as_deref() else {
            return (Vec::new(), None);
        };
        let selector = d.spec.as_ref().map(|s| label_selector(&s.selector));
        let Some(Ok(selector)) = selector else {
            // An unusable selector adopts and releases nothing; keep what is controlled.
            let owned = self
                .replica_sets
                .store()
                .by_index(CONTROLLER_UID_INDEX, uid);
            return (owned, None);
        };
        let owner = claim::Owner {
            uid,
            namespace: ns,
            selector: &selector,
            deleting: d.metadata.deletion_timestamp.is_some(),
        };
        let mut claims = claim::partition(&owner, self.replica_sets.store().by_namespace(ns));
        let owned = std::mem::take(&mut claims.owned);
        (owned, Some(claims))
    }

    /// Phases of the pods each of `rss` controls, through the pod cache's controller index.
    fn pod_phases(&self, rss: &[Arc<ReplicaSet>]) -> PodPhases {
        rss.iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .map(|uid| {
                let phases = self
                    .pods
                    .store()
                    .by_index(CONTROLLER_UID_INDEX, uid)
                    .iter()
                    .map(|pod| {
                        pod.status
                            .as_ref()
                            .and_then(|s| s.phase.clone())
                            .unwrap_or_else(|| "Pending".into())
                    })
                    .collect();
                (uid.to_string(), phases)
            })
            .collect()
    }

    fn deployment_api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Kubernetes marks a failed create on the Deployment: a Warning and
    /// `Progressing=False/ReplicaSetCreateError` (best effort, like there).
    async fn report_create_failure(&self, key: &str, rs: &ReplicaSet, err: &runtime::Error) {
        let Some(d) = self.deployments.store().get(key) else {
            return;
        };
        let msg = format!(
            "Failed to create new replica set {:?}: {err}",
            sets::name(rs)
        );
        let mut d = (*d).clone();
        if progress::progress_deadline(&d).is_some() {
            let now = now_seconds();
            let cond = progress::new_condition(
                progress::PROGRESSING,
                "False",
                progress::FAILED_RS_CREATE,
                &msg,
                now,
            );
            progress::set_condition(d.status.get_or_insert_with(Default::default), cond);
            let (ns, name) = split_key(key);
            if let Err(e) = self
                .deployment_api(ns)
                .replace_status(name, &PostParams::default(), &d)
                .await
            {
                debug!(error = %e, "could not record the create failure");
            }
        }
        self.recorder
            .warning(&object_reference(&d), progress::FAILED_RS_CREATE, &msg)
            .await;
    }
}

/// Truncated to whole seconds: the API stores condition times that way, so a plan's
/// timestamps compare equal to what it reads back.
fn now_seconds() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}

impl Reconciler for DeploymentReconciler {
    type Key = String;
    type Observed = Observed;
    type Action = Action;

    fn observe(&self, key: &String) -> Observed {
        let deployment = self.deployments.store().get(key);
        let (ns, _) = split_key(key);
        let (replica_sets, unsettled, name_holder, pods) = match &deployment {
            Some(d) => {
                let (rss, unsettled) = self.claim(d);
                let holder = sync::expected_new_rs_name(d)
                    .and_then(|n| self.replica_sets.store().get_namespaced(ns, &n));
                let pods = self.pod_phases(&rss);
                (rss, unsettled, holder, pods)
            }
            None => Default::default(),
        };
        Observed {
            deployment,
            replica_sets,
            unsettled,
            name_holder,
            pods,
            now: now_seconds(),
        }
    }

    fn plan(&self, _key: &String, observed: &Observed) -> Vec<Action> {
        sync::plan(observed)
    }

    fn expects(&self, action: &Action) -> Expect {
        match action {
            Action::Create(_) => Expect::Create,
            Action::Delete { .. } => Expect::Delete,
            _ => Expect::Nothing,
        }
    }

    async fn apply(&self, key: &String, action: Action) -> runtime::Result<()> {
        let (ns, name) = split_key(key);
        match action {
            Action::Claim(claims) => {
                let Some(d) = self.deployments.store().get(key) else {
                    return Ok(());
                };
                let Some(cref) = controller_ref(&*d) else {
                    return Ok(());
                };
                let d_api = self.deployment_api(ns);
                let recheck = claim::recheck_owner(&d_api, name, &cref.uid);
                let (_, err) = claim::execute(&self.rs_api(ns), &cref, recheck, claims).await;
                match err {
                    None => Ok(()),
                    Some(crate::error::Error::Api(e)) => Err(e),
                    Some(e) => Err(runtime::Error::Request(e.to_string())),
                }
            }
            Action::Create(rs) => match self.rs_api(ns).create(&PostParams::default(), &rs).await {
                Ok(_) => Ok(()),
                // A name taken meanwhile is re-planned from the cache; a terminating namespace
                // (403) is not the Deployment's failure.
                Err(e) if e.is_already_exists() || e.status().is_some_and(|s| s.code == 403) => {
                    Err(e)
                }
                Err(e) => {
                    self.report_create_failure(key, &rs, &e).await;
                    Err(e)
                }
            },
            Action::Update(rs) => {
                self.rs_api(ns)
                    .replace(sets::name(&rs), &PostParams::default(), &rs)
                    .await?;
                Ok(())
            }
            Action::Delete { name: rs_name, uid } => {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid,
                        ..Default::default()
                    }),
                    ..DeleteParams::default()
                };
                match self.rs_api(ns).delete(&rs_name, &dp).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Action::UpdateStatus(d) => {
                self.deployment_api(ns)
                    .replace_status(name, &PostParams::default(), &d)
                    .await?;
                Ok(())
            }
            Action::SetRevision(rev) => {
                let patch =
                    Patch::Merge(json!({"metadata": {"annotations": {revision::REVISION: rev}}}));
                self.deployment_api(ns)
                    .patch(name, &PatchParams::default(), &patch)
                    .await?;
                Ok(())
            }
            Action::Event {
                warning,
                reason,
                message,
            } => {
                if let Some(d) = self.deployments.store().get(key) {
                    let r = object_reference(&*d);
                    if warning {
                        self.recorder.warning(&r, &reason, &message).await;
                    } else {
                        self.recorder.normal(&r, &reason, &message).await;
                    }
                }
                Ok(())
            }
            Action::RequeueAfter(after) => {
                if let Some(q) = self.queue.get() {
                    q.add_after(key.clone(), after);
                }
                Ok(())
            }
        }
    }
}

/// The Deployment owning the ReplicaSet `rs`, as a queue key.
fn owner_key(rs: &ReplicaSet) -> Option<String> {
    let r = controller_of(&rs.metadata)?;
    (r.kind == "Deployment").then(|| {
        format!(
            "{}/{}",
            rs.metadata.namespace.as_deref().unwrap_or("default"),
            r.name
        )
    })
}

/// Starts the Deployment controller on the context's informers; runs until aborted.
pub fn start(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Arc<Context>) {
    let deployments = ctx.informers.informer::<Deployment>();
    let replica_sets = ctx.informers.informer::<ReplicaSet>();
    let pods = ctx.informers.informer::<Pod>();
    replica_sets.store().add_indexer(
        CONTROLLER_UID_INDEX,
        Arc::new(|rs: &ReplicaSet| controller_uid_index(&rs.metadata)),
    );
    pods.store().add_indexer(
        CONTROLLER_UID_INDEX,
        Arc::new(|p: &Pod| controller_uid_index(&p.metadata)),
    );
    crate::caches::wait_for_caches(&ctx, NAME).await;
    let controller = Controller::new(
        DeploymentReconciler {
            client: ctx.client.clone(),
            deployments: deployments.clone(),
            replica_sets: replica_sets.clone(),
            pods: pods.clone(),
            recorder: ctx.recorder("deployment-controller"),
            queue: OnceLock::new(),
        },
        ControllerConfig {
            workers: ctx.settings.workers,
            ..ControllerConfig::default()
        },
    );
    let _ = controller
        .reconciler()
        .queue
        .set(controller.queue().clone());

    let c = controller.clone();
    deployments.add_handler(move |ev| {
        let key = ev.key();
        if let Event::Deleted(_) = ev {
            c.expectations().forget(&key);
        }
        c.queue().add(key);
    });

    let c = controller.clone();
    let d_store = deployments.store().clone();
    // An orphan may be adopted by any Deployment selecting it.
    let selecting = move |rs: &ReplicaSet| -> Vec<String> {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
        let empty = Default::default();
        let labels = rs.metadata.labels.as_ref().unwrap_or(&empty);
        d_store
            .by_namespace(ns)
            .iter()
            .filter(|d| {
                d.spec
                    .as_ref()
                    .and_then(|s| label_selector(&s.selector).ok())
                    .is_some_and(|sel| !sel.is_empty() && sel.matches(labels))
            })
            .map(|d| object_key(&d.metadata))
            .collect()
    };
    replica_sets.add_handler(move |ev| match ev {
        Event::Added(rs) => match owner_key(rs) {
            Some(k) => {
                c.expectations().observed(&k, Expect::Create);
                c.queue().add(k);
            }
            None => selecting(rs).into_iter().for_each(|k| c.queue().add(k)),
        },
        Event::Updated { old, new } => {
            let (ok, nk) = (owner_key(old), owner_key(new));
            if ok != nk
                && let Some(k) = ok.clone()
            {
                c.queue().add(k);
            }
            match nk {
                Some(k) => c.queue().add(k),
                None if ok.is_some() || old.metadata.labels != new.metadata.labels => {
                    selecting(new).into_iter().for_each(|k| c.queue().add(k))
                }
                None => {}
            }
        }
        Event::Deleted(rs) => {
            if let Some(k) = owner_key(rs) {
                c.expectations().observed(&k, Expect::Delete);
                c.queue().add(k);
            }
        }
        Event::Resync(rs) => {
            if let Some(k) = owner_key(rs) {
                c.queue().add(k);
            }
        }
    });

    // Recreate waits for old pods to be gone: a pod leaving (or finishing) may unblock it
    // (Kubernetes' `deletePod`; rolling Deployments do not care about single pods).
    let c = controller.clone();
    let rs_store = replica_sets.store().clone();
    let d_store = deployments.store().clone();
    pods.add_handler(move |ev| {
        let phase = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.clone());
        let pod = match ev {
            Event::Deleted(p) => p,
            Event::Updated { old, new } if phase(old) != phase(new) => new,
            _ => return,
        };
        let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        if let Some(rs) = rs_store.get_namespaced(ns, &r.name)
            && let Some(k) = owner_key(&rs)
            && d_store.get(&k).is_some_and(|d| sets::is_recreate(&d))
        {
            c.queue().add(k);
        }
    });

    debug!("deployment controller running");
    controller.run().await;
}
