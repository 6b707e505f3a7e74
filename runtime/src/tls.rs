//! TLS to the API server, built from kubeconfig material with rustls.
//!
//! The rules follow client-go's transport: a configured CA bundle is the *only* trust root
//! (otherwise the system's roots are used), `insecure-skip-tls-verify` accepts any server
//! certificate and cannot be combined with a CA, a client certificate needs its key and the
//! other way round, and `tls-server-name` replaces the URL's host when the server certificate
//! is checked. Everything uses the `ring` provider passed explicitly, so no process-wide
//! rustls provider has to be installed (and none can be missing).

use std::error::Error as StdError;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{Pem, TlsConfig};
use crate::error::{Error, Result};

/// The crypto provider of every Skiff TLS connection.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration for an `https://` server.
pub fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure {
        if let Some(ca) = &tls.ca {
            return Err(Error::Config(format!(
                "{} cannot be used together with insecure-skip-tls-verify (specifying a root \
                 certificates file with the insecure flag is not allowed)",
                ca.source
            )));
        }
        Arc::new(AcceptAnyServerCert(provider.clone()))
    } else {
        let roots = Arc::new(match &tls.ca {
            Some(ca) => ca_roots(ca)?,
            None => system_roots(),
        });
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| Error::Config(format!("cannot use the CA bundle: {e}")))?;
        match tls.server_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => Arc::new(FixedServerName {
                inner: webpki,
                name: ServerName::try_from(name.to_string()).map_err(|e| {
                    Error::Config(format!("tls-server-name {name:?} is not a valid name: {e}"))
                })?,
            }),
            None => webpki,
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&tls.client_cert, &tls.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let der = private_key(key)?;
            builder.with_client_auth_cert(chain, der).map_err(|e| {
                Error::Config(format!(
                    "{} and {} do not form a usable client certificate: {e}",
                    cert.source, key.source
                ))
            })
        }
        (Some(cert), None) => Err(Error::Config(format!(
            "{} is set but client-key/client-key-data is not: a client certificate needs its key",
            cert.source
        ))),
        (None, Some(key)) => Err(Error::Config(format!(
            "{} is set but client-certificate/client-certificate-data is not: a client key \
             needs its certificate",
            key.source
        ))),
    }
}

/// Every certificate of a PEM bundle; an empty or malformed bundle names its source.
fn certificates(pem: &Pem) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(&pem.bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{} is not valid PEM: {e}", pem.source)))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no PEM certificate (expected a \"BEGIN CERTIFICATE\" block)",
            pem.source
        )));
    }
    Ok(certs)
}

/// The trust roots of a configured CA bundle (and nothing else, as in client-go).
fn ca_roots(pem: &Pem) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem)? {
        roots.add(cert).map_err(|e| {
            Error::Config(format!(
                "{} holds an unusable CA certificate: {e}",
                pem.source
            ))
        })?;
    }
    Ok(roots)
}

/// The operating system's trust roots, for servers with a publicly trusted certificate.
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "skipping unreadable system CA certificates");
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    roots
}

fn private_key(pem: &Pem) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(&pem.bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => Error::Config(format!(
            "{} holds no PEM private key (expected a \"BEGIN … PRIVATE KEY\" block)",
            pem.source
        )),
        e => Error::Config(format!("{} is not valid PEM: {e}", pem.source)),
    })
}

/// `insecure-skip-tls-verify`: any certificate is accepted, but the handshake signatures
/// are still checked so the connection is at least encrypted to whoever holds that key.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `tls-server-name`: full verification, but against a fixed name instead of the URL's host
/// (for servers reached through an address their certificate does not list).
#[derive(Debug)]
struct FixedServerName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedServerName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The TLS failure behind a transport error, explained, if TLS is what failed.
///
/// reqwest reports a rejected certificate as a generic connect error whose own message
/// hides the cause; callers use this to say what went wrong instead of "cannot connect".
pub fn handshake_failure(e: &reqwest::Error) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = rustls_error(err) {
            return Some(explain(t));
        }
        cur = err.source();
    }
    None
}

/// `io::Error` hides a wrapped error from `source()` (and the connector wraps the rustls
/// error in more than one), so look inside them explicitly.
fn rustls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(e) = err.downcast_ref::<rustls::Error>() {
        return Some(e);
    }
    let inner: &(dyn StdError + 'static) = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

/// A rustls error with a hint at the kubeconfig field that usually fixes it.
fn explain(e: &rustls::Error) -> String {
    let hint = match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => Some(
            "the server's certificate is not signed by a trusted CA; check certificate-authority / certificate-authority-data",
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Some(
            "the server's certificate does not name the host in the server URL; check the URL or set tls-server-name",
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => Some("the server's certificate has expired"),
        rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::UnknownCA,
        ) => Some(
            "the server did not accept the client certificate; check client-certificate / client-key",
        ),
        _ => None,
    };
    match hint {
        Some(h) => format!("{e} ({h})"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(source: &str, text: &str) -> Pem {
        Pem {
            source: source.to_string(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn config_error(tls: TlsConfig) -> String {
        match client_config(&tls) {
            Err(Error::Config(m)) => m,
            Err(e) => panic!("expected a config error, got {e}"),
            Ok(_) => panic!("expected a config error, got a TLS config"),
        }
    }

    #[test]
    fn bad_material_names_the_kubeconfig_field() {
        let not_pem = "just text";
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA";
        let cases: Vec<(TlsConfig, &[&str])> = vec![
            (
                TlsConfig {
                    ca: Some(pem("certificate-authority-data", not_pem)),
                    ..TlsConfig::default()
                },
                &["certificate-authority-data", "no PEM certificate"],
            ),
            (
                TlsConfig {
                    ca: Some(pem("certificate-authority /x/ca.crt", broken)),
                    ..TlsConfig::default()
                },
                &["certificate-authority /x/ca.crt", "not valid PEM"],
            ),
            (
                TlsConfig {
                    client_key: Some(pem("client-key /x/k.pem", not_pem)),
                    ..TlsConfig::default()
                },
                &["client-key /x/k.pem", "needs its certificate"],
            ),
            (
                TlsConfig {
                    client_cert: Some(pem("client-certificate-data", not_pem)),
                    ..TlsConfig::default()
                },
                &["client-certificate-data", "needs its key"],
            ),
            (
                TlsConfig {
                    client_cert: Some(pem("client-certificate-data", not_pem)),
                    client_key: Some(pem("client-key-data", not_pem)),
                    ..TlsConfig::default()
                },
                &["client-certificate-data", "no PEM certificate"],
            ),
            (
                TlsConfig {
                    ca: Some(pem("certificate-authority-data", not_pem)),
                    insecure: true,
                    ..TlsConfig::default()
                },
                &["certificate-authority-data", "insecure-skip-tls-verify"],
            ),
            (
                TlsConfig {
                    insecure: false,
                    server_name: Some("not a name!".into()),
                    ..TlsConfig::default()
                },
                &["tls-server-name"],
            ),
        ];
        for (tls, wants) in cases {
            let msg = config_error(tls.clone());
            for want in wants {
                assert!(msg.contains(want), "{tls:?}: {msg:?} lacks {want:?}");
            }
        }
    }

    #[test]
    fn plain_and_insecure_configs_build() {
        assert!(client_config(&TlsConfig::default()).is_ok());
        let insecure = TlsConfig {
            insecure: true,
            ..TlsConfig::default()
        };
        assert!(client_config(&insecure).is_ok());
    }

    #[test]
    fn explanations_point_at_the_field() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "certificate-authority",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                "tls-server-name",
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
                "client-certificate",
            ),
            (rustls::Error::HandshakeNotComplete, "handshake"),
        ];
        for (err, want) in cases {
            let text = explain(&err);
            assert!(text.contains(want), "{err:?}: {text}");
        }
    }

    #[test]
    fn rustls_errors_are_found_inside_nested_io_errors() {
        let rejected = || rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let once = std::io::Error::new(std::io::ErrorKind::InvalidData, rejected());
        let twice = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rejected(),
        ));
        let unrelated = std::io::Error::other("connection reset");
        assert_eq!(rustls_error(&once), Some(&rejected()));
        assert_eq!(rustls_error(&twice), Some(&rejected()));
        assert_eq!(rustls_error(&unrelated), None);
    }
}
