//! Node IPAM: every Node gets a pod CIDR (`spec.podCIDR` + `spec.podCIDRs`), a /24 (by
//! default) of the cluster CIDR, which its agent uses for its pods and the other agents route
//! to it. Kubernetes' `nodeipam` controller with the range allocator, IPv4 only.
//!
//! - [`CidrSet`] (pure) hands out subnets, lowest free first, and remembers which node holds
//!   which, so a second assignment to the same node (a stale cache) returns the same CIDR.
//! - On start the set is rebuilt from the CIDRs the cached Nodes already have, before any
//!   reconcile runs, so a restarted (or newly elected) controller never hands out a taken one.
//! - A deleted Node's CIDR goes back to the set, and Nodes still waiting for one are retried.
//! - The API server lets `spec.podCIDRs` be set once (a change is a 422), so a write racing a
//!   stale cache cannot move a node to another range.
//! - No free CIDR: a `CIDRNotAvailable` Warning Event on the Node, retried with backoff.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Node;
use runtime::controller::{Controller, ControllerConfig, Reconciler};
use runtime::events::{EventRecorder, object_reference};
use runtime::informer::{Event, Informer};
use runtime::net::Ipv4Cidr;
use runtime::{Api, Client, Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use crate::context::Context;
use crate::manager::SYNC_TIMEOUT;

/// The name `--controllers` knows it by.
pub const NAME: &str = "nodeipam";

/// The Event reason (and Kubernetes' node status word) when no CIDR can be assigned.
pub const CIDR_NOT_AVAILABLE: &str = "CIDRNotAvailable";

/// At most 2^16 node CIDRs (Kubernetes' limit too): the set stays small and a bad flag
/// (`/8` cut into `/32`s) is refused up front.
const MAX_BITS: u8 = 16;

/// Why a CIDR cannot be recorded for a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OccupyError {
    /// Not one of the set's subnets (outside the cluster CIDR, or of another size).
    NotInRange,
    /// Already held by this other node.
    TakenBy(String),
}

/// The node CIDRs of one cluster CIDR: which are free, which node holds which.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Ipv4Cidr,
    node_prefix: u8,
    /// Subnet index → holder.
    taken: BTreeMap<u64, String>,
    /// Holder → subnet index.
    by_node: HashMap<String, u64>,
}

impl CidrSet {
    /// The /`node_prefix` subnets of `cluster`; refused when `node_prefix` is shorter than
    /// the cluster's prefix, over 32, or cuts it into more than 2^16 pieces.
    pub fn new(cluster: Ipv4Cidr, node_prefix: u8) -> Result<Self, String> {
        if node_prefix < cluster.prefix() || node_prefix > 32 {
            return Err(format!(
                "--node-cidr-mask-size {node_prefix} must be between the cluster CIDR's prefix ({}) and 32",
                cluster.prefix()
            ));
        }
        if node_prefix - cluster.prefix() > MAX_BITS {
            return Err(format!(
                "--node-cidr-mask-size {node_prefix} cuts {cluster} into more than 2^{MAX_BITS} node CIDRs"
            ));
        }
        Ok(Self {
            cluster,
            node_prefix,
            taken: BTreeMap::new(),
            by_node: HashMap::new(),
        })
    }

    fn count(&self) -> u64 {
        1u64 << (self.node_prefix - self.cluster.prefix())
    }

    fn cidr(&self, index: u64) -> Ipv4Cidr {
        self.cluster
            .subnet(self.node_prefix, index)
            .expect("index below count")
    }

    /// The CIDR `node` holds, if any.
    pub fn held_by(&self, node: &str) -> Option<Ipv4Cidr> {
        self.by_node.get(node).map(|i| self.cidr(*i))
    }

    /// The CIDR for `node`: the one it holds, else the lowest free one (then held by it);
    /// `None` when all are taken.
    pub fn assign(&mut self, node: &str) -> Option<Ipv4Cidr> {
        if let Some(held) = self.held_by(node) {
            return Some(held);
        }
        // The lowest index not in `taken`: the first gap in the sorted keys.
        let mut free = 0;
        for index in self.taken.keys() {
            if *index != free {
                break;
            }
            free += 1;
        }
        if free >= self.count() {
            return None;
        }
        self.taken.insert(free, node.to_string());
        self.by_node.insert(node.to_string(), free);
        Some(self.cidr(free))
    }

    /// Records that `node` holds `cidr` (a Node that already has one). A node holding
    /// another CIDR in the set moves to this one (the Node object is the truth).
    pub fn occupy(&mut self, node: &str, cidr: &Ipv4Cidr) -> Result<(), OccupyError> {
        if cidr.prefix() != self.node_prefix {
            return Err(OccupyError::NotInRange);
        }
        let index = self
            .cluster
            .subnet_index(cidr)
            .ok_or(OccupyError::NotInRange)?;
        match self.taken.get(&index) {
            Some(holder) if holder == node => return Ok(()),
            Some(holder) => return Err(OccupyError::TakenBy(holder.clone())),
            None => {}
        }
        self.release(node);
        self.taken.insert(index, node.to_string());
        self.by_node.insert(node.to_string(), index);
        Ok(())
    }

    /// Frees what `node` holds; returns it.
    pub fn release(&mut self, node: &str) -> Option<Ipv4Cidr> {
        let index = self.by_node.remove(node)?;
        self.taken.remove(&index);
        Some(self.cidr(index))
    }

    /// Frees `cidr` if `node` is its holder (undoing an assignment the API refused).
    pub fn release_if_held(&mut self, node: &str, cidr: &Ipv4Cidr) {
        if self.held_by(node) == Some(*cidr) {
            self.release(node);
        }
    }
}

/// What the cache and the set show for one Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Whether the Node exists.
    pub exists: bool,
    /// Its `spec.podCIDRs` (or `podCIDR`) first entry, as written.
    pub pod_cidr: Option<String>,
    /// What the set records for it.
    pub held: Option<Ipv4Cidr>,
}

/// One step for a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Give it a CIDR from the set and write it to the Node.
    Assign,
    /// Record the CIDR it already has.
    Occupy(Ipv4Cidr),
}

/// The whole decision for one Node. A Node with a CIDR the set cannot hold (outside the
/// cluster CIDR, another size, unparsable) is left alone: it was configured by hand.
pub fn plan(view: &NodeView) -> Vec<Action> {
    if !view.exists {
        return vec![];
    }
    match view.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
        None => vec![Action::Assign],
        Some(text) => match text.parse::<Ipv4Cidr>() {
            Ok(cidr) if view.held != Some(cidr) => vec![Action::Occupy(cidr)],
            _ => vec![],
        },
    }
}

/// The first pod CIDR a Node has.
fn pod_cidr_of(node: &Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .as_ref()
        .and_then(|l| l.first().cloned())
        .or_else(|| spec.pod_cidr.clone())
}

/// Reconciles one Node (the key is its name).
pub struct NodeIpam {
    client: Client,
    nodes: Arc<Informer<Node>>,
    set: Arc<Mutex<CidrSet>>,
    recorder: Arc<EventRecorder>,
}

impl NodeIpam {
    fn set(&self) -> std::sync::MutexGuard<'_, CidrSet> {
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn not_available(&self, name: &str, why: &str) {
        if let Some(node) = self.nodes.store().get(name) {
            let message = format!("Node {name} status is now: {CIDR_NOT_AVAILABLE} ({why})");
            self.recorder
                .warning(
                    &object_reference(node.as_ref()),
                    CIDR_NOT_AVAILABLE,
                    &message,
                )
                .await;
        }
    }

    async fn assign(&self, name: &str) -> runtime::Result<()> {
        let assigned = self.set().assign(name);
        let Some(cidr) = assigned else {
            self.not_available(name, "the cluster CIDR is exhausted")
                .await;
            return Err(runtime::Error::Request(format!(
                "no free pod CIDR for node {name}"
            )));
        };
        let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
        let api: Api<Node> = Api::all(self.client.clone());
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {
                info!(node = name, %cidr, "assigned pod CIDR");
                Ok(())
            }
            Err(e) if e.is_not_found() => {
                self.set().release_if_held(name, &cidr);
                Ok(())
            }
            Err(e) => {
                // Refused (422: the Node got a CIDR meanwhile; the next reconcile records
                // it) or failed: the CIDR goes back.
                self.set().release_if_held(name, &cidr);
                Err(e)
            }
        }
    }

    async fn occupy(&self, name: &str, cidr: Ipv4Cidr) -> runtime::Result<()> {
        let occupied = self.set().occupy(name, &cidr);
        match occupied {
            Ok(()) => Ok(()),
            // A hand-set CIDR outside the range: nothing of ours.
            Err(OccupyError::NotInRange) => Ok(()),
            Err(OccupyError::TakenBy(other)) => {
                let why = format!("its pod CIDR {cidr} is also node {other}'s");
                warn!(node = name, %cidr, %other, "pod CIDR conflict");
                self.not_available(name, &why).await;
                Ok(())
            }
        }
    }
}

impl Reconciler for NodeIpam {
    type Key = String;
    type Observed = NodeView;
    type Action = Action;

    fn observe(&self, name: &String) -> NodeView {
        let node = self.nodes.store().get(name);
        NodeView {
            exists: node.is_some(),
            pod_cidr: node.as_deref().and_then(pod_cidr_of),
            held: self.set().held_by(name),
        }
    }

    fn plan(&self, _name: &String, view: &NodeView) -> Vec<Action> {
        plan(view)
    }

    async fn apply(&self, name: &String, action: Action) -> runtime::Result<()> {
        match action {
            Action::Assign => self.assign(name).await,
            Action::Occupy(cidr) => self.occupy(name, cidr).await,
        }
    }
}

/// The controller's entry point for the manager.
pub fn main(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Arc<Context>) {
    let set = match CidrSet::new(ctx.settings.cluster_cidr, ctx.settings.node_cidr_mask_size) {
        Ok(set) => Arc::new(Mutex::new(set)),
        Err(e) => {
            tracing::error!(error = %e, "node IPAM cannot run");
            return;
        }
    };
    let nodes = ctx.informers.informer::<Node>();
    let controller = Controller::new(
        NodeIpam {
            client: ctx.client.clone(),
            nodes: nodes.clone(),
            set: set.clone(),
            recorder: ctx.recorder("node-ipam-controller"),
        },
        ControllerConfig {
            workers: ctx.settings.workers,
            ..ControllerConfig::default()
        },
    );
    {
        let queue = controller.queue().clone();
        let set = set.clone();
        let nodes_for_retry = nodes.clone();
        nodes.add_handler(move |ev: &Event<Node>| {
            let name = ev.key();
            if let Event::Deleted(_) = ev {
                let freed = set
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .release(&name);
                if let Some(cidr) = freed {
                    info!(node = %name, %cidr, "released pod CIDR");
                    // Nodes still waiting for a CIDR may get this one now.
                    for waiting in nodes_for_retry.store().list() {
                        if pod_cidr_of(&waiting).is_none() {
                            queue.add(waiting.metadata.name.clone().unwrap_or_default());
                        }
                    }
                }
                return;
            }
            queue.add(name);
        });
    }
    if let Err(e) = ctx.informers.wait_for_sync(SYNC_TIMEOUT).await {
        warn!(error = %e, "caches did not sync; continuing as they fill");
    }
    // Rebuild the set from the Nodes before any reconcile can assign.
    {
        let mut set = set.lock().unwrap_or_else(PoisonError::into_inner);
        for node in nodes.store().list() {
            let name = node.metadata.name.clone().unwrap_or_default();
            if let Some(cidr) = pod_cidr_of(&node).and_then(|c| c.parse::<Ipv4Cidr>().ok())
                && let Err(e) = set.occupy(&name, &cidr)
            {
                warn!(node = %name, %cidr, error = ?e, "existing pod CIDR not recorded");
            }
        }
    }
    controller.run().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn set_sizes() {
        let cases = [
            ("10.244.0.0/16", 24, Ok(256)),
            ("10.244.0.0/16", 16, Ok(1)),
            ("10.0.0.0/8", 24, Ok(65536)),
            ("10.0.0.0/8", 25, Err("more than 2^16")),
            ("10.244.0.0/16", 15, Err("between")),
            ("10.244.0.0/16", 33, Err("between")),
        ];
        for (cluster, mask, want) in cases {
            let got = CidrSet::new(cidr(cluster), mask).map(|s| s.count());
            match want {
                Ok(n) => assert_eq!(got, Ok(n), "{cluster} /{mask}"),
                Err(w) => assert!(got.unwrap_err().contains(w), "{cluster} /{mask}"),
            }
        }
    }

    #[test]
    fn assigns_lowest_free_and_reuses_released() {
        let mut set = CidrSet::new(cidr("10.244.0.0/16"), 24).unwrap();
        // (operation, node, expected result)
        let steps: [(&str, &str, Option<&str>); 8] = [
            ("assign", "a", Some("10.244.0.0/24")),
            ("assign", "b", Some("10.244.1.0/24")),
            ("assign", "a", Some("10.244.0.0/24")), // same again: a stale cache
            ("assign", "c", Some("10.244.2.0/24")),
            ("release", "b", Some("10.244.1.0/24")),
            ("release", "b", None),
            ("assign", "d", Some("10.244.1.0/24")), // the gap first
            ("assign", "e", Some("10.244.3.0/24")),
        ];
        for (op, node, want) in steps {
            let got = match op {
                "assign" => set.assign(node),
                _ => set.release(node),
            };
            assert_eq!(got.map(|c| c.to_string()).as_deref(), want, "{op} {node}");
        }
    }

    #[test]
    fn exhaustion() {
        let mut set = CidrSet::new(cidr("10.244.0.0/23"), 24).unwrap();
        assert!(set.assign("a").is_some());
        assert!(set.assign("b").is_some());
        assert_eq!(set.assign("c"), None);
        set.release("a");
        assert_eq!(set.assign("c"), Some(cidr("10.244.0.0/24")));
    }

    #[test]
    fn occupy_rebuilds_state() {
        let mut set = CidrSet::new(cidr("10.244.0.0/16"), 24).unwrap();
        let cases = [
            ("a", "10.244.5.0/24", Ok(())),
            ("a", "10.244.5.0/24", Ok(())),
            ("b", "10.244.5.0/24", Err(OccupyError::TakenBy("a".into()))),
            ("b", "10.245.0.0/24", Err(OccupyError::NotInRange)),
            ("b", "10.244.0.0/25", Err(OccupyError::NotInRange)),
            ("b", "10.244.0.0/24", Ok(())),
            // The Node object is the truth: a node seen with another CIDR moves.
            ("b", "10.244.1.0/24", Ok(())),
        ];
        for (node, c, want) in cases {
            assert_eq!(set.occupy(node, &cidr(c)), want, "{node} {c}");
        }
        // 10.244.0.0/24 went free when b moved; 5 stays a's.
        assert_eq!(set.assign("c"), Some(cidr("10.244.0.0/24")));
        assert_eq!(set.assign("d"), Some(cidr("10.244.2.0/24")));
        set.release_if_held("d", &cidr("10.244.9.0/24"));
        assert_eq!(set.held_by("d"), Some(cidr("10.244.2.0/24")));
        set.release_if_held("d", &cidr("10.244.2.0/24"));
        assert_eq!(set.held_by("d"), None);
    }

    #[test]
    fn plans() {
        let c = cidr("10.244.3.0/24");
        let view = |exists: bool, pod_cidr: Option<&str>, held: Option<Ipv4Cidr>| NodeView {
            exists,
            pod_cidr: pod_cidr.map(str::to_string),
            held,
        };
        let cases = [
            ("gone", view(false, None, None), vec![]),
            ("gone, held", view(false, None, Some(c)), vec![]),
            ("new node", view(true, None, None), vec![Action::Assign]),
            (
                "empty string",
                view(true, Some(""), None),
                vec![Action::Assign],
            ),
            // Assigned but the cache is stale: assign returns the same CIDR again.
            (
                "stale cache",
                view(true, None, Some(c)),
                vec![Action::Assign],
            ),
            (
                "has one, unrecorded",
                view(true, Some("10.244.3.0/24"), None),
                vec![Action::Occupy(c)],
            ),
            (
                "has one, recorded",
                view(true, Some("10.244.3.0/24"), Some(c)),
                vec![],
            ),
            ("unparsable", view(true, Some("fd00::/64"), None), vec![]),
        ];
        for (name, v, want) in cases {
            assert_eq!(plan(&v), want, "{name}");
        }
    }
}
