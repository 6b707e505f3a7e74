//! A ReplicaSet's status, computed from the pods it owns (Kubernetes' `calculateStatus`).
//!
//! `replicas` counts the active pods it owns, `fullyLabeledReplicas` those that also carry
//! every label of the template, `readyReplicas` the ready ones and `availableReplicas` those
//! ready for at least `minReadySeconds`. A failed create or delete sets the `ReplicaFailure`
//! condition (reason `FailedCreate` / `FailedDelete`, the error as message); the next sync
//! without a failure removes it. The status is written only when this changes something.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use runtime::objects::{is_pod_available, is_pod_ready, pod_ready_time};
use runtime::selector::LabelSelector;

/// The condition type a ReplicaSet reports failed creates or deletes with.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The status `rs` should have with `pods` (its active, owned pods) at `now`;
/// `manage_error` is the message of a failed create or delete in this sync.
pub fn calculate(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_error: Option<&str>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = LabelSelector::from_map(&template_labels);
    let empty = Default::default();
    let mut labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in pods {
        if fully_labeled.matches(pod.metadata.labels.as_ref().unwrap_or(&empty)) {
            labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let mut status = rs.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(message) if !has_failure => {
            let wanted = spec.and_then(|s| s.replicas).unwrap_or(1);
            let have = i64::try_from(pods.len()).unwrap_or(i64::MAX);
            let reason = match have.cmp(&i64::from(wanted)) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
                message: Some(message.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let omit_zero = |n: usize| Some(count(n)).filter(|n| *n != 0);
    status.replicas = count(pods.len());
    status.fully_labeled_replicas = omit_zero(labeled);
    status.ready_replicas = omit_zero(ready);
    status.available_replicas = omit_zero(available);
    status.conditions = Some(conditions).filter(|c| !c.is_empty());
    status.observed_generation = rs.metadata.generation.filter(|g| *g != 0);
    status
}

/// Whether `new` differs from the status `rs` has (absent counts equal zero), so a write
/// is needed.
pub fn needs_update(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let old = rs.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    old.replicas != new.replicas
        || n(old.fully_labeled_replicas) != n(new.fully_labeled_replicas)
        || n(old.ready_replicas) != n(new.ready_replicas)
        || n(old.available_replicas) != n(new.available_replicas)
        || old.observed_generation.unwrap_or(0) != new.observed_generation.unwrap_or(0)
        || old.conditions.unwrap_or_default() != new.conditions.clone().unwrap_or_default()
}

/// When the next ready-but-not-yet-available pod becomes available, so the ReplicaSet is
/// synced again then (`None`: no pod is waiting on `minReadySeconds`).
pub fn next_availability_check(
    min_ready_seconds: i32,
    pods: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    let min_ready = jiff::SignedDuration::from_secs(i64::from(min_ready_seconds));
    pods.iter()
        .filter(|p| is_pod_ready(p) && !is_pod_available(p, min_ready_seconds, now))
        .filter_map(|p| pod_ready_time(p))
        .map(|since| (since + min_ready).duration_since(now))
        .min()
        .map(|d| Duration::try_from(d).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    fn rs(replicas: i32, min_ready: i32, status: Option<ReplicaSetStatus>) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([
                            ("app".into(), "web".into()),
                            ("tier".into(), "front".into()),
                        ])),
                        ..ObjectMeta::default()
                    }),
                    spec: None,
                }),
                ..ReplicaSetSpec::default()
            }),
            status,
        }
    }

    /// A pod with the labels `app=web` (+ `tier=front` when `full`), ready since `ready`.
    fn pod(full: bool, ready: Option<i64>) -> Arc<Pod> {
        let mut labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        if full {
            labels.insert("tier".into(), "front".into());
        }
        Arc::new(Pod {
            metadata: ObjectMeta {
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready.is_some() { "True" } else { "False" }.into(),
                    last_transition_time: ready.map(|s| Time(ts(s))),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        })
    }

    #[test]
    fn counts() {
        let now = ts(1000);
        let pods = vec![
            pod(true, Some(900)),  // ready 100 s: available
            pod(true, Some(995)),  // ready 5 s: not yet available with minReady 10
            pod(false, Some(100)), // lacks a template label
            pod(true, None),       // not ready
        ];
        let cases = [
            // minReadySeconds, (replicas, fully labeled, ready, available)
            (0, (4, Some(3), Some(3), Some(3))),
            (10, (4, Some(3), Some(3), Some(2))),
            (1000, (4, Some(3), Some(3), None)),
        ];
        for (min_ready, (replicas, labeled, ready, available)) in cases {
            let s = calculate(&rs(4, min_ready, None), &pods, None, now);
            assert_eq!(
                (
                    s.replicas,
                    s.fully_labeled_replicas,
                    s.ready_replicas,
                    s.available_replicas
                ),
                (replicas, labeled, ready, available),
                "minReadySeconds {min_ready}"
            );
            assert_eq!(s.observed_generation, Some(3));
            assert_eq!(s.conditions, None);
        }
        let empty = calculate(&rs(0, 0, None), &[], None, now);
        assert_eq!(empty.replicas, 0);
        assert_eq!(empty.ready_replicas, None, "zero counts are omitted");
    }

    #[test]
    fn replica_failure_condition() {
        let now = ts(1000);
        let pods = vec![pod(true, Some(900))];
        // Too few pods and a failure: FailedCreate.
        let s = calculate(&rs(3, 0, None), &pods, Some("quota exceeded"), now);
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref(),
                c.message.as_deref()
            ),
            (
                "ReplicaFailure",
                "True",
                Some("FailedCreate"),
                Some("quota exceeded")
            )
        );
        // Too many: FailedDelete.
        let s2 = calculate(&rs(0, 0, None), &pods, Some("forbidden"), now);
        assert_eq!(
            s2.conditions.as_ref().unwrap()[0].reason.as_deref(),
            Some("FailedDelete")
        );
        // An existing failure is kept as it was (same transition time) while failures go on.
        let failing = rs(3, 0, Some(s.clone()));
        let again = calculate(&failing, &pods, Some("other error"), ts(2000));
        assert_eq!(again.conditions, s.conditions);
        // A sync without failure clears it.
        let cleared = calculate(&failing, &pods, None, ts(2000));
        assert_eq!(cleared.conditions, None);
        assert!(needs_update(&failing, &cleared));
    }

    #[test]
    fn writes_only_changes() {
        let now = ts(1000);
        let pods = vec![pod(true, Some(900)), pod(true, Some(900))];
        let fresh = rs(2, 0, None);
        let s = calculate(&fresh, &pods, None, now);
        assert!(needs_update(&fresh, &s));
        let synced = rs(2, 0, Some(s.clone()));
        assert!(!needs_update(
            &synced,
            &calculate(&synced, &pods, None, now)
        ));
        // A spec change (new generation) needs observedGeneration written.
        let mut bumped = synced.clone();
        bumped.metadata.generation = Some(4);
        assert!(needs_update(&bumped, &calculate(&bumped, &pods, None, now)));
        // One pod less ready.
        let fewer = vec![pod(true, Some(900)), pod(true, None)];
        assert!(needs_update(
            &synced,
            &calculate(&synced, &fewer, None, now)
        ));
        // Zero written as absent equals an explicit zero.
        let zeros = rs(
            0,
            0,
            Some(ReplicaSetStatus {
                ready_replicas: Some(0),
                available_replicas: Some(0),
                fully_labeled_replicas: Some(0),
                observed_generation: Some(3),
                conditions: Some(vec![]),
                ..ReplicaSetStatus::default()
            }),
        );
        assert!(!needs_update(&zeros, &calculate(&zeros, &[], None, now)));
    }

    #[test]
    fn requeue_when_the_next_pod_becomes_available() {
        let now = ts(1000);
        let pods = vec![
            pod(true, Some(990)), // available at 1010
            pod(true, Some(995)), // at 1015
            pod(true, Some(900)), // already available
            pod(true, None),      // not ready
        ];
        assert_eq!(
            next_availability_check(20, &pods, now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(next_availability_check(0, &pods, now), None);
        assert_eq!(next_availability_check(5, &pods, now), None);
        assert_eq!(next_availability_check(20, &[], now), None);
    }
}
