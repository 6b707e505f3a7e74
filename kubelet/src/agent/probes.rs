//! Running a pod's probes when they are due and turning their published results into
//! restarts (liveness, startup) and readiness. The per-probe state machines are
//! [`crate::pod::probe::ProbeWorker`]s, kept per container attempt.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};

use super::Shared;
use super::worker::{Worker, blocking};
use crate::cri::{ContainerInfo, ContainerState};
use crate::pod::probe::{
    self, ProbeKind, ProbeOutcome, ProbeWorker, container_ready, needs_restart,
};

/// The probes of one container attempt.
pub(crate) struct ContainerProbes {
    attempt: u32,
    startup: Option<ProbeWorker>,
    liveness: Option<ProbeWorker>,
    readiness: Option<ProbeWorker>,
}

impl ContainerProbes {
    fn new(container: &Container, attempt: u32) -> Self {
        let make = |kind, p: &Option<Probe>| p.as_ref().map(|p| ProbeWorker::new(kind, p));
        ContainerProbes {
            attempt,
            startup: make(ProbeKind::Startup, &container.startup_probe),
            liveness: make(ProbeKind::Liveness, &container.liveness_probe),
            readiness: make(ProbeKind::Readiness, &container.readiness_probe),
        }
    }

    fn workers_mut(&mut self) -> impl Iterator<Item = &mut ProbeWorker> {
        [&mut self.startup, &mut self.liveness, &mut self.readiness]
            .into_iter()
            .flatten()
    }
}

/// What this round of probing found.
#[derive(Default)]
pub(crate) struct ProbeRound {
    /// Containers to restart.
    pub(crate) unhealthy: HashSet<String>,
    /// Containers that are ready.
    pub(crate) ready: HashSet<String>,
    /// When the next probe is due.
    pub(crate) next_due: Option<Duration>,
}

/// When a container started, as an `Instant` (probe timing is monotonic).
fn running_since(started_at: &jiff::Timestamp) -> Instant {
    let ago = jiff::Timestamp::now()
        .duration_since(*started_at)
        .unsigned_abs();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

/// Runs one probe of container `c`.
async fn run_probe(
    s: &Shared,
    spec: &Probe,
    container: &Container,
    id: &str,
    pod_ip: IpAddr,
    timeout: Duration,
) -> ProbeOutcome {
    if let Some(action) = &spec.http_get {
        return probe::http_get(action, container, pod_ip, timeout).await;
    }
    if let Some(action) = &spec.tcp_socket {
        return probe::tcp_socket(action, container, pod_ip, timeout).await;
    }
    if let Some(action) = &spec.exec {
        let argv = action.command.clone().unwrap_or_default();
        let id = id.to_string();
        return blocking(&s.runtime, move |rt| {
            Ok(probe::exec(rt, &id, &argv, timeout))
        })
        .await
        .unwrap_or_else(|e| ProbeOutcome::Unknown(e.to_string()));
    }
    ProbeOutcome::Unknown("probe has no handler (grpc probes are not supported)".into())
}

fn spec_of(container: &Container, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Startup => container.startup_probe.as_ref(),
        ProbeKind::Liveness => container.liveness_probe.as_ref(),
        ProbeKind::Readiness => container.readiness_probe.as_ref(),
    }
}

fn kind_name(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Startup => "Startup",
        ProbeKind::Liveness => "Liveness",
        ProbeKind::Readiness => "Readiness",
    }
}

/// Runs the probes that are due (concurrently) and reports what they decided.
pub(crate) async fn run_due(
    w: &mut Worker,
    s: &Shared,
    pod: &Pod,
    containers: &[ContainerInfo],
) -> ProbeRound {
    let mut round = ProbeRound::default();
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_ip = w
        .sandbox
        .as_ref()
        .and_then(|sb| super::containers::pod_ip(s, pod, sb))
        .unwrap_or(s.config.node_ip);
    let now = Instant::now();
    let mut due: Vec<(String, ProbeKind, Container, String)> = Vec::new();
    let mut seen = HashSet::new();
    for container in &spec.containers {
        let Some(c) = super::plan::latest(containers, &container.name) else {
            continue;
        };
        seen.insert(container.name.clone());
        let probes = w
            .probes
            .entry(container.name.clone())
            .or_insert_with(|| ContainerProbes::new(container, c.attempt));
        if probes.attempt != c.attempt {
            *probes = ContainerProbes::new(container, c.attempt);
        }
        let ContainerState::Running { started_at } = &c.state else {
            probes.workers_mut().for_each(|p| p.container_stopped());
            continue;
        };
        let since = running_since(started_at);
        let started = probe::container_started(true, probes.startup.as_ref());
        for worker in probes.workers_mut() {
            if worker.due(now, since, started) {
                due.push((
                    container.name.clone(),
                    worker.kind,
                    container.clone(),
                    c.id.clone(),
                ));
            } else if let Some(at) = worker.next_due(since) {
                let wait = at
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(10));
                round.next_due = Some(round.next_due.map_or(wait, |d| d.min(wait)));
            }
        }
    }
    w.probes.retain(|name, _| seen.contains(name));

    let runs = due.iter().map(|(_, kind, container, id)| async move {
        let spec = spec_of(container, *kind).cloned().unwrap_or_default();
        let timeout = probe::ProbeSettings::from_spec(&spec).timeout;
        run_probe(s, &spec, container, id, pod_ip, timeout).await
    });
    let outcomes = futures::future::join_all(runs).await;
    let finished = Instant::now();
    for ((name, kind, container, _), outcome) in due.iter().zip(outcomes) {
        if let ProbeOutcome::Failure(message) = &outcome {
            let message = format!("{} probe failed: {}", kind_name(*kind), message.trim());
            super::events::warning(s, pod, Some(name), "Unhealthy", &message).await;
        }
        if let Some(probes) = w.probes.get_mut(name)
            && let Some(worker) = probes.workers_mut().find(|p| p.kind == *kind)
        {
            worker.record(finished, &outcome);
            if let Some(spec) = spec_of(container, *kind) {
                let period = probe::ProbeSettings::from_spec(spec).period;
                round.next_due = Some(round.next_due.map_or(period, |d| d.min(period)));
            }
        }
    }
    for (name, probes) in &w.probes {
        let running = super::plan::latest(containers, name)
            .is_some_and(|c| matches!(c.state, ContainerState::Running { .. }));
        if running && needs_restart(probes.liveness.as_ref(), probes.startup.as_ref()) {
            round.unhealthy.insert(name.clone());
        }
        if container_ready(running, probes.startup.as_ref(), probes.readiness.as_ref()) {
            round.ready.insert(name.clone());
        }
    }
    round
}

/// Probe state of a pod's containers, by container name.
pub(crate) type PodProbes = HashMap<String, ContainerProbes>;
