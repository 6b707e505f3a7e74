//! The lab's processes: started detached (own session, output to a log file) so they outlive
//! `skiff lab up`, found again by pid, stopped with SIGTERM and, after a grace period, SIGKILL.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `program args` in its own session with stdout and stderr appended to `log`.
pub fn spawn_detached(program: &str, args: &[String], log: &Path) -> Result<u32, String> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no memory of this process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    Ok(child.id())
}

/// Whether `pid` is a live (not zombie) process whose command line mentions `what` (guards
/// against a recycled pid).
pub fn alive(pid: u32, what: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains(what)
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory effects.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Reaps `pid` if it is our child (after `lab up` itself started it), so it does not linger
/// as a zombie; harmless otherwise.
fn reap(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: waitpid with WNOHANG only inspects our children.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
        }
    }
}

/// SIGTERM, then SIGKILL once `grace` has passed; returns whether it stopped in the grace.
pub fn stop(pid: u32, what: &str, grace: Duration) -> bool {
    if !alive(pid, what) {
        return true;
    }
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(pid);
        if !alive(pid, what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(pid, what);
    false
}

/// SIGKILL, and waits (briefly) until it is gone.
pub fn kill(pid: u32, what: &str) {
    if !alive(pid, what) {
        return;
    }
    signal(pid, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        reap(pid);
        if !alive(pid, what) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
