//! Field sets: which fields of an object a manager owns, in Kubernetes' `FieldsV1` form.
//!
//! A path is a list of `FieldsV1` tokens: `f:<name>` for an object field, `k:{"name":"web"}` for
//! an item of a `listType=map` list (key fields sorted by name, defaults filled in), `v:<json>`
//! for an item of a `listType=set` list. A set holds the leaves of an object (scalars, atomic
//! lists, empty objects) and the list items themselves, which `FieldsV1` marks with `".":{}` —
//! the same shape an apply produces in Kubernetes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{self, Field, SsaList, TypeDef};

/// One owned field: its `FieldsV1` tokens from the object root.
pub type Path = Vec<String>;

/// A set of owned fields.
pub type FieldSet = BTreeSet<Path>;

/// Fields Kubernetes never tracks: identity and bookkeeping set by the server, not by managers.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "clusterName",
];

/// The fields present in `object` (of type `root`), without `apiVersion`, `kind` and untracked
/// metadata. Errors when a keyed list has two items with the same key.
pub fn of_object(object: &Value, root: &'static TypeDef) -> Result<FieldSet, PatchError> {
    let mut set = FieldSet::new();
    let Value::Object(map) = object else {
        return Ok(set);
    };
    for (name, value) in map {
        if name == "apiVersion" || name == "kind" {
            continue;
        }
        let field = root.field(name);
        let path = vec![format!("f:{name}")];
        if name == "metadata"
            && let Value::Object(meta) = value
        {
            let meta_ty = field.and_then(|f| f.ty);
            for (mname, mvalue) in meta {
                if UNTRACKED_METADATA.contains(&mname.as_str()) {
                    continue;
                }
                let mut mpath = path.clone();
                mpath.push(format!("f:{mname}"));
                walk(mvalue, schema::lookup(meta_ty, mname), mpath, &mut set)?;
            }
            continue;
        }
        walk(value, field, path, &mut set)?;
    }
    Ok(set)
}

fn walk(
    value: &Value,
    field: Option<&Field>,
    path: Path,
    set: &mut FieldSet,
) -> Result<(), PatchError> {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let ty = field.and_then(|f| f.ty);
            for (name, child) in map {
                let mut child_path = path.clone();
                child_path.push(format!("f:{name}"));
                walk(child, schema::lookup(ty, name), child_path, set)?;
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let ssa = field.map(|f| f.ssa).unwrap_or(SsaList::Atomic);
            let Some(tokens) = item_tokens(items, ssa) else {
                set.insert(path);
                return Ok(());
            };
            let item_ty = field.and_then(|f| f.ty);
            let mut seen = BTreeSet::new();
            for (item, token) in items.iter().zip(tokens) {
                if !seen.insert(token.clone()) {
                    return Err(PatchError::BadRequest(format!(
                        "{}: duplicate entries for key {}",
                        display(&path),
                        &token[2..]
                    )));
                }
                let mut item_path = path.clone();
                item_path.push(token);
                set.insert(item_path.clone());
                if let (SsaList::Map(_), Value::Object(map)) = (ssa, item) {
                    for (name, child) in map {
                        let mut child_path = item_path.clone();
                        child_path.push(format!("f:{name}"));
                        walk(child, schema::lookup(item_ty, name), child_path, set)?;
                    }
                }
            }
        }
        _ => {
            set.insert(path);
        }
    }
    Ok(())
}

/// The tokens of all items of an associative list, or `None` when the list is atomic (or an
/// item cannot be keyed, in which case it is owned as a whole).
pub fn item_tokens(items: &[Value], ssa: SsaList) -> Option<Vec<String>> {
    items.iter().map(|item| item_token(item, ssa)).collect()
}

/// The `k:`/`v:` token of one list item.
pub fn item_token(item: &Value, ssa: SsaList) -> Option<String> {
    match ssa {
        SsaList::Atomic => None,
        SsaList::Set => match item {
            Value::Object(_) | Value::Array(_) => None,
            scalar => Some(format!("v:{scalar}")),
        },
        SsaList::Map(keys) => {
            let Value::Object(map) = item else {
                return None;
            };
            let mut sorted: Vec<(&str, Value)> = Vec::new();
            for key in keys {
                match (map.get(key.name), key.default) {
                    (Some(value), _) if !value.is_null() => sorted.push((key.name, value.clone())),
                    (_, Some(default)) => sorted.push((key.name, Value::String(default.into()))),
                    _ => {}
                }
            }
            if sorted.is_empty() {
                return None;
            }
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let key: Map<String, Value> = sorted
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            Some(format!("k:{}", Value::Object(key)))
        }
    }
}

/// Renders a set as `FieldsV1` JSON: nested objects keyed by token, `".":{}` marking a member
/// that also has owned children.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn render(node: &Node) -> Value {
        let mut out = Map::new();
        if node.member && !node.children.is_empty() {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (token, child) in &node.children {
            out.insert(token.clone(), render(child));
        }
        Value::Object(out)
    }
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for token in path {
            node = node.children.entry(token.clone()).or_default();
        }
        node.member = true;
    }
    render(&root)
}

/// Parses `FieldsV1` JSON back into a set (malformed parts are ignored).
pub fn from_fields_v1(value: &Value) -> FieldSet {
    fn visit(value: &Value, path: &mut Path, set: &mut FieldSet) {
        let Value::Object(map) = value else {
            return;
        };
        if map.is_empty() && !path.is_empty() {
            set.insert(path.clone());
        }
        for (token, child) in map {
            if token == "." {
                if !path.is_empty() {
                    set.insert(path.clone());
                }
                continue;
            }
            path.push(token.clone());
            visit(child, path, set);
            path.pop();
        }
    }
    let mut set = FieldSet::new();
    visit(value, &mut Vec::new(), &mut set);
    set
}

/// A path as Kubernetes prints it in conflicts: `.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for token in path {
        if let Some(name) = token.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = token.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Map<String, Value>>(key) {
                Ok(map) => map.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                Err(_) => vec![key.to_string()],
            };
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = token.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else {
            out.push_str(&format!("[{token}]"));
        }
    }
    out
}

/// How to follow one token of a path in an object.
#[derive(Clone, Copy)]
enum Step<'p> {
    Field(&'p str),
    Item(SsaList, &'p str),
}

fn steps<'p>(root: &'static TypeDef, path: &'p [String]) -> Vec<Step<'p>> {
    let mut ty = Some(root);
    let mut field: Option<&Field> = None;
    path.iter()
        .map(|token| match token.strip_prefix("f:") {
            Some(name) => {
                field = schema::lookup(ty, name);
                ty = field.and_then(|f| f.ty);
                Step::Field(name)
            }
            None => {
                let ssa = field.map(|f| f.ssa).unwrap_or(SsaList::Atomic);
                field = None;
                Step::Item(ssa, token)
            }
        })
        .collect()
}

fn child<'a>(value: &'a Value, step: Step) -> Option<&'a Value> {
    match step {
        Step::Field(name) => value.as_object()?.get(name),
        Step::Item(ssa, token) => value
            .as_array()?
            .iter()
            .find(|item| item_token(item, ssa).as_deref() == Some(token)),
    }
}

/// The value at `path` in `object`, if present.
pub fn get<'a>(object: &'a Value, root: &'static TypeDef, path: &[String]) -> Option<&'a Value> {
    steps(root, path).into_iter().try_fold(object, child)
}

/// Removes the value at `path`; returns whether something was removed.
pub fn remove(object: &mut Value, root: &'static TypeDef, path: &[String]) -> bool {
    let steps = steps(root, path);
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut current = object;
    for step in parents {
        let next = match *step {
            Step::Field(name) => current.as_object_mut().and_then(|m| m.get_mut(name)),
            Step::Item(ssa, token) => current.as_array_mut().and_then(|items| {
                items
                    .iter_mut()
                    .find(|item| item_token(item, ssa).as_deref() == Some(token))
            }),
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    match *last {
        Step::Field(name) => current
            .as_object_mut()
            .is_some_and(|m| m.shift_remove(name).is_some()),
        Step::Item(ssa, token) => match current.as_array_mut() {
            Some(items) => {
                let before = items.len();
                items.retain(|item| item_token(item, ssa).as_deref() != Some(token));
                items.len() != before
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trip_and_shape() {
        let root = schema::root("apps", "Deployment");
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"app": "x"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}});
        let set = of_object(&d, root).unwrap();
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                       "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {},
                           "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
        let image: Path = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
            "f:image",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            display(&image),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
        assert_eq!(get(&d, root, &image), Some(&json!("nginx")));
    }
}
