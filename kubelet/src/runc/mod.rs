//! The `runc` driver: real OCI containers. Each container is a runc bundle (an overlayfs root
//! over the image's layers from the [`crate::image::Store`] and a `config.json` from
//! [`spec`]) run under its own [`crate::shim`], in the pod's network namespace from a
//! [`crate::cri::PodNetwork`].
//!
//! State under `<data dir>/runc/`: `sandboxes/<id>/sandbox.json`, `containers/<id>/` (the
//! bundle: `config.json`, `container.json`, `rootfs/`, `upper/`, `work/` and the shim's
//! files) and `state/` (runc's `--root`).

pub mod driver;
pub mod spec;

pub use driver::{RuncConfig, RuncRuntime};
