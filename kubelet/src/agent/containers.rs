//! Turning a container of the pod spec into the runtime's [`ContainerConfig`]: the command
//! (`$(VAR)`-expanded, with the image's defaults), the environment (ConfigMaps, Secrets, the
//! downward API), the mounts and limits, the log file.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use runtime::Api;

use super::Shared;
use crate::cri::{ContainerConfig, Mount, Resources, Sandbox, labels};
use crate::image::pull::PulledImage;
use crate::pod::env::{EnvInputs, container_env, referenced_config_maps, referenced_secrets};
use crate::{Error, Result};

/// The ConfigMaps and Secrets a pod refers to, by name; missing ones are absent (the env and
/// volume code decides whether that is an error: `optional`).
pub(crate) struct PodObjects {
    pub(crate) config_maps: BTreeMap<String, ConfigMap>,
    pub(crate) secrets: BTreeMap<String, Secret>,
}

/// Fetches the pod's ConfigMaps and Secrets from the API server.
pub(crate) async fn fetch_objects(s: &Shared, pod: &Pod) -> Result<PodObjects> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut objects = PodObjects {
        config_maps: BTreeMap::new(),
        secrets: BTreeMap::new(),
    };
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), ns);
    for name in referenced_config_maps(pod) {
        match cms.get(&name).await {
            Ok(cm) => {
                objects.config_maps.insert(name, cm);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Error::Runtime(format!("getting configmap {name:?}: {e}"))),
        }
    }
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), ns);
    for name in referenced_secrets(pod) {
        match secrets.get(&name).await {
            Ok(secret) => {
                objects.secrets.insert(name, secret);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Error::Runtime(format!("getting secret {name:?}: {e}"))),
        }
    }
    Ok(objects)
}

/// The pod's IP as the downward API and probes see it: the sandbox's, or the node's for
/// host-network pods.
pub(crate) fn pod_ip(s: &Shared, pod: &Pod, sandbox: &Sandbox) -> Option<IpAddr> {
    sandbox.ip.or_else(|| {
        pod.spec
            .as_ref()
            .and_then(|sp| sp.host_network)
            .unwrap_or(false)
            .then_some(s.config.node_ip)
    })
}

/// The runtime configuration for `container` of `pod` as restart `attempt`.
pub(crate) async fn container_config(
    s: &Shared,
    pod: &Pod,
    container: &Container,
    sandbox: &Sandbox,
    image: &Option<PulledImage>,
    attempt: u32,
) -> Result<ContainerConfig> {
    let objects = fetch_objects(s, pod).await?;
    let allocatable: BTreeMap<String, Quantity> = s
        .facts
        .allocatable
        .iter()
        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
        .collect();
    let pod_ips: Vec<IpAddr> = pod_ip(s, pod, sandbox).into_iter().collect();
    let inputs = EnvInputs {
        config_maps: &objects.config_maps,
        secrets: &objects.secrets,
        node_allocatable: &allocatable,
        pod_ips: &pod_ips,
        host_ips: &[s.config.node_ip],
    };
    let env = container_env(pod, container, &inputs)?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for skipped in &env.skipped {
        super::events::warning(
            s,
            pod,
            Some(&container.name),
            "InvalidEnvironmentVariableNames",
            &skipped.event_message(ns),
        )
        .await;
    }
    let (command, args) = env.expand_command(container);
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
        return Err(Error::CreateContainerConfig(format!(
            "container {} has no command and its image gives none",
            container.name
        )));
    }
    // The pod's volumes (set up again on every start: idempotent, and it refreshes
    // ConfigMap/Secret files atomically), then the container's mounts of them. They go
    // before the generated files so a volume mounted over /etc cannot hide /etc/hosts, the
    // order the kubelet uses.
    let pod_dir =
        super::volumes::pod_dir(&s.config, pod.metadata.uid.as_deref().unwrap_or_default());
    let volume_paths = crate::pod::volumes::setup_volumes(pod, &pod_dir, &inputs)?;
    let mut mounts: Vec<Mount> =
        crate::pod::volumes::container_mounts(container, &volume_paths, Some(&env))?;
    mounts.extend(super::pod_files::pod_files(s, pod, sandbox)?);
    let mut labels: BTreeMap<String, String> = sandbox.labels.clone();
    labels.insert(labels::CONTAINER_NAME.into(), container.name.clone());
    Ok(ContainerConfig {
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        argv,
        env: env.to_cri(),
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
    let quantity = |map: Option<&BTreeMap<String, Quantity>>, key: &str| {
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
