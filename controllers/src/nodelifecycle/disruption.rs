//! Zone disruption: when many nodes fail at once, the likelier culprit is the network or the
//! control plane, not the nodes, so Kubernetes stops evicting (`--unhealthy-zone-threshold`).
//!
//! Nodes are grouped into zones by their region and zone labels. A zone with no ready node is
//! in *full disruption*; one where more than two nodes and at least 55 % are not ready is in
//! *partial disruption*. When every zone is fully disrupted (with one zone: every node is
//! down) the controller assumes it is the one cut off: no node gets a `NoExecute` taint and
//! those present are removed, so nothing is evicted. In a partially disrupted zone of at most
//! 50 nodes no new `NoExecute` taint is added (Kubernetes' eviction rate drops to 0 there);
//! taints already placed stay.

use std::collections::HashMap;

/// Share of not-ready nodes from which a zone counts as partially disrupted (Kubernetes'
/// `--unhealthy-zone-threshold`).
pub const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// Zones up to this size stop tainting entirely when partially disrupted (Kubernetes'
/// `--large-cluster-size-threshold`).
pub const LARGE_CLUSTER_THRESHOLD: usize = 50;

/// Region and zone labels that place a node in a zone.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// See [`REGION_LABEL`].
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Health of one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Few nodes down: business as usual.
    Normal,
    /// Many nodes down.
    PartialDisruption,
    /// No node ready.
    FullDisruption,
}

/// Kubernetes' zone state from the counts of ready and not-ready nodes.
pub fn zone_state(ready: usize, not_ready: usize) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2
        && not_ready as f64 / (ready + not_ready) as f64 >= UNHEALTHY_ZONE_THRESHOLD
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// What the taint pass may do with `NoExecute` taints in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoExecutePolicy {
    /// Add and remove as the node's condition calls for.
    Follow,
    /// Remove when no longer called for, but add none.
    NoNewTaints,
    /// Remove every one (the controller itself seems cut off).
    RemoveAll,
}

/// The `NoExecute` policy of every zone, from each node's (zone, ready?).
pub fn policies<'a>(
    nodes: impl IntoIterator<Item = (&'a str, bool)>,
) -> HashMap<String, NoExecutePolicy> {
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    for (zone, ready) in nodes {
        let c = counts.entry(zone.to_string()).or_default();
        if ready {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    let states: HashMap<&String, ZoneState> = counts
        .iter()
        .map(|(z, (r, n))| (z, zone_state(*r, *n)))
        .collect();
    let all_down = !states.is_empty() && states.values().all(|s| *s == ZoneState::FullDisruption);
    counts
        .iter()
        .map(|(zone, (r, n))| {
            let policy = match states[zone] {
                _ if all_down => NoExecutePolicy::RemoveAll,
                ZoneState::PartialDisruption if r + n <= LARGE_CLUSTER_THRESHOLD => {
                    NoExecutePolicy::NoNewTaints
                }
                _ => NoExecutePolicy::Follow,
            };
            (zone.clone(), policy)
        })
        .collect()
}

/// The zone key of a node from its labels (`region:\0:zone`, empty without labels).
pub fn zone_of(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    let get = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    let (region, zone) = (get(REGION_LABEL), get(ZONE_LABEL));
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\0:{zone}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_states() {
        // (ready, not ready, state)
        let cases = [
            (3, 0, ZoneState::Normal),
            (1, 1, ZoneState::Normal),
            (0, 1, ZoneState::FullDisruption),
            (0, 0, ZoneState::Normal),
            (2, 2, ZoneState::Normal), // not more than two down
            (2, 3, ZoneState::PartialDisruption),
            (3, 3, ZoneState::Normal), // 50 % < 55 %
            (45, 55, ZoneState::PartialDisruption),
        ];
        for (r, n, want) in cases {
            assert_eq!(zone_state(r, n), want, "{r} ready, {n} not");
        }
    }

    #[test]
    fn zone_policies() {
        use NoExecutePolicy::*;
        let nodes = |spec: &[(&'static str, bool, usize)]| -> Vec<(&'static str, bool)> {
            spec.iter()
                .flat_map(|(z, ready, n)| std::iter::repeat_n((*z, *ready), *n))
                .collect()
        };
        // One zone: one of two down → follow; all down → remove all.
        let p = policies(nodes(&[("", true, 1), ("", false, 1)]));
        assert_eq!(p[""], Follow);
        let p = policies(nodes(&[("", false, 2)]));
        assert_eq!(p[""], RemoveAll);
        // A small zone mostly down: no new taints; a large one keeps evicting.
        let p = policies(nodes(&[
            ("a", true, 2),
            ("a", false, 3),
            ("b", true, 30),
            ("b", false, 40),
        ]));
        assert_eq!((p["a"], p["b"]), (NoNewTaints, Follow));
        // One zone fully down, another fine: the down zone is evicted normally.
        let p = policies(nodes(&[("a", false, 3), ("b", true, 3)]));
        assert_eq!((p["a"], p["b"]), (Follow, Follow));
        // Every zone down: remove everywhere.
        let p = policies(nodes(&[("a", false, 3), ("b", false, 1)]));
        assert_eq!((p["a"], p["b"]), (RemoveAll, RemoveAll));
    }

    #[test]
    fn zones_from_labels() {
        use std::collections::BTreeMap;
        assert_eq!(zone_of(None), "");
        let l = BTreeMap::from([(ZONE_LABEL.to_string(), "z1".to_string())]);
        assert_eq!(zone_of(Some(&l)), ":\0:z1");
    }
}
