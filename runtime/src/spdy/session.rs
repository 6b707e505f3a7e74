//! A SPDY/3.1 connection multiplexing streams over one byte transport.
//!
//! The transport is given as a stream of received byte chunks and a sink taking one chunk
//! per outgoing batch of frames (a WebSocket's binary messages, or a plain byte stream cut
//! anywhere): chunks are reassembled into frames by [`FrameDecoder`], so frames may span
//! chunks. Two tasks own the transport: the reader decodes frames and routes them to
//! streams, the writer encodes frames in the order they are queued (the header compressor
//! is order-sensitive) and batches what is queued into one chunk.
//!
//! Streams: [`Session::open`] (SYN_STREAM, then waits for SYN_REPLY) or, from the peer,
//! [`Session::accept`] yielding an [`Incoming`] to [`Incoming::accept`] (SYN_REPLY) or
//! [`Incoming::refuse`] (RST_STREAM). Each [`Stream`] splits into a [`StreamReader`]
//! (data until the peer's FIN) and a cloneable [`StreamWriter`] (data, FIN, RST). Received
//! data waits in a bounded per-stream queue; when it is full the reader task waits, which
//! stops reading the transport (SPDY flow control is not used, see the module docs above).
//! PINGs from the peer are echoed.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream as FutStream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::SpdyError;
use super::frame::{FLAG_FIN, Frame, FrameDecoder, FrameEncoder, goaway, rst};
use super::headers::Headers;

/// Which end of the connection we are: clients open odd streams, servers even ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that opened the transport (kubectl, skiffctl).
    Client,
    /// The side that accepted it (the kubelet).
    Server,
}

/// The largest DATA frame we send: big enough for throughput, small enough that streams
/// sharing the connection take turns.
pub const MAX_DATA_FRAME: usize = 32 * 1024;
/// Received DATA frames a stream may hold before the connection's reader waits for it.
const STREAM_QUEUE: usize = 32;
/// Frames queued for the writer task.
const WRITE_QUEUE: usize = 64;
/// How long [`Session::open`] waits for SYN_REPLY (kubectl's timeout too).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many bytes of queued frames the writer puts into one transport chunk.
const BATCH_BYTES: usize = 64 * 1024;

enum Outgoing {
    Frame(Frame),
    Close,
}

#[derive(Default)]
struct StreamState {
    /// RST_STREAM sent or received, or the connection died.
    reset: AtomicBool,
    /// We sent FIN.
    local_fin: AtomicBool,
}

struct Entry {
    /// Where the reader task puts the stream's data; `None` after the peer's FIN.
    data: Option<mpsc::Sender<Bytes>>,
    state: Arc<StreamState>,
    /// Waiting for SYN_REPLY (streams we opened).
    reply: Option<oneshot::Sender<Result<(), SpdyError>>>,
}

struct Shared {
    role: Role,
    out: mpsc::Sender<Outgoing>,
    streams: Mutex<HashMap<u32, Entry>>,
    /// The next stream id we open; held while its SYN_STREAM is queued so ids go out in
    /// increasing order.
    next_id: tokio::sync::Mutex<u32>,
    /// The highest stream id the peer opened (for GOAWAY).
    last_peer_id: Mutex<u32>,
    /// The peer sent GOAWAY: accept no new streams.
    gone_away: AtomicBool,
    closed: watch::Receiver<bool>,
}

/// A handle on a SPDY connection (cheap to clone).
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    incoming: Arc<tokio::sync::Mutex<mpsc::Receiver<Incoming>>>,
}

impl Session {
    /// Starts the connection's reader and writer tasks over the transport.
    pub fn new<R, W>(role: Role, incoming: R, outgoing: W) -> Session
    where
        R: FutStream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
        W: Sink<Bytes, Error = io::Error> + Send + Unpin + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel(WRITE_QUEUE);
        let (closed_tx, closed_rx) = watch::channel(false);
        let (accept_tx, accept_rx) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            role,
            out: out_tx,
            streams: Mutex::new(HashMap::new()),
            next_id: tokio::sync::Mutex::new(match role {
                Role::Client => 1,
                Role::Server => 2,
            }),
            last_peer_id: Mutex::new(0),
            gone_away: AtomicBool::new(false),
            closed: closed_rx,
        });
        tokio::spawn(write_loop(out_rx, outgoing));
        tokio::spawn(read_loop(shared.clone(), incoming, accept_tx, closed_tx));
        Session {
            shared,
            incoming: Arc::new(tokio::sync::Mutex::new(accept_rx)),
        }
    }

    /// Opens a stream with `headers` and waits until the peer accepts it.
    pub async fn open(&self, headers: Headers) -> Result<Stream, SpdyError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
        let state = Arc::new(StreamState::default());
        let id = {
            let mut next = self.shared.next_id.lock().await;
            let id = *next;
            if id > 0x7fff_ffff {
                return Err(SpdyError::Protocol("stream ids exhausted".into()));
            }
            *next += 2;
            self.shared.lock_streams().insert(
                id,
                Entry {
                    data: Some(data_tx),
                    state: state.clone(),
                    reply: Some(reply_tx),
                },
            );
            let frame = Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: headers.clone(),
            };
            if let Err(e) = self.shared.send(frame).await {
                self.shared.lock_streams().remove(&id);
                return Err(e);
            }
            id
        };
        let answer = tokio::time::timeout(REPLY_TIMEOUT, reply_rx).await;
        match answer {
            Ok(Ok(Ok(()))) => Ok(self.stream(id, headers, data_rx, state)),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(SpdyError::Closed),
            Err(_) => {
                self.shared.reset(id, &state, rst::CANCEL).await;
                Err(SpdyError::Timeout)
            }
        }
    }

    /// The next stream the peer opens; `None` once the connection is closed or the peer
    /// sent GOAWAY.
    pub async fn accept(&self) -> Option<Incoming> {
        self.incoming.lock().await.recv().await
    }

    /// Says GOAWAY and closes our half of the transport (a WebSocket close frame).
    pub async fn close(&self) {
        let last = *self.shared.last_peer_id.lock().expect("lock");
        let _ = self
            .shared
            .send(Frame::GoAway {
                last_good_stream_id: last,
                status: goaway::OK,
            })
            .await;
        let _ = self.shared.out.send(Outgoing::Close).await;
    }

    /// Completes when the transport is gone (the peer closed it or it failed).
    pub async fn closed(&self) {
        let mut closed = self.shared.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }

    fn stream(
        &self,
        id: u32,
        headers: Headers,
        data: mpsc::Receiver<Bytes>,
        state: Arc<StreamState>,
    ) -> Stream {
        Stream {
            id,
            headers,
            reader: StreamReader {
                data,
                state: state.clone(),
            },
            writer: StreamWriter {
                id,
                shared: self.shared.clone(),
                state,
            },
        }
    }
}

impl Shared {
    fn lock_streams(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Entry>> {
        self.streams.lock().expect("stream table lock")
    }

    async fn send(&self, frame: Frame) -> Result<(), SpdyError> {
        self.out
            .send(Outgoing::Frame(frame))
            .await
            .map_err(|_| SpdyError::Closed)
    }

    /// Resets stream `id` from our side.
    async fn reset(&self, id: u32, state: &StreamState, status: u32) {
        if state.reset.swap(true, Ordering::SeqCst) {
            return;
        }
        self.lock_streams().remove(&id);
        let _ = self
            .send(Frame::RstStream {
                stream_id: id,
                status,
            })
            .await;
    }

    /// Forgets a stream both sides finished.
    fn forget_if_done(&self, id: u32) {
        let mut streams = self.lock_streams();
        if let Some(e) = streams.get(&id)
            && e.data.is_none()
            && e.state.local_fin.load(Ordering::SeqCst)
        {
            streams.remove(&id);
        }
    }

    fn is_ours(&self, id: u32) -> bool {
        let odd = id % 2 == 1;
        match self.role {
            Role::Client => odd,
            Role::Server => !odd,
        }
    }
}

/// A stream the peer opened, not yet answered.
pub struct Incoming {
    session: Session,
    id: u32,
    headers: Headers,
    data: mpsc::Receiver<Bytes>,
    state: Arc<StreamState>,
}

impl Incoming {
    /// The stream's headers (SYN_STREAM).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Accepts the stream (SYN_REPLY without headers, as Kubernetes answers).
    pub async fn accept(self) -> Result<Stream, SpdyError> {
        self.session
            .shared
            .send(Frame::SynReply {
                stream_id: self.id,
                flags: 0,
                headers: Headers::default(),
            })
            .await?;
        Ok(self
            .session
            .stream(self.id, self.headers, self.data, self.state))
    }

    /// Refuses the stream (RST_STREAM REFUSED_STREAM).
    pub async fn refuse(self) {
        self.session
            .shared
            .reset(self.id, &self.state, rst::REFUSED_STREAM)
            .await;
    }
}

/// An accepted stream.
pub struct Stream {
    id: u32,
    headers: Headers,
    reader: StreamReader,
    writer: StreamWriter,
}

impl Stream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers the stream was opened with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Its two halves.
    pub fn split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }

    /// The sending half (the stream stays readable through [`Stream::split`]).
    pub fn writer(&self) -> StreamWriter {
        self.writer.clone()
    }
}

/// The receiving half of a stream.
pub struct StreamReader {
    data: mpsc::Receiver<Bytes>,
    state: Arc<StreamState>,
}

impl StreamReader {
    /// The next chunk of data; `Ok(None)` after the peer's FIN; [`SpdyError::Reset`] if the
    /// stream was reset or the connection died.
    pub async fn read(&mut self) -> Result<Option<Bytes>, SpdyError> {
        match self.data.recv().await {
            Some(chunk) => Ok(Some(chunk)),
            None if self.state.reset.load(Ordering::SeqCst) => Err(SpdyError::Reset),
            None => Ok(None),
        }
    }

    /// Everything until the peer's FIN.
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, SpdyError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.read().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }
}

/// The sending half of a stream (clones share it).
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    shared: Arc<Shared>,
    state: Arc<StreamState>,
}

impl StreamWriter {
    /// Sends `data` (in frames of at most [`MAX_DATA_FRAME`] bytes).
    pub async fn write(&self, data: &[u8]) -> Result<(), SpdyError> {
        for chunk in data.chunks(MAX_DATA_FRAME) {
            self.check()?;
            self.shared
                .send(Frame::Data {
                    stream_id: self.id,
                    flags: 0,
                    data: Bytes::copy_from_slice(chunk),
                })
                .await?;
        }
        Ok(())
    }

    /// Says we send nothing more (an empty DATA frame with FIN); idempotent.
    pub async fn finish(&self) -> Result<(), SpdyError> {
        if self.state.reset.load(Ordering::SeqCst) {
            return Err(SpdyError::Reset);
        }
        if self.state.local_fin.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let sent = self
            .shared
            .send(Frame::Data {
                stream_id: self.id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            })
            .await;
        self.shared.forget_if_done(self.id);
        sent
    }

    /// Aborts the stream (RST_STREAM CANCEL).
    pub async fn reset(&self) {
        self.shared.reset(self.id, &self.state, rst::CANCEL).await;
    }

    fn check(&self) -> Result<(), SpdyError> {
        if self.state.reset.load(Ordering::SeqCst) {
            Err(SpdyError::Reset)
        } else if self.state.local_fin.load(Ordering::SeqCst) {
            Err(SpdyError::Finished)
        } else {
            Ok(())
        }
    }
}

async fn write_loop<W>(mut rx: mpsc::Receiver<Outgoing>, mut sink: W)
where
    W: Sink<Bytes, Error = io::Error> + Unpin,
{
    let mut encoder = FrameEncoder::new();
    let mut closing = false;
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame(frame) => {
                    if let Err(e) = encoder.encode(&frame, &mut batch) {
                        tracing::debug!(error = %e, "cannot encode a SPDY frame");
                        closing = true;
                        break;
                    }
                }
                Outgoing::Close => {
                    closing = true;
                    break;
                }
            }
            if batch.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty()
            && let Err(e) = sink.send(Bytes::from(batch)).await
        {
            tracing::debug!(error = %e, "SPDY transport write failed");
            break;
        }
        if closing {
            break;
        }
    }
    let _ = sink.close().await;
}

async fn read_loop<R>(
    shared: Arc<Shared>,
    mut incoming: R,
    accept: mpsc::Sender<Incoming>,
    closed: watch::Sender<bool>,
) where
    R: FutStream<Item = io::Result<Bytes>> + Unpin,
{
    let session = Session {
        shared: shared.clone(),
        // Never read through this handle: it only hands out streams.
        incoming: Arc::new(tokio::sync::Mutex::new(mpsc::channel(1).1)),
    };
    let mut accept = Some(accept);
    let mut decoder = FrameDecoder::new();
    'transport: while let Some(chunk) = incoming.next().await {
        match chunk {
            Ok(bytes) => decoder.push(&bytes),
            Err(e) => {
                tracing::debug!(error = %e, "SPDY transport read failed");
                break;
            }
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => handle(&session, frame, &mut accept).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY peer broke the protocol");
                    let last = *shared.last_peer_id.lock().expect("lock");
                    let _ = shared
                        .send(Frame::GoAway {
                            last_good_stream_id: last,
                            status: goaway::PROTOCOL_ERROR,
                        })
                        .await;
                    break 'transport;
                }
            }
        }
    }
    // The transport is gone: every stream ends as reset, the writer closes.
    let entries: Vec<Entry> = shared.lock_streams().drain().map(|(_, e)| e).collect();
    for mut e in entries {
        e.state.reset.store(true, Ordering::SeqCst);
        if let Some(reply) = e.reply.take() {
            let _ = reply.send(Err(SpdyError::Closed));
        }
    }
    drop(accept);
    let _ = shared.out.send(Outgoing::Close).await;
    let _ = closed.send(true);
}

async fn handle(session: &Session, frame: Frame, accept: &mut Option<mpsc::Sender<Incoming>>) {
    let shared = &session.shared;
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let mut last = *shared.last_peer_id.lock().expect("lock");
            let valid = stream_id != 0 && !shared.is_ours(stream_id) && stream_id > last;
            let refused = shared.gone_away.load(Ordering::SeqCst) || accept.is_none();
            if !valid || refused {
                let status = if valid {
                    rst::REFUSED_STREAM
                } else {
                    rst::PROTOCOL_ERROR
                };
                let _ = shared.send(Frame::RstStream { stream_id, status }).await;
                return;
            }
            last = stream_id;
            *shared.last_peer_id.lock().expect("lock") = last;
            let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
            let state = Arc::new(StreamState::default());
            shared.lock_streams().insert(
                stream_id,
                Entry {
                    data: (flags & FLAG_FIN == 0).then_some(data_tx),
                    state: state.clone(),
                    reply: None,
                },
            );
            let incoming = Incoming {
                session: session.clone(),
                id: stream_id,
                headers,
                data: data_rx,
                state,
            };
            if let Some(tx) = accept
                && let Err(refused) = tx.send(incoming).await
            {
                refused.0.refuse().await;
            }
        }
        Frame::SynReply {
            stream_id, flags, ..
        } => {
            let reply = {
                let mut streams = shared.lock_streams();
                streams.get_mut(&stream_id).and_then(|e| {
                    if flags & FLAG_FIN != 0 {
                        e.data = None;
                    }
                    e.reply.take()
                })
            };
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let sender = shared
                .lock_streams()
                .get(&stream_id)
                .and_then(|e| e.data.clone());
            if let Some(sender) = sender
                && !data.is_empty()
            {
                // A dropped reader just means nobody wants the data.
                let _ = sender.send(data).await;
            }
            if flags & FLAG_FIN != 0 {
                remote_fin(shared, stream_id);
            }
        }
        Frame::Headers {
            stream_id, flags, ..
        } => {
            if flags & FLAG_FIN != 0 {
                remote_fin(shared, stream_id);
            }
        }
        Frame::RstStream { stream_id, .. } => {
            if let Some(mut e) = shared.lock_streams().remove(&stream_id) {
                e.state.reset.store(true, Ordering::SeqCst);
                if let Some(reply) = e.reply.take() {
                    let _ = reply.send(Err(SpdyError::Reset));
                }
            }
        }
        Frame::Ping { id } => {
            if !shared.is_ours(id) {
                let _ = shared.send(Frame::Ping { id }).await;
            }
        }
        Frame::GoAway { .. } => {
            shared.gone_away.store(true, Ordering::SeqCst);
            *accept = None;
        }
        Frame::Settings { .. } | Frame::WindowUpdate { .. } => {}
    }
}

fn remote_fin(shared: &Shared, stream_id: u32) {
    if let Some(e) = shared.lock_streams().get_mut(&stream_id) {
        e.data = None;
    }
    shared.forget_if_done(stream_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two sessions joined by in-memory byte channels that cut every chunk in two, so
    /// frames always span transport messages.
    fn pair() -> (Session, Session) {
        fn pipe() -> (
            impl Sink<Bytes, Error = io::Error> + Send + Unpin + 'static,
            impl FutStream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
        ) {
            let (tx, rx) = futures::channel::mpsc::unbounded::<Bytes>();
            let sink = tx.sink_map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe));
            let stream = rx
                .flat_map(|b: Bytes| {
                    let mid = b.len() / 2;
                    futures::stream::iter([b.slice(..mid), b.slice(mid..)])
                })
                .map(Ok);
            (sink, stream)
        }
        let (c_out, s_in) = pipe();
        let (s_out, c_in) = pipe();
        (
            Session::new(Role::Client, c_in, c_out),
            Session::new(Role::Server, s_in, s_out),
        )
    }

    #[tokio::test]
    async fn streams_carry_data_both_ways_with_fin() {
        let (client, server) = pair();
        let server_task = tokio::spawn(async move {
            let incoming = server.accept().await.expect("a stream");
            assert_eq!(incoming.headers().get("port"), Some("80"));
            assert_eq!(incoming.id(), 1);
            let (mut r, w) = incoming.accept().await.unwrap().split();
            let got = r.read_to_end().await.unwrap();
            w.write(&got).await.unwrap();
            w.finish().await.unwrap();
        });
        let stream = client
            .open(Headers::from_pairs([("port", "80")]))
            .await
            .unwrap();
        let (mut r, w) = stream.split();
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        w.write(&big).await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(w.write(b"late").await, Err(SpdyError::Finished));
        assert_eq!(r.read_to_end().await.unwrap(), big);
        server_task.await.unwrap();
    }

    #[tokio::test]
    async fn refused_and_reset_streams_fail_on_the_other_side() {
        let (client, server) = pair();
        let server_task = tokio::spawn(async move {
            server.accept().await.unwrap().refuse().await;
            let (mut r, _w) = server
                .accept()
                .await
                .unwrap()
                .accept()
                .await
                .unwrap()
                .split();
            assert_eq!(r.read().await, Err(SpdyError::Reset));
        });
        let refused = client.open(Headers::default()).await;
        assert_eq!(refused.err(), Some(SpdyError::Reset));
        let stream = client.open(Headers::default()).await.unwrap();
        assert_eq!(stream.id(), 3);
        let w = stream.writer();
        w.reset().await;
        assert_eq!(w.write(b"x").await, Err(SpdyError::Reset));
        server_task.await.unwrap();
    }

    /// A server session driven frame by frame by a peer written with the bare codec.
    #[tokio::test]
    async fn a_server_answers_pings_replies_and_rejects_bad_ids() {
        let (peer_tx, server_in) = futures::channel::mpsc::unbounded::<io::Result<Bytes>>();
        let (server_out, mut peer_rx) = futures::channel::mpsc::unbounded::<Bytes>();
        let server = Session::new(
            Role::Server,
            server_in,
            server_out.sink_map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe)),
        );
        let mut enc = FrameEncoder::new();
        let send = |enc: &mut FrameEncoder, frame: Frame| {
            let mut wire = Vec::new();
            enc.encode(&frame, &mut wire).unwrap();
            peer_tx.unbounded_send(Ok(Bytes::from(wire))).unwrap();
        };
        let mut dec = FrameDecoder::new();
        let mut next = async || loop {
            if let Some(f) = dec.next_frame().unwrap() {
                return f;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), peer_rx.next())
                .await
                .expect("the server answered")
                .expect("transport open");
            dec.push(&chunk);
        };
        // The client's pings (odd) come back unchanged.
        send(&mut enc, Frame::Ping { id: 1 });
        assert_eq!(next().await, Frame::Ping { id: 1 });
        // A stream is answered with an empty SYN_REPLY once accepted.
        send(
            &mut enc,
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: Headers::from_pairs([("port", "80")]),
            },
        );
        let incoming = server.accept().await.unwrap();
        let stream = incoming.accept().await.unwrap();
        assert_eq!(
            next().await,
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Headers::default()
            }
        );
        // Data and FIN reach the reader; data written comes out as DATA frames.
        send(
            &mut enc,
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"ping"),
            },
        );
        let (mut r, w) = stream.split();
        assert_eq!(r.read_to_end().await.unwrap(), b"ping");
        w.write(b"pong").await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(
            next().await,
            Frame::Data {
                stream_id: 1,
                flags: 0,
                data: Bytes::from_static(b"pong")
            }
        );
        assert_eq!(
            next().await,
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::new()
            }
        );
        // A client may not open even ids, nor reuse old ones.
        for stream_id in [2, 1] {
            send(
                &mut enc,
                Frame::SynStream {
                    stream_id,
                    associated_to: 0,
                    priority: 0,
                    flags: 0,
                    headers: Headers::default(),
                },
            );
            assert_eq!(
                next().await,
                Frame::RstStream {
                    stream_id,
                    status: rst::PROTOCOL_ERROR
                }
            );
        }
        // After GOAWAY new streams are refused and accept() ends.
        send(
            &mut enc,
            Frame::GoAway {
                last_good_stream_id: 0,
                status: goaway::OK,
            },
        );
        send(
            &mut enc,
            Frame::SynStream {
                stream_id: 5,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: Headers::default(),
            },
        );
        assert_eq!(
            next().await,
            Frame::RstStream {
                stream_id: 5,
                status: rst::REFUSED_STREAM
            }
        );
        assert!(server.accept().await.is_none());
    }

    #[tokio::test]
    async fn closing_ends_the_peer_and_its_streams() {
        let (client, server) = pair();
        let server_task = tokio::spawn(async move {
            let stream = server.accept().await.unwrap().accept().await.unwrap();
            let (mut r, _w) = stream.split();
            assert_eq!(r.read().await.unwrap().as_deref(), Some(&b"x"[..]));
            // GOAWAY stops new streams; the transport closing resets the open one.
            assert!(server.accept().await.is_none());
            assert_eq!(r.read().await, Err(SpdyError::Reset));
            server.closed().await;
        });
        let stream = client.open(Headers::default()).await.unwrap();
        stream.writer().write(b"x").await.unwrap();
        client.close().await;
        tokio::time::timeout(Duration::from_secs(10), server_task)
            .await
            .expect("the server saw the close")
            .unwrap();
    }
}
