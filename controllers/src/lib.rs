//! Skiff's reconciling controllers (ReplicaSet, Deployment, garbage collector, ...).
//!
//! Not built yet (issue 5); the crate exists so the workspace has its final shape.
