//! The real kubectl drives Deployments on a real `skiff server` (API server, scheduler and
//! controllers) with simulated nodes: rollout status, set image, history, undo, restart,
//! scale, describe and drain behave as they do against Kubernetes.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kubelet::simulated::{Fleet, FleetConfig};
use runtime::{Api, Client, ListParams};
use support::{KubectlOutput, TestServer, wait_for};

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: skiff.local/web:v1
";

async fn fleet(client: &Client, nodes: usize) -> Fleet {
    Fleet::start(
        client.clone(),
        FleetConfig {
            nodes,
            name_prefix: "kc-".to_string(),
            ..FleetConfig::default()
        },
    )
    .await
    .expect("start simulated fleet")
}

/// Images of the live (not terminating) pods of the `web` Deployment.
async fn live_images(pods: &Api<Pod>) -> Vec<String> {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list pods");
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            p.spec
                .as_ref()
                .map(|s| s.containers[0].image.clone().unwrap_or_default())
        })
        .collect()
}

/// Waits until exactly `n` live pods run `image`, and no other image.
async fn wait_all_on(pods: &Api<Pod>, n: usize, image: &str) {
    wait_for(
        &format!("{n} pods on {image}"),
        Duration::from_secs(90),
        || async {
            let images = live_images(pods).await;
            (images.len() == n && images.iter().all(|i| i == image)).then_some(())
        },
    )
    .await;
}

/// Which kubectl-like tool a test drives.
#[derive(Clone, Copy)]
enum Tool {
    Kubectl,
    Skiffctl,
}

fn run(server: &TestServer, tool: Tool, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    match tool {
        Tool::Kubectl => server.kubectl_stdin(args, stdin),
        Tool::Skiffctl => server.skiffctl_stdin(args, stdin),
    }
}

fn rollout_status(server: &TestServer, tool: Tool) {
    let out = run(
        server,
        tool,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
        None,
    );
    assert!(
        out.ok()
            .contains("deployment \"web\" successfully rolled out"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rolls_out_undoes_restarts_scales_and_drains() {
    rolls_out_undoes_restarts_scales_and_drains(Tool::Kubectl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skiffctl_rolls_out_undoes_restarts_scales_and_drains() {
    rolls_out_undoes_restarts_scales_and_drains(Tool::Skiffctl).await;
}

async fn rolls_out_undoes_restarts_scales_and_drains(tool: Tool) {
    let server = TestServer::start_server().await;
    let c = server.runtime_client();
    let _fleet = fleet(&c, 3).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");

    run(&server, tool, &["apply", "-f", "-"], Some(WEB)).ok();
    rollout_status(&server, tool);
    wait_all_on(&pods, 4, "skiff.local/web:v1").await;

    // set image rolls to v2, and rollout status waits for it.
    let out = run(
        &server,
        tool,
        &["set", "image", "deployment/web", "web=skiff.local/web:v2"],
        None,
    );
    assert_eq!(out.ok().trim(), "deployment.apps/web image updated");
    rollout_status(&server, tool);
    wait_all_on(&pods, 4, "skiff.local/web:v2").await;

    let history = run(
        &server,
        tool,
        &["rollout", "history", "deployment/web"],
        None,
    );
    let revisions: BTreeSet<&str> = history
        .ok()
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, BTreeSet::from(["1", "2"]), "{}", history.stdout);

    // undo goes back to v1 (revision 1 becomes revision 3).
    let out = run(&server, tool, &["rollout", "undo", "deployment/web"], None);
    assert_eq!(out.ok().trim(), "deployment.apps/web rolled back");
    rollout_status(&server, tool);
    wait_all_on(&pods, 4, "skiff.local/web:v1").await;
    let history = run(
        &server,
        tool,
        &["rollout", "history", "deployment/web"],
        None,
    );
    let revisions: BTreeSet<&str> = history
        .ok()
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, BTreeSet::from(["2", "3"]), "{}", history.stdout);

    // restart replaces every pod with a new one.
    let before: BTreeSet<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list")
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let out = run(
        &server,
        tool,
        &["rollout", "restart", "deployment/web"],
        None,
    );
    assert_eq!(out.ok().trim(), "deployment.apps/web restarted");
    rollout_status(&server, tool);
    wait_for("every pod replaced", Duration::from_secs(90), || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let live: Vec<_> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        (live.len() == 4 && live.iter().all(|n| !before.contains(n))).then_some(())
    })
    .await;

    // scale.
    let out = run(
        &server,
        tool,
        &["scale", "deployment/web", "--replicas=6"],
        None,
    );
    assert_eq!(out.ok().trim(), "deployment.apps/web scaled");
    rollout_status(&server, tool);
    wait_all_on(&pods, 6, "skiff.local/web:v1").await;

    // describe shows the ReplicaSets and the scaling Events.
    let out = run(&server, tool, &["describe", "deployment", "web"], None);
    let text = out.ok();
    assert!(text.contains("NewReplicaSet:"), "{text}");
    assert!(text.contains("web-"), "{text}");
    assert!(text.contains("ScalingReplicaSet"), "{text}");
    assert!(text.contains("deployment-controller"), "{text}");

    // drain a node: its pods are evicted and come back on the other nodes.
    let on_node = |node: String| {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels("app=web"))
                .await
                .expect("list")
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node))
                .count()
        }
    };
    let nodes: Api<Node> = Api::all(c.clone());
    let mut busiest = (String::new(), 0);
    for n in nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
    {
        let name = n.metadata.name.clone().unwrap_or_default();
        let count = on_node(name.clone()).await;
        if count > busiest.1 {
            busiest = (name, count);
        }
    }
    assert!(busiest.1 > 0, "some node runs web pods");
    let out = run(
        &server,
        tool,
        &["drain", &busiest.0, "--ignore-daemonsets", "--timeout=90s"],
        None,
    );
    assert!(
        out.ok().contains(&format!("node/{} drained", busiest.0)),
        "{out:?}"
    );
    let node = nodes.get(&busiest.0).await.expect("node");
    assert_eq!(node.spec.and_then(|s| s.unschedulable), Some(true));
    rollout_status(&server, tool);
    wait_for(
        "pods off the drained node",
        Duration::from_secs(90),
        || async {
            let live = live_images(&pods).await.len();
            (live == 6 && on_node(busiest.0.clone()).await == 0).then_some(())
        },
    )
    .await;
}
