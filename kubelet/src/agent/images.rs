//! Making a container's image available before it is created: the pull policy, credentials
//! from the pod's imagePullSecrets, and the puller (absent for the process driver, which runs
//! host commands and needs no images).

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use runtime::Api;
use tracing::debug;

use super::Shared;
use crate::image::credentials::{DockerConfig, credentials_for};
use crate::image::policy::{PullDecision, PullPolicy, should_pull};
use crate::image::pull::PulledImage;
use crate::image::reference::ImageReference;
use crate::{Error, Result};

/// Ensures the container's image is in the store per its pull policy; `None` when the driver
/// uses no images.
pub(crate) async fn ensure(
    s: &Shared,
    pod: &Pod,
    container: &Container,
) -> Result<Option<PulledImage>> {
    let Some(puller) = &s.puller else {
        return Ok(None);
    };
    let image = container.image.clone().unwrap_or_default();
    let reference = ImageReference::parse(&image)?;
    // The API server defaults the policy; a pod written before that gets IfNotPresent.
    let policy = container
        .image_pull_policy
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(PullPolicy::IfNotPresent);
    let present = puller.store().get(&reference.to_string())?.is_some();
    let name = Some(container.name.as_str());
    if should_pull(policy, present) != PullDecision::Pull {
        let pulled = puller.ensure_image(&image, policy, &[]).await?;
        let message = format!("Container image \"{image}\" already present on machine");
        super::events::normal(s, pod, name, "Pulled", &message).await;
        return Ok(Some(pulled));
    }
    let configs = pull_secrets(s, pod).await;
    let credentials = credentials_for(&configs, &reference);
    super::events::normal(
        s,
        pod,
        name,
        "Pulling",
        &format!("Pulling image \"{image}\""),
    )
    .await;
    let started = std::time::Instant::now();
    let pulled = puller.ensure_image(&image, policy, &credentials).await?;
    let message = format!(
        "Successfully pulled image \"{image}\" in {:?}",
        started.elapsed()
    );
    debug!(image = %image, "{message}");
    super::events::normal(s, pod, name, "Pulled", &message).await;
    Ok(Some(pulled))
}

/// The dockerconfigjson documents of the pod's imagePullSecrets; missing or malformed secrets
/// are skipped (Kubernetes pulls anonymously then, and the pull error says why).
async fn pull_secrets(s: &Shared, pod: &Pod) -> Vec<DockerConfig> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let names: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    let api: Api<Secret> = Api::namespaced(s.client.clone(), ns);
    let mut configs = Vec::new();
    for name in names {
        let Ok(secret) = api.get(&name).await else {
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let bytes = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"));
        if let Some(bytes) = bytes
            && let Ok(config) = DockerConfig::parse(&bytes.0)
        {
            configs.push(config);
        }
    }
    configs
}

impl From<runtime::Error> for Error {
    fn from(e: runtime::Error) -> Self {
        Error::Runtime(e.to_string())
    }
}
