//! The scheduler's view of the cluster: nodes and the pods placed on them.
//!
//! Every decision reads one `ClusterSnapshot`; the informer-driven loop keeps
//! it current with cheap incremental updates (`upsert_node`, `add_pod`,
//! `remove_pod`) instead of rebuilding it. Pods the scheduler has just
//! placed but whose binding has not come back through the watch yet are
//! *assumed* ([`ClusterSnapshot::assume_pod`]): they count against their
//! node exactly like confirmed pods, which is what keeps a burst of
//! decisions from overcommitting a node. When the watch delivers the bound
//! pod, `add_pod` replaces the assumed entry; if binding fails, the loop
//! calls `remove_pod`.
//!
//! Pods that name a node the snapshot does not know (the pod event arrived
//! before the node's, or the node was deleted) are parked and attached when
//! the node appears, so event order never loses resource accounting.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::node_info::NodeInfo;
use crate::pod_affinity::NamespaceLabels;
use crate::pod_info::PodInfo;

/// Why a snapshot update was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// `assume_pod` named a node the snapshot does not have.
    UnknownNode(String),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::UnknownNode(n) => write!(f, "node {n:?} is not in the snapshot"),
        }
    }
}

impl std::error::Error for SnapshotError {}

#[derive(Debug, Clone)]
struct Placement {
    node: String,
    assumed: bool,
}

/// Nodes, the pods on them, and namespace labels (for affinity terms with a
/// `namespaceSelector`).
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    placements: HashMap<String, Placement>,
    parked: HashMap<String, Vec<Arc<PodInfo>>>,
    namespaces: NamespaceLabels,
}

impl ClusterSnapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a snapshot from nodes and pods (pods without `spec.nodeName`
    /// or in a terminal phase are skipped).
    pub fn from_objects<'a>(
        nodes: impl IntoIterator<Item = &'a Node>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> Self {
        let mut s = Self::new();
        for n in nodes {
            s.upsert_node(n);
        }
        for p in pods {
            s.add_pod(p);
        }
        s
    }

    /// All nodes, in a stable order (insertion order, except that removing a
    /// node moves the last node into its slot).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Namespace labels known to the snapshot.
    pub fn namespace_labels(&self) -> &NamespaceLabels {
        &self.namespaces
    }

    /// Records a namespace's labels (for `namespaceSelector` in affinity terms).
    pub fn set_namespace_labels(&mut self, namespace: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(namespace.to_owned(), labels);
    }

    /// Forgets a namespace's labels.
    pub fn remove_namespace(&mut self, namespace: &str) {
        self.namespaces.remove(namespace);
    }

    /// Adds a node or updates its facts (labels, taints, allocatable,
    /// conditions), keeping the pods already accounted to it. Pods parked
    /// for this node are attached.
    pub fn upsert_node(&mut self, node: &Node) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        if let Some(&i) = self.index.get(name) {
            self.nodes[i].update_node(node);
            return;
        }
        let mut info = NodeInfo::from_node(node);
        for pod in self.parked.remove(name).into_iter().flatten() {
            info.add_pod(pod);
        }
        self.index.insert(info.name.clone(), self.nodes.len());
        self.nodes.push(info);
    }

    /// Removes a node. Its pods stay known (parked) until they are deleted,
    /// so a node that comes back gets them again.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let removed = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        if !removed.pods.is_empty() {
            self.parked.insert(removed.name, removed.pods);
        }
    }

    /// Records a pod the watch reports. A pod bound to a node is added (or
    /// replaces its earlier or assumed entry); a pod that has finished
    /// (`Succeeded`/`Failed`, whose resources are free again) is removed.
    /// An update of a still-unbound pod (say, the scheduler's own status
    /// write) leaves an assumed entry alone: the binding is in flight.
    pub fn add_pod(&mut self, pod: &Pod) {
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        let info = PodInfo::shared(pod);
        match info.node_name.clone() {
            Some(node) if !finished => self.place(info, node, false),
            None if !finished && self.is_assumed(&info.key) => {}
            _ => {
                self.remove_pod(&info.key);
            }
        }
    }

    /// Counts a pod against `node` before its binding is confirmed.
    pub fn assume_pod(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), SnapshotError> {
        if !self.index.contains_key(node) {
            return Err(SnapshotError::UnknownNode(node.to_owned()));
        }
        self.place(pod, node.to_owned(), true);
        Ok(())
    }

    /// Whether the pod with this key is assumed (placed by the scheduler but
    /// not yet confirmed by the watch).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.placements.get(key).is_some_and(|p| p.assumed)
    }

    /// The node a pod is accounted to, if any.
    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.placements.get(key).map(|p| p.node.as_str())
    }

    /// Removes a pod (deleted, finished, or an assumed pod whose binding
    /// failed); returns it if it was known.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let placement = self.placements.remove(key)?;
        if let Some(&i) = self.index.get(&placement.node) {
            return self.nodes[i].remove_pod(key);
        }
        let parked = self.parked.get_mut(&placement.node)?;
        let i = parked.iter().position(|p| p.key == key)?;
        let pod = parked.swap_remove(i);
        if parked.is_empty() {
            self.parked.remove(&placement.node);
        }
        Some(pod)
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: String, assumed: bool) {
        self.remove_pod(&pod.key);
        self.placements.insert(
            pod.key.clone(),
            Placement {
                node: node.clone(),
                assumed,
            },
        );
        match self.index.get(&node) {
            Some(&i) => self.nodes[i].add_pod(pod),
            None => self.parked.entry(node).or_default().push(pod),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};

    #[test]
    fn pods_before_nodes_are_parked_then_attached() {
        let mut s = ClusterSnapshot::new();
        s.add_pod(&pod("a").node_name("n1").requests(&[("cpu", "1")]).build());
        assert_eq!(s.node_of("default/a"), Some("n1"));
        s.upsert_node(&node("n1").capacity("4", "4Gi", 10).build());
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 1000);
        s.remove_node("n1");
        assert!(s.node("n1").is_none());
        assert!(
            s.remove_pod("default/a").is_some(),
            "parked pod can be deleted"
        );
        s.upsert_node(&node("n1").capacity("4", "4Gi", 10).build());
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn assume_then_confirm_replaces_without_double_counting() {
        let mut s = ClusterSnapshot::new();
        s.upsert_node(&node("n1").capacity("4", "4Gi", 10).build());
        let p = pod("a").requests(&[("cpu", "1")]).build();
        s.assume_pod(PodInfo::shared(&p), "n1").unwrap();
        assert!(s.is_assumed("default/a"));
        s.add_pod(&p); // a status update of the still-unbound pod
        assert!(
            s.is_assumed("default/a"),
            "assumed entry survives unbound updates"
        );
        let mut bound = p.clone();
        bound.spec.as_mut().unwrap().node_name = Some("n1".into());
        s.add_pod(&bound);
        assert!(!s.is_assumed("default/a"));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 1000);
        assert_eq!(s.node("n1").unwrap().pods.len(), 1);
        assert_eq!(
            s.assume_pod(PodInfo::shared(&p), "nope"),
            Err(SnapshotError::UnknownNode("nope".into()))
        );
    }

    #[test]
    fn finished_pods_free_their_resources() {
        let mut s = ClusterSnapshot::new();
        s.upsert_node(&node("n1").capacity("4", "4Gi", 10).build());
        let mut p = pod("a").node_name("n1").requests(&[("cpu", "1")]).build();
        s.add_pod(&p);
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        s.add_pod(&p);
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 0);
        assert!(s.node_of("default/a").is_none());
    }

    #[test]
    fn removing_a_node_keeps_the_index_consistent() {
        let mut s = ClusterSnapshot::from_objects(
            &[node("a").build(), node("b").build(), node("c").build()],
            &[],
        );
        s.remove_node("a");
        assert_eq!(s.len(), 2);
        assert_eq!(s.node("c").unwrap().name, "c");
        assert_eq!(s.node("b").unwrap().name, "b");
        s.remove_node("missing");
        assert_eq!(s.len(), 2);
    }
}
