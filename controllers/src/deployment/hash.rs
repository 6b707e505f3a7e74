//! The `pod-template-hash`: names a Deployment's ReplicaSet after its pod template, and tells
//! which ReplicaSet runs the Deployment's current template.
//!
//! Kubernetes hashes the template with FNV-32a over a `spew` dump of the Go struct, appends
//! `collisionCount` (8 little-endian bytes) and renders the decimal digits of the hash through
//! `SafeEncodeString` (digits mapped onto consonants and digits that spell no words). A Go
//! struct dump cannot be reproduced from Rust, so **Skiff hashes a canonical JSON rendering of
//! the template instead** (keys sorted, nulls and empty maps/lists dropped, the hash label
//! removed) and keeps the rest of the recipe: FNV-32a, the collision count bytes, the same safe
//! alphabet. Names therefore have Kubernetes' shape (`web-7c5ddbdf54`-like, up to 10 chars) but
//! not its exact values; nothing outside a cluster compares them.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value};

/// The label (on ReplicaSets, their selectors and templates, and pods) carrying the hash.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Characters `SafeEncodeString` maps digits onto: no vowels, no confusable `0 1 3`.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The template as a canonical JSON value: keys sorted, `null`, `{}` and `[]` dropped (they mean
/// the same as an absent field, as Kubernetes' semantic equality treats nil and empty alike),
/// and the `pod-template-hash` label removed.
pub fn canonical_template(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    canonical(v).unwrap_or(Value::Null)
}

fn canonical(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map
                .into_iter()
                .filter_map(|(k, v)| canonical(v).map(|v| (k, v)))
                .collect();
            if entries.is_empty() {
                return None;
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Some(Value::Object(entries.into_iter().collect::<Map<_, _>>()))
        }
        Value::Array(items) => {
            // Elements keep their place (a list's order matters); an empty element stays as
            // `null` so positions do not shift.
            if items.is_empty() {
                return None;
            }
            Some(Value::Array(
                items
                    .into_iter()
                    .map(|i| canonical(i).unwrap_or(Value::Null))
                    .collect(),
            ))
        }
        other => Some(other),
    }
}

/// Whether two pod templates are the same apart from the `pod-template-hash` label
/// (Kubernetes' `EqualIgnoreHash`): how the Deployment finds its new ReplicaSet.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical_template(a) == canonical_template(b)
}

/// FNV-32a, the hash Kubernetes uses for the pod template.
fn fnv32a(bytes: impl IntoIterator<Item = u8>, mut h: u32) -> u32 {
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// Maps every byte onto the safe alphabet (Kubernetes' `rand.SafeEncodeString`).
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// The `pod-template-hash` of `template` with `collision_count` (the Deployment's
/// `status.collisionCount`): a short string of safe characters, stable for equal templates,
/// different after a collision bumps the count.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let text = canonical_template(template).to_string();
    let mut h = fnv32a(text.bytes(), FNV32_OFFSET);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(bytes, h);
    }
    safe_encode(&h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv32a(*b"", FNV32_OFFSET), 0x811c_9dc5);
        assert_eq!(fnv32a(*b"a", FNV32_OFFSET), 0xe40c_292c);
        assert_eq!(fnv32a(*b"foobar", FNV32_OFFSET), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_maps_digits_like_kubernetes() {
        // '0' is byte 48: 48 % 27 = 21 -> '4'; '6' is 54 % 27 = 0 -> 'b'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn hash_is_stable_ignores_its_own_label_and_empties_and_moves_with_collisions() {
        let a = template(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
        }));
        let same = template(json!({
            "metadata": {"labels": {"app": "web", "pod-template-hash": "xyz"}, "annotations": {}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1", "ports": []}]},
        }));
        let other = template(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:2"}]},
        }));
        let h = pod_template_hash(&a, None);
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
        assert_eq!(h, pod_template_hash(&same, None));
        assert!(equal_ignore_hash(&a, &same));
        assert!(!equal_ignore_hash(&a, &other));
        assert_ne!(h, pod_template_hash(&other, None));
        let c0 = pod_template_hash(&a, Some(0));
        let c1 = pod_template_hash(&a, Some(1));
        assert_ne!(c0, c1);
        assert_ne!(c1, h);
        assert_eq!(c1, pod_template_hash(&a, Some(1)));
    }
}
