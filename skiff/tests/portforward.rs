//! Port forwarding end to end: the real kubectl (and skiffctl) → a real `skiff apiserver`
//! → the kubelet's `/portForward` (its TLS server in this test process, the pod's ports
//! dialled on 127.0.0.1) → a TCP echo server. The Node object points at that kubelet and
//! the Pod is bound to the Node and Running, as a real node agent would leave them.
//!
//! Run `cargo build -p skiff -p skiffctl` first.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream as StdTcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use kubelet::server::portforward::{self, ForwardTarget, PodPorts};
use kubelet::server::{LookupError, ServingCert};
use serde_json::json;
use support::{KUBECTL, TestServer, skiffctl_path};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(30);

/// Pod `default/web` is reachable on 127.0.0.1.
struct Loopback;

impl PodPorts for Loopback {
    fn target(&self, namespace: &str, pod: &str) -> Result<ForwardTarget, LookupError> {
        if (namespace, pod) != ("default", "web") {
            return Err(LookupError::PodNotFound);
        }
        Ok(ForwardTarget {
            pod: "web_default".into(),
            uid: "uid-1".into(),
            dial: Arc::new(|port| Box::pin(TcpStream::connect((Ipv4Addr::LOCALHOST, port)))),
        })
    }
}

/// A TCP echo server closing each connection after the client's half-close.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

/// The API server, a kubelet serving port forwarding, Node `node-1` pointing at it and
/// Pod `web` Running on it.
async fn cluster() -> TestServer {
    let server = TestServer::start().await;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let kubelet_port = listener.local_addr().unwrap().port();
    let cert = ServingCert::self_signed("node-1", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]).unwrap();
    tokio::spawn(kubelet::server::serve(
        listener,
        cert.server_config().unwrap(),
        portforward::router(Arc::new(Loopback)),
        std::future::pending(),
    ));
    let api = server.client();
    let node_status = json!({
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
    });
    let created = api
        .post(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}),
        )
        .await;
    assert_eq!(created.code, 201, "{:?}", created.body);
    let mut node = created.body;
    node["status"] = node_status;
    let r = api.put("/api/v1/nodes/node-1/status", &node).await;
    assert_eq!(r.code, 200, "{:?}", r.body);

    let created = api
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                    "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "echo"}]}}),
        )
        .await;
    assert_eq!(created.code, 201, "{:?}", created.body);
    let mut pod = created.body;
    pod["status"] = json!({"phase": "Running", "podIP": "127.0.0.1"});
    let r = api
        .put("/api/v1/namespaces/default/pods/web/status", &pod)
        .await;
    assert_eq!(r.code, 200, "{:?}", r.body);
    server
}

/// A long-running CLI whose stdout and stderr lines arrive on a channel.
struct Running {
    child: Child,
    lines: std_mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Running {
        Self::spawn_with_env(bin, kubeconfig, args, &[])
    }

    fn spawn_with_env(
        bin: &Path,
        kubeconfig: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Running {
        let home = kubeconfig.parent().unwrap().join("home");
        let _ = std::fs::create_dir_all(&home);
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let (tx, lines) = std_mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for pipe in [
            Box::new(out) as Box<dyn Read + Send>,
            Box::new(err) as Box<dyn Read + Send>,
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line `pick` accepts; panics with everything seen at the deadline. Blocks
    /// in place: the kubelet server runs on this test's runtime.
    fn wait_line<T>(&mut self, what: &str, pick: impl FnMut(&str) -> Option<T>) -> T {
        tokio::task::block_in_place(|| self.wait_line_blocking(what, pick))
    }

    fn wait_line_blocking<T>(&mut self, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        if let Some(found) = self.seen.iter().find_map(|l| pick(l)) {
            return found;
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = pick(&line);
                    self.seen.push(line);
                    if let Some(found) = found {
                        return found;
                    }
                }
                Err(_) => panic!(
                    "timed out waiting for {what}; output so far: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// The local port of the `Forwarding from 127.0.0.1:N -> remote` line.
    fn forwarded_port(&mut self, remote: u16) -> u16 {
        let suffix = format!(" -> {remote}");
        self.wait_line("the Forwarding line", |l| {
            l.strip_prefix("Forwarding from 127.0.0.1:")?
                .strip_suffix(&suffix)?
                .parse()
                .ok()
        })
    }

    /// Waits for the process to exit; its exit code.
    fn wait_exit(&mut self) -> i32 {
        tokio::task::block_in_place(|| self.wait_exit_blocking())
    }

    fn wait_exit_blocking(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit; output: {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `payload` through the local port, half-closes, returns the echo (blocking I/O on
/// a plain thread, as any local client would).
async fn echo_through(port: u16, payload: Vec<u8>) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        let mut conn = StdTcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        conn.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut reader = conn.try_clone().unwrap();
        let sent = payload.clone();
        // The forwarder may close the connection early (the pod side failed): writes and
        // reads then fail, which the callers see as a short echo.
        let writer = std::thread::spawn(move || {
            let _ = conn.write_all(&sent);
            let _ = conn.shutdown(std::net::Shutdown::Write);
        });
        let mut back = Vec::new();
        let _ = reader.read_to_end(&mut back);
        let _ = writer.join();
        back
    })
    .await
    .unwrap()
}

/// Forwards twice through `cli port-forward pod/web 0:ECHO` and checks the echoes and
/// kubectl's output lines.
async fn forwards_through(bin: &Path) {
    forwards_through_with_env(bin, &[]).await;
}

async fn forwards_through_with_env(bin: &Path, env: &[(&str, &str)]) {
    let echo = echo_server().await;
    let server = cluster().await;
    let remote = echo.to_string();
    let spec = format!("0:{remote}");
    let mut cli = Running::spawn_with_env(
        bin,
        &server.kubeconfig,
        &["port-forward", "pod/web", &spec, "--address", "127.0.0.1"],
        env,
    );
    let local = cli.forwarded_port(echo);
    assert_eq!(echo_through(local, b"hello\n".to_vec()).await, b"hello\n");
    let big: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
    assert!(
        echo_through(local, big.clone()).await == big,
        "big echo intact"
    );
    let handling = format!("Handling connection for {local}");
    cli.wait_line("a Handling line", |l| (l == handling).then_some(()));
    assert!(cli.child.try_wait().unwrap().is_none(), "still forwarding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_reaches_the_pod() {
    forwards_through(Path::new(KUBECTL)).await;
}

/// kubectl without WebSockets: SPDY/3.1 over the upgraded HTTP connection, relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_over_plain_spdy_reaches_the_pod() {
    forwards_through_with_env(
        Path::new(KUBECTL),
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skiffctl_port_forward_reaches_the_pod() {
    forwards_through(&skiffctl_path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_nothing_listens_on_ends_kubectl_with_the_kubelet_error() {
    let server = cluster().await;
    let closed = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        l.local_addr().unwrap().port()
    };
    for bin in [Path::new(KUBECTL), skiffctl_path().as_path()] {
        let spec = format!("0:{closed}");
        let mut cli = Running::spawn(
            bin,
            &server.kubeconfig,
            &["port-forward", "web", &spec, "--address", "127.0.0.1"],
        );
        let local = cli.forwarded_port(closed);
        assert!(echo_through(local, b"anyone?".to_vec()).await.is_empty());
        let want = format!("error forwarding port {closed} to pod web_default, uid uid-1:");
        cli.wait_line("the kubelet's error", |l| l.contains(&want).then_some(()));
        assert_eq!(cli.wait_exit(), 1, "{}: {:?}", bin.display(), cli.seen);
        cli.wait_line("lost connection", |l| {
            l.contains("lost connection to pod").then_some(())
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_are_not_running_or_bound_are_refused() {
    let server = cluster().await;
    let api = server.client();
    let r = api
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        )
        .await;
    assert_eq!(r.code, 201);
    // kubectl checks the phase itself.
    let out =
        tokio::task::block_in_place(|| server.kubectl(&["port-forward", "pending", "8080:80"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("unable to forward port because pod is not running. Current status=Pending"),
        "{}",
        out.stderr
    );
    // The API server refuses a pod without a node.
    let r = api
        .get("/api/v1/namespaces/default/pods/pending/portforward")
        .await;
    assert_eq!(r.code, 400, "{:?}", r.body);
    assert_eq!(
        r.body["message"], "pod pending does not have a host assigned",
        "{:?}",
        r.body
    );
}

/// kubectl's fallback (and older clients): `POST .../portforward` upgraded to SPDY/3.1
/// itself, relayed by the API server to the kubelet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_spdy_upgrade_is_relayed_too() {
    use runtime::spdy::portforward::forward_connection;
    use runtime::spdy::{Role, Session, transport};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let echo = echo_server().await;
    let server = cluster().await;
    // The API server speaks HTTPS only: TLS trusting the cluster CA, the admin token.
    let admin = server.admin_config();
    let tls = runtime::tls::client_config(&admin.tls).unwrap();
    let tcp = TcpStream::connect(server.url.trim_start_matches("https://"))
        .await
        .unwrap();
    let mut conn = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let authorization = admin.auth.header_value().expect("the admin token");
    conn.write_all(
        format!(
            "POST /api/v1/namespaces/default/pods/web/portforward HTTP/1.1\r\nHost: skiff\r\n\
             Authorization: {authorization}\r\n\
             Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(conn.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: portforward.k8s.io"),
        "{head}"
    );
    let (rx, tx) = transport::byte_stream(conn);
    let session = Session::new(Role::Client, rx, tx);
    let (local, mut app) = tokio::io::duplex(1024);
    let forward = tokio::spawn(async move { forward_connection(&session, echo, 0, local).await });
    app.write_all(b"relayed spdy").await.unwrap();
    app.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(DEADLINE, app.read_to_end(&mut back))
        .await
        .expect("the echo came back in time")
        .unwrap();
    assert_eq!(back, b"relayed spdy");
    tokio::time::timeout(DEADLINE, forward)
        .await
        .expect("the forward ended")
        .unwrap()
        .unwrap();
}

/// A TCP echo server in Python, for the process driver (its containers are host processes).
const PY_ECHO: &str = "
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen()
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
";

/// The whole path with a real node agent: kubectl → skiff server → `skiff agent --runtime
/// process`'s kubelet API → the pod's echo server (host network: the process driver).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_through_a_real_agent() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipping: the pod's echo server needs /usr/bin/python3");
        return;
    }
    let server = TestServer::start_server().await;
    let _agent = support::agent::TestAgent::start(&server, "node-pf", "process", &[]).await;
    let port = support::free_port();
    let api = server.client();
    let created = api
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
                    "spec": {"nodeName": "node-pf", "containers": [{
                        "name": "echo", "image": "python",
                        "command": ["/usr/bin/python3", "-c", PY_ECHO, port.to_string()]}]}}),
        )
        .await;
    assert_eq!(created.code, 201, "{:?}", created.body);
    support::wait_for("the echo pod to run", DEADLINE, || {
        let api = api.clone();
        async move {
            let pod = api.get("/api/v1/namespaces/default/pods/echo").await.body;
            (pod["status"]["phase"] == "Running").then_some(())
        }
    })
    .await;
    // A dial error would end kubectl: wait until the pod listens (host network here).
    support::wait_for("the pod to listen", DEADLINE, || async move {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let spec = format!("0:{port}");
    let mut cli = Running::spawn(
        Path::new(KUBECTL),
        &server.kubeconfig,
        &["port-forward", "pod/echo", &spec, "--address", "127.0.0.1"],
    );
    let local = cli.forwarded_port(port);
    assert_eq!(
        echo_through(local, b"through the agent".to_vec()).await,
        b"through the agent"
    );
}

/// With the runc driver the port is dialled inside the pod's network namespace: busybox
/// httpd in a real container answers through kubectl port-forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_into_a_runc_pod() {
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/sbin/runc").exists() {
        eprintln!("skipping: needs root and runc");
        return;
    }
    let server = TestServer::start_server().await;
    let _agent = support::agent::TestAgent::start(&server, "node-runc", "runc", &[]).await;
    let api = server.client();
    let created = api
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "httpd"},
                    "spec": {"nodeName": "node-runc", "containers": [{
                        "name": "httpd", "image": "busybox:latest",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["httpd", "-f", "-p", "8080", "-h", "/etc"]}]}}),
        )
        .await;
    assert_eq!(created.code, 201, "{:?}", created.body);
    let ip: std::net::IpAddr = support::wait_for("the httpd pod to run", DEADLINE, || {
        let api = api.clone();
        async move {
            let pod = api.get("/api/v1/namespaces/default/pods/httpd").await.body;
            (pod["status"]["phase"] == "Running")
                .then(|| pod["status"]["podIP"].as_str()?.parse().ok())
                .flatten()
        }
    })
    .await;
    // A dial error would end kubectl: wait until httpd listens (reachable on the pod IP).
    support::wait_for("httpd to listen", DEADLINE, || async move {
        TcpStream::connect((ip, 8080)).await.ok().map(|_| ())
    })
    .await;
    let mut cli = Running::spawn(
        Path::new(KUBECTL),
        &server.kubeconfig,
        &[
            "port-forward",
            "pod/httpd",
            "0:8080",
            "--address",
            "127.0.0.1",
        ],
    );
    let local = cli.forwarded_port(8080);
    let answer = echo_through(local, b"GET /hostname HTTP/1.0\r\n\r\n".to_vec()).await;
    let answer = String::from_utf8_lossy(&answer);
    // The container's /etc/hostname is the pod's name.
    assert!(
        answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("\r\n\r\nhttpd\n"),
        "{answer}"
    );
}
