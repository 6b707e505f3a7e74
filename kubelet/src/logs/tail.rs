//! `tailLines`: where the last N lines of a log file start.

/// The offset in `data` of the first of its last `n` lines. A final line without its `\n`
/// (a record still being written) counts as a line, like kubelet's tail.
pub fn tail_start(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    // A trailing newline ends the last line; it does not start another one.
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_start_of_the_last_lines() {
        let cases: [(&str, u64, &str); 9] = [
            ("a\nb\nc\n", 1, "c\n"),
            ("a\nb\nc\n", 2, "b\nc\n"),
            ("a\nb\nc\n", 3, "a\nb\nc\n"),
            ("a\nb\nc\n", 10, "a\nb\nc\n"),
            ("a\nb\nc\n", 0, ""),
            ("a\nb\nhalf", 1, "half"),
            ("a\nb\nhalf", 2, "b\nhalf"),
            ("", 3, ""),
            ("\n\n", 1, "\n"),
        ];
        for (data, n, want) in cases {
            let start = tail_start(data.as_bytes(), n);
            assert_eq!(&data[start..], want, "{data:?} n={n}");
        }
    }
}
