//! The name → answer logic of the cluster zone, as a pure function of the cluster.
//!
//! Names (under the cluster domain `<domain>`, `cluster.local` by default), as Kubernetes
//! DNS defines them:
//! - `<svc>.<ns>.svc.<domain>`: A with the ClusterIP; for a headless Service one A per ready
//!   endpoint; for an ExternalName Service a CNAME to the external name. SRV: one per port.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV with the port and the Service name as
//!   target (headless: one per ready endpoint, the endpoint's name as target); the target's
//!   A records go in the additional section.
//! - `<endpoint>.<svc>.<ns>.svc.<domain>` for headless Services: A with the endpoint whose
//!   hostname (or dashed address) is `<endpoint>`.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A with `a.b.c.d`, for any well-formed address (the
//!   "pods insecure" mode Kubernetes installs by default: no Pod lookup).
//! - The domain itself, `svc.<domain>`, `pod.<domain>`, `<ns>.svc.<domain>` (with Services in
//!   `ns`), `<ns>.pod.<domain>` and `_<proto>.<svc>…` exist without records of the asked type
//!   (NODATA); the domain answers SOA queries.
//! - Anything else under the domain: NXDOMAIN. Names outside it: [`Resolution::Outside`], for
//!   the caller to forward or refuse.
//!
//! Records live [`TTL`] seconds, like CoreDNS' default, so answers follow the cluster closely.

use std::net::Ipv4Addr;

use hickory_proto::rr::RecordType;

use crate::records::{ClusterView, EndpointRecord, PortRecord, ServiceKind, ServiceRecord};

/// Seconds every cluster record may be cached.
pub const TTL: u32 = 5;

/// The data of one answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An alias.
    Cname(String),
    /// A service location.
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Relative share among equal priorities.
        weight: u16,
        /// The port.
        port: u16,
        /// The host offering it.
        target: String,
    },
    /// The zone's start of authority.
    Soa,
}

/// One resource record: owner name (no trailing dot), TTL [`TTL`], data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    /// The owner name.
    pub name: String,
    /// The data.
    pub data: Data,
}

impl Rr {
    fn new(name: impl Into<String>, data: Data) -> Self {
        Rr {
            name: name.into(),
            data,
        }
    }
}

/// What the zone says about one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// NOERROR with records (authoritative).
    Answer {
        /// The answer section.
        answers: Vec<Rr>,
        /// The additional section (addresses of SRV targets).
        additionals: Vec<Rr>,
    },
    /// NOERROR, the name exists but has no records of this type (SOA in the authority
    /// section).
    NoData,
    /// The name does not exist in the zone (SOA in the authority section).
    NxDomain,
    /// The name is not in the cluster domain.
    Outside,
}

/// The cluster zone: its domain, lower case, without dots at either end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    domain: String,
}

impl Zone {
    /// The zone of `domain` (`cluster.local`; case and a trailing dot do not matter).
    pub fn new(domain: &str) -> Zone {
        Zone {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
        }
    }

    /// The domain, e.g. `cluster.local`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `name` is in the zone (the domain or below it).
    pub fn contains(&self, name: &str) -> bool {
        self.relative(name).is_some()
    }

    /// The labels of `name` below the domain, left to right (`web.default.svc`), or `None`
    /// when `name` is not in the zone.
    fn relative<'a>(&self, name: &'a str) -> Option<Vec<&'a str>> {
        let name = name.trim_end_matches('.');
        if name.eq_ignore_ascii_case(&self.domain) {
            return Some(Vec::new());
        }
        let cut = name.len().checked_sub(self.domain.len() + 1)?;
        let (head, tail) = name.split_at(cut);
        (tail.as_bytes()[0] == b'.' && tail[1..].eq_ignore_ascii_case(&self.domain))
            .then(|| head.split('.').collect())
    }

    /// Answers the question `name` (as asked, case kept in owner names) of type `qtype`.
    pub fn resolve(&self, view: &dyn ClusterView, name: &str, qtype: RecordType) -> Resolution {
        let Some(labels) = self.relative(name) else {
            return Resolution::Outside;
        };
        if labels.iter().any(|l| l.is_empty()) {
            return Resolution::NxDomain;
        }
        let owner = name.trim_end_matches('.');
        let lower: Vec<String> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            [] if qtype == RecordType::SOA => answer(vec![Rr::new(owner, Data::Soa)]),
            [] | ["svc"] | ["pod"] | [_, "pod"] => Resolution::NoData,
            [ns, "svc"] if view.has_services_in(ns) => Resolution::NoData,
            [ip, _ns, "pod"] => match undashed(ip) {
                Some(ip) if wants_a(qtype) => answer(vec![Rr::new(owner, Data::A(ip))]),
                Some(_) => Resolution::NoData,
                None => Resolution::NxDomain,
            },
            [svc, ns, "svc"] => match view.service(ns, svc) {
                Some(record) => self.service_name(owner, svc, ns, &record, qtype),
                None => Resolution::NxDomain,
            },
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                match view.service(ns, svc) {
                    Some(record) => {
                        self.port_name(&port[1..], &proto[1..], svc, ns, &record, qtype)
                    }
                    None => Resolution::NxDomain,
                }
            }
            [proto, svc, ns, "svc"] if proto.starts_with('_') => {
                let has_protocol = view
                    .service(ns, svc)
                    .is_some_and(|r| r.ports.iter().any(|p| p.protocol == proto[1..]));
                if has_protocol {
                    Resolution::NoData
                } else {
                    Resolution::NxDomain
                }
            }
            [endpoint, svc, ns, "svc"] => match view.service(ns, svc) {
                Some(record) if record.kind == ServiceKind::Headless => {
                    match record.endpoints.iter().find(|e| e.label() == *endpoint) {
                        Some(e) if wants_a(qtype) => answer(vec![Rr::new(owner, Data::A(e.ip))]),
                        Some(_) => Resolution::NoData,
                        None => Resolution::NxDomain,
                    }
                }
                _ => Resolution::NxDomain,
            },
            _ => Resolution::NxDomain,
        }
    }

    /// `<svc>.<ns>.svc.<domain>` itself.
    fn service_name(
        &self,
        owner: &str,
        svc: &str,
        ns: &str,
        record: &ServiceRecord,
        qtype: RecordType,
    ) -> Resolution {
        if let ServiceKind::ExternalName(target) = &record.kind {
            // An alias stands for every type (RFC 1034 §3.6.2).
            return answer(vec![Rr::new(owner, Data::Cname(target.clone()))]);
        }
        if qtype == RecordType::SRV {
            let ports: Vec<&PortRecord> = record.ports.iter().collect();
            return self.srv(svc, ns, record, &ports, |_| true);
        }
        if !wants_a(qtype) {
            return Resolution::NoData;
        }
        let ips: Vec<Ipv4Addr> = match &record.kind {
            ServiceKind::ClusterIp(ips) => ips.clone(),
            _ => record.endpoints.iter().map(|e| e.ip).collect(),
        };
        answer(
            ips.into_iter()
                .map(|ip| Rr::new(owner, Data::A(ip)))
                .collect(),
        )
    }

    /// `_<port>._<proto>.<svc>.<ns>.svc.<domain>`.
    fn port_name(
        &self,
        port: &str,
        proto: &str,
        svc: &str,
        ns: &str,
        record: &ServiceRecord,
        qtype: RecordType,
    ) -> Resolution {
        let matches = |p: &PortRecord| {
            !p.name.is_empty() && p.name.eq_ignore_ascii_case(port) && p.protocol == proto
        };
        let ports: Vec<&PortRecord> = record.ports.iter().filter(|p| matches(p)).collect();
        if ports.is_empty() || matches!(record.kind, ServiceKind::ExternalName(_)) {
            return Resolution::NxDomain;
        }
        if qtype != RecordType::SRV && qtype != RecordType::ANY {
            return Resolution::NoData;
        }
        self.srv(svc, ns, record, &ports, matches)
    }

    /// SRV records for `ports` of a Service: targets are the Service name (ClusterIP) or each
    /// ready endpoint's name (headless, with the endpoint's own port of the same name).
    fn srv(
        &self,
        svc: &str,
        ns: &str,
        record: &ServiceRecord,
        ports: &[&PortRecord],
        matches: impl Fn(&PortRecord) -> bool,
    ) -> Resolution {
        let service_name = format!("{svc}.{ns}.svc.{}", self.domain);
        let owner = |p: &PortRecord| format!("_{}._{}.{service_name}", p.name, p.protocol);
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        match &record.kind {
            ServiceKind::ClusterIp(ips) => {
                for p in ports.iter().filter(|p| !p.name.is_empty()) {
                    answers.push(Rr::new(owner(p), srv_data(p.port, 100, &service_name)));
                }
                if !answers.is_empty() {
                    additionals = ips
                        .iter()
                        .map(|ip| Rr::new(service_name.clone(), Data::A(*ip)))
                        .collect();
                }
            }
            ServiceKind::Headless => {
                let serving: Vec<(&EndpointRecord, &PortRecord)> = record
                    .endpoints
                    .iter()
                    .flat_map(|e| {
                        e.ports
                            .iter()
                            .filter(|p| !p.name.is_empty() && matches(p))
                            .map(move |p| (e, p))
                    })
                    .collect();
                let weight = weight_of(serving.len());
                for (e, p) in serving {
                    let target = format!("{}.{service_name}", e.label());
                    answers.push(Rr::new(owner(p), srv_data(p.port, weight, &target)));
                    let a = Rr::new(target, Data::A(e.ip));
                    if !additionals.contains(&a) {
                        additionals.push(a);
                    }
                }
            }
            ServiceKind::ExternalName(_) => {}
        }
        if answers.is_empty() {
            return Resolution::NoData;
        }
        Resolution::Answer {
            answers,
            additionals,
        }
    }
}

fn srv_data(port: u16, weight: u16, target: &str) -> Data {
    Data::Srv {
        priority: 0,
        weight,
        port,
        target: target.to_string(),
    }
}

/// Each of `n` equal SRV records gets an equal share of 100 (at least 1).
fn weight_of(n: usize) -> u16 {
    u16::try_from(100 / n.max(1)).unwrap_or(1).max(1)
}

fn wants_a(qtype: RecordType) -> bool {
    matches!(qtype, RecordType::A | RecordType::ANY)
}

fn answer(answers: Vec<Rr>) -> Resolution {
    if answers.is_empty() {
        return Resolution::NoData;
    }
    Resolution::Answer {
        answers,
        additionals: Vec::new(),
    }
}

/// `10-244-1-5` → `10.244.1.5`; `None` unless it is exactly four dashed decimal octets.
pub fn undashed(label: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = label.split('-').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::StaticView;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn port(name: &str, protocol: &str, port: u16) -> PortRecord {
        PortRecord {
            name: name.into(),
            protocol: protocol.into(),
            port,
        }
    }

    fn endpoint(addr: &str, hostname: Option<&str>) -> EndpointRecord {
        EndpointRecord {
            ip: ip(addr),
            hostname: hostname.map(String::from),
            ports: vec![port("http", "tcp", 8080)],
        }
    }

    /// `default/web` (ClusterIP, http 80/TCP + dns 53/UDP), `default/db` (headless, two
    /// ready endpoints, one with a hostname), `default/empty` (headless, none ready),
    /// `default/ext` (ExternalName), `other/web` (ClusterIP without an IPv4 address).
    fn cluster() -> StaticView {
        StaticView::default()
            .with(
                "default",
                "web",
                ServiceRecord {
                    kind: ServiceKind::ClusterIp(vec![ip("10.96.0.50")]),
                    ports: vec![
                        port("http", "tcp", 80),
                        port("dns", "udp", 53),
                        port("", "tcp", 81),
                    ],
                    endpoints: vec![endpoint("10.244.1.9", None)],
                },
            )
            .with(
                "default",
                "db",
                ServiceRecord {
                    kind: ServiceKind::Headless,
                    ports: vec![port("http", "tcp", 80)],
                    endpoints: vec![
                        endpoint("10.244.1.5", Some("db-0")),
                        endpoint("10.244.2.6", None),
                    ],
                },
            )
            .with(
                "default",
                "empty",
                ServiceRecord {
                    kind: ServiceKind::Headless,
                    ports: vec![port("http", "tcp", 80)],
                    endpoints: vec![],
                },
            )
            .with(
                "default",
                "ext",
                ServiceRecord {
                    kind: ServiceKind::ExternalName("db.example.com".into()),
                    ports: vec![port("pg", "tcp", 5432)],
                    endpoints: vec![],
                },
            )
            .with(
                "other",
                "web",
                ServiceRecord {
                    kind: ServiceKind::ClusterIp(vec![]),
                    ports: vec![],
                    endpoints: vec![],
                },
            )
    }

    fn a(name: &str, addr: &str) -> Rr {
        Rr::new(name, Data::A(ip(addr)))
    }

    fn srv(name: &str, weight: u16, port: u16, target: &str) -> Rr {
        Rr::new(name, srv_data(port, weight, target))
    }

    fn ans(answers: Vec<Rr>, additionals: Vec<Rr>) -> Resolution {
        Resolution::Answer {
            answers,
            additionals,
        }
    }

    use RecordType::{A, AAAA, ANY, SOA, SRV, TXT};
    use Resolution::{NoData, NxDomain, Outside};

    #[test]
    fn names_and_answers() {
        let zone = Zone::new("cluster.local");
        let view = cluster();
        let web = "web.default.svc.cluster.local";
        let cases: Vec<(&str, RecordType, Resolution)> = vec![
            // A Service: its ClusterIP; case-insensitive, trailing dot optional, owner as asked.
            (web, A, ans(vec![a(web, "10.96.0.50")], vec![])),
            (
                "Web.Default.SVC.cluster.local.",
                A,
                ans(
                    vec![a("Web.Default.SVC.cluster.local", "10.96.0.50")],
                    vec![],
                ),
            ),
            (web, ANY, ans(vec![a(web, "10.96.0.50")], vec![])),
            (web, AAAA, NoData),
            (web, TXT, NoData),
            // SRV on the Service name: every named port.
            (
                web,
                SRV,
                ans(
                    vec![
                        srv("_http._tcp.web.default.svc.cluster.local", 100, 80, web),
                        srv("_dns._udp.web.default.svc.cluster.local", 100, 53, web),
                    ],
                    vec![a(web, "10.96.0.50")],
                ),
            ),
            // SRV on a port name.
            (
                "_http._tcp.web.default.svc.cluster.local",
                SRV,
                ans(
                    vec![srv(
                        "_http._tcp.web.default.svc.cluster.local",
                        100,
                        80,
                        web,
                    )],
                    vec![a(web, "10.96.0.50")],
                ),
            ),
            (
                "_DNS._UDP.web.default.svc.cluster.local",
                SRV,
                ans(
                    vec![srv("_dns._udp.web.default.svc.cluster.local", 100, 53, web)],
                    vec![a(web, "10.96.0.50")],
                ),
            ),
            ("_http._tcp.web.default.svc.cluster.local", A, NoData),
            ("_http._udp.web.default.svc.cluster.local", SRV, NxDomain),
            ("_nope._tcp.web.default.svc.cluster.local", SRV, NxDomain),
            ("_http._tcp.nope.default.svc.cluster.local", SRV, NxDomain),
            ("_tcp.web.default.svc.cluster.local", SRV, NoData),
            ("_sctp.web.default.svc.cluster.local", SRV, NxDomain),
            // Headless: the ready endpoints; by endpoint name; SRV per endpoint.
            (
                "db.default.svc.cluster.local",
                A,
                ans(
                    vec![
                        a("db.default.svc.cluster.local", "10.244.1.5"),
                        a("db.default.svc.cluster.local", "10.244.2.6"),
                    ],
                    vec![],
                ),
            ),
            (
                "db-0.db.default.svc.cluster.local",
                A,
                ans(
                    vec![a("db-0.db.default.svc.cluster.local", "10.244.1.5")],
                    vec![],
                ),
            ),
            (
                "10-244-2-6.db.default.svc.cluster.local",
                A,
                ans(
                    vec![a("10-244-2-6.db.default.svc.cluster.local", "10.244.2.6")],
                    vec![],
                ),
            ),
            ("db-0.db.default.svc.cluster.local", AAAA, NoData),
            ("db-9.db.default.svc.cluster.local", A, NxDomain),
            ("10-244-1-9.web.default.svc.cluster.local", A, NxDomain),
            (
                "_http._tcp.db.default.svc.cluster.local",
                SRV,
                ans(
                    vec![
                        srv(
                            "_http._tcp.db.default.svc.cluster.local",
                            50,
                            8080,
                            "db-0.db.default.svc.cluster.local",
                        ),
                        srv(
                            "_http._tcp.db.default.svc.cluster.local",
                            50,
                            8080,
                            "10-244-2-6.db.default.svc.cluster.local",
                        ),
                    ],
                    vec![
                        a("db-0.db.default.svc.cluster.local", "10.244.1.5"),
                        a("10-244-2-6.db.default.svc.cluster.local", "10.244.2.6"),
                    ],
                ),
            ),
            ("empty.default.svc.cluster.local", A, NoData),
            ("_http._tcp.empty.default.svc.cluster.local", SRV, NoData),
            // ExternalName: an alias whatever the type.
            (
                "ext.default.svc.cluster.local",
                A,
                ans(
                    vec![Rr::new(
                        "ext.default.svc.cluster.local",
                        Data::Cname("db.example.com".into()),
                    )],
                    vec![],
                ),
            ),
            ("_pg._tcp.ext.default.svc.cluster.local", SRV, NxDomain),
            // A Service without an IPv4 address: exists, no A.
            ("web.other.svc.cluster.local", A, NoData),
            // Missing Services and namespaces.
            ("nope.default.svc.cluster.local", A, NxDomain),
            ("web.nope.svc.cluster.local", A, NxDomain),
            // Pods: any dashed address, in any namespace.
            (
                "10-244-1-5.default.pod.cluster.local",
                A,
                ans(
                    vec![a("10-244-1-5.default.pod.cluster.local", "10.244.1.5")],
                    vec![],
                ),
            ),
            ("10-244-1-5.default.pod.cluster.local", AAAA, NoData),
            ("10-244-1-256.default.pod.cluster.local", A, NxDomain),
            ("10-244-1.default.pod.cluster.local", A, NxDomain),
            ("a-b-c-d.default.pod.cluster.local", A, NxDomain),
            ("x.10-244-1-5.default.pod.cluster.local", A, NxDomain),
            // The structure above the names.
            (
                "cluster.local",
                SOA,
                ans(vec![Rr::new("cluster.local", Data::Soa)], vec![]),
            ),
            ("cluster.local", A, NoData),
            ("svc.cluster.local", A, NoData),
            ("pod.cluster.local", A, NoData),
            ("default.pod.cluster.local", A, NoData),
            ("default.svc.cluster.local", A, NoData),
            ("nope.svc.cluster.local", A, NxDomain),
            ("web.default.cluster.local", A, NxDomain),
            ("a.b.c.d.e.f.svc.cluster.local", A, NxDomain),
            ("web..svc.cluster.local", A, NxDomain),
            ("nothing.cluster.local", A, NxDomain),
            // Outside the domain (including look-alikes).
            ("example.com", A, Outside),
            ("notcluster.local", A, Outside),
            ("local", A, Outside),
            ("web.default.svc.cluster.local.example.com", A, Outside),
        ];
        for (name, qtype, want) in cases {
            assert_eq!(zone.resolve(&view, name, qtype), want, "{name} {qtype}");
        }
    }

    #[test]
    fn other_domains() {
        let zone = Zone::new("Skiff.Test.");
        assert_eq!(zone.domain(), "skiff.test");
        let view = cluster();
        assert_eq!(
            zone.resolve(&view, "web.default.svc.skiff.test", A),
            ans(vec![a("web.default.svc.skiff.test", "10.96.0.50")], vec![])
        );
        assert_eq!(
            zone.resolve(&view, "web.default.svc.cluster.local", A),
            Outside
        );
    }

    #[test]
    fn dashed_addresses() {
        let cases = [
            ("10-244-1-5", Some("10.244.1.5")),
            ("0-0-0-0", Some("0.0.0.0")),
            ("255-255-255-255", Some("255.255.255.255")),
            ("256-0-0-0", None),
            ("1-2-3", None),
            ("1-2-3-4-5", None),
            ("1--3-4", None),
            ("+1-2-3-4", None),
            ("0001-2-3-4", None),
        ];
        for (label, want) in cases {
            assert_eq!(undashed(label), want.map(ip), "{label}");
        }
    }

    #[test]
    fn srv_weights_share_100() {
        let cases = [(0, 100), (1, 100), (2, 50), (3, 33), (150, 1)];
        for (n, want) in cases {
            assert_eq!(weight_of(n), want, "{n}");
        }
    }
}
