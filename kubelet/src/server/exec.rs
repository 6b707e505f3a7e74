//! `GET /exec/{namespace}/{pod}/{container}`: a command in a running container, its stdio
//! carried over a WebSocket in the channel protocol ([`super::channel`]).

use std::process::Stdio;

use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code,
    rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::channel::{self, Inbound};
use super::{ApiError, KubeletApi};
use crate::cri::{ContainerState, exit_code_of};
use crate::logs::options::query_bool;

/// What the client asked to run and which streams it wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ExecRequest {
    pub argv: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecRequest {
    /// Reads `command` (repeated, in order) and the stream flags from the query.
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        let mut req = ExecRequest::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "command" => req.argv.push(value.into_owned()),
                "stdin" => req.stdin = query_bool(&value),
                "stdout" => req.stdout = query_bool(&value),
                "stderr" => req.stderr = query_bool(&value),
                "tty" => req.tty = query_bool(&value),
                _ => {}
            }
        }
        if req.argv.is_empty() {
            return Err(ApiError::bad_request(
                "you must specify at least one command for the container",
            ));
        }
        if !(req.stdin || req.stdout || req.stderr) {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        Ok(req)
    }
}

pub(super) async fn exec(
    State(api): State<KubeletApi>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    method: Method,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let span = tracing::info_span!("exec", pod = %format!("{namespace}/{pod}"), %container);
    let prepared = prepare(&api, &namespace, &pod, &container, query.as_deref())
        .instrument(span.clone())
        .await;
    let (req, command) = match prepared {
        Ok(p) => p,
        Err(e) => {
            span.in_scope(|| tracing::debug!(message = %e.message, "exec refused"));
            return e.into_response();
        }
    };
    let upgrade = match upgrade {
        Ok(u) if method == Method::GET => u.protocols(channel::PROTOCOLS),
        _ => {
            return ApiError::bad_request(format!(
                "Upgrade request required: exec is served over WebSocket ({}) only, not SPDY",
                channel::PROTOCOLS.join(", ")
            ))
            .into_response();
        }
    };
    let Some(protocol) = upgrade
        .selected_protocol()
        .and_then(|p: &HeaderValue| p.to_str().ok())
        .map(str::to_string)
    else {
        return ApiError::bad_request(format!(
            "the WebSocket client must offer one of the subprotocols {}",
            channel::PROTOCOLS.join(", ")
        ))
        .into_response();
    };
    upgrade.on_upgrade(move |socket| session(socket, protocol, command, req).instrument(span))
}

/// Validates the request, finds the running container and builds the command.
async fn prepare(
    api: &KubeletApi,
    namespace: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Result<(ExecRequest, std::process::Command), ApiError> {
    let req = ExecRequest::from_query(query.unwrap_or(""))?;
    let found = api.find(namespace, pod, container).await?;
    let runtime = api.runtime.clone();
    let argv = req.argv.clone();
    let (state, command) = tokio::task::spawn_blocking(move || {
        let state = runtime
            .container_status(&found.container_id)
            .map(|c| c.state);
        let command = runtime.exec_command(&found.container_id, &argv);
        (state, command)
    })
    .await
    .map_err(|e| ApiError::internal(format!("exec preparation failed: {e}")))?;
    if !matches!(state, Ok(ContainerState::Running { .. })) {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is not running"
        )));
    }
    let command = command
        .map_err(|e| ApiError::internal(format!("error executing command in container: {e}")))?;
    Ok((req, command))
}

/// Runs the command and relays its stdio until it exits (then sends its status and closes)
/// or the client goes away (then kills it).
async fn session(
    socket: WebSocket,
    protocol: String,
    command: std::process::Command,
    req: ExecRequest,
) {
    let (mut sink, mut inbound) = socket.split();
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(if req.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if req.stdout || req.tty {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if req.stderr || req.tty {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let status =
                channel::failure_status(&format!("error executing command in container: {e}"));
            let _ = sink
                .send(Message::Binary(
                    channel::frame(channel::ERROR, status.to_string().as_bytes()).into(),
                ))
                .await;
            close_normally(&mut sink).await;
            return;
        }
    };
    tracing::debug!(argv = ?req.argv, pid = child.id(), "exec started");
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    // Without a terminal to merge them, a tty session's stderr shares the stdout channel.
    let stderr_channel = if req.tty && !req.stderr {
        channel::STDOUT
    } else {
        channel::STDERR
    };
    let pumps = [
        child
            .stdout
            .take()
            .map(|s| pump(s, channel::STDOUT, out_tx.clone())),
        child
            .stderr
            .take()
            .map(|s| pump(s, stderr_channel, out_tx.clone())),
    ];
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        close_normally(&mut sink).await;
    });
    let mut stdin = child.stdin.take();
    let input = async {
        while let Some(Ok(message)) = inbound.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            match channel::classify(&protocol, &data) {
                Inbound::Stdin(bytes) => {
                    if let Some(pipe) = &mut stdin
                        && pipe.write_all(bytes).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Inbound::CloseStdin => stdin = None,
                Inbound::Resize | Inbound::Ignored => {}
            }
        }
    };
    let finished = async {
        let status = child.wait().await;
        for pump in pumps.into_iter().flatten() {
            let _ = pump.await;
        }
        status
    };
    tokio::select! {
        status = finished => {
            let status = match status {
                Ok(s) => channel::exit_status(&req.argv, exit_code_of(s).unwrap_or(1)),
                Err(e) => channel::failure_status(&format!("waiting for the command failed: {e}")),
            };
            tracing::debug!(%status, "exec finished");
            let _ = out_tx
                .send(Message::Binary(channel::frame(channel::ERROR, status.to_string().as_bytes()).into()))
                .await;
            drop(out_tx);
            let _ = writer.await;
        }
        () = input => {
            tracing::debug!("exec client went away; killing the command");
            drop(out_tx);
            writer.abort();
        }
    }
    // kill_on_drop ends a command whose client left.
}

/// Ends the session with a normal-closure code: clients (client-go) treat a close frame
/// without one as an error even after a status arrived.
async fn close_normally(sink: &mut futures::stream::SplitSink<WebSocket, Message>) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    let _ = sink.close().await;
}

/// Copies one output pipe to the client on `channel`.
fn pump(
    mut pipe: impl AsyncRead + Unpin + Send + 'static,
    channel: u8,
    out: mpsc::Sender<Message>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let message = Message::Binary(channel::frame(channel, &buf[..n]).into());
                    if out.send(message).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exec_queries() {
        let ok = ExecRequest::from_query(
            "command=sh&command=-c&command=exit%203&stdout=true&stderr=1&container=x",
        )
        .expect("valid");
        assert_eq!(ok.argv, ["sh", "-c", "exit 3"]);
        assert!(ok.stdout && ok.stderr && !ok.stdin && !ok.tty);
        let cases = [
            ("stdout=true", "at least one command"),
            ("command=ls", "at least 1 of stdin, stdout, stderr"),
            ("command=ls&stdout=false&stdin=0", "at least 1 of stdin"),
        ];
        for (query, want) in cases {
            let e = ExecRequest::from_query(query).expect_err(query);
            assert!(e.message.contains(want), "{query}: {}", e.message);
        }
    }
}
