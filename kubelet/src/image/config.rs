//! What an image says about running it (its config blob's `config` object: Entrypoint, Cmd,
//! Env, WorkingDir, User) and the Kubernetes rules that combine it with a container spec.
//!
//! Kept pure apart from [`Store::image_config`], so the argv and environment rules are table
//! tested without images.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::image::{ImageReference, Store};

/// The runtime defaults an image carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`: the program (and leading arguments); empty when unset.
    pub entrypoint: Vec<String>,
    /// `Cmd`: default arguments (or the whole command without an entrypoint).
    pub cmd: Vec<String>,
    /// `Env` as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`, `None` when unset or empty.
    pub working_dir: Option<String>,
    /// `User` (`uid`, `uid:gid`, `name` or `name:group`), `None` when unset or empty.
    pub user: Option<String>,
}

/// The OCI image config blob; only the parts a runtime uses.
#[derive(Deserialize, Default)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

/// Parses an image config blob (the JSON the manifest's `config` descriptor points to).
pub fn parse(blob: &[u8]) -> Result<ImageConfig> {
    let parsed: ConfigBlob = serde_json::from_slice(blob)
        .map_err(|e| Error::Store(format!("image config is not valid JSON: {e}")))?;
    let c = parsed.config.unwrap_or_default();
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok(ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: non_empty(c.working_dir),
        user: non_empty(c.user),
    })
}

impl Store {
    /// The run config of the stored image `name` (normalized on the way, so `busybox` finds
    /// `docker.io/library/busybox:latest`).
    pub fn image_config(&self, name: &str) -> Result<ImageConfig> {
        let normalized = ImageReference::parse(name)?.to_string();
        let entry = self
            .get(&normalized)?
            .ok_or_else(|| Error::Store(format!("image {normalized:?} is not in the store")))?;
        let manifest = self.manifest(&entry.digest)?;
        parse(&self.read_blob(&manifest.config.digest)?)
    }
}

/// The process a container runs, by Kubernetes' rule: `command` replaces the image's
/// Entrypoint (and then the image's Cmd is ignored), `args` replaces Cmd. Empty lists count as
/// unset, as in Kubernetes. Returns an empty argv when neither gives anything to run.
pub fn container_argv(image: &ImageConfig, command: &[String], args: &[String]) -> Vec<String> {
    let (entrypoint, default_args): (&[String], &[String]) = if command.is_empty() {
        (&image.entrypoint, &image.cmd)
    } else {
        (command, &[])
    };
    let args = if args.is_empty() { default_args } else { args };
    entrypoint.iter().chain(args).cloned().collect()
}

/// The image's environment overridden by the container's (`NAME=value` each): a container
/// variable replaces the image's of the same name in place; new ones follow in order.
pub fn merge_env(image: &[String], container: &[String]) -> Vec<String> {
    let name = |kv: &String| {
        kv.split_once('=')
            .map_or(kv.clone(), |(n, _)| n.to_string())
    };
    let mut merged: Vec<String> = image.to_vec();
    for kv in container {
        match merged.iter().position(|old| name(old) == name(kv)) {
            Some(i) => merged[i] = kv.clone(),
            None => merged.push(kv.clone()),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_follows_the_kubernetes_rule() {
        let image = |ep: &[&str], cmd: &[&str]| ImageConfig {
            entrypoint: v(ep),
            cmd: v(cmd),
            ..ImageConfig::default()
        };
        // (image entrypoint, image cmd, command, args, expected)
        #[allow(clippy::type_complexity)]
        let cases: &[(&[&str], &[&str], &[&str], &[&str], &[&str])] = &[
            (&["/ep"], &["a"], &[], &[], &["/ep", "a"]),
            (&["/ep"], &["a"], &["/cmd"], &[], &["/cmd"]),
            (&["/ep"], &["a"], &[], &["b"], &["/ep", "b"]),
            (&["/ep"], &["a"], &["/cmd"], &["b"], &["/cmd", "b"]),
            (&[], &["sh", "-c", "x"], &[], &[], &["sh", "-c", "x"]),
            (&[], &["sh"], &[], &["echo"], &["echo"]),
            (&[], &[], &[], &[], &[]),
            (&[], &[], &["/cmd"], &["x", "y"], &["/cmd", "x", "y"]),
        ];
        for (ep, cmd, command, args, want) in cases {
            assert_eq!(
                container_argv(&image(ep, cmd), &v(command), &v(args)),
                v(want),
                "entrypoint {ep:?} cmd {cmd:?} command {command:?} args {args:?}"
            );
        }
    }

    #[test]
    fn container_env_overrides_the_image_env() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["PATH=/bin"], &[], &["PATH=/bin"]),
            (&["PATH=/bin", "A=1"], &["A=2"], &["PATH=/bin", "A=2"]),
            (&["A=1"], &["B=2", "A=3"], &["A=3", "B=2"]),
            (&[], &["X=a=b"], &["X=a=b"]),
        ];
        for (image, container, want) in cases {
            assert_eq!(merge_env(&v(image), &v(container)), v(want));
        }
    }

    #[test]
    fn parses_config_blobs() {
        let full = br#"{"architecture":"amd64","config":{"Entrypoint":["/ep"],"Cmd":["a"],
            "Env":["PATH=/bin"],"WorkingDir":"/srv","User":"1000:1000"}}"#;
        assert_eq!(
            parse(full).unwrap(),
            ImageConfig {
                entrypoint: v(&["/ep"]),
                cmd: v(&["a"]),
                env: v(&["PATH=/bin"]),
                working_dir: Some("/srv".into()),
                user: Some("1000:1000".into()),
            }
        );
        let nulls = br#"{"config":{"Entrypoint":null,"Cmd":null,"WorkingDir":"","User":""}}"#;
        assert_eq!(parse(nulls).unwrap(), ImageConfig::default());
        assert_eq!(parse(b"{}").unwrap(), ImageConfig::default());
        assert!(parse(b"not json").is_err());
    }
}
