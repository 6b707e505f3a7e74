//! The `/openapi/v3` documents kubectl needs.
//!
//! kubectl only reads them to learn that the server validates fields itself: each group-version
//! document lists the object paths with a `patch` operation that carries
//! `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter. Without request
//! body schemas kubectl computes strategic merge patches from its compiled-in types, which is
//! what we want for built-in kinds.

use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::resources::{self, RESOURCES};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The document of one group-version, if served.
pub fn group_version_document(group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let base = format!("/{}", gv_path(group, version));
    let field_validation = json!({
        "name": "fieldValidation",
        "in": "query",
        "description": "How the server treats unknown or duplicate fields: Ignore, Warn or Strict.",
        "schema": {"type": "string", "uniqueItems": true},
    });
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.resource)
        } else {
            format!("{base}/{}/{{name}}", r.resource)
        };
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", r.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [field_validation],
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(
            item,
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.resource)
        } else {
            format!("{base}/{}", r.resource)
        };
        paths.insert(collection, json!({"get": op("list"), "post": op("post")}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::http::discovery::KUBERNETES_MINOR)},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn hash_of(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `GET /openapi/v3`: the index of group-version documents with content hashes.
pub fn root() -> Value {
    let mut paths = Map::new();
    for (g, v) in resources::group_versions() {
        if let Some(doc) = group_version_document(g, v) {
            let p = gv_path(g, v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash_of(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_carry_gvk_and_field_validation() {
        let doc = group_version_document("apps", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
        let root = root();
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
    }
}
