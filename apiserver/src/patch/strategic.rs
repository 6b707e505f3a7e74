//! Strategic merge patch, applied the way the Kubernetes API server applies it.
//!
//! The algorithm follows `k8s.io/apimachinery/pkg/util/strategicpatch` with the server's options
//! (parallel deletion lists are applied, `null`s that match nothing are dropped):
//!
//! * objects merge key by key, `null` deletes a key;
//! * lists whose field is tagged `patchStrategy:"merge"` merge by their merge key (objects) or
//!   as a union (primitives); other lists are replaced by the patch's list;
//! * directives: `$patch: replace|delete` in an object or as a list item, `$retainKeys`,
//!   `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`;
//! * the result order of a merged list: patch items in patch (or `$setElementOrder`) order,
//!   interleaved with items only the server has, which keep their relative live order.
//!
//! Deliberate differences from Kubernetes, each in favour of never storing directives:
//! values that are new to the object (a new key, a new list item, a replaced list) are merged
//! into an empty value rather than copied raw, so nested directives in them are obeyed and
//! removed; an unknown `$`-prefixed key is an error instead of an unknown field; an object
//! `{"$patch":"replace",...}` at a key the original lacks keeps its content (Kubernetes drops
//! it).

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{self, Field, SmpList, TypeDef};

type Obj = Map<String, Value>;
type Ty = Option<&'static TypeDef>;
type Result<T> = std::result::Result<T, PatchError>;

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies strategic merge `patch` to `original`, both JSON objects of type `root`.
pub fn strategic_merge(original: &Value, patch: &Value, root: &'static TypeDef) -> Result<Value> {
    let Value::Object(original) = original else {
        return Err(bad(
            "invalid JSON document: the object to patch is not a JSON object",
        ));
    };
    let Value::Object(patch) = patch else {
        return Err(bad(
            "invalid JSON document: a strategic merge patch must be a JSON object",
        ));
    };
    merge_map(original.clone(), patch.clone(), Some(root)).map(Value::Object)
}

fn bad(message: impl Into<String>) -> PatchError {
    PatchError::BadRequest(message.into())
}

fn unknown_patch_type(directive: &Value) -> PatchError {
    bad(format!(
        "unknown patch type: {directive} (the $patch directive accepts \"replace\" and \"delete\")"
    ))
}

fn no_merge_key(item: &Value, key: &str) -> PatchError {
    bad(format!(
        "map: {item} does not contain declared merge key: {key}"
    ))
}

fn merge_key_of(field: Option<&Field>) -> &'static str {
    match field.map(|f| f.smp) {
        Some(SmpList::MergeByKey(key)) => key,
        _ => "",
    }
}

fn is_merge_list(field: Option<&Field>) -> bool {
    matches!(
        field.map(|f| f.smp),
        Some(SmpList::MergeByKey(_) | SmpList::MergePrimitives)
    )
}

/// JSON equality where `80` and `80.0` are equal, as they are after Go decodes JSON numbers.
pub(crate) fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn same_json_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Merges `patch` into `original` (an object of type `ty`).
fn merge_map(mut original: Obj, mut patch: Obj, ty: Ty) -> Result<Obj> {
    if let Some(directive) = patch.get(PATCH_DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(PATCH_DIRECTIVE);
                merge_map(Obj::new(), patch, ty)
            }
            Some("delete") => Ok(Obj::new()),
            _ => Err(unknown_patch_type(directive)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_element_orders(&mut original, &mut patch, ty)?;

    for (key, patch_value) in patch {
        let (name, is_delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(name) => (name.to_string(), true),
                None => return Err(bad("invalid patch format of primitive list")),
            },
            None if key.starts_with('$') => {
                return Err(bad(format!(
                    "unknown strategic merge patch directive {key:?}"
                )));
            }
            None => (key, false),
        };
        if patch_value.is_null() {
            original.shift_remove(&name);
            continue;
        }
        let field = schema::lookup(ty, &name);
        if is_delete_list && !patch_value.is_array() {
            return Err(bad("invalid patch format of primitive list"));
        }
        let Some(slot) = original.get_mut(&name) else {
            if !is_delete_list && let Some(value) = fresh(patch_value, field)? {
                original.insert(name, value);
            }
            continue;
        };
        if !same_json_type(slot, &patch_value) {
            if !is_delete_list {
                match fresh(patch_value, field)? {
                    Some(value) => *slot = value,
                    None => {
                        original.shift_remove(&name);
                    }
                }
            }
            continue;
        }
        let current = std::mem::take(slot);
        *slot = match (current, patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                Value::Object(merge_map(o, p, field.and_then(|f| f.ty))?)
            }
            (Value::Array(o), Value::Array(p)) => {
                if is_delete_list || is_merge_list(field) {
                    let elem_ty = field.and_then(|f| f.ty);
                    Value::Array(merge_slice(
                        o,
                        p,
                        merge_key_of(field),
                        elem_ty,
                        is_delete_list,
                    )?)
                } else {
                    Value::Array(fresh_list(p, field)?)
                }
            }
            (_, scalar) => scalar,
        };
    }
    Ok(original)
}

/// A value new to the object, with its directives obeyed and removed (`None`: drop it).
fn fresh(value: Value, field: Option<&Field>) -> Result<Option<Value>> {
    match value {
        Value::Array(items) => Ok(Some(Value::Array(fresh_list(items, field)?))),
        other => fresh_item(other, field.and_then(|f| f.ty)),
    }
}

/// One value or list item that has nothing to merge with.
fn fresh_item(value: Value, ty: Ty) -> Result<Option<Value>> {
    match value {
        Value::Object(map) => match map.get(PATCH_DIRECTIVE).map(|d| d.as_str()) {
            Some(Some("delete")) => Ok(None),
            Some(Some("replace")) | None => {
                Ok(Some(Value::Object(merge_map(Obj::new(), map, ty)?)))
            }
            Some(_) => Err(unknown_patch_type(&map[PATCH_DIRECTIVE])),
        },
        other => Ok(Some(other)),
    }
}

/// A list that replaces (or creates) a field.
fn fresh_list(items: Vec<Value>, field: Option<&Field>) -> Result<Vec<Value>> {
    if is_merge_list(field) {
        return merge_slice(
            Vec::new(),
            items,
            merge_key_of(field),
            field.and_then(|f| f.ty),
            false,
        );
    }
    let ty = field.and_then(|f| f.ty);
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(item) = fresh_item(item, ty)? {
            out.push(item);
        }
    }
    Ok(out)
}

/// `$retainKeys`: keep only the listed keys of `original`; the patch may only set listed keys.
fn apply_retain_keys(original: &mut Obj, patch: &mut Obj) -> Result<()> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = retain else {
        return Err(bad("invalid patch format of retainKeys"));
    };
    let keep: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keep.contains(&key.as_str()) {
            return Err(bad(format!(
                "invalid patch format of retainKeys: {key:?} is set but not in the $retainKeys list"
            )));
        }
    }
    original.retain(|key, _| keep.contains(&key.as_str()));
    Ok(())
}

/// What identifies a list item: its merge key's value, or the item itself for primitives.
fn identity(item: &Value, key: &str) -> Option<Value> {
    if key.is_empty() {
        Some(item.clone())
    } else {
        item.get(key).cloned()
    }
}

fn same_identity(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => scalar_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn position(order: &[Option<Value>], id: &Option<Value>) -> Option<usize> {
    order.iter().position(|o| same_identity(o, id))
}

/// `$setElementOrder/<list>`: merges that list's patch and orders the result.
fn apply_element_orders(original: &mut Obj, patch: &mut Obj, ty: Ty) -> Result<()> {
    let directive_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    let format_error = || bad("invalid patch format of setElementOrder list");
    for directive_key in directive_keys {
        let Some(Value::Array(order)) = patch.shift_remove(&directive_key) else {
            return Err(format_error());
        };
        let name = directive_key[SET_ELEMENT_ORDER.len()..]
            .strip_prefix('/')
            .ok_or_else(format_error)?
            .to_string();
        let original_list = match original.get(&name) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(_) => return Err(bad(format!("{name}: expected a list in the object"))),
        };
        let patch_list = match patch.get(&name) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(_) => return Err(format_error()),
        };
        let field = schema::lookup(ty, &name);
        let key = merge_key_of(field);
        validate_order(patch_list.as_deref().unwrap_or(&[]), &order, key)?;
        let kind = element_kind(&[
            original_list.as_deref().unwrap_or(&[]),
            patch_list.as_deref().unwrap_or(&[]),
        ]);
        let merged = match (original_list.clone(), patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => fresh_list(p, field)?,
            (Some(o), Some(p)) if is_merge_list(field) => {
                merge_slice(o, p, key, field.and_then(|f| f.ty), false)?
            }
            (Some(_), Some(p)) => fresh_list(p, field)?,
            (None, None) => continue,
        };
        kind?;
        if !key.is_empty() {
            for item in &order {
                if item.get(key).is_none() {
                    return Err(no_merge_key(item, key));
                }
            }
        }
        let order_ids: Vec<Option<Value>> = order.iter().map(|i| identity(i, key)).collect();
        let server_ids: Vec<Option<Value>> = original_list
            .iter()
            .flatten()
            .map(|i| identity(i, key))
            .collect();
        let (in_order, server_only) = partition(merged, &order_ids, key)?;
        let ordered = normalize_order(in_order, server_only, &order_ids, &server_ids, key);
        original.insert(name.clone(), Value::Array(ordered));
        patch.shift_remove(&name);
    }
    Ok(())
}

/// Checks that the patch list names no item outside `$setElementOrder` and keeps its order.
fn validate_order(patch_list: &[Value], order: &[Value], key: &str) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut items = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if !key.is_empty() {
            let Value::Object(map) = item else {
                return Err(bad(format!(
                    "{item}: expected an object in a list merged by {key}"
                )));
            };
            if map.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(item);
    }
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if items[pi].get(PATCH_DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        let equal = if key.is_empty() {
            scalar_eq(items[pi], &order[oi])
        } else {
            let left = items[pi]
                .get(key)
                .ok_or_else(|| no_merge_key(items[pi], key))?;
            if !order[oi].is_object() {
                return Err(bad(format!(
                    "{}: expected an object in $setElementOrder",
                    order[oi]
                )));
            }
            let right = order[oi]
                .get(key)
                .ok_or_else(|| no_merge_key(&order[oi], key))?;
            scalar_eq(left, right)
        };
        if equal {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() {
        return Err(bad(format!(
            "the order in the patch list {} doesn't match the $setElementOrder list {}",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Null,
    Bool,
    Number,
    String,
    Object,
}

/// The one element type shared by all items of `lists` (lists of lists are not supported).
fn element_kind(lists: &[&[Value]]) -> Result<ElementKind> {
    let mut kind = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let this = match item {
            Value::Null => ElementKind::Null,
            Value::Bool(_) => ElementKind::Bool,
            Value::Number(_) => ElementKind::Number,
            Value::String(_) => ElementKind::String,
            Value::Object(_) => ElementKind::Object,
            Value::Array(_) => return Err(bad("lists of lists are not supported")),
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => return Err(bad("list element types are not identical")),
            Some(_) => {}
        }
    }
    kind.ok_or_else(|| bad("no elements in any of the given lists"))
}

/// Merges a list tagged `patchStrategy:"merge"` (or applies a `$deleteFromPrimitiveList`).
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    ty: Ty,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&[&original, &patch])?;
    if kind != ElementKind::Object {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|d| scalar_eq(v, d)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| scalar_eq(m, item)) {
                merged.push(item.clone());
            }
        }
        let patch_ids: Vec<Option<Value>> = patch.into_iter().map(Some).collect();
        let server_ids: Vec<Option<Value>> = original.into_iter().map(Some).collect();
        let (in_patch, server_only) = partition(merged, &patch_ids, "")?;
        return Ok(normalize_order(
            in_patch,
            server_only,
            &patch_ids,
            &server_ids,
            "",
        ));
    }
    if key.is_empty() {
        return Err(bad("cannot merge lists of objects without a merge key"));
    }
    let (original, patch) = apply_list_directives(original, patch, key, ty)?;
    let server_ids: Vec<Option<Value>> = original.iter().map(|i| identity(i, key)).collect();
    let mut patch_ids = Vec::with_capacity(patch.len());
    for item in &patch {
        patch_ids.push(Some(
            item.get(key)
                .cloned()
                .ok_or_else(|| no_merge_key(item, key))?,
        ));
    }
    let mut merged = original;
    for item in patch {
        let Value::Object(item) = item else {
            return Err(mixed_kinds());
        };
        let id = item.get(key).cloned();
        match merged
            .iter()
            .position(|o| o.get(key).is_some() && same_identity(&o.get(key).cloned(), &id))
        {
            Some(index) => {
                let Value::Object(current) = std::mem::take(&mut merged[index]) else {
                    return Err(mixed_kinds());
                };
                merged[index] = Value::Object(merge_map(current, item, ty)?);
            }
            None => merged.push(Value::Object(merge_map(Obj::new(), item, ty)?)),
        }
    }
    let (in_patch, server_only) = partition(merged, &patch_ids, key)?;
    Ok(normalize_order(
        in_patch,
        server_only,
        &patch_ids,
        &server_ids,
        key,
    ))
}

fn mixed_kinds() -> PatchError {
    bad("list element types are not identical")
}

/// Handles `{"$patch":"delete",key:..}` and `{"$patch":"replace"}` list items; returns the
/// remaining original and the patch items without directives.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    ty: Ty,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(PATCH_DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(value) = item.get(key) else {
                    return Err(no_merge_key(&item, key));
                };
                original.retain(|o| !o.get(key).is_some_and(|v| scalar_eq(v, value)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(bad("merging lists cannot yet be specified in the patch"));
            }
            _ => return Err(unknown_patch_type(directive)),
        }
    }
    if replace {
        let mut replaced = Vec::with_capacity(plain.len());
        for item in plain {
            if let Some(item) = fresh_item(item, ty)? {
                replaced.push(item);
            }
        }
        return Ok((replaced, Vec::new()));
    }
    Ok((original, plain))
}

/// Splits `merged` into the items named in `order` and the rest.
fn partition(
    merged: Vec<Value>,
    order: &[Option<Value>],
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut named = Vec::new();
    let mut rest = Vec::new();
    for item in merged {
        let id = identity(&item, key);
        if id.is_none() {
            return Err(no_merge_key(&item, key));
        }
        if position(order, &id).is_some() {
            named.push(item);
        } else {
            rest.push(item);
        }
    }
    Ok((named, rest))
}

/// Sorts `named` by `order` and `server_only` by the live order, then interleaves them: a
/// server-only item goes before the next named item when the live list had it earlier.
fn normalize_order(
    mut named: Vec<Value>,
    mut server_only: Vec<Value>,
    order: &[Option<Value>],
    server_order: &[Option<Value>],
    key: &str,
) -> Vec<Value> {
    let rank = |list: &[Option<Value>], item: &Value| {
        position(list, &identity(item, key)).unwrap_or(usize::MAX)
    };
    named.sort_by_key(|item| rank(order, item));
    server_only.sort_by_key(|item| rank(server_order, item));

    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = named.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                let li = position(server_order, &identity(l, key));
                let ri = position(server_order, &identity(r, key));
                let take_left = matches!((li, ri), (Some(a), Some(b)) if a < b);
                if take_left {
                    out.extend(left.next());
                } else {
                    out.extend(right.next());
                }
            }
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (None, None) => break,
        }
    }
    out
}
