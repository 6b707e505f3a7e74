//! Container images on the node: references, the content-addressed store, pulling from
//! registries, loading OCI archives and overlayfs root filesystems for containers.

pub mod archive;
pub mod build;
pub mod config;
pub mod credentials;
pub mod layer;
pub mod platform;
pub mod policy;
pub mod pull;
pub mod reference;
pub mod rootfs;
pub mod store;

pub use config::ImageConfig;
pub use credentials::{Credentials, DockerConfig};
pub use policy::PullPolicy;
pub use pull::{PulledImage, Puller, PullerConfig};
pub use reference::ImageReference;
pub use store::Store;
