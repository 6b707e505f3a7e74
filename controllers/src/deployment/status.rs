//! The Deployment's status counts, summed from its ReplicaSets (Kubernetes'
//! `calculateStatus`): exactly what `kubectl rollout status` and `kubectl get deploy` read.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};

use super::progress::{self, AVAILABLE};
use super::rolling::max_unavailable;
use super::sets::{self, desired};

/// The status the sets add up to, keeping the Deployment's conditions and collision count
/// and setting `Available` by whether at least `replicas - maxUnavailable` pods are available.
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let available = sets::total_available(all.iter().copied());
    let total = sets::total_replicas(all.iter().copied());
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: Some(sets::generation(d)),
        replicas: Some(sets::total_actual(all.iter().copied())),
        updated_replicas: Some(new.map(sets::actual).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|rs| sets::ready(rs)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions,
        ..DeploymentStatus::default()
    };
    let condition = if available >= desired(d) - max_unavailable(d) {
        progress::new_condition(
            AVAILABLE,
            "True",
            progress::MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    } else {
        progress::new_condition(
            AVAILABLE,
            "False",
            progress::MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    };
    progress::set_condition(&mut status, condition);
    status
}

/// The status as the API stores it: zero counts and empty lists omitted, so a status read
/// back compares equal to the one computed.
pub fn normalized(status: &DeploymentStatus) -> DeploymentStatus {
    let nz = |v: Option<i32>| v.filter(|n| *n != 0);
    DeploymentStatus {
        available_replicas: nz(status.available_replicas),
        ready_replicas: nz(status.ready_replicas),
        replicas: nz(status.replicas),
        updated_replicas: nz(status.updated_replicas),
        unavailable_replicas: nz(status.unavailable_replicas),
        terminating_replicas: status.terminating_replicas,
        observed_generation: status.observed_generation.filter(|g| *g != 0),
        collision_count: status.collision_count,
        conditions: status.conditions.clone().filter(|c| !c.is_empty()),
    }
}

/// Whether two statuses are the same once normalized (`reflect.DeepEqual` on Go values, where
/// zero and absent are one).
pub fn same(a: Option<&DeploymentStatus>, b: Option<&DeploymentStatus>) -> bool {
    let empty = DeploymentStatus::default();
    normalized(a.unwrap_or(&empty)) == normalized(b.unwrap_or(&empty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::sets::fixtures::{deployment, rs};
    use serde_json::json;

    #[test]
    fn counts_and_availability() {
        let now = jiff::Timestamp::from_second(1000).unwrap();
        let d = deployment(10, json!(3), json!(2));
        let mut old = rs("old", 1, 5, 5);
        old.status.as_mut().unwrap().replicas = 6; // one pod still terminating-ish
        let new = rs("new", 2, 5, 2);
        let s = calculate_status(&d, &[&old, &new], Some(&new), now);
        assert_eq!(s.replicas, Some(11));
        assert_eq!(s.updated_replicas, Some(5));
        assert_eq!(s.ready_replicas, Some(7));
        assert_eq!(s.available_replicas, Some(7));
        assert_eq!(s.unavailable_replicas, Some(3));
        assert_eq!(s.observed_generation, Some(1));
        let avail = progress::get_condition(&s, AVAILABLE).unwrap();
        // 7 < 10 - 2.
        assert_eq!(
            (avail.status.as_str(), avail.reason.as_deref()),
            ("False", Some("MinimumReplicasUnavailable"))
        );

        let new = rs("new", 2, 5, 3);
        let s = calculate_status(&d, &[&old, &new], Some(&new), now);
        let avail = progress::get_condition(&s, AVAILABLE).unwrap();
        assert_eq!(
            (avail.status.as_str(), avail.message.as_deref()),
            ("True", Some("Deployment has minimum availability."))
        );

        // More available than wanted (scaling down): unavailable is 0, not negative.
        let big = rs("big", 1, 2, 4);
        let s = calculate_status(&d, &[&big], None, now);
        assert_eq!(
            (s.unavailable_replicas, s.updated_replicas),
            (Some(0), Some(0))
        );
        assert!(same(
            Some(&DeploymentStatus {
                replicas: Some(0),
                ..Default::default()
            }),
            None
        ));
    }
}
