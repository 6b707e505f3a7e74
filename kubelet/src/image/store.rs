//! The node's content-addressed image store.
//!
//! Layout under the data dir, an OCI image layout plus unpacked layers:
//! - `oci-layout`, `index.json`: the image index; each entry is a manifest annotated with
//!   `org.opencontainers.image.ref.name` = the normalized image reference (name → digest).
//! - `blobs/sha256/<hex>`: manifests, configs and layer tarballs, each stored once however many
//!   images use it. A blob becomes visible only after its digest was verified: it is written to
//!   `tmp/` and renamed into place.
//! - `layers/<hex>/`: each layer blob unpacked once (keyed by the blob digest), with whiteouts in
//!   overlayfs form, shared read-only by every container of every image that uses it.
//!
//! Removing an image drops its index entry and garbage-collects blobs and layers no remaining
//! image references.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::image::reference::is_digest;

/// The annotation naming an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// An image the store knows by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry {
    /// Normalized reference, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Digest of the image manifest.
    pub digest: String,
    /// Bytes of config and (compressed) layers, as the manifest states them.
    pub size: u64,
}

/// What a garbage collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blob digests deleted.
    pub blobs: Vec<String>,
    /// Unpacked layer directories deleted (by blob digest).
    pub layers: Vec<String>,
}

/// The content-addressed store; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// Serializes read-modify-write of `index.json` and garbage collection.
    index_lock: Mutex<()>,
}

impl Store {
    /// Opens (creating when needed) the store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for dir in ["blobs/sha256", "layers", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            std::fs::write(&layout, OCI_LAYOUT)
                .context(|| format!("writing {}", layout.display()))?;
        }
        Ok(Store {
            root,
            index_lock: Mutex::new(()),
        })
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is present).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// Whether the blob is present (and therefore verified).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Reads a whole blob (for manifests and configs, which are small).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        std::fs::read(&path).context(|| format!("reading blob {digest}"))
    }

    /// Starts writing a blob that must hash to `digest`.
    pub fn blob_writer(&self, digest: &str) -> Result<BlobWriter> {
        let target = self.blob_path(digest)?;
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.root.join("tmp"))
            .context(|| "creating a temporary blob file".to_string())?;
        Ok(BlobWriter {
            file,
            hasher: Sha256::new(),
            expected: digest.to_string(),
            target,
            written: 0,
        })
    }

    /// Stores a blob from a reader, verifying its digest. Returns the bytes written.
    pub fn put_blob_reader(&self, digest: &str, mut reader: impl Read) -> Result<u64> {
        let mut writer = self.blob_writer(digest)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .context(|| format!("reading blob {digest}"))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n])?;
        }
        writer.commit()
    }

    /// Stores a blob held in memory and returns its digest.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        if !self.has_blob(&digest) {
            self.put_blob_reader(&digest, bytes)?;
        }
        Ok(digest)
    }

    /// Parses the image manifest stored under `digest`.
    pub fn manifest(&self, digest: &str) -> Result<OciImageManifest> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Store(format!("manifest {digest} is not an image manifest: {e}")))
    }

    /// Where the layer blob `digest` is (or will be) unpacked.
    pub fn layer_dir(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(hex_of(digest)?))
    }

    /// Unpacks the layer blob `digest` unless it already is; blocking (call off the async
    /// runtime). Unpacking happens in `tmp/` and the directory is renamed into place, so a
    /// present layer directory is always complete.
    pub fn unpack_layer(&self, digest: &str) -> Result<PathBuf> {
        let dest = self.layer_dir(digest)?;
        if dest.is_dir() {
            return Ok(dest);
        }
        let blob = self.blob_path(digest)?;
        let file = std::fs::File::open(&blob).context(|| format!("opening layer {digest}"))?;
        let tmp = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.root.join("tmp"))
            .context(|| "creating a temporary layer dir".to_string())?;
        crate::image::layer::unpack(file, tmp.path())
            .map_err(|e| Error::Store(format!("unpacking layer {digest}: {e}")))?;
        let tmp_path = tmp.keep();
        if let Err(e) = std::fs::rename(&tmp_path, &dest) {
            let _ = std::fs::remove_dir_all(&tmp_path);
            // Another pull unpacked the same layer concurrently: theirs is just as good.
            if !dest.is_dir() {
                return Err(Error::Io {
                    context: format!("moving layer {digest} into place"),
                    source: e,
                });
            }
        }
        Ok(dest)
    }

    /// Unpacks every layer of an image (in manifest order, bottom first) and returns the
    /// directories top first, the order overlayfs wants for `lowerdir`.
    pub fn unpack_image(&self, manifest: &OciImageManifest) -> Result<Vec<PathBuf>> {
        let mut dirs = manifest
            .layers
            .iter()
            .map(|layer| self.unpack_layer(&layer.digest))
            .collect::<Result<Vec<_>>>()?;
        dirs.reverse();
        Ok(dirs)
    }

    /// The unpacked layer directories of the named image, top first.
    pub fn image_layers(&self, name: &str) -> Result<Vec<PathBuf>> {
        let entry = self
            .get(name)?
            .ok_or_else(|| Error::Store(format!("image {name:?} is not in the store")))?;
        let manifest = self.manifest(&entry.digest)?;
        self.unpack_image(&manifest)
    }

    /// Names `name` → the manifest `descriptor` (replacing what the name pointed to before).
    /// The manifest and everything it references must already be stored.
    pub fn tag(&self, name: &str, manifest_digest: &str) -> Result<()> {
        let manifest = self.manifest(manifest_digest)?;
        let missing: Vec<&str> = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .map(|d| d.digest.as_str())
            .filter(|d| !self.has_blob(d))
            .collect();
        if !missing.is_empty() {
            return Err(Error::Store(format!(
                "image {name:?} references missing blobs {missing:?}"
            )));
        }
        let size = std::fs::metadata(self.blob_path(manifest_digest)?)
            .context(|| format!("stat manifest {manifest_digest}"))?
            .len();
        let _guard = self.lock();
        let mut index = self.read_index()?;
        index
            .manifests
            .retain(|entry| ref_name(entry) != Some(name));
        index.manifests.push(ImageIndexEntry {
            media_type: manifest
                .media_type
                .clone()
                .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string()),
            digest: manifest_digest.to_string(),
            size: size as i64,
            platform: None,
            annotations: Some(BTreeMap::from([(
                REF_NAME_ANNOTATION.to_string(),
                name.to_string(),
            )])),
            artifact_type: None,
        });
        self.write_index(&index)
    }

    /// Looks an image up by its normalized name.
    pub fn get(&self, name: &str) -> Result<Option<ImageEntry>> {
        Ok(self.list()?.into_iter().find(|e| e.name == name))
    }

    /// All named images, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageEntry>> {
        let index = {
            let _guard = self.lock();
            self.read_index()?
        };
        let mut images = Vec::new();
        for entry in &index.manifests {
            let Some(name) = ref_name(entry) else {
                continue;
            };
            let size = self
                .manifest(&entry.digest)
                .map(|m| image_size(&m))
                .unwrap_or(0);
            images.push(ImageEntry {
                name: name.to_string(),
                digest: entry.digest.clone(),
                size,
            });
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// Removes the name and garbage-collects what no other image uses. Removing an absent
    /// name is not an error (the report is empty).
    pub fn remove(&self, name: &str) -> Result<GcReport> {
        let _guard = self.lock();
        let mut index = self.read_index()?;
        let before = index.manifests.len();
        index
            .manifests
            .retain(|entry| ref_name(entry) != Some(name));
        if index.manifests.len() == before {
            return Ok(GcReport::default());
        }
        self.write_index(&index)?;
        self.collect_garbage(&index)
    }

    /// Deletes blobs and unpacked layers no named image references.
    pub fn gc(&self) -> Result<GcReport> {
        let _guard = self.lock();
        let index = self.read_index()?;
        self.collect_garbage(&index)
    }

    fn collect_garbage(&self, index: &OciImageIndex) -> Result<GcReport> {
        let mut keep_blobs = HashSet::new();
        let mut keep_layers = HashSet::new();
        for entry in &index.manifests {
            keep_blobs.insert(hex_of(&entry.digest)?.to_string());
            let manifest = self.manifest(&entry.digest)?;
            keep_blobs.insert(hex_of(&manifest.config.digest)?.to_string());
            for layer in &manifest.layers {
                let hex = hex_of(&layer.digest)?.to_string();
                keep_blobs.insert(hex.clone());
                keep_layers.insert(hex);
            }
        }
        let mut report = GcReport::default();
        for name in dir_names(&self.root.join("blobs/sha256"))? {
            if !keep_blobs.contains(&name) {
                let path = self.root.join("blobs/sha256").join(&name);
                std::fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
                report.blobs.push(format!("sha256:{name}"));
            }
        }
        for name in dir_names(&self.root.join("layers"))? {
            if !keep_layers.contains(&name) {
                let path = self.root.join("layers").join(&name);
                std::fs::remove_dir_all(&path)
                    .context(|| format!("removing {}", path.display()))?;
                report.layers.push(format!("sha256:{name}"));
            }
        }
        report.blobs.sort();
        report.layers.sort();
        tracing::info!(
            blobs = report.blobs.len(),
            layers = report.layers.len(),
            "image store garbage collected"
        );
        Ok(report)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.index_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read_index(&self) -> Result<OciImageIndex> {
        let path = self.root.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Store(format!("{} is corrupt: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OciImageIndex {
                schema_version: 2,
                media_type: Some(oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()),
                manifests: Vec::new(),
                artifact_type: None,
                annotations: None,
            }),
            Err(e) => Err(Error::Io {
                context: format!("reading {}", path.display()),
                source: e,
            }),
        }
    }

    fn write_index(&self, index: &OciImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| Error::Store(format!("encoding index.json: {e}")))?;
        let mut tmp = tempfile::Builder::new()
            .prefix("index-")
            .tempfile_in(self.root.join("tmp"))
            .context(|| "creating a temporary index file".to_string())?;
        tmp.write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .context(|| "writing index.json".to_string())?;
        tmp.persist(self.root.join("index.json"))
            .map_err(|e| Error::Io {
                context: "replacing index.json".to_string(),
                source: e.error,
            })?;
        Ok(())
    }
}

/// A blob being written; it only becomes visible in the store through [`BlobWriter::commit`],
/// which checks the digest.
pub struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    expected: String,
    target: PathBuf,
    written: u64,
}

impl BlobWriter {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .context(|| format!("writing blob {}", self.expected))
    }

    /// Verifies the digest and moves the blob into place. A mismatch discards the data.
    pub fn commit(self) -> Result<u64> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if actual != self.expected {
            return Err(Error::Store(format!(
                "digest mismatch: expected {}, got {actual}",
                self.expected
            )));
        }
        self.file
            .as_file()
            .sync_all()
            .context(|| format!("syncing blob {}", self.expected))?;
        self.file.persist(&self.target).map_err(|e| Error::Io {
            context: format!("moving blob {} into place", self.expected),
            source: e.error,
        })?;
        Ok(self.written)
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Sum of the config and layer sizes a manifest states.
pub fn image_size(manifest: &OciImageManifest) -> u64 {
    std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .map(|d: &OciDescriptor| d.size.max(0) as u64)
        .sum()
}

fn ref_name(entry: &ImageIndexEntry) -> Option<&str> {
    entry
        .annotations
        .as_ref()?
        .get(REF_NAME_ANNOTATION)
        .map(String::as_str)
}

fn hex_of(digest: &str) -> Result<&str> {
    if !is_digest(digest) {
        return Err(Error::Store(format!("unsupported digest {digest:?}")));
    }
    Ok(&digest["sha256:".len()..])
}

fn dir_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(media_type: &str, bytes: &[u8]) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as i64,
            ..Default::default()
        }
    }

    fn layer(file: &str, content: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, file, content).unwrap();
        builder.into_inner().unwrap()
    }

    /// Stores an image with the given layers and names it.
    fn store_image(store: &Store, name: &str, layers: &[&[u8]]) -> String {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","n":"{name}"}}"#);
        store.put_blob_bytes(config.as_bytes()).unwrap();
        let manifest = OciImageManifest {
            config: descriptor(
                oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE,
                config.as_bytes(),
            ),
            layers: layers
                .iter()
                .map(|l| {
                    store.put_blob_bytes(l).unwrap();
                    descriptor(oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE, l)
                })
                .collect(),
            ..Default::default()
        };
        let digest = store
            .put_blob_bytes(&serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        store.tag(name, &digest).unwrap();
        digest
    }

    #[test]
    fn rejects_a_blob_whose_content_does_not_match_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let claimed = sha256_digest(b"the real content");
        let err = store.put_blob_reader(&claimed, &b"something else"[..]);
        assert!(matches!(err, Err(Error::Store(m)) if m.contains("digest mismatch")));
        assert!(!store.has_blob(&claimed));
        assert_eq!(
            dir_names(&dir.path().join("tmp")).unwrap(),
            Vec::<String>::new()
        );
        assert!(
            store
                .put_blob_reader(&claimed, &b"the real content"[..])
                .is_ok()
        );
        assert!(store.has_blob(&claimed));
        assert!(store.blob_path("sha256:../../etc").is_err());
    }

    #[test]
    fn shares_layers_and_collects_only_unreferenced_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base = layer("base.txt", b"base");
        let top_a = layer("a.txt", b"a");
        let top_b = layer("b.txt", b"b");
        store_image(&store, "example.com/a:1", &[&base, &top_a]);
        store_image(&store, "example.com/b:1", &[&base, &top_b]);
        let a_layers = store.image_layers("example.com/a:1").unwrap();
        let b_layers = store.image_layers("example.com/b:1").unwrap();
        assert_eq!(
            a_layers[1], b_layers[1],
            "the base layer is unpacked once and shared"
        );
        assert!(a_layers[0].join("a.txt").is_file(), "top layer comes first");
        assert_eq!(dir_names(&dir.path().join("layers")).unwrap().len(), 3);
        let names: Vec<String> = store.list().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["example.com/a:1", "example.com/b:1"]);

        let report = store.remove("example.com/a:1").unwrap();
        // a's manifest, config and top layer go; the shared base stays.
        assert_eq!(report.blobs.len(), 3, "{report:?}");
        assert_eq!(report.layers, [sha256_digest(&top_a)]);
        assert!(store.has_blob(&sha256_digest(&base)));
        assert!(b_layers[1].join("base.txt").is_file());
        assert!(store.get("example.com/a:1").unwrap().is_none());

        let report = store.remove("example.com/b:1").unwrap();
        assert_eq!(report.layers.len(), 2);
        assert_eq!(
            dir_names(&dir.path().join("blobs/sha256")).unwrap().len(),
            0
        );
        assert_eq!(
            store.remove("example.com/b:1").unwrap(),
            GcReport::default()
        );
    }

    #[test]
    fn retagging_moves_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store_image(&store, "example.com/app:v1", &[&layer("x", b"1")]);
        let second = store_image(&store, "example.com/app:v1", &[&layer("x", b"2")]);
        assert_ne!(first, second);
        let list = store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].digest, second);
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(
            reopened.get("example.com/app:v1").unwrap().unwrap().digest,
            second
        );
    }
}
