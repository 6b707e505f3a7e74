//! PersistentVolumes and PersistentVolumeClaims (claim rules are shared with StatefulSet
//! claim templates).

use serde_json::{Value, json};

use super::fields::{
    at, child, is_unset, items, key, object_at, object_mut, one_of, required, set_default_str,
    spec_of,
};
use super::meta::{NameRule, update_with, validate_label_selector, validate_object_meta};
use super::pod::validate_quantity;
use crate::error::Cause;

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
    let spec = spec_of(obj);
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
    if pv_sources(spec_of(new)) != pv_sources(spec_of(old)) {
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
    let (new_spec, old_spec) = (spec_of(new), spec_of(old));
    if strip(new_spec, old_spec) != strip(old_spec, old_spec) {
        errs.push(Cause::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    errs
}
