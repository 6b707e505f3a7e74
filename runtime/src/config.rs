//! Finding and reading kubeconfig files, the way kubectl does.
//!
//! Every Skiff component and `skiffctl` connect the same way a Kubernetes client does: an
//! explicit `--kubeconfig`, else the files in `KUBECONFIG` (`:`-separated, merged with the
//! first definition of every name winning), else `~/.kube/config`; then a context (explicit or
//! `current-context`) picks a cluster, a user and a default namespace. `--server` overrides
//! the cluster's URL. The result is a [`Config`] the [`crate::client::Client`] is built from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A kubeconfig file, as far as Skiff reads it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    /// Named clusters.
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedCluster>,
    /// Named users (credentials).
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedUser>,
    /// Named contexts (cluster + user + namespace).
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedContext>,
    /// The context used when none is asked for.
    #[serde(default)]
    pub current_context: Option<String>,
}

/// A `clusters[]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct NamedCluster {
    /// Its name.
    pub name: String,
    /// Its connection details.
    #[serde(default)]
    pub cluster: Cluster,
}

/// How to reach an API server.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    /// `https://host:port` or `http://host:port`.
    #[serde(default)]
    pub server: Option<String>,
    /// CA bundle file.
    #[serde(default)]
    pub certificate_authority: Option<String>,
    /// CA bundle, base64 PEM.
    #[serde(default)]
    pub certificate_authority_data: Option<String>,
    /// Skip server certificate verification.
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// Name to verify the server certificate against.
    #[serde(default)]
    pub tls_server_name: Option<String>,
}

/// A `users[]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct NamedUser {
    /// Its name.
    pub name: String,
    /// Its credentials.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: User,
}

/// Credentials.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    /// Bearer token.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding a bearer token.
    #[serde(default, alias = "tokenFile")]
    pub token_file: Option<String>,
    /// Client certificate file.
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// Client certificate, base64 PEM.
    #[serde(default)]
    pub client_certificate_data: Option<String>,
    /// Client key file.
    #[serde(default)]
    pub client_key: Option<String>,
    /// Client key, base64 PEM.
    #[serde(default)]
    pub client_key_data: Option<String>,
    /// Basic auth user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic auth password.
    #[serde(default)]
    pub password: Option<String>,
}

/// A `contexts[]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct NamedContext {
    /// Its name.
    pub name: String,
    /// What it points at.
    #[serde(default)]
    pub context: Context,
}

/// A cluster, a user and a default namespace.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Context {
    /// Name of a `clusters[]` entry.
    #[serde(default)]
    pub cluster: String,
    /// Name of a `users[]` entry.
    #[serde(default)]
    pub user: Option<String>,
    /// Default namespace of requests.
    #[serde(default)]
    pub namespace: Option<String>,
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Kubeconfig {
    /// Parses one kubeconfig document. Relative file references stay as written; [`load`]
    /// resolves them against the file's directory.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| Error::KubeconfigInvalid {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads a kubeconfig file, resolving relative certificate, key and token paths against
    /// its directory as kubectl does.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::KubeconfigInvalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut kc = Self::parse(&text, path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut Option<String>| {
            if let Some(s) = p
                && !s.is_empty()
                && Path::new(s.as_str()).is_relative()
            {
                *s = dir.join(&*s).display().to_string();
            }
        };
        for c in &mut kc.clusters {
            resolve(&mut c.cluster.certificate_authority);
        }
        for u in &mut kc.users {
            resolve(&mut u.user.client_certificate);
            resolve(&mut u.user.client_key);
            resolve(&mut u.user.token_file);
        }
        Ok(kc)
    }

    /// Merges `other` into `self` the way `KUBECONFIG=a:b` does: the first file to define a
    /// name, or `current-context`, wins.
    pub fn merge(&mut self, other: Kubeconfig) {
        fn add<T>(into: &mut Vec<T>, from: Vec<T>, name: impl Fn(&T) -> &str) {
            for item in from {
                if !into.iter().any(|x| name(x) == name(&item)) {
                    into.push(item);
                }
            }
        }
        add(&mut self.clusters, other.clusters, |c| &c.name);
        add(&mut self.users, other.users, |u| &u.name);
        add(&mut self.contexts, other.contexts, |c| &c.name);
        if self.current_context.as_deref().is_none_or(str::is_empty) {
            self.current_context = other.current_context;
        }
    }
}

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No credentials (Skiff's loopback admin kubeconfig).
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic …`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

/// PEM bytes and the kubeconfig field (and file) they came from, so a bad certificate or
/// key is reported by the name the user wrote.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    /// `certificate-authority-data`, or `certificate-authority /path/ca.crt`.
    pub source: String,
    /// The PEM text.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Pem {
    /// Only the source and size: key material must not end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("source", &self.source)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// TLS material from the kubeconfig, PEM-encoded; turned into a rustls configuration by
/// [`crate::tls::client_config`] when the server is `https://`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// CA bundle to trust (instead of the system's roots).
    pub ca: Option<Pem>,
    /// Client certificate chain.
    pub client_cert: Option<Pem>,
    /// Client private key.
    pub client_key: Option<Pem>,
    /// Skip verification of the server certificate.
    pub insecure: bool,
    /// Server name to verify against, when it differs from the URL's host.
    pub server_name: Option<String>,
}

/// Everything needed to talk to one API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL, without a trailing slash.
    pub server: String,
    /// Namespace used when a caller asks for "the default namespace".
    pub namespace: String,
    /// Credentials.
    pub auth: Auth,
    /// TLS material (used only for `https` servers).
    pub tls: TlsConfig,
    /// Name of the context the config came from, if any.
    pub context: Option<String>,
}

impl Config {
    /// A config for a plain URL with no credentials (tests, `--server` without kubeconfig).
    pub fn from_url(server: &str) -> Self {
        Config {
            server: server.trim_end_matches('/').to_string(),
            namespace: "default".to_string(),
            auth: Auth::None,
            tls: TlsConfig::default(),
            context: None,
        }
    }

    /// The HTTP client every Skiff program talks to this server with: TLS from the
    /// kubeconfig for `https://` servers and the credentials as a default `Authorization`
    /// header. Shared so the runtime [`crate::Client`] and `skiffctl`'s own HTTP layer cannot
    /// drift apart in how they connect.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if self.server.starts_with("https://") {
            builder = builder.use_preconfigured_tls(crate::tls::client_config(&self.tls)?);
        }
        if let Some(value) = self.auth.header_value() {
            let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                Error::Config(
                    "the credentials contain characters not allowed in an HTTP header".into(),
                )
            })?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        Ok(builder.build()?)
    }
}

/// How long establishing a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Auth {
    /// The `Authorization` header value, if any.
    pub fn header_value(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
        }
    }
}

/// What the user asked for on the command line (all optional, like kubectl's flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--kubeconfig`: use exactly this file.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `--server`: overrides the cluster URL (and works without any kubeconfig).
    pub server: Option<String>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--token`.
    pub token: Option<String>,
}

/// Loads the config from the process environment (`KUBECONFIG`, `HOME`).
pub fn load(opts: &LoadOptions) -> Result<Config> {
    load_with_env(opts, |k| {
        std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
    })
}

/// Loads the config with an explicit environment lookup, so precedence rules are testable.
pub fn load_with_env(opts: &LoadOptions, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
    let paths: Vec<PathBuf> = if let Some(p) = &opts.kubeconfig {
        vec![p.clone()]
    } else if let Some(list) = env("KUBECONFIG").filter(|s| !s.is_empty()) {
        list.split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect()
    } else if let Some(home) = env("HOME") {
        vec![Path::new(&home).join(".kube").join("config")]
    } else {
        Vec::new()
    };
    let mut merged: Option<Kubeconfig> = None;
    for p in &paths {
        // An explicit --kubeconfig must exist; files missing from KUBECONFIG are skipped.
        if opts.kubeconfig.is_none() && !p.exists() {
            continue;
        }
        let kc = Kubeconfig::read(p)?;
        match &mut merged {
            Some(m) => m.merge(kc),
            None => merged = Some(kc),
        }
    }
    match merged {
        Some(kc) => from_kubeconfig(&kc, opts),
        None => match &opts.server {
            Some(server) => {
                let mut c = Config::from_url(server);
                apply_overrides(&mut c, opts)?;
                Ok(c)
            }
            None => Err(Error::KubeconfigMissing(paths)),
        },
    }
}

/// Resolves a context of an already merged kubeconfig into a [`Config`].
pub fn from_kubeconfig(kc: &Kubeconfig, opts: &LoadOptions) -> Result<Config> {
    let context_name = opts
        .context
        .clone()
        .or_else(|| kc.current_context.clone().filter(|s| !s.is_empty()));
    let context = match &context_name {
        Some(name) => Some(
            kc.contexts
                .iter()
                .find(|c| &c.name == name)
                .map(|c| &c.context)
                .ok_or_else(|| Error::Config(format!("context \"{name}\" does not exist")))?,
        ),
        None if opts.server.is_some() => None,
        None => {
            return Err(Error::Config(
                "no context chosen: set current-context or pass --context".into(),
            ));
        }
    };
    let cluster = match context {
        Some(ctx) => Some(
            kc.clusters
                .iter()
                .find(|c| c.name == ctx.cluster)
                .map(|c| &c.cluster)
                .ok_or_else(|| {
                    Error::Config(format!("cluster \"{}\" does not exist", ctx.cluster))
                })?,
        ),
        None => None,
    };
    let user = match context
        .and_then(|c| c.user.as_deref())
        .filter(|u| !u.is_empty())
    {
        Some(name) => Some(
            kc.users
                .iter()
                .find(|u| u.name == name)
                .map(|u| &u.user)
                .ok_or_else(|| Error::Config(format!("user \"{name}\" does not exist")))?,
        ),
        None => None,
    };
    let server = opts
        .server
        .clone()
        .or_else(|| cluster.and_then(|c| c.server.clone()))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Config("the cluster has no server URL".into()))?;
    let mut config = Config::from_url(&server);
    config.context = context_name;
    if let Some(ns) = context
        .and_then(|c| c.namespace.clone())
        .filter(|n| !n.is_empty())
    {
        config.namespace = ns;
    }
    if let Some(c) = cluster {
        config.tls.ca = data_or_file(
            "certificate-authority",
            &c.certificate_authority_data,
            &c.certificate_authority,
        )?;
        config.tls.insecure = c.insecure_skip_tls_verify;
        config.tls.server_name = c.tls_server_name.clone();
    }
    if let Some(u) = user {
        config.tls.client_cert = data_or_file(
            "client-certificate",
            &u.client_certificate_data,
            &u.client_certificate,
        )?;
        config.tls.client_key = data_or_file("client-key", &u.client_key_data, &u.client_key)?;
        config.auth = if let Some(t) = u.token.clone().filter(|t| !t.is_empty()) {
            Auth::Bearer(t)
        } else if let Some(f) = &u.token_file {
            let t = std::fs::read_to_string(f)
                .map_err(|e| Error::Config(format!("cannot read token file {f}: {e}")))?;
            Auth::Bearer(t.trim().to_string())
        } else if let (Some(username), Some(password)) = (&u.username, &u.password) {
            Auth::Basic {
                username: username.clone(),
                password: password.clone(),
            }
        } else {
            Auth::None
        };
    }
    apply_overrides(&mut config, opts)?;
    Ok(config)
}

fn apply_overrides(config: &mut Config, opts: &LoadOptions) -> Result<()> {
    if let Some(ns) = opts.namespace.clone().filter(|n| !n.is_empty()) {
        config.namespace = ns;
    }
    if let Some(t) = opts.token.clone() {
        config.auth = Auth::Bearer(t);
    }
    if !(config.server.starts_with("http://") || config.server.starts_with("https://")) {
        return Err(Error::Config(format!(
            "server URL {:?} must start with http:// or https://",
            config.server
        )));
    }
    Ok(())
}

/// A `*-data` field (base64) wins over its file counterpart, as in kubectl.
fn data_or_file(field: &str, data: &Option<String>, file: &Option<String>) -> Result<Option<Pem>> {
    if let Some(d) = data.as_deref().filter(|d| !d.is_empty()) {
        let cleaned: String = d.chars().filter(|c| !c.is_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(cleaned)
            .map(|bytes| {
                Some(Pem {
                    source: format!("{field}-data"),
                    bytes,
                })
            })
            .map_err(|e| Error::Config(format!("{field}-data is not valid base64: {e}")));
    }
    if let Some(f) = file.as_deref().filter(|f| !f.is_empty()) {
        return std::fs::read(f)
            .map(|bytes| {
                Some(Pem {
                    source: format!("{field} {f}"),
                    bytes,
                })
            })
            .map_err(|e| Error::Config(format!("cannot read {field} {f}: {e}")));
    }
    Ok(None)
}

/// Named entries by name, for callers that list contexts (`config get-contexts`).
pub fn contexts_by_name(kc: &Kubeconfig) -> BTreeMap<&str, &Context> {
    kc.contexts
        .iter()
        .map(|c| (c.name.as_str(), &c.context))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "
apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: http://127.0.0.1:6443
- name: prod
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: Q0EtUEVN
contexts:
- name: skiff
  context: {cluster: skiff, user: admin, namespace: team-a}
- name: prod
  context: {cluster: prod, user: robot}
- name: broken
  context: {cluster: nowhere}
current-context: skiff
users:
- name: admin
  user: {}
- name: robot
  user:
    token: s3cret
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
";

    const TWO: &str = "
clusters:
- name: skiff
  cluster: {server: http://shadowed:1}
- name: other
  cluster: {server: http://127.0.0.1:7000}
contexts:
- name: other
  context: {cluster: other, user: basic}
users:
- name: basic
  user: {username: u, password: p}
current-context: other
";

    fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.yaml");
        let two = dir.path().join("two.yaml");
        std::fs::write(&one, ONE).unwrap();
        std::fs::write(&two, TWO).unwrap();
        (dir, one, two)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn explicit_path_current_context_and_namespace() {
        let (_d, one, _) = files();
        let opts = LoadOptions {
            kubeconfig: Some(one),
            ..LoadOptions::default()
        };
        let c = load_with_env(&opts, no_env).unwrap();
        assert_eq!(c.server, "http://127.0.0.1:6443");
        assert_eq!(c.namespace, "team-a");
        assert_eq!(c.auth, Auth::None);
        assert_eq!(c.context.as_deref(), Some("skiff"));
    }

    #[test]
    fn other_context_with_token_and_certificates() {
        let (_d, one, _) = files();
        let opts = LoadOptions {
            kubeconfig: Some(one),
            context: Some("prod".into()),
            ..LoadOptions::default()
        };
        let c = load_with_env(&opts, no_env).unwrap();
        assert_eq!(c.server, "https://10.0.0.1:6443");
        assert_eq!(c.namespace, "default");
        assert_eq!(c.auth, Auth::Bearer("s3cret".into()));
        let pem = |p: &Option<Pem>| p.as_ref().map(|p| (p.source.clone(), p.bytes.clone()));
        assert_eq!(
            pem(&c.tls.ca),
            Some(("certificate-authority-data".into(), b"CA-PEM".to_vec()))
        );
        assert_eq!(
            pem(&c.tls.client_cert),
            Some(("client-certificate-data".into(), b"CERT".to_vec()))
        );
        assert_eq!(
            pem(&c.tls.client_key),
            Some(("client-key-data".into(), b"KEY".to_vec()))
        );
    }

    #[test]
    fn kubeconfig_env_merges_first_wins() {
        let (_d, one, two) = files();
        let list = format!("{}:{}", two.display(), one.display());
        let c = load_with_env(&LoadOptions::default(), |k| {
            (k == "KUBECONFIG").then(|| list.clone())
        })
        .unwrap();
        // two.yaml comes first: its current-context wins.
        assert_eq!(c.server, "http://127.0.0.1:7000");
        assert_eq!(
            c.auth,
            Auth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        // The skiff context from one.yaml uses two.yaml's (first) skiff cluster.
        let opts = LoadOptions {
            context: Some("skiff".into()),
            ..LoadOptions::default()
        };
        let c = load_with_env(&opts, |k| (k == "KUBECONFIG").then(|| list.clone())).unwrap();
        assert_eq!(c.server, "http://shadowed:1");
    }

    #[test]
    fn home_fallback_and_server_override() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".kube")).unwrap();
        std::fs::write(dir.path().join(".kube/config"), ONE).unwrap();
        let home = dir.path().display().to_string();
        let opts = LoadOptions {
            server: Some("http://127.0.0.1:9999/".into()),
            namespace: Some("ns2".into()),
            ..LoadOptions::default()
        };
        let c = load_with_env(&opts, |k| (k == "HOME").then(|| home.clone())).unwrap();
        assert_eq!(c.server, "http://127.0.0.1:9999");
        assert_eq!(c.namespace, "ns2");
    }

    #[test]
    fn typed_errors_for_missing_file_and_unknown_names() {
        let err = load_with_env(&LoadOptions::default(), |k| {
            (k == "HOME").then(|| "/nonexistent-home".to_string())
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::KubeconfigMissing(p) if p.len() == 1),
            "{err}"
        );
        assert!(err.to_string().contains("/nonexistent-home/.kube/config"));

        let opts = LoadOptions {
            kubeconfig: Some("/nonexistent/kc".into()),
            ..LoadOptions::default()
        };
        assert!(matches!(
            load_with_env(&opts, no_env),
            Err(Error::KubeconfigInvalid { .. })
        ));

        let (_d, one, _) = files();
        for (ctx, want) in [
            ("nope", "context \"nope\""),
            ("broken", "cluster \"nowhere\""),
        ] {
            let opts = LoadOptions {
                kubeconfig: Some(one.clone()),
                context: Some(ctx.into()),
                ..LoadOptions::default()
            };
            let err = load_with_env(&opts, no_env).unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.contains(want)),
                "{err}"
            );
        }

        // --server alone works without any kubeconfig.
        let opts = LoadOptions {
            server: Some("http://127.0.0.1:1".into()),
            ..LoadOptions::default()
        };
        assert_eq!(
            load_with_env(&opts, no_env).unwrap().server,
            "http://127.0.0.1:1"
        );
    }

    #[test]
    fn malformed_yaml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad");
        std::fs::write(&p, "clusters: [oops").unwrap();
        let opts = LoadOptions {
            kubeconfig: Some(p.clone()),
            ..LoadOptions::default()
        };
        let err = load_with_env(&opts, no_env).unwrap_err();
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
    }

    #[test]
    fn pem_debug_hides_the_bytes() {
        let p = Pem {
            source: "client-key-data".into(),
            bytes: b"SECRET".to_vec(),
        };
        let text = format!("{p:?}");
        assert!(
            text.contains("client-key-data") && !text.contains("SECRET"),
            "{text}"
        );
    }

    #[test]
    fn credentials_become_one_authorization_header() {
        let basic = Auth::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        for (auth, want) in [
            (Auth::None, None),
            (Auth::Bearer("t0k".into()), Some("Bearer t0k")),
            (basic, Some("Basic dTpw")),
        ] {
            assert_eq!(auth.header_value().as_deref(), want);
        }
        let mut c = Config::from_url("http://127.0.0.1:1");
        c.auth = Auth::Bearer("line\nbreak".into());
        assert!(matches!(c.http_client(), Err(Error::Config(m)) if m.contains("HTTP header")));
    }
}
