//! Skiff's reconciling controllers, the kube-controller-manager of Skiff.
//!
//! Every controller is built the same way, on the `runtime` crate: shared informers feed a
//! work queue of keys; a reconcile reads the caches, calls a pure planning function (the
//! whole decision, unit-tested with tables of cases) and applies the planned actions through
//! the API; expectations keep a stale cache from acting twice. [`manager`] runs them all
//! under one leader-elected Lease (`kube-system/kube-controller-manager`), so two managers
//! never both act.

pub mod caches;
pub mod claim;
pub mod context;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod error;
pub mod garbage;
pub mod manager;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod service_pods;
pub mod serviceaccount;

pub use context::{Context, ControllerSettings};
pub use error::{Error, Result};
pub use manager::{ManagerConfig, run};
