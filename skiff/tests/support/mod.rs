//! Test support: a real `skiff server` process, a real etcd, and an HTTP client for them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../../../apiserver/tests/support/etcd.rs"]
pub mod etcd;

pub mod agent;
pub mod cluster;

/// Which store the server runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Embedded,
    Etcd(String),
}

/// A `skiff server` child process on a loopback port, serving HTTPS with the cluster CA and
/// tokens it generated in its data dir; killed on drop. Every client here uses the admin
/// kubeconfig the server wrote (CA + admin token), as kubectl does.
pub struct TestServer {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub url: String,
    pub kubeconfig: PathBuf,
    backend: Backend,
    /// `apiserver` (the API alone, the default for API tests) or `server` (with the scheduler).
    command: &'static str,
    listen: String,
    extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

/// `skiff server` flags for watchable healing: node grace 4 s checked every second, pods
/// tolerating an unreachable node for 3 s.
pub const SHORT_TIMINGS: [&str; 6] = [
    "--node-monitor-grace-period",
    "4",
    "--node-monitor-period",
    "1",
    "--default-toleration-seconds",
    "3",
];

/// Polls `check` until it returns Some or the deadline passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral loopback port")
        .local_addr()
        .expect("local addr")
        .port()
}

impl TestServer {
    /// Starts the API server alone on the embedded store in a fresh data dir.
    pub async fn start() -> Self {
        Self::start_with(Backend::Embedded, &[]).await
    }

    /// Starts the whole control plane (`skiff server`: API server and scheduler).
    pub async fn start_server() -> Self {
        Self::launch("server", Backend::Embedded, &[]).await
    }

    /// Starts the whole control plane with extra flags (short controller timings, say).
    pub async fn start_server_with(extra: &[&str]) -> Self {
        Self::launch("server", Backend::Embedded, extra).await
    }

    /// Starts the API server alone on `backend` with extra flags.
    pub async fn start_with(backend: Backend, extra: &[&str]) -> Self {
        Self::launch("apiserver", backend, extra).await
    }

    /// Starts the whole control plane listening on `listen` (a lab's bridge address, say)
    /// instead of a loopback port.
    pub async fn start_server_on(listen: &str, extra: &[&str]) -> Self {
        Self::launch_on("server", Backend::Embedded, listen, extra).await
    }

    async fn launch(command: &'static str, backend: Backend, extra: &[&str]) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        Self::launch_on(command, backend, &listen, extra).await
    }

    async fn launch_on(
        command: &'static str,
        backend: Backend,
        listen: &str,
        extra: &[&str],
    ) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().to_path_buf();
        let mut server = Self {
            child: None,
            kubeconfig: data_dir.join("kubeconfig.yaml"),
            data_dir,
            url: String::new(),
            backend,
            command,
            listen: listen.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: Some(tmp),
        };
        server.spawn().await;
        server
    }

    /// Replaces the extra flags the next [`TestServer::spawn`] passes.
    pub fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
    }

    /// (Re)starts the process on the same data dir and port, and waits until it is ready.
    pub async fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.arg(self.command)
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .env("SKIFF_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Backend::Etcd(endpoint) = &self.backend {
            cmd.arg("--etcd-endpoints").arg(endpoint);
        }
        // A loopback server's default DNS address (127.0.0.1:53) would be one port for every
        // test at once: cluster DNS only where a test asks for it (or in a lab, whose server
        // has an address of its own).
        if self.command == "server"
            && self.listen.starts_with("127.")
            && !self.extra.iter().any(|a| a == "--dns-listen")
        {
            cmd.args(["--dns-listen", "none"]);
        }
        self.child = Some(cmd.spawn().expect("spawn skiff server"));
        self.url = format!("https://{}", self.listen);
        let kubeconfig = self.kubeconfig.clone();
        let url = self.url.clone();
        wait_for("skiff server to be ready", Duration::from_secs(30), || {
            let kubeconfig = kubeconfig.clone();
            let url = url.clone();
            async move {
                if !kubeconfig.exists() {
                    return None;
                }
                let http = admin_config(&kubeconfig).http_client().ok()?;
                let r = http.get(format!("{url}/readyz")).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// The client config of the admin kubeconfig (server URL, cluster CA, admin token).
    pub fn admin_config(&self) -> runtime::config::Config {
        admin_config(&self.kubeconfig)
    }

    /// A reqwest client trusting the cluster CA and sending the admin token.
    pub fn http(&self) -> reqwest::Client {
        self.admin_config()
            .http_client()
            .expect("admin http client")
    }

    /// PEM of the cluster CA the server generated.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("tls/ca.crt")).expect("read the cluster CA")
    }

    /// The join token agents pass with `--token`.
    pub fn node_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("node-token"))
            .expect("read node-token")
            .trim()
            .to_string()
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly in time.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// A `runtime` client of this server, as the components use.
    pub fn runtime_client(&self) -> runtime::Client {
        runtime::Client::new(self.admin_config()).expect("client")
    }

    /// An API client for this server.
    pub fn client(&self) -> Api {
        Api {
            base: self.url.clone(),
            http: self.http(),
        }
    }

    /// Runs the real kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        self.kubectl_stdin(args, None)
    }

    /// Runs skiffctl (build it first: `cargo build -p skiffctl`) against this server.
    pub fn skiffctl_stdin(&self, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
        let bin = skiffctl_path();
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build -p skiffctl` first",
            bin.display()
        );
        run_cli(&bin, &self.kubeconfig, args, stdin)
    }

    /// Runs the real kubectl with `stdin` piped in.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
        run_kubectl(&self.kubeconfig, args, stdin)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The config of the kubeconfig at `path`.
pub fn admin_config(path: &Path) -> runtime::config::Config {
    runtime::config::load(&runtime::config::LoadOptions {
        kubeconfig: Some(path.to_path_buf()),
        ..Default::default()
    })
    .expect("load the admin kubeconfig")
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct KubectlOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "kubectl failed: {}{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }
}

/// The real kubectl on these machines.
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// skiffctl, built next to the `skiff` binary by `cargo build` / `cargo test --workspace`.
pub fn skiffctl_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_skiff")).with_file_name("skiffctl")
}

pub fn run_kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing: the compatibility tests need the real kubectl"
    );
    run_cli(Path::new(KUBECTL), kubeconfig, args, stdin)
}

/// Runs a kubectl-like CLI (`bin`) with `kubeconfig` and an empty HOME.
pub fn run_cli(bin: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    use std::io::Write;
    let home = kubeconfig.parent().expect("kubeconfig dir").join("home");
    let _ = std::fs::create_dir_all(&home);
    let mut child = Command::new(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", &home)
        .env_remove("KUBECTL_EXTERNAL_DIFF")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    let out = child.wait_with_output().expect("kubectl output");
    KubectlOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A thin JSON client for the API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// Status code and decoded body of a response.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request sent");
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("response body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            code,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &str) -> Reply {
        self.send(
            self.http
                .patch(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, path: &str, body: Option<&Value>) -> Reply {
        let mut req = self.http.delete(format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// Opens a watch and returns a reader of its events.
    pub async fn watch(&self, path: &str) -> WatchReader {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("watch request");
        assert_eq!(resp.status().as_u16(), 200, "watch {path} failed");
        WatchReader {
            resp,
            buf: Vec::new(),
        }
    }
}

/// Reads newline-delimited watch events.
pub struct WatchReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchReader {
    /// The next event, or None when the stream ends; panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("watch event is JSON"));
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Ok(None)) | Ok(Err(_)) => return None,
                Err(_) => panic!("no watch event within {timeout:?}"),
            }
        }
    }
}
