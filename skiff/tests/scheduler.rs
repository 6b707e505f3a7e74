//! The running scheduler against a real `skiff server`, with simulated nodes in the test
//! process: binding, Pending explained, retry on cluster change, no overcommit under a burst,
//! leader failover, and what the real kubectl shows.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kubelet::simulated::{Fleet, FleetConfig};
use runtime::{Api, Client, ListParams, PostParams};
use scheduler::run::{RunConfig, Stats};
use serde_json::json;
use support::{TestServer, wait_for};

async fn fleet(client: &Client, prefix: &str, nodes: usize, cpu: &str) -> Fleet {
    Fleet::start(
        client.clone(),
        FleetConfig {
            nodes,
            name_prefix: prefix.to_string(),
            cpu: cpu.to_string(),
            ..FleetConfig::default()
        },
    )
    .await
    .expect("start simulated fleet")
}

fn pod(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{
            "name": "c",
            "image": "nginx",
            "resources": {"requests": {"cpu": cpu}},
        }]},
    }))
    .expect("pod")
}

async fn create_pods(api: &Api<Pod>, names: &[String], cpu: &str) {
    let results: Vec<_> = futures::stream::iter(names.iter())
        .map(|n| {
            let api = api.clone();
            let p = pod(n, cpu);
            async move { api.create(&PostParams::default(), &p).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r.expect("create pod");
    }
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone().filter(|n| !n.is_empty())
}

/// Waits until every named pod is bound; returns pod name -> node.
async fn wait_bound(
    api: &Api<Pod>,
    names: &[String],
    timeout: Duration,
) -> HashMap<String, String> {
    wait_for("pods to be bound", timeout, || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let bound: HashMap<String, String> = list
            .items
            .iter()
            .filter_map(|p| Some((p.metadata.name.clone()?, node_of(p)?)))
            .collect();
        names.iter().all(|n| bound.contains_key(n)).then_some(bound)
    })
    .await
}

fn in_process(identity: &str) -> RunConfig {
    let mut cfg = RunConfig::new(identity);
    if let Some(le) = cfg.leader_election.as_mut() {
        le.lease_duration = Duration::from_secs(3);
        le.renew_deadline = Duration::from_secs(2);
        le.retry_period = Duration::from_millis(300);
    }
    cfg
}

async fn failed_scheduling_messages(client: &Client, pod: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let Ok(list) = events.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("FailedScheduling")
                && e.involved_object.name.as_deref() == Some(pod)
        })
        .filter_map(|e| e.message)
        .collect()
}

fn is_unschedulable(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
}

/// The scheduler inside `skiff server` binds pods that fit (they then run on the simulated
/// nodes), explains the one that does not with a condition, an Event and `kubectl describe`,
/// and honours `kubectl cordon`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_scheduler_binds_explains_and_respects_cordon() {
    let server = TestServer::start_server().await;
    let c = server.runtime_client();
    let fleet = fleet(&c, "sim-", 3, "4").await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");

    let names: Vec<String> = (0..6).map(|i| format!("web-{i}")).collect();
    create_pods(&pods, &names, "100m").await;
    let placed = wait_bound(&pods, &names, Duration::from_secs(30)).await;
    for (pod, node) in &placed {
        assert!(
            fleet.node_names().contains(node),
            "{pod} bound to unknown {node}"
        );
    }
    // The simulated nodes report them Running with an address from the node's pod CIDR.
    wait_for("pods to be Running", Duration::from_secs(30), || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let running = list.items.iter().filter(|p| {
            let st = p.status.as_ref();
            st.and_then(|s| s.phase.as_deref()) == Some("Running")
                && st
                    .and_then(|s| s.pod_ip.as_deref())
                    .is_some_and(|ip| ip.starts_with("10.244."))
        });
        (running.count() == names.len()).then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(c.clone(), "default");
    let scheduled = wait_for(
        "Scheduled event for web-0",
        Duration::from_secs(10),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("Scheduled")
                    && e.involved_object.name.as_deref() == Some("web-0")
            })
        },
    )
    .await;
    assert_eq!(
        scheduled.message.as_deref(),
        Some(format!("Successfully assigned default/web-0 to {}", placed["web-0"]).as_str())
    );
    assert_eq!(
        scheduled
            .source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("default-scheduler")
    );

    // 100 cpus fit nowhere: Pending, explained.
    create_pods(&pods, &["big".to_string()], "100").await;
    let messages = wait_for(
        "FailedScheduling for big",
        Duration::from_secs(20),
        || async {
            let m = failed_scheduling_messages(&c, "big").await;
            (!m.is_empty()).then_some(m)
        },
    )
    .await;
    assert_eq!(messages[0], "0/3 nodes are available: 3 Insufficient cpu.");
    wait_for(
        "PodScheduled=False on big",
        Duration::from_secs(10),
        || async {
            let p = pods.get("big").await.ok()?;
            is_unschedulable(&p).then_some(())
        },
    )
    .await;
    let big = pods.get("big").await.expect("get big");
    assert_eq!(node_of(&big), None);
    assert_eq!(
        big.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    let describe = server.kubectl(&["describe", "pod", "big"]);
    let out = describe.ok();
    assert!(out.contains("FailedScheduling"), "{out}");
    assert!(
        out.contains("0/3 nodes are available: 3 Insufficient cpu."),
        "{out}"
    );
    assert!(out.contains("default-scheduler"), "{out}");

    // Cordon one node: new pods avoid it.
    let cordoned = placed["web-0"].clone();
    server.kubectl(&["cordon", &cordoned]).ok();
    let later: Vec<String> = (0..9).map(|i| format!("after-cordon-{i}")).collect();
    create_pods(&pods, &later, "100m").await;
    let placed = wait_bound(&pods, &later, Duration::from_secs(30)).await;
    for name in &later {
        assert_ne!(placed[name], cordoned, "{name} landed on the cordoned node");
    }
    drop(fleet);
}

/// A pod nothing fits waits; a node that fits arriving wakes it at once, long before its
/// backoff (here one minute) would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_node_schedules_waiting_pod_before_backoff() {
    let server = TestServer::start().await;
    let c = server.runtime_client();
    let _small = fleet(&c, "small-", 3, "4").await;
    let mut cfg = RunConfig::new("only");
    cfg.leader_election = None;
    cfg.initial_backoff = Duration::from_secs(60);
    cfg.max_backoff = Duration::from_secs(60);
    let stats = Arc::new(Stats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sched = tokio::spawn(scheduler::run::run(c.clone(), cfg, stats.clone(), async {
        let _ = stopped.await;
    }));
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    create_pods(&pods, &["waiting".to_string()], "100").await;
    wait_for(
        "waiting to be unschedulable",
        Duration::from_secs(20),
        || async {
            let p = pods.get("waiting").await.ok()?;
            is_unschedulable(&p).then_some(())
        },
    )
    .await;
    assert_eq!(stats.unschedulable.load(Ordering::Relaxed), 1);
    let started = Instant::now();
    let _big = fleet(&c, "big-", 1, "200").await;
    let placed = wait_bound(&pods, &["waiting".to_string()], Duration::from_secs(20)).await;
    assert_eq!(placed["waiting"], "big-0");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), sched)
        .await
        .expect("scheduler stops")
        .expect("join")
        .expect("scheduler ok");
}

/// 1,000 pods created at once onto nodes that hold exactly 100 each by cpu: all bound, and no
/// node ever holds more than its allocatable (the assume cache works under a burst).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_pods_at_once_never_overcommit() {
    let server = TestServer::start_server().await;
    let c = server.runtime_client();
    let fleet = fleet(&c, "tight-", 10, "10").await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let names: Vec<String> = (0..1000).map(|i| format!("burst-{i}")).collect();
    create_pods(&pods, &names, "100m").await;
    let placed = wait_bound(&pods, &names, Duration::from_secs(240)).await;
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for name in &names {
        *per_node.entry(placed[name].as_str()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 10, "{per_node:?}");
    for (node, count) in &per_node {
        // 100 x 100m = 10 cpu = allocatable.
        assert!(*count <= 100, "{node} holds {count} pods of 100m on 10 cpu");
    }
    assert_eq!(per_node.values().sum::<usize>(), 1000);
    drop(fleet);
}

/// Two schedulers on one server: only the Lease holder binds; when it dies (no release), the
/// other takes over and schedules the rest. Every pod is bound exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_one_leader_and_failover() {
    let server = TestServer::start().await;
    let c = server.runtime_client();
    let _fleet = fleet(&c, "ha-", 3, "4").await;
    let (sa, sb) = (Arc::new(Stats::default()), Arc::new(Stats::default()));
    let a = tokio::spawn(scheduler::run::run(
        c.clone(),
        in_process("sched-a"),
        sa.clone(),
        std::future::pending(),
    ));
    let b = tokio::spawn(scheduler::run::run(
        c.clone(),
        in_process("sched-b"),
        sb.clone(),
        std::future::pending(),
    ));
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let first: Vec<String> = (0..40).map(|i| format!("ha-a-{i}")).collect();
    create_pods(&pods, &first, "10m").await;
    wait_bound(&pods, &first, Duration::from_secs(60)).await;
    // A binding shows in the API before the scheduler has read its answer and counted it.
    let counted = || {
        (
            sa.bound.load(Ordering::Relaxed),
            sb.bound.load(Ordering::Relaxed),
        )
    };
    let (ba, bb) = wait_for(
        "the bindings to be counted",
        Duration::from_secs(10),
        || {
            let (ba, bb) = counted();
            std::future::ready((ba + bb >= 40).then_some((ba, bb)))
        },
    )
    .await;
    assert_eq!(ba + bb, 40, "every pod bound exactly once (a={ba}, b={bb})");
    assert!(
        ba == 0 || bb == 0,
        "both schedulers bound pods: a={ba}, b={bb}"
    );
    // Kill the leader like a crash: its Lease is not released, the other waits it out.
    let (leader, survivor_stats) = if ba > 0 {
        (a, sb.clone())
    } else {
        (b, sa.clone())
    };
    let survivor_before = survivor_stats.bound.load(Ordering::Relaxed);
    leader.abort();
    let _ = leader.await;
    let second: Vec<String> = (0..20).map(|i| format!("ha-b-{i}")).collect();
    create_pods(&pods, &second, "10m").await;
    wait_bound(&pods, &second, Duration::from_secs(60)).await;
    wait_for(
        "the survivor's bindings to be counted",
        Duration::from_secs(10),
        || {
            let n = survivor_stats.bound.load(Ordering::Relaxed) - survivor_before;
            std::future::ready((n >= 20).then_some(()))
        },
    )
    .await;
    assert_eq!(
        survivor_stats.bound.load(Ordering::Relaxed) - survivor_before,
        20,
        "the survivor bound the pods created after the failover"
    );
}

/// Without any cluster change, an unschedulable pod is still retried on its backoff, and the
/// repeats aggregate into one FailedScheduling Event whose count grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_retries_on_backoff() {
    let server = TestServer::start().await;
    let c = server.runtime_client();
    let _nodes = fleet(&c, "bo-", 2, "1").await;
    let mut cfg = RunConfig::new("only");
    cfg.leader_election = None;
    cfg.initial_backoff = Duration::from_millis(200);
    cfg.max_backoff = Duration::from_millis(400);
    let stats = Arc::new(Stats::default());
    let sched = tokio::spawn(scheduler::run::run(
        c.clone(),
        cfg,
        stats.clone(),
        std::future::pending(),
    ));
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    create_pods(&pods, &["retry".to_string()], "2").await;
    let events: Api<Event> = Api::namespaced(c.clone(), "default");
    let event = wait_for(
        "FailedScheduling count to reach 3",
        Duration::from_secs(20),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            let failed: Vec<Event> = list
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
                .collect();
            (failed.len() == 1 && failed[0].count.unwrap_or(0) >= 3).then(|| failed[0].clone())
        },
    )
    .await;
    assert_eq!(
        event.message.as_deref(),
        Some("0/2 nodes are available: 2 Insufficient cpu.")
    );
    assert!(stats.unschedulable.load(Ordering::Relaxed) >= 3);
    assert_eq!(stats.bound.load(Ordering::Relaxed), 0);
    sched.abort();
}

/// The scheduler's Lease holder, read straight from the API.
async fn scheduler_lease_holder(server: &TestServer) -> Option<String> {
    let lease = server
        .client()
        .get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler")
        .await;
    (lease.code == 200)
        .then(|| {
            lease.body["spec"]["holderIdentity"]
                .as_str()
                .map(str::to_string)
        })
        .flatten()
        .filter(|h| !h.is_empty())
}

/// On SIGTERM `skiff server` stops its scheduler before the API, so the scheduler releases its
/// Lease and a restarted server leads at once instead of waiting out the old lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_leads_without_waiting_for_the_old_lease() {
    let mut server = TestServer::start_server().await;
    let first = wait_for(
        "the first scheduler to lead",
        Duration::from_secs(20),
        || {
            let server = &server;
            async move { scheduler_lease_holder(server).await }
        },
    )
    .await;
    assert!(server.terminate(), "clean shutdown on SIGTERM");
    let restarted = Instant::now();
    server.spawn().await;
    let second = wait_for(
        "the restarted scheduler to lead",
        Duration::from_secs(20),
        || {
            let server = &server;
            let first = first.clone();
            async move { scheduler_lease_holder(server).await.filter(|h| *h != first) }
        },
    )
    .await;
    assert_ne!(second, first);
    // The Lease lasts 15 s; taking it well before that means it was released.
    assert!(
        restarted.elapsed() < Duration::from_secs(10),
        "took {:?} to lead again",
        restarted.elapsed()
    );
}
