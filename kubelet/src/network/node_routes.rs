//! Host-gw routes between nodes: in the node's network namespace, one route per other Node,
//! `<its spec.podCIDR> via <its InternalIP>`, so a pod's packet for a pod on another node
//! goes straight to that node, which delivers it on its bridge (no encapsulation; the nodes
//! share a link, as in the lab).
//!
//! Every route the agent makes carries the protocol marker [`ROUTE_PROTO`] (`proto 83`,
//! 0x53 = 'S'), so the agent lists exactly its own routes with `ip route show proto 83` and
//! removes stale ones (a deleted Node, a Node that moved) even after a restart; routes
//! anybody else made are never touched.
//!
//! Pure: [`desired_routes`] (from the Nodes), [`parse_routes`] (from `ip -j route`), [`diff`]
//! (what to change). Side effects: [`apply`] and [`NodeRoutes`], which re-syncs on every Node
//! event from an informer, and once a minute in case someone deleted a route.
//!
//! Safety rules in the planning: only CIDRs inside the cluster CIDR are routed (a Node object
//! claiming `0.0.0.0/0` must not become a default route), never the node's own CIDR or one
//! overlapping it, and a gateway must be an IPv4 InternalIP.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use runtime::informer::{Informer, InformerConfig};
use runtime::{Api, Client, ListParams};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use super::config::Ipv4Cidr;
use super::routes::run_ip;
use crate::error::{Error, Result};

/// The routing protocol number marking the agent's node routes (0x53, 'S' for Skiff).
pub const ROUTE_PROTO: &str = "83";

/// What routing needs of one Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRouteInfo {
    /// The Node's name.
    pub name: String,
    /// `spec.podCIDRs[0]` (or `spec.podCIDR`), as written.
    pub pod_cidr: Option<String>,
    /// The `InternalIP` of `status.addresses`, as written.
    pub internal_ip: Option<String>,
}

impl NodeRouteInfo {
    /// Reads the fields off a Node.
    pub fn from_node(node: &Node) -> Self {
        let spec = node.spec.as_ref();
        let pod_cidr = spec
            .and_then(|s| s.pod_cidrs.as_ref())
            .and_then(|l| l.first().cloned())
            .or_else(|| spec.and_then(|s| s.pod_cidr.clone()));
        let internal_ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone());
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            pod_cidr,
            internal_ip,
        }
    }
}

/// The routes this node should have: destination → gateway.
pub type Routes = BTreeMap<Ipv4Cidr, Ipv4Addr>;

/// The routes to the other nodes' pod CIDRs (see the module's safety rules). Two Nodes
/// claiming one CIDR (a misconfiguration): the first by name wins, deterministically.
pub fn desired_routes(
    nodes: &[NodeRouteInfo],
    own_name: &str,
    own_cidr: Option<&Ipv4Cidr>,
    cluster_cidr: &Ipv4Cidr,
) -> Routes {
    let mut sorted: Vec<&NodeRouteInfo> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut routes = Routes::new();
    for node in sorted {
        if node.name == own_name {
            continue;
        }
        let Some(cidr) = node
            .pod_cidr
            .as_deref()
            .and_then(|c| c.parse::<Ipv4Cidr>().ok())
        else {
            continue;
        };
        let Some(gateway) = node
            .internal_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let overlaps_own = own_cidr.is_some_and(|own| own.covers(&cidr) || cidr.covers(own));
        if !cluster_cidr.covers(&cidr) || overlaps_own || gateway.is_loopback() {
            continue;
        }
        routes.entry(cidr).or_insert(gateway);
    }
    routes
}

#[derive(Deserialize)]
struct IpRoute {
    dst: String,
    gateway: Option<String>,
}

/// The agent's current routes from `ip -j -4 route show proto 83` output; entries without a
/// gateway or with an unparsable destination are skipped (then [`diff`] deletes them, as
/// they are ours but wrong).
pub fn parse_routes(json: &str) -> std::result::Result<(Routes, Vec<String>), String> {
    // `ip -j` prints nothing at all (not `[]`) for an empty table on some versions.
    let json = if json.trim().is_empty() { "[]" } else { json };
    let entries: Vec<IpRoute> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut routes = Routes::new();
    let mut odd = Vec::new();
    for entry in entries {
        let parsed = entry.dst.parse::<Ipv4Cidr>().ok().zip(
            entry
                .gateway
                .as_deref()
                .and_then(|g| g.parse::<Ipv4Addr>().ok()),
        );
        match parsed {
            Some((dst, gateway)) => {
                routes.insert(dst, gateway);
            }
            None => odd.push(entry.dst),
        }
    }
    Ok((routes, odd))
}

/// One change to the routing table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteChange {
    /// Add, or change the gateway of, the route to `dst`.
    Replace {
        /// Destination (another node's pod CIDR).
        dst: Ipv4Cidr,
        /// That node's address.
        via: Ipv4Addr,
    },
    /// Remove our route to `dst` (written as `ip` shows it).
    Delete {
        /// Destination.
        dst: String,
    },
}

impl RouteChange {
    /// The `ip` arguments carrying out the change, marked with [`ROUTE_PROTO`].
    pub fn ip_args(&self) -> Vec<String> {
        let args: Vec<&str> = match self {
            RouteChange::Replace { .. } => vec!["-4", "route", "replace"],
            RouteChange::Delete { .. } => vec!["-4", "route", "del"],
        };
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        match self {
            RouteChange::Replace { dst, via } => {
                args.extend([dst.to_string(), "via".into(), via.to_string()]);
            }
            RouteChange::Delete { dst } => args.push(dst.clone()),
        }
        args.extend(["proto".into(), ROUTE_PROTO.into()]);
        args
    }
}

/// What turns `current` (with `odd`, our entries that did not parse) into `desired`:
/// deletions first (a moved CIDR frees its old destination), then replacements.
pub fn diff(desired: &Routes, current: &Routes, odd: &[String]) -> Vec<RouteChange> {
    let mut changes: Vec<RouteChange> = odd
        .iter()
        .map(|dst| RouteChange::Delete { dst: dst.clone() })
        .collect();
    for dst in current.keys().filter(|d| !desired.contains_key(d)) {
        changes.push(RouteChange::Delete {
            dst: dst.to_string(),
        });
    }
    for (dst, via) in desired {
        if current.get(dst) != Some(via) {
            changes.push(RouteChange::Replace {
                dst: *dst,
                via: *via,
            });
        }
    }
    changes
}

/// Reads the agent's routes in `netns` (`None`: its own namespace).
pub fn current_routes(netns: Option<&std::path::Path>) -> Result<(Routes, Vec<String>)> {
    let args: Vec<String> = ["-j", "-4", "route", "show", "proto", ROUTE_PROTO]
        .map(String::from)
        .to_vec();
    let out = run_ip(&args, netns)?;
    parse_routes(&out).map_err(|e| Error::Network(format!("parsing ip route output: {e}")))
}

/// Applies `changes`; one failing (an unreachable gateway, say) does not stop the others.
/// Returns how many failed.
pub fn apply(changes: &[RouteChange], netns: Option<&std::path::Path>) -> usize {
    let mut failed = 0;
    for change in changes {
        match run_ip(&change.ip_args(), netns) {
            Ok(_) => info!(change = ?change, "node route updated"),
            Err(e) => {
                warn!(error = %e, "node route change failed");
                failed += 1;
            }
        }
    }
    failed
}

/// What [`NodeRoutes`] routes from.
#[derive(Clone, Debug)]
pub struct NodeRoutesConfig {
    /// This node's name (its own CIDR is on its bridge, not routed).
    pub node_name: String,
    /// This node's pod CIDR.
    pub pod_cidr: Option<Ipv4Cidr>,
    /// Only CIDRs inside it are routed.
    pub cluster_cidr: Ipv4Cidr,
    /// Where the routes go (`None`: the agent's own network namespace).
    pub netns: Option<PathBuf>,
}

/// Keeps the node's host-gw routes in step with the Nodes; stops when dropped.
pub struct NodeRoutes {
    task: JoinHandle<()>,
}

impl Drop for NodeRoutes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How often routes are re-checked without a Node event (someone may delete one by hand).
const RESYNC: Duration = Duration::from_secs(60);

impl NodeRoutes {
    /// Watches all Nodes and syncs the routes on every change.
    pub fn start(client: Client, config: NodeRoutesConfig) -> Self {
        let span = info_span!("node_routes", node = %config.node_name);
        let task = tokio::spawn(run(client, config).instrument(span));
        Self { task }
    }
}

async fn run(client: Client, config: NodeRoutesConfig) {
    let nodes: Informer<Node> = Informer::new(
        Api::all(client),
        ListParams::default(),
        InformerConfig::default(),
    );
    let changed = Arc::new(Notify::new());
    {
        let changed = changed.clone();
        nodes.add_handler(move |_| changed.notify_one());
    }
    if let Err(e) = nodes.wait_for_sync(Duration::from_secs(60)).await {
        warn!(error = %e, "node cache did not sync; routing from what arrives");
    }
    let config = Arc::new(config);
    loop {
        let infos: Vec<NodeRouteInfo> = nodes
            .store()
            .list()
            .iter()
            .map(|n| NodeRouteInfo::from_node(n))
            .collect();
        let config = config.clone();
        let synced = tokio::task::spawn_blocking(move || sync(&infos, &config)).await;
        match synced {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => debug!(changes = n, "node routes synced"),
            Ok(Err(e)) => warn!(error = %e, "node routes sync failed"),
            Err(e) => warn!(error = %e, "node routes task failed"),
        }
        let _ = tokio::time::timeout(RESYNC, changed.notified()).await;
    }
}

/// One sync: read, diff, apply. Returns the number of changes attempted.
fn sync(nodes: &[NodeRouteInfo], config: &NodeRoutesConfig) -> Result<usize> {
    let desired = desired_routes(
        nodes,
        &config.node_name,
        config.pod_cidr.as_ref(),
        &config.cluster_cidr,
    );
    let (current, odd) = current_routes(config.netns.as_deref())?;
    let changes = diff(&desired, &current, &odd);
    apply(&changes, config.netns.as_deref());
    Ok(changes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> NodeRouteInfo {
        NodeRouteInfo {
            name: name.into(),
            pod_cidr: cidr.map(String::from),
            internal_ip: ip.map(String::from),
        }
    }

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    fn show(routes: &Routes) -> Vec<String> {
        routes.iter().map(|(d, g)| format!("{d} via {g}")).collect()
    }

    #[test]
    fn desired_routes_from_nodes() {
        let cluster = cidr("10.244.0.0/16");
        let own = cidr("10.244.0.0/24");
        let cases: [(&str, Vec<NodeRouteInfo>, Vec<&str>); 9] = [
            (
                "alone",
                vec![node("a", Some("10.244.0.0/24"), Some("10.250.1.2"))],
                vec![],
            ),
            (
                "two others",
                vec![
                    node("a", Some("10.244.0.0/24"), Some("10.250.1.2")),
                    node("b", Some("10.244.1.0/24"), Some("10.250.1.3")),
                    node("c", Some("10.244.2.0/24"), Some("10.250.1.4")),
                ],
                vec![
                    "10.244.1.0/24 via 10.250.1.3",
                    "10.244.2.0/24 via 10.250.1.4",
                ],
            ),
            (
                "no CIDR yet",
                vec![node("b", None, Some("10.250.1.3"))],
                vec![],
            ),
            (
                "no address yet",
                vec![node("b", Some("10.244.1.0/24"), None)],
                vec![],
            ),
            (
                "outside the cluster CIDR",
                vec![node("b", Some("0.0.0.0/0"), Some("10.250.1.3"))],
                vec![],
            ),
            (
                "overlapping own",
                vec![node("b", Some("10.244.0.0/25"), Some("10.250.1.3"))],
                vec![],
            ),
            (
                "loopback gateway",
                vec![node("b", Some("10.244.1.0/24"), Some("127.0.0.1"))],
                vec![],
            ),
            (
                "IPv6",
                vec![node("b", Some("fd00::/64"), Some("fd00::1"))],
                vec![],
            ),
            (
                "same CIDR twice: first by name",
                vec![
                    node("z", Some("10.244.1.0/24"), Some("10.250.1.9")),
                    node("b", Some("10.244.1.0/24"), Some("10.250.1.3")),
                ],
                vec!["10.244.1.0/24 via 10.250.1.3"],
            ),
        ];
        for (name, nodes, want) in cases {
            let got = desired_routes(&nodes, "a", Some(&own), &cluster);
            assert_eq!(show(&got), want, "{name}");
        }
    }

    #[test]
    fn parses_ip_json() {
        let json = r#"[{"dst":"10.244.1.0/24","gateway":"10.250.1.3","dev":"eth0","flags":[]},
                       {"dst":"10.244.9.0/24","dev":"eth0","flags":[]}]"#;
        let (routes, odd) = parse_routes(json).unwrap();
        assert_eq!(show(&routes), ["10.244.1.0/24 via 10.250.1.3"]);
        assert_eq!(odd, ["10.244.9.0/24"]);
        assert_eq!(parse_routes("").unwrap().0.len(), 0);
        assert_eq!(parse_routes("[]\n").unwrap().0.len(), 0);
        assert!(parse_routes("not json").is_err());
    }

    #[test]
    fn diffs() {
        let r = |pairs: &[(&str, &str)]| -> Routes {
            pairs
                .iter()
                .map(|(d, g)| (cidr(d), g.parse().unwrap()))
                .collect()
        };
        let lines = |changes: Vec<RouteChange>| -> Vec<String> {
            changes.iter().map(|c| c.ip_args().join(" ")).collect()
        };
        // (case, desired, current, odd entries of ours, expected commands)
        type Case = (&'static str, Routes, Routes, Vec<String>, Vec<&'static str>);
        let cases: [Case; 5] = [
            (
                "in sync",
                r(&[("10.244.1.0/24", "10.250.1.3")]),
                r(&[("10.244.1.0/24", "10.250.1.3")]),
                vec![],
                vec![],
            ),
            (
                "new node",
                r(&[("10.244.1.0/24", "10.250.1.3")]),
                r(&[]),
                vec![],
                vec!["-4 route replace 10.244.1.0/24 via 10.250.1.3 proto 83"],
            ),
            (
                "node gone",
                r(&[]),
                r(&[("10.244.1.0/24", "10.250.1.3")]),
                vec![],
                vec!["-4 route del 10.244.1.0/24 proto 83"],
            ),
            (
                "node moved address",
                r(&[("10.244.1.0/24", "10.250.1.7")]),
                r(&[("10.244.1.0/24", "10.250.1.3")]),
                vec![],
                vec!["-4 route replace 10.244.1.0/24 via 10.250.1.7 proto 83"],
            ),
            (
                "odd entry of ours",
                r(&[]),
                r(&[]),
                vec!["10.244.9.0/24".to_string()],
                vec!["-4 route del 10.244.9.0/24 proto 83"],
            ),
        ];
        for (name, desired, current, odd, want) in cases {
            assert_eq!(lines(diff(&desired, &current, &odd)), want, "{name}");
        }
    }
}
