//! SPDY/3.1 frames and their wire format (no I/O).
//!
//! Control frames: `1 | version(15) | type(16) | flags(8) | length(24) | payload`;
//! data frames: `0 | stream id(31) | flags(8) | length(24) | payload`. Integers are big
//! endian; stream ids are 31 bits. Header blocks inside SYN_STREAM, SYN_REPLY and HEADERS
//! go through the connection's [`HeaderCompressor`]/[`HeaderDecompressor`], which is why
//! the encoder and decoder are stateful objects, one per direction of a connection.

use bytes::{Buf, Bytes, BytesMut};

use super::SpdyError;
use super::headers::{HeaderCompressor, HeaderDecompressor, Headers, decode_block, encode_block};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// FIN on data frames and on SYN_STREAM, SYN_REPLY and HEADERS: the sender is done.
pub const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL on SYN_STREAM: the receiver may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// CLEAR_SETTINGS on SETTINGS.
pub const FLAG_CLEAR_SETTINGS: u8 = 0x01;
/// The most a frame's 24-bit length can say.
pub const MAX_FRAME_PAYLOAD: usize = 0x00ff_ffff;

/// RST_STREAM status codes (SPDY/3 section 2.4.2).
pub mod rst {
    /// A generic protocol error.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// A frame for a stream that is not active.
    pub const INVALID_STREAM: u32 = 2;
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed.
    pub const CANCEL: u32 = 5;
    /// An internal error.
    pub const INTERNAL_ERROR: u32 = 6;
}

/// GOAWAY status codes.
pub mod goaway {
    /// A normal session teardown.
    pub const OK: u32 = 0;
    /// A protocol error.
    pub const PROTOCOL_ERROR: u32 = 1;
}

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// One SETTINGS entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Per-entry flags (persist value / persisted).
    pub flags: u8,
    /// The 24-bit setting id.
    pub id: u32,
    /// Its value.
    pub value: u32,
}

/// A SPDY/3.1 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream (odd from clients, even from servers).
        stream_id: u32,
        /// The stream this one is associated with (0: none).
        associated_to: u32,
        /// Priority 0 (highest) to 7.
        priority: u8,
        /// FIN and UNIDIRECTIONAL flags.
        flags: u8,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The accepted stream.
        stream_id: u32,
        /// FIN flag.
        flags: u8,
        /// Reply headers.
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why ([`rst`]).
        status: u32,
    },
    /// Connection settings.
    Settings {
        /// CLEAR_SETTINGS flag.
        flags: u8,
        /// The settings.
        entries: Vec<Setting>,
    },
    /// A liveness check, echoed by the receiver when the sender's parity is not its own.
    Ping {
        /// Odd from clients, even from servers.
        id: u32,
    },
    /// No more new streams on this connection.
    GoAway {
        /// The last stream the sender accepted.
        last_good_stream_id: u32,
        /// Why ([`goaway`]).
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// FIN flag.
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// Flow-control credit.
    WindowUpdate {
        /// The stream (0: the connection, SPDY/3.1).
        stream_id: u32,
        /// More bytes the sender may send.
        delta: u32,
    },
    /// Stream payload.
    Data {
        /// The stream.
        stream_id: u32,
        /// FIN flag.
        flags: u8,
        /// The payload.
        data: Bytes,
    },
}

/// Writes frames of one direction of a connection.
#[derive(Default)]
pub struct FrameEncoder {
    headers: HeaderCompressor,
}

impl FrameEncoder {
    /// An encoder at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `frame`'s bytes to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let block = self.headers.compress(&encode_block(headers))?;
                let mut payload = Vec::with_capacity(10 + block.len());
                payload.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                payload.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
                payload.push((priority & 0x07) << 5);
                payload.push(0); // credential slot
                payload.extend_from_slice(&block);
                control(out, TYPE_SYN_STREAM, *flags, &payload)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => self.stream_headers(out, TYPE_SYN_REPLY, *stream_id, *flags, headers),
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => self.stream_headers(out, TYPE_HEADERS, *stream_id, *flags, headers),
            Frame::RstStream { stream_id, status } => {
                control(out, TYPE_RST_STREAM, 0, &two_words(*stream_id, *status))
            }
            Frame::Settings { flags, entries } => {
                let mut payload = Vec::with_capacity(4 + 8 * entries.len());
                payload.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for e in entries {
                    let word = (u32::from(e.flags) << 24) | (e.id & 0x00ff_ffff);
                    payload.extend_from_slice(&word.to_be_bytes());
                    payload.extend_from_slice(&e.value.to_be_bytes());
                }
                control(out, TYPE_SETTINGS, *flags, &payload)
            }
            Frame::Ping { id } => control(out, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => control(
                out,
                TYPE_GOAWAY,
                0,
                &two_words(*last_good_stream_id, *status),
            ),
            Frame::WindowUpdate { stream_id, delta } => control(
                out,
                TYPE_WINDOW_UPDATE,
                0,
                &two_words(*stream_id, delta & 0x7fff_ffff),
            ),
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_FRAME_PAYLOAD {
                    return Err(SpdyError::Protocol("data frame too large".into()));
                }
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&length_word(*flags, data.len()).to_be_bytes());
                out.extend_from_slice(data);
                Ok(())
            }
        }
    }

    fn stream_headers(
        &mut self,
        out: &mut Vec<u8>,
        frame_type: u16,
        stream_id: u32,
        flags: u8,
        headers: &Headers,
    ) -> Result<(), SpdyError> {
        let block = self.headers.compress(&encode_block(headers))?;
        let mut payload = Vec::with_capacity(4 + block.len());
        payload.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
        payload.extend_from_slice(&block);
        control(out, frame_type, flags, &payload)
    }
}

fn two_words(a: u32, b: u32) -> [u8; 8] {
    let mut w = [0; 8];
    w[..4].copy_from_slice(&(a & 0x7fff_ffff).to_be_bytes());
    w[4..].copy_from_slice(&b.to_be_bytes());
    w
}

fn length_word(flags: u8, len: usize) -> u32 {
    (u32::from(flags) << 24) | (len as u32 & 0x00ff_ffff)
}

fn control(out: &mut Vec<u8>, frame_type: u16, flags: u8, payload: &[u8]) -> Result<(), SpdyError> {
    if payload.len() > MAX_FRAME_PAYLOAD {
        return Err(SpdyError::Protocol("control frame too large".into()));
    }
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.extend_from_slice(&length_word(flags, payload.len()).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Reads frames of one direction of a connection from bytes arriving in arbitrary pieces
/// (a frame may span several transport messages, and one message may hold several frames).
#[derive(Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
    headers: HeaderDecompressor,
}

impl FrameDecoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` until one has fully arrived. Control frames of
    /// unknown types are skipped, as SPDY requires. An error leaves the connection unusable
    /// (the header decompressor may have lost sync).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        loop {
            if self.buffer.len() < 8 {
                return Ok(None);
            }
            let word = u32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes"));
            let flags_len = u32::from_be_bytes(self.buffer[4..8].try_into().expect("4 bytes"));
            let flags = (flags_len >> 24) as u8;
            let len = (flags_len & 0x00ff_ffff) as usize;
            if self.buffer.len() < 8 + len {
                return Ok(None);
            }
            self.buffer.advance(8);
            let payload = self.buffer.split_to(len).freeze();
            if word & 0x8000_0000 == 0 {
                let stream_id = word & 0x7fff_ffff;
                if stream_id == 0 {
                    return Err(SpdyError::Protocol("data frame on stream 0".into()));
                }
                return Ok(Some(Frame::Data {
                    stream_id,
                    flags,
                    data: payload,
                }));
            }
            let version = ((word >> 16) & 0x7fff) as u16;
            if version != VERSION {
                return Err(SpdyError::Protocol(format!(
                    "unsupported SPDY version {version}"
                )));
            }
            if let Some(frame) = self.control((word & 0xffff) as u16, flags, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    fn control(
        &mut self,
        frame_type: u16,
        flags: u8,
        p: Bytes,
    ) -> Result<Option<Frame>, SpdyError> {
        let short = || SpdyError::Protocol(format!("control frame type {frame_type} too short"));
        let word = |at: usize| -> Result<u32, SpdyError> {
            p.get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(short)
        };
        let frame = match frame_type {
            TYPE_SYN_STREAM => {
                if p.len() < 10 {
                    return Err(short());
                }
                Frame::SynStream {
                    stream_id: word(0)? & 0x7fff_ffff,
                    associated_to: word(4)? & 0x7fff_ffff,
                    priority: p[8] >> 5,
                    flags,
                    headers: self.block(&p[10..])?,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let stream_id = word(0)? & 0x7fff_ffff;
                let headers = self.block(&p[4..])?;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: word(0)? & 0x7fff_ffff,
                status: word(4)?,
            },
            TYPE_SETTINGS => {
                let count = word(0)? as usize;
                if p.len() != 4 + count.saturating_mul(8) {
                    return Err(SpdyError::Protocol("SETTINGS length mismatch".into()));
                }
                let entries = (0..count)
                    .map(|i| {
                        let at = 4 + 8 * i;
                        let head = word(at)?;
                        Ok(Setting {
                            flags: (head >> 24) as u8,
                            id: head & 0x00ff_ffff,
                            value: word(at + 4)?,
                        })
                    })
                    .collect::<Result<_, SpdyError>>()?;
                Frame::Settings { flags, entries }
            }
            TYPE_PING => Frame::Ping { id: word(0)? },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: word(0)? & 0x7fff_ffff,
                status: word(4)?,
            },
            TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: word(0)? & 0x7fff_ffff,
                delta: word(4)? & 0x7fff_ffff,
            },
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    fn block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        decode_block(&self.headers.decompress(compressed)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().copied())
    }

    fn all_kinds() -> Vec<Frame> {
        vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 1,
                priority: 7,
                flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
                headers: headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Headers::default(),
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: headers(&[("x", "a\0b")]),
            },
            Frame::RstStream {
                stream_id: 5,
                status: rst::CANCEL,
            },
            Frame::Settings {
                flags: FLAG_CLEAR_SETTINGS,
                entries: vec![Setting {
                    flags: 1,
                    id: 7,
                    value: 65536,
                }],
            },
            Frame::Ping { id: 1 },
            Frame::GoAway {
                last_good_stream_id: 9,
                status: goaway::OK,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1 << 20,
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::new(),
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_in_one_connection() {
        let mut enc = FrameEncoder::new();
        let mut wire = Vec::new();
        for f in all_kinds() {
            enc.encode(&f, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new();
        dec.push(&wire);
        let mut got = Vec::new();
        while let Some(f) = dec.next_frame().unwrap() {
            got.push(f);
        }
        assert_eq!(got, all_kinds());
    }

    #[test]
    fn frames_split_byte_by_byte_still_decode() {
        let mut enc = FrameEncoder::new();
        let mut wire = Vec::new();
        for f in all_kinds() {
            enc.encode(&f, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &wire {
            dec.push(std::slice::from_ref(b));
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, all_kinds());
    }

    #[test]
    fn fixed_frames_match_the_spec_layout() {
        let cases: Vec<(Frame, Vec<u8>)> = vec![
            (
                Frame::Ping { id: 1 },
                vec![0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1],
            ),
            (
                Frame::RstStream {
                    stream_id: 3,
                    status: rst::CANCEL,
                },
                vec![0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5],
            ),
            (
                Frame::GoAway {
                    last_good_stream_id: 1,
                    status: goaway::OK,
                },
                vec![0x80, 0x03, 0x00, 0x07, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0],
            ),
            (
                Frame::WindowUpdate {
                    stream_id: 1,
                    delta: 65536,
                },
                vec![0x80, 0x03, 0x00, 0x09, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 0],
            ),
            (
                Frame::Settings {
                    flags: 0,
                    entries: vec![Setting {
                        flags: 0,
                        id: 7,
                        value: 0x10000,
                    }],
                },
                vec![
                    0x80, 0x03, 0x00, 0x04, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0,
                ],
            ),
            (
                Frame::Data {
                    stream_id: 1,
                    flags: FLAG_FIN,
                    data: Bytes::from_static(b"hi"),
                },
                vec![0, 0, 0, 1, 0x01, 0, 0, 2, b'h', b'i'],
            ),
        ];
        for (frame, bytes) in cases {
            let mut out = Vec::new();
            FrameEncoder::new().encode(&frame, &mut out).unwrap();
            assert_eq!(out, bytes, "{frame:?}");
            let mut dec = FrameDecoder::new();
            dec.push(&bytes);
            assert_eq!(dec.next_frame().unwrap(), Some(frame));
        }
    }

    #[test]
    fn reads_a_syn_stream_written_by_another_implementation() {
        // A SYN_STREAM for stream 1 as spdystream lays it out, its header block compressed
        // by C zlib (see headers.rs): `streamtype: error, port: 80, requestid: 0`.
        let block = "78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45a024cc64610024398b209198094adc8c0600000000ffff";
        let block: Vec<u8> = (0..block.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&block[i..i + 2], 16).unwrap())
            .collect();
        let mut wire = vec![
            0x80,
            0x03,
            0x00,
            0x01,
            0x00,
            0x00,
            0x00,
            (10 + block.len()) as u8,
        ];
        wire.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        wire.extend_from_slice(&block);
        let mut dec = FrameDecoder::new();
        dec.push(&wire);
        assert_eq!(
            dec.next_frame().unwrap(),
            Some(Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            })
        );
    }

    #[test]
    fn malformed_input_is_an_error_and_unknown_types_are_skipped() {
        let mut dec = FrameDecoder::new();
        // SPDY/2 ping.
        dec.push(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]);
        assert!(dec.next_frame().is_err());

        let mut dec = FrameDecoder::new();
        // A data frame on stream 0.
        dec.push(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(dec.next_frame().is_err());

        let mut dec = FrameDecoder::new();
        // A short RST_STREAM.
        dec.push(&[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 4, 0, 0, 0, 1]);
        assert!(dec.next_frame().is_err());

        let mut dec = FrameDecoder::new();
        // CREDENTIAL (type 10) is skipped; the PING after it is read.
        dec.push(&[0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 2, 9, 9]);
        dec.push(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 2]);
        assert_eq!(dec.next_frame().unwrap(), Some(Frame::Ping { id: 2 }));
        assert_eq!(dec.next_frame().unwrap(), None);
    }
}
