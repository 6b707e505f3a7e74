//! The OCI runtime spec (`config.json`) of a container, generated purely from what the agent
//! asked for ([`ContainerConfig`]), the pod's [`Sandbox`] and the image's defaults.
//!
//! Defaults follow what Docker and containerd give a container: its own pid, ipc, uts and mount
//! namespaces (the network one is the pod's, joined by path), the usual pseudo file systems,
//! Docker's default capability set, masked and read-only kernel paths, and a cgroup per
//! container below one per pod so limits and OOM kills are visible per container.

use std::path::Path;

use serde_json::{Value, json};

use crate::cri::{ContainerConfig, Resources, Sandbox};
use crate::image::ImageConfig;
use crate::image::config::merge_env;

/// `PATH` for containers whose image and spec set none (what Docker uses).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The CFS period every container gets; quotas are expressed against it.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Open files a container may have (Docker's and containerd's default), capped by what the
/// agent itself may have (raising a hard limit needs CAP_SYS_RESOURCE, which the agent may
/// lack in a nested environment).
pub const NOFILE: u64 = 1_048_576;

/// Docker's default capability set for unprivileged containers.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Kernel paths hidden from containers (bind-mounted over with /dev/null or an empty tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Kernel paths containers may read but not write.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Everything the spec is made from.
#[derive(Clone, Debug)]
pub struct SpecInput<'a> {
    /// What the agent asked for.
    pub config: &'a ContainerConfig,
    /// The pod's sandbox (its network namespace).
    pub sandbox: &'a Sandbox,
    /// The pod's hostname.
    pub hostname: &'a str,
    /// The image's defaults (env, working dir).
    pub image: &'a ImageConfig,
    /// uid and gid the process runs as (resolved from the image's `User`).
    pub user: (u32, u32),
    /// The container's cgroup, see [`cgroups_path`].
    pub cgroups_path: &'a str,
    /// Whether the host can limit swap, see [`resources`].
    pub swap_accounting: bool,
    /// `RLIMIT_NOFILE` (soft = hard), at most [`NOFILE`].
    pub nofile: u64,
}

/// The cgroup of a container: one directory per pod holding one per container, below
/// `/skiff` (cgroupfs paths, relative to each v1 controller's mount).
pub fn cgroups_path(pod_uid: &str, container_id: &str) -> String {
    format!("{}/{container_id}", pod_cgroup(pod_uid))
}

/// The pod's cgroup (parent of its containers'), removed with the sandbox: runc deletes only
/// the containers' own.
pub fn pod_cgroup(pod_uid: &str) -> String {
    let pod = pod_uid.replace('-', "_");
    format!("/skiff/pod{pod}")
}

/// CFS quota for a CPU limit in millicores (Kubernetes' formula, at least 1 ms).
pub fn cpu_quota(limit_millis: u64) -> i64 {
    ((limit_millis * CPU_PERIOD_US) / 1000).max(1000) as i64
}

/// cgroup v1 `cpu.shares` for a CPU request in millicores (Kubernetes' formula: 1024 per core,
/// at least 2; no request → 2, the lowest, as for BestEffort pods).
pub fn cpu_shares(request_millis: Option<u64>) -> u64 {
    request_millis.map_or(2, |m| ((m * 1024) / 1000).max(2))
}

/// `linux.resources` for the container's limits; devices are denied except runc's defaults.
/// `swap_accounting`: the host's memory cgroup can limit swap (`memory.memsw.*`), so the swap
/// limit is set equal to the memory limit (no swapping, as in Kubernetes); without it runc
/// would refuse any swap setting.
pub fn resources(r: &Resources, swap_accounting: bool) -> Value {
    let mut out = json!({ "devices": [{"allow": false, "access": "rwm"}] });
    if let Some(bytes) = r.memory_limit_bytes {
        // The same limit for memory+swap: a container over its limit is OOM-killed rather
        // than swapped, as in Kubernetes.
        out["memory"] = json!({"limit": bytes});
        if swap_accounting {
            out["memory"]["swap"] = json!(bytes);
        }
    }
    let mut cpu = json!({ "shares": cpu_shares(r.cpu_request_millis.or(r.cpu_limit_millis)) });
    if let Some(limit) = r.cpu_limit_millis {
        cpu["quota"] = json!(cpu_quota(limit));
        cpu["period"] = json!(CPU_PERIOD_US);
    }
    out["cpu"] = cpu;
    out
}

/// The pseudo file systems every container gets, then the requested bind mounts.
pub fn mounts(config: &ContainerConfig) -> Vec<Value> {
    let mut out = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                           "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for m in &config.mounts {
        let mode = if m.read_only { "ro" } else { "rw" };
        out.push(json!({
            "destination": m.container_path,
            "type": "bind",
            "source": m.host_path,
            "options": ["rbind", "rprivate", mode],
        }));
    }
    out
}

/// Namespaces: new pid, ipc, uts and mount ones; the pod's network namespace when it has one
/// (none listed = the host's, for host-network pods).
pub fn namespaces(sandbox: &Sandbox) -> Vec<Value> {
    let mut out: Vec<Value> = ["pid", "ipc", "uts", "mount"]
        .iter()
        .map(|t| json!({"type": t}))
        .collect();
    if let Some(netns) = &sandbox.netns {
        out.push(json!({"type": "network", "path": netns}));
    }
    out
}

/// The container's environment: the image's, overridden by the spec's, with a default `PATH`
/// and `HOSTNAME` when neither sets them.
pub fn environment(image: &[String], config: &[String], hostname: &str) -> Vec<String> {
    let mut env = merge_env(image, config);
    if !env.iter().any(|kv| kv.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|kv| kv.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }
    env
}

/// The working directory: the spec's, else the image's, else `/`.
pub fn cwd(config: &ContainerConfig, image: &ImageConfig) -> String {
    config
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| "/".into())
}

/// The complete `config.json` (root file system `rootfs` inside the bundle).
pub fn runtime_spec(input: &SpecInput<'_>) -> Value {
    let caps: Vec<&str> = DEFAULT_CAPABILITIES.to_vec();
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": input.user.0, "gid": input.user.1},
            "args": input.config.argv,
            "env": environment(&input.image.env, &input.config.env, input.hostname),
            "cwd": cwd(input.config, input.image),
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": input.nofile.min(NOFILE),
                         "soft": input.nofile.min(NOFILE)}],
            "noNewPrivileges": false,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": input.hostname,
        "mounts": mounts(input.config),
        "linux": {
            "namespaces": namespaces(input.sandbox),
            "cgroupsPath": input.cgroups_path,
            "resources": resources(&input.config.resources, input.swap_accounting),
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    })
}

/// Resolves an image `User` (`uid[:gid]` or `name[:group]`) against the container's
/// `/etc/passwd` and `/etc/group` contents (pure: the caller reads the files). `None` → root.
pub fn resolve_user(
    user: Option<&str>,
    passwd: &str,
    group: &str,
) -> std::result::Result<(u32, u32), String> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok((0, 0));
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = |table: &str, name: &str| -> Option<Vec<String>> {
        table
            .lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.first().is_some_and(|n| n == name))
    };
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(uid) => {
            let gid = passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.get(2) == Some(&u))
                .and_then(|f| f.get(3).and_then(|g| g.parse().ok()))
                .unwrap_or(0);
            (uid, gid)
        }
        Err(_) => {
            let f = entry(passwd, u).ok_or_else(|| format!("no user {u:?} in /etc/passwd"))?;
            let num = |i: usize| f.get(i).and_then(|s| s.parse::<u32>().ok());
            (
                num(2).ok_or_else(|| format!("bad /etc/passwd entry for {u:?}"))?,
                num(3).unwrap_or(0),
            )
        }
    };
    let gid = match g {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => entry(group, g)
                .and_then(|f| f.get(2).and_then(|s| s.parse().ok()))
                .ok_or_else(|| format!("no group {g:?} in /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

/// The memory cgroup directory runc creates for `cgroups_path` on a cgroup v1 host (where
/// the shim reads OOM kills), or the unified one on a pure cgroup v2 host.
pub fn memory_cgroup_dir(cgroup_root: &Path, cgroups_path: &str, v2: bool) -> std::path::PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    if v2 {
        cgroup_root.join(rel)
    } else {
        cgroup_root.join("memory").join(rel)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::cri::Mount;

    fn sandbox(netns: Option<&str>) -> Sandbox {
        Sandbox {
            id: "pod1".into(),
            ip: None,
            netns: netns.map(PathBuf::from),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn cpu_and_memory_limits_become_cgroup_settings() {
        // (limit millis, request millis, memory, quota, shares)
        type Case = (Option<u64>, Option<u64>, Option<u64>, Option<i64>, u64);
        let cases: &[Case] = &[
            (None, None, None, None, 2),
            (Some(500), None, None, Some(50_000), 512),
            (Some(2000), Some(250), None, Some(200_000), 256),
            (Some(1), None, None, Some(1000), 2),
            (None, Some(100), Some(16 << 20), None, 102),
        ];
        for (limit, request, memory, quota, shares) in cases {
            let r = resources(
                &Resources {
                    cpu_limit_millis: *limit,
                    cpu_request_millis: *request,
                    memory_limit_bytes: *memory,
                },
                true,
            );
            assert_eq!(r["cpu"]["shares"], json!(shares), "{limit:?} {request:?}");
            assert_eq!(r["cpu"]["quota"].as_i64(), *quota);
            assert_eq!(
                r["cpu"]["period"].as_u64(),
                quota.map(|_| CPU_PERIOD_US),
                "period only with a quota"
            );
            assert_eq!(r["memory"]["limit"].as_u64(), *memory);
            assert_eq!(r["memory"]["swap"].as_u64(), *memory);
            assert_eq!(r["devices"][0]["allow"], json!(false));
        }
    }

    #[test]
    fn network_namespace_is_joined_only_when_the_pod_has_one() {
        let types = |s: &Sandbox| -> Vec<(String, Option<String>)> {
            namespaces(s)
                .iter()
                .map(|n| {
                    (
                        n["type"].as_str().unwrap().to_string(),
                        n["path"].as_str().map(str::to_string),
                    )
                })
                .collect()
        };
        let host = types(&sandbox(None));
        assert_eq!(host.len(), 4);
        assert!(host.iter().all(|(t, p)| t != "network" && p.is_none()));
        let pod = types(&sandbox(Some("/run/netns/p")));
        assert!(pod.contains(&("network".into(), Some("/run/netns/p".into()))));
    }

    #[test]
    fn environment_merges_and_defaults() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (
                &[],
                &[],
                &[
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOSTNAME=h",
                ],
            ),
            (
                &["PATH=/img"],
                &["A=1"],
                &["PATH=/img", "A=1", "HOSTNAME=h"],
            ),
            (
                &["PATH=/img", "A=0"],
                &["A=1", "PATH=/x", "HOSTNAME=o"],
                &["PATH=/x", "A=1", "HOSTNAME=o"],
            ),
        ];
        for (image, config, want) in cases {
            assert_eq!(environment(&v(image), &v(config), "h"), v(want));
        }
    }

    #[test]
    fn working_dir_prefers_the_spec_then_the_image() {
        let cases = [
            (None, None, "/"),
            (None, Some("/img"), "/img"),
            (Some("/spec"), Some("/img"), "/spec"),
            (Some(""), Some("/img"), "/img"),
        ];
        for (spec, image, want) in cases {
            let config = ContainerConfig {
                working_dir: spec.map(str::to_string),
                ..ContainerConfig::default()
            };
            let image = ImageConfig {
                working_dir: image.map(str::to_string),
                ..ImageConfig::default()
            };
            assert_eq!(cwd(&config, &image), want);
        }
    }

    #[test]
    fn users_resolve_by_number_or_name() {
        let passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
        let group = "root:x:0:\nstaff:x:50:\n";
        type Case<'a> = (Option<&'a str>, Option<(u32, u32)>);
        let cases: &[Case] = &[
            (None, Some((0, 0))),
            (Some(""), Some((0, 0))),
            (Some("1000"), Some((1000, 1001))),
            (Some("4242"), Some((4242, 0))),
            (Some("app"), Some((1000, 1001))),
            (Some("app:staff"), Some((1000, 50))),
            (Some("1000:7"), Some((1000, 7))),
            (Some("nobody"), None),
            (Some("app:nogroup"), None),
        ];
        for (user, want) in cases {
            assert_eq!(resolve_user(*user, passwd, group).ok(), *want, "{user:?}");
        }
    }

    #[test]
    fn spec_has_the_container_defaults() {
        let config = ContainerConfig {
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            mounts: vec![Mount {
                container_path: "/data".into(),
                host_path: "/var/lib/x".into(),
                read_only: true,
            }],
            ..ContainerConfig::default()
        };
        let spec = runtime_spec(&SpecInput {
            config: &config,
            sandbox: &sandbox(Some("/run/netns/p")),
            hostname: "web-0",
            image: &ImageConfig::default(),
            user: (0, 0),
            cgroups_path: &cgroups_path("a-b", "c1"),
            swap_accounting: false,
            nofile: u64::MAX,
        });
        assert_eq!(spec["process"]["args"], json!(["sh", "-c", "true"]));
        assert_eq!(spec["hostname"], json!("web-0"));
        assert_eq!(spec["root"]["path"], json!("rootfs"));
        assert_eq!(spec["linux"]["cgroupsPath"], json!("/skiff/poda_b/c1"));
        let dests: Vec<&str> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/data",
        ] {
            assert!(dests.contains(&d), "{d} mounted");
        }
        let data = &spec["mounts"].as_array().unwrap()[7];
        assert_eq!(data["options"], json!(["rbind", "rprivate", "ro"]));
        let caps = spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert!(caps.contains(&json!("CAP_NET_BIND_SERVICE")));
        assert!(!caps.contains(&json!("CAP_SYS_ADMIN")));
        assert_eq!(
            spec["process"]["rlimits"][0]["type"],
            json!("RLIMIT_NOFILE")
        );
        assert_eq!(spec["process"]["rlimits"][0]["hard"], json!(NOFILE));
        assert!(
            spec["linux"]["maskedPaths"]
                .as_array()
                .unwrap()
                .contains(&json!("/proc/kcore"))
        );
    }

    #[test]
    fn memory_cgroup_follows_the_hierarchy() {
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            memory_cgroup_dir(root, "/skiff/podx/c", false),
            PathBuf::from("/sys/fs/cgroup/memory/skiff/podx/c")
        );
        assert_eq!(
            memory_cgroup_dir(root, "/skiff/podx/c", true),
            PathBuf::from("/sys/fs/cgroup/skiff/podx/c")
        );
    }
}
