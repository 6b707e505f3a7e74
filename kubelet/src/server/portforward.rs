//! `GET|POST /portForward/{namespace}/{pod}[/{uid}]`: TCP connections into a pod, carried
//! as SPDY/3.1 streams ([`runtime::spdy`]).
//!
//! The connection is a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io` (kubectl
//! 1.30+, relayed by the API server) or, for kubectl's fallback and older clients, the HTTP
//! connection itself upgraded to `SPDY/3.1` with `X-Stream-Protocol-Version:
//! portforward.k8s.io`. Either way the client then opens two streams per forwarded
//! connection, both with headers `port` and `requestID`: `streamType: error` and
//! `streamType: data`. Once both of a request have arrived the kubelet dials the port in
//! the pod and splices it with the data stream; a failure is written as text on the error
//! stream (`error forwarding port N to pod P, uid U: ...`, Kubernetes' words), which
//! kubectl prints. Both streams are then finished. A pair missing its second stream after
//! [`STREAM_CREATION_TIMEOUT`] gets a timeout message instead.
//!
//! How a port inside a pod is reached is the agent's business: [`PodPorts`] resolves a pod
//! to a [`ForwardTarget`] whose `dial` connects (into the pod's network namespace, or to the
//! pod IP). [`serve_port_forward`] is the whole protocol over an established session, so it
//! is usable (and tested) without HTTP.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream as FutStream, StreamExt};
use runtime::spdy::{self, Headers, Incoming, Role, Session, Stream};
use tokio::net::TcpStream;
use tracing::Instrument;

use super::{ApiError, LookupError};

/// How long the second stream of a request may take to follow the first (Kubernetes'
/// default `streamCreationTimeout`).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A future dialling a port in a pod.
pub type DialFuture = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;
/// Connects to a TCP port of one pod.
pub type Dial = Arc<dyn Fn(u16) -> DialFuture + Send + Sync>;

/// A pod ports can be forwarded to.
#[derive(Clone)]
pub struct ForwardTarget {
    /// How messages name the pod (Kubernetes uses the sandbox id or the pod's full name).
    pub pod: String,
    /// The pod's UID, for messages.
    pub uid: String,
    /// Connects to a port of the pod.
    pub dial: Dial,
}

/// Resolves pods for port forwarding: implemented by the agent over its pods. Called on a
/// blocking thread (it may ask the container runtime).
pub trait PodPorts: Send + Sync + 'static {
    /// The pod `namespace/pod` if it runs here with a network to dial into.
    fn target(&self, namespace: &str, pod: &str) -> Result<ForwardTarget, LookupError>;
}

/// How long dialling a port in a pod may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Dials `localhost:port` of the host network (host-network pods, the process driver):
/// 127.0.0.1, then ::1.
pub fn dial_host_loopback() -> Dial {
    Arc::new(|port| {
        Box::pin(async move {
            let conn = tokio::task::spawn_blocking(move || connect_loopback(port))
                .await
                .map_err(io::Error::other)??;
            conn.set_nonblocking(true)?;
            TcpStream::from_std(conn)
        })
    })
}

/// Dials `localhost:port` inside the network namespace at `netns` (127.0.0.1, then ::1), as
/// the CRI runtimes do: a short-lived thread joins the namespace and connects; the socket
/// keeps belonging to the pod's namespace after the thread is gone.
pub fn dial_in_netns(netns: PathBuf) -> Dial {
    Arc::new(move |port| {
        let netns = netns.clone();
        Box::pin(async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("portforward-dial".into())
                .spawn(move || {
                    let _ = tx.send(
                        crate::network::netns::enter(&netns).and_then(|()| connect_loopback(port)),
                    );
                })?;
            let conn = rx
                .await
                .map_err(|_| io::Error::other("the dialling thread died"))??;
            conn.set_nonblocking(true)?;
            TcpStream::from_std(conn)
        })
    })
}

/// Connects to `localhost:port` in the calling thread's network namespace, IPv4 first.
fn connect_loopback(port: u16) -> io::Result<std::net::TcpStream> {
    let v4 = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    match std::net::TcpStream::connect_timeout(&v4, DIAL_TIMEOUT) {
        Ok(c) => Ok(c),
        Err(e4) => std::net::TcpStream::connect_timeout(&v6, DIAL_TIMEOUT).map_err(|e6| {
            io::Error::new(
                e4.kind(),
                format!("failed to connect to localhost:{port}, IPv4: {e4} IPv6: {e6}"),
            )
        }),
    }
}

/// The `/portForward` routes (merged into the kubelet API's router by the agent).
pub fn router(pods: Arc<dyn PodPorts>) -> Router {
    Router::new()
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward).post(port_forward),
        )
        .route(
            "/portForward/{namespace}/{pod}/{uid}",
            get(port_forward).post(port_forward),
        )
        .with_state(pods)
}

async fn port_forward(
    State(pods): State<Arc<dyn PodPorts>>,
    Path(path): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let namespace = path.get("namespace").cloned().unwrap_or_default();
    let pod = path.get("pod").cloned().unwrap_or_default();
    let span = tracing::info_span!("port_forward", pod = %format!("{namespace}/{pod}"));
    // The agent's lookup may ask the container runtime (blocking).
    let lookup = {
        let (pods, namespace, pod) = (pods.clone(), namespace.clone(), pod.clone());
        tokio::task::spawn_blocking(move || pods.target(&namespace, &pod)).await
    };
    let target = match lookup {
        Ok(Ok(t)) => t,
        Err(e) => {
            return ApiError::internal(format!("port-forward lookup failed: {e}")).into_response();
        }
        Ok(Err(LookupError::PodNotFound | LookupError::ContainerNotFound)) => {
            return ApiError::not_found("pods", &pod).into_response();
        }
        Ok(Err(LookupError::Waiting { reason })) => {
            return ApiError::bad_request(format!("pod {pod} is not running yet: {reason}"))
                .into_response();
        }
    };
    match upgrade_kind(request.headers()) {
        Ok(UpgradeKind::WebSocket) => {
            let (mut parts, _body) = request.into_parts();
            match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
                Ok(ws) => ws
                    .protocols([spdy::PORT_FORWARD_PROTOCOL])
                    .on_upgrade(move |socket| {
                        let (rx, tx) = axum_transport(socket);
                        serve_port_forward(Session::new(Role::Server, rx, tx), target)
                            .instrument(span)
                    }),
                Err(rejection) => rejection.into_response(),
            }
        }
        Ok(UpgradeKind::Spdy) => spdy_upgrade(request, target, span),
        Err(e) => e.into_response(),
    }
}

/// How the client asks to stream.
#[derive(Debug, PartialEq, Eq)]
enum UpgradeKind {
    /// A WebSocket offering [`spdy::PORT_FORWARD_PROTOCOL`].
    WebSocket,
    /// The connection itself upgraded to SPDY/3.1.
    Spdy,
}

/// Decides from the request headers which upgrade the client asks for, or why it cannot
/// be served.
fn upgrade_kind(headers: &HeaderMap) -> Result<UpgradeKind, ApiError> {
    let values = |name: header::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let upgrade = values(header::UPGRADE);
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let offered = values(header::SEC_WEBSOCKET_PROTOCOL);
        return if offered.iter().any(|p| p == spdy::PORT_FORWARD_PROTOCOL) {
            Ok(UpgradeKind::WebSocket)
        } else {
            Err(ApiError::bad_request(format!(
                "the WebSocket client must offer the subprotocol {}",
                spdy::PORT_FORWARD_PROTOCOL
            )))
        };
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        let offered = values(header::HeaderName::from_static("x-stream-protocol-version"));
        return if offered.is_empty() || offered.iter().any(|p| p == spdy::PORT_FORWARD_V1) {
            Ok(UpgradeKind::Spdy)
        } else {
            Err(ApiError {
                code: StatusCode::FORBIDDEN,
                reason: "Forbidden",
                message: format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [\"{}\"]",
                    spdy::PORT_FORWARD_V1
                ),
                details: None,
            })
        };
    }
    Err(ApiError::bad_request("Upgrade request required"))
}

/// Answers 101 to an `Upgrade: SPDY/3.1` request and serves the upgraded connection.
fn spdy_upgrade(mut request: Request, target: ForwardTarget, span: tracing::Span) -> Response {
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(
        async move {
            match upgraded.await {
                Ok(io) => {
                    let (rx, tx) = spdy::transport::byte_stream(hyper_util::rt::TokioIo::new(io));
                    serve_port_forward(Session::new(Role::Server, rx, tx), target).await;
                }
                Err(e) => tracing::debug!(error = %e, "SPDY upgrade failed"),
            }
        }
        .instrument(span),
    );
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "Upgrade"),
            (header::UPGRADE, "SPDY/3.1"),
            (
                header::HeaderName::from_static("x-stream-protocol-version"),
                spdy::PORT_FORWARD_V1,
            ),
        ],
    )
        .into_response()
}

/// axum's WebSocket as a SPDY transport (binary messages; see [`spdy::transport`]).
fn axum_transport(
    socket: WebSocket,
) -> (
    impl FutStream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    impl Sink<Bytes, Error = io::Error> + Send + Unpin + 'static,
) {
    let (sink, stream) = socket.split();
    let stream = stream
        .take_while(|m| ready(!matches!(m, Ok(Message::Close(_)))))
        .filter_map(|m| {
            ready(match m {
                Ok(Message::Binary(b)) => Some(Ok(b)),
                Ok(Message::Text(_)) => Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "text message in a SPDY tunnel",
                ))),
                Ok(_) => None,
                Err(e) => Some(Err(io::Error::other(e))),
            })
        });
    let sink = sink
        .with(|b: Bytes| ready(Ok::<_, axum::Error>(Message::Binary(b))))
        .sink_map_err(io::Error::other);
    (Box::pin(stream), Box::pin(sink))
}

/// Which of a request's two streams a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Carries the forwarded bytes.
    Data,
    /// Carries the kubelet's error message, if any.
    Error,
}

/// Checks a new stream's headers like the kubelet: a valid non-zero `port` and a known
/// `streamType`.
pub fn classify(headers: &Headers) -> Result<(StreamKind, u16), String> {
    let port = headers
        .get("port")
        .filter(|p| !p.is_empty())
        .ok_or("\"port\" header is required")?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port == 0 {
        return Err("port \"0\" must be > 0".into());
    }
    let kind = match headers.get("streamtype") {
        None | Some("") => return Err("\"streamType\" header is required".into()),
        Some("data") => StreamKind::Data,
        Some("error") => StreamKind::Error,
        Some(other) => return Err(format!("invalid stream type {other:?}")),
    };
    Ok((kind, port))
}

/// The request a stream belongs to: its `requestID` header, or for old clients without
/// one, derived from the stream id (error stream n, data stream n + 2), as the kubelet does.
pub fn request_id(headers: &Headers, stream_id: u32, kind: StreamKind) -> String {
    match headers.get("requestid") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => match kind {
            StreamKind::Error => stream_id.to_string(),
            StreamKind::Data => stream_id.saturating_sub(2).to_string(),
        },
    }
}

/// The streams of one forwarded connection, as they arrive.
struct Pair {
    port: u16,
    error: Option<Stream>,
    data: Option<Stream>,
    since: Instant,
}

/// Serves port forwarding on an established SPDY session until the client closes it.
pub async fn serve_port_forward(session: Session, target: ForwardTarget) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            incoming = session.accept() => {
                let Some(incoming) = incoming else { break };
                if let Some((id, pair)) = receive(&mut pending, incoming).await {
                    tokio::spawn(forward(id, pair, target.clone()).in_current_span());
                }
            }
            _ = sweep.tick() => {
                let expired: Vec<String> = pending
                    .iter()
                    .filter(|(_, p)| p.since.elapsed() >= STREAM_CREATION_TIMEOUT)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in expired {
                    if let Some(pair) = pending.remove(&id) {
                        tracing::debug!(request = %id, "timed out waiting for the second stream");
                        fail(pair, &format!("(request={id}) timed out waiting for streams")).await;
                    }
                }
            }
        }
    }
    tracing::debug!("port forwarding connection closed");
}

/// Accepts or refuses a new stream and files it with its request; returns the request once
/// both its streams are there.
async fn receive(
    pending: &mut HashMap<String, Pair>,
    incoming: Incoming,
) -> Option<(String, Pair)> {
    let (kind, port) = match classify(incoming.headers()) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "stream refused");
            incoming.refuse().await;
            return None;
        }
    };
    let id = request_id(incoming.headers(), incoming.id(), kind);
    let stream = incoming.accept().await.ok()?;
    let pair = pending.entry(id.clone()).or_insert_with(|| Pair {
        port,
        error: None,
        data: None,
        since: Instant::now(),
    });
    let slot = match kind {
        StreamKind::Data => &mut pair.data,
        StreamKind::Error => &mut pair.error,
    };
    if slot.is_some() {
        let which = if kind == StreamKind::Data {
            "data"
        } else {
            "error"
        };
        let message =
            format!("error processing stream for request {id}: {which} stream already assigned");
        tracing::debug!(%message);
        if let Some(error) = &pair.error {
            let _ = error.writer().write(message.as_bytes()).await;
        }
        stream.writer().reset().await;
        return None;
    }
    *slot = Some(stream);
    if pair.error.is_some() && pair.data.is_some() {
        return pending.remove(&id).map(|p| (id, p));
    }
    None
}

/// Dials the pair's port and splices it with the data stream; then finishes both streams.
async fn forward(id: String, pair: Pair, target: ForwardTarget) {
    let (Some(error), Some(data)) = (pair.error, pair.data) else {
        return;
    };
    let port = pair.port;
    let error = error.writer();
    let data_writer = data.writer();
    match (target.dial)(port).await {
        Ok(tcp) => {
            tracing::debug!(request = %id, port, "forwarding");
            if let Err(e) = spdy::splice(data, tcp, spdy::Until::BothDone).await {
                tracing::debug!(request = %id, port, error = %e, "forwarding ended with an error");
            }
        }
        Err(e) => {
            let message = format!(
                "error forwarding port {port} to pod {}, uid {}: {e}",
                target.pod, target.uid
            );
            tracing::info!(request = %id, %message);
            let _ = error.write(message.as_bytes()).await;
        }
    }
    let _ = error.finish().await;
    let _ = data_writer.finish().await;
}

/// Ends a request that never completed: the message on its error stream, if it has one.
async fn fail(pair: Pair, message: &str) {
    if let Some(error) = pair.error {
        let w = error.writer();
        let _ = w.write(message.as_bytes()).await;
        let _ = w.finish().await;
    }
    if let Some(data) = pair.data {
        data.writer().reset().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_headers_are_checked_like_the_kubelet() {
        let h = |pairs: &[(&str, &str)]| Headers::from_pairs(pairs.iter().copied());
        type Case = (Headers, Result<(StreamKind, u16), &'static str>);
        let cases: Vec<Case> = vec![
            (
                h(&[("streamType", "data"), ("port", "80")]),
                Ok((StreamKind::Data, 80)),
            ),
            (
                h(&[("streamtype", "error"), ("port", "65535")]),
                Ok((StreamKind::Error, 65535)),
            ),
            (
                h(&[("streamtype", "data")]),
                Err("\"port\" header is required"),
            ),
            (
                h(&[("streamtype", "data"), ("port", "x")]),
                Err("unable to parse \"x\" as a port: invalid digit found in string"),
            ),
            (
                h(&[("streamtype", "data"), ("port", "0")]),
                Err("port \"0\" must be > 0"),
            ),
            (
                h(&[("port", "1")]),
                Err("\"streamType\" header is required"),
            ),
            (
                h(&[("streamtype", "stdin"), ("port", "1")]),
                Err("invalid stream type \"stdin\""),
            ),
        ];
        for (headers, want) in cases {
            assert_eq!(
                classify(&headers),
                want.map_err(String::from),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn request_ids_fall_back_to_stream_ids() {
        let with = Headers::from_pairs([("requestID", "7")]);
        assert_eq!(request_id(&with, 9, StreamKind::Data), "7");
        let without = Headers::default();
        assert_eq!(request_id(&without, 1, StreamKind::Error), "1");
        assert_eq!(request_id(&without, 3, StreamKind::Data), "1");
    }

    #[test]
    fn upgrades_are_told_apart() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(
                    header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            h
        };
        let ws = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ]);
        assert_eq!(upgrade_kind(&ws), Ok(UpgradeKind::WebSocket));
        let ws_other = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        assert_eq!(
            upgrade_kind(&ws_other).unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
        let spdy = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "portforward.k8s.io"),
        ]);
        assert_eq!(upgrade_kind(&spdy), Ok(UpgradeKind::Spdy));
        let spdy_other = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]);
        assert_eq!(
            upgrade_kind(&spdy_other).unwrap_err().code,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            upgrade_kind(&HeaderMap::new()).unwrap_err().message,
            "Upgrade request required"
        );
    }
}
