//! Container root filesystems: an overlayfs over the image's unpacked layers plus a writable
//! layer of the container's own.
//!
//! Layout of a container directory: `upper/` (the container's writes), `work/` (overlayfs
//! scratch space) and `rootfs/` (the mount point). Tearing down unmounts and deletes the whole
//! directory, so the writable layer is discarded with the container while the shared image
//! layers stay untouched.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::image::layer::c_path;

/// Overlayfs takes its options in one page; longer option strings are refused by the kernel.
const MAX_OPTIONS_LEN: usize = 4095;

/// A mounted container root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRootfs {
    /// The container directory holding `upper/`, `work/` and `rootfs/`.
    pub dir: PathBuf,
    /// Where the merged root filesystem is mounted.
    pub rootfs: PathBuf,
    /// The container's writable layer.
    pub upper: PathBuf,
}

/// The overlayfs mount options for `layers` (top first). Pure: rejects paths overlayfs cannot
/// express (`:` and `,` separate options and layers) and option strings that are too long.
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    if layers.is_empty() {
        return Err(Error::Rootfs(
            "an overlay needs at least one lower layer".into(),
        ));
    }
    let mut all: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
    all.push(upper);
    all.push(work);
    for path in &all {
        let s = path.to_string_lossy();
        if s.contains(':') || s.contains(',') || !path.is_absolute() {
            return Err(Error::Rootfs(format!(
                "layer path {s:?} must be absolute and free of ':' and ','"
            )));
        }
    }
    let lower = layers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if options.len() > MAX_OPTIONS_LEN {
        return Err(Error::Rootfs(format!(
            "{} layers make overlay options of {} bytes, over the kernel's limit",
            layers.len(),
            options.len()
        )));
    }
    Ok(options)
}

/// Mounts a root filesystem for a container in `container_dir` (created fresh) over `layers`
/// (top first, as [`crate::image::Store::image_layers`] returns them). Needs root.
pub fn mount(layers: &[PathBuf], container_dir: &Path) -> Result<ContainerRootfs> {
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    let rootfs = container_dir.join("rootfs");
    let mut lowers = layers.to_vec();
    if lowers.is_empty() {
        // An image without layers (`FROM scratch` with nothing added) is an empty directory.
        let empty = container_dir.join("empty");
        std::fs::create_dir_all(&empty).context(|| format!("creating {}", empty.display()))?;
        lowers.push(empty);
    }
    let options = overlay_options(&lowers, &upper, &work)?;
    for dir in [&upper, &work, &rootfs] {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    let target = c_path(&rootfs)?;
    let options_c = std::ffi::CString::new(options)
        .map_err(|_| Error::Rootfs("overlay options contain NUL".into()))?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            0,
            options_c.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::Rootfs(format!(
            "mounting overlay at {} (needs root): {err}",
            rootfs.display()
        )));
    }
    tracing::debug!(rootfs = %rootfs.display(), layers = lowers.len(), "container rootfs mounted");
    Ok(ContainerRootfs {
        dir: container_dir.to_path_buf(),
        rootfs,
        upper,
    })
}

/// Unmounts the container's root filesystem (if mounted) and deletes its directory with the
/// writable layer. Safe to call again, or for a directory that was never mounted.
pub fn teardown(container_dir: &Path) -> Result<()> {
    let rootfs = container_dir.join("rootfs");
    if rootfs.exists() {
        let target = c_path(&rootfs)?;
        // SAFETY: target is a valid NUL-terminated path.
        let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // EINVAL: not a mount point (never mounted or already unmounted).
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(Error::Rootfs(format!(
                    "unmounting {}: {err}",
                    rootfs.display()
                )));
            }
        }
    }
    match std::fs::remove_dir_all(container_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            context: format!("removing {}", container_dir.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_overlay_options_top_first() {
        let p = PathBuf::from;
        let cases: Vec<(Vec<PathBuf>, Option<&str>)> = vec![
            (
                vec![p("/s/layers/top"), p("/s/layers/base")],
                Some("lowerdir=/s/layers/top:/s/layers/base,upperdir=/c/upper,workdir=/c/work"),
            ),
            (
                vec![p("/s/layers/only")],
                Some("lowerdir=/s/layers/only,upperdir=/c/upper,workdir=/c/work"),
            ),
            (vec![], None),
            (vec![p("relative/layer")], None),
            (vec![p("/with:colon")], None),
            (vec![p("/with,comma")], None),
            (vec![p(&format!("/{}", "x".repeat(200))); 30], None),
        ];
        for (layers, want) in cases {
            let got = overlay_options(&layers, Path::new("/c/upper"), Path::new("/c/work"));
            assert_eq!(got.ok().as_deref(), want, "{layers:?}");
        }
    }

    #[test]
    fn teardown_of_a_missing_or_unmounted_dir_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let container = dir.path().join("c1");
        teardown(&container).unwrap();
        std::fs::create_dir_all(container.join("rootfs")).unwrap();
        std::fs::create_dir_all(container.join("upper")).unwrap();
        teardown(&container).unwrap();
        assert!(!container.exists());
    }
}
