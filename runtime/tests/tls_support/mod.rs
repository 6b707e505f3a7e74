//! TLS test support: a throw-away PKI generated with rcgen at test time, and a TLS front
//! for a real `skiff server` (which itself speaks plain HTTP on loopback).
//!
//! The front terminates TLS the way a TLS-serving API server would — optionally requiring a
//! client certificate signed by the test CA — and forwards the decrypted bytes to the real
//! server. It also records what it saw (client certificates, decrypted request bytes,
//! failed handshakes) so tests can check what the client actually sent over TLS.
//! Shared by the runtime's and skiffctl's TLS tests (included by path).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// A certificate and its private key, PEM and DER.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// A test CA that issues server and client certificates.
pub struct Ca {
    pub cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A fresh CA called `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign CA");
        Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().expect("generate key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("cert params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).expect("sign cert");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A serving certificate for the given DNS names / IP addresses.
    pub fn server(&self, sans: &[&str]) -> Issued {
        self.issue("skiff-apiserver", sans, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for user `cn`.
    pub fn client(&self, cn: &str) -> Issued {
        self.issue(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// What the TLS front observed.
#[derive(Default, Debug)]
pub struct Seen {
    /// The leaf client certificate of every accepted connection (None: none presented).
    pub client_certs: Vec<Option<CertificateDer<'static>>>,
    /// Every decrypted byte clients sent.
    pub requests: Vec<u8>,
    /// Handshakes that failed, with the server-side reason.
    pub failed_handshakes: Vec<String>,
}

/// A TLS-terminating front for a plain-HTTP upstream on loopback.
pub struct TlsFront {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    pub seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    /// Serves `serving` (certificate + key) and forwards to `upstream` (`http://host:port`).
    /// With `client_ca`, a client certificate signed by it is required.
    pub async fn start(serving: &Issued, client_ca: Option<&Ca>, upstream: &str) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.cert_der.clone()).expect("client CA root");
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(serving.key_der.clone()));
        let config = builder
            .with_single_cert(vec![serving.cert_der.clone()], key)
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn(accept_loop(listener, acceptor, upstream, seen.clone()));
        TlsFront { url, seen, task }
    }

    /// The decrypted request bytes so far, as text.
    pub fn requests(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap().requests).into_owned()
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    upstream: String,
    seen: Arc<Mutex<Seen>>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        let (acceptor, upstream, seen) = (acceptor.clone(), upstream.clone(), seen.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    seen.lock().unwrap().failed_handshakes.push(e.to_string());
                    return;
                }
            };
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            seen.lock().unwrap().client_certs.push(leaf);
            let Ok(up) = TcpStream::connect(&upstream).await else {
                return;
            };
            let (mut client_rd, mut client_wr) = tokio::io::split(tls);
            let (mut up_rd, mut up_wr) = up.into_split();
            let to_server = async {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match client_rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            seen.lock().unwrap().requests.extend_from_slice(&buf[..n]);
                            if up_wr.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = up_wr.shutdown().await;
            };
            let to_client = async {
                let _ = tokio::io::copy(&mut up_rd, &mut client_wr).await;
                let _ = client_wr.shutdown().await;
            };
            tokio::join!(to_server, to_client);
        });
    }
}

/// A one-context kubeconfig for `server`; `cluster` and `user` are extra YAML lines (already
/// indented by four spaces) of the cluster and user entries.
pub fn kubeconfig(server: &str, cluster: &[String], user: &[String]) -> String {
    let indent = |lines: &[String]| {
        lines
            .iter()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tls\n  cluster:\n    server: {server}\n{}\
         users:\n- name: tls\n  user:\n{}\
         contexts:\n- name: tls\n  context: {{cluster: tls, user: tls}}\ncurrent-context: tls\n",
        indent(cluster),
        indent(user)
    )
}

/// Base64 of PEM text, for the `*-data` kubeconfig fields.
pub fn b64(pem: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(pem)
}
