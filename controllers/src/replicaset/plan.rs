//! What a ReplicaSet sync does to its pods, decided without I/O.
//!
//! [`manage`] compares the wanted replicas with the active pods it owns and caps the change
//! at [`BURST_REPLICAS`]; [`slow_start_batches`] splits creations into the growing batches
//! Kubernetes uses so a template that cannot work (quota, bad image pull secret, admission)
//! fails after one request instead of hundreds; [`pod_from_template`] builds the pod to
//! create.

use std::future::Future;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// At most this many pods are created or deleted in one sync (Kubernetes' `BurstReplicas`),
/// so one huge ReplicaSet cannot monopolise the API server; the next sync does the rest.
pub const BURST_REPLICAS: usize = 500;

/// Size of the first creation batch (Kubernetes' `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// What one sync does about the replica count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manage {
    /// Exactly the wanted number of active pods.
    InSync,
    /// Create this many pods.
    Create(usize),
    /// Delete this many pods (the least valuable ones, see `rank`).
    Delete(usize),
}

/// Compares `wanted` replicas with `active` owned pods; changes at most `burst` pods.
pub fn manage(wanted: i32, active: usize, burst: usize) -> Manage {
    let wanted = usize::try_from(wanted).unwrap_or(0);
    if active < wanted {
        Manage::Create((wanted - active).min(burst))
    } else if active > wanted {
        Manage::Delete((active - wanted).min(burst))
    } else {
        Manage::InSync
    }
}

/// The batch sizes of Kubernetes' `slowStartBatch` for `count` calls: `initial`, then each
/// batch twice the previous one, the last one cut to what remains. The caller runs a batch
/// concurrently and stops at the first batch with a failure.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = initial.max(1).min(remaining);
    while size > 0 {
        batches.push(size);
        remaining -= size;
        size = (size * 2).min(remaining);
    }
    batches
}

/// Runs `call` `count` times in [`slow_start_batches`], each batch concurrently, and stops
/// after the first batch in which a call failed (Kubernetes' `slowStartBatch`). Returns the
/// results of the calls made; `count` minus their number were skipped.
pub async fn slow_start<T, E, Fut>(
    count: usize,
    initial: usize,
    mut call: impl FnMut() -> Fut,
) -> Vec<Result<T, E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut results = Vec::with_capacity(count);
    for batch in slow_start_batches(count, initial) {
        let done = join_all((0..batch).map(|_| call())).await;
        let failed = done.iter().any(Result::is_err);
        results.extend(done);
        if failed {
            break;
        }
    }
    results
}

/// The pod a ReplicaSet creates: the template's labels, annotations, finalizers and spec,
/// `generateName` `<rs>-`, and the ReplicaSet as controller (Kubernetes'
/// `GetPodFromTemplate`). The namespace comes from where it is created.
pub fn pod_from_template(rs: &ReplicaSet, controller_ref: OwnerReference) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            labels: tmeta.and_then(|m| m.labels.clone()),
            annotations: tmeta.and_then(|m| m.annotations.clone()),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()),
            owner_references: Some(vec![controller_ref]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use std::collections::BTreeMap;

    #[test]
    fn how_many_to_create_or_delete() {
        let cases = [
            // wanted, active, burst, plan
            (3, 0, 500, Manage::Create(3)),
            (3, 2, 500, Manage::Create(1)),
            (3, 3, 500, Manage::InSync),
            (3, 5, 500, Manage::Delete(2)),
            (0, 4, 500, Manage::Delete(4)),
            (0, 0, 500, Manage::InSync),
            (1000, 0, 500, Manage::Create(500)),
            (0, 1000, 500, Manage::Delete(500)),
            (1000, 700, 500, Manage::Create(300)),
            (-1, 2, 500, Manage::Delete(2)),
        ];
        for (wanted, active, burst, plan) in cases {
            assert_eq!(
                manage(wanted, active, burst),
                plan,
                "wanted {wanted}, active {active}"
            );
        }
    }

    #[test]
    fn slow_start_batch_sizes() {
        let cases: [(usize, usize, &[usize]); 8] = [
            (0, 1, &[]),
            (1, 1, &[1]),
            (2, 1, &[1, 1]),
            (3, 1, &[1, 2]),
            (5, 1, &[1, 2, 2]),
            (10, 1, &[1, 2, 4, 3]),
            (500, 1, &[1, 2, 4, 8, 16, 32, 64, 128, 245]),
            (10, 3, &[3, 6, 1]),
        ];
        for (count, initial, want) in cases {
            let got = slow_start_batches(count, initial);
            assert_eq!(got, want, "count {count}, initial {initial}");
            assert_eq!(got.iter().sum::<usize>(), count);
        }
    }

    #[tokio::test]
    async fn slow_start_stops_after_the_first_failing_batch() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // (count, the call number that fails, calls made, successes)
        let cases = [
            (10, None, 10, 10),
            (10, Some(0), 1, 0),
            // Batches 1, 2, 4, 3: call 2 is in the second batch, which still completes.
            (10, Some(2), 3, 2),
            (10, Some(4), 7, 6),
            (10, Some(9), 10, 9),
            (0, None, 0, 0),
        ];
        for (count, fail_at, calls, successes) in cases {
            let n = AtomicUsize::new(0);
            let results = slow_start(count, 1, || {
                let i = n.fetch_add(1, Ordering::SeqCst);
                async move { if Some(i) == fail_at { Err(i) } else { Ok(i) } }
            })
            .await;
            assert_eq!(
                n.load(Ordering::SeqCst),
                calls,
                "count {count}, fail {fail_at:?}"
            );
            assert_eq!(results.len(), calls);
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), successes);
        }
    }

    #[test]
    fn pods_come_from_the_template() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                labels: Some(BTreeMap::from([("rs-only".into(), "x".into())])),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels.clone()),
                        annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
                        finalizers: Some(vec!["example.com/f".into()]),
                        name: Some("ignored".into()),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some("nginx".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                }),
                ..ReplicaSetSpec::default()
            }),
            ..ReplicaSet::default()
        };
        let r = OwnerReference {
            uid: "u".into(),
            controller: Some(true),
            ..OwnerReference::default()
        };
        let pod = pod_from_template(&rs, r.clone());
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.labels, Some(labels));
        assert_eq!(pod.metadata.annotations.unwrap()["a"], "b");
        assert_eq!(pod.metadata.finalizers.unwrap(), ["example.com/f"]);
        assert_eq!(pod.metadata.owner_references.unwrap(), [r]);
        assert_eq!(pod.spec.unwrap().containers[0].name, "c");
    }
}
