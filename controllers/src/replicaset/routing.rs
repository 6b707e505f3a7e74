//! Which ReplicaSets a pod update concerns (Kubernetes' `updatePod`), decided from the two
//! versions of the pod alone; the controller then looks the ReplicaSets up in its cache.

use k8s_openapi::api::core::v1::Pod;
use runtime::objects::{controller_of, is_pod_ready};

/// What one pod update means for ReplicaSets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodUpdate {
    /// The pod started terminating: its controller may replace it now (and counts it as a
    /// deletion it may have been waiting for).
    pub gone: bool,
    /// Its labels changed as it started terminating: treat the old version as gone too.
    pub old_gone: bool,
    /// The controller reference changed: sync the old controller, which lost the pod.
    pub sync_old_controller: bool,
    /// Sync the controller the pod has now.
    pub sync_controller: bool,
    /// It just became ready: sync its controller again after `minReadySeconds`, when it
    /// becomes available.
    pub became_ready: bool,
    /// An orphan whose labels or controller changed: sync every ReplicaSet whose selector
    /// matches it, one of them may adopt it.
    pub sync_matching: bool,
}

/// Decides what the update from `old` to `new` means.
pub fn pod_update(old: &Pod, new: &Pod) -> PodUpdate {
    let mut u = PodUpdate::default();
    if old.metadata.resource_version == new.metadata.resource_version {
        // A periodic resync: nothing changed.
        return u;
    }
    let labels_changed = old.metadata.labels != new.metadata.labels;
    if new.metadata.deletion_timestamp.is_some() {
        // Graceful deletion: replace the pod now rather than when its node confirms.
        u.gone = true;
        u.old_gone = labels_changed;
        return u;
    }
    let new_ref = controller_of(&new.metadata);
    let old_ref = controller_of(&old.metadata);
    let ref_changed = new_ref != old_ref;
    u.sync_old_controller = ref_changed && old_ref.is_some();
    if new_ref.is_some() {
        u.sync_controller = true;
        u.became_ready = !is_pod_ready(old) && is_pod_ready(new);
    } else {
        u.sync_matching = labels_changed || ref_changed;
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
    use std::collections::BTreeMap;

    #[derive(Clone, Copy)]
    struct V {
        rv: &'static str,
        app: &'static str,
        owner: Option<&'static str>,
        ready: bool,
        deleting: bool,
    }

    const BASE: V = V {
        rv: "1",
        app: "web",
        owner: Some("rs1"),
        ready: false,
        deleting: false,
    };

    fn pod(v: V) -> Pod {
        Pod {
            metadata: ObjectMeta {
                resource_version: Some(v.rv.into()),
                labels: Some(BTreeMap::from([("app".into(), v.app.into())])),
                owner_references: v.owner.map(|uid| {
                    vec![OwnerReference {
                        uid: uid.into(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    }]
                }),
                deletion_timestamp: v
                    .deleting
                    .then(|| Time(jiff::Timestamp::from_second(1).unwrap())),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if v.ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn updates() {
        let none = PodUpdate::default();
        let sync = PodUpdate {
            sync_controller: true,
            ..none
        };
        let cases: Vec<(&str, V, V, PodUpdate)> = vec![
            (
                "resync (same version)",
                BASE,
                V {
                    ready: true,
                    ..BASE
                },
                none,
            ),
            (
                "status change of an owned pod",
                BASE,
                V { rv: "2", ..BASE },
                sync,
            ),
            (
                "owned pod became ready",
                BASE,
                V {
                    rv: "2",
                    ready: true,
                    ..BASE
                },
                PodUpdate {
                    became_ready: true,
                    ..sync
                },
            ),
            (
                "owned pod stayed ready",
                V {
                    ready: true,
                    ..BASE
                },
                V {
                    rv: "2",
                    ready: true,
                    ..BASE
                },
                sync,
            ),
            (
                "started terminating",
                BASE,
                V {
                    rv: "2",
                    deleting: true,
                    ..BASE
                },
                PodUpdate { gone: true, ..none },
            ),
            (
                "started terminating with new labels",
                BASE,
                V {
                    rv: "2",
                    deleting: true,
                    app: "x",
                    ..BASE
                },
                PodUpdate {
                    gone: true,
                    old_gone: true,
                    ..none
                },
            ),
            (
                "released: old controller syncs, matching ones may adopt",
                BASE,
                V {
                    rv: "2",
                    owner: None,
                    ..BASE
                },
                PodUpdate {
                    sync_old_controller: true,
                    sync_matching: true,
                    ..none
                },
            ),
            (
                "adopted",
                V {
                    owner: None,
                    ..BASE
                },
                V { rv: "2", ..BASE },
                sync,
            ),
            (
                "moved to another controller",
                BASE,
                V {
                    rv: "2",
                    owner: Some("rs2"),
                    ..BASE
                },
                PodUpdate {
                    sync_old_controller: true,
                    ..sync
                },
            ),
            (
                "orphan relabelled",
                V {
                    owner: None,
                    ..BASE
                },
                V {
                    rv: "2",
                    owner: None,
                    app: "api",
                    ..BASE
                },
                PodUpdate {
                    sync_matching: true,
                    ..none
                },
            ),
            (
                "orphan status change",
                V {
                    owner: None,
                    ..BASE
                },
                V {
                    rv: "2",
                    owner: None,
                    ready: true,
                    ..BASE
                },
                none,
            ),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(pod_update(&pod(old), &pod(new)), want, "{what}");
        }
    }
}
