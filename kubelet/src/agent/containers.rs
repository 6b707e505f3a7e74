//! Turning a container of the pod spec into the runtime's [`ContainerConfig`]: the command
//! (with the image's defaults), the environment, the mounts and limits, the log file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::Shared;
use crate::cri::{ContainerConfig, Mount, Resources, Sandbox, labels};
use crate::image::pull::PulledImage;
use crate::{Error, Result};

/// The runtime configuration for `container` of `pod` as restart `attempt`.
pub(crate) async fn container_config(
    s: &Shared,
    pod: &Pod,
    container: &Container,
    sandbox: &Sandbox,
    image: &Option<PulledImage>,
    attempt: u32,
) -> Result<ContainerConfig> {
    let env: Vec<String> = container
        .env
        .iter()
        .flatten()
        .map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default()))
        .collect();
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    // The image's Entrypoint/Cmd fill in what the pod leaves out (runc; the process driver
    // has no images, so the pod's command is all there is).
    let argv = match (image, &s.puller) {
        (Some(image), Some(puller)) => {
            let config = puller.store().image_config(&image.name)?;
            crate::image::config::container_argv(&config, &command, &args)
        }
        _ => command.into_iter().chain(args).collect(),
    };
    if argv.is_empty() {
        return Err(Error::Runtime(format!(
            "container {} has no command and its image gives none",
            container.name
        )));
    }
    let mut mounts: Vec<Mount> = Vec::new();
    mounts.extend(super::pod_files::pod_files(s, pod, sandbox)?);
    let mut labels: BTreeMap<String, String> = sandbox.labels.clone();
    labels.insert(labels::CONTAINER_NAME.into(), container.name.clone());
    Ok(ContainerConfig {
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        argv,
        env,
        working_dir: container.working_dir.clone(),
        mounts,
        resources: resources(container),
        log_path: super::volumes::container_log_path(&s.config, pod, &container.name, attempt),
        attempt,
        labels,
    })
}

/// Limits from `resources`: cpu in millicores, memory in bytes.
pub(crate) fn resources(container: &Container) -> Resources {
    let quantity = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
                    key: &str| {
        map.and_then(|m| m.get(key))
            .and_then(|q| runtime::objects::Quantity::parse(&q.0).ok())
    };
    let r = container.resources.as_ref();
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    Resources {
        cpu_limit_millis: quantity(limits, "cpu").map(|q| q.millis_ceil().max(0) as u64),
        cpu_request_millis: quantity(requests, "cpu").map(|q| q.millis_ceil().max(0) as u64),
        memory_limit_bytes: quantity(limits, "memory").map(|q| q.value_ceil().max(0) as u64),
    }
}
