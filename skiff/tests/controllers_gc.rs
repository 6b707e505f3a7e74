//! The garbage collector, the namespace controller and the ServiceAccount controller against
//! a real `skiff server` (only these controllers enabled, so hand-made owners and dependents
//! are left to them alone), plus the real kubectl deleting a namespace.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Api, TestServer, wait_for};

/// The controllers under test.
const MINE: &str = "garbagecollector,namespace,serviceaccount";
/// Generous: these run on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(30);

fn owner_ref(kind: &str, name: &str, uid: &str, block: bool) -> Value {
    let api_version = if kind == "Deployment" {
        "apps/v1"
    } else {
        "v1"
    };
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": block})
}

async fn create_ns(api: &Api, name: &str) {
    let r = api
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .await;
    assert_eq!(r.code, 201, "{:?}", r.body);
}

/// Creates a ConfigMap (or Secret) with owners and finalizers; returns its uid.
async fn create(
    api: &Api,
    ns: &str,
    kind: &str,
    name: &str,
    owners: &[Value],
    finalizers: &[&str],
) -> String {
    let plural = format!("{}s", kind.to_lowercase());
    let body = json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
    });
    let r = api
        .post(&format!("/api/v1/namespaces/{ns}/{plural}"), &body)
        .await;
    assert_eq!(r.code, 201, "create {kind} {name}: {:?}", r.body);
    r.body["metadata"]["uid"].as_str().unwrap().to_string()
}

fn cm_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps/{name}")
}

async fn get(api: &Api, path: &str) -> Option<Value> {
    let r = api.get(path).await;
    match r.code {
        200 => Some(r.body),
        404 => None,
        c => panic!("GET {path}: {c} {:?}", r.body),
    }
}

async fn wait_gone(api: &Api, path: &str) {
    wait_for(&format!("{path} to be deleted"), WAIT, || async {
        get(api, path).await.is_none().then_some(())
    })
    .await;
}

async fn delete(api: &Api, path: &str, policy: &str) -> Value {
    let r = api
        .delete(
            path,
            Some(
                &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy}),
            ),
        )
        .await;
    assert_eq!(r.code, 200, "delete {path}: {:?}", r.body);
    r.body
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["uid"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

#[tokio::test]
async fn cascading_deletion_background_foreground_and_orphan() {
    let server = TestServer::start_server_with(&["--controllers", MINE]).await;
    let api = server.client();
    let ns = "cascade";
    create_ns(&api, ns).await;

    // Background: the owner goes at once, then its dependents and theirs.
    let o = create(&api, ns, "ConfigMap", "bg-owner", &[], &[]).await;
    create(
        &api,
        ns,
        "ConfigMap",
        "bg-a",
        &[owner_ref("ConfigMap", "bg-owner", &o, true)],
        &[],
    )
    .await;
    let b = create(
        &api,
        ns,
        "ConfigMap",
        "bg-b",
        &[owner_ref("ConfigMap", "bg-owner", &o, false)],
        &[],
    )
    .await;
    create(
        &api,
        ns,
        "Secret",
        "bg-b-child",
        &[owner_ref("ConfigMap", "bg-b", &b, false)],
        &[],
    )
    .await;
    delete(&api, &cm_path(ns, "bg-owner"), "Background").await;
    assert!(
        get(&api, &cm_path(ns, "bg-owner")).await.is_none(),
        "a background delete removes the owner at once"
    );
    wait_gone(&api, &cm_path(ns, "bg-a")).await;
    wait_gone(&api, &cm_path(ns, "bg-b")).await;
    wait_gone(&api, &format!("/api/v1/namespaces/{ns}/secrets/bg-b-child")).await;

    // Foreground: owner → mid (blocking) → leaf (blocking, held by a finalizer of its own),
    // plus a dependent that does not block.
    let o = create(&api, ns, "ConfigMap", "fg-owner", &[], &[]).await;
    let mid = create(
        &api,
        ns,
        "ConfigMap",
        "fg-mid",
        &[owner_ref("ConfigMap", "fg-owner", &o, true)],
        &[],
    )
    .await;
    create(
        &api,
        ns,
        "ConfigMap",
        "fg-leaf",
        &[owner_ref("ConfigMap", "fg-mid", &mid, true)],
        &["example.com/hold"],
    )
    .await;
    create(
        &api,
        ns,
        "ConfigMap",
        "fg-loose",
        &[owner_ref("ConfigMap", "fg-owner", &o, false)],
        &[],
    )
    .await;
    let deleted = delete(&api, &cm_path(ns, "fg-owner"), "Foreground").await;
    assert!(finalizers(&deleted).contains(&"foregroundDeletion".to_string()));
    // The collector deletes the leaf (held by its finalizer), the middle one in the
    // foreground (it has a blocking dependent), and the non-blocking dependent.
    wait_for("the leaf to be deleting", WAIT, || async {
        get(&api, &cm_path(ns, "fg-leaf")).await.filter(is_deleting)
    })
    .await;
    let mid_obj = wait_for(
        "the middle one to be deleting in the foreground",
        WAIT,
        || async { get(&api, &cm_path(ns, "fg-mid")).await.filter(is_deleting) },
    )
    .await;
    assert!(
        finalizers(&mid_obj).contains(&"foregroundDeletion".to_string()),
        "{mid_obj}"
    );
    wait_gone(&api, &cm_path(ns, "fg-loose")).await;
    let owner = get(&api, &cm_path(ns, "fg-owner"))
        .await
        .expect("the owner waits for its blocking dependents");
    assert!(is_deleting(&owner));
    assert_eq!(finalizers(&owner), ["foregroundDeletion"]);
    // Releasing the leaf lets the whole chain go, owner last.
    let r = api
        .patch(
            &cm_path(ns, "fg-leaf"),
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(r.code, 200, "{:?}", r.body);
    wait_gone(&api, &cm_path(ns, "fg-leaf")).await;
    wait_gone(&api, &cm_path(ns, "fg-mid")).await;
    wait_gone(&api, &cm_path(ns, "fg-owner")).await;

    // Orphan: the dependents stay, freed of the reference to the owner (and only of it).
    let o = create(&api, ns, "ConfigMap", "or-owner", &[], &[]).await;
    let other = create(&api, ns, "Secret", "or-other-owner", &[], &[]).await;
    create(
        &api,
        ns,
        "ConfigMap",
        "or-a",
        &[owner_ref("ConfigMap", "or-owner", &o, true)],
        &[],
    )
    .await;
    create(
        &api,
        ns,
        "ConfigMap",
        "or-b",
        &[
            owner_ref("ConfigMap", "or-owner", &o, false),
            owner_ref("Secret", "or-other-owner", &other, false),
        ],
        &[],
    )
    .await;
    let deleted = delete(&api, &cm_path(ns, "or-owner"), "Orphan").await;
    assert!(finalizers(&deleted).contains(&"orphan".to_string()));
    wait_gone(&api, &cm_path(ns, "or-owner")).await;
    // A dependent whose owner never existed is collected; by then the collector has had
    // every chance to (wrongly) collect the orphans too.
    create(
        &api,
        ns,
        "ConfigMap",
        "ghost-child",
        &[owner_ref(
            "ConfigMap",
            "ghost",
            "uid-that-never-existed",
            true,
        )],
        &[],
    )
    .await;
    wait_gone(&api, &cm_path(ns, "ghost-child")).await;
    let a = get(&api, &cm_path(ns, "or-a"))
        .await
        .expect("orphaned dependent stays");
    assert!(owner_uids(&a).is_empty(), "{a}");
    let b = get(&api, &cm_path(ns, "or-b"))
        .await
        .expect("orphaned dependent stays");
    assert_eq!(owner_uids(&b), [other]);
}

#[tokio::test]
async fn owners_checked_by_uid_and_references_to_gone_owners_dropped() {
    let server = TestServer::start_server_with(&["--controllers", MINE]).await;
    let api = server.client();
    let ns = "uids";
    create_ns(&api, ns).await;
    // Same name, another uid: that owner is gone.
    create(&api, ns, "ConfigMap", "reborn", &[], &[]).await;
    create(
        &api,
        ns,
        "ConfigMap",
        "stale-child",
        &[owner_ref("ConfigMap", "reborn", "an-older-uid", false)],
        &[],
    )
    .await;
    // Two owners, one of them gone: only the reference goes.
    let live = create(&api, ns, "ConfigMap", "live-owner", &[], &[]).await;
    create(
        &api,
        ns,
        "ConfigMap",
        "two-owners",
        &[
            owner_ref("ConfigMap", "gone-owner", "gone-uid", true),
            owner_ref("ConfigMap", "live-owner", &live, true),
        ],
        &[],
    )
    .await;
    wait_gone(&api, &cm_path(ns, "stale-child")).await;
    let kept = wait_for("the stale reference to be removed", WAIT, || async {
        get(&api, &cm_path(ns, "two-owners"))
            .await
            .filter(|o| owner_uids(o).len() == 1)
    })
    .await;
    assert_eq!(owner_uids(&kept), [live]);
    assert!(get(&api, &cm_path(ns, "reborn")).await.is_some());
}

/// A `skiff controllers` process, killed on drop.
struct Controllers(Child);

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn collects_at_startup_what_lost_its_owner_while_it_was_down() {
    let server = TestServer::start_server_with(&["--no-controllers"]).await;
    let api = server.client();
    let ns = "down";
    create_ns(&api, ns).await;
    let o = create(&api, ns, "ConfigMap", "owner", &[], &[]).await;
    create(
        &api,
        ns,
        "ConfigMap",
        "child",
        &[owner_ref("ConfigMap", "owner", &o, true)],
        &[],
    )
    .await;
    create(
        &api,
        ns,
        "ConfigMap",
        "ghost-child",
        &[owner_ref("ConfigMap", "ghost", "never", false)],
        &[],
    )
    .await;
    // Owners of another resource than their dependents, in both directions: whichever cache
    // fills first, nothing with a live owner may be collected.
    let cm_owner = create(&api, ns, "ConfigMap", "cm-owner", &[], &[]).await;
    let secret = create(
        &api,
        ns,
        "Secret",
        "secret-child",
        &[owner_ref("ConfigMap", "cm-owner", &cm_owner, true)],
        &[],
    )
    .await;
    create(
        &api,
        ns,
        "ConfigMap",
        "cm-child",
        &[owner_ref("Secret", "secret-child", &secret, true)],
        &[],
    )
    .await;
    delete(&api, &cm_path(ns, "owner"), "Background").await;
    assert!(
        get(&api, &cm_path(ns, "child")).await.is_some(),
        "no collector runs yet"
    );

    // Without a ServiceAccount controller the namespace has no `default` ServiceAccount; a
    // pod is still accepted and runs as `default`.
    let r = api
        .post(
            &format!("/api/v1/namespaces/{ns}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        )
        .await;
    assert_eq!(r.code, 201, "{:?}", r.body);
    assert_eq!(r.body["spec"]["serviceAccountName"], "default");
    assert_eq!(r.body["spec"]["serviceAccount"], "default");

    let _gc = Controllers(
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args([
                "controllers",
                "--controllers",
                "garbagecollector",
                "--kubeconfig",
            ])
            .arg(&server.kubeconfig)
            .env("SKIFF_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn skiff controllers"),
    );
    wait_gone(&api, &cm_path(ns, "child")).await;
    wait_gone(&api, &cm_path(ns, "ghost-child")).await;
    assert!(
        get(
            &api,
            &format!("/api/v1/namespaces/{ns}/secrets/secret-child")
        )
        .await
        .is_some()
    );
    assert!(get(&api, &cm_path(ns, "cm-child")).await.is_some());
    assert!(get(&api, &cm_path(ns, "cm-owner")).await.is_some());
}

#[tokio::test]
async fn namespace_deletion_empties_the_namespace_then_removes_it() {
    let server = TestServer::start_server_with(&["--controllers", MINE]).await;
    let api = server.client();
    let ns = "doomed";
    create_ns(&api, ns).await;
    let manifests = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: {ns}, labels: {{app: web}}}}
spec: {{containers: [{{name: c, image: nginx}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{a: b}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {ns}}}
stringData: {{password: x}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec: {{selector: {{app: web}}, ports: [{{port: 80}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: c, image: nginx}}]}}
"#
    );
    server
        .kubectl_stdin(&["apply", "-f", "-"], Some(&manifests))
        .ok();
    // kubectl waits for the namespace to disappear (no --wait=false).
    let out = server.kubectl(&["delete", "namespace", ns, "--timeout=60s"]);
    assert!(
        out.ok().contains(&format!("namespace \"{ns}\" deleted")),
        "{out:?}"
    );
    assert!(
        get(&api, &format!("/api/v1/namespaces/{ns}"))
            .await
            .is_none()
    );
    for path in [
        format!("/api/v1/namespaces/{ns}/pods"),
        format!("/api/v1/namespaces/{ns}/configmaps"),
        format!("/api/v1/namespaces/{ns}/secrets"),
        format!("/api/v1/namespaces/{ns}/services"),
        format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        format!("/apis/apps/v1/namespaces/{ns}/deployments"),
    ] {
        let list = get(&api, &path).await.expect("list");
        assert_eq!(list["items"], json!([]), "{path}");
    }

    // A namespace whose content is held by a finalizer stays Terminating until it goes.
    let ns = "held";
    create_ns(&api, ns).await;
    create(&api, ns, "ConfigMap", "held", &[], &["example.com/hold"]).await;
    let r = api.delete(&format!("/api/v1/namespaces/{ns}"), None).await;
    assert_eq!(r.code, 200, "{:?}", r.body);
    wait_for("the held ConfigMap to be deleting", WAIT, || async {
        get(&api, &cm_path(ns, "held")).await.filter(is_deleting)
    })
    .await;
    let namespace = get(&api, &format!("/api/v1/namespaces/{ns}"))
        .await
        .expect("held namespace stays");
    assert_eq!(namespace["status"]["phase"], "Terminating");
    assert_eq!(namespace["spec"]["finalizers"], json!(["kubernetes"]));
    // Updating the terminating namespace (a label here; the collector dropping a
    // `foregroundDeletion` finalizer likewise) does not remove it while content remains.
    server
        .kubectl(&["label", "namespace", ns, "touched=yes"])
        .ok();
    let namespace = get(&api, &format!("/api/v1/namespaces/{ns}"))
        .await
        .expect("a label change does not finish the deletion");
    assert_eq!(namespace["metadata"]["labels"]["touched"], "yes");
    let r = api
        .patch(
            &cm_path(ns, "held"),
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(r.code, 200, "{:?}", r.body);
    wait_gone(&api, &format!("/api/v1/namespaces/{ns}")).await;

    // Foreground deletion of a namespace: the collector drops `foregroundDeletion` (nothing
    // is owned by the namespace), the namespace controller still empties it first.
    let ns = "foreground";
    create_ns(&api, ns).await;
    create(&api, ns, "ConfigMap", "c", &[], &[]).await;
    let out = server.kubectl(&[
        "delete",
        "namespace",
        ns,
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    assert!(
        out.ok().contains(&format!("namespace \"{ns}\" deleted")),
        "{out:?}"
    );
    assert!(
        get(&api, &format!("/api/v1/namespaces/{ns}"))
            .await
            .is_none()
    );
    assert!(get(&api, &cm_path(ns, "c")).await.is_none());
}

#[tokio::test]
async fn every_namespace_gets_a_default_service_account_and_pods_use_it() {
    let server = TestServer::start_server_with(&["--controllers", MINE]).await;
    let api = server.client();
    let sa = |ns: &str| format!("/api/v1/namespaces/{ns}/serviceaccounts/default");
    wait_for("default/default", WAIT, || async {
        get(&api, &sa("default")).await
    })
    .await;
    create_ns(&api, "team").await;
    let first = wait_for("team/default", WAIT, || async {
        get(&api, &sa("team")).await
    })
    .await;
    let r = api.delete(&sa("team"), None).await;
    assert_eq!(r.code, 200, "{:?}", r.body);
    let uid = first["metadata"]["uid"].clone();
    wait_for("team/default to be recreated", WAIT, || async {
        get(&api, &sa("team"))
            .await
            .filter(|s| s["metadata"]["uid"] != uid)
    })
    .await;

    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team}\nspec: {containers: [{name: c, image: nginx}]}\n";
    server.kubectl_stdin(&["apply", "-f", "-"], Some(pod)).ok();
    let out = server.kubectl(&[
        "get",
        "pod",
        "p",
        "-n",
        "team",
        "-o",
        "jsonpath={.spec.serviceAccountName}/{.spec.serviceAccount}",
    ]);
    assert_eq!(out.ok(), "default/default");
}
