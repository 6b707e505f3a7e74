//! The garbage collector's decisions, as pure functions of what is known.
//!
//! Kubernetes' rules: a dependent lives while at least one of its owners exists; an owner
//! deleted in the foreground waits for its blocking dependents; an orphaning owner first
//! strips itself from its dependents. The side effects (GETs, deletes, patches) live in
//! `collector.rs`; everything it decides is decided here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Finalizer of an owner deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer of an owner deleted with `propagationPolicy: Orphan`.
pub const ORPHAN: &str = "orphan";

/// What is known of one owner, after checking the API server (never from the cache alone:
/// an owner missing from the cache may simply not have been seen yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists with the referenced uid and is not being deleted in the foreground.
    Solid,
    /// Does not exist, or the name now belongs to another uid: the owner is gone.
    Absent,
    /// Being deleted in the foreground: it waits for its dependents to go.
    WaitingForDependents,
    /// Cannot be resolved right now (kind not served, lookup failed): decide later.
    Unknown,
}

/// What to do with a dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It has a live owner (or none at all): leave it.
    Keep,
    /// Some owner could not be resolved and none is known to be alive: look again later.
    Wait,
    /// It has a live owner, but also references to gone or foreground-deleting owners:
    /// remove those references (by owner uid) so they stop counting.
    RemoveOwnerRefs(Vec<String>),
    /// Every owner is gone or waiting for its dependents: delete it. `foreground` when it
    /// must hold on until its own blocking dependents are gone (so the owner waiting on it
    /// keeps waiting for the whole chain).
    Delete {
        /// Propagate the deletion in the foreground.
        foreground: bool,
    },
}

/// Decides a dependent's fate from its owner references and the state of each owner
/// (`states[i]` belongs to `refs[i]`). `has_blocking_dependents`: the dependent itself owns
/// objects that block its deletion.
pub fn decide_dependent(
    refs: &[OwnerReference],
    states: &[OwnerState],
    has_blocking_dependents: bool,
) -> Verdict {
    if refs.is_empty() {
        return Verdict::Keep;
    }
    let with = |want: OwnerState| {
        refs.iter()
            .zip(states)
            .filter(move |(_, s)| **s == want)
            .map(|(r, _)| r)
    };
    let solid = with(OwnerState::Solid).count();
    let unknown = with(OwnerState::Unknown).count();
    let waiting = with(OwnerState::WaitingForDependents).count();
    let stale: Vec<String> = refs
        .iter()
        .zip(states)
        .filter(|(_, s)| matches!(s, OwnerState::Absent | OwnerState::WaitingForDependents))
        .map(|(r, _)| r.uid.clone())
        .collect();
    if solid > 0 {
        return if stale.is_empty() {
            Verdict::Keep
        } else {
            Verdict::RemoveOwnerRefs(stale)
        };
    }
    if unknown > 0 {
        return Verdict::Wait;
    }
    Verdict::Delete {
        foreground: waiting > 0 && has_blocking_dependents,
    }
}

/// One dependent of an owner that is being deleted in the foreground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependentInfo {
    /// The dependent's uid.
    pub uid: String,
    /// Its reference to the owner has `blockOwnerDeletion: true`.
    pub blocking: bool,
    /// It already has a deletionTimestamp.
    pub deleting: bool,
}

/// What to do with an owner carrying the `foregroundDeletion` finalizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForegroundVerdict {
    /// No blocking dependent is left: remove the finalizer so the owner goes.
    RemoveFinalizer,
    /// Check (and so delete) these dependents, which are not yet being deleted.
    CollectDependents(Vec<String>),
    /// Every remaining dependent is already going; wait for them.
    Wait,
}

/// Decides for an owner deleted in the foreground, given its dependents as the graph knows
/// them. Non-blocking dependents are deleted too, but do not hold the owner back.
pub fn decide_foreground(dependents: &[DependentInfo]) -> ForegroundVerdict {
    if !dependents.iter().any(|d| d.blocking) {
        return ForegroundVerdict::RemoveFinalizer;
    }
    let todo: Vec<String> = dependents
        .iter()
        .filter(|d| !d.deleting)
        .map(|d| d.uid.clone())
        .collect();
    if todo.is_empty() {
        ForegroundVerdict::Wait
    } else {
        ForegroundVerdict::CollectDependents(todo)
    }
}

/// The owner references left after removing those of `uids` (`None` when nothing changes).
pub fn without_owners(refs: &[OwnerReference], uids: &[String]) -> Option<Vec<OwnerReference>> {
    let kept: Vec<OwnerReference> = refs
        .iter()
        .filter(|r| !uids.contains(&r.uid))
        .cloned()
        .collect();
    (kept.len() != refs.len()).then_some(kept)
}

/// The state of an owner from a live read: `found` is `(uid, being deleted, finalizers)` of
/// the object now under the owner's name, `None` when there is none.
pub fn owner_state(want_uid: &str, found: Option<(&str, bool, &[String])>) -> OwnerState {
    match found {
        None => OwnerState::Absent,
        Some((uid, _, _)) if uid != want_uid => OwnerState::Absent,
        Some((_, true, finalizers)) if finalizers.iter().any(|f| f == FOREGROUND) => {
            OwnerState::WaitingForDependents
        }
        Some(_) => OwnerState::Solid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OwnerState::*;

    fn refs(n: usize) -> Vec<OwnerReference> {
        (0..n)
            .map(|i| OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: format!("owner{i}"),
                uid: format!("u{i}"),
                ..OwnerReference::default()
            })
            .collect()
    }

    #[test]
    fn dependent_verdicts() {
        let cases: Vec<(&str, Vec<OwnerState>, bool, Verdict)> = vec![
            ("no owners", vec![], false, Verdict::Keep),
            ("live owner", vec![Solid], false, Verdict::Keep),
            (
                "owner gone",
                vec![Absent],
                false,
                Verdict::Delete { foreground: false },
            ),
            (
                "owner gone, own dependents: still background",
                vec![Absent],
                true,
                Verdict::Delete { foreground: false },
            ),
            (
                "one of two owners gone: only the stale reference goes",
                vec![Absent, Solid],
                false,
                Verdict::RemoveOwnerRefs(vec!["u0".into()]),
            ),
            (
                "all owners gone",
                vec![Absent, Absent],
                false,
                Verdict::Delete { foreground: false },
            ),
            (
                "owner deleting in foreground",
                vec![WaitingForDependents],
                false,
                Verdict::Delete { foreground: false },
            ),
            (
                "owner deleting in foreground, blocking dependents of its own",
                vec![WaitingForDependents],
                true,
                Verdict::Delete { foreground: true },
            ),
            (
                "foreground owner and a live one: unblock the waiting owner",
                vec![Solid, WaitingForDependents],
                false,
                Verdict::RemoveOwnerRefs(vec!["u1".into()]),
            ),
            ("owner unresolvable", vec![Unknown], false, Verdict::Wait),
            (
                "unresolvable but another owner is gone: wait, never guess",
                vec![Unknown, Absent],
                false,
                Verdict::Wait,
            ),
            (
                "unresolvable but another owner lives: keep",
                vec![Unknown, Solid],
                false,
                Verdict::Keep,
            ),
        ];
        for (name, states, blocking, want) in cases {
            let r = refs(states.len());
            assert_eq!(decide_dependent(&r, &states, blocking), want, "{name}");
        }
    }

    #[test]
    fn foreground_verdicts() {
        let dep = |uid: &str, blocking, deleting| DependentInfo {
            uid: uid.into(),
            blocking,
            deleting,
        };
        let cases = vec![
            ("no dependents", vec![], ForegroundVerdict::RemoveFinalizer),
            (
                "only non-blocking dependents",
                vec![dep("a", false, false)],
                ForegroundVerdict::RemoveFinalizer,
            ),
            (
                "blocking dependent alive: collect everything not yet going",
                vec![
                    dep("a", true, false),
                    dep("b", false, false),
                    dep("c", true, true),
                ],
                ForegroundVerdict::CollectDependents(vec!["a".into(), "b".into()]),
            ),
            (
                "blocking dependents all going",
                vec![dep("a", true, true)],
                ForegroundVerdict::Wait,
            ),
        ];
        for (name, deps, want) in cases {
            assert_eq!(decide_foreground(&deps), want, "{name}");
        }
    }

    #[test]
    fn owner_states_from_live_reads() {
        let fg = vec![FOREGROUND.to_string()];
        let other = vec!["example.com/x".to_string()];
        type Found<'a> = Option<(&'a str, bool, &'a [String])>;
        let cases: Vec<(&str, Found, OwnerState)> = vec![
            ("not found", None, Absent),
            ("same name, other uid", Some(("u2", false, &[])), Absent),
            ("alive", Some(("u1", false, &[])), Solid),
            (
                "foreground deleting",
                Some(("u1", true, &fg)),
                WaitingForDependents,
            ),
            (
                "deleting for another reason",
                Some(("u1", true, &other)),
                Solid,
            ),
            ("recreated and deleting", Some(("u2", true, &fg)), Absent),
        ];
        for (name, found, want) in cases {
            assert_eq!(owner_state("u1", found), want, "{name}");
        }
    }

    #[test]
    fn removing_owner_references() {
        let r = refs(3);
        let kept = without_owners(&r, &["u1".into()]).unwrap();
        assert_eq!(
            kept.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(),
            ["u0", "u2"]
        );
        assert!(without_owners(&r, &["nope".into()]).is_none());
        assert_eq!(without_owners(&r[..1], &["u0".into()]), Some(vec![]));
    }
}
