//! The running scheduler: informers feed a [`ClusterSnapshot`], a work queue feeds pending
//! pods to [`Scheduler::schedule_and_assume`], and bindings go out through `pods/binding`.
//!
//! Shape of one leadership term (a [`Session`]):
//! - informers on Nodes, Pods and Namespaces; their handlers update the snapshot under one
//!   mutex and queue the keys of pending pods (handlers only queue, never do I/O);
//! - `workers` tasks take pod keys from a de-duplicating [`WorkQueue`]. The decision (and the
//!   assume that keeps a burst from overcommitting a node) runs under the snapshot mutex, so
//!   decisions are serial and always see every earlier one; the binding POST runs outside it,
//!   so many bindings are in flight at once;
//! - a binding that fails un-assumes the pod. A 409 means the pod is already bound or being
//!   deleted: never retry that, the watch brings the truth;
//! - a pod that fits nowhere is parked with the plugins that rejected it; it is retried after
//!   its backoff, or at once when a cluster event may help
//!   ([`queue_policy::is_schedulable_after`]).
//!
//! Only the leader of the Lease `kube-system/kube-scheduler` runs a session; when leadership
//! is lost the session (informers, queue, workers) is torn down and the replica goes back to
//! waiting, like kube-scheduler, which never acts on a stale view after losing its Lease.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use runtime::informer::{Event, Informer, InformerConfig};
use runtime::leader::{Candidate, LeaderElectionConfig, LeaderState, lost};
use runtime::queue::{Backoff, WorkQueue};
use runtime::request::RequestBuilder;
use runtime::{Api, Client, ListParams, PostParams, ResourceInfo};
use serde_json::json;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::events::Recorder;
use crate::filters::PluginSet;
use crate::queue_policy::{self, ClusterEvent};
use crate::{ClusterSnapshot, PodInfo, Scheduler, SchedulerConfig};

/// The scheduler name pods ask for by default.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Settings of a running scheduler.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// This replica's identity (Lease holder, Event `reportingInstance`).
    pub identity: String,
    /// Lease to compete for; `None` schedules without election (one replica only!).
    pub leader_election: Option<LeaderElectionConfig>,
    /// Pods whose `spec.schedulerName` is this (or empty) are ours.
    pub scheduler_name: String,
    /// Backoff of an unschedulable pod: first delay.
    pub initial_backoff: Duration,
    /// Backoff of an unschedulable pod: ceiling.
    pub max_backoff: Duration,
    /// Concurrent pods between decision and confirmed binding.
    pub workers: usize,
    /// Decision tuning.
    pub scheduler: SchedulerConfig,
    /// Tie-break seed.
    pub seed: u64,
    /// How long informers may take to list before a term is abandoned and retried.
    pub sync_timeout: Duration,
}

impl RunConfig {
    /// Kubernetes defaults, electing on `kube-system/kube-scheduler` as `identity`.
    pub fn new(identity: &str) -> Self {
        RunConfig {
            identity: identity.to_string(),
            leader_election: Some(LeaderElectionConfig::new(
                "kube-system",
                "kube-scheduler",
                identity,
            )),
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            initial_backoff: queue_policy::INITIAL_BACKOFF,
            max_backoff: queue_policy::MAX_BACKOFF,
            workers: 16,
            scheduler: SchedulerConfig::default(),
            seed: rand::random(),
            sync_timeout: Duration::from_secs(60),
        }
    }
}

/// A unique identity for this process: host name plus a random suffix.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "skiff".to_string());
    format!("{host}_{:08x}", rand::random::<u32>())
}

/// Counters of what a scheduler did (tests, bench, metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Successful decisions (a node was chosen).
    pub scheduled: std::sync::atomic::AtomicU64,
    /// Bindings the server accepted.
    pub bound: std::sync::atomic::AtomicU64,
    /// Bindings refused with 409 (someone else bound the pod, or it is being deleted).
    pub binding_conflicts: std::sync::atomic::AtomicU64,
    /// Decisions that found no node.
    pub unschedulable: std::sync::atomic::AtomicU64,
    /// Nanoseconds spent deciding (filter, score, assume), without I/O: decisions/s is
    /// `(scheduled + unschedulable) / decide_nanos`.
    pub decide_nanos: std::sync::atomic::AtomicU64,
}

/// Runs the scheduler until `shutdown` completes; with election, only while leading.
pub async fn run(
    client: Client,
    config: RunConfig,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> runtime::Result<()> {
    tokio::pin!(shutdown);
    let candidate = Candidate::new(client.clone(), config.leader_election.clone())?;
    loop {
        let leading = tokio::select! {
            _ = &mut shutdown => break,
            r = candidate.acquire() => r?,
        };
        if leading.is_some() {
            info!(identity = %config.identity, "became leader; scheduling");
        }
        let session = Session::start(client.clone(), &config, leading.clone(), stats.clone());
        let synced = tokio::select! {
            _ = &mut shutdown => { session.stop().await; break; }
            r = session.wait_for_sync(config.sync_timeout) => r,
        };
        if let Err(e) = synced {
            warn!(error = %e, "informers did not sync; restarting the term");
            session.stop().await;
            continue;
        }
        session.start_workers(config.workers);
        tokio::select! {
            _ = &mut shutdown => { session.stop().await; break; }
            _ = lost(leading) => {
                warn!(identity = %config.identity, "lost leadership; stopped scheduling");
                session.stop().await;
            }
        }
    }
    candidate.release().await;
    Ok(())
}

/// Whether the elector state says we lead right now.
fn is_leading(state: &Option<watch::Receiver<LeaderState>>) -> bool {
    match state {
        None => true,
        Some(rx) => matches!(
            *rx.borrow(),
            LeaderState::Leading { until, .. } if tokio::time::Instant::now() < until
        ),
    }
}

/// A pod that fit nowhere, waiting for its backoff or a helpful cluster event.
struct Parked {
    info: Arc<PodInfo>,
    rejected_by: PluginSet,
    attempts: u32,
}

/// Everything handlers and workers share, behind one mutex.
struct State {
    snapshot: ClusterSnapshot,
    scheduler: Scheduler,
    parked: HashMap<String, Parked>,
}

struct Inner {
    config: RunConfig,
    state: Mutex<State>,
    queue: WorkQueue<String>,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    namespaces: Arc<Informer<Namespace>>,
    recorder: Recorder,
    client: Client,
    leading: Option<watch::Receiver<LeaderState>>,
    stats: Arc<Stats>,
}

/// One leadership term's machinery; dropped (informers stopped) when the term ends.
struct Session {
    inner: Arc<Inner>,
    workers: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the pod is ours to schedule now.
    fn is_pending(&self, pod: &Pod) -> bool {
        let spec = pod.spec.as_ref();
        let unbound = spec
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty);
        let ours = spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n.is_empty() || n == self.config.scheduler_name);
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        unbound && ours && !finished && pod.metadata.deletion_timestamp.is_none()
    }

    /// Re-queues every parked pod the event may help.
    fn wake(&self, state: &State, event: &ClusterEvent) {
        for (key, p) in &state.parked {
            if queue_policy::is_schedulable_after(&p.info, p.rejected_by, event) {
                self.queue.add(key.clone());
            }
        }
    }

    fn on_node(&self, ev: &Event<Node>) {
        let mut st = self.lock();
        match ev {
            Event::Added(n) => {
                st.snapshot.upsert_node(n);
                self.wake(&st, &ClusterEvent::NodeAdded(n));
            }
            Event::Updated { old, new } => {
                st.snapshot.upsert_node(new);
                self.wake(
                    &st,
                    &ClusterEvent::NodeUpdated {
                        old: old.as_ref(),
                        new: new.as_ref(),
                    },
                );
            }
            Event::Resync(n) => st.snapshot.upsert_node(n),
            Event::Deleted(n) => {
                st.snapshot
                    .remove_node(n.metadata.name.as_deref().unwrap_or_default());
                self.wake(&st, &ClusterEvent::NodeDeleted(n));
            }
        }
    }

    fn on_namespace(&self, ev: &Event<Namespace>) {
        let mut st = self.lock();
        let ns = ev.object();
        let name = ns.metadata.name.clone().unwrap_or_default();
        match ev {
            Event::Deleted(_) => st.snapshot.remove_namespace(&name),
            _ => st
                .snapshot
                .set_namespace_labels(&name, ns.metadata.labels.clone().unwrap_or_default()),
        }
    }

    fn on_pod(&self, ev: &Event<Pod>) {
        let key = ev.key();
        let bound = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        };
        let mut st = self.lock();
        match ev {
            Event::Deleted(pod) => {
                st.snapshot.remove_pod(&key);
                st.parked.remove(&key);
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.recorder.forget(uid);
                }
                if bound(pod) {
                    self.wake(&st, &ClusterEvent::AssignedPodDeleted(pod));
                }
            }
            Event::Added(pod) | Event::Resync(pod) => {
                st.snapshot.add_pod(pod);
                if bound(pod) {
                    st.parked.remove(&key);
                    if matches!(ev, Event::Added(_)) {
                        self.wake(&st, &ClusterEvent::AssignedPodAdded(pod));
                    }
                } else if self.is_pending(pod) {
                    self.queue.add(key);
                }
            }
            Event::Updated { old, new } => {
                st.snapshot.add_pod(new);
                if bound(new) {
                    st.parked.remove(&key);
                    let event = if bound(old) {
                        ClusterEvent::AssignedPodUpdated {
                            old: old.as_ref(),
                            new: new.as_ref(),
                        }
                    } else {
                        ClusterEvent::AssignedPodAdded(new)
                    };
                    self.wake(&st, &event);
                    let finished = new
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_some_and(|p| p == "Succeeded" || p == "Failed");
                    if finished {
                        self.wake(&st, &ClusterEvent::AssignedPodDeleted(new));
                    }
                } else if self.is_pending(new) {
                    // The pod itself changed (maybe its requests or tolerations): retry now,
                    // unless the change is only the scheduler's own status write.
                    let changed =
                        old.spec != new.spec || old.metadata.labels != new.metadata.labels;
                    if changed || !st.parked.contains_key(&key) {
                        self.queue.add(key);
                    }
                } else {
                    st.parked.remove(&key);
                }
            }
        }
    }

    /// One attempt for one pod key.
    async fn schedule_one(self: Arc<Self>, key: String) {
        let Some(pod) = self.pods.store().get(&key) else {
            return;
        };
        if !self.is_pending(&pod) || !is_leading(&self.leading) {
            return;
        }
        let info = PodInfo::shared(&pod);
        let decision = {
            let mut st = self.lock();
            if st.snapshot.node_of(&key).is_some() {
                // Assumed: a binding for it is in flight (or it is already bound).
                return;
            }
            let State {
                snapshot,
                scheduler,
                ..
            } = &mut *st;
            let started = std::time::Instant::now();
            let decision = scheduler.schedule_and_assume(info.clone(), snapshot);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.stats
                .decide_nanos
                .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
            decision
        };
        match decision {
            Ok(result) => {
                self.stats
                    .scheduled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                debug!(node = %result.node, feasible = result.feasible_nodes, evaluated = result.evaluated_nodes, "chose a node");
                self.bind(&pod, &key, &result.node).await;
            }
            Err(fit) => {
                self.stats
                    .unschedulable
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let message = fit.to_string();
                let attempts = {
                    let mut st = self.lock();
                    let p = st.parked.entry(key.clone()).or_insert(Parked {
                        info: info.clone(),
                        rejected_by: PluginSet::default(),
                        attempts: 0,
                    });
                    p.info = info;
                    p.rejected_by = fit.unschedulable_plugins;
                    p.attempts = p.attempts.saturating_add(1);
                    p.attempts
                };
                let delay = queue_policy::backoff_with(
                    attempts,
                    self.config.initial_backoff,
                    self.config.max_backoff,
                );
                info!(%message, attempts, retry_in = ?delay, "unschedulable");
                self.queue.add_after(key, delay);
                if let Err(e) = self.recorder.mark_unschedulable(&pod, &message).await {
                    debug!(error = %e, "could not set PodScheduled=False");
                }
                self.recorder.failed_scheduling(&pod, &message).await;
            }
        }
    }

    async fn bind(&self, pod: &Pod, key: &str, node: &str) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        // Last check before acting: a replica whose term lapsed must not bind.
        let result = if is_leading(&self.leading) {
            match RequestBuilder::new(ResourceInfo::of::<Pod>(), Some(ns)).create_subresource(
                name,
                "binding",
                &PostParams::default(),
                &binding,
            ) {
                Ok(req) => self.client.send(req, Some(Duration::from_secs(30))).await,
                Err(e) => Err(e),
            }
        } else {
            Err(runtime::Error::ShutDown)
        };
        match result {
            Ok(resp) => {
                // Read the answer so the connection goes back to the pool.
                let _ = resp.bytes().await;
                self.stats
                    .bound
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.lock().parked.remove(key);
                debug!(%node, "bound");
                self.recorder.scheduled(pod, node).await;
            }
            Err(e) => {
                self.lock().snapshot.remove_pod(key);
                if e.is_conflict() || e.is_not_found() {
                    // Bound by someone else, being deleted, or gone: the watch tells the rest.
                    self.stats
                        .binding_conflicts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    debug!(error = %e, "binding refused; not retrying");
                } else if matches!(e, runtime::Error::ShutDown) {
                    debug!("not leading any more; binding skipped");
                } else {
                    warn!(error = %e, %node, "binding failed; retrying");
                    self.queue.add_rate_limited(key.to_string());
                }
            }
        }
    }
}

impl Drop for Session {
    /// A session dropped without [`Session::stop`] (its `run` future was cancelled) must not
    /// leave workers binding on a view nobody maintains.
    fn drop(&mut self) {
        self.inner.queue.shut_down();
        if let Some(h) = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
    }
}

impl Session {
    fn start(
        client: Client,
        config: &RunConfig,
        leading: Option<watch::Receiver<LeaderState>>,
        stats: Arc<Stats>,
    ) -> Self {
        let icfg = InformerConfig::default();
        let pods = Arc::new(Informer::new(
            Api::<Pod>::all(client.clone()),
            ListParams::default(),
            icfg.clone(),
        ));
        let nodes = Arc::new(Informer::new(
            Api::<Node>::all(client.clone()),
            ListParams::default(),
            icfg.clone(),
        ));
        let namespaces = Arc::new(Informer::new(
            Api::<Namespace>::all(client.clone()),
            ListParams::default(),
            icfg,
        ));
        let inner = Arc::new(Inner {
            config: config.clone(),
            state: Mutex::new(State {
                snapshot: ClusterSnapshot::new(),
                scheduler: Scheduler::new(config.scheduler, config.seed),
                parked: HashMap::new(),
            }),
            queue: WorkQueue::new(Backoff::default()),
            pods,
            nodes,
            namespaces,
            recorder: Recorder::new(client.clone(), &config.identity),
            client,
            leading,
            stats,
        });
        // Handlers hold only a weak reference, so dropping the session frees everything.
        let weak = Arc::downgrade(&inner);
        inner.namespaces.add_handler({
            let weak = weak.clone();
            move |ev| {
                if let Some(i) = weak.upgrade() {
                    i.on_namespace(ev)
                }
            }
        });
        inner.nodes.add_handler({
            let weak = weak.clone();
            move |ev| {
                if let Some(i) = weak.upgrade() {
                    i.on_node(ev)
                }
            }
        });
        inner.pods.add_handler(move |ev| {
            if let Some(i) = weak.upgrade() {
                i.on_pod(ev)
            }
        });
        Session {
            inner,
            workers: Mutex::new(None),
        }
    }

    async fn wait_for_sync(&self, timeout: Duration) -> runtime::Result<()> {
        self.inner.namespaces.wait_for_sync(timeout).await?;
        self.inner.nodes.wait_for_sync(timeout).await?;
        self.inner.pods.wait_for_sync(timeout).await
    }

    fn start_workers(&self, workers: usize) {
        let inner = self.inner.clone();
        let queue = inner.queue.clone();
        let handle = tokio::spawn(async move {
            queue
                .run_workers(workers, move |key: String| {
                    let inner = inner.clone();
                    let span = info_span!("schedule", pod = %key);
                    async move {
                        inner.schedule_one(key).await;
                        Ok::<(), std::convert::Infallible>(())
                    }
                    .instrument(span)
                })
                .await
        });
        *self.workers.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// Stops the workers (in-flight bindings are abandoned) and the informers.
    async fn stop(self) {
        self.inner.queue.shut_down();
        let handle = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
    }
}
