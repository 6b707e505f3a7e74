//! `skiffctl exec POD [-c C] [-i] [-t] -- CMD...`: runs a command in a container over
//! `pods/exec`'s WebSocket (subprotocol `v5.channel.k8s.io`) and exits with its exit code.
//!
//! Channels: every binary message starts with its channel byte — 0 stdin, 1 stdout,
//! 2 stderr, 3 the final status — and `0xff 0` tells the server stdin has ended. `-t` asks
//! for a terminal only when stdin is one, as kubectl does; the local terminal is not switched
//! to raw mode (nodes run exec without a pty anyway).

use std::io::{IsTerminal, Read, Write};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::get::collection;
use crate::http::Http;
use crate::objects::{parse_flag_duration, with_query};
use crate::pod_select::{pick_container, resolve_pod};

/// The subprotocol spoken.
const PROTOCOL: &str = "v5.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 0xff;

/// Flags of `exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// POD or TYPE/NAME.
    pub target: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
    /// The container to run the command in.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// How long to wait for a controller's pod to exist.
    #[arg(long, default_value = "1m0s")]
    pub pod_running_timeout: String,
}

/// The `pods/exec` query, in kubectl's (sorted) key order; stderr is merged into a terminal.
pub fn exec_query(
    command: &[String],
    container: &str,
    stdin: bool,
    tty: bool,
) -> Vec<(&'static str, String)> {
    let mut q: Vec<(&'static str, String)> =
        command.iter().map(|c| ("command", c.clone())).collect();
    q.push(("container", container.to_string()));
    if !tty {
        q.push(("stderr", "true".into()));
    }
    if stdin {
        q.push(("stdin", "true".into()));
    }
    q.push(("stdout", "true".into()));
    if tty {
        q.push(("tty", "true".into()));
    }
    q
}

/// What the final status message means: success, the command's exit code, or a failure.
pub fn status_outcome(status: &Value) -> Result<()> {
    if status["status"] == "Success" {
        return Ok(());
    }
    if status["reason"] == "NonZeroExitCode" {
        let code = status["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.parse::<i32>().ok());
        if let Some(code) = code {
            return Err(CtlError::Exit(code));
        }
    }
    Err(CtlError::Server {
        reason: status["reason"].as_str().unwrap_or_default().to_string(),
        message: crate::error::one_line(status["message"].as_str().unwrap_or("command failed")),
    })
}

/// Runs `exec`.
pub async fn run(http: &Http, disc: &Discovery, a: &ExecArgs) -> Result<()> {
    if a.command.is_empty() {
        return Err(CtlError::local(
            "you must specify at least one command for the container",
        ));
    }
    let timeout = parse_flag_duration("--pod-running-timeout", &a.pod_running_timeout)?;
    let pod = resolve_pod(http, disc, &a.target, timeout).await?;
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        return Err(CtlError::local(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let container = match a.container.as_deref().filter(|c| !c.is_empty()) {
        // kubectl leaves an unknown name to the server.
        Some(c) => c.to_string(),
        None => pick_container(&pod, None)?,
    };
    let mut tty = a.tty && a.stdin;
    if tty && !std::io::stdin().is_terminal() {
        tty = false;
        if !a.quiet {
            eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
    }
    let query = exec_query(&a.command, &container, a.stdin, tty);
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let path = with_query(
        &format!(
            "{}/{name}/exec",
            collection(disc.resolve("pods")?, Some(&http.namespace))
        ),
        &pairs,
    );
    let upgraded = http.websocket(&path, PROTOCOL).await?;
    let socket = WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
    session(socket, a.stdin).await
}

/// Relays stdin to the command and its output to ours until the status arrives.
async fn session<S>(socket: WebSocketStream<S>, with_stdin: bool) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut outgoing, mut incoming) = socket.split();
    let (input_tx, mut input) = mpsc::channel::<Option<Vec<u8>>>(4);
    let mut stdin_open = with_stdin;
    if with_stdin {
        // A plain thread: a read blocked on a terminal must not keep the process alive.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = input_tx.blocking_send(None);
                        return;
                    }
                    Ok(n) => {
                        if input_tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    let lost = |e: tokio_tungstenite::tungstenite::Error| {
        CtlError::local(format!("error reading from the exec stream: {e}"))
    };
    let mut status = None;
    loop {
        tokio::select! {
            chunk = input.recv(), if stdin_open => {
                let frame = match chunk {
                    Some(Some(data)) => [&[STDIN][..], &data].concat(),
                    _ => {
                        stdin_open = false;
                        vec![CLOSE, STDIN]
                    }
                };
                outgoing.send(Message::binary(frame)).await.map_err(lost)?;
            }
            message = incoming.next() => {
                let data = match message {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Err(e)) => return Err(lost(e)),
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(_)) => continue,
                };
                match data.split_first() {
                    Some((&STDOUT, rest)) => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(rest)?;
                        out.flush()?;
                    }
                    Some((&STDERR, rest)) => {
                        let mut err = std::io::stderr().lock();
                        err.write_all(rest)?;
                        err.flush()?;
                    }
                    Some((&STATUS, rest)) if !rest.is_empty() => {
                        status = Some(serde_json::from_slice::<Value>(rest).map_err(|e| {
                            CtlError::local(format!("cannot decode the exec status: {e}"))
                        })?);
                    }
                    _ => {}
                }
            }
        }
    }
    // No status at all means no error, as client-go reads an empty error stream.
    status.map_or(Ok(()), |s| status_outcome(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_match_kubectl() {
        let q = |cmd: &[&str], stdin, tty| {
            let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            let q = exec_query(&cmd, "nginx", stdin, tty);
            let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            with_query("", &pairs)
        };
        assert_eq!(
            q(&["ls", "/nope"], false, false),
            "?command=ls&command=%2Fnope&container=nginx&stderr=true&stdout=true"
        );
        assert_eq!(
            q(&["cat"], true, false),
            "?command=cat&container=nginx&stderr=true&stdin=true&stdout=true"
        );
        assert_eq!(
            q(&["sh"], true, true),
            "?command=sh&container=nginx&stdin=true&stdout=true&tty=true"
        );
    }

    #[test]
    fn statuses_become_exit_codes() {
        assert!(status_outcome(&json!({"metadata": {}, "status": "Success"})).is_ok());
        let exit = json!({"status": "Failure", "reason": "NonZeroExitCode",
                          "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}});
        assert!(matches!(status_outcome(&exit), Err(CtlError::Exit(3))));
        let internal =
            json!({"status": "Failure", "reason": "InternalError", "message": "no such file"});
        match status_outcome(&internal) {
            Err(CtlError::Server { reason, message }) => {
                assert_eq!(
                    (reason.as_str(), message.as_str()),
                    ("InternalError", "no such file")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
