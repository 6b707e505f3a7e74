//! The kubelet's `/portForward` endpoint over real TLS and a real WebSocket (or an HTTP
//! upgrade to SPDY/3.1) on loopback, forwarding to a TCP echo server on 127.0.0.1, driven
//! by the client side of `runtime::spdy` (what skiffctl uses).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kubelet::server::portforward::{self, ForwardTarget, PodPorts};
use kubelet::server::{LookupError, ServingCert};
use runtime::spdy::portforward::{ForwardError, forward_connection};
use runtime::spdy::{PORT_FORWARD_PROTOCOL, Role, Session, transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const DEADLINE: Duration = Duration::from_secs(30);

/// Resolves pod `default/web` to 127.0.0.1.
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

/// A TCP echo server: every connection gets its bytes back, and is closed after the
/// client's half-close.
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

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

/// The kubelet API (port-forward routes) over TLS on a free loopback port.
async fn kubelet() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cert = ServingCert::self_signed("localhost", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]).unwrap();
    let tls = cert.server_config().unwrap();
    let app = portforward::router(Arc::new(Loopback));
    tokio::spawn(kubelet::server::serve(
        listener,
        tls,
        app,
        std::future::pending(),
    ));
    addr
}

async fn tls_to(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = runtime::tls::client_config(&runtime::config::TlsConfig {
        insecure: true,
        ..Default::default()
    })
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// A SPDY session through a WebSocket to `path`, or the HTTP status it was refused with.
async fn websocket_session(addr: SocketAddr, path: &str) -> Result<Session, u16> {
    let mut request = format!("wss://localhost:{}{path}", addr.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        PORT_FORWARD_PROTOCOL.parse().unwrap(),
    );
    match tokio_tungstenite::client_async(request, tls_to(addr).await).await {
        Ok((ws, response)) => {
            assert_eq!(
                response.headers()["sec-websocket-protocol"],
                PORT_FORWARD_PROTOCOL
            );
            let (rx, tx) = transport::websocket(ws);
            Ok(Session::new(Role::Client, rx, tx))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("websocket: {e}"),
    }
}

/// Sends `payload` through a forwarded connection, half-closes, and returns what came back
/// and how the forward ended.
async fn round_trip(
    session: &Session,
    port: u16,
    request_id: u64,
    payload: Vec<u8>,
) -> (Vec<u8>, Result<(), ForwardError>) {
    let (local, mut app) = tokio::io::duplex(64 * 1024);
    let session = session.clone();
    let forward =
        tokio::spawn(async move { forward_connection(&session, port, request_id, local).await });
    let (mut app_r, mut app_w) = tokio::io::split(&mut app);
    let writer = async {
        app_w.write_all(&payload).await.unwrap();
        app_w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let reader = app_r.read_to_end(&mut back);
    let ((), read) = tokio::time::timeout(DEADLINE, async { tokio::join!(writer, reader) })
        .await
        .expect("the echo came back in time");
    read.unwrap();
    let ended = tokio::time::timeout(DEADLINE, forward)
        .await
        .expect("the forward ended in time")
        .unwrap();
    (back, ended)
}

#[tokio::test]
async fn websocket_forwards_to_a_tcp_echo_server() {
    let echo = echo_server().await;
    let addr = kubelet().await;
    let session = websocket_session(addr, "/portForward/default/web")
        .await
        .expect("upgraded");
    let (back, ended) = round_trip(&session, echo, 0, b"hello through spdy\n".to_vec()).await;
    assert_eq!(back, b"hello through spdy\n");
    ended.expect("no error from the kubelet");

    // Concurrent connections on one session, big enough to span many frames and messages.
    let jobs = (1..=4u64).map(|id| {
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i as u64 * id) as u8).collect();
        let session = session.clone();
        async move {
            let (back, ended) = round_trip(&session, echo, id, payload.clone()).await;
            assert!(back == payload, "request {id} came back intact");
            ended.unwrap();
        }
    });
    futures::future::join_all(jobs).await;
}

#[tokio::test]
async fn dial_errors_come_back_on_the_error_stream() {
    let port = closed_port().await;
    let addr = kubelet().await;
    let session = websocket_session(addr, "/portForward/default/web")
        .await
        .unwrap();
    let (back, ended) = round_trip(&session, port, 0, b"anyone?".to_vec()).await;
    assert!(back.is_empty());
    match ended {
        Err(ForwardError::Remote(message)) => assert!(
            message.starts_with(&format!(
                "error forwarding port {port} to pod web_default, uid uid-1: "
            )) && message.contains("refused"),
            "{message}"
        ),
        other => panic!("expected the kubelet's error, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_pods_and_other_protocols_are_refused() {
    let addr = kubelet().await;
    assert_eq!(
        websocket_session(addr, "/portForward/default/nope")
            .await
            .err(),
        Some(404)
    );
    // A WebSocket without the port-forward subprotocol.
    let mut request = format!("wss://localhost:{}/portForward/default/web", addr.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    match tokio_tungstenite::client_async(request, tls_to(addr).await).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected a 400, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[tokio::test]
async fn an_http_upgrade_to_spdy_works_too() {
    let echo = echo_server().await;
    let addr = kubelet().await;
    let mut tls = tls_to(addr).await;
    tls.write_all(
        b"POST /portForward/default/web HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
          Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    // Read the 101 answer byte by byte so nothing after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tls.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: portforward.k8s.io"),
        "{head}"
    );
    let (rx, tx) = transport::byte_stream(tls);
    let session = Session::new(Role::Client, rx, tx);
    let (back, ended) = round_trip(&session, echo, 0, b"over plain spdy".to_vec()).await;
    assert_eq!(back, b"over plain spdy");
    ended.unwrap();
}

/// `dial_in_netns` connects to the loopback of the pod's network namespace, not the host's.
#[tokio::test]
async fn dialling_into_a_network_namespace_reaches_its_loopback_only() {
    use kubelet::network::netns;
    use std::os::fd::AsRawFd;
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root to create a network namespace");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns_dir = dir.path().join("netns");
    netns::prepare_dir(&ns_dir).unwrap();
    let ns = netns::create(&ns_dir, "pod").unwrap();
    let mut lo_up = std::process::Command::new("ip");
    lo_up.args(["link", "set", "lo", "up"]);
    netns::run_in(&mut lo_up, Some(&ns)).unwrap();
    assert!(
        lo_up.status().unwrap().success(),
        "lo up in the pod namespace"
    );
    // An echo server listening on the namespace's 127.0.0.1.
    let inside = ns.clone();
    let listener = std::thread::spawn(move || {
        let handle = std::fs::File::open(&inside).unwrap();
        assert_eq!(
            unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
    })
    .join()
    .unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
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

    let mut conn = (portforward::dial_in_netns(ns.clone()))(port)
        .await
        .unwrap();
    conn.write_all(b"inside").await.unwrap();
    conn.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(DEADLINE, conn.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"inside");
    // The host's loopback has no such listener.
    let err = (portforward::dial_host_loopback())(port).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("failed to connect to localhost:{port}, IPv4: ")),
        "{err}"
    );
    netns::delete(&ns).unwrap();
    netns::release_dir(&ns_dir).unwrap();
}
