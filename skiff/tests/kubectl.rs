//! The real kubectl (`/usr/bin/kubectl`) against a real `skiff server`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::TestServer;

fn example(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/k8s-docs")
        .join(name);
    p.to_string_lossy().into_owned()
}

/// Writes a manifest into the server's temp dir and returns its path.
fn manifest(server: &TestServer, name: &str, yaml: &str) -> String {
    let p = server.data_dir.join(name);
    std::fs::write(&p, yaml).expect("write manifest");
    p.to_string_lossy().into_owned()
}

const WEB_V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        env:
        - {name: A, value: \"1\"}
        - {name: B, value: \"2\"}
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox:1.36
";

const WEB_V2: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.26
        env:
        - {name: A, value: \"1\"}
        ports:
        - containerPort: 80
";

fn jsonpath(server: &TestServer, what: &[&str], path: &str) -> String {
    let arg = format!("jsonpath={path}");
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", &arg]);
    server.kubectl(&args).ok().to_string()
}

#[tokio::test]
async fn version_and_api_resources() {
    let server = TestServer::start().await;
    let out = server.kubectl(&["version", "-o", "json"]);
    let v: Value = serde_json::from_str(out.ok()).expect("version JSON");
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.33.0");
    let resources = server.kubectl(&["api-resources"]);
    let text = resources.ok();
    for line in [
        "deployments",
        "deploy",
        "apps/v1",
        "pods",
        "po",
        "leases",
        "coordination.k8s.io/v1",
        "endpointslices",
        "poddisruptionbudgets",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    let wide = server.kubectl(&["api-resources", "-o", "wide"]);
    assert!(wide.ok().contains("VERBS"));
}

#[tokio::test]
async fn client_side_apply_create_change_unchanged_and_removals() {
    let server = TestServer::start().await;
    let v1 = manifest(&server, "web-v1.yaml", WEB_V1);
    let v2 = manifest(&server, "web-v2.yaml", WEB_V2);
    assert_eq!(
        server.kubectl(&["apply", "-f", &v1]).ok().trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        server.kubectl(&["apply", "-f", &v1]).ok().trim(),
        "deployment.apps/web unchanged"
    );
    assert_eq!(
        server.kubectl(&["apply", "-f", &v2]).ok().trim(),
        "deployment.apps/web configured"
    );
    assert_eq!(
        jsonpath(&server, &["deploy", "web"], "{.spec.replicas}"),
        "3"
    );
    assert_eq!(
        jsonpath(
            &server,
            &["deploy", "web"],
            "{.spec.template.spec.containers[*].name}"
        ),
        "web",
        "the sidecar container was removed"
    );
    assert_eq!(
        jsonpath(
            &server,
            &["deploy", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.26"
    );
    assert_eq!(
        jsonpath(
            &server,
            &["deploy", "web"],
            "{.spec.template.spec.containers[0].env[*].name}"
        ),
        "A",
        "env var B was removed"
    );
    assert_eq!(
        jsonpath(&server, &["deploy", "web"], "{.metadata.generation}"),
        "2"
    );
    assert_eq!(
        server.kubectl(&["apply", "-f", &v2]).ok().trim(),
        "deployment.apps/web unchanged"
    );
}

#[tokio::test]
async fn server_side_apply_create_and_diff() {
    let server = TestServer::start().await;
    let v1 = manifest(&server, "web-v1.yaml", WEB_V1);
    let v2 = manifest(&server, "web-v2.yaml", WEB_V2);
    assert_eq!(
        server
            .kubectl(&["apply", "--server-side", "-f", &v1])
            .ok()
            .trim(),
        "deployment.apps/web serverside-applied"
    );
    let managers = jsonpath(
        &server,
        &["deploy", "web"],
        "{.metadata.managedFields[*].manager}",
    );
    assert!(managers.contains("kubectl"), "{managers}");
    // diff: exit 1 with the change shown, nothing stored.
    let diff = server.kubectl(&["diff", "--server-side", "-f", &v2]);
    assert_eq!(diff.code, 1, "{}{}", diff.stdout, diff.stderr);
    assert!(diff.stdout.contains("nginx:1.26"), "{}", diff.stdout);
    assert_eq!(
        jsonpath(
            &server,
            &["deploy", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.25"
    );
    assert_eq!(
        server
            .kubectl(&["apply", "--server-side", "-f", &v2])
            .ok()
            .trim(),
        "deployment.apps/web serverside-applied"
    );
    assert_eq!(
        jsonpath(
            &server,
            &["deploy", "web"],
            "{.spec.template.spec.containers[*].name}"
        ),
        "web"
    );
    let same = server.kubectl(&["diff", "--server-side", "-f", &v2]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
}

#[tokio::test]
async fn client_side_diff() {
    let server = TestServer::start().await;
    let v1 = manifest(&server, "web-v1.yaml", WEB_V1);
    let v2 = manifest(&server, "web-v2.yaml", WEB_V2);
    server.kubectl(&["apply", "-f", &v1]).ok();
    let diff = server.kubectl(&["diff", "-f", &v2]);
    assert_eq!(diff.code, 1, "{}{}", diff.stdout, diff.stderr);
    assert!(
        diff.stdout.contains("-        image: nginx:1.25")
            && diff.stdout.contains("+        image: nginx:1.26"),
        "{}",
        diff.stdout
    );
    assert_eq!(server.kubectl(&["diff", "-f", &v1]).code, 0);
}

#[tokio::test]
async fn create_get_describe_delete() {
    let server = TestServer::start().await;
    let docs = [
        (
            "nginx-deployment.yaml",
            "deployment.apps/nginx-deployment created",
        ),
        ("service.yaml", "service/my-service created"),
        ("configmap.yaml", "configmap/game-demo created"),
        ("two-container-pod.yaml", "pod/two-containers created"),
    ];
    for (file, expected) in docs {
        assert_eq!(
            server
                .kubectl(&["create", "-f", &example(file)])
                .ok()
                .trim(),
            expected
        );
    }
    let dup = server.kubectl(&["create", "-f", &example("configmap.yaml")]);
    assert_eq!(dup.code, 1);
    assert!(
        dup.stderr.contains("Error from server (AlreadyExists)"),
        "{}",
        dup.stderr
    );

    let missing = server.kubectl(&["get", "pod", "nope"]);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );

    // Tables with Kubernetes' columns.
    let deploys = server.kubectl(&["get", "deployments"]);
    let header: Vec<&str> = deploys
        .ok()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(
        deploys.stdout.contains("nginx-deployment   0/3"),
        "{}",
        deploys.stdout
    );
    let wide = server.kubectl(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.ok().contains("nginx:1.14.2") && wide.stdout.contains("app=nginx"),
        "{}",
        wide.stdout
    );
    let pods = server.kubectl(&["get", "pods"]);
    let header: Vec<&str> = pods
        .ok()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(
        pods.stdout.contains("two-containers   0/2     Pending"),
        "{}",
        pods.stdout
    );
    let svc = server.kubectl(&["get", "svc", "my-service"]);
    assert!(svc.ok().contains("80/TCP"), "{}", svc.stdout);
    let all_ns = server.kubectl(&["get", "cm", "-A"]);
    assert!(all_ns.ok().starts_with("NAMESPACE"), "{}", all_ns.stdout);
    let labelled = server.kubectl(&["get", "deploy", "-l", "app=nginx", "-o", "name"]);
    assert_eq!(labelled.ok().trim(), "deployment.apps/nginx-deployment");
    let none = server.kubectl(&["get", "deploy", "-l", "app=other"]);
    assert!(
        none.stderr
            .contains("No resources found in default namespace."),
        "{}",
        none.stderr
    );
    let yaml = server.kubectl(&["get", "cm", "game-demo", "-o", "yaml"]);
    let parsed: Value = serde_yaml_ng::from_str(yaml.ok()).expect("yaml output parses");
    assert_eq!(parsed["data"]["player_initial_lives"], "3");
    let json = server.kubectl(&["get", "pods", "-o", "json"]);
    let parsed: Value = serde_json::from_str(json.ok()).expect("json output parses");
    assert_eq!(
        parsed["items"][0]["spec"]["containers"][1]["name"],
        "debian-container"
    );
    let ns = server.kubectl(&["get", "ns"]);
    assert!(
        ns.ok().contains("kube-system") && ns.stdout.contains("Active"),
        "{}",
        ns.stdout
    );

    let described = server.kubectl(&["describe", "deployment", "nginx-deployment"]);
    let text = described.ok();
    for needle in [
        "Name:                   nginx-deployment",
        "Replicas:",
        "StrategyType:           RollingUpdate",
        "nginx:1.14.2",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    let described = server.kubectl(&["describe", "pod", "two-containers"]);
    assert!(
        described.ok().contains("debian-container"),
        "{}",
        described.stdout
    );
    let described = server.kubectl(&["describe", "svc", "my-service"]);
    assert!(
        described
            .ok()
            .lines()
            .any(|l| l.starts_with("TargetPort:") && l.ends_with(" 9376/TCP")),
        "{}",
        described.stdout
    );

    // delete waits until the object is gone.
    let deleted = server.kubectl(&["delete", "-f", &example("nginx-deployment.yaml")]);
    assert_eq!(
        deleted.ok().trim(),
        "deployment.apps \"nginx-deployment\" deleted"
    );
    assert_eq!(
        server.kubectl(&["get", "deploy", "nginx-deployment"]).code,
        1
    );
    let deleted = server.kubectl(&["delete", "pod", "two-containers"]);
    assert_eq!(deleted.ok().trim(), "pod \"two-containers\" deleted");
}

#[tokio::test]
async fn apply_of_documentation_manifests_and_get_watch() {
    let server = TestServer::start().await;
    for file in [
        "nginx-deployment.yaml",
        "service.yaml",
        "configmap.yaml",
        "two-container-pod.yaml",
    ] {
        let out = server.kubectl(&["apply", "-f", &example(file)]);
        assert!(
            out.ok().trim().ends_with(" created"),
            "{file}: {}",
            out.stdout
        );
        let again = server.kubectl(&["apply", "-f", &example(file)]);
        assert!(
            again.ok().trim().ends_with(" unchanged"),
            "{file}: {}",
            again.stdout
        );
    }

    // get -w prints the current state, then changes as they happen.
    let mut child = Command::new(support::KUBECTL)
        .args(["get", "configmaps", "-w"])
        .env("KUBECONFIG", &server.kubeconfig)
        .env("HOME", server.data_dir.join("home"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl get -w");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut created = false;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
        if !created && lines.iter().any(|l| l.starts_with("game-demo")) {
            // kubectl's imperative `create configmap` sends protobuf, which Skiff does not
            // decode; `create -f -` sends JSON.
            server
                .kubectl_stdin(
                    &["create", "-f", "-"],
                    Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n"),
                )
                .ok();
            created = true;
        }
        if lines.iter().any(|l| l.starts_with("watched")) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.starts_with("watched")),
        "kubectl get -w saw the new configmap: {lines:?}"
    );
}
