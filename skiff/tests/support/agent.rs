//! A real `skiff agent` process for a test: spawned against a test server, restartable (to
//! test adoption), and on drop killed and followed by `skiff agent reset`, which stops and
//! removes every container and sandbox it left, so no test leaks processes or mounts. runc
//! agents find a `busybox:latest` image in their store. An agent may run in a network
//! namespace of its own (a lab node, see `cluster.rs`): then it and its reset are started
//! with `nsenter --net=...`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TestServer, free_port, wait_for};

/// A /24 (third octet of 10.244.0.0/16) no other agent of this test process uses; spread by
/// process id so test binaries running one after another rarely reuse one.
fn next_subnet() -> u8 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (10 + (std::process::id() * 7 + n) % 240) as u8
}

/// A node agent child process.
pub struct TestAgent {
    child: Option<Child>,
    /// Node name.
    pub node: String,
    /// `--runtime`.
    pub runtime: String,
    /// The agent's data dir.
    pub data_dir: PathBuf,
    /// Port of its kubelet API.
    pub kubelet_port: u16,
    /// Its `--pod-cidr` and bridge: unique per agent, as several share the host's network
    /// namespace while tests run in parallel. No pod CIDR: the agent takes its Node's
    /// `spec.podCIDR` (node IPAM).
    pub pod_cidr: Option<String>,
    bridge: String,
    /// The network namespace it runs in (`None`: the test's own) and its `--node-ip`.
    placement: Option<(PathBuf, IpAddr)>,
    /// How it reaches the API server: `--kubeconfig <admin kubeconfig>`, or
    /// `--server URL --token T` when it joins like another machine would.
    connect: Vec<String>,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl TestAgent {
    /// Starts an agent named `node` with driver `runtime` against `server`, with fast
    /// crash-loop back-off (1 s doubling to 8 s) unless `extra` says otherwise; returns once
    /// its Node is Ready.
    pub async fn start(server: &TestServer, node: &str, runtime: &str, extra: &[&str]) -> Self {
        let kubeconfig = server.kubeconfig.display().to_string();
        Self::start_connected(
            server,
            node,
            runtime,
            extra,
            vec!["--kubeconfig".into(), kubeconfig],
        )
        .await
    }

    /// Starts an agent that joins with the server's node token alone (`--server https://…
    /// --token K10…`), as on another machine: it has to fetch and check the cluster CA itself.
    pub async fn join(server: &TestServer, node: &str, runtime: &str, extra: &[&str]) -> Self {
        let connect = vec![
            "--server".into(),
            server.url.clone(),
            "--token".into(),
            server.node_token(),
        ];
        Self::start_connected(server, node, runtime, extra, connect).await
    }

    async fn start_connected(
        server: &TestServer,
        node: &str,
        runtime: &str,
        extra: &[&str],
        connect: Vec<String>,
    ) -> Self {
        let subnet = next_subnet();
        let pod_cidr = format!("10.244.{subnet}.0/24");
        Self::launch(server, node, runtime, Some(pod_cidr), None, extra, connect).await
    }

    /// Starts an agent inside the network namespace `netns` with node address `node_ip`,
    /// with `--pod-cidr` only when `pod_cidr` is given; returns once its Node is Ready.
    pub async fn start_in_netns(
        server: &TestServer,
        node: &str,
        runtime: &str,
        netns: &Path,
        node_ip: IpAddr,
        pod_cidr: Option<&str>,
        extra: &[&str],
    ) -> Self {
        let placement = Some((netns.to_path_buf(), node_ip));
        let pod_cidr = pod_cidr.map(str::to_string);
        let connect = vec![
            "--kubeconfig".into(),
            server.kubeconfig.display().to_string(),
        ];
        Self::launch(server, node, runtime, pod_cidr, placement, extra, connect).await
    }

    async fn launch(
        server: &TestServer,
        node: &str,
        runtime: &str,
        pod_cidr: Option<String>,
        placement: Option<(PathBuf, IpAddr)>,
        extra: &[&str],
        connect: Vec<String>,
    ) -> Self {
        let subnet = next_subnet();
        let tmp = tempfile::Builder::new()
            .prefix("skiff-agent-")
            .tempdir()
            .expect("tempdir");
        let mut agent = TestAgent {
            child: None,
            node: node.to_string(),
            runtime: runtime.to_string(),
            data_dir: tmp.path().to_path_buf(),
            kubelet_port: free_port(),
            pod_cidr,
            bridge: format!("skiff-t{subnet}"),
            placement,
            connect,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: tmp,
        };
        if runtime == "runc" {
            // The busybox image every runc test uses, built offline into the node's store.
            let store =
                kubelet::image::Store::open(agent.data_dir.join("images")).expect("image store");
            kubelet::image::build::store_busybox(
                &store,
                "busybox:latest",
                std::path::Path::new(kubelet::image::build::HOST_BUSYBOX),
            )
            .expect("busybox image (busybox-static installed)");
        }
        agent.spawn();
        let client = server.runtime_client();
        let name = node.to_string();
        wait_for("the node to be Ready", Duration::from_secs(60), || {
            let api: runtime::Api<k8s_openapi::api::core::v1::Node> =
                runtime::Api::all(client.clone());
            let name = name.clone();
            async move {
                let node = api.get(&name).await.ok()?;
                let ready = node
                    .status?
                    .conditions?
                    .into_iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                ready.then_some(())
            }
        })
        .await;
        agent
    }

    /// `skiff`, run inside the agent's network namespace when it has one.
    fn skiff_command(&self) -> Command {
        match &self.placement {
            None => Command::new(env!("CARGO_BIN_EXE_skiff")),
            Some((netns, _)) => {
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net={}", netns.display()))
                    .arg(env!("CARGO_BIN_EXE_skiff"));
                command
            }
        }
    }

    /// `--pod-cidr` (when given) and `--cni-bridge`.
    fn network_args(&self) -> Vec<String> {
        let mut args = vec!["--cni-bridge".to_string(), self.bridge.clone()];
        if let Some(cidr) = &self.pod_cidr {
            args.extend(["--pod-cidr".to_string(), cidr.clone()]);
        }
        args
    }

    /// (Re)starts the agent process on the same data dir.
    pub fn spawn(&mut self) {
        let mut command = self.skiff_command();
        command.args([
            "agent",
            "--runtime",
            &self.runtime,
            "--node-name",
            &self.node,
        ]);
        if let Some((_, ip)) = &self.placement {
            command.args(["--node-ip", &ip.to_string()]);
        }
        let child = command
            .args(&self.connect)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--kubelet-port", &self.kubelet_port.to_string()])
            .args(self.network_args())
            .args([
                "--crash-loop-backoff",
                "1s",
                "--crash-loop-backoff-max",
                "8s",
            ])
            // Agents of parallel tests share the host's network namespace: no Service proxy
            // (its nftables table is per namespace) unless a test asks for one.
            .args(if self.extra.iter().any(|a| a.starts_with("--proxy")) {
                &[][..]
            } else {
                &["--proxy", "none"][..]
            })
            .args(&self.extra)
            .env("SKIFF_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn skiff agent");
        self.child = Some(child);
    }

    /// The node's pod bridge.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// `kill -9` the agent; its containers keep running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.kill();
        let _ = self
            .skiff_command()
            .args(["agent", "reset", "--runtime", &self.runtime])
            .args(self.network_args())
            .env("SKIFF_LOG", "warn")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status();
    }
}

/// Waits until `check` accepts pod `name`; on timeout fails showing the pod's last status, so
/// a failure says what the agent reported instead of only that it took too long.
pub async fn wait_pod(
    api: &runtime::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&k8s_openapi::api::core::v1::Pod) -> bool,
) -> k8s_openapi::api::core::v1::Pod {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(p) = api.get(name).await {
            if check(&p) {
                return p;
            }
            last = Some(p);
        }
        if std::time::Instant::now() > deadline {
            let status = last
                .and_then(|p| p.status)
                .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default());
            panic!("timed out waiting for {what}; last status of {name}: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pod named `name` in `default` with `spec`.
pub fn pod(name: &str, spec: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .expect("pod")
}

/// Creates `p`, failing the test when the API server refuses it.
pub async fn create(
    api: &runtime::Api<k8s_openapi::api::core::v1::Pod>,
    p: k8s_openapi::api::core::v1::Pod,
) {
    api.create(&runtime::PostParams::default(), &p)
        .await
        .expect("create pod");
}

/// The status of the pod's first container.
pub fn status_of(
    p: &k8s_openapi::api::core::v1::Pod,
) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first()
}

/// The pod's phase ("" before the agent reported one).
pub fn phase(p: &k8s_openapi::api::core::v1::Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}
