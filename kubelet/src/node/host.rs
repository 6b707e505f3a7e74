//! Facts about the machine an agent runs on, read once at start-up for the Node's capacity
//! and nodeInfo. Parsing is pure; reading the files is the thin edge.

use std::path::Path;

/// The host as the Node reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Logical CPUs the agent may use.
    pub cpus: u64,
    /// Physical memory in bytes (`MemTotal`).
    pub memory_bytes: u64,
    /// Size of the file system holding the agent's data directory.
    pub ephemeral_storage_bytes: u64,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of /etc/os-release.
    pub os_image: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// This boot's id (changes on reboot, like the kubelet reports).
    pub boot_id: String,
}

/// Reads the host's facts; anything unreadable is left empty/zero rather than failing the
/// agent.
pub fn host_facts(data_dir: &Path) -> HostFacts {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    HostFacts {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1),
        memory_bytes: mem_total_bytes(&read("/proc/meminfo")).unwrap_or(0),
        ephemeral_storage_bytes: filesystem_size(data_dir).unwrap_or(0),
        kernel_version: read("/proc/sys/kernel/osrelease").trim().to_string(),
        os_image: pretty_name(&read("/etc/os-release")).unwrap_or_else(|| "Linux".into()),
        machine_id: read("/etc/machine-id").trim().to_string(),
        boot_id: read("/proc/sys/kernel/random/boot_id").trim().to_string(),
    }
}

/// `MemTotal` of /proc/meminfo in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `PRETTY_NAME` of an os-release file, unquoted.
fn pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(value.trim().trim_matches('"').to_string())
}

/// Total size of the file system holding `path` (the nearest existing ancestor).
fn filesystem_size(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a zeroed out-parameter.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_blocks as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo_and_os_release() {
        let meminfo = "MemTotal:       24580000 kB\nMemFree:        1000 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(24_580_000 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB"), None);
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(os).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(pretty_name(""), None);
    }

    #[test]
    fn reads_this_host() {
        let facts = host_facts(Path::new("/nonexistent/skiff/data"));
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0);
        assert!(facts.ephemeral_storage_bytes > 0, "falls back to /");
    }
}
