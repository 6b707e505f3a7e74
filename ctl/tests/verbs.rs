//! The imperative verbs (`cordon`, `uncordon`, `scale`, `set image`, `rollout ...`, `drain`)
//! print what the real kubectl prints and leave the same objects behind. Each tool works on its
//! own copy (namespace `sk` for skiffctl, `kc` for kubectl) so state-changing steps can be
//! compared one by one. No controllers run (`skiff apiserver`): the tests write the
//! ReplicaSets and Deployment status a controller would.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::support::TestServer;
use common::{Both, KUBECTL, Out, SKIFFCTL};
use serde_json::{Value, json};

const NAMESPACES: &str = "apiVersion: v1
kind: Namespace
metadata: {name: sk}
---
apiVersion: v1
kind: Namespace
metadata: {name: kc}
";

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
  annotations: {deployment.kubernetes.io/revision: \"3\"}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - {name: web, image: \"nginx:1.27\"}
      - {name: side, image: \"busybox:1.36\"}
";

/// Runs `args` with skiffctl in `sk` and kubectl in `kc` and asserts the same exit code,
/// stdout and stderr (namespaces masked).
fn step(both: &Both, args: &[&str]) -> Out {
    let with = |ns: &'static str| {
        let mut v = args.to_vec();
        v.extend(["-n", ns]);
        v
    };
    let a = both.skiffctl(&with("sk"), None);
    let b = both.kubectl(&with("kc"), None);
    let unify = |s: &str| s.replace("kc/", "NS/").replace("sk/", "NS/");
    assert_eq!(
        (a.code, unify(&a.stdout), unify(&a.stderr)),
        (b.code, unify(&b.stdout), unify(&b.stderr)),
        "skiffctl (left) and kubectl (right) differ for {args:?}"
    );
    a
}

/// GETs an object as JSON.
async fn get(server: &TestServer, path: &str) -> Value {
    let resp = server
        .http()
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .expect("GET");
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.expect("json")
}

/// Sends a merge patch (to a `/status` subresource, say) and asserts success.
async fn merge_patch(server: &TestServer, path: &str, body: Value) {
    let resp = server
        .http()
        .patch(format!("{}{path}", server.url))
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .expect("PATCH");
    assert!(resp.status().is_success(), "PATCH {path}: {resp:?}");
}

fn deployment(ns: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/web")
}

/// A Ready node `name`.
async fn node(both: &Both<'_>, name: &str) {
    let manifest = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}}}\n"
    );
    both.skiffctl(&["apply", "-f", "-"], Some(&manifest)).ok();
    merge_patch(
        both.server,
        &format!("/api/v1/nodes/{name}/status"),
        json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": "2026-11-26T16:00:00Z",
                            "lastTransitionTime": "2026-11-26T15:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian", "kernelVersion": "6.1",
                         "containerRuntimeVersion": "containerd://2.0", "machineID": "m",
                         "systemUUID": "u", "bootID": "b", "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": "amd64"}}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cordon_scale_and_set_image_match_kubectl() {
    let server = TestServer::start(&[]).await;
    let both = Both { server: &server };
    let srv = &server;
    node(&both, "n1").await;
    let unschedulable =
        || async { get(srv, "/api/v1/nodes/n1").await["spec"]["unschedulable"].clone() };

    // cordon / uncordon: the words, the effect, and either tool seeing the other's change.
    assert_eq!(
        both.skiffctl(&["cordon", "n1"], None).ok(),
        "node/n1 cordoned\n"
    );
    assert_eq!(unschedulable().await, true);
    assert_eq!(
        both.kubectl(&["cordon", "n1"], None).ok(),
        "node/n1 already cordoned\n"
    );
    assert_eq!(
        both.skiffctl(&["cordon", "n1"], None).ok(),
        "node/n1 already cordoned\n"
    );
    let nodes = both.same(&["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .next()
            .is_some_and(|h| h.split_whitespace().collect::<Vec<_>>()
                == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]),
        "{nodes}"
    );
    assert!(nodes.contains(" Ready,SchedulingDisabled "), "{nodes}");
    let wide = both.same(&["get", "nodes", "-o", "wide"]);
    assert!(
        wide.lines()
            .next()
            .is_some_and(|h| h.split_whitespace().collect::<Vec<_>>()
                == [
                    "NAME",
                    "STATUS",
                    "ROLES",
                    "AGE",
                    "VERSION",
                    "INTERNAL-IP",
                    "EXTERNAL-IP",
                    "OS-IMAGE",
                    "KERNEL-VERSION",
                    "CONTAINER-RUNTIME"
                ]),
        "{wide}"
    );
    assert!(
        wide.contains("10.0.0.1") && wide.contains("containerd://2.0"),
        "{wide}"
    );
    assert_eq!(
        both.skiffctl(&["uncordon", "n1"], None).ok(),
        "node/n1 uncordoned\n"
    );
    assert_eq!(unschedulable().await, Value::Null);
    assert_eq!(
        both.kubectl(&["uncordon", "n1"], None).ok(),
        "node/n1 already uncordoned\n"
    );
    assert_eq!(
        both.skiffctl(&["uncordon", "n1"], None).ok(),
        "node/n1 already uncordoned\n"
    );
    assert!(both.same(&["get", "nodes"]).contains(" Ready "));
    both.same(&["cordon", "nope"]);

    // scale: through /scale, with and without the --current-replicas precondition.
    both.skiffctl(&["apply", "-f", "-"], Some(NAMESPACES)).ok();
    for ns in ["sk", "kc"] {
        both.kubectl(&["apply", "-n", ns, "-f", "-"], Some(WEB))
            .ok();
    }
    let replicas = |ns: &'static str| async move {
        get(srv, &deployment(ns)).await["spec"]["replicas"].clone()
    };
    assert_eq!(
        step(&both, &["scale", "deploy", "web", "--replicas=3"]).stdout,
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        (replicas("sk").await, replicas("kc").await),
        (json!(3), json!(3))
    );
    assert!(
        step(
            &both,
            &[
                "scale",
                "deploy/web",
                "--replicas=4",
                "--current-replicas=2"
            ]
        )
        .stderr
        .contains("Expected replicas to be 2, was 3")
    );
    step(
        &both,
        &[
            "scale",
            "deploy/web",
            "--replicas=4",
            "--current-replicas=3",
        ],
    );
    assert_eq!(replicas("sk").await, 4);
    step(&both, &["scale", "deploy", "-l", "app=web", "--replicas=5"]);
    assert_eq!(
        (replicas("sk").await, replicas("kc").await),
        (json!(5), json!(5))
    );
    for bad in [
        &["scale", "deploy", "nope", "--replicas=1"][..],
        &["scale", "deploy", "--replicas=1"],
        &["scale", "deploy", "-l", "app=none", "--replicas=1"],
        &["scale", "deploy", "web", "--replicas=-1"],
    ] {
        assert_eq!(step(&both, bad).code, 1, "{bad:?}");
    }
    // ReplicaSets: `get rs` columns, scaling through their /scale.
    for ns in ["sk", "kc"] {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "solo", "labels": {"app": "solo"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "solo"}},
                     "template": {"metadata": {"labels": {"app": "solo"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        both.skiffctl(&["create", "-n", ns, "-f", "-"], Some(&rs.to_string()))
            .ok();
    }
    step(&both, &["scale", "rs/solo", "--replicas=2"]);
    let rs_table = both.same(&["get", "rs", "-n", "sk", "-o", "wide"]);
    let cells: Vec<Vec<&str>> = rs_table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        cells[0],
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        [&cells[1][..4], &cells[1][5..]].concat(),
        ["solo", "2", "0", "0", "c", "busybox", "app=solo"]
    );

    // set image: the same patch from both tools, "image updated" only when something changed.
    let images = |ns: &'static str| async move {
        get(srv, &deployment(ns)).await["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| c["image"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    for (args, out) in [
        (
            &["set", "image", "deploy/web", "web=nginx:1.28"][..],
            "deployment.apps/web image updated\n",
        ),
        (&["set", "image", "deploy/web", "web=nginx:1.28"], ""),
        (
            &["set", "image", "deployment", "web", "*=alpine:3"],
            "deployment.apps/web image updated\n",
        ),
        (&["set", "image", "deploy/web", "nope=x"], ""),
        (
            &["set", "image", "rs/solo", "c=busybox:1.37"],
            "replicaset.apps/solo image updated\n",
        ),
    ] {
        assert_eq!(step(&both, args).stdout, out, "{args:?}");
    }
    assert_eq!(images("sk").await, ["alpine:3", "alpine:3"]);
    assert_eq!(images("sk").await, images("kc").await);
    // StatefulSets and ReplicationControllers scale through /scale too; -f names the objects.
    let more = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 1\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: postgres}]}\n---\napiVersion: v1\nkind: ReplicationController\nmetadata: {name: old}\nspec:\n  replicas: 1\n  selector: {app: old}\n  template:\n    metadata: {labels: {app: old}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
    let file = server.data_dir.join("more.yaml");
    std::fs::write(&file, more).expect("write manifest");
    let file = file.to_str().expect("utf-8 path");
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
    for ns in ["sk", "kc"] {
        both.kubectl(&["apply", "-n", ns, "-f", file], None).ok();
        both.kubectl(&["apply", "-n", ns, "-f", "-"], Some(ds)).ok();
    }
    assert_eq!(
        step(&both, &["scale", "-f", file, "--replicas=3"]).stdout,
        "statefulset.apps/db scaled\nreplicationcontroller/old scaled\n"
    );
    for ns in ["sk", "kc"] {
        let sts = get(
            srv,
            &format!("/apis/apps/v1/namespaces/{ns}/statefulsets/db"),
        )
        .await;
        let rc = get(
            srv,
            &format!("/api/v1/namespaces/{ns}/replicationcontrollers/old"),
        )
        .await;
        assert_eq!(
            (&sts["spec"]["replicas"], &rc["spec"]["replicas"]),
            (&json!(3), &json!(3))
        );
    }
    for (args, out) in [
        (
            &["set", "image", "sts/db", "db=postgres:17"][..],
            "statefulset.apps/db image updated\n",
        ),
        (
            &["set", "image", "ds/agent", "c=busybox:1.37"],
            "daemonset.apps/agent image updated\n",
        ),
    ] {
        assert_eq!(step(&both, args).stdout, out, "{args:?}");
    }
    let ds_image =
        get(srv, "/apis/apps/v1/namespaces/sk/daemonsets/agent").await["spec"]["template"]["spec"]
            ["containers"][0]["image"]
            .clone();
    assert_eq!(ds_image, "busybox:1.37");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n";
    for ns in ["sk", "kc"] {
        both.skiffctl(&["apply", "-n", ns, "-f", "-"], Some(pod))
            .ok();
    }
    assert_eq!(
        step(&both, &["set", "image", "pod/p", "c=busybox:1.37"]).stdout,
        "pod/p image updated\n"
    );
}

/// Creates, in `ns`, ReplicaSets for revisions 1..=3 of Deployment `web`, controlled by it, as
/// the deployment controller would have left them (revision 3 is the current template).
async fn history(both: &Both<'_>, ns: &str) {
    let d = get(both.server, &deployment(ns)).await;
    for (rev, image, cause) in [
        (1, "nginx:1.25", Some("first try")),
        (2, "nginx:1.26", None),
        (3, "nginx:1.27", None),
    ] {
        let hash = format!("h{rev}");
        let mut template = d["spec"]["template"].clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        template["spec"]["containers"][0]["image"] = json!(image);
        let mut annotations = json!({"deployment.kubernetes.io/revision": rev.to_string()});
        if let Some(c) = cause {
            annotations["kubernetes.io/change-cause"] = json!(c);
        }
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{hash}"), "labels": {"app": "web", "pod-template-hash": hash},
                         "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                              "uid": d["metadata"]["uid"], "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash}},
                     "template": template}});
        both.skiffctl(&["create", "-n", ns, "-f", "-"], Some(&rs.to_string()))
            .ok();
    }
    // A ReplicaSet matching the selector but owned by nobody is not history.
    let stray = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "stray", "labels": {"app": "web"},
                     "annotations": {"deployment.kubernetes.io/revision": "7"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "stray"}]}}}});
    both.skiffctl(&["create", "-n", ns, "-f", "-"], Some(&stray.to_string()))
        .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn rollout_history_undo_pause_restart_match_kubectl() {
    let server = TestServer::start(&[]).await;
    let both = Both { server: &server };
    let srv = &server;
    both.skiffctl(&["apply", "-f", "-"], Some(NAMESPACES)).ok();
    for ns in ["sk", "kc"] {
        both.kubectl(&["apply", "-n", ns, "-f", "-"], Some(WEB))
            .ok();
        history(&both, ns).await;
    }
    let state = |ns: &'static str| async move {
        let d = get(srv, &deployment(ns)).await;
        let mut ann = d["metadata"]["annotations"].clone();
        ann.as_object_mut()
            .expect("annotations")
            .remove("kubectl.kubernetes.io/last-applied-configuration");
        (
            d["spec"]["template"].clone(),
            ann,
            d["spec"]["paused"].clone(),
        )
    };
    let image = |ns: &'static str| async move {
        get(srv, &deployment(ns)).await["spec"]["template"]["spec"]["containers"][0]["image"]
            .clone()
    };

    let table = step(&both, &["rollout", "history", "deploy/web"]);
    assert_eq!(
        table.stdout,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         first try\n2         <none>\n3         <none>\n\n"
    );
    let one = step(
        &both,
        &["rollout", "history", "deployment", "web", "--revision=1"],
    );
    assert!(
        one.stdout
            .starts_with("deployment.apps/web with revision #1\nPod Template:\n"),
        "{}",
        one.stdout
    );
    assert!(one.stdout.contains("nginx:1.25"), "{}", one.stdout);
    assert!(
        one.stdout.contains("kubernetes.io/change-cause: first try"),
        "{}",
        one.stdout
    );
    assert_eq!(
        step(&both, &["rollout", "history", "deploy/web", "--revision=9"]).code,
        1
    );

    for (args, out) in [
        (
            &["rollout", "undo", "deploy/web", "--to-revision=3"][..],
            "deployment.apps/web skipped rollback (current template already matches revision 3)\n",
        ),
        (&["rollout", "undo", "deploy/web", "--to-revision=9"], ""),
        (
            &["rollout", "undo", "deploy/web"],
            "deployment.apps/web rolled back\n",
        ),
    ] {
        assert_eq!(step(&both, args).stdout, out, "{args:?}");
    }
    assert_eq!(image("sk").await, "nginx:1.26");
    assert_eq!(state("sk").await, state("kc").await);
    // Rolling back to revision 1 brings its change-cause along, minus the hash label.
    step(&both, &["rollout", "undo", "deploy/web", "--to-revision=1"]);
    let (template, annotations, _) = state("sk").await;
    assert_eq!(template["spec"]["containers"][0]["image"], "nginx:1.25");
    assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(annotations["kubernetes.io/change-cause"], "first try");
    assert_eq!(annotations["deployment.kubernetes.io/revision"], "3");
    assert_eq!(state("sk").await, state("kc").await);

    // pause / resume / restart, including their refusals.
    for (args, out) in [
        (
            &["rollout", "pause", "deploy/web"][..],
            "deployment.apps/web paused\n",
        ),
        (&["rollout", "pause", "deploy/web"], ""),
        (&["rollout", "restart", "deploy/web"], ""),
        (&["rollout", "undo", "deploy/web", "--to-revision=2"], ""),
    ] {
        assert_eq!(step(&both, args).stdout, out, "{args:?}");
    }
    assert_eq!(state("sk").await.2, true);
    assert_eq!(state("sk").await, state("kc").await);
    for (args, out) in [
        (
            &["rollout", "resume", "deploy/web"][..],
            "deployment.apps/web resumed\n",
        ),
        (&["rollout", "resume", "deploy/web"], ""),
    ] {
        assert_eq!(step(&both, args).stdout, out, "{args:?}");
    }
    assert_eq!(state("sk").await.2, Value::Null);
    assert_eq!(state("sk").await, state("kc").await);
    assert_eq!(
        step(&both, &["rollout", "restart", "deploy/web"]).stdout,
        "deployment.apps/web restarted\n"
    );
    let (template, _, _) = state("sk").await;
    let stamp = template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .expect("restartedAt")
        .to_string();
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamp}");
    let (kc_template, _, _) = state("kc").await;
    assert!(
        kc_template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string()
    );
    step(&both, &["rollout", "history", "deploy/nope"]);
    step(&both, &["rollout", "undo", "deploy/nope"]);
}

/// A command running in the background whose output lines arrive on a channel
/// (`true` marks stderr lines).
struct Running {
    child: Child,
    lines: mpsc::Receiver<(bool, String)>,
    /// Every line received so far, in arrival order.
    seen: std::cell::RefCell<Vec<(bool, String)>>,
}

impl Running {
    fn start(bin: &str, server: &TestServer, args: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .args(args)
            .env("KUBECONFIG", &server.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (tx, lines) = mpsc::channel();
        let forward =
            |r: Box<dyn std::io::Read + Send>, is_err: bool, tx: mpsc::Sender<(bool, String)>| {
                std::thread::spawn(move || {
                    for l in BufReader::new(r).lines().map_while(|l| l.ok()) {
                        if tx.send((is_err, l)).is_err() {
                            break;
                        }
                    }
                });
            };
        forward(
            Box::new(child.stdout.take().expect("stdout")),
            false,
            tx.clone(),
        );
        forward(Box::new(child.stderr.take().expect("stderr")), true, tx);
        Running {
            child,
            lines,
            seen: Default::default(),
        }
    }

    /// The next line on stdout or stderr, waiting at most 30 s.
    fn next(&self) -> (bool, String) {
        let l = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line within 30 s");
        self.seen.borrow_mut().push(l.clone());
        l
    }

    /// The next stdout line (stderr lines before it are skipped).
    fn line(&self) -> String {
        loop {
            if let (false, l) = self.next() {
                return l;
            }
        }
    }

    /// Waits for the exit; returns the code and everything printed to stdout and to stderr.
    fn finish(self) -> (i32, Vec<String>, Vec<String>) {
        let mut child = self.child;
        let status = child.wait().expect("wait");
        let mut seen = self.seen.into_inner();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            seen.push(l);
        }
        let pick = |err: bool| -> Vec<String> {
            seen.iter()
                .filter(|(e, _)| *e == err)
                .map(|(_, l)| l.clone())
                .collect()
        };
        (status.code().unwrap_or(-1), pick(false), pick(true))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rollout_status_follows_the_deployment_like_kubectl() {
    let server = TestServer::start(&[]).await;
    let both = Both { server: &server };
    both.skiffctl(&["apply", "-f", "-"], Some(NAMESPACES)).ok();
    let web = WEB.replace("replicas: 2", "replicas: 3");
    let status = |v: Value| {
        let server = &server;
        async move {
            for ns in ["sk", "kc"] {
                merge_patch(
                    server,
                    &format!("{}/status", deployment(ns)),
                    json!({"status": v}),
                )
                .await;
            }
        }
    };
    for ns in ["sk", "kc"] {
        both.kubectl(&["apply", "-n", ns, "-f", "-"], Some(&web))
            .ok();
    }
    // No controller has looked at the Deployment yet.
    let once = step(&both, &["rollout", "status", "deploy/web", "--watch=false"]);
    assert_eq!(
        once.stdout,
        "Waiting for deployment spec update to be observed...\n"
    );
    let timeout = step(&both, &["rollout", "status", "deploy/web", "--timeout=1s"]);
    assert_eq!(
        timeout.stderr,
        "error: timed out waiting for the condition\n"
    );

    status(json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1})).await;
    let waiting = "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...";
    let runs: Vec<Running> = [(SKIFFCTL, "sk"), (KUBECTL, "kc")]
        .iter()
        .map(|(bin, ns)| {
            Running::start(
                bin,
                &server,
                &[
                    "rollout",
                    "status",
                    "deployment/web",
                    "-n",
                    ns,
                    "--timeout=60s",
                ],
            )
        })
        .collect();
    // Both are watching once they printed the first verdict; each change prints a line.
    for r in &runs {
        assert_eq!(r.line(), waiting);
    }
    status(json!({"observedGeneration": 1, "replicas": 4, "updatedReplicas": 3})).await;
    for r in &runs {
        assert_eq!(
            r.line(),
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
        );
    }
    status(json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2})).await;
    for r in &runs {
        assert_eq!(
            r.line(),
            "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available..."
        );
    }
    status(json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3})).await;
    for r in runs {
        assert_eq!(r.line(), "deployment \"web\" successfully rolled out");
        let (code, out, err) = r.finish();
        assert_eq!((code, out.len(), err), (0, 4, Vec::<String>::new()));
    }
    step(&both, &["rollout", "status", "deploy/web"]);
    let pinned = step(&both, &["rollout", "status", "deploy/web", "--revision=2"]);
    assert_eq!(
        pinned.stderr,
        "error: desired revision (2) is different from the running revision (3)\n"
    );
    status(json!({"conditions": [{"type": "Progressing", "status": "False",
        "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]}))
    .await;
    let stuck = step(&both, &["rollout", "status", "deploy/web"]);
    assert_eq!(
        stuck.stderr,
        "error: deployment \"web\" exceeded its progress deadline\n"
    );
    step(&both, &["rollout", "status", "deploy/nope"]);
}

/// A pod bound to `node` (as if scheduled), in `sk`.
fn pod_manifest(name: &str, node: &str, extra_spec: &str, extra_meta: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: sk\n{extra_meta}spec:\n  nodeName: {node}\n{extra_spec}  containers: [{{name: c, image: busybox}}]\n"
    )
}

/// Runs `drain` with one tool and returns what it printed.
fn drain(both: &Both, bin: &str, args: &[&str]) -> Out {
    let mut v = vec!["drain"];
    v.extend(args);
    if bin == SKIFFCTL {
        both.skiffctl(&v, None)
    } else {
        both.kubectl(&v, None)
    }
}

async fn pod_exists(server: &TestServer, name: &str) -> bool {
    server
        .http()
        .get(format!("{}/api/v1/namespaces/sk/pods/{name}", server.url))
        .send()
        .await
        .expect("GET pod")
        .status()
        .is_success()
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_matches_kubectl() {
    let server = TestServer::start(&[]).await;
    let both = Both { server: &server };
    both.skiffctl(&["apply", "-f", "-"], Some(NAMESPACES)).ok();
    node(&both, "n1").await;
    // Pods bound to a node are deleted gracefully by the API server (the kubelet confirms),
    // and no kubelet runs here: a grace period of 0 makes the eviction delete at once.
    let quick = "  terminationGracePeriodSeconds: 0\n";
    let uncordon = || both.skiffctl(&["uncordon", "n1"], None).ok().to_string();

    // Unmanaged pods refuse the drain without --force (after the cordon), in kubectl's words.
    both.skiffctl(
        &["apply", "-f", "-"],
        Some(&pod_manifest("solo", "n1", quick, "")),
    )
    .ok();
    let mut outs = Vec::new();
    for bin in [SKIFFCTL, KUBECTL] {
        outs.push(drain(&both, bin, &["n1"]));
        uncordon();
    }
    assert_eq!(outs[0], outs[1], "skiffctl (left) and kubectl (right)");
    assert_eq!(outs[0].code, 1);
    assert_eq!(outs[0].stdout, "node/n1 cordoned\n");
    assert_eq!(
        outs[0].stderr,
        "error: unable to drain node \"n1\" due to error: cannot delete cannot delete Pods that declare no controller (use --force to override): sk/solo, continuing command...\nThere are pending nodes to be drained:\n n1\ncannot delete cannot delete Pods that declare no controller (use --force to override): sk/solo\n"
    );
    assert!(pod_exists(&server, "solo").await);

    // With --force: evicted (pods/eviction), waited for, gone; same output as kubectl's.
    let mut outs = Vec::new();
    for bin in [SKIFFCTL, KUBECTL] {
        both.skiffctl(
            &["apply", "-f", "-"],
            Some(&pod_manifest("solo", "n1", quick, "")),
        )
        .ok();
        outs.push(drain(&both, bin, &["n1", "--force"]));
        assert!(!pod_exists(&server, "solo").await, "{bin} left the pod");
        uncordon();
    }
    assert_eq!(outs[0], outs[1], "skiffctl (left) and kubectl (right)");
    assert_eq!(
        outs[0].stdout,
        "node/n1 cordoned\nevicting pod sk/solo\npod/solo evicted\nnode/n1 drained\n"
    );
    assert_eq!(
        outs[0].stderr,
        "Warning: deleting Pods that declare no controller: sk/solo\n"
    );

    // DaemonSet pods: refused without --ignore-daemonsets, left in place with it. emptyDir
    // pods: refused without --delete-emptydir-data.
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: sk}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
    both.skiffctl(&["apply", "-f", "-"], Some(ds)).ok();
    let ds_uid =
        get(&server, "/apis/apps/v1/namespaces/sk/daemonsets/agent").await["metadata"]["uid"]
            .clone();
    let owned = format!(
        "  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: {ds_uid}, controller: true}}]\n"
    );
    both.skiffctl(
        &["apply", "-f", "-"],
        Some(&pod_manifest("agent-x", "n1", quick, &owned)),
    )
    .ok();
    let rs_owned = owned
        .replace("DaemonSet", "ReplicaSet")
        .replace("agent,", "cache,");
    let scratch = format!("{quick}  volumes: [{{name: tmp, emptyDir: {{}}}}]\n");
    both.skiffctl(
        &["apply", "-f", "-"],
        Some(&pod_manifest("cache-x", "n1", &scratch, &rs_owned)),
    )
    .ok();
    // One refusal at a time compares exactly (kubectl orders several by a Go map).
    for (args, refusal) in [
        (
            &["n1", "--delete-emptydir-data"][..],
            "DaemonSet-managed Pods (use --ignore-daemonsets to ignore): sk/agent-x",
        ),
        (
            &["n1", "--ignore-daemonsets"],
            "Pods with local storage (use --delete-emptydir-data to override): sk/cache-x",
        ),
    ] {
        let mut outs = Vec::new();
        for bin in [SKIFFCTL, KUBECTL] {
            outs.push(drain(&both, bin, args));
            uncordon();
        }
        assert_eq!(
            outs[0], outs[1],
            "{args:?}: skiffctl (left) and kubectl (right)"
        );
        assert_eq!(outs[0].code, 1);
        assert!(
            outs[0]
                .stderr
                .ends_with(&format!("\ncannot delete {refusal}\n")),
            "{:?}",
            outs[0]
        );
    }
    let a = drain(&both, SKIFFCTL, &["n1"]);
    uncordon();
    assert_eq!(a.code, 1);
    assert!(a.stderr.contains("\ncannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): sk/agent-x\ncannot delete Pods with local storage"), "{a:?}");
    let a = drain(
        &both,
        SKIFFCTL,
        &["n1", "--ignore-daemonsets", "--delete-emptydir-data"],
    );
    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(
        a.stdout,
        "node/n1 cordoned\nevicting pod sk/cache-x\npod/cache-x evicted\nnode/n1 drained\n"
    );
    assert_eq!(
        a.stderr,
        "Warning: ignoring DaemonSet-managed Pods: sk/agent-x\n"
    );
    assert!(pod_exists(&server, "agent-x").await);
    assert!(!pod_exists(&server, "cache-x").await);
    uncordon();

    // A pod with the default 30 s grace period stays Terminating without a kubelet: --timeout
    // ends the wait with kubectl's report; --grace-period=0 evicts it at once.
    both.skiffctl(
        &["delete", "pod", "agent-x", "-n", "sk", "--grace-period=0"],
        None,
    )
    .ok();
    both.skiffctl(
        &["apply", "-f", "-"],
        Some(&pod_manifest("slow", "n1", "", "")),
    )
    .ok();
    let mut outs = Vec::new();
    for bin in [SKIFFCTL, KUBECTL] {
        outs.push(drain(&both, bin, &["n1", "--force", "--timeout=2s"]));
        uncordon();
    }
    assert_eq!(outs[0], outs[1], "skiffctl (left) and kubectl (right)");
    assert!(
        outs[0].stderr.contains("error when waiting for pod \"slow\" in namespace \"sk\" to terminate: context deadline exceeded"),
        "{:?}",
        outs[0]
    );
    let a = drain(&both, SKIFFCTL, &["n1", "--force", "--grace-period=0"]);
    assert_eq!(a.code, 0, "{a:?}");
    assert!(a.stdout.contains("pod/slow evicted\n"), "{a:?}");
    assert!(!pod_exists(&server, "slow").await);
    // A PodDisruptionBudget answers 429: kubectl's report when --timeout ends the retries,
    // and a retry that succeeds once the budget allows it.
    let guarded = pod_manifest("guarded", "n1", quick, "  labels: {app: guarded}\n");
    let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: pdb, namespace: sk}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: guarded}}\n";
    both.skiffctl(&["apply", "-f", "-"], Some(&guarded)).ok();
    both.skiffctl(&["apply", "-f", "-"], Some(pdb)).ok();
    uncordon();
    let mut outs = Vec::new();
    for bin in [SKIFFCTL, KUBECTL] {
        outs.push(drain(&both, bin, &["n1", "--force", "--timeout=3s"]));
        uncordon();
    }
    assert_eq!(outs[0], outs[1], "skiffctl (left) and kubectl (right)");
    assert!(outs[0].stderr.contains("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."), "{:?}", outs[0]);
    let run = Running::start(SKIFFCTL, &server, &["drain", "n1", "--force"]);
    // stdout and stderr come through separate pipes, so their lines may interleave either
    // way: wait until the cordon, the warning and the first refused eviction have all shown.
    let (mut cordoned, mut warned, mut refused) = (false, false, false);
    while !(cordoned && warned && refused) {
        match run.next() {
            (false, l) => cordoned |= l == "node/n1 cordoned",
            (true, l) if !warned => {
                assert!(
                    l.starts_with("Warning: deleting Pods that declare no controller"),
                    "{l}"
                );
                warned = true;
            }
            (true, l) => {
                assert!(l.contains("(will retry after 5s)"), "{l}");
                refused = true;
            }
        }
    }
    merge_patch(
        &server,
        "/apis/policy/v1/namespaces/sk/poddisruptionbudgets/pdb/status",
        json!({"status": {"disruptionsAllowed": 1, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}}),
    )
    .await;
    // The two output streams arrive on separate pipes: check each as a whole.
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{out:?} {err:?}");
    assert_eq!(
        out,
        [
            "node/n1 cordoned",
            "evicting pod sk/guarded",
            "evicting pod sk/guarded",
            "pod/guarded evicted",
            "node/n1 drained"
        ]
    );
    assert_eq!(err.len(), 2, "{err:?}");
    assert!(!pod_exists(&server, "guarded").await);

    uncordon();
    // --pod-selector drains only the matching pods; --disable-eviction deletes instead of
    // evicting (kubectl itself sends a protobuf DELETE there, which Skiff refuses).
    for (name, label) in [("pick", "a"), ("keep", "b")] {
        let m = pod_manifest(name, "n1", quick, &format!("  labels: {{app: {label}}}\n"));
        both.skiffctl(&["apply", "-f", "-"], Some(&m)).ok();
    }
    let a = drain(&both, SKIFFCTL, &["n1", "--force", "--pod-selector=app=a"]);
    assert_eq!(
        a.ok(),
        "node/n1 cordoned\nevicting pod sk/pick\npod/pick evicted\nnode/n1 drained\n"
    );
    assert!(pod_exists(&server, "keep").await);
    let a = drain(&both, SKIFFCTL, &["n1", "--force", "--disable-eviction"]);
    assert_eq!(
        a.ok(),
        "node/n1 already cordoned\npod/keep deleted\nnode/n1 drained\n"
    );
    assert!(!pod_exists(&server, "keep").await);

    // Nothing left: cordon and done.
    uncordon();
    assert_eq!(
        drain(&both, SKIFFCTL, &["n1"]).ok(),
        "node/n1 cordoned\nnode/n1 drained\n"
    );
}
