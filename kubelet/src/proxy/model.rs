//! What the proxy programs, as plain data: every Service port with its virtual addresses
//! (ClusterIP, NodePort) and the endpoints traffic to it may reach.
//!
//! Pure: Services and EndpointSlices in, [`ServicePort`]s out. The EndpointSlice controller
//! has already resolved named `targetPort`s per pod (a slice port carries the Service port's
//! *name* and the pod's *number*), so a Service port is matched to slice ports by name and
//! protocol, and each endpoint keeps the number its own slice gives.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

/// Label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// A transport protocol a Service port can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The protocol a Service or slice port names (`TCP` when unset); `None` for others.
    pub fn parse(name: Option<&str>) -> Option<Self> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nftables' name of the protocol (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// Which Service port: namespace, Service name, protocol and port number (unique per Service,
/// as the API server validates). Its `Display` (`ns/name/tcp/80`) names nftables objects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's protocol.
    pub protocol: Protocol,
    /// The Service port number.
    pub port: u16,
}

impl fmt::Display for ServicePortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.nft(),
            self.port
        )
    }
}

/// Where traffic may be sent: an endpoint's address and the target port its slice gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    /// The endpoint's IPv4 address.
    pub ip: Ipv4Addr,
    /// The port on the endpoint.
    pub port: u16,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// One Service port as the proxy programs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Which Service port.
    pub key: ServicePortKey,
    /// The Service's ClusterIP (`None` for headless Services, which get no rules).
    pub cluster_ip: Option<Ipv4Addr>,
    /// The port's NodePort (NodePort and LoadBalancer Services).
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`: how long (seconds) a client sticks to its endpoint.
    pub affinity_timeout: Option<u32>,
    /// The endpoints to balance over, sorted and without duplicates: the ready ones, or when
    /// none is ready the serving-but-terminating ones (so a rolling restart of the last pods
    /// does not drop connections that could still be served). Empty: traffic is rejected.
    pub backends: Vec<Backend>,
}

/// An endpoint's conditions, with Kubernetes' defaults for unset ones (`ready` unset means
/// ready; `serving` unset means "same as ready").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Conditions {
    ready: bool,
    serving: bool,
    terminating: bool,
}

fn conditions(e: &Endpoint) -> Conditions {
    let c = e.conditions.as_ref();
    let ready = c.and_then(|c| c.ready).unwrap_or(true);
    Conditions {
        ready,
        serving: c.and_then(|c| c.serving).unwrap_or(ready),
        terminating: c.and_then(|c| c.terminating).unwrap_or(false),
    }
}

/// The backends of one Service port among its slices: ready endpoints, falling back to
/// serving-but-terminating ones.
fn backends_of(
    port_name: Option<&str>,
    protocol: Protocol,
    slices: &[&EndpointSlice],
) -> Vec<Backend> {
    let mut ready = Vec::new();
    let mut terminating = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let target = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().filter(|n| !n.is_empty()) == port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(port) = target
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        for e in &slice.endpoints {
            let Some(ip) = e.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let c = conditions(e);
            if c.ready {
                ready.push(Backend { ip, port });
            } else if c.serving && c.terminating {
                terminating.push(Backend { ip, port });
            }
        }
    }
    let mut chosen = if ready.is_empty() { terminating } else { ready };
    chosen.sort();
    chosen.dedup();
    chosen
}

/// The ClientIP affinity timeout of a Service, when it asks for affinity.
fn affinity_timeout(svc: &Service) -> Option<u32> {
    let spec = svc.spec.as_ref()?;
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_AFFINITY_TIMEOUT);
    Some(timeout)
}

/// Every Service port the proxy programs, sorted by key. ExternalName and headless Services
/// and ports with protocols other than TCP/UDP/SCTP are left out; slices are matched to their
/// Service through the `kubernetes.io/service-name` label in the Service's namespace, as
/// kube-proxy does (so hand-made slices of selector-less Services work too).
pub fn service_ports<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<ServicePort> {
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let ns = slice.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(svc) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        {
            by_service
                .entry((ns, svc.as_str()))
                .or_default()
                .push(slice);
        }
    }
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let Some(cluster_ip) = cluster_ip else {
            // Headless (`None`) or not allocated yet: nothing to proxy.
            continue;
        };
        let namespace = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let slices = by_service
            .get(&(namespace.as_str(), name.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let with_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        for p in spec.ports.iter().flatten() {
            let (Some(protocol), Ok(port)) = (
                Protocol::parse(p.protocol.as_deref()),
                u16::try_from(p.port),
            ) else {
                continue;
            };
            let port_name = p.name.as_deref().filter(|n| !n.is_empty());
            out.push(ServicePort {
                key: ServicePortKey {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    protocol,
                    port,
                },
                cluster_ip: Some(cluster_ip),
                node_port: p
                    .node_port
                    .filter(|_| with_node_ports)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0),
                affinity_timeout: affinity_timeout(svc),
                backends: backends_of(port_name, protocol, slices),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn service(name: &str, spec: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn slice(service: &str, ports: Value, endpoints: Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-x"), "namespace": "default",
                          "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    fn ep(ip: &str, ready: Option<bool>, serving: Option<bool>, terminating: bool) -> Value {
        json!({"addresses": [ip], "conditions":
            {"ready": ready, "serving": serving, "terminating": terminating}})
    }

    fn backends(list: &[(&str, u16)]) -> Vec<Backend> {
        list.iter()
            .map(|(ip, port)| Backend {
                ip: ip.parse().unwrap(),
                port: *port,
            })
            .collect()
    }

    #[test]
    fn endpoints_chosen_by_condition() {
        let svc = service(
            "web",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        );
        let ports = json!([{"port": 8080, "protocol": "TCP"}]);
        // (endpoints, expected backends)
        let cases = [
            (
                json!([
                    ep("10.244.0.2", Some(true), None, false),
                    ep("10.244.0.3", Some(false), Some(false), false),
                    ep("10.244.0.4", None, None, false)
                ]),
                vec![("10.244.0.2", 8080), ("10.244.0.4", 8080)],
            ),
            // Ready endpoints win over serving-terminating ones.
            (
                json!([
                    ep("10.244.0.2", Some(true), None, false),
                    ep("10.244.0.3", Some(false), Some(true), true)
                ]),
                vec![("10.244.0.2", 8080)],
            ),
            // No ready one: the serving-but-terminating ones, not the merely not-ready ones.
            (
                json!([
                    ep("10.244.0.3", Some(false), Some(true), true),
                    ep("10.244.0.5", Some(false), Some(false), true),
                    ep("10.244.0.6", Some(false), Some(true), false)
                ]),
                vec![("10.244.0.3", 8080)],
            ),
            (json!([]), vec![]),
        ];
        for (endpoints, want) in cases {
            let s = slice("web", ports.clone(), endpoints.clone());
            let got = service_ports([&svc], [&s]);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].backends, backends(&want), "{endpoints}");
        }
    }

    #[test]
    fn service_ports_match_slice_ports_by_name_and_protocol() {
        let svc = service(
            "web",
            json!({"clusterIP": "10.96.0.10", "type": "NodePort", "ports": [
                {"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ]}),
        );
        // Two pods resolving the named targetPort to different numbers (two slices).
        let a = slice(
            "web",
            json!([{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]),
            json!([ep("10.244.0.2", Some(true), None, false)]),
        );
        let b = slice(
            "web",
            json!([{"name": "http", "port": 9090}]),
            json!([
                ep("10.244.1.2", Some(true), None, false),
                ep("10.244.0.2", Some(true), None, false)
            ]),
        );
        let got = service_ports([&svc], [&a, &b]);
        let summary: Vec<(String, Option<u16>, Vec<Backend>)> = got
            .iter()
            .map(|p| (p.key.to_string(), p.node_port, p.backends.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("default/web/tcp/53".to_string(), None, vec![]),
                (
                    "default/web/tcp/80".to_string(),
                    Some(30080),
                    backends(&[
                        ("10.244.0.2", 8080),
                        ("10.244.0.2", 9090),
                        ("10.244.1.2", 9090)
                    ])
                ),
                (
                    "default/web/udp/53".to_string(),
                    Some(30053),
                    backends(&[("10.244.0.2", 5353)])
                ),
            ]
        );
    }

    #[test]
    fn which_services_are_programmed() {
        let ports = json!([{"port": 80}]);
        let cases = [
            (json!({"clusterIP": "10.96.0.10", "ports": ports}), true),
            (json!({"clusterIP": "None", "ports": ports}), false),
            (json!({"ports": ports}), false),
            (
                json!({"type": "ExternalName", "externalName": "example.org", "ports": ports}),
                false,
            ),
            (json!({"clusterIP": "fd00::1", "ports": ports}), false),
        ];
        for (spec, programmed) in cases {
            let svc = service("web", spec.clone());
            let none: [&EndpointSlice; 0] = [];
            assert_eq!(service_ports([&svc], none).len() == 1, programmed, "{spec}");
        }
    }

    #[test]
    fn node_ports_only_for_node_port_types_and_affinity_timeouts() {
        let cases = [
            (json!({"type": "ClusterIP"}), None, None),
            (json!({"type": "NodePort"}), Some(30001), None),
            (json!({"type": "LoadBalancer"}), Some(30001), None),
            (
                json!({"sessionAffinity": "ClientIP"}),
                None,
                Some(DEFAULT_AFFINITY_TIMEOUT),
            ),
            (
                json!({"sessionAffinity": "ClientIP",
                       "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
                None,
                Some(60),
            ),
            (json!({"sessionAffinity": "None"}), None, None),
        ];
        for (extra, node_port, affinity) in cases {
            let mut spec = json!({"clusterIP": "10.96.0.10",
                                  "ports": [{"port": 80, "nodePort": 30001}]});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let svc = service("web", spec);
            let none: [&EndpointSlice; 0] = [];
            let got = &service_ports([&svc], none)[0];
            assert_eq!(got.node_port, node_port, "{extra}");
            assert_eq!(got.affinity_timeout, affinity, "{extra}");
        }
    }

    #[test]
    fn slices_of_other_services_or_namespaces_are_ignored() {
        let svc = service(
            "web",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        );
        let other = slice(
            "db",
            json!([{"port": 80}]),
            json!([ep("10.244.0.9", Some(true), None, false)]),
        );
        let mut elsewhere = slice(
            "web",
            json!([{"port": 80}]),
            json!([ep("10.244.0.8", Some(true), None, false)]),
        );
        elsewhere.metadata.namespace = Some("prod".into());
        let mut v6 = slice(
            "web",
            json!([{"port": 80}]),
            json!([ep("fd00::2", Some(true), None, false)]),
        );
        v6.address_type = "IPv6".into();
        let got = service_ports([&svc], [&other, &elsewhere, &v6]);
        assert!(got[0].backends.is_empty());
    }
}
