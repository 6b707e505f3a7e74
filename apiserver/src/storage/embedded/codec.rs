//! Byte encoding of the embedded backend's records and history events.
//!
//! redb stores opaque byte values; this module gives them a small, explicit, versioned layout so a
//! record written by one build can be read by the next. Decoding never panics: a truncated or
//! otherwise corrupt record is reported as [`StorageError::Internal`], because a bad byte on disk
//! must fail one request, not take down the API server.

use bytes::Bytes;

use crate::storage::{KeyValue, StorageError, StoreEvent};

/// Format version byte at the start of every encoded record and event.
const VERSION: u8 = 1;
const KIND_PUT: u8 = 0;
const KIND_DELETE: u8 = 1;

/// Encodes the current state of a key: `version, create_revision, mod_revision, value`.
pub(crate) fn encode_record(create_revision: i64, mod_revision: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + value.len());
    out.push(VERSION);
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes a record written by [`encode_record`] into the [`KeyValue`] of `key`.
pub(crate) fn decode_record(key: &str, bytes: &[u8]) -> Result<KeyValue, StorageError> {
    let mut r = Reader::new(bytes, key);
    r.version()?;
    let create_revision = r.i64()?;
    let mod_revision = r.i64()?;
    let value = Bytes::copy_from_slice(r.rest());
    Ok(KeyValue {
        key: key.to_owned(),
        value,
        create_revision,
        mod_revision,
    })
}

/// Encodes one history entry. The event's own revision is the log key, so it is not repeated.
pub(crate) fn encode_event(event: &StoreEvent) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    out.push(VERSION);
    match event {
        StoreEvent::Put { kv, prev } => {
            out.push(KIND_PUT);
            put_bytes(&mut out, kv.key.as_bytes())?;
            out.extend_from_slice(&kv.create_revision.to_le_bytes());
            put_bytes(&mut out, &kv.value)?;
            match prev {
                Some(prev) => {
                    out.push(1);
                    put_prev(&mut out, prev)?;
                }
                None => out.push(0),
            }
        }
        StoreEvent::Delete { prev, .. } => {
            out.push(KIND_DELETE);
            put_bytes(&mut out, prev.key.as_bytes())?;
            put_prev(&mut out, prev)?;
        }
        StoreEvent::Progress { .. } => {
            return Err(StorageError::Internal(
                "progress notices are never stored".into(),
            ));
        }
    }
    Ok(out)
}

/// Decodes a history entry stored at `revision`.
pub(crate) fn decode_event(revision: i64, bytes: &[u8]) -> Result<StoreEvent, StorageError> {
    let mut r = Reader::new(bytes, "<history>");
    r.version()?;
    let kind = r.u8()?;
    let key = r.string()?;
    match kind {
        KIND_PUT => {
            let create_revision = r.i64()?;
            let value = Bytes::copy_from_slice(r.bytes()?);
            let prev = match r.u8()? {
                0 => None,
                1 => Some(r.prev(&key)?),
                other => return Err(corrupt(&key, &format!("bad prev flag {other}"))),
            };
            Ok(StoreEvent::Put {
                kv: KeyValue {
                    key,
                    value,
                    create_revision,
                    mod_revision: revision,
                },
                prev,
            })
        }
        KIND_DELETE => {
            let prev = r.prev(&key)?;
            Ok(StoreEvent::Delete { prev, revision })
        }
        other => Err(corrupt(&key, &format!("unknown event kind {other}"))),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StorageError> {
    let len = u32::try_from(bytes.len()).map_err(|_| {
        StorageError::Internal(format!("value of {} bytes is too large", bytes.len()))
    })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_prev(out: &mut Vec<u8>, prev: &KeyValue) -> Result<(), StorageError> {
    out.extend_from_slice(&prev.create_revision.to_le_bytes());
    out.extend_from_slice(&prev.mod_revision.to_le_bytes());
    put_bytes(out, &prev.value)
}

fn corrupt(what: &str, why: &str) -> StorageError {
    StorageError::Internal(format!("corrupt stored record for {what}: {why}"))
}

/// A bounds-checked cursor over an encoded record.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'a str) -> Self {
        Self { bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.bytes.len() < n {
            return Err(corrupt(self.what, "truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn version(&mut self) -> Result<(), StorageError> {
        match self.u8()? {
            VERSION => Ok(()),
            other => Err(corrupt(
                self.what,
                &format!("unknown format version {other}"),
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, StorageError> {
        let raw = self.take(8)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(raw);
        Ok(i64::from_le_bytes(buf))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StorageError> {
        let raw = self.take(4)?;
        let mut buf = [0u8; 4];
        buf.copy_from_slice(raw);
        let len = usize::try_from(u32::from_le_bytes(buf))
            .map_err(|_| corrupt(self.what, "length overflow"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, StorageError> {
        let raw = self.bytes()?;
        String::from_utf8(raw.to_vec()).map_err(|_| corrupt(self.what, "key is not UTF-8"))
    }

    fn prev(&mut self, key: &str) -> Result<KeyValue, StorageError> {
        let create_revision = self.i64()?;
        let mod_revision = self.i64()?;
        let value = Bytes::copy_from_slice(self.bytes()?);
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision,
        })
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, c: i64, m: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Bytes::from(value.to_owned()),
            create_revision: c,
            mod_revision: m,
        }
    }

    #[test]
    fn record_round_trip() {
        let bytes = encode_record(3, 7, b"hello");
        assert_eq!(decode_record("/k", &bytes), Ok(kv("/k", "hello", 3, 7)));
    }

    #[test]
    fn event_round_trip() {
        let put = StoreEvent::Put {
            kv: kv("/k", "v2", 3, 9),
            prev: Some(kv("/k", "v1", 3, 3)),
        };
        let bytes = encode_event(&put).expect("encode");
        assert_eq!(decode_event(9, &bytes), Ok(put));
        let created = StoreEvent::Put {
            kv: kv("/k", "v1", 3, 3),
            prev: None,
        };
        let bytes = encode_event(&created).expect("encode");
        assert_eq!(decode_event(3, &bytes), Ok(created));
        let del = StoreEvent::Delete {
            prev: kv("/k", "v2", 3, 9),
            revision: 10,
        };
        let bytes = encode_event(&del).expect("encode");
        assert_eq!(decode_event(10, &bytes), Ok(del));
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        let put = StoreEvent::Put {
            kv: kv("/k", "v2", 3, 9),
            prev: Some(kv("/k", "v1", 3, 3)),
        };
        let bytes = encode_event(&put).expect("encode");
        for cut in 0..bytes.len() {
            assert!(matches!(
                decode_event(9, &bytes[..cut]),
                Err(StorageError::Internal(_))
            ));
        }
        assert!(matches!(
            decode_record("/k", &[9, 0, 0]),
            Err(StorageError::Internal(_))
        ));
        assert!(matches!(
            decode_record("/k", &[1, 0, 0]),
            Err(StorageError::Internal(_))
        ));
    }
}
