//! Kubernetes resource quantities (`100m`, `1Gi`, `1e3`, `0.5`).
//!
//! k8s-openapi keeps a `Quantity` as a plain string, so a malformed one would pass the typed
//! decode; kube-apiserver rejects it. This parser follows apimachinery's `ParseQuantity`
//! grammar — sign, digits with an optional fraction, then one suffix (decimal SI, binary SI or a
//! decimal exponent) — and yields the value as an `f64`, which is exact enough to compare
//! requests with limits (both sides round the same way).

/// apimachinery's message for a string that is not shaped like a quantity.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// apimachinery's message for a well-shaped quantity with an unknown suffix (`1Gb`, `1K`).
pub const SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

/// The numeric value of a quantity string, or the Kubernetes error message.
pub fn parse(s: &str) -> Result<f64, &'static str> {
    let b = s.as_bytes();
    let mut pos = 0;
    let negative = match b.first() {
        Some(b'-') => {
            pos += 1;
            true
        }
        Some(b'+') => {
            pos += 1;
            false
        }
        _ => false,
    };
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let num_end = digits(pos);
    let num = &s[pos..num_end];
    pos = num_end;
    let mut frac = "";
    let mut has_dot = false;
    if b.get(pos) == Some(&b'.') {
        has_dot = true;
        let end = digits(pos + 1);
        frac = &s[pos + 1..end];
        pos = end;
    }
    if num.is_empty() && frac.is_empty() && !has_dot {
        return Err(FORMAT_ERROR);
    }
    let suffix_start = pos;
    pos += b[pos..]
        .iter()
        .take_while(|c| b"eEinumkKMGTP".contains(c))
        .count();
    if matches!(b.get(pos), Some(b'+' | b'-')) {
        pos += 1;
    }
    if digits(pos) != b.len() {
        return Err(FORMAT_ERROR);
    }
    let (base2_exp, base10_exp) = suffix(&s[suffix_start..]).ok_or(SUFFIX_ERROR)?;
    let mantissa = format!(
        "{}{}.{}e{base10_exp}",
        if negative { "-" } else { "" },
        if num.is_empty() { "0" } else { num },
        if frac.is_empty() { "0" } else { frac },
    );
    let value: f64 = mantissa.parse().map_err(|_| FORMAT_ERROR)?;
    Ok(value * 2f64.powi(base2_exp))
}

/// `(binary exponent, decimal exponent)` of a suffix.
fn suffix(s: &str) -> Option<(i32, i32)> {
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if let Some(i) = binary.iter().position(|b| *b == s) {
        return Some((10 * (i as i32 + 1), 0));
    }
    let decimal = match s {
        "n" => -9,
        "u" => -6,
        "m" => -3,
        "" => 0,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        "T" => 12,
        "P" => 15,
        "E" => 18,
        _ => {
            let exp = s.strip_prefix(['e', 'E'])?;
            if exp.is_empty() {
                return None;
            }
            exp.parse::<i32>().ok().filter(|e| e.abs() <= 1000)?
        }
    };
    Some((0, decimal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_forms() {
        assert_eq!(parse("100m"), Ok(0.1));
        assert_eq!(parse("0.1"), Ok(0.1));
        assert_eq!(parse("1Gi"), Ok(1073741824.0));
        assert_eq!(parse("1e3"), Ok(1000.0));
        assert_eq!(parse("1E"), Ok(1e18));
        assert_eq!(parse("0.5"), Ok(0.5));
        assert_eq!(parse("+2"), Ok(2.0));
        assert_eq!(parse("-1k"), Ok(-1000.0));
        assert_eq!(parse("1.5Mi"), Ok(1.5 * 1048576.0));
        assert_eq!(parse(".5"), Ok(0.5));
        assert_eq!(parse("1e-3"), Ok(0.001));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "abc", "1.5.5", "1 Gi", "Gi", "1Gi1x", "--1", "1Gb"] {
            assert_eq!(parse(bad), Err(FORMAT_ERROR), "{bad}");
        }
        for bad in ["1K", "1ki", "1e", "1mi"] {
            assert_eq!(parse(bad), Err(SUFFIX_ERROR), "{bad}");
        }
    }
}
