//! The client side of port forwarding (kubectl's protocol): one forwarded connection is a
//! pair of streams carrying `port` and `requestID`, an error stream the client half-closes
//! at once and reads to its end, and a data stream spliced with the local connection.

use tokio::io::{AsyncRead, AsyncWrite};

use super::splice::{Until, splice};
use super::{Headers, Session, SpdyError};

/// How a forwarded connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The streams could not be opened (the connection to the server is gone).
    #[error("error creating {which} stream: {source}")]
    Streams {
        /// `error` or `forwarding`.
        which: &'static str,
        /// Why.
        source: SpdyError,
    },
    /// The server reported an error (dialling the port in the pod failed).
    #[error("{0}")]
    Remote(String),
}

/// The headers of one of a request's streams (`streamType` is `error` or `data`).
pub fn stream_headers(stream_type: &str, port: u16, request_id: u64) -> Headers {
    Headers::from_pairs([
        ("streamType", stream_type),
        ("port", &port.to_string()),
        ("requestID", &request_id.to_string()),
    ])
}

/// Forwards `conn` to `port` in the pod over `session` as request `request_id`; returns
/// once the pod's side finished (or the local side failed), with the server's error
/// message if it sent one. Local copy errors are only logged, as kubectl does.
pub async fn forward_connection<S>(
    session: &Session,
    port: u16,
    request_id: u64,
    conn: S,
) -> Result<(), ForwardError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let error = session
        .open(stream_headers("error", port, request_id))
        .await
        .map_err(|source| ForwardError::Streams {
            which: "error",
            source,
        })?;
    let (mut error_reader, error_writer) = error.split();
    let _ = error_writer.finish().await;
    let message = tokio::spawn(async move { error_reader.read_to_end().await });
    let data = session
        .open(stream_headers("data", port, request_id))
        .await
        .map_err(|source| ForwardError::Streams {
            which: "forwarding",
            source,
        })?;
    if let Err(e) = splice(data, conn, Until::PeerDone).await {
        tracing::debug!(port, request_id, error = %e, "copying ended with an error");
    }
    match message.await {
        Ok(Ok(bytes)) if !bytes.is_empty() => Err(ForwardError::Remote(
            String::from_utf8_lossy(&bytes).into_owned(),
        )),
        _ => Ok(()),
    }
}
