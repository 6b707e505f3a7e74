//! Named network namespaces: a namespace kept alive by bind-mounting its nsfs handle onto a file
//! (`<dir>/<name>`), the way `ip netns add` does, but in-process.
//!
//! Why in-process rather than `ip netns`: the directory is ours to choose (tests use a
//! temporary one instead of the host's `/run/netns`), no fork/exec per pod (pod startup is
//! latency-bound), and failures come back as errno values instead of parsed stderr. A
//! short-lived thread `unshare(CLONE_NEWNET)`s, which only moves that thread, and
//! bind-mounts `/proc/thread-self/ns/net`; the namespace outlives the thread through the mount.
//!
//! The directory is made a shared mount point (like iproute2 does for `/run/netns`), so that an
//! unmount here also reaches mount namespaces that copied the mount (containers created while
//! the sandbox existed) and the namespace is really freed.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// `statfs` magic of nsfs, the file system of namespace handles.
const NSFS_MAGIC: i64 = 0x6e73_6673;

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Network(format!("path {} contains NUL", path.display())))
}

fn check(rc: libc::c_int, context: impl FnOnce() -> String) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error()).context(context)
    }
}

/// Whether `path` is a live namespace handle (an nsfs mount), not a leftover plain file.
pub fn is_netns(path: &Path) -> bool {
    let Ok(path) = c_path(path) else {
        return false;
    };
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and a properly sized out-parameter.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut stat) };
    rc == 0 && stat.f_type as i64 == NSFS_MAGIC
}

/// Creates `dir` and makes it a shared mount point (bind-mounting it onto itself first when
/// it is not a mount point yet). Idempotent.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let c_dir = c_path(dir)?;
    let make_shared = || {
        // SAFETY: valid path; the other arguments are ignored for a propagation change.
        unsafe {
            libc::mount(
                std::ptr::null(),
                c_dir.as_ptr(),
                std::ptr::null(),
                libc::MS_SHARED | libc::MS_REC,
                std::ptr::null(),
            )
        }
    };
    if make_shared() == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINVAL) {
        return Err(err).context(|| format!("making {} a shared mount", dir.display()));
    }
    // EINVAL: not a mount point yet.
    // SAFETY: valid paths; a recursive bind mount of the directory onto itself.
    let rc = unsafe {
        libc::mount(
            c_dir.as_ptr(),
            c_dir.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    };
    check(rc, || {
        format!("bind-mounting {} onto itself", dir.display())
    })?;
    check(make_shared(), || {
        format!("making {} a shared mount", dir.display())
    })
}

/// Unmounts the shared mount [`prepare_dir`] made (tests clean up with it).
pub fn release_dir(dir: &Path) -> Result<()> {
    let c_dir = c_path(dir)?;
    // SAFETY: valid path.
    let rc = unsafe { libc::umount2(c_dir.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(err).context(|| format!("unmounting {}", dir.display()));
        }
    }
    Ok(())
}

/// Creates the network namespace `<dir>/<name>` unless it exists; returns its path.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if is_netns(&path) {
        return Ok(path);
    }
    // The mount target; a leftover plain file (namespace lost, e.g. across a reboot) is reused.
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(|| format!("creating {}", path.display()))?;
    let target = c_path(&path)?;
    let made = std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: unshare affects only this thread, which ends right after the mount.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let source = c"/proc/thread-self/ns/net";
        // SAFETY: valid NUL-terminated paths.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })
    .join()
    .map_err(|_| Error::Network("network namespace thread panicked".into()))?;
    if let Err(source) = made {
        let _ = std::fs::remove_file(&path);
        return Err(Error::Io {
            context: format!("creating network namespace {}", path.display()),
            source,
        });
    }
    Ok(path)
}

/// Unmounts and removes a namespace handle; a missing one is not an error. The namespace
/// itself goes away once no process and no other mount holds it.
pub fn delete(path: &Path) -> Result<()> {
    let c = c_path(path)?;
    // SAFETY: valid path. MNT_DETACH: a handle in use elsewhere does not make this fail.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        // EINVAL: not mounted (a leftover file); ENOENT: already gone.
        if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(err).context(|| format!("unmounting {}", path.display()));
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Moves the calling thread (only it) into the network namespace at `netns`; sockets it
/// creates afterwards belong to that namespace for good.
pub fn enter(netns: &Path) -> io::Result<()> {
    let handle = File::open(netns)?;
    // SAFETY: setns on a valid namespace fd; it only moves the calling thread.
    if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `command` run in the network namespace at `netns` (when given): the child `setns`es
/// before exec. The handle is opened now, so a missing namespace fails here, not in the child.
pub fn run_in(command: &mut Command, netns: Option<&Path>) -> Result<()> {
    let Some(netns) = netns else {
        return Ok(());
    };
    let handle = File::open(netns).context(|| format!("opening {}", netns.display()))?;
    // SAFETY: setns is async-signal-safe; the closure only makes that syscall. The handle is
    // owned by the closure (alive until the Command is dropped) and close-on-exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}
