//! The one error type of the controllers crate.
//!
//! Most failures are the API's (`runtime::Error`); the rest are decisions a controller refuses
//! to act on, such as adopting children for an owner that was deleted and recreated under the
//! same name since the cache last saw it.

/// Everything a controller's sync can fail with; the work queue retries the key with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error(transparent)]
    Api(#[from] runtime::Error),
    /// The owner changed under the controller (recreated with a new uid, or being deleted),
    /// so adopting children for the cached owner would be wrong.
    #[error("{0}")]
    OwnerChanged(String),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
