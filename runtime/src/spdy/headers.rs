//! SPDY/3 name/value header blocks and their per-connection zlib compression.
//!
//! A block is a 32-bit pair count, then per pair a 32-bit name length, the (lowercase) name,
//! a 32-bit value length and the value (several values of one name are joined with NUL).
//! Each direction of a connection compresses all its blocks, in frame order, through ONE
//! zlib stream primed with the SPDY dictionary, flushed (sync flush) at the end of each
//! block so the peer can decode every block as soon as its frame arrives. So the
//! compressor and decompressor here are stateful and must see every block of their
//! direction exactly once, in order.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;
use super::dictionary::dictionary;

/// The most a decompressed header block may hold: far above anything port forwarding
/// sends, low enough that a hostile peer cannot make us allocate without bound.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// An ordered list of header names (lowercase) and values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// Headers from `(name, value)` pairs; names are lowercased as SPDY requires.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Headers(
            pairs
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
        )
    }

    /// The value of `name` (case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serializes a header block (uncompressed).
pub fn encode_block(headers: &Headers) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.0.len() as u32).to_be_bytes());
    for (name, value) in &headers.0 {
        let name = name.to_ascii_lowercase();
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Parses an uncompressed header block; names are lowercased (peers must send them so,
/// but a wrong case is not worth a failed stream).
pub fn decode_block(block: &[u8]) -> Result<Headers, SpdyError> {
    let mut rest = block;
    let count = take_u32(&mut rest)?;
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = take_string(&mut rest)?;
        let value = take_string(&mut rest)?;
        if name.is_empty() {
            return Err(SpdyError::Protocol("empty header name".into()));
        }
        headers.push((name.to_ascii_lowercase(), value));
    }
    if !rest.is_empty() {
        return Err(SpdyError::Protocol(
            "trailing bytes after the header block".into(),
        ));
    }
    Ok(Headers(headers))
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, SpdyError> {
    let (head, tail) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| SpdyError::Protocol("truncated header block".into()))?;
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(rest: &mut &[u8]) -> Result<String, SpdyError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(SpdyError::Protocol("truncated header block".into()));
    }
    let (s, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(s.to_vec())
        .map_err(|_| SpdyError::Protocol("header name or value is not UTF-8".into()))
}

/// One direction's header compressor.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl HeaderCompressor {
    /// A compressor at the start of a connection (the dictionary is set before any output,
    /// so the stream header names it).
    pub fn new() -> Self {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(dictionary())
            .expect("setting a dictionary on a fresh zlib stream cannot fail");
        HeaderCompressor { zlib }
    }

    /// Compresses one block and flushes, continuing the connection's zlib stream.
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() / 2 + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.zlib
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let consumed = (self.zlib.total_in() - start) as usize;
            // Done once all input is in and the flush left spare room (nothing pending).
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

/// One direction's header decompressor.
pub struct HeaderDecompressor {
    zlib: Decompress,
}

impl HeaderDecompressor {
    /// A decompressor at the start of a connection.
    pub fn new() -> Self {
        HeaderDecompressor {
            zlib: Decompress::new(true),
        }
    }

    /// Decompresses one block (the compressed payload of one frame).
    pub fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            match self
                .zlib
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => {
                    return Err(SpdyError::Compression(
                        "the peer ended its header zlib stream".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib.set_dictionary(dictionary()).map_err(|_| {
                        SpdyError::Compression(
                            "the peer's header stream names an unknown dictionary".into(),
                        )
                    })?;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::Protocol("header block too large".into()));
            }
            let consumed = (self.zlib.total_in() - start) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_layout_is_length_prefixed() {
        let h = Headers::from_pairs([("streamType", "data"), ("port", "80")]);
        let block = encode_block(&h);
        let mut want = vec![0, 0, 0, 2];
        for s in ["streamtype", "data", "port", "80"] {
            want.extend_from_slice(&(s.len() as u32).to_be_bytes());
            want.extend_from_slice(s.as_bytes());
        }
        assert_eq!(block, want);
        assert_eq!(
            decode_block(&block).unwrap().get("StreamType"),
            Some("data")
        );
    }

    #[test]
    fn bad_blocks_are_protocol_errors() {
        let cases: [&[u8]; 4] = [
            &[0, 0],
            &[0, 0, 0, 1, 0, 0, 0, 9, b'a'],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0, 0, 0, 0, 7],
        ];
        for block in cases {
            assert!(
                matches!(decode_block(block), Err(SpdyError::Protocol(_))),
                "{block:?}"
            );
        }
    }

    #[test]
    fn one_zlib_stream_carries_successive_blocks() {
        let mut c = HeaderCompressor::new();
        let mut d = HeaderDecompressor::new();
        for i in 0..20 {
            let h = Headers::from_pairs([
                ("streamtype", if i % 2 == 0 { "error" } else { "data" }),
                ("port", "8080"),
                ("requestid", &i.to_string()),
            ]);
            let block = encode_block(&h);
            let compressed = c.compress(&block).unwrap();
            if i == 0 {
                // zlib header with FDICT set, then the dictionary's Adler-32.
                assert_eq!(compressed[0] & 0x0f, 8);
                assert_ne!(compressed[1] & 0x20, 0);
                assert_eq!(&compressed[2..6], &0xe3c6_a7c2u32.to_be_bytes());
            }
            // Every block ends with the sync-flush marker.
            assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]));
            assert_eq!(d.decompress(&compressed).unwrap(), block);
        }
    }

    #[test]
    fn blocks_compressed_by_another_zlib_are_read() {
        // Two successive blocks of one stream as C zlib (level 9, via python) compresses them
        // with the SPDY dictionary and a sync flush after each: a port-forward pair's headers.
        let captured = [
            "78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45a024cc64610024398b209198094adc8c0600000000ffff",
            "c2aa15540a2512d209000000ffff",
        ];
        let mut d = HeaderDecompressor::new();
        for (hex, kind) in captured.iter().zip(["error", "data"]) {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let headers = decode_block(&d.decompress(&bytes).unwrap()).unwrap();
            assert_eq!(
                headers,
                Headers::from_pairs([("streamtype", kind), ("port", "80"), ("requestid", "0")])
            );
        }
    }
}
