//! The runc driver's side effects: bundles, rootfs mounts, sandboxes, invoking runc and the
//! shim. What a container looks like is decided in [`super::spec`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::spec::{self, SpecInput};
use crate::cri::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, Mount, PodNetwork, Sandbox,
    SandboxConfig, labels,
};
use crate::error::{Error, IoContext, Result};
use crate::image::{ImageReference, Store, rootfs};
use crate::shim::{self, SPEC_FILE, STARTED_FILE, ShimCommand, ShimMode, ShimSpec};

/// How long a shim may take to create and start a container.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGKILLed container may take to be reaped.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Files a sandbox may be given content for (`SandboxConfig::etc_hosts`, `resolv_conf`):
/// name in the sandbox dir → where containers see them.
const SANDBOX_FILES: [(&str, &str); 2] =
    [("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf")];
/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// What the runc driver needs.
#[derive(Clone)]
pub struct RuncConfig {
    /// The agent's data dir; the driver keeps its state under `<data_dir>/runc`.
    pub data_dir: PathBuf,
    /// The runc binary (`runc` looks it up on the PATH).
    pub runc: PathBuf,
    /// How to start a container's shim.
    pub shim: ShimCommand,
    /// The image store containers' images are in (the agent pulls before creating).
    pub store: Arc<Store>,
    /// The pod network; `None` runs every pod in the host's network namespace.
    pub network: Option<Arc<dyn PodNetwork>>,
}

/// The runc driver.
pub struct RuncRuntime {
    root: PathBuf,
    config: RuncConfig,
}

/// `sandboxes/<id>/sandbox.json`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SandboxRecord {
    id: String,
    hostname: String,
    host_network: bool,
    ip: Option<IpAddr>,
    netns: Option<PathBuf>,
    labels: BTreeMap<String, String>,
}

impl SandboxRecord {
    fn pod_uid(&self) -> String {
        pod_uid(&self.labels, &self.id)
    }

    fn sandbox(&self) -> Sandbox {
        Sandbox {
            id: self.id.clone(),
            ip: self.ip,
            netns: self.netns.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// `containers/<id>/container.json`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerRecord {
    id: String,
    sandbox_id: String,
    name: String,
    attempt: u32,
    image: String,
    log_path: PathBuf,
    labels: BTreeMap<String, String>,
    cgroups_path: String,
}

/// A stable container id for (sandbox, name, attempt), so a retried create finds its own.
fn container_id(sandbox: &str, name: &str, attempt: u32) -> String {
    let digest = Sha256::digest(format!("runc/{sandbox}/{name}/{attempt}"));
    hex::encode(&digest[..16])
}

/// Sandbox ids are the pod uid, restricted to characters safe in paths.
fn sandbox_id(uid: &str) -> Result<String> {
    if uid.is_empty()
        || !uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::Runtime(format!(
            "pod uid {uid:?} cannot name a sandbox"
        )));
    }
    Ok(uid.to_string())
}

/// The pod uid a sandbox's cgroups are named after (its label, else the sandbox id).
fn pod_uid(pod_labels: &BTreeMap<String, String>, sandbox_id: &str) -> String {
    pod_labels
        .get(labels::POD_UID)
        .cloned()
        .unwrap_or_else(|| sandbox_id.to_string())
}

/// Removes the (empty by now) pod cgroup from every mounted hierarchy; cgroups that are gone
/// or still busy are left alone.
fn remove_pod_cgroups(pod_uid: &str) {
    let rel = spec::pod_cgroup(pod_uid);
    let rel = rel.trim_start_matches('/');
    let root = Path::new(CGROUP_ROOT);
    let mut dirs = vec![root.join(rel)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path().join(rel)));
    }
    for dir in dirs {
        if let Err(e) = std::fs::remove_dir(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(cgroup = %dir.display(), error = %e, "pod cgroup stays");
        }
    }
}

/// The agent's own hard `RLIMIT_NOFILE`: containers cannot be given more.
fn own_nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_max
    } else {
        spec::NOFILE
    }
}

impl RuncRuntime {
    /// A driver keeping its state under `<data_dir>/runc`.
    pub fn new(config: RuncConfig) -> Result<Self> {
        let root = config.data_dir.join("runc");
        for dir in ["sandboxes", "containers", "state"] {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).context(|| format!("creating {}", d.display()))?;
        }
        Ok(RuncRuntime { root, config })
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.root.join("sandboxes").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn state_root(&self) -> PathBuf {
        self.root.join("state")
    }

    fn sandbox_record(&self, id: &str) -> Option<SandboxRecord> {
        shim::read_state(&self.sandbox_dir(id).join("sandbox.json"))
    }

    fn record(&self, id: &str) -> Result<ContainerRecord> {
        shim::read_state(&self.container_dir(id).join("container.json"))
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))
    }

    /// `runc --root <state> ARGS...`.
    fn runc(&self) -> Command {
        let mut cmd = Command::new(&self.config.runc);
        cmd.arg("--root").arg(self.state_root());
        cmd
    }

    /// Runs runc to completion; a failure carries its stderr.
    fn run_runc(&self, args: &[&str]) -> Result<()> {
        let out = self
            .runc()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context(|| format!("running {}", self.config.runc.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Runc {
                command: args.first().copied().unwrap_or_default().to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    fn info(&self, record: ContainerRecord) -> ContainerInfo {
        let state = shim::observed_state(&self.container_dir(&record.id));
        ContainerInfo {
            id: record.id,
            sandbox_id: record.sandbox_id,
            name: record.name,
            attempt: record.attempt,
            image: record.image,
            state,
            log_path: record.log_path,
            labels: record.labels,
        }
    }

    fn is_running(&self, id: &str) -> bool {
        matches!(
            shim::observed_state(&self.container_dir(id)),
            ContainerState::Running { .. }
        )
    }

    /// Waits up to `timeout` for the shim to record the container's exit.
    fn wait_exit(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running(id) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `runc kill ID SIGNAL`; a container that already stopped is no error.
    fn kill(&self, id: &str, signal: &str) {
        if let Err(e) = self.run_runc(&["kill", id, signal]) {
            tracing::debug!(container = id, error = %e, "runc kill");
        }
    }

    /// Resolves the image's `User` against the container's own `/etc/passwd` and `/etc/group`.
    fn user(rootfs: &Path, user: Option<&str>) -> Result<(u32, u32)> {
        let read = |f: &str| std::fs::read_to_string(rootfs.join(f)).unwrap_or_default();
        spec::resolve_user(user, &read("etc/passwd"), &read("etc/group"))
            .map_err(Error::CreateContainer)
    }

    /// Mounts the rootfs and writes the bundle; the caller tears down on error.
    fn make_bundle(
        &self,
        dir: &Path,
        id: &str,
        sandbox: &Sandbox,
        config: &ContainerConfig,
    ) -> Result<ContainerRecord> {
        let image_name = ImageReference::parse(&config.image)?.to_string();
        let image = self.config.store.image_config(&image_name)?;
        let layers = self.config.store.image_layers(&image_name)?;
        let mounted = rootfs::mount(&layers, dir)?;
        let user = Self::user(&mounted.rootfs, image.user.as_deref())?;
        let record = self.sandbox_record(&sandbox.id);
        let hostname = record
            .as_ref()
            .map(|r| r.hostname.clone())
            .or_else(|| sandbox.labels.get(labels::POD_NAME).cloned())
            .unwrap_or_else(|| sandbox.id.clone());
        let cgroups_path = spec::cgroups_path(&pod_uid(&sandbox.labels, &sandbox.id), id);
        let sandbox_files = SANDBOX_FILES
            .iter()
            .map(|(name, dest)| (self.sandbox_dir(&sandbox.id).join(name), dest))
            .filter(|(host, _)| host.is_file())
            .map(|(host_path, dest)| Mount {
                container_path: dest.into(),
                host_path,
                read_only: true,
            })
            .collect();
        let config = &ContainerConfig {
            mounts: spec::with_default_mounts(&config.mounts, sandbox_files),
            ..config.clone()
        };
        let runtime_spec = spec::runtime_spec(&SpecInput {
            config,
            sandbox,
            hostname: &hostname,
            image: &image,
            user,
            cgroups_path: &cgroups_path,
            swap_accounting: Path::new(CGROUP_ROOT)
                .join("memory/memory.memsw.limit_in_bytes")
                .exists(),
            nofile: own_nofile_limit(),
        });
        let bytes = serde_json::to_vec_pretty(&runtime_spec)
            .map_err(|e| Error::Runtime(format!("config.json: {e}")))?;
        let path = dir.join("config.json");
        std::fs::write(&path, bytes).context(|| format!("writing {}", path.display()))?;
        Ok(ContainerRecord {
            id: id.to_string(),
            sandbox_id: sandbox.id.clone(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: image_name,
            log_path: config.log_path.clone(),
            labels: config.labels.clone(),
            cgroups_path,
        })
    }
}

impl ContainerRuntime for RuncRuntime {
    fn name(&self) -> &'static str {
        "runc"
    }

    fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox> {
        let id = sandbox_id(&config.uid)?;
        let _span = tracing::info_span!("run_pod_sandbox", sandbox = %id).entered();
        if let Some(existing) = self.sandbox_record(&id) {
            return Ok(existing.sandbox());
        }
        let dir = self.sandbox_dir(&id);
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let (netns, ip) = match (&self.config.network, config.host_network) {
            (Some(network), false) => {
                let (netns, ip) = network.setup(&id)?;
                (Some(netns), Some(ip))
            }
            _ => (None, None),
        };
        let record = SandboxRecord {
            id: id.clone(),
            hostname: config.hostname.clone(),
            host_network: config.host_network,
            ip,
            netns,
            labels: config.labels.clone(),
        };
        for (name, content) in SANDBOX_FILES
            .iter()
            .zip([&config.etc_hosts, &config.resolv_conf])
            .filter_map(|((name, _), content)| Some((name, content.as_ref()?)))
        {
            let path = dir.join(name);
            std::fs::write(&path, content).context(|| format!("writing {}", path.display()))?;
        }
        shim::write_state(&dir.join("sandbox.json"), &record)?;
        Ok(record.sandbox())
    }

    fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let _span = tracing::info_span!("remove_pod_sandbox", sandbox = %sandbox_id).entered();
        let Some(record) = self.sandbox_record(sandbox_id) else {
            return shim::remove_dir_if_present(&self.sandbox_dir(sandbox_id));
        };
        if let Some(network) = &self.config.network
            && !record.host_network
        {
            network.teardown(sandbox_id)?;
        }
        remove_pod_cgroups(&record.pod_uid());
        shim::remove_dir_if_present(&self.sandbox_dir(sandbox_id))
    }

    fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let dir = self.root.join("sandboxes");
        Ok(shim::read_records::<SandboxRecord>(&dir, "sandbox.json")?
            .into_iter()
            .map(|r| r.sandbox())
            .collect())
    }

    fn create_container(&self, sandbox: &Sandbox, config: &ContainerConfig) -> Result<String> {
        let id = container_id(&sandbox.id, &config.name, config.attempt);
        let _span =
            tracing::info_span!("create_container", container = %id, name = %config.name).entered();
        let dir = self.container_dir(&id);
        if self.record(&id).is_ok() {
            return Ok(id);
        }
        if config.argv.is_empty() {
            return Err(Error::CreateContainer(format!(
                "container {} has no command to run",
                config.name
            )));
        }
        // A half-made bundle from an interrupted create goes first.
        rootfs::teardown(&dir)?;
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        match self.make_bundle(&dir, &id, sandbox, config) {
            Ok(record) => {
                shim::write_state(&dir.join("container.json"), &record)?;
                Ok(id)
            }
            Err(e) => {
                let _ = rootfs::teardown(&dir);
                Err(e)
            }
        }
    }

    fn start_container(&self, container_id: &str) -> Result<()> {
        let _span = tracing::info_span!("start_container", container = %container_id).entered();
        let record = self.record(container_id)?;
        let dir = self.container_dir(container_id);
        if dir.join(STARTED_FILE).exists() {
            return Err(Error::StartContainer(format!(
                "container {container_id} was already started"
            )));
        }
        let v2 = !Path::new(CGROUP_ROOT).join("memory").is_dir();
        let spec = ShimSpec {
            mode: ShimMode::Runc {
                runc: self.config.runc.clone(),
                root: self.state_root(),
                bundle: dir.clone(),
                id: container_id.to_string(),
                memory_cgroup: Some(spec::memory_cgroup_dir(
                    Path::new(CGROUP_ROOT),
                    &record.cgroups_path,
                    v2,
                )),
            },
            log_path: record.log_path,
        };
        shim::write_state(&dir.join(SPEC_FILE), &spec)?;
        shim::launch(&self.config.shim, &dir, START_TIMEOUT).map(|_| ())
    }

    fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        let _span = tracing::info_span!("stop_container", container = %container_id).entered();
        self.record(container_id)?;
        if !self.is_running(container_id) {
            return Ok(());
        }
        self.kill(container_id, "TERM");
        if self.wait_exit(container_id, grace) {
            return Ok(());
        }
        self.kill(container_id, "KILL");
        if self.wait_exit(container_id, KILL_TIMEOUT) {
            Ok(())
        } else {
            Err(Error::Runtime(format!(
                "container {container_id} did not exit after SIGKILL"
            )))
        }
    }

    fn remove_container(&self, container_id: &str) -> Result<()> {
        let _span = tracing::info_span!("remove_container", container = %container_id).entered();
        let dir = self.container_dir(container_id);
        if !dir.exists() {
            return Ok(());
        }
        if self.is_running(container_id) {
            self.kill(container_id, "KILL");
            self.wait_exit(container_id, KILL_TIMEOUT);
        }
        if let Err(e) = self.run_runc(&["delete", "--force", container_id])
            && !e.to_string().contains("does not exist")
        {
            return Err(e);
        }
        rootfs::teardown(&dir)
    }

    fn container_status(&self, container_id: &str) -> Result<ContainerInfo> {
        Ok(self.info(self.record(container_id)?))
    }

    fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        let dir = self.root.join("containers");
        Ok(
            shim::read_records::<ContainerRecord>(&dir, "container.json")?
                .into_iter()
                .map(|r| self.info(r))
                .collect(),
        )
    }

    fn exec_command(&self, container_id: &str, argv: &[String]) -> Result<Command> {
        self.record(container_id)?;
        if !self.is_running(container_id) {
            return Err(Error::Runtime(format!(
                "container {container_id} is not running"
            )));
        }
        if argv.is_empty() {
            return Err(Error::Runtime("exec needs a command".into()));
        }
        let mut cmd = self.runc();
        cmd.arg("exec").arg(container_id).args(argv);
        Ok(cmd)
    }
}
