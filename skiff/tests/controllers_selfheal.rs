//! Self-healing end to end on `skiff server` with simulated nodes: a Deployment's pods on a
//! node that stops renewing its Lease are evicted once their toleration runs out and the
//! ReplicaSet replaces them on the remaining nodes.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kubelet::simulated::{Fleet, FleetConfig};
use runtime::{Api, ListParams, PostParams};
use serde_json::json;
use support::{SHORT_TIMINGS, TestServer, wait_for};

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref()?.node_name.as_deref()
}

/// Live (not terminating) pods of app `heal`, with the node each runs on.
async fn live(pods: &Api<Pod>) -> Vec<(String, Option<String>)> {
    pods.list(&ListParams::default().labels("app=heal"))
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| {
                    (
                        p.metadata.name.clone().unwrap_or_default(),
                        node_of(p).map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn available(deployments: &Api<Deployment>) -> i32 {
    deployments
        .get("heal")
        .await
        .ok()
        .and_then(|d| d.status)
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_killed_node_come_back_elsewhere() {
    let server = TestServer::start_server_with(&SHORT_TIMINGS).await;
    let c = server.runtime_client();
    let fleet = Fleet::start(
        c.clone(),
        FleetConfig {
            nodes: 3,
            name_prefix: "heal-".into(),
            lease_interval: Duration::from_secs(1),
            ..FleetConfig::default()
        },
    )
    .await
    .expect("fleet");
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "heal", "namespace": "default"},
        "spec": {
            "replicas": 6,
            "selector": {"matchLabels": {"app": "heal"}},
            "template": {
                "metadata": {"labels": {"app": "heal"}},
                "spec": {"containers": [{"name": "c", "image": "skiff.local/web:v1"}]},
            },
        },
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    wait_for("6 available replicas", Duration::from_secs(60), || async {
        (available(&deployments).await == 6).then_some(())
    })
    .await;

    // Kill the node running the most pods (least-allocated scoring spreads them).
    let before = live(&pods).await;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (_, node) in &before {
        *counts.entry(node.clone().unwrap_or_default()).or_default() += 1;
    }
    let (victim, lost) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(n, c)| (n.clone(), *c))
        .expect("pods run somewhere");
    assert!(lost > 0);
    assert!(fleet.stop_node(&victim), "{victim} is a fleet node");

    // Its pods are evicted and replaced on the two other nodes; the Deployment is whole again.
    let healed = wait_for(
        "the lost pods to be replaced elsewhere",
        Duration::from_secs(90),
        || async {
            let now = live(&pods).await;
            let elsewhere = now
                .iter()
                .filter(|(_, n)| n.as_deref().is_some_and(|n| n != victim))
                .count();
            (now.len() == 6 && elsewhere == 6 && available(&deployments).await == 6).then_some(now)
        },
    )
    .await;
    let replaced = healed
        .iter()
        .filter(|(name, _)| !before.iter().any(|(b, _)| b == name))
        .count();
    assert_eq!(replaced, lost, "exactly the lost pods were replaced");
}
