//! Choosing the manifest for this node from an image index (a multi-platform "manifest list").

use serde::Deserialize;

/// The parts of an OCI image index / Docker manifest list the agent reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDocument {
    /// Media type, when the document states it.
    pub media_type: Option<String>,
    /// The per-platform manifests.
    #[serde(default)]
    pub manifests: Vec<IndexManifest>,
}

/// One entry of an image index.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexManifest {
    /// Media type of the referenced manifest.
    #[serde(default)]
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// The platform it is for; absent for non-image entries such as attestations.
    pub platform: Option<PlatformSpec>,
    /// Annotations (image names in OCI layouts).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// `os`/`architecture`/`variant` of an index entry.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// e.g. `linux`.
    pub os: String,
    /// GOARCH spelling, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// e.g. `v8` for arm64.
    #[serde(default)]
    pub variant: Option<String>,
}

/// Media types of indexes (as opposed to single-image manifests).
pub const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Whether a manifest document (by its declared or Content-Type media type) is an index.
pub fn is_index(media_type: Option<&str>, body: &[u8]) -> bool {
    let declared = media_type.map(str::to_owned).or_else(|| {
        serde_json::from_slice::<IndexDocument>(body)
            .ok()
            .and_then(|d| d.media_type)
    });
    match declared {
        Some(t) => INDEX_MEDIA_TYPES.contains(&t.as_str()),
        // An OCI index may omit mediaType; it has `manifests` where an image has `layers`.
        None => serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v.get("manifests").is_some() && v.get("layers").is_none()),
    }
}

/// The host platform in OCI (GOARCH) spelling.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    ("linux", arch)
}

/// Picks the entry for `os`/`arch`, the first match like containerd's default matcher.
pub fn select_platform<'a>(
    manifests: &'a [IndexManifest],
    os: &str,
    arch: &str,
) -> Option<&'a IndexManifest> {
    manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == os && p.architecture == arch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: &str, platform: Option<(&str, &str)>) -> IndexManifest {
        IndexManifest {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: digest.into(),
            platform: platform.map(|(os, arch)| PlatformSpec {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
            annotations: Default::default(),
        }
    }

    #[test]
    fn selects_the_host_platform() {
        let list = [
            entry("arm", Some(("linux", "arm64"))),
            entry("attestation", None),
            entry("win", Some(("windows", "amd64"))),
            entry("amd", Some(("linux", "amd64"))),
            entry("amd-second", Some(("linux", "amd64"))),
        ];
        let cases = [
            ("linux", "amd64", Some("amd")),
            ("linux", "arm64", Some("arm")),
            ("windows", "amd64", Some("win")),
            ("linux", "s390x", None),
        ];
        for (os, arch, want) in cases {
            let got = select_platform(&list, os, arch).map(|m| m.digest.as_str());
            assert_eq!(got, want, "{os}/{arch}");
        }
    }

    #[test]
    fn recognizes_indexes() {
        let image = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let cases: [(Option<&str>, &[u8], bool); 5] = [
            (Some("application/vnd.oci.image.index.v1+json"), index, true),
            (
                Some("application/vnd.docker.distribution.manifest.list.v2+json"),
                index,
                true,
            ),
            (
                Some("application/vnd.oci.image.manifest.v1+json"),
                image,
                false,
            ),
            (None, index, true),
            (None, image, false),
        ];
        for (media_type, body, want) in cases {
            assert_eq!(is_index(media_type, body), want, "{media_type:?}");
        }
    }
}
