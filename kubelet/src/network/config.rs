//! The node's CNI network configuration, as pure data: which plugins run with which settings.
//!
//! One network config list per node: `bridge` (with `host-local` IPAM over the node's pod CIDR)
//! followed by `loopback`. Chaining `loopback` into the same list (instead of the separate
//! loopback network containerd uses) keeps one ADD/DEL and one cached result per sandbox; the
//! loopback plugin passes the bridge result through unchanged.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use runtime::net::Ipv4Cidr;
use serde_json::{Value, json};

/// The CNI specification version Skiff speaks to plugins.
pub const CNI_VERSION: &str = "1.0.0";

/// Everything the node's pod network is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// CNI network name (host-local keeps its leases under `<ipam dir>/<name>`).
    pub name: String,
    /// The node's bridge device, gateway of every pod on the node.
    pub bridge: String,
    /// This node's pod CIDR (`Node.spec.podCIDR`, a /24 of the cluster CIDR).
    pub pod_cidr: Ipv4Cidr,
    /// The whole cluster pod CIDR, unreachable on the node (DESIGN.md "Network rules").
    pub cluster_cidr: Ipv4Cidr,
    /// The service CIDR, unreachable on the node as well.
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
