//! The sandbox a pod's containers share: identity labels, hostname, network mode and the
//! generated `/etc/hosts` and `/etc/resolv.conf`.

use k8s_openapi::api::core::v1::Pod;

use super::AgentConfig;
use crate::cri::{SandboxConfig, labels};

/// The sandbox configuration for `pod`.
pub(crate) fn sandbox_config(config: &AgentConfig, pod: &Pod) -> SandboxConfig {
    let m = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let name = m.name.clone().unwrap_or_default();
    let namespace = m.namespace.clone().unwrap_or_else(|| "default".into());
    let uid = m.uid.clone().unwrap_or_default();
    let _ = config;
    SandboxConfig {
        hostname: spec.hostname.clone().unwrap_or_else(|| name.clone()),
        host_network: spec.host_network.unwrap_or(false),
        etc_hosts: None,
        resolv_conf: None,
        labels: [
            (labels::POD_UID, uid.as_str()),
            (labels::POD_NAME, name.as_str()),
            (labels::POD_NAMESPACE, namespace.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        name,
        namespace,
        uid,
    }
}
