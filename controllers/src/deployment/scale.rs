//! Scaling a Deployment while several ReplicaSets run (Kubernetes' `scale` in `sync.go` and
//! `GetProportion`): a Deployment resized mid-rollout grows or shrinks every active set in
//! proportion to its share, so the rollout's shape is kept and no set is starved.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::revision::{DESIRED_REPLICAS, MAX_REPLICAS};
use super::rolling::max_surge;
use super::sets::{self, available, desired, replicas};

/// The only set worth resizing directly, if there is one: the single active set, or when
/// none is active the new set or else the newest old one (`FindActiveOrLatest`). `None` when
/// several are active (then proportional scaling applies).
pub fn find_active_or_latest<'a>(
    new: Option<&'a ReplicaSet>,
    old: &[&'a ReplicaSet],
) -> Option<&'a ReplicaSet> {
    if new.is_none() && old.is_empty() {
        return None;
    }
    let mut old = old.to_vec();
    old.sort_by(|a, b| sets::by_creation(b, a));
    let active: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .chain(new)
        .filter(|rs| sets::is_active(rs))
        .collect();
    match active.len() {
        0 => new.or_else(|| old.first().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    sets::annotation(rs, key)?.parse().ok()
}

/// Whether the new set alone carries the whole Deployment, fully available
/// (`IsSaturated`): then the old sets can simply go to 0.
pub fn is_saturated(d: &Deployment, new: Option<&ReplicaSet>) -> bool {
    let Some(rs) = new else {
        return false;
    };
    let Some(want) = int_annotation(rs, DESIRED_REPLICAS) else {
        return false;
    };
    let n = desired(d);
    replicas(rs) == n && want == n && available(rs) == n
}

/// The change of `rs` if the Deployment's total (`replicas + maxSurge`) were spread in the
/// proportion the set had of the total it was sized for (its `max-replicas` annotation, else
/// the Deployment's `status.replicas`), rounded half up (`getReplicaSetFraction`).
pub fn rs_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let want = desired(d);
    if want == 0 {
        return -replicas(rs);
    }
    let total = i64::from(want + max_surge(d));
    let sized_for = int_annotation(rs, MAX_REPLICAS)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    let n = i64::from(replicas(rs));
    if sized_for == 0 {
        // Kubernetes divides by zero into +Inf and saturates; nothing sensible to add.
        return 0;
    }
    // floor(n * total / sized_for + 0.5), in integers.
    let num = 2 * n * total + i64::from(sized_for);
    let den = 2 * i64::from(sized_for);
    let new_size = num.div_euclid(den);
    i32::try_from(new_size - n).unwrap_or(0)
}

/// What `rs` gets of `to_add` (negative: to remove) given `added` so far (`GetProportion`):
/// its fraction, but never past what is left.
pub fn get_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// New sizes of the active sets for a resized RollingUpdate Deployment: the difference
/// between `replicas + maxSurge` and what the sets hold is spread in proportion, and the
/// rounding leftover goes to the biggest set (newest on ties when growing, oldest when
/// shrinking). Returns `(name, size)` for every active set, in that order.
pub fn proportional_sizes(d: &Deployment, active: &[&ReplicaSet]) -> Vec<(String, i32)> {
    let mut rss = active.to_vec();
    let current = sets::total_replicas(rss.iter().copied());
    let allowed = if desired(d) > 0 {
        desired(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    if to_add > 0 {
        rss.sort_by(|a, b| sets::by_size_newer(a, b));
    } else if to_add < 0 {
        rss.sort_by(|a, b| sets::by_size_older(a, b));
    }
    let mut added = 0;
    let mut sizes: Vec<(String, i32)> = rss
        .iter()
        .map(|rs| {
            let p = if to_add != 0 {
                get_proportion(rs, d, to_add, added)
            } else {
                0
            };
            added += p;
            (sets::name(rs).to_string(), replicas(rs) + p)
        })
        .collect();
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::sets::fixtures::{annotated, deployment, rs};
    use serde_json::json;

    fn sized(name: &str, created: i64, n: i32, max: i32) -> ReplicaSet {
        annotated(rs(name, created, n, n), &[(MAX_REPLICAS, &max.to_string())])
    }

    #[test]
    fn proportional_scaling_spreads_the_change_and_gives_leftovers_to_the_biggest() {
        // (replicas, surge, [(name, size, max-replicas annotation)]) -> sizes in apply order
        type Case = (
            i32,
            i32,
            Vec<(&'static str, i32, i32)>,
            Vec<(&'static str, i32)>,
        );
        let cases: Vec<Case> = vec![
            // Kubernetes' doc example: 10 -> 15 replicas, surge 3, mid-rollout 8 old + 5 new
            // (13 = 10 + 3). Allowed 18, +5: 8*18/13 = 11.08 -> +3, 5*18/13 = 6.9 -> +2.
            (
                15,
                3,
                vec![("old", 8, 13), ("new", 5, 13)],
                vec![("old", 11), ("new", 7)],
            ),
            // Scale down 10 -> 5 (allowed 8): -5; 8*8/13 = 4.9 -> -3, 5*8/13 = 3.1 -> -2.
            (
                5,
                3,
                vec![("old", 8, 13), ("new", 5, 13)],
                vec![("old", 5), ("new", 3)],
            ),
            // Three sets, rounding leaves one over: it goes to the biggest (newest on a tie).
            (
                20,
                0,
                vec![("a", 3, 9), ("b", 3, 9), ("c", 3, 9)],
                vec![("c", 7), ("b", 7), ("a", 6)],
            ),
            // Shrinking three equal sets to 4: -5; each -2 (3*4/9 = 1.33 -> 1), the newest
            // only -1 as that is all that is left.
            (
                4,
                0,
                vec![("a", 3, 9), ("b", 3, 9), ("c", 3, 9)],
                vec![("a", 1), ("b", 1), ("c", 2)],
            ),
            // Leftover from rounding: 3 sets of 1 (sized for 3) grow to 4: +1 each would be
            // 4*1/3 = 1.33 -> 1, so +0 each; the biggest-newest takes the whole +1.
            (
                4,
                0,
                vec![("a", 1, 3), ("b", 1, 3), ("c", 1, 3)],
                vec![("c", 2), ("b", 1), ("a", 1)],
            ),
            // Unchanged total: sizes stay.
            (
                10,
                0,
                vec![("a", 6, 10), ("b", 4, 10)],
                vec![("a", 6), ("b", 4)],
            ),
            // No annotation: the Deployment's status.replicas (set below to 10) is the base.
            (
                20,
                0,
                vec![("a", 6, 0), ("b", 4, 0)],
                vec![("a", 12), ("b", 8)],
            ),
            // Scale to zero.
            (
                0,
                0,
                vec![("a", 6, 10), ("b", 4, 10)],
                vec![("a", 0), ("b", 0)],
            ),
        ];
        for (want, surge, rss, expect) in cases {
            let mut d = deployment(want, json!(surge), json!(1));
            d.status = Some(serde_json::from_value(json!({"replicas": 10})).unwrap());
            let objs: Vec<ReplicaSet> = rss
                .iter()
                .enumerate()
                .map(|(i, (n, size, max))| {
                    if *max == 0 {
                        rs(n, i as i64, *size, *size)
                    } else {
                        sized(n, i as i64, *size, *max)
                    }
                })
                .collect();
            let refs: Vec<&ReplicaSet> = objs.iter().collect();
            let got = proportional_sizes(&d, &refs);
            let got: Vec<(&str, i32)> = got.iter().map(|(n, s)| (n.as_str(), *s)).collect();
            assert_eq!(got, expect, "replicas {want} sets {rss:?}");
        }
    }

    #[test]
    fn active_or_latest_and_saturation() {
        let old1 = rs("old1", 1, 0, 0);
        let old2 = rs("old2", 2, 0, 0);
        let new = rs("new", 3, 0, 0);
        assert_eq!(
            find_active_or_latest(Some(&new), &[&old1, &old2]).map(sets::name),
            Some("new")
        );
        assert_eq!(
            find_active_or_latest(None, &[&old1, &old2]).map(sets::name),
            Some("old2")
        );
        let active = rs("old1", 1, 3, 3);
        assert_eq!(
            find_active_or_latest(Some(&new), &[&active, &old2]).map(sets::name),
            Some("old1")
        );
        let new_active = rs("new", 3, 2, 2);
        assert_eq!(find_active_or_latest(Some(&new_active), &[&active]), None);
        assert_eq!(find_active_or_latest(None, &[]), None);

        let d = deployment(3, json!(1), json!(1));
        let full = annotated(rs("new", 3, 3, 3), &[(DESIRED_REPLICAS, "3")]);
        assert!(is_saturated(&d, Some(&full)));
        let unavailable = annotated(rs("new", 3, 3, 2), &[(DESIRED_REPLICAS, "3")]);
        assert!(!is_saturated(&d, Some(&unavailable)));
        assert!(
            !is_saturated(&d, Some(&rs("new", 3, 3, 3))),
            "no desired annotation"
        );
        assert!(!is_saturated(&d, None));
    }
}
