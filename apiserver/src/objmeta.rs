//! Pure rules for the generic parts of object metadata.
//!
//! These are the bits of Kubernetes' `ObjectMeta` handling that are the same for every kind:
//! what the server sets on create, what an update may not change, when `generation` moves, and
//! how `generateName` becomes a name. No I/O here, so each rule is unit-tested on its own.

use rand::Rng;
use serde_json::{Map, Value, json};

/// Alphabet Kubernetes uses for `generateName` suffixes (no vowels, no look-alikes).
const NAME_SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `metadata` of an object as a map, created if missing or not an object.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object ensured above");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("object ensured above")
}

/// A string field of `metadata`, if present.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's name, or "" when unset.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// The object's namespace, if set.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace").filter(|s| !s.is_empty())
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether deletion of the object has begun.
pub fn is_terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Resolves `generateName` into a name with Kubernetes' five-character random suffix.
pub fn generate_name(prefix: &str, rng: &mut impl Rng) -> String {
    // Kubernetes trims the prefix so that prefix + suffix stays a valid 63-character label.
    let max_prefix = 58;
    let prefix: String = prefix.chars().take(max_prefix).collect();
    let suffix: String = (0..5)
        .map(|_| NAME_SUFFIX_ALPHABET[rng.random_range(0..NAME_SUFFIX_ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Sets what the server owns on a new object: uid, creationTimestamp, generation; clears what a
/// client may not set on create (resourceVersion, deletion fields).
pub fn prepare_create(obj: &mut Value, uid: &str, now: &str, tracks_generation: bool) {
    let meta = meta_mut(obj);
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!(now));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
    if tracks_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
}

/// Carries the fields an update may not change from the stored object into the new one, and
/// bumps `generation` when anything outside metadata and status changed.
pub fn prepare_update(new: &mut Value, old: &Value, tracks_generation: bool) {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let spec_changed = spec_differs(new, old);
    let meta = meta_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "name",
        "namespace",
    ] {
        match old_meta.get(field) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    meta.remove("selfLink");
    if tracks_generation {
        let old_generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let generation = if spec_changed {
            old_generation + 1
        } else {
            old_generation
        };
        meta.insert("generation".into(), json!(generation));
    } else {
        meta.remove("generation");
    }
}

/// Whether anything but `metadata`, `status`, `apiVersion` and `kind` differs.
pub fn spec_differs(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            for k in ["metadata", "status", "apiVersion", "kind"] {
                m.remove(k);
            }
        }
        v
    };
    strip(new) != strip(old)
}

/// Keeps `old`'s status in `new`: a write to the main resource cannot change status.
pub fn keep_status(new: &mut Value, old: &Value) {
    if let Some(map) = new.as_object_mut() {
        match old.get("status") {
            Some(status) => {
                map.insert("status".into(), status.clone());
            }
            None => {
                map.remove("status");
            }
        }
    }
}

/// Builds the object a status write stores: `old` with only the status (and nothing else) of
/// `new`, so a status writer cannot change spec.
pub fn take_status(new: &Value, old: &Value) -> Value {
    let mut out = old.clone();
    if let Some(map) = out.as_object_mut() {
        match new.get("status") {
            Some(status) => {
                map.insert("status".into(), status.clone());
            }
            None => {
                map.remove("status");
            }
        }
    }
    out
}

/// Strips what is never stored: the resourceVersion lives in the store's revision.
pub fn for_storage(obj: &Value) -> Value {
    let mut obj = obj.clone();
    meta_mut(&mut obj).remove("resourceVersion");
    obj
}

/// Sets the resourceVersion read back from the store.
pub fn set_resource_version(obj: &mut Value, revision: i64) {
    meta_mut(obj).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// The object's resourceVersion as a revision, if set and numeric.
pub fn resource_version(obj: &Value) -> Option<Result<i64, String>> {
    let rv = meta_str(obj, "resourceVersion").filter(|s| !s.is_empty())?;
    Some(
        rv.parse::<i64>()
            .map_err(|_| format!("invalid resourceVersion {rv:?}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_prefix_and_add_five_safe_chars() {
        let mut rng = rand::rng();
        let n = generate_name("web-", &mut rng);
        assert!(n.starts_with("web-"));
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|b| NAME_SUFFIX_ALPHABET.contains(&b)));
        let long = "a".repeat(100);
        assert_eq!(generate_name(&long, &mut rng).len(), 63);
    }

    #[test]
    fn create_sets_server_fields_and_clears_client_ones() {
        let mut obj =
            json!({"metadata": {"name": "x", "resourceVersion": "5", "deletionTimestamp": "t"}});
        prepare_create(&mut obj, "u1", "2026-01-01T00:00:00Z", true);
        assert_eq!(obj["metadata"]["uid"], "u1");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert!(obj["metadata"].get("deletionTimestamp").is_none());
    }

    #[test]
    fn generation_moves_only_on_spec_changes() {
        let old = json!({"metadata": {"name": "x", "uid": "u", "generation": 3}, "spec": {"replicas": 1}, "status": {"a": 1}});
        let mut same = json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"a": 2}});
        prepare_update(&mut same, &old, true);
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["metadata"]["uid"], "u");
        let mut changed = json!({"metadata": {"name": "x"}, "spec": {"replicas": 2}});
        prepare_update(&mut changed, &old, true);
        assert_eq!(changed["metadata"]["generation"], 4);
    }

    #[test]
    fn status_and_spec_writes_ignore_each_other() {
        let old = json!({"spec": {"a": 1}, "status": {"b": 1}});
        let new = json!({"spec": {"a": 2}, "status": {"b": 2}});
        let mut main = new.clone();
        keep_status(&mut main, &old);
        assert_eq!(main, json!({"spec": {"a": 2}, "status": {"b": 1}}));
        assert_eq!(
            take_status(&new, &old),
            json!({"spec": {"a": 1}, "status": {"b": 2}})
        );
    }
}
