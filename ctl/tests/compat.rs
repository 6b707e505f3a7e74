//! `skiffctl` and the real kubectl print the same for the same objects, and leave the same
//! objects behind when they apply the same manifests.

mod common;

use std::time::Duration;

use common::support::TestServer;
use common::{Both, KUBECTL, Out, SKIFFCTL, mask_ages};
use serde_json::Value;

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
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 80}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {tier: config}
data:
  mode: \"on\"
  multi: |
    line one
    line two
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

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: two
  labels: {app: web, tier: x}
  annotations: {note: hello}
spec:
  containers:
  - name: web
    image: nginx:1.25
    command: [nginx, -g, \"daemon off;\"]
    args: [a]
    ports: [{containerPort: 80}]
    env: [{name: A, value: \"1\"}]
    resources: {limits: {cpu: 100m}, requests: {cpu: 50m, memory: 10Mi}}
    volumeMounts: [{name: data, mountPath: /data}]
  - name: side
    image: busybox
  volumes: [{name: data, emptyDir: {}}, {name: cfg, configMap: {name: settings}}]
";

const EVENT: &str = r#"{"apiVersion": "v1", "kind": "Event", "metadata": {"name": "two.1", "namespace": "sk"},
"involvedObject": {"kind": "Pod", "name": "two", "namespace": "sk", "uid": "UID"},
"reason": "Scheduled", "message": "Successfully assigned sk/two to n1", "type": "Normal",
"source": {"component": "default-scheduler"}, "count": 3,
"firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-02T00:00:00Z"}"#;

const NODE: &str = "apiVersion: v1
kind: Node
metadata:
  name: n1
  labels: {kubernetes.io/hostname: n1, node-role.kubernetes.io/worker: \"\"}
spec:
  podCIDR: 10.244.1.0/24
  taints: [{key: k, value: v, effect: NoSchedule}, {key: gpu, effect: NoExecute}]
";

const NODE_STATUS: &str = r#"{"status": {
 "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
 "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
 "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-26T16:00:00Z",
   "lastTransitionTime": "2026-11-26T15:00:00Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
 "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}],
 "nodeInfo": {"machineID": "m", "systemUUID": "u", "bootID": "b", "kernelVersion": "6.1", "osImage": "Debian",
   "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "runc://1.1",
   "kubeletVersion": "v1.33.0", "kubeProxyVersion": ""}}}"#;

const NAMESPACES: &str = "apiVersion: v1
kind: Namespace
metadata: {name: sk}
---
apiVersion: v1
kind: Namespace
metadata: {name: kc}
";

/// Runs a tool with `EDITOR` set.
fn run_env(bin: &str, server: &TestServer, args: &[&str], editor: &str) -> Out {
    let out = std::process::Command::new(bin)
        .args(args)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("EDITOR", editor)
        .env_remove("KUBE_EDITOR")
        .output()
        .expect("run");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An object as the server keeps it, minus what differs between two creations.
fn comparable(mut v: Value, ns: &str) -> Value {
    let m = v["metadata"].as_object_mut().expect("metadata");
    for k in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "namespace",
        "managedFields",
    ] {
        m.remove(k);
    }
    let text = serde_json::to_string(&v).expect("json");
    serde_json::from_str(&text.replace(&format!("\\\"namespace\\\":\\\"{ns}\\\""), "NS"))
        .expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn get_apply_delete_match_kubectl() {
    let server = TestServer::start(&[]).await;
    let both = Both { server: &server };
    both.skiffctl(&["create", "-f", "-"], Some(NAMESPACES)).ok();

    // apply: create, in one namespace by each tool.
    let created = both.skiffctl(&["apply", "-n", "sk", "-f", "-"], Some(WEB_V1));
    let expected = "deployment.apps/web created\nservice/web created\nconfigmap/settings created\n";
    assert_eq!(created.ok(), expected);
    assert_eq!(
        both.kubectl(&["apply", "-n", "kc", "-f", "-"], Some(WEB_V1))
            .ok(),
        expected
    );

    // kubectl finds nothing to change in what skiffctl applied (same last-applied), and both
    // say "unchanged" the second time.
    let unchanged =
        "deployment.apps/web unchanged\nservice/web unchanged\nconfigmap/settings unchanged\n";
    assert_eq!(
        both.kubectl(&["apply", "-n", "sk", "-f", "-"], Some(WEB_V1))
            .ok(),
        unchanged
    );
    assert_eq!(
        both.skiffctl(&["apply", "-n", "kc", "-f", "-"], Some(WEB_V1))
            .ok(),
        unchanged
    );

    // get: tables, wide, several kinds, labels, all namespaces, yaml, json, name, jsonpath.
    for args in [
        vec!["get", "deploy", "-n", "sk"],
        vec!["get", "deployments.apps", "web", "-n", "sk", "-o", "wide"],
        vec!["get", "deploy,svc,cm", "-n", "kc"],
        vec!["get", "svc", "-A"],
        vec!["get", "endpoints", "-n", "kc"],
        vec!["get", "endpointslices", "-n", "kc"],
        vec!["get", "ep,endpointslices.discovery.k8s.io", "-A"],
        vec!["get", "cm", "-A", "--show-labels"],
        vec!["get", "cm", "-A", "--no-headers"],
        vec!["get", "deploy,svc", "-n", "kc", "--no-headers"],
        vec!["get", "pods", "-n", "sk"],
        vec!["get", "ns"],
        vec!["get", "deploy", "web", "-n", "sk", "-o", "yaml"],
        vec!["get", "cm", "-n", "sk", "-o", "yaml"],
        vec!["get", "deploy,cm", "-n", "sk", "-o", "json"],
        vec!["get", "svc", "web", "-n", "kc", "-o", "json"],
        vec!["get", "deploy,svc,cm", "-A", "-o", "name"],
        vec!["get", "cm", "-A", "-l", "tier=config", "-o", "name"],
        vec!["get", "ns", "--sort-by", ".metadata.name", "-o", "name"],
        vec![
            "get",
            "deploy",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
        ],
        vec![
            "get",
            "deploy",
            "-A",
            "-o",
            "custom-columns=NS:.metadata.namespace,IMAGES:.spec.template.spec.containers[*].image",
        ],
        vec!["get", "pod", "nope", "-n", "sk"],
        vec![
            "get",
            "cm",
            "settings",
            "nope",
            "kube-root-ca.crt",
            "-n",
            "sk",
        ],
        vec!["get", "all", "-n", "sk"],
        vec!["get", "all", "-A", "-o", "name"],
        vec!["get", "deploy/web", "svc/web", "-n", "kc"],
        vec![
            "get",
            "cm",
            "-A",
            "--sort-by",
            ".metadata.resourceVersion",
            "-o",
            "custom-columns=N:.metadata.name",
        ],
        vec!["get", "cm", "-A", "--sort-by", "{.metadata.name}"],
    ] {
        both.same(&args);
    }

    // describe: pods (with an Event about them), deployments, services, configmaps.
    both.skiffctl(&["apply", "-n", "sk", "-f", "-"], Some(POD))
        .ok();
    let uid = both.skiffctl(
        &[
            "get",
            "pod",
            "two",
            "-n",
            "sk",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
        None,
    );
    let event = EVENT.replace("UID", uid.ok());
    both.skiffctl(&["create", "-f", "-"], Some(&event)).ok();
    both.skiffctl(&["apply", "-f", "-"], Some(NODE)).ok();
    let status: Value = serde_json::from_str(NODE_STATUS).expect("json");
    let resp = server
        .http()
        .patch(format!("{}/api/v1/nodes/n1/status", server.url))
        .header("content-type", "application/merge-patch+json")
        .body(status.to_string())
        .send()
        .await
        .expect("patch node status");
    assert!(resp.status().is_success(), "{resp:?}");
    let on_node = "apiVersion: v1\nkind: Pod\nmetadata: {name: onn1}\nspec:\n  nodeName: n1\n  containers:\n  - {name: c, image: busybox, resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {memory: 128Mi}}}\n  - {name: d, image: busybox, resources: {requests: {cpu: 250m, memory: 64Mi}}}\n";
    both.skiffctl(&["apply", "-n", "sk", "-f", "-"], Some(on_node))
        .ok();
    // A ReplicaSet the deployment controls, with its template, for NewReplicaSet.
    let d: Value = serde_json::from_str(
        both.skiffctl(&["get", "deploy", "web", "-n", "sk", "-o", "json"], None)
            .ok(),
    )
    .expect("json");
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = "abc".into();
    let rs = serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "labels": {"app": "web"}, "ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "Deployment", "name": "web", "uid": d["metadata"]["uid"], "controller": true}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}});
    both.skiffctl(&["create", "-n", "sk", "-f", "-"], Some(&rs.to_string()))
        .ok();
    for args in [
        vec!["describe", "node", "n1"],
        vec!["describe", "pod", "two", "-n", "sk"],
        vec!["describe", "deploy", "web", "-n", "sk"],
        vec!["describe", "svc/web", "-n", "kc"],
        vec!["describe", "cm", "settings", "-n", "sk"],
    ] {
        both.same(&args);
    }

    // apply: change and removal (a container, an env var), same result on the server.
    let configured = "deployment.apps/web configured\n";
    assert_eq!(
        both.skiffctl(&["apply", "-n", "sk", "-f", "-"], Some(WEB_V2))
            .ok(),
        configured
    );
    assert_eq!(
        both.kubectl(&["apply", "-n", "kc", "-f", "-"], Some(WEB_V2))
            .ok(),
        configured
    );
    let get = |ns: &str| -> Value {
        let out = both.kubectl(&["get", "deploy", "web", "-n", ns, "-o", "json"], None);
        comparable(serde_json::from_str(out.ok()).expect("json"), ns)
    };
    let (sk, kc) = (get("sk"), get("kc"));
    assert_eq!(sk["spec"], kc["spec"]);
    assert_eq!(sk["metadata"], kc["metadata"]);
    let containers = sk["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("list");
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["env"].as_array().expect("env").len(), 1);
    assert_eq!(
        both.skiffctl(&["apply", "-n", "sk", "-f", "-"], Some(WEB_V2))
            .ok(),
        "deployment.apps/web unchanged\n"
    );

    // edit: the same editor command changes both copies the same way.
    let script = server.data_dir.join("editor.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i -e 's/nginx:1.26/nginx:1.27/' -e 's/replicas: 3/replicas: 4/' \"$1\"\n",
    )
    .expect("write editor");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod editor");
    let editor = script.to_str().expect("utf-8 path");
    for _ in 0..2 {
        let a = run_env(
            SKIFFCTL,
            &server,
            &["edit", "deploy", "web", "-n", "sk"],
            editor,
        );
        let b = run_env(
            KUBECTL,
            &server,
            &["edit", "deploy", "web", "-n", "kc"],
            editor,
        );
        assert_eq!(
            (a.code, &a.stdout, &a.stderr),
            (b.code, &b.stdout, &b.stderr)
        );
    }
    let (sk, kc) = (get("sk"), get("kc"));
    assert_eq!(sk["spec"], kc["spec"]);
    assert_eq!(sk["spec"]["replicas"], 4);

    // delete: same words, and the objects are gone when it returns.
    for ns in ["sk", "kc"] {
        let (a, b) = (
            both.skiffctl(&["delete", "-n", ns, "cm", "settings"], None),
            both.kubectl(&["delete", "-n", ns, "svc", "web"], None),
        );
        assert_eq!(a.ok(), "configmap \"settings\" deleted\n");
        assert_eq!(b.ok(), "service \"web\" deleted\n");
        assert_eq!(
            both.skiffctl(&["delete", "-n", ns, "svc", "web"], None)
                .stderr,
            both.kubectl(&["delete", "-n", ns, "cm", "settings"], None)
                .stderr
                .replace("configmaps \"settings\"", "services \"web\"")
        );
    }
    both.same(&["get", "cm,svc", "-n", "sk"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn label_annotate_config_match_kubectl() {
    let server = TestServer::start(&[]).await;
    let both = Both { server: &server };
    both.skiffctl(&["create", "-f", "-"], Some(NAMESPACES)).ok();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lab}\n";
    both.skiffctl(&["apply", "-n", "sk", "-f", "-"], Some(cm))
        .ok();
    both.kubectl(&["apply", "-n", "kc", "-f", "-"], Some(cm))
        .ok();
    // Each tool edits its own copy; the printed verdicts and errors must agree step by step.
    for step in [
        &["label", "cm", "lab", "a=1"][..],
        &["label", "cm", "lab", "a=2"],
        &["label", "cm/lab", "a=2", "--overwrite"],
        &["label", "cm", "lab", "a=2", "--overwrite"],
        &["label", "cm", "lab", "a-"],
        &["label", "cm", "lab", "a-"],
        &["annotate", "cm", "lab", "note=hi"],
        &["annotate", "cm", "lab", "note=ho"],
        &["annotate", "cm", "lab", "note-"],
    ] {
        let mut sk = step.to_vec();
        sk.extend(["-n", "sk"]);
        let mut kc = step.to_vec();
        kc.extend(["-n", "kc"]);
        let (a, b) = (both.skiffctl(&sk, None), both.kubectl(&kc, None));
        assert_eq!(
            (a.code, &a.stdout, &a.stderr),
            (b.code, &b.stdout, &b.stderr),
            "{step:?}"
        );
    }
    let labels = |ns: &str| {
        both.kubectl(
            &["get", "cm", "lab", "-n", ns, "-o", "jsonpath={.metadata}"],
            None,
        )
        .ok()
        .replace(ns, "NS")
    };
    let strip = |s: String| -> Value {
        let mut v: Value = serde_json::from_str(&s).expect("json");
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            v.as_object_mut().expect("object").remove(k);
        }
        v
    };
    assert_eq!(strip(labels("sk")), strip(labels("kc")));

    for args in [
        vec!["config", "view"],
        vec!["config", "view", "-o", "json"],
        vec!["config", "view", "--minify"],
        vec!["config", "get-contexts"],
        vec!["config", "current-context"],
        vec!["config", "use-context", "nope"],
        vec!["api-resources"],
    ] {
        both.same(&args);
    }
}

/// Starts `bin get ... -w` in the background; its output is collected when it is stopped.
fn spawn_watch(bin: &str, server: &TestServer, args: &[&str]) -> std::process::Child {
    std::process::Command::new(bin)
        .args(args)
        .env("KUBECONFIG", &server.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn watch")
}

fn stop(mut child: std::process::Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().expect("watch output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_and_selective_delete_match_kubectl() {
    let server = TestServer::start(&[]).await;
    let both = Both { server: &server };
    let cms = |names: &[&str], tier: &str| -> String {
        names
            .iter()
            .map(|n| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}, labels: {{tier: {tier}}}}}\ndata: {{k: v}}\n"))
            .collect::<Vec<_>>()
            .join("---\n")
    };
    both.skiffctl(&["apply", "-f", "-"], Some(&cms(&["a", "bb"], "one")))
        .ok();
    let watches: Vec<_> = [SKIFFCTL, KUBECTL]
        .iter()
        .map(|bin| {
            (
                spawn_watch(bin, &server, &["get", "cm", "-w", "-l", "tier"]),
                spawn_watch(
                    bin,
                    &server,
                    &["get", "cm", "--watch-only", "-l", "tier=two"],
                ),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    both.skiffctl(
        &["apply", "-f", "-"],
        Some(&cms(&["a-much-longer-name"], "two")),
    )
    .ok();
    both.skiffctl(&["label", "cm", "a", "extra=1"], None).ok();
    both.skiffctl(&["delete", "cm", "bb"], None).ok();
    std::thread::sleep(Duration::from_millis(1500));
    let outputs: Vec<(String, String)> = watches
        .into_iter()
        .map(|(w, wo)| (mask_ages(&stop(w)), mask_ages(&stop(wo))))
        .collect();
    assert_eq!(
        outputs[0], outputs[1],
        "skiffctl (left) and kubectl (right) watches differ"
    );
    assert!(outputs[0].0.contains("a-much-longer-name"), "{outputs:?}");

    // delete by selector and --all.
    both.skiffctl(&["apply", "-f", "-"], Some(&cms(&["x1", "x2"], "three")))
        .ok();
    let a = both.skiffctl(&["delete", "cm", "-l", "tier=three"], None);
    assert_eq!(
        a.ok(),
        "configmap \"x1\" deleted\nconfigmap \"x2\" deleted\n"
    );
    both.kubectl(&["apply", "-f", "-"], Some(&cms(&["x1", "x2"], "three")))
        .ok();
    assert_eq!(
        both.kubectl(&["delete", "cm", "-l", "tier=three"], None)
            .ok(),
        a.stdout
    );
    both.same(&["delete", "cm", "--all", "--dry-run=server"]);
    both.same(&["delete", "cm", "-l", "tier=none"]);
}
