//! The `pods/log` options (Kubernetes `PodLogOptions`) as the kubelet's `containerLogs`
//! endpoint receives them in its query string, with Kubernetes' validation rules.

use jiff::Timestamp;

/// Where reading starts in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// `sinceSeconds`: relative to the moment the request is served.
    Seconds(i64),
    /// `sinceTime`: an absolute RFC 3339 time.
    Time(Timestamp),
}

/// What part of a container's log to return and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming as the container writes, until it exits.
    pub follow: bool,
    /// The previous attempt's log instead of the current one.
    pub previous: bool,
    /// Prefix every line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only the last N lines of the file.
    pub tail_lines: Option<u64>,
    /// Only records at or after this point.
    pub since: Option<Since>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
}

/// Why a query cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionsError {
    /// A value is not of its type at all (HTTP 400).
    Malformed(String),
    /// Values of the right type that break a rule (HTTP 422), as `(field, message)` pairs in
    /// Kubernetes' wording.
    Invalid(Vec<(String, String)>),
}

impl LogOptions {
    /// Reads the options from query pairs. Booleans follow Kubernetes' query conversion: any
    /// value but `false`/`0` (even an empty one, `?follow`) is true. Unknown keys (`container`,
    /// say) are ignored.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, OptionsError> {
        let mut opts = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        let mut limit_bytes = None;
        let mut tail_lines = None;
        for (key, value) in pairs {
            match key.as_str() {
                "follow" => opts.follow = query_bool(value),
                "previous" => opts.previous = query_bool(value),
                "timestamps" => opts.timestamps = query_bool(value),
                "tailLines" => tail_lines = Some(query_int(key, value)?),
                "limitBytes" => limit_bytes = Some(query_int(key, value)?),
                "sinceSeconds" => since_seconds = Some(query_int(key, value)?),
                "sinceTime" => {
                    since_time = Some(value.parse::<Timestamp>().map_err(|_| {
                        OptionsError::Malformed(format!(
                            "sinceTime: {value:?} is not an RFC 3339 time"
                        ))
                    })?)
                }
                _ => {}
            }
        }
        let mut invalid = Vec::new();
        let mut check = |field: &str, value: i64, min: i64, rule: &str| {
            if value < min {
                invalid.push((field.to_string(), format!("Invalid value: {value}: {rule}")));
            }
        };
        if let Some(n) = tail_lines {
            check("tailLines", n, 0, "must be greater than or equal to 0");
        }
        if let Some(n) = limit_bytes {
            check("limitBytes", n, 1, "must be greater than 0");
        }
        if let Some(n) = since_seconds {
            check("sinceSeconds", n, 1, "must be greater than 0");
        }
        if since_seconds.is_some() && since_time.is_some() {
            invalid.push((
                String::new(),
                "at most one of `sinceTime` or `sinceSeconds` may be specified".to_string(),
            ));
        }
        if !invalid.is_empty() {
            return Err(OptionsError::Invalid(invalid));
        }
        opts.tail_lines = tail_lines.map(|n| n as u64);
        opts.limit_bytes = limit_bytes.map(|n| n as u64);
        opts.since = since_seconds
            .map(Since::Seconds)
            .or(since_time.map(Since::Time));
        Ok(opts)
    }

    /// The absolute start time for a request served at `now`.
    pub fn since_time(&self, now: Timestamp) -> Option<Timestamp> {
        match self.since? {
            Since::Time(t) => Some(t),
            Since::Seconds(s) => Some(
                now.checked_sub(jiff::SignedDuration::from_secs(s))
                    .unwrap_or(Timestamp::MIN),
            ),
        }
    }
}

/// Kubernetes' query-string boolean: absent is false, `false`/`0` are false, anything else
/// (including an empty value) is true.
pub fn query_bool(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

fn query_int(key: &str, value: &str) -> Result<i64, OptionsError> {
    value
        .parse::<i64>()
        .map_err(|_| OptionsError::Malformed(format!("{key}: {value:?} is not an integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<LogOptions, OptionsError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        LogOptions::from_query(&pairs)
    }

    #[test]
    fn reads_every_option() {
        let t: Timestamp = "2025-01-01T00:00:00Z".parse().expect("ts");
        let cases = [
            ("", LogOptions::default()),
            (
                "container=web&follow=true&timestamps=1&previous=false",
                LogOptions {
                    follow: true,
                    timestamps: true,
                    ..LogOptions::default()
                },
            ),
            (
                "follow&previous=TRUE",
                LogOptions {
                    follow: true,
                    previous: true,
                    ..LogOptions::default()
                },
            ),
            (
                "tailLines=0&limitBytes=10&sinceSeconds=3600",
                LogOptions {
                    tail_lines: Some(0),
                    limit_bytes: Some(10),
                    since: Some(Since::Seconds(3600)),
                    ..LogOptions::default()
                },
            ),
            (
                "sinceTime=2025-01-01T00:00:00Z",
                LogOptions {
                    since: Some(Since::Time(t)),
                    ..LogOptions::default()
                },
            ),
        ];
        for (query, want) in cases {
            assert_eq!(parse(query), Ok(want), "{query}");
        }
    }

    #[test]
    fn rejects_bad_values_in_kubernetes_words() {
        let cases: [(&str, &[&str]); 6] = [
            (
                "tailLines=-1",
                &["tailLines", "must be greater than or equal to 0"],
            ),
            ("limitBytes=0", &["limitBytes", "must be greater than 0"]),
            ("sinceSeconds=0", &["sinceSeconds", "Invalid value: 0"]),
            (
                "sinceSeconds=5&sinceTime=2025-01-01T00:00:00Z",
                &["at most one of `sinceTime` or `sinceSeconds`"],
            ),
            ("tailLines=ten", &["tailLines", "not an integer"]),
            ("sinceTime=yesterday", &["sinceTime", "RFC 3339"]),
        ];
        for (query, wants) in cases {
            let text = match parse(query) {
                Err(OptionsError::Malformed(m)) => m,
                Err(OptionsError::Invalid(causes)) => causes
                    .iter()
                    .map(|(f, m)| format!("{f}: {m}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                Ok(o) => panic!("{query}: accepted as {o:?}"),
            };
            for want in wants {
                assert!(text.contains(want), "{query}: {text:?} lacks {want:?}");
            }
        }
    }

    #[test]
    fn since_seconds_is_relative_to_now() {
        let now: Timestamp = "2025-01-01T01:00:00Z".parse().expect("ts");
        let opts = parse("sinceSeconds=3600").expect("parse");
        assert_eq!(
            opts.since_time(now),
            Some("2025-01-01T00:00:00Z".parse().expect("ts"))
        );
        assert_eq!(LogOptions::default().since_time(now), None);
    }
}
