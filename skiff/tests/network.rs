//! The pod network across nodes. Node IPAM against a real `skiff server` (Node objects only,
//! no root); then real runc pods in a two-node lab (each node agent in a network namespace of
//! its own, joined by a bridge, taking its pod CIDR from its Node): pods reach each other on
//! one node and across nodes through the host-gw routes, stale routes go, and nothing the pods
//! send leaves the namespaces the test made.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};
use support::cluster::{TwoNodeCluster, busybox_pod, httpd_pod, root_or_skip};
use support::{TestServer, wait_for};

/// `wget` from pod `client` to `http://ip/`, killed after 10 s (busybox's own `wget -T`
/// crashes in this build); returns the output.
fn fetch(cluster: &TwoNodeCluster, client: &str, ip: &str) -> support::KubectlOutput {
    cluster.exec(
        client,
        &["timeout", "10", "wget", "-qO-", &format!("http://{ip}/")],
    )
}

fn node_json(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec})
}

/// Waits until Node `name` has a pod CIDR and returns it.
async fn assigned_cidr(server: &TestServer, name: &str) -> String {
    let api: runtime::Api<Node> = runtime::Api::all(server.runtime_client());
    wait_for(
        &format!("node {name} to get a pod CIDR"),
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let spec = api.get(name).await.ok()?.spec?;
                let single = spec.pod_cidr?;
                assert_eq!(spec.pod_cidrs, Some(vec![single.clone()]), "podCIDRs agree");
                Some(single)
            }
        },
    )
    .await
}

#[tokio::test]
async fn node_ipam_assigns_releases_and_survives_restarts() {
    let mut server = TestServer::start_server_with(&["--cluster-cidr", "10.244.0.0/22"]).await;
    let client = server.client();
    for name in ["n-a", "n-b"] {
        assert_eq!(
            client
                .post("/api/v1/nodes", &node_json(name, json!({})))
                .await
                .code,
            201
        );
    }
    let a = assigned_cidr(&server, "n-a").await;
    let b = assigned_cidr(&server, "n-b").await;
    let mut got = [a.clone(), b.clone()];
    got.sort();
    assert_eq!(got, ["10.244.0.0/24", "10.244.1.0/24"]);

    // Set once: a change is refused like Kubernetes does.
    let moved = client
        .patch(
            "/api/v1/nodes/n-a",
            "application/merge-patch+json",
            r#"{"spec":{"podCIDR":"10.244.3.0/24","podCIDRs":["10.244.3.0/24"]}}"#,
        )
        .await;
    assert_eq!(moved.code, 422, "{}", moved.body);
    assert_eq!(moved.body["details"]["causes"][0]["field"], "spec.podCIDRs");

    // A Node that brings its own CIDR keeps it, and it is not handed out again.
    let own = node_json("n-own", json!({"podCIDR": "10.244.2.0/24"}));
    assert_eq!(client.post("/api/v1/nodes", &own).await.code, 201);

    // Deleting a Node frees its CIDR for the next one.
    assert_eq!(client.delete("/api/v1/nodes/n-a", None).await.code, 200);
    assert_eq!(
        client
            .post("/api/v1/nodes", &node_json("n-c", json!({})))
            .await
            .code,
        201
    );
    assert_eq!(assigned_cidr(&server, "n-c").await, a);

    // After a restart the set is rebuilt from the Nodes: the last free one goes next, then
    // the range is exhausted and the Node gets a Warning Event.
    server.kill();
    server.spawn().await;
    for name in ["n-d", "n-e"] {
        assert_eq!(
            client
                .post("/api/v1/nodes", &node_json(name, json!({})))
                .await
                .code,
            201
        );
    }
    let d = assigned_cidr(&server, "n-d").await;
    assert_eq!(d, "10.244.3.0/24");
    wait_for(
        "a CIDRNotAvailable event for n-e",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let events = client.get("/api/v1/namespaces/default/events").await;
                let items = events.body["items"].as_array()?.clone();
                items
                    .iter()
                    .any(|e| {
                        e["reason"] == "CIDRNotAvailable"
                            && e["involvedObject"]["name"] == "n-e"
                            && e["type"] == "Warning"
                    })
                    .then_some(())
            }
        },
    )
    .await;
    let e = client.get("/api/v1/nodes/n-e").await;
    assert!(e.body["spec"].get("podCIDR").is_none(), "{}", e.body);
}

#[tokio::test]
async fn pods_reach_each_other_on_one_node_and_across_nodes() {
    if !root_or_skip("pods_reach_each_other_on_one_node_and_across_nodes") {
        return;
    }
    let cluster = TwoNodeCluster::start().await;
    let (a, b) = (cluster.node_name(0), cluster.node_name(1));
    let (cidr_a, cidr_b) = (cluster.pod_cidr(0).await, cluster.pod_cidr(1).await);
    assert_ne!(cidr_a, cidr_b, "each node has its own pod CIDR");

    cluster.create(httpd_pod("web-a", a)).await;
    cluster.create(httpd_pod("web-b", b)).await;
    cluster
        .create(busybox_pod("client-a", a, "sleep 3600"))
        .await;
    let web_a = cluster.wait_running("web-a").await.to_string();
    let web_b = cluster.wait_running("web-b").await.to_string();
    cluster.wait_running("client-a").await;
    let prefix = |cidr: &str| cidr.trim_end_matches("0/24").to_string();
    assert!(web_a.starts_with(&prefix(&cidr_a)), "{web_a} in {cidr_a}");
    assert!(web_b.starts_with(&prefix(&cidr_b)), "{web_b} in {cidr_b}");

    // Each node routes the other's pod CIDR via the other's address, marked as the agent's.
    for (i, other_cidr, other) in [(0, &cidr_b, 1), (1, &cidr_a, 0)] {
        let via = cluster.node_ip(other).to_string();
        let cidr = other_cidr.clone();
        wait_for(
            &format!("node {i}'s route to {cidr}"),
            Duration::from_secs(30),
            || {
                let out = cluster.in_node(i, &["ip", "-4", "route", "show", "proto", "83"]);
                let routes = String::from_utf8_lossy(&out.stdout).into_owned();
                let want = format!("{cidr} via {via} ");
                std::future::ready(routes.contains(&want).then_some(()))
            },
        )
        .await;
    }

    let same_node = fetch(&cluster, "client-a", &web_a);
    assert_eq!(
        same_node.code, 0,
        "{}{}",
        same_node.stdout, same_node.stderr
    );
    assert_eq!(same_node.stdout.trim(), "web-a");
    let across = fetch(&cluster, "client-a", &web_b);
    assert_eq!(across.code, 0, "{}{}", across.stdout, across.stderr);
    assert_eq!(across.stdout.trim(), "web-b");
}

#[tokio::test]
async fn node_routes_follow_nodes_coming_and_going() {
    if !root_or_skip("node_routes_follow_nodes_coming_and_going") {
        return;
    }
    let cluster = TwoNodeCluster::start().await;
    let client = cluster.server.client();
    // A third Node (no agent) on the lab subnet: both agents route to its CIDR.
    let ghost_ip = format!("{}", cluster.lab().plan().node_ip(9));
    let ghost = node_json("ghost", json!({"podCIDR": "10.244.77.0/24"}));
    assert_eq!(client.post("/api/v1/nodes", &ghost).await.code, 201);
    let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ghost_ip}]}});
    let patched = client
        .patch(
            "/api/v1/nodes/ghost/status",
            "application/merge-patch+json",
            &status.to_string(),
        )
        .await;
    assert_eq!(patched.code, 200, "{}", patched.body);
    let route_to_ghost = |i: usize| {
        let out = cluster.in_node(i, &["ip", "-4", "route", "show", "proto", "83"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!("10.244.77.0/24 via {ghost_ip}"))
    };
    for i in 0..2 {
        wait_for("a route to the new node", Duration::from_secs(30), || {
            std::future::ready(route_to_ghost(i).then_some(()))
        })
        .await;
    }
    // A route somebody else made in the same range is left alone.
    let foreign = cluster.in_node(
        0,
        &["ip", "route", "add", "10.244.88.0/24", "via", &ghost_ip],
    );
    assert!(foreign.status.success(), "{foreign:?}");

    assert_eq!(client.delete("/api/v1/nodes/ghost", None).await.code, 200);
    for i in 0..2 {
        wait_for("the stale route to go", Duration::from_secs(30), || {
            std::future::ready((!route_to_ghost(i)).then_some(()))
        })
        .await;
    }
    let left = cluster.in_node(0, &["ip", "-4", "route", "show", "10.244.88.0/24"]);
    assert!(
        String::from_utf8_lossy(&left.stdout).contains("10.244.88.0/24"),
        "the foreign route was removed"
    );
}

#[tokio::test]
async fn nothing_leaves_the_lab() {
    if !root_or_skip("nothing_leaves_the_lab") {
        return;
    }
    let cluster = TwoNodeCluster::start().await;
    for i in 0..2 {
        let routes = cluster.in_node(i, &["ip", "-4", "route", "show"]);
        let routes = String::from_utf8_lossy(&routes.stdout);
        assert!(
            !routes.contains("default"),
            "node {i} has a default route:\n{routes}"
        );
        let table = cluster.in_node(i, &["ip", "-4", "route", "show", "type", "unreachable"]);
        let table = String::from_utf8_lossy(&table.stdout);
        for cidr in ["10.244.0.0/16", "10.96.0.0/16"] {
            assert!(
                table.contains(cidr),
                "node {i} has no unreachable route for {cidr}:\n{table}"
            );
        }
        // An address outside the lab is unroutable from the node itself.
        let out = cluster.in_node(i, &["ip", "route", "get", "192.0.2.1"]);
        assert!(!out.status.success(), "node {i} can route off the machine");
    }

    // From a pod: an unassigned pod IP, an unassigned Service IP (unreachable routes) and an
    // address outside the machine (no route at all) fail at once with an ICMP error from the
    // node, instead of leaving or hanging.
    cluster
        .create(busybox_pod("prober", cluster.node_name(1), "sleep 3600"))
        .await;
    cluster.wait_running("prober").await;
    for target in ["10.244.200.9", "10.96.200.200", "192.0.2.1"] {
        let started = Instant::now();
        let out = fetch(&cluster, "prober", target);
        let took = started.elapsed();
        assert_ne!(out.code, 0, "{target} answered: {}", out.stdout);
        assert!(
            ["No route to host", "unreachable"]
                .iter()
                .any(|m| out.stdout.contains(m) || out.stderr.contains(m)),
            "{target}: expected an ICMP unreachable error, got {}{}",
            out.stdout,
            out.stderr
        );
        assert!(took < Duration::from_secs(8), "{target} took {took:?}");
    }
}
