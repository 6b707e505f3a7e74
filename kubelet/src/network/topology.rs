//! The lab network: several "nodes" on one machine, each a network namespace of its own,
//! joined by a Linux bridge in the host namespace. Multi-node tests (and later `skiff lab`)
//! run one agent per node namespace, so node-to-node traffic really crosses interfaces and
//! routes, as between machines, while nothing can leave the machine.
//!
//! Layout for lab `K` (the third octet, unique per lab on the machine):
//! - bridge `sklabK` in the host namespace with `10.250.K.1/24` (the host's address: the API
//!   server of the lab listens there);
//! - node `i` = namespace `/run/netns/sklabK-nI` (made by `ip netns add`, so `nsenter
//!   --net=/run/netns/...` and `ip -n` find it), its `eth0` a veth whose host end `sklabKvI`
//!   is a port of the bridge, with `10.250.K.(2+i)/24`; loopback up; **no default route**,
//!   so a packet for anything but the lab subnet (and routes agents add) is unroutable;
//! - blackhole routes for the pod and service CIDRs in the host namespace, unless a route for
//!   them is already there (they are shared by every lab and never removed).
//!
//! Why `K` is claimed by creating the bridge: `ip link add` of an existing name fails, which
//! makes the claim atomic across processes (tests of several binaries and worktrees run at
//! once); [`LabNetwork::create_any`] simply moves on to the next `K`.
//!
//! The plan (which `ip` commands, in which order, which failures are harmless) is pure data,
//! [`LabPlan`]; [`LabNetwork`] runs it.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use tracing::{info, warn};

use super::config::Ipv4Cidr;
use super::routes::run_ip;
use crate::error::{Error, Result};

/// Where `ip netns add` puts named namespaces; agents of a lab node run with
/// `nsenter --net=<this>/<name>`.
pub const NETNS_DIR: &str = "/run/netns";

/// The most nodes a lab /24 holds (`.2` to `.254`).
pub const MAX_NODES: usize = 253;

/// One `ip` invocation of a plan, and the stderr text meaning "already done" (then the step
/// counts as done: setup and teardown are re-runnable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpStep {
    /// Arguments after `ip`.
    pub args: Vec<String>,
    /// A failure whose message contains this is harmless.
    pub tolerate: Option<&'static str>,
}

fn step(args: &[&str], tolerate: Option<&'static str>) -> IpStep {
    IpStep {
        args: args.iter().map(|a| a.to_string()).collect(),
        tolerate,
    }
}

const EXISTS: Option<&str> = Some("File exists");
const NO_DEVICE: Option<&str> = Some("Cannot find device");
const NO_NETNS: Option<&str> = Some("No such file");

/// What a lab is made of: its index `K` (10.250.K.0/24), how many nodes, which CIDRs to
/// blackhole in the host namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabPlan {
    /// The third octet of the lab subnet; also part of every device and namespace name.
    pub index: u8,
    /// Number of node namespaces (1 to [`MAX_NODES`]).
    pub nodes: usize,
    /// Blackholed in the host namespace (pod and service CIDR).
    pub host_blackholes: Vec<Ipv4Cidr>,
}

impl LabPlan {
    /// A lab `index` with `nodes` nodes and the default cluster (10.244.0.0/16) and service
    /// (10.96.0.0/16) CIDRs blackholed.
    pub fn new(index: u8, nodes: usize) -> Self {
        Self {
            index,
            nodes,
            host_blackholes: vec![
                Ipv4Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16).expect("valid"),
                Ipv4Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 16).expect("valid"),
            ],
        }
    }

    /// `10.250.K.0/24`.
    pub fn subnet(&self) -> Ipv4Cidr {
        Ipv4Cidr::new(Ipv4Addr::new(10, 250, self.index, 0), 24).expect("valid")
    }

    /// The host's address on the bridge, `10.250.K.1`.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.index, 1)
    }

    /// The bridge in the host namespace.
    pub fn bridge(&self) -> String {
        format!("sklab{}", self.index)
    }

    /// Node `i`'s address, `10.250.K.(2+i)`.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.index, (2 + i) as u8)
    }

    /// Node `i`'s namespace name (under [`NETNS_DIR`]).
    pub fn node_netns(&self, i: usize) -> String {
        format!("sklab{}-n{i}", self.index)
    }

    /// The host end of node `i`'s veth (at most 12 characters: device names have 15); taking
    /// it down cuts the node off like a pulled cable.
    pub fn host_veth(&self, i: usize) -> String {
        format!("sklab{}v{i}", self.index)
    }

    /// Checks the node count fits the /24.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(format!(
                "a lab has 1 to {MAX_NODES} nodes, not {}",
                self.nodes
            ));
        }
        Ok(())
    }

    /// The step creating the bridge: it fails when lab `K` exists, which is how a lab is
    /// claimed (not tolerated).
    pub fn claim_step(&self) -> IpStep {
        step(&["link", "add", &self.bridge(), "type", "bridge"], None)
    }

    /// Every step after [`LabPlan::claim_step`], in order.
    pub fn setup_steps(&self) -> Vec<IpStep> {
        let bridge = self.bridge();
        let host_addr = format!("{}/24", self.host_ip());
        let mut steps = vec![
            step(&["addr", "add", &host_addr, "dev", &bridge], EXISTS),
            step(&["link", "set", &bridge, "up"], None),
        ];
        for cidr in &self.host_blackholes {
            // `add`, not `replace`: a route the host already has for the range stays.
            steps.push(step(
                &["route", "add", "blackhole", &cidr.to_string()],
                EXISTS,
            ));
        }
        for i in 0..self.nodes {
            let ns = self.node_netns(i);
            let veth = self.host_veth(i);
            let addr = format!("{}/24", self.node_ip(i));
            steps.extend([
                step(&["netns", "add", &ns], EXISTS),
                step(
                    &[
                        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                    ],
                    EXISTS,
                ),
                step(&["link", "set", &veth, "master", &bridge], None),
                step(&["link", "set", &veth, "up"], None),
                step(&["-n", &ns, "link", "set", "lo", "up"], None),
                step(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"], EXISTS),
                step(&["-n", &ns, "link", "set", "eth0", "up"], None),
            ]);
        }
        steps
    }

    /// The steps removing the lab (node namespaces, veths, bridge); each tolerates its object
    /// being gone already. The host blackholes stay (other labs rely on them).
    pub fn teardown_steps(&self) -> Vec<IpStep> {
        let mut steps = Vec::new();
        for i in 0..self.nodes {
            // Deleting the namespace deletes its veth end and so the pair; the explicit
            // delete covers a namespace that was never made.
            steps.push(step(&["netns", "delete", &self.node_netns(i)], NO_NETNS));
            steps.push(step(&["link", "delete", &self.host_veth(i)], NO_DEVICE));
        }
        steps.push(step(&["link", "delete", &self.bridge()], NO_DEVICE));
        steps
    }
}

/// One node of a lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabNode {
    /// The namespace's name (`ip netns` name).
    pub netns_name: String,
    /// The namespace handle, for `nsenter --net=...`.
    pub netns_path: PathBuf,
    /// The node's address (its InternalIP).
    pub ip: Ipv4Addr,
}

/// A lab network that exists on this machine. Not removed on drop (lab tooling keeps it
/// across processes); call [`LabNetwork::remove`].
#[derive(Debug)]
pub struct LabNetwork {
    plan: LabPlan,
    /// The nodes, in order.
    pub nodes: Vec<LabNode>,
}

fn run_step(step: &IpStep) -> Result<()> {
    match run_ip(&step.args, None) {
        Err(Error::Network(message)) if step.tolerate.is_some_and(|t| message.contains(t)) => {
            Ok(())
        }
        other => other.map(drop),
    }
}

impl LabNetwork {
    /// Creates the lab `plan` describes; fails (touching nothing) when its bridge exists. A
    /// failure half-way removes what was made.
    pub fn create(plan: LabPlan) -> Result<Self> {
        plan.validate().map_err(Error::Network)?;
        run_step(&plan.claim_step())?;
        let lab = Self::attach(plan);
        if let Err(e) = lab.plan.setup_steps().iter().try_for_each(run_step) {
            if let Err(undo) = lab.remove() {
                warn!(error = %undo, "removing a half-made lab network");
            }
            return Err(e);
        }
        info!(bridge = %lab.plan.bridge(), subnet = %lab.plan.subnet(), nodes = lab.nodes.len(), "lab network created");
        Ok(lab)
    }

    /// Creates a lab with `nodes` nodes under the first free index, trying `first`, `first+1`,
    /// ... (wrapping): a lab index taken by someone else is skipped.
    pub fn create_any(nodes: usize, first: u8) -> Result<Self> {
        let mut last = None;
        for offset in 0..=u8::MAX {
            let plan = LabPlan::new(first.wrapping_add(offset), nodes);
            match Self::create(plan) {
                Ok(lab) => return Ok(lab),
                Err(Error::Network(m)) if m.contains("File exists") => last = Some(m),
                Err(e) => return Err(e),
            }
        }
        Err(Error::Network(format!(
            "no free lab index: {}",
            last.unwrap_or_default()
        )))
    }

    /// What this lab was made from.
    /// The lab `plan` describes, assumed to exist (made by another process, e.g. `skiff lab
    /// up`); runs no command.
    pub fn attach(plan: LabPlan) -> Self {
        Self {
            nodes: (0..plan.nodes)
                .map(|i| LabNode {
                    netns_name: plan.node_netns(i),
                    netns_path: PathBuf::from(NETNS_DIR).join(plan.node_netns(i)),
                    ip: plan.node_ip(i),
                })
                .collect(),
            plan,
        }
    }

    /// Connects (`up`) or cuts node `i`'s link to the bridge: a network partition of that
    /// node, both from the control plane and from the other nodes.
    pub fn set_node_link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        run_step(&step(
            &["link", "set", &self.plan.host_veth(i), state],
            None,
        ))
    }

    pub fn plan(&self) -> &LabPlan {
        &self.plan
    }

    /// The host's address on the lab bridge (where a lab's API server listens).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.plan.host_ip()
    }

    /// The lab subnet.
    pub fn subnet(&self) -> Ipv4Cidr {
        self.plan.subnet()
    }

    /// Removes the node namespaces, veths and bridge. Every step runs even if one fails;
    /// the first failure is returned. Processes still inside a node namespace keep the
    /// namespace itself alive (not its name), so stop agents first.
    pub fn remove(&self) -> Result<()> {
        let mut first_error = None;
        for step in self.plan.teardown_steps() {
            if let Err(e) = run_step(&step) {
                warn!(error = %e, "removing the lab network");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(steps: &[IpStep]) -> Vec<String> {
        steps.iter().map(|s| s.args.join(" ")).collect()
    }

    #[test]
    fn addresses_and_names() {
        let plan = LabPlan::new(7, 2);
        let cases = [
            (plan.subnet().to_string(), "10.250.7.0/24"),
            (plan.host_ip().to_string(), "10.250.7.1"),
            (plan.node_ip(0).to_string(), "10.250.7.2"),
            (plan.node_ip(1).to_string(), "10.250.7.3"),
            (plan.bridge(), "sklab7"),
            (plan.node_netns(1), "sklab7-n1"),
            (LabPlan::new(255, 253).host_veth(252), "sklab255v252"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn setup_plan_for_two_nodes() {
        let plan = LabPlan::new(7, 2);
        assert_eq!(
            plan.claim_step().args.join(" "),
            "link add sklab7 type bridge"
        );
        assert_eq!(
            plan.claim_step().tolerate,
            None,
            "the claim must fail when taken"
        );
        let want = [
            "addr add 10.250.7.1/24 dev sklab7",
            "link set sklab7 up",
            "route add blackhole 10.244.0.0/16",
            "route add blackhole 10.96.0.0/16",
            "netns add sklab7-n0",
            "link add sklab7v0 type veth peer name eth0 netns sklab7-n0",
            "link set sklab7v0 master sklab7",
            "link set sklab7v0 up",
            "-n sklab7-n0 link set lo up",
            "-n sklab7-n0 addr add 10.250.7.2/24 dev eth0",
            "-n sklab7-n0 link set eth0 up",
            "netns add sklab7-n1",
            "link add sklab7v1 type veth peer name eth0 netns sklab7-n1",
            "link set sklab7v1 master sklab7",
            "link set sklab7v1 up",
            "-n sklab7-n1 link set lo up",
            "-n sklab7-n1 addr add 10.250.7.3/24 dev eth0",
            "-n sklab7-n1 link set eth0 up",
        ];
        assert_eq!(lines(&plan.setup_steps()), want);
        // Nothing in the plan gives a node a way out.
        assert!(
            plan.setup_steps()
                .iter()
                .all(|s| !s.args.iter().any(|a| a == "default"))
        );
    }

    #[test]
    fn teardown_plan_tolerates_missing_objects() {
        let plan = LabPlan::new(7, 2);
        let want = [
            "netns delete sklab7-n0",
            "link delete sklab7v0",
            "netns delete sklab7-n1",
            "link delete sklab7v1",
            "link delete sklab7",
        ];
        let steps = plan.teardown_steps();
        assert_eq!(lines(&steps), want);
        assert!(steps.iter().all(|s| s.tolerate.is_some()));
    }

    #[test]
    fn node_counts() {
        let cases = [(0, false), (1, true), (2, true), (253, true), (254, false)];
        for (nodes, ok) in cases {
            assert_eq!(LabPlan::new(1, nodes).validate().is_ok(), ok, "{nodes}");
        }
    }
}
