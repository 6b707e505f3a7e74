//! A controller built on the harness, against a real `skiff server`: a fan-out controller
//! keeps `data.replicas` child ConfigMaps (created with generateName, so a stale cache would
//! create too many) per parent and then writes a status annotation. Every parent must see
//! exactly as many creates, deletes and status writes as its changes need.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runtime::controller::{Controller, ControllerConfig, Expect, Reconciler};
use runtime::informer::{Event, Informer, InformerConfig, Store, object_key};
use runtime::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{TestServer, wait_for};

const PARENT_LABEL: &str = "fanout/parent";
const STATUS: &str = "fanout/ready";

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    creates: usize,
    deletes: usize,
    status_writes: usize,
}

struct FanOut {
    api: Api<ConfigMap>,
    store: Store<ConfigMap>,
    counts: Mutex<HashMap<String, Counts>>,
}

struct Observed {
    want: Option<usize>,
    status: Option<String>,
    children: Vec<String>,
}

#[derive(Debug)]
enum Action {
    Create,
    Delete(String),
    SetStatus(usize),
}

impl Reconciler for FanOut {
    type Key = String;
    type Observed = Observed;
    type Action = Action;

    fn observe(&self, key: &String) -> Observed {
        let parent = self.store.get(key);
        let name = key.split('/').nth(1).unwrap_or_default();
        let mut children: Vec<String> = self
            .store
            .by_index(PARENT_LABEL, name)
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        children.sort();
        Observed {
            want: parent
                .as_ref()
                .and_then(|p| p.data.as_ref()?.get("replicas")?.parse().ok()),
            status: parent.and_then(|p| p.metadata.annotations.as_ref()?.get(STATUS).cloned()),
            children,
        }
    }

    fn plan(&self, _key: &String, o: &Observed) -> Vec<Action> {
        let Some(want) = o.want else {
            return Vec::new();
        };
        let have = o.children.len();
        if have < want {
            (have..want).map(|_| Action::Create).collect()
        } else if have > want {
            o.children[want..]
                .iter()
                .cloned()
                .map(Action::Delete)
                .collect()
        } else if o.status.as_deref() != Some(&want.to_string()) {
            vec![Action::SetStatus(want)]
        } else {
            Vec::new()
        }
    }

    fn expects(&self, a: &Action) -> Expect {
        match a {
            Action::Create => Expect::Create,
            Action::Delete(_) => Expect::Delete,
            Action::SetStatus(_) => Expect::Update,
        }
    }

    async fn apply(&self, key: &String, a: Action) -> runtime::Result<()> {
        let name = key.split('/').nth(1).unwrap_or_default().to_string();
        match &a {
            Action::Create => {
                let child = ConfigMap {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        labels: Some(BTreeMap::from([(PARENT_LABEL.to_string(), name.clone())])),
                        ..ObjectMeta::default()
                    },
                    ..ConfigMap::default()
                };
                self.api.create(&PostParams::default(), &child).await?;
            }
            Action::Delete(child) => {
                self.api.delete(child, &DeleteParams::default()).await?;
            }
            Action::SetStatus(n) => {
                let patch =
                    Patch::Merge(json!({"metadata": {"annotations": {STATUS: n.to_string()}}}));
                self.api
                    .patch(&name, &PatchParams::default(), &patch)
                    .await?;
            }
        }
        let mut counts = self.counts.lock().unwrap();
        let c = counts.entry(key.clone()).or_default();
        match a {
            Action::Create => c.creates += 1,
            Action::Delete(_) => c.deletes += 1,
            Action::SetStatus(_) => c.status_writes += 1,
        }
        Ok(())
    }
}

fn parent_of(cm: &ConfigMap) -> Option<String> {
    let p = cm.metadata.labels.as_ref()?.get(PARENT_LABEL)?;
    Some(format!(
        "{}/{p}",
        cm.metadata.namespace.as_deref().unwrap_or_default()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_controller_acts_exactly_as_often_as_needed() {
    let server = TestServer::start(&[]).await;
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let informer = Informer::new(
        api.clone(),
        ListParams::default(),
        InformerConfig::default(),
    );
    informer.store().add_indexer(
        PARENT_LABEL,
        Arc::new(|cm: &ConfigMap| {
            cm.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(PARENT_LABEL).cloned())
                .into_iter()
                .collect()
        }),
    );
    informer
        .wait_for_sync(Duration::from_secs(10))
        .await
        .unwrap();
    let controller = Controller::new(
        FanOut {
            api: api.clone(),
            store: informer.store().clone(),
            counts: Mutex::new(HashMap::new()),
        },
        ControllerConfig {
            workers: 4,
            ..ControllerConfig::default()
        },
    );
    {
        let c = controller.clone();
        informer.add_handler(move |ev: &Event<ConfigMap>| {
            let obj = ev.object();
            match parent_of(obj) {
                Some(parent) => {
                    match ev {
                        Event::Added(_) => c.expectations().observed(&parent, Expect::Create),
                        Event::Deleted(_) => c.expectations().observed(&parent, Expect::Delete),
                        _ => {}
                    }
                    c.queue().add(parent);
                }
                None => {
                    let key = object_key(&obj.metadata);
                    match ev {
                        Event::Updated { old, new } => {
                            let status = |o: &ConfigMap| {
                                o.metadata
                                    .annotations
                                    .as_ref()
                                    .and_then(|a| a.get(STATUS).cloned())
                            };
                            if status(old) != status(new) {
                                c.expectations().observed(&key, Expect::Update);
                            }
                        }
                        Event::Deleted(_) => c.expectations().forget(&key),
                        _ => {}
                    }
                    c.queue().add(key);
                }
            }
        });
    }
    let runner = {
        let c = controller.clone();
        tokio::spawn(async move { c.run().await })
    };

    const PARENTS: usize = 20;
    for i in 0..PARENTS {
        let parent = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("p{i}")),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("replicas".to_string(), "3".to_string())])),
            ..ConfigMap::default()
        };
        api.create(&PostParams::default(), &parent).await.unwrap();
    }
    let settled = |want: &'static str| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let all = api.list_all(&ListParams::default()).await.ok()?.items;
                let ready = all
                    .iter()
                    .filter(|c| {
                        c.metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(STATUS))
                            .map(String::as_str)
                            == Some(want)
                    })
                    .count();
                (ready == PARENTS).then_some(all)
            }
        }
    };
    let all = wait_for(
        "every parent to report 3 ready",
        Duration::from_secs(60),
        settled("3"),
    )
    .await;
    let children = all.iter().filter(|c| parent_of(c).is_some()).count();
    assert_eq!(children, PARENTS * 3, "exactly three children each");
    let counts = controller.reconciler().counts.lock().unwrap().clone();
    for i in 0..PARENTS {
        let c = counts[&format!("default/p{i}")];
        assert_eq!(
            c,
            Counts {
                creates: 3,
                deletes: 0,
                status_writes: 1
            },
            "p{i}"
        );
    }

    // Scale every parent down to one.
    for i in 0..PARENTS {
        let patch = Patch::Merge(json!({"data": {"replicas": "1"}}));
        api.patch(&format!("p{i}"), &PatchParams::default(), &patch)
            .await
            .unwrap();
    }
    let all = wait_for(
        "every parent to report 1 ready",
        Duration::from_secs(60),
        settled("1"),
    )
    .await;
    assert_eq!(
        all.iter().filter(|c| parent_of(c).is_some()).count(),
        PARENTS
    );
    // Let late events drain, then check that nothing more was done.
    wait_for("the queue to drain", Duration::from_secs(10), || {
        let empty = controller.queue().is_empty();
        async move { empty.then_some(()) }
    })
    .await;
    controller.shut_down().await;
    runner.await.unwrap();
    let counts = controller.reconciler().counts.lock().unwrap().clone();
    for i in 0..PARENTS {
        let c = counts[&format!("default/p{i}")];
        assert_eq!(
            c,
            Counts {
                creates: 3,
                deletes: 2,
                status_writes: 2
            },
            "p{i}"
        );
    }
}
