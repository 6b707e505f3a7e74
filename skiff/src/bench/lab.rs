//! `skiff bench lab`: how fast `skiff lab up` brings a multi-node lab to all nodes Ready, how
//! much memory the whole lab uses idle with the walkthrough's web example running, and how big
//! the one binary is.
//!
//! Each run is a real `skiff lab up` in a fresh directory (child process, timed from spawn to
//! exit: it exits once every node is Ready) followed by `skiff lab down`. After the last `up`
//! the web example (3 replicas + Service) is created and, once all replicas are ready and the
//! lab has settled, the resident memory of the server and the agents is read from /proc.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use runtime::{Api, PostParams};
use serde::Deserialize;

use super::stats::{self, Latency};
use crate::lab::state::LabState;

/// Flags of `skiff bench lab`.
#[derive(clap::Args, Debug)]
pub struct LabBench {
    /// Nodes per lab.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// `lab up` / `lab down` cycles timed.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runtime of the lab's nodes.
    #[arg(long, default_value = "runc")]
    runtime: String,
    /// Seconds the lab idles with the example before memory is read.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Where the labs go (default: a fresh temp directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

type Failure = Box<dyn std::error::Error>;

fn lab(exe: &Path, dir: &Path, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new(exe)
        .arg("lab")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("SKIFF_LOG", "warn")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "skiff lab {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Resident memory; pages of the (shared) `skiff` binary count in full in every process.
fn rss_kib(pid: u32) -> u64 {
    stats::rss_kib(pid).unwrap_or(0)
}

/// Proportional set size: shared pages divided among the processes sharing them, so a sum
/// over processes is what they use together.
fn pss_kib(pid: u32) -> u64 {
    stats::proc_kib(pid, "smaps_rollup", "Pss:").unwrap_or(0)
}

/// Memory of the lab's processes, in KiB.
#[derive(Default)]
struct LabMemory {
    server_rss: u64,
    agents_rss: u64,
    shims_rss: u64,
    /// Server + agents, proportional.
    pss: u64,
}

/// Processes whose parent is `parent` (the agents' container shims).
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_string();
                    rest.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Creates the web example (Deployment + Service) and waits for its replicas to be ready.
async fn run_web_example(kubeconfig: &Path) -> Result<(), Failure> {
    let client = crate::lab::client(kubeconfig)?;
    let text = skiff_examples::MANIFESTS
        .iter()
        .find(|(name, _)| *name == "web.yaml")
        .map(|(_, text)| *text)
        .ok_or("web.yaml missing from the examples")?;
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(doc)?;
        match value["kind"].as_str() {
            Some("Deployment") => {
                let d: Deployment = serde_json::from_value(value)?;
                Api::<Deployment>::namespaced(client.clone(), "default")
                    .create(&PostParams::default(), &d)
                    .await?;
            }
            Some("Service") => {
                let s: Service = serde_json::from_value(value)?;
                Api::<Service>::namespaced(client.clone(), "default")
                    .create(&PostParams::default(), &s)
                    .await?;
            }
            _ => {}
        }
    }
    let deployments = Api::<Deployment>::namespaced(client, "default");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let d = deployments.get("web").await?;
        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        if ready >= 3 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("web has {ready}/3 ready replicas after 180 s").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the benchmark and prints its figures next to the targets.
pub async fn run(args: LabBench) -> Result<(), Failure> {
    let exe = std::env::current_exe()?;
    let tmp = match &args.data_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("skiff-bench-lab-")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new()
            .prefix("skiff-bench-lab-")
            .tempdir()?,
    };
    let nodes = args.nodes.to_string();
    let up_args = ["up", "--nodes", &nodes, "--runtime", &args.runtime];
    let mut ups: Vec<Duration> = Vec::new();
    let mut memory = None;
    for run in 0..args.runs.max(1) {
        let dir = tmp.path().join(format!("lab-{run}"));
        let started = Instant::now();
        let result = lab(&exe, &dir, &up_args);
        let took = started.elapsed();
        if let Err(e) = result {
            let _ = lab(&exe, &dir, &["down"]);
            return Err(e);
        }
        ups.push(took);
        eprintln!("run {}: lab up in {:.2} s", run + 1, took.as_secs_f64());
        if run + 1 == args.runs.max(1) {
            let measured = measure_memory(&dir, args.settle).await;
            memory = Some(measured);
        }
        lab(&exe, &dir, &["down"])?;
    }
    let memory = memory.transpose()?.unwrap_or_default();
    let size = std::fs::metadata(&exe)?.len();
    println!(
        "skiff bench lab: {} nodes, {} runtime, {} runs",
        args.nodes, args.runtime, args.runs
    );
    let ups = Latency::from_samples(&mut ups);
    println!(
        "lab up to all nodes Ready: p50 {:.2} s, max {:.2} s   (target ≤ 3 s for 3 nodes)",
        ups.p50_ms / 1000.0,
        ups.max_ms / 1000.0
    );
    println!(
        "RSS idle with the web example: server {} + agents {} = {}   (target ≤ 100 MB)",
        mib(memory.server_rss),
        mib(memory.agents_rss),
        mib(memory.server_rss + memory.agents_rss)
    );
    println!(
        "  the same as PSS (shared binary pages counted once): {}",
        mib(memory.pss)
    );
    println!(
        "  container shims (one per container, not in the target): RSS {}",
        mib(memory.shims_rss)
    );
    println!(
        "binary size: {:.1} MiB ({})",
        size as f64 / (1024.0 * 1024.0),
        exe.display()
    );
    Ok(())
}

/// The lab's memory after the web example settled.
async fn measure_memory(dir: &Path, settle: u64) -> Result<LabMemory, Failure> {
    let state = LabState::load(dir)?.ok_or("the lab left no state file")?;
    run_web_example(&state.spec.kubeconfig()).await?;
    eprintln!("web example ready; letting the lab settle for {settle} s");
    tokio::time::sleep(Duration::from_secs(settle)).await;
    let agents: Vec<u32> = state.agent_pids.values().copied().collect();
    let daemons: Vec<u32> = state.server_pid.into_iter().chain(agents.clone()).collect();
    Ok(LabMemory {
        server_rss: state.server_pid.map(rss_kib).unwrap_or(0),
        agents_rss: agents.iter().copied().map(rss_kib).sum(),
        shims_rss: agents
            .iter()
            .flat_map(|p| children_of(*p))
            .map(rss_kib)
            .sum(),
        pss: daemons.into_iter().map(pss_kib).sum(),
    })
}
