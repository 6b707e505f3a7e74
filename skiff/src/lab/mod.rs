//! `skiff lab`: a multi-node cluster on one machine in one command. Each node is an agent in
//! its own network namespace with its own address on a lab bridge (like separate hosts), the
//! control plane listens on the bridge, and faults can be injected per node (stop, kill,
//! partition) to watch the cluster heal.
//!
//! `lab up` leaves everything running in the background and records it in `<dir>/lab.json`;
//! the other commands read that file.

mod plan;
mod procs;
pub(crate) mod state;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kubelet::network::topology::{LabNetwork, LabPlan};
use runtime::{Api, ListParams};

pub use plan::{LabRuntime, LabSpec, LabStore, LabTimings, NodeSpec};
use state::LabState;

/// The lab directory unless `--dir` or `SKIFF_LAB_DIR` says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/skiff/lab";

/// `skiff lab ...`.
#[derive(clap::Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
    /// The lab's directory: state, logs, node data.
    #[arg(long, global = true, env = "SKIFF_LAB_DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
}

#[derive(clap::Subcommand, Debug)]
enum LabCommand {
    /// Starts a server and N node agents in the background; returns once every node is Ready.
    Up(UpArgs),
    /// Shows the lab's components, nodes and pods.
    Status,
    /// Stops everything and removes namespaces, bridges, containers, mounts and the lab dir.
    Down,
    /// Fault injection on one node.
    Node {
        #[arg(value_enum)]
        action: NodeAction,
        /// The node, e.g. node-2.
        name: String,
    },
}

/// What `lab node` does to a node.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum NodeAction {
    /// Stops the agent cleanly (its containers keep running, as when a kubelet stops).
    Stop,
    /// Starts a stopped or killed agent again.
    Start,
    /// Kills the agent and every container of the node, like a power cut.
    Kill,
    /// Cuts the node's network (its link to the lab bridge goes down).
    Partition,
    /// Restores the node's network.
    Heal,
}

/// Flags of `skiff lab up`.
#[derive(clap::Args, Debug)]
struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Container runtime of the nodes.
    #[arg(long, value_enum, default_value = "runc")]
    runtime: LabRuntime,
    /// Where objects are kept: the embedded store, or a real etcd the lab runs on loopback.
    #[arg(long, value_enum, default_value = "embedded")]
    store: LabStore,
    /// Port of the API server.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Seconds without a Lease renewal before a node turns NotReady/Unknown.
    #[arg(long, default_value_t = 10)]
    node_grace: u64,
    /// Seconds pods stay on a not-ready or unreachable node before they are evicted.
    #[arg(long, default_value_t = 10)]
    toleration: u64,
    /// Longest crash-loop back-off, in seconds.
    #[arg(long, default_value_t = 30)]
    backoff_max: u64,
    /// Seconds to wait for every node to be Ready.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// Runs a lab command; failures come back as one line.
pub async fn run(args: LabArgs) -> Result<(), String> {
    let dir = absolute(&args.dir)?;
    match args.command {
        LabCommand::Up(up) => lab_up(&dir, up).await,
        LabCommand::Status => lab_status(&dir).await,
        LabCommand::Down => lab_down(&dir),
        LabCommand::Node { action, name } => lab_node(&dir, action, &name),
    }
}

fn absolute(dir: &Path) -> Result<PathBuf, String> {
    std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find the skiff binary: {e}"))
}

async fn lab_up(dir: &Path, args: UpArgs) -> Result<(), String> {
    let started = Instant::now();
    if let Some(state) = LabState::load(dir)? {
        if state.server_pid.is_some_and(|p| procs::alive(p, "skiff")) {
            println!("A lab is already running in {}:", dir.display());
            return lab_status(dir).await;
        }
        println!("Removing the remains of a stopped lab in {}", dir.display());
        teardown(&state, false);
    }
    if args.runtime == LabRuntime::Runc && !is_root() {
        return Err(
            "a runc lab needs root (network namespaces, runc); try --runtime process".into(),
        );
    }
    let mut spec = LabSpec {
        dir: dir.to_path_buf(),
        nodes: args.nodes,
        runtime: args.runtime,
        store: args.store,
        timings: LabTimings {
            node_grace_seconds: args.node_grace.max(2),
            toleration_seconds: args.toleration,
            backoff_max_seconds: args.backoff_max,
        },
        server_ip: Ipv4Addr::LOCALHOST,
        server_port: args.port,
        etcd_port: free_loopback_port()?,
    };
    std::fs::create_dir_all(spec.logs_dir()).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (network_index, addresses) = match spec.runtime {
        LabRuntime::Runc => {
            let net = LabNetwork::create_any(spec.nodes, 0).map_err(|e| e.to_string())?;
            spec.server_ip = net.host_ip();
            let addresses = net
                .nodes
                .iter()
                .map(|n| (n.netns_path.clone(), n.ip))
                .collect::<Vec<_>>();
            (Some(net.plan().index), addresses)
        }
        LabRuntime::Process => (None, Vec::new()),
    };
    let mut state = LabState {
        nodes: spec.node_specs(&addresses),
        spec,
        network_index,
        server_pid: None,
        etcd_pid: None,
        agent_pids: Default::default(),
        partitioned: Default::default(),
    };
    state.save()?;
    match start_components(&mut state, Duration::from_secs(args.timeout)).await {
        Ok(()) => {
            println!(
                "Lab up in {:.1} s: {} nodes ({} runtime, {} store).",
                started.elapsed().as_secs_f64(),
                state.nodes.len(),
                state.spec.runtime.as_str(),
                match state.spec.store {
                    LabStore::Embedded => "embedded",
                    LabStore::Etcd => "etcd",
                }
            );
            print_nodes(&state).await;
            println!(
                "\nLogs: {}\n\n  export KUBECONFIG={}\n",
                state.spec.logs_dir().display(),
                state.spec.kubeconfig().display()
            );
            Ok(())
        }
        Err(e) => {
            let logs = state.spec.logs_dir();
            teardown(&state, true);
            Err(format!("{e} (logs kept in {})", logs.display()))
        }
    }
}

/// etcd (if asked), the server, the example images, the agents; then waits for Ready nodes.
async fn start_components(state: &mut LabState, timeout: Duration) -> Result<(), String> {
    let spec = state.spec.clone();
    let exe = exe()?;
    if spec.store == LabStore::Etcd {
        let pid = procs::spawn_detached("etcd", &spec.etcd_args(), &spec.log("etcd"))?;
        state.etcd_pid = Some(pid);
        state.save()?;
        let health = format!("{}/health", spec.etcd_url());
        wait_until("etcd to answer", Duration::from_secs(30), || {
            let health = health.clone();
            async move {
                reqwest::get(health)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await?;
    }
    let _ = std::fs::remove_file(spec.kubeconfig());
    let pid = procs::spawn_detached(
        &exe.display().to_string(),
        &spec.server_args(),
        &spec.log("server"),
    )?;
    state.server_pid = Some(pid);
    state.save()?;
    let kubeconfig = spec.kubeconfig();
    wait_until(
        "the API server to be ready",
        Duration::from_secs(30),
        || {
            let (kubeconfig, spec) = (kubeconfig.clone(), spec.clone());
            async move {
                if !kubeconfig.exists() {
                    return false;
                }
                let Ok(client) = client(&spec.kubeconfig()) else {
                    return false;
                };
                Api::<Namespace>::all(client).get("default").await.is_ok()
            }
        },
    )
    .await?;
    load_images(&state.nodes)?;
    for node in state.nodes.clone() {
        start_agent(state, &exe, &node)?;
    }
    state.save()?;
    let client = client(&spec.kubeconfig())?;
    let names: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    wait_until("every node to be Ready", timeout, || {
        let (client, names) = (client.clone(), names.clone());
        async move {
            let Ok(nodes) = Api::<Node>::all(client).list(&ListParams::default()).await else {
                return false;
            };
            names.iter().all(|name| {
                nodes
                    .items
                    .iter()
                    .any(|n| n.metadata.name.as_deref() == Some(name) && node_ready(n))
            })
        }
    })
    .await
}

fn start_agent(state: &mut LabState, exe: &Path, node: &NodeSpec) -> Result<(), String> {
    std::fs::create_dir_all(&node.data_dir)
        .map_err(|e| format!("{}: {e}", node.data_dir.display()))?;
    let token_file = state.spec.node_token_file();
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| format!("{}: {e}", token_file.display()))?;
    let (program, args) = state.spec.agent_command(exe, node, token.trim());
    let pid = procs::spawn_detached(&program, &args, &state.spec.log(&node.name))?;
    state.agent_pids.insert(node.name.clone(), pid);
    Ok(())
}

/// Builds the example images into every node's store, in parallel.
fn load_images(nodes: &[NodeSpec]) -> Result<(), String> {
    std::thread::scope(|scope| {
        let jobs: Vec<_> = nodes
            .iter()
            .map(|node| {
                scope.spawn(move || -> Result<(), String> {
                    let store = kubelet::image::Store::open(node.data_dir.join("images"))
                        .map_err(|e| format!("{}: {e}", node.name))?;
                    crate::agent_image::build_examples(
                        &store,
                        Path::new(kubelet::image::build::HOST_BUSYBOX),
                    )
                    .map_err(|e| format!("example images for {}: {e}", node.name))?;
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter()
            .try_for_each(|j| j.join().map_err(|_| "image build panicked".to_string())?)
    })
}

fn free_loopback_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// A client of the lab's API server with its admin kubeconfig.
pub(crate) fn client(kubeconfig: &Path) -> Result<runtime::Client, String> {
    let opts = runtime::config::LoadOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        ..Default::default()
    };
    runtime::config::load(&opts)
        .and_then(runtime::Client::new)
        .map_err(|e| e.to_string())
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ready, and the node lifecycle controller has lifted the not-ready taint it puts on new
/// nodes, so the scheduler places pods on it (otherwise the first Deployment after `lab up`
/// lands on whichever node was untainted first).
fn node_ready(n: &Node) -> bool {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let tainted = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter().any(|t| {
                t.key == "node.kubernetes.io/not-ready" || t.key == "node.kubernetes.io/unreachable"
            })
        });
    ready && !tainted
}

async fn lab_status(dir: &Path) -> Result<(), String> {
    let Some(state) = LabState::load(dir)? else {
        return Err(format!(
            "no lab in {} (start one with `skiff lab up`)",
            dir.display()
        ));
    };
    println!(
        "Lab in {} ({} runtime)",
        dir.display(),
        state.spec.runtime.as_str()
    );
    println!("{:<12} {:<10} {:>8}  DETAIL", "COMPONENT", "STATE", "PID");
    let line = |name: &str, pid: Option<u32>, what: &str, detail: String| {
        let state = match pid {
            Some(p) if procs::alive(p, what) => "running",
            Some(_) => "dead",
            None => "stopped",
        };
        let pid = pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        println!("{name:<12} {state:<10} {pid:>8}  {detail}");
    };
    if state.spec.store == LabStore::Etcd {
        line("etcd", state.etcd_pid, "etcd", state.spec.etcd_url());
    }
    line("server", state.server_pid, "skiff", state.spec.server_url());
    for node in &state.nodes {
        let mut detail = format!("{} ({})", node.ip, node.data_dir.display());
        if state.partitioned.contains(&node.name) {
            detail.push_str(" PARTITIONED");
        }
        line(
            &node.name,
            state.agent_pids.get(&node.name).copied(),
            "skiff",
            detail,
        );
    }
    println!();
    print_nodes(&state).await;
    println!(
        "\n  export KUBECONFIG={}",
        state.spec.kubeconfig().display()
    );
    Ok(())
}

/// Nodes with their readiness, address, pod CIDR and pod count, from the API.
async fn print_nodes(state: &LabState) {
    let Ok(client) = client(&state.spec.kubeconfig()) else {
        println!("(the API server is not reachable)");
        return;
    };
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await;
    let pods = Api::<Pod>::all(client).list(&ListParams::default()).await;
    let (Ok(nodes), Ok(pods)) = (nodes, pods) else {
        println!("(the API server is not reachable)");
        return;
    };
    println!(
        "{:<10} {:<9} {:<14} {:<16} PODS",
        "NODE", "STATUS", "ADDRESS", "POD CIDR"
    );
    for n in &nodes.items {
        let name = n.metadata.name.clone().unwrap_or_default();
        let status = match n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status.clone())
            }) {
            Some(s) if s == "True" => "Ready",
            Some(s) if s == "False" => "NotReady",
            _ => "Unknown",
        };
        let address = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
            .unwrap_or_default();
        let cidr = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.clone())
            .unwrap_or_else(|| "-".into());
        let count = pods
            .items
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
            .count();
        println!("{name:<10} {status:<9} {address:<14} {cidr:<16} {count}");
    }
}

fn lab_down(dir: &Path) -> Result<(), String> {
    let Some(state) = LabState::load(dir)? else {
        println!("No lab in {}.", dir.display());
        return Ok(());
    };
    teardown(&state, false);
    println!("Lab in {} removed.", dir.display());
    Ok(())
}

/// Stops every process, removes every container, the network and (unless `keep_logs`) the
/// lab directory. Keeps going past failures, reporting them.
fn teardown(state: &LabState, keep_logs: bool) {
    let exe = exe().ok();
    for node in &state.nodes {
        if let Some(pid) = state.agent_pids.get(&node.name) {
            procs::stop(*pid, "skiff", plan::STOP_GRACE);
        }
        if let Some(exe) = &exe {
            reset_node(state, exe, node);
        }
    }
    if let Some(pid) = state.server_pid {
        procs::stop(pid, "skiff", plan::STOP_GRACE);
    }
    if let Some(pid) = state.etcd_pid {
        procs::stop(pid, "etcd", plan::STOP_GRACE);
    }
    if let Some(index) = state.network_index {
        let net = LabNetwork::attach(LabPlan::new(index, state.nodes.len()));
        if let Err(e) = net.remove() {
            eprintln!("skiff: removing the lab network: {e}");
        }
    }
    unmount_below(&state.spec.dir);
    let removal = if keep_logs {
        std::fs::read_dir(&state.spec.dir).map(|entries| {
            for entry in entries.flatten() {
                if entry.path() != state.spec.logs_dir() {
                    let _ = remove_path(&entry.path());
                }
            }
        })
    } else {
        remove_path(&state.spec.dir)
    };
    if let Err(e) = removal {
        eprintln!("skiff: removing {}: {e}", state.spec.dir.display());
    }
}

fn remove_path(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// `skiff agent reset` for `node` (inside its namespace): stops and removes its containers,
/// pod sandboxes and bridge.
fn reset_node(state: &LabState, exe: &Path, node: &NodeSpec) {
    if !node.data_dir.exists() {
        return;
    }
    let reset = [
        "agent".to_string(),
        "reset".into(),
        "--runtime".into(),
        state.spec.runtime.as_str().into(),
        "--data-dir".into(),
        node.data_dir.display().to_string(),
    ];
    let mut cmd = match &node.netns {
        Some(ns) => {
            let mut c = std::process::Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("--").arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    match cmd.args(reset).env("SKIFF_LOG", "warn").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "skiff: resetting {}: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("skiff: resetting {}: {e}", node.name),
    }
}

/// Lazily unmounts whatever is still mounted under `dir` (a crashed container's rootfs).
fn unmount_below(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    // Deepest first.
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for target in targets {
        let _ = std::process::Command::new("umount")
            .args(["-l", target])
            .status();
    }
}

fn lab_node(dir: &Path, action: NodeAction, name: &str) -> Result<(), String> {
    let Some(mut state) = LabState::load(dir)? else {
        return Err(format!("no lab in {}", dir.display()));
    };
    let (index, node) = state.node(name).map(|(i, n)| (i, n.clone()))?;
    let pid = state.agent_pids.get(name).copied();
    match action {
        NodeAction::Stop => {
            if let Some(pid) = pid {
                procs::stop(pid, "skiff", plan::STOP_GRACE);
            }
            state.agent_pids.remove(name);
            println!("{name}: agent stopped (its containers keep running)");
        }
        NodeAction::Start => {
            if pid.is_some_and(|p| procs::alive(p, "skiff")) {
                println!("{name}: agent already running");
            } else {
                start_agent(&mut state, &exe()?, &node)?;
                println!("{name}: agent started");
            }
        }
        NodeAction::Kill => {
            if let Some(pid) = pid {
                procs::kill(pid, "skiff");
            }
            state.agent_pids.remove(name);
            reset_node(&state, &exe()?, &node);
            println!("{name}: agent and containers killed");
        }
        NodeAction::Partition | NodeAction::Heal => {
            let Some(lab) = state.network_index else {
                return Err(
                    "partition and heal need a runc lab (nodes in network namespaces)".into(),
                );
            };
            let up = action == NodeAction::Heal;
            LabNetwork::attach(LabPlan::new(lab, state.nodes.len()))
                .set_node_link(index, up)
                .map_err(|e| e.to_string())?;
            if up {
                state.partitioned.remove(name);
                println!("{name}: network restored");
            } else {
                state.partitioned.insert(name.to_string());
                println!("{name}: network cut");
            }
        }
    }
    state.save()
}
