//! kubectl's client-side three-way strategic merge patch, for the fields skiffctl knows how
//! to merge.
//!
//! The patch is the union of two diffs, as in `CreateThreeWayMergePatch`: what changed or was
//! added from the live object to the new manifest (never deleting what the server or another
//! client added), and what was deleted from the last-applied configuration to the new manifest
//! (`null` for a removed field, `$patch: delete` for a removed list item). Lists merged by key
//! also carry `$setElementOrder/<field>` with the keys in the manifest's order.

use serde_json::{Map, Value, json};

/// The `patchMergeKey` of a list field, for the built-in types skiffctl handles (from the Go
/// struct tags of `k8s.io/api`). `None` means the list is replaced as a whole.
fn merge_key(field: &str, items: &[&Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "topologySpreadConstraints" => "topologyKey",
        // Container ports merge on containerPort, Service ports on port.
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

fn keyed_maps(list: &[Value]) -> bool {
    list.iter().all(Value::is_object)
}

/// What one diff includes.
#[derive(Clone, Copy)]
struct Opts {
    deletions: bool,
    changes: bool,
}

/// The three-way patch from the last-applied config (`original`), the new manifest
/// (`modified`) and the live object (`current`). An empty object means nothing to do.
pub fn three_way(original: &Value, modified: &Value, current: &Value) -> Value {
    let delta = diff_maps(
        obj(current),
        obj(modified),
        Opts {
            deletions: false,
            changes: true,
        },
    );
    let deletions = diff_maps(
        obj(original),
        obj(modified),
        Opts {
            deletions: true,
            changes: false,
        },
    );
    Value::Object(merge(deletions, delta))
}

fn obj(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    v.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

fn diff_maps(orig: &Map<String, Value>, modi: &Map<String, Value>, o: Opts) -> Map<String, Value> {
    let mut patch = Map::new();
    if o.deletions {
        for k in orig.keys() {
            if !modi.contains_key(k) {
                patch.insert(k.clone(), Value::Null);
            }
        }
    }
    for (k, mv) in modi {
        let Some(ov) = orig.get(k) else {
            if o.changes {
                patch.insert(k.clone(), mv.clone());
            }
            continue;
        };
        match (ov, mv) {
            (Value::Object(om), Value::Object(mm)) => {
                let sub = diff_maps(om, mm, o);
                if !sub.is_empty() {
                    patch.insert(k.clone(), Value::Object(sub));
                }
            }
            (Value::Array(ol), Value::Array(ml)) => {
                let refs: Vec<&Value> = ol.iter().chain(ml.iter()).collect();
                match merge_key(k, &refs).filter(|_| keyed_maps(ol) && keyed_maps(ml)) {
                    Some(key) => {
                        let list = diff_lists(ol, ml, key, o);
                        if !list.is_empty() {
                            patch.insert(k.clone(), Value::Array(list));
                            let order: Vec<Value> =
                                ml.iter().map(|i| json!({ key: i[key].clone() })).collect();
                            patch.insert(format!("$setElementOrder/{k}"), Value::Array(order));
                        }
                    }
                    None => {
                        if o.changes && ov != mv {
                            patch.insert(k.clone(), mv.clone());
                        }
                    }
                }
            }
            _ => {
                if o.changes && ov != mv {
                    patch.insert(k.clone(), mv.clone());
                }
            }
        }
    }
    patch
}

fn diff_lists(orig: &[Value], modi: &[Value], key: &str, o: Opts) -> Vec<Value> {
    let mut out = Vec::new();
    for m in modi {
        match orig.iter().find(|x| x[key] == m[key]) {
            Some(x) => {
                let mut sub = diff_maps(obj(x), obj(m), o);
                if !sub.is_empty() {
                    sub.insert(key.to_string(), m[key].clone());
                    out.push(Value::Object(sub));
                }
            }
            None => {
                if o.changes {
                    out.push(m.clone());
                }
            }
        }
    }
    if o.deletions {
        for x in orig {
            if !modi.iter().any(|m| m[key] == x[key]) {
                out.push(json!({ key: x[key].clone(), "$patch": "delete" }));
            }
        }
    }
    out
}

/// Merges patch `b` into patch `a` (lists of keyed items by their key).
fn merge(mut a: Map<String, Value>, b: Map<String, Value>) -> Map<String, Value> {
    for (k, bv) in b {
        let merged = match (a.remove(&k), bv) {
            (Some(Value::Object(am)), Value::Object(bm)) => Value::Object(merge(am, bm)),
            (Some(Value::Array(al)), Value::Array(bl)) if !k.starts_with('$') => {
                let refs: Vec<&Value> = al.iter().chain(bl.iter()).collect();
                match merge_key(&k, &refs) {
                    Some(key) => {
                        let mut out = al;
                        for item in bl {
                            match out.iter_mut().find(|x| x[key] == item[key]) {
                                Some(x) => {
                                    let m = merge(
                                        x.as_object().cloned().unwrap_or_default(),
                                        item.as_object().cloned().unwrap_or_default(),
                                    );
                                    *x = Value::Object(m);
                                }
                                None => out.push(item),
                            }
                        }
                        Value::Array(out)
                    }
                    None => Value::Array(bl),
                }
            }
            (_, bv) => bv,
        };
        a.insert(k, merged);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_container_and_env_var_and_field() {
        let original = json!({"spec": {"replicas": 2, "paused": false, "template": {"spec": {"containers": [
            {"name": "web", "image": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "b"}]}}}});
        let modified = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "web", "image": "a", "env": [{"name": "A", "value": "1"}]}]}}}});
        let mut current = original.clone();
        current["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        let p = three_way(&original, &modified, &current);
        assert_eq!(
            p,
            json!({"spec": {"paused": null, "replicas": 3, "template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [
                    {"name": "web", "$setElementOrder/env": [{"name": "A"}], "env": [{"name": "B", "$patch": "delete"}]},
                    {"name": "side", "$patch": "delete"}]}}}})
        );
        assert_eq!(three_way(&modified, &modified, &modified), json!({}));
    }
}
