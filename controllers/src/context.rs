//! What every controller gets from the manager: the client, shared informers, Event
//! recorders and the timing settings.

use std::sync::Arc;
use std::time::Duration;

use runtime::Client;
use runtime::events::EventRecorder;
use runtime::informer::SharedInformerFactory;
use runtime::net::Ipv4Cidr;

/// Timings and tuning shared by the controllers; every field is a `skiff controllers` flag.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// Reconcile workers per controller.
    pub workers: usize,
    /// How long a node's Lease may go unrenewed before the node is marked `Ready=Unknown`
    /// (Kubernetes' `--node-monitor-grace-period`, default 50 s).
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked (Kubernetes' `--node-monitor-period`, 5 s).
    pub node_monitor_period: Duration,
    /// The cluster's pod range, cut into node CIDRs by node IPAM (`--cluster-cidr`).
    pub cluster_cidr: Ipv4Cidr,
    /// Prefix length of each node's CIDR (`--node-cidr-mask-size`, 24).
    pub node_cidr_mask_size: u8,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            workers: 4,
            node_monitor_grace_period: Duration::from_secs(50),
            node_monitor_period: Duration::from_secs(5),
            cluster_cidr: Ipv4Cidr::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16).expect("valid"),
            node_cidr_mask_size: 24,
        }
    }
}

/// Shared by all controllers of one leadership term.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// One informer per resource for the whole manager.
    pub informers: SharedInformerFactory,
    /// Timings.
    pub settings: ControllerSettings,
    /// This manager replica's identity (`reportingInstance` of Events).
    pub identity: String,
}

impl Context {
    /// An Event recorder reporting as `component` (e.g. `deployment-controller`), the name
    /// `kubectl describe` shows under "From".
    pub fn recorder(&self, component: &str) -> Arc<EventRecorder> {
        Arc::new(EventRecorder::new(
            self.client.clone(),
            component,
            &self.identity,
        ))
    }
}
