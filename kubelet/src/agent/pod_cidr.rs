//! An agent started without `--pod-cidr` takes its Node's `spec.podCIDR`, which the
//! controllers' node IPAM assigns after the Node registers (Kubernetes' kubelet does the same
//! outside standalone mode). Until then the Node reports `Ready=False` (the scheduler places
//! nothing on it) and the agent does not start its pod network.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use runtime::{Api, Client};
use tracing::{info, warn};

use super::{AgentConfig, node_facts};
use crate::node::{host_facts, register_node};

/// Why the Node is not ready while it waits.
pub const WAITING_FOR_POD_CIDR: &str =
    "network not ready: waiting for the Node's spec.podCIDR (assigned by node IPAM)";

/// How often the Node is re-read while waiting.
const POLL: Duration = Duration::from_millis(250);

/// How often the wait is logged again.
const REMIND: Duration = Duration::from_secs(30);

/// Registers the Node as not ready (unless it exists) and waits until it has a pod CIDR;
/// returns it. Waits as long as it takes: an agent without a CIDR cannot run pods anyway.
pub async fn await_pod_cidr(client: &Client, config: &AgentConfig) -> runtime::Result<String> {
    let mut facts = node_facts(config, &host_facts(&config.data_dir), "");
    facts.not_ready = Some(WAITING_FOR_POD_CIDR.into());
    let api: Api<Node> = Api::all(client.clone());
    let started = tokio::time::Instant::now();
    let mut registered = false;
    let mut reminded = started;
    info!(
        node = %config.node_name,
        "no --pod-cidr: waiting for the Node's spec.podCIDR from the controllers' node IPAM"
    );
    loop {
        let found = match api.get(&config.node_name).await {
            Ok(node) => {
                let spec = node.spec.unwrap_or_default();
                let cidr = spec
                    .pod_cidrs
                    .and_then(|l| l.into_iter().next())
                    .or(spec.pod_cidr)
                    .filter(|c| !c.is_empty());
                if let Some(cidr) = cidr {
                    info!(node = %config.node_name, %cidr, waited = ?started.elapsed(), "using the Node's pod CIDR");
                    return Ok(cidr);
                }
                true
            }
            Err(e) if e.is_not_found() => false,
            Err(e) => {
                warn!(error = %e, "reading the Node failed; retrying");
                true
            }
        };
        // Register (or, for an existing Node, report it not ready) once, so node IPAM sees
        // it and the scheduler keeps pods away until the network can run them.
        if !registered || !found {
            match register_node(client, &facts).await {
                Ok(()) => registered = true,
                Err(e) => warn!(error = %e, "registering the Node failed; retrying"),
            }
        }
        if reminded.elapsed() >= REMIND {
            reminded = tokio::time::Instant::now();
            warn!(
                node = %config.node_name,
                waited = ?started.elapsed(),
                "still waiting for spec.podCIDR: are the controllers (node IPAM) running? \
                 Give the agent --pod-cidr to run without them"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
