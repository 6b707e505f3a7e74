//! Test support: a real `skiff server` process, a severable TCP proxy in front of it, and
//! deadline-bounded waiting.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtime::Client;
use runtime::config::Config;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Polls `check` until it returns Some or the deadline passes (then panics naming `what`).
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
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Finds the `skiff` binary built in the same target directory as this test.
fn skiff_binary() -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test> -> target/<profile>/skiff
        if let Some(profile_dir) = exe.parent().and_then(|d| d.parent()) {
            candidates.push(profile_dir.join("skiff"));
        }
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug").join("skiff"));
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/skiff"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the skiff binary is missing (looked at {candidates:?}): run `cargo build -p skiff` first"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral loopback port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A `skiff apiserver` child process on a loopback port; killed on drop. It serves HTTPS
/// with the CA and admin token of the kubeconfig it writes, unless started with
/// `--plain-http` (the TLS-front tests, which need a plain upstream).
pub struct TestServer {
    child: Option<Child>,
    pub url: String,
    pub kubeconfig: PathBuf,
    pub data_dir: PathBuf,
    listen: String,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on the embedded store in a fresh data dir, with extra flags.
    pub async fn start(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().to_path_buf();
        let listen = format!("127.0.0.1:{}", free_port());
        let scheme = if extra.contains(&"--plain-http") {
            "http"
        } else {
            "https"
        };
        let mut s = TestServer {
            child: None,
            url: format!("{scheme}://{listen}"),
            kubeconfig: data_dir.join("kubeconfig.yaml"),
            data_dir,
            listen,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: tmp,
        };
        s.spawn().await;
        s
    }

    /// (Re)starts the process on the same data dir and port and waits until it is ready.
    pub async fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let child = Command::new(skiff_binary())
            .arg("apiserver")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .env("SKIFF_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn skiff server");
        self.child = Some(child);
        let (kc, url) = (self.kubeconfig.clone(), self.url.clone());
        wait_for("skiff server to be ready", Duration::from_secs(30), || {
            let (kc, url) = (kc.clone(), url.clone());
            async move {
                if !kc.exists() {
                    return None;
                }
                let http = load_kubeconfig(&kc, None).http_client().ok()?;
                let r = http.get(format!("{url}/readyz")).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A client built from the kubeconfig the server wrote (exercises the config loader).
    pub fn client(&self) -> Client {
        Client::new(load_kubeconfig(&self.kubeconfig, None)).expect("client")
    }

    /// A client with the kubeconfig's CA and credentials that reaches the server through
    /// `addr` (`host:port` of a proxy) instead.
    pub fn client_via(&self, addr: &str) -> Client {
        let scheme = self.url.split("://").next().unwrap_or("https");
        let url = format!("{scheme}://{addr}");
        Client::new(load_kubeconfig(&self.kubeconfig, Some(&url))).expect("client")
    }

    /// A plain reqwest client with the kubeconfig's CA and credentials.
    pub fn http(&self) -> reqwest::Client {
        load_kubeconfig(&self.kubeconfig, None)
            .http_client()
            .expect("http client")
    }

    /// `host:port` the server listens on.
    pub fn addr(&self) -> &str {
        &self.listen
    }
}

/// The config of the kubeconfig at `path`, optionally for another server URL.
fn load_kubeconfig(path: &std::path::Path, server: Option<&str>) -> Config {
    runtime::config::load(&runtime::config::LoadOptions {
        kubeconfig: Some(path.to_path_buf()),
        server: server.map(str::to_string),
        ..Default::default()
    })
    .expect("load kubeconfig")
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback TCP proxy that can cut every connection and refuse new ones, to simulate a
/// network partition between a client and the server without touching the server.
pub struct Proxy {
    pub addr: String,
    state: Arc<Mutex<ProxyState>>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    blocked: bool,
    conns: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Proxies a fresh loopback port to `upstream` (`host:port`); `addr` is the proxy's
    /// `host:port` (TCP only: TLS passes through).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        let upstream = upstream.to_string();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if st.lock().unwrap().blocked {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                st.lock().unwrap().conns.push(conn);
            }
        });
        Proxy {
            addr,
            state,
            accept,
        }
    }

    /// Cuts every open connection and refuses new ones until [`Proxy::heal`].
    pub fn partition(&self) {
        let mut st = self.state.lock().unwrap();
        st.blocked = true;
        for c in st.conns.drain(..) {
            c.abort();
        }
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.state.lock().unwrap().blocked = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.state.lock().unwrap().conns.drain(..) {
            c.abort();
        }
    }
}
