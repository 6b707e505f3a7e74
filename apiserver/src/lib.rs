//! The Skiff API server: the Kubernetes REST API over a pluggable store.

pub mod error;
pub mod patch;
pub mod printers;
pub mod storage;
pub mod strategy;

pub use error::{Cause, Error, Result};
