//! The admin kubeconfig `skiff server` writes for kubectl and skiffctl.

use std::path::Path;

/// Renders a kubeconfig pointing at `server` (a URL) with one context named `skiff`; for an
/// HTTPS server with the cluster CA (`ca_pem`) and the admin bearer token.
pub fn render(server: &str, ca_pem: Option<&str>, token: Option<&str>) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    let user = match token {
        Some(t) => format!("\n    token: {t}"),
        None => " {}".to_string(),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {server}
{ca}contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff-admin
    namespace: default
current-context: skiff
users:
- name: skiff-admin
  user:{user}
"
    )
}

/// Writes the kubeconfig atomically (temp file + rename), readable by the owner only (it
/// carries the admin token).
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("yaml.tmp");
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use runtime::config::{Auth, Kubeconfig, LoadOptions, from_kubeconfig};

    fn load(text: &str) -> runtime::config::Config {
        let kc =
            Kubeconfig::parse(text, std::path::Path::new("/x/kubeconfig.yaml")).expect("parse");
        from_kubeconfig(&kc, &LoadOptions::default()).expect("resolve")
    }

    #[test]
    fn plain_kubeconfig_names_the_server() {
        let k = super::render("http://127.0.0.1:6443", None, None);
        let c = load(&k);
        assert_eq!(c.server, "http://127.0.0.1:6443");
        assert_eq!(c.auth, Auth::None);
        assert!(c.tls.ca.is_none());
    }

    #[test]
    fn https_kubeconfig_carries_the_ca_and_token() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let k = super::render("https://10.0.0.1:6443", Some(pem), Some("t0ken"));
        let c = load(&k);
        assert_eq!(c.server, "https://10.0.0.1:6443");
        assert_eq!(c.auth, Auth::Bearer("t0ken".into()));
        assert_eq!(c.tls.ca.expect("ca").bytes, pem.as_bytes());
        assert_eq!(c.namespace, "default");
    }
}

/// How a component (scheduler, controllers, agent) finds the API server.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientFlags {
    /// Kubeconfig to reach the API server with (else KUBECONFIG / ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// API server URL, overriding the kubeconfig's.
    #[arg(long)]
    server: Option<String>,
    /// Bearer token. A join token (`K10<ca hash>::node:<secret>`, the server's
    /// `<data-dir>/node-token`) together with `--server https://...` and no `--kubeconfig`
    /// is all a machine needs to join: the cluster CA is fetched and checked against it.
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ClientFlags {
    /// Whether these flags join with a token alone (no kubeconfig involved).
    fn joins_with_token(&self) -> bool {
        self.kubeconfig.is_none()
            && self.server.is_some()
            && self
                .token
                .as_deref()
                .and_then(|t| runtime::join::JoinToken::parse(t).ok())
                .is_some_and(|t| t.ca_hash.is_some())
    }

    /// A client configured from these flags, the kubeconfig and the environment.
    pub async fn client(&self) -> Result<runtime::Client, runtime::Error> {
        runtime::Client::new(self.config().await?)
    }

    /// The client configuration from these flags: bootstrapped from the join token (CA
    /// fetched and checked), or loaded from the kubeconfig and the environment.
    pub async fn config(&self) -> Result<runtime::config::Config, runtime::Error> {
        if self.joins_with_token()
            && let (Some(server), Some(token)) = (&self.server, &self.token)
        {
            return runtime::join::bootstrap(server, token).await;
        }
        let opts = runtime::config::LoadOptions {
            kubeconfig: self.kubeconfig.clone(),
            server: self.server.clone(),
            token: self.token.clone(),
            ..Default::default()
        };
        runtime::config::load(&opts)
    }
}
