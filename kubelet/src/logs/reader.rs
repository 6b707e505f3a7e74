//! Reading a container's log file for one request: the selected part of what is there, then
//! (with `follow`) what gets appended, across rotations, until the container has exited.
//!
//! Blocking: a request runs it on a blocking thread and receives chunks through `sink`.
//! Rotation is detected, not agreed on: when the file at the log path is no longer the one
//! being read (another inode: the writer renamed it and started a new one), the old file is
//! drained and the new one is read from its start; when the file shrank below the position
//! read so far (truncated in place), reading restarts at its beginning — a truncation followed
//! by more writes than were read is not noticeable, so writers should rotate by renaming. Rotated files themselves are never read, as in kubelet.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::cri_format::parse_record;
use super::options::LogOptions;
use super::output::{Flow, Shaper};
use super::tail::tail_start;
use crate::error::{IoContext, Result};

/// How often a followed file is checked for new data.
const POLL: Duration = Duration::from_millis(100);
/// How often, while no data comes, a follower asks whether the container still runs.
const RUNNING_CHECK: Duration = Duration::from_millis(500);

/// Streams the part of the log at `path` that `opts` select into `sink` (one chunk per read).
///
/// `now` anchors `sinceSeconds`. With `opts.follow`, keeps reading appended records until
/// `running()` says the container has exited and the file is drained, or `sink` returns
/// false (the client went away). Without it, returns at the end of the file.
pub fn stream_log(
    path: &Path,
    opts: &LogOptions,
    now: Timestamp,
    running: &mut dyn FnMut() -> bool,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<()> {
    let read_error = || format!("read log file {}", path.display());
    let mut file = File::open(path).context(|| format!("open log file {}", path.display()))?;
    if let Some(n) = opts.tail_lines {
        let start = tail_offset(&mut file, n).context(read_error)?;
        file.seek(SeekFrom::Start(start)).context(read_error)?;
    }
    let mut lines = LineSplitter::new(Shaper::new(
        opts.since_time(now),
        opts.timestamps,
        opts.limit_bytes,
    ));
    let mut buf = vec![0u8; 64 * 1024];
    // What is there already, a chunk per read.
    loop {
        let n = file.read(&mut buf).context(read_error)?;
        if n == 0 {
            break;
        }
        let mut out = Vec::new();
        let flow = lines.feed(&buf[..n], &mut out);
        if !send(sink, out) || flow == Flow::Done {
            return Ok(());
        }
    }
    if !opts.follow {
        let mut out = Vec::new();
        lines.finish(&mut out);
        send(sink, out);
        return Ok(());
    }
    let mut last_check = Instant::now();
    let mut exited_seen = false;
    loop {
        let n = file
            .read(&mut buf)
            .context(|| format!("read log file {}", path.display()))?;
        if n > 0 {
            let mut out = Vec::new();
            let flow = lines.feed(&buf[..n], &mut out);
            if !send(sink, out) || flow == Flow::Done {
                return Ok(());
            }
            continue;
        }
        // At the end of the file: rotated or truncated meanwhile?
        match replaced(path, &file) {
            Some(Replaced::Rotated(new)) => {
                let mut out = Vec::new();
                lines.finish(&mut out);
                if !send(sink, out) {
                    return Ok(());
                }
                file = new;
                continue;
            }
            Some(Replaced::Truncated) => {
                file.seek(SeekFrom::Start(0))
                    .context(|| format!("rewind log file {}", path.display()))?;
                continue;
            }
            None => {}
        }
        if exited_seen {
            // One poll after the container was seen gone, the writer has flushed too.
            let mut out = Vec::new();
            lines.finish(&mut out);
            send(sink, out);
            return Ok(());
        }
        if last_check.elapsed() >= RUNNING_CHECK {
            last_check = Instant::now();
            exited_seen = !running();
        }
        if !send(sink, Vec::new()) {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// Where the last `n` lines of `file` start, reading backwards from its end in growing
/// windows (so a tail of a large file reads little of it).
fn tail_offset(file: &mut File, n: u64) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        let mut tail = Vec::with_capacity((len - start) as usize);
        file.seek(SeekFrom::Start(start))?;
        (&mut *file).take(len - start).read_to_end(&mut tail)?;
        let offset = tail_start(&tail, n);
        // Found within the window, or the window is the whole file.
        if offset > 0 || start == 0 {
            return Ok(start + offset as u64);
        }
        window = window.saturating_mul(4);
    }
}

/// Sends a chunk; an empty one only checks whether the receiver is still there.
fn send(sink: &mut dyn FnMut(Vec<u8>) -> bool, chunk: Vec<u8>) -> bool {
    sink(chunk)
}

enum Replaced {
    /// A different file is at the path now; reading continues in it.
    Rotated(File),
    /// The same file, shorter than what was read: truncated in place.
    Truncated,
}

fn replaced(path: &Path, file: &File) -> Option<Replaced> {
    let current = file.metadata().ok()?;
    let at_path = std::fs::metadata(path).ok()?;
    if (at_path.dev(), at_path.ino()) != (current.dev(), current.ino()) {
        return File::open(path).ok().map(Replaced::Rotated);
    }
    let mut probe = file;
    let pos = probe.stream_position().ok()?;
    (at_path.len() < pos).then_some(Replaced::Truncated)
}

/// Cuts a byte stream into file lines and feeds complete ones through the shaper.
struct LineSplitter {
    shaper: Shaper,
    pending: Vec<u8>,
    done: bool,
}

impl LineSplitter {
    fn new(shaper: Shaper) -> Self {
        LineSplitter {
            shaper,
            pending: Vec::new(),
            done: false,
        }
    }

    /// Feeds bytes; complete lines go out, an incomplete tail waits for more.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Flow {
        let mut rest = bytes;
        while !self.done {
            let Some(pos) = rest.iter().position(|b| *b == b'\n') else {
                self.pending.extend_from_slice(rest);
                break;
            };
            let line = if self.pending.is_empty() {
                self.line(&rest[..pos], out)
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(&rest[..pos]);
                self.line(&whole, out)
            };
            self.done = line == Flow::Done;
            rest = &rest[pos + 1..];
        }
        if self.done { Flow::Done } else { Flow::More }
    }

    /// Ends the input: an incomplete last line is used as it is (as kubelet does at EOF).
    fn finish(&mut self, out: &mut Vec<u8>) {
        let last = std::mem::take(&mut self.pending);
        if !self.done && !last.is_empty() {
            self.done = self.line(&last, out) == Flow::Done;
        }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Flow {
        match parse_record(line) {
            Ok(record) => self.shaper.push(&record, out),
            Err(e) => {
                tracing::debug!(error = %e, "skipping a malformed log line");
                Flow::More
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    use super::super::cri_format::{Stream, format_record};
    use super::*;

    fn line(ts: &str, text: &str) -> Vec<u8> {
        format_record(
            ts.parse().expect("ts"),
            Stream::Stdout,
            false,
            text.as_bytes(),
        )
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open for append");
        f.write_all(bytes).expect("append");
    }

    fn read_all(path: &Path, opts: &LogOptions) -> String {
        let mut out = Vec::new();
        stream_log(
            path,
            opts,
            "2025-01-01T00:01:00Z".parse().expect("ts"),
            &mut || false,
            &mut |chunk| {
                out.extend(chunk);
                true
            },
        )
        .expect("read");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn selects_from_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        for (i, ts) in [
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:30Z",
            "2025-01-01T00:00:59Z",
        ]
        .iter()
        .enumerate()
        {
            append(&path, &line(ts, &format!("line {i}")));
        }
        append(&path, b"garbage that is no record\n");
        // A record still being written counts as the last line.
        append(&path, b"2025-01-01T00:00:59.5Z stderr F half");
        let cases = [
            (LogOptions::default(), "line 0\nline 1\nline 2\nhalf\n"),
            (
                LogOptions {
                    tail_lines: Some(2),
                    ..LogOptions::default()
                },
                "half\n",
            ),
            (
                LogOptions {
                    tail_lines: Some(3),
                    timestamps: true,
                    ..LogOptions::default()
                },
                "2025-01-01T00:00:59Z line 2\n2025-01-01T00:00:59.5Z half\n",
            ),
            (
                LogOptions {
                    since: Some(super::super::Since::Seconds(40)),
                    ..LogOptions::default()
                },
                "line 1\nline 2\nhalf\n",
            ),
            (
                LogOptions {
                    limit_bytes: Some(9),
                    ..LogOptions::default()
                },
                "line 0\nli",
            ),
        ];
        for (opts, want) in cases {
            assert_eq!(read_all(&path, &opts), want, "{opts:?}");
        }
    }

    /// Follows a file through an append, a rotation and a truncation, and stops once the
    /// container is reported gone.
    #[test]
    fn follows_across_rotation_until_the_container_exits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        append(&path, &line("2025-01-01T00:00:00Z", "first"));
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let reader = {
            let (path, alive) = (path.clone(), alive.clone());
            std::thread::spawn(move || {
                let opts = LogOptions {
                    follow: true,
                    ..LogOptions::default()
                };
                stream_log(
                    &path,
                    &opts,
                    jiff::Timestamp::now(),
                    &mut || alive.load(Ordering::SeqCst),
                    &mut |chunk| chunk.is_empty() || tx.send(chunk).is_ok(),
                )
            })
        };
        let mut seen = String::new();
        let mut wait_for = |want: &str| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !seen.contains(want) {
                let left = deadline.saturating_duration_since(Instant::now());
                let chunk = rx
                    .recv_timeout(left)
                    .unwrap_or_else(|_| panic!("no {want:?} in {seen:?}"));
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        wait_for("first\n");
        append(&path, &line("2025-01-01T00:00:01Z", "second"));
        wait_for("second\n");
        // Rotation: the writer renames the file away and starts a new one.
        append(&path, &line("2025-01-01T00:00:02Z", "last of old"));
        std::fs::rename(&path, dir.path().join("0.log.1")).expect("rotate");
        append(&path, &line("2025-01-01T00:00:03Z", "new file"));
        wait_for("new file\n");
        // Truncation in place (noticed because the file is now shorter than what was read):
        // read again from the start.
        std::fs::write(&path, line("2025-01-01T00:00:04Z", "cut")).expect("truncate");
        wait_for("cut\n");
        alive.store(false, Ordering::SeqCst);
        reader
            .join()
            .expect("reader thread")
            .expect("reader result");
        assert_eq!(
            seen, "first\nsecond\nlast of old\nnew file\ncut\n",
            "every record exactly once, in order"
        );
    }

    #[test]
    fn tails_of_large_files_read_backwards_across_windows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut data = Vec::new();
        for i in 0..40_000 {
            data.extend(line("2025-01-01T00:00:00Z", &format!("line {i}")));
        }
        std::fs::write(&path, &data).expect("write");
        for n in [0u64, 1, 3, 5_000, 39_999, 40_000, 90_000] {
            let mut file = File::open(&path).expect("open");
            let offset = tail_offset(&mut file, n).expect("tail") as usize;
            assert_eq!(offset, tail_start(&data, n), "n={n}");
        }
        let opts = LogOptions {
            tail_lines: Some(2),
            ..LogOptions::default()
        };
        assert_eq!(read_all(&path, &opts), "line 39998\nline 39999\n");
    }

    #[test]
    fn a_gone_client_stops_a_follower() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        append(&path, &line("2025-01-01T00:00:00Z", "x"));
        let opts = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let mut calls = 0;
        stream_log(
            &path,
            &opts,
            jiff::Timestamp::now(),
            &mut || true,
            &mut |_| {
                calls += 1;
                calls < 3
            },
        )
        .expect("stops");
        assert_eq!(calls, 3);
    }
}
