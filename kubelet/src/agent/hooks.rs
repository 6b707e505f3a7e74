//! Container lifecycle hooks. `preStop` runs before a container is stopped for deletion and
//! counts against the grace period (Kubernetes semantics): exec hooks run in the container,
//! httpGet hooks call the pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, Pod};
use tracing::{debug, warn};

use super::Shared;
use super::worker::blocking;

/// Runs container `name`'s preStop hook (if any) in container `id`, for at most `grace`.
pub(crate) async fn pre_stop(s: &Shared, pod: &Pod, name: &str, id: &str, grace: Duration) {
    let Some(handler) = super::spec_container(pod, name, false)
        .and_then(|c| c.lifecycle)
        .and_then(|l| l.pre_stop)
    else {
        return;
    };
    let outcome = tokio::time::timeout(grace, run_handler(s, pod, id, &handler)).await;
    match outcome {
        Ok(Ok(())) => debug!(container = name, "preStop hook done"),
        Ok(Err(message)) => {
            warn!(container = name, %message, "preStop hook failed");
            super::events::warning(s, pod, Some(name), "FailedPreStopHook", &message).await;
        }
        Err(_) => warn!(container = name, "preStop hook ran out of the grace period"),
    }
}

async fn run_handler(
    s: &Shared,
    pod: &Pod,
    id: &str,
    handler: &LifecycleHandler,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let argv = exec.command.clone().unwrap_or_default();
        let id = id.to_string();
        let output = blocking(&s.runtime, move |rt| {
            crate::cri::exec_sync(rt, &id, &argv, Duration::from_secs(3600))
        })
        .await
        .map_err(|e| e.to_string())?;
        return match output.exit_code {
            Some(0) => Ok(()),
            code => Err(format!(
                "PreStopHook exec failed with exit code {code:?}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        };
    }
    if let Some(http) = &handler.http_get {
        let host = http
            .host
            .clone()
            .or_else(|| pod.status.as_ref().and_then(|s| s.pod_ip.clone()))
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = match &http.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => *p,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(p) => p
                .parse()
                .map_err(|_| format!("named port {p:?} not supported in hooks"))?,
        };
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("http://{host}:{port}{path}");
        return reqwest::get(&url)
            .await
            .map(|_| ())
            .map_err(|e| format!("PreStopHook httpGet {url} failed: {e}"));
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
    }
    Ok(())
}
