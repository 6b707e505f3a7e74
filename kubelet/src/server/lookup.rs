//! How the kubelet API finds a pod's container: the one thing it needs from the agent.

use std::path::PathBuf;

/// The agent's view of which containers run on the node, as the kubelet API needs it.
///
/// Implemented by the agent over its pod workers' state (and by tests over a container they
/// made). `find` runs on a blocking thread, once per request, so it may ask the runtime.
/// Whether the container still runs is asked of the runtime, not of this trait, so the agent
/// only has to know names, ids and log locations.
pub trait ContainerLookup: Send + Sync + 'static {
    /// The newest container (running or exited) of `container` in pod `namespace/pod`.
    fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<FoundContainer, LookupError>;
}

/// A container the agent knows, as of its newest attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundContainer {
    /// The runtime's id of the newest attempt (for `exec` and the "still running?" check).
    pub container_id: String,
    /// The directory holding one `<attempt>.log` per attempt
    /// (`logs/<namespace>_<pod>_<uid>/<container>`, see [`crate::logs`]).
    pub log_dir: PathBuf,
    /// The newest attempt's number (the pod status' `restartCount`); `previous` reads
    /// attempt − 1.
    pub attempt: u32,
}

/// Why no container can be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// The node runs no pod of that name.
    PodNotFound,
    /// The pod has no container of that name.
    ContainerNotFound,
    /// The container has not been created yet; `reason` is its waiting reason
    /// (`ContainerCreating`, `ErrImagePull`, ...).
    Waiting {
        /// The container's waiting reason.
        reason: String,
    },
}
