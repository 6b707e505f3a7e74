//! The kubelet HTTPS API over a real driver: `containerLogs` options and follow, WebSocket
//! exec (stdout/stderr, stdin with v5 close, exit codes), and the `Status` answers.

#[path = "../../ctl/tests/common/test_node.rs"]
mod test_node;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use test_node::{TestNode, get_text, insecure_client, run_exec, websocket};

/// Polls the log until `want` shows up (the shim writes asynchronously).
async fn log_containing(node: &TestNode, path: &str, want: &str) -> String {
    let client = insecure_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = get_text(&client, &format!("{}{path}", node.url())).await;
        if code == 200 && body.contains(want) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "log {path} never contained {want:?}: {code} {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not a Status: {body:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn container_logs_honour_every_option() {
    let node = TestNode::start().await;
    // Records far enough apart in time that their order in the file is certain.
    node.run(
        "default",
        "web",
        "app",
        0,
        &[
            "sh",
            "-c",
            "echo err >&2; sleep 0.5; echo one; echo two; echo three; exec sleep 60",
        ],
    );
    let base = "/containerLogs/default/web/app";
    let all = log_containing(&node, base, "three\n").await;
    assert_eq!(all, "err\none\ntwo\nthree\n");
    let client = insecure_client();
    let get = |query: &str| {
        let url = format!("{}{base}?{query}", node.url());
        let client = client.clone();
        async move { get_text(&client, &url).await }
    };
    assert_eq!(get("tailLines=2").await, (200, "two\nthree\n".to_string()));
    assert_eq!(get("tailLines=0").await, (200, String::new()));
    assert_eq!(get("limitBytes=6").await, (200, "err\non".to_string()));
    assert_eq!(get("sinceSeconds=3600").await, (200, all.clone()));
    assert_eq!(
        get("sinceTime=2999-01-01T00:00:00Z").await,
        (200, String::new())
    );
    let (code, stamped) = get("timestamps=true&tailLines=1").await;
    assert_eq!(code, 200);
    let (ts, rest) = stamped.split_once(' ').expect("timestamp prefix");
    assert_eq!(rest, "three\n");
    let ts: jiff::Timestamp = ts.parse().expect("RFC 3339 timestamp");
    assert!(
        (jiff::Timestamp::now() - ts).get_seconds().abs() < 300,
        "{ts}"
    );

    let (code, body) = get("tailLines=-1").await;
    assert_eq!(code, 422);
    let status = status_of(&body);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "tailLines");
    let (code, body) = get("previous=true").await;
    assert_eq!(
        (code, status_of(&body)["message"].clone()),
        (
            400,
            json!("previous terminated container \"app\" in pod \"web\" not found")
        )
    );
    let (code, body) = get_text(
        &client,
        &format!("{}/containerLogs/default/nope/app", node.url()),
    )
    .await;
    assert_eq!(
        (code, status_of(&body)["reason"].clone()),
        (404, json!("NotFound"))
    );
    let (code, body) = get_text(
        &client,
        &format!("{}/containerLogs/default/web/nope", node.url()),
    )
    .await;
    assert_eq!(
        (code, status_of(&body)["message"].clone()),
        (400, json!("container nope is not valid for pod web"))
    );
    let (code, body) = get_text(&client, &format!("{}/healthz", node.url())).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_streams_until_the_container_exits_and_previous_reads_the_last_attempt() {
    let node = TestNode::start().await;
    let first = node.run("default", "job", "task", 0, &["sh", "-c", "echo first run"]);
    node.wait_exited(&first).await;
    node.run(
        "default",
        "job",
        "task",
        1,
        &[
            "sh",
            "-c",
            "echo start; sleep 1; echo middle; sleep 1; echo end",
        ],
    );
    let client = insecure_client();
    let url = format!("{}/containerLogs/default/job/task?follow=true", node.url());
    let resp = client.get(&url).send().await.expect("follow");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    let mut chunks = 0;
    let streamed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            chunks += 1;
        }
    })
    .await;
    assert!(
        streamed.is_ok(),
        "follow did not end after the container exited: {seen:?}"
    );
    assert_eq!(seen, "start\nmiddle\nend\n");
    assert!(
        chunks >= 2,
        "the log arrived in {chunks} chunk(s), not as it was written"
    );
    let (code, previous) = get_text(
        &client,
        &format!(
            "{}/containerLogs/default/job/task?previous=true",
            node.url()
        ),
    )
    .await;
    assert_eq!((code, previous.as_str()), (200, "first run\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_relays_stdio_and_exit_codes_over_websocket() {
    let node = TestNode::start().await;
    node.run("default", "web", "app", 0, &["sleep", "60"]);
    let client = insecure_client();
    let exec_url = |query: &str| format!("{}/exec/default/web/app?{query}", node.url());

    let ws = websocket(&client, &exec_url("command=sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262&stdout=true&stderr=true"), "v5.channel.k8s.io")
        .await
        .expect("upgrade");
    let out = run_exec(ws, None).await;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );
    assert_eq!(out.status, json!({"metadata": {}, "status": "Success"}));

    let ws = websocket(
        &client,
        &exec_url("command=cat&stdin=true&stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade");
    let out = run_exec(ws, Some(b"hello\n")).await;
    assert_eq!(out.stdout, "hello\n");
    assert_eq!(out.status["status"], "Success");

    for protocol in ["v5.channel.k8s.io", "v4.channel.k8s.io"] {
        let ws = websocket(
            &client,
            &exec_url("command=sh&command=-c&command=exit%203&stdout=true"),
            protocol,
        )
        .await
        .expect("upgrade");
        let out = run_exec(ws, None).await;
        assert_eq!(out.status["status"], "Failure", "{protocol}");
        assert_eq!(out.status["reason"], "NonZeroExitCode");
        assert_eq!(
            out.status["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
    }

    // A command that cannot start is a Failure status, not a hang.
    let ws = websocket(
        &client,
        &exec_url("command=%2Fno%2Fsuch%2Fbinary&stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade");
    let out = run_exec(ws, None).await;
    assert_eq!(out.status["status"], "Failure", "{:?}", out.status);

    // Refusals are Statuses, before any upgrade.
    let refused = |r: Result<_, (u16, String)>| match r {
        Err((code, body)) => (
            code,
            status_of(&body)["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        Ok(_) => panic!("upgrade accepted"),
    };
    let (code, message) =
        refused(websocket(&client, &exec_url("stdout=true"), "v5.channel.k8s.io").await);
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "you must specify at least one command for the container"
        )
    );
    let (code, message) = refused(
        websocket(
            &client,
            &exec_url("command=ls&stdout=true"),
            "channel.k8s.io",
        )
        .await,
    );
    assert_eq!(code, 400);
    assert!(message.contains("v5.channel.k8s.io"), "{message}");
    let spdy = client
        .post(exec_url("command=ls&stdout=true"))
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .send()
        .await
        .expect("POST");
    assert_eq!(spdy.status(), 400);
    let body = spdy.text().await.expect("body");
    assert!(
        status_of(&body)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not SPDY"),
        "{body}"
    );

    let done = node.run("default", "done", "app", 0, &["true"]);
    node.wait_exited(&done).await;
    let (code, message) = refused(
        websocket(
            &client,
            &format!(
                "{}/exec/default/done/app?command=ls&stdout=true",
                node.url()
            ),
            "v5.channel.k8s.io",
        )
        .await,
    );
    assert_eq!(
        (code, message.as_str()),
        (400, "container \"app\" in pod \"done\" is not running")
    );
}

/// A follower attached before the shim rotates the log (at 10 MiB, by renaming `0.log` to
/// `0.log.1`) gets every line exactly once and ends with the container.
#[tokio::test(flavor = "multi_thread")]
async fn follow_survives_the_shims_log_rotation() {
    let node = TestNode::start().await;
    // The bulk is written only once the follower has read the first line (so it certainly
    // has the file open before the rotation).
    let go = node.data_dir.join("go");
    let script = format!(
        "echo first; while [ ! -e {} ]; do sleep 0.05; done; \
         head -c 11000000 /dev/zero | tr '\\0' x | fold -w 1000; echo; echo last",
        go.display()
    );
    let id = node.run("default", "big", "app", 0, &["sh", "-c", &script]);
    let client = insecure_client();
    let url = format!("{}/containerLogs/default/big/app?follow=true", node.url());
    let mut seen = Vec::new();
    let streamed = tokio::time::timeout(Duration::from_secs(60), async {
        let resp = client.get(&url).send().await.expect("follow");
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            seen.extend_from_slice(&chunk.expect("chunk"));
            if seen.starts_with(b"first\n") && !go.exists() {
                std::fs::write(&go, b"").expect("signal the container");
            }
        }
    })
    .await;
    assert!(
        streamed.is_ok(),
        "follow did not end: {} bytes so far",
        seen.len()
    );
    node.wait_exited(&id).await;
    let text = String::from_utf8(seen).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    let full = "x".repeat(1000);
    assert_eq!(lines.first(), Some(&"first"));
    assert_eq!(lines.last(), Some(&"last"));
    assert_eq!(lines.iter().filter(|l| **l == full).count(), 11_000);
    // The final `echo` ends fold's last line, so: first, 11000 lines, last.
    assert_eq!(lines.len(), 11_002);
    let rotated = node
        .containers
        .find_dir("default", "big", "app")
        .join("0.log.1");
    assert!(
        rotated.exists(),
        "the shim did not rotate: {}",
        rotated.display()
    );
}
