//! Loading OCI image layout archives into the store (`skiff agent image load`, like
//! `kind load image-archive`).
//!
//! An archive is a tar (optionally gzip-compressed) of an OCI image layout: `oci-layout`,
//! `index.json` and `blobs/sha256/*`, as written by `skopeo copy ... oci-archive:` or
//! `docker save` (Docker 25+ writes the OCI layout next to its legacy files). Images are named
//! from `io.containerd.image.name` (full name, Docker and containerd write it) or else
//! `org.opencontainers.image.ref.name`, normalized like any pod image reference.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::image::platform::{
    IndexDocument, IndexManifest, host_platform, is_index, select_platform,
};
use crate::image::reference::{ImageReference, is_digest};
use crate::image::store::{REF_NAME_ANNOTATION, Store};

/// The annotation containerd and Docker put the full image name in.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// One image loaded from an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Normalized name it is stored under.
    pub name: String,
    /// Its manifest digest.
    pub digest: String,
}

/// Loads every named image of the archive at `path`; blocking. Blobs are verified against
/// their file names, layers are unpacked, and the names are recorded.
pub fn load_archive(store: &Store, path: &Path) -> Result<Vec<LoadedImage>> {
    let file = std::fs::File::open(path).context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let gzip = reader
        .fill_buf()
        .context(|| format!("reading {}", path.display()))?
        .starts_with(&[0x1f, 0x8b]);
    if gzip {
        load(store, flate2::read::GzDecoder::new(reader))
    } else {
        load(store, reader)
    }
}

fn load(store: &Store, reader: impl Read) -> Result<Vec<LoadedImage>> {
    let mut archive = tar::Archive::new(reader);
    let mut index_json = None;
    let mut saw_layout = false;
    let entries = archive
        .entries()
        .map_err(|e| Error::Archive(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::Archive(format!("reading tar entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| Error::Archive(format!("reading tar entry path: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if path == "index.json" {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| Error::Archive(format!("reading index.json: {e}")))?;
            index_json = Some(bytes);
        } else if path == "oci-layout" {
            saw_layout = true;
        } else if let Some(hex) = path.strip_prefix("blobs/sha256/")
            && entry.header().entry_type().is_file()
        {
            let digest = format!("sha256:{hex}");
            if !is_digest(&digest) {
                return Err(Error::Archive(format!("unexpected blob file {path}")));
            }
            if !store.has_blob(&digest) {
                store
                    .put_blob_reader(&digest, &mut entry)
                    .map_err(|e| Error::Archive(format!("blob {path}: {e}")))?;
            }
        }
    }
    let index_json = match (index_json, saw_layout) {
        (Some(index), true) => index,
        _ => {
            return Err(Error::Archive(
                "not an OCI image layout archive (no oci-layout and index.json)".into(),
            ));
        }
    };
    let index: IndexDocument = serde_json::from_slice(&index_json)
        .map_err(|e| Error::Archive(format!("invalid index.json: {e}")))?;
    let mut loaded = Vec::new();
    for entry in &index.manifests {
        let Some(name) = image_name(entry)? else {
            tracing::warn!(digest = %entry.digest, "archive image without a name skipped");
            continue;
        };
        let digest = image_manifest_digest(store, &entry.digest)?;
        let manifest = store
            .manifest(&digest)
            .map_err(|e| Error::Archive(format!("image {name}: {e}")))?;
        store.unpack_image(&manifest)?;
        store
            .tag(&name, &digest)
            .map_err(|e| Error::Archive(format!("image {name}: {e}")))?;
        loaded.push(LoadedImage { name, digest });
    }
    if loaded.is_empty() {
        return Err(Error::Archive(format!(
            "no named images in the archive (index.json entries need a {CONTAINERD_NAME_ANNOTATION} or {REF_NAME_ANNOTATION} annotation)"
        )));
    }
    Ok(loaded)
}

/// The normalized name of an index entry, `None` when it carries no name.
fn image_name(entry: &IndexManifest) -> Result<Option<String>> {
    let raw = entry
        .annotations
        .get(CONTAINERD_NAME_ANNOTATION)
        .or_else(|| entry.annotations.get(REF_NAME_ANNOTATION));
    raw.map(|name| {
        ImageReference::parse(name)
            .map(|r| r.to_string())
            .map_err(|e| Error::Archive(e.to_string()))
    })
    .transpose()
}

/// Follows an index entry to an image manifest for this host (entries may themselves be
/// multi-platform indexes).
fn image_manifest_digest(store: &Store, digest: &str) -> Result<String> {
    let mut digest = digest.to_string();
    for _ in 0..4 {
        let body = store
            .read_blob(&digest)
            .map_err(|e| Error::Archive(format!("manifest {digest}: {e}")))?;
        if !is_index(None, &body) {
            return Ok(digest);
        }
        let nested: IndexDocument = serde_json::from_slice(&body)
            .map_err(|e| Error::Archive(format!("invalid index {digest}: {e}")))?;
        let (os, arch) = host_platform();
        digest = select_platform(&nested.manifests, os, arch)
            .ok_or_else(|| Error::Archive(format!("index {digest} has no {os}/{arch} image")))?
            .digest
            .clone();
    }
    Err(Error::Archive("image indexes nested too deeply".into()))
}
