//! `logs` and `exec` through a real `skiff apiserver`: skiffctl and the real kubectl must print
//! the same thing. First what the API server answers on its own (pod not bound, node missing,
//! kubelet unreachable, container choice), then the whole path to containers of the process
//! driver behind a real kubelet API server (`common/test_node.rs`; build `skiff` first).

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
    let resp = server
        .http()
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
    // exec is an upgrade or nothing.
    let resp = server
        .http()
        .get(format!(
            "{}/api/v1/namespaces/default/pods/stranded/exec?command=ls&stdout=true",
            server.url
        ))
        .send()
        .await
        .expect("GET exec");
    assert_eq!(resp.status(), 400);
    let status: Value = resp.json().await.expect("status");
    assert_eq!(status["message"], "Upgrade request required");
    // Without a container, clients pick one; the API alone names the choices.
    let resp = server
        .http()
        .get(format!(
            "{}/api/v1/namespaces/default/pods/pair/log",
            server.url
        ))
        .send()
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

#[path = "common/test_node.rs"]
mod test_node;

/// Runs `bin args` and returns once a stdout line contains `want` (then kills it): for
/// `logs -f`, which only ends with the container.
fn follow_until(bin: &str, server: &TestServer, args: &[&str], want: &str) -> Vec<String> {
    use std::io::BufRead;
    let home = server.kubeconfig.parent().expect("dir").join("home");
    let mut child = std::process::Command::new(bin)
        .args(args)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("HOME", &home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains(want)) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("{bin} {args:?}: no {want:?} in {lines:?}");
            }
        }
    }
    // Still streaming: following does not end while the container runs.
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "{bin} exited early"
    );
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_and_exec_reach_the_container_through_the_api_server() {
    let server = TestServer::start(&[]).await;
    let kubelet = test_node::TestNode::start().await;
    let both = Both { server: &server };
    node(&server, "node-1", kubelet.addr.port()).await;
    pod(&server, "web", "node-1", &["app"]).await;
    kubelet.run(
        "default",
        "web",
        "app",
        0,
        &["sh", "-c", "echo one; sleep 0.3; echo two; exec sleep 60"],
    );
    pod(&server, "ticker", "node-1", &["app"]).await;
    kubelet.run(
        "default",
        "ticker",
        "app",
        0,
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
        ],
    );

    // The shim writes asynchronously: wait for the whole log first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !both.skiffctl(&["logs", "web"], None).stdout.contains("two") {
        assert!(std::time::Instant::now() < deadline, "web never logged two");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(same(&both, &["logs", "web"]).stdout, "one\ntwo\n");
    assert_eq!(
        same(&both, &["logs", "pod/web", "--tail=1"]).stdout,
        "two\n"
    );
    let stamped = same(
        &both,
        &["logs", "web", "-c", "app", "--timestamps", "--since=1h"],
    );
    assert!(
        stamped.stdout.lines().all(|l| l.contains("Z ")),
        "{}",
        stamped.stdout
    );
    assert_eq!(
        same(&both, &["logs", "web", "--limit-bytes=3"]).stdout,
        "one"
    );
    // Bad options are the kubelet's 422, relayed unchanged.
    let resp = server
        .http()
        .get(format!(
            "{}/api/v1/namespaces/default/pods/web/log?tailLines=-1&sinceSeconds=0",
            server.url
        ))
        .send()
        .await
        .expect("GET log");
    assert_eq!(resp.status(), 422);
    let status: Value = resp.json().await.expect("status");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "PodLogOptions \"web\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, sinceSeconds: Invalid value: 0: must be greater than 0]"
    );

    for bin in [common::SKIFFCTL, common::KUBECTL] {
        let lines = follow_until(bin, &server, &["logs", "-f", "ticker"], "tick 3");
        assert_eq!(lines[..3], ["tick 1", "tick 2", "tick 3"], "{bin}");
    }

    // A controller's pods: the scheduled one is used, and both tools say so.
    both.kubectl(
        &["create", "-f", "-"],
        Some(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: app, image: busybox}]}\n",
        ),
    )
    .ok();
    for (name, node_name) in [("x-pending", ""), ("x-running", "node-1")] {
        let mut spec = json!({"containers": [{"name": "app", "image": "busybox"}]});
        if !node_name.is_empty() {
            spec["nodeName"] = json!(node_name);
        }
        send(
            &server,
            reqwest::Method::POST,
            "/api/v1/namespaces/default/pods",
            "application/json",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": "x"}}, "spec": spec,
            }),
        )
        .await;
    }
    kubelet.run(
        "default",
        "x-running",
        "app",
        0,
        &["sh", "-c", "echo from x; exec sleep 60"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !both
        .kubectl(&["logs", "x-running"], None)
        .stdout
        .contains("from x")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "x-running never logged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let out = same(&both, &["logs", "deployment/x"]);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("from x\n", "Found 2 pods, using pod/x-running\n")
    );

    // --previous reads the attempt before the newest; several containers: the first is used.
    pod(&server, "job", "node-1", &["task", "side"]).await;
    let first = kubelet.run("default", "job", "task", 0, &["sh", "-c", "echo first run"]);
    kubelet.wait_exited(&first).await;
    kubelet.run(
        "default",
        "job",
        "task",
        1,
        &["sh", "-c", "echo second run; exec sleep 60"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !both
        .kubectl(&["logs", "job", "-c", "task"], None)
        .stdout
        .contains("second")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "job never logged its second run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let previous = same(&both, &["logs", "job", "--previous"]);
    assert_eq!(
        (previous.stdout.as_str(), previous.stderr.as_str()),
        (
            "first run\n",
            "Defaulted container \"task\" out of: task, side\n"
        )
    );
    let out = same(&both, &["logs", "web", "-p"]);
    assert_eq!(
        out.stderr,
        "Error from server (BadRequest): previous terminated container \"app\" in pod \"web\" not found\n"
    );

    // exec: output, exit codes and stdin, through the API server's upgrade relay.
    let out = same(
        &both,
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\ncommand terminated with exit code 3\n");
    let ok = same(&both, &["exec", "web", "-c", "app", "--", "echo", "fine"]);
    assert_eq!((ok.code, ok.stdout.as_str()), (0, "fine\n"));
    for bin in [common::SKIFFCTL, common::KUBECTL] {
        let out = common::run(
            bin,
            &server.kubeconfig,
            &["exec", "-i", "web", "--", "cat"],
            Some("hello\nworld\n"),
        );
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "hello\nworld\n"),
            "{bin}: {}",
            out.stderr
        );
        // -t without a terminal: both warn and run without one.
        let out = common::run(
            bin,
            &server.kubeconfig,
            &["exec", "-it", "web", "--", "cat"],
            Some("tty?\n"),
        );
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (
                0,
                "tty?\n",
                "Unable to use a TTY - input is not a terminal or the right kind of file\n"
            ),
            "{bin}"
        );
    }
}
