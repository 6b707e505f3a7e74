//! `skiff bench startup`: pod startup latency on one real node agent.
//!
//! An in-process API server and scheduler (embedded store) and a real `skiff agent` child
//! process with the `runc` driver (as root) or the `process` driver. The image (busybox, built
//! offline from the host's static busybox) is already in the node's store, so the figures are
//! what the agent adds: from the client's create request until the pod is reported Running.
//! Two phases: `--samples` single pods one after another, then a burst of `--burst` pods
//! created at once. The agent's resident memory is read from /proc while idle and after the
//! burst.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiserver::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use k8s_openapi::api::core::v1::{Node, Pod};
use runtime::informer::{Event, Informer, InformerConfig};
use runtime::{Api, DeleteParams, ListParams, PostParams};
use scheduler::run::Stats;
use serde_json::json;
use tokio::sync::Notify;

use super::cluster::LocalCluster;
use super::stats::{Latency, rss_kib};
use crate::agent::RuntimeKind;

/// Flags of `skiff bench startup`.
#[derive(clap::Args, Debug)]
pub struct StartupBench {
    /// Driver of the agent: `runc` (default when root) or `process`.
    #[arg(long, value_enum)]
    runtime: Option<RuntimeKind>,
    /// Single pods started one after another.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Pods created at once in the burst.
    #[arg(long, default_value_t = 100)]
    burst: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Where the store and the agent's data go (default: a fresh temp directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

type Failure = Box<dyn std::error::Error>;

/// When each pod (by name) was first seen Running.
#[derive(Default)]
struct RunningSeen {
    at: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl RunningSeen {
    fn observe(&self, pod: &Pod) {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let Some(name) = pod.metadata.name.clone() else {
            return;
        };
        if running {
            self.at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(name)
                .or_insert_with(Instant::now);
            self.changed.notify_waiters();
        }
    }

    fn get(&self, name: &str) -> Option<Instant> {
        self.at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }

    /// Waits until every pod in `names` was seen Running, at most `timeout`.
    async fn wait_all(&self, names: &[String], timeout: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            let missing = names.iter().filter(|n| self.get(n).is_none()).count();
            if missing == 0 {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{missing} pods not Running after {timeout:?}").into());
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), changed).await;
        }
    }
}

/// The agent child process; killed and reset when dropped.
struct AgentProcess {
    child: Child,
    runtime: &'static str,
    data_dir: PathBuf,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(exe) = std::env::current_exe() {
            let _ = Command::new(exe)
                .args(["agent", "reset", "--runtime", self.runtime])
                .arg("--data-dir")
                .arg(&self.data_dir)
                .env("SKIFF_LOG", "warn")
                .stdout(Stdio::null())
                .status();
        }
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "startup"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "main",
                "image": "busybox:latest",
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        },
    }))
    .unwrap_or_default()
}

/// Runs the benchmark and prints its figures next to the targets.
pub async fn run(args: StartupBench) -> Result<(), Failure> {
    let root = unsafe { libc::geteuid() } == 0;
    let kind = args.runtime.unwrap_or(if root {
        RuntimeKind::Runc
    } else {
        RuntimeKind::Process
    });
    let runtime = match kind {
        RuntimeKind::Runc => "runc",
        RuntimeKind::Process => "process",
        RuntimeKind::Simulated => {
            return Err("startup measures a real agent: runc or process".into());
        }
    };
    let tmp = match &args.data_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("skiff-bench-")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("skiff-bench-").tempdir()?,
    };
    let timeout = Duration::from_secs(args.timeout);
    let store = Arc::new(EmbeddedStore::open_with(
        &tmp.path().join("store"),
        EmbeddedOptions::default(),
    )?);
    let mut cluster = LocalCluster::start(store, 0).await?;
    cluster.spawn_scheduler(4, Arc::new(Stats::default()));
    let agent_dir = tmp.path().join("agent");
    if kind == RuntimeKind::Runc {
        let images = kubelet::image::Store::open(agent_dir.join("images"))?;
        kubelet::image::build::store_busybox(
            &images,
            "busybox:latest",
            Path::new(kubelet::image::build::HOST_BUSYBOX),
        )?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(std::env::current_exe()?)
        .args(["agent", "--runtime", runtime, "--node-name", "bench-agent"])
        .args(["--server", &cluster.url])
        .arg("--data-dir")
        .arg(&agent_dir)
        .args(["--kubelet-port", &port.to_string()])
        .env("SKIFF_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let agent = AgentProcess {
        child,
        runtime,
        data_dir: agent_dir,
    };
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let registered = Instant::now();
    while nodes.get("bench-agent").await.is_err() {
        if registered.elapsed() > timeout {
            return Err("the agent did not register its Node".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = Arc::new(RunningSeen::default());
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let informer = Informer::new(
        pods.clone(),
        ListParams::default().labels("bench=startup"),
        InformerConfig::default(),
    );
    informer.wait_for_sync(timeout).await?;
    let s = seen.clone();
    informer.add_handler(move |ev| match ev {
        Event::Added(p) | Event::Updated { new: p, .. } | Event::Resync(p) => s.observe(p),
        Event::Deleted(_) => {}
    });
    // Idle: registered, informers synced, nothing to run. Give it a moment to settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(agent.child.id());

    eprintln!("single pods: {} one after another", args.samples);
    let mut single = Vec::new();
    for i in 0..args.samples {
        let name = format!("single-{i}");
        let start = Instant::now();
        pods.create(&PostParams::default(), &pod(&name)).await?;
        seen.wait_all(std::slice::from_ref(&name), timeout).await?;
        single.push(seen.get(&name).unwrap_or(start) - start);
        pods.delete(
            &name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await?;
    }
    wait_gone(&pods, "single-", timeout).await?;

    eprintln!("burst: {} pods at once", args.burst);
    let names: Vec<String> = (0..args.burst).map(|i| format!("burst-{i}")).collect();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let creates = names.iter().map(|name| {
        let pods = pods.clone();
        let p = pod(name);
        async move {
            let start = Instant::now();
            pods.create(&PostParams::default(), &p).await.map(|_| start)
        }
    });
    let started = Instant::now();
    for (name, result) in names.iter().zip(futures::future::join_all(creates).await) {
        created.insert(name.clone(), result?);
    }
    seen.wait_all(&names, timeout).await?;
    let burst_wall = started.elapsed();
    let mut burst: Vec<Duration> = names
        .iter()
        .map(|n| seen.get(n).unwrap_or(created[n]) - created[n])
        .collect();
    let busy_rss = rss_kib(agent.child.id());
    for name in &names {
        let _ = pods
            .delete(
                name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await;
    }
    wait_gone(&pods, "burst-", timeout).await?;
    drop(informer);
    drop(agent);
    cluster.stop().await;

    let single = Latency::from_samples(&mut single);
    let burst_latency = Latency::from_samples(&mut burst);
    let mib = |k: Option<u64>| {
        k.map_or("n/a".to_string(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    println!(
        "pod startup (create → Running, image present), runtime {runtime}, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<34} {:>10} {:>10} {:>10}   target",
        "", "p50", "p99", "max"
    );
    println!(
        "{:<34} {:>8.0}ms {:>8.0}ms {:>8.0}ms   p50 ≤ 150 ms",
        format!("single pod ({} samples)", args.samples),
        single.p50_ms,
        single.p99_ms,
        single.max_ms
    );
    println!(
        "{:<34} {:>8.0}ms {:>8.0}ms {:>8.0}ms   p99 ≤ 2 s",
        format!("burst of {} ({:.1?} wall)", args.burst, burst_wall),
        burst_latency.p50_ms,
        burst_latency.p99_ms,
        burst_latency.max_ms
    );
    println!("agent RSS idle: {}   (target ≤ 30 MB)", mib(idle_rss));
    println!("agent RSS with {} pods: {}", args.burst, mib(busy_rss));
    Ok(())
}

/// Waits until no pod whose name starts with `prefix` is left.
async fn wait_gone(pods: &Api<Pod>, prefix: &str, timeout: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = pods
            .list(&ListParams::default().labels("bench=startup"))
            .await?;
        let left = list
            .items
            .iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .count();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{left} {prefix}* pods still there after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
