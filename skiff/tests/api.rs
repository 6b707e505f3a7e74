//! The Kubernetes REST API of a real `skiff server` process, driven over HTTP.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Api, Backend, TestServer};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const SVCS: &str = "/api/v1/namespaces/default/services";

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}})
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}})
}

fn rv(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .expect("numeric RV")
}

async fn count(api: &Api, path: &str) -> usize {
    let r = api.get(path).await;
    assert_eq!(r.code, 200, "{:?}", r.body);
    r.body["items"].as_array().map(Vec::len).unwrap_or(0)
}

async fn crud_metadata_and_optimistic_concurrency(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let api = server.client();

    let created = api.post(PODS, &pod("web-1")).await;
    assert_eq!(created.code, 201, "{:?}", created.body);
    let obj = &created.body;
    assert!(!obj["metadata"]["uid"].as_str().unwrap().is_empty());
    assert!(obj["metadata"]["creationTimestamp"].is_string());
    assert_eq!(obj["status"]["phase"], "Pending");
    // Defaults applied by the server.
    assert_eq!(obj["spec"]["restartPolicy"], "Always");
    assert_eq!(
        obj["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    let first_rv = rv(obj);

    let again = api.post(PODS, &pod("web-1")).await;
    assert_eq!(again.code, 409);
    assert_eq!(again.body["reason"], "AlreadyExists");

    let got = api.get(&format!("{PODS}/web-1")).await;
    assert_eq!(got.code, 200);
    assert_eq!(rv(&got.body), first_rv);

    let mut changed = got.body.clone();
    changed["metadata"]["labels"]["tier"] = json!("front");
    let updated = api.put(&format!("{PODS}/web-1"), &changed).await;
    assert_eq!(updated.code, 200, "{:?}", updated.body);
    assert!(rv(&updated.body) > first_rv);
    assert_eq!(updated.body["metadata"]["uid"], obj["metadata"]["uid"]);

    // The same body again carries a stale resourceVersion now.
    let stale = api.put(&format!("{PODS}/web-1"), &changed).await;
    assert_eq!(stale.code, 409);
    assert_eq!(stale.body["reason"], "Conflict");

    let missing = api.get(&format!("{PODS}/nope")).await;
    assert_eq!(missing.code, 404);
    assert_eq!(missing.body["kind"], "Status");
    assert_eq!(missing.body["reason"], "NotFound");
    assert_eq!(missing.body["message"], "pods \"nope\" not found");
    assert_eq!(missing.body["details"]["name"], "nope");

    // Delete preconditions.
    let wrong_uid = api
        .delete(
            &format!("{PODS}/web-1"),
            Some(&json!({"preconditions": {"uid": "other"}})),
        )
        .await;
    assert_eq!(wrong_uid.code, 409);
    let deleted = api
        .delete(
            &format!("{PODS}/web-1"),
            Some(&json!({"propagationPolicy": "Background"})),
        )
        .await;
    assert_eq!(deleted.code, 200, "{:?}", deleted.body);
    assert_eq!(api.get(&format!("{PODS}/web-1")).await.code, 404);
}

async fn generation_names_and_namespaces(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let api = server.client();

    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert_eq!(
            api.get(&format!("/api/v1/namespaces/{ns}")).await.code,
            200,
            "{ns}"
        );
    }
    let d = api.post(DEPLOYS, &deployment("web", 2)).await;
    assert_eq!(d.code, 201, "{:?}", d.body);
    assert_eq!(d.body["metadata"]["generation"], 1);
    assert_eq!(
        d.body["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );
    assert_eq!(d.body["spec"]["revisionHistoryLimit"], 10);

    // Label change: generation stays; spec change: generation moves.
    let p = api
        .patch(
            &format!("{DEPLOYS}/web"),
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"x":"y"}}}"#,
        )
        .await;
    assert_eq!(p.code, 200, "{:?}", p.body);
    assert_eq!(p.body["metadata"]["generation"], 1);
    let p = api
        .patch(
            &format!("{DEPLOYS}/web"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":3}}"#,
        )
        .await;
    assert_eq!(p.body["metadata"]["generation"], 2);

    let generated = api
        .post(
            CM,
            &json!({"metadata": {"generateName": "cfg-"}, "data": {"a": "b"}}),
        )
        .await;
    assert_eq!(generated.code, 201, "{:?}", generated.body);
    let name = generated.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");

    let forbidden = api.delete("/api/v1/namespaces/default", None).await;
    assert_eq!(forbidden.code, 403, "{:?}", forbidden.body);
    assert_eq!(forbidden.body["reason"], "Forbidden");

    let nowhere = api
        .post(
            "/api/v1/namespaces/missing/configmaps",
            &json!({"metadata": {"name": "a"}}),
        )
        .await;
    assert_eq!(nowhere.code, 404);
    assert_eq!(nowhere.body["details"]["kind"], "namespaces");

    let node = api
        .post(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        )
        .await;
    assert_eq!(node.code, 201, "{:?}", node.body);
    assert!(node.body["metadata"].get("namespace").is_none());
}

async fn finalizers_and_graceful_pod_deletion(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let api = server.client();

    let c = api
        .post(
            CM,
            &json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .await;
    assert_eq!(c.code, 201);
    let d = api.delete(&format!("{CM}/held"), None).await;
    assert_eq!(d.code, 200);
    let still = api.get(&format!("{CM}/held")).await;
    assert_eq!(still.code, 200);
    assert!(still.body["metadata"]["deletionTimestamp"].is_string());
    let released = api
        .patch(
            &format!("{CM}/held"),
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(released.code, 200, "{:?}", released.body);
    assert_eq!(api.get(&format!("{CM}/held")).await.code, 404);

    // An unscheduled pod goes at once; a scheduled one waits for its node.
    api.post(PODS, &pod("loose")).await;
    api.delete(&format!("{PODS}/loose"), None).await;
    assert_eq!(api.get(&format!("{PODS}/loose")).await.code, 404);

    api.post(PODS, &pod("bound")).await;
    let b = api
        .post(
            &format!("{PODS}/bound/binding"),
            &json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "n1"}}),
        )
        .await;
    assert_eq!(b.code, 201, "{:?}", b.body);
    let rebind = api
        .post(
            &format!("{PODS}/bound/binding"),
            &json!({"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "n2"}}),
        )
        .await;
    assert_eq!(rebind.code, 409);
    let got = api.get(&format!("{PODS}/bound")).await;
    assert_eq!(got.body["spec"]["nodeName"], "n1");
    let d = api.delete(&format!("{PODS}/bound"), None).await;
    assert_eq!(d.code, 200);
    assert_eq!(d.body["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(api.get(&format!("{PODS}/bound")).await.code, 200);
    let now = api
        .delete(
            &format!("{PODS}/bound"),
            Some(&json!({"gracePeriodSeconds": 0})),
        )
        .await;
    assert_eq!(now.code, 200);
    assert_eq!(api.get(&format!("{PODS}/bound")).await.code, 404);
}

async fn status_and_scale_subresources(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let api = server.client();
    api.post(DEPLOYS, &deployment("web", 1)).await;

    // The main resource ignores status; /status ignores spec.
    let mut d = api.get(&format!("{DEPLOYS}/web")).await.body;
    d["status"] = json!({"replicas": 7});
    let u = api.put(&format!("{DEPLOYS}/web"), &d).await;
    assert_eq!(u.code, 200, "{:?}", u.body);
    assert!(u.body["status"].get("replicas").is_none());
    let mut d = u.body.clone();
    d["status"] = json!({"replicas": 7});
    d["spec"]["replicas"] = json!(9);
    let s = api.put(&format!("{DEPLOYS}/web/status"), &d).await;
    assert_eq!(s.code, 200, "{:?}", s.body);
    assert_eq!(s.body["status"]["replicas"], 7);
    assert_eq!(s.body["spec"]["replicas"], 1);

    let scale = api.get(&format!("{DEPLOYS}/web/scale")).await;
    assert_eq!(scale.code, 200);
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["apiVersion"], "autoscaling/v1");
    assert_eq!(scale.body["spec"]["replicas"], 1);
    assert_eq!(scale.body["status"]["selector"], "app=web");
    let scaled = api
        .patch(
            &format!("{DEPLOYS}/web/scale"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":5}}"#,
        )
        .await;
    assert_eq!(scaled.code, 200, "{:?}", scaled.body);
    assert_eq!(scaled.body["spec"]["replicas"], 5);
    assert_eq!(
        api.get(&format!("{DEPLOYS}/web")).await.body["spec"]["replicas"],
        5
    );
    let negative = api
        .patch(
            &format!("{DEPLOYS}/web/scale"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":-1}}"#,
        )
        .await;
    assert_eq!(negative.code, 422);
}

async fn every_patch_type_and_dry_run(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let api = server.client();
    api.post(DEPLOYS, &deployment("web", 1)).await;
    let path = format!("{DEPLOYS}/web");

    let smp = api
        .patch(
            &path,
            "application/strategic-merge-patch+json",
            r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"},{"name":"side"}],"containers":[{"name":"side","image":"busybox"}]}}}}"#,
        )
        .await;
    assert_eq!(smp.code, 200, "{:?}", smp.body);
    let names: Vec<&str> = smp.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["web", "side"],
        "strategic merge keeps and adds by name, in $setElementOrder order"
    );

    let remove = api
        .patch(
            &path,
            "application/strategic-merge-patch+json",
            r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],"containers":[{"$patch":"delete","name":"side"}]}}}}"#,
        )
        .await;
    assert_eq!(remove.code, 200, "{:?}", remove.body);
    assert_eq!(
        remove.body["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let jp = api
        .patch(
            &path,
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        )
        .await;
    assert_eq!(jp.code, 200, "{:?}", jp.body);
    assert_eq!(jp.body["spec"]["replicas"], 4);

    let before = api.get(&path).await.body;
    let dry = api
        .patch(
            &format!("{path}?dryRun=All"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":9}}"#,
        )
        .await;
    assert_eq!(dry.code, 200);
    assert_eq!(dry.body["spec"]["replicas"], 9);
    let after = api.get(&path).await.body;
    assert_eq!(after, before, "dry run stored nothing");

    // A stale resourceVersion inside a patch is a precondition.
    let stale = api
        .patch(
            &path,
            "application/merge-patch+json",
            r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":2}}"#,
        )
        .await;
    assert_eq!(stale.code, 409);

    // Server-side apply: create, then a conflicting manager.
    let applied = api
        .patch(
            "/api/v1/namespaces/default/configmaps/ssa?fieldManager=alice",
            "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"1\"\n",
        )
        .await;
    assert_eq!(applied.code, 201, "{:?}", applied.body);
    assert_eq!(
        applied.body["metadata"]["managedFields"][0]["manager"],
        "alice"
    );
    let conflict = api
        .patch(
            "/api/v1/namespaces/default/configmaps/ssa?fieldManager=bob",
            "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"2\"\n",
        )
        .await;
    assert_eq!(conflict.code, 409, "{:?}", conflict.body);
    let forced = api
        .patch(
            "/api/v1/namespaces/default/configmaps/ssa?fieldManager=bob&force=true",
            "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"2\"\n",
        )
        .await;
    assert_eq!(forced.code, 200, "{:?}", forced.body);
    assert_eq!(forced.body["data"]["a"], "2");
}

async fn selectors_paging_and_tables(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let api = server.client();
    for i in 0..7 {
        let mut p = pod(&format!("p{i}"));
        p["metadata"]["labels"]["tier"] = json!(if i % 2 == 0 { "even" } else { "odd" });
        assert_eq!(api.post(PODS, &p).await.code, 201);
    }
    assert_eq!(
        count(&api, &format!("{PODS}?labelSelector=tier%3Deven")).await,
        4
    );
    assert_eq!(
        count(&api, &format!("{PODS}?labelSelector=tier%20in%20(odd)")).await,
        3
    );
    assert_eq!(count(&api, &format!("{PODS}?labelSelector=!tier")).await, 0);
    assert_eq!(
        count(&api, &format!("{PODS}?fieldSelector=metadata.name%3Dp3")).await,
        1
    );
    assert_eq!(
        count(
            &api,
            &format!("{PODS}?fieldSelector=status.phase!%3DRunning")
        )
        .await,
        7
    );
    assert_eq!(count(&api, "/api/v1/pods").await, 7);
    let bad = api.get(&format!("{PODS}?labelSelector=a%20in%20(")).await;
    assert_eq!(bad.code, 400);
    let bad_field = api
        .get(&format!("{PODS}?fieldSelector=spec.bogus%3Dx"))
        .await;
    assert_eq!(bad_field.code, 400);

    // Paging.
    let mut seen = Vec::new();
    let mut path = format!("{PODS}?limit=3");
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.code, 200);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page.body["metadata"]["continue"].as_str() {
            Some(c) => path = format!("{PODS}?limit=3&continue={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);

    let table = api
        .http
        .get(format!("{}{PODS}", api.base))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &columns[..5],
        ["Name", "Ready", "Status", "Restarts", "Age"]
    );
    assert_eq!(table["rows"].as_array().unwrap().len(), 7);
    assert_eq!(table["rows"][0]["cells"][1], "0/1");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

async fn watches_follow_resource_version_semantics(backend: Backend) {
    let server = TestServer::start_with(backend, &["--bookmark-interval", "1"]).await;
    let api = server.client();
    api.post(CM, &json!({"metadata": {"name": "before"}})).await;
    let list = api.get(CM).await.body;
    let list_rv = rv(&list);

    // From the list's revision: only later changes, in order.
    let mut w = api
        .watch(&format!(
            "{CM}?watch=true&resourceVersion={list_rv}&allowWatchBookmarks=true"
        ))
        .await;
    // Without a revision: the current state first.
    let mut fresh = api.watch(&format!("{CM}?watch=1")).await;
    let first = fresh.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "before");

    api.post(
        CM,
        &json!({"metadata": {"name": "a", "labels": {"k": "v"}}}),
    )
    .await;
    api.patch(
        &format!("{CM}/a"),
        "application/merge-patch+json",
        r#"{"data":{"x":"1"}}"#,
    )
    .await;
    api.delete(&format!("{CM}/a"), None).await;

    let mut types = Vec::new();
    let mut last = list_rv;
    while types.len() < 3 {
        let ev = w.next(Duration::from_secs(5)).await.expect("event");
        if ev["type"] == "BOOKMARK" {
            continue;
        }
        let r = rv(&ev["object"]);
        assert!(r > last, "events arrive in revision order");
        last = r;
        types.push(ev["type"].as_str().unwrap().to_string());
    }
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
    // Bookmarks come when asked for.
    let mut bookmark = None;
    for _ in 0..5 {
        let ev = w.next(Duration::from_secs(5)).await.unwrap();
        if ev["type"] == "BOOKMARK" {
            bookmark = Some(ev);
            break;
        }
    }
    let bookmark = bookmark.expect("a bookmark within a few seconds");
    assert!(rv(&bookmark["object"]) >= last);

    // Selector watch: moving out of the selection is a DELETED.
    let mut sel = api
        .watch(&format!(
            "{CM}?watch=1&labelSelector=k%3Dv&resourceVersion={last}"
        ))
        .await;
    api.post(
        CM,
        &json!({"metadata": {"name": "b", "labels": {"k": "v"}}}),
    )
    .await;
    api.patch(
        &format!("{CM}/b"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"k":"w"}}}"#,
    )
    .await;
    assert_eq!(
        sel.next(Duration::from_secs(5)).await.unwrap()["type"],
        "ADDED"
    );
    assert_eq!(
        sel.next(Duration::from_secs(5)).await.unwrap()["type"],
        "DELETED"
    );

    // timeoutSeconds ends the stream.
    let mut short = api
        .watch(&format!(
            "{CM}?watch=1&timeoutSeconds=1&resourceVersion={last}"
        ))
        .await;
    let mut ended = false;
    for _ in 0..10 {
        if short.next(Duration::from_secs(5)).await.is_none() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the watch ended after timeoutSeconds");
}

#[tokio::test]
async fn too_old_watches_get_410_expired() {
    let server = TestServer::start_with(support::Backend::Embedded, &["--history", "5"]).await;
    let api = server.client();
    let start = rv(&api.get(CM).await.body);
    for i in 0..20 {
        api.post(CM, &json!({"metadata": {"name": format!("c{i}")}}))
            .await;
    }
    let r = api
        .get(&format!("{CM}?watch=1&resourceVersion={start}"))
        .await;
    assert_eq!(r.code, 410, "{:?}", r.body);
    assert_eq!(r.body["reason"], "Expired");
}

async fn services_get_cluster_ips_and_node_ports(backend: Backend) {
    let mut server = TestServer::start_with(backend, &[]).await;
    let api = server.client();
    let svc = |name: &str, extra: Value| {
        let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        if let (Some(spec), Some(extra)) = (s["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        s
    };
    let a = api.post(SVCS, &svc("a", json!({}))).await;
    assert_eq!(a.code, 201, "{:?}", a.body);
    let ip = a.body["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(a.body["spec"]["ports"][0]["protocol"], "TCP");
    let np = api.post(SVCS, &svc("b", json!({"type": "NodePort"}))).await;
    assert_eq!(np.code, 201, "{:?}", np.body);
    let port = np.body["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&port));
    let dup = api.post(SVCS, &svc("c", json!({"clusterIP": ip}))).await;
    assert_eq!(dup.code, 422, "{:?}", dup.body);
    assert_eq!(api.get(&format!("{SVCS}/c")).await.code, 404);
    let headless = api
        .post(SVCS, &svc("d", json!({"clusterIP": "None"})))
        .await;
    assert_eq!(headless.body["spec"]["clusterIP"], "None");
    let out_of_range = api
        .post(SVCS, &svc("f", json!({"clusterIP": "10.97.0.5"})))
        .await;
    assert_eq!(out_of_range.code, 422, "{:?}", out_of_range.body);
    assert_eq!(
        out_of_range.body["details"]["causes"][0]["field"], "spec.clusterIP",
        "{:?}",
        out_of_range.body
    );
    let taken_port = api
        .post(
            SVCS,
            &svc(
                "g",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}),
            ),
        )
        .await;
    assert_eq!(taken_port.code, 422, "{:?}", taken_port.body);
    // Turning a ClusterIP Service into a NodePort one allocates its node port; turning it back
    // releases it.
    let merge = "application/merge-patch+json";
    let to_np = api
        .patch(
            &format!("{SVCS}/a"),
            merge,
            r#"{"spec":{"type":"NodePort"}}"#,
        )
        .await;
    assert_eq!(to_np.code, 200, "{:?}", to_np.body);
    let a_port = to_np.body["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&a_port), "{a_port}");
    let back = api
        .patch(
            &format!("{SVCS}/a"),
            merge,
            r#"{"spec":{"type":"ClusterIP"}}"#,
        )
        .await;
    assert_eq!(back.code, 200, "{:?}", back.body);
    assert!(back.body["spec"]["ports"][0].get("nodePort").is_none());
    let reuse = api
        .post(
            SVCS,
            &svc(
                "h",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": a_port}]}),
            ),
        )
        .await;
    assert_eq!(reuse.code, 201, "{:?}", reuse.body);
    // Allocations survive a restart: what is taken stays taken.
    server.kill();
    server.spawn().await;
    let api = server.client();
    let after = api
        .post(SVCS, &svc("i", json!({"type": "NodePort", "clusterIP": ip, "ports": [{"port": 80, "nodePort": port}]})))
        .await;
    assert_eq!(after.code, 422, "{:?}", after.body);
    let taken_ip = api.post(SVCS, &svc("j", json!({"clusterIP": ip}))).await;
    assert_eq!(taken_ip.code, 422, "{:?}", taken_ip.body);
    // Deleting frees the address for reuse.
    api.delete(&format!("{SVCS}/a"), None).await;
    support::wait_for(
        "the ClusterIP to be released",
        Duration::from_secs(5),
        || {
            let api = api.clone();
            let ip = ip.clone();
            async move {
                let r = api.post(SVCS, &svc("e", json!({"clusterIP": ip}))).await;
                (r.code == 201).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn discovery_openapi_health_and_metrics() {
    let server = TestServer::start().await;
    let api = server.client();
    let v = api.get("/version").await.body;
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "33");
    for path in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(api.get(path).await.code, 200);
    }
    let core = api.get("/api/v1").await.body;
    let names: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for r in [
        "pods",
        "pods/status",
        "pods/eviction",
        "pods/binding",
        "services",
        "nodes",
        "namespaces",
        "events",
    ] {
        assert!(names.contains(&r), "{r} advertised");
    }
    let apps = api.get("/apis/apps/v1").await.body;
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale")
    );
    let groups = api.get("/apis").await.body;
    let group_names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "batch",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "autoscaling",
    ] {
        assert!(group_names.contains(&g), "{g}");
    }
    let agg = api
        .http
        .get(format!("{}/apis", api.base))
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert!(
        agg.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("APIGroupDiscoveryList")
    );
    assert_eq!(api.get("/openapi/v2").await.code, 404);
    let root = api.get("/openapi/v3").await.body;
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = api.get(&url).await.body;
    assert!(
        doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .any(|p| p["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment")
    );
    api.get(PODS).await;
    let metrics = api.get("/metrics").await.body;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("apiserver_request_total"),
        "{metrics}"
    );
}

async fn eviction_respects_disruption_budgets(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let api = server.client();
    api.post(PODS, &pod("victim")).await;
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    assert_eq!(
        api.post(
            "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
            &pdb
        )
        .await
        .code,
        201
    );
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "victim", "namespace": "default"}});
    let refused = api
        .post(&format!("{PODS}/victim/eviction"), &eviction)
        .await;
    assert_eq!(refused.code, 429, "{:?}", refused.body);
    api.delete(
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/keep",
        None,
    )
    .await;
    let ok = api
        .post(&format!("{PODS}/victim/eviction"), &eviction)
        .await;
    assert_eq!(ok.code, 201, "{:?}", ok.body);
    assert_eq!(api.get(&format!("{PODS}/victim")).await.code, 404);
}

/// Runs each scenario once per storage backend; every etcd run gets its own etcd.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend::Embedded).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test]
                async fn $name() {
                    let (etcd, _store) = crate::support::etcd::EtcdServer::start().await;
                    super::$name(super::Backend::Etcd(etcd.endpoint.clone())).await;
                }
            )*
        }
    };
}

on_both_backends!(
    crud_metadata_and_optimistic_concurrency,
    generation_names_and_namespaces,
    finalizers_and_graceful_pod_deletion,
    status_and_scale_subresources,
    every_patch_type_and_dry_run,
    selectors_paging_and_tables,
    watches_follow_resource_version_semantics,
    services_get_cluster_ips_and_node_ports,
    eviction_respects_disruption_budgets,
);

#[tokio::test]
async fn deletecollection_by_label() {
    let server = TestServer::start().await;
    let api = server.client();
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let cm = json!({"metadata": {"name": name, "labels": {"tier": tier}}});
        assert_eq!(api.post(CM, &cm).await.code, 201);
    }
    let r = api
        .delete(&format!("{CM}?labelSelector=tier%3Dx"), None)
        .await;
    assert_eq!(r.code, 200, "{:?}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let left = api.get(CM).await.body;
    let names: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c"]);
}

#[tokio::test]
async fn a_slow_watcher_neither_stalls_others_nor_is_buffered_forever() {
    let server = TestServer::start().await;
    let api = server.client();
    let start = rv(&api.get(CM).await.body);
    // The slow watcher never reads until all writes are done.
    let mut slow = api
        .watch(&format!("{CM}?watch=1&resourceVersion={start}"))
        .await;
    let mut fast = api
        .watch(&format!("{CM}?watch=1&resourceVersion={start}"))
        .await;
    let big = "x".repeat(2048);
    let total = 6000usize;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let api = api.clone();
            let big = big.clone();
            tokio::spawn(async move {
                for i in (w..total).step_by(8) {
                    let cm = json!({"metadata": {"name": format!("c{i}")}, "data": {"pad": big}});
                    assert_eq!(api.post(CM, &cm).await.code, 201);
                }
            })
        })
        .collect();
    let mut fast_seen = 0;
    while fast_seen < total {
        let ev = fast
            .next(Duration::from_secs(20))
            .await
            .expect("fast watcher keeps getting events");
        assert_eq!(ev["type"], "ADDED");
        fast_seen += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    // The server gave up on the slow watcher instead of buffering all of it: its stream ends
    // before delivering everything.
    let mut slow_seen = 0;
    while let Some(ev) = slow.next(Duration::from_secs(20)).await {
        assert_eq!(ev["type"], "ADDED");
        slow_seen += 1;
    }
    assert!(
        slow_seen < total,
        "the slow watcher's stream was ended ({slow_seen} of {total})"
    );
}
