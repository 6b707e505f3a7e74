//! Reading Deployments and ReplicaSets the way the controller needs them: defaulted counts
//! and the orderings Kubernetes' deployment controller sorts by.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

/// `spec.replicas` of a ReplicaSet (the API defaults it to 1).
pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Sets `spec.replicas` of a ReplicaSet.
pub fn set_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// `status.replicas`: pods the ReplicaSet controller counts as existing.
pub fn actual(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

/// `status.readyReplicas`.
pub fn ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// `status.availableReplicas`.
pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Name of an object, empty when unset.
pub fn name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or_default()
}

/// An annotation of a ReplicaSet.
pub fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Whether the ReplicaSet is wanted to run anything (`spec.replicas > 0`), Kubernetes'
/// `FilterActiveReplicaSets`.
pub fn is_active(rs: &ReplicaSet) -> bool {
    replicas(rs) > 0
}

/// Sum of `spec.replicas`.
pub fn total_replicas<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(replicas).sum()
}

/// Sum of `status.replicas`.
pub fn total_actual<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(actual).sum()
}

/// Sum of `status.availableReplicas`.
pub fn total_available<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(available).sum()
}

/// Oldest first, ties by name (`ReplicaSetsByCreationTimestamp`). A ReplicaSet not created
/// yet (no timestamp) is the newest.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let t = match (ta, tb) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    t.then_with(|| name(a).cmp(name(b)))
}

/// Biggest first; equal sizes oldest first (`ReplicaSetsBySizeOlder`): the order proportional
/// scaling takes sets in when scaling down.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    replicas(b)
        .cmp(&replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Biggest first; equal sizes newest first (`ReplicaSetsBySizeNewer`): the order when scaling
/// up.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    replicas(b)
        .cmp(&replicas(a))
        .then_with(|| by_creation(b, a))
}

/// `spec.replicas` of a Deployment (defaulted to 1 by the API).
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Whether the Deployment uses the Recreate strategy; anything else rolls.
pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// `spec.minReadySeconds`.
pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `spec.paused`.
pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// `metadata.generation`.
pub fn generation(d: &Deployment) -> i64 {
    d.metadata.generation.unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders shared by the planning tests.
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use serde_json::{Value, json};

    /// A RollingUpdate Deployment `web` with `replicas` and the given surge/unavailable.
    pub fn deployment(replicas: i32, surge: Value, unavailable: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "v1"}]}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
        }))
        .unwrap()
    }

    /// A ReplicaSet `name` created at second `created` with spec/available replicas.
    pub fn rs(name: &str, created: i64, replicas: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                         "creationTimestamp": jiff::Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": name}]}}},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available},
        }))
        .unwrap()
    }

    /// `rs` with annotations.
    pub fn annotated(mut rs: ReplicaSet, pairs: &[(&str, &str)]) -> ReplicaSet {
        let a = rs.metadata.annotations.get_or_insert_with(Default::default);
        for (k, v) in pairs {
            a.insert(k.to_string(), v.to_string());
        }
        rs
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::rs;
    use super::*;

    #[test]
    fn orderings_follow_kubernetes() {
        let a = rs("a", 10, 3, 3);
        let b = rs("b", 20, 3, 3);
        let c = rs("c", 5, 1, 1);
        let mut v = [&b, &c, &a];
        v.sort_by(|x, y| by_creation(x, y));
        assert_eq!(
            v.iter().map(|r| name(r)).collect::<Vec<_>>(),
            ["c", "a", "b"]
        );
        v.sort_by(|x, y| by_size_older(x, y));
        assert_eq!(
            v.iter().map(|r| name(r)).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        v.sort_by(|x, y| by_size_newer(x, y));
        assert_eq!(
            v.iter().map(|r| name(r)).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        let unborn = ReplicaSet::default();
        assert_eq!(by_creation(&a, &unborn), Ordering::Less);
    }
}
