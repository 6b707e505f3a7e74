//! Is a node alive? Judged from its heartbeats as *this controller* saw them change.
//!
//! A kubelet proves it is alive by renewing its Lease in `kube-node-lease` (and, more rarely,
//! by posting a new `lastHeartbeatTime` in its Ready condition). Like leader election, the
//! controller never compares the renew time written by the node with its own wall clock (the
//! two machines' clocks may differ); it notes *when it saw* a heartbeat value change, on its
//! own monotonic clock, and calls the node silent once that is older than the grace period.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

/// The node conditions the kubelet owns, which turn `Unknown` when it goes silent.
pub const KUBELET_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Reason and message of conditions of a node that went silent (Kubernetes' wording).
pub const SILENT_REASON: &str = "NodeStatusUnknown";
/// See [`SILENT_REASON`].
pub const SILENT_MESSAGE: &str = "Kubelet stopped posting node status.";
/// Reason and message of conditions a silent node never posted at all.
pub const NEVER_REASON: &str = "NodeStatusNeverUpdated";
/// See [`NEVER_REASON`].
pub const NEVER_MESSAGE: &str = "Kubelet never posted node status.";

/// One heartbeat reading of a node: its Lease's `renewTime` and its Ready condition's
/// `lastHeartbeatTime`, as written by the node (opaque values, only compared for change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// `spec.renewTime` of the node's Lease.
    pub lease_renew: Option<jiff::Timestamp>,
    /// `lastHeartbeatTime` of the node's Ready condition.
    pub status: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone)]
struct Seen {
    heartbeat: Heartbeat,
    changed_at: Instant,
    ready: Option<String>,
}

/// What the controller last saw of each node, and when on its own clock.
#[derive(Debug, Default)]
pub struct Heartbeats {
    seen: HashMap<String, Seen>,
}

impl Heartbeats {
    /// Records a reading of `node` at `now`; returns when its heartbeat last changed as seen
    /// here. A node seen for the first time counts as just heard from (it gets a full grace
    /// period, as in Kubernetes after a controller restart).
    pub fn observe(&mut self, node: &str, heartbeat: Heartbeat, now: Instant) -> Instant {
        match self.seen.get_mut(node) {
            Some(s) if s.heartbeat == heartbeat => s.changed_at,
            Some(s) => {
                s.heartbeat = heartbeat;
                s.changed_at = now;
                now
            }
            None => {
                self.seen.insert(
                    node.to_string(),
                    Seen {
                        heartbeat,
                        changed_at: now,
                        ready: None,
                    },
                );
                now
            }
        }
    }

    /// Records the node's Ready status; returns the one recorded before (`None` the first
    /// time), so the caller can tell a transition.
    pub fn swap_ready(&mut self, node: &str, ready: Option<&str>) -> Option<String> {
        let s = self.seen.get_mut(node)?;
        std::mem::replace(&mut s.ready, ready.map(str::to_string))
    }

    /// Forgets nodes that no longer exist.
    pub fn retain(&mut self, nodes: &HashSet<String>) {
        self.seen.retain(|n, _| nodes.contains(n));
    }
}

/// Whether a node whose heartbeat last changed at `last_change` is silent at `now`.
pub fn is_silent(last_change: Instant, now: Instant, grace: Duration) -> bool {
    now.saturating_duration_since(last_change) > grace
}

/// The conditions of a node that went silent: every kubelet condition not yet `Unknown`
/// becomes `Unknown` (transition time `now`, heartbeat kept), a missing one is added as never
/// posted; other conditions are kept. `None` when nothing changes.
pub fn silent_node_conditions(
    conditions: &[NodeCondition],
    now: &Time,
) -> Option<Vec<NodeCondition>> {
    let mut out = conditions.to_vec();
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match out.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(SILENT_REASON.into());
                c.message = Some(SILENT_MESSAGE.into());
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
            None => {
                out.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some(NEVER_REASON.into()),
                    message: Some(NEVER_MESSAGE.into()),
                    last_transition_time: Some(now.clone()),
                    last_heartbeat_time: None,
                });
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Option<jiff::Timestamp> {
        Some(jiff::Timestamp::from_second(s).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_measured_on_our_clock() {
        let grace = Duration::from_secs(40);
        let t0 = Instant::now();
        let mut hb = Heartbeats::default();
        let beat = |lease: i64| Heartbeat {
            lease_renew: ts(lease),
            status: ts(1),
        };
        // (seconds after t0, lease renewTime written by the node, silent?)
        let cases = [
            (0, 100, false),  // first sight: a full grace period
            (30, 100, false), // unchanged for 30 s
            (41, 100, true),  // unchanged for 41 s: silent
            (42, 110, false), // renewed: alive again
            (80, 110, false), // 38 s since the renewal was seen
            (83, 110, true),
            // A renewTime far in the past (skewed node clock) still counts as a renewal.
            (84, 5, false),
        ];
        for (at, lease, silent) in cases {
            let now = t0 + Duration::from_secs(at);
            let last = hb.observe("n1", beat(lease), now);
            assert_eq!(
                is_silent(last, now, grace),
                silent,
                "at {at}s lease {lease}"
            );
        }
        // A status heartbeat alone also counts.
        let now = t0 + Duration::from_secs(200);
        let last = hb.observe(
            "n1",
            Heartbeat {
                lease_renew: ts(5),
                status: ts(2),
            },
            now,
        );
        assert_eq!(last, now);
        hb.retain(&HashSet::new());
        assert_eq!(hb.swap_ready("n1", Some("True")), None);
    }

    #[test]
    fn ready_transitions_are_reported_once() {
        let mut hb = Heartbeats::default();
        hb.observe("n", Heartbeat::default(), Instant::now());
        assert_eq!(hb.swap_ready("n", Some("True")), None);
        assert_eq!(hb.swap_ready("n", Some("Unknown")).as_deref(), Some("True"));
        assert_eq!(
            hb.swap_ready("n", Some("Unknown")).as_deref(),
            Some("Unknown")
        );
    }

    fn cond(t: &str, status: &str) -> NodeCondition {
        NodeCondition {
            type_: t.into(),
            status: status.into(),
            reason: Some("KubeletReady".into()),
            last_heartbeat_time: Some(Time(jiff::Timestamp::from_second(7).unwrap())),
            ..NodeCondition::default()
        }
    }

    #[test]
    fn silent_conditions() {
        let now = Time(jiff::Timestamp::from_second(1000).unwrap());
        let before = vec![
            cond("Ready", "True"),
            cond("MemoryPressure", "False"),
            cond("DiskPressure", "False"),
            cond("NetworkUnavailable", "False"),
        ];
        let after = silent_node_conditions(&before, &now).expect("changes");
        let by_type = |t: &str| after.iter().find(|c| c.type_ == t).unwrap();
        let ready = by_type("Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_deref(),
                ready.message.as_deref()
            ),
            ("Unknown", Some(SILENT_REASON), Some(SILENT_MESSAGE))
        );
        assert_eq!(ready.last_transition_time, Some(now.clone()));
        assert_eq!(
            ready.last_heartbeat_time, before[0].last_heartbeat_time,
            "heartbeat kept"
        );
        assert_eq!(by_type("PIDPressure").reason.as_deref(), Some(NEVER_REASON));
        assert_eq!(
            by_type("NetworkUnavailable").status,
            "False",
            "not the kubelet's"
        );
        // Already Unknown everywhere: nothing to write.
        assert_eq!(silent_node_conditions(&after, &now), None);
    }
}
