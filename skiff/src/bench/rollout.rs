//! `skiff bench controllers`: a large Deployment on simulated nodes, end to end through the
//! API server, the scheduler and the controllers in one process on the embedded store.
//!
//! Two figures: the time from creating a Deployment of `--replicas` pods until all of them
//! are available, and the time of a full rolling update of it (an image change) until
//! `kubectl rollout status` would report success.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use k8s_openapi::api::apps::v1::Deployment;
use runtime::{Api, Patch, PatchParams, PostParams};
use scheduler::run::Stats;
use serde_json::json;

use super::cluster::LocalCluster;

/// Flags of `skiff bench controllers`.
#[derive(clap::Args, Debug)]
pub struct ControllersBench {
    /// Simulated nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 1000)]
    replicas: i32,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Where the embedded store goes (default: a fresh directory under the temp dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn deployment(replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": "skiff.local/web:v1",
                    "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}},
                }]},
            },
        },
    })
}

/// Whether the Deployment's status says what `kubectl rollout status` waits for: the spec
/// observed, every replica updated and available, no old replicas left.
pub fn rolled_out(d: &Deployment) -> bool {
    let generation = d.metadata.generation.unwrap_or(0);
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = d.status.as_ref() else {
        return false;
    };
    st.observed_generation.unwrap_or(0) >= generation
        && st.updated_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
}

/// Polls the Deployment until it has rolled out, returning how long that took from `since`.
async fn wait_rolled_out(
    api: &Api<Deployment>,
    since: Instant,
    timeout: Duration,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let deadline = since + timeout;
    loop {
        let d = api.get("bench").await?;
        if rolled_out(&d) {
            return Ok(since.elapsed());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "deployment not rolled out after {timeout:?}: status {}",
                serde_json::to_string(&d.status)?
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the controllers benchmark and prints its figures.
pub async fn run(b: ControllersBench) -> Result<(), Box<dyn std::error::Error>> {
    let dir = b.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("skiff-bench-ctl-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(EmbeddedStore::open_with(
        &dir.join("store"),
        EmbeddedOptions {
            retain_revisions: Some(200_000),
            ..EmbeddedOptions::default()
        },
    )?);
    let mut cluster = LocalCluster::start(store, b.nodes).await?;
    cluster.spawn_scheduler(64, Arc::new(Stats::default()));
    cluster.spawn_controllers(controllers::ManagerConfig::new("bench"));
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let timeout = Duration::from_secs(b.timeout.max(1));

    let started = Instant::now();
    let d: Deployment = serde_json::from_value(deployment(b.replicas))?;
    api.create(&PostParams::default(), &d).await?;
    let available = wait_rolled_out(&api, started, timeout).await?;
    println!(
        "{} replicas on {} nodes: all available after {available:.2?} ({:.0} pods/s)",
        b.replicas,
        b.nodes,
        f64::from(b.replicas) / available.as_secs_f64()
    );

    let started = Instant::now();
    let patch = Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "skiff.local/web:v2"}
    ]}}}}));
    api.patch("bench", &PatchParams::default(), &patch).await?;
    let rolled = wait_rolled_out(&api, started, timeout).await?;
    println!(
        "rolling update v1 -> v2 of {} replicas (maxSurge 25%, maxUnavailable 25%): complete after {rolled:.2?}",
        b.replicas
    );
    cluster.stop().await;
    if b.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
