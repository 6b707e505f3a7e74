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

/// Records a Normal event about `pod` (and one of its containers).
pub(crate) async fn normal(
    s: &Shared,
    pod: &Pod,
    container: Option<&str>,
    reason: &str,
    message: &str,
) {
    s.recorder
        .normal(&reference(pod, container), reason, message)
        .await;
}

/// Records a Warning event about `pod` (and one of its containers).
pub(crate) async fn warning(
    s: &Shared,
    pod: &Pod,
    container: Option<&str>,
    reason: &str,
    message: &str,
) {
    s.recorder
        .warning(&reference(pod, container), reason, message)
        .await;
}
