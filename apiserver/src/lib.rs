//! The Skiff API server: the Kubernetes REST API over a pluggable store.
//!
//! Layers, from the wire inwards: [`http`] (routing, negotiation, `Status` errors) →
//! [`registry`] (Kubernetes semantics for every kind in [`resources`], using the per-kind
//! [`strategy`], [`patch`] and [`printers`]) → [`watchcache`] (lists and watches from memory) →
//! [`storage`] (etcd's model: embedded or etcd).

pub mod allocator;
pub mod error;
pub mod filter;
pub mod http;
pub mod objmeta;
pub mod patch;
pub mod printers;
pub mod registry;
pub mod resources;
pub mod server;
pub mod storage;
pub mod strategy;
pub mod watchcache;

pub use error::{Cause, Error, Result};
pub use server::{ApiServer, ServerConfig};
