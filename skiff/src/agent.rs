//! `skiff agent`: the node agent (`--runtime runc|process`), or a fleet of hollow nodes
//! (`--runtime simulated`); `skiff agent image` manages the node's image store and
//! `skiff agent reset` removes everything an agent left on the node.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use kubelet::agent::{Agent, AgentConfig};
use kubelet::network::node_routes::{NodeRoutes, NodeRoutesConfig};
use kubelet::proxy::{Proxy, ProxyConfig, ProxyMode};
use kubelet::simulated::{Fleet, FleetConfig};

use crate::agent_image::DEFAULT_DATA_DIR;

/// Container runtimes the agent can drive.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Real containers: OCI images, runc, overlayfs, a network namespace per pod (root).
    Runc,
    /// Plain host processes without isolation, for unprivileged development.
    Process,
    /// Hollow nodes: register, heartbeat, report pods Running; run nothing.
    Simulated,
}

/// How the agent implements Services on its node.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFlag {
    /// nftables rules in table `ip skiff` (root).
    Nftables,
    /// A userspace TCP relay for NodePorts (no root; no ClusterIPs).
    Userspace,
    /// No Service proxy.
    None,
}

/// Flags of `skiff agent`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    #[command(flatten)]
    client: crate::kubeconfig::ClientFlags,
    /// Container runtime.
    #[arg(long, value_enum, required = true)]
    runtime: Option<RuntimeKind>,
    /// The Node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Where the agent keeps images, container state, pod volumes and logs.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The node's InternalIP, where the API server reaches the kubelet API.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: IpAddr,
    /// Port of the kubelet API (logs, exec, port-forward).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// The node's pod CIDR (a piece of --cluster-cidr). Default: the Node's spec.podCIDR,
    /// assigned by the controllers' node IPAM after the Node registers (the agent waits).
    #[arg(long)]
    pod_cidr: Option<String>,
    #[command(flatten)]
    network: NetworkFlags,
    /// Capacity overrides as NAME=QUANTITY (e.g. cpu=2,memory=4Gi,pods=50).
    #[arg(long, value_delimiter = ',')]
    capacity: Vec<String>,
    /// First crash-loop back-off delay (Kubernetes: 10s), doubled per restart.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    crash_loop_backoff: Duration,
    /// Longest crash-loop back-off delay (Kubernetes: 5m).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    crash_loop_backoff_max: Duration,
    /// Cluster DNS server addresses given to ClusterFirst pods (default: the kube-dns
    /// Service `skiff server` keeps, the 10th address of the default service CIDR).
    #[arg(long, value_delimiter = ',', default_value = "10.96.0.10")]
    cluster_dns: Vec<IpAddr>,
    /// Cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Service proxy (default: nftables for runc, userspace for process, none for simulated).
    #[arg(long, value_enum)]
    proxy: Option<ProxyFlag>,
    /// How long the node's Lease is valid (Kubernetes: 40 s); the agent renews it every quarter
    /// of that, so the node lifecycle controller's grace period must exceed a few renewals.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(i32).range(4..))]
    node_lease_duration_seconds: i32,
    /// How often the agent posts the Node's status (conditions, capacity) even when nothing
    /// changed; this is also how soon a node marked Unknown turns Ready again after its
    /// network comes back.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    node_status_update_frequency: Duration,
    /// Number of simulated nodes (`--runtime simulated`).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Simulated node names are this prefix plus an index.
    #[arg(long, default_value = "sim-")]
    node_name_prefix: String,
    /// Index of the first simulated node.
    #[arg(long, default_value_t = 0)]
    first_index: usize,
}

/// Subcommands of `skiff agent`.
#[derive(clap::Subcommand, Debug)]
pub enum AgentCommand {
    /// Manages the node's image store (load OCI archives, list images).
    Image(crate::agent_image::ImageArgs),
    /// Stops and removes every container and pod sandbox the agent left on this node.
    Reset(ResetArgs),
}

/// Flags of `skiff agent reset`.
#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// The runtime whose containers to remove.
    #[arg(long, value_enum)]
    runtime: RuntimeKind,
    /// The agent's data dir.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The node's pod CIDR (as given to the agent; any piece of the cluster CIDR does: the
    /// pods' attachments are undone with the configuration they were made with).
    #[arg(long)]
    pod_cidr: Option<String>,
    #[command(flatten)]
    network: NetworkFlags,
}

/// The node network's flags shared by `skiff agent` and `skiff agent reset`.
#[derive(clap::Args, Debug, Clone)]
pub struct NetworkFlags {
    /// Name of the node's pod bridge (one per node; agents sharing a network namespace need
    /// different ones).
    #[arg(long, default_value = "skiff0")]
    pub cni_bridge: String,
    /// The cluster's pod range: unreachable on the node (DESIGN.md network rules), and the only range routed to other
    /// nodes.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: runtime::net::Ipv4Cidr,
    /// The Service range: unreachable on the node.
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: runtime::net::Ipv4Cidr,
}

/// A Go-style duration flag: `500ms`, `10s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("duration {s:?} must not be negative"))
}

/// Runs the agent until SIGTERM/SIGINT, or the given subcommand.
pub async fn run(args: AgentArgs) -> Result<(), runtime::Error> {
    match args.command {
        Some(AgentCommand::Image(image)) => {
            crate::agent_image::run(image).await;
            return Ok(());
        }
        Some(AgentCommand::Reset(reset)) => return reset_node(reset).await,
        None => {}
    }
    let client_config = args.client.config().await?;
    // The CA this agent trusts the API server by is the cluster CA: the kubelet API admits
    // only clients it signed, i.e. the API server.
    let client_ca = client_config
        .tls
        .ca
        .as_ref()
        .filter(|_| client_config.server.starts_with("https://"))
        .map(|pem| pem.bytes.clone());
    let client = runtime::Client::new(client_config)?;
    match args.runtime {
        None => Err(runtime::Error::Request("--runtime is required".into())),
        Some(RuntimeKind::Simulated) => {
            let fleet = Fleet::start(
                client,
                FleetConfig {
                    nodes: args.nodes,
                    name_prefix: args.node_name_prefix,
                    first_index: args.first_index,
                    ..FleetConfig::default()
                },
            )
            .await?;
            crate::server::shutdown_signal().await;
            fleet.stop();
            Ok(())
        }
        Some(kind) => {
            let mut config = agent_config(&args)?;
            config.client_ca = client_ca;
            if kind == RuntimeKind::Runc && config.pod_cidr.is_none() {
                let cidr = tokio::select! {
                    cidr = kubelet::agent::await_pod_cidr(&client, &config) => cidr?,
                    _ = crate::server::shutdown_signal() => return Ok(()),
                };
                config.pod_cidr = Some(cidr);
            }
            let (driver, puller) =
                crate::agent_runtime::build(kind, &args.data_dir, &config, &args.network)?;
            let routes = match kind {
                RuntimeKind::Runc => Some(node_routes(&client, &config, &args.network)?),
                _ => None,
            };
            let node_ip = config.node_ip;
            let agent = Agent::start(client.clone(), config, driver, puller).await?;
            let mut proxy_config = ProxyConfig::new(proxy_mode(kind, args.proxy), node_ip);
            proxy_config.cluster_cidr = Some(args.network.cluster_cidr);
            let proxy = Proxy::start(client, proxy_config)
                .await
                .map_err(|e| runtime::Error::Request(e.to_string()))?;
            crate::server::shutdown_signal().await;
            // Containers keep running; the next agent adopts them (and the routes). Service
            // rules do not outlive the agent (its table is removed), as kube-proxy's do not
            // outlive it.
            if let Some(proxy) = proxy
                && let Err(e) = proxy.stop().await
            {
                tracing::warn!(error = %e, "removing the Service proxy's rules failed");
            }
            drop(agent);
            drop(routes);
            Ok(())
        }
    }
}

/// The proxy an agent runs: the flag, or the runtime's default.
fn proxy_mode(runtime: RuntimeKind, flag: Option<ProxyFlag>) -> ProxyMode {
    match (flag, runtime) {
        (Some(ProxyFlag::Nftables), _) | (None, RuntimeKind::Runc) => ProxyMode::Nftables,
        (Some(ProxyFlag::Userspace), _) | (None, RuntimeKind::Process) => ProxyMode::Userspace,
        (Some(ProxyFlag::None), _) | (None, RuntimeKind::Simulated) => ProxyMode::None,
    }
}

fn agent_config(args: &AgentArgs) -> Result<AgentConfig, runtime::Error> {
    let node_name = match &args.node_name {
        Some(n) => n.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .map_err(|e| {
                runtime::Error::Request(format!("--node-name not given and no host name: {e}"))
            })?,
    };
    let mut config = AgentConfig::new(node_name, &args.data_dir);
    config.node_ip = args.node_ip;
    config.kubelet_port = Some(args.kubelet_port);
    config.pod_cidr = args.pod_cidr.clone();
    config.capacity_overrides = parse_capacity(&args.capacity)?;
    config.backoff.initial = args.crash_loop_backoff;
    config.backoff.max = args.crash_loop_backoff_max.max(args.crash_loop_backoff);
    config.cluster_dns = args.cluster_dns.clone();
    config.cluster_domain = args.cluster_domain.clone();
    config.lease_duration_seconds = args.node_lease_duration_seconds;
    config.lease_interval = lease_renew_interval(args.node_lease_duration_seconds);
    config.status_interval = args
        .node_status_update_frequency
        .max(Duration::from_secs(1));
    Ok(config)
}

/// The kubelet renews its Lease every quarter of the Lease's duration.
fn lease_renew_interval(duration_seconds: i32) -> Duration {
    Duration::from_millis(u64::try_from(duration_seconds).unwrap_or(40) * 250)
}

/// Starts keeping the host-gw routes to the other nodes' pod CIDRs (runc nodes only: the
/// process runtime has no pod network).
fn node_routes(
    client: &runtime::Client,
    config: &AgentConfig,
    network: &NetworkFlags,
) -> Result<NodeRoutes, runtime::Error> {
    let pod_cidr = config
        .pod_cidr
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| runtime::Error::Request(format!("--pod-cidr: {e}")))?;
    Ok(NodeRoutes::start(
        client.clone(),
        NodeRoutesConfig {
            node_name: config.node_name.clone(),
            pod_cidr,
            cluster_cidr: network.cluster_cidr,
            netns: None,
        },
    ))
}

fn parse_capacity(items: &[String]) -> Result<BTreeMap<String, String>, runtime::Error> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() && runtime::objects::Quantity::parse(v).is_ok() => {
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(runtime::Error::Request(format!(
                "--capacity: {item:?} is not NAME=QUANTITY"
            ))),
        })
        .collect()
}

async fn reset_node(args: ResetArgs) -> Result<(), runtime::Error> {
    let mut config = AgentConfig::new("reset", &args.data_dir);
    config.pod_cidr = args.pod_cidr.clone();
    let (driver, _) =
        crate::agent_runtime::build(args.runtime, &args.data_dir, &config, &args.network)?;
    let removed =
        tokio::task::spawn_blocking(move || kubelet::agent::remove_everything(driver.as_ref()))
            .await
            .map_err(|e| runtime::Error::Request(format!("reset failed: {e}")))?
            .map_err(|e| runtime::Error::Request(e.to_string()))?;
    println!(
        "removed {} containers and {} pod sandboxes",
        removed.0, removed.1
    );
    // The bridge plugin creates the node's bridge on the first pod and never removes it.
    if args.runtime == RuntimeKind::Runc {
        kubelet::proxy::nftables::Nft::default()
            .delete_table()
            .map_err(|e| runtime::Error::Request(e.to_string()))?;
    }
    if args.runtime == RuntimeKind::Runc
        && kubelet::network::routes::remove_bridge(&args.network.cni_bridge, None)
            .map_err(|e| runtime::Error::Request(e.to_string()))?
    {
        println!("removed bridge {}", args.network.cni_bridge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kubernetes_flags() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn proxy_defaults_per_runtime() {
        use RuntimeKind::*;
        let cases = [
            (Runc, None, ProxyMode::Nftables),
            (Process, None, ProxyMode::Userspace),
            (Simulated, None, ProxyMode::None),
            (Runc, Some(ProxyFlag::None), ProxyMode::None),
            (Process, Some(ProxyFlag::Nftables), ProxyMode::Nftables),
            (Runc, Some(ProxyFlag::Userspace), ProxyMode::Userspace),
        ];
        for (runtime, flag, want) in cases {
            assert_eq!(proxy_mode(runtime, flag), want, "{runtime:?} {flag:?}");
        }
    }

    #[test]
    fn capacity_overrides_need_quantities() {
        let ok = parse_capacity(&["cpu=2".into(), "memory=4Gi".into()]).expect("valid");
        assert_eq!(ok["memory"], "4Gi");
        assert!(parse_capacity(&["cpu".into()]).is_err());
        assert!(parse_capacity(&["cpu=lots".into()]).is_err());
    }
}
