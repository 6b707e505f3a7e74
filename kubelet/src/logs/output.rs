//! Turning parsed records into what `pods/log` returns: the `since` filter, timestamp
//! prefixes and the `limitBytes` cut. Pure; the reader feeds it records in file order.

use jiff::Timestamp;

use super::cri_format::{Record, rfc3339_nano};

/// The per-request state of output shaping.
#[derive(Debug)]
pub struct Shaper {
    since: Option<Timestamp>,
    timestamps: bool,
    remaining: Option<u64>,
    /// Whether the next record starts a new line (the previous one was not partial); only
    /// those get a timestamp prefix, so a line split over records is prefixed once.
    at_line_start: bool,
}

/// Whether more output may follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    More,
    /// `limitBytes` is used up: stop.
    Done,
}

impl Shaper {
    /// Shaping for records at or after `since`, with optional timestamp prefixes and at most
    /// `limit_bytes` of output.
    pub fn new(since: Option<Timestamp>, timestamps: bool, limit_bytes: Option<u64>) -> Self {
        Shaper {
            since,
            timestamps,
            remaining: limit_bytes,
            at_line_start: true,
        }
    }

    /// Appends `record`'s output to `out` (if it is selected) and says whether to go on.
    pub fn push(&mut self, record: &Record<'_>, out: &mut Vec<u8>) -> Flow {
        let starts_line = std::mem::replace(&mut self.at_line_start, !record.partial);
        if self.remaining == Some(0) {
            return Flow::Done;
        }
        if self.since.is_some_and(|since| record.timestamp < since) {
            return Flow::More;
        }
        let mut bytes = Vec::new();
        if self.timestamps && starts_line {
            bytes.extend_from_slice(rfc3339_nano(record.timestamp).as_bytes());
            bytes.push(b' ');
        }
        bytes.extend_from_slice(&record.output());
        if let Some(remaining) = &mut self.remaining {
            let take = bytes
                .len()
                .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
            bytes.truncate(take);
            *remaining -= take as u64;
        }
        out.extend_from_slice(&bytes);
        if self.remaining == Some(0) {
            Flow::Done
        } else {
            Flow::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cri_format::Stream;
    use super::*;

    fn rec(ts: &str, partial: bool, content: &'static str) -> Record<'static> {
        Record {
            timestamp: ts.parse().expect("ts"),
            stream: Stream::Stdout,
            partial,
            content: content.as_bytes(),
        }
    }

    fn shape(mut shaper: Shaper, records: &[Record<'static>]) -> (String, Flow) {
        let mut out = Vec::new();
        let mut flow = Flow::More;
        for r in records {
            flow = shaper.push(r, &mut out);
            if flow == Flow::Done {
                break;
            }
        }
        (String::from_utf8(out).expect("utf8"), flow)
    }

    #[test]
    fn shapes_output() {
        let t0 = "2025-01-01T00:00:00Z";
        let t1 = "2025-01-01T00:00:01.5Z";
        let t2 = "2025-01-01T00:00:02Z";
        let records = [
            rec(t0, false, "zero"),
            rec(t1, true, "one-"),
            rec(t1, false, "more"),
            rec(t2, false, "two"),
        ];
        let since = |s: &str| Some(s.parse::<Timestamp>().expect("ts"));
        let cases = [
            (
                Shaper::new(None, false, None),
                "zero\none-more\ntwo\n",
                Flow::More,
            ),
            (
                Shaper::new(None, true, None),
                "2025-01-01T00:00:00Z zero\n2025-01-01T00:00:01.5Z one-more\n2025-01-01T00:00:02Z two\n",
                Flow::More,
            ),
            (
                Shaper::new(since(t1), false, None),
                "one-more\ntwo\n",
                Flow::More,
            ),
            (Shaper::new(since(t2), false, None), "two\n", Flow::More),
            (Shaper::new(None, false, Some(7)), "zero\non", Flow::Done),
            (Shaper::new(None, false, Some(5)), "zero\n", Flow::Done),
            (
                Shaper::new(since(t2), true, Some(100)),
                "2025-01-01T00:00:02Z two\n",
                Flow::More,
            ),
        ];
        for (i, (shaper, want, flow)) in cases.into_iter().enumerate() {
            assert_eq!(
                shape(shaper, &records),
                (want.to_string(), flow),
                "case {i}"
            );
        }
    }
}
