//! Runs CNI plugins per the CNI 1.0.0 specification: one process per plugin, parameters in
//! `CNI_*` environment variables, the plugin's network configuration on stdin, a result or an
//! error object on stdout.
//!
//! A configuration list runs its plugins in order for ADD (each gets the previous plugin's
//! result as `prevResult`) and in reverse for DEL (each gets the cached ADD result).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tracing::debug;

use super::netns;
use super::result::{CniResult, describe_code, parse_error};
use crate::error::{Error, IoContext, Result};

/// A CNI operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CniCommand {
    /// Attach the container to the network.
    Add,
    /// Detach it and release what ADD took.
    Del,
    /// Verify the attachment is as ADD left it.
    Check,
}

impl CniCommand {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
        }
    }
}

/// The runtime parameters of one attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: the sandbox id.
    pub container_id: String,
    /// `CNI_NETNS`: the sandbox's namespace; may be absent for DEL when it is already gone.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`: the interface name inside the sandbox.
    pub ifname: String,
}

/// Checks a container id against the CNI spec's rule (alphanumerics, `_`, `.`, `-`, starting
/// alphanumeric); ids also name files, so this keeps paths safe too.
pub fn validate_container_id(id: &str) -> Result<()> {
    let ok = id.len() <= 253
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Network(format!(
            "invalid sandbox id {id:?}: must be alphanumerics, '_', '.', '-', starting alphanumeric"
        )))
    }
}

/// The stdin for one plugin of `list`: the plugin's object plus the list's `cniVersion` and
/// `name`, and `prevResult` when there is one.
pub fn plugin_stdin(list: &Value, plugin: &Value, prev_result: Option<&Value>) -> Value {
    let mut config = plugin.clone();
    if let Some(object) = config.as_object_mut() {
        for key in ["cniVersion", "name"] {
            if let Some(value) = list.get(key) {
                object.insert(key.into(), value.clone());
            }
        }
        match prev_result {
            Some(prev) => object.insert("prevResult".into(), prev.clone()),
            None => object.remove("prevResult"),
        };
    }
    config
}

/// The plugins of a configuration list, with their `type`s.
fn plugins(list: &Value) -> Result<Vec<(&str, &Value)>> {
    let plugins = list
        .get("plugins")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Network("CNI config list has no plugins array".into()))?;
    plugins
        .iter()
        .map(|plugin| {
            plugin
                .get("type")
                .and_then(Value::as_str)
                .map(|kind| (kind, plugin))
                .ok_or_else(|| Error::Network("CNI plugin config without a type".into()))
        })
        .collect()
}

/// Finds and runs plugin binaries.
#[derive(Clone, Debug)]
pub struct Executor {
    plugin_dirs: Vec<PathBuf>,
    node_netns: Option<PathBuf>,
    timeout: Duration,
}

impl Executor {
    /// Plugins are searched in `plugin_dirs`, run in `node_netns` (when given) and killed
    /// (with everything they started) after `timeout`, so a hung plugin cannot hold a sandbox
    /// forever.
    pub fn new(plugin_dirs: Vec<PathBuf>, node_netns: Option<PathBuf>, timeout: Duration) -> Self {
        Self {
            plugin_dirs,
            node_netns,
            timeout,
        }
    }

    fn find(&self, kind: &str) -> Result<PathBuf> {
        if kind.contains('/') || kind.is_empty() {
            return Err(Error::Network(format!("invalid CNI plugin type {kind:?}")));
        }
        self.plugin_dirs
            .iter()
            .map(|dir| dir.join(kind))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                Error::Network(format!(
                    "CNI plugin {kind:?} not found in {}",
                    self.cni_path()
                ))
            })
    }

    fn cni_path(&self) -> String {
        let dirs: Vec<_> = self
            .plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(":")
    }

    /// Runs one plugin; returns its parsed stdout (empty stdout = `Null`).
    fn exec(
        &self,
        kind: &str,
        command: CniCommand,
        attachment: &Attachment,
        stdin: &Value,
    ) -> Result<Value> {
        let binary = self.find(kind)?;
        let netns = attachment
            .netns
            .as_deref()
            .map(Path::as_os_str)
            .unwrap_or_default();
        let mut child = Command::new(&binary);
        child
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &attachment.container_id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", &attachment.ifname)
            .env("CNI_ARGS", "")
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills the IPAM plugin it runs as well.
            .process_group(0);
        netns::run_in(&mut child, self.node_netns.as_deref())?;
        let mut child = child
            .spawn()
            .context(|| format!("running CNI plugin {}", binary.display()))?;
        let input = serde_json::to_vec(stdin).expect("JSON values serialize");
        if let Some(mut pipe) = child.stdin.take() {
            // A plugin that exits without reading stdin closes the pipe: its exit status and
            // output say why, so the write error is not the interesting one. The config is a
            // few KiB, well under a pipe's buffer, so this cannot block on a stuck plugin.
            let _ = pipe.write_all(&input);
        }
        let output = self
            .wait(child)
            .context(|| format!("waiting for CNI plugin {}", binary.display()))?
            .ok_or_else(|| Error::Cni {
                plugin: kind.to_string(),
                command: command.as_str().to_string(),
                code: 0,
                msg: format!("timed out after {:?}", self.timeout),
                details: String::new(),
            })?;
        debug!(plugin = kind, command = command.as_str(), container = %attachment.container_id,
            status = %output.status, "ran CNI plugin");
        if !output.status.success() {
            let (code, msg, details) = match parse_error(&output.stdout) {
                Some(e) if e.msg.is_empty() => {
                    (e.code, describe_code(e.code).to_string(), e.details)
                }
                Some(e) => (e.code, e.msg, e.details),
                None => {
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    let text = format!("{} {}", stdout.trim(), stderr.trim());
                    (
                        0,
                        format!("{} ({})", text.trim(), output.status),
                        String::new(),
                    )
                }
            };
            return Err(Error::Cni {
                plugin: kind.to_string(),
                command: command.as_str().to_string(),
                code,
                msg,
                details,
            });
        }
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&output.stdout).map_err(|e| Error::Cni {
            plugin: kind.to_string(),
            command: command.as_str().to_string(),
            code: 0,
            msg: format!("unparseable output: {e}"),
            details: String::from_utf8_lossy(&output.stdout).into_owned(),
        })
    }

    /// Waits for the plugin's output; `None` when it had to be killed for the timeout.
    fn wait(&self, child: Child) -> std::io::Result<Option<Output>> {
        let group = child.id() as libc::pid_t;
        let (done, outcome) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        match outcome.recv_timeout(self.timeout) {
            Ok(output) => output.map(Some),
            Err(_) => {
                // SAFETY: the group leader is our unreaped child, so the id is not reused.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                let _ = outcome.recv();
                Ok(None)
            }
        }
    }

    /// ADD through every plugin of `list`; returns the final result.
    pub fn add(&self, list: &Value, attachment: &Attachment) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for (kind, plugin) in plugins(list)? {
            let stdin = plugin_stdin(list, plugin, prev.as_ref());
            let result = self.exec(kind, CniCommand::Add, attachment, &stdin)?;
            CniResult::from_value(&result).map_err(|msg| Error::Cni {
                plugin: kind.to_string(),
                command: "ADD".into(),
                code: 0,
                msg,
                details: result.to_string(),
            })?;
            prev = Some(result);
        }
        prev.ok_or_else(|| Error::Network("CNI config list has no plugins".into()))
    }

    /// DEL through every plugin of `list` in reverse order, each given `prev_result` (the
    /// cached ADD result). Every plugin runs even when one fails; the first error is returned.
    pub fn del(
        &self,
        list: &Value,
        attachment: &Attachment,
        prev_result: Option<&Value>,
    ) -> Result<()> {
        let mut first_error = None;
        for (kind, plugin) in plugins(list)?.into_iter().rev() {
            let stdin = plugin_stdin(list, plugin, prev_result);
            if let Err(e) = self.exec(kind, CniCommand::Del, attachment, &stdin) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// CHECK through every plugin of `list` in order, each given the cached ADD result.
    pub fn check(&self, list: &Value, attachment: &Attachment, prev_result: &Value) -> Result<()> {
        for (kind, plugin) in plugins(list)? {
            let stdin = plugin_stdin(list, plugin, Some(prev_result));
            self.exec(kind, CniCommand::Check, attachment, &stdin)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_ids() {
        let cases = [
            ("abc123", true),
            ("pod-1_a.b", true),
            ("0f", true),
            ("", false),
            ("-abc", false),
            ("../etc", false),
            ("a/b", false),
            ("a b", false),
        ];
        for (id, ok) in cases {
            assert_eq!(validate_container_id(id).is_ok(), ok, "{id:?}");
        }
        assert!(validate_container_id(&"a".repeat(254)).is_err());
    }

    #[test]
    fn stdin_injects_list_fields_and_prev_result() {
        let list = json!({"cniVersion": "1.0.0", "name": "skiff", "plugins": []});
        let plugin = json!({"type": "loopback", "name": "ignored", "prevResult": {"stale": true}});
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        assert_eq!(
            plugin_stdin(&list, &plugin, Some(&prev)),
            json!({"type": "loopback", "name": "skiff", "cniVersion": "1.0.0", "prevResult": prev})
        );
        assert_eq!(
            plugin_stdin(&list, &plugin, None),
            json!({"type": "loopback", "name": "skiff", "cniVersion": "1.0.0"})
        );
    }

    #[test]
    fn config_lists_need_typed_plugins() {
        assert!(plugins(&json!({"name": "x"})).is_err());
        assert!(plugins(&json!({"plugins": [{"bridge": "b"}]})).is_err());
        let list = json!({"plugins": [{"type": "bridge"}, {"type": "loopback"}]});
        let kinds: Vec<_> = plugins(&list).unwrap().into_iter().map(|p| p.0).collect();
        assert_eq!(kinds, ["bridge", "loopback"]);
    }

    #[test]
    fn missing_plugins_are_named() {
        let executor = Executor::new(
            vec!["/nonexistent/cni".into()],
            None,
            Duration::from_secs(1),
        );
        let err = executor.find("bridge").unwrap_err().to_string();
        assert!(
            err.contains("\"bridge\" not found in /nonexistent/cni"),
            "{err}"
        );
        assert!(executor.find("../bin/sh").is_err());
    }
}
