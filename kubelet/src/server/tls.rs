//! The kubelet API's serving certificate: given as files, or self-signed at startup for the
//! node's names and addresses (what kubelet does without `--tls-cert-file`). The API server
//! does not verify it (see ARCHITECTURE "Logs and exec"), so self-signed is enough to encrypt.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

/// A PEM certificate chain and its private key.
#[derive(Clone)]
pub struct ServingCert {
    /// PEM certificate chain, leaf first.
    pub cert_pem: String,
    /// PEM private key.
    pub key_pem: String,
}

impl std::fmt::Debug for ServingCert {
    /// The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert").finish_non_exhaustive()
    }
}

impl ServingCert {
    /// A fresh self-signed certificate naming `hostname` and every address in `addresses`.
    pub fn self_signed(hostname: &str, addresses: &[IpAddr]) -> Result<Self> {
        let mut names = vec![hostname.to_string()];
        names.extend(addresses.iter().map(IpAddr::to_string));
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| Error::Tls(format!("cannot generate a serving certificate: {e}")))?;
        Ok(ServingCert {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        })
    }

    /// A certificate and key from PEM files (`--tls-cert-file`, `--tls-private-key-file`).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self> {
        let read =
            |p: &Path| std::fs::read_to_string(p).context(|| format!("read {}", p.display()));
        Ok(ServingCert {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    /// The rustls server configuration (HTTP/1.1 only: exec upgrades need it), open to any
    /// client.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        self.server_config_for_clients_of(None)
    }

    /// The rustls server configuration; with `client_ca` (PEM, the cluster CA) only clients
    /// with a certificate it signed — the API server — get through the handshake.
    pub fn server_config_for_clients_of(
        &self,
        client_ca: Option<&[u8]>,
    ) -> Result<Arc<rustls::ServerConfig>> {
        runtime::tls_serve::server_config(&self.cert_pem, &self.key_pem, client_ca)
            .map_err(|e| Error::Tls(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_load() {
        let cert = ServingCert::self_signed("node-1", &["127.0.0.1".parse().expect("ip")])
            .expect("generate");
        assert!(cert.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(cert.server_config().is_ok());
        let broken = ServingCert {
            cert_pem: "nothing".into(),
            key_pem: cert.key_pem.clone(),
        };
        let err = broken.server_config().expect_err("no certificate");
        assert!(err.to_string().contains("no certificate"), "{err}");
    }
}
