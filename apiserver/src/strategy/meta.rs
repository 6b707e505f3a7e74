//! Name, label, annotation, object-metadata and label-selector rules shared by every kind.
//!
//! The messages follow apimachinery's `util/validation` wording so that users see the same
//! errors as with kube-apiserver (e.g. the RFC 1123 regex hint).

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::{
    at, child, index, invalid_str, items, object_at, required, str_at, string_or_empty, too_long,
};
use crate::error::Cause;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// apimachinery's `RegexError`: the rule, examples and the regex itself.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: String = examples
        .iter()
        .map(|e| format!("'{e}', "))
        .collect::<Vec<_>>()
        .join(" or ");
    format!("{msg} (e.g. {examples}regex used for validation is '{fmt}')")
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (or, with `allow_upper`/`allow_underscore_dot`, the
/// label-key alphabet) — written by hand to avoid a regex dependency.
fn is_label_like(s: &str, inner: impl Fn(u8) -> bool, edge: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && edge(b[0]) && edge(b[b.len() - 1]) && b.iter().all(|c| inner(*c))
}

fn lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dns1123_label_shape(s: &str) -> bool {
    is_label_like(s, |c| lower_alnum(c) || c == b'-', lower_alnum)
}

fn is_dns1123_subdomain_shape(s: &str) -> bool {
    s.split('.').all(is_dns1123_label_shape)
}

/// Problems with a DNS-1123 label (Namespace names, container names, ...).
pub(crate) fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_dns1123_label_shape(value) {
        if is_dns1123_subdomain_shape(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Problems with a DNS-1123 subdomain (most object names).
pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !is_dns1123_subdomain_shape(value) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Problems with a DNS-1035 label (Service names: must start with a letter).
pub(crate) fn dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    let starts_with_letter = value.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
    if !starts_with_letter || !is_dns1123_label_shape(value) {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Problems with a path-segment name (RBAC objects): anything but `.`, `..`, `/` and `%`.
pub(crate) fn path_segment_name(value: &str) -> Vec<String> {
    if value == "." || value == ".." {
        return vec![format!("may not be '{value}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| value.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

fn is_qualified_name_part(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    is_label_like(s, |c| alnum(c) || matches!(c, b'-' | b'_' | b'.'), alnum)
}

/// Problems with a qualified name (label and annotation keys): `[prefix/]name`.
pub(crate) fn qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Problems with a label value (≤63 characters, may be empty).
pub(crate) fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Which rule a kind's `metadata.name` follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (Namespace).
    Label,
    /// DNS-1035 label (Service).
    Dns1035,
    /// Path segment (RBAC kinds).
    PathSegment,
}

impl NameRule {
    pub(crate) fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => dns1123_subdomain(name),
            NameRule::Label => dns1123_label(name),
            NameRule::Dns1035 => dns1035_label(name),
            NameRule::PathSegment => path_segment_name(name),
        }
    }
}

/// Label keys must be qualified names and values valid label values; errors point at `path`
/// (Kubernetes reports the map, not the entry).
pub(crate) fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut errs = Vec::new();
    let Some(map) = labels.and_then(Value::as_object) else {
        return errs;
    };
    for (k, v) in map {
        for msg in qualified_name(k) {
            errs.push(invalid_str(path, k, &msg));
        }
        let v = v.as_str().unwrap_or("");
        for msg in label_value(v) {
            errs.push(invalid_str(path, v, &msg));
        }
    }
    errs
}

/// Annotation keys must be qualified names (case-insensitively) and the total size ≤ 256 KiB.
pub(crate) fn validate_annotations(annotations: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut errs = Vec::new();
    let Some(map) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let mut total = 0;
    for (k, v) in map {
        for msg in qualified_name(&k.to_lowercase()) {
            errs.push(invalid_str(path, k, &msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE {
        errs.push(too_long(path, TOTAL_ANNOTATION_SIZE));
    }
    errs
}

/// `metadata` rules of a top-level object: name (or generateName) by `rule`, labels,
/// annotations, finalizers.
pub(crate) fn validate_object_meta(obj: &Value, rule: NameRule) -> Vec<Cause> {
    let empty = Value::Null;
    let meta = obj.get("metadata").unwrap_or(&empty);
    let mut errs = Vec::new();
    let name = string_or_empty(meta, "name");
    let generate_name = string_or_empty(meta, "generateName");
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else {
            // A generated name gets a random suffix, so only the prefix (minus a trailing '-') must be valid.
            let prefix = generate_name.strip_suffix('-').unwrap_or(generate_name);
            for msg in rule.check(prefix) {
                errs.push(invalid_str("metadata.generateName", generate_name, &msg));
            }
        }
    } else {
        for msg in rule.check(name) {
            errs.push(invalid_str("metadata.name", name, &msg));
        }
    }
    if let Some(ns) = str_at(meta, "namespace").filter(|ns| !ns.is_empty()) {
        for msg in dns1123_label(ns) {
            errs.push(invalid_str("metadata.namespace", ns, &msg));
        }
    }
    errs.extend(validate_labels(meta.get("labels"), "metadata.labels"));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        "metadata.annotations",
    ));
    for (i, f) in items(meta, "finalizers").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        for msg in qualified_name(f) {
            errs.push(invalid_str(index("metadata.finalizers", i), f, &msg));
        }
    }
    errs
}

/// Validation of an update: the kind's own rules on the new object, plus the metadata that
/// may never change (name, namespace).
pub(crate) fn update_with(
    new: &Value,
    old: &Value,
    validate: fn(&Value) -> Vec<Cause>,
) -> Vec<Cause> {
    let mut errs = validate(new);
    for key in ["name", "namespace"] {
        let n = at(new, &["metadata", key])
            .and_then(Value::as_str)
            .unwrap_or("");
        let o = at(old, &["metadata", key])
            .and_then(Value::as_str)
            .unwrap_or("");
        if n != o {
            errs.push(invalid_str(child("metadata", key), n, "field is immutable"));
        }
    }
    errs
}

/// Defines `validate_*_update` functions for kinds whose updates follow the create rules only.
macro_rules! plain_updates {
    ($($update:ident => $validate:ident),* $(,)?) => {
        $(
            #[doc = concat!("Update validation: `", stringify!($validate), "` plus immutable name/namespace.")]
            pub(crate) fn $update(new: &serde_json::Value, old: &serde_json::Value) -> Vec<crate::error::Cause> {
                super::meta::update_with(new, old, $validate)
            }
        )*
    };
}
pub(crate) use plain_updates;

/// Rules of a `LabelSelector` (`matchLabels` + `matchExpressions`).
pub(crate) fn validate_label_selector(selector: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut errs = Vec::new();
    let Some(selector) = selector else {
        return errs;
    };
    errs.extend(validate_labels(
        selector.get("matchLabels"),
        &child(path, "matchLabels"),
    ));
    let exprs_path = child(path, "matchExpressions");
    for (i, expr) in items(selector, "matchExpressions").iter().enumerate() {
        let p = index(&exprs_path, i);
        let values = items(expr, "values");
        match string_or_empty(expr, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(Cause::forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(invalid_str(
                child(&p, "operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = string_or_empty(expr, "key");
        for msg in qualified_name(key) {
            errs.push(invalid_str(child(&p, "key"), key, &msg));
        }
    }
    errs
}

/// Whether a `LabelSelector` has no requirement at all (it would select everything).
pub(crate) fn selector_is_empty(selector: &Value) -> bool {
    object_at(selector, "matchLabels").is_none_or(|m| m.is_empty())
        && items(selector, "matchExpressions").is_empty()
}

/// Whether `labels` satisfy a `LabelSelector`.
pub(crate) fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels_ok = object_at(selector, "matchLabels")
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let expressions_ok = items(selector, "matchExpressions").iter().all(|expr| {
        let key = string_or_empty(expr, "key");
        let values: Vec<&str> = items(expr, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        match (string_or_empty(expr, "operator"), label(key)) {
            ("In", Some(v)) => values.contains(&v),
            ("NotIn", Some(v)) => !values.contains(&v),
            ("NotIn", None) | ("DoesNotExist", None) | ("Exists", Some(_)) => true,
            _ => false,
        }
    });
    match_labels_ok && expressions_ok
}

/// Whether `labels` contain every pair of a plain map selector (ReplicationController, Service).
pub(crate) fn map_selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    selector
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Go's `%#v` of a `map[string]string`, as Kubernetes prints invalid label maps.
pub(crate) fn go_string_map(labels: Option<&Value>) -> String {
    let Some(map) = labels.and_then(Value::as_object) else {
        return "map[string]string(nil)".to_string();
    };
    let sorted: BTreeMap<&String, &str> = map
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    let body: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), Value::from(*v)))
        .collect();
    format!("map[string]string{{{}}}", body.join(", "))
}
