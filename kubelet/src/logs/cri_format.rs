//! One record of a CRI log file: `<RFC 3339 timestamp> <stdout|stderr> <F|P> <text>`.
//!
//! The shim writes one record per chunk of container output; `P` marks a partial line that
//! the next record continues, `F` a full line whose newline is *not* stored in the file.

use jiff::Timestamp;

/// Which output stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// The word the file format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed line of a log file, borrowing its text from the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// When the runtime read the chunk.
    pub timestamp: Timestamp,
    /// Where it came from.
    pub stream: Stream,
    /// `P`: the line continues in the next record.
    pub partial: bool,
    /// The text, without the newline of a full line.
    pub content: &'a [u8],
}

impl Record<'_> {
    /// The bytes the container wrote: the content plus the newline a full line had.
    pub fn output(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 1);
        out.extend_from_slice(self.content);
        if !self.partial {
            out.push(b'\n');
        }
        out
    }
}

/// Parses one file line (without its trailing `\n`). Tags after the first may follow it,
/// separated by `:` (the CRI format allows that); only the first (`F`/`P`) means anything.
pub fn parse_record(line: &[u8]) -> Result<Record<'_>, String> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let ts = fields.next().unwrap_or_default();
    let timestamp = std::str::from_utf8(ts)
        .ok()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .ok_or_else(|| format!("invalid timestamp {:?}", String::from_utf8_lossy(ts)))?;
    let stream = match fields.next() {
        Some(b"stdout") => Stream::Stdout,
        Some(b"stderr") => Stream::Stderr,
        other => {
            return Err(format!(
                "unexpected stream type {:?}",
                String::from_utf8_lossy(other.unwrap_or_default())
            ));
        }
    };
    let tags = fields.next().ok_or("missing the F/P tag")?;
    let partial = match tags.split(|b| *b == b':').next() {
        Some(b"F") => false,
        Some(b"P") => true,
        _ => {
            return Err(format!(
                "unexpected tag {:?}",
                String::from_utf8_lossy(tags)
            ));
        }
    };
    Ok(Record {
        timestamp,
        stream,
        partial,
        content: fields.next().unwrap_or_default(),
    })
}

/// Formats a record as a file line including its `\n` (the writer side, and tests).
pub fn format_record(
    timestamp: Timestamp,
    stream: Stream,
    partial: bool,
    content: &[u8],
) -> Vec<u8> {
    let mut line = format!(
        "{} {} {} ",
        rfc3339_nano(timestamp),
        stream.as_str(),
        if partial { "P" } else { "F" }
    )
    .into_bytes();
    line.extend_from_slice(content);
    line.push(b'\n');
    line
}

/// RFC 3339 in UTC with up to nine fractional digits and trailing zeros dropped: Go's
/// `time.RFC3339Nano`, the form kubelet prefixes lines with for `timestamps=true`.
pub fn rfc3339_nano(timestamp: Timestamp) -> String {
    let seconds = timestamp.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = timestamp.subsec_nanosecond();
    if nanos == 0 {
        return format!("{seconds}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{seconds}.{}Z", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn parses_records() {
        type Want = Result<(Stream, bool, &'static str), &'static str>;
        let cases: Vec<(&str, Want)> = vec![
            (
                "2025-01-01T00:00:00.5Z stdout F hello world",
                Ok((Stream::Stdout, false, "hello world")),
            ),
            (
                "2025-01-01T00:00:00Z stderr P part",
                Ok((Stream::Stderr, true, "part")),
            ),
            (
                "2025-01-01T00:00:00Z stdout F ",
                Ok((Stream::Stdout, false, "")),
            ),
            (
                "2025-01-01T00:00:00Z stdout F",
                Ok((Stream::Stdout, false, "")),
            ),
            (
                "2025-01-01T00:00:00Z stdout F:x  two  spaces ",
                Ok((Stream::Stdout, false, " two  spaces ")),
            ),
            (
                "2025-01-01T02:00:00+02:00 stdout F offset",
                Ok((Stream::Stdout, false, "offset")),
            ),
            ("yesterday stdout F x", Err("invalid timestamp")),
            ("2025-01-01T00:00:00Z stdin F x", Err("unexpected stream")),
            ("2025-01-01T00:00:00Z stdout X x", Err("unexpected tag")),
            ("2025-01-01T00:00:00Z stdout", Err("missing")),
            ("", Err("invalid timestamp")),
        ];
        for (line, want) in cases {
            let got = parse_record(line.as_bytes());
            match (got, want) {
                (Ok(r), Ok((stream, partial, content))) => {
                    assert_eq!(
                        (r.stream, r.partial, r.content),
                        (stream, partial, content.as_bytes()),
                        "{line:?}"
                    );
                }
                (Err(e), Err(want)) => assert!(e.contains(want), "{line:?}: {e}"),
                (got, want) => panic!("{line:?}: got {got:?}, want {want:?}"),
            }
        }
        let r = parse_record(b"2025-01-01T02:00:00+02:00 stdout F x").expect("parse");
        assert_eq!(r.timestamp, ts("2025-01-01T00:00:00Z"));
    }

    #[test]
    fn formats_like_go_rfc3339_nano() {
        let cases = [
            ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
            ("2025-01-01T00:00:00.5Z", "2025-01-01T00:00:00.5Z"),
            (
                "2025-01-01T00:00:00.123456789Z",
                "2025-01-01T00:00:00.123456789Z",
            ),
            ("2025-01-01T00:00:00.000001Z", "2025-01-01T00:00:00.000001Z"),
            ("2025-06-30T23:59:59.010+02:00", "2025-06-30T21:59:59.01Z"),
        ];
        for (input, want) in cases {
            assert_eq!(rfc3339_nano(ts(input)), want, "{input}");
        }
    }

    #[test]
    fn format_and_parse_round_trip() {
        let t = ts("2025-01-01T00:00:00.25Z");
        let line = format_record(t, Stream::Stderr, true, b"abc");
        assert_eq!(line, b"2025-01-01T00:00:00.25Z stderr P abc\n");
        let r = parse_record(&line[..line.len() - 1]).expect("parse");
        assert_eq!(
            r,
            Record {
                timestamp: t,
                stream: Stream::Stderr,
                partial: true,
                content: b"abc"
            }
        );
        assert_eq!(r.output(), b"abc");
    }
}
