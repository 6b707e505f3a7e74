//! What DNS needs to know about one Service, distilled from the Service and its EndpointSlices.
//!
//! The resolver works on these small records instead of API objects so its tables of cases
//! stay readable, and so the informer-backed view and the unit tests' in-memory view hand it
//! the same thing. Everything here is pure.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// How a Service's own name resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A virtual IP (the IPv4 ones of `spec.clusterIPs`): the name answers with it.
    ClusterIp(Vec<Ipv4Addr>),
    /// `clusterIP: None`: the name answers with the ready endpoints' addresses.
    Headless,
    /// `type: ExternalName`: the name is an alias (CNAME) of `spec.externalName`.
    ExternalName(String),
}

/// A Service port as SRV records name it: `_<name>._<protocol>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRecord {
    /// The port's name (`""` for an unnamed port, which has no SRV name of its own).
    pub name: String,
    /// `tcp`, `udp` or `sctp`, lower case as in SRV names.
    pub protocol: String,
    /// The port number (the Service port, or the endpoint port for headless Services).
    pub port: u16,
}

/// One ready endpoint of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
    /// `hostname` from the slice (a pod's `spec.hostname` under a matching `subdomain`).
    pub hostname: Option<String>,
    /// The ports the endpoint serves (its slice's ports).
    pub ports: Vec<PortRecord>,
}

impl EndpointRecord {
    /// The endpoint's own label under the Service name: its hostname, else its address with
    /// dashes (`10-244-1-5`), as Kubernetes DNS names endpoints.
    pub fn label(&self) -> String {
        match &self.hostname {
            Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
            _ => dashed(self.ip),
        }
    }
}

/// Everything DNS answers about one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// How the Service name itself resolves.
    pub kind: ServiceKind,
    /// The Service's ports.
    pub ports: Vec<PortRecord>,
    /// Its ready endpoints, one per address, in address order.
    pub endpoints: Vec<EndpointRecord>,
}

/// `10.244.1.5` → `10-244-1-5`.
pub fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

fn protocol(p: Option<&String>) -> String {
    p.map_or("tcp".to_string(), |p| p.to_ascii_lowercase())
}

fn port_number(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

impl ServiceRecord {
    /// Distils a Service and the EndpointSlices labelled with its name. Only ready endpoints
    /// (a missing `ready` condition counts as ready, as the API defines) with IPv4 addresses
    /// are kept; an address listed in several slices appears once.
    pub fn from_objects(svc: &Service, slices: &[&EndpointSlice]) -> ServiceRecord {
        let spec = svc.spec.clone().unwrap_or_default();
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            ServiceKind::ExternalName(
                spec.external_name
                    .clone()
                    .unwrap_or_default()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            )
        } else if spec.cluster_ip.as_deref() == Some("None") {
            ServiceKind::Headless
        } else {
            // Single-stack or dual-stack, a Service has at most one IPv4 ClusterIP.
            let ip = spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter())
                .find_map(|ip| ip.parse::<Ipv4Addr>().ok());
            let ips: Vec<Ipv4Addr> = ip.into_iter().collect();
            ServiceKind::ClusterIp(ips)
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(PortRecord {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: protocol(p.protocol.as_ref()),
                    port: port_number(p.port)?,
                })
            })
            .collect();
        let mut endpoints: BTreeMap<Ipv4Addr, EndpointRecord> = BTreeMap::new();
        for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
            let ports: Vec<PortRecord> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(PortRecord {
                        name: p.name.clone().unwrap_or_default(),
                        protocol: protocol(p.protocol.as_ref()),
                        port: port_number(p.port?)?,
                    })
                })
                .collect();
            for e in &slice.endpoints {
                let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                let Some(ip) = e.addresses.first().and_then(|a| a.parse().ok()) else {
                    continue;
                };
                if !ready {
                    continue;
                }
                endpoints.entry(ip).or_insert_with(|| EndpointRecord {
                    ip,
                    hostname: e.hostname.clone(),
                    ports: ports.clone(),
                });
            }
        }
        ServiceRecord {
            kind,
            ports,
            endpoints: endpoints.into_values().collect(),
        }
    }
}

/// Where the resolver reads the cluster from: the informer caches in the server, a map in
/// unit tests.
pub trait ClusterView: Send + Sync {
    /// The Service `namespace/name`, if it exists.
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceRecord>;
    /// Whether any Service exists in `namespace` (then `<namespace>.svc.<domain>` is a name
    /// with no records of its own rather than a missing one).
    fn has_services_in(&self, namespace: &str) -> bool;
    /// Whether the view has seen the cluster at least once (before that, cluster names get
    /// SERVFAIL rather than an NXDOMAIN clients would cache).
    fn ready(&self) -> bool {
        true
    }
}

/// A fixed set of Services: for tests, and for anything answering from a snapshot.
#[derive(Debug, Clone, Default)]
pub struct StaticView {
    /// `(namespace, name)` → record.
    pub services: BTreeMap<(String, String), ServiceRecord>,
}

impl StaticView {
    /// Adds the Service `namespace/name`.
    pub fn with(mut self, namespace: &str, name: &str, record: ServiceRecord) -> Self {
        self.services
            .insert((namespace.to_string(), name.to_string()), record);
        self
    }
}

impl ClusterView for StaticView {
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceRecord> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn has_services_in(&self, namespace: &str) -> bool {
        self.services.keys().any(|(ns, _)| ns == namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn port(name: &str, protocol: &str, port: u16) -> PortRecord {
        PortRecord {
            name: name.into(),
            protocol: protocol.into(),
            port,
        }
    }

    #[test]
    fn service_kinds() {
        let cases = [
            (
                json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"]}),
                ServiceKind::ClusterIp(vec!["10.96.0.5".parse().unwrap()]),
            ),
            (
                json!({"clusterIP": "10.96.0.5"}),
                ServiceKind::ClusterIp(vec!["10.96.0.5".parse().unwrap()]),
            ),
            (
                json!({"clusterIP": "fd00::5", "clusterIPs": ["fd00::5"]}),
                ServiceKind::ClusterIp(vec![]),
            ),
            (json!({}), ServiceKind::ClusterIp(vec![])),
            (
                json!({"clusterIP": "None", "clusterIPs": ["None"]}),
                ServiceKind::Headless,
            ),
            (
                json!({"type": "ExternalName", "externalName": "DB.Example.com."}),
                ServiceKind::ExternalName("db.example.com".into()),
            ),
        ];
        for (spec, want) in cases {
            let got = ServiceRecord::from_objects(&svc(spec.clone()), &[]).kind;
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn ports_default_to_tcp_and_keep_names() {
        let r = ServiceRecord::from_objects(
            &svc(json!({"clusterIP": "10.96.0.5", "ports": [
                {"name": "http", "port": 80},
                {"name": "DNS", "port": 53, "protocol": "UDP"},
                {"port": 8080, "protocol": "TCP"},
            ]})),
            &[],
        );
        assert_eq!(
            r.ports,
            vec![
                port("http", "tcp", 80),
                port("DNS", "udp", 53),
                port("", "tcp", 8080)
            ]
        );
    }

    #[test]
    fn only_ready_ipv4_endpoints_once_each() {
        let a = slice(json!({
            "metadata": {"name": "web-a", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.1.7"], "conditions": {"ready": true}, "hostname": "web-0"},
                {"addresses": ["10.244.1.5"], "conditions": {}},
                {"addresses": ["10.244.1.6"], "conditions": {"ready": false}},
                {"addresses": ["not-an-ip"]},
            ]
        }));
        let b = slice(json!({
            "metadata": {"name": "web-b", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}}]
        }));
        let v6 = slice(json!({
            "metadata": {"name": "web-c", "namespace": "default"},
            "addressType": "IPv6",
            "endpoints": [{"addresses": ["fd00::1"]}]
        }));
        let r = ServiceRecord::from_objects(&svc(json!({"clusterIP": "None"})), &[&a, &b, &v6]);
        let got: Vec<(String, String)> = r
            .endpoints
            .iter()
            .map(|e| (e.ip.to_string(), e.label()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("10.244.1.5".into(), "10-244-1-5".into()),
                ("10.244.1.7".into(), "web-0".into())
            ]
        );
        assert_eq!(r.endpoints[0].ports, vec![port("http", "tcp", 8080)]);
    }
}
