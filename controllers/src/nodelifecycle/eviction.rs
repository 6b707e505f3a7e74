//! Taint-based eviction (Kubernetes' NoExecute taint manager): when must a pod on a node with
//! `NoExecute` taints be deleted?
//!
//! A pod that does not tolerate one of them goes now. A pod tolerating all of them stays for
//! the shortest `tolerationSeconds` among the tolerations it uses, counted from the taint's
//! `timeAdded` (so the deadline survives controller restarts); tolerations without
//! `tolerationSeconds` tolerate forever.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::taints::NO_EXECUTE;

/// The fate of one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Stays: no NoExecute taint, or tolerated forever.
    Never,
    /// Delete now.
    Now,
    /// Delete at this time unless the taints go away first.
    At(jiff::Timestamp),
}

/// Kubernetes' `ToleratesTaint`: effect and key must match when the toleration names them;
/// `Exists` matches any value, `Equal` (the default) the same value.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// When a pod with `tolerations` on a node with `taints` must be deleted, at `now`. A
/// NoExecute taint without `timeAdded` counts from `now`; the caller fills in when it first
/// saw such a taint.
pub fn eviction(tolerations: &[Toleration], taints: &[Taint], now: jiff::Timestamp) -> Eviction {
    let mut deadline: Option<jiff::Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return Eviction::Now;
        }
        let Some(seconds) = used.iter().filter_map(|t| t.toleration_seconds).min() else {
            continue;
        };
        let since = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let at = since
            .checked_add(jiff::SignedDuration::from_secs(seconds.max(0)))
            .unwrap_or(since);
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    match deadline {
        None => Eviction::Never,
        Some(at) if at <= now => Eviction::Now,
        Some(at) => Eviction::At(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    fn taint(key: &str, effect: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            time_added: Some(Time(ts(added))),
            value: None,
        }
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn toleration_matching() {
        let t = Taint {
            value: Some("gpu".into()),
            ..taint("dedicated", NO_EXECUTE, 0)
        };
        let cases = [
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "gpu"}),
                true,
            ),
            (
                json!({"key": "dedicated", "value": "gpu", "effect": "NoExecute"}),
                true,
            ),
            (json!({"key": "dedicated", "value": "cpu"}), false),
            (json!({"key": "dedicated", "operator": "Exists"}), true),
            (
                json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}),
                false,
            ),
            (json!({"operator": "Exists"}), true),
            (json!({"key": "other", "operator": "Exists"}), false),
        ];
        for (t_json, want) in cases {
            assert_eq!(tolerates(&tol(t_json.clone()), &t), want, "{t_json}");
        }
    }

    #[test]
    fn when_pods_are_evicted() {
        let unreachable = taint("node.kubernetes.io/unreachable", NO_EXECUTE, 100);
        let no_schedule = taint("node.kubernetes.io/unreachable", "NoSchedule", 100);
        let user = taint("maintenance", NO_EXECUTE, 150);
        let default_300 = tol(
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 300}),
        );
        let short = tol(
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                               "effect": "NoExecute", "tolerationSeconds": 3}),
        );
        let forever = tol(json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists"}));
        let all_maintenance =
            tol(json!({"key": "maintenance", "operator": "Exists", "tolerationSeconds": 10}));
        let now = ts(200);
        let cases: Vec<(&str, Vec<Toleration>, Vec<Taint>, Eviction)> = vec![
            ("no taints", vec![], vec![], Eviction::Never),
            (
                "NoSchedule only",
                vec![],
                vec![no_schedule.clone()],
                Eviction::Never,
            ),
            (
                "not tolerated",
                vec![],
                vec![unreachable.clone()],
                Eviction::Now,
            ),
            (
                "tolerated 300 s from timeAdded",
                vec![default_300.clone()],
                vec![unreachable.clone()],
                Eviction::At(ts(400)),
            ),
            (
                "tolerated 3 s: overdue",
                vec![short.clone()],
                vec![unreachable.clone()],
                Eviction::Now,
            ),
            (
                "forever",
                vec![forever.clone()],
                vec![unreachable.clone()],
                Eviction::Never,
            ),
            (
                "shortest used toleration wins",
                vec![default_300.clone(), short.clone()],
                vec![taint("node.kubernetes.io/unreachable", NO_EXECUTE, 199)],
                Eviction::At(ts(202)),
            ),
            (
                "one of two taints untolerated",
                vec![default_300.clone()],
                vec![unreachable.clone(), user.clone()],
                Eviction::Now,
            ),
            (
                "earliest deadline of two taints",
                vec![default_300.clone(), all_maintenance.clone()],
                vec![unreachable.clone(), user.clone()],
                Eviction::At(ts(160)).min_now(now),
            ),
            (
                "forever on one, timed on the other",
                vec![forever.clone(), all_maintenance.clone()],
                vec![unreachable.clone(), taint("maintenance", NO_EXECUTE, 195)],
                Eviction::At(ts(205)),
            ),
            (
                "missing timeAdded counts from now",
                vec![default_300.clone()],
                vec![Taint {
                    time_added: None,
                    ..unreachable.clone()
                }],
                Eviction::At(ts(500)),
            ),
        ];
        for (what, tolerations, taints, want) in cases {
            assert_eq!(eviction(&tolerations, &taints, now), want, "{what}");
        }
    }

    impl Eviction {
        /// A deadline already past is "now" (keeps the table readable).
        fn min_now(self, now: jiff::Timestamp) -> Eviction {
            match self {
                Eviction::At(t) if t <= now => Eviction::Now,
                e => e,
            }
        }
    }
}
