//! Which resources exist, found the way kubectl and kube-controller-manager find them: the
//! legacy `/api/v1` list and every group's preferred version under `/apis`.
//!
//! The garbage collector must watch every resource whose objects can own or be owned, and
//! the namespace controller must empty every namespaced resource, including ones added after
//! this code was written; so both ask the server instead of keeping a list.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList};
use runtime::{Client, ResourceInfo};
use tracing::debug;

/// One resource as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// How the client addresses it.
    pub info: ResourceInfo,
    /// The verbs it supports (`list`, `watch`, `delete`, `deletecollection` …).
    pub verbs: Vec<String>,
}

impl DiscoveredResource {
    /// Whether the resource supports `verb`.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// Whether the garbage collector can track and delete its objects.
    pub fn is_collectable(&self) -> bool {
        ["list", "watch", "delete"].iter().all(|v| self.supports(v))
            && !IGNORED.contains(&(self.info.group.as_str(), self.info.plural.as_str()))
    }
}

/// Resources the garbage collector leaves alone, as Kubernetes does: Events churn constantly
/// and nothing owns them.
const IGNORED: [(&str, &str); 2] = [("", "events"), ("events.k8s.io", "events")];

/// Every resource of the server (preferred version of each group, no subresources).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    resources: Vec<DiscoveredResource>,
    by_group_kind: HashMap<(String, String), usize>,
}

impl Discovery {
    /// Asks the server.
    pub async fn fetch(client: &Client) -> runtime::Result<Self> {
        let mut lists = vec![client.get_raw::<APIResourceList>("/api/v1").await?];
        let groups: APIGroupList = client.get_raw("/apis").await?;
        for group in groups.groups {
            let Some(version) = group
                .preferred_version
                .or_else(|| group.versions.into_iter().next())
            else {
                continue;
            };
            let path = format!("/apis/{}", version.group_version);
            match client.get_raw::<APIResourceList>(&path).await {
                Ok(list) => lists.push(list),
                // A group going away between the two reads is not an error of ours.
                Err(e) if e.is_not_found() => debug!(path, "group vanished during discovery"),
                Err(e) => return Err(e),
            }
        }
        Ok(Self::from_lists(lists))
    }

    /// Builds the view from `APIResourceList`s (pure; the server's answers in, lookups out).
    pub fn from_lists(lists: Vec<APIResourceList>) -> Self {
        let mut d = Discovery::default();
        for list in lists {
            let (group, version) = split_api_version(&list.group_version);
            for r in list.resources {
                if r.name.contains('/') {
                    continue; // a subresource
                }
                let info = ResourceInfo::new(group, version, &r.name, &r.kind, r.namespaced);
                d.by_group_kind
                    .insert((group.to_string(), r.kind.clone()), d.resources.len());
                d.resources.push(DiscoveredResource {
                    info,
                    verbs: r.verbs,
                });
            }
        }
        d
    }

    /// Every resource.
    pub fn resources(&self) -> &[DiscoveredResource] {
        &self.resources
    }

    /// The resource serving `kind` in the group of `api_version` (any version of the group:
    /// an ownerReference may name an older version than the preferred one).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&DiscoveredResource> {
        let (group, _) = split_api_version(api_version);
        self.by_group_kind
            .get(&(group.to_string(), kind.to_string()))
            .map(|i| &self.resources[*i])
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

    fn resource(name: &str, kind: &str, namespaced: bool, verbs: &[&str]) -> APIResource {
        APIResource {
            name: name.into(),
            kind: kind.into(),
            namespaced,
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..APIResource::default()
        }
    }

    #[test]
    fn lists_resources_without_subresources_and_finds_kinds_by_group() {
        let all = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "watch",
        ];
        let d = Discovery::from_lists(vec![
            APIResourceList {
                group_version: "v1".into(),
                resources: vec![
                    resource("pods", "Pod", true, &all),
                    resource("pods/status", "Pod", true, &["get", "update"]),
                    resource("events", "Event", true, &all),
                    resource("bindings", "Binding", true, &["create"]),
                    resource("namespaces", "Namespace", false, &all),
                ],
            },
            APIResourceList {
                group_version: "apps/v1".into(),
                resources: vec![resource("replicasets", "ReplicaSet", true, &all)],
            },
        ]);
        let names: Vec<_> = d.resources().iter().map(|r| &r.info.plural).collect();
        assert_eq!(
            names,
            ["pods", "events", "bindings", "namespaces", "replicasets"]
        );
        let collectable: Vec<_> = d
            .resources()
            .iter()
            .filter(|r| r.is_collectable())
            .map(|r| r.info.plural.as_str())
            .collect();
        assert_eq!(collectable, ["pods", "namespaces", "replicasets"]);
        let rs = d.by_kind("apps/v1beta2", "ReplicaSet").unwrap();
        assert_eq!(
            (rs.info.group.as_str(), rs.info.version.as_str()),
            ("apps", "v1")
        );
        assert!(d.by_kind("v1", "ReplicaSet").is_none());
        assert!(!d.by_kind("v1", "Namespace").unwrap().info.namespaced);
    }
}
