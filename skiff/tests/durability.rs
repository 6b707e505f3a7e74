//! Crashes and restarts lose no acknowledged write, and watchers see every change exactly once.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, TestServer, etcd::EtcdServer};

const CM: &str = "/api/v1/namespaces/default/configmaps";

async fn acknowledged_writes_survive_kill_9(backend: Backend) {
    let mut server = TestServer::start_with(backend, &[]).await;
    let api = server.client();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let api = api.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let body = json!({"metadata": {"name": name}, "data": {"i": i.to_string()}});
                let sent = api
                    .http
                    .post(format!("{}{CM}", api.base))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().as_u16() == 201 => acked.lock().unwrap().push(name),
                    _ => return,
                }
            }
        }));
    }
    support::wait_for("400 acknowledged writes", Duration::from_secs(60), || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 400).then_some(()) }
    })
    .await;
    server.kill();
    for w in writers {
        let _ = w.await;
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    server.spawn().await;
    let list = server.client().get(CM).await;
    assert_eq!(list.code, 200);
    let stored: BTreeSet<String> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    assert!(acked.len() >= 400);
}

#[tokio::test]
async fn embedded_acknowledged_writes_survive_kill_9() {
    acknowledged_writes_survive_kill_9(Backend::Embedded).await;
}

#[tokio::test]
async fn etcd_acknowledged_writes_survive_kill_9() {
    let (etcd, _store) = EtcdServer::start().await;
    acknowledged_writes_survive_kill_9(Backend::Etcd(etcd.endpoint.clone())).await;
}

/// A client that watches like an informer: resumes from its last revision after a disconnect,
/// re-lists after 410. Records every value of `data.n` it sees for the `counter` ConfigMap.
async fn follow(
    api: support::Api,
    start_rv: String,
    seen: Arc<Mutex<Vec<i64>>>,
    relists: Arc<Mutex<u32>>,
) {
    let mut rv = start_rv;
    loop {
        let resp = api
            .http
            .get(format!(
                "{}{CM}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true",
                api.base
            ))
            .send()
            .await;
        let Ok(mut resp) = resp else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if resp.status().as_u16() == 410 {
            *relists.lock().unwrap() += 1;
            let list: Value = match api.http.get(format!("{}{CM}", api.base)).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => continue,
            };
            if let Some(r) = list["metadata"]["resourceVersion"].as_str() {
                rv = r.to_string();
            }
            continue;
        }
        if !resp.status().is_success() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut buf = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let ev: Value = serde_json::from_slice(&line).expect("event JSON");
                if let Some(r) = ev["object"]["metadata"]["resourceVersion"].as_str() {
                    rv = r.to_string();
                }
                if ev["type"] == "MODIFIED" && ev["object"]["metadata"]["name"] == "counter" {
                    let n: i64 = ev["object"]["data"]["n"].as_str().unwrap().parse().unwrap();
                    seen.lock().unwrap().push(n);
                    if n == 200 {
                        return;
                    }
                }
            }
        }
    }
}

async fn watch_sees_every_change_once_across_restart(backend: Backend) {
    let mut server = TestServer::start_with(backend, &[]).await;
    let api = server.client();
    let created = api
        .post(
            CM,
            &json!({"metadata": {"name": "counter"}, "data": {"n": "0"}}),
        )
        .await;
    assert_eq!(created.code, 201);
    let start_rv = created.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let relists = Arc::new(Mutex::new(0));
    let watcher = tokio::spawn(follow(api.clone(), start_rv, seen.clone(), relists.clone()));
    let patch = |n: i64| format!("{{\"data\":{{\"n\":\"{n}\"}}}}");
    for n in 1..=100 {
        let r = api
            .patch(
                &format!("{CM}/counter"),
                "application/merge-patch+json",
                &patch(n),
            )
            .await;
        assert_eq!(r.code, 200);
    }
    assert!(
        server.terminate(),
        "the server shut down cleanly on SIGTERM"
    );
    server.spawn().await;
    for n in 101..=200 {
        let r = api
            .patch(
                &format!("{CM}/counter"),
                "application/merge-patch+json",
                &patch(n),
            )
            .await;
        assert_eq!(r.code, 200);
    }
    tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("the watcher saw the last change")
        .expect("watcher task");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        (1..=200).collect::<Vec<i64>>(),
        "every change exactly once, in order"
    );
    assert_eq!(
        *relists.lock().unwrap(),
        0,
        "resumed from its revision without re-listing"
    );
}

#[tokio::test]
async fn embedded_watch_sees_every_change_once_across_restart() {
    watch_sees_every_change_once_across_restart(Backend::Embedded).await;
}

#[tokio::test]
async fn etcd_watch_sees_every_change_once_across_restart() {
    let (etcd, _store) = EtcdServer::start().await;
    watch_sees_every_change_once_across_restart(Backend::Etcd(etcd.endpoint.clone())).await;
}
