//! The HTTP client and its typed and dynamic APIs.
//!
//! [`Client`] knows where the server is and how to authenticate; it sends the requests that
//! [`crate::request`] builds and turns failures into [`Error::Api`] carrying the server's
//! `Status`. [`Api<K>`] adds a resource type: with a k8s-openapi type it is typed, with
//! `serde_json::Value` and a [`ResourceInfo`] it is dynamic — one implementation for both.

use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use kube_core::ObjectList;
use kube_core::watch::WatchEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, trace};

use crate::config::{Config, LoadOptions};
use crate::error::{Error, Result, Status};
use crate::request::{
    DeleteParams, ListParams, Method, Patch, PatchParams, PostParams, Request, RequestBuilder,
    ResourceInfo, WatchParams,
};

/// How long a non-watch request may take before it is abandoned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one API server. Cheap to clone (connections are pooled and shared).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    namespace: String,
}

impl Client {
    /// Builds a client from a resolved [`Config`]: `http://` or `https://` with the
    /// kubeconfig's CA, client certificate and credentials (see [`Config::http_client`]).
    pub fn new(config: Config) -> Result<Self> {
        let http = config.http_client()?;
        Ok(Client {
            http,
            base: config.server,
            namespace: config.namespace,
        })
    }

    /// Loads the kubeconfig like kubectl does (`KUBECONFIG`, `~/.kube/config`) and connects.
    pub fn try_default() -> Result<Self> {
        Self::new(crate::config::load(&LoadOptions::default())?)
    }

    /// The namespace of the kubeconfig context (`default` when none is set).
    pub fn default_namespace(&self) -> &str {
        &self.namespace
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the successful response; failures become [`Error::Api`].
    pub async fn send(&self, req: Request, timeout: Option<Duration>) -> Result<reqwest::Response> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        trace!(method = %req.method, url = %req.url, "request");
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.base, req.url))
            .header("accept", "application/json");
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        if let Some(ct) = req.content_type {
            rb = rb.header("content-type", ct);
        }
        if let Some(body) = req.body {
            rb = rb.body(body);
        }
        let resp = rb.send().await.map_err(Error::from_transport)?;
        let code = resp.status();
        if code.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        let status = decode_status(code.as_u16(), &body);
        debug!(code = status.code, reason = %status.reason, message = %status.message, "API error");
        Err(Error::Api(Box::new(status)))
    }

    /// Sends a request and decodes the JSON answer.
    pub async fn request<T: DeserializeOwned>(&self, req: Request) -> Result<T> {
        let resp = self.send(req, Some(REQUEST_TIMEOUT)).await?;
        let body = resp.bytes().await.map_err(Error::from_transport)?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// `GET` a path outside resource collections (`/version`, `/readyz`) as JSON.
    pub async fn get_raw<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.request(Request {
            method: Method::Get,
            url: path.to_string(),
            content_type: None,
            body: None,
        })
        .await
    }
}

/// Turns an error response into a `Status`: the body's own when it is one, otherwise one
/// built from the HTTP code, so callers can always match on code and reason.
fn decode_status(code: u16, body: &[u8]) -> Status {
    if let Ok(mut s) = serde_json::from_slice::<Status>(body)
        && (!s.reason.is_empty() || !s.message.is_empty())
    {
        if s.code == 0 {
            s.code = code;
        }
        return s;
    }
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    Status::failure(String::from_utf8_lossy(body).trim(), reason).with_code(code)
}

/// What a delete answered: the object (still terminating, or as it was deleted), or a bare
/// `Status` for resources that return one.
#[derive(Debug, Clone)]
pub enum DeleteOutcome<K> {
    /// The object as the server last had it.
    Object(K),
    /// A success `Status`.
    Status(Box<Status>),
}

/// A stream of watch events, ended by the server's timeout or a dropped connection.
pub type WatchStream<K> = Pin<Box<dyn Stream<Item = Result<WatchEvent<K>>> + Send>>;

/// Access to one resource type in one namespace (or all namespaces / cluster scope).
///
/// `K` is a k8s-openapi type for typed access, or `serde_json::Value` for dynamic access.
pub struct Api<K> {
    client: Client,
    req: RequestBuilder,
    _k: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            req: self.req.clone(),
            _k: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Api<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("req", &self.req).finish()
    }
}

impl<K: k8s_openapi::Resource> Api<K>
where
    K::Scope: 'static,
{
    /// Objects of `K` in namespace `ns`.
    pub fn namespaced(client: Client, ns: &str) -> Self {
        Self::with_info(client, ResourceInfo::of::<K>(), Some(ns))
    }

    /// Objects of `K` in the client's default namespace.
    pub fn default_namespaced(client: Client) -> Self {
        let ns = client.default_namespace().to_string();
        Self::namespaced(client, &ns)
    }

    /// Objects of `K` across all namespaces (or cluster-scoped objects).
    pub fn all(client: Client) -> Self {
        Self::with_info(client, ResourceInfo::of::<K>(), None)
    }
}

impl Api<Value> {
    /// Dynamic access to any resource described by `info`, objects as JSON.
    pub fn dynamic(client: Client, info: ResourceInfo, ns: Option<&str>) -> Self {
        Self::with_info(client, info, ns)
    }
}

impl Api<crate::informer::DynamicObject> {
    /// Dynamic access whose objects carry typed metadata: what a dynamic informer caches.
    pub fn dynamic_objects(client: Client, info: ResourceInfo, ns: Option<&str>) -> Self {
        Self::with_info(client, info, ns)
    }
}

impl<K> Api<K> {
    fn with_info(client: Client, info: ResourceInfo, ns: Option<&str>) -> Self {
        Api {
            client,
            req: RequestBuilder::new(info, ns),
            _k: PhantomData,
        }
    }

    /// The resource this API addresses.
    pub fn info(&self) -> &ResourceInfo {
        self.req.info()
    }

    /// The namespace this API is scoped to, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.req.namespace()
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl<K> Api<K>
where
    K: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    /// Reads one object.
    pub async fn get(&self, name: &str) -> Result<K> {
        self.client.request(self.req.get(name, None)?).await
    }

    /// Reads one object, `None` when it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists one page (or everything, when `lp.limit` is unset).
    pub async fn list(&self, lp: &ListParams) -> Result<ObjectList<K>> {
        self.client.request(self.req.list(lp)?).await
    }

    /// Lists everything matching `lp`, following `continue` tokens page by page. The list's
    /// resourceVersion is the first page's: every page is served from that snapshot.
    pub async fn list_all(&self, lp: &ListParams) -> Result<ObjectList<K>> {
        let mut page = self.list(lp).await?;
        let mut items = std::mem::take(&mut page.items);
        let mut next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        while let Some(token) = next {
            let lp = ListParams {
                continue_token: Some(token),
                resource_version: None,
                ..lp.clone()
            };
            let more = self.list(&lp).await?;
            items.extend(more.items);
            next = more.metadata.continue_.filter(|c| !c.is_empty());
        }
        page.items = items;
        page.metadata.continue_ = None;
        page.metadata.remaining_item_count = None;
        Ok(page)
    }

    /// Creates an object.
    pub async fn create(&self, pp: &PostParams, obj: &K) -> Result<K> {
        self.client.request(self.req.create(pp, obj)?).await
    }

    /// Replaces an object; fails with a conflict if its resourceVersion is stale.
    pub async fn replace(&self, name: &str, pp: &PostParams, obj: &K) -> Result<K> {
        self.client
            .request(self.req.replace(name, None, pp, obj)?)
            .await
    }

    /// Replaces the `status` subresource.
    pub async fn replace_status(&self, name: &str, pp: &PostParams, obj: &K) -> Result<K> {
        self.client
            .request(self.req.replace(name, Some("status"), pp, obj)?)
            .await
    }

    /// Patches an object with any of the four patch types.
    pub async fn patch(&self, name: &str, pp: &PatchParams, patch: &Patch) -> Result<K> {
        self.client
            .request(self.req.patch(name, None, pp, patch)?)
            .await
    }

    /// Patches the `status` subresource.
    pub async fn patch_status(&self, name: &str, pp: &PatchParams, patch: &Patch) -> Result<K> {
        self.client
            .request(self.req.patch(name, Some("status"), pp, patch)?)
            .await
    }

    /// Deletes an object with `DeleteOptions`.
    pub async fn delete(&self, name: &str, dp: &DeleteParams) -> Result<DeleteOutcome<K>> {
        let v: Value = self.client.request(self.req.delete(name, dp)?).await?;
        if v.get("kind").and_then(Value::as_str) == Some("Status") {
            return Ok(DeleteOutcome::Status(Box::new(serde_json::from_value(v)?)));
        }
        Ok(DeleteOutcome::Object(serde_json::from_value(v)?))
    }

    /// Deletes every object matching `lp`; returns what was deleted.
    pub async fn delete_collection(
        &self,
        dp: &DeleteParams,
        lp: &ListParams,
    ) -> Result<ObjectList<K>> {
        self.client
            .request(self.req.delete_collection(dp, lp)?)
            .await
    }

    /// Watches from `resource_version` (empty: current state as ADDED events first).
    ///
    /// A too-old version fails with a 410 [`Error::Api`] up front, or arrives as an ERROR
    /// event carrying a 410 `Status`; either way the caller must re-list.
    pub async fn watch(&self, wp: &WatchParams, resource_version: &str) -> Result<WatchStream<K>> {
        let resp = self
            .client
            .send(self.req.watch(wp, resource_version)?, None)
            .await?;
        Ok(Box::pin(decode_lines::<K>(resp.bytes_stream())))
    }
}

/// Splits a chunked body into JSON lines and decodes each as a watch event.
fn decode_lines<K: DeserializeOwned + Send + 'static>(
    body: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
) -> impl Stream<Item = Result<WatchEvent<K>>> + Send {
    struct State<S> {
        body: Pin<Box<S>>,
        buf: BytesMut,
        done: bool,
    }
    let state = State {
        body: Box::pin(body),
        buf: BytesMut::new(),
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(pos) = st.buf.iter().position(|b| *b == b'\n') {
                let line = st.buf.split_to(pos + 1);
                let line = &line[..pos];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let ev = serde_json::from_slice::<WatchEvent<K>>(line).map_err(Error::from);
                return Some((ev, st));
            }
            if st.done {
                if st.buf.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let rest = std::mem::take(&mut st.buf);
                let ev = serde_json::from_slice::<WatchEvent<K>>(rest.chunk()).map_err(Error::from);
                return Some((ev, st));
            }
            match st.body.next().await {
                Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    st.done = true;
                    st.buf.clear();
                    return Some((Err(Error::Http(e)), st));
                }
                None => st.done = true,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn status_bodies_and_bare_codes() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"configmaps \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"configmaps"},"code":404}"#;
        let s = decode_status(404, body);
        assert!(s.is_not_found());
        assert_eq!(s.details.unwrap().name, "x");
        let s = decode_status(410, b"too old");
        assert_eq!(
            (s.code, s.reason.as_str(), s.message.as_str()),
            (410, "Expired", "too old")
        );
        assert!(Error::Api(Box::new(s)).is_gone());
        let conflict = Error::Api(Box::new(decode_status(409, b"{}")));
        assert!(conflict.is_conflict());
    }

    #[tokio::test]
    async fn watch_lines_split_across_chunks() {
        let lines = concat!(
            r#"{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"1"}}}"#,
            "\n",
            r#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"7"}}}"#,
            "\n",
            r#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}"#,
            "\n"
        );
        let chunks: Vec<reqwest::Result<Bytes>> = lines
            .as_bytes()
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let events: Vec<_> = decode_lines::<ConfigMap>(futures::stream::iter(chunks))
            .collect()
            .await;
        assert_eq!(events.len(), 3);
        assert!(
            matches!(&events[0], Ok(WatchEvent::Added(cm)) if cm.metadata.name.as_deref() == Some("a"))
        );
        assert!(
            matches!(&events[1], Ok(WatchEvent::Bookmark(b)) if b.metadata.resource_version == "7")
        );
        assert!(matches!(&events[2], Ok(WatchEvent::Error(s)) if s.code == 410));
    }
}
