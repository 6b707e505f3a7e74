//! The one error type of the runtime crate.
//!
//! Callers mostly need to tell three things apart: the API server answered with a
//! `Status` (not found, conflict, gone, invalid …), the server could not be reached, or
//! the local configuration is wrong. Each of those is a variant here, so code can match on
//! it instead of parsing messages.

use std::path::PathBuf;

pub use kube_core::Status;

/// Everything that can go wrong in the runtime crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with a failure `Status` (decoded from the body; synthesised
    /// from the HTTP code when the body was not a `Status`).
    #[error("{} ({}): {}", .0.reason, .0.code, .0.message)]
    Api(Box<Status>),
    /// The request never got an answer: connection refused, reset, timed out.
    #[error("cannot reach the API server: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with something that is not the JSON we expected.
    #[error("cannot decode the server's answer: {0}")]
    Decode(#[from] serde_json::Error),
    /// A request could not be built (for example an apply patch without a field manager).
    #[error("invalid request: {0}")]
    Request(String),
    /// No kubeconfig was found where one was looked for.
    #[error("no kubeconfig found (looked at {})", display_paths(.0))]
    KubeconfigMissing(Vec<PathBuf>),
    /// A kubeconfig file exists but cannot be read or parsed.
    #[error("cannot read kubeconfig {path}: {message}")]
    KubeconfigInvalid {
        /// The file that failed.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// The kubeconfig is readable but does not describe a usable cluster: unknown context,
    /// cluster or user, no server URL, bad base64 in a `*-data` field, unreadable or
    /// malformed certificates and keys (the message names the field).
    #[error("invalid kubeconfig: {0}")]
    Config(String),
    /// The TLS handshake failed: the server's certificate was not trusted, or the server
    /// refused the client certificate. Kept apart from [`Error::Http`] because retrying does
    /// not help; the kubeconfig has to change.
    #[error("TLS handshake with the API server failed: {0}")]
    Tls(String),
    /// The queue, informer or elector was shut down while the caller waited on it.
    #[error("shut down")]
    ShutDown,
    /// A wait with a deadline ran out.
    #[error("timed out: {0}")]
    Timeout(String),
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere: neither KUBECONFIG nor HOME is set".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// The API `Status`, if the server answered with a failure.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Api(s) => Some(s),
            _ => None,
        }
    }

    /// 404 NotFound.
    pub fn is_not_found(&self) -> bool {
        self.status().is_some_and(|s| s.is_not_found())
    }

    /// 409 Conflict: a stale resourceVersion on update (AlreadyExists is a separate check).
    pub fn is_conflict(&self) -> bool {
        self.status()
            .is_some_and(|s| s.is_conflict() && s.reason != "AlreadyExists")
    }

    /// 409 AlreadyExists on create.
    pub fn is_already_exists(&self) -> bool {
        self.status().is_some_and(|s| s.is_already_exists())
    }

    /// 410 Gone / Expired: the resourceVersion is older than the server's history; re-list.
    pub fn is_gone(&self) -> bool {
        self.status()
            .is_some_and(|s| s.code == 410 || s.reason == "Expired" || s.reason == "Gone")
    }

    /// 422 Invalid.
    pub fn is_invalid(&self) -> bool {
        self.status().is_some_and(|s| s.is_invalid())
    }

    /// Whether retrying the same request later may succeed: transport failures and the
    /// server-side 429/5xx family.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http(_) => true,
            Error::Api(s) => s.code == 429 || s.code >= 500,
            _ => false,
        }
    }
}

impl Error {
    /// Classifies a transport failure: a TLS rejection becomes [`Error::Tls`] with the
    /// reason spelled out (reqwest's own message hides it), anything else [`Error::Http`].
    pub fn from_transport(e: reqwest::Error) -> Self {
        match crate::tls::handshake_failure(&e) {
            Some(reason) => Error::Tls(reason),
            None => Error::Http(e),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
