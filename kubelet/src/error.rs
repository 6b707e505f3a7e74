//! The kubelet crate's one error type.
//!
//! Variants that a pod can show carry the Kubernetes container waiting reason they map to
//! ([`Error::reason`]), so the agent reports the same reasons `kubectl describe` users know.

/// Everything the node agent's image and container machinery can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image reference cannot be parsed (waiting reason `InvalidImageName`).
    #[error("couldn't parse image name {image:?}: {message}")]
    InvalidImageName {
        /// The reference as written in the pod spec.
        image: String,
        /// What is wrong with it.
        message: String,
    },
    /// Pulling failed: registry unreachable, unknown image, denied, corrupt blob
    /// (waiting reason `ErrImagePull`, then `ImagePullBackOff` while backing off).
    #[error("failed to pull image {image:?}: {message}")]
    ErrImagePull {
        /// The normalized reference.
        image: String,
        /// The registry's or transport's explanation.
        message: String,
    },
    /// Policy `Never` and the image is not in the store (waiting reason `ErrImageNeverPull`).
    #[error("container image {image:?} is not present with pull policy of Never")]
    ErrImageNeverPull {
        /// The normalized reference.
        image: String,
    },
    /// The image store is inconsistent or a blob failed verification.
    #[error("image store: {0}")]
    Store(String),
    /// An OCI archive could not be loaded.
    #[error("image archive: {0}")]
    Archive(String),
    /// Mounting or removing a container root filesystem failed.
    #[error("container rootfs: {0}")]
    Rootfs(String),
    /// The kubelet API's TLS material is missing or unusable.
    #[error("kubelet API TLS: {0}")]
    Tls(String),
    /// A container could not be created: bad spec, unknown user, image missing from the store
    /// (waiting reason `CreateContainerError`).
    #[error("failed to create container: {0}")]
    CreateContainer(String),
    /// The container's configuration cannot be built from the pod spec: a missing ConfigMap,
    /// Secret or key for its environment, a bad subPath, a mount of an unknown volume (waiting
    /// reason `CreateContainerConfigError`). The message is the kubelet's
    /// (`configmap "x" not found`, `couldn't find key k in ConfigMap ns/x`).
    #[error("{0}")]
    CreateContainerConfig(String),
    /// A pod volume could not be set up (missing ConfigMap/Secret, hostPath type mismatch).
    /// Kubernetes reports this as a `FailedMount` event and keeps the containers waiting in
    /// `ContainerCreating`, so it has no waiting reason of its own.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    Volume {
        /// The volume's name in the pod spec.
        volume: String,
        /// What went wrong, worded like the kubelet's volume plugins.
        message: String,
    },
    /// The runtime has no container with this id.
    #[error("no such container {0}")]
    ContainerNotFound(String),
    /// A `runc` command failed; `message` is what runc said.
    #[error("runc {command} failed: {message}")]
    Runc {
        /// The runc subcommand (`kill`, `delete`, ...).
        command: String,
        /// runc's error output.
        message: String,
    },
    /// A container could not be started (waiting reason `RunContainerError`).
    #[error("{0}")]
    StartContainer(String),
    /// The API server or the runtime's plumbing failed (not something a pod shows).
    #[error("{0}")]
    Runtime(String),
    /// A CNI plugin reported an error (its CNI error object, or its stderr when it wrote none).
    #[error(
        "CNI plugin {plugin} {command} failed (code {code}): {msg}{}",
        details_suffix(details)
    )]
    Cni {
        /// Plugin type, e.g. `bridge`.
        plugin: String,
        /// `ADD`, `DEL` or `CHECK`.
        command: String,
        /// The CNI error code (1-99 are the spec's, 100+ the plugin's own; 0 = no error object).
        code: u32,
        /// The plugin's message.
        msg: String,
        /// The plugin's details, possibly empty.
        details: String,
    },
    /// Setting up the node's pod network failed outside a plugin (namespaces, routes, the
    /// result cache, a bad configuration).
    #[error("pod network: {0}")]
    Network(String),
    /// The Service proxy could not program the node (`nft` failed, a port could not be bound).
    #[error("service proxy: {0}")]
    Proxy(String),
    /// A file-system operation failed; `context` says which one and on what.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// The Kubernetes container waiting reason for this error, when it is one a pod shows.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Error::InvalidImageName { .. } => Some("InvalidImageName"),
            Error::ErrImagePull { .. } => Some("ErrImagePull"),
            Error::ErrImageNeverPull { .. } => Some("ErrImageNeverPull"),
            // A store or verification failure during a pull is still a failed pull to the user.
            Error::Store(_) | Error::Io { .. } => Some("ErrImagePull"),
            Error::StartContainer(_) => Some("RunContainerError"),
            Error::CreateContainer(_) => Some("CreateContainerError"),
            Error::CreateContainerConfig(_) => Some("CreateContainerConfigError"),
            Error::Archive(_)
            | Error::Rootfs(_)
            | Error::Tls(_)
            | Error::Runtime(_)
            | Error::ContainerNotFound(_)
            | Error::Runc { .. }
            | Error::Cni { .. }
            | Error::Network(_)
            | Error::Proxy(_)
            | Error::Volume { .. } => None,
        }
    }
}

/// `": details"` when a CNI error carries details, else nothing.
fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(": {details}")
    }
}

/// Adds a context string to `std::io::Error`s, so messages say what failed on which path.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

/// Results of the kubelet crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
