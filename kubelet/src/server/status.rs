//! Failures of the kubelet API as Kubernetes `Status` objects, which the API server relays to
//! kubectl unchanged (so kubectl prints `Error from server (Reason): message`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A failed request: HTTP code, Kubernetes reason, message and optional details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: StatusCode,
    /// Kubernetes reason (`BadRequest`, `NotFound`, ...).
    pub reason: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// `details` of the Status, when there are any.
    pub details: Option<Value>,
}

impl ApiError {
    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message.into())
    }

    /// 404 NotFound for `kind` `name`.
    pub fn not_found(kind: &str, name: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{kind} \"{name}\" not found"),
        );
        e.details = Some(json!({"name": name, "kind": kind}));
        e
    }

    /// 422 Invalid for `kind` `name` with `(field, message)` causes, in Kubernetes' wording.
    pub fn invalid(kind: &str, name: &str, causes: &[(String, String)]) -> Self {
        let lines: Vec<String> = causes
            .iter()
            .map(|(f, m)| {
                if f.is_empty() {
                    m.clone()
                } else {
                    format!("{f}: {m}")
                }
            })
            .collect();
        let list = if lines.len() == 1 {
            lines[0].clone()
        } else {
            format!("[{}]", lines.join(", "))
        };
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {list}"),
        );
        let causes: Vec<Value> = causes
            .iter()
            .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
            .collect();
        e.details = Some(json!({"name": name, "kind": kind, "causes": causes}));
        e
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            message.into(),
        )
    }

    fn new(code: StatusCode, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.code,
            [("content-type", "application/json")],
            self.to_status().to_string(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_kubernetes() {
        let e = ApiError::invalid(
            "PodLogOptions",
            "web",
            &[(
                "tailLines".into(),
                "Invalid value: -1: must be greater than or equal to 0".into(),
            )],
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(
            s["message"],
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(s["details"]["causes"][0]["field"], "tailLines");
        let two = ApiError::invalid(
            "PodLogOptions",
            "web",
            &[("a".into(), "x".into()), ("".into(), "y".into())],
        );
        assert_eq!(two.message, "PodLogOptions \"web\" is invalid: [a: x, y]");
        let nf = ApiError::not_found("pods", "web").to_status();
        assert_eq!(
            (nf["code"].clone(), nf["message"].clone()),
            (json!(404), json!("pods \"web\" not found"))
        );
    }
}
