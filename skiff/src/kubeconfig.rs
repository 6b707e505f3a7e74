//! The admin kubeconfig `skiff server` writes for kubectl and skiffctl.

use std::path::Path;

/// Renders a kubeconfig pointing at `server` (a URL) with one context named `skiff`.
pub fn render(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {server}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff-admin
    namespace: default
current-context: skiff
users:
- name: skiff-admin
  user: {{}}
"
    )
}

/// Writes the kubeconfig atomically (temp file + rename), readable by the owner only.
pub fn write(path: &Path, server: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, render(server))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kubeconfig_names_the_server() {
        let k = super::render("http://127.0.0.1:6443");
        assert!(k.contains("server: http://127.0.0.1:6443"));
        assert!(k.contains("current-context: skiff"));
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
}

impl ClientFlags {
    /// A client configured from these flags, the kubeconfig and the environment.
    pub fn client(&self) -> Result<runtime::Client, runtime::Error> {
        let opts = runtime::config::LoadOptions {
            kubeconfig: self.kubeconfig.clone(),
            server: self.server.clone(),
            ..Default::default()
        };
        runtime::Client::new(runtime::config::load(&opts)?)
    }
}
