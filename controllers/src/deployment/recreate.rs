//! The Recreate strategy's one rule beyond scaling: the new ReplicaSet is created only once no
//! pod of an old one runs any more (Kubernetes' `oldPodsRunning`), so old and new versions
//! never serve side by side.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::sets;

/// Phases of the pods each ReplicaSet (by uid) controls.
pub type PodPhases = HashMap<String, Vec<String>>;

/// Whether any old pod may still run: an old set still counts pods, or a pod controlled by a
/// set other than the new one is in a non-terminal phase (`Unknown` counts as running).
pub fn old_pods_running(new_uid: Option<&str>, old: &[&ReplicaSet], pods: &PodPhases) -> bool {
    if sets::total_actual(old.iter().copied()) > 0 {
        return true;
    }
    pods.iter()
        .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
        .flat_map(|(_, phases)| phases)
        .any(|phase| !matches!(phase.as_str(), "Failed" | "Succeeded"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::sets::fixtures::rs;

    #[test]
    fn old_pods_block_the_new_set() {
        let phases = |v: &[(&str, &[&str])]| -> PodPhases {
            v.iter()
                .map(|(uid, ps)| (uid.to_string(), ps.iter().map(|p| p.to_string()).collect()))
                .collect()
        };
        let old_idle = rs("old", 1, 0, 0);
        let old_busy = rs("old", 1, 0, 0);
        let mut counted = old_busy.clone();
        counted.status.as_mut().unwrap().replicas = 1;
        // (old sets, pods by set uid) -> running?
        let cases: Vec<(Vec<&ReplicaSet>, PodPhases, bool)> = vec![
            (vec![&old_idle], phases(&[]), false),
            (vec![&counted], phases(&[]), true),
            (vec![&old_idle], phases(&[("old-uid", &["Running"])]), true),
            (vec![&old_idle], phases(&[("old-uid", &["Pending"])]), true),
            (vec![&old_idle], phases(&[("old-uid", &["Unknown"])]), true),
            (
                vec![&old_idle],
                phases(&[("old-uid", &["Succeeded", "Failed"])]),
                false,
            ),
            (vec![&old_idle], phases(&[("new-uid", &["Running"])]), false),
        ];
        for (i, (old, pods, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                old_pods_running(Some("new-uid"), &old, &pods),
                want,
                "case {i}"
            );
        }
    }
}
