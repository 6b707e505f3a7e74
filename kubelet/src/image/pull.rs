//! Pulling images from registries over the OCI distribution API into the [`Store`].
//!
//! `oci-client` speaks the protocol (manifests, blobs, bearer-token and basic auth); this module
//! decides what to fetch: an image index is narrowed to the host platform, blobs already in the
//! store are not downloaded again (so a base layer shared by many images is pulled once), and
//! every downloaded blob is verified by the store before it becomes visible.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use tracing::Instrument as _;

use crate::error::{Error, Result};
use crate::image::credentials::Credentials;
use crate::image::platform::{IndexDocument, host_platform, is_index, select_platform};
use crate::image::policy::{PullDecision, PullPolicy, should_pull};
use crate::image::reference::ImageReference;
use crate::image::store::Store;

/// Manifest media types the puller accepts from registries.
const ACCEPTED_MANIFESTS: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How the puller reaches registries.
#[derive(Clone, Debug, Default)]
pub struct PullerConfig {
    /// Registries (`host[:port]`) spoken to over plain HTTP. Like Docker, `localhost` and
    /// loopback addresses always are; everything else uses HTTPS.
    pub insecure_registries: Vec<String>,
}

/// An image ready in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledImage {
    /// Normalized reference it is stored under.
    pub name: String,
    /// Digest of its (platform-specific) manifest.
    pub digest: String,
    /// Unpacked layer directories, top first (overlayfs `lowerdir` order).
    pub layers: Vec<PathBuf>,
}

/// Pulls images into a store; counts what it fetched so callers (and tests) can see that
/// present content is reused.
pub struct Puller {
    store: Arc<Store>,
    config: PullerConfig,
    manifest_fetches: AtomicU64,
    blob_fetches: AtomicU64,
}

impl Puller {
    /// A puller writing into `store`.
    pub fn new(store: Arc<Store>, config: PullerConfig) -> Puller {
        Puller {
            store,
            config,
            manifest_fetches: AtomicU64::new(0),
            blob_fetches: AtomicU64::new(0),
        }
    }

    /// The store pulled images land in.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Manifests requested from registries so far.
    pub fn manifest_fetches(&self) -> u64 {
        self.manifest_fetches.load(Ordering::Relaxed)
    }

    /// Blobs (configs and layers) downloaded so far.
    pub fn blob_fetches(&self) -> u64 {
        self.blob_fetches.load(Ordering::Relaxed)
    }

    /// Makes `image` available according to the container's pull policy, the way the kubelet
    /// does before creating a container. `credentials` are those matching the image from the
    /// pod's imagePullSecrets (see [`crate::image::credentials`]); each is tried in order, none
    /// means anonymous.
    pub async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        credentials: &[Credentials],
    ) -> Result<PulledImage> {
        let reference = ImageReference::parse(image)?;
        let name = reference.to_string();
        let present = self.store.get(&name)?;
        match should_pull(policy, present.is_some()) {
            PullDecision::Pull => self.pull(&reference, credentials).await,
            PullDecision::NeverPullAbsent => Err(Error::ErrImageNeverPull { image: name }),
            PullDecision::UsePresent => {
                let store = self.store.clone();
                let lookup = name.clone();
                let layers = tokio::task::spawn_blocking(move || store.image_layers(&lookup))
                    .await
                    .map_err(|e| Error::Store(format!("unpacking task failed: {e}")))??;
                let digest = present.map(|e| e.digest).unwrap_or_default();
                Ok(PulledImage {
                    name,
                    digest,
                    layers,
                })
            }
        }
    }

    /// Pulls `reference` from its registry, trying each credential in order (anonymous when
    /// there are none); the last failure is returned when all fail.
    pub async fn pull(
        &self,
        reference: &ImageReference,
        credentials: &[Credentials],
    ) -> Result<PulledImage> {
        let span = tracing::info_span!("pull", image = %reference);
        async {
            let auths: Vec<RegistryAuth> = if credentials.is_empty() {
                vec![RegistryAuth::Anonymous]
            } else {
                credentials
                    .iter()
                    .map(|c| RegistryAuth::Basic(c.username.clone(), c.password.clone()))
                    .collect()
            };
            let mut last = None;
            for auth in auths {
                match self.pull_with(reference, &auth).await {
                    Ok(pulled) => {
                        tracing::info!(digest = %pulled.digest, "image pulled");
                        return Ok(pulled);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "image pull failed");
                        last = Some(e);
                    }
                }
            }
            Err(last.unwrap_or_else(|| Error::ErrImagePull {
                image: reference.to_string(),
                message: "no credentials to try".into(),
            }))
        }
        .instrument(span)
        .await
    }

    async fn pull_with(
        &self,
        reference: &ImageReference,
        auth: &RegistryAuth,
    ) -> Result<PulledImage> {
        let name = reference.to_string();
        let failed = |message: String| Error::ErrImagePull {
            image: name.clone(),
            message,
        };
        // A fresh client per attempt, so credentials never leak from one pull to another.
        let client = oci_client::Client::new(ClientConfig {
            protocol: if self.is_insecure(&reference.registry) {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            platform_resolver: None,
            ..ClientConfig::default()
        });
        let by_tag_or_digest = oci_reference(reference, reference.reference_part());
        self.manifest_fetches.fetch_add(1, Ordering::Relaxed);
        let (mut body, mut digest) = client
            .pull_manifest_raw(&by_tag_or_digest, auth, &ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if is_index(None, &body) {
            let index: IndexDocument = serde_json::from_slice(&body)
                .map_err(|e| failed(format!("invalid image index: {e}")))?;
            let (os, arch) = host_platform();
            let entry = select_platform(&index.manifests, os, arch).ok_or_else(|| {
                failed(format!(
                    "no matching manifest for {os}/{arch} in the manifest list entries"
                ))
            })?;
            let by_digest = oci_reference(reference, &entry.digest);
            self.manifest_fetches.fetch_add(1, Ordering::Relaxed);
            (body, digest) = client
                .pull_manifest_raw(&by_digest, auth, &ACCEPTED_MANIFESTS)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        let manifest: OciImageManifest = serde_json::from_slice(&body)
            .map_err(|e| failed(format!("unsupported manifest (schema 2 / OCI only): {e}")))?;
        for descriptor in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if self.store.has_blob(&descriptor.digest) {
                continue;
            }
            self.blob_fetches.fetch_add(1, Ordering::Relaxed);
            let mut stream = client
                .pull_blob_stream(&by_tag_or_digest, descriptor)
                .await
                .map_err(|e| failed(format!("fetching blob {}: {e}", descriptor.digest)))?;
            let mut writer = self
                .store
                .blob_writer(&descriptor.digest)
                .map_err(|e| failed(e.to_string()))?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|e| failed(format!("fetching blob {}: {e}", descriptor.digest)))?;
                writer.write(&chunk).map_err(|e| failed(e.to_string()))?;
            }
            writer
                .commit()
                .map_err(|e| failed(format!("blob {} rejected: {e}", descriptor.digest)))?;
        }
        let stored = self
            .store
            .put_blob_bytes(&body)
            .map_err(|e| failed(e.to_string()))?;
        if stored != digest {
            return Err(failed(format!(
                "manifest digest mismatch: registry said {digest}, content is {stored}"
            )));
        }
        let store = self.store.clone();
        let layers = tokio::task::spawn_blocking(move || store.unpack_image(&manifest))
            .await
            .map_err(|e| failed(format!("unpacking task failed: {e}")))?
            .map_err(|e| failed(e.to_string()))?;
        self.store
            .tag(&name, &digest)
            .map_err(|e| failed(e.to_string()))?;
        digest = stored;
        Ok(PulledImage {
            name,
            digest,
            layers,
        })
    }

    fn is_insecure(&self, registry: &str) -> bool {
        self.config
            .insecure_registries
            .iter()
            .any(|r| r == registry)
            || is_loopback_registry(registry)
    }
}

/// Whether a registry host is this machine (`localhost`, 127.0.0.0/8, ::1), which Docker and
/// containerd also reach over plain HTTP.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn oci_reference(reference: &ImageReference, tag_or_digest: &str) -> oci_client::Reference {
    if tag_or_digest.starts_with("sha256:") {
        oci_client::Reference::with_digest(
            reference.registry.clone(),
            reference.repository.clone(),
            tag_or_digest.to_string(),
        )
    } else {
        oci_client::Reference::with_tag(
            reference.registry.clone(),
            reference.repository.clone(),
            tag_or_digest.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_use_plain_http() {
        let cases = [
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.3.4.5", true),
            ("[::1]:5000", true),
            ("docker.io", false),
            ("10.0.0.1:5000", false),
            ("localhost.example.com", false),
        ];
        for (registry, want) in cases {
            assert_eq!(is_loopback_registry(registry), want, "{registry}");
        }
    }
}
