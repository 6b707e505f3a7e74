//! `skiffctl logs`: a container's log from `pods/log`, streamed to stdout as it arrives
//! (with `-f` until the container exits or the user interrupts).

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::get::collection;
use crate::http::Http;
use crate::objects::{parse_flag_duration, with_query};
use crate::pod_select::{pick_container, resolve_pod};

/// Flags of `logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// POD or TYPE/NAME.
    pub target: String,
    /// The container (same as -c).
    pub container_arg: Option<String>,
    /// The container to print the log of.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming the log.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines of recent log to show; -1 shows everything.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub tail: i64,
    /// The log of the previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Only logs newer than a relative duration like 5s, 2m or 3h.
    #[arg(long)]
    pub since: Option<String>,
    /// Only logs after an RFC 3339 time.
    #[arg(long)]
    pub since_time: Option<String>,
    /// Maximum bytes of log to return (0: no limit).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub limit_bytes: i64,
    /// How long to wait for a controller's pod to exist.
    #[arg(long, default_value = "20s")]
    pub pod_running_timeout: String,
}

/// The `pods/log` query for the flags, keys in kubectl's (sorted) order; checks the flags
/// with kubectl's messages first.
pub fn log_query(a: &LogsArgs, container: &str) -> Result<Vec<(&'static str, String)>> {
    if a.since.is_some() && a.since_time.is_some() {
        return Err(CtlError::local(
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    if a.tail < -1 {
        return Err(CtlError::local(
            "--tail must be greater than or equal to -1",
        ));
    }
    if a.limit_bytes < 0 {
        return Err(CtlError::local("--limit-bytes must be greater than 0"));
    }
    let since_seconds = match &a.since {
        None => None,
        Some(s) => {
            let d = parse_flag_duration("--since", s)?;
            // kubectl rounds to whole seconds.
            Some(d.as_secs() + u64::from(d.subsec_millis() >= 500))
        }
    };
    let mut q = vec![("container", container.to_string())];
    if a.follow {
        q.push(("follow", "true".into()));
    }
    if a.limit_bytes > 0 {
        q.push(("limitBytes", a.limit_bytes.to_string()));
    }
    if a.previous {
        q.push(("previous", "true".into()));
    }
    if let Some(s) = since_seconds {
        q.push(("sinceSeconds", s.to_string()));
    }
    if let Some(t) = &a.since_time {
        let parsed: jiff::Timestamp = t.parse().map_err(|_| {
            CtlError::local(format!(
                "invalid argument \"{t}\" for \"--since-time\" flag: must be an RFC 3339 time"
            ))
        })?;
        q.push(("sinceTime", parsed.to_string()));
    }
    if a.tail >= 0 {
        q.push(("tailLines", a.tail.to_string()));
    }
    if a.timestamps {
        q.push(("timestamps", "true".into()));
    }
    Ok(q)
}

/// Runs `logs`.
pub async fn run(http: &Http, disc: &Discovery, a: &LogsArgs) -> Result<()> {
    let timeout = parse_flag_duration("--pod-running-timeout", &a.pod_running_timeout)?;
    // Check the flags before any request.
    log_query(a, "")?;
    let pod = resolve_pod(http, disc, &a.target, timeout.max(Duration::from_secs(1)))
        .await
        .map_err(|e| match e {
            // kubectl's resource builder words a missing object this way for `logs`.
            CtlError::Server { reason, message } if reason == "NotFound" => {
                CtlError::Local(format!(
                    "error from server (NotFound): {message} in namespace \"{}\"",
                    http.namespace
                ))
            }
            other => other,
        })?;
    let requested = a.container.as_deref().or(a.container_arg.as_deref());
    let container = pick_container(&pod, requested)?;
    let query = log_query(a, &container)?;
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let path = with_query(
        &format!(
            "{}/{name}/log",
            collection(disc.resolve("pods")?, Some(&http.namespace))
        ),
        &pairs,
    );
    let response = http.stream(&path, "application/json, */*").await?;
    let mut body = response.bytes_stream();
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| CtlError::local(format!("error reading the log: {e}")))?;
        stdout.write_all(&chunk)?;
        stdout.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: LogsArgs,
    }

    fn query(argv: &[&str]) -> std::result::Result<String, String> {
        let mut full = vec!["logs"];
        full.extend_from_slice(argv);
        let w = Wrap::try_parse_from(full).map_err(|e| e.to_string())?;
        log_query(&w.args, "web")
            .map(|q| {
                q.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_become_the_query_kubectl_sends() {
        let cases: [(&[&str], std::result::Result<&str, &str>); 7] = [
            (&["p"], Ok("container=web")),
            (
                &["p", "--tail=2", "--since=1h", "--timestamps"],
                Ok("container=web&sinceSeconds=3600&tailLines=2&timestamps=true"),
            ),
            (
                &["p", "-f", "-p", "--limit-bytes=10"],
                Ok("container=web&follow=true&limitBytes=10&previous=true"),
            ),
            (
                &["p", "--since-time=2025-01-01T00:00:00Z"],
                Ok("container=web&sinceTime=2025-01-01T00:00:00Z"),
            ),
            (
                &["p", "--tail=-2"],
                Err("--tail must be greater than or equal to -1"),
            ),
            (
                &["p", "--since=1h", "--since-time=2025-01-01T00:00:00Z"],
                Err("at most one of"),
            ),
            (
                &["p", "--since=soon"],
                Err("invalid argument \"soon\" for \"--since\" flag"),
            ),
        ];
        for (argv, want) in cases {
            let got = query(argv);
            match (got, want) {
                (Ok(q), Ok(w)) => assert_eq!(q, w, "{argv:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{argv:?}: {e}"),
                (got, want) => panic!("{argv:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
