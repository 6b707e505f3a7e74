//! A pod as the scheduler sees it: everything derived from the spec once.
//!
//! Filters and scores run thousands of times per decision (once per node and
//! once per pod on each node), so nothing in the hot path re-reads the API
//! object: requests are summed, quantities parsed, selectors compiled and
//! tolerations copied into a [`PodInfo`] when the pod enters the scheduler
//! (for the pod being placed) or the snapshot (for pods on nodes). The
//! snapshot shares them by `Arc`, so assuming a pod never clones it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::node_affinity::{self, PreferredNodeTerm, RequiredNodeAffinity};
use crate::pod_affinity::PodAffinity;
use crate::resources::{PodRequests, is_sidecar};
use crate::spread::SpreadConstraint;
use crate::taints::Toleration;

/// A host port a pod claims: `(hostIP, protocol, port)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// `0.0.0.0` when unset (all addresses).
    pub ip: String,
    /// `TCP` when unset.
    pub protocol: String,
    /// The host port number (never 0: port 0 claims nothing).
    pub port: i32,
}

impl HostPort {
    /// Whether two claims collide: same protocol and port, and the same
    /// address or either one is the wildcard `0.0.0.0`.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == WILDCARD || other.ip == WILDCARD)
    }
}

const WILDCARD: &str = "0.0.0.0";

/// The compiled scheduling facts of one pod.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// `namespace/name`, the key the snapshot and the queue use.
    pub key: String,
    /// Namespace (`default` when missing).
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`, if set.
    pub node_name: Option<String>,
    /// Whether the pod has a deletion timestamp: it still holds resources on
    /// its node, but topology spread no longer counts it.
    pub terminating: bool,
    /// Requests (real and with scoring defaults).
    pub requests: PodRequests,
    /// Host ports claimed by containers and sidecars.
    pub host_ports: Vec<HostPort>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// nodeSelector and required node affinity.
    pub required_node_affinity: RequiredNodeAffinity,
    /// Preferred node affinity terms.
    pub preferred_node_affinity: Vec<PreferredNodeTerm>,
    /// Pod affinity and anti-affinity terms.
    pub affinity: PodAffinity,
    /// Topology spread constraints (both kinds).
    pub spread: Vec<SpreadConstraint>,
}

impl PodInfo {
    /// Compiles a pod. Missing metadata or spec fields are treated as empty
    /// (an empty namespace becomes `default`), so odd input never panics.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let namespace = meta
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_owned();
        let name = meta.name.as_deref().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let host_ports = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten().filter(|c| is_sidecar(c)))
            })
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|p| *p > 0)?;
                Some(HostPort {
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or_else(|| WILDCARD.to_owned()),
                    protocol: p
                        .protocol
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "TCP".to_owned()),
                    port,
                })
            })
            .collect();
        let tolerations = spec
            .and_then(|s| s.tolerations.as_ref())
            .into_iter()
            .flatten()
            .map(Toleration::from_api)
            .collect();
        let affinity =
            PodAffinity::compile(&namespace, &labels, spec.and_then(|s| s.affinity.as_ref()));
        let mut spread: Vec<SpreadConstraint> = spec
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .into_iter()
            .flatten()
            .map(|c| SpreadConstraint::compile(c, &labels))
            .collect();
        if spread.is_empty() && has_spreading_owner(meta) && !labels.is_empty() {
            spread.push(SpreadConstraint::system_default(&labels));
        }
        PodInfo {
            key: format!("{namespace}/{name}"),
            node_name: spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            terminating: meta.deletion_timestamp.is_some(),
            requests: PodRequests::of(spec),
            host_ports,
            tolerations,
            required_node_affinity: RequiredNodeAffinity::compile(spec),
            preferred_node_affinity: node_affinity::compile_preferred(spec),
            affinity,
            spread,
            namespace,
            labels,
        }
    }

    /// Compiles a pod into the shared form the snapshot stores.
    pub fn shared(pod: &Pod) -> Arc<Self> {
        Arc::new(Self::from_pod(pod))
    }
}

/// Whether the pod belongs to a controller whose replicas kube-scheduler spreads by default
/// (its system default topology spread constraints apply to pods of ReplicaSets,
/// StatefulSets and ReplicationControllers).
fn has_spreading_owner(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && matches!(
                o.kind.as_str(),
                "ReplicaSet" | "StatefulSet" | "ReplicationController"
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::pod;

    #[test]
    fn empty_pod_compiles() {
        let p = PodInfo::from_pod(&Pod::default());
        assert_eq!(p.key, "default/");
        assert!(p.host_ports.is_empty());
        assert!(p.required_node_affinity.is_empty());
    }

    #[test]
    fn host_ports_default_and_conflict() {
        let p = PodInfo::from_pod(&pod("a").host_port(80).build());
        assert_eq!(
            p.host_ports,
            vec![HostPort {
                ip: "0.0.0.0".into(),
                protocol: "TCP".into(),
                port: 80
            }]
        );
        let specific = HostPort {
            ip: "10.0.0.1".into(),
            protocol: "TCP".into(),
            port: 80,
        };
        let other_ip = HostPort {
            ip: "10.0.0.2".into(),
            ..specific.clone()
        };
        let udp = HostPort {
            protocol: "UDP".into(),
            ..specific.clone()
        };
        assert!(p.host_ports[0].conflicts(&specific));
        assert!(!specific.conflicts(&other_ip));
        assert!(!specific.conflicts(&udp));
    }
}
