//! Score plugins: among the nodes that fit, which is best?
//!
//! Each plugin scores every feasible node 0–100 (after its own
//! normalisation), and the node's total is the weighted sum with
//! kube-scheduler's default-profile weights. The formulas are Kubernetes'
//! so that Skiff places pods where kube-scheduler would:
//!
//! - `NodeResourcesFit` (LeastAllocated): mean over cpu and memory of
//!   `(allocatable − requested) × 100 / allocatable`, with the incoming pod
//!   included and 100m/200Mi assumed for containers without requests;
//! - `NodeResourcesBalancedAllocation`: `(1 − std-dev of the cpu and memory
//!   usage fractions) × 100` with real requests; skipped for pods requesting
//!   neither (kube-scheduler does the same to avoid piling best-effort pods
//!   onto one node);
//! - `NodeAffinity`: sum of the weights of matching preferred terms, scaled
//!   so the best node gets 100;
//! - `TaintToleration`: count of untolerated PreferNoSchedule taints,
//!   scaled and inverted (fewest → 100);
//! - `InterPodAffinity` and `PodTopologySpread`: see their modules.
//!
//! ImageLocality is not implemented: Skiff's nodes do not yet report
//! `status.images`, so it would add a constant.

use crate::interpod;
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::ClusterSnapshot;
use crate::spread;
use crate::taints::PREFER_NO_SCHEDULE;

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// Plugin weights; [`Weights::default`] is kube-scheduler's default profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// TaintToleration (PreferNoSchedule).
    pub taint_toleration: i64,
    /// NodeAffinity (preferred terms).
    pub node_affinity: i64,
    /// NodeResourcesFit (LeastAllocated).
    pub resources_fit: i64,
    /// NodeResourcesBalancedAllocation.
    pub balanced_allocation: i64,
    /// PodTopologySpread (ScheduleAnyway).
    pub topology_spread: i64,
    /// InterPodAffinity (preferred terms).
    pub inter_pod_affinity: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            taint_toleration: 3,
            node_affinity: 2,
            resources_fit: 1,
            balanced_allocation: 1,
            topology_spread: 2,
            inter_pod_affinity: 2,
        }
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated score of `node` for `pod` (0–100, higher = emptier).
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let r = &pod.requests;
    let pairs = [
        (
            node.non_zero_milli_cpu.saturating_add(r.non_zero_milli_cpu),
            node.allocatable.milli_cpu,
        ),
        (
            node.non_zero_memory.saturating_add(r.non_zero_memory),
            node.allocatable.memory,
        ),
    ];
    let (mut sum, mut weight) = (0, 0);
    for (requested, alloc) in pairs {
        if alloc != 0 {
            sum += least_requested(requested, alloc);
            weight += 1;
        }
    }
    if weight == 0 { 0 } else { sum / weight }
}

/// Whether BalancedAllocation skips the pod (requests neither cpu nor memory).
pub fn is_best_effort(pod: &PodInfo) -> bool {
    let r = &pod.requests.requested;
    r.milli_cpu == 0 && r.memory == 0
}

/// BalancedAllocation score of `node` for `pod` (0–100, higher = cpu and
/// memory usage closer to each other).
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let want = &pod.requests.requested;
    let fraction = |used: i64, add: i64, alloc: i64| {
        (alloc != 0).then(|| (used.saturating_add(add) as f64 / alloc as f64).min(1.0))
    };
    let cpu = fraction(
        node.requested.milli_cpu,
        want.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = fraction(node.requested.memory, want.memory, node.allocatable.memory);
    let std = match (cpu, mem) {
        (Some(c), Some(m)) => ((c - m) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// Raw NodeAffinity score: sum of the weights of matching preferred terms.
pub fn node_affinity_raw(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node_affinity
        .iter()
        .filter(|p| p.term.matches(&node.name, &node.labels))
        .map(|p| p.weight)
        .sum()
}

/// Raw TaintToleration score: PreferNoSchedule taints not tolerated by a
/// toleration whose effect is empty or PreferNoSchedule.
pub fn taint_toleration_raw(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == PREFER_NO_SCHEDULE)
        .filter(|t| {
            !pod.tolerations
                .iter()
                .any(|tol| tol.covers_effect(PREFER_NO_SCHEDULE) && tol.tolerates(t))
        })
        .count() as i64
}

/// kube-scheduler's default normalisation: scale so the maximum becomes
/// 100 (all zero stays zero), optionally inverted (`100 − score`; all zero
/// becomes 100).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// Weighted total scores of the feasible `nodes` (indexes into the
/// snapshot), written to `totals` (same order). `scratch` is reused between
/// plugins to avoid allocating per plugin.
pub fn score_nodes(
    pod: &PodInfo,
    snapshot: &ClusterSnapshot,
    nodes: &[usize],
    weights: &Weights,
    totals: &mut Vec<i64>,
    scratch: &mut Vec<i64>,
) {
    let all = snapshot.nodes();
    totals.clear();
    totals.resize(nodes.len(), 0);
    let add = |totals: &mut Vec<i64>, scores: &[i64], weight: i64| {
        for (t, s) in totals.iter_mut().zip(scores) {
            *t += s * weight;
        }
    };
    let per_node = |scratch: &mut Vec<i64>, f: &dyn Fn(&NodeInfo) -> i64| {
        scratch.clear();
        scratch.extend(nodes.iter().map(|&i| f(&all[i])));
    };

    per_node(scratch, &|n| least_allocated(pod, n));
    add(totals, scratch, weights.resources_fit);

    if !is_best_effort(pod) {
        per_node(scratch, &|n| balanced_allocation(pod, n));
        add(totals, scratch, weights.balanced_allocation);
    }

    if !pod.preferred_node_affinity.is_empty() {
        per_node(scratch, &|n| node_affinity_raw(pod, n));
        default_normalize(scratch, false);
        add(totals, scratch, weights.node_affinity);
    }

    per_node(scratch, &|n| taint_toleration_raw(pod, n));
    default_normalize(scratch, true);
    add(totals, scratch, weights.taint_toleration);

    if let Some(s) = spread::scores(pod, snapshot, nodes) {
        add(totals, &s, weights.topology_spread);
    }
    if let Some(mut s) = interpod::raw_scores(pod, snapshot, nodes) {
        interpod::normalize(&mut s);
        add(totals, &s, weights.inter_pod_affinity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};

    fn info(n: k8s_openapi::api::core::v1::Node) -> NodeInfo {
        NodeInfo::from_node(&n)
    }

    #[test]
    fn least_allocated_formula() {
        let mut n = info(node("n").capacity("4", "8Gi", 110).build());
        n.add_pod(PodInfo::shared(
            &pod("a")
                .requests(&[("cpu", "1"), ("memory", "2Gi")])
                .build(),
        ));
        let p = PodInfo::from_pod(
            &pod("p")
                .requests(&[("cpu", "1"), ("memory", "2Gi")])
                .build(),
        );
        // cpu (4000-2000)*100/4000 = 50; memory (8-4)/8 = 50
        assert_eq!(least_allocated(&p, &n), 50);
        // a pod without requests counts as 100m / 200Mi
        let empty = PodInfo::from_pod(&pod("e").requests(&[]).build());
        let fresh = info(node("m").capacity("1", "1000Mi", 110).build());
        // cpu (1000-100)/1000 = 90; memory (1000-200)/1000 = 80 → 85
        assert_eq!(least_allocated(&empty, &fresh), 85);
        let huge = PodInfo::from_pod(
            &pod("h")
                .requests(&[("cpu", "8"), ("memory", "64Gi")])
                .build(),
        );
        assert_eq!(least_allocated(&huge, &fresh), 0);
    }

    #[test]
    fn balanced_allocation_formula() {
        let n = info(node("n").capacity("4", "8Gi", 110).build());
        let even = PodInfo::from_pod(
            &pod("p")
                .requests(&[("cpu", "2"), ("memory", "4Gi")])
                .build(),
        );
        assert_eq!(balanced_allocation(&even, &n), 100);
        let skewed =
            PodInfo::from_pod(&pod("p").requests(&[("cpu", "4"), ("memory", "0")]).build());
        // fractions 1.0 and 0.0 → std 0.5 → 50
        assert_eq!(balanced_allocation(&skewed, &n), 50);
        assert!(is_best_effort(&PodInfo::from_pod(&pod("b").build())));
        assert!(!is_best_effort(&even));
    }

    #[test]
    fn node_affinity_preferred() {
        let p = PodInfo::from_pod(
            &pod("p")
                .preferred_node_term(80, &[("zone", "In", &["a"])])
                .preferred_node_term(20, &[("disk", "Exists", &[])])
                .build(),
        );
        let a = info(node("a").label("zone", "a").build());
        let ab = info(node("ab").label("zone", "a").label("disk", "ssd").build());
        let none = info(node("n").build());
        let mut s = vec![
            node_affinity_raw(&p, &a),
            node_affinity_raw(&p, &ab),
            node_affinity_raw(&p, &none),
        ];
        assert_eq!(s, vec![80, 100, 0]);
        default_normalize(&mut s, false);
        assert_eq!(s, vec![80, 100, 0]);
    }

    #[test]
    fn prefer_no_schedule_taints() {
        let two = info(
            node("t")
                .taint("a", "1", "PreferNoSchedule")
                .taint("b", "1", "PreferNoSchedule")
                .taint("c", "1", "NoSchedule")
                .build(),
        );
        let clean = info(node("c").build());
        let p = PodInfo::from_pod(
            &pod("p")
                .toleration("a", "Equal", "1", "PreferNoSchedule")
                .build(),
        );
        let q = PodInfo::from_pod(&pod("q").toleration("b", "Exists", "", "NoSchedule").build());
        assert_eq!(taint_toleration_raw(&p, &two), 1);
        assert_eq!(
            taint_toleration_raw(&q, &two),
            2,
            "a NoSchedule toleration does not count"
        );
        let mut s = vec![
            taint_toleration_raw(&q, &two),
            taint_toleration_raw(&q, &clean),
        ];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![0, 100]);
        let mut zeros = vec![0, 0];
        default_normalize(&mut zeros, true);
        assert_eq!(zeros, vec![100, 100]);
    }

    #[test]
    fn totals_use_default_weights() {
        let s = ClusterSnapshot::from_objects(
            &[
                node("busy").build(),
                node("idle").build(),
                node("soft").taint("x", "", "PreferNoSchedule").build(),
            ],
            &[pod("a")
                .node_name("busy")
                .requests(&[("cpu", "3"), ("memory", "6Gi")])
                .build()],
        );
        let p = PodInfo::from_pod(
            &pod("p")
                .requests(&[("cpu", "1"), ("memory", "2Gi")])
                .build(),
        );
        let (mut totals, mut scratch) = (Vec::new(), Vec::new());
        score_nodes(
            &p,
            &s,
            &[0, 1, 2],
            &Weights::default(),
            &mut totals,
            &mut scratch,
        );
        // busy: least 0, balanced 100, taint 100*3 = 400
        // idle: least 75, balanced 100, taint 300 = 475; soft: 75 + 100 + 0 = 175
        assert_eq!(totals, vec![400, 475, 175]);
    }
}
