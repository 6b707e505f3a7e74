//! RollingUpdate arithmetic: how far above the desired count the Deployment may surge, how far
//! below it availability may drop, how much the new ReplicaSet grows and how much the old
//! ones shrink in one step (Kubernetes' `rolling.go` and the fencepost helpers of
//! `deployment/util`).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::sets::{self, available, desired, replicas};

/// An int-or-percent resolved against `total`: percents round up for surge and down for
/// unavailability (`GetScaledValueFromIntOrPercent`). `None` for a string that is not a
/// percentage (the API rejects those).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let product = pct * i64::from(total);
            let v = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(v).ok()
        }
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas (`ResolveFenceposts`): both resolving
/// to 0 (a small percentage rounded down) makes maxUnavailable 1, so the rollout can move.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true).unwrap_or(0);
    let mut unavailable =
        scaled_value(max_unavailable.unwrap_or(&zero), desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn fenceposts(d: &Deployment) -> Option<(i32, i32)> {
    if sets::is_recreate(d) {
        return None;
    }
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    Some(resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        desired(d),
    ))
}

/// Pods the Deployment may run above `spec.replicas` (`MaxSurge`); 0 for Recreate.
pub fn max_surge(d: &Deployment) -> i32 {
    fenceposts(d).map(|(s, _)| s).unwrap_or(0)
}

/// Pods that may be unavailable below `spec.replicas` (`MaxUnavailable`): 0 for Recreate or
/// zero replicas, never more than `spec.replicas`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let want = desired(d);
    if want == 0 {
        return 0;
    }
    fenceposts(d).map(|(_, u)| u.min(want)).unwrap_or(0)
}

/// The size the new ReplicaSet may grow to now (`NewRSNewReplicas`): RollingUpdate fills the
/// room up to `replicas + maxSurge` across all sets, never past `replicas`; Recreate jumps to
/// `replicas`.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    let want = desired(d);
    if sets::is_recreate(d) {
        return want;
    }
    let current = sets::total_replicas(all.iter().copied());
    let max_total = want + max_surge(d);
    if current >= max_total {
        return replicas(new);
    }
    let up = (max_total - current).min(want - replicas(new));
    replicas(new) + up
}

/// How many old pods may go at most in this step (`reconcileOldReplicaSets`): everything
/// above `replicas - maxUnavailable`, minus the new set's pods that are not available yet
/// (they may never become so). Zero or less means no scale-down.
pub fn max_scaled_down(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    let all_pods = sets::total_replicas(all.iter().copied());
    let min_available = desired(d) - max_unavailable(d);
    let new_unavailable = replicas(new) - available(new);
    all_pods - min_available - new_unavailable
}

/// Scale-downs of old sets' unhealthy (not available) replicas, oldest set first, at most
/// `max_cleanup` in total (`cleanupUnhealthyReplicas`): removing them costs no
/// availability and unblocks a rollout stuck on them. Returns `(name, new size)` per set.
pub fn cleanup_unhealthy(old: &[&ReplicaSet], max_cleanup: i32) -> Vec<(String, i32)> {
    let mut old: Vec<&ReplicaSet> = old.to_vec();
    old.sort_by(|a, b| sets::by_creation(a, b));
    let mut total = 0;
    let mut out = Vec::new();
    for rs in old {
        if total >= max_cleanup {
            break;
        }
        let (n, avail) = (replicas(rs), available(rs));
        if n == 0 || n == avail {
            continue;
        }
        let down = (max_cleanup - total).min(n - avail);
        out.push((sets::name(rs).to_string(), n - down));
        total += down;
    }
    out
}

/// Scale-downs of old sets that keep availability at or above `replicas - maxUnavailable`,
/// oldest set first (`scaleDownOldReplicaSetsForRollingUpdate`). `all` carries the
/// available counts, `old` the sets to shrink.
pub fn scale_down_old(
    d: &Deployment,
    all: &[&ReplicaSet],
    old: &[&ReplicaSet],
) -> Vec<(String, i32)> {
    let min_available = desired(d) - max_unavailable(d);
    let available_pods = sets::total_available(all.iter().copied());
    if available_pods <= min_available {
        return Vec::new();
    }
    let mut old: Vec<&ReplicaSet> = old.to_vec();
    old.sort_by(|a, b| sets::by_creation(a, b));
    let budget = available_pods - min_available;
    let mut total = 0;
    let mut out = Vec::new();
    for rs in old {
        if total >= budget {
            break;
        }
        let n = replicas(rs);
        if n == 0 {
            continue;
        }
        let down = n.min(budget - total);
        out.push((sets::name(rs).to_string(), n - down));
        total += down;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::sets::fixtures::{deployment, rs};
    use serde_json::json;

    fn ios(v: serde_json::Value) -> IntOrString {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fenceposts_resolve_percents_with_kubernetes_rounding() {
        // (surge, unavailable, replicas) -> (surge, unavailable)
        let cases = [
            (json!("25%"), json!("25%"), 10, (3, 2)),
            (json!("25%"), json!("25%"), 4, (1, 1)),
            (json!("25%"), json!("25%"), 1, (1, 0)),
            (json!("25%"), json!("25%"), 0, (0, 1)),
            (json!(3), json!(2), 10, (3, 2)),
            (json!("0%"), json!("10%"), 5, (0, 1)),
            (json!(0), json!("1%"), 10, (0, 1)),
            (json!("50%"), json!(0), 3, (2, 0)),
            (json!("100%"), json!("100%"), 7, (7, 7)),
            (json!("33%"), json!("33%"), 10, (4, 3)),
        ];
        for (s, u, n, want) in cases {
            let got = resolve_fenceposts(Some(&ios(s.clone())), Some(&ios(u.clone())), n);
            assert_eq!(got, want, "surge {s} unavailable {u} replicas {n}");
        }
        assert_eq!(resolve_fenceposts(None, None, 5), (0, 1));
        assert_eq!(scaled_value(&ios(json!("x")), 10, true), None);
    }

    #[test]
    fn max_unavailable_is_capped_and_zero_without_replicas() {
        assert_eq!(max_unavailable(&deployment(3, json!(0), json!(5))), 3);
        assert_eq!(max_unavailable(&deployment(0, json!(1), json!(1))), 0);
        assert_eq!(max_surge(&deployment(10, json!("25%"), json!("25%"))), 3);
        let mut recreate = deployment(10, json!(1), json!(1));
        recreate.spec.as_mut().unwrap().strategy =
            Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
        assert_eq!(new_rs_new_replicas(&recreate, &[], &rs("n", 1, 0, 0)), 10);
    }

    #[test]
    fn new_replica_set_scale_up() {
        // (replicas, surge, old sizes, new size) -> new size
        let cases = [
            (10, 3, vec![10], 0, 3),
            (10, 3, vec![8], 3, 5),
            (10, 3, vec![10], 3, 3), // at 13 already
            (10, 0, vec![9], 0, 1),
            (10, 3, vec![0], 8, 10), // never past replicas
            (10, 3, vec![4, 4], 2, 5),
            (5, 2, vec![], 5, 5),
        ];
        for (want, surge, old, new, expect) in cases {
            let d = deployment(want, json!(surge), json!(1));
            let olds: Vec<ReplicaSet> = old
                .iter()
                .enumerate()
                .map(|(i, n)| rs(&format!("o{i}"), i as i64, *n, *n))
                .collect();
            let new_rs = rs("new", 100, new, new);
            let mut all: Vec<&ReplicaSet> = olds.iter().collect();
            all.push(&new_rs);
            assert_eq!(
                new_rs_new_replicas(&d, &all, &new_rs),
                expect,
                "{want} {surge} {old:?} {new}"
            );
        }
    }

    #[test]
    fn old_replica_sets_scale_down() {
        // 10 replicas, surge 3, unavailable 2: old 10 available, new 3 created, none ready.
        let d = deployment(10, json!(3), json!(2));
        let old = rs("old", 1, 10, 10);
        let new = rs("new", 2, 3, 0);
        let all = [&old, &new];
        // 13 pods - 8 min available - 3 unavailable new = 2.
        assert_eq!(max_scaled_down(&d, &all, &new), 2);
        assert_eq!(cleanup_unhealthy(&[&old], 2), vec![]);
        assert_eq!(
            scale_down_old(&d, &all, &[&old]),
            vec![("old".to_string(), 8)]
        );

        // New pods became available: 13 available, may drop to 8.
        let new = rs("new", 2, 3, 3);
        let all = [&old, &new];
        assert_eq!(max_scaled_down(&d, &all, &new), 5);
        assert_eq!(
            scale_down_old(&d, &all, &[&old]),
            vec![("old".to_string(), 5)]
        );

        // Availability at the floor: nothing.
        let old = rs("old", 1, 8, 5);
        let new = rs("new", 2, 5, 3);
        let all = [&old, &new];
        assert_eq!(scale_down_old(&d, &all, &[&old]), vec![]);
        // ...but unhealthy old pods go first, oldest set first, within the budget.
        let older = rs("older", 0, 4, 1);
        assert_eq!(
            cleanup_unhealthy(&[&old, &older], 4),
            vec![("older".to_string(), 1), ("old".to_string(), 7)]
        );
        assert_eq!(
            cleanup_unhealthy(&[&old, &older], 2),
            vec![("older".to_string(), 2)]
        );

        // Several old sets: oldest shrinks first, then the next.
        let a = rs("a", 1, 2, 2);
        let b = rs("b", 2, 6, 6);
        let new = rs("new", 3, 5, 5);
        let all = [&a, &b, &new];
        assert_eq!(
            scale_down_old(&d, &all, &[&b, &a]),
            vec![("a".to_string(), 0), ("b".to_string(), 3)]
        );
    }
}
