//! A WebSocket (tokio-tungstenite) as a SPDY transport: binary messages in and out.
//!
//! This is how kubectl 1.30+ carries SPDY for port forwarding (subprotocol
//! [`PORT_FORWARD_PROTOCOL`]): every message is binary and the receiver reads them as one
//! byte stream. A text message is a protocol error; ping/pong are the WebSocket layer's.

use std::future::ready;
use std::io;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The WebSocket subprotocol of port forwarding tunnelled as SPDY/3.1.
pub const PORT_FORWARD_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Splits a WebSocket into the byte stream and sink a [`super::Session`] runs on.
pub fn transport<S>(
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
