//! A node for streaming tests: the real kubelet HTTPS API (`kubelet::server`) on a loopback
//! port over the real process driver (and its shim, which writes the CRI logs), with
//! containers the test starts itself. The
//! `ContainerLookup` is the test's (the agent's is not needed to serve logs and exec).
//! Shared by `kubelet/tests/server.rs` and `ctl/tests/streams.rs` (included by path).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use kubelet::cri::{ContainerConfig, ContainerRuntime, ContainerState, SandboxConfig, labels};
use kubelet::server::{ContainerLookup, FoundContainer, KubeletApi, LookupError, ServingCert};
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// (namespace, pod, container).
type Key = (String, String, String);

/// The containers a test started, by key: newest attempt wins.
#[derive(Clone, Default)]
pub struct Containers(Arc<Mutex<HashMap<Key, FoundContainer>>>);

impl Containers {
    /// The log directory of a container the test started.
    pub fn find_dir(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        self.find(namespace, pod, container)
            .expect("a started container")
            .log_dir
    }
}

impl ContainerLookup for Containers {
    fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<FoundContainer, LookupError> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !map.keys().any(|(n, p, _)| n == namespace && p == pod) {
            return Err(LookupError::PodNotFound);
        }
        map.get(&(
            namespace.to_string(),
            pod.to_string(),
            container.to_string(),
        ))
        .cloned()
        .ok_or(LookupError::ContainerNotFound)
    }
}

/// A kubelet API server on 127.0.0.1 over a real driver; stops its containers when dropped.
pub struct TestNode {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub containers: Containers,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    started: Mutex<Vec<String>>,
    sandboxes: Mutex<Vec<String>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _tmp: tempfile::TempDir,
}

impl TestNode {
    /// Starts the server over the process driver in a fresh directory.
    pub async fn start() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().to_path_buf();
        let runtime = process_runtime(&data_dir);
        let containers = Containers::default();
        let api = KubeletApi {
            runtime: runtime.clone(),
            lookup: Arc::new(containers.clone()),
        };
        let cert = ServingCert::self_signed("test-node", &["127.0.0.1".parse().expect("ip")])
            .expect("serving cert");
        let tls = cert.server_config().expect("tls config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(kubelet::server::serve(listener, tls, api.router(), async {
            let _ = rx.await;
        }));
        TestNode {
            runtime,
            containers,
            addr,
            data_dir,
            started: Mutex::new(Vec::new()),
            sandboxes: Mutex::new(Vec::new()),
            shutdown: Some(tx),
            _tmp: tmp,
        }
    }

    /// `https://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Creates and starts `argv` as attempt `attempt` of `container` in pod `namespace/pod`,
    /// logging where the agent would, and makes it the container the lookup returns.
    pub fn run(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        attempt: u32,
        argv: &[&str],
    ) -> String {
        let uid = format!("uid-{pod}");
        let mut pod_labels = BTreeMap::new();
        pod_labels.insert(labels::POD_UID.to_string(), uid.clone());
        pod_labels.insert(labels::POD_NAME.to_string(), pod.to_string());
        pod_labels.insert(labels::POD_NAMESPACE.to_string(), namespace.to_string());
        let sandbox = self
            .runtime
            .run_pod_sandbox(&SandboxConfig {
                name: pod.to_string(),
                namespace: namespace.to_string(),
                uid: uid.clone(),
                hostname: pod.to_string(),
                host_network: true,
                labels: pod_labels.clone(),
                ..SandboxConfig::default()
            })
            .expect("sandbox");
        self.sandboxes
            .lock()
            .expect("lock")
            .push(sandbox.id.clone());
        let log_dir = kubelet::logs::container_log_dir(
            &kubelet::logs::pod_log_dir(&self.data_dir.join("logs"), namespace, pod, &uid),
            container,
        );
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let mut container_labels = pod_labels;
        container_labels.insert(labels::CONTAINER_NAME.to_string(), container.to_string());
        let id = self
            .runtime
            .create_container(
                &sandbox,
                &ContainerConfig {
                    name: container.to_string(),
                    image: "process".to_string(),
                    argv: argv.iter().map(|s| s.to_string()).collect(),
                    log_path: kubelet::logs::attempt_log_file(&log_dir, attempt),
                    attempt,
                    labels: container_labels,
                    ..ContainerConfig::default()
                },
            )
            .expect("create container");
        self.runtime.start_container(&id).expect("start container");
        self.started.lock().expect("lock").push(id.clone());
        self.containers.0.lock().expect("lock").insert(
            (
                namespace.to_string(),
                pod.to_string(),
                container.to_string(),
            ),
            FoundContainer {
                container_id: id.clone(),
                log_dir,
                attempt,
            },
        );
        id
    }

    /// Waits until the container's process has ended.
    pub async fn wait_exited(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.runtime.container_status(id).map(|c| c.state);
            if matches!(state, Ok(ContainerState::Exited { .. })) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not exit: {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for id in self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = self.runtime.stop_container(&id, Duration::ZERO);
            let _ = self.runtime.remove_container(&id);
        }
        for id in self
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = self.runtime.remove_pod_sandbox(&id);
        }
    }
}

/// The process driver with its state under `data_dir`; its shim is `skiff agent shim`, so
/// the `skiff` binary must be built (`cargo build -p skiff`).
pub fn process_runtime(data_dir: &Path) -> Arc<dyn ContainerRuntime> {
    let shim = kubelet::shim::ShimCommand {
        program: skiff_binary(),
        args: vec!["agent".into(), "shim".into()],
    };
    Arc::new(kubelet::process::ProcessRuntime::new(data_dir, shim).expect("process driver"))
}

/// `target/<profile>/skiff`, next to this test's `deps/` directory.
fn skiff_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("skiff"))
        .expect("target directory");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p skiff` first (the process driver's shim)",
        path.display()
    );
    path
}

/// An HTTPS client that accepts the node's self-signed certificate (as the API server does).
pub fn insecure_client() -> reqwest::Client {
    let tls = runtime::tls::client_config(&runtime::config::TlsConfig {
        insecure: true,
        ..Default::default()
    })
    .expect("tls");
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .expect("client")
}

/// GETs `url` and returns the status code and body text.
pub async fn get_text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = client.get(url).send().await.expect("GET");
    let code = resp.status().as_u16();
    (code, resp.text().await.expect("body"))
}

/// Opens an exec WebSocket at `url` offering `protocol`.
pub async fn websocket(
    client: &reqwest::Client,
    url: &str,
    protocol: &str,
) -> Result<WebSocketStream<reqwest::Upgraded>, (u16, String)> {
    let resp = client
        .get(url)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", protocol)
        .send()
        .await
        .expect("upgrade request");
    if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        let code = resp.status().as_u16();
        return Err((code, resp.text().await.unwrap_or_default()));
    }
    assert_eq!(
        resp.headers()["sec-websocket-protocol"].to_str().ok(),
        Some(protocol)
    );
    let upgraded = resp.upgrade().await.expect("upgraded");
    Ok(WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await)
}

/// What one exec session produced.
#[derive(Debug, Default)]
pub struct ExecOutcome {
    pub stdout: String,
    pub stderr: String,
    pub status: Value,
}

/// Runs a session: sends `stdin` (then v5's stdin close) and collects output until the server
/// closes, within a deadline.
pub async fn run_exec(
    mut ws: WebSocketStream<reqwest::Upgraded>,
    stdin: Option<&[u8]>,
) -> ExecOutcome {
    if let Some(input) = stdin {
        ws.send(Message::binary([&[0u8][..], input].concat()))
            .await
            .expect("send stdin");
        ws.send(Message::binary(vec![0xffu8, 0]))
            .await
            .expect("close stdin");
    }
    let mut out = ExecOutcome::default();
    let collect = async {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Binary(data) = message else {
                continue;
            };
            match data.split_first() {
                Some((1, rest)) => out.stdout.push_str(&String::from_utf8_lossy(rest)),
                Some((2, rest)) => out.stderr.push_str(&String::from_utf8_lossy(rest)),
                Some((3, rest)) => out.status = serde_json::from_slice(rest).expect("status json"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .expect("exec session ended in time");
    out
}
