//! The real node agent: registers the Node, renews its Lease, and drives every pod bound to
//! the node to its spec through a [`crate::cri::ContainerRuntime`].
//!
//! One informer watches the pods bound to this node (`fieldSelector=spec.nodeName=NAME`). Each
//! pod (by uid) gets its own worker task that owns everything about that pod on the node:
//! sandbox, containers, probes, status. Informer events only wake workers; a worker re-reads the
//! latest pod from the cache, so bursts of updates collapse into one sync.

mod containers;
mod events;
mod hooks;
mod images;
mod lookup;
pub mod plan;
mod pod_cidr;
mod pod_files;
mod probes;
mod sandbox;
mod status;
mod volumes;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use runtime::informer::{Event, Informer, InformerConfig};
use runtime::{Api, Client, ListParams};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use k8s_openapi::api::core::v1::Container;
use runtime::events::EventRecorder;

use crate::cri::{ContainerInfo, ContainerRuntime};
use crate::image::pull::Puller;
use crate::node::{HostFacts, NodeFacts, register_node, renew_lease};
use crate::pod::backoff::BackoffPolicy;
pub use pod_cidr::await_pod_cidr;

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// Where pods' volumes and logs live (`pods/`, `logs/`).
    pub data_dir: PathBuf,
    /// The node's pod CIDR, written to `spec.podCIDR` at registration.
    pub pod_cidr: Option<String>,
    /// The node's InternalIP (where the API server reaches the kubelet API).
    pub node_ip: IpAddr,
    /// Port of the kubelet API, reported in the Node's daemonEndpoints.
    pub kubelet_port: Option<u16>,
    /// Capacity overrides (`cpu`, `memory`, `pods`, ...); the host's figures otherwise.
    pub capacity_overrides: BTreeMap<String, String>,
    /// Lease renewal period (Kubernetes: 10 s).
    pub lease_interval: Duration,
    /// Lease duration written into the Lease (Kubernetes: 40 s).
    pub lease_duration_seconds: i32,
    /// Node status report period (the Lease is the heartbeat; status is refreshed slower).
    pub status_interval: Duration,
    /// How often a worker looks at its containers when nothing else wakes it (container exits
    /// are noticed within this period).
    pub poll_interval: Duration,
    /// Crash-loop and image-pull back-off (Kubernetes: 10 s doubling to 5 min, reset after a
    /// 10-minute run).
    pub backoff: BackoffPolicy,
    /// Cluster DNS server addresses for `dnsPolicy: ClusterFirst` pods (empty: the host's).
    pub cluster_dns: Vec<IpAddr>,
    /// Cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// PEM CA whose client certificates the kubelet API requires (the cluster CA, so only the
    /// API server gets in); `None` serves any client (plain-HTTP control planes, tests).
    pub client_ca: Option<Vec<u8>>,
}

impl AgentConfig {
    /// Kubernetes' defaults for a node named `node_name` keeping its state in `data_dir`.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            pod_cidr: None,
            node_ip: IpAddr::from([127, 0, 0, 1]),
            kubelet_port: None,
            capacity_overrides: BTreeMap::new(),
            lease_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            backoff: BackoffPolicy::default(),
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            client_ca: None,
        }
    }
}

/// The Node as this agent reports it: the host's facts with the configured overrides.
pub fn node_facts(config: &AgentConfig, host: &HostFacts, runtime_version: &str) -> NodeFacts {
    let mut capacity: BTreeMap<String, String> = [
        ("cpu".to_string(), host.cpus.to_string()),
        (
            "memory".to_string(),
            format!("{}Ki", host.memory_bytes / 1024),
        ),
        ("pods".to_string(), "110".to_string()),
        (
            "ephemeral-storage".to_string(),
            format!("{}Ki", host.ephemeral_storage_bytes / 1024),
        ),
    ]
    .into();
    capacity.extend(config.capacity_overrides.clone());
    NodeFacts {
        name: config.node_name.clone(),
        pod_cidr: config.pod_cidr.clone(),
        extra_labels: BTreeMap::new(),
        allocatable: capacity.clone(),
        capacity,
        addresses: vec![
            ("InternalIP".into(), config.node_ip.to_string()),
            ("Hostname".into(), config.node_name.clone()),
        ],
        kubelet_port: config.kubelet_port,
        container_runtime_version: runtime_version.to_string(),
        os_image: host.os_image.clone(),
        kernel_version: host.kernel_version.clone(),
        machine_id: host.machine_id.clone(),
        boot_id: host.boot_id.clone(),
        ready_message: "kubelet is posting ready status".into(),
        not_ready: None,
    }
}

/// The pod's container (or init container when `init`) called `name`; regular containers
/// are searched first when `init` is false, then init containers (hooks may ask for either).
pub(crate) fn spec_container(pod: &Pod, name: &str, init: bool) -> Option<Container> {
    let spec = pod.spec.as_ref()?;
    let inits = spec.init_containers.iter().flatten();
    let regular = spec.containers.iter();
    if init {
        inits.chain(regular).find(|c| c.name == name).cloned()
    } else {
        regular.chain(inits).find(|c| c.name == name).cloned()
    }
}

/// What the pod workers share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: AgentConfig,
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) puller: Option<Arc<Puller>>,
    pub(crate) pods: Informer<Pod>,
    pub(crate) recorder: Arc<EventRecorder>,
    pub(crate) facts: NodeFacts,
    workers: Mutex<HashMap<String, WorkerHandle>>,
    /// The last node-wide container list and when it was taken (see [`Shared::containers`]).
    relist: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Vec<ContainerInfo>>)>>,
}

/// How old a container list a worker's routine look may use: workers share one list instead
/// of each listing every container of the node (the kubelet's PLEG relists once for all pods).
pub(crate) const RELIST_MAX_AGE: Duration = Duration::from_millis(200);

struct WorkerHandle {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// A running agent; stops its loops (leaving containers running, to be adopted by the next
/// agent) when dropped.
pub struct Agent {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let workers = std::mem::take(
            &mut *self
                .shared
                .workers
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for (_, w) in workers {
            w.task.abort();
        }
    }
}

impl Agent {
    /// Registers the Node, starts the Lease and status loops, adopts what the runtime already
    /// runs, and starts a worker per pod bound to the node. Returns once the pod cache synced.
    /// `puller` is `None` for drivers that run no images (the process driver).
    pub async fn start(
        client: Client,
        config: AgentConfig,
        runtime: Arc<dyn ContainerRuntime>,
        puller: Option<Arc<Puller>>,
    ) -> runtime::Result<Agent> {
        let host = crate::node::host_facts(&config.data_dir);
        let facts = node_facts(&config, &host, &format!("{}://", runtime.name()));
        register_node(&client, &facts).await?;
        renew_lease(&client, &config.node_name, config.lease_duration_seconds).await?;
        let pods = Informer::new(
            Api::<Pod>::all(client.clone()),
            ListParams::default().fields(&format!("spec.nodeName={}", config.node_name)),
            InformerConfig::default(),
        );
        let recorder = Arc::new(EventRecorder::new(
            client.clone(),
            "kubelet",
            &config.node_name,
        ));
        let shared = Arc::new(Shared {
            recorder,
            client,
            config,
            runtime,
            puller,
            pods,
            facts,
            workers: Mutex::new(HashMap::new()),
            relist: tokio::sync::Mutex::new(None),
        });
        shared.pods.wait_for_sync(Duration::from_secs(60)).await?;
        let weak = Arc::downgrade(&shared);
        shared.pods.add_handler(move |ev| {
            if let Some(s) = weak.upgrade() {
                s.on_pod(&weak, ev);
            }
        });
        let mut tasks = Vec::new();
        let s = shared.clone();
        tasks.push(tokio::spawn(
            async move { s.heartbeat().await }.instrument(info_span!("heartbeat")),
        ));
        let s = shared.clone();
        tasks.push(tokio::spawn(
            async move { s.clean_up_orphans().await }.instrument(info_span!("orphans")),
        ));
        if let Some(port) = shared.config.kubelet_port {
            tasks.push(shared.serve_kubelet_api(port).await?);
        }
        info!(node = %shared.config.node_name, runtime = shared.runtime.name(), "agent running");
        Ok(Agent { shared, tasks })
    }

    /// Pods that currently have a worker (by uid).
    pub fn worker_count(&self) -> usize {
        self.shared
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

impl Shared {
    /// Every container of the node, from a list at most `max_age` old. One caller relists
    /// while the others wait for its result, so a burst of workers costs one listing.
    pub(crate) async fn containers(
        &self,
        max_age: Duration,
    ) -> crate::Result<Arc<Vec<ContainerInfo>>> {
        let requested = std::time::Instant::now();
        let mut cached = self.relist.lock().await;
        if let Some((at, list)) = cached.as_ref()
            && (at.elapsed() <= max_age || *at >= requested)
        {
            return Ok(list.clone());
        }
        let taken = std::time::Instant::now();
        let list = Arc::new(worker::blocking(&self.runtime, |rt| rt.list_containers()).await?);
        *cached = Some((taken, list.clone()));
        Ok(list)
    }

    /// Binds the kubelet API (logs, exec, port-forward) on the node's address with a self-signed certificate
    /// (admitting only clients of `client_ca` when set) and serves it until the agent stops.
    async fn serve_kubelet_api(self: &Arc<Self>, port: u16) -> runtime::Result<JoinHandle<()>> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            runtime::Error::Request(format!("kubelet API: {what}: {e}"))
        };
        let addr = std::net::SocketAddr::new(self.config.node_ip, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| failed(&format!("binding {addr}"), &e))?;
        let cert =
            crate::server::ServingCert::self_signed(&self.config.node_name, &[self.config.node_ip])
                .map_err(|e| failed("serving certificate", &e))?;
        let tls = cert
            .server_config_for_clients_of(self.config.client_ca.as_deref())
            .map_err(|e| failed("TLS configuration", &e))?;
        let lookup = Arc::new(lookup::AgentLookup {
            shared: Arc::downgrade(self),
        });
        let app = crate::server::KubeletApi {
            runtime: self.runtime.clone(),
            lookup: lookup.clone(),
        }
        .router()
        .merge(crate::server::portforward::router(lookup));
        info!(%addr, "kubelet API listening");
        Ok(tokio::spawn(async move {
            if let Err(e) = crate::server::serve(listener, tls, app, std::future::pending()).await {
                warn!(error = %e, "kubelet API stopped");
            }
        }))
    }

    fn on_pod(&self, weak: &Weak<Shared>, ev: &Event<Pod>) {
        let pod = ev.object();
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = workers.get(&uid) {
            w.wake.notify_one();
            return;
        }
        if matches!(ev, Event::Deleted(_)) {
            // A pod never started here went away: nothing to tear down beyond what the
            // orphan sweep handles.
            return;
        }
        let wake = Arc::new(Notify::new());
        let key = ev.key();
        let span = info_span!("pod", pod = %key);
        let task = tokio::spawn(
            worker::run(weak.clone(), key, uid.clone(), wake.clone()).instrument(span),
        );
        workers.insert(uid, WorkerHandle { wake, task });
    }

    /// Called by a worker whose pod is gone for good.
    pub(crate) fn worker_done(&self, uid: &str) {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    async fn heartbeat(self: Arc<Self>) {
        let mut lease = tokio::time::interval(self.config.lease_interval);
        let mut status = tokio::time::interval(self.config.status_interval);
        lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = lease.tick() => {
                    if let Err(e) = renew_lease(&self.client, &self.config.node_name, self.config.lease_duration_seconds).await {
                        warn!(error = %e, "lease renewal failed");
                    }
                }
                _ = status.tick() => {
                    if let Err(e) = register_node(&self.client, &self.facts).await {
                        warn!(error = %e, "node status update failed");
                    }
                }
            }
        }
    }

    /// Tears down sandboxes and containers the runtime has for pods that no longer exist in
    /// the API (deleted while the agent was down). Runs once after start-up and then every
    /// minute.
    async fn clean_up_orphans(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            // Pods in the cache and pods whose worker is still tearing them down are not orphans.
            let mut live: std::collections::HashSet<String> = self
                .pods
                .store()
                .list()
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            live.extend(
                self.workers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .cloned(),
            );
            let rt = self.runtime.clone();
            let result = tokio::task::spawn_blocking(move || -> crate::Result<usize> {
                let mut removed = 0;
                let containers = rt.list_containers()?;
                for sandbox in rt.list_sandboxes()? {
                    let uid = sandbox.labels.get(crate::cri::labels::POD_UID);
                    if uid.is_some_and(|u| live.contains(u)) {
                        continue;
                    }
                    for c in containers.iter().filter(|c| c.sandbox_id == sandbox.id) {
                        rt.stop_container(&c.id, Duration::from_secs(2))?;
                        rt.remove_container(&c.id)?;
                    }
                    rt.remove_pod_sandbox(&sandbox.id)?;
                    removed += 1;
                }
                Ok(removed)
            })
            .await;
            match result {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => info!(sandboxes = n, "removed pods no longer bound here"),
                Ok(Err(e)) => warn!(error = %e, "orphan clean-up failed"),
                Err(e) => warn!(error = %e, "orphan clean-up task failed"),
            }
        }
    }
}

/// Stops and removes every container and sandbox `runtime` has on the node (`skiff agent
/// reset`, and tests cleaning up after themselves). Returns (containers, sandboxes) removed.
pub fn remove_everything(runtime: &dyn ContainerRuntime) -> crate::Result<(usize, usize)> {
    let containers = runtime.list_containers()?;
    for c in &containers {
        runtime.stop_container(&c.id, Duration::from_secs(1))?;
        runtime.remove_container(&c.id)?;
    }
    let sandboxes = runtime.list_sandboxes()?;
    for sb in &sandboxes {
        runtime.remove_pod_sandbox(&sb.id)?;
    }
    Ok((containers.len(), sandboxes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_facts_take_host_figures_and_overrides() {
        let mut config = AgentConfig::new("n1", "/tmp");
        config.capacity_overrides.insert("pods".into(), "20".into());
        let host = HostFacts {
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 10 << 30,
            ..HostFacts::default()
        };
        let facts = node_facts(&config, &host, "runc://");
        assert_eq!(facts.capacity["cpu"], "2");
        assert_eq!(facts.capacity["memory"], "4194304Ki");
        assert_eq!(facts.allocatable["pods"], "20");
        assert_eq!(
            facts.addresses[0],
            ("InternalIP".into(), "127.0.0.1".into())
        );
    }
}
