//! The remaining kinds: cluster and configuration objects (Namespace, Node, ConfigMap, Secret,
//! storage, quotas, RBAC, networking, autoscaling, policy, coordination, events, subresource
//! bodies). Each gets its Kubernetes defaults and the rules real manifests trip over.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::fields::{
    at, check_immutable, child, index, int_at, int_or_percent, invalid_str, is_unset, items,
    items_mut, key, nonnegative, object_at, object_mut, one_of, positive, required, set_default,
    set_default_str, str_at, string_or_empty, too_long,
};
use super::meta::{
    NameRule, dns1123_subdomain, label_value, path_segment_name, plain_updates, qualified_name,
    update_with, validate_label_selector, validate_object_meta,
};
use super::pod::{validate_port_num_or_name, validate_quantity};
use crate::error::Cause;

const MAX_CONFIG_SIZE: usize = 1024 * 1024;
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

fn spec_or_null(obj: &Value) -> &Value {
    static NULL: Value = Value::Null;
    obj.get("spec").unwrap_or(&NULL)
}

// ------------------------------------------------------------------------------ generic

/// Kinds without a strategy: metadata rules only.
pub(crate) fn validate_generic(obj: &Value) -> Vec<Cause> {
    validate_object_meta(obj, NameRule::Subdomain)
}

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
    for (i, f) in items(spec_or_null(obj), "finalizers").iter().enumerate() {
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

/// Secret defaults: type Opaque.
pub(crate) fn default_secret(obj: &mut Value) {
    set_default_str(obj, "type", "Opaque");
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

/// Node defaults: allocatable defaults to capacity.
pub(crate) fn default_node(obj: &mut Value) {
    let capacity = at(obj, &["status", "capacity"]).cloned();
    if let (Some(status), Some(capacity)) = (obj.get_mut("status"), capacity) {
        set_default(status, "allocatable", capacity);
    }
}

/// Node validation: name, taints, pod CIDRs.
pub(crate) fn validate_node(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_or_null(obj);
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

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    match (ip.parse::<std::net::IpAddr>(), prefix.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(p)) => p <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(p)) => p <= 128,
        _ => false,
    }
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

// ------------------------------------------------------------------------------ storage

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn validate_access_modes(spec: &Value, path: &str, errs: &mut Vec<Cause>) {
    let modes_path = child(path, "accessModes");
    let modes = items(spec, "accessModes");
    if modes.is_empty() {
        errs.push(required(&modes_path, "at least 1 access mode is required"));
    }
    for m in modes {
        if !m.as_str().is_some_and(|m| ACCESS_MODES.contains(&m)) {
            errs.push(Cause::not_supported(&modes_path, m, ACCESS_MODES));
        }
    }
}

/// PersistentVolume defaults: Retain, Filesystem, phase Pending.
pub(crate) fn default_persistent_volume(obj: &mut Value) {
    if let Some(spec) = object_mut(obj, "spec") {
        set_default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        set_default_str(spec, "volumeMode", "Filesystem");
    }
    if let Some(status) = object_mut(obj, "status") {
        set_default_str(status, "phase", "Pending");
    }
}

/// The `PersistentVolumeSpec` fields that are not a volume source.
const PV_NON_SOURCE: &[&str] = &[
    "accessModes",
    "capacity",
    "claimRef",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "mountOptions",
    "volumeMode",
    "nodeAffinity",
    "volumeAttributesClassName",
];

fn pv_sources(spec: &Value) -> Vec<(&String, &Value)> {
    spec.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| !PV_NON_SOURCE.contains(&k.as_str()) && !v.is_null())
        .collect()
}

/// PersistentVolume validation: access modes, a storage capacity, exactly one volume source.
pub(crate) fn validate_persistent_volume(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_or_null(obj);
    validate_access_modes(spec, "spec", &mut errs);
    match object_at(spec, "capacity") {
        Some(cap) if cap.contains_key("storage") => {
            for (name, q) in cap {
                if name != "storage" {
                    errs.push(Cause::not_supported(
                        "spec.capacity",
                        &json!(name),
                        &["storage"],
                    ));
                }
                validate_quantity(q, &key("spec.capacity", name), &mut errs);
            }
        }
        _ => errs.push(Cause::required("spec.capacity")),
    }
    match pv_sources(spec).len() {
        0 => errs.push(required("spec", "must specify a volume type")),
        1 => {}
        _ => errs.push(Cause::forbidden(
            "spec",
            "may not specify more than 1 volume type",
        )),
    }
    one_of(
        spec,
        "persistentVolumeReclaimPolicy",
        "spec",
        &["Delete", "Recycle", "Retain"],
        false,
        &mut errs,
    );
    one_of(
        spec,
        "volumeMode",
        "spec",
        &["Block", "Filesystem"],
        false,
        &mut errs,
    );
    errs
}

/// PersistentVolume update: the volume source is immutable.
pub(crate) fn validate_persistent_volume_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_persistent_volume);
    if pv_sources(spec_or_null(new)) != pv_sources(spec_or_null(old)) {
        errs.push(Cause::forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    errs
}

/// PersistentVolumeClaim defaults (also applied to StatefulSet claim templates).
pub(crate) fn default_persistent_volume_claim(obj: &mut Value) {
    if let Some(spec) = object_mut(obj, "spec") {
        set_default_str(spec, "volumeMode", "Filesystem");
    }
    if let Some(status) = object_mut(obj, "status") {
        set_default_str(status, "phase", "Pending");
    }
}

/// `PersistentVolumeClaimSpec` rules at `path`.
pub(crate) fn validate_pvc_spec(spec: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut errs = Vec::new();
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        return vec![Cause::required(path)];
    };
    validate_access_modes(spec, path, &mut errs);
    errs.extend(validate_label_selector(
        spec.get("selector"),
        &child(path, "selector"),
    ));
    let storage_path = key(&child(path, "resources"), "storage");
    match at(spec, &["resources", "requests", "storage"]) {
        None => errs.push(Cause::required(&storage_path)),
        Some(q) => {
            let p = key(&child(path, "resources.requests"), "storage");
            if validate_quantity(q, &p, &mut errs) == Some(0.0) {
                errs.push(Cause::invalid(&p, q, "must be greater than zero"));
            }
        }
    }
    one_of(
        spec,
        "volumeMode",
        path,
        &["Block", "Filesystem"],
        false,
        &mut errs,
    );
    errs
}

/// PersistentVolumeClaim validation.
pub(crate) fn validate_persistent_volume_claim(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    errs.extend(validate_pvc_spec(obj.get("spec"), "spec"));
    errs
}

/// PersistentVolumeClaim update: the spec is immutable except the storage request, the volume
/// attributes class, and binding (`volumeName`/`storageClassName` may be set once).
pub(crate) fn validate_persistent_volume_claim_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_persistent_volume_claim);
    let strip = |spec: &Value, other: &Value| {
        let mut spec = spec.clone();
        if let Some(map) = spec.as_object_mut() {
            map.remove("volumeAttributesClassName");
            if let Some(r) = map.get_mut("resources").and_then(Value::as_object_mut) {
                r.remove("requests");
            }
            for once in ["volumeName", "storageClassName"] {
                if is_unset(other.get(once)) {
                    map.remove(once);
                }
            }
        }
        spec
    };
    let (new_spec, old_spec) = (spec_or_null(new), spec_or_null(old));
    if strip(new_spec, old_spec) != strip(old_spec, old_spec) {
        errs.push(Cause::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    errs
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
    for (i, item) in items(spec_or_null(obj), "limits").iter().enumerate() {
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
    let spec = spec_or_null(obj);
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

// ------------------------------------------------------------------------------ Binding, Scale, Eviction

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

/// Scale (scale subresource body) validation: non-negative replicas.
pub(crate) fn validate_scale(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    nonnegative(spec_or_null(obj), "replicas", "spec", &mut errs);
    errs
}

/// Eviction (pods/eviction body) validation: metadata only; the pod is named by the URL.
pub(crate) fn validate_eviction(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    if let Some(opts) = obj.get("deleteOptions") {
        nonnegative(opts, "gracePeriodSeconds", "deleteOptions", &mut errs);
    }
    errs
}

// ------------------------------------------------------------------------------ Lease

/// Lease validation: positive duration, non-negative transitions.
pub(crate) fn validate_lease(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_or_null(obj);
    positive(spec, "leaseDurationSeconds", "spec", &mut errs);
    nonnegative(spec, "leaseTransitions", "spec", &mut errs);
    errs
}

// ------------------------------------------------------------------------------ networking

/// NetworkPolicy defaults: TCP ports, and policy types from the rules present.
pub(crate) fn default_network_policy(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    for list in ["ingress", "egress"] {
        for rule in items_mut(spec, list) {
            for port in items_mut(rule, "ports") {
                set_default_str(port, "protocol", "TCP");
            }
        }
    }
    if is_unset(spec.get("policyTypes")) {
        let mut types = vec![json!("Ingress")];
        if !items(spec, "egress").is_empty() {
            types.push(json!("Egress"));
        }
        spec["policyTypes"] = Value::Array(types);
    }
}

/// NetworkPolicy validation: selectors, peers, ports, policy types.
pub(crate) fn validate_network_policy(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_or_null(obj);
    errs.extend(validate_label_selector(
        spec.get("podSelector"),
        "spec.podSelector",
    ));
    for (list, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(spec, list).iter().enumerate() {
            let rp = index(&child("spec", list), i);
            for (j, port) in items(rule, "ports").iter().enumerate() {
                let pp = index(&child(&rp, "ports"), j);
                one_of(
                    port,
                    "protocol",
                    &pp,
                    &["TCP", "UDP", "SCTP"],
                    false,
                    &mut errs,
                );
                if let Some(p) = port.get("port").filter(|p| !p.is_null()) {
                    validate_port_num_or_name(Some(p), &child(&pp, "port"), &mut errs);
                }
                if let Some(end) = int_at(port, "endPort") {
                    match port.get("port").and_then(Value::as_i64) {
                        Some(start) if end >= start => {}
                        Some(_) => errs.push(Cause::invalid(
                            child(&pp, "endPort"),
                            &json!(end),
                            "must be greater than or equal to `port`",
                        )),
                        None => errs.push(Cause::required(child(&pp, "port"))),
                    }
                }
            }
            for (j, peer) in items(rule, peers).iter().enumerate() {
                let pp = index(&child(&rp, peers), j);
                for sel in ["podSelector", "namespaceSelector"] {
                    errs.extend(validate_label_selector(peer.get(sel), &child(&pp, sel)));
                }
                if let Some(cidr) = at(peer, &["ipBlock", "cidr"])
                    .and_then(Value::as_str)
                    .filter(|c| !is_cidr(c))
                {
                    errs.push(invalid_str(
                        child(&pp, "ipBlock.cidr"),
                        cidr,
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    ));
                }
            }
        }
    }
    let types = items(spec, "policyTypes");
    for t in types {
        if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
            errs.push(Cause::not_supported(
                "spec.policyTypes",
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
    if types.len() > 2 {
        errs.push(Cause::invalid(
            "spec.policyTypes",
            &json!(types),
            "may not specify more than two policyTypes",
        ));
    }
    errs
}

/// An Ingress backend: a service (name + port name or number) or a resource, not both.
fn validate_ingress_backend(backend: &Value, path: &str, errs: &mut Vec<Cause>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => errs.push(invalid_str(
            path,
            "",
            "cannot set both service and resource backends",
        )),
        (None, None) => errs.push(invalid_str(
            path,
            "",
            "one backend (`service` or `resource`) must be specified",
        )),
        (Some(svc), None) => {
            let sp = child(path, "service");
            if is_unset(svc.get("name")) {
                errs.push(Cause::required(child(&sp, "name")));
            }
            let port = svc.get("port").unwrap_or(&Value::Null);
            match (
                is_unset(port.get("name")),
                int_at(port, "number").unwrap_or(0),
            ) {
                (true, 0) => errs.push(required(
                    child(&sp, "port"),
                    "port name or number is required",
                )),
                (false, n) if n != 0 => errs.push(invalid_str(
                    child(&sp, "port"),
                    "",
                    "cannot set both port name & port number",
                )),
                (true, n) => super::pod::port_number(n, &child(&sp, "port.number"), errs),
                (false, _) => {}
            }
        }
        (None, Some(_)) => {}
    }
}

/// Ingress validation: hosts, paths (with required `pathType`), backends.
pub(crate) fn validate_ingress(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_or_null(obj);
    if let Some(backend) = spec.get("defaultBackend").filter(|b| !b.is_null()) {
        validate_ingress_backend(backend, "spec.defaultBackend", &mut errs);
    }
    for (i, rule) in items(spec, "rules").iter().enumerate() {
        let rp = index("spec.rules", i);
        if let Some(host) = str_at(rule, "host").filter(|h| !h.is_empty()) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            for msg in dns1123_subdomain(bare) {
                errs.push(invalid_str(child(&rp, "host"), host, &msg));
            }
            if super::fields::is_ip(host) {
                errs.push(invalid_str(
                    child(&rp, "host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let paths_path = child(&rp, "http.paths");
        let paths = items(http, "paths");
        if paths.is_empty() {
            errs.push(Cause::required(&paths_path));
        }
        for (j, p) in paths.iter().enumerate() {
            let pp = index(&paths_path, j);
            let path = string_or_empty(p, "path");
            match str_at(p, "pathType") {
                None | Some("") => errs.push(required(
                    child(&pp, "pathType"),
                    "pathType must be specified",
                )),
                Some("Exact" | "Prefix") if !path.starts_with('/') => {
                    errs.push(invalid_str(
                        child(&pp, "path"),
                        path,
                        "must be an absolute path",
                    ));
                }
                Some("Exact" | "Prefix" | "ImplementationSpecific") => {}
                Some(other) => errs.push(Cause::not_supported(
                    child(&pp, "pathType"),
                    &json!(other),
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            validate_ingress_backend(
                p.get("backend").unwrap_or(&Value::Null),
                &child(&pp, "backend"),
                &mut errs,
            );
        }
    }
    errs
}

// ------------------------------------------------------------------------------ RBAC

fn validate_policy_rules(obj: &Value, namespaced: bool) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::PathSegment);
    for (i, rule) in items(obj, "rules").iter().enumerate() {
        let p = index("rules", i);
        if items(rule, "verbs").is_empty() {
            errs.push(required(
                child(&p, "verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = items(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let up = child(&p, "nonResourceURLs");
            if namespaced {
                errs.push(Cause::invalid(
                    &up,
                    &json!(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !items(rule, "apiGroups").is_empty() || !items(rule, "resources").is_empty() {
                errs.push(Cause::invalid(
                    &up,
                    &json!(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if items(rule, "apiGroups").is_empty() {
            errs.push(required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if items(rule, "resources").is_empty() {
            errs.push(required(
                child(&p, "resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

/// Role validation: path-segment name, resource rules only.
pub(crate) fn validate_role(obj: &Value) -> Vec<Cause> {
    validate_policy_rules(obj, true)
}

/// ClusterRole validation: path-segment name, rules, aggregation selectors.
pub(crate) fn validate_cluster_role(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_policy_rules(obj, false);
    for (i, sel) in items(
        obj.get("aggregationRule").unwrap_or(&Value::Null),
        "clusterRoleSelectors",
    )
    .iter()
    .enumerate()
    {
        errs.extend(validate_label_selector(
            Some(sel),
            &index("aggregationRule.clusterRoleSelectors", i),
        ));
    }
    errs
}

/// RoleBinding/ClusterRoleBinding defaults: subjects' apiGroup by kind.
pub(crate) fn default_role_binding(obj: &mut Value) {
    for subject in items_mut(obj, "subjects") {
        let group = match str_at(subject, "kind") {
            Some("ServiceAccount") => "",
            Some("User" | "Group") => RBAC_GROUP,
            _ => continue,
        };
        set_default(subject, "apiGroup", json!(group));
    }
}

fn validate_binding_common(
    obj: &Value,
    role_kinds: &[&str],
    namespace_required: bool,
) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::PathSegment);
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    if str_at(role_ref, "apiGroup") != Some(RBAC_GROUP) {
        errs.push(Cause::not_supported(
            "roleRef.apiGroup",
            role_ref.get("apiGroup").unwrap_or(&json!("")),
            &[RBAC_GROUP],
        ));
    }
    one_of(role_ref, "kind", "roleRef", role_kinds, true, &mut errs);
    let role_name = string_or_empty(role_ref, "name");
    if role_name.is_empty() {
        errs.push(Cause::required("roleRef.name"));
    }
    for msg in path_segment_name(role_name) {
        errs.push(invalid_str("roleRef.name", role_name, &msg));
    }
    for (i, s) in items(obj, "subjects").iter().enumerate() {
        let p = index("subjects", i);
        let name = string_or_empty(s, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        }
        let group = s.get("apiGroup").cloned().unwrap_or(json!(""));
        match str_at(s, "kind") {
            Some("ServiceAccount") => {
                if group != json!("") {
                    errs.push(Cause::not_supported(child(&p, "apiGroup"), &group, &[""]));
                }
                for msg in dns1123_subdomain(name)
                    .into_iter()
                    .filter(|_| !name.is_empty())
                {
                    errs.push(invalid_str(child(&p, "name"), name, &msg));
                }
                if namespace_required && is_unset(s.get("namespace")) {
                    errs.push(Cause::required(child(&p, "namespace")));
                }
            }
            Some("User" | "Group") => {
                if group != json!(RBAC_GROUP) {
                    errs.push(Cause::not_supported(
                        child(&p, "apiGroup"),
                        &group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            _ => one_of(
                s,
                "kind",
                &p,
                &["ServiceAccount", "User", "Group"],
                true,
                &mut errs,
            ),
        }
    }
    errs
}

/// RoleBinding validation: role reference (Role or ClusterRole) and subjects.
pub(crate) fn validate_role_binding(obj: &Value) -> Vec<Cause> {
    validate_binding_common(obj, &["Role", "ClusterRole"], false)
}

/// ClusterRoleBinding validation: ClusterRole reference, namespaced service-account subjects.
pub(crate) fn validate_cluster_role_binding(obj: &Value) -> Vec<Cause> {
    validate_binding_common(obj, &["ClusterRole"], true)
}

fn role_ref_unchanged(new: &Value, old: &Value, errs: &mut Vec<Cause>) {
    if new.get("roleRef") != old.get("roleRef") {
        errs.push(Cause::invalid(
            "roleRef",
            new.get("roleRef").unwrap_or(&Value::Null),
            "cannot change roleRef",
        ));
    }
}

/// RoleBinding update: the role reference is immutable.
pub(crate) fn validate_role_binding_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_role_binding);
    role_ref_unchanged(new, old, &mut errs);
    errs
}

/// ClusterRoleBinding update: the role reference is immutable.
pub(crate) fn validate_cluster_role_binding_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_cluster_role_binding);
    role_ref_unchanged(new, old, &mut errs);
    errs
}

// ------------------------------------------------------------------------------ autoscaling

/// `autoscaling/v2` HPA defaults: 1 min replica, 80% CPU when no metric is given, and the
/// default scaling rules filled into a given `behavior`.
pub(crate) fn default_hpa(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if is_unset(spec.get("metrics")) {
        spec["metrics"] = json!([{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
        }]);
    }
    let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) else {
        return;
    };
    if let Some(up) = object_mut(behavior, "scaleUp") {
        set_default(up, "stabilizationWindowSeconds", json!(0));
        set_default_str(up, "selectPolicy", "Max");
        set_default(
            up,
            "policies",
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
    if let Some(down) = object_mut(behavior, "scaleDown") {
        set_default_str(down, "selectPolicy", "Max");
        set_default(
            down,
            "policies",
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

/// HPA validation: target reference, replica bounds, metric sources.
pub(crate) fn validate_hpa(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_or_null(obj);
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    for field in ["kind", "name"] {
        if is_unset(target.get(field)) {
            errs.push(Cause::required(child("spec.scaleTargetRef", field)));
        }
    }
    let min = int_at(spec, "minReplicas");
    if let Some(min) = min.filter(|m| *m < 1) {
        errs.push(Cause::invalid(
            "spec.minReplicas",
            &json!(min),
            "must be greater than or equal to 1",
        ));
    }
    let max = int_at(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let sources = [
        ("Object", "object"),
        ("Pods", "pods"),
        ("Resource", "resource"),
        ("ContainerResource", "containerResource"),
        ("External", "external"),
    ];
    for (i, metric) in items(spec, "metrics").iter().enumerate() {
        let p = index("spec.metrics", i);
        let kinds: Vec<&str> = sources.iter().map(|(k, _)| *k).collect();
        one_of(metric, "type", &p, &kinds, true, &mut errs);
        let source = sources
            .iter()
            .find(|(k, _)| str_at(metric, "type") == Some(k));
        if let Some((_, field)) = source.filter(|(_, f)| is_unset(metric.get(*f))) {
            errs.push(required(
                child(&p, field),
                "must populate information for the given metric source",
            ));
        }
        for (_, field) in sources {
            if let Some(t) = metric.get(field).and_then(|m| m.get("target")) {
                one_of(
                    t,
                    "type",
                    &child(&child(&p, field), "target"),
                    &["Utilization", "Value", "AverageValue"],
                    true,
                    &mut errs,
                );
            }
        }
    }
    errs
}

// ------------------------------------------------------------------------------ policy

/// PodDisruptionBudget validation: `minAvailable` xor `maxUnavailable`, selector, policy.
pub(crate) fn validate_pdb(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_or_null(obj);
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        errs.push(Cause::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    int_or_percent(min, "spec.minAvailable", true, &mut errs);
    int_or_percent(max, "spec.maxUnavailable", true, &mut errs);
    errs.extend(validate_label_selector(
        spec.get("selector"),
        "spec.selector",
    ));
    one_of(
        spec,
        "unhealthyPodEvictionPolicy",
        "spec",
        &["IfHealthyBudget", "AlwaysAllow"],
        false,
        &mut errs,
    );
    errs
}

plain_updates!(
    validate_generic_update => validate_generic,
    validate_namespace_update => validate_namespace,
    validate_event_update => validate_event,
    validate_service_account_update => validate_service_account,
    validate_node_update => validate_node,
    validate_limit_range_update => validate_limit_range,
    validate_resource_quota_update => validate_resource_quota,
    validate_binding_update => validate_binding,
    validate_scale_update => validate_scale,
    validate_eviction_update => validate_eviction,
    validate_lease_update => validate_lease,
    validate_network_policy_update => validate_network_policy,
    validate_ingress_update => validate_ingress,
    validate_role_update => validate_role,
    validate_cluster_role_update => validate_cluster_role,
    validate_hpa_update => validate_hpa,
    validate_pdb_update => validate_pdb,
);
