//! The patch engine: JSON patch, JSON merge patch, strategic merge patch and server-side apply.
//!
//! kubectl relies on each of them: client-side `apply`, `set image`, `rollout restart`, `cordon`
//! send strategic merge patches, `scale` a merge patch, `rollout undo` a JSON patch, and
//! `apply --server-side` an apply patch. Everything here is a pure function over
//! `serde_json::Value`; the HTTP layer picks the [`PatchType`] from the Content-Type, calls
//! [`apply_patch`] or [`server_side_apply`], and maps a [`PatchError`] with
//! [`PatchError::into_api_error`].

mod apply;
mod fieldset;
mod schema;
mod strategic;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use apply::{record_update, server_side_apply};

/// Which patch format a request body is in, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902), e.g. `kubectl rollout undo`.
    Json,
    /// `application/merge-patch+json` (RFC 7386), e.g. `kubectl scale`.
    Merge,
    /// `application/strategic-merge-patch+json`, e.g. client-side `kubectl apply`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (or `+json`): server-side apply, see [`server_side_apply`].
    Apply,
}

impl PatchType {
    /// The patch type of a Content-Type header value (parameters such as `; charset=utf-8` are
    /// ignored); `None` for anything else, which the server answers with 415.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }

    /// The media types accepted for PATCH, for the 415 message.
    pub const ACCEPTED: &'static str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";
}

/// One field another manager owns that an apply wanted to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The manager as Kubernetes prints it: `"kubectl"` for an applier,
    /// `"kubectl-client-side-apply" using apps/v1` for an updater.
    pub manager: String,
    /// The field path as Kubernetes prints it, e.g. `.spec.replicas` or
    /// `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is malformed (not JSON, wrong shape, unknown directive, missing merge key...).
    /// Kubernetes answers 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed JSON patch that cannot be applied to this object (a path that does not
    /// exist, a failing `test` op). Kubernetes answers 422 with the message and no causes.
    #[error("{0}")]
    Unprocessable(String),
    /// Server-side apply touched fields other managers own (and `force` was false). Kubernetes
    /// answers 409 Conflict with this message and one `FieldManagerConflict` cause per field.
    #[error("{message}")]
    Conflict {
        message: String,
        conflicts: Vec<FieldConflict>,
    },
}

impl PatchError {
    /// The HTTP status Kubernetes uses for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable(_) => 422,
            PatchError::Conflict { .. } => 409,
        }
    }

    /// The API error for a patch of `kind` `name` in `resource` (e.g. `deployments.apps`).
    ///
    /// Conflicts become [`crate::Error::Conflict`], whose rendered message adds the usual
    /// "Operation cannot be fulfilled" prefix; Kubernetes' apply conflict Status has the bare
    /// message (`self.to_string()`) and `details.causes` from [`PatchError::conflict_causes`] —
    /// use those if the Status must match exactly.
    pub fn into_api_error(self, resource: &str, kind: &str, name: &str) -> crate::Error {
        match self {
            PatchError::BadRequest(message) => crate::Error::bad_request(message),
            PatchError::Unprocessable(message) => crate::Error::Invalid {
                kind: kind.to_string(),
                name: name.to_string(),
                causes: vec![crate::Cause::new("FieldValueInvalid", "", message)],
            },
            PatchError::Conflict { message, .. } => crate::Error::Conflict {
                resource: resource.to_string(),
                name: name.to_string(),
                message,
            },
        }
    }

    /// The `details.causes` of an apply conflict (`reason: FieldManagerConflict`).
    pub fn conflict_causes(&self) -> Vec<crate::Cause> {
        match self {
            PatchError::Conflict { conflicts, .. } => conflicts
                .iter()
                .map(|c| {
                    crate::Cause::new(
                        "FieldManagerConflict",
                        c.field.clone(),
                        format!("conflict with {}", c.manager),
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Applies a JSON patch, merge patch or strategic merge patch to `original` (an object of
/// `kind` in API group `group`, e.g. `("apps", "Deployment")`, `("", "Pod")`) and returns the
/// patched object. The merge rules of strategic merge patch come from the built-in type of
/// `group`/`kind`; unknown kinds merge objects and replace lists.
///
/// [`PatchType::Apply`] is rejected: server-side apply needs a field manager, see
/// [`server_side_apply`].
pub fn apply_patch(
    group: &str,
    kind: &str,
    original: &Value,
    patch_type: PatchType,
    patch_body: &[u8],
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(patch_body)
                .map_err(|e| PatchError::BadRequest(format!("invalid JSON patch: {e}")))?;
            let mut doc = original.clone();
            json_patch::patch(&mut doc, &patch)
                .map_err(|e| PatchError::Unprocessable(e.to_string()))?;
            Ok(doc)
        }
        PatchType::Merge => {
            let patch = parse_object(patch_body, "merge patch")?;
            let mut doc = original.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        PatchType::StrategicMerge => {
            let patch = parse_object(patch_body, "strategic merge patch")?;
            strategic::strategic_merge(original, &patch, schema::root(group, kind))
        }
        PatchType::Apply => Err(PatchError::BadRequest(
            "apply patches need a field manager: use server-side apply".to_string(),
        )),
    }
}

/// Parses a patch body that must be a JSON object.
fn parse_object(body: &[u8], what: &str) -> Result<Value, PatchError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("invalid JSON document in {what}: {e}")))?;
    if !value.is_object() {
        return Err(PatchError::BadRequest(format!(
            "invalid JSON document: a {what} must be a JSON object"
        )));
    }
    Ok(value)
}
