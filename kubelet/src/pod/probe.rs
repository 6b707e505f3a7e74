//! Container probes: a pure per-probe state machine deciding when a probe is due and what its
//! published result is, and the runners that perform one `httpGet`, `tcpSocket` or `exec`
//! probe. The agent keeps one [`ProbeWorker`] per probe of a running container, runs the probe
//! when [`ProbeWorker::due`] says so, feeds the outcome to [`ProbeWorker::record`] and reads
//! the published results ([`container_started`], [`container_ready`], [`needs_restart`]).
//!
//! Semantics are the kubelet's prober workers':
//! - defaults: `periodSeconds` 10, `timeoutSeconds` 1, `failureThreshold` 3,
//!   `successThreshold` 1, `initialDelaySeconds` 0;
//! - before the first result, readiness is `Failure` (not ready), liveness `Success`, startup
//!   `Unknown`;
//! - nothing is probed within `initialDelaySeconds` of the container's start; liveness and
//!   readiness are not probed until the startup probe succeeded, and the startup probe stops
//!   once it has;
//! - a result is published only after `failureThreshold` consecutive failures or
//!   `successThreshold` consecutive successes; an errored probe (`Unknown`) is thrown away;
//! - after a published liveness/startup failure the worker holds (no probing) until the
//!   container is replaced ([`ProbeWorker::reset`]).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cri::{ContainerRuntime, exec_sync};

/// Which probe of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `startupProbe`: gates the other two; failure restarts the container.
    Startup,
    /// `livenessProbe`: failure restarts the container.
    Liveness,
    /// `readinessProbe`: decides the container's `ready`.
    Readiness,
}

/// A published probe result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The probe passed (threshold reached).
    Success,
    /// The probe failed (threshold reached).
    Failure,
    /// Nothing known yet.
    Unknown,
}

/// What one probe run found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Passed.
    Success,
    /// Failed, with the reason shown in the `Unhealthy` event.
    Failure(String),
    /// The probe could not be run (bad port name, runtime error): ignored by the state machine.
    Unknown(String),
}

/// A probe's timing and thresholds with Kubernetes' defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    /// No probing this long after the container started.
    pub initial_delay: Duration,
    /// Time between probes.
    pub period: Duration,
    /// Time a single probe may take.
    pub timeout: Duration,
    /// Consecutive successes needed to publish `Success`.
    pub success_threshold: u32,
    /// Consecutive failures needed to publish `Failure`.
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// Settings of `probe`; unset or non-positive fields take the defaults (10 s period, 1 s
    /// timeout, failure threshold 3, success threshold 1, no initial delay).
    pub fn from_spec(probe: &Probe) -> ProbeSettings {
        let positive = |v: Option<i32>, default: u32| {
            v.filter(|v| *v > 0).map(|v| v as u32).unwrap_or(default)
        };
        ProbeSettings {
            initial_delay: Duration::from_secs(positive(probe.initial_delay_seconds, 0).into()),
            period: Duration::from_secs(positive(probe.period_seconds, 10).into()),
            timeout: Duration::from_secs(positive(probe.timeout_seconds, 1).into()),
            success_threshold: positive(probe.success_threshold, 1),
            failure_threshold: positive(probe.failure_threshold, 3),
        }
    }
}

/// The state of one probe of one container (the kubelet's prober worker, minus the timer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeWorker {
    /// Which probe.
    pub kind: ProbeKind,
    /// Its settings.
    pub settings: ProbeSettings,
    published: ProbeResult,
    /// Last raw result (`true` = success) and how many times in a row it came.
    run: Option<(bool, u32)>,
    on_hold: bool,
    last_probe: Option<Instant>,
}

impl ProbeWorker {
    /// A worker for `probe` of kind `kind`, in its initial state.
    pub fn new(kind: ProbeKind, probe: &Probe) -> ProbeWorker {
        ProbeWorker {
            kind,
            settings: ProbeSettings::from_spec(probe),
            published: initial(kind),
            run: None,
            on_hold: false,
            last_probe: None,
        }
    }

    /// The published result.
    pub fn result(&self) -> ProbeResult {
        self.published
    }

    /// Whether the probe should run at `now` for a container running since `running_since`
    /// whose startup probe has (`started`) or has not yet succeeded.
    pub fn due(&self, now: Instant, running_since: Instant, started: bool) -> bool {
        if self.on_hold
            || now.saturating_duration_since(running_since) < self.settings.initial_delay
        {
            return false;
        }
        match (self.kind, started) {
            (ProbeKind::Startup, true) => return false,
            (ProbeKind::Liveness | ProbeKind::Readiness, false) => return false,
            _ => {}
        }
        self.last_probe
            .is_none_or(|last| now.saturating_duration_since(last) >= self.settings.period)
    }

    /// When the probe is next due at the earliest (for the agent's timer): `None` while held.
    pub fn next_due(&self, running_since: Instant) -> Option<Instant> {
        if self.on_hold {
            return None;
        }
        let after_delay = running_since + self.settings.initial_delay;
        Some(match self.last_probe {
            Some(last) => (last + self.settings.period).max(after_delay),
            None => after_delay,
        })
    }

    /// Records the outcome of a probe run at `now`; returns the newly published result when
    /// it changed.
    pub fn record(&mut self, now: Instant, outcome: &ProbeOutcome) -> Option<ProbeResult> {
        self.last_probe = Some(now);
        let success = match outcome {
            ProbeOutcome::Success => true,
            ProbeOutcome::Failure(_) => false,
            ProbeOutcome::Unknown(_) => return None,
        };
        let count = match self.run {
            Some((last, n)) if last == success => n + 1,
            _ => 1,
        };
        self.run = Some((success, count));
        let threshold = if success {
            self.settings.success_threshold
        } else {
            self.settings.failure_threshold
        };
        if count < threshold {
            return None;
        }
        let result = if success {
            ProbeResult::Success
        } else {
            ProbeResult::Failure
        };
        if !success && self.kind != ProbeKind::Readiness {
            // The container will be restarted: stop probing it until it is replaced.
            self.on_hold = true;
            self.run = None;
        }
        let changed = self.published != result;
        self.published = result;
        changed.then_some(result)
    }

    /// The container was replaced by a new attempt: start over.
    pub fn reset(&mut self) {
        *self = ProbeWorker {
            kind: self.kind,
            settings: self.settings,
            published: initial(self.kind),
            run: None,
            on_hold: false,
            last_probe: None,
        };
    }

    /// The container is not running: readiness drops to `Failure`, the others keep theirs.
    pub fn container_stopped(&mut self) {
        if self.kind == ProbeKind::Readiness {
            self.published = ProbeResult::Failure;
            self.run = None;
        }
    }
}

/// The result a probe has before it ran.
fn initial(kind: ProbeKind) -> ProbeResult {
    match kind {
        ProbeKind::Readiness => ProbeResult::Failure,
        ProbeKind::Liveness => ProbeResult::Success,
        ProbeKind::Startup => ProbeResult::Unknown,
    }
}

/// The container status' `started`: running and, with a startup probe, that probe succeeded.
pub fn container_started(running: bool, startup: Option<&ProbeWorker>) -> bool {
    running && startup.is_none_or(|w| w.result() == ProbeResult::Success)
}

/// The container status' `ready`: started and, with a readiness probe, that probe's published
/// result is `Success`.
pub fn container_ready(
    running: bool,
    startup: Option<&ProbeWorker>,
    readiness: Option<&ProbeWorker>,
) -> bool {
    container_started(running, startup)
        && readiness.is_none_or(|w| w.result() == ProbeResult::Success)
}

/// Whether a failed liveness or startup probe asks for the container to be restarted.
pub fn needs_restart(liveness: Option<&ProbeWorker>, startup: Option<&ProbeWorker>) -> bool {
    [liveness, startup]
        .into_iter()
        .flatten()
        .any(|w| w.result() == ProbeResult::Failure)
}

/// The User-Agent of HTTP probes (Kubernetes sends `kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.33";

/// Resolves a probe's `port`: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// Runs an `httpGet` probe: `GET scheme://host:port/path` (host defaults to the pod IP),
/// the probe's headers on top of `User-Agent: kube-probe/..` and `Accept: */*`; a status in
/// 200..400 is success, anything else or no answer within `timeout` a failure. HTTPS skips
/// certificate verification, as the kubelet does. Redirects are not followed (a 3xx is
/// already a success; the kubelet follows same-host redirects, which only matters when the
/// redirect target fails).
pub async fn http_get(
    action: &HTTPGetAction,
    container: &Container,
    pod_ip: IpAddr,
    timeout: Duration,
) -> ProbeOutcome {
    let port = match resolve_port(&action.port, container) {
        Ok(p) => p,
        Err(e) => return ProbeOutcome::Unknown(e),
    };
    let scheme = match action.scheme.as_deref().unwrap_or("HTTP") {
        s if s.eq_ignore_ascii_case("HTTP") => "http",
        s if s.eq_ignore_ascii_case("HTTPS") => "https",
        s => return ProbeOutcome::Unknown(format!("unsupported scheme: {s}")),
    };
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => pod_ip.to_string(),
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let path = action.path.as_deref().unwrap_or("");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let url = format!("{scheme}://{host}:{port}{path}");
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => return ProbeOutcome::Unknown(e.to_string()),
    };
    let mut request = client
        .get(&url)
        .header("User-Agent", USER_AGENT)
        .header("Accept", "*/*");
    for h in action.http_headers.iter().flatten() {
        request = request.header(h.name.as_str(), h.value.as_str());
    }
    match request.send().await {
        Ok(response) => {
            let code = response.status().as_u16();
            if (200..400).contains(&code) {
                ProbeOutcome::Success
            } else {
                ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        Err(e) if e.is_timeout() => ProbeOutcome::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Err(e) => ProbeOutcome::Failure(format!("Get \"{url}\": {}", error_chain(&e))),
    }
}

/// An error and its sources, `: `-joined (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Runs a `tcpSocket` probe: success when a TCP connection to `host:port` (host defaults to
/// the pod IP) opens within `timeout`.
pub async fn tcp_socket(
    action: &TCPSocketAction,
    container: &Container,
    pod_ip: IpAddr,
    timeout: Duration,
) -> ProbeOutcome {
    let port = match resolve_port(&action.port, container) {
        Ok(p) => p,
        Err(e) => return ProbeOutcome::Unknown(e),
    };
    let target = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => match h.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port).to_string(),
            Err(_) => format!("{h}:{port}"),
        },
        None => SocketAddr::new(pod_ip, port).to_string(),
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&target)).await {
        Ok(Ok(_)) => ProbeOutcome::Success,
        Ok(Err(e)) => ProbeOutcome::Failure(format!("dial tcp {target}: {e}")),
        Err(_) => ProbeOutcome::Failure(format!("dial tcp {target}: i/o timeout")),
    }
}

/// Runs an `exec` probe in the container (blocking: call from `spawn_blocking`): exit code 0 is
/// success, another code or running past `timeout` a failure (the kubelet's behaviour since
/// exec probe timeouts are enforced), a runtime error `Unknown`.
pub fn exec(
    runtime: &dyn ContainerRuntime,
    container_id: &str,
    command: &[String],
    timeout: Duration,
) -> ProbeOutcome {
    match exec_sync(runtime, container_id, command, timeout) {
        Ok(out) => match out.exit_code {
            Some(0) => ProbeOutcome::Success,
            Some(_) => {
                let mut output = out.stdout;
                output.extend_from_slice(&out.stderr);
                ProbeOutcome::Failure(String::from_utf8_lossy(&output).into_owned())
            }
            None => ProbeOutcome::Failure(format!("command {:?} timed out", command.join(" "))),
        },
        Err(e) => ProbeOutcome::Unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(spec: serde_json::Value) -> Probe {
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn settings_default_like_kubernetes() {
        let d = ProbeSettings::from_spec(&probe(json!({})));
        assert_eq!(
            d,
            ProbeSettings {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let s =
            ProbeSettings::from_spec(&probe(json!({"initialDelaySeconds": 5, "periodSeconds": 2,
            "timeoutSeconds": 3, "successThreshold": 2, "failureThreshold": 1})));
        assert_eq!(
            (
                s.initial_delay.as_secs(),
                s.period.as_secs(),
                s.timeout.as_secs(),
                s.success_threshold,
                s.failure_threshold
            ),
            (5, 2, 3, 2, 1)
        );
    }

    /// Feeds `outcomes` (S, F, U) to a worker and returns the published result after each.
    fn run(kind: ProbeKind, spec: serde_json::Value, outcomes: &str) -> String {
        let mut w = ProbeWorker::new(kind, &probe(spec));
        let t0 = Instant::now();
        outcomes
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let outcome = match c {
                    'S' => ProbeOutcome::Success,
                    'F' => ProbeOutcome::Failure("no".into()),
                    _ => ProbeOutcome::Unknown("err".into()),
                };
                w.record(t0 + Duration::from_secs(i as u64), &outcome);
                match w.result() {
                    ProbeResult::Success => 'S',
                    ProbeResult::Failure => 'F',
                    ProbeResult::Unknown => '?',
                }
            })
            .collect()
    }

    #[test]
    fn thresholds_decide_what_is_published() {
        use ProbeKind::*;
        let cases = [
            // readiness starts not ready; one success is enough by default
            (Readiness, json!({}), "S", "S"),
            (Readiness, json!({}), "SFFSF", "SSSSS"),
            (Readiness, json!({}), "SFFF", "SSSF"),
            (Readiness, json!({}), "SFFFS", "SSSFS"),
            (Readiness, json!({"successThreshold": 2}), "SSFS", "FSSS"),
            (
                Readiness,
                json!({"successThreshold": 2, "failureThreshold": 1}),
                "SSFSS",
                "FSFFS",
            ),
            // unknown outcomes are thrown away and do not break a run
            (Readiness, json!({}), "SFUFUF", "SSSSSF"),
            (Readiness, json!({}), "U", "F"),
            // liveness starts healthy
            (Liveness, json!({}), "FF", "SS"),
            (Liveness, json!({}), "FFF", "SSF"),
            (Liveness, json!({"failureThreshold": 1}), "F", "F"),
            (Startup, json!({}), "U", "?"),
            (Startup, json!({}), "FS", "?S"),
            (Startup, json!({"failureThreshold": 2}), "FF", "?F"),
        ];
        for (kind, spec, outcomes, want) in cases {
            assert_eq!(
                run(kind, spec.clone(), outcomes),
                want,
                "{kind:?} {spec} {outcomes}"
            );
        }
    }

    #[test]
    fn due_respects_delay_period_startup_gate_and_hold() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut live = ProbeWorker::new(
            ProbeKind::Liveness,
            &probe(json!({"initialDelaySeconds": 5, "periodSeconds": 3, "failureThreshold": 1})),
        );
        let mut startup = ProbeWorker::new(ProbeKind::Startup, &probe(json!({"periodSeconds": 1})));
        // (worker, now, started, due)
        assert!(!live.due(at(4), t0, true), "inside the initial delay");
        assert!(live.due(at(5), t0, true));
        assert!(!live.due(at(5), t0, false), "gated by the startup probe");
        assert!(startup.due(at(0), t0, false));
        assert!(!startup.due(at(0), t0, true), "startup stops once started");
        assert_eq!(live.next_due(t0), Some(at(5)));
        live.record(at(5), &ProbeOutcome::Success);
        assert!(!live.due(at(7), t0, true), "within the period");
        assert!(live.due(at(8), t0, true));
        assert_eq!(live.next_due(t0), Some(at(8)));
        assert_eq!(
            live.record(at(8), &ProbeOutcome::Failure("x".into())),
            Some(ProbeResult::Failure)
        );
        assert!(
            !live.due(at(100), t0, true),
            "held after a liveness failure"
        );
        assert_eq!(live.next_due(t0), None);
        assert!(needs_restart(Some(&live), None));
        live.reset();
        assert_eq!(live.result(), ProbeResult::Success);
        assert!(live.due(at(105), at(100), true));
        assert!(!needs_restart(Some(&live), Some(&startup)));
        startup.record(at(1), &ProbeOutcome::Success);
        assert!(container_started(true, Some(&startup)));
    }

    #[test]
    fn started_and_ready_combine_probes() {
        let startup_ok = {
            let mut w = ProbeWorker::new(ProbeKind::Startup, &probe(json!({})));
            w.record(Instant::now(), &ProbeOutcome::Success);
            w
        };
        let startup_new = ProbeWorker::new(ProbeKind::Startup, &probe(json!({})));
        let ready_new = ProbeWorker::new(ProbeKind::Readiness, &probe(json!({})));
        let mut ready_ok = ready_new.clone();
        ready_ok.record(Instant::now(), &ProbeOutcome::Success);
        // (running, startup, readiness, started, ready)
        let cases = [
            (true, None, None, true, true),
            (false, None, None, false, false),
            (true, Some(&startup_new), None, false, false),
            (true, Some(&startup_ok), None, true, true),
            (true, None, Some(&ready_new), true, false),
            (true, None, Some(&ready_ok), true, true),
            (true, Some(&startup_new), Some(&ready_ok), false, false),
            (false, None, Some(&ready_ok), false, false),
        ];
        for (i, (running, s, r, started, ready)) in cases.into_iter().enumerate() {
            assert_eq!(container_started(running, s), started, "case {i}");
            assert_eq!(container_ready(running, s, r), ready, "case {i}");
        }
        let mut stopped = ready_ok.clone();
        stopped.container_stopped();
        assert_eq!(stopped.result(), ProbeResult::Failure);
    }

    fn container() -> Container {
        serde_json::from_value(
            json!({"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}),
        )
        .unwrap()
    }

    #[test]
    fn ports_resolve_by_number_or_name() {
        let c = container();
        let cases = [
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("9090".into()), Ok(9090)),
            (
                IntOrString::String("grpc".into()),
                Err("couldn't find port: grpc in app".to_string()),
            ),
            (
                IntOrString::Int(0),
                Err("invalid port number: 0".to_string()),
            ),
            (
                IntOrString::Int(70000),
                Err("invalid port number: 70000".to_string()),
            ),
        ];
        for (port, want) in cases {
            assert_eq!(resolve_port(&port, &c), want, "{port:?}");
        }
    }

    /// Serves each connection with the status given in the path (`/200`, `/503`) after
    /// checking the probe's headers; `/slow` never answers.
    async fn serve() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let _ = tx.send(request.clone());
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                    if path == "/slow" {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let code: u16 = path.trim_start_matches('/').parse().unwrap_or(200);
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nlocation: /\r\nconnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn http_probes_against_a_real_listener() {
        let (port, mut requests) = serve().await;
        let c: Container = serde_json::from_value(
            json!({"name": "app", "ports": [{"name": "web", "containerPort": port}]}),
        )
        .unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let t = Duration::from_secs(5);
        let action = |path: &str| -> HTTPGetAction {
            serde_json::from_value(json!({"path": path, "port": "web",
                "httpHeaders": [{"name": "X-Check", "value": "yes"}]}))
            .unwrap()
        };
        let cases = [
            ("/200", true),
            ("/204", true),
            ("/301", true),
            ("/399", true),
            ("/404", false),
            ("/503", false),
        ];
        for (path, ok) in cases {
            let got = http_get(&action(path), &c, lo, t).await;
            assert_eq!(got == ProbeOutcome::Success, ok, "{path}: {got:?}");
            let request = requests.recv().await.unwrap();
            assert!(
                request.starts_with(&format!("GET {path} HTTP/1.1")),
                "{request}"
            );
            assert!(request.contains("x-check: yes"), "{request}");
            assert!(
                request.to_lowercase().contains("user-agent: kube-probe/"),
                "{request}"
            );
        }
        assert_eq!(
            http_get(&action("/500"), &c, lo, t).await,
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        let slow = http_get(&action("/slow"), &c, lo, Duration::from_millis(300)).await;
        assert!(
            matches!(&slow, ProbeOutcome::Failure(m) if m.contains("deadline")),
            "{slow:?}"
        );
        // nobody listens: failure, not unknown
        let closed = closed_port();
        let refused: HTTPGetAction = serde_json::from_value(json!({"port": closed})).unwrap();
        assert!(matches!(
            http_get(&refused, &c, lo, t).await,
            ProbeOutcome::Failure(_)
        ));
        let bad: HTTPGetAction = serde_json::from_value(json!({"port": "nope"})).unwrap();
        assert!(matches!(
            http_get(&bad, &c, lo, t).await,
            ProbeOutcome::Unknown(_)
        ));
    }

    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn tcp_probes_against_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let c = container();
        let t = Duration::from_secs(5);
        let open: TCPSocketAction = serde_json::from_value(json!({"port": port})).unwrap();
        assert_eq!(tcp_socket(&open, &c, lo, t).await, ProbeOutcome::Success);
        let with_host: TCPSocketAction =
            serde_json::from_value(json!({"port": port, "host": "127.0.0.1"})).unwrap();
        assert_eq!(
            tcp_socket(&with_host, &c, "10.255.255.1".parse().unwrap(), t).await,
            ProbeOutcome::Success
        );
        let closed: TCPSocketAction =
            serde_json::from_value(json!({"port": closed_port()})).unwrap();
        assert!(
            matches!(tcp_socket(&closed, &c, lo, t).await, ProbeOutcome::Failure(m) if m.starts_with("dial tcp 127.0.0.1:"))
        );
        drop(listener);
    }
    /// A runtime whose only ability is running exec commands on the host (exec probes go
    /// through `exec_command`; nothing else is called).
    struct HostExec;

    impl ContainerRuntime for HostExec {
        fn name(&self) -> &'static str {
            "host-exec"
        }
        fn run_pod_sandbox(
            &self,
            _: &crate::cri::SandboxConfig,
        ) -> crate::Result<crate::cri::Sandbox> {
            Err(crate::Error::Runtime("not used".into()))
        }
        fn remove_pod_sandbox(&self, _: &str) -> crate::Result<()> {
            Ok(())
        }
        fn list_sandboxes(&self) -> crate::Result<Vec<crate::cri::Sandbox>> {
            Ok(Vec::new())
        }
        fn create_container(
            &self,
            _: &crate::cri::Sandbox,
            _: &crate::cri::ContainerConfig,
        ) -> crate::Result<String> {
            Err(crate::Error::Runtime("not used".into()))
        }
        fn start_container(&self, _: &str) -> crate::Result<()> {
            Err(crate::Error::Runtime("not used".into()))
        }
        fn stop_container(&self, _: &str, _: Duration) -> crate::Result<()> {
            Ok(())
        }
        fn remove_container(&self, _: &str) -> crate::Result<()> {
            Ok(())
        }
        fn container_status(&self, id: &str) -> crate::Result<crate::cri::ContainerInfo> {
            Err(crate::Error::ContainerNotFound(id.into()))
        }
        fn list_containers(&self) -> crate::Result<Vec<crate::cri::ContainerInfo>> {
            Ok(Vec::new())
        }
        fn exec_command(&self, id: &str, argv: &[String]) -> crate::Result<std::process::Command> {
            if id != "c1" {
                return Err(crate::Error::ContainerNotFound(id.into()));
            }
            let mut c = std::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            Ok(c)
        }
    }

    #[test]
    fn exec_probes_use_the_exit_code_and_timeout() {
        let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        let t = Duration::from_secs(10);
        assert_eq!(
            exec(&HostExec, "c1", &sh("exit 0"), t),
            ProbeOutcome::Success
        );
        assert_eq!(
            exec(&HostExec, "c1", &sh("echo not ready; exit 3"), t),
            ProbeOutcome::Failure("not ready\n".into())
        );
        let slow = exec(
            &HostExec,
            "c1",
            &sh("exec sleep 20"),
            Duration::from_millis(300),
        );
        assert_eq!(
            slow,
            ProbeOutcome::Failure("command \"sh -c exec sleep 20\" timed out".into())
        );
        assert!(matches!(
            exec(&HostExec, "gone", &sh("true"), t),
            ProbeOutcome::Unknown(_)
        ));
    }
}
