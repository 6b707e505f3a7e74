//! The lab walkthrough's examples: manifests (YAML beside this file) and the recipes of the
//! example images, which are built offline from the host's static busybox (Debian's
//! `busybox-static`) by `skiff agent image build-examples` — no registry or internet needed.

/// One example image: a busybox root plus an entrypoint script and environment.
#[derive(Debug, Clone, Copy)]
pub struct ImageRecipe {
    /// The image reference the manifests use.
    pub name: &'static str,
    /// Where the script lands in the image.
    pub script_path: &'static str,
    /// The script (a file in `examples/images/`).
    pub script: &'static str,
    /// `KEY=value` environment baked into the image config.
    pub env: &'static [&'static str],
}

const WEB: &str = include_str!("images/web.sh");
const CRASHER: &str = include_str!("images/crasher.sh");

/// Every example image. Tags are never `latest`, so the default pull policy is `IfNotPresent`
/// and nodes use the loaded image instead of trying a registry.
pub const IMAGES: &[ImageRecipe] = &[
    ImageRecipe {
        name: "skiff.local/web:v1",
        script_path: "app/web.sh",
        script: WEB,
        env: &["VERSION=v1"],
    },
    ImageRecipe {
        name: "skiff.local/web:v2",
        script_path: "app/web.sh",
        script: WEB,
        env: &["VERSION=v2"],
    },
    ImageRecipe {
        name: "skiff.local/slow:v1",
        script_path: "app/web.sh",
        script: WEB,
        env: &["VERSION=slow", "READY_AFTER=8"],
    },
    ImageRecipe {
        name: "skiff.local/crasher:v1",
        script_path: "app/crasher.sh",
        script: CRASHER,
        env: &[],
    },
];

/// The walkthrough's manifests, by file name.
pub const MANIFESTS: &[(&str, &str)] = &[
    ("web.yaml", include_str!("web.yaml")),
    ("web-v2.yaml", include_str!("web-v2.yaml")),
    ("crashloop.yaml", include_str!("crashloop.yaml")),
    ("readiness.yaml", include_str!("readiness.yaml")),
    ("config.yaml", include_str!("config.yaml")),
    ("node-failure.yaml", include_str!("node-failure.yaml")),
];

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
    use serde::Deserialize;
    use serde_json::Value;

    fn documents(text: &str) -> Vec<Value> {
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|d| Value::deserialize(d).expect("valid YAML"))
            .filter(|v| !v.is_null())
            .collect()
    }

    /// Every manifest is made of objects the typed Kubernetes API accepts, and every image it
    /// names is one of the example images (so the lab has them all loaded).
    #[test]
    fn manifests_are_typed_objects_using_example_images() {
        let recipes: Vec<&str> = IMAGES.iter().map(|i| i.name).collect();
        for (file, text) in MANIFESTS {
            let docs = documents(text);
            assert!(!docs.is_empty(), "{file}");
            for doc in docs {
                let kind = doc["kind"].as_str().unwrap_or_default().to_string();
                let images: Vec<String> = match kind.as_str() {
                    "Deployment" => {
                        let d: Deployment = serde_json::from_value(doc).expect(file);
                        let spec = d.spec.and_then(|s| s.template.spec).expect(file);
                        spec.containers
                            .into_iter()
                            .filter_map(|c| c.image)
                            .collect()
                    }
                    "Pod" => {
                        let p: Pod = serde_json::from_value(doc).expect(file);
                        let spec = p.spec.expect(file);
                        spec.containers
                            .into_iter()
                            .filter_map(|c| c.image)
                            .collect()
                    }
                    "Service" => {
                        serde_json::from_value::<Service>(doc).expect(file);
                        vec![]
                    }
                    "ConfigMap" => {
                        serde_json::from_value::<ConfigMap>(doc).expect(file);
                        vec![]
                    }
                    "Secret" => {
                        serde_json::from_value::<Secret>(doc).expect(file);
                        vec![]
                    }
                    other => panic!("{file}: unexpected kind {other:?}"),
                };
                for image in images {
                    assert!(recipes.contains(&image.as_str()), "{file}: {image}");
                }
            }
        }
    }

    #[test]
    fn image_tags_are_pinned() {
        for image in IMAGES {
            let tag = image.name.rsplit_once(':').map(|(_, t)| t);
            assert!(matches!(tag, Some(t) if t != "latest"), "{}", image.name);
            assert!(image.script.starts_with("#!/bin/sh\n"), "{}", image.name);
        }
    }
}
