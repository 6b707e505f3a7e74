//! Deployment conditions and the progress deadline (Kubernetes' `progress.go` and the
//! condition helpers of `deployment/util`): `Progressing` tells whether the rollout moves,
//! finished, is paused or ran past `progressDeadlineSeconds`; `Available` whether enough pods
//! serve; `ReplicaFailure` carries a set's failure to create pods.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::sets::{self, desired};
use super::status::calculate_status;

/// Condition types.
pub const PROGRESSING: &str = "Progressing";
/// The Deployment has at least `replicas - maxUnavailable` available pods.
pub const AVAILABLE: &str = "Available";
/// A ReplicaSet could not create or delete pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Progressing reasons.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// An existing set already runs the current template.
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// The rollout made progress.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// The rollout completed.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// No progress within `progressDeadlineSeconds`.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// `spec.paused` was set.
pub const PAUSED: &str = "DeploymentPaused";
/// `spec.paused` was cleared.
pub const RESUMED: &str = "DeploymentResumed";
/// Creating the new set failed.
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
/// Available reasons.
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Too few available pods.
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// A condition stamped `now` for both its update and transition times.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if present.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Sets a condition (`SetDeploymentCondition`): nothing changes when status and reason are
/// already the same; an unchanged status keeps its transition time; the condition moves to
/// the end of the list.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

/// Removes the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// `progressDeadlineSeconds`, unless unset or "never" (`MaxInt32`).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()?
        .progress_deadline_seconds
        .filter(|s| *s != i32::MAX)
}

/// Every pod updated, available and no old one left, for the current generation
/// (`DeploymentComplete`).
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let n = desired(d);
    status.updated_replicas.unwrap_or(0) == n
        && status.replicas.unwrap_or(0) == n
        && status.available_replicas.unwrap_or(0) == n
        && status.observed_generation.unwrap_or(0) >= sets::generation(d)
}

/// Whether `new` shows progress over the Deployment's current status
/// (`DeploymentProgressing`): more updated, ready or available pods, or fewer old ones.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| v.unwrap_or(0);
    let old_old = g(old.replicas) - g(old.updated_replicas);
    let new_old = g(new.replicas) - g(new.updated_replicas);
    g(new.updated_replicas) > g(old.updated_replicas)
        || new_old < old_old
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

/// Whether the rollout has gone `progressDeadlineSeconds` without progress since the
/// Progressing condition was last updated (`DeploymentTimedOut`).
pub fn deployment_timed_out(
    d: &Deployment,
    status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(cond) = get_condition(status, PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => cond.last_update_time.as_ref().is_some_and(|from| {
            from.0 + jiff::SignedDuration::from_secs(i64::from(deadline)) < now
        }),
    }
}

/// Records pausing and resuming as `Progressing=Unknown` (`checkPausedConditions`), so time
/// spent paused never counts against the deadline. A timed-out rollout keeps saying so.
/// Returns whether the status changed.
pub fn check_paused_conditions(d: &mut Deployment, now: jiff::Timestamp) -> bool {
    if progress_deadline(d).is_none() {
        return false;
    }
    let paused = sets::is_paused(d);
    let status = d.status.get_or_insert_with(Default::default);
    let reason = get_condition(status, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT) {
        return false;
    }
    let paused_cond = reason.as_deref() == Some(PAUSED);
    let cond = if paused && !paused_cond {
        new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now)
    } else if !paused && paused_cond {
        new_condition(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed",
            now,
        )
    } else {
        return false;
    };
    set_condition(status, cond);
    true
}

/// The ReplicaFailure conditions to carry: the new set's, else any old set's.
fn replica_failures(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Vec<DeploymentCondition> {
    let of = |rs: &ReplicaSet| -> Vec<DeploymentCondition> {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
            .collect()
    };
    let from_new = new.map(of).unwrap_or_default();
    if !from_new.is_empty() {
        return from_new;
    }
    all.iter().flat_map(|rs| of(rs)).collect()
}

/// The status a rollout step ends with (`syncRolloutStatus`): the counts, then the
/// Progressing condition — complete, progressing (its update time refreshed), or timed out —
/// and the sets' ReplicaFailure.
pub fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(d, all, new, now);
    let has_deadline = progress_deadline(d).is_some();
    if !has_deadline {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = d
        .status
        .as_ref()
        .and_then(|s| get_condition(s, PROGRESSING))
        .cloned();
    let is_complete = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
    let subject = |what: &str| match new {
        Some(rs) => format!("ReplicaSet {:?} {what}", sets::name(rs)),
        None => format!(
            "Deployment {:?} {what}",
            d.metadata.name.as_deref().unwrap_or_default()
        ),
    };
    if has_deadline && !is_complete {
        if deployment_complete(d, &status) {
            let msg = subject("has successfully progressed.");
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &msg, now),
            );
        } else if deployment_progressing(d, &status) {
            let msg = subject("is progressing.");
            let mut cond = new_condition(PROGRESSING, "True", RS_UPDATED, &msg, now);
            if let Some(cur) = &current {
                if cur.status == "True" {
                    cond.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, cond);
        } else if deployment_timed_out(d, &status, now) {
            let msg = subject("has timed out progressing.");
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "False", TIMED_OUT, &msg, now),
            );
        }
    }
    match replica_failures(all, new).into_iter().next() {
        Some(c) => set_condition(&mut status, c),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// When to look at an unchanged rollout again to notice its deadline passing
/// (`requeueStuckDeployment`): `None` without a deadline, a Progressing condition, or when
/// complete or already timed out; at least a second from now.
pub fn requeue_stuck_after(
    d: &Deployment,
    status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let cond = d
        .status
        .as_ref()
        .and_then(|s| get_condition(s, PROGRESSING))?;
    if deployment_complete(d, status) || cond.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let from = cond.last_update_time.as_ref()?.0;
    let due = from + jiff::SignedDuration::from_secs(i64::from(deadline));
    let after = now.duration_until(due);
    if after < jiff::SignedDuration::from_secs(1) {
        // Kubernetes re-queues rate-limited here; a second is the same order of magnitude.
        return Some(Duration::from_secs(1));
    }
    Duration::try_from(after + jiff::SignedDuration::from_secs(1)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::sets::fixtures::{deployment, rs};
    use serde_json::json;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    fn with_progressing(
        mut d: Deployment,
        status: &str,
        reason: &str,
        updated_at: i64,
    ) -> Deployment {
        let st = d.status.get_or_insert_with(Default::default);
        st.conditions = Some(vec![DeploymentCondition {
            last_update_time: Some(Time(at(updated_at))),
            last_transition_time: Some(Time(at(updated_at - 50))),
            ..new_condition(PROGRESSING, status, reason, "m", at(0))
        }]);
        d
    }

    fn progressing(s: &DeploymentStatus) -> (String, String, i64, i64) {
        let c = get_condition(s, PROGRESSING).unwrap();
        (
            c.status.clone(),
            c.reason.clone().unwrap(),
            c.last_update_time.as_ref().unwrap().0.as_second(),
            c.last_transition_time.as_ref().unwrap().0.as_second(),
        )
    }

    #[test]
    fn set_condition_keeps_transition_time_for_the_same_status() {
        let mut s = DeploymentStatus::default();
        set_condition(&mut s, new_condition(AVAILABLE, "True", "A", "m", at(10)));
        set_condition(
            &mut s,
            new_condition(AVAILABLE, "True", "A", "other", at(20)),
        );
        assert_eq!(
            get_condition(&s, AVAILABLE).unwrap().message.as_deref(),
            Some("m"),
            "same status+reason: untouched"
        );
        set_condition(&mut s, new_condition(AVAILABLE, "True", "B", "m", at(30)));
        let c = get_condition(&s, AVAILABLE).unwrap();
        assert_eq!(
            (
                c.last_transition_time.as_ref().unwrap().0,
                c.last_update_time.as_ref().unwrap().0
            ),
            (at(10), at(30))
        );
        set_condition(&mut s, new_condition(AVAILABLE, "False", "B", "m", at(40)));
        assert_eq!(
            get_condition(&s, AVAILABLE)
                .unwrap()
                .last_transition_time
                .as_ref()
                .unwrap()
                .0,
            at(40)
        );
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn rollout_progress_conditions_and_deadline() {
        let now = at(10_000);
        let base = deployment(3, json!(1), json!(0));
        // (current Progressing (status, reason, updated at), old/new sizes+available, old status
        // counts (replicas, updated, ready, available)) -> Progressing (status, reason, updated at)
        struct Case {
            current: Option<(&'static str, &'static str, i64)>,
            old: (i32, i32),
            new: (i32, i32),
            prev: (i32, i32, i32, i32),
            want: (&'static str, &'static str, i64),
        }
        let cases = [
            // Complete: NewReplicaSetAvailable.
            Case {
                current: Some(("True", RS_UPDATED, 9_000)),
                old: (0, 0),
                new: (3, 3),
                prev: (3, 3, 2, 2),
                want: ("True", NEW_RS_AVAILABLE, 10_000),
            },
            // More available than before: progressing, update time refreshed.
            Case {
                current: Some(("True", RS_UPDATED, 9_000)),
                old: (2, 2),
                new: (2, 2),
                prev: (4, 2, 3, 3),
                want: ("True", RS_UPDATED, 10_000),
            },
            // No progress, within the deadline (600 s): untouched.
            Case {
                current: Some(("True", RS_UPDATED, 9_500)),
                old: (2, 2),
                new: (2, 1),
                prev: (4, 2, 3, 3),
                want: ("True", RS_UPDATED, 9_500),
            },
            // No progress past the deadline: timed out.
            Case {
                current: Some(("True", RS_UPDATED, 9_000)),
                old: (2, 2),
                new: (2, 1),
                prev: (4, 2, 3, 3),
                want: ("False", TIMED_OUT, 10_000),
            },
            // Already complete and still one set: left alone (a resync estimates nothing).
            Case {
                current: Some(("True", NEW_RS_AVAILABLE, 5_000)),
                old: (0, 0),
                new: (3, 2),
                prev: (3, 3, 3, 3),
                want: ("True", NEW_RS_AVAILABLE, 5_000),
            },
            // Resumed (Unknown) then progress: True, with a fresh transition time.
            Case {
                current: Some(("Unknown", RESUMED, 9_000)),
                old: (2, 2),
                new: (2, 2),
                prev: (4, 2, 3, 3),
                want: ("True", RS_UPDATED, 10_000),
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut d = base.clone();
            d.status = Some(DeploymentStatus {
                replicas: Some(c.prev.0),
                updated_replicas: Some(c.prev.1),
                ready_replicas: Some(c.prev.2),
                available_replicas: Some(c.prev.3),
                observed_generation: Some(1),
                ..Default::default()
            });
            if let Some((s, r, t)) = c.current {
                d = with_progressing(d, s, r, t);
            }
            let old = rs("old", 1, c.old.0, c.old.1);
            let new = rs("new", 2, c.new.0, c.new.1);
            let s = rollout_status(&d, &[&old, &new], Some(&new), now);
            let (st, reason, updated, transition) = progressing(&s);
            assert_eq!((st.as_str(), reason.as_str(), updated), c.want, "case {i}");
            if c.want.1 == RS_UPDATED && c.current.unwrap().0 == "True" {
                assert_eq!(
                    transition,
                    c.current.unwrap().2 - 50,
                    "case {i}: transition kept"
                );
            }
        }
        // Message names the new set.
        let d = with_progressing(base.clone(), "True", RS_UPDATED, 9_000);
        let new = rs("web-abc", 2, 3, 3);
        let s = rollout_status(&d, &[&new], Some(&new), now);
        assert_eq!(
            get_condition(&s, PROGRESSING).unwrap().message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
        // Without a deadline there is no Progressing condition at all.
        let mut never = d.clone();
        never.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
        assert!(
            get_condition(
                &rollout_status(&never, &[&new], Some(&new), now),
                PROGRESSING
            )
            .is_none()
        );
    }

    #[test]
    fn replica_failure_is_copied_from_the_sets() {
        let d = deployment(3, json!(1), json!(0));
        let mut new = rs("new", 2, 3, 0);
        new.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota",
            "lastTransitionTime": "2026-01-01T00:00:00Z"})).unwrap()]);
        let s = rollout_status(&d, &[&new], Some(&new), at(10_000));
        let f = get_condition(&s, REPLICA_FAILURE).unwrap();
        assert_eq!(
            (f.reason.as_deref(), f.message.as_deref()),
            (Some("FailedCreate"), Some("quota"))
        );
        // Gone from the set: gone from the Deployment.
        let mut d2 = d.clone();
        d2.status = Some(s);
        let ok = rs("new", 2, 3, 0);
        assert!(
            get_condition(
                &rollout_status(&d2, &[&ok], Some(&ok), at(10_001)),
                REPLICA_FAILURE
            )
            .is_none()
        );
    }

    #[test]
    fn pause_and_resume_conditions_and_requeue() {
        let now = at(10_000);
        let mut d = deployment(3, json!(1), json!(0));
        d.spec.as_mut().unwrap().paused = Some(true);
        assert!(check_paused_conditions(&mut d, now));
        assert_eq!(progressing(d.status.as_ref().unwrap()).1, PAUSED);
        assert!(!check_paused_conditions(&mut d, now), "already recorded");
        d.spec.as_mut().unwrap().paused = Some(false);
        assert!(check_paused_conditions(&mut d, now));
        assert_eq!(progressing(d.status.as_ref().unwrap()).1, RESUMED);
        // A timed-out rollout is not marked paused.
        let mut t = with_progressing(deployment(3, json!(1), json!(0)), "False", TIMED_OUT, 1);
        t.spec.as_mut().unwrap().paused = Some(true);
        assert!(!check_paused_conditions(&mut t, now));

        // Requeue for the deadline: updated at 9,700 + 600 = 10,300 -> 300 s (+1).
        let d = with_progressing(deployment(3, json!(1), json!(0)), "True", RS_UPDATED, 9_700);
        let st = DeploymentStatus::default();
        assert_eq!(
            requeue_stuck_after(&d, &st, now),
            Some(Duration::from_secs(301))
        );
        let late = with_progressing(deployment(3, json!(1), json!(0)), "True", RS_UPDATED, 9_000);
        assert_eq!(
            requeue_stuck_after(&late, &st, now),
            Some(Duration::from_secs(1))
        );
        let done = DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(3),
            available_replicas: Some(3),
            observed_generation: Some(1),
            ..Default::default()
        };
        assert_eq!(requeue_stuck_after(&d, &done, now), None);
        assert!(deployment_timed_out(
            &late,
            late.status.as_ref().unwrap(),
            now
        ));
        assert!(!deployment_timed_out(&d, d.status.as_ref().unwrap(), now));
    }
}
