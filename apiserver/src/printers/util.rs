//! Small, panic-free readers over JSON objects and the formatting helpers the
//! printers share (ages, label maps, selectors, container lists).
//!
//! Objects reaching a printer may be partial or odd (a client may store
//! anything the schema lets through), so every reader here falls back to the
//! zero value Kubernetes' Go structs would hold: `""`, `0`, an empty list.

use jiff::{SignedDuration, Timestamp};
use runtime::selector::LabelSelector;
use serde_json::Value;

/// The value at `path` (object keys), if every step exists.
pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

/// The string at `path`, or `""` when absent or not a string.
pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` when it is present and a string (a Go `*string`).
pub(super) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// The integer at `path` when present (a Go `*int32`).
pub(super) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(as_int)
}

/// The integer at `path`, or 0.
pub(super) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        // Whole floats (`3.0`) are what some clients send for integers.
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

/// The boolean at `path` when present (a Go `*bool`).
pub(super) fn opt_bool(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

/// The boolean at `path`, or false.
pub(super) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(super) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// How many entries the object or array at `path` has (0 when absent).
pub(super) fn len_at(v: &Value, path: &[&str]) -> usize {
    match at(v, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// Whether `path` holds a non-null value (a Go pointer that is set).
pub(super) fn present(v: &Value, path: &[&str]) -> bool {
    at(v, path).is_some_and(|v| !v.is_null())
}

/// A string cell.
pub(super) fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

/// An integer cell.
pub(super) fn n(i: i64) -> Value {
    Value::from(i)
}

/// `"<none>"` for an empty string, the string otherwise.
pub(super) fn or_none(text: &str) -> String {
    if text.is_empty() {
        "<none>".to_owned()
    } else {
        text.to_owned()
    }
}

// --- time ------------------------------------------------------------------

/// Parses a Kubernetes timestamp (RFC 3339). Go's zero time, which is what
/// an unset `metav1.Time` serializes to, counts as unset.
pub(super) fn parse_time(v: &Value) -> Option<Timestamp> {
    let ts: Timestamp = v.as_str()?.parse().ok()?;
    // 0001-01-01T00:00:00Z, Go's time.Time{}.
    (ts.as_second() != -62_135_596_800).then_some(ts)
}

/// The timestamp at `path`, if set and well formed.
pub(super) fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    at(v, path).and_then(parse_time)
}

/// How long ago `ts` was, as kubectl shows it; `<unknown>` when unset.
pub(super) fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_signed(now.duration_since(ts)),
        None => "<unknown>".to_owned(),
    }
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub(super) fn age(obj: &Value, now: Timestamp) -> Value {
    s(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

/// apimachinery's `HumanDuration` over a signed duration: about two
/// significant figures, `<invalid>` for times more than a second in the
/// future (clock skew up to that is shown as `0s`).
pub(super) fn human_signed(d: SignedDuration) -> String {
    // Truncates toward zero, like Go's int(d.Seconds()).
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

// --- labels, selectors, containers -----------------------------------------

/// A label map as `k1=v1,k2=v2` (sorted by key), `<none>` when empty, like
/// apimachinery's `labels.FormatLabels`.
pub(super) fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object) else {
        return "<none>".to_owned();
    };
    let mut pairs: Vec<(&String, &str)> = map
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    let text = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    or_none(&text)
}

/// A structured selector as selector syntax, `<none>` when it selects
/// everything or nothing, `<error>` when invalid (`metav1.FormatLabelSelector`).
pub(super) fn format_label_selector(sel: Option<&Value>) -> String {
    match LabelSelector::from_label_selector_json(sel.unwrap_or(&Value::Null)) {
        Ok(sel) => or_none(&sel.to_string()),
        Err(_) => "<error>".to_owned(),
    }
}

/// Container names and images, each comma-joined, for the wide
/// CONTAINERS and IMAGES columns.
pub(super) fn container_cells(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (s(names.join(",")), s(images.join(",")))
}

/// The containers of the pod template at `path` + `spec.containers`.
pub(super) fn template_containers<'a>(obj: &'a Value, template: &[&str]) -> &'a [Value] {
    let mut path = template.to_vec();
    path.extend(["spec", "containers"]);
    arr_at(obj, &path)
}

/// A `resource.Quantity` as text. Quantities arrive as strings (or, from
/// lax clients, numbers); an unset quantity prints as `0` like Go's zero
/// Quantity.
pub(super) fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Number(num)) => num.to_string(),
        _ => "0".to_owned(),
    }
}

/// An `IntOrString` as text (`3`, `50%`).
pub(super) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(text) => text.clone(),
        Value::Number(num) => num.to_string(),
        _ => String::new(),
    }
}

/// Go's `net.JoinHostPort`: IPv6 hosts get brackets.
pub(super) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The first condition of `type_` in the array at `path` has status `True`.
pub(super) fn condition_true(obj: &Value, path: &[&str], type_: &str) -> bool {
    arr_at(obj, path)
        .iter()
        .find(|c| str_at(c, &["type"]) == type_)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}
