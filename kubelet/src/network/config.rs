//! The node's CNI network configuration, as pure data: which plugins run with which settings.
//!
//! One network config list per node: `bridge` (with `host-local` IPAM over the node's pod CIDR)
//! followed by `loopback`. Chaining `loopback` into the same list (instead of the separate
//! loopback network containerd uses) keeps one ADD/DEL and one cached result per sandbox; the
//! loopback plugin passes the bridge result through unchanged.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Value, json};

/// The CNI specification version Skiff speaks to plugins.
pub const CNI_VERSION: &str = "1.0.0";

/// An IPv4 network in CIDR notation (`10.244.1.0/24`), host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// Everything the node's pod network is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// CNI network name (host-local keeps its leases under `<ipam dir>/<name>`).
    pub name: String,
    /// The node's bridge device, gateway of every pod on the node.
    pub bridge: String,
    /// This node's pod CIDR (`Node.spec.podCIDR`, a /24 of the cluster CIDR).
    pub pod_cidr: Ipv4Cidr,
    /// The whole cluster pod CIDR, blackholed on the node (DESIGN.md "Network rules").
    pub cluster_cidr: Ipv4Cidr,
    /// The service CIDR, blackholed on the node as well.
    pub service_cidr: Ipv4Cidr,
    /// The agent's data directory; network state lives in `network/` under it.
    pub data_dir: PathBuf,
    /// Where sandbox network namespaces are bind-mounted (`<dir>/<sandbox id>`).
    pub netns_dir: PathBuf,
    /// Directories searched for plugin binaries (`CNI_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// The network namespace the node's network lives in (bridge, routes, plugins run there);
    /// `None` = the agent process's own. Tests and lab tooling set it to keep the host's
    /// namespace untouched.
    pub node_netns: Option<PathBuf>,
    /// How long one plugin may run before it is killed.
    pub plugin_timeout: Duration,
}

impl NetworkConfig {
    /// The defaults for a node with `pod_cidr`, keeping state under `data_dir`.
    pub fn new(pod_cidr: Ipv4Cidr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: "skiff".into(),
            bridge: "skiff0".into(),
            pod_cidr,
            cluster_cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16).expect("valid"),
            service_cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 16).expect("valid"),
            data_dir: data_dir.into(),
            netns_dir: PathBuf::from("/run/skiff/netns"),
            plugin_dirs: vec![PathBuf::from("/usr/lib/cni")],
            node_netns: None,
            plugin_timeout: Duration::from_secs(60),
        }
    }

    /// host-local's lease directory.
    pub fn ipam_dir(&self) -> PathBuf {
        network_dir(&self.data_dir).join("ipam")
    }

    /// The cache of ADD results (one file per sandbox).
    pub fn results_dir(&self) -> PathBuf {
        network_dir(&self.data_dir).join("results")
    }

    /// Checks what plugins would reject late or, worse, accept: names usable as file and device
    /// names, a node CIDR inside the cluster CIDR.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!("invalid network name {:?}", self.name));
        }
        // Linux interface names are at most 15 bytes.
        if self.bridge.is_empty() || self.bridge.len() > 15 || self.bridge.contains(['/', ' ']) {
            return Err(format!("invalid bridge name {:?}", self.bridge));
        }
        if !self.cluster_cidr.covers(&self.pod_cidr) {
            return Err(format!(
                "node pod CIDR {} is not inside the cluster CIDR {}",
                self.pod_cidr, self.cluster_cidr
            ));
        }
        Ok(())
    }
}

fn network_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("network")
}

/// The CNI network configuration list for the node.
///
/// - `isGateway`: the bridge gets the CIDR's first address and pods route through it.
/// - `ipMasq: false`: masquerading would let pod traffic leave the machine with the node's
///   address; pod addresses must stay private (DESIGN.md).
/// - `hairpinMode`: a pod reaching itself through a Service VIP is DNATed back out of the port
///   it came from.
/// - The default route (IPAM `routes`) sends everything else, Service IPs included, to the node.
pub fn network_config_list(config: &NetworkConfig) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": config.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": config.bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": config.pod_cidr }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": config.ipam_dir(),
                },
            },
            { "type": "loopback" },
        ],
    })
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

    fn node_config() -> NetworkConfig {
        NetworkConfig::new("10.244.3.0/24".parse().unwrap(), "/var/lib/skiff/agent")
    }

    #[test]
    fn config_list_snapshot() {
        let list = network_config_list(&node_config());
        let want = r#"{
  "cniVersion": "1.0.0",
  "name": "skiff",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "skiff0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [
          [
            {
              "subnet": "10.244.3.0/24"
            }
          ]
        ],
        "routes": [
          {
            "dst": "0.0.0.0/0"
          }
        ],
        "dataDir": "/var/lib/skiff/agent/network/ipam"
      }
    },
    {
      "type": "loopback"
    }
  ]
}"#;
        assert_eq!(serde_json::to_string_pretty(&list).unwrap(), want);
    }

    #[test]
    fn validation() {
        let ok = node_config();
        assert_eq!(ok.validate(), Ok(()));
        type Change = fn(&mut NetworkConfig);
        let cases: [(&str, Change); 4] = [
            ("network name", |c| c.name = "a/b".into()),
            ("bridge name", |c| c.bridge = "a-very-long-bridge".into()),
            ("not inside", |c| {
                c.pod_cidr = "10.245.0.0/24".parse().unwrap()
            }),
            ("network name", |c| c.name = String::new()),
        ];
        for (want, change) in cases {
            let mut config = node_config();
            change(&mut config);
            let err = config.validate().unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
