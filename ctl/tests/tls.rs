//! skiffctl against an `https://` server, trusting the CA its kubeconfig names — the same
//! kubeconfig the real kubectl is given, so both must accept (and both must refuse) it.

mod common;

#[path = "../../runtime/tests/tls_support/mod.rs"]
mod tls_support;

use std::path::{Path, PathBuf};

use common::support::TestServer;
use common::{KUBECTL, Out, SKIFFCTL, run};
use tls_support::{Ca, TlsFront, kubeconfig};

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: over-tls\ndata:\n  k: v\n";

/// Runs a CLI off the async runtime, so the TLS front keeps serving meanwhile.
async fn run_async(bin: &'static str, kc: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let kc: PathBuf = kc.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(bin, &kc, &args, stdin.as_deref())
    })
    .await
    .expect("CLI run")
}

#[tokio::test]
async fn skiffctl_talks_https_with_the_kubeconfig_ca() {
    let server = TestServer::start(&["--plain-http"]).await;
    let ca = Ca::new("skiff test CA");
    let front = TlsFront::start(&ca.server(&["localhost", "127.0.0.1"]), None, &server.url).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.crt"), &ca.cert_pem).unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        // A token, or kubectl prompts for a user name over https.
        kubeconfig(
            &front.url,
            &["certificate-authority: ca.crt".into()],
            &["token: ctl-token".into()],
        ),
    )
    .unwrap();

    run_async(SKIFFCTL, &kc, &["create", "-f", "-"], Some(CONFIGMAP))
        .await
        .ok();
    let ours = run_async(
        SKIFFCTL,
        &kc,
        &["get", "configmap", "over-tls", "-o", "name"],
        None,
    )
    .await;
    assert_eq!(ours.ok().trim(), "configmap/over-tls");
    assert!(
        front
            .requests()
            .contains("POST /api/v1/namespaces/default/configmaps"),
        "skiffctl's create did not go through the TLS front: {}",
        front.requests()
    );
    assert!(
        front
            .requests()
            .to_ascii_lowercase()
            .contains("authorization: bearer ctl-token"),
        "skiffctl did not send the kubeconfig token"
    );
    // The real kubectl accepts the same kubeconfig and certificates.
    let theirs = run_async(
        KUBECTL,
        &kc,
        &["get", "configmap", "over-tls", "-o", "name"],
        None,
    )
    .await;
    assert_eq!(theirs.ok(), ours.stdout);

    // A CA that did not sign the server certificate: one line, saying why.
    let other = Ca::new("some other CA");
    std::fs::write(dir.path().join("ca.crt"), &other.cert_pem).unwrap();
    let out = run_async(SKIFFCTL, &kc, &["get", "configmaps"], None).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert_ne!(out.code, 101, "panicked: {out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "not one line: {out:?}");
    assert!(
        out.stderr.contains("Unable to connect to the server")
            && out.stderr.contains("UnknownIssuer")
            && out.stderr.contains("certificate-authority"),
        "{out:?}"
    );
    let theirs = run_async(KUBECTL, &kc, &["get", "configmaps"], None).await;
    assert_ne!(
        theirs.code, 0,
        "kubectl must refuse the wrong CA too: {theirs:?}"
    );
}
