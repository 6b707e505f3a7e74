//! A YAML emitter for JSON values that writes what kubectl writes (go-yaml v2 through
//! `sigs.k8s.io/yaml`): two-space indent, lists not indented under their key, strings plain
//! when they cannot be read as anything else, double-quoted when they would read as a number,
//! bool, null or timestamp, single-quoted when plain syntax forbids them, and literal blocks
//! for multi-line strings.

use serde_json::Value;

/// Renders a document (keys in the order given; callers sort them).
pub fn emit(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn map(m: &serde_json::Map<String, Value>, ind: usize, out: &mut String) {
    let mut first = true;
    for (k, v) in m {
        // The first key is already indented (or shares its line with a list's "- ").
        if !first {
            pad(ind, out);
        }
        first = false;
        out.push_str(&string(k, ind));
        out.push(':');
        value_after_key(v, ind, out);
    }
}

fn value_after_key(v: &Value, ind: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            pad(ind + 2, out);
            map(m, ind + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            pad(ind, out);
            seq(a, ind, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, ind + 2));
            out.push('\n');
        }
    }
}

fn seq(a: &[Value], ind: usize, out: &mut String) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            pad(ind, out);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => map(m, ind + 2, out),
            Value::Array(inner) if !inner.is_empty() => seq(inner, ind + 2, out),
            other => {
                out.push_str(&scalar(other, ind + 2));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value, ind: usize) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, ind),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
    }
}

/// Whether a plain scalar would be read back as something other than a string (YAML 1.1).
fn resolves_to_other(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "yes",
        "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N",
        ".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let t = s.replace('_', "");
    if t.parse::<f64>().is_ok() && !t.contains(['e', 'E']) || t.parse::<i64>().is_ok() {
        return true;
    }
    if let Some(h) = t.strip_prefix("0x")
        && !h.is_empty()
        && h.chars().all(|c| c.is_ascii_hexdigit())
    {
        return true;
    }
    // Timestamps: YYYY-M-D...
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

fn plain_allowed(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    // "-" starts a plain scalar only when a non-space follows ("-x"), never "- " or "---".
    let dash_ok = first == '-' && s.len() > 1 && !s.starts_with("- ") && !s.starts_with("---");
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) && !dash_ok {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.chars().any(|c| c.is_control()))
}

fn string(s: &str, ind: usize) -> String {
    if s.contains('\n') && !s.contains(['\t', '\r']) && !s.starts_with(' ') {
        let chomp = if s.ends_with("\n\n") {
            "+"
        } else if s.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let body = s.strip_suffix('\n').unwrap_or(s);
        let mut out = format!("|{chomp}");
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.extend(std::iter::repeat_n(' ', ind));
                out.push_str(line);
            }
        }
        return out;
    }
    if resolves_to_other(s) {
        return format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    }
    if plain_allowed(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn like_go_yaml() {
        let v = json!({"a": {"b": [{"name": "x", "v": "1"}, "t"], "e": {}, "l": []},
                       "ts": "2026-11-26T16:03:50Z", "s": "a: b", "m": "x\ny\n"});
        assert_eq!(
            emit(&v),
            "a:\n  b:\n  - name: x\n    v: \"1\"\n  - t\n  e: {}\n  l: []\nts: \"2026-11-26T16:03:50Z\"\ns: 'a: b'\nm: |\n  x\n  y\n"
        );
    }
}
