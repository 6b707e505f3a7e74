//! The Service proxy every agent runs: it watches Services and EndpointSlices (all namespaces)
//! and programs the node so that a ClusterIP:port or NodePort reaches a ready endpoint.
//!
//! - [`model`] (pure): Services + EndpointSlices → [`model::ServicePort`]s with their backends.
//! - [`nftables`]: the whole ruleset of table `ip skiff` rendered from the model (pure) and
//!   installed atomically with `nft -f -` — the dataplane of real (runc) nodes.
//! - [`userspace`]: a TCP proxy on the node's address for NodePorts — the dataplane of the
//!   unprivileged `process` runtime (no root, so no ClusterIPs).
//!
//! The loop here is the edge: informer events only ring a bell; after a short debounce the
//! model is rebuilt from the caches and handed to the dataplane, so a burst of changes costs
//! one sync and the node converges within debounce + one sync of the last change.

pub mod model;
pub mod nftables;
pub mod testbed;
pub mod userspace;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use runtime::Client;
use runtime::informer::{Event, InformerConfig, SharedInformerFactory};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::error::{Error, Result};
use crate::network::Ipv4Cidr;
use model::ServicePort;

/// How the agent implements Services on its node (`skiff agent --proxy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// nftables rules in table `ip skiff` (needs root; the runc runtime's default).
    Nftables,
    /// A userspace TCP proxy for NodePorts (the process runtime's default).
    Userspace,
    /// No proxy (simulated nodes; or another proxy runs on the node).
    None,
}

/// How the proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The dataplane.
    pub mode: ProxyMode,
    /// The cluster's pod CIDR (endpoints outside it are masqueraded to).
    pub cluster_cidr: Option<Ipv4Cidr>,
    /// The node's address, where the userspace proxy listens for NodePorts.
    pub node_ip: IpAddr,
    /// The network namespace to program (the agent's own when `None`); tests and the bench
    /// run a proxy for a namespace they made.
    pub netns: Option<PathBuf>,
    /// How long to wait after a change for more changes before syncing.
    pub debounce: Duration,
    /// Wait after a failed sync before retrying.
    pub retry: Duration,
}

impl ProxyConfig {
    /// Defaults: cluster CIDR 10.244.0.0/16, 50 ms debounce, 1 s retry.
    pub fn new(mode: ProxyMode, node_ip: IpAddr) -> Self {
        ProxyConfig {
            mode,
            cluster_cidr: "10.244.0.0/16".parse().ok(),
            node_ip,
            netns: None,
            debounce: Duration::from_millis(50),
            retry: Duration::from_secs(1),
        }
    }
}

/// What a dataplane does with the model: make the node match it, and undo everything.
pub trait Dataplane: Send {
    /// Programs the node for exactly `ports` (blocking: runs on the blocking pool).
    fn sync(&mut self, ports: &[ServicePort]) -> Result<()>;
    /// Removes what the dataplane installed.
    fn clean_up(&mut self) -> Result<()>;
}

/// The nftables dataplane: renders and applies the table, skipping unchanged rulesets.
pub struct NftablesDataplane {
    nft: nftables::Nft,
    config: nftables::RenderConfig,
    applied: Option<String>,
}

impl NftablesDataplane {
    /// A dataplane for the namespace `config.netns`; removes a table left by an earlier
    /// agent and makes sure bridged pod traffic passes the `ip` hooks.
    pub fn new(config: &ProxyConfig) -> Result<Self> {
        let nft = nftables::Nft::new(config.netns.as_deref());
        nft.delete_table()?;
        enable_bridge_netfilter(config.netns.as_deref());
        Ok(NftablesDataplane {
            nft,
            config: nftables::RenderConfig {
                cluster_cidr: config.cluster_cidr,
            },
            applied: None,
        })
    }
}

/// Replies from a pod to a pod on the same bridge are bridged, not routed; they pass the
/// `ip` family hooks (where the DNAT of a Service connection is undone) only with
/// `net.bridge.bridge-nf-call-iptables=1`. It is the default where `br_netfilter` is loaded;
/// set it anyway, warning when that is not possible.
fn enable_bridge_netfilter(netns: Option<&std::path::Path>) {
    let mut command = std::process::Command::new("sysctl");
    command.args(["-qw", "net.bridge.bridge-nf-call-iptables=1"]);
    let result = crate::network::netns::run_in(&mut command, netns)
        .map_err(|e| e.to_string())
        .and_then(|()| command.output().map_err(|e| e.to_string()));
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => warn!(
            stderr = %String::from_utf8_lossy(&out.stderr).trim(),
            "could not enable bridge-nf-call-iptables; Services between pods of one node may fail"
        ),
        Err(e) => warn!(error = %e, "could not run sysctl"),
    }
}

impl Dataplane for NftablesDataplane {
    fn sync(&mut self, ports: &[ServicePort]) -> Result<()> {
        let started = Instant::now();
        let script = nftables::render(ports, &self.config);
        if self.applied.as_ref() == Some(&script) {
            return Ok(());
        }
        let rendered = started.elapsed();
        self.nft.apply(&script)?;
        debug!(bytes = script.len(), ?rendered, nft = ?(started.elapsed() - rendered), "ruleset applied");
        self.applied = Some(script);
        Ok(())
    }

    fn clean_up(&mut self) -> Result<()> {
        self.applied = None;
        self.nft.delete_table()
    }
}

/// One finished sync, for observers (the bench, tests).
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// Syncs so far.
    pub count: u64,
    /// When this sync finished.
    pub at: Instant,
    /// How long building and applying took.
    pub took: Duration,
    /// Service ports programmed.
    pub ports: usize,
}

type SharedDataplane = Arc<Mutex<Box<dyn Dataplane>>>;

/// A running proxy. [`Proxy::stop`] removes what it installed; dropping it only stops it.
pub struct Proxy {
    task: JoinHandle<()>,
    dataplane: SharedDataplane,
    synced: watch::Receiver<Option<SyncReport>>,
    _informers: SharedInformerFactory,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts the proxy with the dataplane `config.mode` names; `None` for [`ProxyMode::None`].
    pub async fn start(client: Client, config: ProxyConfig) -> Result<Option<Proxy>> {
        let dataplane: Box<dyn Dataplane> = match config.mode {
            ProxyMode::None => return Ok(None),
            ProxyMode::Nftables => {
                let c = config.clone();
                Box::new(
                    tokio::task::spawn_blocking(move || NftablesDataplane::new(&c))
                        .await
                        .map_err(|e| Error::Proxy(e.to_string()))??,
                )
            }
            ProxyMode::Userspace => Box::new(userspace::Userspace::new(config.node_ip)),
        };
        Self::start_with(client, config, dataplane).await.map(Some)
    }

    /// Starts the proxy loop over `dataplane`; returns after the first sync was attempted.
    pub async fn start_with(
        client: Client,
        config: ProxyConfig,
        dataplane: Box<dyn Dataplane>,
    ) -> Result<Proxy> {
        let factory = SharedInformerFactory::new(client, InformerConfig::default());
        let services = factory.informer::<Service>();
        let slices = factory.informer::<EndpointSlice>();
        factory
            .wait_for_sync(Duration::from_secs(60))
            .await
            .map_err(|e| Error::Proxy(format!("waiting for Services and EndpointSlices: {e}")))?;
        let changed = Arc::new(Notify::new());
        let bell = changed.clone();
        services.add_handler(move |ev| {
            if !matches!(ev, Event::Resync(_)) {
                bell.notify_one();
            }
        });
        let bell = changed.clone();
        slices.add_handler(move |ev| {
            if !matches!(ev, Event::Resync(_)) {
                bell.notify_one();
            }
        });
        let dataplane: SharedDataplane = Arc::new(Mutex::new(dataplane));
        let (report_tx, synced) = watch::channel(None);
        let mut first = synced.clone();
        let dp = dataplane.clone();
        let task = tokio::spawn(
            async move {
                let mut count = 0u64;
                loop {
                    changed.notified().await;
                    tokio::time::sleep(config.debounce).await;
                    let started = Instant::now();
                    let ports = model::service_ports(
                        services.store().list().iter().map(|s| s.as_ref()),
                        slices.store().list().iter().map(|s| s.as_ref()),
                    );
                    let n = ports.len();
                    let dp = dp.clone();
                    let result = tokio::task::spawn_blocking(move || {
                        dp.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .sync(&ports)
                    })
                    .await
                    .map_err(|e| Error::Proxy(e.to_string()))
                    .and_then(|r| r);
                    match result {
                        Ok(()) => {
                            count += 1;
                            let took = started.elapsed();
                            debug!(ports = n, ?took, "synced");
                            report_tx.send_replace(Some(SyncReport {
                                count,
                                at: Instant::now(),
                                took,
                                ports: n,
                            }));
                        }
                        Err(e) => {
                            warn!(error = %e, "sync failed; retrying");
                            tokio::time::sleep(config.retry).await;
                            changed.notify_one();
                        }
                    }
                }
            }
            .instrument(info_span!("proxy", mode = ?config.mode)),
        );
        // The handlers' replay rang the bell: wait for that first sync (or its failure).
        let _ =
            tokio::time::timeout(Duration::from_secs(30), first.wait_for(|r| r.is_some())).await;
        info!(mode = ?config.mode, "service proxy running");
        Ok(Proxy {
            task,
            dataplane,
            synced,
            _informers: factory,
        })
    }

    /// The latest sync, updated after each one.
    pub fn synced(&self) -> watch::Receiver<Option<SyncReport>> {
        self.synced.clone()
    }

    /// Stops the loop and removes what the dataplane installed (the nftables table).
    pub async fn stop(self) -> Result<()> {
        self.task.abort();
        // A sync in flight holds the lock until it is done; cleaning up waits for it.
        let dp = self.dataplane.clone();
        tokio::task::spawn_blocking(move || {
            dp.lock().unwrap_or_else(PoisonError::into_inner).clean_up()
        })
        .await
        .map_err(|e| Error::Proxy(e.to_string()))?
    }
}
