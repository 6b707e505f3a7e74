//! Kubelet Events on pods (Pulling, Created, Started, Killing, BackOff, Failed, Unhealthy),
//! pointing at the container through `fieldPath` like Kubernetes so `describe` shows them.

use k8s_openapi::api::core::v1::Pod;

use super::Shared;

fn reference(pod: &Pod, container: Option<&str>) -> k8s_openapi::api::core::v1::ObjectReference {
    let mut r = runtime::events::object_reference(pod);
    if let Some(name) = container {
        let init = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|i| i.iter().any(|c| c.name == name));
        let field = if init { "initContainers" } else { "containers" };
        r.field_path = Some(format!("spec.{field}{{{name}}}"));
    }
    r
}

/// Records a Normal event about `pod` (and one of its containers). Written in the
/// background: a pod's start does not wait for its Events.
pub(crate) async fn normal(
    s: &Shared,
    pod: &Pod,
    container: Option<&str>,
    reason: &str,
    message: &str,
) {
    record(s, pod, container, "Normal", reason, message);
}

/// Records a Warning event about `pod` (and one of its containers), in the background.
pub(crate) async fn warning(
    s: &Shared,
    pod: &Pod,
    container: Option<&str>,
    reason: &str,
    message: &str,
) {
    record(s, pod, container, "Warning", reason, message);
}

fn record(
    s: &Shared,
    pod: &Pod,
    container: Option<&str>,
    kind: &'static str,
    reason: &str,
    message: &str,
) {
    let recorder = s.recorder.clone();
    let object = reference(pod, container);
    let (reason, message) = (reason.to_string(), message.to_string());
    tokio::spawn(async move {
        if kind == "Warning" {
            recorder.warning(&object, &reason, &message).await;
        } else {
            recorder.normal(&object, &reason, &message).await;
        }
    });
}
