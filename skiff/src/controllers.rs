//! `skiff controllers` (standalone) and the controller manager inside `skiff server`.

use std::time::Duration;

use controllers::{ControllerSettings, ManagerConfig};
use runtime::Client;
use scheduler::run::default_identity;

/// Controller timings, shared by `skiff controllers` and `skiff server`.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerFlags {
    /// Controllers to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    controllers: Vec<String>,
    /// Seconds a node's Lease may go unrenewed before the node turns Ready=Unknown.
    #[arg(long, default_value_t = 50)]
    node_monitor_grace_period: u64,
    /// Seconds between node health checks.
    #[arg(long, default_value_t = 5)]
    node_monitor_period: u64,
    /// Reconcile workers per controller.
    #[arg(long, default_value_t = 4)]
    controller_workers: usize,
    /// The cluster's pod range; node IPAM gives each Node a piece of it (`spec.podCIDR`).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: runtime::net::Ipv4Cidr,
    /// Prefix length of each Node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
}

impl ControllerFlags {
    /// The manager's configuration; refuses a node CIDR size that does not fit the cluster
    /// CIDR, so a bad flag stops the process instead of silently disabling node IPAM.
    fn config(&self, identity: &str) -> Result<ManagerConfig, runtime::Error> {
        controllers::nodeipam::CidrSet::new(self.cluster_cidr, self.node_cidr_mask_size)
            .map_err(runtime::Error::Request)?;
        Ok(ManagerConfig {
            enabled: self.controllers.clone(),
            settings: ControllerSettings {
                workers: self.controller_workers.max(1),
                node_monitor_grace_period: Duration::from_secs(self.node_monitor_grace_period),
                node_monitor_period: Duration::from_secs(self.node_monitor_period.max(1)),
                cluster_cidr: self.cluster_cidr,
                node_cidr_mask_size: self.node_cidr_mask_size,
            },
            ..ManagerConfig::new(identity)
        })
    }
}

/// Flags of `skiff controllers`.
#[derive(clap::Args, Debug)]
pub struct ControllersArgs {
    #[command(flatten)]
    client: crate::kubeconfig::ClientFlags,
    /// Identity in the leader Lease (default: host name plus a random suffix).
    #[arg(long)]
    identity: Option<String>,
    #[command(flatten)]
    flags: ControllerFlags,
}

/// Runs the controller manager until SIGTERM/SIGINT.
pub async fn run(args: ControllersArgs) -> Result<(), runtime::Error> {
    let client = args.client.client().await?;
    let identity = args.identity.unwrap_or_else(default_identity);
    controllers::run(
        client,
        args.flags.config(&identity)?,
        crate::server::shutdown_signal(),
    )
    .await
}

/// Starts the in-process controller manager of `skiff server`, a client of the server's own
/// loopback URL. It stops, releasing its Lease, when `shutdown` completes.
pub fn spawn_in_server(
    config: runtime::config::Config,
    flags: &ControllerFlags,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, runtime::Error> {
    let client = Client::new(config)?;
    let config = flags.config(&default_identity())?;
    Ok(tokio::spawn(async move {
        if let Err(e) = controllers::run(client, config, shutdown).await {
            tracing::error!(error = %e, "controller manager stopped");
        }
    }))
}
