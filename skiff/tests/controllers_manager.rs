//! Two controller managers on one API server: only the holder of the
//! `kube-system/kube-controller-manager` Lease acts; when it dies the other takes over.
//! Who acted is read from the Events each replica writes (their `reportingInstance`).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use controllers::ManagerConfig;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kubelet::simulated::{Fleet, FleetConfig};
use runtime::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{TestServer, wait_for};

fn manager(identity: &str) -> ManagerConfig {
    let mut cfg = ManagerConfig::new(identity);
    if let Some(le) = cfg.leader_election.as_mut() {
        le.lease_duration = Duration::from_secs(3);
        le.renew_deadline = Duration::from_secs(2);
        le.retry_period = Duration::from_millis(300);
    }
    cfg
}

/// Live pods of the ReplicaSet `ha`.
async fn live_pods(pods: &Api<Pod>) -> usize {
    pods.list(&ListParams::default().labels("app=ha"))
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count()
        })
        .unwrap_or(0)
}

/// `reportingInstance` of every SuccessfulCreate Event about the ReplicaSet `ha`.
async fn creators(events: &Api<Event>) -> Vec<String> {
    events
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
                .filter(|e| e.involved_object.name.as_deref() == Some("ha"))
                .filter_map(|e| e.reporting_instance.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_one_acts_and_the_other_takes_over() {
    let server = TestServer::start().await;
    let c = server.runtime_client();
    let _fleet = Fleet::start(
        c.clone(),
        FleetConfig {
            nodes: 2,
            name_prefix: "mgr-".into(),
            ..FleetConfig::default()
        },
    )
    .await
    .expect("fleet");
    // Without a scheduler pods stay unbound, which is enough: the ReplicaSet counts them.
    let a = tokio::spawn(controllers::run(
        c.clone(),
        manager("manager-a"),
        std::future::pending(),
    ));
    let b = tokio::spawn(controllers::run(
        c.clone(),
        manager("manager-b"),
        std::future::pending(),
    ));

    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "ha", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "ha"}},
            "template": {
                "metadata": {"labels": {"app": "ha"}},
                "spec": {"containers": [{"name": "c", "image": "skiff.local/web:v1"}]},
            },
        },
    }))
    .expect("replicaset");
    let sets: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    sets.create(&PostParams::default(), &rs)
        .await
        .expect("create");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let events: Api<Event> = Api::namespaced(c.clone(), "default");
    wait_for("3 pods", Duration::from_secs(60), || async {
        (live_pods(&pods).await == 3).then_some(())
    })
    .await;
    let first = wait_for("3 creation Events", Duration::from_secs(30), || async {
        let who = creators(&events).await;
        (who.len() >= 3).then_some(who)
    })
    .await;
    let leaders: BTreeSet<&String> = first.iter().collect();
    assert_eq!(leaders.len(), 1, "both managers created pods: {first:?}");
    assert_eq!(live_pods(&pods).await, 3, "no replica created twice");

    // Kill the leader like a crash (no release): the other waits the Lease out, then acts.
    let leader = first[0].clone();
    let (dead, survivor) = if leader == "manager-a" {
        (a, "manager-b")
    } else {
        (b, "manager-a")
    };
    dead.abort();
    let _ = dead.await;
    sets.patch(
        "ha",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .expect("scale");
    wait_for("5 pods", Duration::from_secs(60), || async {
        (live_pods(&pods).await == 5).then_some(())
    })
    .await;
    let all = wait_for("5 creation Events", Duration::from_secs(30), || async {
        let who = creators(&events).await;
        (who.len() >= 5).then_some(who)
    })
    .await;
    let later: Vec<&String> = all.iter().filter(|w| **w != leader).collect();
    assert_eq!(later.len(), 2, "{all:?}");
    assert!(later.iter().all(|w| *w == survivor), "{all:?}");
    assert_eq!(live_pods(&pods).await, 5);
}
