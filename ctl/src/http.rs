//! A thin HTTP layer over the resolved kubeconfig.
//!
//! `runtime::Client` always asks for `application/json`; kubectl's tables need the
//! `as=Table` Accept header (for lists and for watch streams), so skiffctl sends its own
//! requests over the HTTP client `runtime::config` builds (same TLS and credentials), and
//! decodes failures into the server's `Status` the same way.

use futures::StreamExt;
use runtime::config::{Auth, Config};
use serde_json::Value;

use crate::error::{CtlError, Result};

/// The Accept header kubectl sends for human-readable output.
pub const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
/// Plain JSON objects.
pub const JSON: &str = "application/json";

/// Where the server is and how to authenticate.
#[derive(Clone)]
pub struct Http {
    http: reqwest::Client,
    base: String,
    /// The namespace of the context (or `--namespace`).
    pub namespace: String,
    /// `host:port` for kubectl's connection-refused message.
    host: String,
}

impl Http {
    /// Connects the way every Skiff client does ([`Config::http_client`]: TLS from the
    /// kubeconfig, credentials as a default header); only the Accept headers are skiffctl's.
    pub fn new(config: Config) -> Result<Self> {
        if let Auth::Basic { .. } = &config.auth {
            return Err(CtlError::local("basic authentication is not supported"));
        }
        let http = config.http_client()?;
        let host = config
            .server
            .split("://")
            .nth(1)
            .unwrap_or(&config.server)
            .trim_end_matches('/')
            .to_string();
        Ok(Http {
            http,
            base: config.server,
            namespace: config.namespace,
            host,
        })
    }

    fn connect_error(&self, e: reqwest::Error) -> CtlError {
        // A refused certificate is also a "connect" error to reqwest; say what kubectl says.
        if let Some(reason) = runtime::tls::handshake_failure(&e) {
            CtlError::Local(format!("Unable to connect to the server: {reason}"))
        } else if e.is_connect() {
            CtlError::Local(format!(
                "The connection to the server {} was refused - did you specify the right host or port?",
                self.host
            ))
        } else {
            CtlError::local(crate::error::one_line(&format!(
                "cannot reach the API server: {e}"
            )))
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Vec<u8>)>,
        timeout: Option<std::time::Duration>,
    ) -> Result<reqwest::Response> {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("accept", accept);
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        if let Some((ct, b)) = body {
            rb = rb.header("content-type", ct).body(b);
        }
        let resp = rb.send().await.map_err(|e| self.connect_error(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        Err(status_error(code, &body))
    }

    /// Sends a request and decodes the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value> {
        let resp = self
            .send(
                method,
                path,
                accept,
                body,
                Some(std::time::Duration::from_secs(60)),
            )
            .await?;
        let bytes = resp.bytes().await.map_err(|e| self.connect_error(e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| CtlError::local(format!("cannot decode the server's answer: {e}")))
    }

    /// `GET` as JSON.
    pub async fn get(&self, path: &str, accept: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, accept, None).await
    }

    /// A `GET` whose body the caller reads as a stream (no overall timeout): `logs`.
    pub async fn stream(&self, path: &str, accept: &str) -> Result<reqwest::Response> {
        self.send(reqwest::Method::GET, path, accept, None, None)
            .await
    }

    /// Opens a WebSocket at `path` offering `protocol`: the upgraded connection once the
    /// server switched protocols (its `Sec-WebSocket-Accept` checked), or the server's
    /// `Status` as an error. Same client, TLS and credentials as every other request.
    pub async fn websocket(&self, path: &str, protocol: &str) -> Result<reqwest::Upgraded> {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", &key)
            .header("sec-websocket-protocol", protocol)
            .send()
            .await
            .map_err(|e| self.connect_error(e))?;
        if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            let code = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(status_error(code, &body));
        }
        let expected = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        if header("sec-websocket-accept") != expected {
            return Err(CtlError::local(
                "error upgrading connection: the server's Sec-WebSocket-Accept does not match",
            ));
        }
        if header("sec-websocket-protocol") != protocol {
            return Err(CtlError::local(format!(
                "error upgrading connection: the server did not agree to subprotocol {protocol}"
            )));
        }
        resp.upgrade()
            .await
            .map_err(|e| CtlError::local(format!("error upgrading connection: {e}")))
    }

    /// A watch: calls `each` with every event object until the server ends the stream.
    pub async fn watch(
        &self,
        path: &str,
        accept: &str,
        mut each: impl FnMut(Value) -> Result<()>,
    ) -> Result<()> {
        let resp = self
            .send(reqwest::Method::GET, path, accept, None, None)
            .await?;
        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.connect_error(e))?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let ev: Value = serde_json::from_slice(&line)
                    .map_err(|e| CtlError::local(format!("cannot decode a watch event: {e}")))?;
                each(ev)?;
            }
        }
        Ok(())
    }
}

/// Turns an error response into kubectl's `Error from server (Reason): message`.
fn status_error(code: u16, body: &[u8]) -> CtlError {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let message = v["message"].as_str().unwrap_or_default();
        if !message.is_empty() {
            return CtlError::Server {
                reason: v["reason"].as_str().unwrap_or_default().to_string(),
                message: crate::error::one_line(message),
            };
        }
    }
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        _ => "",
    };
    CtlError::Server {
        reason: reason.to_string(),
        message: crate::error::one_line(&format!(
            "the server responded with code {code}: {}",
            String::from_utf8_lossy(body).trim()
        )),
    }
}
