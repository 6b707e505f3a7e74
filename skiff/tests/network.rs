//! The pod network across nodes, with real runc pods in a two-node lab (each node agent in a
//! network namespace of its own, joined by a bridge): pods reach each other on one node and
//! across nodes, and nothing they send leaves the namespaces the test made.

mod support;

use support::cluster::{TwoNodeCluster, busybox_pod, httpd_pod, root_or_skip};

/// `wget` from pod `client` to `http://ip/`, killed after 10 s (busybox's own `wget -T`
/// crashes in this build); returns the output.
fn fetch(cluster: &TwoNodeCluster, client: &str, ip: &str) -> support::KubectlOutput {
    cluster.exec(
        client,
        &["timeout", "10", "wget", "-qO-", &format!("http://{ip}/")],
    )
}

#[tokio::test]
async fn pods_reach_each_other_on_one_node() {
    if !root_or_skip("pods_reach_each_other_on_one_node") {
        return;
    }
    let cluster = TwoNodeCluster::start().await;
    let node = cluster.node_name(0);
    cluster.create(httpd_pod("web-a", node)).await;
    cluster
        .create(busybox_pod("client-a", node, "sleep 3600"))
        .await;
    let web_ip = cluster.wait_running("web-a").await.to_string();
    cluster.wait_running("client-a").await;
    let out = fetch(&cluster, "client-a", &web_ip);
    assert_eq!(out.code, 0, "wget failed: {}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "web-a");
}

#[tokio::test]
async fn node_namespaces_have_no_way_out() {
    if !root_or_skip("node_namespaces_have_no_way_out") {
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
        let table = cluster.in_node(i, &["ip", "-4", "route", "show", "type", "blackhole"]);
        let table = String::from_utf8_lossy(&table.stdout);
        for cidr in ["10.244.0.0/16", "10.96.0.0/16"] {
            assert!(
                table.contains(cidr),
                "node {i} has no blackhole for {cidr}:\n{table}"
            );
        }
        // An address outside the lab is unroutable from the node itself.
        let out = cluster.in_node(i, &["ip", "route", "get", "192.0.2.1"]);
        assert!(!out.status.success(), "node {i} can route off the machine");
    }
}
