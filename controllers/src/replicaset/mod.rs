//! The ReplicaSet controller: keeps `spec.replicas` pods running for every ReplicaSet.
//!
//! Informers on ReplicaSets and Pods feed a work queue of ReplicaSet keys; pods are indexed
//! by their controller's uid so a sync finds its pods without scanning. One sync, like
//! Kubernetes' `syncReplicaSet`:
//! 1. claim: adopt matching orphans, release owned pods that no longer match
//!    ([`crate::claim`]);
//! 2. unless earlier creates/deletes are still unseen by the cache (expectations) or the
//!    ReplicaSet is being deleted: create pods in slow-start batches or delete the least
//!    valuable ones ([`plan`], [`rank`]), at most [`plan::BURST_REPLICAS`] per sync, with an
//!    Event for each;
//! 3. write the status through the status subresource when it changed ([`status`]), and
//!    come back when a pod will have been ready for `minReadySeconds`.
//!
//! **Decision:** the sync runs on the runtime's `WorkQueue` and `Expectations` but not on its
//! `Controller` harness, because Kubernetes' semantics do not fit one-action-at-a-time:
//! claims and status are updated even while expectations are pending, a batch of creates
//! runs concurrently, and the status depends on whether the creates failed. Deletions are
//! tracked per pod key on top of the counting `Expectations` ([`expectations`]), so a pod
//! seen going away twice is counted once.

pub mod expectations;
pub mod plan;
pub mod rank;
pub mod routing;
pub mod status;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use runtime::events::{EventRecorder, EventType, object_reference};
use runtime::informer::{Event, Store, object_key};
use runtime::objects::{
    CONTROLLER_UID_INDEX, ORPHAN_INDEX, controller_of, controller_ref, controller_uid_index,
    is_pod_active, label_selector, orphan_index,
};
use runtime::queue::WorkQueue;
use runtime::{Api, Client, DeleteParams, PostParams};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::claim;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::manager::SYNC_TIMEOUT;
use expectations::PodExpectations;

/// The Event source of this controller, as `kubectl describe` shows it.
pub const COMPONENT: &str = "replicaset-controller";

/// How long created or deleted pods may stay unseen by the cache before the ReplicaSet is
/// synced anyway (client-go's `ExpectationsTimeout`).
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(300);

/// Events written at once after a batch of creates or deletes.
const EVENT_CONCURRENCY: usize = 16;

/// The manager's entry point: runs the controller until the term ends.
pub fn start(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Arc<Context>) {
    let rs_informer = ctx.informers.informer::<ReplicaSet>();
    let pod_informer = ctx.informers.informer::<Pod>();
    pod_informer.store().add_indexer(
        CONTROLLER_UID_INDEX,
        Arc::new(|p: &Pod| controller_uid_index(&p.metadata)),
    );
    pod_informer
        .store()
        .add_indexer(ORPHAN_INDEX, Arc::new(|p: &Pod| orphan_index(&p.metadata)));
    rs_informer.store().add_indexer(
        CONTROLLER_UID_INDEX,
        Arc::new(|rs: &ReplicaSet| controller_uid_index(&rs.metadata)),
    );
    let controller = Arc::new(ReplicaSetController {
        client: ctx.client.clone(),
        replica_sets: rs_informer.store().clone(),
        pods: pod_informer.store().clone(),
        queue: WorkQueue::default(),
        expectations: PodExpectations::new(EXPECTATIONS_TTL),
        recorder: ctx.recorder(COMPONENT),
    });
    {
        let c = controller.clone();
        rs_informer.add_handler(move |ev| c.on_replica_set(ev));
    }
    {
        let c = controller.clone();
        pod_informer.add_handler(move |ev| c.on_pod(ev));
    }
    // Acting on a partial pod cache would create pods that already exist: wait as long as
    // it takes (the informers keep retrying), saying so now and then.
    while let Err(e) = futures::future::try_join(
        rs_informer.wait_for_sync(SYNC_TIMEOUT),
        pod_informer.wait_for_sync(SYNC_TIMEOUT),
    )
    .await
    {
        warn!(error = %e, "caches not synced yet; waiting");
    }
    info!("replicaset controller started");
    let c = controller.clone();
    controller
        .queue
        .run_workers(ctx.settings.workers, move |key: String| {
            let c = c.clone();
            async move {
                let span = info_span!("sync", replicaset = %key);
                c.sync(&key).instrument(span).await
            }
        })
        .await;
}

struct ReplicaSetController {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
    expectations: PodExpectations,
    recorder: Arc<EventRecorder>,
}

impl ReplicaSetController {
    // ------------------------------------------------------------------ event handlers

    fn on_replica_set(&self, ev: &Event<ReplicaSet>) {
        let key = ev.key();
        match ev {
            Event::Deleted(_) => {
                self.expectations.forget(&key);
            }
            Event::Updated { old, new } => {
                let replicas = |rs: &ReplicaSet| rs.spec.as_ref().and_then(|s| s.replicas);
                if replicas(old) != replicas(new) {
                    debug!(replicaset = %key, old = ?replicas(old), new = ?replicas(new), "replicas changed");
                }
            }
            Event::Added(_) | Event::Resync(_) => {}
        }
        self.queue.add(key);
    }

    fn on_pod(&self, ev: &Event<Pod>) {
        match ev {
            Event::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    // Seen for the first time already terminating (e.g. after a re-list).
                    self.pod_gone(pod);
                } else if let Some(rs) = self.controlling_replica_set(pod) {
                    let key = object_key(&rs.metadata);
                    self.expectations.creation_observed(&key);
                    self.queue.add(key);
                } else {
                    self.enqueue_matching(pod);
                }
            }
            Event::Updated { old, new } => self.pod_updated(old, new),
            Event::Deleted(pod) => self.pod_gone(pod),
            Event::Resync(_) => {}
        }
    }

    fn pod_updated(&self, old: &Arc<Pod>, new: &Arc<Pod>) {
        let u = routing::pod_update(old, new);
        if u.gone {
            self.pod_gone(new);
        }
        if u.old_gone {
            self.pod_gone(old);
        }
        if u.sync_old_controller
            && let Some(rs) = self.controlling_replica_set(old)
        {
            self.queue.add(object_key(&rs.metadata));
        }
        if u.sync_controller
            && let Some(rs) = self.controlling_replica_set(new)
        {
            let key = object_key(&rs.metadata);
            self.queue.add(key.clone());
            let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if u.became_ready
                && let Some(secs) = min_ready.filter(|s| *s > 0)
            {
                let after = Duration::from_secs(u64::try_from(secs).unwrap_or(0) + 1);
                self.queue.add_after(key, after);
            }
        }
        if u.sync_matching {
            self.enqueue_matching(new);
        }
    }

    /// A pod is terminating or deleted: a deletion its ReplicaSet may be waiting for.
    fn pod_gone(&self, pod: &Pod) {
        let Some(rs) = self.controlling_replica_set(pod) else {
            return;
        };
        let key = object_key(&rs.metadata);
        self.expectations
            .deletion_observed(&key, &object_key(&pod.metadata));
        self.queue.add(key);
    }

    /// Queues every ReplicaSet in the pod's namespace whose selector matches it, so one of
    /// them may adopt the orphan.
    fn enqueue_matching(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let empty = Default::default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        for rs in self.replica_sets.by_namespace(ns) {
            let matches = rs
                .spec
                .as_ref()
                .and_then(|s| label_selector(&s.selector).ok())
                .is_some_and(|sel| !sel.is_empty() && sel.matches(labels));
            if matches {
                self.queue.add(object_key(&rs.metadata));
            }
        }
    }

    /// The cached ReplicaSet the pod's controller reference points at (same uid), if any.
    fn controlling_replica_set(&self, pod: &Pod) -> Option<Arc<ReplicaSet>> {
        let r = controller_of(&pod.metadata)?;
        if r.kind != "ReplicaSet" || !r.api_version.starts_with("apps/") {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let rs = self.replica_sets.get_namespaced(ns, &r.name)?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(rs)
    }

    // ------------------------------------------------------------------ sync

    async fn sync(&self, key: &str) -> Result<()> {
        let key = key.to_string();
        let Some(rs) = self.replica_sets.get(&key) else {
            self.expectations.forget(&key);
            return Ok(());
        };
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let name = rs.metadata.name.clone().unwrap_or_default();
        let Some(spec) = rs.spec.as_ref() else {
            return Ok(());
        };
        let selector = match label_selector(&spec.selector) {
            Ok(s) => s,
            Err(e) => {
                // A stored ReplicaSet passed validation; nothing a retry could fix.
                warn!(error = %e, "invalid selector");
                return Ok(());
            }
        };
        let Some(controller_ref) = controller_ref(&*rs) else {
            return Ok(());
        };
        // Expectations are read before the cache, so what they say holds for what we list.
        let needs_sync = self.expectations.satisfied(&key);
        if !needs_sync {
            // The awaited pods' events requeue the key; should one never come (a create
            // that failed late), come back when the expectations expire.
            self.queue.add_after(key.clone(), EXPECTATIONS_TTL);
        }
        // Only its own pods and orphans can be claimed: no need to scan the namespace.
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .by_index(CONTROLLER_UID_INDEX, &controller_ref.uid)
            .into_iter()
            .chain(self.pods.by_index(ORPHAN_INDEX, &ns))
            .filter(|p| is_pod_active(p))
            .collect();
        let owner = claim::Owner {
            uid: &controller_ref.uid,
            namespace: &ns,
            selector: &selector,
            deleting: rs.metadata.deletion_timestamp.is_some(),
        };
        let claims = claim::partition(&owner, candidates);
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let (owned, claim_error) = claim::execute(
            &pods_api,
            &controller_ref,
            claim::recheck_owner(&rs_api, &name, &controller_ref.uid),
            claims,
        )
        .await;
        if let Some(e) = claim_error {
            return Err(e);
        }

        let mut manage_error = None;
        if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            let wanted = spec.replicas.unwrap_or(1);
            manage_error = self
                .manage(&key, &rs, &pods_api, &controller_ref, wanted, &owned)
                .await
                .err();
        }

        let now = jiff::Timestamp::now();
        let message = manage_error.as_ref().map(error_message);
        let new_status = status::calculate(&rs, &owned, message.as_deref(), now);
        if status::needs_update(&rs, &new_status) {
            self.write_status(&rs_api, &rs, new_status).await?;
        }
        if manage_error.is_none()
            && let Some(after) =
                status::next_availability_check(spec.min_ready_seconds.unwrap_or(0), &owned, now)
        {
            self.queue
                .add_after(key.clone(), after + Duration::from_millis(50));
        }
        match manage_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates or deletes pods so `wanted` active pods remain.
    async fn manage(
        &self,
        key: &String,
        rs: &ReplicaSet,
        api: &Api<Pod>,
        controller_ref: &OwnerReference,
        wanted: i32,
        owned: &[Arc<Pod>],
    ) -> Result<()> {
        match plan::manage(wanted, owned.len(), plan::BURST_REPLICAS) {
            plan::Manage::InSync => Ok(()),
            plan::Manage::Create(n) => self.create_pods(key, rs, api, controller_ref, n).await,
            plan::Manage::Delete(n) => {
                let related = self.related_pods(rs);
                let victims = rank::pods_to_delete(owned, &related, n);
                self.delete_pods(key, rs, api, victims).await
            }
        }
    }

    async fn create_pods(
        &self,
        key: &String,
        rs: &ReplicaSet,
        api: &Api<Pod>,
        controller_ref: &OwnerReference,
        count: usize,
    ) -> Result<()> {
        self.expectations.expect_creations(key, count);
        let pod = plan::pod_from_template(rs, controller_ref.clone());
        let params = PostParams::default();
        let results = plan::slow_start(count, plan::SLOW_START_INITIAL_BATCH, || async {
            match api.create(&params, &pod).await {
                Ok(p) => Ok(Some(p)),
                // Nothing can be created in a namespace being deleted, and no retry helps.
                Err(e) if is_namespace_terminating(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await;
        let succeeded = results.iter().filter(|r| r.is_ok()).count();
        // The failed creates and the skipped ones will never be observed: stop waiting.
        for _ in succeeded..count {
            self.expectations.creation_observed(key);
        }
        let reference = object_reference(rs);
        let events = results.iter().filter_map(|r| match r {
            Ok(Some(p)) => {
                let name = p.metadata.name.as_deref().unwrap_or_default();
                Some((
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {name}"),
                ))
            }
            Ok(None) => None,
            Err(e) => Some((
                EventType::Warning,
                "FailedCreate",
                format!("Error creating: {}", api_message(e)),
            )),
        });
        self.record_all(&reference, events.collect()).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(Error::Api(e));
        }
        debug!(count, "created pods");
        Ok(())
    }

    async fn delete_pods(
        &self,
        key: &String,
        rs: &ReplicaSet,
        api: &Api<Pod>,
        victims: Vec<Arc<Pod>>,
    ) -> Result<()> {
        let pod_keys: Vec<String> = victims.iter().map(|p| object_key(&p.metadata)).collect();
        self.expectations.expect_deletions(key, &pod_keys);
        let reference = object_reference(rs);
        let deletes = victims.iter().map(|pod| async move {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let dp = DeleteParams {
                preconditions: pod.metadata.uid.clone().map(|uid| {
                    runtime::request::Preconditions {
                        uid: Some(uid),
                        ..Default::default()
                    }
                }),
                ..DeleteParams::default()
            };
            (name, api.delete(name, &dp).await)
        });
        let mut first_error = None;
        let mut events = Vec::new();
        for ((name, result), pod_key) in join_all(deletes).await.into_iter().zip(pod_keys) {
            match result {
                Ok(_) => events.push((
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                )),
                Err(e) => {
                    // It will not be observed going away (or already went): stop waiting.
                    self.expectations.deletion_observed(key, &pod_key);
                    if !e.is_not_found() && !e.is_conflict() {
                        events.push((
                            EventType::Warning,
                            "FailedDelete",
                            format!("Error deleting: {}", api_message(&e)),
                        ));
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.record_all(&reference, events).await;
        match first_error {
            Some(e) => Err(Error::Api(e)),
            None => Ok(()),
        }
    }

    /// Writes Events, a few at a time (they are best effort and never fail the sync).
    async fn record_all(
        &self,
        reference: &ObjectReference,
        events: Vec<(EventType, &'static str, String)>,
    ) {
        for chunk in events.chunks(EVENT_CONCURRENCY) {
            join_all(chunk.iter().map(|(type_, reason, message)| {
                self.recorder.record(reference, *type_, reason, message)
            }))
            .await;
        }
    }

    /// The pods of the ReplicaSet's family, used to rank pods by how crowded their node is
    /// (Kubernetes' `getIndirectlyRelatedPods`): the pods selected by any ReplicaSet with the
    /// same controller (the Deployment's ReplicaSets, old and new). A ReplicaSet without a
    /// controller has no family: every rank is 0, as in Kubernetes.
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let Some(parent) = controller_of(&rs.metadata) else {
            return Vec::new();
        };
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        let mut seen = HashSet::new();
        let mut related = Vec::new();
        for sibling in self
            .replica_sets
            .by_index(CONTROLLER_UID_INDEX, &parent.uid)
        {
            let Some(selector) = sibling
                .spec
                .as_ref()
                .and_then(|s| label_selector(&s.selector).ok())
            else {
                continue;
            };
            for pod in self.pods.by_selector(Some(ns), &selector) {
                if seen.insert(pod.metadata.uid.clone()) {
                    related.push(pod);
                }
            }
        }
        related
    }

    /// Writes the status; on a conflict re-reads the ReplicaSet once and writes again
    /// (Kubernetes' `updateReplicaSetStatus` retries once too). **Decision:** the retry keeps
    /// the `observedGeneration` the status was computed for, where Kubernetes takes the
    /// re-read one: a spec change the sync never saw must not look observed (a Deployment
    /// trusts `observedGeneration` when it reads the counts); the change's own event syncs
    /// the ReplicaSet again.
    async fn write_status(
        &self,
        api: &Api<ReplicaSet>,
        rs: &ReplicaSet,
        new_status: k8s_openapi::api::apps::v1::ReplicaSetStatus,
    ) -> Result<()> {
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        let mut obj = rs.clone();
        obj.status = Some(new_status.clone());
        match api.replace_status(name, &PostParams::default(), &obj).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let mut fresh = api.get(name).await?;
        if fresh.metadata.uid != rs.metadata.uid {
            return Ok(());
        }
        fresh.status = Some(new_status);
        api.replace_status(name, &PostParams::default(), &fresh)
            .await?;
        Ok(())
    }
}

/// What Kubernetes shows of a failed request: the server's message itself (`pods "web-x"
/// is forbidden: ...`), without our reason/code prefix.
fn api_message(e: &runtime::Error) -> String {
    match e.status() {
        Some(s) if !s.message.is_empty() => s.message.clone(),
        _ => e.to_string(),
    }
}

fn error_message(e: &Error) -> String {
    match e {
        Error::Api(e) => api_message(e),
        other => other.to_string(),
    }
}

/// Whether a create failed because its namespace is being deleted (the `Status` carries
/// the `NamespaceTerminating` cause), which no retry can fix.
fn is_namespace_terminating(e: &runtime::Error) -> bool {
    e.status()
        .and_then(|s| s.details.as_ref())
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}
