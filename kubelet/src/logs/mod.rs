//! Container logs as `pods/log` serves them: reading the CRI-format files the shims write.
//!
//! Layout (Kubernetes' `/var/log/pods` one, under the agent's data dir):
//! `logs/<namespace>_<pod>_<uid>/<container>/<attempt>.log`, one file per restart attempt, so
//! `previous` is simply the file of attempt − 1. Only `<attempt>.log` is ever read: the writer
//! may rotate it (rename it away — [`ROTATED_FILE_PATTERN`] documents the name we expect, but
//! nothing here depends on it — and start a fresh `<attempt>.log`); a follower notices the
//! switch by inode and carries on in the new file (see [`reader`]).
//!
//! The parts: [`cri_format`] parses one record, [`options`] reads the request's options,
//! [`tail`] and [`output`] are the pure selection (`tailLines`, `sinceSeconds`/`sinceTime`,
//! `timestamps`, `limitBytes`), [`reader`] does the file I/O and `follow`.

pub mod cri_format;
pub mod options;
pub mod output;
pub mod reader;
pub mod tail;

use std::path::{Path, PathBuf};

pub use cri_format::{Record, Stream, format_record, parse_record, rfc3339_nano};
pub use options::{LogOptions, OptionsError, Since};
pub use reader::stream_log;

/// How rotated files are expected to be named: `<attempt>.log.<n>` (`n` = 1 for the newest).
/// Informational: readers only ever open `<attempt>.log`.
pub const ROTATED_FILE_PATTERN: &str = "<attempt>.log.<n>";

/// The directory of one pod's logs: `<root>/<namespace>_<pod>_<uid>`.
pub fn pod_log_dir(root: &Path, namespace: &str, pod: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{pod}_{uid}"))
}

/// The directory of one container's logs, holding a file per attempt.
pub fn container_log_dir(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join(container)
}

/// The log file of one attempt of a container.
pub fn attempt_log_file(container_dir: &Path, attempt: u32) -> PathBuf {
    container_dir.join(format!("{attempt}.log"))
}

/// The file a request reads: the current attempt's, or with `previous` the one before it
/// (`None` when the current attempt is the first: there is no previous container).
pub fn file_to_read(container_dir: &Path, attempt: u32, previous: bool) -> Option<PathBuf> {
    let attempt = if previous {
        attempt.checked_sub(1)?
    } else {
        attempt
    };
    Some(attempt_log_file(container_dir, attempt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_pod_log_layout() {
        let pod = pod_log_dir(Path::new("/d/logs"), "ns", "web", "u-1");
        assert_eq!(pod, Path::new("/d/logs/ns_web_u-1"));
        let c = container_log_dir(&pod, "app");
        assert_eq!(
            attempt_log_file(&c, 2),
            Path::new("/d/logs/ns_web_u-1/app/2.log")
        );
        assert_eq!(file_to_read(&c, 2, false), Some(c.join("2.log")));
        assert_eq!(file_to_read(&c, 2, true), Some(c.join("1.log")));
        assert_eq!(file_to_read(&c, 0, true), None);
    }
}
