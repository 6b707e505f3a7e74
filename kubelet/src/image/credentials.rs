//! Registry credentials from Docker config JSON, the content of `kubernetes.io/dockerconfigjson`
//! (and legacy `kubernetes.io/dockercfg`) imagePullSecrets.
//!
//! The agent resolves a pod's secrets and hands their bytes here; matching a registry follows
//! the kubelet's keyring: keys may be URLs or `host[:port][/path]`, Docker Hub is known under
//! several names, and a key with a path only matches repositories below that path (the longest
//! match is tried first).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::Error;
use crate::image::reference::ImageReference;

/// A username and password for a registry (basic credentials, also exchanged for a bearer
/// token when the registry asks for one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Registry user.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct DockerConfigJson {
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Credentials of one docker config, keyed by the registry key as written.
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    entries: Vec<(String, Credentials)>,
}

impl DockerConfig {
    /// Parses `{"auths": {KEY: {"auth": base64(user:pass)} | {"username", "password"}}}` or the
    /// legacy bare map.
    pub fn parse(bytes: &[u8]) -> Result<DockerConfig, Error> {
        let invalid = |e: String| Error::ErrImagePull {
            image: String::new(),
            message: format!("invalid docker config in image pull secret: {e}"),
        };
        let auths = match serde_json::from_slice::<DockerConfigJson>(bytes) {
            Ok(config) => config.auths,
            Err(_) => serde_json::from_slice::<BTreeMap<String, AuthEntry>>(bytes)
                .map_err(|e| invalid(e.to_string()))?,
        };
        let mut entries = Vec::new();
        for (key, entry) in auths {
            let credentials = match (&entry.auth, &entry.username, &entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| invalid(format!("auth of {key:?}: {e}")))?;
                    let decoded = String::from_utf8(decoded)
                        .map_err(|_| invalid(format!("auth of {key:?} is not UTF-8")))?;
                    let (username, password) = decoded
                        .split_once(':')
                        .ok_or_else(|| invalid(format!("auth of {key:?} is not user:password")))?;
                    Credentials {
                        username: username.to_string(),
                        password: password.to_string(),
                    }
                }
                (_, Some(username), Some(password)) => Credentials {
                    username: username.clone(),
                    password: password.clone(),
                },
                _ => continue,
            };
            entries.push((key, credentials));
        }
        Ok(DockerConfig { entries })
    }

    /// Credentials that apply to `image`, most specific key first.
    pub fn matching(&self, image: &ImageReference) -> Vec<Credentials> {
        let mut matches: Vec<(usize, &Credentials)> = self
            .entries
            .iter()
            .filter_map(|(key, creds)| key_matches(key, image).map(|len| (len, creds)))
            .collect();
        matches.sort_by_key(|m| std::cmp::Reverse(m.0));
        matches.into_iter().map(|(_, c)| c.clone()).collect()
    }
}

/// Credentials for `image` from several configs (a pod's imagePullSecrets in order).
pub fn credentials_for(configs: &[DockerConfig], image: &ImageReference) -> Vec<Credentials> {
    configs.iter().flat_map(|c| c.matching(image)).collect()
}

/// If `key` applies to `image`, how specific it is (length of its path), else `None`.
fn key_matches(key: &str, image: &ImageReference) -> Option<usize> {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = match without_scheme.split_once('/') {
        Some((host, path)) => (host, path.trim_matches('/')),
        None => (without_scheme, ""),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        other => other,
    };
    // Docker Hub's classic key is https://index.docker.io/v1/: the path is an API version.
    let path = if matches!(path, "v1" | "v2") {
        ""
    } else {
        path
    };
    if !host.eq_ignore_ascii_case(&image.registry) {
        return None;
    }
    if path.is_empty() {
        return Some(0);
    }
    let repo = &image.repository;
    let below = repo == path
        || repo
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('/'));
    below.then_some(path.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn matches_keys_like_the_kubelet_keyring() {
        let config = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "reg.example.com:5000": {{"username": "plain", "password": "p"}},
                "reg.example.com:5000/team": {{"auth": "{}"}},
                "http://other.example.com/": {{"auth": "{}"}}
            }}}}"#,
            b64("hub:secret"),
            b64("team:t0k:en"),
            b64("other:o")
        );
        let config = DockerConfig::parse(config.as_bytes()).unwrap();
        let users = |image: &str| -> Vec<String> {
            config
                .matching(&ImageReference::parse(image).unwrap())
                .into_iter()
                .map(|c| c.username)
                .collect()
        };
        let cases: [(&str, &[&str]); 7] = [
            ("busybox", &["hub"]),
            ("docker.io/someone/app:1", &["hub"]),
            ("reg.example.com:5000/team/app", &["team", "plain"]),
            ("reg.example.com:5000/teamx/app", &["plain"]),
            ("reg.example.com:5000/app", &["plain"]),
            ("reg.example.com/app", &[]),
            ("other.example.com/x/y", &["other"]),
        ];
        for (image, want) in cases {
            assert_eq!(users(image), want, "{image}");
        }
        let team = config.matching(&ImageReference::parse("reg.example.com:5000/team/a").unwrap());
        assert_eq!(
            team[0].password, "t0k:en",
            "only the first ':' separates user and password"
        );
    }

    #[test]
    fn accepts_the_legacy_dockercfg_map_and_rejects_garbage() {
        let legacy = format!(r#"{{"reg.io": {{"auth": "{}"}}}}"#, b64("u:p"));
        let config = DockerConfig::parse(legacy.as_bytes()).unwrap();
        assert_eq!(
            config.matching(&ImageReference::parse("reg.io/a").unwrap()),
            [Credentials {
                username: "u".into(),
                password: "p".into()
            }]
        );
        assert!(DockerConfig::parse(b"not json").is_err());
        assert!(DockerConfig::parse(br#"{"auths": {"r": {"auth": "!!"}}}"#).is_err());
        let debug = format!(
            "{:?}",
            config.matching(&ImageReference::parse("reg.io/a").unwrap())
        );
        assert!(
            !debug.contains("\"p\""),
            "passwords stay out of logs: {debug}"
        );
    }
}
