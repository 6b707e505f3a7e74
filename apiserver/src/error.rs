//! The API server's one error type, and its mapping to a Kubernetes `Status`.
//!
//! Every failure a client can see is one of these variants, so the HTTP edge turns each into the
//! `Status` object (reason, code, details.causes) that kubectl and client libraries decode.

use serde_json::{Value, json};

/// One field-level problem inside a 422 Invalid or 400 BadRequest answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Kubernetes cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`,
    /// `FieldValueNotSupported`, `FieldValueDuplicate`, `FieldValueForbidden`,
    /// `FieldValueTooLong`, `FieldValueTypeInvalid`, `FieldValueUnknown`.
    pub reason: String,
    /// Human-readable message, e.g. `Required value` or `Invalid value: "Foo": a lowercase RFC 1123 ...`.
    pub message: String,
    /// JSON path of the field, e.g. `spec.containers[0].image` or `metadata.name`.
    pub field: String,
}

impl Cause {
    /// A required field is missing (`FieldValueRequired`).
    pub fn required(field: impl Into<String>) -> Self {
        Self::new("FieldValueRequired", field, "Required value".to_string())
    }

    /// A field has a value that breaks a rule (`FieldValueInvalid`).
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {detail}", render_value(value)),
        )
    }

    /// A field's value is not one of the supported ones (`FieldValueNotSupported`).
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        )
    }

    /// Two list items share a key that must be unique (`FieldValueDuplicate`).
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", render_value(value)),
        )
    }

    /// A field may not be set or changed (`FieldValueForbidden`).
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }

    /// A cause with an explicit Kubernetes reason.
    pub fn new(reason: &str, field: impl Into<String>, message: String) -> Self {
        Self {
            reason: reason.to_string(),
            message,
            field: field.into(),
        }
    }

    /// The `field: message` line Kubernetes puts into the Status message.
    pub fn line(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// Everything that can go wrong while serving an API request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Conflict {
        resource: String,
        name: String,
        message: String,
    },
    #[error("{kind} \"{name}\" is invalid: {}", causes.iter().map(Cause::line).collect::<Vec<_>>().join(", "))]
    Invalid {
        kind: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{message}")]
    BadRequest { message: String, causes: Vec<Cause> },
    #[error("{0}")]
    Forbidden(String),
    /// No credentials, or credentials the server does not accept.
    #[error("Unauthorized")]
    Unauthorized,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    #[error("the request is too large; the limit is {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A backend the request needs (a node's kubelet) cannot be reached.
    #[error("{0}")]
    ServiceUnavailable(String),
}

impl Error {
    /// A 400 without field causes.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest {
            message: message.into(),
            causes: Vec::new(),
        }
    }

    /// HTTP status code and Kubernetes reason of this error.
    pub fn code_and_reason(&self) -> (u16, &'static str) {
        match self {
            Error::NotFound { .. } | Error::NoSuchResource => (404, "NotFound"),
            Error::AlreadyExists { .. } => (409, "AlreadyExists"),
            Error::Conflict { .. } => (409, "Conflict"),
            Error::Invalid { .. } => (422, "Invalid"),
            Error::BadRequest { .. } => (400, "BadRequest"),
            Error::Forbidden(_) => (403, "Forbidden"),
            Error::Unauthorized => (401, "Unauthorized"),
            Error::MethodNotAllowed => (405, "MethodNotAllowed"),
            Error::UnsupportedMediaType(_) => (415, "UnsupportedMediaType"),
            Error::TooLarge(_) => (413, "RequestEntityTooLarge"),
            Error::Gone(_) => (410, "Expired"),
            Error::Timeout(_) => (504, "Timeout"),
            Error::TooManyRequests(_) => (429, "TooManyRequests"),
            Error::Internal(_) => (500, "InternalError"),
            Error::ServiceUnavailable(_) => (503, "ServiceUnavailable"),
        }
    }

    /// The `Status` object clients decode.
    pub fn to_status(&self) -> Value {
        let (code, reason) = self.code_and_reason();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code,
        });
        let details = match self {
            Error::NotFound { resource, name } | Error::AlreadyExists { resource, name } => {
                Some(details(resource, name, &[]))
            }
            Error::Conflict { resource, name, .. } => Some(details(resource, name, &[])),
            Error::Invalid { kind, name, causes } => Some(details(kind, name, causes)),
            Error::BadRequest { causes, .. } if !causes.is_empty() => Some(json!({
                "causes": causes_json(causes),
            })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

fn details(kind_or_resource: &str, name: &str, causes: &[Cause]) -> Value {
    let (group, kind) = match kind_or_resource.split_once('.') {
        Some((k, g)) => (g, k),
        None => ("", kind_or_resource),
    };
    let mut d = json!({ "name": name, "kind": kind });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    if !causes.is_empty() {
        d["causes"] = causes_json(causes);
    }
    d
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(
        causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect(),
    )
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
