//! Which taints a node's conditions call for (Kubernetes' taint-based eviction and
//! TaintNodesByCondition), and how to change a node's taint list to match.
//!
//! `NoExecute` taints follow the Ready condition: `False` → `node.kubernetes.io/not-ready`,
//! `Unknown` → `node.kubernetes.io/unreachable`, `True` → neither. `NoSchedule` taints keep new
//! pods off nodes with a problem: the same two for Ready, plus memory/disk/PID pressure,
//! network unavailable and `spec.unschedulable`. Only these controller-owned taints are ever
//! added or removed; anything else on the node is left as it is.

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::disruption::NoExecutePolicy;

/// Taint of a node whose kubelet stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node reporting itself not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `NoExecute`: running pods that do not tolerate the taint are evicted.
pub const NO_EXECUTE: &str = "NoExecute";
/// `NoSchedule`: new pods that do not tolerate the taint are not scheduled.
pub const NO_SCHEDULE: &str = "NoSchedule";

/// (condition type, status, taint key) of TaintNodesByCondition.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
];
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The status of a node condition, if the node has it.
pub fn condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// Whether the controller owns a taint with this key and effect.
fn is_managed(key: &str, effect: &str) -> bool {
    match effect {
        NO_EXECUTE => key == NOT_READY || key == UNREACHABLE,
        NO_SCHEDULE => key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == key),
        _ => false,
    }
}

/// The (key, effect) of every controller-owned taint the node's state calls for.
pub fn wanted_taints(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match condition_status(node, "Ready") {
        Some("False") => out.push((NOT_READY, NO_EXECUTE)),
        Some("Unknown") => out.push((UNREACHABLE, NO_EXECUTE)),
        _ => {}
    }
    for (type_, status, key) in CONDITION_TAINTS {
        if condition_status(node, type_) == Some(status) {
            out.push((key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push((UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

/// `wanted` as a zone's disruption policy allows it: in a partially disrupted small zone a
/// `NoExecute` taint stays only if the node already has it; when every zone is down none is
/// wanted.
pub fn under_policy<'a>(
    wanted: Vec<(&'a str, &'a str)>,
    current: &[Taint],
    policy: NoExecutePolicy,
) -> Vec<(&'a str, &'a str)> {
    wanted
        .into_iter()
        .filter(|(key, effect)| {
            *effect != NO_EXECUTE
                || match policy {
                    NoExecutePolicy::Follow => true,
                    NoExecutePolicy::NoNewTaints => {
                        current.iter().any(|t| t.key == *key && t.effect == *effect)
                    }
                    NoExecutePolicy::RemoveAll => false,
                }
        })
        .collect()
}

/// The node's taint list with the controller-owned taints matching `wanted`: foreign taints
/// and wanted ones already present are kept as they are (with their `timeAdded`), missing ones
/// are added with `timeAdded: now`, owned ones no longer wanted are dropped. `None` when
/// nothing changes.
pub fn reconcile_taints(
    current: &[Taint],
    wanted: &[(&str, &str)],
    now: &Time,
) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !is_managed(&t.key, &t.effect) || wanted.contains(&(t.key.as_str(), t.effect.as_str()))
        })
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !out.iter().any(|t| t.key == *key && t.effect == *effect) {
            out.push(Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                time_added: Some(now.clone()),
                value: None,
            });
        }
    }
    (out != current).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(conditions: serde_json::Value, unschedulable: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn taint(key: &str, effect: &str, at: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            time_added: Some(Time(jiff::Timestamp::from_second(at).unwrap())),
            value: None,
        }
    }

    #[test]
    fn conditions_call_for_taints() {
        let cases = [
            (json!([{"type": "Ready", "status": "True"}]), false, vec![]),
            (
                json!([{"type": "Ready", "status": "Unknown"}]),
                false,
                vec![(UNREACHABLE, NO_EXECUTE), (UNREACHABLE, NO_SCHEDULE)],
            ),
            (
                json!([{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "True"}]),
                false,
                vec![
                    (NOT_READY, NO_EXECUTE),
                    (NOT_READY, NO_SCHEDULE),
                    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
                ],
            ),
            (
                json!([{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}]),
                true,
                vec![(UNSCHEDULABLE, NO_SCHEDULE)],
            ),
            (json!([]), false, vec![]),
        ];
        for (conds, unschedulable, want) in cases {
            assert_eq!(
                wanted_taints(&node(conds.clone(), unschedulable)),
                want,
                "{conds}"
            );
        }
    }

    #[test]
    fn disruption_policies_hold_back_no_execute_taints() {
        let wanted = vec![(UNREACHABLE, NO_EXECUTE), (UNREACHABLE, NO_SCHEDULE)];
        let has = [taint(UNREACHABLE, NO_EXECUTE, 1)];
        let cases = [
            (NoExecutePolicy::Follow, &[][..], wanted.clone()),
            (
                NoExecutePolicy::NoNewTaints,
                &[][..],
                vec![(UNREACHABLE, NO_SCHEDULE)],
            ),
            (NoExecutePolicy::NoNewTaints, &has[..], wanted.clone()),
            (
                NoExecutePolicy::RemoveAll,
                &has[..],
                vec![(UNREACHABLE, NO_SCHEDULE)],
            ),
        ];
        for (policy, current, want) in cases {
            assert_eq!(
                under_policy(wanted.clone(), current, policy),
                want,
                "{policy:?}"
            );
        }
    }

    #[test]
    fn taint_lists_change_only_where_owned() {
        let now = Time(jiff::Timestamp::from_second(500).unwrap());
        let user = taint("dedicated", NO_SCHEDULE, 1);
        let user_no_exec = taint(UNREACHABLE, "PreferNoSchedule", 1);
        /// (taints on the node, taints wanted, new taint list or None for no change)
        type Case = (
            Vec<Taint>,
            Vec<(&'static str, &'static str)>,
            Option<Vec<Taint>>,
        );
        let cases: Vec<Case> = vec![
            // Node goes unreachable: both taints added, stamped now; foreign ones kept.
            (
                vec![user.clone(), user_no_exec.clone()],
                vec![(UNREACHABLE, NO_EXECUTE), (UNREACHABLE, NO_SCHEDULE)],
                Some(vec![
                    user.clone(),
                    user_no_exec.clone(),
                    taint(UNREACHABLE, NO_EXECUTE, 500),
                    taint(UNREACHABLE, NO_SCHEDULE, 500),
                ]),
            ),
            // Still unreachable: no change, timeAdded kept.
            (
                vec![taint(UNREACHABLE, NO_EXECUTE, 100), user.clone()],
                vec![(UNREACHABLE, NO_EXECUTE)],
                None,
            ),
            // Unreachable → not ready: swapped.
            (
                vec![taint(UNREACHABLE, NO_EXECUTE, 100)],
                vec![(NOT_READY, NO_EXECUTE)],
                Some(vec![taint(NOT_READY, NO_EXECUTE, 500)]),
            ),
            // Back to ready: owned taints removed, the user's stay.
            (
                vec![
                    taint(UNREACHABLE, NO_EXECUTE, 100),
                    user.clone(),
                    taint(UNREACHABLE, NO_SCHEDULE, 100),
                ],
                vec![],
                Some(vec![user.clone()]),
            ),
            (vec![], vec![], None),
        ];
        for (current, wanted, want) in cases {
            assert_eq!(
                reconcile_taints(&current, &wanted, &now),
                want,
                "{current:?} → {wanted:?}"
            );
        }
    }
}
