//! Node heartbeats: one Lease per node in `kube-node-lease`, renewed every 10 s; the node
//! lifecycle controller marks a node Unknown when its Lease goes silent.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use runtime::{Api, Client, Patch, PatchParams, PostParams};
use serde_json::json;

/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Renews `node`'s Lease, creating it when missing (first start, or deleted by someone).
pub async fn renew_lease(
    client: &Client,
    node: &str,
    lease_duration_seconds: i32,
) -> runtime::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(jiff::Timestamp::now());
    let patch = Patch::Merge(json!({"spec": {"renewTime": now}}));
    match api.patch(node, &PatchParams::default(), &patch).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
                "spec": {
                    "holderIdentity": node,
                    "leaseDurationSeconds": lease_duration_seconds,
                    "renewTime": now,
                },
            }))?;
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_already_exists() => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}
