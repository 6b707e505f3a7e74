//! Simulated ("hollow") nodes: a fleet of fake nodes in one process, like kubemark.
//!
//! Each node registers a real Node object, renews its Lease in `kube-node-lease`, moves pods
//! bound to it to Running/Ready with an IP from its pod CIDR, and confirms deletions — but
//! runs nothing. That is enough for the scheduler, controllers and `kubectl` to see a cluster
//! of thousands of nodes, so they can be tested and measured at scale on one machine.
//!
//! Costs are kept independent of the fleet size where it matters: the whole fleet shares one
//! pod informer (with a `spec.nodeName` index) instead of one watch per node, status writes
//! go through one bounded work queue, and Lease renewals are spread evenly over the renewal
//! interval with bounded concurrency, so 5,000 nodes renewing every 10 s cost a steady
//! 500 requests/s rather than bursts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use runtime::informer::{Event, Informer, InformerConfig};
use runtime::queue::{Backoff, WorkQueue};
use runtime::{Api, Client, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use crate::node::{NodeFacts, confirm_pod_deletion, now_time, register_node, renew_lease};

/// Name of the pod informer's index on `spec.nodeName`.
pub const NODE_NAME_INDEX: &str = "spec.nodeName";

/// Settings of a fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// How many nodes.
    pub nodes: usize,
    /// Node names are `<prefix><index>`.
    pub name_prefix: String,
    /// Index of the first node (so several fleets can share a cluster).
    pub first_index: usize,
    /// Capacity and allocatable cpu.
    pub cpu: String,
    /// Capacity and allocatable memory.
    pub memory: String,
    /// Capacity and allocatable pod count.
    pub pods: String,
    /// Lease renewal period of each node (Kubernetes: 10 s).
    pub lease_interval: Duration,
    /// Lease duration written into each Lease (Kubernetes: 40 s).
    pub lease_duration_seconds: i32,
    /// Requests in flight at once for registration, leases and pod updates.
    pub concurrency: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            nodes: 1,
            name_prefix: "sim-".into(),
            first_index: 0,
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: "110".into(),
            lease_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            concurrency: 32,
        }
    }
}

/// The pod CIDR of node `i`: `10.244.i.0/24` for the first 256 nodes; bigger fleets continue
/// with the next second octets, wrapping past 255 (`10.245.0.0/24`, ..., `10.0.0.0/24`, ...),
/// unique for 65,536 nodes. Simulated nodes route nothing, so these addresses are labels.
pub fn pod_cidr(i: usize) -> (u8, u8) {
    (((244 + i / 256) % 256) as u8, (i % 256) as u8)
}

struct SimNode {
    name: String,
    cidr: (u8, u8),
    /// Host octets in use, by pod key.
    ips: Mutex<(HashMap<String, u8>, BTreeSet<u8>)>,
    /// Set while the node is "down" ([`Fleet::stop_node`]): no Lease renewals, no pod updates.
    down: AtomicBool,
}

impl SimNode {
    /// The pod's IP, allocating the lowest free host address (2..=254) on first use.
    fn ip_for(&self, key: &str) -> Option<String> {
        let mut g = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        let (by_pod, used) = &mut *g;
        let host = match by_pod.get(key) {
            Some(h) => *h,
            None => {
                let h = (2u8..=254).find(|h| !used.contains(h))?;
                used.insert(h);
                by_pod.insert(key.to_string(), h);
                h
            }
        };
        Some(format!("10.{}.{}.{host}", self.cidr.0, self.cidr.1))
    }

    fn release(&self, key: &str) {
        let mut g = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        let (by_pod, used) = &mut *g;
        if let Some(h) = by_pod.remove(key) {
            used.remove(&h);
        }
    }
}

struct Shared {
    client: Client,
    config: FleetConfig,
    nodes: HashMap<String, Arc<SimNode>>,
    pods: Informer<Pod>,
    queue: WorkQueue<String>,
    /// Which node each pod key was last seen on (to free its IP after deletion).
    placed: Mutex<HashMap<String, String>>,
    /// Pods whose status must be reported again even though they already run (their node
    /// came back up, and a kubelet reports every pod's state when it does).
    report_again: Mutex<HashSet<String>>,
}

/// A running fleet; stops (without deleting its nodes) when dropped or [`Fleet::stop`]ped.
pub struct Fleet {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.shared.queue.shut_down();
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Fleet {
    /// Registers the nodes, then starts the lease and pod loops. Returns once every node is
    /// registered and the pod cache has synced.
    pub async fn start(client: Client, config: FleetConfig) -> runtime::Result<Fleet> {
        let mut nodes = HashMap::new();
        for i in 0..config.nodes {
            let idx = config.first_index + i;
            let name = format!("{}{idx}", config.name_prefix);
            nodes.insert(
                name.clone(),
                Arc::new(SimNode {
                    name,
                    cidr: pod_cidr(idx),
                    ips: Mutex::new(Default::default()),
                    down: AtomicBool::new(false),
                }),
            );
        }
        let pods = Informer::new(
            Api::<Pod>::all(client.clone()),
            ListParams::default(),
            InformerConfig::default(),
        );
        pods.store().add_indexer(
            NODE_NAME_INDEX,
            Arc::new(|p: &Pod| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .filter(|n| !n.is_empty())
                    .into_iter()
                    .collect()
            }),
        );
        let shared = Arc::new(Shared {
            client,
            config,
            nodes,
            pods,
            queue: WorkQueue::new(Backoff::default()),
            placed: Mutex::new(HashMap::new()),
            report_again: Mutex::new(HashSet::new()),
        });
        shared.register_all().await?;
        let weak = Arc::downgrade(&shared);
        shared.pods.add_handler(move |ev| {
            if let Some(s) = weak.upgrade() {
                s.on_pod(ev);
            }
        });
        shared.pods.wait_for_sync(Duration::from_secs(60)).await?;
        let mut tasks = Vec::new();
        let s = shared.clone();
        tasks.push(tokio::spawn(
            async move { s.renew_leases().await }.instrument(info_span!("leases")),
        ));
        let s = shared.clone();
        let workers = shared.config.concurrency;
        tasks.push(tokio::spawn(async move {
            let queue = s.queue.clone();
            let weak = Arc::downgrade(&s);
            drop(s);
            queue
                .run_workers(workers, move |key: String| {
                    let weak = weak.clone();
                    let span = info_span!("sim_pod", pod = %key);
                    async move {
                        match weak.upgrade() {
                            Some(s) => s.sync_pod(&key).await,
                            None => Ok(()),
                        }
                    }
                    .instrument(span)
                })
                .await
        }));
        info!(nodes = shared.nodes.len(), "simulated fleet running");
        Ok(Fleet { shared, tasks })
    }

    /// Names of the fleet's nodes, sorted.
    pub fn node_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.shared.nodes.keys().cloned().collect();
        v.sort();
        v
    }

    /// The pods bound to `node`, from the shared cache's `spec.nodeName` index.
    pub fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.shared.pods.store().by_index(NODE_NAME_INDEX, node)
    }

    /// Stops the fleet's loops; the Node objects stay (their Leases then expire).
    pub fn stop(self) {}

    /// "Kills" one node, as if its machine lost power: its Lease is no longer renewed and its
    /// pods are no longer looked after (deletions are not confirmed), so the node lifecycle
    /// controller sees it go silent. Returns false for a name not in the fleet.
    pub fn stop_node(&self, name: &str) -> bool {
        match self.shared.nodes.get(name) {
            Some(n) => {
                n.down.store(true, Ordering::SeqCst);
                info!(node = name, "simulated node stopped");
                true
            }
            None => false,
        }
    }

    /// Brings a stopped node back, as a restarted kubelet does: renews its Lease, posts its
    /// status (`Ready=True`) and reports every pod on it again (running and ready, or
    /// confirms its deletion).
    pub async fn start_node(&self, name: &str) -> runtime::Result<()> {
        let Some(node) = self.shared.nodes.get(name).cloned() else {
            return Err(runtime::Error::Request(format!(
                "{name} is not a node of this fleet"
            )));
        };
        node.down.store(false, Ordering::SeqCst);
        self.shared.renew(name).await?;
        self.shared.register(&node).await?;
        for pod in self.pods_on(name) {
            let key = runtime::informer::object_key(&pod.metadata);
            self.shared
                .report_again
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone());
            self.shared.queue.add(key);
        }
        info!(node = name, "simulated node started again");
        Ok(())
    }
}

impl Shared {
    async fn register_all(&self) -> runtime::Result<()> {
        let names: Vec<Arc<SimNode>> = self.nodes.values().cloned().collect();
        let results: Vec<runtime::Result<()>> = futures::stream::iter(names)
            .map(|n| async move { self.register(&n).await })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Creates (or takes over) the Node and writes its status.
    async fn register(&self, node: &SimNode) -> runtime::Result<()> {
        let c = &self.config;
        let (a, b) = node.cidr;
        let resources: BTreeMap<String, String> = [
            ("cpu", c.cpu.as_str()),
            ("memory", c.memory.as_str()),
            ("pods", c.pods.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let facts = NodeFacts {
            name: node.name.clone(),
            pod_cidr: Some(format!("10.{a}.{b}.0/24")),
            extra_labels: [(
                "node.kubernetes.io/instance-type".to_string(),
                "simulated".to_string(),
            )]
            .into(),
            capacity: resources.clone(),
            allocatable: resources,
            addresses: vec![("Hostname".into(), node.name.clone())],
            kubelet_port: None,
            container_runtime_version: "simulated://0.1.0".into(),
            os_image: "Skiff simulated node".into(),
            kernel_version: "simulated".into(),
            machine_id: node.name.clone(),
            boot_id: node.name.clone(),
            ready_message: "kubelet is posting ready status (simulated)".into(),
            not_ready: None,
        };
        register_node(&self.client, &facts).await
    }

    /// Renews every node's Lease once per interval, evenly spaced, never more than
    /// `concurrency` renewals in flight.
    async fn renew_leases(self: Arc<Self>) {
        let mut names: Vec<String> = self.nodes.keys().cloned().collect();
        names.sort();
        if names.is_empty() {
            // Nothing to renew; the loop below would spin without ever awaiting.
            return;
        }
        let n = names.len().max(1) as u32;
        let spacing = self.config.lease_interval / n;
        let limit = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency.max(1)));
        let mut tick = tokio::time::interval(spacing.max(Duration::from_micros(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Owned here so that stopping the fleet (aborting this task) cancels renewals in
        // flight instead of leaving them to fail against a server that is going away.
        let mut inflight = tokio::task::JoinSet::new();
        loop {
            for name in &names {
                tick.tick().await;
                if self
                    .nodes
                    .get(name)
                    .is_some_and(|n| n.down.load(Ordering::SeqCst))
                {
                    continue;
                }
                while inflight.try_join_next().is_some() {}
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let (s, name) = (self.clone(), name.clone());
                inflight.spawn(async move {
                    if let Err(e) = s.renew(&name).await {
                        warn!(node = %name, error = %e, "lease renewal failed");
                    }
                    drop(permit);
                });
            }
        }
    }

    async fn renew(&self, node: &str) -> runtime::Result<()> {
        renew_lease(&self.client, node, self.config.lease_duration_seconds).await
    }

    fn on_pod(&self, ev: &Event<Pod>) {
        let pod = ev.object();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let ours = node
            .and_then(|n| self.nodes.get(n))
            .is_some_and(|n| !n.down.load(Ordering::SeqCst));
        let key = ev.key();
        if ours || matches!(ev, Event::Deleted(_)) {
            self.queue.add(key);
        }
    }

    /// Brings one pod's status in line with what a real kubelet would report.
    async fn sync_pod(&self, key: &str) -> runtime::Result<()> {
        let Some(pod) = self.pods.store().get(key) else {
            // Gone: free its address.
            let node = self
                .placed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
            if let Some(n) = node.and_then(|n| self.nodes.get(&n).cloned()) {
                n.release(key);
            }
            return Ok(());
        };
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| self.nodes.get(n).cloned())
        else {
            return Ok(());
        };
        if node.down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let report_again = self
            .report_again
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if pod.metadata.deletion_timestamp.is_some() {
            // Nothing to stop: confirm the deletion at once, for this very pod (uid).
            return confirm_pod_deletion(&self.client, &pod).await;
        }
        self.placed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), node.name.clone());
        let status = pod.status.as_ref();
        let running = status.and_then(|s| s.phase.as_deref()) == Some("Running")
            && status.and_then(|s| s.pod_ip.as_deref()).is_some();
        let finished = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if finished || (running && !report_again) {
            return Ok(());
        }
        // A pod reported again keeps the address it has.
        let kept = status.and_then(|s| s.pod_ip.clone()).filter(|_| running);
        let Some(ip) = kept.or_else(|| node.ip_for(key)) else {
            warn!(node = %node.name, "no free pod address on the node");
            return Ok(());
        };
        let now = now_time();
        let containers: Vec<Value> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "image": c.image.clone().unwrap_or_default(),
                    "imageID": format!("simulated://{}", c.image.clone().unwrap_or_default()),
                    "containerID": format!("simulated://{}-{}", pod.metadata.uid.clone().unwrap_or_default(), c.name),
                    "ready": true,
                    "started": true,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                })
            })
            .collect();
        let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": Value::Null, "lastTransitionTime": now});
        let patch = Patch::Strategic(json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("ContainersReady"), cond("Ready"), cond("PodScheduled")],
            "containerStatuses": containers,
        }}));
        match api
            .patch_status(name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_follow_the_node_index() {
        assert_eq!(pod_cidr(0), (244, 0));
        assert_eq!(pod_cidr(7), (244, 7));
        assert_eq!(pod_cidr(256), (245, 0));
        // 244 + 4999 / 256 = 263 wraps to 7.
        assert_eq!(pod_cidr(4999), (7, 135));
    }

    #[test]
    fn pod_addresses_are_stable_and_reused_after_release() {
        let node = SimNode {
            name: "sim-3".into(),
            cidr: pod_cidr(3),
            ips: Mutex::new(Default::default()),
            down: AtomicBool::new(false),
        };
        assert_eq!(node.ip_for("default/a").as_deref(), Some("10.244.3.2"));
        assert_eq!(node.ip_for("default/b").as_deref(), Some("10.244.3.3"));
        assert_eq!(node.ip_for("default/a").as_deref(), Some("10.244.3.2"));
        node.release("default/a");
        assert_eq!(node.ip_for("default/c").as_deref(), Some("10.244.3.2"));
        for i in 0..251 {
            node.ip_for(&format!("default/fill-{i}"));
        }
        assert_eq!(
            node.ip_for("default/overflow"),
            None,
            "a /24 holds 253 pods"
        );
    }
}
