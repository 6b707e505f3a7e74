//! The Skiff node agent: runs pods through a container runtime and programs Services on the node.
//!
//! The real agent is being built (issue 6): [`image`] pulls, loads and stores OCI images and
//! mounts container root filesystems; [`network`] gives sandboxes a network namespace and IP
//! through the CNI plugins and renders their `/etc/hosts` and `/etc/resolv.conf`; [`server`]
//! is the kubelet HTTPS API the API server proxies `pods/log` and `pods/exec` to, reading
//! container logs with [`logs`].
//! [`simulated`] provides hollow nodes (register, heartbeat, report pods Running) for tests and
//! benchmarks of everything above the node.

pub mod agent;
pub mod cri;
pub mod error;
pub mod image;
pub mod logs;
pub mod network;
pub mod node;
pub mod pod;
pub mod process;
pub mod proxy;
pub mod runc;
pub mod server;
pub mod shim;
pub mod simulated;

pub use error::{Error, Result};
