//! Bad input ends in one line on stderr and a non-zero exit, never a panic.

mod common;

use common::support::TestServer;
use common::{Out, SKIFFCTL, run};

fn one_line_error(out: &Out, contains: &str) {
    assert_ne!(out.code, 0, "should fail: {out:?}");
    assert_ne!(out.code, 101, "panicked: {out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "not one line: {out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    assert!(
        out.stderr.contains(contains),
        "expected {contains:?} in {out:?}"
    );
}

#[test]
fn missing_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("nope.yaml");
    one_line_error(&run(SKIFFCTL, &kc, &["get", "pods"], None), "nope.yaml");
}

#[test]
fn unreachable_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let server = format!("http://127.0.0.1:{port}");
    one_line_error(
        &run(SKIFFCTL, &kc, &["--server", &server, "get", "pods"], None),
        "was refused",
    );
}

/// A kubeconfig whose token the server does not know: skiffctl says what kubectl says.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_refused_in_kubectls_words() {
    let server = TestServer::start(&[]).await;
    let text = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
    let wrong: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token: ") {
                "    token: not-the-admin-token\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let kc = server.data_dir.join("wrong-token.yaml");
    std::fs::write(&kc, wrong).expect("write kubeconfig");
    let ours = run(SKIFFCTL, &kc, &["get", "pods"], None);
    one_line_error(&ours, "You must be logged in to the server");
    let theirs = run(common::KUBECTL, &kc, &["get", "pods"], None);
    assert_ne!(theirs.code, 0);
    assert_eq!(
        theirs.stderr.lines().last(),
        ours.stderr.lines().next(),
        "kubectl's last line"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_kind_and_malformed_manifests() {
    let server = TestServer::start(&[]).await;
    let kc = &server.kubeconfig;
    one_line_error(
        &run(SKIFFCTL, kc, &["get", "widgets"], None),
        "error: the server doesn't have a resource type \"widgets\"",
    );
    let bad_yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: [b}\n";
    let path = server.data_dir.join("web.yaml");
    std::fs::write(&path, bad_yaml).expect("write");
    let p = path.to_string_lossy();
    one_line_error(
        &run(SKIFFCTL, kc, &["apply", "-f", &p], None),
        "web.yaml: document 2:",
    );
    // Nothing from the file was applied.
    one_line_error(&run(SKIFFCTL, kc, &["get", "cm", "a"], None), "(NotFound)");
    std::fs::write(&path, "apiVersion: v1\nmetadata: {name: a}\n").expect("write");
    one_line_error(
        &run(SKIFFCTL, kc, &["create", "-f", &p], None),
        "document 1: kind not set",
    );
    one_line_error(
        &run(SKIFFCTL, kc, &["get", "pods", "-o", "toml"], None),
        "unable to match a printer",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn imperative_verbs_refuse_bad_input_in_one_line() {
    let server = TestServer::start(&[]).await;
    let kc = &server.kubeconfig;
    for (args, message) in [
        (
            &["scale", "deploy", "web"][..],
            "error: required flag(s) \"replicas\" not set",
        ),
        (
            &["scale", "deploy", "web", "--replicas=-3"],
            "COUNT must be greater than or equal to 0",
        ),
        (
            &["scale", "deploy", "nope", "--replicas=1"],
            "error: no objects passed to scale deployments.apps \"nope\" not found",
        ),
        (
            &["set", "image", "deploy/web"],
            "error: at least one image update is required",
        ),
        (
            &["set", "image", "deploy/web", "*=a", "web=b"],
            "all containers are already specified by *",
        ),
        (
            &["rollout", "status", "deploy/nope"],
            "Error from server (NotFound): deployments.apps \"nope\" not found",
        ),
        (
            &["rollout", "undo", "deployment/nope"],
            "Error from server (NotFound): deployments.apps \"nope\" not found",
        ),
        (
            &["rollout", "history", "deploy", "nope"],
            "Error from server (NotFound): deployments.apps \"nope\" not found",
        ),
        (
            &["rollout", "status", "deploy/nope", "--timeout=soon"],
            "invalid duration \"soon\"",
        ),
        (
            &["drain", "nope"],
            "Error from server (NotFound): nodes \"nope\" not found",
        ),
        (&["cordon", "nope"], "(NotFound): nodes \"nope\" not found"),
    ] {
        one_line_error(&run(SKIFFCTL, kc, args, None), message);
    }
}
