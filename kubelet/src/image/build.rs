//! Building small OCI images offline, straight into the store: the host's static busybox with
//! a link per applet is enough for the examples, end-to-end tests and benchmarks, so none of
//! them needs a registry on the internet (which tests must never reach).

use std::io::Write;
use std::path::Path;

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::image::Store;

/// Where Debian's `busybox-static` puts the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// A file of a layer being built.
pub enum Entry<'a> {
    /// A directory (mode 0755).
    Dir(&'a str),
    /// A regular file with contents and mode.
    File(&'a str, &'a [u8], u32),
    /// A symbolic link `path` → `target`.
    Symlink(&'a str, &'a str),
}

/// A gzip-compressed layer tar and the digest of its uncompressed form (the diff id).
#[derive(Clone)]
pub struct BuiltLayer {
    /// The compressed blob.
    pub gz: Vec<u8>,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Builds a layer from `entries` (owned by root, fixed mtime, so equal input gives an equal
/// digest).
pub fn layer(entries: &[Entry<'_>]) -> Result<BuiltLayer> {
    let io = |e: std::io::Error| Error::Store(format!("building a layer: {e}"));
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, &[][..])
                    .map_err(io)?;
            }
            Entry::File(path, content, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(content.len() as u64);
                builder
                    .append_data(&mut header, path, *content)
                    .map_err(io)?;
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).map_err(io)?;
            }
        }
    }
    let tar = builder.into_inner().map_err(io)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).map_err(io)?;
    Ok(BuiltLayer {
        diff_id: sha256(&tar),
        gz: gz.finish().map_err(io)?,
    })
}

/// Stores an image made of `layers` (bottom first) with image config `config` (the `config`
/// object of an OCI image config: Entrypoint, Cmd, Env, WorkingDir, ...) and names it `name`
/// (normalized). Returns the manifest digest.
pub fn store_image(
    store: &Store,
    name: &str,
    layers: &[BuiltLayer],
    config: serde_json::Value,
) -> Result<String> {
    let (os, arch) = crate::image::platform::host_platform();
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config_blob = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": os,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .map_err(|e| Error::Store(format!("image config: {e}")))?;
    let descriptor = |media_type: &str, bytes: &[u8], digest: String| OciDescriptor {
        media_type: media_type.to_string(),
        digest,
        size: bytes.len() as i64,
        ..OciDescriptor::default()
    };
    let config_digest = store.put_blob_bytes(&config_blob)?;
    let mut layer_descriptors = Vec::new();
    for l in layers {
        let digest = store.put_blob_bytes(&l.gz)?;
        layer_descriptors.push(descriptor(
            oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
            &l.gz,
            digest,
        ));
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: descriptor(
            oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE,
            &config_blob,
            config_digest,
        ),
        layers: layer_descriptors,
        ..OciImageManifest::default()
    };
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| Error::Store(format!("manifest: {e}")))?;
    let digest = store.put_blob_bytes(&manifest_bytes)?;
    let name = crate::image::reference::ImageReference::parse(name)?.to_string();
    store.tag(&name, &digest)?;
    Ok(digest)
}

/// The busybox layer: `/bin/busybox` from `busybox` (a static binary), a link per applet it
/// lists, and the few files a container expects (`/etc/passwd`, `/etc/group`, `/tmp`, ...).
pub fn busybox_layer(busybox: &Path) -> Result<BuiltLayer> {
    let binary = std::fs::read(busybox).context(|| format!("reading {}", busybox.display()))?;
    let listed = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .context(|| format!("running {} --list", busybox.display()))?;
    let applets: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(|a| format!("bin/{a}"))
        .collect();
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::File("bin/busybox", &binary, 0o755),
        Entry::Dir("etc"),
        Entry::File(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        ),
        Entry::File("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644),
        Entry::Dir("root"),
        Entry::Dir("tmp"),
        Entry::Dir("var"),
        Entry::Dir("www"),
        Entry::File("www/index.html", b"hello from skiff\n", 0o644),
    ];
    entries.extend(applets.iter().map(|a| Entry::Symlink(a, "busybox")));
    layer(&entries)
}

/// Stores a busybox image named `name` built from the host's static busybox.
pub fn store_busybox(store: &Store, name: &str, busybox: &Path) -> Result<String> {
    let layer = busybox_layer(busybox)?;
    store_image(
        store,
        name,
        &[layer],
        json!({
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_layers_have_equal_digests() {
        let a = layer(&[Entry::Dir("etc"), Entry::File("etc/x", b"1", 0o644)]).expect("a");
        let b = layer(&[Entry::Dir("etc"), Entry::File("etc/x", b"1", 0o644)]).expect("b");
        let c = layer(&[Entry::Dir("etc"), Entry::File("etc/x", b"2", 0o644)]).expect("c");
        assert_eq!(a.diff_id, b.diff_id);
        assert_ne!(a.diff_id, c.diff_id);
    }

    #[test]
    fn busybox_image_is_stored_and_named() {
        if !Path::new(HOST_BUSYBOX).exists() {
            eprintln!("skipping: {HOST_BUSYBOX} (busybox-static) is not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let digest = store_busybox(&store, "busybox", Path::new(HOST_BUSYBOX)).expect("busybox");
        let entry = store
            .get("docker.io/library/busybox:latest")
            .expect("get")
            .expect("named");
        assert_eq!(entry.digest, digest);
        let manifest = store.manifest(&digest).expect("manifest");
        assert_eq!(manifest.layers.len(), 1);
    }
}
