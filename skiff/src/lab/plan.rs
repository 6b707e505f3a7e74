//! What a lab runs, as pure data: node names, addresses, and the exact command line of every
//! component, so `lab up`, `lab node start` and the tests agree on them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The lab's choice of container runtime.
#[derive(clap::ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LabRuntime {
    /// Real containers; each node in its own network namespace (root).
    Runc,
    /// Host processes; all nodes share the host's network (no root needed, no isolation).
    Process,
}

impl LabRuntime {
    pub fn as_str(self) -> &'static str {
        match self {
            LabRuntime::Runc => "runc",
            LabRuntime::Process => "process",
        }
    }
}

/// Where the lab keeps its objects.
#[derive(clap::ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LabStore {
    /// The API server's embedded store.
    Embedded,
    /// A real etcd on loopback, run by the lab.
    Etcd,
}

/// The timings that make healing watchable in seconds (Kubernetes' defaults are minutes).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabTimings {
    /// Seconds a node's Lease may go unrenewed before the node turns Unknown.
    pub node_grace_seconds: u64,
    /// Seconds pods tolerate a not-ready or unreachable node before eviction.
    pub toleration_seconds: u64,
    /// Longest crash-loop back-off.
    pub backoff_max_seconds: u64,
}

impl Default for LabTimings {
    fn default() -> Self {
        Self {
            node_grace_seconds: 10,
            toleration_seconds: 10,
            backoff_max_seconds: 30,
        }
    }
}

/// A lab's shape, fixed at `lab up`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LabSpec {
    /// The lab directory (state, logs, data).
    pub dir: PathBuf,
    pub nodes: usize,
    pub runtime: LabRuntime,
    pub store: LabStore,
    pub timings: LabTimings,
    /// Address and port the API server listens on.
    pub server_ip: Ipv4Addr,
    pub server_port: u16,
    /// Loopback port of the lab's etcd (`--store etcd`).
    pub etcd_port: u16,
}

/// One node's fixed facts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name, `node-1` ...
    pub name: String,
    /// Its InternalIP.
    pub ip: Ipv4Addr,
    /// Its kubelet API port (distinct per node when nodes share the host's network).
    pub kubelet_port: u16,
    /// `/run/netns/...` for runc labs.
    pub netns: Option<PathBuf>,
    /// Its data dir.
    pub data_dir: PathBuf,
}

/// Node `i`'s name (0-based index, 1-based name, like kind's workers).
pub fn node_name(i: usize) -> String {
    format!("node-{}", i + 1)
}

impl LabSpec {
    pub fn server_url(&self) -> String {
        format!("https://{}:{}", self.server_ip, self.server_port)
    }

    /// The join token the server writes; agents join with it as from another machine.
    pub fn node_token_file(&self) -> PathBuf {
        self.server_dir().join("node-token")
    }

    pub fn server_dir(&self) -> PathBuf {
        self.dir.join("server")
    }

    /// The admin kubeconfig the server writes.
    pub fn kubeconfig(&self) -> PathBuf {
        self.server_dir().join("kubeconfig.yaml")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    pub fn log(&self, component: &str) -> PathBuf {
        self.logs_dir().join(format!("{component}.log"))
    }

    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    /// The node specs, given the node namespaces and addresses the network made (runc), or
    /// loopback with distinct kubelet ports (process).
    pub fn node_specs(&self, network: &[(PathBuf, Ipv4Addr)]) -> Vec<NodeSpec> {
        (0..self.nodes)
            .map(|i| {
                let name = node_name(i);
                let (netns, ip, kubelet_port) = match network.get(i) {
                    Some((ns, ip)) => (Some(ns.clone()), *ip, 10250),
                    None => (None, Ipv4Addr::LOCALHOST, 10250 + i as u16 + 1),
                };
                NodeSpec {
                    data_dir: self.dir.join("nodes").join(&name),
                    name,
                    ip,
                    kubelet_port,
                    netns,
                }
            })
            .collect()
    }

    /// `skiff server ...` (arguments after the executable).
    pub fn server_args(&self) -> Vec<String> {
        let mut args = vec![
            "server".to_string(),
            "--listen".into(),
            format!("{}:{}", self.server_ip, self.server_port),
            "--data-dir".into(),
            path(&self.server_dir()),
            "--node-monitor-grace-period".into(),
            self.timings.node_grace_seconds.to_string(),
            "--node-monitor-period".into(),
            "1".into(),
            "--default-toleration-seconds".into(),
            self.timings.toleration_seconds.to_string(),
        ];
        if self.store == LabStore::Etcd {
            args.extend(["--etcd-endpoints".into(), self.etcd_url()]);
        }
        args
    }

    /// `skiff agent ...` for `node`, joining with the node `token` (arguments after the
    /// executable; runc nodes are entered with `nsenter`, see [`LabSpec::agent_command`]).
    pub fn agent_args(&self, node: &NodeSpec, token: &str) -> Vec<String> {
        // A Lease renewed every quarter of its duration, well inside the node grace period.
        let lease = (self.timings.node_grace_seconds * 4 / 5).max(4);
        let status_every = (self.timings.node_grace_seconds / 2).max(1);
        vec![
            "agent".into(),
            "--runtime".into(),
            self.runtime.as_str().into(),
            "--server".into(),
            self.server_url(),
            "--token".into(),
            token.into(),
            "--node-name".into(),
            node.name.clone(),
            "--node-ip".into(),
            node.ip.to_string(),
            "--kubelet-port".into(),
            node.kubelet_port.to_string(),
            "--data-dir".into(),
            path(&node.data_dir),
            "--node-lease-duration-seconds".into(),
            lease.to_string(),
            "--node-status-update-frequency".into(),
            format!("{status_every}s"),
            "--crash-loop-backoff".into(),
            "2s".into(),
            "--crash-loop-backoff-max".into(),
            format!("{}s", self.timings.backoff_max_seconds.max(2)),
        ]
    }

    /// The full command line of `node`'s agent: program and arguments.
    pub fn agent_command(&self, exe: &Path, node: &NodeSpec, token: &str) -> (String, Vec<String>) {
        let agent = self.agent_args(node, token);
        match &node.netns {
            Some(ns) => {
                let mut args = vec![format!("--net={}", ns.display()), "--".into(), path(exe)];
                args.extend(agent);
                ("nsenter".into(), args)
            }
            None => (path(exe), agent),
        }
    }

    /// `etcd ...` for `--store etcd`: one member on loopback.
    pub fn etcd_args(&self) -> Vec<String> {
        let client = self.etcd_url();
        let peer = format!("http://127.0.0.1:{}", self.etcd_port + 1);
        vec![
            "--name".into(),
            "skiff-lab".into(),
            "--data-dir".into(),
            path(&self.dir.join("etcd")),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("skiff-lab={peer}"),
        ]
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// How long a component gets to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(runtime: LabRuntime, store: LabStore) -> LabSpec {
        LabSpec {
            dir: "/lab".into(),
            nodes: 2,
            runtime,
            store,
            timings: LabTimings::default(),
            server_ip: Ipv4Addr::new(10, 250, 0, 1),
            server_port: 6443,
            etcd_port: 2379,
        }
    }

    #[test]
    fn runc_nodes_live_in_their_namespaces() {
        let s = spec(LabRuntime::Runc, LabStore::Embedded);
        let net = vec![
            ("/run/netns/a".into(), Ipv4Addr::new(10, 250, 0, 2)),
            ("/run/netns/b".into(), Ipv4Addr::new(10, 250, 0, 3)),
        ];
        let nodes = s.node_specs(&net);
        assert_eq!(nodes[1].name, "node-2");
        assert_eq!(nodes[1].ip, Ipv4Addr::new(10, 250, 0, 3));
        assert_eq!(nodes[1].data_dir, PathBuf::from("/lab/nodes/node-2"));
        let (program, args) = s.agent_command(Path::new("/bin/skiff"), &nodes[1], "K10x::node:y");
        assert_eq!(program, "nsenter");
        assert_eq!(
            args[..4],
            ["--net=/run/netns/b", "--", "/bin/skiff", "agent"]
        );
        let joined = args.join(" ");
        for want in [
            "--node-ip 10.250.0.3",
            "--kubelet-port 10250",
            "--node-lease-duration-seconds 8",
            "--node-status-update-frequency 5s",
            "--crash-loop-backoff-max 30s",
            "--server https://10.250.0.1:6443 --token K10x::node:y",
        ] {
            assert!(joined.contains(want), "{want} in {joined}");
        }
    }

    #[test]
    fn process_nodes_share_loopback_with_distinct_ports() {
        let s = spec(LabRuntime::Process, LabStore::Embedded);
        let nodes = s.node_specs(&[]);
        assert_eq!(nodes[0].kubelet_port, 10251);
        assert_eq!(nodes[1].kubelet_port, 10252);
        assert!(
            nodes
                .iter()
                .all(|n| n.netns.is_none() && n.ip.is_loopback())
        );
        let (program, args) = s.agent_command(Path::new("/bin/skiff"), &nodes[0], "K10x::node:y");
        assert_eq!(
            (program.as_str(), args[0].as_str()),
            ("/bin/skiff", "agent")
        );
    }

    #[test]
    fn server_gets_lab_timings_and_the_store() {
        let embedded = spec(LabRuntime::Runc, LabStore::Embedded)
            .server_args()
            .join(" ");
        assert!(embedded.contains("--listen 10.250.0.1:6443"));
        assert!(embedded.contains("--node-monitor-grace-period 10"));
        assert!(embedded.contains("--default-toleration-seconds 10"));
        assert!(!embedded.contains("etcd"));
        let etcd = spec(LabRuntime::Runc, LabStore::Etcd);
        assert!(
            etcd.server_args()
                .join(" ")
                .contains("--etcd-endpoints http://127.0.0.1:2379")
        );
        let etcd_args = etcd.etcd_args().join(" ");
        assert!(etcd_args.contains("--data-dir /lab/etcd"));
        assert!(etcd_args.contains("--initial-cluster skiff-lab=http://127.0.0.1:2380"));
    }
}
