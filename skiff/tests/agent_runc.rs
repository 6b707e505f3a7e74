//! The real node agent with the `runc` driver end to end (root only; CI runs as root): real
//! OCI images in the node's store, runc containers on overlayfs, a network namespace per pod
//! on a CNI bridge, probes, volumes, memory limits, and the real kubectl's `exec` and `logs`.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use runtime::{Api, PostParams};
use serde_json::{Value, json};
use support::agent::TestAgent;
use support::{TestServer, wait_for};

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping {test}: the runc driver needs root; CI runs as root");
    }
    root
}

async fn cluster(node: &str) -> (TestServer, TestAgent) {
    let server = TestServer::start_server().await;
    let agent = TestAgent::start(&server, node, "runc", &[]).await;
    (server, agent)
}

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .expect("pod")
}

fn busybox(script: &str) -> Value {
    json!({"name": "main", "image": "busybox:latest", "imagePullPolicy": "Never",
           "command": ["sh", "-c", script]})
}

async fn create(api: &Api<Pod>, p: Pod) {
    api.create(&PostParams::default(), &p)
        .await
        .expect("create pod");
}

fn status_of(p: &Pod) -> Option<&ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first()
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn wait_pod(api: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    support::agent::wait_pod(api, name, what, Duration::from_secs(60), check).await
}

#[tokio::test]
async fn pods_reach_each_other_and_readiness_follows_the_probe() {
    if !root_or_skip("pods_reach_each_other_and_readiness_follows_the_probe") {
        return;
    }
    let (server, _agent) = cluster("runc-net").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    let mut web = busybox("httpd -f -p 8080 -h /www");
    web["readinessProbe"] = json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1});
    create(&api, pod("web", json!({"containers": [web]}))).await;
    create(
        &api,
        pod("client", json!({"containers": [busybox("sleep 3600")]})),
    )
    .await;
    let web = wait_pod(&api, "web", "web Ready", pod_ready).await;
    wait_pod(&api, "client", "client Running", |p| phase(p) == "Running").await;
    let ip = web
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("web has a pod IP");
    assert!(
        ip.starts_with("10.244."),
        "pod IP from the node's CIDR: {ip}"
    );
    let out = server.kubectl(&[
        "exec",
        "client",
        "--",
        "wget",
        "-qO-",
        &format!("http://{ip}:8080/"),
    ]);
    assert_eq!(out.ok().trim(), "hello from skiff");

    // Readiness flips both ways with the probe's answer.
    server
        .kubectl(&[
            "exec",
            "web",
            "--",
            "mv",
            "/www/index.html",
            "/www/gone.html",
        ])
        .ok();
    wait_pod(&api, "web", "web not Ready", |p| !pod_ready(p)).await;
    server
        .kubectl(&[
            "exec",
            "web",
            "--",
            "mv",
            "/www/gone.html",
            "/www/index.html",
        ])
        .ok();
    let web = wait_pod(&api, "web", "web Ready again", pod_ready).await;
    assert_eq!(
        status_of(&web).map(|c| c.restart_count),
        Some(0),
        "readiness never restarts"
    );
}

#[tokio::test]
async fn failing_liveness_probe_restarts_the_container() {
    if !root_or_skip("failing_liveness_probe_restarts_the_container") {
        return;
    }
    let (server, _agent) = cluster("runc-live").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    let mut c = busybox("touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600");
    c["livenessProbe"] = json!({"exec": {"command": ["cat", "/tmp/healthy"]},
                                "periodSeconds": 1, "failureThreshold": 1});
    create(&api, pod("live", json!({"containers": [c]}))).await;
    let p = wait_pod(&api, "live", "a liveness restart", |p| {
        status_of(p).is_some_and(|c| c.restart_count >= 1)
    })
    .await;
    let last = status_of(&p)
        .and_then(|c| c.last_state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!(last.exit_code, 137, "killed after the failed probe");
    let events = server.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
    ]);
    assert!(events.ok().contains("Unhealthy"), "{}", events.stdout);
}

#[tokio::test]
async fn memory_limit_gives_oomkilled() {
    if !root_or_skip("memory_limit_gives_oomkilled") {
        return;
    }
    let (server, _agent) = cluster("runc-oom").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    // The shell itself holds the 64 MB, so the container's main process is the one killed.
    let mut c = busybox("x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}");
    c["resources"] = json!({"limits": {"memory": "16Mi"}});
    create(
        &api,
        pod("oom", json!({"restartPolicy": "Never", "containers": [c]})),
    )
    .await;
    let p = wait_pod(&api, "oom", "OOMKilled", |p| {
        status_of(p)
            .and_then(|c| c.state.clone()?.terminated)
            .is_some()
    })
    .await;
    let t = status_of(&p)
        .and_then(|c| c.state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!(t.reason.as_deref(), Some("OOMKilled"), "{t:?}");
    assert_eq!(t.exit_code, 137);
}

#[tokio::test]
async fn restarted_agent_leaves_runc_containers_running() {
    if !root_or_skip("restarted_agent_leaves_runc_containers_running") {
        return;
    }
    let (server, mut agent) = cluster("runc-adopt").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    create(
        &api,
        pod(
            "keep",
            json!({"containers": [busybox("echo started; sleep 3600")]}),
        ),
    )
    .await;
    let before = wait_pod(&api, "keep", "keep Running", |p| phase(p) == "Running").await;
    let id = status_of(&before).and_then(|c| c.container_id.clone());
    agent.kill();
    // The container outlives its agent.
    let alive = server.kubectl(&["get", "pod", "keep", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(alive.ok(), "Running");
    agent.spawn();
    let out = wait_for(
        "exec through the restarted agent",
        Duration::from_secs(60),
        || async {
            let o = server.kubectl(&["exec", "keep", "--", "echo", "still here"]);
            (o.code == 0).then_some(o.stdout)
        },
    )
    .await;
    assert_eq!(out.trim(), "still here");
    let after = api.get("keep").await.expect("keep");
    let c = status_of(&after).cloned().unwrap_or_default();
    assert_eq!(c.restart_count, 0);
    assert_eq!(c.container_id, id);
    let logs = server.kubectl(&["logs", "keep"]);
    assert_eq!(logs.ok().trim(), "started");
}

#[tokio::test]
async fn volumes_are_mounted_into_containers() {
    if !root_or_skip("volumes_are_mounted_into_containers") {
        return;
    }
    let (server, _agent) = cluster("runc-vol").await;
    let client = server.runtime_client();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let cm = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg"}, "data": {"color": "blue"}}))
    .expect("configmap");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let api: Api<Pod> = Api::namespaced(client, "default");
    // The init container leaves a file in the shared emptyDir; the main container checks
    // every volume and exits 0 only when all are right (a read-only mount must refuse writes).
    let mut init = busybox(
        "echo hi > /scratch/from-init; mkdir -p /scratch/nested; echo hi > /scratch/nested/here",
    );
    init["name"] = json!("init");
    init["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch"}]);
    let mut main = busybox(
        "set -x; test \"$(cat /cfg/color)\" = blue || exit 1; \
         test \"$(cat /scratch/from-init)\" = hi || exit 2; \
         grep -q 'app=\"vol\"' /info/labels || exit 3; \
         test \"$(cat /sub/here)\" = hi || exit 4; \
         if touch /cfg/new 2>/dev/null; then exit 5; fi; exit 0",
    );
    main["volumeMounts"] = json!([
        {"name": "cfg", "mountPath": "/cfg", "readOnly": true},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "scratch", "mountPath": "/sub", "subPath": "nested"},
        {"name": "info", "mountPath": "/info"}
    ]);
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "vol", "namespace": "default", "labels": {"app": "vol"}},
        "spec": {"restartPolicy": "Never", "initContainers": [init], "containers": [main],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
            ]}
    }))
    .expect("pod");
    create(&api, p).await;
    let p = wait_pod(&api, "vol", "the volume checks to finish", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    let t = status_of(&p)
        .and_then(|c| c.state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!((phase(&p), t.exit_code), ("Succeeded", 0), "{t:?}");
}
