//! Joining real machines: `skiff server` serves HTTPS with a cluster CA it generated, every
//! request needs a bearer token (the admin's from the kubeconfig, or the node token), the
//! real kubectl works with the admin kubeconfig, and an agent joins with `--server` and the
//! node token alone. Certificates and tokens survive restarts.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use runtime::Api;
use runtime::config::Auth;
use serde_json::{Value, json};
use support::agent::{TestAgent, create, phase, pod};
use support::{Backend, TestServer, run_kubectl, wait_for};

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: joined
data:
  greeting: hello
";

/// `text` without the lines containing `needle`.
fn without_lines(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| !l.contains(needle))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_over_https_with_the_admin_kubeconfig() {
    let server = TestServer::start().await;
    let text = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
    assert!(text.contains(&format!("server: {}", server.url)), "{text}");
    assert!(server.url.starts_with("https://"), "{}", server.url);
    assert!(text.contains("certificate-authority-data: "), "{text}");
    assert!(text.contains("token: "), "{text}");

    let created = server.kubectl_stdin(&["apply", "-f", "-"], Some(CONFIGMAP));
    assert_eq!(created.ok().trim(), "configmap/joined created");
    let changed = CONFIGMAP.replace("hello", "hello again");
    let configured = server.kubectl_stdin(&["apply", "-f", "-"], Some(&changed));
    assert_eq!(configured.ok().trim(), "configmap/joined configured");
    let got = server.kubectl(&[
        "get",
        "configmap",
        "joined",
        "-o",
        "jsonpath={.data.greeting}",
    ]);
    assert_eq!(got.ok(), "hello again");
    let table = server.kubectl(&["get", "configmaps"]);
    assert!(table.ok().contains("joined"), "{}", table.stdout);

    // What made that work: kubectl sent the token over TLS it verified against the CA.
    // (Without any credentials kubectl prompts for a password instead of asking the server;
    // the 401 for credential-less requests is checked below with a plain client.)
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, content: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write kubeconfig");
        path
    };
    let wrong_token = write(
        "wrong-token",
        text.lines()
            .map(|l| {
                if l.trim_start().starts_with("token: ") {
                    "    token: not-the-admin-token\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect(),
    );
    let no_ca = write(
        "no-ca",
        without_lines(&text, "certificate-authority-data: "),
    );
    for (kubeconfig, want) in [
        (&wrong_token, "You must be logged in to the server"),
        (&no_ca, "certificate signed by unknown authority"),
    ] {
        let out = run_kubectl(kubeconfig, &["get", "configmaps"], None);
        assert_ne!(out.code, 0, "{}: {}", kubeconfig.display(), out.stdout);
        assert!(
            out.stderr.contains(want),
            "{}: {}",
            kubeconfig.display(),
            out.stderr
        );
    }
}

/// A reqwest client of the server trusting its CA, with `auth` as credentials.
fn client_with(server: &TestServer, auth: Auth) -> reqwest::Client {
    let mut config = server.admin_config();
    config.auth = auth;
    config.http_client().expect("http client")
}

async fn status_of(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_401() {
    let server = TestServer::start().await;
    let url = &server.url;
    let configmap =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sneaky"}});
    let refused = [
        Auth::None,
        Auth::Bearer("wrong".into()),
        Auth::Bearer(format!("K10{}::node:wrong", "0".repeat(64))),
        Auth::Basic {
            username: "admin".into(),
            password: "admin".into(),
        },
    ];
    for auth in refused {
        let client = client_with(&server, auth.clone());
        let (code, body) = status_of(client.get(format!("{url}/api/v1/namespaces"))).await;
        assert_eq!(code, 401, "{auth:?}: {body}");
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["reason"], "Unauthorized", "{body}");
        assert_eq!(body["code"], 401, "{body}");
        let (code, _) = status_of(
            client
                .post(format!("{url}/api/v1/namespaces/default/configmaps"))
                .json(&configmap),
        )
        .await;
        assert_eq!(code, 401, "{auth:?}");
        let (code, _) = status_of(client.get(format!("{url}/metrics"))).await;
        assert_eq!(code, 401, "{auth:?}: metrics are not public");
    }
    let admin = server.client();
    let r = admin
        .get("/api/v1/namespaces/default/configmaps/sneaky")
        .await;
    assert_eq!(r.code, 404, "refused writes wrote nothing: {:?}", r.body);

    // The node token is accepted too (agents use it); so is the admin token.
    let node = client_with(&server, Auth::Bearer(server.node_token()));
    let (code, body) = status_of(node.get(format!("{url}/api/v1/nodes"))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(admin.get("/api/v1/namespaces").await.code, 200);

    // Public without credentials: what a joining machine needs before it can trust anyone.
    let anonymous = client_with(&server, Auth::None);
    let ca = anonymous
        .get(format!("{url}/cacerts"))
        .send()
        .await
        .expect("cacerts");
    assert_eq!(ca.status().as_u16(), 200);
    assert_eq!(ca.text().await.expect("body"), server.ca_pem());
    for path in ["/readyz", "/livez", "/healthz", "/version"] {
        let (code, _) = status_of(anonymous.get(format!("{url}{path}"))).await;
        assert_eq!(code, 200, "{path}");
    }

    // No plain HTTP on the port, and no trust without the CA.
    let plain = reqwest::get(format!(
        "http://{}/api/v1/namespaces",
        server.url.trim_start_matches("https://")
    ))
    .await;
    assert!(
        plain
            .as_ref()
            .map(|r| r.status().as_u16() != 200)
            .unwrap_or(true),
        "plain HTTP must not be served: {plain:?}"
    );
    let untrusting = runtime::config::Config::from_url(url)
        .http_client()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{url}/version"))
            .send()
            .await
            .is_err(),
        "the serving certificate is not publicly trusted"
    );
}

/// Waits for `child` to exit (within 30 s) and returns its stderr and success.
fn finish(mut child: std::process::Child) -> (bool, String) {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    (status.success(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_joins_with_the_node_token_alone() {
    let server = TestServer::start_server().await;
    let agent = TestAgent::join(&server, "joiner", "process", &[]).await;
    let pods: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    create(
        &pods,
        pod(
            "hello",
            json!({"containers": [{"name": "main", "image": "busybox",
                "command": ["sh", "-c", "echo joined; sleep 600"]}]}),
        ),
    )
    .await;
    support::agent::wait_pod(
        &pods,
        "hello",
        "hello Running",
        Duration::from_secs(30),
        |p| phase(p) == "Running",
    )
    .await;
    // Logs travel API server -> kubelet: the joined node serves them.
    let logs = wait_for("the pod's log", Duration::from_secs(20), || async {
        let out = server.kubectl(&["logs", "hello"]);
        (out.code == 0 && out.stdout.contains("joined")).then_some(out.stdout)
    })
    .await;
    assert_eq!(logs.trim(), "joined");
    // ... and admits only the API server: a client without the API server's certificate
    // (signed by the cluster CA) does not get through the TLS handshake.
    let mut direct =
        runtime::config::Config::from_url(&format!("https://127.0.0.1:{}", agent.kubelet_port));
    direct.tls.insecure = true;
    let refused = direct
        .http_client()
        .expect("client")
        .get(format!(
            "{}/containerLogs/default/hello/main",
            direct.server
        ))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "the kubelet served a client without a certificate: {refused:?}"
    );

    // A token vouching for another CA: the agent refuses the server and never registers.
    let secret = server
        .node_token()
        .rsplit(':')
        .next()
        .expect("secret")
        .to_string();
    let forged = format!("K10{}::node:{secret}", "ab".repeat(32));
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["agent", "--runtime", "process", "--node-name", "intruder"])
        .args(["--server", &server.url, "--token", &forged])
        .arg("--data-dir")
        .arg(dir.path())
        .env("SKIFF_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let (ok, stderr) = finish(child);
    assert!(
        !ok,
        "the agent must refuse a server whose CA the token does not name"
    );
    assert!(stderr.contains("does not match the token"), "{stderr}");
    let nodes: Api<Node> = Api::all(server.runtime_client());
    assert!(nodes.get("intruder").await.is_err_and(|e| e.is_not_found()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_tokens_are_reused_after_a_restart() {
    let mut server = TestServer::start().await;
    let files = [
        "tls/ca.crt",
        "tls/ca.key",
        "tls/serving.crt",
        "tls/serving.key",
        "tls/kubelet-client.crt",
        "tls/kubelet-client.key",
        "admin-token",
        "node-token",
    ];
    let read_all = |dir: &Path| -> Vec<String> {
        files
            .iter()
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
            .collect()
    };
    let before = read_all(&server.data_dir);
    let kubeconfig_before = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
    let saved = server.data_dir.join("saved-kubeconfig");
    std::fs::write(&saved, &kubeconfig_before).expect("save kubeconfig");
    server
        .kubectl_stdin(&["apply", "-f", "-"], Some(CONFIGMAP))
        .ok();

    assert!(server.terminate(), "the server stops cleanly on SIGTERM");
    server.spawn().await;
    assert_eq!(
        read_all(&server.data_dir),
        before,
        "same CA, certificate and tokens"
    );
    assert_eq!(
        std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig"),
        kubeconfig_before
    );
    // A kubeconfig handed out before the restart still works.
    let out = run_kubectl(&saved, &["get", "configmap", "joined", "-o", "name"], None);
    assert_eq!(out.ok().trim(), "configmap/joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tls_san_reissues_the_serving_certificate_under_the_same_ca() {
    let mut server =
        TestServer::start_with(Backend::Embedded, &["--tls-san", "a.skiff.test"]).await;
    let read = |f: &str| std::fs::read_to_string(server.data_dir.join(f)).expect(f);
    let (ca, serving) = (read("tls/ca.crt"), read("tls/serving.crt"));
    let by_name = |name: &str| server.kubectl(&["--tls-server-name", name, "get", "namespaces"]);
    by_name("a.skiff.test").ok();
    let refused = by_name("b.skiff.test");
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("certificate is valid for"),
        "{}",
        refused.stderr
    );

    assert!(server.terminate());
    server.set_extra(&["--tls-san", "a.skiff.test,b.skiff.test"]);
    server.spawn().await;
    let read = |f: &str| std::fs::read_to_string(server.data_dir.join(f)).expect(f);
    assert_eq!(read("tls/ca.crt"), ca, "the CA stays");
    assert_ne!(
        read("tls/serving.crt"),
        serving,
        "the serving certificate is re-issued"
    );
    let by_name = |name: &str| server.kubectl(&["--tls-server-name", name, "get", "namespaces"]);
    by_name("a.skiff.test").ok();
    by_name("b.skiff.test").ok();
}

#[test]
fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["apiserver", "--plain-http", "--listen", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn skiff apiserver");
    let (ok, stderr) = finish(child);
    assert!(!ok);
    assert!(stderr.contains("only allowed on a loopback"), "{stderr}");
    assert!(
        !dir.path().join("kubeconfig.yaml").exists(),
        "nothing was served"
    );
}
