//! The pod status the agent reports through `pods/status`.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Pod;
use runtime::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::Shared;
use super::worker::Worker;
use crate::cri::{ContainerInfo, ContainerState};

/// The status to report (the `status` object).
pub(crate) fn pod_status(
    s: &Shared,
    w: &Worker,
    pod: &Pod,
    containers: &[ContainerInfo],
    ready: &HashSet<String>,
) -> Value {
    let spec = pod.spec.clone().unwrap_or_default();
    let ip = w
        .sandbox
        .as_ref()
        .and_then(|sb| sb.ip)
        .map(|ip| ip.to_string());
    let statuses: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let latest = super::plan::latest(containers, &c.name);
            let state = match (latest.map(|l| &l.state), w.waiting.get(&c.name)) {
                (Some(ContainerState::Running { started_at }), _) => {
                    json!({"running": {"startedAt": started_at.to_string()}})
                }
                (_, Some(wait)) => {
                    json!({"waiting": {"reason": wait.reason, "message": wait.message}})
                }
                (Some(ContainerState::Exited { exit_code, .. }), None) => {
                    json!({"terminated": {"exitCode": exit_code}})
                }
                _ => json!({"waiting": {"reason": "ContainerCreating"}}),
            };
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": ready.contains(&c.name),
                "restartCount": latest.map_or(0, |l| l.attempt),
                "state": state,
            })
        })
        .collect();
    let all_running = statuses.iter().all(|s| s["state"].get("running").is_some());
    let _ = s;
    json!({
        "phase": if all_running { "Running" } else { "Pending" },
        "podIP": ip,
        "hostIP": s.config.node_ip.to_string(),
        "containerStatuses": statuses,
    })
}

/// Writes `status` with a merge patch on `pods/status`.
pub(crate) async fn write(s: &Shared, pod: &Pod, status: &Value) -> runtime::Result<()> {
    let api: Api<Pod> = Api::namespaced(
        s.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
}
