//! Which objects a list or watch returns: namespace, label selector and field selector.
//!
//! Field selectors support only the fields Kubernetes supports for each kind; anything else is a
//! 400, as in kube-apiserver, so a typo never silently matches everything.

use runtime::selector::{FieldSelector, LabelSelector};
use serde_json::Value;

use crate::error::Error;
use crate::resources::ResourceType;

/// A parsed `?labelSelector=&fieldSelector=` plus the namespace of the request.
#[derive(Debug, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    kind: &'static str,
}

impl Filter {
    /// Parses the selectors of a request on `rt`; bad selectors are 400 BadRequest.
    pub fn parse(
        rt: &ResourceType,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Self, Error> {
        let labels = match label_selector.filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(
                LabelSelector::parse(s)
                    .map_err(|e| Error::bad_request(format!("unable to parse requirement: {e}")))?,
            ),
            None => None,
        };
        let fields = match field_selector.filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let parsed = FieldSelector::parse(s).map_err(|e| {
                    Error::bad_request(format!("invalid field selector {s:?}: {e}"))
                })?;
                for req in parsed.requirements() {
                    if !supported_field(rt.kind, &req.field) {
                        return Err(Error::bad_request(format!(
                            "field label not supported: {}",
                            req.field
                        )));
                    }
                }
                Some(parsed)
            }
            None => None,
        };
        Ok(Self {
            namespace: namespace.map(str::to_string),
            labels,
            fields,
            kind: rt.kind,
        })
    }

    /// A filter that only restricts the namespace.
    pub fn namespace_only(rt: &ResourceType, namespace: Option<&str>) -> Self {
        Self {
            namespace: namespace.map(str::to_string),
            labels: None,
            fields: None,
            kind: rt.kind,
        }
    }

    /// Whether `obj` passes every part of the filter.
    pub fn matches(&self, obj: &Value) -> bool {
        let meta = obj.get("metadata");
        if let Some(ns) = &self.namespace
            && meta
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                != Some(ns.as_str())
        {
            return false;
        }
        self.matches_selectors(obj)
    }

    /// Whether `obj` passes the label and field selectors (the caller vouches for the
    /// namespace, e.g. because it read the namespace's key range).
    pub fn matches_selectors(&self, obj: &Value) -> bool {
        if let Some(labels) = &self.labels {
            let l = obj
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .unwrap_or(&Value::Null);
            if !labels.matches_json(l) {
                return false;
            }
        }
        if let Some(fields) = &self.fields
            && !fields.matches(|f| field_value(self.kind, obj, f))
        {
            return false;
        }
        true
    }
}

/// Fields every kind can be selected by.
const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// Extra selectable fields per kind, as kube-apiserver registers them.
fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "Secret" => &["type"],
        "ReplicaSet" | "ReplicationController" => &["status.replicas"],
        "Job" => &["status.successful"],
        _ => &[],
    }
}

fn supported_field(kind: &str, field: &str) -> bool {
    COMMON_FIELDS.contains(&field) || kind_fields(kind).contains(&field)
}

/// The string value of a selectable field, as Kubernetes renders it for matching.
pub fn field_value(kind: &str, obj: &Value, field: &str) -> Option<String> {
    if field == "source" && kind == "Event" {
        return Some(
            obj.pointer("/source/component")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
    }
    let pointer = format!("/{}", field.replace('.', "/"));
    let v = obj.pointer(&pointer);
    Some(match v {
        None | Some(Value::Null) => match field {
            "spec.unschedulable" | "spec.hostNetwork" => "false".to_string(),
            "status.replicas" | "status.successful" => "0".to_string(),
            _ => String::new(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    })
}
