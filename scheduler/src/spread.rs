//! PodTopologySpread: keep matching pods evenly spread over topology domains.
//!
//! A constraint counts the pods that match its selector (in the incoming
//! pod's namespace, not terminating) per domain — per value of its topology
//! key — over the nodes it considers eligible (by default: nodes matching
//! the pod's nodeSelector/required affinity; `nodeTaintsPolicy: Honor` also
//! drops nodes with untolerated taints). `skew = count(domain) + self −
//! min(count)`, where `self` is 1 when the pod matches its own selector and
//! the minimum is taken as 0 while fewer than `minDomains` domains exist.
//!
//! `DoNotSchedule` constraints filter nodes whose skew would exceed
//! `maxSkew`; `ScheduleAnyway` constraints score, favouring domains with
//! fewer matching pods, with kube-scheduler's formula (counts weighted by
//! `ln(domains + 2)`, plus `maxSkew − 1`, inverted during normalisation).
//!
//! Pods of ReplicaSets, StatefulSets and ReplicationControllers without
//! constraints of their own get kube-scheduler's system default: spread over
//! hosts, `maxSkew: 3`, `ScheduleAnyway` (the zone default is left out: nodes
//! carry no zone label here). Kubernetes builds that constraint's selector
//! from the Services and controllers selecting the pod; Skiff uses the pod's
//! own labels, which for controller-made pods (template labels, plus
//! `pod-template-hash`) select the same sibling replicas without the
//! scheduler having to watch Services and controllers.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1 as core;
use runtime::selector::LabelSelector;

use crate::filters::Unfit;
use crate::node_info::NodeInfo;
use crate::pod_affinity::compile_selector;
use crate::pod_info::PodInfo;
use crate::snapshot::ClusterSnapshot;
use crate::taints;

/// The well-known hostname label; scoring counts it per node.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A compiled topology spread constraint.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    /// Allowed skew (at least 1 after validation; treated as given).
    pub max_skew: i64,
    /// Node label defining the domains.
    pub topology_key: String,
    /// `DoNotSchedule` (filter) rather than `ScheduleAnyway` (score).
    pub hard: bool,
    selector: LabelSelector,
    min_domains: usize,
    honor_node_affinity: bool,
    honor_taints: bool,
}

impl SpreadConstraint {
    /// Compiles a constraint of a pod with `labels` (for `matchLabelKeys`).
    pub fn compile(c: &core::TopologySpreadConstraint, labels: &BTreeMap<String, String>) -> Self {
        let extra = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| labels.get(k).map(|v| (k.as_str(), "In", v.as_str())));
        let hard = c.when_unsatisfiable != "ScheduleAnyway";
        SpreadConstraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            hard,
            selector: compile_selector(c.label_selector.as_ref(), extra),
            min_domains: c.min_domains.filter(|_| hard).unwrap_or(1).max(1) as usize,
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    /// kube-scheduler's default host spreading for a controller's pod with `labels`.
    pub fn system_default(labels: &BTreeMap<String, String>) -> Self {
        let selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(labels.clone()),
            ..Default::default()
        };
        SpreadConstraint {
            max_skew: 3,
            topology_key: HOSTNAME_LABEL.to_string(),
            hard: false,
            selector: compile_selector(Some(&selector), std::iter::empty()),
            min_domains: 1,
            honor_node_affinity: true,
            honor_taints: false,
        }
    }

    fn counts_node(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        (!self.honor_node_affinity || pod.required_node_affinity.matches(&node.name, &node.labels))
            && (!self.honor_taints
                || node
                    .taints
                    .iter()
                    .all(|t| !t.blocks_scheduling() || taints::tolerated(&pod.tolerations, t)))
    }

    /// Matching pods on one node.
    fn count_on(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        node.pods
            .iter()
            .filter(|p| {
                !p.terminating && p.namespace == pod.namespace && self.selector.matches(&p.labels)
            })
            .count() as i64
    }
}

fn has_keys<'a>(mut cs: impl Iterator<Item = &'a SpreadConstraint>, node: &NodeInfo) -> bool {
    cs.all(|c| node.labels.contains_key(&c.topology_key))
}

/// The hard-constraint filter's per-decision state.
#[derive(Debug)]
pub struct SpreadFilter {
    /// Per hard constraint: matching pods per domain value.
    counts: Vec<HashMap<String, i64>>,
    /// Per hard constraint: the global minimum used for the skew.
    minimum: Vec<i64>,
}

impl SpreadFilter {
    /// Counts matching pods per domain; `None` when the pod has no hard
    /// constraint.
    pub fn new(pod: &PodInfo, snapshot: &ClusterSnapshot) -> Option<Self> {
        let hard = || pod.spread.iter().filter(|c| c.hard);
        let n = hard().count();
        if n == 0 {
            return None;
        }
        let mut counts = vec![HashMap::<String, i64>::new(); n];
        for node in snapshot.nodes() {
            if !has_keys(hard(), node) {
                continue;
            }
            for (i, c) in hard().enumerate() {
                if !c.counts_node(pod, node) {
                    continue;
                }
                let value = &node.labels[&c.topology_key];
                let add = c.count_on(pod, node);
                match counts[i].get_mut(value) {
                    Some(v) => *v += add,
                    None => {
                        counts[i].insert(value.clone(), add);
                    }
                }
            }
        }
        let minimum = hard()
            .zip(&counts)
            .map(|(c, domains)| {
                if domains.len() < c.min_domains {
                    0
                } else {
                    domains.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
        Some(SpreadFilter { counts, minimum })
    }

    /// Checks one node.
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        for (i, c) in pod.spread.iter().filter(|c| c.hard).enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Err(Unfit::SpreadMissingLabel);
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let here = self.counts[i].get(value).copied().unwrap_or(0);
            if here + self_match - self.minimum[i] > c.max_skew {
                return Err(Unfit::SpreadSkew);
            }
        }
        Ok(())
    }
}

/// Raw PodTopologySpread scores for the feasible `nodes` (indexes into the
/// snapshot), already normalised to 0–100; `None` when the pod has no
/// `ScheduleAnyway` constraint.
pub fn scores(pod: &PodInfo, snapshot: &ClusterSnapshot, nodes: &[usize]) -> Option<Vec<i64>> {
    let soft: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| !c.hard).collect();
    if soft.is_empty() {
        return None;
    }
    let all = snapshot.nodes();
    let ignored: Vec<bool> = nodes
        .iter()
        .map(|&i| !has_keys(soft.iter().copied(), &all[i]))
        .collect();
    let scored = ignored.iter().filter(|x| !**x).count();
    // Domains present among the feasible nodes, per constraint.
    let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); soft.len()];
    for (&i, _) in nodes.iter().zip(&ignored).filter(|(_, ign)| !**ign) {
        for (ci, c) in soft.iter().enumerate() {
            if c.topology_key != HOSTNAME_LABEL {
                counts[ci].insert(all[i].labels[&c.topology_key].as_str(), 0);
            }
        }
    }
    let weights: Vec<f64> = soft
        .iter()
        .zip(&counts)
        .map(|(c, d)| {
            let size = if c.topology_key == HOSTNAME_LABEL {
                scored
            } else {
                d.len()
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    for node in all.iter().filter(|n| has_keys(soft.iter().copied(), n)) {
        for (ci, c) in soft.iter().enumerate() {
            if c.topology_key == HOSTNAME_LABEL || !c.counts_node(pod, node) {
                continue;
            }
            if let Some(slot) = counts[ci].get_mut(node.labels[&c.topology_key].as_str()) {
                *slot += c.count_on(pod, node);
            }
        }
    }
    let raw: Vec<Option<i64>> = nodes
        .iter()
        .zip(&ignored)
        .map(|(&i, &ign)| {
            if ign {
                return None;
            }
            let node = &all[i];
            let mut score = 0.0;
            for (ci, c) in soft.iter().enumerate() {
                let Some(v) = node.labels.get(&c.topology_key) else {
                    continue;
                };
                let cnt = if c.topology_key == HOSTNAME_LABEL {
                    c.count_on(pod, node)
                } else {
                    counts[ci].get(v.as_str()).copied().unwrap_or(0)
                };
                score += cnt as f64 * weights[ci] + (c.max_skew - 1) as f64;
            }
            Some(score.round() as i64)
        })
        .collect();
    let min = raw.iter().flatten().copied().min().unwrap_or(0);
    let max = raw.iter().flatten().copied().max().unwrap_or(0);
    Some(
        raw.iter()
            .map(|s| match *s {
                None => 0,
                Some(_) if max == 0 => 100,
                Some(s) => 100 * (max + min - s) / max,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};
    use k8s_openapi::api::core::v1::{Node, Pod};

    fn cluster(pods: &[Pod]) -> ClusterSnapshot {
        let nodes: Vec<Node> = vec![
            node("a1").label("zone", "a").build(),
            node("b1").label("zone", "b").build(),
            node("c1").label("zone", "c").label("gpu", "yes").build(),
            node("x").build(),
        ];
        ClusterSnapshot::from_objects(&nodes, pods)
    }

    fn web_on(name: &str, node: &str) -> Pod {
        pod(name).label("app", "web").node_name(node).build()
    }

    fn owned_by_replicaset(mut p: Pod) -> Pod {
        p.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web-1".into(),
                uid: "u".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        p
    }

    #[test]
    fn controller_pods_spread_over_hosts_by_default() {
        let host = |n: &str| node(n).label(HOSTNAME_LABEL, n).build();
        let nodes = vec![host("h1"), host("h2"), host("h3")];
        let replica = |name: &str, on: &str| {
            owned_by_replicaset(pod(name).label("app", "web").node_name(on).build())
        };
        let s = ClusterSnapshot::from_objects(
            &nodes,
            &[
                replica("w1", "h1"),
                replica("w2", "h1"),
                replica("w3", "h2"),
            ],
        );
        let new = PodInfo::from_pod(&owned_by_replicaset(pod("w4").label("app", "web").build()));
        let got = scores(&new, &s, &[0, 1, 2]).expect("default constraint");
        assert!(got[2] > got[1] && got[1] > got[0], "{got:?}");
        // A bare pod (no controller) gets no default constraint, as in kube-scheduler.
        let bare = PodInfo::from_pod(&pod("b").label("app", "web").build());
        assert!(scores(&bare, &s, &[0, 1, 2]).is_none());
    }

    fn filter_all(p: &Pod, s: &ClusterSnapshot) -> Vec<Result<(), Unfit>> {
        let info = PodInfo::from_pod(p);
        let f = SpreadFilter::new(&info, s).unwrap();
        s.nodes().iter().map(|n| f.filter(&info, n)).collect()
    }

    #[test]
    fn do_not_schedule_limits_skew() {
        let s = cluster(&[web_on("w1", "a1"), web_on("w2", "a1"), web_on("w3", "b1")]);
        let p = pod("new")
            .label("app", "web")
            .spread(1, "zone", "DoNotSchedule", ("app", "web"))
            .build();
        // counts a=2 b=1 c=0, min 0: a → 3 skew, b → 2, c → 1
        assert_eq!(
            filter_all(&p, &s),
            vec![
                Err(Unfit::SpreadSkew),
                Err(Unfit::SpreadSkew),
                Ok(()),
                Err(Unfit::SpreadMissingLabel)
            ]
        );
        assert_eq!(
            Unfit::SpreadSkew.reasons(),
            vec!["node(s) didn't match pod topology spread constraints"]
        );
    }

    #[test]
    fn node_affinity_policy_excludes_domains_and_terminating_pods_do_not_count() {
        // Only c1 matches the selector; the domains a and b do not exist for
        // this pod, so min is c's count and placing on c is fine.
        let mut dying = web_on("w4", "c1");
        dying.metadata.deletion_timestamp =
            pod("t").terminating().build().metadata.deletion_timestamp;
        let s = cluster(&[web_on("w1", "c1"), web_on("w2", "c1"), dying]);
        let p = pod("new")
            .label("app", "web")
            .node_selector("gpu", "yes")
            .spread(1, "zone", "DoNotSchedule", ("app", "web"))
            .build();
        let info = PodInfo::from_pod(&p);
        let f = SpreadFilter::new(&info, &s).unwrap();
        assert_eq!(f.counts[0].get("c"), Some(&2));
        assert_eq!(f.counts[0].len(), 1);
        assert_eq!(f.filter(&info, s.node("c1").unwrap()), Ok(()));
    }

    #[test]
    fn min_domains_forces_zero_minimum() {
        let s = cluster(&[web_on("w1", "a1"), web_on("w2", "b1"), web_on("w3", "c1")]);
        let mut p = pod("new")
            .label("app", "web")
            .spread(1, "zone", "DoNotSchedule", ("app", "web"))
            .build();
        assert!(filter_all(&p, &s)[..3].iter().all(|r| r.is_ok()));
        p.spec
            .as_mut()
            .unwrap()
            .topology_spread_constraints
            .as_mut()
            .unwrap()[0]
            .min_domains = Some(4);
        assert!(
            filter_all(&p, &s)[..3]
                .iter()
                .all(|r| *r == Err(Unfit::SpreadSkew))
        );
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let s = cluster(&[web_on("w1", "a1"), web_on("w2", "a1"), web_on("w3", "b1")]);
        let p = PodInfo::from_pod(
            &pod("new")
                .label("app", "web")
                .spread(1, "zone", "ScheduleAnyway", ("app", "web"))
                .build(),
        );
        let idx: Vec<usize> = (0..s.len()).collect();
        let sc = scores(&p, &s, &idx).unwrap();
        // weights ln(3+2)≈1.609: a=3.22→3, b=1.61→2, c=0; max 3 min 0
        assert_eq!(sc, vec![0, 33, 100, 0]);
        let none = PodInfo::from_pod(&pod("q").build());
        assert!(scores(&none, &s, &idx).is_none());
    }

    #[test]
    fn hostname_constraint_counts_per_node() {
        let s = cluster(&[web_on("w1", "a1"), web_on("w2", "a1")]);
        let p = PodInfo::from_pod(
            &pod("new")
                .label("app", "web")
                .spread(1, HOSTNAME_LABEL, "ScheduleAnyway", ("app", "web"))
                .build(),
        );
        let idx: Vec<usize> = (0..s.len()).collect();
        let sc = scores(&p, &s, &idx).unwrap();
        assert_eq!(sc[0], 0);
        assert!(sc[1..].iter().all(|&x| x == 100));
    }
}
