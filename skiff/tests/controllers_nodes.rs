//! The Endpoints, EndpointSlice and node lifecycle controllers inside a real `skiff server`
//! (short node timings), with simulated nodes in the test process: Services publish their
//! ready and not-ready pods with named ports resolved per pod; a node that stops renewing its
//! Lease turns Unknown, gets tainted, its pods turn not ready and are evicted after their
//! (server-defaulted) toleration; when it comes back the taints go.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Event, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubelet::simulated::{Fleet, FleetConfig};
use runtime::{Api, Client, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{SHORT_TIMINGS, TestServer, wait_for};

/// Simulated nodes `n-0`, `n-1`, ... renewing their Leases every second.
async fn fleet(client: &Client, nodes: usize) -> Fleet {
    Fleet::start(
        client.clone(),
        FleetConfig {
            nodes,
            name_prefix: "n-".into(),
            lease_interval: Duration::from_secs(1),
            ..FleetConfig::default()
        },
    )
    .await
    .expect("start simulated fleet")
}

/// A pod of app `app` bound to `node`, serving the named container `ports` (name, number).
fn pod(name: &str, app: &str, node: &str, ports: &[(&str, i32)]) -> Pod {
    let ports: Vec<_> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "containerPort": p}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx", "ports": ports}]},
    }))
    .expect("pod")
}

async fn create_pods(api: &Api<Pod>, pods: &[Pod]) {
    for p in pods {
        api.create(&PostParams::default(), p)
            .await
            .expect("create pod");
    }
}

fn pod_ip(p: &Pod) -> Option<String> {
    p.status.as_ref()?.pod_ip.clone()
}

fn is_ready(p: &Pod) -> bool {
    runtime::objects::is_pod_ready(p)
}

/// Waits until every named pod runs with an IP and is ready; returns name → IP.
async fn wait_running(
    api: &Api<Pod>,
    names: &[&str],
) -> std::collections::BTreeMap<String, String> {
    wait_for("pods to run", Duration::from_secs(30), || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let ips: std::collections::BTreeMap<String, String> = list
            .items
            .iter()
            .filter(|p| is_ready(p))
            .filter_map(|p| Some((p.metadata.name.clone()?, pod_ip(p)?)))
            .collect();
        names.iter().all(|n| ips.contains_key(*n)).then_some(ips)
    })
    .await
}

/// (port names and numbers, ready IPs, not-ready IPs) of every subset.
type SubsetView = (Vec<(String, i32)>, Vec<String>, Vec<String>);

fn subsets_view(ep: &Endpoints) -> BTreeSet<SubsetView> {
    ep.subsets
        .iter()
        .flatten()
        .map(|s| {
            let ports = s
                .ports
                .iter()
                .flatten()
                .map(|p| (p.name.clone().unwrap_or_default(), p.port))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let ips = |v: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
                let mut ips: Vec<String> = v.iter().flatten().map(|a| a.ip.clone()).collect();
                ips.sort();
                ips
            };
            (ports, ips(&s.addresses), ips(&s.not_ready_addresses))
        })
        .collect()
}

/// (ip, ready, serving, terminating, pod name) of every endpoint of the Service's slices.
fn slice_view(slices: &[EndpointSlice]) -> BTreeSet<(String, bool, bool, bool, String)> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (
                e.addresses[0].clone(),
                c.ready == Some(true),
                c.serving == Some(true),
                c.terminating == Some(true),
                e.target_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

async fn slices_of(api: &Api<EndpointSlice>, service: &str) -> Vec<EndpointSlice> {
    api.list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Services publish ready pods as addresses and the rest as not ready, each pod only on the
/// named ports it has; a pod turned not ready (status patched, and the simulated node leaves
/// it so) moves; deleted pods and Services take their endpoints with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_pods_and_named_ports() {
    let server = TestServer::start_server_with(&SHORT_TIMINGS).await;
    let c = server.runtime_client();
    let _fleet = fleet(&c, 2).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let services: Api<Service> = Api::namespaced(c.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(c.clone(), "default");

    create_pods(
        &pods,
        &[
            pod("web-0", "web", "n-0", &[("http", 8080)]),
            pod("web-1", "web", "n-1", &[("http", 8080)]),
            pod("web-2", "web", "n-1", &[("http", 8080), ("metrics", 9100)]),
            pod("db-0", "db", "n-0", &[("http", 8080)]),
        ],
    )
    .await;
    let ips = wait_running(&pods, &["web-0", "web-1", "web-2", "db-0"]).await;
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": "metrics"},
        ]},
    }))
    .unwrap();
    let svc = services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");

    let http = || vec![("http".to_string(), 8080)];
    let both = || vec![("http".to_string(), 8080), ("metrics".to_string(), 9100)];
    let mut web01 = vec![ips["web-0"].clone(), ips["web-1"].clone()];
    web01.sort();
    let want = BTreeSet::from([
        (http(), web01.clone(), vec![]),
        (both(), vec![ips["web-2"].clone()], vec![]),
    ]);
    let ep = wait_for("endpoints of web", Duration::from_secs(20), || async {
        let ep = endpoints.get_opt("web").await.ok()??;
        (subsets_view(&ep) == want).then_some(ep)
    })
    .await;
    assert_eq!(
        ep.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("front"),
        "the Service's labels are copied"
    );
    assert!(
        ep.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("endpoints.kubernetes.io/last-change-trigger-time")),
        "{:?}",
        ep.metadata.annotations
    );
    let addr = ep
        .subsets
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .find(|a| a.ip == ips["web-0"])
        .unwrap()
        .clone();
    assert_eq!(addr.node_name.as_deref(), Some("n-0"));
    assert_eq!(
        addr.target_ref.as_ref().and_then(|r| r.name.as_deref()),
        Some("web-0")
    );

    // The slices: managed, owned by the Service, one per port set, every pod ready.
    let all_ready = BTreeSet::from([
        (ips["web-0"].clone(), true, true, false, "web-0".to_string()),
        (ips["web-1"].clone(), true, true, false, "web-1".to_string()),
        (ips["web-2"].clone(), true, true, false, "web-2".to_string()),
    ]);
    let got = wait_for(
        "endpoint slices of web",
        Duration::from_secs(20),
        || async {
            let got = slices_of(&slices, "web").await;
            (slice_view(&got) == all_ready).then_some(got)
        },
    )
    .await;
    assert_eq!(got.len(), 2, "one slice per port set: {got:#?}");
    for s in &got {
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("endpointslice.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("endpointslice-controller.k8s.io")
        );
        assert_eq!(s.address_type, "IPv4");
        let owner = &s.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Service", svc.metadata.uid.as_deref().unwrap())
        );
        let ports = s.ports.iter().flatten().count();
        assert_eq!(ports, if s.endpoints.len() == 2 { 1 } else { 2 }, "{s:#?}");
    }

    // web-1 turns not ready.
    pods.patch_status(
        "web-1",
        &PatchParams::default(),
        &Patch::Strategic(
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        ),
    )
    .await
    .expect("patch web-1 not ready");
    let want = BTreeSet::from([
        (
            http(),
            vec![ips["web-0"].clone()],
            vec![ips["web-1"].clone()],
        ),
        (both(), vec![ips["web-2"].clone()], vec![]),
    ]);
    wait_for(
        "web-1 in notReadyAddresses",
        Duration::from_secs(20),
        || async {
            let ep = endpoints.get_opt("web").await.ok()??;
            (subsets_view(&ep) == want).then_some(())
        },
    )
    .await;
    wait_for(
        "web-1 not ready in its slice",
        Duration::from_secs(20),
        || async {
            let view = slice_view(&slices_of(&slices, "web").await);
            view.contains(&(
                ips["web-1"].clone(),
                false,
                false,
                false,
                "web-1".to_string(),
            ))
            .then_some(())
        },
    )
    .await;
    // The simulated node leaves a running pod's readiness as it is.
    assert!(!is_ready(&pods.get("web-1").await.unwrap()));
    // The real kubectl reads the slices: ready endpoints per Service port.
    let out = server.kubectl(&["describe", "svc", "web"]);
    let lines: Vec<&str> = out
        .ok()
        .lines()
        .filter_map(|l| l.strip_prefix("Endpoints:"))
        .map(str::trim)
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    let mut http_eps: Vec<&str> = lines[0].split(',').collect();
    http_eps.sort();
    let mut want_http = vec![
        format!("{}:8080", ips["web-0"]),
        format!("{}:8080", ips["web-2"]),
    ];
    want_http.sort();
    assert_eq!(http_eps, want_http, "{}", out.stdout);
    assert_eq!(lines[1], format!("{}:9100", ips["web-2"]), "{}", out.stdout);

    // web-0 deleted: its address goes.
    pods.delete("web-0", &DeleteParams::default())
        .await
        .expect("delete web-0");
    let want = BTreeSet::from([
        (http(), vec![], vec![ips["web-1"].clone()]),
        (both(), vec![ips["web-2"].clone()], vec![]),
    ]);
    wait_for(
        "web-0 gone from the endpoints",
        Duration::from_secs(20),
        || async {
            let ep = endpoints.get_opt("web").await.ok()??;
            (subsets_view(&ep) == want).then_some(())
        },
    )
    .await;
    wait_for(
        "web-0 gone from the slices",
        Duration::from_secs(20),
        || async {
            let view = slice_view(&slices_of(&slices, "web").await);
            (view.len() == 2 && !view.iter().any(|e| e.4 == "web-0")).then_some(())
        },
    )
    .await;

    // A Service without selector is left alone: no Endpoints, no slices.
    let manual: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "manual", "namespace": "default"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &manual)
        .await
        .expect("create manual");

    // The Service goes: its Endpoints and slices follow.
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete service");
    wait_for(
        "endpoints and slices of web deleted",
        Duration::from_secs(20),
        || async {
            let ep = endpoints.get_opt("web").await.ok()?;
            (ep.is_none() && slices_of(&slices, "web").await.is_empty()).then_some(())
        },
    )
    .await;
    assert!(endpoints.get_opt("manual").await.unwrap().is_none());
    assert!(slices_of(&slices, "manual").await.is_empty());
}

fn condition<'a>(
    node: &'a Node,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn taints(node: &Node) -> Vec<k8s_openapi::api::core::v1::Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

async fn events(client: &Client, reason: &str, object: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason) && e.involved_object.name.as_deref() == Some(object)
        })
        .collect()
}

/// A node that stops renewing its Lease turns Unknown and gets the unreachable taints; its
/// pods turn not ready and, after the 3 s default toleration, are evicted (a pod tolerating
/// longer stays); the other node is untouched. When the node comes back the taints go and it
/// is Ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_tainted_and_its_pods_evicted() {
    let server = TestServer::start_server_with(&SHORT_TIMINGS).await;
    let c = server.runtime_client();
    let fleet = fleet(&c, 2).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let nodes: Api<Node> = Api::all(c.clone());

    let mut patient = pod("patient", "web", "n-0", &[]);
    patient.spec.as_mut().unwrap().tolerations = Some(vec![
        serde_json::from_value(json!({
            "key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 3600,
        }))
        .unwrap(),
    ]);
    create_pods(
        &pods,
        &[
            pod("doomed-0", "web", "n-0", &[]),
            pod("doomed-1", "web", "n-0", &[]),
            patient,
            pod("bystander", "web", "n-1", &[]),
        ],
    )
    .await;
    let ips = wait_running(&pods, &["doomed-0", "doomed-1", "patient", "bystander"]).await;
    // The server added the default tolerations with --default-toleration-seconds.
    let doomed = pods.get("doomed-0").await.unwrap();
    let defaults: Vec<(String, Option<i64>)> = doomed
        .spec
        .unwrap()
        .tolerations
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.toleration_seconds))
        .collect();
    assert_eq!(
        defaults,
        vec![
            ("node.kubernetes.io/not-ready".to_string(), Some(3)),
            ("node.kubernetes.io/unreachable".to_string(), Some(3)),
        ]
    );
    // Healthy nodes carry no taints of the controller.
    assert!(taints(&nodes.get("n-0").await.unwrap()).is_empty());

    assert!(fleet.stop_node("n-0"));
    let node = wait_for(
        "n-0 Ready=Unknown and tainted",
        Duration::from_secs(30),
        || async {
            let n = nodes.get("n-0").await.ok()?;
            let ready = condition(&n, "Ready")?;
            let ts = taints(&n);
            let has = |effect: &str| {
                ts.iter()
                    .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == effect)
            };
            (ready.status == "Unknown" && has("NoExecute") && has("NoSchedule")).then_some(n)
        },
    )
    .await;
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(condition(&node, t).unwrap().status, "Unknown", "{t}");
    }
    let no_execute = taints(&node)
        .into_iter()
        .find(|t| t.effect == "NoExecute")
        .unwrap();
    let tainted_at = no_execute.time_added.expect("timeAdded").0;

    wait_for(
        "NodeNotReady event on n-0",
        Duration::from_secs(20),
        || async {
            events(&c, "NodeNotReady", "n-0")
                .await
                .iter()
                .any(|e| e.message.as_deref() == Some("Node n-0 status is now: NodeNotReady"))
                .then_some(())
        },
    )
    .await;

    // Pods of the silent node are evicted after their 3 s; they stay Terminating since the
    // node confirms nothing. The patient pod is only marked not ready.
    wait_for(
        "doomed pods marked for deletion",
        Duration::from_secs(30),
        || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            let terminating: BTreeSet<String> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (terminating == BTreeSet::from(["doomed-0".to_string(), "doomed-1".to_string()]))
                .then_some(())
        },
    )
    .await;
    let eviction = events(&c, "TaintManagerEviction", "doomed-0").await;
    let eviction = eviction.first().expect("TaintManagerEviction event");
    assert_eq!(
        eviction.message.as_deref(),
        Some("Marking for deletion Pod default/doomed-0")
    );
    let evicted_at = eviction.first_timestamp.as_ref().expect("firstTimestamp").0;
    assert!(
        evicted_at.duration_since(tainted_at) >= jiff::SignedDuration::from_secs(2),
        "evicted at {evicted_at}, tainted at {tainted_at}: the toleration was not honoured"
    );
    let patient = pods.get("patient").await.unwrap();
    assert!(patient.metadata.deletion_timestamp.is_none());
    assert!(!is_ready(&patient), "pods of a silent node are not ready");
    assert!(!events(&c, "NodeNotReady", "patient").await.is_empty());
    let bystander = pods.get("bystander").await.unwrap();
    assert!(is_ready(&bystander) && bystander.metadata.deletion_timestamp.is_none());
    let n1 = nodes.get("n-1").await.unwrap();
    assert_eq!(condition(&n1, "Ready").unwrap().status, "True");
    assert!(taints(&n1).is_empty());

    // The node comes back: Ready, untainted; it confirms the evictions and reports its pod.
    fleet.start_node("n-0").await.expect("start n-0");
    wait_for(
        "n-0 Ready and untainted",
        Duration::from_secs(30),
        || async {
            let n = nodes.get("n-0").await.ok()?;
            (condition(&n, "Ready")?.status == "True" && taints(&n).is_empty()).then_some(())
        },
    )
    .await;
    wait_for(
        "evicted pods gone, patient ready",
        Duration::from_secs(30),
        || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            let names: BTreeSet<String> = list
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            let patient_ready = list
                .items
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some("patient") && is_ready(p));
            (names == BTreeSet::from(["patient".to_string(), "bystander".to_string()])
                && patient_ready)
                .then_some(())
        },
    )
    .await;
    let patient = pods.get("patient").await.unwrap();
    assert_eq!(
        pod_ip(&patient).as_ref(),
        Some(&ips["patient"]),
        "the pod keeps its address"
    );
}

/// When every node goes silent at once the controller suspects itself: the nodes turn
/// Unknown and get the NoSchedule taint, but no NoExecute taint, so nothing is evicted
/// (Kubernetes' full-disruption mode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_evictions_when_every_node_is_down() {
    let server = TestServer::start_server_with(&SHORT_TIMINGS).await;
    let c = server.runtime_client();
    let fleet = fleet(&c, 2).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let nodes: Api<Node> = Api::all(c.clone());
    create_pods(
        &pods,
        &[pod("a", "web", "n-0", &[]), pod("b", "web", "n-1", &[])],
    )
    .await;
    wait_running(&pods, &["a", "b"]).await;
    assert!(fleet.stop_node("n-0") && fleet.stop_node("n-1"));
    let down_since = wait_for("both nodes Unknown", Duration::from_secs(30), || async {
        let mut since = Vec::new();
        for name in ["n-0", "n-1"] {
            let n = nodes.get(name).await.ok()?;
            let ready = condition(&n, "Ready")?;
            let no_schedule = taints(&n)
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoSchedule");
            if ready.status != "Unknown" || !no_schedule {
                return None;
            }
            since.push(ready.last_transition_time.clone()?.0);
        }
        since.into_iter().max()
    })
    .await;
    // Well past the 3 s toleration (and several monitor periods): still no NoExecute taint,
    // no pod marked for deletion.
    wait_for("6 s of total outage", Duration::from_secs(30), || async {
        (jiff::Timestamp::now().duration_since(down_since) >= jiff::SignedDuration::from_secs(6))
            .then_some(())
    })
    .await;
    for name in ["n-0", "n-1"] {
        let n = nodes.get(name).await.unwrap();
        assert!(
            !taints(&n).iter().any(|t| t.effect == "NoExecute"),
            "{name}: {:?}",
            taints(&n)
        );
    }
    for p in pods.list(&ListParams::default()).await.unwrap().items {
        assert!(
            p.metadata.deletion_timestamp.is_none(),
            "{:?} evicted",
            p.metadata.name
        );
        assert!(!is_ready(&p), "pods of silent nodes are not ready");
    }
    // One node back: the other is now the only one down and is evicted from as usual.
    fleet.start_node("n-1").await.expect("start n-1");
    wait_for(
        "n-0 tainted NoExecute and a evicted",
        Duration::from_secs(30),
        || async {
            let n = nodes.get("n-0").await.ok()?;
            let tainted = taints(&n)
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
            let a = pods.get("a").await.ok()?;
            (tainted && a.metadata.deletion_timestamp.is_some()).then_some(())
        },
    )
    .await;
}
