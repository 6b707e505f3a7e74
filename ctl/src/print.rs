//! Output formats shared by the verbs: kubectl's tab-aligned tables, YAML and JSON with
//! alphabetically ordered keys (kubectl goes through Go maps, which marshal sorted), and
//! `kind.group/name` names.

use serde_json::{Map, Value};

use crate::error::{CtlError, Result};

/// Aligns rows like kubectl's tabwriter (min width 6, padding 3, the last cell unpadded).
pub fn tabwrite(rows: &[Vec<String>]) -> String {
    TabWriter::default().write(rows)
}

/// kubectl's tabwriter with remembered widths: a column never shrinks from one flush to the
/// next, so the rows of a watch stay aligned under the header printed first.
#[derive(Default)]
pub struct TabWriter {
    widths: Vec<usize>,
}

impl TabWriter {
    /// Aligns `rows` (widening columns as needed) and returns the text.
    pub fn write(&mut self, rows: &[Vec<String>]) -> String {
        for r in rows {
            if self.widths.len() < r.len() {
                self.widths.resize(r.len(), 0);
            }
            for (i, c) in r.iter().enumerate() {
                if i + 1 < r.len() {
                    self.widths[i] = self.widths[i].max((c.chars().count() + 3).max(6));
                }
            }
        }
        let mut out = String::new();
        for r in rows {
            for (i, c) in r.iter().enumerate() {
                out.push_str(c);
                if i + 1 < r.len() {
                    let pad = self.widths[i] - c.chars().count();
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// A copy of `v` with every object's keys sorted.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut m = Map::new();
            for k in keys {
                m.insert(k.clone(), sorted(&o[k]));
            }
            Value::Object(m)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// kubectl's `-o json`: four-space indent, sorted keys, trailing newline.
pub fn to_json(v: &Value) -> Result<String> {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    sorted(v)
        .serialize(&mut ser)
        .map_err(|e| CtlError::local(e.to_string()))?;
    let mut s = String::from_utf8(buf).map_err(|e| CtlError::local(e.to_string()))?;
    s.push('\n');
    Ok(s)
}

/// kubectl's `-o yaml`: sorted keys, block style.
pub fn to_yaml(v: &Value) -> Result<String> {
    Ok(crate::yaml::emit(&sorted(v)))
}

/// Drops `metadata.managedFields` (of an object and of a List's items), as kubectl does
/// unless `--show-managed-fields` is given.
pub fn strip_managed_fields(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip_managed_fields);
    }
}

/// The `List` kubectl prints for several objects.
pub fn list_of(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}
