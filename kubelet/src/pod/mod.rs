//! The node agent's pod-spec logic, as small modules of mostly pure functions: Kubernetes
//! objects in, plain values out. The agent loop (`crate::agent`) gathers the inputs (the pod,
//! its ConfigMaps and Secrets, what the runtime observed) and carries out the results.
//!
//! - [`env`]: a container's environment and its `$(VAR)`-expanded command and args.
//! - [`volumes`]: pod volumes materialized on disk and a container's mounts.
//! - [`probe`]: the per-probe state machine and the httpGet / tcpSocket / exec runners.
//! - [`backoff`]: restart policy and crash-loop / image-pull back-off.
//!
//! The pod status itself is computed in `crate::agent::status`, next to the worker state it
//! reads.

pub mod backoff;
pub mod env;
pub mod probe;
pub mod volumes;
