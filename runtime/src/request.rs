//! Building API requests without doing any I/O.
//!
//! Every verb of the Kubernetes REST API is a method, a path and a query string (plus a body
//! and its content type). Keeping that translation pure makes it testable without a server and
//! lets the typed and the dynamic client share it: both describe the resource with a
//! [`ResourceInfo`] and ask this module for the request.

use std::any::TypeId;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// What the client needs to know about a resource type to address it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceInfo {
    /// API group, empty for the core group.
    pub group: String,
    /// API version within the group (`v1`).
    pub version: String,
    /// Lower-case plural used in URLs (`configmaps`).
    pub plural: String,
    /// Kind of one object (`ConfigMap`).
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl ResourceInfo {
    /// Describes a resource by hand (for the dynamic client).
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceInfo {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            kind: kind.to_string(),
            namespaced,
        }
    }

    /// Describes a k8s-openapi type. The scope comes from the type's `Scope`.
    pub fn of<K: k8s_openapi::Resource>() -> Self
    where
        K::Scope: 'static,
    {
        ResourceInfo {
            group: K::GROUP.to_string(),
            version: K::VERSION.to_string(),
            plural: K::URL_PATH_SEGMENT.to_string(),
            kind: K::KIND.to_string(),
            namespaced: TypeId::of::<K::Scope>()
                == TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
        }
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The collection path: `/api/v1/namespaces/ns/pods`, `/apis/apps/v1/deployments`, …
    /// A namespaced resource without a namespace addresses all namespaces.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let mut path = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if let (true, Some(ns)) = (self.namespaced, namespace) {
            path.push_str("/namespaces/");
            path.push_str(&encode_segment(ns));
        }
        path.push('/');
        path.push_str(&self.plural);
        path
    }
}

/// HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Reads and watches.
    Get,
    /// Creates.
    Post,
    /// Replaces.
    Put,
    /// Patches.
    Patch,
    /// Deletes.
    Delete,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        })
    }
}

/// A fully described request, ready for any HTTP client.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The verb.
    pub method: Method,
    /// Path and query string (`/api/v1/pods?limit=5`).
    pub url: String,
    /// Content type of `body`, when there is one.
    pub content_type: Option<&'static str>,
    /// The body, already serialized.
    pub body: Option<Vec<u8>>,
}

/// Options of a list (also used to scope a watch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Page size (`limit`); the client's paging helpers follow `continue` for you.
    pub limit: Option<u32>,
    /// `continue` token from the previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion` (`"0"` lets the server answer from its cache).
    pub resource_version: Option<String>,
}

impl ListParams {
    /// Selects by label.
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    /// Selects by field.
    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    /// Asks for pages of at most `limit` items.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    fn append(&self, q: &mut Query) {
        q.opt("labelSelector", self.label_selector.as_deref());
        q.opt("fieldSelector", self.field_selector.as_deref());
        if let Some(l) = self.limit {
            q.push("limit", &l.to_string());
        }
        q.opt("continue", self.continue_token.as_deref());
        q.opt("resourceVersion", self.resource_version.as_deref());
    }
}

/// Options of a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Ask for BOOKMARK events, which keep the resume point fresh on quiet watches.
    pub bookmarks: bool,
    /// Server-side timeout; the server ends the stream after it.
    pub timeout_seconds: Option<u32>,
}

impl Default for WatchParams {
    fn default() -> Self {
        WatchParams {
            label_selector: None,
            field_selector: None,
            bookmarks: true,
            timeout_seconds: None,
        }
    }
}

impl WatchParams {
    /// The watch that matches a list (same selectors).
    pub fn from_list(lp: &ListParams) -> Self {
        WatchParams {
            label_selector: lp.label_selector.clone(),
            field_selector: lp.field_selector.clone(),
            ..WatchParams::default()
        }
    }

    /// Sets the server-side timeout.
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.timeout_seconds = Some(seconds);
        self
    }
}

/// Options of writes (create, replace, patch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostParams {
    /// `dryRun=All`: validate and default, store nothing.
    pub dry_run: bool,
    /// `fieldManager`, recorded in managedFields.
    pub field_manager: Option<String>,
}

impl PostParams {
    fn append(&self, q: &mut Query) {
        if self.dry_run {
            q.push("dryRun", "All");
        }
        q.opt("fieldManager", self.field_manager.as_deref());
    }
}

/// Options of a patch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchParams {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`; required for apply patches.
    pub field_manager: Option<String>,
    /// `force=true`: take ownership of conflicting fields (apply only).
    pub force: bool,
}

impl PatchParams {
    /// Server-side apply as `manager`.
    pub fn apply(manager: &str) -> Self {
        PatchParams {
            field_manager: Some(manager.to_string()),
            ..PatchParams::default()
        }
    }

    /// Forces conflicting fields over to this manager.
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }
}

/// The four patch flavours the API accepts, each with its own content type.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// RFC 6902 JSON patch: an array of operations.
    Json(Value),
    /// RFC 7386 JSON merge patch.
    Merge(Value),
    /// Kubernetes strategic merge patch (lists merged by their patch keys).
    Strategic(Value),
    /// Server-side apply: the fully specified intent of one field manager.
    Apply(Value),
}

impl Patch {
    /// The `Content-Type` that selects this patch flavour on the server.
    pub fn content_type(&self) -> &'static str {
        match self {
            Patch::Json(_) => "application/json-patch+json",
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Strategic(_) => "application/strategic-merge-patch+json",
            Patch::Apply(_) => "application/apply-patch+yaml",
        }
    }

    fn body(&self) -> &Value {
        match self {
            Patch::Json(v) | Patch::Merge(v) | Patch::Strategic(v) | Patch::Apply(v) => v,
        }
    }
}

/// How dependents are handled when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PropagationPolicy {
    /// Dependents are left alone.
    Orphan,
    /// The owner goes now, the garbage collector deletes dependents afterwards.
    Background,
    /// The owner stays (with a finalizer) until its dependents are gone.
    Foreground,
}

/// Preconditions a delete must meet (optimistic concurrency on delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    /// Delete only this incarnation of the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Delete only if unchanged since this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// `DeleteOptions`, sent as the body of a delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteParams {
    /// Seconds the object gets to shut down (pods); 0 means now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
    /// What happens to dependents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<PropagationPolicy>,
    /// Conditions the object must meet to be deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Preconditions>,
    /// `["All"]` for a dry run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<String>,
}

impl DeleteParams {
    /// Deletes dependents in the background.
    pub fn background() -> Self {
        DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Self::default()
        }
    }

    /// Waits for dependents to be deleted first.
    pub fn foreground() -> Self {
        DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Self::default()
        }
    }

    /// Leaves dependents behind.
    pub fn orphan() -> Self {
        DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Self::default()
        }
    }

    fn body(&self) -> Vec<u8> {
        let mut v =
            serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Default::default()));
        v["kind"] = "DeleteOptions".into();
        v["apiVersion"] = "v1".into();
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

/// Builds the requests for one resource type in one namespace (or all / cluster scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBuilder {
    info: ResourceInfo,
    namespace: Option<String>,
}

impl RequestBuilder {
    /// Requests for `info`; `namespace` is ignored for cluster-scoped resources and means
    /// "all namespaces" when `None` for namespaced ones.
    pub fn new(info: ResourceInfo, namespace: Option<&str>) -> Self {
        let namespace = if info.namespaced {
            namespace.map(str::to_string)
        } else {
            None
        };
        RequestBuilder { info, namespace }
    }

    /// The resource this builder addresses.
    pub fn info(&self) -> &ResourceInfo {
        &self.info
    }

    /// The namespace this builder addresses, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    fn collection(&self) -> String {
        self.info.collection_path(self.namespace.as_deref())
    }

    fn object(&self, name: &str, subresource: Option<&str>) -> Result<String> {
        if name.is_empty() {
            return Err(Error::Request("a name is required".into()));
        }
        if self.info.namespaced && self.namespace.is_none() {
            return Err(Error::Request(format!(
                "{} {name}: a namespace is required to address one {}",
                self.info.plural, self.info.kind
            )));
        }
        let mut path = format!("{}/{}", self.collection(), encode_segment(name));
        if let Some(sub) = subresource {
            path.push('/');
            path.push_str(sub);
        }
        Ok(path)
    }

    /// `GET` one object (or its subresource).
    pub fn get(&self, name: &str, subresource: Option<&str>) -> Result<Request> {
        Ok(plain(
            Method::Get,
            self.object(name, subresource)?,
            Query::default(),
        ))
    }

    /// `GET` the collection.
    pub fn list(&self, lp: &ListParams) -> Result<Request> {
        let mut q = Query::default();
        lp.append(&mut q);
        Ok(plain(Method::Get, self.collection(), q))
    }

    /// `GET ?watch=1` from `resource_version` (empty or `"0"`: start with the current state).
    pub fn watch(&self, wp: &WatchParams, resource_version: &str) -> Result<Request> {
        let mut q = Query::default();
        q.push("watch", "1");
        q.opt("labelSelector", wp.label_selector.as_deref());
        q.opt("fieldSelector", wp.field_selector.as_deref());
        if !resource_version.is_empty() {
            q.push("resourceVersion", resource_version);
        }
        if wp.bookmarks {
            q.push("allowWatchBookmarks", "true");
        }
        if let Some(t) = wp.timeout_seconds {
            q.push("timeoutSeconds", &t.to_string());
        }
        Ok(plain(Method::Get, self.collection(), q))
    }

    /// `POST` a new object to the collection.
    pub fn create<T: Serialize>(&self, pp: &PostParams, obj: &T) -> Result<Request> {
        if self.info.namespaced && self.namespace.is_none() {
            return Err(Error::Request(format!(
                "a namespace is required to create a {}",
                self.info.kind
            )));
        }
        let mut q = Query::default();
        pp.append(&mut q);
        json_body(Method::Post, self.collection(), q, obj)
    }

    /// `PUT` a whole object (or its `status`/`scale` subresource).
    pub fn replace<T: Serialize>(
        &self,
        name: &str,
        subresource: Option<&str>,
        pp: &PostParams,
        obj: &T,
    ) -> Result<Request> {
        let mut q = Query::default();
        pp.append(&mut q);
        json_body(Method::Put, self.object(name, subresource)?, q, obj)
    }

    /// `PATCH` an object (or a subresource) with any of the four patch types.
    pub fn patch(
        &self,
        name: &str,
        subresource: Option<&str>,
        pp: &PatchParams,
        patch: &Patch,
    ) -> Result<Request> {
        let mut q = Query::default();
        if pp.dry_run {
            q.push("dryRun", "All");
        }
        match (patch, pp.field_manager.as_deref()) {
            (Patch::Apply(_), None) => {
                return Err(Error::Request(
                    "an apply patch needs a field manager".into(),
                ));
            }
            (_, manager) => q.opt("fieldManager", manager),
        }
        if pp.force {
            if !matches!(patch, Patch::Apply(_)) {
                return Err(Error::Request(
                    "force is only valid for apply patches".into(),
                ));
            }
            q.push("force", "true");
        }
        if matches!(patch, Patch::Json(v) if !v.is_array()) {
            return Err(Error::Request(
                "a JSON patch must be an array of operations".into(),
            ));
        }
        Ok(Request {
            method: Method::Patch,
            url: q.finish(self.object(name, subresource)?),
            content_type: Some(patch.content_type()),
            body: Some(serde_json::to_vec(patch.body())?),
        })
    }

    /// `DELETE` one object with `DeleteOptions` in the body.
    pub fn delete(&self, name: &str, dp: &DeleteParams) -> Result<Request> {
        Ok(Request {
            method: Method::Delete,
            url: self.object(name, None)?,
            content_type: Some("application/json"),
            body: Some(dp.body()),
        })
    }

    /// `DELETE` every object of the collection matching `lp`.
    pub fn delete_collection(&self, dp: &DeleteParams, lp: &ListParams) -> Result<Request> {
        let mut q = Query::default();
        lp.append(&mut q);
        Ok(Request {
            method: Method::Delete,
            url: q.finish(self.collection()),
            content_type: Some("application/json"),
            body: Some(dp.body()),
        })
    }

    /// `POST` to a subresource (`binding`, `eviction`).
    pub fn create_subresource<T: Serialize>(
        &self,
        name: &str,
        subresource: &str,
        pp: &PostParams,
        obj: &T,
    ) -> Result<Request> {
        let mut q = Query::default();
        pp.append(&mut q);
        json_body(Method::Post, self.object(name, Some(subresource))?, q, obj)
    }
}

fn plain(method: Method, path: String, q: Query) -> Request {
    Request {
        method,
        url: q.finish(path),
        content_type: None,
        body: None,
    }
}

fn json_body<T: Serialize>(method: Method, path: String, q: Query, obj: &T) -> Result<Request> {
    Ok(Request {
        method,
        url: q.finish(path),
        content_type: Some("application/json"),
        body: Some(serde_json::to_vec(obj)?),
    })
}

/// Percent-encodes one path segment (names are DNS-ish, but be safe).
fn encode_segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
}

#[derive(Default)]
struct Query(Option<form_urlencoded::Serializer<'static, String>>);

impl Query {
    fn push(&mut self, key: &str, value: &str) {
        self.0
            .get_or_insert_with(|| form_urlencoded::Serializer::new(String::new()))
            .append_pair(key, value);
    }

    fn opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.push(key, v);
        }
    }

    fn finish(self, path: String) -> String {
        match self.0 {
            Some(mut s) => format!("{path}?{}", s.finish()),
            None => path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> RequestBuilder {
        RequestBuilder::new(
            ResourceInfo::new("", "v1", "configmaps", "ConfigMap", true),
            Some("ns1"),
        )
    }

    fn deploys_all() -> RequestBuilder {
        RequestBuilder::new(
            ResourceInfo::new("apps", "v1", "deployments", "Deployment", true),
            None,
        )
    }

    fn nodes() -> RequestBuilder {
        RequestBuilder::new(
            ResourceInfo::new("", "v1", "nodes", "Node", false),
            Some("ignored"),
        )
    }

    #[test]
    fn typed_resource_info_knows_scope_and_group() {
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::Node;
        let d = ResourceInfo::of::<Deployment>();
        assert_eq!(
            d,
            ResourceInfo::new("apps", "v1", "deployments", "Deployment", true)
        );
        assert!(!ResourceInfo::of::<Node>().namespaced);
        assert_eq!(d.api_version(), "apps/v1");
    }

    #[test]
    fn paths_for_core_group_apps_and_cluster_scope() {
        assert_eq!(
            cm().get("a", None).unwrap().url,
            "/api/v1/namespaces/ns1/configmaps/a"
        );
        assert_eq!(
            deploys_all().list(&ListParams::default()).unwrap().url,
            "/apis/apps/v1/deployments"
        );
        assert_eq!(
            nodes().get("n1", Some("status")).unwrap().url,
            "/api/v1/nodes/n1/status"
        );
        assert!(
            deploys_all().get("x", None).is_err(),
            "a namespaced get needs a namespace"
        );
        assert!(cm().get("", None).is_err());
    }

    #[test]
    fn list_query_carries_selectors_paging_and_version() {
        let lp = ListParams {
            label_selector: Some("app in (a,b),!canary".into()),
            field_selector: Some("spec.nodeName=n1".into()),
            limit: Some(50),
            continue_token: Some("tok/en=".into()),
            resource_version: Some("0".into()),
        };
        let r = cm().list(&lp).unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(
            r.url,
            "/api/v1/namespaces/ns1/configmaps?labelSelector=app+in+%28a%2Cb%29%2C%21canary\
             &fieldSelector=spec.nodeName%3Dn1&limit=50&continue=tok%2Fen%3D&resourceVersion=0"
        );
    }

    #[test]
    fn watch_query() {
        let wp = WatchParams::from_list(&ListParams::default().labels("a=b")).timeout(290);
        let r = cm().watch(&wp, "41").unwrap();
        assert_eq!(
            r.url,
            "/api/v1/namespaces/ns1/configmaps?watch=1&labelSelector=a%3Db&resourceVersion=41\
             &allowWatchBookmarks=true&timeoutSeconds=290"
        );
        let plain = WatchParams {
            bookmarks: false,
            ..WatchParams::default()
        };
        assert_eq!(
            cm().watch(&plain, "").unwrap().url,
            "/api/v1/namespaces/ns1/configmaps?watch=1"
        );
    }

    #[test]
    fn create_and_replace_bodies() {
        let obj = json!({"metadata": {"name": "a"}});
        let pp = PostParams {
            dry_run: true,
            field_manager: Some("skiff".into()),
        };
        let r = cm().create(&pp, &obj).unwrap();
        assert_eq!(r.method, Method::Post);
        assert_eq!(
            r.url,
            "/api/v1/namespaces/ns1/configmaps?dryRun=All&fieldManager=skiff"
        );
        assert_eq!(r.content_type, Some("application/json"));
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body.unwrap()).unwrap(),
            obj
        );
        let r = cm()
            .replace("a", Some("status"), &PostParams::default(), &obj)
            .unwrap();
        assert_eq!(r.method, Method::Put);
        assert_eq!(r.url, "/api/v1/namespaces/ns1/configmaps/a/status");
        assert!(deploys_all().create(&PostParams::default(), &obj).is_err());
    }

    #[test]
    fn patch_types_and_apply_options() {
        let cases = [
            (
                Patch::Json(json!([{"op": "add", "path": "/x", "value": 1}])),
                "application/json-patch+json",
            ),
            (
                Patch::Merge(json!({"a": 1})),
                "application/merge-patch+json",
            ),
            (
                Patch::Strategic(json!({"a": 1})),
                "application/strategic-merge-patch+json",
            ),
        ];
        for (p, ct) in cases {
            let r = cm().patch("a", None, &PatchParams::default(), &p).unwrap();
            assert_eq!(r.method, Method::Patch);
            assert_eq!(r.content_type, Some(ct));
            assert_eq!(r.url, "/api/v1/namespaces/ns1/configmaps/a");
        }
        let apply = Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap"}));
        let r = cm()
            .patch("a", None, &PatchParams::apply("ctl").force(), &apply)
            .unwrap();
        assert_eq!(
            r.url,
            "/api/v1/namespaces/ns1/configmaps/a?fieldManager=ctl&force=true"
        );
        assert_eq!(r.content_type, Some("application/apply-patch+yaml"));
        assert!(
            cm().patch("a", None, &PatchParams::default(), &apply)
                .is_err()
        );
        let force_merge = PatchParams::default().force();
        assert!(
            cm().patch("a", None, &force_merge, &Patch::Merge(json!({})))
                .is_err()
        );
        assert!(
            cm().patch("a", None, &PatchParams::default(), &Patch::Json(json!({})))
                .is_err()
        );
    }

    #[test]
    fn delete_sends_delete_options() {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some("u1".into()),
                resource_version: None,
            }),
            ..DeleteParams::foreground()
        };
        let r = cm().delete("a", &dp).unwrap();
        assert_eq!(r.method, Method::Delete);
        let body: Value = serde_json::from_slice(&r.body.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                   "propagationPolicy": "Foreground", "preconditions": {"uid": "u1"}})
        );
        let r = cm()
            .delete_collection(&DeleteParams::default(), &ListParams::default().labels("x"))
            .unwrap();
        assert_eq!(r.url, "/api/v1/namespaces/ns1/configmaps?labelSelector=x");
    }

    #[test]
    fn subresource_post() {
        let r = RequestBuilder::new(ResourceInfo::new("", "v1", "pods", "Pod", true), Some("d"))
            .create_subresource("p", "binding", &PostParams::default(), &json!({}))
            .unwrap();
        assert_eq!(r.url, "/api/v1/namespaces/d/pods/p/binding");
        assert_eq!(r.method, Method::Post);
    }
}
