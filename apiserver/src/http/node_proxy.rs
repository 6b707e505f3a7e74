//! `pods/log`, `pods/exec` and `pods/portforward`: proxied to the kubelet API of the node
//! the pod runs on, as kube-apiserver does.
//!
//! The pod names its node (`spec.nodeName`); the Node object says where that node's kubelet
//! listens (`status.addresses`, InternalIP preferred, else Hostname; port
//! `status.daemonEndpoints.kubeletEndpoint.Port`, default 10250). Logs stream through chunk by
//! chunk. Upgrade requests (exec's WebSocket, or kubectl's SPDY fallback) are relayed byte for
//! byte once the kubelet agreed to switch protocols: the client gets the kubelet's 101 with
//! its `Sec-WebSocket-Accept` and subprotocol, so neither side can tell a proxy sits between
//! them, and any subprotocol (exec's channels, port-forward's) passes unchanged —
//! [`proxy_upgrade`] is the reusable part. A refused upgrade is answered with the kubelet's
//! own `Status`.
//!
//! The API server authenticates to kubelets with its client certificate (signed by the
//! cluster CA, which kubelets require) when it has one. The kubelet's certificate is
//! self-signed and not verified (a known gap, like Kubernetes without
//! `--kubelet-certificate-authority`; see ARCHITECTURE "Security").

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument;

use super::ApiState;
use super::request::{Query, Target};
use crate::error::Error;
use crate::resources::{RESOURCES, Subresource};

/// The kubelet port when a Node does not say (Kubernetes' default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How long connecting to a kubelet may take before the request fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Request headers an upgrade needs the kubelet to see; credentials are not passed on.
const UPGRADE_HEADERS: [&str; 6] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// Whether this module serves the request: pods' `log`, `exec` and `portforward`.
pub fn serves(target: &Target) -> bool {
    target.rt.resource == "pods"
        && target.rt.group.is_empty()
        && target.name.is_some()
        && matches!(
            target
                .subresource
                .as_deref()
                .and_then(|s| target.rt.subresource(s)),
            Some(Subresource::Log | Subresource::Exec | Subresource::PortForward)
        )
}

/// Serves `pods/log`, `pods/exec` or `pods/portforward` for `target` by proxying to the
/// pod's kubelet.
pub async fn serve(
    state: &ApiState,
    target: &Target,
    query: &Query,
    raw_query: Option<&str>,
    request: Request,
) -> Result<Response, Error> {
    let name = target.name.as_deref().unwrap_or_default();
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let span = tracing::debug_span!("node_proxy", pod = %format!("{namespace}/{name}"));
    async move {
        let pods = target.rt;
        let pod = state.registry.get(pods, Some(namespace), name).await?;
        let node_name = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node_name.is_empty() {
            return Err(Error::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        // Port forwarding is per pod (the ports travel in the streams' headers).
        let (kind, container) = match target.subresource.as_deref() {
            Some("portforward") => ("portForward", None),
            sub => (
                if sub == Some("exec") {
                    "exec"
                } else {
                    "containerLogs"
                },
                Some(pod_container(&pod, name, query.get("container"))?),
            ),
        };
        let nodes = RESOURCES
            .iter()
            .find(|r| r.resource == "nodes" && r.group.is_empty())
            .ok_or_else(|| Error::Internal("nodes are not served".into()))?;
        let node = state.registry.get(nodes, None, node_name).await?;
        let (host, port) = kubelet_endpoint(&node)?;
        let url = format!(
            "https://{}/{kind}/{namespace}/{name}{}{}",
            host_port(&host, port),
            container.map(|c| format!("/{c}")).unwrap_or_default(),
            raw_query.map(|q| format!("?{q}")).unwrap_or_default()
        );
        tracing::debug!(%url, node = node_name, "proxying to the kubelet");
        if kind != "containerLogs" {
            proxy_upgrade(&state.kubelet, &url, request).await
        } else {
            proxy_stream(&state.kubelet, &url).await
        }
    }
    .instrument(span)
    .await
}

/// The container a request is about: the one named, which must exist in the pod, or the
/// pod's only container (Kubernetes' rules and messages).
pub fn pod_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<String, Error> {
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    match requested.filter(|c| !c.is_empty()) {
        Some(c) => {
            let known = containers
                .iter()
                .chain(&init)
                .chain(&names("ephemeralContainers"))
                .any(|n| n == c);
            if known {
                Ok(c.to_string())
            } else {
                Err(Error::bad_request(format!(
                    "container {c} is not valid for pod {pod_name}"
                )))
            }
        }
        None => match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(Error::bad_request(format!(
                "couldn't find any containers in pod {pod_name}"
            ))),
            many => {
                let mut message = format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    many.join(" ")
                );
                if !init.is_empty() {
                    message.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(Error::bad_request(message))
            }
        },
    }
}

/// Where a node's kubelet listens: its InternalIP (else Hostname) and kubelet port.
pub fn kubelet_endpoint(node: &Value) -> Result<(String, u16), Error> {
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let of_type = |t: &str| {
        addresses
            .iter()
            .find(|a| a["type"] == t)
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    };
    let host = of_type("InternalIP")
        .or_else(|| of_type("Hostname"))
        .ok_or_else(|| {
            let known: Vec<String> = addresses
                .iter()
                .map(|a| {
                    format!(
                        "{}:{}",
                        a["type"].as_str().unwrap_or(""),
                        a["address"].as_str().unwrap_or("")
                    )
                })
                .collect();
            Error::Internal(format!(
                "no preferred addresses found; known addresses: [{}]",
                known.join(" ")
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((host, port))
}

/// `host:port`, bracketing IPv6 addresses.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The client certificate (PEM chain, leaf first) and key the API server presents to
/// kubelets (kube-apiserver's `--kubelet-client-certificate`/`--kubelet-client-key`).
#[derive(Clone)]
pub struct KubeletClientCert {
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for KubeletClientCert {
    /// The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClientCert").finish_non_exhaustive()
    }
}

/// The client every kubelet connection uses: TLS without server certificate verification
/// (see the module docs), the client certificate if there is one, no overall timeout
/// (streams last as long as the client wants).
pub fn kubelet_client(identity: Option<&KubeletClientCert>) -> Result<reqwest::Client, Error> {
    let pem = |source: &str, text: &str| runtime::config::Pem {
        source: source.to_string(),
        bytes: text.as_bytes().to_vec(),
    };
    let tls = runtime::config::TlsConfig {
        insecure: true,
        client_cert: identity.map(|i| pem("kubelet client certificate", &i.chain_pem)),
        client_key: identity.map(|i| pem("kubelet client key", &i.key_pem)),
        ..Default::default()
    };
    let config = runtime::tls::client_config(&tls)
        .map_err(|e| Error::Internal(format!("kubelet client TLS: {e}")))?;
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| Error::Internal(format!("kubelet client: {e}")))
}

/// The kubelet could not be reached: 503 with the transport's reason.
fn dial_error(e: &reqwest::Error) -> Error {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    Error::ServiceUnavailable(format!("error dialing backend: {reason}"))
}

/// A kubelet error answer, relayed as it is (it is a `Status`).
async fn relay_failure(response: reqwest::Response) -> Response {
    let code = StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = response.bytes().await.unwrap_or_default();
    (code, [("content-type", content_type)], body).into_response()
}

/// GETs `url` and streams the answer through as it arrives (`follow` stays open).
async fn proxy_stream(kubelet: &reqwest::Client, url: &str) -> Result<Response, Error> {
    let response = kubelet.get(url).send().await.map_err(|e| dial_error(&e))?;
    if !response.status().is_success() {
        return Ok(relay_failure(response).await);
    }
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain")],
        Body::from_stream(response.bytes_stream()),
    )
        .into_response())
}

/// Relays an upgrade request to `url` and, once the kubelet switched protocols, the two
/// connections byte for byte in both directions until either side closes. The subprotocol
/// (`Sec-WebSocket-Protocol`, `X-Stream-Protocol-Version`) is whatever the client and the
/// kubelet agree on. Reusable for every streaming subresource.
pub async fn proxy_upgrade(
    kubelet: &reqwest::Client,
    url: &str,
    mut request: Request,
) -> Result<Response, Error> {
    if !request.headers().contains_key("upgrade") {
        return Err(Error::bad_request("Upgrade request required"));
    }
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
        .map_err(|_| Error::MethodNotAllowed)?;
    let mut forward = reqwest::header::HeaderMap::new();
    copy_headers(request.headers(), &mut forward, &UPGRADE_HEADERS);
    let response = kubelet
        .request(method, url)
        .headers(forward)
        .send()
        .await
        .map_err(|e| dial_error(&e))?;
    if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        return Ok(relay_failure(response).await);
    }
    let mut switched = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in response.headers() {
        switched = switched.header(name.as_str(), value.as_bytes());
    }
    let client_side = hyper::upgrade::on(&mut request);
    let kubelet_side = response
        .upgrade()
        .await
        .map_err(|e| Error::ServiceUnavailable(format!("upgrading the kubelet connection: {e}")))?;
    tokio::spawn(async move {
        let client = match client_side.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "client upgrade failed");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut kubelet = kubelet_side;
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
            tracing::debug!(error = %e, "upgraded stream ended with an error");
        }
    });
    switched
        .body(Body::empty())
        .map_err(|e| Error::Internal(format!("building the upgrade answer: {e}")))
}

fn copy_headers(from: &HeaderMap, to: &mut reqwest::header::HeaderMap, names: &[&str]) {
    for name in names {
        for value in from.get_all(*name) {
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                to.append(n, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_the_container_like_kubernetes() {
        let one = json!({"spec": {"containers": [{"name": "web"}]}});
        let two = json!({"spec": {
            "containers": [{"name": "web"}, {"name": "side"}],
            "initContainers": [{"name": "init"}],
        }});
        let cases: [(&Value, Option<&str>, Result<&str, &str>); 7] = [
            (&one, None, Ok("web")),
            (&one, Some(""), Ok("web")),
            (&one, Some("web"), Ok("web")),
            (
                &one,
                Some("nope"),
                Err("container nope is not valid for pod p"),
            ),
            (&two, Some("init"), Ok("init")),
            (
                &two,
                None,
                Err(
                    "a container name must be specified for pod p, choose one of: [web side] or one of the init containers: [init]",
                ),
            ),
            (
                &json!({"spec": {}}),
                None,
                Err("couldn't find any containers in pod p"),
            ),
        ];
        for (pod, requested, want) in cases {
            let got = pod_container(pod, "p", requested).map_err(|e| e.to_string());
            assert_eq!(
                got.as_deref().map_err(String::as_str),
                want,
                "{requested:?}"
            );
        }
    }

    #[test]
    fn finds_the_kubelet_endpoint() {
        let node = |v: Value| json!({"status": v});
        let cases = [
            (
                node(
                    json!({"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                             "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}}}),
                ),
                Ok(("10.0.0.1".to_string(), 12345)),
            ),
            (
                node(json!({"addresses": [{"type": "Hostname", "address": "n1"}]})),
                Ok(("n1".to_string(), 10250)),
            ),
            (
                node(json!({"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]})),
                Err(
                    "no preferred addresses found; known addresses: [ExternalIP:1.2.3.4]"
                        .to_string(),
                ),
            ),
            (
                json!({}),
                Err("no preferred addresses found; known addresses: []".to_string()),
            ),
        ];
        for (n, want) in cases {
            let got = kubelet_endpoint(&n).map_err(|e| match e {
                Error::Internal(m) => m,
                other => other.to_string(),
            });
            assert_eq!(got, want, "{n}");
        }
        assert_eq!(host_port("::1", 1), "[::1]:1");
        assert_eq!(host_port("10.0.0.1", 1), "10.0.0.1:1");
    }
}
