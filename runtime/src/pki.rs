//! The cluster's certificate authority and the API server's serving certificate, kept in a
//! directory (`<data-dir>/tls/`) and created on first use, like k3s does.
//!
//! Why a cluster CA rather than one self-signed serving certificate: clients (kubectl, agents
//! joining from other machines) trust one stable CA; the serving certificate can be re-issued
//! when the server's names change (a new `--tls-san`, another listen address) without every
//! kubeconfig and join token becoming stale. The CA key never leaves the data directory.
//!
//! Files: `ca.crt`, `ca.key`, `serving.crt`, `serving.key` and `serving.sans` (the names the
//! serving certificate was issued for, one per line; rcgen cannot parse certificates, so the
//! names are recorded beside it to decide whether it can be reused), and
//! `kubelet-client.{crt,key}`: the client certificate the API server presents to kubelets
//! (kube-apiserver's `--kubelet-client-certificate`), which kubelets check against the CA.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

/// Common name of the cluster CA (also what `openssl x509 -subject` shows).
const CA_COMMON_NAME: &str = "skiff-ca";
/// How long the CA is valid: ten years, like k3s' and kubeadm's.
const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a serving certificate is valid. It is re-issued whenever its names change; a
/// long life keeps long-running lab clusters working (rotation is a known gap).
const SERVING_VALIDITY_DAYS: i64 = 3650;

/// The TLS material `skiff server` serves and hands to clients.
#[derive(Clone)]
pub struct ServerPki {
    /// PEM of the cluster CA certificate (goes into kubeconfigs and `/cacerts`).
    pub ca_pem: String,
    /// PEM of the serving certificate, leaf first, then the CA.
    pub serving_chain_pem: String,
    /// PEM of the serving certificate's private key.
    pub serving_key_pem: String,
    /// PEM of the API server's client certificate for kubelets, leaf first, then the CA.
    pub kubelet_client_chain_pem: String,
    /// PEM of its private key.
    pub kubelet_client_key_pem: String,
}

impl std::fmt::Debug for ServerPki {
    /// Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPki").finish_non_exhaustive()
    }
}

/// The names a serving certificate covers: the given ones plus the in-cluster names of the
/// `kubernetes` Service and the loopback names, sorted and without duplicates (so the list
/// can be compared with the one recorded beside an existing certificate).
pub fn serving_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(extra.iter().map(|s| s.trim().to_string()))
    .filter(|s| !s.is_empty())
    .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether the serving certificate recorded with `recorded` names (the `serving.sans` file)
/// can be reused for `wanted`: only when it was issued for exactly those names.
pub fn can_reuse_serving(recorded: Option<&str>, wanted: &[String]) -> bool {
    let Some(recorded) = recorded else {
        return false;
    };
    let mut have: Vec<&str> = recorded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    have.sort_unstable();
    have.dedup();
    have == wanted.iter().map(String::as_str).collect::<Vec<_>>()
}

/// Loads the CA and serving certificate from `dir`, creating what is missing: a new CA only
/// when there is none (or it is unreadable), a new serving certificate when there is none or
/// it was issued for other names than `names`.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<ServerPki> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let (ca_pem, ca_key) = match (read(&ca_cert_path), read(&ca_key_path)) {
        (Some(cert), Some(key)) => {
            let key = KeyPair::from_pem(&key).map_err(|e| {
                Error::Config(format!(
                    "{} is not a usable key: {e}",
                    ca_key_path.display()
                ))
            })?;
            (cert, key)
        }
        _ => {
            let key = KeyPair::generate()
                .map_err(|e| Error::Config(format!("cannot generate the CA key: {e}")))?;
            let cert = ca_params()
                .self_signed(&key)
                .map_err(|e| Error::Config(format!("cannot create the cluster CA: {e}")))?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_public(&ca_cert_path, &cert.pem())?;
            // Anything issued by a previous CA is worthless now.
            let _ = std::fs::remove_file(dir.join("serving.sans"));
            let _ = std::fs::remove_file(dir.join("kubelet-client.crt"));
            (cert.pem(), key)
        }
    };
    let issuer = Issuer::new(ca_params(), ca_key);
    let (serving_chain_pem, serving_key_pem) = serving(dir, names, &issuer, &ca_pem)?;
    let (kubelet_client_chain_pem, kubelet_client_key_pem) = kubelet_client(dir, &issuer, &ca_pem)?;
    Ok(ServerPki {
        ca_pem,
        serving_chain_pem,
        serving_key_pem,
        kubelet_client_chain_pem,
        kubelet_client_key_pem,
    })
}

/// The serving certificate and key: reused when issued for `names`, else issued anew.
fn serving(
    dir: &Path,
    names: &[String],
    issuer: &Issuer<'_, KeyPair>,
    ca_pem: &str,
) -> Result<(String, String)> {
    let sans_path = dir.join("serving.sans");
    let cert_path = dir.join("serving.crt");
    let key_path = dir.join("serving.key");
    if can_reuse_serving(read(&sans_path).as_deref(), names)
        && let (Some(chain), Some(key)) = (read(&cert_path), read(&key_path))
    {
        return Ok((chain, key));
    }
    let key = KeyPair::generate()
        .map_err(|e| Error::Config(format!("cannot generate the serving key: {e}")))?;
    let cert = serving_params(names)?
        .signed_by(&key, issuer)
        .map_err(|e| Error::Config(format!("cannot issue the serving certificate: {e}")))?;
    let chain = format!("{}{}", cert.pem(), ca_pem);
    write_private(&key_path, &key.serialize_pem())?;
    write_public(&cert_path, &chain)?;
    write_public(&sans_path, &(names.join("\n") + "\n"))?;
    Ok((chain, key.serialize_pem()))
}

/// The API server's client certificate for kubelets: reused when present, else issued.
fn kubelet_client(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    ca_pem: &str,
) -> Result<(String, String)> {
    let cert_path = dir.join("kubelet-client.crt");
    let key_path = dir.join("kubelet-client.key");
    if let (Some(chain), Some(key)) = (read(&cert_path), read(&key_path)) {
        return Ok((chain, key));
    }
    let key = KeyPair::generate()
        .map_err(|e| Error::Config(format!("cannot generate the kubelet client key: {e}")))?;
    let cert = kubelet_client_params()
        .signed_by(&key, issuer)
        .map_err(|e| Error::Config(format!("cannot issue the kubelet client certificate: {e}")))?;
    let chain = format!("{}{}", cert.pem(), ca_pem);
    write_private(&key_path, &key.serialize_pem())?;
    write_public(&cert_path, &chain)?;
    Ok((chain, key.serialize_pem()))
}

/// kube-apiserver's kubelet client identity: CN `skiff-apiserver-kubelet-client`, O
/// `system:masters`, usable for client authentication only.
fn kubelet_client_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-apiserver-kubelet-client");
    dn.push(DnType::OrganizationName, "system:masters");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(SERVING_VALIDITY_DAYS);
    params
}

/// The CA's parameters. Also used to rebuild the issuer from the stored key: what signing
/// needs (subject, key identifier method, key usages) is fixed here, so the CA certificate
/// itself never has to be parsed.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
    params
}

fn serving_params(names: &[String]) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-apiserver");
    params.distinguished_name = dn;
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| Error::Config(format!("{n:?} is not a valid TLS name: {e}"))),
        })
        .collect::<Result<_>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(SERVING_VALIDITY_DAYS);
    Ok(params)
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().filter(|s| !s.is_empty())
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("cannot write {}: {e}", path.display()))
}

/// Writes a secret (key, token) atomically, readable by the owner only.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    write_mode(path, text, 0o600)
}

fn write_public(path: &Path, text: &str) -> Result<()> {
    write_mode(path, text, 0o644)
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    fn names(extra: &[&str]) -> Vec<String> {
        serving_names(&extra.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn serving_names_cover_the_service_and_loopback_names() {
        let n = names(&[
            "10.96.0.1",
            "192.168.1.5",
            " ",
            "localhost",
            "skiff.example",
        ]);
        for want in [
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
            "192.168.1.5",
            "skiff.example",
        ] {
            assert!(n.iter().any(|x| x == want), "{want} missing from {n:?}");
        }
        assert_eq!(n.iter().filter(|x| *x == "localhost").count(), 1);
        assert!(!n.iter().any(|x| x.is_empty()));
    }

    #[test]
    fn reuse_only_for_the_same_names() {
        let wanted = names(&["10.0.0.1"]);
        let recorded = wanted.join("\n") + "\n";
        let reordered: String = wanted.iter().rev().map(|n| format!("{n}\n")).collect();
        let fewer = names(&[]).join("\n");
        let more = names(&["10.0.0.1", "10.0.0.2"]).join("\n");
        let cases = [
            (None, false),
            (Some(recorded.as_str()), true),
            (Some(reordered.as_str()), true),
            (Some(fewer.as_str()), false),
            (Some(more.as_str()), false),
            (Some(""), false),
        ];
        for (recorded, want) in cases {
            assert_eq!(can_reuse_serving(recorded, &wanted), want, "{recorded:?}");
        }
    }

    /// What a client checks: the chain verifies against the CA for every name.
    fn verify(pki: &ServerPki, name: &str) -> std::result::Result<(), rustls::Error> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("ca"))
            .expect("root");
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .expect("verifier");
        let chain: Vec<_> = CertificateDer::pem_slice_iter(pki.serving_chain_pem.as_bytes())
            .collect::<std::result::Result<_, _>>()
            .expect("chain");
        use rustls::client::danger::ServerCertVerifier;
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(name.to_string()).expect("name"),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn certificates_are_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wanted = names(&["10.250.1.1"]);
        let first = load_or_create(dir.path(), &wanted).expect("create");
        for name in [
            "127.0.0.1",
            "localhost",
            "10.250.1.1",
            "kubernetes.default.svc",
        ] {
            verify(&first, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verify(&first, "10.250.1.2").is_err(), "an unlisted address");
        let mode = |f: &str| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.path().join(f))
                .expect("file")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(mode("serving.key"), 0o600);

        let again = load_or_create(dir.path(), &wanted).expect("reload");
        assert_eq!(
            again.kubelet_client_chain_pem,
            first.kubelet_client_chain_pem
        );
        assert_eq!(again.ca_pem, first.ca_pem);
        assert_eq!(again.serving_chain_pem, first.serving_chain_pem);
        assert_eq!(again.serving_key_pem, first.serving_key_pem);

        // A new name: same CA, new serving certificate that covers it.
        let wider = names(&["10.250.1.1", "skiff.example"]);
        let reissued = load_or_create(dir.path(), &wider).expect("reissue");
        assert_eq!(reissued.ca_pem, first.ca_pem);
        assert_ne!(reissued.serving_chain_pem, first.serving_chain_pem);
        verify(&reissued, "skiff.example").expect("the new name");
    }

    #[test]
    fn the_kubelet_client_certificate_is_a_client_of_the_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = load_or_create(dir.path(), &names(&[])).expect("create");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let roots = |pem: &str| {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("ca"))
                .expect("root");
            std::sync::Arc::new(roots)
        };
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&pki.ca_pem),
            provider.clone(),
        )
        .build()
        .expect("verifier");
        let chain = |pem: &str| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<std::result::Result<_, _>>()
                .expect("chain")
        };
        let client = chain(&pki.kubelet_client_chain_pem);
        verifier
            .verify_client_cert(&client[0], &client[1..], UnixTime::now())
            .expect("the API server's client certificate verifies against the CA");
        let serving = chain(&pki.serving_chain_pem);
        assert!(
            verifier
                .verify_client_cert(&serving[0], &serving[1..], UnixTime::now())
                .is_err(),
            "a serving certificate is no client certificate"
        );
        let other = tempfile::tempdir().expect("tempdir");
        let foreign = load_or_create(other.path(), &names(&[])).expect("other CA");
        let foreign_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&foreign.ca_pem),
            provider,
        )
        .build()
        .expect("verifier");
        assert!(
            foreign_verifier
                .verify_client_cert(&client[0], &client[1..], UnixTime::now())
                .is_err(),
            "another cluster's kubelets refuse it"
        );
    }

    #[test]
    fn a_broken_ca_key_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create(dir.path(), &names(&[])).expect("create");
        std::fs::write(dir.path().join("ca.key"), "garbage").expect("write");
        std::fs::remove_file(dir.path().join("serving.sans")).expect("rm");
        let err = load_or_create(dir.path(), &names(&[])).expect_err("bad key");
        assert!(err.to_string().contains("ca.key"), "{err}");
    }
}
