//! The per-container shim, Skiff's conmon: one small process per container that outlives the
//! agent, so containers keep running (and keep being logged and reaped) while the agent
//! restarts.
//!
//! The driver writes `shim.json` ([`ShimSpec`]) into the container's directory and starts the
//! shim detached (its own session). The shim makes itself a child subreaper, starts the
//! container process with its stdout/stderr on pipes, reports `started.json` (the pid, or the
//! error that prevented the start), copies both pipes into the log file in the CRI format, and
//! when the process exits writes `exit.json` (exit code, time, OOM kill) atomically and exits.
//! Everything the driver needs to know later is in those files, so a restarted agent reads the
//! state back instead of having to have watched it.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Name of the file describing what the shim runs.
pub const SPEC_FILE: &str = "shim.json";
/// Written once the process started (or failed to).
pub const STARTED_FILE: &str = "started.json";
/// Written when the process exited.
pub const EXIT_FILE: &str = "exit.json";

/// Log files are rotated at this size (Kubernetes' containerLogMaxSize default).
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept besides the live one (Kubernetes keeps 5 in all).
pub const LOG_MAX_FILES: u32 = 4;

/// How to start the shim: a program and the arguments that make it act as the shim (the
/// `skiff` binary: `agent shim`; tests: the `skiff-shim` binary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimCommand {
    /// The executable.
    pub program: PathBuf,
    /// Leading arguments before the shim's own.
    pub args: Vec<String>,
}

impl ShimCommand {
    /// This very executable with `args` (e.g. `["agent", "shim"]`).
    pub fn current_exe(args: &[&str]) -> Result<Self> {
        Ok(ShimCommand {
            program: std::env::current_exe().context(|| "finding the agent's executable".into())?,
            args: args.iter().map(|a| a.to_string()).collect(),
        })
    }
}

/// What the shim runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ShimMode {
    /// A host process (the process driver).
    Process {
        /// Program and arguments.
        argv: Vec<String>,
        /// `NAME=value` environment.
        env: Vec<String>,
        /// Working directory.
        cwd: PathBuf,
    },
    /// An OCI container through runc (`runc create` + `runc start`).
    Runc {
        /// The runc binary.
        runc: PathBuf,
        /// runc's `--root`.
        root: PathBuf,
        /// The bundle directory.
        bundle: PathBuf,
        /// The container id.
        id: String,
        /// The container's memory cgroup directory, for reading OOM kills.
        memory_cgroup: Option<PathBuf>,
    },
}

/// `shim.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShimSpec {
    /// What to run.
    pub mode: ShimMode,
    /// The CRI-format log file.
    pub log_path: PathBuf,
}

/// `started.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// The container process (runc: its init), when it started.
    pub pid: Option<i32>,
    /// Why it did not start.
    pub error: Option<String>,
    /// When it started (RFC 3339).
    pub at: jiff::Timestamp,
    /// The kernel's boot id then: after a reboot the pid means nothing any more.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The shim's own pid: while it lives, a container that is gone has an exit record on
    /// the way (the shim reaps, drains the logs, then writes `exit.json`).
    #[serde(default)]
    pub shim_pid: Option<i32>,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), `None` where unreadable.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// `exit.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Exited {
    /// Exit code, 128 + signal when killed.
    pub exit_code: i32,
    /// When it ended.
    pub at: jiff::Timestamp,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
}

/// Reads a JSON state file; `None` when absent or not (yet) complete.
pub fn read_state<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes a JSON state file atomically (temp file + rename), so readers never see half.
pub fn write_state<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Runtime(e.to_string()))?;
    std::fs::write(&tmp, bytes).context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).context(|| format!("renaming {}", path.display()))
}

/// Reads `file` of every directory under `dir` (a driver's sandbox or container records);
/// directories without a readable record (half-created, half-removed) are skipped.
pub fn read_records<T: for<'de> Deserialize<'de>>(dir: &Path, file: &str) -> Result<Vec<T>> {
    let entries = std::fs::read_dir(dir).context(|| format!("listing {}", dir.display()))?;
    Ok(entries
        .flatten()
        .filter_map(|e| read_state::<T>(&e.path().join(file)))
        .collect())
}

/// Removes a driver's state directory; one that is already gone is fine.
pub fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            context: format!("removing {}", dir.display()),
            source: e,
        }),
    }
}

/// Starts the shim for the container directory `dir` (holding `shim.json`) detached from the
/// caller, and waits until it reports the start. Returns the container pid or the start error.
pub fn launch(shim: &ShimCommand, dir: &Path, timeout: Duration) -> Result<i32> {
    let mut cmd = Command::new(&shim.program);
    cmd.args(&shim.args)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; the shim leaves the agent's session and process
    // group so signals to the agent (Ctrl-C, systemd stop) do not reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context(|| format!("starting the shim {}", shim.program.display()))?;
    let started_file = dir.join(STARTED_FILE);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(started) = read_state::<Started>(&started_file) {
            // The shim lives on; reap it in the background when it ends so it is no zombie
            // of a long-lived agent.
            std::thread::spawn(move || child.wait());
            return match (started.pid, started.error) {
                (Some(pid), _) => Ok(pid),
                (None, error) => Err(Error::StartContainer(
                    error.unwrap_or_else(|| "the container did not start".into()),
                )),
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::StartContainer(format!(
                "the shim exited ({status}) before starting the container"
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(Error::StartContainer(format!(
                "the container did not start within {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The shim's entry point: `args` is the container directory. Returns the shim's exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let Some(dir) = args.into_iter().next().map(PathBuf::from) else {
        eprintln!("usage: shim CONTAINER_DIR");
        return ExitCode::from(2);
    };
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::fs::write(dir.join("shim.err"), e.to_string());
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path) -> Result<()> {
    let spec: ShimSpec = read_state(&dir.join(SPEC_FILE))
        .ok_or_else(|| Error::Runtime(format!("no readable {SPEC_FILE} in {}", dir.display())))?;
    // SAFETY: plain prctl; makes orphaned descendants (runc's container init) our children.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if let Some(parent) = spec.log_path.parent() {
        std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    let (out_r, out_w) = std::io::pipe().context(|| "creating the stdout pipe".into())?;
    let (err_r, err_w) = std::io::pipe().context(|| "creating the stderr pipe".into())?;
    let log = LogWriter::open(spec.log_path.clone())?;
    let log = std::sync::Arc::new(std::sync::Mutex::new(log));
    let copiers = [("stdout", out_r), ("stderr", err_r)].map(|(stream, pipe)| {
        let log = log.clone();
        std::thread::spawn(move || copy_lines(pipe, stream, &log))
    });
    let started = start(&spec.mode, out_w, err_w);
    let pid = match started {
        Ok(pid) => pid,
        Err(message) => {
            write_state(
                &dir.join(STARTED_FILE),
                &Started {
                    pid: None,
                    error: Some(message),
                    at: jiff::Timestamp::now(),
                    boot_id: boot_id(),
                    shim_pid: Some(std::process::id() as i32),
                },
            )?;
            return Ok(());
        }
    };
    write_state(
        &dir.join(STARTED_FILE),
        &Started {
            pid: Some(pid),
            error: None,
            at: jiff::Timestamp::now(),
            boot_id: boot_id(),
            shim_pid: Some(std::process::id() as i32),
        },
    )?;
    if let ShimMode::Runc {
        memory_cgroup: Some(cgroup),
        ..
    } = &spec.mode
    {
        let cgroup = cgroup.clone();
        std::thread::spawn(move || kill_on_oom(&cgroup, pid));
    }
    let status = wait_for(pid);
    if matches!(spec.mode, ShimMode::Process { .. }) {
        // Like the end of a pid namespace: whatever the process left running in its group
        // dies with it (and releases the log pipes).
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    // The pipes close once every process holding them is gone; then the logs are complete.
    for c in copiers {
        let _ = c.join();
    }
    let oom_killed = match &spec.mode {
        ShimMode::Runc { memory_cgroup, .. } => {
            memory_cgroup.as_deref().is_some_and(|cg| oom_kills(cg) > 0)
        }
        ShimMode::Process { .. } => false,
    };
    write_state(
        &dir.join(EXIT_FILE),
        &Exited {
            exit_code: status,
            at: jiff::Timestamp::now(),
            oom_killed,
        },
    )
}

/// Starts the container process with the given stdout/stderr; returns its pid or why not.
fn start(
    mode: &ShimMode,
    out: std::io::PipeWriter,
    err: std::io::PipeWriter,
) -> std::result::Result<i32, String> {
    match mode {
        ShimMode::Process { argv, env, cwd } => {
            let Some((program, args)) = argv.split_first() else {
                return Err("no command to run".into());
            };
            // A bare name is looked up on the PATH given in `env` (Rust's Command does so).
            let mut cmd = Command::new(program);
            cmd.args(args)
                .env_clear()
                .envs(env.iter().filter_map(|kv| kv.split_once('=')))
                .current_dir(cwd)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            let child = cmd.spawn().map_err(|e| {
                format!("failed to create containerd task: exec: \"{program}\": {e}")
            })?;
            Ok(child.id() as i32)
        }
        ShimMode::Runc {
            runc,
            root,
            bundle,
            id,
            ..
        } => {
            let pid_file = bundle.join("init.pid");
            let runc_log = bundle.join(RUNC_LOG);
            let output = Command::new(runc)
                .arg("--root")
                .arg(root)
                .arg("--log")
                .arg(&runc_log)
                .args(["--log-format", "json"])
                .args(["create", "--bundle"])
                .arg(bundle)
                .arg("--pid-file")
                .arg(&pid_file)
                .arg(id)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .status()
                .map_err(|e| format!("running {}: {e}", runc.display()))?;
            if !output.success() {
                return Err(runc_message(&runc_log).unwrap_or_else(|| {
                    format!(
                        "runc create failed ({output}); see the container log (bundle {})",
                        bundle.display()
                    )
                }));
            }
            let pid: i32 = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(|| "runc create wrote no pid file".to_string())?;
            let started = Command::new(runc)
                .arg("--root")
                .arg(root)
                .args(["start", id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| format!("running {}: {e}", runc.display()))?;
            if !started.status.success() {
                return Err(format!(
                    "runc start failed: {}",
                    String::from_utf8_lossy(&started.stderr).trim()
                ));
            }
            Ok(pid)
        }
    }
}

/// runc's own log (JSON lines) for `runc create`, kept in the bundle.
pub const RUNC_LOG: &str = "runc.log";

/// The last error runc logged (`{"level":"error","msg":...}` lines of its `--log`), e.g.
/// `runc create failed: unable to start container process: exec: "nope": executable file not
/// found in $PATH`.
fn runc_message(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    last_runc_error(&text)
}

/// The message of the last error-level line of a runc JSON log (pure, for tests).
pub fn last_runc_error(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .filter_map(|v| v["msg"].as_str().map(|m| m.trim().to_string()))
        .rfind(|m| !m.is_empty())
}

/// Reaps children until `pid` exits; returns its shell-style exit code.
fn wait_for(pid: i32) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer; -1 reaps any child (we are a subreaper).
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // No children left: the process is gone without us seeing it (should not happen).
            return 255;
        }
        if reaped == pid {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                return 128 + libc::WTERMSIG(status);
            }
        }
    }
}

/// How often the shim looks at its container's OOM kill counter.
const OOM_POLL: Duration = Duration::from_millis(100);

/// Ends the whole container (SIGKILL to its init, which takes the pid namespace with it) once
/// the kernel OOM-killed any process in its memory cgroup: cgroup v2's `memory.oom.group`,
/// which Kubernetes (1.28+) sets, done by hand because cgroup v1 has no such switch. Without
/// it an OOM-killed child leaves a half-working container running. Runs until the process is
/// gone (the shim exits then).
fn kill_on_oom(cgroup: &Path, pid: i32) {
    loop {
        if oom_kills(cgroup) > 0 {
            // SAFETY: signalling the container's init, our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(OOM_POLL);
    }
}

/// OOM kills recorded for a memory cgroup: v1 `memory.oom_control` (`oom_kill N`) or v2
/// `memory.events` (`oom_kill N`).
pub fn oom_kills(cgroup: &Path) -> u64 {
    ["memory.oom_control", "memory.events"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(cgroup.join(f)).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0)
}

/// Copies one stream into the log, a record per line (lines over 16 KiB are split into
/// partial records, like CRI runtimes do).
fn copy_lines(pipe: std::io::PipeReader, stream: &'static str, log: &std::sync::Mutex<LogWriter>) {
    const MAX_LINE: usize = 16 * 1024;
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(n) => n,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        let full = line.ends_with(b"\n");
        let text = if full {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        log.record(stream, full, text);
    }
}

/// Appends CRI records to a container's log file, rotating it by size.
struct LogWriter {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
}

impl LogWriter {
    fn open(path: PathBuf) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .context(|| format!("opening log {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter { path, file, size })
    }

    fn record(&mut self, stream: &str, full: bool, text: &[u8]) {
        let ts = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
            .to_string();
        let tag = if full { "F" } else { "P" };
        let mut rec = Vec::with_capacity(text.len() + 48);
        rec.extend_from_slice(format!("{ts} {stream} {tag} ").as_bytes());
        rec.extend_from_slice(text);
        rec.push(b'\n');
        if self.size + rec.len() as u64 > LOG_MAX_BYTES {
            self.rotate();
        }
        if self.file.write_all(&rec).is_ok() {
            self.size += rec.len() as u64;
        }
    }

    /// `N.log` → `N.log.1` → ... → `N.log.<LOG_MAX_FILES>` (dropped), then a fresh `N.log`.
    fn rotate(&mut self) {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = std::fs::remove_file(name(LOG_MAX_FILES));
        for i in (1..LOG_MAX_FILES).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        let _ = std::fs::rename(&self.path, name(1));
        if let Ok(file) = std::fs::File::create(&self.path) {
            self.file = file;
            self.size = 0;
        }
    }
}

/// The state of the container in `dir` as its shim's files tell it: not started (or failed to
/// start) → `Created`; an exit file → `Exited`; else `Running` while its process exists, and
/// `Unknown` when the process is gone without an exit record (the host rebooted, the shim was
/// killed). Both drivers read their containers' states this way, so an agent that restarted
/// sees exactly what the shims saw.
pub fn observed_state(dir: &Path) -> crate::cri::ContainerState {
    use crate::cri::ContainerState;
    let Some(Started {
        pid: Some(pid),
        at,
        boot_id: started_boot,
        shim_pid,
        ..
    }) = read_state::<Started>(&dir.join(STARTED_FILE))
    else {
        return ContainerState::Created;
    };
    let exited = |e: Exited| ContainerState::Exited {
        started_at: at,
        finished_at: e.at,
        exit_code: e.exit_code,
        oom_killed: e.oom_killed,
    };
    if let Some(e) = read_state::<Exited>(&dir.join(EXIT_FILE)) {
        return exited(e);
    }
    // Started before the host rebooted: the pid may belong to anything now.
    let same_boot = started_boot.is_none() || started_boot == boot_id();
    // SAFETY: signal 0 only checks that the process exists (a zombie not yet reaped by the
    // shim still counts: its exit is about to be recorded).
    let alive = |pid: i32| same_boot && unsafe { libc::kill(pid, 0) } == 0;
    if alive(pid) {
        return ContainerState::Running { started_at: at };
    }
    // Reaped but not yet recorded: still running as far as anyone can tell, for the few
    // milliseconds until the shim writes the exit (reporting Unknown here would get the
    // container replaced at once, skipping the crash-loop back-off).
    if shim_pid.is_some_and(alive) && read_state::<Exited>(&dir.join(EXIT_FILE)).is_none() {
        return ContainerState::Running { started_at: at };
    }
    // It may have exited between the two looks.
    match read_state::<Exited>(&dir.join(EXIT_FILE)) {
        Some(e) => exited(e),
        None => ContainerState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::ContainerState;

    #[test]
    fn state_follows_the_shim_files() {
        let dir = tempfile::tempdir().unwrap();
        let started = |pid: Option<i32>, boot: Option<String>| Started {
            pid,
            error: None,
            at: jiff::Timestamp::UNIX_EPOCH,
            boot_id: boot,
            shim_pid: None,
        };
        let me = std::process::id() as i32;
        let state = || observed_state(dir.path());
        assert_eq!(state(), ContainerState::Created, "nothing written");
        write_state(&dir.path().join(STARTED_FILE), &started(None, boot_id())).unwrap();
        assert_eq!(state(), ContainerState::Created, "failed start");
        write_state(
            &dir.path().join(STARTED_FILE),
            &started(Some(me), boot_id()),
        )
        .unwrap();
        assert!(matches!(state(), ContainerState::Running { .. }));
        let other_boot = Some("00000000-0000-0000-0000-000000000000".to_string());
        write_state(
            &dir.path().join(STARTED_FILE),
            &started(Some(me), other_boot),
        )
        .unwrap();
        assert_eq!(state(), ContainerState::Unknown, "started before a reboot");
        let mut done = std::process::Command::new("true").spawn().unwrap();
        done.wait().unwrap();
        let gone = done.id() as i32;
        let recording = Started {
            shim_pid: Some(me),
            ..started(Some(gone), boot_id())
        };
        write_state(&dir.path().join(STARTED_FILE), &recording).unwrap();
        assert!(
            matches!(state(), ContainerState::Running { .. }),
            "exited, the living shim is about to record it"
        );
        let orphaned = Started {
            shim_pid: Some(gone),
            ..started(Some(gone), boot_id())
        };
        write_state(&dir.path().join(STARTED_FILE), &orphaned).unwrap();
        assert_eq!(state(), ContainerState::Unknown, "process and shim gone");
        let exited = Exited {
            exit_code: 3,
            at: jiff::Timestamp::UNIX_EPOCH,
            oom_killed: true,
        };
        write_state(&dir.path().join(EXIT_FILE), &exited).unwrap();
        assert!(matches!(
            state(),
            ContainerState::Exited {
                exit_code: 3,
                oom_killed: true,
                ..
            }
        ));
    }

    #[test]
    fn finds_the_last_runc_error() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            (r#"{"level":"info","msg":"hi"}"#, None),
            (
                "{\"level\":\"error\",\"msg\":\"first\"}\nnot json\n{\"level\":\"error\",\"msg\":\"exec: \\\"nope\\\": not found\"}\n{\"level\":\"info\",\"msg\":\"x\"}",
                Some("exec: \"nope\": not found"),
            ),
        ];
        for (log, want) in cases {
            assert_eq!(last_runc_error(log).as_deref(), *want, "{log}");
        }
    }
}
