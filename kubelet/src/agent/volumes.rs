//! Where a pod's files live on the node, and removing them with the pod.
//!
//! `<data>/pods/<uid>/` holds the pod's volumes and generated files (`etc-hosts`,
//! `resolv.conf`); `<data>/logs/<namespace>_<name>_<uid>/<container>/<attempt>.log` its
//! container logs (Kubernetes' /var/log/pods layout).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use tracing::warn;

use super::AgentConfig;

/// The pod's directory.
pub(crate) fn pod_dir(config: &AgentConfig, uid: &str) -> PathBuf {
    config.data_dir.join("pods").join(uid)
}

/// The directory of the pod's container logs (see [`crate::logs`]).
pub(crate) fn pod_log_dir(data_dir: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    crate::logs::pod_log_dir(&data_dir.join("logs"), namespace, name, uid)
}

/// The log file of one container attempt.
pub(crate) fn container_log_path(
    config: &AgentConfig,
    pod: &Pod,
    container: &str,
    attempt: u32,
) -> PathBuf {
    let m = &pod.metadata;
    pod_log_dir(
        &config.data_dir,
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default(),
    )
    .join(container)
    .join(format!("{attempt}.log"))
}

/// Removes the pod's directory and logs once it is gone from the node. Failures are logged,
/// not fatal: leftovers cost disk, not correctness.
pub(crate) fn remove_pod_dirs(config: &AgentConfig, uid: &str) {
    let dir = pod_dir(config, uid);
    if dir.exists() {
        unmount_below(&dir);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            warn!(dir = %dir.display(), error = %e, "removing the pod directory failed");
        }
    }
    let logs = config.data_dir.join("logs");
    if let Ok(entries) = std::fs::read_dir(&logs) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(&format!("_{uid}"))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Lazily unmounts anything mounted below `dir` (tmpfs emptyDirs), deepest first.
fn unmount_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        if let Ok(c) = std::ffi::CString::new(t) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
