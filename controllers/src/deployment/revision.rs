//! Revisions: which ReplicaSet is the Deployment's current one, the revision numbers and
//! annotations that `kubectl rollout history/undo` read, and the cleanup of old sets past
//! `revisionHistoryLimit` (Kubernetes' `deployment/util` and `cleanupDeployment`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::hash::equal_ignore_hash;
use super::rolling::max_surge;
use super::sets::{self, desired};

/// Revision of a ReplicaSet, and (on the Deployment) of its newest one.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had before a rollback made it current again.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the set was last sized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` of the Deployment when the set was last sized.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// kubectl's client-side apply record: belongs to the Deployment only.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The `extensions/v1beta1` rollback request annotation.
const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";

/// Longest `revision-history` value kept, in characters (Kubernetes' default).
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations never copied onto its ReplicaSets.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | DEPRECATED_ROLLBACK_TO
    )
}

/// The revision of a ReplicaSet: 0 without the annotation, `None` when it is not a number.
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match sets::annotation(rs, REVISION) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// Highest revision among `rss` (unparsable ones ignored).
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().filter_map(revision).max().unwrap_or(0)
}

/// The ReplicaSet running the Deployment's current template: the oldest one whose template
/// equals it apart from the hash label (`FindNewReplicaSet`).
pub fn find_new<'a>(d: &Deployment, rss: &[&'a ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = &d.spec.as_ref()?.template;
    let mut rss = rss.to_vec();
    rss.sort_by(|a, b| sets::by_creation(a, b));
    rss.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, template))
    })
}

/// Copies the Deployment's annotations onto the set, except the ones that belong to either
/// alone; returns whether anything changed.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Sets `desired-replicas` and `max-replicas`; returns whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// Whether `desired-replicas`/`max-replicas` differ from the given values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    sets::annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || sets::annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Brings the new set's annotations up to date (`SetNewReplicaSetAnnotations`): the
/// Deployment's own annotations, the revision raised to `new_revision` if lower (a rollback
/// making an old set current again records its former revision in `revision-history`), and
/// for a set about to be created the replica annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = a.get(REVISION).cloned();
    let old_rev = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_rev < new_revision {
        a.insert(REVISION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            if history.is_empty() {
                a.insert(REVISION_HISTORY.to_string(), old);
            } else {
                let mut parts: Vec<&str> = history.split(',').collect();
                let mut len = history.len() + old.len() + 1;
                let mut start = 0;
                while len > MAX_REVISION_HISTORY_CHARS && start < parts.len() {
                    len -= parts[start].len() + 1;
                    start += 1;
                }
                if len <= MAX_REVISION_HISTORY_CHARS {
                    parts = parts.split_off(start);
                    parts.push(&old);
                    a.insert(REVISION_HISTORY.to_string(), parts.join(","));
                }
            }
        }
    }
    if !exists {
        let n = desired(d);
        changed |= set_replicas_annotations(rs, n, n + max_surge(d));
    }
    changed
}

/// Sets the Deployment's revision annotation; returns whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let a = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if a.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION.to_string(), revision.to_string());
    true
}

/// Old sets to delete to honour `revisionHistoryLimit` (`cleanupDeployment`): the oldest
/// revisions beyond the limit among the old sets not being deleted, skipping any that still
/// want or have pods or whose latest spec the ReplicaSet controller has not seen.
pub fn history_to_delete(d: &Deployment, old: &[&ReplicaSet]) -> Vec<String> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
        return Vec::new();
    };
    let mut alive: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = alive.len() as i64 - i64::from(limit);
    if excess <= 0 {
        return Vec::new();
    }
    alive.sort_by(|a, b| match (revision(a), revision(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        _ => sets::by_creation(a, b),
    });
    alive
        .into_iter()
        .take(excess as usize)
        .filter(|rs| {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            sets::actual(rs) == 0
                && sets::replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= observed
        })
        .map(|rs| sets::name(rs).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::sets::fixtures::{annotated, deployment, rs};
    use serde_json::json;

    #[test]
    fn revisions_and_new_set_annotations() {
        let mut d = deployment(10, json!(3), json!(2));
        d.metadata.annotations = Some(
            [
                ("team".to_string(), "a".to_string()),
                (LAST_APPLIED.to_string(), "{}".to_string()),
                (REVISION.to_string(), "7".to_string()),
            ]
            .into(),
        );
        let r1 = annotated(rs("a", 1, 0, 0), &[(REVISION, "1")]);
        let r3 = annotated(rs("b", 2, 0, 0), &[(REVISION, "3")]);
        let bad = annotated(rs("c", 3, 0, 0), &[(REVISION, "x")]);
        assert_eq!(max_revision([&r1, &r3, &bad]), 3);
        assert_eq!(revision(&rs("d", 1, 0, 0)), Some(0));

        // A brand-new set: revision, copied annotations, replica annotations.
        let mut new = rs("n", 5, 0, 0);
        assert!(set_new_rs_annotations(&d, &mut new, 4, false));
        let a = new.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "4");
        assert_eq!(a["team"], "a");
        assert_eq!(
            (a[DESIRED_REPLICAS].as_str(), a[MAX_REPLICAS].as_str()),
            ("10", "13")
        );
        assert!(!a.contains_key(LAST_APPLIED) && !a.contains_key(REVISION_HISTORY));
        assert!(
            !set_new_rs_annotations(&d, &mut new, 4, false),
            "idempotent"
        );

        // Rollback: old revision 1 becomes 5, and 1 goes into the history; then 5 -> 8.
        let mut back = r1.clone();
        assert!(set_new_rs_annotations(&d, &mut back, 5, true));
        assert_eq!(sets::annotation(&back, REVISION), Some("5"));
        assert_eq!(sets::annotation(&back, REVISION_HISTORY), Some("1"));
        assert_eq!(
            sets::annotation(&back, DESIRED_REPLICAS),
            None,
            "existing sets keep theirs"
        );
        set_new_rs_annotations(&d, &mut back, 8, true);
        assert_eq!(sets::annotation(&back, REVISION_HISTORY), Some("1,5"));
        // Never lowered.
        assert!(!set_new_rs_annotations(&d, &mut back, 6, true));
        assert_eq!(sets::annotation(&back, REVISION), Some("8"));

        // The history is trimmed from the front to stay within the limit.
        let long: Vec<String> = (0..700).map(|i| format!("{i}")).collect();
        let mut hist = annotated(
            rs("h", 1, 0, 0),
            &[(REVISION, "1000"), (REVISION_HISTORY, &long.join(","))],
        );
        set_new_rs_annotations(&d, &mut hist, 1001, true);
        let h = sets::annotation(&hist, REVISION_HISTORY).unwrap();
        assert!(
            h.len() <= MAX_REVISION_HISTORY_CHARS
                && h.ends_with(",699,1000")
                && !h.starts_with("0,"),
            "{h}"
        );

        assert!(set_deployment_revision(&mut d, "4"));
        assert!(!set_deployment_revision(&mut d, "4"));
    }

    #[test]
    fn new_set_is_the_oldest_with_the_template() {
        let d = deployment(3, json!(1), json!(1));
        // fixtures::rs uses the set's name as its image; the Deployment runs image v1.
        let other = rs("v2", 1, 0, 0);
        let mut hashed = rs("v1", 3, 0, 0);
        hashed
            .spec
            .as_mut()
            .unwrap()
            .template
            .as_mut()
            .unwrap()
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("pod-template-hash".into(), "abc".into());
        let mut younger = rs("v1", 4, 0, 0);
        younger.metadata.name = Some("v1-young".into());
        assert_eq!(
            find_new(&d, &[&younger, &other, &hashed]).map(sets::name),
            Some("v1")
        );
        assert_eq!(find_new(&d, &[&other]), None);
    }

    #[test]
    fn history_cleanup_deletes_the_oldest_idle_revisions_beyond_the_limit() {
        let mut d = deployment(3, json!(1), json!(1));
        d.spec.as_mut().unwrap().revision_history_limit = Some(2);
        let old = |name: &str, rev: &str, replicas: i32| {
            annotated(
                rs(name, 10 - rev.parse::<i64>().unwrap(), replicas, replicas),
                &[(REVISION, rev)],
            )
        };
        let r1 = old("r1", "1", 0);
        let r2 = old("r2", "2", 1); // still running: kept, but counts towards the limit
        let r3 = old("r3", "3", 0);
        let r4 = old("r4", "4", 0);
        let r5 = old("r5", "5", 0);
        // 5 old, limit 2: the 3 lowest revisions are candidates; r2 is busy.
        assert_eq!(
            history_to_delete(&d, &[&r5, &r3, &r1, &r4, &r2]),
            ["r1", "r3"]
        );
        assert!(history_to_delete(&d, &[&r5, &r4]).is_empty());
        let mut deleting = r1.clone();
        deleting.metadata.deletion_timestamp = r1.metadata.creation_timestamp.clone();
        assert_eq!(history_to_delete(&d, &[&deleting, &r3, &r4, &r5]), ["r3"]);
        // Not yet observed by the ReplicaSet controller: kept.
        let mut unobserved = r1.clone();
        unobserved.metadata.generation = Some(2);
        assert_eq!(history_to_delete(&d, &[&unobserved, &r3, &r4, &r5]), ["r3"]);
        d.spec.as_mut().unwrap().revision_history_limit = Some(0);
        assert_eq!(history_to_delete(&d, &[&r1, &r2]), ["r1"]);
        d.spec.as_mut().unwrap().revision_history_limit = None;
        assert!(history_to_delete(&d, &[&r1]).is_empty());
    }
}
