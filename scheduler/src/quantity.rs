//! Kubernetes resource quantities as the integers the scheduler compares.
//!
//! The scheduler only ever needs two views of a quantity: milli-units for cpu
//! (`"100m"` → 100, `"1"` → 1000) and whole units for everything else (bytes
//! for memory and ephemeral-storage, a count for extended resources). Both
//! round *up*, as apimachinery's `MilliValue`/`Value` do, so a request of
//! `"0.5m"` still takes one milli-cpu and can never be rounded away into an
//! overcommit.
//!
//! The arithmetic is exact integer arithmetic on the decimal digits (no
//! floating point), saturating at `i64::MAX`.
//!
//! The API server validates quantities on write (`apiserver/src/strategy/quantity.rs`
//! parses for validation only); the two can later be unified in `runtime`.
//! Here a string that is not a valid quantity yields `None`, and the
//! callers treat it as zero — the scheduler must never panic on odd input.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A parsed quantity: `digits × 10^exp10 × 2^exp2`, with a sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    /// All significant digits, integer and fraction part together.
    digits: u128,
    exp10: i32,
    exp2: u32,
}

/// Parses the quantity grammar: optional sign, digits with an optional
/// fraction, then one suffix — binary SI (`Ki`..`Ei`), decimal SI (`n`, `u`,
/// `m`, ``, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`).
fn parse(s: &str) -> Option<Parsed> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'.')
        .count();
    let (number, suffix) = rest.split_at(num_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) if !f.contains('.') => (i, f),
        Some(_) => return None,
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut digits: u128 = 0;
    let mut exp10: i32 = 0;
    for (i, c) in int_part.bytes().chain(frac_part.bytes()).enumerate() {
        let is_frac = i >= int_part.len();
        match digits
            .checked_mul(10)
            .and_then(|d| d.checked_add(u128::from(c - b'0')))
        {
            Some(d) => {
                digits = d;
                if is_frac {
                    exp10 -= 1;
                }
            }
            // Too many significant digits: drop the rest of the integer part
            // into the exponent, ignore further fraction digits.
            None if !is_frac => exp10 += 1,
            None => {}
        }
    }
    let (suffix_exp10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            let unsigned = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if unsigned.is_empty() || !unsigned.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (exp.parse::<i32>().ok()?.clamp(-1000, 1000), 0)
        }
    };
    Some(Parsed {
        negative,
        digits,
        exp10: exp10.saturating_add(suffix_exp10),
        exp2,
    })
}

impl Parsed {
    /// `value × 10^scale`, rounded up (towards +∞), saturating at the i64 range.
    fn scaled(self, scale: i32) -> i64 {
        if self.digits == 0 {
            return 0;
        }
        let mut v = self.digits;
        let mut saturated = false;
        for _ in 0..self.exp2 {
            match v.checked_mul(2) {
                Some(x) => v = x,
                None => saturated = true,
            }
        }
        let exp = self.exp10.saturating_add(scale);
        let mut inexact = false;
        if exp >= 0 {
            for _ in 0..exp {
                match v.checked_mul(10) {
                    Some(x) => v = x,
                    None => {
                        saturated = true;
                        break;
                    }
                }
            }
        } else {
            for _ in 0..exp.unsigned_abs() {
                if v == 0 {
                    break;
                }
                inexact |= !v.is_multiple_of(10);
                v /= 10;
            }
        }
        let magnitude = if saturated || v > i64::MAX as u128 {
            i64::MAX
        } else {
            v as i64
        };
        match (self.negative, inexact) {
            (false, false) => magnitude,
            (false, true) => magnitude.saturating_add(1),
            // Rounding up a negative number means dropping the fraction.
            (true, _) => -magnitude,
        }
    }
}

/// Milli-units of a quantity string (`"100m"` → 100, `"2"` → 2000), rounded
/// up; `None` when the string is not a quantity.
pub fn parse_milli(s: &str) -> Option<i64> {
    parse(s).map(|p| p.scaled(3))
}

/// Whole units of a quantity string (`"1Gi"` → 1073741824, `"1k"` → 1000),
/// rounded up; `None` when the string is not a quantity.
pub fn parse_value(s: &str) -> Option<i64> {
    parse(s).map(|p| p.scaled(0))
}

/// Milli-units of a quantity, clamped to `>= 0`; unparsable counts as zero
/// (the API server rejects such objects, so this only guards odd input).
pub fn milli(q: &Quantity) -> i64 {
    parse_milli(&q.0).unwrap_or(0).max(0)
}

/// Whole units of a quantity, clamped to `>= 0`; unparsable counts as zero.
pub fn value(q: &Quantity) -> i64 {
    parse_value(&q.0).unwrap_or(0).max(0)
}

/// The scheduler's integer for a resource: milli-units for `cpu`, whole units
/// for everything else — the same convention kube-scheduler uses.
pub fn for_resource(resource: &str, q: &Quantity) -> i64 {
    if resource == "cpu" {
        milli(q)
    } else {
        value(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_milli(".5"), Some(500));
        assert_eq!(parse_milli("2.25"), Some(2250));
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("1k"), Some(1_000_000));
        assert_eq!(parse_milli("0.5m"), Some(1), "rounds up like MilliValue");
        assert_eq!(parse_milli("250000u"), Some(250));
        assert_eq!(parse_milli("1n"), Some(1));
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(parse_value("1Gi"), Some(1 << 30));
        assert_eq!(parse_value("512Mi"), Some(512 << 20));
        assert_eq!(parse_value("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_value("1M"), Some(1_000_000));
        assert_eq!(parse_value("1k"), Some(1000));
        assert_eq!(parse_value("1E"), Some(1_000_000_000_000_000_000));
        assert_eq!(parse_value("128974848"), Some(128_974_848));
        assert_eq!(parse_value("129e6"), Some(129_000_000));
        assert_eq!(
            parse_value("1E2"),
            Some(100),
            "E followed by digits is an exponent"
        );
        assert_eq!(parse_value("100m"), Some(1), "rounds up like Value");
        assert_eq!(parse_value("+5"), Some(5));
        assert_eq!(parse_value("-5"), Some(-5));
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        assert_eq!(parse_value("9Ei"), Some(i64::MAX));
        assert_eq!(
            parse_milli("99999999999999999999999999999999999999999"),
            Some(i64::MAX)
        );
        assert_eq!(parse_value("1e999"), Some(i64::MAX));
        assert_eq!(parse_value("1e-999"), Some(1));
        assert_eq!(parse_value("0e999"), Some(0));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "abc", "1Gb", "1K", "1.2.3", "--1", "m", "1e", "1e+", "1 Gi", ".",
        ] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
        assert_eq!(value(&Quantity("nonsense".into())), 0);
        assert_eq!(milli(&Quantity("-1".into())), 0);
        assert_eq!(for_resource("cpu", &Quantity("1".into())), 1000);
        assert_eq!(for_resource("memory", &Quantity("1".into())), 1);
    }
}
