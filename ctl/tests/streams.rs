//! `logs` and `exec` through a real `skiff apiserver`: skiffctl and the real kubectl must print
//! the same thing. This file covers what the API server answers on its own (pod not bound,
//! node missing, kubelet unreachable, container choice); `streams_e2e.rs`-style tests with a
//! running kubelet server are below, over the real process driver.

mod common;

use common::support::TestServer;
use common::{Both, Out};
use serde_json::{Value, json};

/// Runs `args` with both tools and asserts the same exit code, stdout and stderr.
fn same(both: &Both, args: &[&str]) -> Out {
    let a = both.skiffctl(args, None);
    let b = both.kubectl(args, None);
    assert_eq!(
        (a.code, &a.stdout, &a.stderr),
        (b.code, &b.stdout, &b.stderr),
        "skiffctl (left) and kubectl (right) differ for {args:?}"
    );
    a
}

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    ct: &str,
    body: Value,
) -> Value {
    let resp = reqwest::Client::new()
        .request(method.clone(), format!("{}{path}", server.url))
        .header("content-type", ct)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    assert!(
        resp.status().is_success(),
        "{method} {path}: {}",
        resp.status()
    );
    resp.json().await.expect("json")
}

/// A Node whose kubelet is said to listen on 127.0.0.1:`port`.
pub async fn node(server: &TestServer, name: &str, port: u16) {
    send(
        server,
        reqwest::Method::POST,
        "/api/v1/nodes",
        "application/json",
        json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        }),
    )
    .await;
    send(server, reqwest::Method::PATCH, &format!("/api/v1/nodes/{name}/status"), "application/merge-patch+json", json!({
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        },
    }))
    .await;
}

/// A pod bound to `node` (empty: unbound) with the given containers.
pub async fn pod(server: &TestServer, name: &str, node: &str, containers: &[&str]) {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox"}))
        .collect();
    let mut spec = json!({"containers": containers});
    if !node.is_empty() {
        spec["nodeName"] = json!(node);
    }
    send(
        server,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/pods",
        "application/json",
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec,
        }),
    )
    .await;
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_server_refuses_what_it_cannot_proxy_like_kubernetes() {
    let server = TestServer::start(&[]).await;
    let both = Both { server: &server };
    node(&server, "dead", closed_port()).await;
    pod(&server, "unbound", "", &["app"]).await;
    pod(&server, "orphan", "ghost", &["app"]).await;
    pod(&server, "stranded", "dead", &["app"]).await;
    pod(&server, "pair", "dead", &["web", "side"]).await;

    for args in [
        ["logs", "unbound"].as_slice(),
        &["exec", "unbound", "--", "ls"],
    ] {
        let out = same(&both, args);
        assert_eq!(out.code, 1);
        assert_eq!(
            out.stderr,
            "Error from server (BadRequest): pod unbound does not have a host assigned\n",
            "{args:?}"
        );
    }
    let out = same(&both, &["logs", "orphan"]);
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): nodes \"ghost\" not found\n"
    );
    for args in [
        ["logs", "stranded"].as_slice(),
        &["exec", "stranded", "--", "ls"],
    ] {
        let out = same(&both, args);
        assert!(
            out.stderr
                .starts_with("Error from server (ServiceUnavailable): error dialing backend:"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // `logs` checks -c against the pod itself; `exec` leaves it to the API server.
    let out = same(&both, &["logs", "pair", "-c", "nope"]);
    assert_eq!(
        out.stderr,
        "error: container nope is not valid for pod pair\n"
    );
    let out = same(&both, &["exec", "pair", "-c", "nope", "--", "ls"]);
    assert_eq!(
        out.stderr,
        "Error from server (BadRequest): container nope is not valid for pod pair\n"
    );
    // Without a container, clients pick one; the API alone names the choices.
    let resp = reqwest::get(format!(
        "{}/api/v1/namespaces/default/pods/pair/log",
        server.url
    ))
    .await
    .expect("GET log");
    assert_eq!(resp.status(), 400);
    let status: Value = resp.json().await.expect("status");
    assert_eq!(
        status["message"],
        "a container name must be specified for pod pair, choose one of: [web side]"
    );
    let missing = same(&both, &["logs", "nope"]);
    assert_eq!(
        missing.stderr,
        "error: error from server (NotFound): pods \"nope\" not found in namespace \"default\"\n"
    );
    let missing = same(&both, &["logs", "deploy/nope"]);
    assert!(
        missing
            .stderr
            .contains("deployments.apps \"nope\" not found"),
        "{}",
        missing.stderr
    );
    let missing = same(&both, &["exec", "nope", "--", "ls"]);
    assert_eq!(
        missing.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
}
