//! The small CRI-like interface between the pod workers and a container runtime driver.
//!
//! The agent decides *what* should run (pure functions over the pod spec and observed state);
//! a driver only does what it is told: make a pod sandbox, create/start/stop/remove containers,
//! report their state, and build exec commands. Drivers are blocking (they run `runc` and
//! friends, a few milliseconds each); the agent calls them from `spawn_blocking`, which keeps the
//! trait object-safe and the drivers free of async.
//!
//! Drivers persist what they create under their own state directory and rediscover it with
//! [`ContainerRuntime::list_sandboxes`] / [`ContainerRuntime::list_containers`], so an agent that
//! restarts adopts running containers instead of recreating them.
//!
//! Container logs are files in the CRI log format, one line per chunk:
//! `<RFC 3339 timestamp with nanoseconds> <stdout|stderr> <F|P> <text>` (`P` = partial line
//! continued by the next record, `F` = full line). The agent chooses each container's log path
//! ([`ContainerConfig::log_path`]); the driver (its per-container shim) writes it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::Result;

/// Labels every driver stores with a sandbox or container so the agent can tell, after a
/// restart, which pod and container an object belongs to.
pub mod labels {
    /// The pod's `metadata.uid`.
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    /// The pod's name.
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// The container's name in the pod spec.
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}

/// What a pod sandbox (the pod's shared network namespace and files) is made from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Pod name, namespace and uid, also stored as [`labels`].
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod uid; sandbox ids are derived from it so a retry finds the same sandbox.
    pub uid: String,
    /// Hostname inside the pod (`spec.hostname` or the pod name).
    pub hostname: String,
    /// `spec.hostNetwork`: share the node's network namespace, no CNI.
    pub host_network: bool,
    /// Content of `/etc/hosts` for every container of the pod (written by the agent's pure
    /// rendering; the driver mounts it). `None` keeps the image's file.
    pub etc_hosts: Option<String>,
    /// Content of `/etc/resolv.conf`; `None` keeps the image's file.
    pub resolv_conf: Option<String>,
    /// Labels to store with the sandbox (at least the pod ones from [`labels`]).
    pub labels: BTreeMap<String, String>,
}

/// A pod sandbox that exists on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// Driver-chosen id, stable for the pod uid.
    pub id: String,
    /// The pod's IP (the node's IP for host-network pods, `None` when the driver has none).
    pub ip: Option<IpAddr>,
    /// Path of the network namespace containers join (`None`: the host's).
    pub netns: Option<PathBuf>,
    /// The labels it was created with.
    pub labels: BTreeMap<String, String>,
}

/// A bind mount into a container, from a host path the agent prepared (volume directories,
/// configMap files, `/etc/hosts`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container.
    pub container_path: PathBuf,
    /// Host path (file or directory).
    pub host_path: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Resource limits a driver enforces (cgroups for runc; ignored by the process driver).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU limit in millicores (`resources.limits.cpu`); `None` = unlimited.
    pub cpu_limit_millis: Option<u64>,
    /// CPU request in millicores, for the cgroup weight.
    pub cpu_request_millis: Option<u64>,
    /// Memory limit in bytes; exceeding it gets the container OOM-killed.
    pub memory_limit_bytes: Option<u64>,
}

/// Everything needed to create one container, already resolved by the agent: the command with
/// `$(VAR)` expanded and image defaults applied, the final environment, prepared mounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// Container name in the pod spec.
    pub name: String,
    /// Normalized image reference (present in the image store for the runc driver).
    pub image: String,
    /// The process to run: entrypoint + arguments, never empty.
    pub argv: Vec<String>,
    /// Environment as `NAME=value`, in order.
    pub env: Vec<String>,
    /// Working directory inside the container (`None`: the image's, else `/`).
    pub working_dir: Option<String>,
    /// Bind mounts, in order.
    pub mounts: Vec<Mount>,
    /// Limits.
    pub resources: Resources,
    /// Where the container's output goes, in the CRI log format (see the module docs).
    pub log_path: PathBuf,
    /// How many times this container was (re)started before, also stored as a label.
    pub attempt: u32,
    /// Labels to store with the container (at least the pod ones from [`labels`]).
    pub labels: BTreeMap<String, String>,
}

/// A container's lifecycle state as the runtime sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Its process runs.
    Running {
        /// When it was started.
        started_at: jiff::Timestamp,
    },
    /// Its process ended.
    Exited {
        /// When it was started.
        started_at: jiff::Timestamp,
        /// When it ended.
        finished_at: jiff::Timestamp,
        /// Exit code (128 + signal number when killed by a signal).
        exit_code: i32,
        /// Killed by the kernel for exceeding its memory limit.
        oom_killed: bool,
    },
    /// Nothing is known any more (state lost, e.g. the host rebooted).
    Unknown,
}

/// A container the runtime knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Driver-chosen id.
    pub id: String,
    /// Sandbox it belongs to.
    pub sandbox_id: String,
    /// Its name in the pod spec.
    pub name: String,
    /// Restart attempt it was created as.
    pub attempt: u32,
    /// Image it runs.
    pub image: String,
    /// Current state.
    pub state: ContainerState,
    /// Its log file.
    pub log_path: PathBuf,
    /// Labels it was created with.
    pub labels: BTreeMap<String, String>,
}

/// Output of a command run to completion in a container (probes, hooks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; `None` when the command was killed for exceeding its timeout.
    pub exit_code: Option<i32>,
    /// Captured stdout (truncated to a few KiB).
    pub stdout: Vec<u8>,
    /// Captured stderr (truncated to a few KiB).
    pub stderr: Vec<u8>,
}

/// A container runtime driver (`runc`, `process`).
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Driver name as given to `skiff agent --runtime`.
    fn name(&self) -> &'static str;

    /// Creates the pod sandbox (network namespace with an IP from the node's pod CIDR, pod
    /// directory) or returns the existing one for `config.uid`. Idempotent.
    fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox>;

    /// Tears down the sandbox's network and removes its state; its containers must already
    /// be removed. Removing a sandbox that does not exist is not an error.
    fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<()>;

    /// Every sandbox this driver has on the node (for adoption after an agent restart).
    fn list_sandboxes(&self) -> Result<Vec<Sandbox>>;

    /// Creates (does not start) a container in `sandbox`; returns its id.
    fn create_container(&self, sandbox: &Sandbox, config: &ContainerConfig) -> Result<String>;

    /// Starts a created container. A command that cannot be executed is an error here
    /// (the agent reports `RunContainerError`).
    fn start_container(&self, container_id: &str) -> Result<()>;

    /// Sends SIGTERM, waits up to `grace`, then SIGKILLs; returns once the process is gone.
    fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()>;

    /// Removes a stopped container and its writable layer. Its log file stays (the agent
    /// removes logs with the pod). Removing an unknown container is not an error.
    fn remove_container(&self, container_id: &str) -> Result<()>;

    /// The container's current state.
    fn container_status(&self, container_id: &str) -> Result<ContainerInfo>;

    /// Every container this driver has on the node, in any state.
    fn list_containers(&self) -> Result<Vec<ContainerInfo>>;

    /// A command that runs `argv` inside the running container with the container's
    /// environment and working directory. The caller chooses stdio and spawns it: probes and
    /// hooks capture output with a timeout, `pods/exec` streams it. No TTY.
    fn exec_command(&self, container_id: &str, argv: &[String]) -> Result<Command>;
}

/// Runs `argv` in a container to completion, killing it after `timeout` (probes and preStop
/// hooks). Blocking.
pub fn exec_sync(
    runtime: &dyn ContainerRuntime,
    container_id: &str,
    argv: &[String],
    timeout: Duration,
) -> Result<ExecOutput> {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::Instant;

    const KEEP: usize = 16 * 1024;
    let mut command = runtime.exec_command(container_id, argv)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| crate::Error::Io {
        context: format!("exec in container {container_id}"),
        source,
    })?;
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            if let Some(mut pipe) = pipe {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            kept
        })
    });
    let deadline = Instant::now() + timeout;
    let exit_code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break exit_code_of(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(crate::Error::Io {
                    context: format!("waiting for exec in container {container_id}"),
                    source,
                });
            }
        }
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
    Ok(ExecOutput {
        exit_code,
        stdout,
        stderr,
    })
}

/// The shell-style exit code of a finished process: its code, or 128 + the signal.
pub fn exit_code_of(status: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
}

/// A pod network attached to sandboxes: a network namespace per pod with an IP from the node's
/// pod CIDR. The runc driver delegates to it (the CNI implementation in [`crate::network`]);
/// host-network pods and the process driver use none.
pub trait PodNetwork: Send + Sync + 'static {
    /// Creates the network namespace for `sandbox_id` (if missing) and attaches it to the
    /// node's pod network; returns the namespace path and the pod's IP. Idempotent: a second
    /// call for the same sandbox returns the same namespace and IP.
    fn setup(&self, sandbox_id: &str) -> Result<(PathBuf, IpAddr)>;

    /// Detaches the sandbox (releasing its IP) and deletes its namespace. Tearing down an
    /// unknown sandbox is not an error.
    fn teardown(&self, sandbox_id: &str) -> Result<()>;
}
