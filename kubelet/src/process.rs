//! The `process` driver, for unprivileged development: a container is a plain host process
//! (in its own process group, under a [`crate::shim`] so it outlives agent restarts) with the
//! pod's command, environment and working directory. **No isolation**: no image (the command
//! must exist on the host), no root filesystem, no mounts (volumes are not visible), no
//! limits, and the host's network (pods share the node's IP and ports). Documented as a
//! development mode, like DESIGN.md says.
//!
//! State lives under `<data dir>/process/`: `sandboxes/<id>/sandbox.json` and
//! `containers/<id>/{container.json, shim.json, started.json, exit.json}`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cri::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, Sandbox, SandboxConfig,
};
use crate::error::{Error, IoContext, Result};
use crate::shim::{
    self, EXIT_FILE, SPEC_FILE, STARTED_FILE, ShimCommand, ShimMode, ShimSpec, Started,
};

/// `PATH` given to containers whose environment has none (what images usually set).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a shim may take to report a start.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The process driver.
pub struct ProcessRuntime {
    root: PathBuf,
    shim: ShimCommand,
}

#[derive(Serialize, Deserialize)]
struct SandboxRecord {
    id: String,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerRecord {
    id: String,
    sandbox_id: String,
    name: String,
    attempt: u32,
    image: String,
    log_path: PathBuf,
    labels: BTreeMap<String, String>,
    argv: Vec<String>,
    env: Vec<String>,
    cwd: PathBuf,
}

/// A stable container id for (sandbox, name, attempt), so a retried create finds its own.
fn container_id(sandbox: &str, name: &str, attempt: u32) -> String {
    let digest = Sha256::digest(format!("{sandbox}/{name}/{attempt}"));
    hex::encode(&digest[..12])
}

impl ProcessRuntime {
    /// A driver keeping its state under `<data_dir>/process`, running containers under `shim`.
    pub fn new(data_dir: &Path, shim: ShimCommand) -> Result<Self> {
        let root = data_dir.join("process");
        for dir in ["sandboxes", "containers"] {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).context(|| format!("creating {}", d.display()))?;
        }
        Ok(ProcessRuntime { root, shim })
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.root.join("sandboxes").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn record(&self, id: &str) -> Result<ContainerRecord> {
        shim::read_state(&self.container_dir(id).join("container.json"))
            .ok_or_else(|| Error::Runtime(format!("no such container {id}")))
    }

    fn state(&self, id: &str) -> ContainerState {
        shim::observed_state(&self.container_dir(id))
    }

    fn info(&self, record: ContainerRecord) -> ContainerInfo {
        let state = self.state(&record.id);
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

    /// The pid of a running container.
    fn running_pid(&self, id: &str) -> Option<i32> {
        match self.state(id) {
            ContainerState::Running { .. } => {
                shim::read_state::<Started>(&self.container_dir(id).join(STARTED_FILE))?.pid
            }
            _ => None,
        }
    }

    /// Waits up to `timeout` for the container's exit to be recorded.
    fn wait_exit(&self, id: &str, timeout: Duration) -> bool {
        let exit = self.container_dir(id).join(EXIT_FILE);
        let deadline = Instant::now() + timeout;
        loop {
            if exit.exists() || !matches!(self.state(id), ContainerState::Running { .. }) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn signal_group(pid: i32, signal: i32) {
    // SAFETY: the container is its own process group led by `pid`.
    unsafe { libc::kill(-pid, signal) };
}

impl ContainerRuntime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox> {
        let id = config.uid.clone();
        let dir = self.sandbox_dir(&id);
        std::fs::create_dir_all(dir.join("work"))
            .context(|| format!("creating {}", dir.display()))?;
        let record = SandboxRecord {
            id: id.clone(),
            labels: config.labels.clone(),
        };
        shim::write_state(&dir.join("sandbox.json"), &record)?;
        Ok(Sandbox {
            id,
            ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            netns: None,
            labels: record.labels,
        })
    }

    fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<()> {
        shim::remove_dir_if_present(&self.sandbox_dir(sandbox_id))
    }

    fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let dir = self.root.join("sandboxes");
        Ok(shim::read_records::<SandboxRecord>(&dir, "sandbox.json")?
            .into_iter()
            .map(|r| Sandbox {
                id: r.id,
                ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                netns: None,
                labels: r.labels,
            })
            .collect())
    }

    fn create_container(&self, sandbox: &Sandbox, config: &ContainerConfig) -> Result<String> {
        let id = container_id(&sandbox.id, &config.name, config.attempt);
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let mut env = config.env.clone();
        if !env.iter().any(|kv| kv.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        let work = self.sandbox_dir(&sandbox.id).join("work");
        let cwd = match &config.working_dir {
            Some(d) if Path::new(d).is_absolute() => PathBuf::from(d),
            Some(d) => work.join(d),
            None => work,
        };
        let record = ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox.id.clone(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            log_path: config.log_path.clone(),
            labels: config.labels.clone(),
            argv: config.argv.clone(),
            env,
            cwd,
        };
        shim::write_state(&dir.join("container.json"), &record)?;
        Ok(id)
    }

    fn start_container(&self, container_id: &str) -> Result<()> {
        let record = self.record(container_id)?;
        let dir = self.container_dir(container_id);
        if dir.join(STARTED_FILE).exists() {
            return Err(Error::StartContainer(format!(
                "container {container_id} was already started"
            )));
        }
        let spec = ShimSpec {
            mode: ShimMode::Process {
                argv: record.argv,
                env: record.env,
                cwd: record.cwd,
            },
            log_path: record.log_path,
        };
        shim::write_state(&dir.join(SPEC_FILE), &spec)?;
        shim::launch(&self.shim, &dir, START_TIMEOUT).map(|_| ())
    }

    fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        let Some(pid) = self.running_pid(container_id) else {
            return Ok(());
        };
        signal_group(pid, libc::SIGTERM);
        if self.wait_exit(container_id, grace) {
            return Ok(());
        }
        signal_group(pid, libc::SIGKILL);
        if self.wait_exit(container_id, Duration::from_secs(10)) {
            Ok(())
        } else {
            Err(Error::Runtime(format!(
                "container {container_id} did not exit after SIGKILL"
            )))
        }
    }

    fn remove_container(&self, container_id: &str) -> Result<()> {
        if let Some(pid) = self.running_pid(container_id) {
            signal_group(pid, libc::SIGKILL);
            self.wait_exit(container_id, Duration::from_secs(10));
        }
        shim::remove_dir_if_present(&self.container_dir(container_id))
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
        let record = self.record(container_id)?;
        if self.running_pid(container_id).is_none() {
            return Err(Error::Runtime(format!(
                "container {container_id} is not running"
            )));
        }
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::Runtime("exec needs a command".into()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(record.env.iter().filter_map(|kv| kv.split_once('=')))
            .current_dir(&record.cwd);
        Ok(cmd)
    }
}
