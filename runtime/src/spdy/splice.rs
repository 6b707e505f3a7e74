//! Joins a SPDY stream and a byte connection (a TCP socket): what both ends of port
//! forwarding do with each forwarded connection's data stream.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Stream;
use super::session::MAX_DATA_FRAME;

/// When a splice is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Both directions ended (the kubelet's side: a client's half-close still lets the
    /// pod's answer through).
    BothDone,
    /// The peer finished sending (kubectl's side: once the pod's side is done, the local
    /// connection is closed even if it still had something to say, and the stream is
    /// reset).
    PeerDone,
}

/// Copies both ways, keeping half-closes: the peer's FIN shuts down `io`'s write side,
/// `io`'s end of input sends FIN. A reset stream or an I/O error ends both directions at
/// once (the other copy is dropped).
pub async fn splice<S>(stream: Stream, io: S, until: Until) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut from_peer, to_peer) = stream.split();
    let reset_handle = to_peer.clone();
    let (mut rd, mut wr) = tokio::io::split(io);
    let inbound = async {
        while let Some(chunk) = from_peer.read().await? {
            wr.write_all(&chunk).await?;
        }
        wr.shutdown().await
    };
    let outbound = async {
        let mut buf = vec![0u8; MAX_DATA_FRAME];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                to_peer.finish().await?;
                return Ok::<(), io::Error>(());
            }
            to_peer.write(&buf[..n]).await?;
        }
    };
    match until {
        Until::BothDone => tokio::try_join!(inbound, outbound).map(|_| ()),
        Until::PeerDone => {
            tokio::pin!(inbound, outbound);
            tokio::select! {
                r = &mut inbound => {
                    reset_handle.reset().await;
                    r
                }
                r = &mut outbound => {
                    r?;
                    let r = inbound.await;
                    reset_handle.reset().await;
                    r
                }
            }
        }
    }
}
