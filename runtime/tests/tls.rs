//! The client over TLS, configured only through kubeconfig files as kubectl users write them.
//!
//! A real `skiff server` sits behind a TLS front (tls_support) whose certificates rcgen makes
//! at test time; the front can require client certificates and records what it decrypted,
//! so the tests see what the client really presented and sent.

mod support;
mod tls_support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runtime::config::LoadOptions;
use runtime::{Api, Client, Error, ListParams, PostParams};
use serde_json::Value;
use support::{TestServer, wait_for};
use tls_support::{Ca, TlsFront, b64, kubeconfig};

const DEADLINE: Duration = Duration::from_secs(30);

/// Writes `yaml` as `<dir>/<name>` and builds a client from it, like `--kubeconfig` does.
fn client_from(dir: &Path, name: &str, yaml: &str) -> runtime::Result<Client> {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write kubeconfig");
    let opts = LoadOptions {
        kubeconfig: Some(path),
        ..LoadOptions::default()
    };
    Client::new(runtime::config::load(&opts)?)
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

async fn version(client: &Client) -> runtime::Result<Value> {
    client.get_raw::<Value>("/version").await
}

#[tokio::test]
async fn server_certificates_are_verified_against_the_kubeconfig_ca() {
    let server = TestServer::start(&["--plain-http"]).await;
    let ca = Ca::new("skiff test CA");
    let front = TlsFront::start(&ca.server(&["localhost", "127.0.0.1"]), None, &server.url).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_data = format!("certificate-authority-data: {}", b64(&ca.cert_pem));

    // (1) certificate-authority-data: a write and a read go through TLS to the real server.
    let client = client_from(dir.path(), "data", &kubeconfig(&front.url, &[ca_data], &[])).unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &cm("over-tls"))
        .await
        .expect("create over TLS with certificate-authority-data");
    assert!(
        front
            .requests()
            .contains("POST /api/v1/namespaces/default/configmaps"),
        "the create did not pass through the TLS front: {}",
        front.requests()
    );

    // (2) certificate-authority as a path relative to the kubeconfig's directory.
    std::fs::create_dir_all(dir.path().join("pki")).unwrap();
    std::fs::write(dir.path().join("pki/ca.crt"), &ca.cert_pem).unwrap();
    let yaml = kubeconfig(
        &front.url,
        &["certificate-authority: pki/ca.crt".into()],
        &[],
    );
    let client = client_from(dir.path(), "file", &yaml).unwrap();
    let names: Vec<String> = Api::<ConfigMap>::default_namespaced(client)
        .list(&ListParams::default())
        .await
        .expect("list with a relative certificate-authority file")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(names.contains(&"over-tls".to_string()), "{names:?}");

    // (3) a CA that did not sign the server certificate: a TLS error naming the field.
    let other = Ca::new("some other CA");
    let yaml = kubeconfig(
        &front.url,
        &[format!(
            "certificate-authority-data: {}",
            b64(&other.cert_pem)
        )],
        &[],
    );
    let client = client_from(dir.path(), "wrong", &yaml).unwrap();
    match version(&client).await {
        Err(Error::Tls(msg)) => {
            assert!(msg.contains("UnknownIssuer"), "{msg}");
            assert!(msg.contains("certificate-authority"), "{msg}");
        }
        other => panic!("expected a TLS error with the wrong CA, got {other:?}"),
    }
    wait_for("the front to see the refused handshake", DEADLINE, || {
        let failed = !front.seen.lock().unwrap().failed_handshakes.is_empty();
        async move { failed.then_some(()) }
    })
    .await;

    // (4) insecure-skip-tls-verify: no CA at all, still connects.
    let yaml = kubeconfig(&front.url, &["insecure-skip-tls-verify: true".into()], &[]);
    let client = client_from(dir.path(), "insecure", &yaml).unwrap();
    let v = version(&client).await.expect("insecure-skip-tls-verify");
    assert!(v["gitVersion"].is_string(), "{v}");
    // ... and without it (and without a CA) the system roots do not trust the test CA.
    let client = client_from(dir.path(), "none", &kubeconfig(&front.url, &[], &[])).unwrap();
    assert!(
        matches!(version(&client).await, Err(Error::Tls(_))),
        "a private CA must not be trusted by default"
    );
}

#[tokio::test]
async fn tls_server_name_and_bad_ca_material() {
    let server = TestServer::start(&["--plain-http"]).await;
    let ca = Ca::new("skiff test CA");
    // A certificate that does not name 127.0.0.1, the address the client dials.
    let front = TlsFront::start(&ca.server(&["apiserver.skiff.test"]), None, &server.url).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_data = format!("certificate-authority-data: {}", b64(&ca.cert_pem));

    let client = client_from(
        dir.path(),
        "no-name",
        &kubeconfig(&front.url, std::slice::from_ref(&ca_data), &[]),
    )
    .unwrap();
    match version(&client).await {
        Err(Error::Tls(msg)) => assert!(msg.contains("tls-server-name"), "{msg}"),
        other => panic!("expected a name mismatch, got {other:?}"),
    }
    let yaml = kubeconfig(
        &front.url,
        &[ca_data, "tls-server-name: apiserver.skiff.test".into()],
        &[],
    );
    let client = client_from(dir.path(), "named", &yaml).unwrap();
    version(&client).await.expect("tls-server-name");

    // Unreadable and malformed CA files are refused before connecting, naming the field.
    let yaml = kubeconfig(
        &front.url,
        &["certificate-authority: missing.crt".into()],
        &[],
    );
    let err = client_from(dir.path(), "missing", &yaml).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Config(_))
            && msg.contains("certificate-authority")
            && msg.contains("missing.crt"),
        "{msg}"
    );
    std::fs::write(dir.path().join("garbage.crt"), "not a certificate").unwrap();
    let yaml = kubeconfig(
        &front.url,
        &["certificate-authority: garbage.crt".into()],
        &[],
    );
    let err = client_from(dir.path(), "garbage", &yaml).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Config(_))
            && msg.contains("certificate-authority")
            && msg.contains("garbage.crt")
            && msg.contains("no PEM certificate"),
        "{msg}"
    );
}

#[tokio::test]
async fn client_certificates_and_tokens_are_sent_over_tls() {
    let server = TestServer::start(&["--plain-http"]).await;
    let ca = Ca::new("skiff test CA");
    // The front demands a client certificate signed by the test CA.
    let front = TlsFront::start(
        &ca.server(&["localhost", "127.0.0.1"]),
        Some(&ca),
        &server.url,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca_data = format!("certificate-authority-data: {}", b64(&ca.cert_pem));
    let alice = ca.client("alice");

    // No client certificate: the server refuses, and the error says what is missing.
    let client = client_from(
        dir.path(),
        "anonymous",
        &kubeconfig(&front.url, std::slice::from_ref(&ca_data), &[]),
    )
    .unwrap();
    match version(&client).await {
        Err(Error::Tls(msg)) => assert!(msg.contains("client-certificate"), "{msg}"),
        other => {
            panic!("expected the server to refuse a client without certificate, got {other:?}")
        }
    }

    // (5) client-certificate-data / client-key-data: the front sees alice's certificate.
    let yaml = kubeconfig(
        &front.url,
        std::slice::from_ref(&ca_data),
        &[
            format!("client-certificate-data: {}", b64(&alice.cert_pem)),
            format!("client-key-data: {}", b64(&alice.key_pem)),
        ],
    );
    let client = client_from(dir.path(), "alice-data", &yaml).unwrap();
    version(&client)
        .await
        .expect("request with a client certificate");
    let presented = front.seen.lock().unwrap().client_certs.clone();
    assert_eq!(
        presented.last(),
        Some(&Some(alice.cert_der.clone())),
        "the server did not receive alice's certificate"
    );

    // (6) client certificate and key files (relative) plus a bearer token file: both
    // travel over the same TLS connection.
    std::fs::write(dir.path().join("alice.crt"), &alice.cert_pem).unwrap();
    std::fs::write(dir.path().join("alice.key"), &alice.key_pem).unwrap();
    std::fs::write(dir.path().join("token"), "file-token\n").unwrap();
    let yaml = kubeconfig(
        &front.url,
        std::slice::from_ref(&ca_data),
        &[
            "client-certificate: alice.crt".into(),
            "client-key: alice.key".into(),
            "tokenFile: token".into(),
        ],
    );
    let client = client_from(dir.path(), "alice-files", &yaml).unwrap();
    Api::<ConfigMap>::default_namespaced(client)
        .list(&ListParams::default())
        .await
        .expect("list with client certificate files and a token file");
    let yaml = kubeconfig(
        &front.url,
        std::slice::from_ref(&ca_data),
        &[
            format!("client-certificate-data: {}", b64(&alice.cert_pem)),
            format!("client-key-data: {}", b64(&alice.key_pem)),
            "token: inline-token".into(),
        ],
    );
    let client = client_from(dir.path(), "alice-token", &yaml).unwrap();
    version(&client).await.expect("request with a token");
    let sent = front.requests().to_ascii_lowercase();
    assert!(sent.contains("authorization: bearer file-token"), "{sent}");
    assert!(
        sent.contains("authorization: bearer inline-token"),
        "{sent}"
    );
    let presented = front.seen.lock().unwrap().client_certs.clone();
    assert!(
        presented.len() >= 3
            && presented
                .iter()
                .all(|c| c.as_ref() == Some(&alice.cert_der)),
        "every accepted connection must have presented alice's certificate: {} connections",
        presented.len()
    );

    // A key without its certificate is a kubeconfig error naming the field.
    let yaml = kubeconfig(&front.url, &[ca_data], &["client-key: alice.key".into()]);
    let err = client_from(dir.path(), "key-only", &yaml).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Config(_)) && msg.contains("client-key") && msg.contains("alice.key"),
        "{msg}"
    );
}
