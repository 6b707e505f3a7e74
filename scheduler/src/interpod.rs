//! InterPodAffinity: pods that want (or refuse) to be near other pods.
//!
//! "Near" means "on a node with the same value of the term's topology key".
//! Both the filter and the score therefore aggregate matching pods per
//! topology domain once per decision (kube-scheduler's PreFilter/PreScore)
//! and then answer per node with a few map lookups.
//!
//! Filter rules, as in kube-scheduler:
//! - required affinity: the node must carry every term's topology key, and
//!   each term's domain must hold a pod matching *all* terms — except that
//!   when no pod in the cluster matches and the pod matches its own terms,
//!   it may go anywhere with those keys (the first pod of a group);
//! - required anti-affinity: no pod matching a term in the node's domain;
//! - existing pods' required anti-affinity: the pod may not enter a domain
//!   whose pods' anti-affinity selects it.
//!
//! Scoring adds the weights of matching preferred terms (both the incoming
//! pod's and the existing pods' — symmetry), subtracts preferred
//! anti-affinity weights, counts existing pods' required affinity towards
//! the incoming pod with weight 1 (`hardPodAffinityWeight`), and normalises
//! min–max to 0–100.

use std::collections::HashMap;

use crate::filters::Unfit;
use crate::node_info::NodeInfo;
use crate::pod_affinity::{AffinityTerm, NamespaceLabels, WeightedTerm};
use crate::pod_info::PodInfo;
use crate::snapshot::ClusterSnapshot;

/// kube-scheduler's default `hardPodAffinityWeight`.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// Counts (or weights) per topology key and value.
#[derive(Debug, Default)]
struct TopoCounts(HashMap<String, HashMap<String, i64>>);

impl TopoCounts {
    fn add(&mut self, key: &str, value: &str, delta: i64) {
        let values = match self.0.get_mut(key) {
            Some(v) => v,
            None => self.0.entry(key.to_owned()).or_default(),
        };
        match values.get_mut(value) {
            Some(c) => *c += delta,
            None => {
                values.insert(value.to_owned(), delta);
            }
        }
    }

    /// Adds `delta` to the domain of `node` for `key`, if the node has it.
    fn add_for_node(&mut self, key: &str, node: &NodeInfo, delta: i64) {
        if let Some(v) = node.labels.get(key) {
            self.add(key, v, delta);
        }
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sum over the node's domains.
    fn node_total(&self, node: &NodeInfo) -> i64 {
        self.0
            .iter()
            .filter_map(|(k, values)| node.labels.get(k).and_then(|v| values.get(v)))
            .sum()
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, ns: &NamespaceLabels) -> bool {
    terms.iter().all(|t| t.matches(pod, ns))
}

/// The InterPodAffinity filter's per-decision state.
#[derive(Debug)]
pub struct InterPodFilter {
    affinity_keys: Vec<String>,
    anti_affinity_keys: Vec<String>,
    affinity_counts: TopoCounts,
    anti_affinity_counts: TopoCounts,
    existing_anti_affinity: TopoCounts,
    self_match: bool,
}

impl InterPodFilter {
    /// Aggregates the counts for `pod`; `None` when neither the pod nor any
    /// existing pod has required (anti-)affinity, so the filter is a no-op.
    pub fn new(pod: &PodInfo, snapshot: &ClusterSnapshot) -> Option<Self> {
        let ns = snapshot.namespace_labels();
        let aff = &pod.affinity;
        let mut existing_anti_affinity = TopoCounts::default();
        for node in snapshot.nodes() {
            if node.pods_with_required_anti_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                for t in &existing.affinity.required_anti_affinity {
                    if t.matches(pod, ns) {
                        existing_anti_affinity.add_for_node(&t.topology_key, node, 1);
                    }
                }
            }
        }
        if aff.required_affinity.is_empty()
            && aff.required_anti_affinity.is_empty()
            && existing_anti_affinity.is_empty()
        {
            return None;
        }
        let mut affinity_counts = TopoCounts::default();
        let mut anti_affinity_counts = TopoCounts::default();
        if !aff.required_affinity.is_empty() || !aff.required_anti_affinity.is_empty() {
            for node in snapshot.nodes() {
                for existing in &node.pods {
                    if !aff.required_affinity.is_empty()
                        && matches_all(&aff.required_affinity, existing, ns)
                    {
                        for t in &aff.required_affinity {
                            affinity_counts.add_for_node(&t.topology_key, node, 1);
                        }
                    }
                    for t in &aff.required_anti_affinity {
                        if t.matches(existing, ns) {
                            anti_affinity_counts.add_for_node(&t.topology_key, node, 1);
                        }
                    }
                }
            }
        }
        Some(InterPodFilter {
            affinity_keys: aff
                .required_affinity
                .iter()
                .map(|t| t.topology_key.clone())
                .collect(),
            anti_affinity_keys: aff
                .required_anti_affinity
                .iter()
                .map(|t| t.topology_key.clone())
                .collect(),
            self_match: matches_all(&aff.required_affinity, pod, ns),
            affinity_counts,
            anti_affinity_counts,
            existing_anti_affinity,
        })
    }

    /// Checks one node.
    pub fn filter(&self, node: &NodeInfo) -> Result<(), Unfit> {
        if !self.satisfies_affinity(node) {
            return Err(Unfit::PodAffinity);
        }
        let in_domain_with = |counts: &TopoCounts, key: &str| {
            node.labels.get(key).is_some_and(|v| counts.get(key, v) > 0)
        };
        if self
            .anti_affinity_keys
            .iter()
            .any(|k| in_domain_with(&self.anti_affinity_counts, k))
        {
            return Err(Unfit::PodAntiAffinity);
        }
        if self
            .existing_anti_affinity
            .0
            .keys()
            .any(|k| in_domain_with(&self.existing_anti_affinity, k))
        {
            return Err(Unfit::ExistingAntiAffinity);
        }
        Ok(())
    }

    fn satisfies_affinity(&self, node: &NodeInfo) -> bool {
        let mut pods_exist = true;
        for key in &self.affinity_keys {
            match node.labels.get(key) {
                Some(v) => {
                    if self.affinity_counts.get(key, v) <= 0 {
                        pods_exist = false;
                    }
                }
                None => return false,
            }
        }
        pods_exist || (self.affinity_counts.is_empty() && self.self_match)
    }
}

/// Raw InterPodAffinity scores for `nodes` (indexes into the snapshot), or
/// `None` when no term anywhere concerns the pod (all nodes score 0).
pub fn raw_scores(pod: &PodInfo, snapshot: &ClusterSnapshot, nodes: &[usize]) -> Option<Vec<i64>> {
    let ns = snapshot.namespace_labels();
    let aff = &pod.affinity;
    let has_preferred =
        !aff.preferred_affinity.is_empty() || !aff.preferred_anti_affinity.is_empty();
    let mut topo = TopoCounts::default();
    let weighted = |topo: &mut TopoCounts,
                    terms: &[WeightedTerm],
                    target: &PodInfo,
                    node: &NodeInfo,
                    sign: i64| {
        for w in terms {
            if w.term.matches(target, ns) {
                topo.add_for_node(&w.term.topology_key, node, sign * w.weight);
            }
        }
    };
    for node in snapshot.nodes() {
        if node.labels.is_empty() || (!has_preferred && node.pods_with_affinity == 0) {
            continue;
        }
        for existing in &node.pods {
            if has_preferred {
                weighted(&mut topo, &aff.preferred_affinity, existing, node, 1);
                weighted(&mut topo, &aff.preferred_anti_affinity, existing, node, -1);
            }
            let e = &existing.affinity;
            for t in &e.required_affinity {
                if t.matches(pod, ns) {
                    topo.add_for_node(&t.topology_key, node, HARD_POD_AFFINITY_WEIGHT);
                }
            }
            weighted(&mut topo, &e.preferred_affinity, pod, node, 1);
            weighted(&mut topo, &e.preferred_anti_affinity, pod, node, -1);
        }
    }
    if topo.is_empty() {
        return None;
    }
    let all = snapshot.nodes();
    Some(nodes.iter().map(|&i| topo.node_total(&all[i])).collect())
}

/// Min–max normalisation to 0–100 (all equal → all 0), as kube-scheduler
/// normalises InterPodAffinity.
pub fn normalize(scores: &mut [i64]) {
    let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (100.0 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod, term};
    use k8s_openapi::api::core::v1::{Node, Pod};

    fn zones() -> Vec<Node> {
        vec![
            node("a1").label("zone", "a").build(),
            node("a2").label("zone", "a").build(),
            node("b1").label("zone", "b").build(),
            node("nozone").build(),
        ]
    }

    fn filter_all(p: &Pod, s: &ClusterSnapshot) -> Vec<Result<(), Unfit>> {
        let info = PodInfo::from_pod(p);
        let f = InterPodFilter::new(&info, s);
        s.nodes()
            .iter()
            .map(|n| f.as_ref().map_or(Ok(()), |f| f.filter(n)))
            .collect()
    }

    #[test]
    fn required_affinity_follows_the_domain() {
        let s = ClusterSnapshot::from_objects(
            &zones(),
            &[pod("db").label("app", "db").node_name("a1").build()],
        );
        let web = pod("web").pod_affinity(term("app", "db", "zone")).build();
        assert_eq!(
            filter_all(&web, &s),
            vec![
                Ok(()),
                Ok(()),
                Err(Unfit::PodAffinity),
                Err(Unfit::PodAffinity)
            ]
        );
    }

    #[test]
    fn first_pod_of_a_self_affine_group_may_go_anywhere_with_the_key() {
        let s = ClusterSnapshot::from_objects(&zones(), &[]);
        let first = pod("w")
            .label("app", "web")
            .pod_affinity(term("app", "web", "zone"))
            .build();
        assert_eq!(
            filter_all(&first, &s),
            vec![Ok(()), Ok(()), Ok(()), Err(Unfit::PodAffinity)]
        );
        let stranger = pod("w").pod_affinity(term("app", "web", "zone")).build();
        assert!(filter_all(&stranger, &s).iter().all(|r| r.is_err()));
    }

    #[test]
    fn required_anti_affinity_both_ways() {
        let existing = pod("old")
            .label("app", "cache")
            .node_name("a1")
            .pod_anti_affinity(term("app", "cache", "zone"))
            .build();
        let s = ClusterSnapshot::from_objects(&zones(), &[existing]);
        // the new pod has no terms of its own but is selected by the existing pod's
        let newcomer = pod("new").label("app", "cache").build();
        assert_eq!(
            filter_all(&newcomer, &s),
            vec![
                Err(Unfit::ExistingAntiAffinity),
                Err(Unfit::ExistingAntiAffinity),
                Ok(()),
                Ok(())
            ]
        );
        // the new pod's own anti-affinity
        let s = ClusterSnapshot::from_objects(
            &zones(),
            &[pod("db").label("app", "db").node_name("b1").build()],
        );
        let p = pod("p")
            .pod_anti_affinity(term("app", "db", "zone"))
            .build();
        assert_eq!(
            filter_all(&p, &s),
            vec![Ok(()), Ok(()), Err(Unfit::PodAntiAffinity), Ok(())]
        );
        assert_eq!(
            Unfit::ExistingAntiAffinity.reasons(),
            vec!["node(s) didn't satisfy existing pods anti-affinity rules"]
        );
    }

    #[test]
    fn preferred_terms_score_and_normalise() {
        let s = ClusterSnapshot::from_objects(
            &zones(),
            &[
                pod("db").label("app", "db").node_name("a1").build(),
                pod("noisy").label("app", "noisy").node_name("b1").build(),
            ],
        );
        let p = PodInfo::from_pod(
            &pod("p")
                .preferred_pod_affinity(10, term("app", "db", "zone"))
                .preferred_pod_anti_affinity(5, term("app", "noisy", "zone"))
                .build(),
        );
        let idx: Vec<usize> = (0..s.len()).collect();
        let mut raw = raw_scores(&p, &s, &idx).unwrap();
        assert_eq!(raw, vec![10, 10, -5, 0]);
        normalize(&mut raw);
        assert_eq!(raw, vec![100, 100, 0, 33]);
        let plain = PodInfo::from_pod(&pod("q").build());
        assert_eq!(raw_scores(&plain, &s, &idx), None);
    }

    #[test]
    fn existing_pods_required_affinity_attracts_symmetrically() {
        let s = ClusterSnapshot::from_objects(
            &zones(),
            &[pod("fan")
                .node_name("b1")
                .pod_affinity(term("app", "star", "zone"))
                .build()],
        );
        let star = PodInfo::from_pod(&pod("star").label("app", "star").build());
        let idx: Vec<usize> = (0..s.len()).collect();
        assert_eq!(raw_scores(&star, &s, &idx), Some(vec![0, 0, 1, 0]));
    }
}
