//! The Skiff scheduler's decision core: where should a pending pod run?
//!
//! This crate is deliberately pure — no I/O, no API client, no clock. It is
//! a set of functions over `k8s-openapi` types and a [`ClusterSnapshot`]
//! the caller maintains, so every rule is unit-tested without a server and
//! the informer-driven loop on top stays thin. The rules are kube-scheduler's
//! default profile (filters, scores, weights, node sampling, message
//! wording), because Skiff promises that real manifests land where they would
//! on Kubernetes and that `kubectl describe pod` explains a Pending pod the
//! same way.
//!
//! Pieces, in the order a decision uses them:
//! - [`pod_info`], [`node_info`]: pods and nodes compiled once (requests
//!   summed, quantities parsed, selectors compiled) so the hot path only
//!   compares integers and looks up maps;
//! - [`snapshot`]: nodes with the pods on them, incrementally updated,
//!   including *assumed* pods whose binding is in flight (no overcommit);
//! - [`filters`] (with [`interpod`] and [`spread`] for the cross-node ones):
//!   can the pod run there, and if not, kube-scheduler's reason;
//! - [`scores`]: which feasible node is best;
//! - [`schedule`]: node sampling, tie-breaking, and the `FailedScheduling`
//!   message ([`FitError`]);
//! - [`queue_policy`]: backoff and which cluster events may help a pending pod.
//!
//! Odd input never panics: missing fields are empty, unparsable quantities
//! count as zero, malformed selectors or affinity terms match nothing.
//!
//! # Wiring (what the loop must call)
//! 1. Keep one [`ClusterSnapshot`]: `upsert_node`/`remove_node` on node
//!    events, `add_pod`/`remove_pod` on events of pods with `spec.nodeName`,
//!    `set_namespace_labels` on namespace events.
//! 2. For each pending pod (`schedulerName` = `default-scheduler`, no
//!    `nodeName`), `PodInfo::shared(&pod)` then
//!    [`Scheduler::schedule_and_assume`]; send the binding; if it fails,
//!    `snapshot.remove_pod(&info.key)`. The watch's bound pod then replaces
//!    the assumed entry via `add_pod`.
//! 3. On [`FitError`]: set `PodScheduled=False/Unschedulable` and emit a
//!    `FailedScheduling` event with `err.to_string()`; park the pod with
//!    `err.unschedulable_plugins`; retry after [`queue_policy::backoff`]
//!    or when [`queue_policy::is_schedulable_after`] says an event may help
//!    (and always when the pod itself changes).

pub mod events;
pub mod filters;
pub mod interpod;
pub mod node_affinity;
pub mod node_info;
pub mod pod_affinity;
pub mod pod_info;
pub mod quantity;
pub mod queue_policy;
pub mod resources;
pub mod run;
pub mod schedule;
pub mod scores;
pub mod snapshot;
pub mod spread;
pub mod taints;

#[cfg(test)]
mod testutil;

pub use filters::{Plugin, PluginSet, Unfit};
pub use pod_info::PodInfo;
pub use schedule::{FitError, ScheduleResult, Scheduler, SchedulerConfig, schedule};
pub use snapshot::ClusterSnapshot;
