//! `skiff bench scheduler`: API server, scheduler and simulated nodes in one process on the
//! embedded store, measuring end-to-end scheduling throughput against the store's own write
//! rate in the same run (the ceiling: every pod costs several writes).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use apiserver::storage::Store;
use apiserver::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use runtime::{Api, PostParams};
use scheduler::run::Stats;

use super::cluster::LocalCluster;
use serde_json::json;

/// Flags of `skiff bench scheduler`.
#[derive(clap::Args, Debug)]
pub struct SchedulerBench {
    /// Simulated nodes.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods created at once.
    #[arg(long, default_value_t = 10000)]
    pods: usize,
    /// Concurrent pod creations.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Where the embedded store goes (default: a fresh directory under the temp dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn pod_json(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("bench-{i}"), "namespace": "default", "labels": {"app": "bench"}},
        "spec": {"containers": [{
            "name": "c",
            "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }]},
    })
}

/// Runs the scheduler benchmark and prints its figures.
pub async fn run(b: SchedulerBench) -> Result<(), Box<dyn std::error::Error>> {
    let dir = b.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("skiff-bench-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let history = 200_000;
    let store = Arc::new(EmbeddedStore::open_with(
        &dir.join("store"),
        EmbeddedOptions {
            retain_revisions: Some(history),
            ..EmbeddedOptions::default()
        },
    )?);

    // 1. The store's raw write rate: pod-sized creates, as concurrent as the API path.
    let body = serde_json::to_vec(&pod_json(0))?;
    let writes = b.pods;
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..writes)
        .map(|i| {
            let (store, body) = (store.clone(), bytes::Bytes::from(body.clone()));
            async move {
                store
                    .create(&format!("/registry/bench-raw/{i}"), body)
                    .await
            }
        })
        .buffer_unordered(b.concurrency.max(1))
        .collect()
        .await;
    for r in results {
        r?;
    }
    let raw_rate = writes as f64 / started.elapsed().as_secs_f64();
    println!(
        "raw store writes: {writes} in {:.2?} = {raw_rate:.0}/s",
        started.elapsed()
    );

    // 2. API server on loopback and simulated nodes.
    let mut cluster = LocalCluster::start(store.clone(), b.nodes).await?;
    let client = cluster.client.clone();

    // 3. Scheduler.
    let stats = Arc::new(Stats::default());
    cluster.spawn_scheduler(64, stats.clone());

    // 4. Create every pod at once; measure creation -> bound.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..b.pods)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let p: Pod = serde_json::from_value(pod_json(i))?;
                pods.create(&PostParams::default(), &p).await?;
                Ok::<(), runtime::Error>(())
            }
        })
        .buffer_unordered(b.concurrency.max(1))
        .collect()
        .await;
    for r in results {
        r?;
    }
    let created = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while stats.bound.load(Ordering::Relaxed) < b.pods as u64 {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} pods bound after 30 min",
                stats.bound.load(Ordering::Relaxed),
                b.pods
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bound = started.elapsed();
    let e2e = b.pods as f64 / bound.as_secs_f64();
    let decisions =
        stats.scheduled.load(Ordering::Relaxed) + stats.unschedulable.load(Ordering::Relaxed);
    let decide = Duration::from_nanos(stats.decide_nanos.load(Ordering::Relaxed));
    let decisions_rate = decisions as f64 / decide.as_secs_f64().max(1e-9);
    println!(
        "created {} pods in {created:.2?}; all bound after {bound:.2?}",
        b.pods
    );
    println!("end-to-end: {e2e:.0} pods/s (creation to bound)");
    println!(
        "scheduler decisions: {decisions} in {decide:.2?} of decision time = {decisions_rate:.0}/s"
    );
    println!(
        "end-to-end / raw store write rate: {:.1} %",
        100.0 * e2e / raw_rate
    );
    cluster.stop().await;
    if b.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
