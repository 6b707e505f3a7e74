//! A node as the scheduler sees it, with the running totals of its pods.
//!
//! The fit filter asks "does the pod fit in what is left?" for hundreds of
//! nodes per decision; keeping `requested` (and the scoring variant
//! `non_zero_requested`) up to date as pods come and go makes that a handful
//! of integer comparisons instead of a walk over the node's pods.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::pod_info::{HostPort, PodInfo};
use crate::quantity;
use crate::resources::Resources;
use crate::taints::Taint;

/// Compiled node facts plus the aggregates of the pods placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node labels (topology domains, selectors).
    pub labels: BTreeMap<String, String>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Whether the `Ready` condition is `True`. A node without the
    /// condition is not ready.
    pub ready: bool,
    /// All taints.
    pub taints: Vec<Taint>,
    /// `status.allocatable` (falls back to `status.capacity` when absent,
    /// as a freshly registered node may only report capacity).
    pub allocatable: Resources,
    /// `allocatable.pods`: how many pods the node takes (0 when unset).
    pub allowed_pods: i64,
    /// Sum of the real requests of the pods on the node.
    pub requested: Resources,
    /// Sum of the pods' cpu requests with the scoring defaults.
    pub non_zero_milli_cpu: i64,
    /// Sum of the pods' memory requests with the scoring defaults.
    pub non_zero_memory: i64,
    /// Pods on the node (confirmed and assumed).
    pub pods: Vec<Arc<PodInfo>>,
    /// Host ports claimed by those pods.
    pub used_ports: Vec<HostPort>,
    /// How many of the pods have required anti-affinity terms (lets the
    /// inter-pod filter skip nodes without any).
    pub pods_with_required_anti_affinity: usize,
    /// How many of the pods have any affinity or anti-affinity term.
    pub pods_with_affinity: usize,
}

impl NodeInfo {
    /// Compiles a node with no pods. Missing fields count as empty/zero.
    pub fn from_node(node: &Node) -> Self {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let alloc_map = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            ready,
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .map(Taint::from_api)
                .collect(),
            allocatable: Resources::from_map(alloc_map),
            allowed_pods: alloc_map
                .and_then(|m| m.get("pods"))
                .map(quantity::value)
                .unwrap_or(0),
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            pods: Vec::new(),
            used_ports: Vec::new(),
            pods_with_required_anti_affinity: 0,
            pods_with_affinity: 0,
        }
    }

    /// Replaces the node's own facts from a newer Node object, keeping the
    /// pods and their totals.
    pub fn update_node(&mut self, node: &Node) {
        let fresh = NodeInfo::from_node(node);
        let pods = std::mem::take(&mut self.pods);
        let used_ports = std::mem::take(&mut self.used_ports);
        *self = NodeInfo {
            requested: std::mem::take(&mut self.requested),
            non_zero_milli_cpu: self.non_zero_milli_cpu,
            non_zero_memory: self.non_zero_memory,
            pods_with_required_anti_affinity: self.pods_with_required_anti_affinity,
            pods_with_affinity: self.pods_with_affinity,
            pods,
            used_ports,
            ..fresh
        };
    }

    /// Adds a pod and its resources, ports and affinity counters.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.account(&pod, true);
        self.pods.push(pod);
    }

    /// Removes the pod with this key; returns it if it was here.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == key)?;
        let pod = self.pods.swap_remove(i);
        self.account(&pod, false);
        Some(pod)
    }

    fn account(&mut self, pod: &PodInfo, add: bool) {
        let r = &pod.requests;
        let op: fn(i64, i64) -> i64 = if add {
            i64::saturating_add
        } else {
            i64::saturating_sub
        };
        if add {
            self.requested.add(&r.requested);
            self.used_ports.extend(pod.host_ports.iter().cloned());
        } else {
            self.requested.sub(&r.requested);
            for hp in &pod.host_ports {
                if let Some(i) = self.used_ports.iter().position(|u| u == hp) {
                    self.used_ports.swap_remove(i);
                }
            }
        }
        self.non_zero_milli_cpu = op(self.non_zero_milli_cpu, r.non_zero_milli_cpu);
        self.non_zero_memory = op(self.non_zero_memory, r.non_zero_memory);
        let step = |n: usize| if add { n + 1 } else { n.saturating_sub(1) };
        if !pod.affinity.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity = step(self.pods_with_required_anti_affinity);
        }
        if !pod.affinity.is_empty() {
            self.pods_with_affinity = step(self.pods_with_affinity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};

    #[test]
    fn compiles_node_and_tracks_pods() {
        let n = node("n1")
            .capacity("4", "8Gi", 10)
            .label("zone", "a")
            .taint("k", "v", "NoSchedule")
            .build();
        let mut info = NodeInfo::from_node(&n);
        assert!(info.ready);
        assert_eq!(info.allocatable.milli_cpu, 4000);
        assert_eq!(info.allowed_pods, 10);
        assert_eq!(info.taints.len(), 1);
        let p = PodInfo::shared(&pod("a").requests(&[("cpu", "1")]).host_port(80).build());
        info.add_pod(p);
        assert_eq!(info.requested.milli_cpu, 1000);
        assert_eq!(info.used_ports.len(), 1);
        info.update_node(&node("n1").capacity("8", "8Gi", 10).build());
        assert_eq!(info.allocatable.milli_cpu, 8000);
        assert_eq!(info.requested.milli_cpu, 1000, "update keeps pods");
        assert!(info.remove_pod("default/a").is_some());
        assert_eq!(info.requested.milli_cpu, 0);
        assert!(info.used_ports.is_empty());
        assert!(info.remove_pod("default/a").is_none());
    }

    #[test]
    fn missing_status_means_not_ready_and_nothing_allocatable() {
        let info = NodeInfo::from_node(&Node::default());
        assert!(!info.ready);
        assert_eq!(info.allocatable, Resources::default());
        assert_eq!(info.allowed_pods, 0);
    }
}
