//! One pod's worker: owns the pod's sandbox, containers, probes and status on this node.
//!
//! The loop: re-read the pod from the cache; if it is being deleted (or gone), stop its
//! containers with their grace period, remove them and the sandbox, and confirm the deletion;
//! otherwise make sure the sandbox exists, plan ([`super::plan`]) and execute the container
//! steps, and report status when it changed. It then sleeps until an informer event, a probe,
//! a back-off expiry or the poll interval wakes it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::Shared;
use super::plan::{self, Action, PlanInput};
use crate::cri::{ContainerInfo, ContainerRuntime, ContainerState, Sandbox, labels};
use crate::{Error, Result};

/// Runs `f` on the blocking pool with the runtime (drivers are blocking).
pub(crate) async fn blocking<T: Send + 'static>(
    rt: &Arc<dyn ContainerRuntime>,
    f: impl FnOnce(&dyn ContainerRuntime) -> Result<T> + Send + 'static,
) -> Result<T> {
    let rt = rt.clone();
    tokio::task::spawn_blocking(move || f(rt.as_ref()))
        .await
        .map_err(|e| Error::Runtime(format!("runtime task failed: {e}")))?
}

/// Why a container is waiting, as the pod status shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Waiting {
    pub(crate) reason: String,
    pub(crate) message: String,
}

/// An image pull that failed: retried with back-off (ImagePullBackOff).
struct PullFailure {
    failures: u32,
    at: Instant,
}

pub(crate) struct Worker {
    pub(crate) key: String,
    pub(crate) uid: String,
    pub(crate) sandbox: Option<Sandbox>,
    /// Per container name: why it waits (image pull, config, start errors).
    pub(crate) waiting: HashMap<String, Waiting>,
    /// Containers whose start failed (by runtime id): treated as exited with 128 (StartError).
    start_failures: HashMap<String, (String, jiff::Timestamp)>,
    pull_failures: HashMap<String, PullFailure>,
    /// The last status written, to skip identical writes.
    last_status: Option<Value>,
    /// Probe state per container.
    pub(crate) probes: super::probes::PodProbes,
}

pub(super) async fn run(shared: Weak<Shared>, key: String, uid: String, wake: Arc<Notify>) {
    let mut w = Worker {
        key,
        uid,
        sandbox: None,
        waiting: HashMap::new(),
        start_failures: HashMap::new(),
        pull_failures: HashMap::new(),
        last_status: None,
        probes: Default::default(),
    };
    loop {
        let Some(s) = shared.upgrade() else { return };
        let pod = s
            .pods
            .store()
            .get(&w.key)
            .filter(|p| p.metadata.uid.as_deref() == Some(w.uid.as_str()));
        let next = match pod {
            Some(p) if p.metadata.deletion_timestamp.is_none() => w.sync(&s, &p).await,
            gone_or_deleting => match w.terminate(&s, gone_or_deleting.as_deref()).await {
                Ok(()) => {
                    s.worker_done(&w.uid);
                    info!("pod torn down");
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "tearing the pod down failed; retrying");
                    Duration::from_secs(1)
                }
            },
        };
        drop(s);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(next) => {}
        }
    }
}

impl Worker {
    /// This pod's containers as the runtime has them, with failed starts shown as exits.
    /// `max_age` bounds how old the node-wide container list may be (zero: list now).
    async fn observe(&self, s: &Shared, max_age: Duration) -> Result<Vec<ContainerInfo>> {
        let all = s.containers(max_age).await?;
        let mut containers: Vec<ContainerInfo> = all
            .iter()
            .filter(|c| c.labels.get(labels::POD_UID) == Some(&self.uid))
            .cloned()
            .collect();
        for c in &mut containers {
            if let (Some((_, at)), ContainerState::Created) =
                (self.start_failures.get(&c.id), &c.state)
            {
                c.state = ContainerState::Exited {
                    started_at: *at,
                    finished_at: *at,
                    exit_code: 128,
                    oom_killed: false,
                };
            }
        }
        Ok(containers)
    }

    /// One pass over a live pod; returns how long to sleep at most.
    async fn sync(&mut self, s: &Shared, pod: &Pod) -> Duration {
        let mut next = s.config.poll_interval;
        if let Err(e) = self.ensure_sandbox(s, pod).await {
            warn!(error = %e, "creating the pod sandbox failed");
            super::events::warning(s, pod, None, "FailedCreatePodSandBox", &e.to_string()).await;
            self.report(s, pod, &[], &Default::default()).await;
            return Duration::from_secs(2);
        }
        // A slightly old node-wide list is fine for looking; after acting, list afresh.
        let mut containers = match self.observe(s, super::RELIST_MAX_AGE).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "listing containers failed");
                return Duration::from_secs(1);
            }
        };
        let probes = super::probes::run_due(self, s, pod, &containers).await;
        if let Some(due) = probes.next_due {
            next = next.min(due);
        }
        let m = &pod.metadata;
        let plan = plan::plan(
            pod,
            &PlanInput {
                containers: &containers,
                unhealthy: &probes.unhealthy,
                now: jiff::Timestamp::now(),
                pod_meta: (
                    m.name.as_deref().unwrap_or_default(),
                    m.namespace.as_deref().unwrap_or("default"),
                    &self.uid,
                ),
                backoff: &s.config.backoff,
            },
        );
        if let Some(w) = plan.wake_after {
            next = next.min(w);
        }
        let acted = !plan.actions.is_empty();
        for action in plan.actions {
            if let Some(wait) = self.execute(s, pod, action).await {
                next = next.min(wait);
            }
        }
        for (name, message) in &plan.backing_off {
            self.waiting.insert(
                name.clone(),
                Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: message.clone(),
                },
            );
        }
        if acted {
            match self.observe(s, Duration::ZERO).await {
                Ok(c) => containers = c,
                Err(e) => warn!(error = %e, "listing containers failed"),
            }
        }
        self.report(s, pod, &containers, &probes.ready).await;
        next
    }

    /// Executes one planned step; returns a shorter wake-up when the step must be retried.
    async fn execute(&mut self, s: &Shared, pod: &Pod, action: Action) -> Option<Duration> {
        match action {
            Action::Start {
                name,
                attempt,
                init,
            } => self.start(s, pod, &name, attempt, init).await,
            Action::Kill { id, name } => {
                super::events::normal(
                    s,
                    pod,
                    Some(&name),
                    "Killing",
                    &format!("Container {name} failed liveness probe, will be restarted"),
                )
                .await;
                let grace = termination_grace(pod);
                if let Err(e) = blocking(&s.runtime, move |rt| rt.stop_container(&id, grace)).await
                {
                    warn!(container = %name, error = %e, "stopping an unhealthy container failed");
                }
                None
            }
            Action::Remove { id } => {
                self.start_failures.remove(&id);
                if let Err(e) = blocking(&s.runtime, move |rt| rt.remove_container(&id)).await {
                    warn!(error = %e, "removing an old container failed");
                }
                None
            }
        }
    }

    /// Pulls the image, builds the container's configuration and creates + starts it.
    /// Failures become the container's waiting reason.
    async fn start(
        &mut self,
        s: &Shared,
        pod: &Pod,
        name: &str,
        attempt: u32,
        init: bool,
    ) -> Option<Duration> {
        let Some(sandbox) = self.sandbox.clone() else {
            return Some(Duration::from_secs(1));
        };
        let container = super::spec_container(pod, name, init)?;
        // Image pull back-off.
        if let Some(f) = self.pull_failures.get(name) {
            let delay = s.config.backoff.delay(f.failures, Duration::ZERO);
            if f.at.elapsed() < delay {
                let image = container.image.clone().unwrap_or_default();
                self.waiting.insert(
                    name.to_string(),
                    Waiting {
                        reason: "ImagePullBackOff".into(),
                        message: crate::pod::backoff::image_pull_backoff_message(&image),
                    },
                );
                return Some(delay - f.at.elapsed());
            }
        }
        let image = match super::images::ensure(s, pod, &container).await {
            Ok(image) => {
                self.pull_failures.remove(name);
                image
            }
            Err(e) => {
                let failures = self.pull_failures.get(name).map_or(0, |f| f.failures) + 1;
                self.pull_failures.insert(
                    name.to_string(),
                    PullFailure {
                        failures,
                        at: Instant::now(),
                    },
                );
                let reason = e.reason().unwrap_or("ErrImagePull");
                super::events::warning(s, pod, Some(name), "Failed", &e.to_string()).await;
                self.waiting.insert(
                    name.to_string(),
                    Waiting {
                        reason: reason.into(),
                        message: e.to_string(),
                    },
                );
                return Some(Duration::from_millis(100));
            }
        };
        let config = match super::containers::container_config(
            s, pod, &container, &sandbox, &image, attempt,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                // A volume that cannot be set up keeps the pod ContainerCreating with a
                // FailedMount event, as in Kubernetes; anything else is a config error.
                let (reason, event) = match &e {
                    Error::Volume { .. } => ("ContainerCreating", "FailedMount"),
                    _ => ("CreateContainerConfigError", "Failed"),
                };
                super::events::warning(s, pod, Some(name), event, &format!("Error: {e}")).await;
                self.waiting.insert(
                    name.to_string(),
                    Waiting {
                        reason: reason.into(),
                        message: e.to_string(),
                    },
                );
                // Kubernetes retries config errors on its sync period with back-off; the
                // missing ConfigMap may appear any time.
                return Some(Duration::from_secs(2));
            }
        };
        let sb = sandbox.clone();
        let created = blocking(&s.runtime, move |rt| rt.create_container(&sb, &config)).await;
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                super::events::warning(s, pod, Some(name), "Failed", &format!("Error: {e}")).await;
                self.waiting.insert(
                    name.to_string(),
                    Waiting {
                        reason: "CreateContainerError".into(),
                        message: e.to_string(),
                    },
                );
                return Some(Duration::from_secs(2));
            }
        };
        super::events::normal(
            s,
            pod,
            Some(name),
            "Created",
            &format!("Created container {name}"),
        )
        .await;
        let start_id = id.clone();
        match blocking(&s.runtime, move |rt| rt.start_container(&start_id)).await {
            Ok(()) => {
                self.waiting.remove(name);
                debug!(container = name, attempt, "started");
                super::events::normal(
                    s,
                    pod,
                    Some(name),
                    "Started",
                    &format!("Started container {name}"),
                )
                .await;
                None
            }
            Err(e) => {
                let message = e.to_string();
                super::events::warning(s, pod, Some(name), "Failed", &format!("Error: {message}"))
                    .await;
                self.start_failures
                    .insert(id, (message.clone(), jiff::Timestamp::now()));
                self.waiting.insert(
                    name.to_string(),
                    Waiting {
                        reason: "RunContainerError".into(),
                        message,
                    },
                );
                Some(Duration::from_millis(50))
            }
        }
    }

    /// Creates the sandbox once (the runtime returns the existing one after an agent restart).
    async fn ensure_sandbox(&mut self, s: &Shared, pod: &Pod) -> Result<()> {
        if self.sandbox.is_some() {
            return Ok(());
        }
        let config = super::sandbox::sandbox_config(&s.config, pod);
        let sandbox = blocking(&s.runtime, move |rt| rt.run_pod_sandbox(&config)).await?;
        self.sandbox = Some(sandbox);
        Ok(())
    }

    /// Stops every container (with the pod's grace period, after preStop hooks), removes them
    /// and the sandbox, and confirms a deletion to the API server.
    async fn terminate(&mut self, s: &Shared, pod: Option<&Pod>) -> Result<()> {
        let grace = pod.map(termination_grace).unwrap_or(Duration::ZERO);
        let containers = self.observe(s, Duration::ZERO).await?;
        let running: Vec<&ContainerInfo> = containers
            .iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .collect();
        if let Some(pod) = pod {
            for c in &running {
                super::events::normal(
                    s,
                    pod,
                    Some(&c.name),
                    "Killing",
                    &format!("Stopping container {}", c.name),
                )
                .await;
            }
        }
        // All containers stop in parallel, each with the whole grace period, after its hook.
        let started = Instant::now();
        let stops = running.iter().map(|c| {
            let id = c.id.clone();
            let name = c.name.clone();
            async move {
                if let Some(pod) = pod {
                    super::hooks::pre_stop(s, pod, &name, &id, grace).await;
                }
                let left = grace.saturating_sub(started.elapsed());
                blocking(&s.runtime, move |rt| rt.stop_container(&id, left)).await
            }
        });
        for result in futures::future::join_all(stops).await {
            result?;
        }
        for c in containers {
            blocking(&s.runtime, move |rt| rt.remove_container(&c.id)).await?;
        }
        if let Some(sandbox) = self.sandbox.take().or(self.find_sandbox(s).await?) {
            let id = sandbox.id.clone();
            blocking(&s.runtime, move |rt| rt.remove_pod_sandbox(&id)).await?;
        }
        super::volumes::remove_pod_dirs(&s.config, &self.uid);
        if let Some(pod) = pod {
            crate::node::confirm_pod_deletion(&s.client, pod)
                .await
                .map_err(|e| Error::Runtime(format!("confirming the deletion: {e}")))?;
        }
        s.recorder.forget(&self.uid);
        Ok(())
    }

    async fn find_sandbox(&self, s: &Shared) -> Result<Option<Sandbox>> {
        let uid = self.uid.clone();
        blocking(&s.runtime, move |rt| {
            Ok(rt
                .list_sandboxes()?
                .into_iter()
                .find(|sb| sb.labels.get(labels::POD_UID) == Some(&uid)))
        })
        .await
    }

    /// Start errors by container id, for the status' StartError terminations.
    pub(crate) fn start_error_messages(&self) -> HashMap<String, String> {
        self.start_failures
            .iter()
            .map(|(id, (message, _))| (id.clone(), message.clone()))
            .collect()
    }

    /// Computes the pod status and writes it when it changed.
    async fn report(
        &mut self,
        s: &Shared,
        pod: &Pod,
        containers: &[ContainerInfo],
        ready: &HashSet<String>,
    ) {
        let status = super::status::pod_status(s, self, pod, containers, ready);
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        match super::status::write(s, pod, &status).await {
            Ok(()) => self.last_status = Some(status),
            Err(e) => warn!(error = %e, "writing pod status failed"),
        }
    }
}

/// The pod's grace period: what the deletion asked for, else the spec's, else 30 s.
pub(crate) fn termination_grace(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(seconds.max(0) as u64)
}
