//! The Node object an agent registers and the status it reports, built purely from
//! [`NodeFacts`] so both the real agent and the simulated fleet report the same shape.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use runtime::{Api, Client, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};
use tracing::debug;

/// Everything a node reports about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// Node name (also the `kubernetes.io/hostname` label).
    pub name: String,
    /// The node's pod CIDR (`spec.podCIDR`), when it has one.
    pub pod_cidr: Option<String>,
    /// Labels beyond the well-known hostname/os/arch ones.
    pub extra_labels: BTreeMap<String, String>,
    /// `status.capacity` (cpu, memory, pods, ephemeral-storage).
    pub capacity: BTreeMap<String, String>,
    /// `status.allocatable`; Kubernetes subtracts reservations, Skiff reports capacity unless
    /// overridden.
    pub allocatable: BTreeMap<String, String>,
    /// `status.addresses` as (type, address): InternalIP, Hostname.
    pub addresses: Vec<(String, String)>,
    /// Port of the kubelet API (`status.daemonEndpoints.kubeletEndpoint.Port`).
    pub kubelet_port: Option<u16>,
    /// `status.nodeInfo.containerRuntimeVersion`, e.g. `runc://1.1.5`.
    pub container_runtime_version: String,
    /// `status.nodeInfo.osImage`.
    pub os_image: String,
    /// `status.nodeInfo.kernelVersion`.
    pub kernel_version: String,
    /// `status.nodeInfo.machineID` / `systemUUID`.
    pub machine_id: String,
    /// `status.nodeInfo.bootID`.
    pub boot_id: String,
    /// Message of the Ready condition.
    pub ready_message: String,
    /// Why the node cannot run pods yet (its pod network has no CIDR, say): reported as
    /// `Ready=False` with reason `KubeletNotReady` and this message, as the kubelet does.
    pub not_ready: Option<String>,
}

/// The kubelet version Skiff nodes report (the API version they speak).
pub const KUBELET_VERSION: &str = "v1.33.0";

/// The Node to create on first registration: metadata and spec only (status is written
/// separately through `nodes/status`).
pub fn node_object(facts: &NodeFacts) -> Node {
    let (os, arch) = crate::image::platform::host_platform();
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", facts.name.as_str()),
        ("kubernetes.io/os", os),
        ("kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", os),
        ("beta.kubernetes.io/arch", arch),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(facts.extra_labels.clone());
    let mut spec = Map::new();
    if let Some(cidr) = &facts.pod_cidr {
        spec.insert("podCIDR".into(), json!(cidr));
        spec.insert("podCIDRs".into(), json!([cidr]));
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": facts.name, "labels": labels},
        "spec": spec,
    }))
    .unwrap_or_default()
}

/// A merge patch for `nodes/status` reporting the node healthy as of `now` (a Kubernetes
/// `Time` JSON value).
pub fn node_status_patch(facts: &NodeFacts, now: &Value) -> Value {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let (os, arch) = crate::image::platform::host_platform();
    let addresses: Vec<Value> = facts
        .addresses
        .iter()
        .map(|(t, a)| json!({"type": t, "address": a}))
        .collect();
    let mut status = json!({
        "capacity": facts.capacity,
        "allocatable": facts.allocatable,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            match &facts.not_ready {
                None => condition("Ready", "True", "KubeletReady", &facts.ready_message),
                Some(why) => condition("Ready", "False", "KubeletNotReady", why),
            },
        ],
        "addresses": addresses,
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "containerRuntimeVersion": facts.container_runtime_version,
            "operatingSystem": os,
            "architecture": arch,
            "osImage": facts.os_image,
            "kernelVersion": facts.kernel_version,
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
        },
        "phase": "Running",
    });
    if let Some(port) = facts.kubelet_port {
        status["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": port}});
    }
    json!({ "status": status })
}

/// Creates the Node (or takes over an existing one of that name, as a restarted kubelet
/// does) and writes its status.
pub async fn register_node(client: &Client, facts: &NodeFacts) -> runtime::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    match api
        .create(&PostParams::default(), &node_object(facts))
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => return Err(e),
    }
    let patch = node_status_patch(facts, &super::now_time());
    api.patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    debug!(node = %facts.name, "registered");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "n1".into(),
            pod_cidr: Some("10.244.1.0/24".into()),
            capacity: [("cpu".to_string(), "2".to_string())].into(),
            allocatable: [("cpu".to_string(), "2".to_string())].into(),
            addresses: vec![("InternalIP".into(), "127.0.0.1".into())],
            kubelet_port: Some(10250),
            ready_message: "kubelet is posting ready status".into(),
            ..NodeFacts::default()
        }
    }

    #[test]
    fn node_carries_well_known_labels_and_pod_cidr() {
        let node = node_object(&facts());
        let labels = node.metadata.labels.unwrap_or_default();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert!(labels.contains_key("kubernetes.io/arch"));
        let spec = node.spec.unwrap_or_default();
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.1.0/24"));
        let no_cidr = node_object(&NodeFacts {
            pod_cidr: None,
            ..facts()
        });
        assert_eq!(no_cidr.spec.unwrap_or_default().pod_cidr, None);
    }

    #[test]
    fn status_reports_ready_addresses_and_kubelet_port() {
        let now = json!("2026-01-01T00:00:00Z");
        let patch = node_status_patch(&facts(), &now);
        let status = &patch["status"];
        assert_eq!(status["addresses"][0]["address"], "127.0.0.1");
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        let ready = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["lastHeartbeatTime"], now);
        let without_port = node_status_patch(
            &NodeFacts {
                kubelet_port: None,
                ..facts()
            },
            &now,
        );
        assert!(without_port["status"].get("daemonEndpoints").is_none());
        let waiting = node_status_patch(
            &NodeFacts {
                not_ready: Some("network not ready".into()),
                ..facts()
            },
            &now,
        );
        let ready = waiting["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "KubeletNotReady");
        assert_eq!(ready["message"], "network not ready");
    }
}
