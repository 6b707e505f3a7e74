//! ClusterIP and NodePort allocation for Services.
//!
//! Each allocated address or port is its own store key, created with create-if-absent, so two API
//! servers on one etcd can never hand out the same one. The range arithmetic is pure and lives
//! in [`Ipv4Range`] and [`PortRange`].

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::error::Error;
use crate::storage::{StorageError, Store};

const IP_PREFIX: &str = "/registry/ipallocations/";
const PORT_PREFIX: &str = "/registry/nodeportallocations/";

/// An IPv4 CIDR such as `10.96.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Range {
    base: u32,
    prefix_len: u32,
}

impl FromStr for Ipv4Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (want a.b.c.d/n)"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix_len: u32 = len.parse().map_err(|e| format!("{s:?}: {e}"))?;
        if !(8..=30).contains(&prefix_len) {
            return Err(format!("{s:?}: prefix length must be between 8 and 30"));
        }
        let mask = u32::MAX << (32 - prefix_len);
        Ok(Self {
            base: u32::from(addr) & mask,
            prefix_len,
        })
    }
}

impl std::fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix_len)
    }
}

impl Ipv4Range {
    /// Number of usable addresses (network and broadcast excluded).
    pub fn usable(&self) -> u32 {
        (1u32 << (32 - self.prefix_len)) - 2
    }

    /// The `n`th usable address, 0-based (`n = 0` is `.1`).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + n % self.usable())
    }

    /// Whether `ip` is a usable address of the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + (1u32 << (32 - self.prefix_len)) - 1
    }
}

/// A NodePort range such as `30000-32767`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a port range (want first-last)"))?;
        let first: u16 = a.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        let last: u16 = b.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        if first == 0 || last < first {
            return Err(format!("{s:?}: empty port range"));
        }
        Ok(Self { first, last })
    }
}

impl PortRange {
    fn size(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }
}

/// Hands out and takes back ClusterIPs and NodePorts.
pub struct Allocator {
    store: Arc<dyn Store>,
    pub service_range: Ipv4Range,
    pub node_ports: PortRange,
}

impl Allocator {
    /// An allocator over the given ranges.
    pub fn new(store: Arc<dyn Store>, service_range: Ipv4Range, node_ports: PortRange) -> Self {
        Self {
            store,
            service_range,
            node_ports,
        }
    }

    /// Reserves `ip` if given (422 when taken or outside the range), else a free address.
    pub async fn allocate_ip(&self, ip: Option<&str>, field: &str) -> Result<String, Error> {
        if let Some(ip) = ip {
            let parsed: Ipv4Addr = ip
                .parse()
                .map_err(|_| invalid(field, ip, "must be a valid IP address"))?;
            if !self.service_range.contains(parsed) {
                return Err(invalid(
                    field,
                    ip,
                    &format!(
                        "provided IP is not in the valid range. The range of valid IPs is {}",
                        self.service_range
                    ),
                ));
            }
            return match self.claim(&format!("{IP_PREFIX}{ip}")).await? {
                true => Ok(ip.to_string()),
                false => Err(invalid(field, ip, "provided IP is already allocated")),
            };
        }
        let size = self.service_range.usable();
        let start = rand::random::<u32>() % size;
        for i in 0..size {
            // Offset 0 (the range's first address) is kept for the `kubernetes` Service.
            let n = (start + i) % size;
            if n == 0 {
                continue;
            }
            let ip = self.service_range.nth(n).to_string();
            if self.claim(&format!("{IP_PREFIX}{ip}")).await? {
                return Ok(ip);
            }
        }
        Err(Error::Internal(format!(
            "no ClusterIP left in {}",
            self.service_range
        )))
    }

    /// Reserves `port` if given, else a free NodePort.
    pub async fn allocate_port(&self, port: Option<u16>, field: &str) -> Result<u16, Error> {
        if let Some(port) = port {
            if port < self.node_ports.first || port > self.node_ports.last {
                return Err(invalid(
                    field,
                    &port.to_string(),
                    &format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        self.node_ports.first, self.node_ports.last
                    ),
                ));
            }
            return match self.claim(&format!("{PORT_PREFIX}{port}")).await? {
                true => Ok(port),
                false => Err(invalid(
                    field,
                    &port.to_string(),
                    "provided port is already allocated",
                )),
            };
        }
        let size = self.node_ports.size();
        let start = rand::random::<u32>() % size;
        for i in 0..size {
            let port = self.node_ports.first + ((start + i) % size) as u16;
            if self.claim(&format!("{PORT_PREFIX}{port}")).await? {
                return Ok(port);
            }
        }
        Err(Error::Internal("no NodePort left".into()))
    }

    /// Takes back an address or port; missing keys are fine (already released).
    pub async fn release_ip(&self, ip: &str) {
        let _ = self.store.delete(&format!("{IP_PREFIX}{ip}"), None).await;
    }

    /// Takes back a NodePort.
    pub async fn release_port(&self, port: u16) {
        let _ = self
            .store
            .delete(&format!("{PORT_PREFIX}{port}"), None)
            .await;
    }

    async fn claim(&self, key: &str) -> Result<bool, Error> {
        match self.store.create(key, Bytes::from_static(b"{}")).await {
            Ok(_) => Ok(true),
            Err(StorageError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(Error::Internal(e.to_string())),
        }
    }
}

/// The NodePorts a Service holds, in port order.
pub(crate) fn node_ports(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// What an updated Service still needs from the NodePort allocator before it can be written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NodePortNeed {
    /// Ports asked for by value that this Service did not hold: `(field path, port)`.
    pub explicit: Vec<(String, u16)>,
    /// How many ports need any free NodePort.
    pub any: usize,
}

impl NodePortNeed {
    pub fn is_empty(&self) -> bool {
        self.explicit.is_empty() && self.any == 0
    }
}

/// Settles the NodePorts of an updated Service against the stored one, as Kubernetes' service
/// registry does on update: a type without node ports drops the ones the old object held (and
/// the external traffic policy it had); a
/// NodePort or LoadBalancer Service keeps the ports it held, and takes new or missing ones from
/// `granted` (ports already claimed for this request). Whatever `granted` cannot cover is
/// returned, so the caller can claim it (claims need the store, which this must not touch) and
/// try again.
pub(crate) fn settle_node_ports(new: &mut Value, old: &Value, granted: &[u16]) -> NodePortNeed {
    let held = node_ports(old);
    let ty = new
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let mut need = NodePortNeed::default();
    let port_of = |p: &Value| {
        p.get("nodePort")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n != 0)
    };
    if ty != "NodePort" && ty != "LoadBalancer" {
        // Fields only external types carry go with the type when the update left them as
        // they were (Kubernetes' dropTypeDependentFields).
        for field in ["externalTrafficPolicy", "allocateLoadBalancerNodePorts"] {
            let old_value = old.pointer(&format!("/spec/{field}"));
            if old_value.is_some()
                && new.pointer(&format!("/spec/{field}")) == old_value
                && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.remove(field);
            }
        }
    }
    let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return need;
    };
    if ty != "NodePort" && ty != "LoadBalancer" {
        for port in ports.iter_mut() {
            if let (Some(n), Some(obj)) = (port_of(port), port.as_object_mut())
                && held.contains(&n)
            {
                obj.remove("nodePort");
            }
        }
        return need;
    }
    let used: Vec<u16> = ports.iter().filter_map(port_of).collect();
    for (i, port) in ports.iter().enumerate() {
        if let Some(n) = port_of(port)
            && !held.contains(&n)
            && !granted.contains(&n)
        {
            need.explicit.push((format!("spec.ports[{i}].nodePort"), n));
        }
    }
    let mut spare = granted.iter().filter(|g| !used.contains(g)).copied();
    for port in ports.iter_mut() {
        if port_of(port).is_some() {
            continue;
        }
        match spare.next() {
            Some(n) => port["nodePort"] = serde_json::json!(n),
            None => need.any += 1,
        }
    }
    need
}

fn invalid(field: &str, value: &str, detail: &str) -> Error {
    Error::Invalid {
        kind: "Service".into(),
        name: String::new(),
        causes: vec![crate::error::Cause::invalid(
            field,
            &serde_json::Value::String(value.to_string()),
            detail,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let r: Ipv4Range = "10.96.0.0/16".parse().unwrap();
        assert_eq!(r.usable(), 65534);
        assert_eq!(r.nth(0), Ipv4Addr::new(10, 96, 0, 1));
        assert!(r.contains(Ipv4Addr::new(10, 96, 255, 254)));
        assert!(!r.contains(Ipv4Addr::new(10, 96, 255, 255)));
        assert!(!r.contains(Ipv4Addr::new(10, 97, 0, 1)));
        assert!("10.96.0.0".parse::<Ipv4Range>().is_err());
        assert!("10.96.0.0/33".parse::<Ipv4Range>().is_err());
        let p: PortRange = "30000-32767".parse().unwrap();
        assert_eq!(p.size(), 2768);
        assert!("5-1".parse::<PortRange>().is_err());
    }

    fn svc(ty: &str, ports: serde_json::Value) -> Value {
        serde_json::json!({"spec": {"type": ty, "ports": ports}})
    }

    #[test]
    fn settling_node_ports_on_update() {
        use serde_json::json;
        let old_np = svc("NodePort", json!([{"port": 80, "nodePort": 30080}]));
        let old_ci = svc("ClusterIP", json!([{"port": 80}]));
        // (new, old, granted, resulting node ports, need)
        type Case<'a> = (Value, &'a Value, Vec<u16>, Vec<u16>, NodePortNeed);
        let cases: Vec<Case> = vec![
            // Kept port: nothing to do.
            (
                svc("NodePort", json!([{"port": 80, "nodePort": 30080}])),
                &old_np,
                vec![],
                vec![30080],
                NodePortNeed::default(),
            ),
            // ClusterIP -> NodePort: one port wanted, none granted yet.
            (
                svc("NodePort", json!([{"port": 80}])),
                &old_ci,
                vec![],
                vec![],
                NodePortNeed {
                    explicit: vec![],
                    any: 1,
                },
            ),
            // ... and then granted.
            (
                svc("NodePort", json!([{"port": 80}])),
                &old_ci,
                vec![31000],
                vec![31000],
                NodePortNeed::default(),
            ),
            // A new explicit port must be claimed.
            (
                svc(
                    "NodePort",
                    json!([{"port": 80, "nodePort": 30080}, {"port": 81, "nodePort": 30081}]),
                ),
                &old_np,
                vec![],
                vec![30080, 30081],
                NodePortNeed {
                    explicit: vec![("spec.ports[1].nodePort".into(), 30081)],
                    any: 0,
                },
            ),
            // NodePort -> ClusterIP drops the held port.
            (
                svc("ClusterIP", json!([{"port": 80, "nodePort": 30080}])),
                &old_np,
                vec![],
                vec![],
                NodePortNeed::default(),
            ),
            // A granted port is not handed out twice.
            (
                svc(
                    "NodePort",
                    json!([{"port": 80, "nodePort": 31000}, {"port": 81}]),
                ),
                &old_ci,
                vec![31000],
                vec![31000],
                NodePortNeed {
                    explicit: vec![],
                    any: 1,
                },
            ),
        ];
        for (i, (mut new, old, granted, ports, need)) in cases.into_iter().enumerate() {
            let got = settle_node_ports(&mut new, old, &granted);
            assert_eq!(got, need, "case {i}");
            assert_eq!(node_ports(&new), ports, "case {i}");
        }
    }
}
