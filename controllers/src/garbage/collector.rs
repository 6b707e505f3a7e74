//! The garbage collector's side effects: live reads of owners, deletes of dependents, and
//! the metadata patches that free dependents and release owners.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use runtime::informer::DynamicObject;
use runtime::queue::WorkQueue;
use runtime::request::{Preconditions, PropagationPolicy};
use runtime::{Api, Client, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::{Instrument, debug, info, info_span};

use super::decide::{
    FOREGROUND, ForegroundVerdict, ORPHAN, OwnerState, Verdict, decide_dependent,
    decide_foreground, owner_state, without_owners,
};
use super::discovery::Discovery;
use super::graph::{Graph, Node, Work};

/// How long to wait before looking again at a dependent whose owner cannot be resolved.
const UNRESOLVED_RETRY: Duration = Duration::from_secs(10);
/// Bound of the cache of owners confirmed absent (uids never come back, so it only saves
/// GETs; it is cleared when full).
const ABSENT_CACHE_LIMIT: usize = 10_000;

/// The collector's state, shared by the informer handlers and the workers.
pub struct Collector {
    client: Client,
    /// Everything observed, with the dependents index.
    pub graph: Mutex<Graph>,
    /// What the server serves (to resolve owner references to resources).
    pub discovery: RwLock<Arc<Discovery>>,
    /// Work keyed by uid.
    pub queue: WorkQueue<Work>,
    /// Owner uids confirmed absent by a live read.
    absent: Mutex<HashSet<String>>,
}

impl Collector {
    /// A collector with an empty graph.
    pub fn new(client: Client, queue: WorkQueue<Work>) -> Self {
        Collector {
            client,
            graph: Mutex::new(Graph::default()),
            discovery: RwLock::new(Arc::new(Discovery::default())),
            queue,
            absent: Mutex::new(HashSet::new()),
        }
    }

    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a cache change to the graph and queues the work it causes.
    pub fn observe(&self, change: Change) {
        let work = {
            let mut g = self.graph();
            match change {
                Change::Upsert(node) => g.upsert(node),
                Change::Remove(uid) => g.remove(&uid),
            }
        };
        for w in work {
            self.queue.add(w);
        }
    }

    /// Processes one work item.
    pub async fn process(&self, work: Work) -> runtime::Result<()> {
        let span = info_span!("gc", work = %work);
        async {
            match &work {
                Work::AttemptToDelete(uid) => self.attempt_to_delete(&work, uid).await,
                Work::Orphan(uid) => self.orphan(uid).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt_to_delete(&self, work: &Work, uid: &str) -> runtime::Result<()> {
        let (node, blocking) = {
            let g = self.graph();
            (g.get(uid).cloned(), g.has_blocking_dependents(uid))
        };
        let Some(node) = node else {
            return Ok(());
        };
        if node.deleting_dependents() {
            return self.process_foreground(&node).await;
        }
        if node.deleting || node.owners.is_empty() {
            return Ok(());
        }
        let mut states = Vec::with_capacity(node.owners.len());
        for r in &node.owners {
            states.push(self.owner_state(&node, r).await);
        }
        match decide_dependent(&node.owners, &states, blocking) {
            Verdict::Keep => Ok(()),
            Verdict::Wait => {
                debug!(object = %node.key(), "an owner cannot be resolved; looking again later");
                self.queue.add_after(work.clone(), UNRESOLVED_RETRY);
                Ok(())
            }
            Verdict::RemoveOwnerRefs(uids) => {
                info!(object = %node.key(), owners = ?uids, "removing references to gone or deleting owners");
                self.remove_owner_refs(&node, &uids).await
            }
            Verdict::Delete { foreground } => {
                info!(object = %node.key(), foreground, "deleting object whose owners are gone");
                self.delete(&node, foreground).await
            }
        }
    }

    async fn process_foreground(&self, owner: &Node) -> runtime::Result<()> {
        let dependents = self.graph().dependents_of(&owner.uid);
        match decide_foreground(&dependents) {
            ForegroundVerdict::RemoveFinalizer => {
                info!(object = %owner.key(), "no blocking dependents left; removing the foregroundDeletion finalizer");
                self.remove_finalizer(owner, FOREGROUND).await
            }
            ForegroundVerdict::CollectDependents(uids) => {
                for uid in uids {
                    self.queue.add(Work::AttemptToDelete(uid));
                }
                Ok(())
            }
            ForegroundVerdict::Wait => Ok(()),
        }
    }

    async fn orphan(&self, uid: &str) -> runtime::Result<()> {
        let Some(owner) = self.graph().get(uid).cloned() else {
            return Ok(());
        };
        if !owner.orphaning() {
            return Ok(());
        }
        let dependents: Vec<Node> = {
            let g = self.graph();
            g.dependents_of(uid)
                .iter()
                .filter_map(|d| g.get(&d.uid).cloned())
                .collect()
        };
        for d in &dependents {
            self.remove_owner_refs(d, &[uid.to_string()]).await?;
        }
        info!(object = %owner.key(), dependents = dependents.len(), "dependents orphaned; removing the orphan finalizer");
        self.remove_finalizer(&owner, ORPHAN).await
    }

    /// Resolves an owner with a live read: the graph may simply not have seen it yet.
    async fn owner_state(&self, dependent: &Node, r: &OwnerReference) -> OwnerState {
        if self
            .absent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&r.uid)
        {
            return OwnerState::Absent;
        }
        let discovery = self
            .discovery
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(resource) = discovery.by_kind(&r.api_version, &r.kind) else {
            return OwnerState::Unknown;
        };
        let namespace = match (resource.info.namespaced, &dependent.namespace) {
            (false, _) => None,
            (true, Some(ns)) => Some(ns.as_str()),
            // A cluster-scoped object cannot be owned by a namespaced one: such a
            // reference points at nothing (Kubernetes treats it the same way).
            (true, None) => return OwnerState::Absent,
        };
        let api = Api::dynamic_objects(self.client.clone(), resource.info.clone(), namespace);
        let found = match api.get_opt(&r.name).await {
            Ok(found) => found,
            Err(e) => {
                debug!(owner = %r.name, error = %e, "cannot read owner");
                return OwnerState::Unknown;
            }
        };
        let state = owner_state(
            &r.uid,
            found.as_ref().map(|o| {
                let m = &o.metadata;
                (
                    m.uid.as_deref().unwrap_or_default(),
                    m.deletion_timestamp.is_some(),
                    m.finalizers.as_deref().unwrap_or_default(),
                )
            }),
        );
        if state == OwnerState::Absent {
            let mut absent = self.absent.lock().unwrap_or_else(|p| p.into_inner());
            if absent.len() >= ABSENT_CACHE_LIMIT {
                absent.clear();
            }
            absent.insert(r.uid.clone());
        }
        state
    }

    fn api(&self, node: &Node) -> Api<DynamicObject> {
        Api::dynamic_objects(
            self.client.clone(),
            (*node.resource).clone(),
            node.namespace.as_deref(),
        )
    }

    async fn delete(&self, node: &Node, foreground: bool) -> runtime::Result<()> {
        let dp = DeleteParams {
            propagation_policy: Some(if foreground {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            }),
            // Only this incarnation: a new object under the same name has its own owners.
            preconditions: Some(Preconditions {
                uid: Some(node.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api(node).delete(&node.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads the object live and, if `change` says so, merge-patches its metadata with the
    /// read resourceVersion (a conflict retries the work item).
    async fn patch_metadata(
        &self,
        node: &Node,
        change: impl Fn(&ObjectMeta) -> Option<Value>,
    ) -> runtime::Result<()> {
        let api = self.api(node);
        let Some(live) = api.get_opt(&node.name).await? else {
            return Ok(());
        };
        if live.metadata.uid.as_deref() != Some(node.uid.as_str()) {
            return Ok(());
        }
        let Some(mut patch) = change(&live.metadata) else {
            return Ok(());
        };
        patch["resourceVersion"] = json!(live.metadata.resource_version);
        match api
            .patch(
                &node.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": patch })),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> runtime::Result<()> {
        self.patch_metadata(node, |meta| {
            let current = meta.finalizers.clone().unwrap_or_default();
            if !current.iter().any(|f| f == finalizer) {
                return None;
            }
            let kept: Vec<&String> = current.iter().filter(|f| *f != finalizer).collect();
            Some(json!({ "finalizers": if kept.is_empty() { Value::Null } else { json!(kept) } }))
        })
        .await
    }

    async fn remove_owner_refs(&self, node: &Node, uids: &[String]) -> runtime::Result<()> {
        self.patch_metadata(node, |meta| {
            let refs = meta.owner_references.as_deref().unwrap_or_default();
            let kept = without_owners(refs, uids)?;
            Some(json!({
                "ownerReferences": if kept.is_empty() { Value::Null } else { json!(kept) }
            }))
        })
        .await
    }
}

/// A cache change, as the informer handlers hand it to the graph.
#[derive(Debug)]
pub enum Change {
    /// Added, updated or resynced.
    Upsert(Node),
    /// Deleted (by uid).
    Remove(String),
}
