//! What every node agent (real or simulated) does for its Node: register it with its status,
//! renew its Lease, and confirm pod deletions to the API server.

mod host;
mod lease;
mod object;

pub use host::{HostFacts, host_facts};
pub use lease::{LEASE_NAMESPACE, renew_lease};
pub use object::{NodeFacts, node_object, node_status_patch, register_node};

use k8s_openapi::api::core::v1::Pod;
use runtime::{Api, Client, DeleteParams};

/// Tells the API server a terminating pod is gone from the node (a delete with grace 0 and the
/// pod's uid as precondition, so a new pod of the same name is never hit). A pod already gone
/// or replaced is fine.
pub async fn confirm_pod_deletion(client: &Client, pod: &Pod) -> runtime::Result<()> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: pod
            .metadata
            .uid
            .clone()
            .map(|uid| runtime::request::Preconditions {
                uid: Some(uid),
                ..Default::default()
            }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The current time as a Kubernetes `Time` JSON value.
pub fn now_time() -> serde_json::Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ))
    .unwrap_or(serde_json::Value::Null)
}
