//! Unpacking one layer tarball into a directory that overlayfs can use as a lower layer.
//!
//! OCI layers mark deletions with `.wh.NAME` files and "this directory replaces the one below"
//! with `.wh..wh..opq`. Overlayfs expresses the same with a 0/0 character device named `NAME` and
//! the `trusted.overlay.opaque=y` xattr on the directory, so unpacking converts one into the other
//! (both need root).

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, IoContext, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What a tar entry path means for the unpacked layer.
#[derive(Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A normal file, directory or link at this (relative, cleaned) path.
    Regular(PathBuf),
    /// `NAME` in the lower layers is deleted: create a whiteout device at this path.
    Whiteout(PathBuf),
    /// The directory at this path hides everything below it (empty path: the layer root).
    Opaque(PathBuf),
    /// Paths that would escape the layer (`..`) or are otherwise unusable.
    Rejected,
}

/// Classifies a tar entry path. Pure, so the whiteout rules are table-tested.
pub fn classify(path: &Path) -> EntryKind {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => clean.push(c),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return EntryKind::Rejected,
        }
    }
    let Some(file_name) = clean
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
    else {
        // The root itself ("./"): a directory entry for the layer root.
        return EntryKind::Regular(clean);
    };
    let parent = clean.parent().map(Path::to_path_buf).unwrap_or_default();
    if file_name == OPAQUE_MARKER {
        EntryKind::Opaque(parent)
    } else if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            EntryKind::Rejected
        } else {
            EntryKind::Whiteout(parent.join(hidden))
        }
    } else {
        EntryKind::Regular(clean)
    }
}

/// Unpacks a layer (plain tar or gzip-compressed tar, told apart by the gzip magic bytes) into
/// `dest`, converting whiteouts to their overlayfs form. Ownership, modes, and xattrs are kept.
pub fn unpack(reader: impl Read, dest: &Path) -> Result<()> {
    let mut buffered = BufReader::new(reader);
    let head = buffered
        .fill_buf()
        .context(|| "reading layer".to_string())?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::Store(
            "zstd-compressed layers are not supported".into(),
        ));
    }
    if gzip {
        unpack_tar(flate2::read::GzDecoder::new(buffered), dest)
    } else {
        unpack_tar(buffered, dest)
    }
}

fn unpack_tar(reader: impl Read, dest: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(is_root());
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    archive.set_preserve_mtime(true);
    let entries = archive
        .entries()
        .context(|| "reading layer tar".to_string())?;
    for entry in entries {
        let mut entry = entry.context(|| "reading layer tar entry".to_string())?;
        let path = entry
            .path()
            .context(|| "reading layer tar entry path".to_string())?
            .into_owned();
        match classify(&path) {
            EntryKind::Regular(_) => {
                entry
                    .unpack_in(dest)
                    .map_err(|e| Error::Store(format!("unpacking {}: {e:?}", path.display())))?;
            }
            EntryKind::Whiteout(hidden) => make_whiteout(&dest.join(hidden))?,
            EntryKind::Opaque(dir) => make_opaque(&dest.join(dir))?,
            EntryKind::Rejected => {
                return Err(Error::Store(format!(
                    "layer entry {} escapes the layer",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Whether this process runs as root (whiteouts, ownership and overlay mounts need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn make_whiteout(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    }
    .context(|| format!("replacing {} by a whiteout", path.display()))?;
    let c_path = c_path(path)?;
    // SAFETY: c_path is a valid NUL-terminated string; mknod does not retain it.
    let rc = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::Store(format!(
            "creating whiteout {} (needs root): {err}",
            path.display()
        )));
    }
    Ok(())
}

fn make_opaque(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let c_path = c_path(dir)?;
    let name = c"trusted.overlay.opaque";
    // SAFETY: both strings are NUL-terminated and the value pointer/length describe one byte.
    let rc = unsafe { libc::lsetxattr(c_path.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::Store(format!(
            "marking {} opaque (needs root): {err}",
            dir.display()
        )));
    }
    Ok(())
}

pub(crate) fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Store(format!("path {} contains NUL", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_whiteouts_and_paths() {
        let p = PathBuf::from;
        let cases = [
            ("etc/passwd", EntryKind::Regular(p("etc/passwd"))),
            ("./etc/passwd", EntryKind::Regular(p("etc/passwd"))),
            ("/bin/sh", EntryKind::Regular(p("bin/sh"))),
            ("./", EntryKind::Regular(p(""))),
            ("etc/.wh.motd", EntryKind::Whiteout(p("etc/motd"))),
            (".wh.tmp", EntryKind::Whiteout(p("tmp"))),
            ("var/.wh..wh..opq", EntryKind::Opaque(p("var"))),
            (".wh..wh..opq", EntryKind::Opaque(p(""))),
            ("etc/.whatever", EntryKind::Regular(p("etc/.whatever"))),
            ("../etc/passwd", EntryKind::Rejected),
            ("a/../../b", EntryKind::Rejected),
            ("etc/.wh.", EntryKind::Rejected),
            ("etc/.wh...", EntryKind::Rejected),
        ];
        for (input, want) in cases {
            assert_eq!(classify(Path::new(input)), want, "{input}");
        }
    }

    #[test]
    fn unpacks_plain_and_gzip_layers() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(5);
        header.set_mode(0o640);
        header.set_cksum();
        builder
            .append_data(&mut header, "dir/file.txt", &b"hello"[..])
            .unwrap();
        let plain = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain).unwrap();
        let gzipped = gz.finish().unwrap();
        for bytes in [plain, gzipped] {
            let dir = tempfile::tempdir().unwrap();
            unpack(&bytes[..], dir.path()).unwrap();
            let file = dir.path().join("dir/file.txt");
            assert_eq!(std::fs::read(&file).unwrap(), b"hello");
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
    }
}
