//! Transports a [`super::Session`] runs on: a WebSocket (tokio-tungstenite) or a plain
//! byte connection (an HTTP connection upgraded to `SPDY/3.1`).
//!
//! kubectl 1.30+ carries port forwarding's SPDY in a WebSocket (subprotocol
//! [`super::PORT_FORWARD_PROTOCOL`]): every message is binary and the receiver reads them
//! as one byte stream. A text message is a protocol error; ping/pong are the WebSocket
//! layer's. Older clients (and kubectl's fallback) upgrade the HTTP connection itself.

use std::future::ready;
use std::io;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Splits a WebSocket into the byte stream and sink a [`super::Session`] runs on.
pub fn websocket<S>(
    ws: WebSocketStream<S>,
) -> (
    impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    impl Sink<Bytes, Error = io::Error> + Send + Unpin + 'static,
)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sink, stream) = ws.split();
    let stream = stream
        .take_while(|m| ready(!matches!(m, Ok(Message::Close(_)))))
        .filter_map(|m| {
            ready(match m {
                Ok(Message::Binary(b)) => Some(Ok(b)),
                Ok(Message::Text(_)) => Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "text message in a SPDY tunnel",
                ))),
                Ok(_) => None,
                Err(e) => Some(Err(io::Error::other(e))),
            })
        });
    let sink = sink
        .with(|b: Bytes| {
            ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(
                Message::Binary(b),
            ))
        })
        .sink_map_err(io::Error::other);
    (Box::pin(stream), Box::pin(sink))
}

/// Splits a byte connection into the byte stream and sink a [`super::Session`] runs on.
pub fn byte_stream<S>(
    io: S,
) -> (
    impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    impl Sink<Bytes, Error = io::Error> + Send + Unpin + 'static,
)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let stream = futures::stream::unfold(rd, |mut rd| async move {
        let mut buf = vec![0u8; 32 * 1024];
        match rd.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), rd))
            }
            Err(e) => Some((Err(e), rd)),
        }
    });
    let sink = futures::sink::unfold(wr, |mut wr, chunk: Bytes| async move {
        wr.write_all(&chunk).await?;
        Ok::<_, io::Error>(wr)
    });
    (Box::pin(stream), Box::pin(sink))
}
