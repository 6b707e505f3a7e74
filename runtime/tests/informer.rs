//! Informers against a real `skiff server`: the cache equals the server's state after a
//! burst of 10,000 changes, after a server restart, and after a forced 410 re-list; the events
//! handlers receive rebuild exactly the same state.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runtime::informer::{Event, Informer, InformerConfig, SharedInformerFactory, object_key};
use runtime::{Api, Client, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Proxy, TestServer, wait_for};

type Snapshot = BTreeMap<String, (String, Option<BTreeMap<String, String>>)>;

fn snapshot<'a>(items: impl IntoIterator<Item = &'a ConfigMap>) -> Snapshot {
    items
        .into_iter()
        .map(|cm| {
            (
                object_key(&cm.metadata),
                (
                    cm.metadata.resource_version.clone().unwrap_or_default(),
                    cm.data.clone(),
                ),
            )
        })
        .collect()
}

/// A map rebuilt only from handler events, to check that handlers see every change.
fn mirror(informer: &Informer<ConfigMap>) -> Arc<Mutex<HashMap<String, ConfigMap>>> {
    let m = Arc::new(Mutex::new(HashMap::new()));
    let m2 = m.clone();
    informer.add_handler(move |ev: &Event<ConfigMap>| {
        let mut m = m2.lock().unwrap();
        match ev {
            Event::Added(o) | Event::Resync(o) | Event::Updated { new: o, .. } => {
                m.insert(object_key(&o.metadata), (**o).clone());
            }
            Event::Deleted(o) => {
                m.remove(&object_key(&o.metadata));
            }
        }
    });
    m
}

/// Waits until the informer's cache (and the handler mirror) equal the server's state.
async fn assert_converges(
    what: &str,
    server: &Client,
    informer: &Informer<ConfigMap>,
    mirrored: &Mutex<HashMap<String, ConfigMap>>,
) -> usize {
    let api: Api<ConfigMap> = Api::all(server.clone());
    let mut last = (0, 0, 0);
    let ok = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let truth = snapshot(
                &api.list_all(&ListParams::default().limit(1000))
                    .await
                    .expect("list from server")
                    .items,
            );
            let cached: Vec<ConfigMap> = informer
                .store()
                .list()
                .iter()
                .map(|o| (**o).clone())
                .collect();
            let cached = snapshot(&cached);
            let mirrored = snapshot(mirrored.lock().unwrap().values());
            if truth == cached && truth == mirrored {
                return truth.len();
            }
            last = (truth.len(), cached.len(), mirrored.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    match ok {
        Ok(n) => n,
        Err(_) => {
            panic!("{what}: cache never matched the server (server, cache, mirror sizes: {last:?})")
        }
    }
}

fn cm(name: &str, v: u64) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("v".to_string(), v.to_string())])),
        ..ConfigMap::default()
    }
}

/// Runs `changes` successful creates/updates/deletes spread over `tasks` tasks, each on its
/// own names so it knows which operation will succeed.
async fn churn(client: &Client, tasks: usize, changes: usize, names_per_task: usize, tag: &str) {
    let per_task = changes / tasks;
    let mut joins = Vec::new();
    for t in 0..tasks {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let tag = tag.to_string();
        joins.push(tokio::spawn(async move {
            let mut exists = vec![false; names_per_task];
            for i in 0..per_task {
                let slot = rand::random_range(0..names_per_task);
                let name = format!("{tag}-t{t}-{slot}");
                if !exists[slot] {
                    api.create(&PostParams::default(), &cm(&name, i as u64))
                        .await
                        .unwrap();
                    exists[slot] = true;
                } else if rand::random_bool(0.7) {
                    let patch = Patch::Merge(json!({"data": {"v": i.to_string()}}));
                    api.patch(&name, &PatchParams::default(), &patch)
                        .await
                        .unwrap();
                } else {
                    api.delete(&name, &DeleteParams::default()).await.unwrap();
                    exists[slot] = false;
                }
            }
        }));
    }
    for j in joins {
        j.await.expect("churn task");
    }
}

fn fast_config() -> InformerConfig {
    InformerConfig {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..InformerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_matches_server_after_10000_changes() {
    let server = TestServer::start(&[]).await;
    let client = server.client();
    let factory = SharedInformerFactory::new(client.clone(), fast_config());
    let informer = factory.informer::<ConfigMap>();
    assert!(
        Arc::ptr_eq(&informer, &factory.informer::<ConfigMap>()),
        "one informer per type"
    );
    factory
        .wait_for_sync(Duration::from_secs(10))
        .await
        .unwrap();
    let mirrored = mirror(&informer);

    churn(&client, 8, 10_000, 40, "burst").await;
    let n = assert_converges("after 10,000 changes", &client, &informer, &mirrored).await;
    assert!(n > 0);
    let stats = informer.stats();
    assert_eq!(
        stats.expired, 0,
        "default history covers the burst: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_matches_server_after_restart() {
    let mut server = TestServer::start(&[]).await;
    let client = server.client();
    let informer = Informer::new(
        Api::<ConfigMap>::all(client.clone()),
        ListParams::default(),
        fast_config(),
    );
    informer
        .wait_for_sync(Duration::from_secs(10))
        .await
        .unwrap();
    let mirrored = mirror(&informer);
    churn(&client, 4, 400, 30, "before").await;
    assert_converges("before the restart", &client, &informer, &mirrored).await;

    server.kill();
    server.spawn().await;
    churn(&client, 4, 400, 30, "after").await;
    assert_converges("after the restart", &client, &informer, &mirrored).await;
    let stats = informer.stats();
    assert!(stats.watches >= 2, "the informer reconnected: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_matches_server_after_forced_410() {
    let server = TestServer::start(&["--history", "5"]).await;
    let direct = server.client();
    let proxy = Proxy::start(server.addr()).await;
    let via_proxy = server.client_via(&proxy.addr);
    let informer = Informer::new(
        Api::<ConfigMap>::all(via_proxy.clone()),
        ListParams::default(),
        fast_config(),
    );
    informer
        .wait_for_sync(Duration::from_secs(10))
        .await
        .unwrap();
    let mirrored = mirror(&informer);
    churn(&direct, 2, 100, 20, "early").await;
    assert_converges("before the partition", &direct, &informer, &mirrored).await;
    let before = informer.stats();

    // Cut the informer off while the server moves far past its 5 revisions of history.
    // Deletions and updates of objects it has cached must show up after the re-list.
    proxy.partition();
    let api: Api<ConfigMap> = Api::namespaced(direct.clone(), "default");
    let early = api.list_all(&ListParams::default()).await.unwrap().items;
    assert!(early.len() > 5);
    for (i, o) in early.iter().enumerate() {
        let name = o.metadata.name.as_deref().unwrap();
        if i % 2 == 0 {
            api.delete(name, &DeleteParams::default()).await.unwrap();
        } else {
            let patch = Patch::Merge(json!({"data": {"v": "changed"}}));
            api.patch(name, &PatchParams::default(), &patch)
                .await
                .unwrap();
        }
    }
    churn(&direct, 2, 200, 20, "cut").await;
    proxy.heal();

    assert_converges("after the 410", &direct, &informer, &mirrored).await;
    let after = informer.stats();
    assert!(
        after.expired > before.expired,
        "a 410 was seen: {before:?} -> {after:?}"
    );
    assert!(
        after.lists > before.lists,
        "the informer re-listed: {before:?} -> {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_handlers_get_a_replay_and_resync_redelivers() {
    let server = TestServer::start(&[]).await;
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("r{i}"), 0))
            .await
            .unwrap();
    }
    let config = InformerConfig {
        resync: Some(Duration::from_millis(300)),
        ..fast_config()
    };
    let informer = Informer::new(api.clone(), ListParams::default(), config);
    informer
        .wait_for_sync(Duration::from_secs(10))
        .await
        .unwrap();
    let mut events = informer.events();
    let mut added = Vec::new();
    for _ in 0..5 {
        match events.recv().await.unwrap() {
            Event::Added(o) => added.push(o.metadata.name.clone().unwrap()),
            other => panic!("expected a replayed Added, got {other:?}"),
        }
    }
    added.sort();
    assert_eq!(added, ["r0", "r1", "r2", "r3", "r4"]);
    let resynced = wait_for("a resync event", Duration::from_secs(5), || {
        let ev = events.try_recv().ok();
        async move { ev.filter(|e| matches!(e, Event::Resync(_))) }
    })
    .await;
    assert!(resynced.key().starts_with("default/r"));
}
