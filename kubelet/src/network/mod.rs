//! The node's pod network: a network namespace and an IP from the node's pod CIDR per sandbox,
//! through the standard CNI plugins (`bridge`, `host-local`, `loopback`).
//!
//! [`CniNetwork`] implements [`crate::cri::PodNetwork`]. Pure parts: [`config`] (the network
//! config list), [`result`] (plugin output), [`files`] (`/etc/hosts`, `/etc/resolv.conf`).
//! Side effects: [`netns`] (namespaces), [`cni`] (plugin processes), [`routes`] (host routes).
//!
//! Everything node-side (bridge, veths, routes, plugin processes) happens in the agent's own
//! network namespace, or in [`config::NetworkConfig::node_netns`] when set: in the lab each
//! node agent runs in a namespace of its own, and tests use a throwaway one.

pub mod cni;
pub mod config;
pub mod files;
pub mod netns;
pub mod node_routes;
pub mod result;
pub mod routes;
pub mod topology;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, info_span, warn};

pub use config::{Ipv4Cidr, NetworkConfig};

use crate::cri::PodNetwork;
use crate::error::{Error, IoContext, Result};
use cni::{Attachment, Executor, validate_container_id};
use result::CniResult;

/// The interface name of the pod's network inside its namespace.
pub const POD_IFNAME: &str = "eth0";

/// What is remembered of a successful ADD, like libcni's result cache: the result is the
/// `prevResult` DEL and CHECK need, the config is the one ADD ran with (DEL must undo *that*,
/// even if the node's configuration changed since), and a second `setup` answers from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedAttachment {
    kind: String,
    container_id: String,
    if_name: String,
    network_name: String,
    netns: PathBuf,
    config: Value,
    result: Value,
}

const CACHE_KIND: &str = "skiffCniCacheV1";

/// One lock per sandbox id: operations on one sandbox are serialized, different sandboxes
/// proceed in parallel (a pod burst must not queue behind one lock).
#[derive(Default)]
struct SandboxLocks(Mutex<HashMap<String, Arc<Mutex<()>>>>);

impl SandboxLocks {
    fn get(&self, id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Drops the entry once nobody else holds or waits for it.
    fn forget(&self, id: &str, held: &Arc<Mutex<()>>) {
        let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // One reference in the map, one held by the caller.
        if Arc::strong_count(held) <= 2 {
            locks.remove(id);
        }
    }
}

/// The CNI implementation of [`PodNetwork`].
pub struct CniNetwork {
    config: NetworkConfig,
    list: Value,
    executor: Executor,
    locks: SandboxLocks,
}

impl CniNetwork {
    /// Prepares the node: state directories, the namespace directory, the unreachable routes
    /// for the pod and service ranges.
    /// Idempotent, so an agent restart simply calls it again. The bridge itself is created by
    /// the bridge plugin on the first ADD.
    pub fn new(config: NetworkConfig) -> Result<Self> {
        config.validate().map_err(Error::Network)?;
        for dir in [config.results_dir(), config.ipam_dir()] {
            std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        }
        netns::prepare_dir(&config.netns_dir)?;
        routes::ensure_unreachable(
            &[config.cluster_cidr, config.service_cidr],
            config.node_netns.as_deref(),
        )?;
        info!(pod_cidr = %config.pod_cidr, bridge = %config.bridge, "pod network ready");
        Ok(Self {
            list: config::network_config_list(&config),
            executor: Executor::new(
                config.plugin_dirs.clone(),
                config.node_netns.clone(),
                config.plugin_timeout,
            ),
            config,
            locks: SandboxLocks::default(),
        })
    }

    /// The configuration this network runs with.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The namespace path a sandbox gets.
    pub fn netns_path(&self, sandbox_id: &str) -> PathBuf {
        self.config.netns_dir.join(sandbox_id)
    }

    fn cache_path(&self, sandbox_id: &str) -> PathBuf {
        self.config.results_dir().join(format!("{sandbox_id}.json"))
    }

    fn read_cache(&self, sandbox_id: &str) -> Option<CachedAttachment> {
        let path = self.cache_path(sandbox_id);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<CachedAttachment>(&bytes) {
            Ok(cached) if cached.kind == CACHE_KIND => Some(cached),
            Ok(_) | Err(_) => {
                warn!(path = %path.display(), "ignoring unreadable CNI result cache");
                None
            }
        }
    }

    fn write_cache(&self, sandbox_id: &str, cached: &CachedAttachment) -> Result<()> {
        let path = self.cache_path(sandbox_id);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(cached).expect("JSON values serialize");
        std::fs::write(&tmp, bytes).context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).context(|| format!("renaming to {}", path.display()))
    }

    fn remove_cache(&self, sandbox_id: &str) -> Result<()> {
        let path = self.cache_path(sandbox_id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    fn attachment(&self, sandbox_id: &str, netns: Option<&Path>) -> Attachment {
        Attachment {
            container_id: sandbox_id.to_string(),
            netns: netns.map(Path::to_path_buf),
            ifname: POD_IFNAME.to_string(),
        }
    }

    /// ADDs a fresh attachment in a new namespace; on any failure undoes what it did.
    fn attach(&self, sandbox_id: &str) -> Result<(PathBuf, IpAddr)> {
        let path = netns::create(&self.config.netns_dir, sandbox_id)?;
        let attachment = self.attachment(sandbox_id, Some(&path));
        let attached = self
            .executor
            .add(&self.list, &attachment)
            .and_then(|result| {
                let ip = CniResult::from_value(&result)
                    .map_err(Error::Network)?
                    .pod_ip(POD_IFNAME)
                    .ok_or_else(|| {
                        Error::Network(format!(
                            "CNI result assigns no IP to {POD_IFNAME}: {result}"
                        ))
                    })?;
                self.write_cache(
                    sandbox_id,
                    &CachedAttachment {
                        kind: CACHE_KIND.into(),
                        container_id: sandbox_id.into(),
                        if_name: POD_IFNAME.into(),
                        network_name: self.config.name.clone(),
                        netns: path.clone(),
                        config: self.list.clone(),
                        result,
                    },
                )?;
                Ok(ip)
            });
        match attached {
            Ok(ip) => Ok((path, ip)),
            Err(e) => {
                // Release a half-made attachment (an allocated IP, a veth) and the namespace.
                if let Err(undo) = self.executor.del(&self.list, &attachment, None) {
                    warn!(error = %undo, "undoing a failed CNI ADD");
                }
                if let Err(undo) = netns::delete(&path) {
                    warn!(error = %undo, "removing the namespace of a failed CNI ADD");
                }
                Err(e)
            }
        }
    }

    /// The sandboxes that have an attachment (a cached ADD result), sorted: after a restart
    /// the agent tears down those it no longer has a pod for.
    pub fn attached_sandboxes(&self) -> Result<Vec<String>> {
        let dir = self.config.results_dir();
        let entries = std::fs::read_dir(&dir).context(|| format!("listing {}", dir.display()))?;
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?;
                validate_container_id(id).is_ok().then(|| id.to_string())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Runs CNI CHECK for a set-up sandbox: the plugins verify the interfaces, addresses and
    /// routes are still as ADD left them.
    pub fn check(&self, sandbox_id: &str) -> Result<()> {
        validate_container_id(sandbox_id)?;
        let cached = self.read_cache(sandbox_id).ok_or_else(|| {
            Error::Network(format!(
                "sandbox {sandbox_id} has no pod network attachment"
            ))
        })?;
        let attachment = self.attachment(sandbox_id, Some(&cached.netns));
        self.executor
            .check(&cached.config, &attachment, &cached.result)
    }
}

impl PodNetwork for CniNetwork {
    fn setup(&self, sandbox_id: &str) -> Result<(PathBuf, IpAddr)> {
        validate_container_id(sandbox_id)?;
        let _span = info_span!("pod_network_setup", sandbox = sandbox_id).entered();
        let lock = self.locks.get(sandbox_id);
        let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = self.read_cache(sandbox_id) {
            let ip = CniResult::from_value(&cached.result)
                .ok()
                .and_then(|r| r.pod_ip(POD_IFNAME));
            if let Some(ip) = ip
                && netns::is_netns(&cached.netns)
            {
                return Ok((cached.netns, ip));
            }
            // The namespace is gone (e.g. the host rebooted and /run was emptied) while the
            // IP lease survived on disk: release it and attach afresh.
            warn!("cached pod network attachment is stale; recreating it");
            let attachment = self.attachment(sandbox_id, None);
            self.executor
                .del(&cached.config, &attachment, Some(&cached.result))?;
            self.remove_cache(sandbox_id)?;
        } else if netns::is_netns(&self.netns_path(sandbox_id)) {
            // A namespace without a cached result: an earlier setup died between creating it
            // and recording the result (nothing has used it: setup never returned it). Undo
            // whatever it got to, so ADD starts clean instead of tripping over its `eth0`.
            warn!("pod network namespace without a cached result; recreating it");
            let path = self.netns_path(sandbox_id);
            self.executor
                .del(&self.list, &self.attachment(sandbox_id, Some(&path)), None)?;
            netns::delete(&path)?;
        }
        let (path, ip) = self.attach(sandbox_id)?;
        info!(%ip, netns = %path.display(), "pod network attached");
        Ok((path, ip))
    }

    fn teardown(&self, sandbox_id: &str) -> Result<()> {
        if validate_container_id(sandbox_id).is_err() {
            // Such a sandbox cannot have been set up.
            return Ok(());
        }
        let _span = info_span!("pod_network_teardown", sandbox = sandbox_id).entered();
        let lock = self.locks.get(sandbox_id);
        let held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = self.read_cache(sandbox_id);
        let path = cached
            .as_ref()
            .map_or_else(|| self.netns_path(sandbox_id), |c| c.netns.clone());
        let netns = netns::is_netns(&path).then_some(path.as_path());
        let attachment = self.attachment(sandbox_id, netns);
        // DEL runs even without a cache: a crash between ADD and writing the cache leaves a
        // lease that host-local releases by container id. Plugins treat unknown ids as done.
        match &cached {
            Some(c) => self.executor.del(&c.config, &attachment, Some(&c.result))?,
            None => self.executor.del(&self.list, &attachment, None)?,
        }
        netns::delete(&path)?;
        self.remove_cache(sandbox_id)?;
        drop(held);
        self.locks.forget(sandbox_id, &lock);
        info!("pod network detached");
        Ok(())
    }
}
