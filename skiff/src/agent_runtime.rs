//! Builds the container runtime driver (and, for runc, the pod network and image puller) that
//! `skiff agent` and `skiff agent reset` drive.

use std::path::Path;
use std::sync::Arc;

use kubelet::agent::AgentConfig;
use kubelet::cri::{ContainerRuntime, PodNetwork};
use kubelet::image::{Puller, PullerConfig, Store};
use kubelet::network::{CniNetwork, NetworkConfig};
use kubelet::runc::{RuncConfig, RuncRuntime};

use crate::agent::{NetworkFlags, RuntimeKind};

/// A driver and the image puller it needs.
pub type Built = (Arc<dyn ContainerRuntime>, Option<Arc<Puller>>);

/// The driver for `kind` keeping its state under `data_dir`, and the puller it needs (none
/// for the process driver, which runs host commands).
pub fn build(
    kind: RuntimeKind,
    data_dir: &Path,
    config: &AgentConfig,
    network: &NetworkFlags,
) -> Result<Built, runtime::Error> {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| runtime::Error::Request(format!("{what}: {e}"));
    std::fs::create_dir_all(data_dir)
        .map_err(|e| fail(&format!("creating {}", data_dir.display()), &e))?;
    let shim = kubelet::shim::ShimCommand::current_exe(&["agent", "shim"])
        .map_err(|e| fail("finding the shim", &e))?;
    match kind {
        RuntimeKind::Process => {
            let driver = kubelet::process::ProcessRuntime::new(data_dir, shim)
                .map_err(|e| fail("process driver", &e))?;
            Ok((Arc::new(driver), None))
        }
        RuntimeKind::Runc => {
            // Without a pod CIDR (only `skiff agent reset`, which undoes attachments with the
            // configuration they were made with) the cluster's first node CIDR stands in.
            let cidr = match config.pod_cidr.as_deref() {
                Some(text) => text.parse().map_err(|e: String| fail("--pod-cidr", &e))?,
                None => network
                    .cluster_cidr
                    .subnet(network.cluster_cidr.prefix().max(24), 0)
                    .expect("a subnet of the cluster CIDR"),
            };
            let mut net = NetworkConfig::new(cidr, data_dir);
            net.bridge = network.cni_bridge.clone();
            net.cluster_cidr = network.cluster_cidr;
            net.service_cidr = network.service_cidr;
            let network: Arc<dyn PodNetwork> =
                Arc::new(CniNetwork::new(net).map_err(|e| fail("pod network", &e))?);
            let store = Arc::new(
                Store::open(data_dir.join("images")).map_err(|e| fail("image store", &e))?,
            );
            let driver = RuncRuntime::new(RuncConfig {
                data_dir: data_dir.to_path_buf(),
                runc: "runc".into(),
                shim,
                store: store.clone(),
                network: Some(network),
            })
            .map_err(|e| fail("runc driver", &e))?;
            let puller = Arc::new(Puller::new(store, PullerConfig::default()));
            Ok((Arc::new(driver), Some(puller)))
        }
        RuntimeKind::Simulated => Err(runtime::Error::Request(
            "the simulated runtime runs no containers".into(),
        )),
    }
}
