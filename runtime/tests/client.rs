//! The client against a real `skiff server`: every verb, paging, the four patch types,
//! delete options, typed errors and watch.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runtime::request::Preconditions;
use runtime::{
    Api, DeleteOutcome, DeleteParams, ListParams, Patch, PatchParams, PostParams, ResourceInfo,
    WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use support::TestServer;

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([("app".to_string(), "t".to_string())])),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn typed_crud_patch_delete_and_errors() {
    let server = TestServer::start(&[]).await;
    let client = server.client();
    assert_eq!(client.default_namespace(), "default");
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());

    let owner = PostParams {
        field_manager: Some("creator".into()),
        ..PostParams::default()
    };
    let created = api.create(&owner, &cm("a", &[("k", "1")])).await.unwrap();
    assert!(created.metadata.resource_version.is_some());
    let err = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "{err}");

    let err = api.get("missing").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let status = err.status().unwrap();
    assert_eq!(status.code, 404);
    assert!(status.message.contains("missing"), "{}", status.message);
    assert!(api.get_opt("missing").await.unwrap().is_none());

    // Replace with a stale resourceVersion is a conflict.
    let mut fresh = api.get("a").await.unwrap();
    fresh.data = Some(BTreeMap::from([("k".into(), "2".into())]));
    let replaced = api.replace("a", &owner, &fresh).await.unwrap();
    let err = api.replace("a", &owner, &fresh).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");

    // Invalid objects come back as 422 with causes.
    let err = api
        .create(&PostParams::default(), &cm("Not_Valid", &[]))
        .await
        .unwrap_err();
    assert!(err.is_invalid(), "{err}");

    // The four patch types.
    let p = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data.as_ref().unwrap()["m"], "1");
    let p = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"s": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data.as_ref().unwrap()["s"], "1");
    let p = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Json(json!([{"op": "add", "path": "/data/j", "value": "1"}])),
        )
        .await
        .unwrap();
    assert_eq!(p.data.as_ref().unwrap()["j"], "1");
    let apply = json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "a"}, "data": {"k": "applied"}});
    let err = api
        .patch(
            "a",
            &PatchParams::apply("tester"),
            &Patch::Apply(apply.clone()),
        )
        .await
        .unwrap_err();
    assert!(
        err.is_conflict(),
        "apply over another manager's field conflicts: {err}"
    );
    let p = api
        .patch(
            "a",
            &PatchParams::apply("tester").force(),
            &Patch::Apply(apply),
        )
        .await
        .unwrap();
    assert_eq!(p.data.as_ref().unwrap()["k"], "applied");
    assert!(
        p.metadata
            .managed_fields
            .unwrap()
            .iter()
            .any(|m| m.manager.as_deref() == Some("tester"))
    );

    // Delete with a wrong precondition fails, then succeeds.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: replaced.metadata.resource_version.clone(),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    let err = api.delete("a", &dp).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    match api.delete("a", &DeleteParams::background()).await.unwrap() {
        DeleteOutcome::Object(o) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        DeleteOutcome::Status(s) => assert!(s.is_success()),
    }
    assert!(api.get("a").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn paging_follows_continue_and_dynamic_api() {
    let server = TestServer::start(&[]).await;
    let client = server.client();
    let info = ResourceInfo::new("", "v1", "configmaps", "ConfigMap", true);
    let dynamic = Api::dynamic(client.clone(), info, Some("default"));
    for i in 0..25 {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": format!("p{i:02}"), "labels": {"even": (i % 2 == 0).to_string()}}});
        dynamic.create(&PostParams::default(), &obj).await.unwrap();
    }
    let page = dynamic
        .list(&ListParams::default().limit(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
    assert!(page.metadata.continue_.is_some());
    let all = dynamic
        .list_all(&ListParams::default().limit(7))
        .await
        .unwrap();
    let names: Vec<String> = all
        .items
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(names, want);
    let even = dynamic
        .list_all(&ListParams::default().labels("even=true").limit(4))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 13);

    // Cluster-wide typed list sees the same objects.
    let all_ns: Api<ConfigMap> = Api::all(client.clone());
    let listed = all_ns
        .list_all(&ListParams::default().fields("metadata.namespace=default"))
        .await
        .unwrap();
    assert!(listed.items.len() >= 25);

    let deleted = dynamic
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("even=false"),
        )
        .await
        .unwrap();
    assert_eq!(deleted.items.len(), 12);
    let left: Value = client
        .get_raw("/api/v1/namespaces/default/configmaps")
        .await
        .unwrap();
    assert_eq!(left["items"].as_array().unwrap().len(), 13);
}

#[tokio::test]
async fn watch_streams_typed_events_and_410() {
    let server = TestServer::start(&["--history", "5", "--bookmark-interval", "1"]).await;
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = api
        .create(&PostParams::default(), &cm("w", &[]))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watch events in time")
            .expect("stream open")
            .expect("decodable event");
        match ev {
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(b) => {
                assert!(!b.metadata.resource_version.is_empty());
                seen.push(("BOOKMARK", String::new()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen[0], ("MODIFIED", "w".to_string()));
    assert!(seen.contains(&("DELETED", "w".to_string())));

    // Push the history past `rv`, then a watch from it must report 410.
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("h{i}"), &[]))
            .await
            .unwrap();
    }
    match api.watch(&WatchParams::default(), &rv).await {
        Err(e) => assert!(e.is_gone(), "{e}"),
        Ok(mut s) => {
            let ev = tokio::time::timeout(Duration::from_secs(10), s.next())
                .await
                .unwrap();
            assert!(
                matches!(&ev, Some(Ok(WatchEvent::Error(st))) if st.code == 410),
                "expected a 410, got {ev:?}"
            );
        }
    }
}
