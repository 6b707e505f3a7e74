//! Ages and timestamps the way kubectl renders them.

use jiff::{Timestamp, tz::TimeZone};

/// kubectl's `HumanDuration`: coarser the older it is (`45s`, `3m20s`, `5h`, `12d`).
pub fn human(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let s = seconds.max(0);
    let (m, h) = (s / 60, s / 3600);
    let both = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        both(m, "m", s % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        both(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        both(h / 24, "d", h % 24, "h")
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else if h < 24 * 365 * 8 {
        both(h / 24 / 365, "y", (h / 24) % 365, "d")
    } else {
        format!("{}y", h / 24 / 365)
    }
}

/// Seconds since an RFC 3339 timestamp, if it parses.
pub fn since(ts: &str) -> Option<i64> {
    let t: Timestamp = ts.parse().ok()?;
    Some(Timestamp::now().as_second() - t.as_second())
}

/// kubectl's describe timestamps: RFC 1123 with a numeric zone, in local time.
pub fn rfc1123z(ts: &str) -> String {
    match ts.parse::<Timestamp>() {
        Ok(t) => t
            .to_zoned(TimeZone::system())
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => ts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_durations() {
        assert_eq!(human(5), "5s");
        assert_eq!(human(119), "119s");
        assert_eq!(human(200), "3m20s");
        assert_eq!(human(600), "10m");
        assert_eq!(human(3 * 3600 + 60), "3h1m");
        assert_eq!(human(10 * 3600), "10h");
        assert_eq!(human(3 * 86400), "3d");
        assert_eq!(human(100 * 86400), "100d");
    }
}
