//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Each manager owns a set of fields (see [`super::fieldset`]). An apply:
//! 1. computes the fields of the applied configuration;
//! 2. finds fields other managers own whose value the apply would change — conflicts, which fail
//!    the request unless `force`, in which case the other managers lose them;
//! 3. merges the configuration into the live object (objects merge, `listType=map` lists merge
//!    by key, sets merge, other lists and scalars are replaced);
//! 4. removes fields this manager applied last time but not now, unless another manager owns
//!    them (or something beneath them);
//! 5. records the applied fields as the manager's `Apply` entry.
//!
//! An update (create/update/patch with a field manager) gives its manager the fields it changed
//! and takes them from everyone else, without conflicts — as in Kubernetes.
//!
//! Simplifications: `status` in an applied configuration is ignored (the main resource does not
//! accept status), an applied `null` means "not set", merged list items keep their live order
//! with new items appended, and objects without `managedFields` have no owners.

use serde_json::{Map, Value};

use super::fieldset::{self, FieldSet, Path};
use super::schema::{self, Field, SsaList, TypeDef};
use super::strategic::scalar_eq;
use super::{FieldConflict, PatchError};

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn parse(value: &Value) -> Option<Entry> {
        let str_of = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Entry {
            manager: str_of("manager")?,
            operation: str_of("operation").unwrap_or_else(|| UPDATE.to_string()),
            api_version: str_of("apiVersion").unwrap_or_default(),
            time: str_of("time"),
            subresource: str_of("subresource"),
            fields: value
                .get("fieldsV1")
                .map(fieldset::from_fields_v1)
                .unwrap_or_default(),
        })
    }

    fn render(&self) -> Value {
        let mut out = Map::new();
        out.insert("manager".into(), Value::String(self.manager.clone()));
        out.insert("operation".into(), Value::String(self.operation.clone()));
        out.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            out.insert("time".into(), Value::String(time.clone()));
        }
        out.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        out.insert("fieldsV1".into(), fieldset::to_fields_v1(&self.fields));
        if let Some(sub) = &self.subresource {
            out.insert("subresource".into(), Value::String(sub.clone()));
        }
        Value::Object(out)
    }

    /// The manager as Kubernetes names it in conflict messages.
    fn display(&self) -> String {
        if self.operation == UPDATE {
            format!("{:?} using {}", self.manager, self.api_version)
        } else {
            format!("{:?}", self.manager)
        }
    }

    fn is(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
            && (operation == APPLY || self.api_version == api_version)
    }
}

fn managed_fields(object: Option<&Value>) -> Option<&Vec<Value>> {
    object?
        .get("metadata")?
        .get("managedFields")?
        .as_array()
        .filter(|entries| !entries.is_empty())
}

fn parse_entries(list: Option<&Vec<Value>>) -> Vec<Entry> {
    list.map(|l| l.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

/// Writes `entries` (sorted as Kubernetes sorts them, empty ones dropped) into `object`.
fn store_entries(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| p.time.cmp(&q.time))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::render).collect()),
        );
    }
}

fn api_version_of(group: &str, objects: &[Option<&Value>]) -> String {
    objects
        .iter()
        .flatten()
        .find_map(|o| o.get("apiVersion").and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| {
            if group.is_empty() {
                "v1".to_string()
            } else {
                format!("{group}/v1")
            }
        })
}

/// JSON equality with numbers compared by value.
fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| deep_eq(v, w))
        }
        _ => scalar_eq(a, b),
    }
}

fn without_managed_fields(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    copy
}

/// Drops `null` object members: in an applied configuration they mean "not set".
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn is_prefix(prefix: &[String], path: &[String]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

/// Whether `set` owns `path` or anything beneath it.
fn owns_at_or_below(set: &FieldSet, path: &[String]) -> bool {
    set.range(path.to_vec()..)
        .next()
        .is_some_and(|p| is_prefix(path, p))
}

/// Server-side apply of `applied` by `manager` to `live` (`None` when the object does not exist
/// yet); returns the new object with `metadata.managedFields` updated.
///
/// `group`/`kind` select the merge schema (e.g. `("apps", "Deployment")`); `now` is the RFC 3339
/// time recorded in the manager's entry when something changed (a no-op apply keeps the old
/// entry time). Fails with [`PatchError::Conflict`] when another manager owns a field the apply
/// sets to a different value and `force` is false; with `force` the applier takes those fields.
/// Identity metadata (name, uid, resourceVersion...) is copied as given but never owned; the
/// caller still fills in and checks server-set metadata.
pub fn server_side_apply(
    group: &str,
    kind: &str,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, PatchError> {
    let root = schema::root(group, kind);
    if !applied.is_object() {
        return Err(PatchError::BadRequest(
            "an apply configuration must be an object".to_string(),
        ));
    }
    if let Some(applied_kind) = applied.get("kind").and_then(Value::as_str)
        && applied_kind != kind
    {
        return Err(PatchError::BadRequest(format!(
            "the apply configuration is a {applied_kind}, not a {kind}"
        )));
    }
    if managed_fields(Some(applied)).is_some() {
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil in an apply configuration".to_string(),
        ));
    }
    let mut config = applied.clone();
    strip_nulls(&mut config);
    if let Some(map) = config.as_object_mut() {
        map.shift_remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.shift_remove("managedFields");
        }
    }
    let api_version = api_version_of(group, &[Some(applied), live]);
    let applied_set = fieldset::of_object(&config, root)?;

    let live_object = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = parse_entries(managed_fields(live));
    let own_index = entries
        .iter()
        .position(|e| e.is(manager, APPLY, &api_version, None));

    // Conflicts: fields others own that this apply changes.
    let mut conflicts: Vec<(usize, Path)> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if Some(index) == own_index {
            continue;
        }
        for path in entry.fields.intersection(&applied_set) {
            let (Some(current), Some(wanted)) = (
                fieldset::get(&live_object, root, path),
                fieldset::get(&config, root, path),
            ) else {
                continue;
            };
            let is_item = path.last().is_some_and(|t| !t.starts_with("f:"));
            if !is_item && !deep_eq(current, wanted) {
                conflicts.push((index, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&entries, conflicts));
        }
        for (index, path) in conflicts {
            entries[index].fields.remove(&path);
        }
    }

    let mut result = live_object.clone();
    merge_applied(&mut result, &config, Some(root), None);

    // Remove what this manager applied before but no longer applies, unless still owned.
    let previous = own_index
        .map(|i| entries[i].fields.clone())
        .unwrap_or_default();
    let mut owned_by_others = FieldSet::new();
    for (index, entry) in entries.iter().enumerate() {
        if Some(index) != own_index {
            owned_by_others.extend(entry.fields.iter().cloned());
        }
    }
    // Shallowest first: removing a list item takes its fields with it.
    let mut dropped: Vec<&Path> = previous.difference(&applied_set).collect();
    dropped.sort_by_key(|p| p.len());
    for path in dropped {
        if owns_at_or_below(&owned_by_others, path)
            || owns_at_or_below(&applied_set, path)
            || is_key_field(path)
        {
            continue;
        }
        if fieldset::remove(&mut result, root, path) {
            remove_empty_parents(&mut result, root, path, &applied_set, &owned_by_others);
        }
    }

    let changed =
        live.is_none_or(|l| !deep_eq(&without_managed_fields(l), &without_managed_fields(&result)));
    let entry_changed = own_index
        .is_none_or(|i| entries[i].fields != applied_set || entries[i].api_version != api_version);
    match own_index {
        Some(i) => {
            let entry = &mut entries[i];
            if changed || entry_changed {
                entry.time = Some(now.to_string());
            }
            entry.fields = applied_set;
            entry.api_version = api_version;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: APPLY.to_string(),
            api_version,
            time: Some(now.to_string()),
            subresource: None,
            fields: applied_set,
        }),
    }
    store_entries(&mut result, entries);
    Ok(result)
}

/// Whether `path` is a key field of a `listType=map` item (kept while the item exists).
fn is_key_field(path: &[String]) -> bool {
    let [.., item, last] = path else {
        return false;
    };
    match (item.strip_prefix("k:"), last.strip_prefix("f:")) {
        (Some(key), Some(name)) => {
            serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(name))
        }
        _ => false,
    }
}

fn conflict_error(entries: &[Entry], conflicts: Vec<(usize, Path)>) -> PatchError {
    let mut listed: Vec<FieldConflict> = conflicts
        .iter()
        .map(|(index, path)| FieldConflict {
            manager: entries[*index].display(),
            field: fieldset::display(path),
        })
        .collect();
    listed.sort_by(|a, b| a.manager.cmp(&b.manager));
    let message = if let [only] = listed.as_slice() {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.field
        )
    } else {
        let mut lines = Vec::new();
        let mut last_manager: Option<&str> = None;
        for conflict in &listed {
            if last_manager != Some(conflict.manager.as_str()) {
                lines.push(format!("conflicts with {}:", conflict.manager));
                last_manager = Some(&conflict.manager);
            }
            lines.push(format!("- {}", conflict.field));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            listed.len(),
            lines.join("\n")
        )
    };
    PatchError::Conflict {
        message,
        conflicts: listed,
    }
}

/// After removing `path`, removes its parents that became empty and that nobody owns.
fn remove_empty_parents(
    object: &mut Value,
    root: &'static TypeDef,
    path: &[String],
    applied: &FieldSet,
    others: &FieldSet,
) {
    let mut end = path.len() - 1;
    while end > 0 {
        let parent = &path[..end];
        let empty = match fieldset::get(object, root, parent) {
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        let owned = applied.contains(parent) || others.contains(parent);
        if !empty || owned || parent == ["f:metadata"] {
            return;
        }
        fieldset::remove(object, root, parent);
        end -= 1;
    }
}

/// Merges an applied configuration into the live object.
fn merge_applied(
    target: &mut Value,
    applied: &Value,
    ty: Option<&'static TypeDef>,
    field: Option<&Field>,
) {
    match (target, applied) {
        (Value::Object(live), Value::Object(config)) => {
            for (name, value) in config {
                let child_field = schema::lookup(ty, name);
                let child_ty = child_field.and_then(|f| f.ty);
                match live.get_mut(name) {
                    Some(existing) => merge_applied(existing, value, child_ty, child_field),
                    None => {
                        live.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(config)) => {
            let ssa = field.map(|f| f.ssa).unwrap_or(SsaList::Atomic);
            let tokens = fieldset::item_tokens(config, ssa);
            let live_tokens = fieldset::item_tokens(live, ssa);
            let (Some(tokens), Some(live_tokens)) = (tokens, live_tokens) else {
                *live = config.clone();
                return;
            };
            let item_ty = field.and_then(|f| f.ty);
            for (item, token) in config.iter().zip(tokens) {
                match live_tokens.iter().position(|t| *t == token) {
                    Some(i) if matches!(ssa, SsaList::Map(_)) => {
                        merge_applied(&mut live[i], item, item_ty, None)
                    }
                    Some(_) => {}
                    None => live.push(item.clone()),
                }
            }
        }
        (target, applied) => *target = applied.clone(),
    }
}

/// Records that `manager` wrote `new` (replacing `old`, `None` on create) with an ordinary
/// create/update/patch: the manager's `Update` entry gains every field whose value changed,
/// other managers lose those fields, and fields that no longer exist are dropped from every
/// entry. `new.metadata.managedFields` is rewritten; when the request carried its own non-empty
/// `managedFields` different from `old`'s, those are the starting point (as Kubernetes allows).
pub fn record_update(
    group: &str,
    kind: &str,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
) {
    let root = schema::root(group, kind);
    let old_entries = managed_fields(old);
    let new_entries = managed_fields(Some(new));
    let base = match (new_entries, old_entries) {
        (Some(n), Some(o)) if n == o => Some(o),
        (Some(n), _) => Some(n),
        (None, o) => o,
    };
    let mut entries = parse_entries(base);
    let api_version = api_version_of(group, &[Some(new), old]);
    // Sets of stored objects are well formed; a duplicate key just means nothing is tracked.
    let new_set = fieldset::of_object(new, root).unwrap_or_default();
    let old_set = old
        .map(|o| fieldset::of_object(o, root).unwrap_or_default())
        .unwrap_or_default();

    let changed: FieldSet = new_set
        .iter()
        .filter(|path| {
            let is_item = path.last().is_some_and(|t| !t.starts_with("f:"));
            match old.and_then(|o| fieldset::get(o, root, path)) {
                None => true,
                Some(before) => {
                    !is_item
                        && fieldset::get(new, root, path)
                            .is_none_or(|after| !deep_eq(before, after))
                }
            }
        })
        .cloned()
        .collect();
    let gone: FieldSet = old_set.difference(&new_set).cloned().collect();

    for entry in &mut entries {
        entry
            .fields
            .retain(|p| !changed.contains(p) && !gone.contains(p));
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.is(manager, UPDATE, &api_version, None))
        {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: UPDATE.to_string(),
                api_version,
                time: Some(now.to_string()),
                subresource: None,
                fields: changed,
            }),
        }
    }
    store_entries(new, entries);
}
