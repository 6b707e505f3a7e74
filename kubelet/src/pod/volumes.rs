//! Pod volumes on the node: materialized under `<pod dir>/volumes/<name>/` and bind-mounted
//! into containers ([`crate::cri::Mount`]).
//!
//! - `emptyDir`: a directory. With `medium: Memory` it is a tmpfs (size `sizeLimit` when set)
//!   when the agent runs as root, otherwise a plain directory (tmpfs needs `CAP_SYS_ADMIN`; the
//!   data then lives on disk, which only matters for speed and for `sizeLimit`).
//! - `hostPath`: the node path itself, after Kubernetes' `type` checks (`DirectoryOrCreate` and
//!   `FileOrCreate` create it).
//! - `configMap`, `secret`, `downwardAPI`, `projected`: files computed purely
//!   ([`volume_payload`]) and written with [`write_atomic`], the kubelet's atomic-writer layout:
//!   the files go to a fresh timestamped directory `..<time>`, the `..data` symlink is switched
//!   to it with one rename, and each visible name is a symlink through `..data`, so a container
//!   never sees a half-updated set. Projected `serviceAccountToken` (and
//!   `clusterTrustBundle`) sources are skipped: Skiff has no token issuer yet; the pod still
//!   starts, without those files.
//!
//! Setup failures are [`Error::Volume`] (the pod shows `ContainerCreating` and a `FailedMount`
//! event, as in Kubernetes); bad mounts (unknown volume, escaping `subPath`) are
//! [`Error::CreateContainerConfig`].

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use super::env::{ContainerEnv, EnvInputs, expand, field_value, resource_value};
use crate::cri::Mount;
use crate::{Error, Result};

/// Default file mode of configMap, secret, downwardAPI and projected volumes.
pub const DEFAULT_MODE: u32 = 0o644;

/// One file of a volume's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileContent {
    /// The bytes.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// Files by relative path (may contain `/`).
pub type Payload = BTreeMap<String, FileContent>;

/// `<pod dir>/volumes/<name>`: where volume `name` lives on the node.
pub fn volume_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(name)
}

fn volume_error(volume: &str, message: impl Into<String>) -> Error {
    Error::Volume {
        volume: volume.to_string(),
        message: message.into(),
    }
}

/// Sets up every volume of the pod; returns each volume's host path by name (the input of
/// [`container_mounts`]). Idempotent: run again to refresh ConfigMap/Secret contents.
pub fn setup_volumes(
    pod: &Pod,
    pod_dir: &Path,
    inputs: &EnvInputs<'_>,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut paths = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        paths.insert(v.name.clone(), setup_volume(pod, v, pod_dir, inputs)?);
    }
    Ok(paths)
}

/// Sets up one volume and returns its host path.
pub fn setup_volume(
    pod: &Pod,
    volume: &Volume,
    pod_dir: &Path,
    inputs: &EnvInputs<'_>,
) -> Result<PathBuf> {
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        check_host_path(&path, host.type_.as_deref().unwrap_or(""))
            .map_err(|m| volume_error(&volume.name, m))?;
        return Ok(path);
    }
    let dir = volume_dir(pod_dir, &volume.name);
    let io = |e: std::io::Error| volume_error(&volume.name, format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    if let Some(empty) = &volume.empty_dir {
        if empty.medium.as_deref() == Some("Memory") && unsafe { libc::geteuid() } == 0 {
            let size = empty
                .size_limit
                .as_ref()
                .and_then(|q| runtime::objects::Quantity::parse(&q.0).ok())
                .map(|q| q.value_ceil());
            mount_tmpfs(&dir, size).map_err(io)?;
        }
        return Ok(dir);
    }
    match volume_payload(pod, volume, inputs)? {
        Some(payload) => {
            write_atomic(&dir, &payload).map_err(io)?;
            Ok(dir)
        }
        None => Err(volume_error(
            &volume.name,
            "unsupported volume type (Skiff supports emptyDir, hostPath, configMap, secret, downwardAPI, projected)",
        )),
    }
}

/// Mounts a tmpfs on `dir` unless one is already there.
fn mount_tmpfs(dir: &Path, size: Option<i128>) -> std::io::Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let target = dir.to_string_lossy();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&*target))
    {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).map_err(std::io::Error::other);
    let options = size.map(|s| format!("size={s}")).unwrap_or_default();
    let (source, path, fstype, data) = (c("tmpfs")?, c(&target)?, c("tmpfs")?, c(&options)?);
    // SAFETY: valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            path.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Checks (and for the `...OrCreate` types creates) a hostPath the way Kubernetes does;
/// the error is the kubelet's message. The empty type checks nothing.
pub fn check_host_path(path: &Path, type_: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let p = path.display();
    let meta = std::fs::metadata(path).ok();
    let ft = meta.as_ref().map(|m| m.file_type());
    let fail = |what: &str| Err(format!("hostPath type check failed: {p} is not a {what}"));
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" if ft.is_none() => {
            std::fs::create_dir_all(path).map_err(|e| format!("{p}: {e}"))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{p}: {e}"))
        }
        "FileOrCreate" if ft.is_none() => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode_0644()
            .open(path)
            .map(drop)
            .map_err(|e| format!("{p}: {e}")),
        "Directory" | "DirectoryOrCreate" if !ft.is_some_and(|t| t.is_dir()) => fail("directory"),
        "File" | "FileOrCreate" if !ft.is_some_and(|t| t.is_file()) => fail("file"),
        "Socket" if !ft.is_some_and(|t| t.is_socket()) => fail("socket file"),
        "CharDevice" if !ft.is_some_and(|t| t.is_char_device()) => fail("character device"),
        "BlockDevice" if !ft.is_some_and(|t| t.is_block_device()) => fail("block device"),
        "Directory" | "DirectoryOrCreate" | "File" | "FileOrCreate" | "Socket" | "CharDevice"
        | "BlockDevice" => Ok(()),
        other => Err(format!(
            "hostPath type check failed: {other} is an invalid type"
        )),
    }
}

/// `OpenOptions` with mode 0644 (readable, as the kubelet creates them).
trait Mode0644 {
    fn mode_0644(&mut self) -> &mut Self;
}

impl Mode0644 for std::fs::OpenOptions {
    fn mode_0644(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o644)
    }
}

/// The files of a configMap, secret, downwardAPI or projected volume (pure); `None` for
/// other volume types. A missing optional ConfigMap/Secret gives no files.
pub fn volume_payload(
    pod: &Pod,
    volume: &Volume,
    inputs: &EnvInputs<'_>,
) -> Result<Option<Payload>> {
    let name = volume.name.as_str();
    let mut payload = Payload::new();
    if let Some(cm) = &volume.config_map {
        let mode = mode_or(cm.default_mode, DEFAULT_MODE);
        config_map_files(
            name,
            &cm.name,
            cm.optional,
            cm.items.as_deref(),
            mode,
            inputs,
            &mut payload,
        )?;
    } else if let Some(s) = &volume.secret {
        let mode = mode_or(s.default_mode, DEFAULT_MODE);
        let secret = s.secret_name.clone().unwrap_or_default();
        secret_files(
            name,
            &secret,
            s.optional,
            s.items.as_deref(),
            mode,
            inputs,
            &mut payload,
        )?;
    } else if let Some(d) = &volume.downward_api {
        let mode = mode_or(d.default_mode, DEFAULT_MODE);
        downward_files(
            name,
            pod,
            d.items.as_deref().unwrap_or_default(),
            mode,
            inputs,
            &mut payload,
        )?;
    } else if let Some(p) = &volume.projected {
        let mode = mode_or(p.default_mode, DEFAULT_MODE);
        for source in p.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                config_map_files(
                    name,
                    &cm.name,
                    cm.optional,
                    cm.items.as_deref(),
                    mode,
                    inputs,
                    &mut payload,
                )?;
            }
            if let Some(s) = &source.secret {
                secret_files(
                    name,
                    &s.name,
                    s.optional,
                    s.items.as_deref(),
                    mode,
                    inputs,
                    &mut payload,
                )?;
            }
            if let Some(d) = &source.downward_api {
                downward_files(
                    name,
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    mode,
                    inputs,
                    &mut payload,
                )?;
            }
            // serviceAccountToken / clusterTrustBundle: skipped (see the module docs).
        }
    } else {
        return Ok(None);
    }
    for path in payload.keys() {
        validate_relative(path).map_err(|m| volume_error(name, m))?;
    }
    Ok(Some(payload))
}

fn mode_or(mode: Option<i32>, default: u32) -> u32 {
    mode.map(|m| (m as u32) & 0o7777).unwrap_or(default)
}

/// Adds `data` (all keys, or the selected `items` with their paths and modes) to `payload`.
fn key_files(
    volume: &str,
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    missing_key: impl Fn(&str) -> String,
    optional: bool,
    payload: &mut Payload,
) -> Result<()> {
    match items {
        None | Some([]) => {
            for (k, v) in data {
                payload.insert(k, FileContent { data: v, mode });
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        payload.insert(
                            item.path.clone(),
                            FileContent {
                                data: v.clone(),
                                mode: mode_or(item.mode, mode),
                            },
                        );
                    }
                    None if optional => {}
                    None => return Err(volume_error(volume, missing_key(&item.key))),
                }
            }
        }
    }
    Ok(())
}

fn config_map_files(
    volume: &str,
    name: &str,
    optional: Option<bool>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    inputs: &EnvInputs<'_>,
    payload: &mut Payload,
) -> Result<()> {
    let optional = optional == Some(true);
    let Some(cm) = inputs.config_maps.get(name) else {
        if optional {
            return Ok(());
        }
        return Err(volume_error(
            volume,
            format!("configmap {name:?} not found"),
        ));
    };
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    data.extend(
        cm.binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    key_files(
        volume,
        data,
        items,
        mode,
        |k| format!("configmap references non-existent config key: {k}"),
        optional,
        payload,
    )
}

fn secret_files(
    volume: &str,
    name: &str,
    optional: Option<bool>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    inputs: &EnvInputs<'_>,
    payload: &mut Payload,
) -> Result<()> {
    let optional = optional == Some(true);
    let Some(s) = inputs.secrets.get(name) else {
        if optional {
            return Ok(());
        }
        return Err(volume_error(volume, format!("secret {name:?} not found")));
    };
    let data = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    key_files(
        volume,
        data,
        items,
        mode,
        |k| format!("references non-existent secret key: {k}"),
        optional,
        payload,
    )
}

fn downward_files(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    inputs: &EnvInputs<'_>,
    payload: &mut Payload,
) -> Result<()> {
    let no_container = Container::default();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field_value(pod, &f.field_path, inputs.pod_ips, inputs.host_ips)
        } else if let Some(r) = &item.resource_field_ref {
            resource_value(pod, &no_container, r, inputs.node_allocatable)
        } else {
            continue;
        }
        .map_err(|e| volume_error(volume, e.to_string()))?;
        payload.insert(
            item.path.clone(),
            FileContent {
                data: value.into_bytes(),
                mode: mode_or(item.mode, mode),
            },
        );
    }
    Ok(())
}

/// A payload path must be relative, without `..` components, and not start with `..` (the
/// atomic writer's own names).
fn validate_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() {
        return Err(format!("invalid path {path:?}: must be relative"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!("invalid path {path:?}: must not contain '..'"));
    }
    if path.starts_with("..") {
        return Err(format!("invalid path {path:?}: must not start with '..'"));
    }
    Ok(())
}

/// Name of the symlink to the current payload directory.
const DATA_DIR: &str = "..data";

/// Writes `payload` into `dir` atomically (Kubernetes' atomic writer): a new `..<timestamp>`
/// directory with the files, `..data` switched to it by renaming a temporary symlink, a
/// `name -> ..data/name` symlink per top-level name, then the old directory and stale names
/// removed. Returns `false` (and writes nothing) when the current content already matches.
pub fn write_atomic(dir: &Path, payload: &Payload) -> std::io::Result<bool> {
    let data_link = dir.join(DATA_DIR);
    let old = std::fs::read_link(&data_link).ok();
    if let Some(old) = &old
        && current_matches(&dir.join(old), payload)
    {
        return Ok(false);
    }
    let stamp = jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let new_dir = dir.join(&stamp);
    std::fs::create_dir_all(&new_dir)?;
    for (path, file) in payload {
        let target = new_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    let top: std::collections::BTreeSet<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::read_link(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || top.contains(&name) {
            continue;
        }
        if std::fs::symlink_metadata(entry.path())?
            .file_type()
            .is_symlink()
        {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// Whether the files under `dir` are exactly `payload` (contents and modes).
fn current_matches(dir: &Path, payload: &Payload) -> bool {
    fn count_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() { count_files(&p) } else { 1 }
            })
            .sum()
    }
    payload.iter().all(|(path, file)| {
        let p = dir.join(path);
        std::fs::read(&p).is_ok_and(|d| d == file.data)
            && std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o7777 == file.mode)
    }) && count_files(dir) == payload.len()
}

/// The bind mounts of `container` from its `volumeMounts`, given the volumes' host paths
/// ([`setup_volumes`]). `subPath` (or `subPathExpr`, expanded with `env`) must stay inside the
/// volume: absolute paths and `..` are rejected, a missing sub-directory is created, and a
/// path that resolves (through symlinks) outside the volume is rejected.
pub fn container_mounts(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    env: Option<&ContainerEnv>,
) -> Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(base) = volumes.get(&m.name) else {
            return Err(Error::CreateContainerConfig(format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, container.name
            )));
        };
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(s), _) if !s.is_empty() => s.clone(),
            (_, Some(e)) if !e.is_empty() => expand(e, |n| env.and_then(|env| env.get(n))),
            _ => String::new(),
        };
        let host_path = if sub.is_empty() {
            base.clone()
        } else {
            sub_path(base, &sub)?
        };
        mounts.push(Mount {
            container_path: PathBuf::from(&m.mount_path),
            host_path,
            read_only: m.read_only == Some(true),
        });
    }
    Ok(mounts)
}

/// The host path of `sub` inside the volume at `base`, created as a directory when missing.
fn sub_path(base: &Path, sub: &str) -> Result<PathBuf> {
    let bad = |m: String| Error::CreateContainerConfig(m);
    if Path::new(sub).is_absolute() {
        return Err(bad(format!(
            "error SubPath `{sub}` must not be an absolute path"
        )));
    }
    if Path::new(sub)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(bad(format!(
            "unable to provision SubPath `{sub}`: must not contain '..'"
        )));
    }
    let path = base.join(sub);
    if std::fs::symlink_metadata(&path).is_err() {
        std::fs::create_dir_all(&path).map_err(|e| {
            bad(format!(
                "failed to create subPath directory for volumeMount: {e}"
            ))
        })?;
    }
    let real = path
        .canonicalize()
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let real_base = base
        .canonicalize()
        .map_err(|e| bad(format!("{}: {e}", base.display())))?;
    if !real.starts_with(&real_base) {
        return Err(bad(format!(
            "subpath {:?} not within volume path {:?}",
            real.display().to_string(),
            real_base.display().to_string()
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    struct World {
        cms: BTreeMap<String, ConfigMap>,
        secrets: BTreeMap<String, Secret>,
        alloc: BTreeMap<String, Quantity>,
    }

    impl World {
        fn new() -> World {
            let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg"},
                "data": {"a.conf": "A", "b.conf": "B"}, "binaryData": {"bin": "AAE="}}))
            .unwrap();
            let s: Secret = serde_json::from_value(json!({"metadata": {"name": "creds"},
                "data": {"password": "czNjcmV0"}}))
            .unwrap();
            World {
                cms: BTreeMap::from([("cfg".to_string(), cm)]),
                secrets: BTreeMap::from([("creds".to_string(), s)]),
                alloc: BTreeMap::from([("memory".to_string(), Quantity("1Gi".into()))]),
            }
        }
        fn inputs(&self) -> EnvInputs<'_> {
            EnvInputs {
                config_maps: &self.cms,
                secrets: &self.secrets,
                node_allocatable: &self.alloc,
                pod_ips: &[],
                host_ips: &[],
            }
        }
    }

    fn pod(volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}], "volumes": volumes}}))
        .unwrap()
    }

    /// Files by path: (content, mode).
    type Files = BTreeMap<String, (String, u32)>;

    fn payload_of(volume: serde_json::Value) -> Result<Option<Files>> {
        let p = pod(json!([volume]));
        let w = World::new();
        let v = &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        Ok(volume_payload(&p, v, &w.inputs())?.map(|files| {
            files
                .into_iter()
                .map(|(k, f)| (k, (String::from_utf8_lossy(&f.data).into_owned(), f.mode)))
                .collect()
        }))
    }

    #[test]
    fn payloads_of_each_volume_type() {
        let f = |pairs: &[(&str, &str, u32)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v, m)| (k.to_string(), (v.to_string(), *m)))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        let cases: Vec<(serde_json::Value, Result<Option<Files>, &str>)> = vec![
            (json!({"name": "v", "emptyDir": {}}), Ok(None)),
            (
                json!({"name": "v", "configMap": {"name": "cfg"}}),
                Ok(f(&[
                    ("a.conf", "A", 0o644),
                    ("b.conf", "B", 0o644),
                    ("bin", "\u{0}\u{1}", 0o644),
                ])),
            ),
            (
                json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o600,
                    "items": [{"key": "a.conf", "path": "conf/a"}, {"key": "b.conf", "path": "b", "mode": 0o400}]}}),
                Ok(f(&[("b", "B", 0o400), ("conf/a", "A", 0o600)])),
            ),
            (
                json!({"name": "v", "configMap": {"name": "nope"}}),
                Err("MountVolume.SetUp failed for volume \"v\" : configmap \"nope\" not found"),
            ),
            (
                json!({"name": "v", "configMap": {"name": "nope", "optional": true}}),
                Ok(f(&[])),
            ),
            (
                json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}),
                Err(
                    "MountVolume.SetUp failed for volume \"v\" : configmap references non-existent config key: zz",
                ),
            ),
            (
                json!({"name": "v", "secret": {"secretName": "creds"}}),
                Ok(f(&[("password", "s3cret", 0o644)])),
            ),
            (
                json!({"name": "v", "secret": {"secretName": "gone"}}),
                Err("MountVolume.SetUp failed for volume \"v\" : secret \"gone\" not found"),
            ),
            (
                json!({"name": "v", "secret": {"secretName": "creds", "items": [{"key": "user", "path": "u"}]}}),
                Err(
                    "MountVolume.SetUp failed for volume \"v\" : references non-existent secret key: user",
                ),
            ),
            (
                json!({"name": "v", "downwardAPI": {"items": [
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}}),
                Ok(f(&[
                    ("labels", "app=\"web\"", 0o644),
                    ("mem", "64", 0o644),
                    ("name", "web", 0o644),
                ])),
            ),
            (
                json!({"name": "v", "projected": {"defaultMode": 0o440, "sources": [
                    {"configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "a"}]}},
                    {"secret": {"name": "creds"}},
                    {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                    {"serviceAccountToken": {"path": "token"}}]}}),
                Ok(f(&[
                    ("a", "A", 0o440),
                    ("ns", "ns", 0o440),
                    ("password", "s3cret", 0o440),
                ])),
            ),
            (
                json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "../escape"}]}}),
                Err(
                    "MountVolume.SetUp failed for volume \"v\" : invalid path \"../escape\": must not contain '..'",
                ),
            ),
        ];
        for (volume, want) in cases {
            match (payload_of(volume.clone()), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{volume}"),
                (Err(e), Err(want)) => {
                    assert_eq!(e.to_string(), want, "{volume}");
                    assert_eq!(e.reason(), None);
                }
                (got, want) => panic!("{volume}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn file(data: &str, mode: u32) -> FileContent {
        FileContent {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn atomic_writes_switch_the_data_link_and_prune() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        std::fs::create_dir_all(&dir).unwrap();
        let first = Payload::from([
            ("a".to_string(), file("1", 0o644)),
            ("sub/b".to_string(), file("2", 0o600)),
        ]);
        assert!(write_atomic(&dir, &first).unwrap());
        let data1 = std::fs::read_link(dir.join("..data")).unwrap();
        assert!(data1.to_string_lossy().starts_with(".."), "{data1:?}");
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(
            std::fs::metadata(dir.join("sub/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        // unchanged payload: nothing written
        assert!(!write_atomic(&dir, &first).unwrap());
        assert_eq!(std::fs::read_link(dir.join("..data")).unwrap(), data1);
        // changed: new data dir, old one gone, stale name removed
        let second = Payload::from([
            ("a".to_string(), file("one", 0o644)),
            ("c".to_string(), file("3", 0o644)),
        ]);
        assert!(write_atomic(&dir, &second).unwrap());
        let data2 = std::fs::read_link(dir.join("..data")).unwrap();
        assert_ne!(data1, data2);
        assert!(!dir.join(&data1).exists());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert!(
            std::fs::symlink_metadata(dir.join("sub")).is_err(),
            "stale name pruned"
        );
        // a mode change alone is a change
        let third = Payload::from([
            ("a".to_string(), file("one", 0o400)),
            ("c".to_string(), file("3", 0o644)),
        ]);
        assert!(write_atomic(&dir, &third).unwrap());
    }

    #[test]
    fn setup_materializes_volumes_under_the_pod_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        let p = pod(json!([
            {"name": "scratch", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "cfg"}},
            {"name": "h", "hostPath": {"path": host.to_str().unwrap(), "type": "Directory"}}
        ]));
        let w = World::new();
        let pod_dir = tmp.path().join("pods/uid");
        let paths = setup_volumes(&p, &pod_dir, &w.inputs()).unwrap();
        assert_eq!(paths["scratch"], pod_dir.join("volumes/scratch"));
        assert!(paths["scratch"].is_dir());
        assert_eq!(
            std::fs::read_to_string(paths["conf"].join("a.conf")).unwrap(),
            "A"
        );
        assert_eq!(paths["h"], host);
        // idempotent
        assert_eq!(setup_volumes(&p, &pod_dir, &w.inputs()).unwrap(), paths);
    }

    #[test]
    fn host_path_types_are_checked_like_kubernetes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let file = tmp.path().join("f");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&file, "x").unwrap();
        let sock = tmp.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let missing = tmp.path().join("missing");
        let msg = |p: &Path, what: &str| {
            Err(format!(
                "hostPath type check failed: {} is not a {what}",
                p.display()
            ))
        };
        let cases = [
            (&missing, "", Ok(())),
            (&dir, "Directory", Ok(())),
            (&file, "Directory", msg(&file, "directory")),
            (&missing, "Directory", msg(&missing, "directory")),
            (&file, "File", Ok(())),
            (&dir, "File", msg(&dir, "file")),
            (&dir, "FileOrCreate", msg(&dir, "file")),
            (&file, "DirectoryOrCreate", msg(&file, "directory")),
            (&sock, "Socket", Ok(())),
            (&file, "Socket", msg(&file, "socket file")),
            (&file, "CharDevice", msg(&file, "character device")),
            (&file, "BlockDevice", msg(&file, "block device")),
        ];
        for (path, t, want) in cases {
            assert_eq!(check_host_path(path, t), want, "{} {t}", path.display());
        }
        assert!(check_host_path(Path::new("/dev/null"), "CharDevice").is_ok());
        let new_dir = tmp.path().join("new/dir");
        check_host_path(&new_dir, "DirectoryOrCreate").unwrap();
        assert!(new_dir.is_dir());
        let new_file = tmp.path().join("new/file");
        check_host_path(&new_file, "FileOrCreate").unwrap();
        assert!(new_file.is_file());
    }

    #[test]
    fn mounts_with_read_only_and_sub_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("evil")).unwrap();
        let volumes = BTreeMap::from([("data".to_string(), vol.clone())]);
        let mounts = |m: serde_json::Value| {
            let c: Container =
                serde_json::from_value(json!({"name": "c", "volumeMounts": [m]})).unwrap();
            let env = ContainerEnv {
                vars: vec![("POD".into(), "web-1".into())],
                skipped: vec![],
            };
            container_mounts(&c, &volumes, Some(&env)).map_err(|e| (e.to_string(), e.reason()))
        };
        let m = mounts(json!({"name": "data", "mountPath": "/data", "readOnly": true})).unwrap();
        assert_eq!(
            m,
            vec![Mount {
                container_path: "/data".into(),
                host_path: vol.clone(),
                read_only: true
            }]
        );
        let m = mounts(json!({"name": "data", "mountPath": "/logs", "subPath": "a/b"})).unwrap();
        assert_eq!(
            (m[0].host_path.clone(), m[0].read_only),
            (vol.join("a/b"), false)
        );
        assert!(vol.join("a/b").is_dir(), "missing subPath created");
        let m = mounts(json!({"name": "data", "mountPath": "/x", "subPathExpr": "pods/$(POD)"}))
            .unwrap();
        assert_eq!(m[0].host_path, vol.join("pods/web-1"));
        let cases = [
            (
                json!({"name": "other", "mountPath": "/o"}),
                "cannot find volume \"other\" to mount into container \"c\"",
            ),
            (
                json!({"name": "data", "mountPath": "/o", "subPath": "/etc"}),
                "error SubPath `/etc` must not be an absolute path",
            ),
            (
                json!({"name": "data", "mountPath": "/o", "subPath": "a/../../x"}),
                "unable to provision SubPath `a/../../x`: must not contain '..'",
            ),
        ];
        for (m, want) in cases {
            assert_eq!(
                mounts(m.clone()).unwrap_err(),
                (want.to_string(), Some("CreateContainerConfigError")),
                "{m}"
            );
        }
        let (escape, reason) =
            mounts(json!({"name": "data", "mountPath": "/o", "subPath": "evil"})).unwrap_err();
        assert!(escape.contains("not within volume path"), "{escape}");
        assert_eq!(reason, Some("CreateContainerConfigError"));
    }

    #[test]
    fn memory_empty_dir_is_a_tmpfs_when_root() {
        let tmp = tempfile::tempdir().unwrap();
        let p = pod(json!([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}]));
        let w = World::new();
        let paths = setup_volumes(&p, tmp.path(), &w.inputs()).unwrap();
        let dir = &paths["m"];
        assert!(dir.is_dir());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let line = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(1) == dir.to_str());
        if unsafe { libc::geteuid() } == 0 {
            let line = line.expect("tmpfs mounted");
            assert!(line.starts_with("tmpfs "), "{line}");
            assert!(line.contains("size=8192k"), "{line}");
            // SAFETY: a valid path string.
            let c = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        } else {
            assert!(line.is_none(), "no mount without root");
        }
    }
}
