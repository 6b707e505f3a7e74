//! SPDY/3.1, as far as Kubernetes' streaming protocols use it: the frame codec ([`frame`],
//! [`headers`], [`dictionary`]) and a small stream multiplexer ([`session`]).
//!
//! kubectl's `port-forward` (and its SPDY fallback for exec/attach) speaks SPDY/3.1 as
//! implemented by `moby/spdystream`: header compression with the SPDY dictionary, streams
//! opened with SYN_STREAM and accepted with SYN_REPLY, half-closed with FIN, aborted with
//! RST_STREAM, PINGs echoed. spdystream neither sends nor honours flow-control windows
//! (WINDOW_UPDATE is ignored), so neither does this crate: back-pressure comes from the
//! transport and bounded per-stream queues instead. Since Kubernetes 1.30 kubectl tunnels
//! the SPDY byte stream through a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`),
//! one or more binary messages per frame; the session therefore treats its transport as
//! a byte stream and never assumes message boundaries line up with frames.

pub mod dictionary;
pub mod frame;
pub mod headers;
pub mod portforward;
pub mod session;
pub mod splice;
pub mod transport;

pub use frame::Frame;
pub use headers::Headers;
pub use session::{Incoming, Role, Session, Stream, StreamReader, StreamWriter};
pub use splice::{Until, splice};

/// The WebSocket subprotocol of port forwarding tunnelled as SPDY/3.1 (kubectl 1.30+).
pub const PORT_FORWARD_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The stream protocol version of port forwarding (`X-Stream-Protocol-Version`).
pub const PORT_FORWARD_V1: &str = "portforward.k8s.io";

/// What can go wrong speaking SPDY.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    /// The peer broke the framing rules; the connection cannot continue.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// A header block could not be (de)compressed.
    #[error("SPDY header compression: {0}")]
    Compression(String),
    /// The peer reset (RST_STREAM) the stream.
    #[error("stream reset by peer")]
    Reset,
    /// The stream was already finished (FIN sent) on our side.
    #[error("write on a finished stream")]
    Finished,
    /// The connection is gone (transport closed or failed).
    #[error("connection closed")]
    Closed,
    /// The peer did not answer a new stream in time.
    #[error("timed out waiting for the stream to be accepted")]
    Timeout,
}

impl From<SpdyError> for std::io::Error {
    fn from(e: SpdyError) -> Self {
        let kind = match e {
            SpdyError::Reset => std::io::ErrorKind::ConnectionReset,
            SpdyError::Closed | SpdyError::Finished => std::io::ErrorKind::BrokenPipe,
            SpdyError::Timeout => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e)
    }
}
