//! Filter plugins: can this pod run on this node at all?
//!
//! Each filter mirrors one of kube-scheduler's default filter plugins and
//! reports a failure with kube-scheduler's wording, because those strings end
//! up in `FailedScheduling` events and `kubectl describe pod`, where users
//! compare them with a real cluster. [`run_filters`] applies them in the
//! default profile's order and stops at the first failure, so each node
//! contributes the reasons of exactly one plugin, as in kube-scheduler.
//!
//! Skiff adds one filter kube-scheduler does not have: a node whose `Ready`
//! condition is not `True` is rejected (`node(s) were not ready`) unless the
//! pod tolerates the `node.kubernetes.io/not-ready:NoSchedule` taint — the
//! same outcome Kubernetes reaches through the taint the node lifecycle
//! controller adds, without depending on that controller having run.

use std::fmt::Write as _;

use crate::interpod::InterPodFilter;
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::ClusterSnapshot;
use crate::spread::SpreadFilter;
use crate::taints::{self, NOT_READY_TAINT_KEY, UNSCHEDULABLE_TAINT_KEY};

/// `NodeUnschedulable` failure.
pub const MSG_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Skiff's Ready filter failure.
pub const MSG_NOT_READY: &str = "node(s) were not ready";
/// `NodeName` failure.
pub const MSG_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// `NodeAffinity` failure.
pub const MSG_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// `NodePorts` failure.
pub const MSG_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// `NodeResourcesFit` failure for the pod count.
pub const MSG_TOO_MANY_PODS: &str = "Too many pods";
/// `PodTopologySpread` failure: the skew would exceed maxSkew.
pub const MSG_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
/// `PodTopologySpread` failure: the node lacks a constraint's topology key.
pub const MSG_SPREAD_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
/// `InterPodAffinity` failure: required affinity unmet.
pub const MSG_POD_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// `InterPodAffinity` failure: the pod's own anti-affinity is violated.
pub const MSG_POD_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// `InterPodAffinity` failure: an existing pod's anti-affinity rejects the pod.
pub const MSG_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// The filter (and score) plugins, named as in kube-scheduler's profile
/// (`NodeReady` is Skiff's). Used to remember which plugins rejected a pod,
/// so queueing hints only react to events that concern them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plugin {
    /// `spec.unschedulable`.
    NodeUnschedulable,
    /// Ready condition (Skiff).
    NodeReady,
    /// `spec.nodeName`.
    NodeName,
    /// NoSchedule/NoExecute taints.
    TaintToleration,
    /// nodeSelector and required node affinity.
    NodeAffinity,
    /// Host ports.
    NodePorts,
    /// Requests against allocatable, pod count.
    NodeResourcesFit,
    /// Topology spread (DoNotSchedule).
    PodTopologySpread,
    /// Required pod affinity/anti-affinity.
    InterPodAffinity,
}

impl Plugin {
    /// Every plugin, in filter order.
    pub const ALL: [Plugin; 9] = [
        Plugin::NodeUnschedulable,
        Plugin::NodeReady,
        Plugin::NodeName,
        Plugin::TaintToleration,
        Plugin::NodeAffinity,
        Plugin::NodePorts,
        Plugin::NodeResourcesFit,
        Plugin::PodTopologySpread,
        Plugin::InterPodAffinity,
    ];

    /// kube-scheduler's plugin name.
    pub fn name(self) -> &'static str {
        match self {
            Plugin::NodeUnschedulable => "NodeUnschedulable",
            Plugin::NodeReady => "NodeReady",
            Plugin::NodeName => "NodeName",
            Plugin::TaintToleration => "TaintToleration",
            Plugin::NodeAffinity => "NodeAffinity",
            Plugin::NodePorts => "NodePorts",
            Plugin::NodeResourcesFit => "NodeResourcesFit",
            Plugin::PodTopologySpread => "PodTopologySpread",
            Plugin::InterPodAffinity => "InterPodAffinity",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A small set of plugins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginSet(u16);

impl PluginSet {
    /// Adds a plugin.
    pub fn insert(&mut self, p: Plugin) {
        self.0 |= p.bit();
    }
    /// Membership.
    pub fn contains(self, p: Plugin) -> bool {
        self.0 & p.bit() != 0
    }
    /// True when empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The members in filter order.
    pub fn iter(self) -> impl Iterator<Item = Plugin> {
        Plugin::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

/// Which resources a node is short of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shortage {
    /// The node already has `allocatable.pods` pods.
    pub pods: bool,
    /// cpu
    pub cpu: bool,
    /// memory
    pub memory: bool,
    /// ephemeral-storage
    pub ephemeral_storage: bool,
    /// Extended resources by name.
    pub scalars: Vec<String>,
}

/// Why a node cannot take a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// Cordoned.
    Unschedulable,
    /// Not Ready.
    NotReady,
    /// `spec.nodeName` names another node.
    NodeName,
    /// The first NoSchedule/NoExecute taint the pod does not tolerate.
    UntoleratedTaint {
        /// Taint key.
        key: String,
        /// Taint value (may be empty).
        value: String,
    },
    /// nodeSelector / required node affinity unmet.
    NodeAffinity,
    /// A requested host port is taken.
    NodePorts,
    /// Requests exceed what is free.
    Insufficient(Shortage),
    /// The node lacks a hard spread constraint's topology key.
    SpreadMissingLabel,
    /// A hard spread constraint's skew would be exceeded.
    SpreadSkew,
    /// Required pod affinity unmet.
    PodAffinity,
    /// The pod's required anti-affinity is violated.
    PodAntiAffinity,
    /// An existing pod's required anti-affinity rejects the pod.
    ExistingAntiAffinity,
}

impl Unfit {
    /// The plugin that reported this failure.
    pub fn plugin(&self) -> Plugin {
        match self {
            Unfit::Unschedulable => Plugin::NodeUnschedulable,
            Unfit::NotReady => Plugin::NodeReady,
            Unfit::NodeName => Plugin::NodeName,
            Unfit::UntoleratedTaint { .. } => Plugin::TaintToleration,
            Unfit::NodeAffinity => Plugin::NodeAffinity,
            Unfit::NodePorts => Plugin::NodePorts,
            Unfit::Insufficient(_) => Plugin::NodeResourcesFit,
            Unfit::SpreadMissingLabel | Unfit::SpreadSkew => Plugin::PodTopologySpread,
            Unfit::PodAffinity | Unfit::PodAntiAffinity | Unfit::ExistingAntiAffinity => {
                Plugin::InterPodAffinity
            }
        }
    }

    /// Calls `f` with each reason string, in kube-scheduler's order (one
    /// node can be short of several resources at once). `buf` is scratch
    /// space for reasons that need formatting.
    pub fn for_each_reason(&self, buf: &mut String, mut f: impl FnMut(&str)) {
        let fixed = match self {
            Unfit::Unschedulable => MSG_UNSCHEDULABLE,
            Unfit::NotReady => MSG_NOT_READY,
            Unfit::NodeName => MSG_NODE_NAME,
            Unfit::NodeAffinity => MSG_NODE_AFFINITY,
            Unfit::NodePorts => MSG_NODE_PORTS,
            Unfit::SpreadMissingLabel => MSG_SPREAD_MISSING_LABEL,
            Unfit::SpreadSkew => MSG_SPREAD,
            Unfit::PodAffinity => MSG_POD_AFFINITY,
            Unfit::PodAntiAffinity => MSG_POD_ANTI_AFFINITY,
            Unfit::ExistingAntiAffinity => MSG_EXISTING_ANTI_AFFINITY,
            Unfit::UntoleratedTaint { key, value } => {
                buf.clear();
                let _ = write!(buf, "node(s) had untolerated taint {{{key}: {value}}}");
                f(buf);
                return;
            }
            Unfit::Insufficient(s) => {
                if s.pods {
                    f(MSG_TOO_MANY_PODS);
                }
                for (short, name) in [
                    (s.cpu, "cpu"),
                    (s.memory, "memory"),
                    (s.ephemeral_storage, "ephemeral-storage"),
                ]
                .into_iter()
                .chain(s.scalars.iter().map(|n| (true, n.as_str())))
                {
                    if short {
                        buf.clear();
                        let _ = write!(buf, "Insufficient {name}");
                        f(buf);
                    }
                }
                return;
            }
        };
        f(fixed);
    }

    /// The reasons as owned strings (convenient in tests and logs).
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_reason(&mut String::new(), |r| out.push(r.to_owned()));
        out
    }
}

/// `NodeUnschedulable`: a cordoned node takes only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if node.unschedulable
        && !taints::tolerates_no_schedule_key(&pod.tolerations, UNSCHEDULABLE_TAINT_KEY)
    {
        return Err(Unfit::Unschedulable);
    }
    Ok(())
}

/// Skiff's Ready filter (see the module docs).
pub fn node_ready(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if !node.ready && !taints::tolerates_no_schedule_key(&pod.tolerations, NOT_READY_TAINT_KEY) {
        return Err(Unfit::NotReady);
    }
    Ok(())
}

/// `NodeName`: a pod that names a node fits only there.
pub fn node_name(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    match &pod.node_name {
        Some(n) if *n != node.name => Err(Unfit::NodeName),
        _ => Ok(()),
    }
}

/// `TaintToleration`: every NoSchedule and NoExecute taint must be
/// tolerated; the first one that is not is reported.
pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    match node
        .taints
        .iter()
        .find(|t| t.blocks_scheduling() && !taints::tolerated(&pod.tolerations, t))
    {
        Some(t) => Err(Unfit::UntoleratedTaint {
            key: t.key.clone(),
            value: t.value.clone(),
        }),
        None => Ok(()),
    }
}

/// `NodeAffinity`: nodeSelector and required node affinity.
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if pod.required_node_affinity.matches(&node.name, &node.labels) {
        Ok(())
    } else {
        Err(Unfit::NodeAffinity)
    }
}

/// `NodePorts`: no requested host port may collide with one in use.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let clash = pod
        .host_ports
        .iter()
        .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
    if clash { Err(Unfit::NodePorts) } else { Ok(()) }
}

/// `NodeResourcesFit`: one more pod must be allowed, and each resource the
/// pod requests (a zero request is never checked, as in Kubernetes) must fit
/// in allocatable minus what the node's pods already request.
pub fn node_resources_fit(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let want = &pod.requests.requested;
    let (alloc, used) = (&node.allocatable, &node.requested);
    let short = |w: i64, a: i64, u: i64| w > 0 && w > a.saturating_sub(u);
    let mut s = Shortage {
        pods: node.pods.len() as i64 + 1 > node.allowed_pods,
        cpu: short(want.milli_cpu, alloc.milli_cpu, used.milli_cpu),
        memory: short(want.memory, alloc.memory, used.memory),
        ephemeral_storage: short(
            want.ephemeral_storage,
            alloc.ephemeral_storage,
            used.ephemeral_storage,
        ),
        scalars: Vec::new(),
    };
    for (name, w) in &want.scalars {
        if short(*w, alloc.scalar(name), used.scalar(name)) {
            s.scalars.push(name.clone());
        }
    }
    if s == Shortage::default() {
        Ok(())
    } else {
        Err(Unfit::Insufficient(s))
    }
}

/// Per-decision state of the filters that look beyond one node (what
/// kube-scheduler computes in PreFilter): inter-pod affinity and topology
/// spread counts. Built once per pod, then queried per node.
#[derive(Debug)]
pub struct FilterState {
    interpod: Option<InterPodFilter>,
    spread: Option<SpreadFilter>,
}

impl FilterState {
    /// Precomputes what the cross-node filters need for `pod`.
    pub fn new(pod: &PodInfo, snapshot: &ClusterSnapshot) -> Self {
        FilterState {
            interpod: InterPodFilter::new(pod, snapshot),
            spread: SpreadFilter::new(pod, snapshot),
        }
    }
}

/// Runs every filter in kube-scheduler's default order, stopping at the
/// first failure.
pub fn run_filters(pod: &PodInfo, state: &FilterState, node: &NodeInfo) -> Result<(), Unfit> {
    node_unschedulable(pod, node)?;
    node_ready(pod, node)?;
    node_name(pod, node)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, node)?;
    node_ports(pod, node)?;
    node_resources_fit(pod, node)?;
    if let Some(s) = &state.spread {
        s.filter(pod, node)?;
    }
    if let Some(i) = &state.interpod {
        i.filter(node)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};

    fn check(
        f: fn(&PodInfo, &NodeInfo) -> Result<(), Unfit>,
        p: k8s_openapi::api::core::v1::Pod,
        n: k8s_openapi::api::core::v1::Node,
    ) -> Result<(), Vec<String>> {
        f(&PodInfo::from_pod(&p), &NodeInfo::from_node(&n)).map_err(|u| u.reasons())
    }

    #[test]
    fn unschedulable() {
        let cordoned = || node("n").unschedulable().build();
        assert_eq!(
            check(node_unschedulable, pod("p").build(), cordoned()),
            Err(vec![MSG_UNSCHEDULABLE.to_owned()])
        );
        let tolerant = pod("p")
            .toleration(UNSCHEDULABLE_TAINT_KEY, "Exists", "", "NoSchedule")
            .build();
        assert_eq!(check(node_unschedulable, tolerant, cordoned()), Ok(()));
        assert_eq!(
            check(node_unschedulable, pod("p").build(), node("n").build()),
            Ok(())
        );
    }

    #[test]
    fn ready() {
        assert_eq!(
            check(node_ready, pod("p").build(), node("n").not_ready().build()),
            Err(vec![MSG_NOT_READY.to_owned()])
        );
        assert_eq!(
            check(node_ready, pod("p").build(), Default::default()),
            Err(vec![MSG_NOT_READY.to_owned()]),
            "no Ready condition means not ready"
        );
        let tolerant = pod("p")
            .toleration(NOT_READY_TAINT_KEY, "Exists", "", "")
            .build();
        assert_eq!(
            check(node_ready, tolerant, node("n").not_ready().build()),
            Ok(())
        );
        assert_eq!(
            check(node_ready, pod("p").build(), node("n").build()),
            Ok(())
        );
    }

    #[test]
    fn name() {
        assert_eq!(
            check(
                node_name,
                pod("p").node_name("n").build(),
                node("n").build()
            ),
            Ok(())
        );
        assert_eq!(
            check(
                node_name,
                pod("p").node_name("m").build(),
                node("n").build()
            ),
            Err(vec![MSG_NODE_NAME.to_owned()])
        );
        assert_eq!(
            check(node_name, pod("p").build(), node("n").build()),
            Ok(())
        );
    }

    #[test]
    fn taints() {
        let tainted = || {
            node("n")
                .taint("soft", "x", "PreferNoSchedule")
                .taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
                .build()
        };
        assert_eq!(
            check(taint_toleration, pod("p").build(), tainted()),
            Err(vec![
                "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
                    .to_owned()
            ])
        );
        let ok = pod("p")
            .toleration(
                "node-role.kubernetes.io/control-plane",
                "Exists",
                "",
                "NoSchedule",
            )
            .build();
        assert_eq!(
            check(taint_toleration, ok, tainted()),
            Ok(()),
            "PreferNoSchedule ignored"
        );
        let exec = node("n").taint("dedicated", "gpu", "NoExecute").build();
        assert_eq!(
            check(taint_toleration, pod("p").build(), exec),
            Err(vec![
                "node(s) had untolerated taint {dedicated: gpu}".to_owned()
            ])
        );
    }

    #[test]
    fn affinity_and_selector() {
        let n = || node("n").label("zone", "a").label("cores", "16").build();
        let p = pod("p").node_selector("zone", "a").build();
        assert_eq!(check(node_affinity, p, n()), Ok(()));
        let p = pod("p").node_selector("zone", "b").build();
        assert_eq!(
            check(node_affinity, p, n()),
            Err(vec![MSG_NODE_AFFINITY.to_owned()])
        );
        // terms are ORed, expressions ANDed
        let p = pod("p")
            .required_node_term(&[("zone", "In", &["b"])])
            .required_node_term(&[("zone", "In", &["a"]), ("cores", "Gt", &["8"])])
            .build();
        assert_eq!(check(node_affinity, p, n()), Ok(()));
        let p = pod("p")
            .required_node_term(&[("zone", "NotIn", &["a"])])
            .required_node_term(&[("cores", "Lt", &["8"])])
            .build();
        assert_eq!(
            check(node_affinity, p, n()),
            Err(vec![MSG_NODE_AFFINITY.to_owned()])
        );
        let p = pod("p")
            .required_node_term(&[("gpu", "DoesNotExist", &[])])
            .build();
        assert_eq!(check(node_affinity, p, n()), Ok(()));
        let p = pod("p")
            .node_selector("zone", "a")
            .required_node_term(&[("gpu", "Exists", &[])])
            .build();
        assert_eq!(
            check(node_affinity, p, n()),
            Err(vec![MSG_NODE_AFFINITY.to_owned()])
        );
    }

    #[test]
    fn ports() {
        let mut n = NodeInfo::from_node(&node("n").build());
        n.add_pod(PodInfo::shared(&pod("a").host_port(8080).build()));
        let want = PodInfo::from_pod(&pod("b").host_port(8080).build());
        assert_eq!(node_ports(&want, &n), Err(Unfit::NodePorts));
        let other = PodInfo::from_pod(&pod("b").host_port(9090).build());
        assert_eq!(node_ports(&other, &n), Ok(()));
        assert_eq!(Unfit::NodePorts.reasons(), vec![MSG_NODE_PORTS.to_owned()]);
    }

    #[test]
    fn resources() {
        let mut n = NodeInfo::from_node(
            &node("n")
                .capacity("2", "4Gi", 2)
                .allocatable("nvidia.com/gpu", "1")
                .build(),
        );
        n.add_pod(PodInfo::shared(
            &pod("a")
                .requests(&[("cpu", "1500m"), ("memory", "1Gi")])
                .build(),
        ));
        let fits = PodInfo::from_pod(
            &pod("b")
                .requests(&[("cpu", "500m"), ("memory", "3Gi")])
                .build(),
        );
        assert_eq!(node_resources_fit(&fits, &n), Ok(()));
        let big = PodInfo::from_pod(
            &pod("b")
                .requests(&[
                    ("cpu", "501m"),
                    ("memory", "3073Mi"),
                    ("ephemeral-storage", "200Gi"),
                    ("nvidia.com/gpu", "2"),
                ])
                .build(),
        );
        assert_eq!(
            node_resources_fit(&big, &n).unwrap_err().reasons(),
            vec![
                "Insufficient cpu",
                "Insufficient memory",
                "Insufficient ephemeral-storage",
                "Insufficient nvidia.com/gpu"
            ]
        );
        n.add_pod(PodInfo::shared(&pod("c").build()));
        let empty = PodInfo::from_pod(&pod("d").build());
        assert_eq!(
            node_resources_fit(&empty, &n).unwrap_err().reasons(),
            vec![MSG_TOO_MANY_PODS]
        );
    }

    #[test]
    fn zero_requests_fit_an_overcommitted_node() {
        let mut n = NodeInfo::from_node(&node("n").capacity("1", "1Gi", 10).build());
        n.add_pod(PodInfo::shared(&pod("a").requests(&[("cpu", "2")]).build()));
        let empty = PodInfo::from_pod(&pod("b").build());
        assert_eq!(node_resources_fit(&empty, &n), Ok(()));
    }

    #[test]
    fn plugin_set() {
        let mut s = PluginSet::default();
        assert!(s.is_empty());
        s.insert(Plugin::NodePorts);
        s.insert(Plugin::NodeUnschedulable);
        assert!(s.contains(Plugin::NodePorts));
        assert!(!s.contains(Plugin::NodeName));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Plugin::NodeUnschedulable, Plugin::NodePorts]
        );
        assert_eq!(Plugin::InterPodAffinity.name(), "InterPodAffinity");
    }
}
