//! Small helpers over `serde_json::Value` shared by every kind: tolerant getters (validation
//! must never panic, whatever the body), defaulting setters, Kubernetes-style field paths and the
//! cause constructors `crate::error::Cause` lacks.

use serde_json::{Map, Value};

use crate::error::Cause;

/// The string at `key`, if `value` is an object holding a string there.
pub(crate) fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The string at `key`, or `""` when absent (Go's zero value, which most rules test against).
pub(crate) fn string_or_empty<'a>(value: &'a Value, key: &str) -> &'a str {
    str_at(value, key).unwrap_or("")
}

/// The integer at `key`, if present.
pub(crate) fn int_at(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

/// The array at `key`, empty when absent or not an array.
pub(crate) fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at `key`, if present.
pub(crate) fn object_at<'a>(value: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    value.get(key).and_then(Value::as_object)
}

/// Follows a path of object keys.
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// Whether a field is absent, null, or an empty string/array/object (Go's "not set").
pub(crate) fn is_unset(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

/// Sets `key` to `default` when `value` is an object whose `key` is absent or null.
pub(crate) fn set_default(value: &mut Value, key: &str, default: Value) {
    if let Some(map) = value.as_object_mut() {
        match map.get(key) {
            None | Some(Value::Null) => {
                map.insert(key.to_string(), default);
            }
            Some(_) => {}
        }
    }
}

/// Like [`set_default`] but also replaces an empty string (Go cannot tell those apart).
pub(crate) fn set_default_str(value: &mut Value, key: &str, default: &str) {
    if str_at(value, key) == Some("") {
        value[key] = Value::from(default);
    }
    set_default(value, key, Value::from(default));
}

/// The object at `key`, created empty when absent or null; `None` when `value` is not an object
/// or `key` holds something else.
pub(crate) fn object_mut<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    set_default(value, key, Value::Object(Map::new()));
    value.get_mut(key).filter(|v| v.is_object())
}

/// Mutable items of the array at `key` (nothing when absent).
pub(crate) fn items_mut<'a>(
    value: &'a mut Value,
    key: &str,
) -> impl Iterator<Item = &'a mut Value> {
    value
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// `parent.name`, or `name` at the root.
pub(crate) fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `parent[index]`.
pub(crate) fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// `parent[key]`, Kubernetes' rendering of a map entry.
pub(crate) fn key(parent: &str, key: &str) -> String {
    format!("{parent}[{key}]")
}

/// `FieldValueRequired` with Kubernetes' optional detail (`Required value: <detail>`).
pub(crate) fn required(field: impl Into<String>, detail: &str) -> Cause {
    if detail.is_empty() {
        Cause::required(field)
    } else {
        Cause::new(
            "FieldValueRequired",
            field,
            format!("Required value: {detail}"),
        )
    }
}

/// `FieldValueNotFound`, e.g. a volume mount naming a volume that does not exist.
pub(crate) fn not_found(field: impl Into<String>, value: &str) -> Cause {
    Cause::new(
        "FieldValueNotFound",
        field,
        format!("Not found: \"{value}\""),
    )
}

/// `FieldValueTooLong` for a byte budget.
pub(crate) fn too_long(field: impl Into<String>, max_bytes: usize) -> Cause {
    Cause::new(
        "FieldValueTooLong",
        field,
        format!("Too long: may not be more than {max_bytes} bytes"),
    )
}

/// `FieldValueInvalid` for a string value.
pub(crate) fn invalid_str(field: impl Into<String>, value: &str, detail: &str) -> Cause {
    Cause::invalid(field, &Value::from(value), detail)
}

/// Kubernetes' generic message for a field that may not change.
pub(crate) fn immutable(field: impl Into<String>, value: Option<&Value>) -> Cause {
    Cause::invalid(field, value.unwrap_or(&Value::Null), "field is immutable")
}

/// Adds an "immutable" cause when `key` differs between `new` and `old`.
pub(crate) fn check_immutable(
    new: &Value,
    old: &Value,
    path: &[&str],
    field: &str,
    errs: &mut Vec<Cause>,
) {
    let (n, o) = (at(new, path), at(old, path));
    if n != o {
        errs.push(immutable(field, n));
    }
}

/// `must be greater than or equal to 0` for a negative integer at `key`.
pub(crate) fn nonnegative(value: &Value, key: &str, parent: &str, errs: &mut Vec<Cause>) {
    if let Some(n) = int_at(value, key).filter(|n| *n < 0) {
        errs.push(Cause::invalid(
            child(parent, key),
            &Value::from(n),
            "must be greater than or equal to 0",
        ));
    }
}

/// `must be greater than zero` for a non-positive integer at `key`.
pub(crate) fn positive(value: &Value, key: &str, parent: &str, errs: &mut Vec<Cause>) {
    if let Some(n) = int_at(value, key).filter(|n| *n <= 0) {
        errs.push(Cause::invalid(
            child(parent, key),
            &Value::from(n),
            "must be greater than zero",
        ));
    }
}

/// `Unsupported value` when the string at `key` is set but not one of `supported`;
/// `Required value` when it is missing and `required` is true.
pub(crate) fn one_of(
    value: &Value,
    key: &str,
    parent: &str,
    supported: &[&str],
    required_field: bool,
    errs: &mut Vec<Cause>,
) {
    match value.get(key) {
        None | Some(Value::Null) => {
            if required_field {
                errs.push(Cause::required(child(parent, key)));
            }
        }
        Some(Value::String(s)) if s.is_empty() && required_field => {
            errs.push(Cause::required(child(parent, key)));
        }
        Some(Value::String(s)) if s.is_empty() || supported.contains(&s.as_str()) => {}
        Some(other) => errs.push(Cause::not_supported(child(parent, key), other, supported)),
    }
}

/// Whether an IP address literal is valid (Kubernetes' `must be a valid IP address`).
pub(crate) fn is_ip(value: &str) -> bool {
    value.parse::<std::net::IpAddr>().is_ok()
}

/// Kubernetes' message for an invalid IP address.
pub(crate) const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// An int-or-percent field (`maxSurge`, `maxUnavailable`, `minAvailable`): a non-negative
/// integer or a `N%` string. Returns the number (percent or count) when valid.
pub(crate) fn int_or_percent(
    value: Option<&Value>,
    path: &str,
    max_100_percent: bool,
    errs: &mut Vec<Cause>,
) -> Option<i64> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(-1);
            if n < 0 {
                errs.push(Cause::invalid(
                    path,
                    &Value::from(n),
                    "must be greater than or equal to 0",
                ));
                return None;
            }
            Some(n)
        }
        Some(Value::String(s)) => {
            let pct = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
            let Some(pct) = pct.and_then(|d| d.parse::<i64>().ok()) else {
                errs.push(invalid_str(
                    path,
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
                return None;
            };
            if max_100_percent && pct > 100 {
                errs.push(invalid_str(path, s, "must not be greater than 100%"));
            }
            Some(pct)
        }
        Some(other) => {
            errs.push(Cause::invalid(
                path,
                other,
                "must be an integer or percentage (e.g. '5%')",
            ));
            None
        }
    }
}

/// The object's `spec`, or null (validation treats a missing spec like an empty one).
pub(crate) fn spec_of(obj: &Value) -> &Value {
    static NULL: Value = Value::Null;
    obj.get("spec").unwrap_or(&NULL)
}

/// Whether `s` is an IPv4 or IPv6 CIDR (`10.0.0.0/24`).
pub(crate) fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    match (ip.parse::<std::net::IpAddr>(), prefix.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(p)) => p <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(p)) => p <= 128,
        _ => false,
    }
}
