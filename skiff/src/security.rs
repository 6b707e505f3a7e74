//! TLS and authentication of `skiff server` / `skiff apiserver`: the cluster CA and serving
//! certificate, the admin and node tokens (all kept in the data dir, created on first start
//! and reused), and what the kubeconfig and the in-process components get from them.
//!
//! Files in the data dir: `tls/` (see `runtime::pki`), `admin-token` (the admin's bearer
//! token, also in `kubeconfig.yaml`) and `node-token` (the join token agents pass with
//! `--token`). All secrets are mode 0600.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use apiserver::allocator::Ipv4Range;
use apiserver::http::authn::{Authentication, TokenEntry, UserInfo};
use apiserver::http::node_proxy::KubeletClientCert;
use runtime::config::{Auth, Config, Pem, TlsConfig};
use runtime::join::{self, JoinToken};

/// How the server is reached and who may ask.
pub struct Security {
    /// `None` in the plain-HTTP loopback mode.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub authentication: Authentication,
    /// PEM of the cluster CA (HTTPS only).
    pub ca_pem: Option<String>,
    /// The admin's bearer token (HTTPS only).
    pub admin_token: Option<String>,
    /// The certificate the API server presents to kubelets (HTTPS only).
    pub kubelet_client_cert: Option<KubeletClientCert>,
}

/// Refuses the plain-HTTP mode (no TLS, no authentication) anywhere but loopback.
pub fn check_plain_http(listen: SocketAddr, plain_http: bool) -> Result<(), String> {
    if plain_http && !listen.ip().is_loopback() {
        return Err(format!(
            "--plain-http serves the API without TLS or authentication and is only allowed on a \
             loopback --listen address, not {listen}"
        ));
    }
    Ok(())
}

/// The names the serving certificate must cover: the listen address (unless it is the
/// wildcard), the host name, the first Service address (the `kubernetes` Service's
/// ClusterIP) and the `--tls-san` values, plus the fixed loopback and in-cluster names.
pub fn serving_names(
    listen: SocketAddr,
    service_cidr: &Ipv4Range,
    hostname: Option<&str>,
    tls_san: &[String],
) -> Vec<String> {
    let mut extra: Vec<String> = tls_san.to_vec();
    if !listen.ip().is_unspecified() {
        extra.push(listen.ip().to_string());
    }
    extra.push(IpAddr::V4(service_cidr.nth(0)).to_string());
    extra.extend(
        hostname
            .filter(|h| !h.is_empty() && h.parse::<IpAddr>().is_err())
            .map(str::to_string),
    );
    runtime::pki::serving_names(&extra)
}

/// The node token to use given what `node-token` holds: its secret is kept, but the CA hash
/// is always the current CA's (a token naming an old CA would make every join fail).
pub fn node_token(existing: Option<&str>, ca_pem: &str) -> String {
    let secret = existing
        .and_then(|t| JoinToken::parse(t).ok())
        .map(|t| t.secret)
        .unwrap_or_else(join::random_secret);
    JoinToken::render(ca_pem.as_bytes(), "node", &secret)
}

/// The server URL clients on this machine use: the wildcard becomes 127.0.0.1.
pub fn local_url(scheme: &str, addr: SocketAddr) -> String {
    let mut local = addr;
    if local.ip().is_unspecified() {
        local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("{scheme}://{local}")
}

impl Security {
    /// Loads or creates the TLS material and tokens in `data_dir` (or, with `plain_http`,
    /// sets up the anonymous plain-HTTP mode).
    pub fn prepare(
        data_dir: &Path,
        listen: SocketAddr,
        service_cidr: &Ipv4Range,
        tls_san: &[String],
        plain_http: bool,
    ) -> Result<Self, String> {
        check_plain_http(listen, plain_http)?;
        if plain_http {
            return Ok(Security {
                tls: None,
                authentication: Authentication::default(),
                ca_pem: None,
                admin_token: None,
                kubelet_client_cert: None,
            });
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
        let names = serving_names(
            listen,
            service_cidr,
            hostname.as_deref().map(str::trim),
            tls_san,
        );
        let pki = runtime::pki::load_or_create(&data_dir.join("tls"), &names)
            .map_err(|e| e.to_string())?;
        let tls =
            runtime::tls_serve::server_config(&pki.serving_chain_pem, &pki.serving_key_pem, None)
                .map_err(|e| e.to_string())?;
        let admin_path = data_dir.join("admin-token");
        let admin = match read_secret(&admin_path) {
            Some(t) => t,
            None => {
                let t = join::random_secret();
                runtime::pki::write_private(&admin_path, &format!("{t}\n"))
                    .map_err(|e| e.to_string())?;
                t
            }
        };
        let node_path = data_dir.join("node-token");
        let existing = read_secret(&node_path);
        let node = node_token(existing.as_deref(), &pki.ca_pem);
        if existing.as_deref() != Some(node.as_str()) {
            runtime::pki::write_private(&node_path, &format!("{node}\n"))
                .map_err(|e| e.to_string())?;
        }
        let node_secret = JoinToken::parse(&node).map_err(|e| e.to_string())?.secret;
        let authentication = Authentication {
            tokens: vec![
                TokenEntry {
                    secret: admin.clone(),
                    user: UserInfo {
                        name: "skiff-admin".into(),
                        groups: vec!["system:masters".into(), "system:authenticated".into()],
                    },
                },
                TokenEntry {
                    secret: node_secret,
                    user: UserInfo {
                        name: "skiff-node".into(),
                        groups: vec!["system:nodes".into(), "system:authenticated".into()],
                    },
                },
            ],
            anonymous: false,
            ca_hash: Some(join::ca_hash(pki.ca_pem.as_bytes())),
        };
        Ok(Security {
            tls: Some(tls),
            authentication,
            kubelet_client_cert: Some(KubeletClientCert {
                chain_pem: pki.kubelet_client_chain_pem,
                key_pem: pki.kubelet_client_key_pem,
            }),
            ca_pem: Some(pki.ca_pem),
            admin_token: Some(admin),
        })
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The admin kubeconfig for a server at `url`.
    pub fn kubeconfig(&self, url: &str) -> String {
        crate::kubeconfig::render(url, self.ca_pem.as_deref(), self.admin_token.as_deref())
    }

    /// How the in-process scheduler and controllers reach the server at `url`: trusting the
    /// cluster CA, as the admin.
    pub fn component_config(&self, url: &str) -> Config {
        let mut config = Config::from_url(url);
        if let Some(ca) = &self.ca_pem {
            config.tls = TlsConfig {
                ca: Some(Pem {
                    source: "the cluster CA".into(),
                    bytes: ca.as_bytes().to_vec(),
                }),
                ..TlsConfig::default()
            };
        }
        if let Some(t) = &self.admin_token {
            config.auth = Auth::Bearer(t.clone());
        }
        config
    }
}

fn read_secret(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        let cases = [
            ("127.0.0.1:6443", true, true),
            ("[::1]:6443", true, true),
            ("10.250.1.1:6443", true, false),
            ("0.0.0.0:6443", true, false),
            ("0.0.0.0:6443", false, true),
            ("10.250.1.1:6443", false, true),
        ];
        for (listen, plain, ok) in cases {
            let got = check_plain_http(listen.parse().expect("addr"), plain);
            assert_eq!(got.is_ok(), ok, "{listen} plain={plain}: {got:?}");
        }
    }

    #[test]
    fn serving_names_follow_the_flags() {
        let cidr: Ipv4Range = "10.96.0.0/16".parse().expect("cidr");
        let names = serving_names(
            "10.250.1.1:6443".parse().expect("addr"),
            &cidr,
            Some("host-a"),
            &["skiff.example".into(), "192.168.0.9".into()],
        );
        for want in [
            "10.250.1.1",
            "10.96.0.1",
            "host-a",
            "skiff.example",
            "192.168.0.9",
            "127.0.0.1",
            "localhost",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        let wildcard = serving_names("0.0.0.0:6443".parse().expect("addr"), &cidr, None, &[]);
        assert!(!wildcard.iter().any(|n| n == "0.0.0.0"), "{wildcard:?}");
        let other_cidr: Ipv4Range = "10.100.0.0/24".parse().expect("cidr");
        let n = serving_names("127.0.0.1:1".parse().expect("addr"), &other_cidr, None, &[]);
        assert!(n.iter().any(|x| x == "10.100.0.1"), "{n:?}");
    }

    #[test]
    fn node_tokens_keep_their_secret_and_follow_the_ca() {
        let fresh = node_token(None, "CA-1");
        let parsed = JoinToken::parse(&fresh).expect("parse");
        assert!(join::ca_matches(&parsed, b"CA-1"));
        assert_eq!(node_token(Some(&fresh), "CA-1"), fresh, "stable");
        let moved = node_token(Some(&fresh), "CA-2");
        let moved = JoinToken::parse(&moved).expect("parse");
        assert_eq!(moved.secret, parsed.secret);
        assert!(join::ca_matches(&moved, b"CA-2"));
        let from_bare = JoinToken::parse(&node_token(Some("bare"), "CA-1")).expect("parse");
        assert_eq!(from_bare.secret, "bare");
        assert_ne!(
            JoinToken::parse(&node_token(None, "CA-1"))
                .expect("p")
                .secret,
            parsed.secret
        );
    }

    #[test]
    fn local_urls() {
        assert_eq!(
            local_url("https", "0.0.0.0:6443".parse().expect("addr")),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            local_url("http", "10.1.2.3:80".parse().expect("addr")),
            "http://10.1.2.3:80"
        );
    }
}
