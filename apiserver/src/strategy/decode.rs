//! Typed decoding of request bodies.
//!
//! kube-apiserver decodes every body into its Go struct, so a wrong JSON type is a 400 naming the
//! field and an unknown field is either dropped or (under `fieldValidation=Strict`) reported. We
//! get the same effect with a round trip through the k8s-openapi type: `serde_path_to_error`
//! names the field of a type error and `serde_ignored` collects the fields the type skipped.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::Decoded;

/// Decodes `body` as the k8s-openapi type `T` and serializes it back.
///
/// `apiVersion` and `kind` are checked by the API layer (from the URL), not here: the typed
/// deserializers insist on their own constants, so the sent values are swapped for the type's
/// during decoding and restored afterwards.
pub(crate) fn decode_as<T>(body: Value) -> Result<Decoded, String>
where
    T: DeserializeOwned + Serialize + k8s_openapi::Resource,
{
    let Value::Object(mut map) = body else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type {}",
            json_type(&body),
            T::KIND
        ));
    };
    let sent_api_version = map.insert("apiVersion".into(), Value::from(T::API_VERSION));
    let sent_kind = map.insert("kind".into(), Value::from(T::KIND));

    let mut unknown_fields = Vec::new();
    let typed: T = {
        let mut record = |path: serde_ignored::Path| unknown_fields.push(ignored_path(&path));
        let de = serde_ignored::Deserializer::new(Value::Object(map), &mut record);
        serde_path_to_error::deserialize(de).map_err(|err| {
            format!(
                "json: cannot decode field \"{}\" of {}: {}",
                err.path(),
                T::KIND,
                err.inner()
            )
        })?
    };
    let mut object = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if let Some(out) = object.as_object_mut() {
        for (key, sent) in [("apiVersion", sent_api_version), ("kind", sent_kind)] {
            if let Some(sent @ Value::String(_)) = sent {
                out.insert(key.into(), sent);
            }
        }
    }
    Ok(Decoded {
        object,
        unknown_fields,
    })
}

/// Decoding for kinds without a typed strategy: only the top-level shape is checked.
pub(crate) fn decode_untyped(body: Value) -> Result<Decoded, String> {
    if !body.is_object() {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_type(&body)
        ));
    }
    Ok(Decoded {
        object: body,
        unknown_fields: Vec::new(),
    })
}

/// Go's name for a JSON value's type, as used in `encoding/json` error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Renders a `serde_ignored` path the way Kubernetes prints field paths:
/// `spec.containers[0].imagePullPolcy` (no markers for `Option` or newtype layers).
fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}
