//! The lab's state file, `<lab dir>/lab.json`: what `lab up` made, so later `lab` commands
//! (other processes) can find, stop and remove it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::{LabSpec, NodeSpec};

/// Everything a running lab consists of.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LabState {
    pub spec: LabSpec,
    /// The lab network's index (runc labs), see `kubelet::network::topology`.
    pub network_index: Option<u8>,
    pub nodes: Vec<NodeSpec>,
    pub server_pid: Option<u32>,
    pub etcd_pid: Option<u32>,
    /// Agent process per node name; a stopped node has none.
    pub agent_pids: BTreeMap<String, u32>,
    /// Nodes whose network is cut.
    pub partitioned: BTreeSet<String>,
}

/// Where the state of the lab in `dir` lives.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("lab.json")
}

impl LabState {
    /// The lab in `dir`, if one was brought up there.
    pub fn load(dir: &Path) -> Result<Option<Self>, String> {
        let file = state_file(dir);
        match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", file.display())),
        }
    }

    /// Writes the state (write-then-rename, so a crash never leaves half a file).
    pub fn save(&self) -> Result<(), String> {
        let file = state_file(&self.spec.dir);
        let tmp = file.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .map_err(|e| format!("{}: {e}", file.display()))
    }

    /// The node named `name` and its index.
    pub fn node(&self, name: &str) -> Result<(usize, &NodeSpec), String> {
        self.nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                format!("no node {name:?} in the lab (nodes: {})", names.join(", "))
            })
    }
}
