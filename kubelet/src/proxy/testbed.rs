//! A node in a box for exercising the proxy with real packets: a throwaway "node" network
//! namespace whose pods are real CNI sandboxes ([`CniNetwork`], the agent's own pod network)
//! and whose servers answer each connection with their pod's name. `skiff bench services`
//! and the Service tests use it; it needs root and the CNI plugins.
//!
//! Pods here are only network namespaces with a thread listening in them (no containers),
//! so thousands of requests cost no process spawns and the figures are the network's.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cri::PodNetwork;
use crate::error::{Error, IoContext, Result};
use crate::network::{CniNetwork, Ipv4Cidr, NetworkConfig, netns};

/// A node namespace with its pod network. Pods and the namespace are removed on drop.
pub struct Bed {
    dir: tempfile::TempDir,
    node: PathBuf,
    network: CniNetwork,
    pod_cidr: Ipv4Cidr,
    pods: std::sync::Mutex<Vec<String>>,
}

/// A pod of the bed: its namespace and address.
#[derive(Clone, Debug)]
pub struct BedPod {
    /// The pod's (sandbox's) name.
    pub name: String,
    /// Its network namespace.
    pub netns: PathBuf,
    /// Its address.
    pub ip: Ipv4Addr,
}

impl Bed {
    /// A node namespace whose pods get addresses from `pod_cidr` (inside 10.244.0.0/16).
    pub fn new(pod_cidr: &str) -> Result<Bed> {
        let pod_cidr: Ipv4Cidr = pod_cidr.parse().map_err(Error::Network)?;
        let dir = tempfile::Builder::new()
            .prefix("skiff-svcbed-")
            .tempdir()
            .context(|| "creating a temp dir".into())?;
        let nodes = dir.path().join("nodes");
        std::fs::create_dir(&nodes).context(|| format!("creating {}", nodes.display()))?;
        let node = netns::create(&nodes, "node")?;
        let mut config = NetworkConfig::new(pod_cidr, dir.path().join("agent"));
        config.netns_dir = dir.path().join("netns");
        config.node_netns = Some(node.clone());
        let network = match CniNetwork::new(config) {
            Ok(n) => n,
            Err(e) => {
                let _ = netns::delete(&node);
                return Err(e);
            }
        };
        Ok(Bed {
            dir,
            node,
            network,
            pod_cidr,
            pods: Default::default(),
        })
    }

    /// The node's network namespace (where the proxy's table goes).
    pub fn node_netns(&self) -> &Path {
        &self.node
    }

    /// The node's address on the pod bridge (the pods' gateway): a node address pods reach.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.pod_cidr.network()) + 1)
    }

    /// Creates a pod (a CNI sandbox) named `name`.
    pub fn add_pod(&self, name: &str) -> Result<BedPod> {
        let (netns, ip) = self.network.setup(name)?;
        self.pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.to_string());
        let std::net::IpAddr::V4(ip) = ip else {
            return Err(Error::Network(format!("pod {name} got no IPv4 address")));
        };
        Ok(BedPod {
            name: name.to_string(),
            netns,
            ip,
        })
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let pods = std::mem::take(
            &mut *self
                .pods
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for pod in pods {
            let _ = self.network.teardown(&pod);
        }
        let _ = netns::delete(&self.node);
        let _ = netns::release_dir(&self.dir.path().join("netns"));
    }
}

/// Runs `f` on a thread inside the network namespace at `netns` and returns its result.
pub fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        netns::enter(&netns)?;
        Ok(f())
    })
    .join()
    .map_err(|_| std::io::Error::other("netns thread panicked"))?
}

/// A server in a pod answering every connection with `name` and a newline, then closing.
/// Stops when dropped.
pub struct NameServer {
    listener: TcpListener,
    thread: Option<JoinHandle<()>>,
}

impl NameServer {
    /// Listens on `0.0.0.0:port` inside `netns`.
    pub fn start(netns: &Path, port: u16, name: &str) -> std::io::Result<NameServer> {
        let listener = in_netns(netns, move || TcpListener::bind(("0.0.0.0", port)))??;
        let accepting = listener.try_clone()?;
        let reply = format!("{name}\n");
        let thread = std::thread::spawn(move || {
            while let Ok((mut conn, _)) = accepting.accept() {
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        Ok(NameServer {
            listener,
            thread: Some(thread),
        })
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        // SAFETY: shutting down our own listening socket wakes the blocked accept (EINVAL).
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request: connect to `addr`, read the answer to its end (trimmed).
pub fn fetch(addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let mut conn = TcpStream::connect_timeout(&addr, timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer.trim().to_string())
}

/// `count` requests to `addr` one after another from inside `netns`.
pub fn fetch_many(
    netns: &Path,
    addr: SocketAddr,
    count: usize,
    timeout: Duration,
) -> std::io::Result<Vec<std::io::Result<String>>> {
    in_netns(netns, move || {
        (0..count).map(|_| fetch(addr, timeout)).collect()
    })
}
