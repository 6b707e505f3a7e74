//! IPv4 networks in CIDR notation, shared by the node's pod network (kubelet), the node IPAM
//! controller and the agent's routes: one small type instead of a dependency or a copy per
//! crate.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation (`10.244.1.0/24`), host bits zero.
/// Ordered by network address, then prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// A CIDR from its network address and prefix length; `None` when host bits are set or
    /// the prefix is over 32.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Option<Self> {
        if prefix > 32 || u32::from(network) & !Self::mask(prefix) != 0 {
            return None;
        }
        Some(Self { network, prefix })
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.network)
    }

    /// Whether `other` lies entirely inside this network.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("invalid IPv4 CIDR {text:?}: {why}");
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("bad address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad("prefix must be 0-32"))?;
        Self::new(addr, prefix).ok_or_else(|| bad("host bits are set"))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl serde::Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Ipv4Cidr {
    /// Number of addresses (2^(32-prefix)), as u64 so /0 fits.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `index`-th subnet of prefix length `prefix` inside this network (`None` when
    /// `prefix` is shorter than this network's or `index` is past the last one).
    pub fn subnet(&self, prefix: u8, index: u64) -> Option<Ipv4Cidr> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if index >= count {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        let base = u64::from(u32::from(self.network)) + index * step;
        Ipv4Cidr::new(Ipv4Addr::from(base as u32), prefix)
    }

    /// Where `other` (of prefix `other.prefix()`) sits among this network's subnets of that
    /// size: the inverse of [`Ipv4Cidr::subnet`]; `None` when it is not inside.
    pub fn subnet_index(&self, other: &Ipv4Cidr) -> Option<u64> {
        if !self.covers(other) {
            return None;
        }
        let offset = u32::from(other.network) - u32::from(self.network);
        Some(u64::from(offset) >> (32 - u32::from(other.prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs() {
        let cases = [
            ("10.244.1.0/24", Ok("10.244.1.0/24")),
            ("10.244.0.0/16", Ok("10.244.0.0/16")),
            ("0.0.0.0/0", Ok("0.0.0.0/0")),
            ("10.244.1.7/32", Ok("10.244.1.7/32")),
            ("10.244.1.1/24", Err("host bits are set")),
            ("10.244.1.0", Err("expected ADDRESS/PREFIX")),
            ("10.244.1.0/33", Err("prefix must be 0-32")),
            ("10.244.1/24", Err("bad address")),
            ("fd00::/64", Err("bad address")),
        ];
        for (text, want) in cases {
            let got = text.parse::<Ipv4Cidr>().map(|c| c.to_string());
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(w), "{text}"),
                Err(w) => assert!(got.as_ref().unwrap_err().contains(w), "{text}: {got:?}"),
            }
        }
    }

    #[test]
    fn containment() {
        let cluster: Ipv4Cidr = "10.244.0.0/16".parse().unwrap();
        let cases = [
            ("10.244.3.0/24", true),
            ("10.244.0.0/16", true),
            ("10.0.0.0/8", false),
            ("10.245.0.0/24", false),
        ];
        for (node, want) in cases {
            assert_eq!(cluster.covers(&node.parse().unwrap()), want, "{node}");
        }
        assert!(cluster.contains("10.244.255.255".parse().unwrap()));
        assert!(!cluster.contains("10.96.0.1".parse().unwrap()));
    }

    #[test]
    fn subnets() {
        let cluster: Ipv4Cidr = "10.244.0.0/16".parse().unwrap();
        let cases = [
            (24, 0, Some("10.244.0.0/24")),
            (24, 1, Some("10.244.1.0/24")),
            (24, 255, Some("10.244.255.0/24")),
            (24, 256, None),
            (26, 5, Some("10.244.1.64/26")),
            (16, 0, Some("10.244.0.0/16")),
            (15, 0, None),
            (33, 0, None),
        ];
        for (prefix, index, want) in cases {
            let got = cluster.subnet(prefix, index).map(|c| c.to_string());
            assert_eq!(got.as_deref(), want, "/{prefix} #{index}");
            if let Some(sub) = cluster.subnet(prefix, index) {
                assert_eq!(cluster.subnet_index(&sub), Some(index));
            }
        }
        let outside: Ipv4Cidr = "10.245.0.0/24".parse().unwrap();
        assert_eq!(cluster.subnet_index(&outside), None);
        assert_eq!(cluster.size(), 65536);
        assert_eq!("0.0.0.0/0".parse::<Ipv4Cidr>().unwrap().size(), 1 << 32);
    }
}
