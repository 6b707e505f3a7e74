//! The node lifecycle controller: notices nodes whose kubelet went silent, marks them and their
//! pods, taints them, and evicts pods from `NoExecute`-tainted nodes (Kubernetes' node
//! lifecycle controller with TaintNodesByCondition and the NoExecute taint manager).
//!
//! Every `--node-monitor-period` it walks all Nodes:
//! 1. [`health`]: a node whose Lease (`kube-node-lease/<node>`) and Ready heartbeat have not
//!    changed, as seen on this controller's clock, for `--node-monitor-grace-period` gets its
//!    kubelet conditions set to `Unknown` (`NodeStatusUnknown`).
//! 2. When Ready leaves `True`, a `NodeNotReady` Event on the node; while it is not `True`,
//!    the node's pods get `Ready=False` and a `NodeNotReady` Event each.
//! 3. [`taints`]: the controller-owned `NoExecute`/`NoSchedule` taints follow the conditions
//!    (added with `timeAdded`, removed once the kubelet reports Ready again), except that
//!    [`disruption`] holds back `NoExecute` taints when too many nodes of a zone are down, and
//!    removes them all when every node is (the controller is then likely the one cut off).
//! 4. [`eviction`]: pods on a node with `NoExecute` taints they do not tolerate are deleted,
//!    with a `TaintManagerEviction` Event; those tolerating them with `tolerationSeconds` are
//!    deleted that long after the taint's `timeAdded`. The loop wakes up early for the next
//!    such deadline.
//!
//! Each write uses the cached resourceVersion; a conflict just waits for the next pass.

pub mod disruption;
pub mod eviction;
pub mod health;
pub mod taints;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use runtime::events::{EventRecorder, object_reference};
use runtime::informer::Store;
use runtime::objects::is_pod_ready;
use runtime::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::caches::wait_for_caches;
use crate::context::Context;
use disruption::{NoExecutePolicy, policies, zone_of};
use eviction::Eviction;
use health::{Heartbeat, Heartbeats, is_silent, silent_node_conditions};
use taints::{NO_EXECUTE, condition_status, reconcile_taints, under_policy, wanted_taints};

/// The controller's name in `--controllers`.
pub const NAME: &str = "nodelifecycle";
/// Namespace of the nodes' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Index of the pod cache on `spec.nodeName`.
pub const POD_NODE_INDEX: &str = "spec.nodeName";

/// Runs the node lifecycle controller for one leadership term.
pub fn main(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

/// State kept between passes.
struct Lifecycle {
    ctx: Arc<Context>,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    heartbeats: Heartbeats,
    /// When a NoExecute taint without `timeAdded` was first seen, by (node, key).
    first_seen: HashMap<(String, String), jiff::Timestamp>,
    /// Pods already deleted by eviction (uid), until they leave the cache.
    evicted: HashSet<String>,
    node_events: Arc<EventRecorder>,
    eviction_events: Arc<EventRecorder>,
}

async fn run(ctx: Arc<Context>) {
    let nodes = ctx.informers.informer::<Node>();
    let leases = ctx.informers.informer::<Lease>();
    let pods = ctx.informers.informer::<Pod>();
    pods.store().add_indexer(
        POD_NODE_INDEX,
        Arc::new(|p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
                .into_iter()
                .collect()
        }),
    );
    wait_for_caches(&ctx, NAME).await;
    let mut lc = Lifecycle {
        node_events: ctx.recorder("node-controller"),
        eviction_events: ctx.recorder("taint-eviction-controller"),
        nodes: nodes.store().clone(),
        leases: leases.store().clone(),
        pods: pods.store().clone(),
        heartbeats: Heartbeats::default(),
        first_seen: HashMap::new(),
        evicted: HashSet::new(),
        ctx,
    };
    let period = lc.ctx.settings.node_monitor_period;
    loop {
        let next_eviction = lc.pass().await;
        let mut wake = Instant::now() + period;
        if let Some(at) = next_eviction {
            let wait = at.duration_since(jiff::Timestamp::now());
            let wait = std::time::Duration::try_from(wait).unwrap_or_default();
            wake = wake.min(Instant::now() + wait + std::time::Duration::from_millis(10));
        }
        tokio::time::sleep_until(wake).await;
    }
}

fn ready_heartbeat(node: &Node) -> Option<jiff::Timestamp> {
    node.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_heartbeat_time
        .as_ref()
        .map(|t| t.0)
}

impl Lifecycle {
    /// One walk over all nodes; returns the earliest pending eviction deadline. Like
    /// Kubernetes: first every node's health, then the zones' disruption, then taints and
    /// evictions per node.
    async fn pass(&mut self) -> Option<jiff::Timestamp> {
        let nodes = self.nodes.list();
        let names: HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        self.heartbeats.retain(&names);
        self.first_seen.retain(|(n, _), _| names.contains(n));
        if !self.evicted.is_empty() {
            let live: HashSet<String> = self
                .pods
                .list()
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            self.evicted.retain(|uid| live.contains(uid));
        }
        let mut checked = Vec::with_capacity(nodes.len());
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let span = info_span!("node", node = %name);
            if let Some(n) = self.update_health(node).instrument(span).await {
                checked.push(n);
            }
        }
        let readiness: Vec<(String, bool)> = checked
            .iter()
            .map(|n| {
                let ready = condition_status(n, "Ready") == Some("True");
                (zone_of(n.metadata.labels.as_ref()), ready)
            })
            .collect();
        let zones = policies(readiness.iter().map(|(z, r)| (z.as_str(), *r)));
        let mut next = None;
        for node in checked {
            let name = node.metadata.name.clone().unwrap_or_default();
            let policy = zones
                .get(&zone_of(node.metadata.labels.as_ref()))
                .copied()
                .unwrap_or(NoExecutePolicy::Follow);
            let deadline = self
                .sync_node(node, policy)
                .instrument(info_span!("node", node = %name))
                .await;
            next = match (next, deadline) {
                (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                (a, b) => a.or(b),
            };
        }
        next
    }

    /// Marks a silent node's conditions Unknown; returns the node as now stored, or `None`
    /// when the write failed (the next pass retries).
    async fn update_health(&mut self, node: Arc<Node>) -> Option<Node> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let lease = self.leases.get_namespaced(NODE_LEASE_NAMESPACE, &name);
        let beat = Heartbeat {
            lease_renew: lease
                .as_ref()
                .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)),
            status: ready_heartbeat(&node),
        };
        let now = Instant::now();
        let last_change = self.heartbeats.observe(&name, beat, now);
        let mut node = (*node).clone();
        let grace = self.ctx.settings.node_monitor_grace_period;
        if !is_silent(last_change, now, grace) {
            return Some(node);
        }
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let Some(conditions) = silent_node_conditions(&conditions, &Time(jiff::Timestamp::now()))
        else {
            return Some(node);
        };
        node.status.get_or_insert_default().conditions = Some(conditions);
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        match api
            .replace_status(&name, &PostParams::default(), &node)
            .await
        {
            Ok(updated) => {
                info!("node stopped posting status; marked Unknown");
                Some(updated)
            }
            Err(e) => {
                warn!(error = %e, "could not mark the node Unknown; next pass retries");
                None
            }
        }
    }

    /// Events, pod readiness, taints and evictions of one node whose health is up to date.
    async fn sync_node(
        &mut self,
        mut node: Node,
        policy: NoExecutePolicy,
    ) -> Option<jiff::Timestamp> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ready = condition_status(&node, "Ready").map(str::to_string);
        let before = self.heartbeats.swap_ready(&name, ready.as_deref());
        if ready.as_deref() != Some("True") {
            if before.as_deref() == Some("True") {
                self.node_events
                    .normal(
                        &object_reference(&node),
                        "NodeNotReady",
                        &format!("Node {name} status is now: NodeNotReady"),
                    )
                    .await;
            }
            self.mark_pods_not_ready(&name).await;
        }

        let now_wall = Time(jiff::Timestamp::now());
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let wanted = under_policy(wanted_taints(&node), &current, policy);
        if let Some(taints) = reconcile_taints(&current, &wanted, &now_wall) {
            node.spec.get_or_insert_default().taints = (!taints.is_empty()).then_some(taints);
            let api: Api<Node> = Api::all(self.ctx.client.clone());
            match api.replace(&name, &PostParams::default(), &node).await {
                Ok(updated) => {
                    info!(taints = ?taint_names(&updated), "node taints updated");
                    node = updated;
                }
                Err(e) => {
                    warn!(error = %e, "could not update the node's taints; next pass retries");
                    return None;
                }
            }
        }
        self.evict(&node).await
    }

    /// Kubernetes' MarkPodsNotReady: the node's pods that still claim Ready get Ready=False.
    async fn mark_pods_not_ready(&self, node: &str) {
        for pod in self.pods.by_index(POD_NODE_INDEX, node) {
            if !is_pod_ready(&pod) || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
            let patch = Patch::Strategic(json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": Time(jiff::Timestamp::now())}
            ]}}));
            match api
                .patch_status(pod_name, &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => {
                    debug!(pod = %format!("{ns}/{pod_name}"), "marked pod not ready");
                    self.node_events
                        .warning(
                            &object_reference(pod.as_ref()),
                            "NodeNotReady",
                            "Node is not ready",
                        )
                        .await;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    warn!(pod = %format!("{ns}/{pod_name}"), error = %e, "could not mark pod not ready")
                }
            }
        }
    }

    /// The taint manager for one node: deletes pods whose time is up, returns the next
    /// deadline.
    async fn evict(&mut self, node: &Node) -> Option<jiff::Timestamp> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let mut taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == NO_EXECUTE)
            .collect();
        if taints.is_empty() {
            return None;
        }
        for t in &mut taints {
            if t.time_added.is_none() {
                let since = *self
                    .first_seen
                    .entry((name.clone(), t.key.clone()))
                    .or_insert(now);
                t.time_added = Some(Time(since));
            }
        }
        let mut next: Option<jiff::Timestamp> = None;
        for pod in self.pods.by_index(POD_NODE_INDEX, &name) {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() || self.evicted.contains(&uid) {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            match eviction::eviction(&tolerations, &taints, now) {
                Eviction::Never => {}
                Eviction::At(at) => next = Some(next.map_or(at, |n| n.min(at))),
                Eviction::Now => {
                    if self.delete_pod(&pod).await {
                        self.evicted.insert(uid);
                    }
                }
            }
        }
        next
    }

    async fn delete_pod(&self, pod: &Pod) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let key = format!("{ns}/{name}");
        self.eviction_events
            .normal(
                &object_reference(pod),
                "TaintManagerEviction",
                &format!("Marking for deletion Pod {key}"),
            )
            .await;
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let dp =
            DeleteParams {
                preconditions: pod.metadata.uid.clone().map(|uid| {
                    runtime::request::Preconditions {
                        uid: Some(uid),
                        ..Default::default()
                    }
                }),
                ..DeleteParams::default()
            };
        match api.delete(name, &dp).await {
            Ok(_) => {
                info!(pod = %key, "evicted pod from a NoExecute-tainted node");
                true
            }
            Err(e) if e.is_not_found() || e.is_conflict() => true,
            Err(e) => {
                warn!(pod = %key, error = %e, "could not evict pod; next pass retries");
                false
            }
        }
    }
}

fn taint_names(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}
