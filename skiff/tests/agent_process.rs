//! The real node agent with the `process` driver (plain host processes) end to end: a real
//! `skiff server` schedules pods to a real `skiff agent`, which runs them, restarts them per
//! policy with crash-loop back-off, reports Kubernetes' reasons for bad input, honours grace
//! periods, and adopts its containers after a restart.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use runtime::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use support::agent::{TestAgent, create, phase, pod, status_of};
use support::{TestServer, wait_for};

async fn cluster() -> (TestServer, TestAgent) {
    let server = TestServer::start_server().await;
    let agent = TestAgent::start(&server, "proc-node", "process", &[]).await;
    (server, agent)
}

fn shell(script: &str) -> Value {
    json!({"name": "main", "image": "busybox", "command": ["sh", "-c", script]})
}

fn waiting_reason(p: &Pod) -> Option<String> {
    status_of(p)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

/// Waits until `check` accepts the pod `name`.
async fn wait_pod(
    api: &Api<Pod>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Pod) -> bool,
) -> Pod {
    support::agent::wait_pod(api, name, what, timeout, check).await
}

#[tokio::test]
async fn a_pod_runs_logs_and_is_deleted_within_its_grace_period() {
    let (server, agent) = cluster().await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    // The process driver runs host processes, so hook and container can both append to a
    // file the test reads: the preStop hook must run before SIGTERM.
    let order = agent.data_dir.join("stop-order");
    let o = order.display();
    let script = format!(
        "trap 'echo term >> {o}; echo got TERM; sleep 1; exit 0' TERM; echo hello; while true; do sleep 0.1; done"
    );
    let mut web = shell(&script);
    web["lifecycle"] =
        json!({"preStop": {"exec": {"command": ["sh", "-c", format!("echo prestop >> {o}")]}}});
    create(
        &api,
        pod(
            "web",
            json!({"containers": [web], "terminationGracePeriodSeconds": 10}),
        ),
    )
    .await;
    let running = wait_pod(&api, "web", "web Running", Duration::from_secs(30), |p| {
        phase(p) == "Running" && status_of(p).is_some_and(|c| c.ready)
    })
    .await;
    let uid = running.metadata.uid.clone().unwrap_or_default();
    let log = agent
        .data_dir
        .join("logs")
        .join(format!("default_web_{uid}"))
        .join("main")
        .join("0.log");
    let text = wait_for("the log line", Duration::from_secs(10), || async {
        let t = std::fs::read_to_string(&log).ok()?;
        t.contains("hello").then_some(t)
    })
    .await;
    let first = text.lines().next().unwrap_or_default();
    let fields: Vec<&str> = first.splitn(4, ' ').collect();
    assert_eq!(
        fields.get(1..),
        Some(&["stdout", "F", "hello"][..]),
        "CRI log format: {first}"
    );

    let started = Instant::now();
    api.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("the pod to be gone", Duration::from_secs(30), || async {
        api.get("web")
            .await
            .err()
            .filter(|e| e.is_not_found())
            .map(|_| ())
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the trap's 1 s ran before the deletion was confirmed"
    );
    assert_eq!(
        std::fs::read_to_string(&order).unwrap_or_default(),
        "prestop\nterm\n",
        "preStop hook, then SIGTERM"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.is_empty() || !log.exists(), "logs go with the pod");
}

#[tokio::test]
async fn crashing_container_backs_off_with_growing_delays() {
    let (server, _agent) = cluster().await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    create(
        &api,
        pod("crash", json!({"containers": [shell("echo boom; exit 2")]})),
    )
    .await;
    // Restart times: with 1 s doubling, the gaps between restarts grow.
    let mut seen: Vec<(i32, Instant)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 4 && Instant::now() < deadline {
        if let Ok(p) = api.get("crash").await
            && let Some(c) = status_of(&p)
            && seen.last().is_none_or(|(n, _)| *n != c.restart_count)
        {
            seen.push((c.restart_count, Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.len() >= 4, "restarts seen: {seen:?}");
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(
        gaps[2] > gaps[0],
        "back-off grows between restarts: {gaps:?}"
    );
    let p = wait_pod(
        &api,
        "crash",
        "CrashLoopBackOff",
        Duration::from_secs(30),
        |p| waiting_reason(p).as_deref() == Some("CrashLoopBackOff"),
    )
    .await;
    let c = status_of(&p).cloned().unwrap_or_default();
    let last = c.last_state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!(last.exit_code, 2);
    assert_eq!(last.reason.as_deref(), Some("Error"));
}

#[tokio::test]
async fn restart_policies_end_in_succeeded_or_failed() {
    let (server, _agent) = cluster().await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    create(
        &api,
        pod(
            "ok",
            json!({"restartPolicy": "Never", "containers": [shell("exit 0")]}),
        ),
    )
    .await;
    create(
        &api,
        pod(
            "bad",
            json!({"restartPolicy": "Never", "containers": [shell("exit 3")]}),
        ),
    )
    .await;
    create(
        &api,
        pod(
            "retry",
            json!({"restartPolicy": "OnFailure", "containers": [shell("exit 0")]}),
        ),
    )
    .await;
    let ok = wait_pod(&api, "ok", "ok Succeeded", Duration::from_secs(30), |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let t = status_of(&ok)
        .and_then(|c| c.state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    let bad = wait_pod(&api, "bad", "bad Failed", Duration::from_secs(30), |p| {
        phase(p) == "Failed"
    })
    .await;
    let t = status_of(&bad)
        .and_then(|c| c.state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    let retry = wait_pod(
        &api,
        "retry",
        "retry Succeeded",
        Duration::from_secs(30),
        |p| phase(p) == "Succeeded",
    )
    .await;
    assert_eq!(status_of(&retry).map(|c| c.restart_count), Some(0));
}

#[tokio::test]
async fn bad_input_gets_kubernetes_reasons_while_other_pods_run() {
    let (server, _agent) = cluster().await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    create(
        &api,
        pod("good", json!({"containers": [shell("sleep 3600")]})),
    )
    .await;
    create(&api, pod("nocmd", json!({"containers": [{"name": "main", "image": "busybox", "command": ["/no/such/binary"]}]}))).await;
    create(&api, pod("nocm", json!({"containers": [{
        "name": "main", "image": "busybox", "command": ["sleep", "3600"],
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}}],
    }]}))).await;
    let p = wait_pod(
        &api,
        "nocmd",
        "RunContainerError",
        Duration::from_secs(30),
        |p| {
            matches!(
                waiting_reason(p).as_deref(),
                Some("RunContainerError" | "CrashLoopBackOff")
            ) && status_of(p)
                .and_then(|c| c.last_state.clone()?.terminated)
                .is_some()
        },
    )
    .await;
    let last = status_of(&p)
        .and_then(|c| c.last_state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (128, Some("StartError"))
    );
    let p = wait_pod(
        &api,
        "nocm",
        "CreateContainerConfigError",
        Duration::from_secs(30),
        |p| waiting_reason(p).as_deref() == Some("CreateContainerConfigError"),
    )
    .await;
    let message = status_of(&p)
        .and_then(|c| c.state.clone()?.waiting?.message)
        .unwrap_or_default();
    assert!(
        message.contains("configmap \"missing\" not found"),
        "{message}"
    );
    wait_pod(&api, "good", "good Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    })
    .await;
}

#[tokio::test]
async fn env_from_configmap_secret_and_downward_api() {
    let (server, agent) = cluster().await;
    let client = server.runtime_client();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
        "metadata": {"name": "cfg"}, "data": {"color": "blue"}}))
        .expect("cm"),
    )
    .await
    .expect("create cm");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
        "metadata": {"name": "sec"}, "stringData": {"password": "hunter2"}}))
            .expect("secret"),
        )
        .await
        .expect("create secret");
    let api: Api<Pod> = Api::namespaced(client, "default");
    create(&api, pod("env", json!({"restartPolicy": "Never", "containers": [{
        "name": "main", "image": "busybox",
        "command": ["sh", "-c", "echo color=$COLOR pw=$PW pod=$POD ns=$NS node=$NODE greeting=$(GREETING)"],
        "env": [
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "GREETING", "value": "hi-$(COLOR)"},
        ],
    }]}))).await;
    let p = wait_pod(&api, "env", "env Succeeded", Duration::from_secs(30), |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let log = agent
        .data_dir
        .join("logs")
        .join(format!("default_env_{uid}"))
        .join("main")
        .join("0.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("color=blue pw=hunter2 pod=env ns=default node=proc-node greeting=hi-blue"),
        "{text}"
    );
}

#[tokio::test]
async fn restarted_agent_adopts_its_running_containers() {
    let (server, mut agent) = cluster().await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    create(
        &api,
        pod("keep", json!({"containers": [shell("sleep 3600")]})),
    )
    .await;
    let before = wait_pod(&api, "keep", "keep Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    })
    .await;
    let started = status_of(&before).and_then(|c| c.state.clone()?.running?.started_at);
    let id = status_of(&before).and_then(|c| c.container_id.clone());
    agent.kill();
    agent.spawn();
    // The restarted agent finds the same container instead of starting a new one.
    let after = wait_pod(
        &api,
        "keep",
        "keep still Running",
        Duration::from_secs(30),
        |p| phase(p) == "Running",
    )
    .await;
    let c = status_of(&after).cloned().unwrap_or_default();
    assert_eq!(c.restart_count, 0);
    assert_eq!(c.container_id, id);
    assert_eq!(
        c.state.and_then(|s| s.running).and_then(|r| r.started_at),
        started
    );
    // And it still looks after the pod: deleting it works.
    api.delete(
        "keep",
        &DeleteParams {
            grace_period_seconds: Some(1),
            ..Default::default()
        },
    )
    .await
    .expect("delete");
    wait_for("keep to be gone", Duration::from_secs(30), || async {
        api.get("keep")
            .await
            .err()
            .filter(|e| e.is_not_found())
            .map(|_| ())
    })
    .await;
}
