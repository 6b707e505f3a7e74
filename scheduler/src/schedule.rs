//! One scheduling decision: filter, score, pick.
//!
//! Like kube-scheduler, a decision does not necessarily look at every node:
//! in a large cluster it stops filtering once it has found
//! [`num_feasible_nodes_to_find`] feasible nodes (the adaptive
//! `percentageOfNodesToScore`: 50 % minus 1 % per 125 nodes, at least 5 %,
//! at least 100 nodes), and the next decision starts where this one stopped
//! so every node gets its turn. That keeps a 5,000-node cluster at ~500
//! filter calls per pod. Ties between the best-scoring nodes are broken at
//! random (reservoir sampling), from a seedable generator so tests are
//! reproducible.
//!
//! When no node fits, the [`FitError`] renders kube-scheduler's message:
//! `0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated
//! taint {node-role.kubernetes.io/control-plane: }.` — one count per reason,
//! the `"<count> <reason>"` strings sorted as plain strings. kube-scheduler
//! appends a `preemption: ...` sentence written by its preemption plugin;
//! Skiff has no preemption, and claiming a preemption verdict it never
//! computed would mislead, so the message ends after the filter reasons
//! (which is also what kube-scheduler prints when preemption is disabled).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::filters::{FilterState, PluginSet, run_filters};
use crate::pod_info::PodInfo;
use crate::scores::{Weights, score_nodes};
use crate::snapshot::{ClusterSnapshot, SnapshotError};

/// Below this many nodes every node is filtered; it is also the floor of the
/// adaptive sample (kube-scheduler's `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this
/// (`minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;
/// The adaptive percentage's starting point (`DefaultPercentageOfNodesToScore` base).
pub const BASE_PERCENTAGE_OF_NODES_TO_SCORE: usize = 50;

/// How many feasible nodes a decision looks for before it stops filtering.
/// `percentage` is `percentageOfNodesToScore`: 0 means adaptive, 100 or more
/// means all nodes.
pub fn num_feasible_nodes_to_find(percentage: u32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return num_all_nodes;
    }
    let pct = if percentage == 0 {
        BASE_PERCENTAGE_OF_NODES_TO_SCORE
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE)
    } else {
        percentage as usize
    };
    (num_all_nodes * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Where a pod should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The chosen node.
    pub node: String,
    /// Its weighted total score (0 when it was the only feasible node and
    /// scoring was skipped).
    pub score: i64,
    /// Nodes the filters ran on.
    pub evaluated_nodes: usize,
    /// Nodes that passed the filters.
    pub feasible_nodes: usize,
}

/// No node fits the pod. `Display` renders kube-scheduler's
/// `FailedScheduling` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// Nodes in the snapshot.
    pub num_all_nodes: usize,
    /// `(reason, number of nodes)`, in message order.
    pub reasons: Vec<(String, usize)>,
    /// The plugins that rejected at least one node — what queueing hints
    /// check cluster events against.
    pub unschedulable_plugins: PluginSet,
}

impl FitError {
    fn from_histogram(
        num_all_nodes: usize,
        hist: &HashMap<String, usize>,
        plugins: PluginSet,
    ) -> Self {
        let mut reasons: Vec<(String, usize)> = hist.iter().map(|(r, c)| (r.clone(), *c)).collect();
        // kube-scheduler sorts the rendered "<count> <reason>" strings.
        reasons.sort_by_cached_key(|(r, c)| format!("{c} {r}"));
        FitError {
            num_all_nodes,
            reasons,
            unschedulable_plugins: plugins,
        }
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        for (i, (reason, count)) in self.reasons.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{count} {reason}")?;
        }
        f.write_str(".")
    }
}

impl std::error::Error for FitError {}

/// Scheduler settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedulerConfig {
    /// kube-scheduler's `percentageOfNodesToScore`; 0 = adaptive.
    pub percentage_of_nodes_to_score: u32,
    /// Score plugin weights.
    pub weights: Weights,
}

/// A small seedable PRNG (SplitMix64) for tie-breaking; no dependency and
/// fully reproducible in tests.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant for ties.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The decision maker. Holds only what must persist between decisions: the
/// tie-break generator, the round-robin start index, and reusable buffers
/// (so the hot path allocates almost nothing).
#[derive(Debug, Clone)]
pub struct Scheduler {
    config: SchedulerConfig,
    rng: SplitMix64,
    next_start: usize,
    feasible: Vec<usize>,
    totals: Vec<i64>,
    scratch: Vec<i64>,
    histogram: HashMap<String, usize>,
    reason_buf: String,
}

impl Scheduler {
    /// A scheduler with `config`, tie-breaking from `seed`.
    pub fn new(config: SchedulerConfig, seed: u64) -> Self {
        Scheduler {
            config,
            rng: SplitMix64(seed),
            next_start: 0,
            feasible: Vec::new(),
            totals: Vec::new(),
            scratch: Vec::new(),
            histogram: HashMap::new(),
            reason_buf: String::new(),
        }
    }

    /// Picks a node for `pod`, or explains why none fits. Does not change
    /// the snapshot: the caller assumes the pod (see
    /// [`Scheduler::schedule_and_assume`]) before the next decision.
    pub fn schedule(
        &mut self,
        pod: &PodInfo,
        snapshot: &ClusterSnapshot,
    ) -> Result<ScheduleResult, FitError> {
        let nodes = snapshot.nodes();
        let n = nodes.len();
        if n == 0 {
            return Err(FitError::from_histogram(
                0,
                &HashMap::new(),
                PluginSet::default(),
            ));
        }
        let want = num_feasible_nodes_to_find(self.config.percentage_of_nodes_to_score, n);
        let state = FilterState::new(pod, snapshot);
        self.feasible.clear();
        self.histogram.clear();
        let mut plugins = PluginSet::default();
        let start = self.next_start % n;
        let mut processed = 0;
        for k in 0..n {
            let i = (start + k) % n;
            processed += 1;
            match run_filters(pod, &state, &nodes[i]) {
                Ok(()) => {
                    self.feasible.push(i);
                    if self.feasible.len() >= want {
                        break;
                    }
                }
                Err(unfit) => {
                    plugins.insert(unfit.plugin());
                    let hist = &mut self.histogram;
                    unfit.for_each_reason(&mut self.reason_buf, |r| match hist.get_mut(r) {
                        Some(c) => *c += 1,
                        None => {
                            hist.insert(r.to_owned(), 1);
                        }
                    });
                }
            }
        }
        self.next_start = (start + processed) % n;
        let (evaluated_nodes, feasible_nodes) = (processed, self.feasible.len());
        let result = |i: usize, score: i64| ScheduleResult {
            node: nodes[i].name.clone(),
            score,
            evaluated_nodes,
            feasible_nodes,
        };
        match self.feasible.as_slice() {
            [] => Err(FitError::from_histogram(n, &self.histogram, plugins)),
            [only] => Ok(result(*only, 0)),
            _ => {
                score_nodes(
                    pod,
                    snapshot,
                    &self.feasible,
                    &self.config.weights,
                    &mut self.totals,
                    &mut self.scratch,
                );
                let (best, score) = self.select();
                Ok(result(best, score))
            }
        }
    }

    /// Highest total wins; ties are broken uniformly at random.
    fn select(&mut self) -> (usize, i64) {
        let mut best = (self.feasible[0], self.totals[0]);
        let mut ties = 1u64;
        for (&i, &s) in self.feasible.iter().zip(&self.totals).skip(1) {
            if s > best.1 {
                best = (i, s);
                ties = 1;
            } else if s == best.1 {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    best = (i, s);
                }
            }
        }
        best
    }

    /// Schedules `pod` and, on success, assumes it on the chosen node so the
    /// next decision already sees its resources — what the scheduling loop
    /// does before sending the binding.
    pub fn schedule_and_assume(
        &mut self,
        pod: Arc<PodInfo>,
        snapshot: &mut ClusterSnapshot,
    ) -> Result<ScheduleResult, FitError> {
        let result = self.schedule(&pod, snapshot)?;
        match snapshot.assume_pod(pod, &result.node) {
            Ok(()) => Ok(result),
            // The node came from this very snapshot, so this cannot happen;
            // report it as a fit failure rather than panicking.
            Err(SnapshotError::UnknownNode(_)) => Err(FitError::from_histogram(
                snapshot.len(),
                &HashMap::new(),
                PluginSet::default(),
            )),
        }
    }
}

/// One-shot convenience: compiles `pod` and schedules it with the default
/// configuration and a fixed seed. The scheduling loop should keep one
/// [`Scheduler`] instead (round-robin start, reused buffers, varying ties).
pub fn schedule(pod: &Pod, snapshot: &ClusterSnapshot) -> Result<ScheduleResult, FitError> {
    Scheduler::new(SchedulerConfig::default(), 0).schedule(&PodInfo::from_pod(pod), snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::Plugin;
    use crate::testutil::{node, pod};
    use k8s_openapi::api::core::v1::Node;

    #[test]
    fn percentage_of_nodes_to_score() {
        assert_eq!(num_feasible_nodes_to_find(0, 5), 5);
        assert_eq!(num_feasible_nodes_to_find(0, 99), 99);
        assert_eq!(
            num_feasible_nodes_to_find(0, 100),
            100,
            "50% of 100 → floor 100"
        );
        assert_eq!(
            num_feasible_nodes_to_find(0, 500),
            230,
            "50% - 500/125 = 46%"
        );
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(0, 6000), 300, "floor 5%");
        assert_eq!(num_feasible_nodes_to_find(0, 1500), 1500 * 38 / 100);
        assert_eq!(num_feasible_nodes_to_find(10, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(1, 5000), 100, "never below 100");
        assert_eq!(num_feasible_nodes_to_find(100, 5000), 5000);
    }

    #[test]
    fn fit_error_message_for_a_mixed_cluster() {
        let nodes: Vec<Node> = vec![
            node("w1").capacity("1", "4Gi", 110).build(),
            node("w2").capacity("1", "4Gi", 110).build(),
            node("w3").capacity("1", "4Gi", 110).build(),
            node("cp1")
                .taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
                .build(),
            node("cp2")
                .taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
                .build(),
        ];
        let s = ClusterSnapshot::from_objects(&nodes, &[]);
        let err = schedule(&pod("big").requests(&[("cpu", "2")]).build(), &s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/5 nodes are available: 2 node(s) had untolerated taint \
             {node-role.kubernetes.io/control-plane: }, 3 Insufficient cpu."
        );
        assert!(err.unschedulable_plugins.contains(Plugin::TaintToleration));
        assert!(err.unschedulable_plugins.contains(Plugin::NodeResourcesFit));
        assert!(!err.unschedulable_plugins.contains(Plugin::NodePorts));
    }

    #[test]
    fn fit_error_counts_every_reason_and_sorts_as_strings() {
        let mut nodes: Vec<Node> = (0..10)
            .map(|i| node(&format!("small{i}")).capacity("1", "1Gi", 110).build())
            .collect();
        nodes.push(node("cordoned").unschedulable().build());
        nodes.push(node("down").not_ready().build());
        let s = ClusterSnapshot::from_objects(&nodes, &[]);
        let err = schedule(
            &pod("big")
                .requests(&[("cpu", "2"), ("memory", "2Gi")])
                .build(),
            &s,
        )
        .unwrap_err();
        // "10 ..." sorts before "1 ..." as a string, like kube-scheduler's sort.Strings
        assert_eq!(
            err.to_string(),
            "0/12 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, \
             10 Insufficient cpu, 10 Insufficient memory."
        );
        let empty = ClusterSnapshot::new();
        assert_eq!(
            schedule(&pod("p").build(), &empty).unwrap_err().to_string(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn picks_the_best_node_and_breaks_ties_reproducibly() {
        let nodes: Vec<Node> = vec![
            node("full").build(),
            node("empty-a").build(),
            node("empty-b").build(),
        ];
        let s = ClusterSnapshot::from_objects(
            &nodes,
            &[pod("x")
                .node_name("full")
                .requests(&[("cpu", "3"), ("memory", "6Gi")])
                .build()],
        );
        let p = PodInfo::from_pod(
            &pod("p")
                .requests(&[("cpu", "1"), ("memory", "1Gi")])
                .build(),
        );
        let mut picks = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let r = Scheduler::new(SchedulerConfig::default(), seed)
                .schedule(&p, &s)
                .unwrap();
            assert_ne!(r.node, "full");
            assert_eq!(r.feasible_nodes, 3);
            picks.insert(r.node.clone());
            let again = Scheduler::new(SchedulerConfig::default(), seed)
                .schedule(&p, &s)
                .unwrap();
            assert_eq!(again.node, r.node, "same seed, same choice");
        }
        assert_eq!(picks.len(), 2, "both empty nodes win some ties");
    }

    #[test]
    fn samples_large_clusters_and_rotates_the_start() {
        let nodes: Vec<Node> = (0..1000).map(|i| node(&format!("n{i}")).build()).collect();
        let s = ClusterSnapshot::from_objects(&nodes, &[]);
        let p = PodInfo::from_pod(&pod("p").requests(&[("cpu", "100m")]).build());
        let mut sched = Scheduler::new(SchedulerConfig::default(), 1);
        let r1 = sched.schedule(&p, &s).unwrap();
        assert_eq!(r1.evaluated_nodes, 420);
        assert_eq!(r1.feasible_nodes, 420);
        assert_eq!(sched.next_start, 420);
        sched.schedule(&p, &s).unwrap();
        sched.schedule(&p, &s).unwrap();
        assert_eq!(sched.next_start, (3 * 420) % 1000);
    }

    #[test]
    fn five_thousand_nodes_filter_a_tenth() {
        let nodes: Vec<Node> = (0..5000).map(|i| node(&format!("n{i}")).build()).collect();
        let s = ClusterSnapshot::from_objects(&nodes, &[]);
        let p = PodInfo::from_pod(&pod("p").requests(&[("cpu", "100m")]).build());
        let r = Scheduler::new(SchedulerConfig::default(), 1)
            .schedule(&p, &s)
            .unwrap();
        assert_eq!((r.evaluated_nodes, r.feasible_nodes), (500, 500));
        // When most nodes are full, filtering goes on until enough fit.
        let mut s = s;
        for i in 0..4800 {
            let hog = pod(&format!("hog{i}")).node_name(&format!("n{i}"));
            s.add_pod(&hog.requests(&[("cpu", "4")]).build());
        }
        let r = Scheduler::new(SchedulerConfig::default(), 1)
            .schedule(&p, &s)
            .unwrap();
        assert_eq!((r.evaluated_nodes, r.feasible_nodes), (5000, 200));
    }

    #[test]
    fn no_overcommit_when_assuming_a_burst() {
        // 50 nodes × 2 cpu / 3Gi; pods of 300m/512Mi: cpu allows 6 per node
        // (memory allows 6 too), 300 fit in total; 1,000 arrive.
        let nodes: Vec<Node> = (0..50)
            .map(|i| node(&format!("n{i}")).capacity("2", "3Gi", 110).build())
            .collect();
        let mut s = ClusterSnapshot::from_objects(&nodes, &[]);
        let mut sched = Scheduler::new(SchedulerConfig::default(), 7);
        let (mut placed, mut failed) = (0, 0);
        for i in 0..1000 {
            let p = PodInfo::shared(
                &pod(&format!("p{i}"))
                    .requests(&[("cpu", "300m"), ("memory", "512Mi")])
                    .build(),
            );
            match sched.schedule_and_assume(p, &mut s) {
                Ok(_) => placed += 1,
                Err(e) => {
                    failed += 1;
                    assert_eq!(
                        e.to_string(),
                        "0/50 nodes are available: 50 Insufficient cpu, 50 Insufficient memory."
                    );
                }
            }
        }
        assert_eq!((placed, failed), (300, 700));
        for n in s.nodes() {
            assert!(
                n.requested.milli_cpu <= n.allocatable.milli_cpu,
                "{}",
                n.name
            );
            assert!(n.requested.memory <= n.allocatable.memory, "{}", n.name);
            assert_eq!(n.pods.len(), 6, "{} holds {} pods", n.name, n.pods.len());
        }
    }

    #[test]
    fn pod_count_limit_is_never_exceeded() {
        let nodes: Vec<Node> = (0..3)
            .map(|i| node(&format!("n{i}")).capacity("64", "64Gi", 4).build())
            .collect();
        let mut s = ClusterSnapshot::from_objects(&nodes, &[]);
        let mut sched = Scheduler::new(SchedulerConfig::default(), 3);
        let ok = (0..20)
            .filter(|i| {
                sched
                    .schedule_and_assume(PodInfo::shared(&pod(&format!("p{i}")).build()), &mut s)
                    .is_ok()
            })
            .count();
        assert_eq!(ok, 12);
        assert!(s.nodes().iter().all(|n| n.pods.len() == 4));
    }
}
