//! When to retry an unschedulable pod: backoff, and queueing hints.
//!
//! A pod that fit nowhere is retried (a) after a per-pod backoff that
//! doubles from 1 s up to 10 s (kube-scheduler's `podInitialBackoffSeconds`
//! and `podMaxBackoffSeconds`), (b) as soon as a cluster event *may* make it
//! schedulable, and (c) at the latest after
//! [`MAX_UNSCHEDULABLE_DURATION`] as a safety net. Deciding (b) precisely
//! matters: re-trying every pending pod on every node heartbeat would burn
//! the scheduler at scale, while missing a relevant event leaves pods
//! pending. [`is_schedulable_after`] checks an event against the plugins
//! that rejected the pod (from [`FitError::unschedulable_plugins`]), like
//! kube-scheduler's queueing hints: e.g. a node update that only bumps a
//! heartbeat wakes nobody; uncordoning wakes pods rejected by
//! NodeUnschedulable; a deleted pod wakes pods that were short of resources
//! or ports or blocked by anti-affinity.
//!
//! All of this is pure: the queue implementation (timers, maps) lives with
//! the informer-driven loop.
//!
//! [`FitError::unschedulable_plugins`]: crate::schedule::FitError::unschedulable_plugins

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::filters::{self, Plugin, PluginSet};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

/// First retry delay (`podInitialBackoffSeconds`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay (`podMaxBackoffSeconds`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An unschedulable pod is retried at least this often even without events
/// (`podMaxInUnschedulablePodsDuration`).
pub const MAX_UNSCHEDULABLE_DURATION: Duration = Duration::from_secs(5 * 60);

/// Backoff after `attempts` failed attempts (1 → 1 s, 2 → 2 s, 3 → 4 s,
/// 4 → 8 s, then 10 s). Zero attempts means no backoff.
pub fn backoff(attempts: u32) -> Duration {
    backoff_with(attempts, INITIAL_BACKOFF, MAX_BACKOFF)
}

/// [`backoff`] with explicit bounds (the lab uses shorter ones).
pub fn backoff_with(attempts: u32, initial: Duration, max: Duration) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let mut d = initial;
    for _ in 1..attempts {
        d = d.saturating_mul(2);
        if d >= max {
            return max;
        }
    }
    d.min(max)
}

/// A change in the cluster seen by the informers.
#[derive(Debug, Clone, Copy)]
pub enum ClusterEvent<'a> {
    /// A node appeared.
    NodeAdded(&'a Node),
    /// A node changed.
    NodeUpdated {
        /// Before.
        old: &'a Node,
        /// After.
        new: &'a Node,
    },
    /// A node went away.
    NodeDeleted(&'a Node),
    /// A pod was bound to a node (or assumed).
    AssignedPodAdded(&'a Pod),
    /// A pod on a node changed (labels, requests, phase).
    AssignedPodUpdated {
        /// Before.
        old: &'a Pod,
        /// After.
        new: &'a Pod,
    },
    /// A pod on a node was deleted (or finished).
    AssignedPodDeleted(&'a Pod),
}

/// Whether `event` may make `pod`, rejected by `rejected_by`, schedulable.
/// Errs on the side of `true` when unsure; an empty plugin set (the pod
/// failed for another reason) always retries.
pub fn is_schedulable_after(pod: &PodInfo, rejected_by: PluginSet, event: &ClusterEvent) -> bool {
    if rejected_by.is_empty() {
        return true;
    }
    rejected_by.iter().any(|p| plugin_may_pass(p, pod, event))
}

fn plugin_may_pass(plugin: Plugin, pod: &PodInfo, event: &ClusterEvent) -> bool {
    use ClusterEvent::*;
    match event {
        NodeAdded(node) => node_passes(plugin, pod, &NodeInfo::from_node(node)),
        NodeUpdated { old, new } => node_update_helps(plugin, pod, old, new),
        NodeDeleted(_) => plugin == Plugin::PodTopologySpread,
        AssignedPodAdded(_) => {
            matches!(plugin, Plugin::InterPodAffinity | Plugin::PodTopologySpread)
        }
        AssignedPodDeleted(_) => matches!(
            plugin,
            Plugin::NodeResourcesFit
                | Plugin::NodePorts
                | Plugin::InterPodAffinity
                | Plugin::PodTopologySpread
        ),
        AssignedPodUpdated { old, new } => assigned_pod_update_helps(plugin, old, new),
    }
}

/// Whether a node passes the plugin's single-node check for this pod.
/// Cross-node plugins cannot be judged from one node: assume yes.
fn node_passes(plugin: Plugin, pod: &PodInfo, node: &NodeInfo) -> bool {
    let check = match plugin {
        Plugin::NodeUnschedulable => filters::node_unschedulable,
        Plugin::NodeReady => filters::node_ready,
        Plugin::NodeName => filters::node_name,
        Plugin::TaintToleration => filters::taint_toleration,
        Plugin::NodeAffinity => filters::node_affinity,
        Plugin::NodePorts => filters::node_ports,
        Plugin::NodeResourcesFit => filters::node_resources_fit,
        Plugin::PodTopologySpread | Plugin::InterPodAffinity => return true,
    };
    check(pod, node).is_ok()
}

fn node_update_helps(plugin: Plugin, pod: &PodInfo, old: &Node, new: &Node) -> bool {
    let (o, n) = (NodeInfo::from_node(old), NodeInfo::from_node(new));
    match plugin {
        // Topology changes: domains moved.
        Plugin::PodTopologySpread | Plugin::InterPodAffinity => o.labels != n.labels,
        // The node itself now passes where it did not before. (Resource fit
        // is judged on allocatable alone: a grown node may now take the pod.)
        Plugin::NodeResourcesFit => {
            allocatable_grew(&o, &n) && filters::node_resources_fit(pod, &n).is_ok()
        }
        Plugin::NodePorts | Plugin::NodeName => false,
        _ => !node_passes(plugin, pod, &o) && node_passes(plugin, pod, &n),
    }
}

fn allocatable_grew(o: &NodeInfo, n: &NodeInfo) -> bool {
    let (a, b) = (&o.allocatable, &n.allocatable);
    b.milli_cpu > a.milli_cpu
        || b.memory > a.memory
        || b.ephemeral_storage > a.ephemeral_storage
        || n.allowed_pods > o.allowed_pods
        || b.scalars.iter().any(|(name, v)| *v > a.scalar(name))
}

fn assigned_pod_update_helps(plugin: Plugin, old: &Pod, new: &Pod) -> bool {
    let finished = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
    };
    if finished(new) && !finished(old) {
        // A finished pod frees its resources and ports like a deleted one.
        return plugin != Plugin::NodeAffinity;
    }
    let (o, n) = (PodInfo::from_pod(old), PodInfo::from_pod(new));
    match plugin {
        Plugin::InterPodAffinity | Plugin::PodTopologySpread => {
            o.labels != n.labels || o.terminating != n.terminating
        }
        Plugin::NodeResourcesFit => {
            let (a, b) = (&o.requests.requested, &n.requests.requested);
            b.milli_cpu < a.milli_cpu
                || b.memory < a.memory
                || b.ephemeral_storage < a.ephemeral_storage
                || a.scalars.iter().any(|(name, v)| b.scalar(name) < *v)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};

    #[test]
    fn backoff_doubles_to_the_cap() {
        let secs: Vec<u64> = (0..7).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![0, 1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(
            backoff_with(3, Duration::from_millis(100), Duration::from_millis(250)),
            Duration::from_millis(250)
        );
    }

    fn set(ps: &[Plugin]) -> PluginSet {
        let mut s = PluginSet::default();
        ps.iter().for_each(|p| s.insert(*p));
        s
    }

    #[test]
    fn node_events() {
        let p = PodInfo::from_pod(
            &pod("p")
                .requests(&[("cpu", "2")])
                .node_selector("zone", "a")
                .build(),
        );
        let cordoned = node("n").label("zone", "a").unschedulable().build();
        let open = node("n").label("zone", "a").build();
        let heartbeat = ClusterEvent::NodeUpdated {
            old: &open,
            new: &open,
        };
        let uncordon = ClusterEvent::NodeUpdated {
            old: &cordoned,
            new: &open,
        };
        let unsched = set(&[Plugin::NodeUnschedulable]);
        assert!(is_schedulable_after(&p, unsched, &uncordon));
        assert!(!is_schedulable_after(&p, unsched, &heartbeat));

        let small = node("n")
            .label("zone", "a")
            .capacity("1", "8Gi", 110)
            .build();
        let big = node("n")
            .label("zone", "a")
            .capacity("4", "8Gi", 110)
            .build();
        let fit = set(&[Plugin::NodeResourcesFit]);
        let grow = ClusterEvent::NodeUpdated {
            old: &small,
            new: &big,
        };
        assert!(is_schedulable_after(&p, fit, &grow));
        assert!(!is_schedulable_after(&p, fit, &heartbeat));

        let aff = set(&[Plugin::NodeAffinity]);
        let unlabelled = node("n").build();
        assert!(is_schedulable_after(
            &p,
            aff,
            &ClusterEvent::NodeUpdated {
                old: &unlabelled,
                new: &open
            }
        ));
        assert!(!is_schedulable_after(
            &p,
            aff,
            &ClusterEvent::NodeAdded(&unlabelled)
        ));
        assert!(is_schedulable_after(
            &p,
            aff,
            &ClusterEvent::NodeAdded(&open)
        ));

        let tainted = node("n")
            .label("zone", "a")
            .taint("k", "v", "NoSchedule")
            .build();
        let taint = set(&[Plugin::TaintToleration]);
        assert!(is_schedulable_after(
            &p,
            taint,
            &ClusterEvent::NodeUpdated {
                old: &tainted,
                new: &open
            }
        ));
        assert!(!is_schedulable_after(
            &p,
            taint,
            &ClusterEvent::NodeUpdated {
                old: &open,
                new: &tainted
            }
        ));
        assert!(!is_schedulable_after(
            &p,
            taint,
            &ClusterEvent::NodeDeleted(&open)
        ));
    }

    #[test]
    fn pod_events() {
        let p = PodInfo::from_pod(&pod("p").build());
        let victim = pod("v").node_name("n").requests(&[("cpu", "1")]).build();
        let fit = set(&[Plugin::NodeResourcesFit]);
        let ports = set(&[Plugin::NodePorts]);
        let aff = set(&[Plugin::NodeAffinity]);
        assert!(is_schedulable_after(
            &p,
            fit,
            &ClusterEvent::AssignedPodDeleted(&victim)
        ));
        assert!(is_schedulable_after(
            &p,
            ports,
            &ClusterEvent::AssignedPodDeleted(&victim)
        ));
        assert!(!is_schedulable_after(
            &p,
            aff,
            &ClusterEvent::AssignedPodDeleted(&victim)
        ));
        assert!(!is_schedulable_after(
            &p,
            fit,
            &ClusterEvent::AssignedPodAdded(&victim)
        ));
        let interpod = set(&[Plugin::InterPodAffinity]);
        assert!(is_schedulable_after(
            &p,
            interpod,
            &ClusterEvent::AssignedPodAdded(&victim)
        ));

        let relabelled = pod("v")
            .node_name("n")
            .label("app", "x")
            .requests(&[("cpu", "1")])
            .build();
        let upd = ClusterEvent::AssignedPodUpdated {
            old: &victim,
            new: &relabelled,
        };
        assert!(is_schedulable_after(&p, interpod, &upd));
        assert!(!is_schedulable_after(&p, fit, &upd));
        let mut done = victim.clone();
        done.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        let finish = ClusterEvent::AssignedPodUpdated {
            old: &victim,
            new: &done,
        };
        assert!(is_schedulable_after(&p, fit, &finish));
        assert!(is_schedulable_after(&p, PluginSet::default(), &finish));
    }
}
