//! Resource discovery: one pass over `/api/v1` and the preferred version of every group in
//! `/apis`, then the names a user may type (`pods`, `pod`, `po`, `Pod`, `deploy.apps`) map to
//! a [`Resource`].

use runtime::ResourceInfo;
use serde_json::Value;

use crate::error::{CtlError, Result};
use crate::http::{Http, JSON};

/// One resource type the server serves.
#[derive(Debug, Clone)]
pub struct Resource {
    pub info: ResourceInfo,
    pub singular: String,
    pub short_names: Vec<String>,
    /// Discovery categories (`all`), which a user may type instead of a type.
    pub categories: Vec<String>,
}

impl Resource {
    /// kubectl's `kind.group` prefix for names (`deployment.apps`, or `pod` for the core group).
    pub fn qualified_kind(&self) -> String {
        let k = self.info.kind.to_lowercase();
        if self.info.group.is_empty() {
            k
        } else {
            format!("{k}.{}", self.info.group)
        }
    }

    /// `deployments.apps` as in kubectl's messages and the NAME column of api-resources.
    pub fn qualified_plural(&self) -> String {
        if self.info.group.is_empty() {
            self.info.plural.clone()
        } else {
            format!("{}.{}", self.info.plural, self.info.group)
        }
    }
}

/// Everything discovered.
pub struct Discovery {
    pub resources: Vec<Resource>,
}

impl Discovery {
    /// Reads `/api/v1`, `/apis` and the preferred version of every group.
    pub async fn load(http: &Http) -> Result<Self> {
        let mut resources = Vec::new();
        let core = http.get("/api/v1", JSON).await?;
        add_list(&mut resources, "", "v1", &core);
        let groups = http.get("/apis", JSON).await?;
        for g in groups["groups"].as_array().into_iter().flatten() {
            let name = g["name"].as_str().unwrap_or_default();
            let Some(gv) = g["preferredVersion"]["groupVersion"].as_str() else {
                continue;
            };
            let version = g["preferredVersion"]["version"]
                .as_str()
                .unwrap_or_default();
            let list = http.get(&format!("/apis/{gv}"), JSON).await?;
            add_list(&mut resources, name, version, &list);
        }
        Ok(Discovery { resources })
    }

    /// Finds the resource a user typed: plural, singular, short name or kind, optionally
    /// qualified with a group (`deploy.apps`) or group and version (`deployments.v1.apps`).
    pub fn resolve(&self, typed: &str) -> Result<&Resource> {
        let lower = typed.to_lowercase();
        let (name, group) = match lower.split_once('.') {
            Some((n, g)) => (n.to_string(), Some(g.to_string())),
            None => (lower.clone(), None),
        };
        let matches = |r: &Resource| {
            r.info.plural == name
                || r.singular == name
                || r.info.kind.to_lowercase() == name
                || r.short_names.contains(&name)
        };
        let group_ok = |r: &Resource| match &group {
            None => true,
            Some(g) => {
                r.info.group == *g
                    || format!("{}.{}", r.info.version, r.info.group) == *g
                    || (r.info.group.is_empty() && *g == r.info.version)
            }
        };
        // Exact names win over short names, the core group over others (as kubectl's
        // priority RESTMapper does for the built-in types).
        let mut found: Vec<&Resource> = self
            .resources
            .iter()
            .filter(|r| matches(r) && group_ok(r))
            .collect();
        found.sort_by_key(|r| (!r.info.group.is_empty(), r.info.plural != name));
        found.first().copied().ok_or_else(|| {
            CtlError::Local(format!(
                "the server doesn't have a resource type \"{typed}\""
            ))
        })
    }

    /// What a typed name stands for: the resources of a category (`all`) in discovery order,
    /// or the one resource it names.
    pub fn expand(&self, typed: &str) -> Result<Vec<&Resource>> {
        if let Ok(r) = self.resolve(typed) {
            return Ok(vec![r]);
        }
        let lower = typed.to_lowercase();
        let in_category: Vec<&Resource> = self
            .resources
            .iter()
            .filter(|r| r.categories.contains(&lower))
            .collect();
        if in_category.is_empty() {
            return self.resolve(typed).map(|r| vec![r]);
        }
        Ok(in_category)
    }

    /// The resource serving objects of this apiVersion and kind (for manifests).
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Result<&Resource> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.resources
            .iter()
            .find(|r| r.info.kind == kind && r.info.group == group && r.info.version == version)
            .ok_or_else(|| {
                CtlError::Local(format!(
                    "resource mapping not found for kind \"{kind}\" in version \"{api_version}\""
                ))
            })
    }
}

fn add_list(out: &mut Vec<Resource>, group: &str, version: &str, list: &Value) {
    for r in list["resources"].as_array().into_iter().flatten() {
        let plural = r["name"].as_str().unwrap_or_default();
        if plural.contains('/') || plural.is_empty() {
            continue;
        }
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        let kind = r["kind"].as_str().unwrap_or_default();
        let singular = match r["singularName"].as_str() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => kind.to_lowercase(),
        };
        out.push(Resource {
            info: ResourceInfo::new(
                group,
                version,
                plural,
                kind,
                r["namespaced"].as_bool().unwrap_or(false),
            ),
            singular,
            short_names: strings(&r["shortNames"]),
            categories: strings(&r["categories"]),
        });
    }
}
