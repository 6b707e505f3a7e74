//! Which pods a ReplicaSet deletes first when it has too many: the least valuable ones.
//!
//! Kubernetes' `ActivePodsWithRanks` order, least valuable first:
//! 1. not yet scheduled before scheduled;
//! 2. `Pending` before `Unknown` before `Running`;
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` before higher;
//! 5. more active pods of the same family (those of every ReplicaSet of the same Deployment)
//!    on its node before fewer, so scale-down spreads what remains;
//! 6. ready for less time before longer;
//! 7. more container restarts before fewer;
//! 8. created later before earlier.
//!
//! **Decision:** steps 6 and 8 compare exact times. Kubernetes' `LogarithmicScaleDown`
//! groups times into power-of-two age buckets and breaks ties inside a bucket by uid; that
//! comparison is not transitive (a uid tie-break can contradict a later step), and Rust's
//! sort needs a total order. The last tie-break here is the uid, so the order is total and
//! deterministic.

use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use runtime::objects::{is_pod_active, is_pod_ready, pod_ready_time};

/// Annotation that lets users say which pods are cheaper to delete (Kubernetes' pod
/// deletion cost, an int32; missing or invalid counts as 0).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The `count` pods to delete among `pods`, least valuable first. `related` are the pods of
/// the whole family, for the co-location rank (empty for a ReplicaSet without a controller:
/// then no pod outranks another by its node).
pub fn pods_to_delete(pods: &[Arc<Pod>], related: &[Arc<Pod>], count: usize) -> Vec<Arc<Pod>> {
    if count >= pods.len() {
        return pods.to_vec();
    }
    let ranks = colocation_ranks(pods, related);
    let mut ranked: Vec<(usize, &Arc<Pod>)> = ranks.into_iter().zip(pods).collect();
    ranked.sort_by(|(ra, a), (rb, b)| compare(a, *ra, b, *rb));
    ranked
        .into_iter()
        .take(count)
        .map(|(_, p)| p.clone())
        .collect()
}

/// For each pod, how many active pods of the family run on its node (Kubernetes'
/// `getPodsRankedByRelatedPodsOnSameNode`).
pub fn colocation_ranks(pods: &[Arc<Pod>], related: &[Arc<Pod>]) -> Vec<usize> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_pod_active(p)) {
        *on_node.entry(node_name(p)).or_default() += 1;
    }
    pods.iter()
        .map(|p| on_node.get(node_name(p)).copied().unwrap_or(0))
        .collect()
}

/// The deletion order of two pods with their co-location ranks: `Less` means `a` goes
/// first.
pub fn compare(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    sort_key(a, rank_a).cmp(&sort_key(b, rank_b))
}

/// Times compare as (known, value), so an unknown time sorts first, as `afterOrZero` does.
type TimeKey = (bool, Reverse<jiff::Timestamp>);

fn time_key(t: Option<jiff::Timestamp>) -> TimeKey {
    (t.is_some(), Reverse(t.unwrap_or_default()))
}

#[allow(clippy::type_complexity)]
fn sort_key(
    pod: &Pod,
    rank: usize,
) -> (
    bool,
    u8,
    bool,
    i32,
    Reverse<usize>,
    TimeKey,
    Reverse<i32>,
    TimeKey,
    &str,
) {
    let ready = is_pod_ready(pod);
    (
        !node_name(pod).is_empty(),
        phase_ordinal(pod),
        ready,
        deletion_cost(pod),
        Reverse(rank),
        // Only compared between ready pods: every not-ready pod has the same key here.
        if ready {
            time_key(pod_ready_time(pod))
        } else {
            time_key(None)
        },
        Reverse(max_container_restarts(pod)),
        time_key(pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    )
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// `Pending` < `Unknown` < `Running`; any other phase (none yet) counts as `Pending`.
fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest restart count of the pod's containers, init containers included.
fn max_container_restarts(pod: &Pod) -> i32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::BTreeMap;

    /// A pod described by what the ranking looks at.
    #[derive(Clone, Default)]
    struct P {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_at: Option<i64>,
        not_ready: bool,
        restarts: i32,
        created: Option<i64>,
        cost: Option<&'static str>,
    }

    fn ts(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    fn build(p: &P) -> Arc<Pod> {
        let ready = p.ready_at.is_some() && !p.not_ready;
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(p.name.into()),
                uid: Some(format!("uid-{}", p.name)),
                creation_timestamp: p.created.map(ts),
                annotations: p
                    .cost
                    .map(|c| BTreeMap::from([(POD_DELETION_COST.to_string(), c.to_string())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(p.node.to_string()).filter(|n| !n.is_empty()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(p.phase.to_string()).filter(|s| !s.is_empty()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: p.ready_at.map(ts),
                    ..PodCondition::default()
                }]),
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    restart_count: p.restarts,
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
        })
    }

    fn running(name: &'static str, node: &'static str) -> P {
        P {
            name,
            node,
            phase: "Running",
            ready_at: Some(100),
            created: Some(50),
            ..P::default()
        }
    }

    /// Pairs where the first pod must be deleted before the second (equal ranks).
    #[test]
    fn pairwise_order() {
        let base = running("a", "n1");
        let cases: Vec<(&str, P, P)> = vec![
            (
                "unscheduled before scheduled",
                P {
                    node: "",
                    phase: "Pending",
                    ready_at: None,
                    ..base.clone()
                },
                P {
                    phase: "Pending",
                    ready_at: None,
                    ..base.clone()
                },
            ),
            (
                "unscheduled before scheduled even when Running-phase",
                P {
                    node: "",
                    ..base.clone()
                },
                P {
                    phase: "Pending",
                    ready_at: None,
                    ..base.clone()
                },
            ),
            (
                "Pending before Unknown",
                P {
                    phase: "Pending",
                    ..base.clone()
                },
                P {
                    phase: "Unknown",
                    ..base.clone()
                },
            ),
            (
                "Unknown before Running",
                P {
                    phase: "Unknown",
                    ..base.clone()
                },
                base.clone(),
            ),
            (
                "not ready before ready",
                P {
                    not_ready: true,
                    created: Some(1),
                    ..base.clone()
                },
                base.clone(),
            ),
            (
                "lower deletion cost before higher",
                P {
                    cost: Some("-5"),
                    ..base.clone()
                },
                base.clone(),
            ),
            (
                "deletion cost beats readiness time",
                P {
                    cost: Some("1"),
                    ready_at: Some(10),
                    ..base.clone()
                },
                P {
                    cost: Some("2"),
                    ready_at: Some(900),
                    ..base.clone()
                },
            ),
            (
                "invalid deletion cost counts as 0",
                P {
                    cost: Some("cheap"),
                    ..base.clone()
                },
                P {
                    cost: Some("1"),
                    ..base.clone()
                },
            ),
            (
                "ready for less time before longer",
                P {
                    ready_at: Some(200),
                    ..base.clone()
                },
                base.clone(),
            ),
            (
                "ready time unknown before known",
                P {
                    ready_at: None,
                    ..running("a", "n1")
                },
                base.clone(),
            ),
            (
                "more restarts before fewer",
                P {
                    restarts: 3,
                    created: Some(1),
                    ..base.clone()
                },
                P {
                    restarts: 1,
                    ..base.clone()
                },
            ),
            (
                "newer before older",
                P {
                    created: Some(60),
                    ..base.clone()
                },
                base.clone(),
            ),
            (
                "creation time unknown before known",
                P {
                    created: None,
                    ..base.clone()
                },
                base.clone(),
            ),
            (
                "ready time is not compared between not-ready pods",
                P {
                    not_ready: true,
                    ready_at: Some(10),
                    created: Some(60),
                    ..base.clone()
                },
                P {
                    not_ready: true,
                    ready_at: Some(900),
                    ..base.clone()
                },
            ),
        ];
        for (what, first, second) in cases {
            let (first, second) = (
                build(&P {
                    name: "first",
                    ..first
                }),
                build(&P {
                    name: "second",
                    ..second
                }),
            );
            assert_eq!(compare(&first, 0, &second, 0), Ordering::Less, "{what}");
            assert_eq!(
                compare(&second, 0, &first, 0),
                Ordering::Greater,
                "{what} (reversed)"
            );
        }
    }

    #[test]
    fn doubled_up_pods_go_first() {
        // n1 has three pods of the family, n2 one: the n1 pods are deleted first, even when
        // they are older.
        let pods: Vec<Arc<Pod>> = [
            P {
                created: Some(10),
                ..running("a", "n1")
            },
            P {
                created: Some(10),
                ..running("b", "n1")
            },
            P {
                created: Some(90),
                ..running("c", "n2")
            },
        ]
        .iter()
        .map(build)
        .collect();
        // A sibling ReplicaSet's pod on n1 counts too.
        let related: Vec<Arc<Pod>> = pods
            .iter()
            .cloned()
            .chain([build(&running("sibling", "n1"))])
            .collect();
        assert_eq!(colocation_ranks(&pods, &related), [3, 3, 1]);
        let names = |v: Vec<Arc<Pod>>| -> Vec<String> {
            v.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
        };
        assert_eq!(names(pods_to_delete(&pods, &related, 2)), ["a", "b"]);
        // Rank loses to readiness.
        let mut pods2 = pods.clone();
        pods2[2] = build(&P {
            not_ready: true,
            ..running("c", "n2")
        });
        assert_eq!(names(pods_to_delete(&pods2, &related, 1)), ["c"]);
    }

    #[test]
    fn picks_the_least_valuable_and_is_total() {
        let pods: Vec<Arc<Pod>> = [
            running("old-ready", "n1"),
            P {
                ready_at: Some(500),
                ..running("young-ready", "n2")
            },
            P {
                node: "",
                phase: "Pending",
                ready_at: None,
                ..running("unscheduled", "")
            },
            P {
                phase: "Pending",
                ready_at: None,
                ..running("pending", "n3")
            },
            P {
                not_ready: true,
                ..running("not-ready", "n4")
            },
        ]
        .iter()
        .map(build)
        .collect();
        let names = |v: Vec<Arc<Pod>>| -> Vec<String> {
            v.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
        };
        assert_eq!(
            names(pods_to_delete(&pods, &[], 4)),
            ["unscheduled", "pending", "not-ready", "young-ready"]
        );
        assert_eq!(names(pods_to_delete(&pods, &[], 9)).len(), 5);
        assert!(pods_to_delete(&pods, &[], 0).is_empty());
        // Identical pods still order by uid, both ways round.
        let twin_a = build(&running("x", "n1"));
        let twin_b = build(&running("y", "n1"));
        assert_eq!(compare(&twin_a, 1, &twin_b, 1), Ordering::Less);
        assert_eq!(compare(&twin_b, 1, &twin_a, 1), Ordering::Greater);
    }
}
