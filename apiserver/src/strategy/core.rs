//! Core cluster and configuration objects: Namespace, ConfigMap, Secret, ServiceAccount,
//! Event, Node, LimitRange, ResourceQuota and the pods/binding body.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::fields::{
    at, check_immutable, child, index, invalid_str, is_cidr, is_unset, items, items_mut, key,
    object_at, object_mut, one_of, required, set_default, set_default_str, spec_of, str_at,
    string_or_empty, too_long,
};
use super::meta::{
    NameRule, label_value, plain_updates, qualified_name, update_with, validate_object_meta,
};
use super::pod::validate_quantity;
use crate::error::Cause;

const MAX_CONFIG_SIZE: usize = 1024 * 1024;
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

// ------------------------------------------------------------------------------ Namespace

/// Namespace defaults: the `kubernetes.io/metadata.name` label, the `kubernetes` finalizer (not
/// re-added once the namespace is terminating) and phase Active.
pub(crate) fn default_namespace(obj: &mut Value) {
    let name = at(obj, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let labels = object_mut(obj, "metadata").and_then(|m| object_mut(m, "labels"));
    if let Some(labels) = labels.filter(|_| !name.is_empty()) {
        labels["kubernetes.io/metadata.name"] = json!(name);
    }
    let terminating = !is_unset(at(obj, &["metadata", "deletionTimestamp"]))
        || at(obj, &["status", "phase"]).and_then(Value::as_str) == Some("Terminating");
    if let Some(spec) = object_mut(obj, "spec").filter(|_| !terminating) {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = object_mut(obj, "status") {
        set_default_str(status, "phase", "Active");
    }
}

/// Namespace validation: DNS-1123 label name, qualified finalizer names.
pub(crate) fn validate_namespace(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Label);
    for (i, f) in items(spec_of(obj), "finalizers").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        for msg in qualified_name(f) {
            errs.push(invalid_str(index("spec.finalizers", i), f, &msg));
        }
    }
    one_of(
        obj.get("status").unwrap_or(&Value::Null),
        "phase",
        "status",
        &["Active", "Terminating"],
        false,
        &mut errs,
    );
    errs
}

// -------------------------------------------------------------------- ConfigMap / Secret

/// apimachinery's `IsConfigMapKey`.
fn config_key(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    match key {
        "." => errs.push("must not be '.'".to_string()),
        ".." => errs.push("must not be '..'".to_string()),
        k if k.starts_with("..") => errs.push("must not start with '..'".to_string()),
        _ => {}
    }
    errs
}

/// Keys of `data` (and `binaryData`) and the 1 MiB size limit shared by ConfigMaps and Secrets.
fn validate_data_keys(obj: &Value, maps: &[&str], errs: &mut Vec<Cause>) {
    let mut seen = HashSet::new();
    let mut total = 0;
    for map in maps {
        for (k, v) in object_at(obj, map).into_iter().flatten() {
            for msg in config_key(k) {
                errs.push(invalid_str(key(map, k), k, &msg));
            }
            if !seen.insert(k.as_str()) {
                errs.push(invalid_str(
                    key(map, k),
                    k,
                    "duplicate of key present in data",
                ));
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_CONFIG_SIZE {
        errs.push(too_long("", MAX_CONFIG_SIZE));
    }
}

/// ConfigMap validation: key format, duplicates across `data`/`binaryData`, 1 MiB.
pub(crate) fn validate_config_map(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    validate_data_keys(obj, &["data", "binaryData"], &mut errs);
    errs
}

/// An object with `immutable: true` may not change its data nor become mutable again.
fn validate_immutable_data(new: &Value, old: &Value, fields: &[&str], errs: &mut Vec<Cause>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable") != old.get("immutable") {
        errs.push(Cause::forbidden("immutable", IMMUTABLE_SET));
    }
    for field in fields {
        let both_unset = is_unset(new.get(*field)) && is_unset(old.get(*field));
        if !both_unset && new.get(*field) != old.get(*field) {
            errs.push(Cause::forbidden(*field, IMMUTABLE_SET));
        }
    }
}

/// ConfigMap update: honours `immutable: true`.
pub(crate) fn validate_config_map_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_config_map);
    validate_immutable_data(new, old, &["data", "binaryData"], &mut errs);
    errs
}

/// Secret defaults: type Opaque, and `stringData` folded into `data` (base64-encoded), as
/// Kubernetes' conversion does: `stringData` is write-only, wins over `data` for the same key,
/// and is never stored or returned.
pub(crate) fn default_secret(obj: &mut Value) {
    use base64::Engine as _;
    set_default_str(obj, "type", "Opaque");
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if !data.is_object() {
        *data = Value::Object(Default::default());
    }
    if let Some(data) = data.as_object_mut() {
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key, Value::String(encoded));
        }
    }
}

/// Secret validation: ConfigMap key rules plus the keys each built-in type requires.
pub(crate) fn validate_secret(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    validate_data_keys(obj, &["data"], &mut errs);
    let has = |k: &str| object_at(obj, "data").is_some_and(|d| d.contains_key(k));
    let required_keys: &[&str] = match string_or_empty(obj, "type") {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/service-account-token" => {
            let sa = at(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "kubernetes.io/service-account.name",
                ],
            );
            if is_unset(sa) {
                errs.push(Cause::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                ));
            }
            &[]
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required("data[username]", ""));
            errs.push(required("data[password]", ""));
            &[]
        }
        _ => &[],
    };
    for k in required_keys {
        if !has(k) {
            errs.push(Cause::required(key("data", k)));
        }
    }
    errs
}

/// Secret update: honours `immutable: true`; the type never changes.
pub(crate) fn validate_secret_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_secret);
    validate_immutable_data(new, old, &["data"], &mut errs);
    check_immutable(new, old, &["type"], "type", &mut errs);
    errs
}

// ------------------------------------------------------------------------------ Node

/// Node defaults: allocatable defaults to capacity; `spec.podCIDR` and `spec.podCIDRs` agree
/// (Kubernetes keeps only the list internally: the list wins, a lone `podCIDR` becomes a
/// one-item list, and `podCIDR` is always the list's first item).
pub(crate) fn default_node(obj: &mut Value) {
    let capacity = at(obj, &["status", "capacity"]).cloned();
    if let (Some(status), Some(capacity)) = (obj.get_mut("status"), capacity) {
        set_default(status, "allocatable", capacity);
    }
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let first = items(spec, "podCIDRs").first().cloned();
    match (first, str_at(spec, "podCIDR").filter(|c| !c.is_empty())) {
        (Some(first), _) => spec["podCIDR"] = first,
        (None, Some(single)) => spec["podCIDRs"] = json!([single]),
        (None, None) => {}
    }
}

/// Node validation: name, taints, pod CIDRs.
pub(crate) fn validate_node(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    let mut seen = HashSet::new();
    for (i, taint) in items(spec, "taints").iter().enumerate() {
        let p = index("spec.taints", i);
        let k = string_or_empty(taint, "key");
        if k.is_empty() {
            errs.push(Cause::required(child(&p, "key")));
        }
        for msg in qualified_name(k).into_iter().filter(|_| !k.is_empty()) {
            errs.push(invalid_str(child(&p, "key"), k, &msg));
        }
        let v = string_or_empty(taint, "value");
        for msg in label_value(v) {
            errs.push(invalid_str(child(&p, "value"), v, &msg));
        }
        one_of(
            taint,
            "effect",
            &p,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            true,
            &mut errs,
        );
        if !seen.insert((k, string_or_empty(taint, "effect"))) {
            errs.push(Cause::duplicate(&p, taint));
        }
    }
    let cidrs = str_at(spec, "podCIDR")
        .into_iter()
        .chain(items(spec, "podCIDRs").iter().filter_map(Value::as_str));
    for cidr in cidrs {
        if !is_cidr(cidr) {
            errs.push(invalid_str(
                "spec.podCIDRs",
                cidr,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    errs
}

/// Node update validation: [`validate_node`], immutable name, and pod CIDRs that may only be
/// set once (the node IPAM controller assigns them to a node that has none; moving a node's
/// pods to another range would break every running pod), as Kubernetes rules.
pub(crate) fn validate_node_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_node);
    let (old_cidrs, new_cidrs) = (
        items(spec_of(old), "podCIDRs"),
        items(spec_of(new), "podCIDRs"),
    );
    if !old_cidrs.is_empty() && old_cidrs != new_cidrs {
        errs.push(Cause::forbidden(
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    errs
}

// ------------------------------------------------------------------------------ Event

/// Event validation: an involved object's namespace must be the event's.
pub(crate) fn validate_event(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let ns = at(obj, &["metadata", "namespace"])
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved = at(obj, &["involvedObject", "namespace"]).and_then(Value::as_str);
    if let Some(involved) = involved.filter(|i| !i.is_empty() && *i != ns) {
        errs.push(invalid_str(
            "involvedObject.namespace",
            involved,
            "does not match event.namespace",
        ));
    }
    errs
}

/// ServiceAccount validation: metadata rules.
pub(crate) fn validate_service_account(obj: &Value) -> Vec<Cause> {
    validate_object_meta(obj, NameRule::Subdomain)
}

// ------------------------------------------------------------------------------ quotas

/// LimitRange defaults for `Container` items: `default` from `max`, `defaultRequest` from
/// `default`, then from `min`.
pub(crate) fn default_limit_range(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    for item in items_mut(spec, "limits") {
        if str_at(item, "type") != Some("Container") {
            continue;
        }
        for (from, to) in [
            ("max", "default"),
            ("default", "defaultRequest"),
            ("min", "defaultRequest"),
        ] {
            let Some(source) = object_at(item, from).cloned() else {
                continue;
            };
            if let Some(target) = object_mut(item, to) {
                for (name, q) in source {
                    set_default(target, &name, q);
                }
            }
        }
    }
}

/// LimitRange validation: item types, quantities, `min ≤ max`.
pub(crate) fn validate_limit_range(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    for (i, item) in items(spec_of(obj), "limits").iter().enumerate() {
        let p = index("spec.limits", i);
        one_of(
            item,
            "type",
            &p,
            &["Pod", "Container", "PersistentVolumeClaim"],
            true,
            &mut errs,
        );
        let mut values = std::collections::HashMap::new();
        for field in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            for (name, q) in object_at(item, field).into_iter().flatten() {
                if let Some(v) = validate_quantity(q, &key(&child(&p, field), name), &mut errs) {
                    values.insert((field, name.as_str()), (v, q));
                }
            }
        }
        if str_at(item, "type") == Some("Pod") {
            for field in ["default", "defaultRequest"] {
                if !is_unset(item.get(field)) {
                    errs.push(Cause::forbidden(
                        child(&p, field),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        for ((field, name), (min, q)) in &values {
            if *field != "min" {
                continue;
            }
            if let Some((max, max_q)) = values.get(&("max", name)).filter(|(max, _)| min > max) {
                let _ = max;
                errs.push(Cause::invalid(
                    key(&child(&p, "min"), name),
                    q,
                    &format!(
                        "min value {} is greater than max value {}",
                        q.as_str().unwrap_or(""),
                        max_q.as_str().unwrap_or("")
                    ),
                ));
            }
        }
    }
    errs
}

/// ResourceQuota validation: hard quantities, scopes.
pub(crate) fn validate_resource_quota(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    for (name, q) in object_at(spec, "hard").into_iter().flatten() {
        validate_quantity(q, &key("spec.hard", name), &mut errs);
    }
    let scopes = [
        "Terminating",
        "NotTerminating",
        "BestEffort",
        "NotBestEffort",
        "PriorityClass",
        "CrossNamespacePodAffinity",
        "VolumeAttributesClass",
    ];
    for s in items(spec, "scopes") {
        if !s.as_str().is_some_and(|s| scopes.contains(&s)) {
            errs.push(Cause::not_supported("spec.scopes", s, &scopes));
        }
    }
    errs
}

// ------------------------------------------------------------------------------ Binding

/// Binding (pods/binding body) validation: a node target.
pub(crate) fn validate_binding(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let target = obj.get("target").unwrap_or(&Value::Null);
    if is_unset(target.get("name")) {
        errs.push(Cause::required("target.name"));
    }
    match str_at(target, "kind") {
        None | Some("") | Some("Node") => {}
        Some(kind) => errs.push(Cause::not_supported(
            "target.kind",
            &json!(kind),
            &["Node", "<empty>"],
        )),
    }
    errs
}

plain_updates!(
    validate_namespace_update => validate_namespace,
    validate_event_update => validate_event,
    validate_service_account_update => validate_service_account,
    validate_limit_range_update => validate_limit_range,
    validate_resource_quota_update => validate_resource_quota,
    validate_binding_update => validate_binding,
);
