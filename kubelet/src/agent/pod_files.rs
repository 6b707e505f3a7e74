//! The files the kubelet manages for every container of a pod: `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname`, written into the pod's directory once the sandbox
//! (and so the pod IP) exists, and bind-mounted into each container.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::Shared;
use crate::cri::{Mount, Sandbox};
use crate::error::{IoContext, Result};
use crate::network::files::{
    DnsSettings, ResolvConf, etc_hosts, host_network_etc_hosts, pod_hostname, pod_resolv_conf,
};

/// Writes the pod's managed files (atomically: write then rename) and returns their mounts.
pub(crate) fn pod_files(s: &Shared, pod: &Pod, sandbox: &Sandbox) -> Result<Vec<Mount>> {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let dir = super::volumes::pod_dir(&s.config, uid);
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    let hosts = if spec.host_network.unwrap_or(false) {
        host_network_etc_hosts(
            &std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            &spec,
        )
    } else {
        etc_hosts(
            pod,
            &sandbox.ip.into_iter().collect::<Vec<_>>(),
            &s.config.cluster_domain,
        )
    };
    let settings = DnsSettings {
        cluster_dns: s.config.cluster_dns.clone(),
        cluster_domain: s.config.cluster_domain.clone(),
    };
    let host_resolv =
        ResolvConf::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let resolv = pod_resolv_conf(&spec, namespace, &settings, &host_resolv).render();
    let hostname = format!("{}\n", pod_hostname(name, &spec));
    let mut mounts = Vec::new();
    for (file, content, target) in [
        ("etc-hosts", hosts, "/etc/hosts"),
        ("resolv.conf", resolv, "/etc/resolv.conf"),
        ("hostname", hostname, "/etc/hostname"),
    ] {
        let path = dir.join(file);
        write_atomically(&path, content.as_bytes())?;
        mounts.push(Mount {
            container_path: target.into(),
            host_path: path,
            read_only: false,
        });
    }
    Ok(mounts)
}

fn write_atomically(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).context(|| format!("renaming to {}", path.display()))
}
