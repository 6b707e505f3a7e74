//! The Skiff node agent: runs pods through a container runtime and programs Services on the node.
//!
//! The real agent is not built yet (issue 6). [`simulated`] provides hollow nodes (register,
//! heartbeat, report pods Running) for tests and benchmarks of everything above the node.

pub mod simulated;
