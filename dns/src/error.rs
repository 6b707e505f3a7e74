//! The one error type of the DNS crate.

use std::net::SocketAddr;

/// What can go wrong serving or forwarding DNS.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A message could not be encoded or decoded.
    #[error("DNS message: {0}")]
    Proto(#[from] hickory_proto::ProtoError),
    /// The DNS address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// No upstream nameserver is configured.
    #[error("no upstream nameserver")]
    NoUpstream,
    /// An upstream nameserver did not answer in time.
    #[error("upstream {0} did not answer in time")]
    UpstreamTimeout(SocketAddr),
    /// An upstream nameserver answered something else than what was asked.
    #[error("upstream {0} answered another question")]
    Mismatch(SocketAddr),
    /// A message too large for TCP framing.
    #[error("message too large")]
    TooLarge,
}
