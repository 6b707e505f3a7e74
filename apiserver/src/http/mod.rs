//! The HTTP edge: routing, body decoding, content negotiation, and `Error` → `Status`.
//!
//! Everything below this module speaks `serde_json::Value` and [`crate::Error`]; this module is
//! the only place that knows about HTTP.

pub mod authn;
pub mod discovery;
mod metrics;
mod negotiate;
pub mod node_proxy;
pub mod openapi;
pub mod request;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

pub use metrics::Metrics;

use crate::error::Error;
use crate::patch::PatchType;
use crate::printers;
use crate::registry::{
    DeleteOptions, FieldValidation, ListOptions, Listed, Registry, ScaleChange, WriteOptions,
    Written,
};
use crate::resources::Subresource;
use negotiate::TableVersion;
use request::{Query, Target};

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Shared state of every request handler.
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Set to true at shutdown; open watches end when it flips.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Who may ask (bearer tokens; anonymous only where allowed).
    pub authentication: authn::Authentication,
    /// The cluster CA bundle served on `/cacerts` (HTTPS servers only).
    pub ca_bundle: Option<String>,
    /// The client logs, exec and port-forward reach kubelets with.
    pub kubelet: reqwest::Client,
}

/// The router serving the whole API.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri) = (parts.method.clone(), parts.uri.clone());
    let path = uri.path().to_string();
    let query = Query::parse(uri.query());
    let authorization = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    if let Err(e) = state.authentication.authenticate(authorization, &path) {
        tracing::debug!(%path, "unauthenticated request refused");
        return error_response(&e);
    }
    let (verb, resource, result) = match request::parse_resource_path(&path) {
        Ok(Some(target)) if node_proxy::serves(&target) => {
            let verb = verb_of(&method, &target, &query);
            let request = Request::from_parts(parts, body);
            let result = node_proxy::serve(&state, &target, &query, uri.query(), request).await;
            (verb, target.rt.resource, result)
        }
        Ok(Some(target)) => {
            let verb = verb_of(&method, &target, &query);
            let resource = target.rt.resource;
            let result = match read_body(body).await {
                Ok(bytes) => {
                    handle_resource(&state, &method, target, &query, &parts.headers, bytes).await
                }
                Err(e) => Err(e),
            };
            (verb, resource, result)
        }
        Ok(None) => (
            "get",
            "",
            serve_non_resource(&state, &method, &path, &parts.headers),
        ),
        Err(e) => ("get", "", Err(e)),
    };
    let response = result.unwrap_or_else(|e| error_response(&e));
    let code = response.status().as_u16().to_string();
    state
        .metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            verb: verb.to_string(),
            resource: resource.to_string(),
            code,
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&metrics::LatencyLabels {
            verb: verb.to_string(),
            resource: resource.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

fn verb_of(method: &Method, target: &Target, query: &Query) -> &'static str {
    match (method.as_str(), target.name.is_some()) {
        ("GET", false) if query.flag("watch") || target.legacy_watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        ("DELETE", true) => "delete",
        _ => "other",
    }
}

async fn read_body(body: Body) -> Result<Bytes, Error> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Error::TooLarge(MAX_BODY_BYTES))
}

fn serve_non_resource(
    state: &ApiState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Error::MethodNotAllowed);
    }
    let accept = header(headers, "accept");
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Ok(json_response(StatusCode::OK, &discovery::version())),
        ["cacerts"] => state
            .ca_bundle
            .as_deref()
            .map(|ca| {
                // Exactly the bytes the join token's CA hash was computed over.
                (
                    StatusCode::OK,
                    [("content-type", "application/x-pem-file")],
                    ca.to_string(),
                )
                    .into_response()
            })
            .ok_or(Error::NoSuchResource),
        ["healthz" | "livez" | "readyz", ..] => Ok(text_response("ok")),
        ["metrics"] => Ok(Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Body::from(state.metrics.render()))
            .unwrap_or_default()),
        ["api"] if negotiate::wants_aggregated_discovery(accept) => {
            Ok(aggregated_response(discovery::aggregated(true)))
        }
        ["api"] => Ok(json_response(StatusCode::OK, &discovery::core_versions())),
        ["apis"] if negotiate::wants_aggregated_discovery(accept) => {
            Ok(aggregated_response(discovery::aggregated(false)))
        }
        ["apis"] => Ok(json_response(StatusCode::OK, &discovery::group_list())),
        ["api", version] => discovery::resource_list("", version)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or(Error::NoSuchResource),
        ["apis", group] => discovery::group(group)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or(Error::NoSuchResource),
        ["apis", group, version] => discovery::resource_list(group, version)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or(Error::NoSuchResource),
        ["openapi", "v3"] => Ok(json_response(StatusCode::OK, &openapi::root())),
        ["openapi", "v3", "api", version] => openapi::group_version_document("", version)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or(Error::NoSuchResource),
        ["openapi", "v3", "apis", group, version] => {
            openapi::group_version_document(group, version)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or(Error::NoSuchResource)
        }
        _ => Err(Error::NoSuchResource),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Parses a JSON or YAML request body.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Error> {
    let content_type = header(headers, "content-type").to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| Error::bad_request(format!("error decoding JSON request body: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| Error::bad_request(format!("error decoding YAML request body: {e}"))),
        _ => Err(Error::UnsupportedMediaType(
            "application/json, application/yaml".into(),
        )),
    }
}

fn write_options(query: &Query) -> Result<WriteOptions, Error> {
    let field_manager = query.get("fieldManager").map(str::to_string);
    if let Some(m) = &field_manager
        && (m.chars().count() > 128 || m.chars().any(|c| c.is_control()))
    {
        return Err(Error::bad_request(
            "fieldManager: Invalid value: must be at most 128 printable characters",
        ));
    }
    Ok(WriteOptions {
        dry_run: query.dry_run()?,
        field_manager,
        field_validation: FieldValidation::parse(query.get("fieldValidation"))?,
        force: query.flag("force"),
    })
}

fn delete_options(query: &Query, body: &[u8], headers: &HeaderMap) -> Result<DeleteOptions, Error> {
    let mut v = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(headers, body)?
    };
    if !v.is_object() {
        return Err(Error::bad_request("DeleteOptions must be an object"));
    }
    if let Some(g) = query.number("gracePeriodSeconds")? {
        v["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = query.get("propagationPolicy") {
        v["propagationPolicy"] = json!(p);
    }
    if query.dry_run()? {
        v["dryRun"] = json!(["All"]);
    }
    DeleteOptions::from_json(&v)
}

fn list_options(query: &Query) -> Result<ListOptions, Error> {
    Ok(ListOptions {
        label_selector: query.get("labelSelector").map(str::to_string),
        field_selector: query.get("fieldSelector").map(str::to_string),
        limit: query
            .number("limit")?
            .map(|l| usize::try_from(l.max(0)).unwrap_or(0)),
        continue_token: query.get("continue").map(str::to_string),
        resource_version: query.get("resourceVersion").map(str::to_string),
    })
}

async fn handle_resource(
    state: &Arc<ApiState>,
    method: &Method,
    target: Target,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let registry = &state.registry;
    let rt = target.rt;
    let ns = target.namespace.as_deref();
    let table = negotiate::wants_table(header(headers, "accept"));
    let include_object = query.get("includeObject").unwrap_or("Metadata").to_string();
    let name = match target.name.as_deref() {
        None => {
            return match *method {
                Method::GET if query.flag("watch") || target.legacy_watch => {
                    watch(state, &target, query, table, include_object).await
                }
                Method::GET => {
                    let listed = registry.list(rt, ns, &list_options(query)?).await?;
                    Ok(list_response(rt, listed, table, &include_object))
                }
                Method::POST => {
                    let opts = write_options(query)?;
                    let written = registry
                        .create(rt, ns, parse_body(headers, &body)?, &opts)
                        .await?;
                    Ok(written_response(written))
                }
                Method::DELETE => {
                    let opts = delete_options(query, &body, headers)?;
                    let deleted = registry
                        .delete_collection(rt, ns, &list_options(query)?, &opts)
                        .await?;
                    Ok(json_response(
                        StatusCode::OK,
                        &json!({
                            "kind": format!("{}List", rt.kind),
                            "apiVersion": rt.api_version(),
                            "metadata": {},
                            "items": deleted,
                        }),
                    ))
                }
                _ => Err(Error::MethodNotAllowed),
            };
        }
        Some(name) => name,
    };
    let sub = match target.subresource.as_deref() {
        None => None,
        Some("finalize") if rt.kind == "Namespace" => Some(SubTarget::Finalize),
        Some(s) => Some(SubTarget::Served(
            rt.subresource(s).ok_or(Error::NoSuchResource)?,
        )),
    };
    match (sub, method.clone()) {
        (None, Method::GET) => {
            let obj = registry.get(rt, ns, name).await?;
            Ok(object_response(rt, obj, table, &include_object))
        }
        (
            None | Some(SubTarget::Served(Subresource::Status)) | Some(SubTarget::Finalize),
            Method::PUT,
        ) => {
            let status = matches!(sub, Some(SubTarget::Served(Subresource::Status)));
            let opts = write_options(query)?;
            let body = parse_body(headers, &body)?;
            let written = if matches!(sub, Some(SubTarget::Finalize)) {
                registry.finalize_namespace(rt, name, body, &opts).await?
            } else {
                let s = status.then_some(Subresource::Status);
                registry.update(rt, ns, name, body, s, &opts).await?
            };
            Ok(written_response(written))
        }
        (None | Some(SubTarget::Served(Subresource::Status)), Method::PATCH) => {
            let status = matches!(sub, Some(SubTarget::Served(Subresource::Status)));
            let patch_type = patch_type(headers)?;
            let opts = write_options(query)?;
            let s = status.then_some(Subresource::Status);
            let written = registry
                .patch(rt, ns, name, patch_type, &body, s, &opts)
                .await?;
            Ok(written_response(written))
        }
        (None, Method::DELETE) => {
            let opts = delete_options(query, &body, headers)?;
            let obj = registry.delete(rt, ns, name, &opts).await?;
            Ok(json_response(StatusCode::OK, &obj))
        }
        (Some(SubTarget::Served(Subresource::Status)), Method::GET) => {
            let obj = registry.get(rt, ns, name).await?;
            Ok(json_response(StatusCode::OK, &obj))
        }
        (Some(SubTarget::Served(Subresource::Scale)), Method::GET) => Ok(json_response(
            StatusCode::OK,
            &registry.get_scale(rt, ns, name).await?,
        )),
        (Some(SubTarget::Served(Subresource::Scale)), Method::PUT) => {
            let opts = write_options(query)?;
            let mut warnings = Vec::new();
            let scale = crate::registry::decode_as(
                "autoscaling",
                "v1",
                "Scale",
                parse_body(headers, &body)?,
                opts.field_validation,
                &mut warnings,
            )?;
            let v = registry
                .update_scale(rt, ns, name, ScaleChange::Replace(scale), &opts)
                .await?;
            Ok(json_response(StatusCode::OK, &v))
        }
        (Some(SubTarget::Served(Subresource::Scale)), Method::PATCH) => {
            let opts = write_options(query)?;
            let t = patch_type(headers)?;
            if t == PatchType::Apply {
                return Err(Error::UnsupportedMediaType(
                    "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json".into(),
                ));
            }
            let v = registry
                .update_scale(rt, ns, name, ScaleChange::Patch(t, &body), &opts)
                .await?;
            Ok(json_response(StatusCode::OK, &v))
        }
        (Some(SubTarget::Served(Subresource::Binding)), Method::POST) => {
            let binding = parse_body(headers, &body)?;
            registry.bind(rt, ns, name, &binding).await?;
            Ok(success_status(StatusCode::CREATED))
        }
        (Some(SubTarget::Served(Subresource::Eviction)), Method::POST) => {
            let eviction = parse_body(headers, &body)?;
            registry.evict(rt, ns, name, &eviction).await?;
            Ok(success_status(StatusCode::CREATED))
        }
        (Some(SubTarget::Served(s @ Subresource::Attach)), _) => {
            // Streaming to containers goes through the node agents (issue 6); `log`, `exec`
            // and `portforward` are served by `node_proxy`.
            let pod = registry.get(rt, ns, name).await?;
            let node = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if node.is_empty() {
                return Err(Error::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            }
            Err(Error::bad_request(format!(
                "pods/{} is not available yet: node agent connections are not implemented",
                s.name()
            )))
        }
        _ => Err(Error::MethodNotAllowed),
    }
}

#[derive(Clone, Copy)]
enum SubTarget {
    Served(Subresource),
    Finalize,
}

fn patch_type(headers: &HeaderMap) -> Result<PatchType, Error> {
    let ct = header(headers, "content-type");
    PatchType::from_content_type(ct).ok_or_else(|| {
        Error::UnsupportedMediaType(
            "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml".into(),
        )
    })
}

async fn watch(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    table: Option<TableVersion>,
    include_object: String,
) -> Result<Response, Error> {
    let rt = target.rt;
    let (sub, filter) = state
        .registry
        .watch(
            rt,
            target.namespace.as_deref(),
            query.get("labelSelector"),
            query.get("fieldSelector"),
            query.get("resourceVersion"),
        )
        .await?;
    let timeout = match query.number("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        // Like kube-apiserver: without a timeout, a random one between 30 and 60 minutes.
        _ => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };
    let params = watch::WatchParams {
        table,
        include_object,
        bookmarks: query.flag("allowWatchBookmarks"),
        bookmark_interval: state.bookmark_interval,
        timeout,
        shutdown: state.shutdown.subscribe(),
    };
    state.metrics.watchers.inc();
    let st = state.clone();
    Ok(watch::respond(
        rt,
        state.registry.cache(rt).clone(),
        sub,
        filter,
        params,
        move || {
            st.metrics.watchers.dec();
        },
    ))
}

#[derive(Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

fn list_metadata(listed: &Listed) -> Value {
    let mut metadata = json!({"resourceVersion": listed.resource_version.to_string()});
    if let Some(c) = &listed.continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(r) = listed.remaining {
        metadata["remainingItemCount"] = json!(r);
    }
    metadata
}

fn list_response(
    rt: &crate::resources::ResourceType,
    listed: Listed,
    table: Option<TableVersion>,
    include_object: &str,
) -> Response {
    if let Some(TableVersion(v)) = table {
        let objects: Vec<Value> = listed.items.iter().map(|o| (**o).clone()).collect();
        let mut t = printers::table(
            rt.group,
            rt.kind,
            &objects,
            &listed.resource_version.to_string(),
            true,
            include_object,
            jiff::Timestamp::now(),
        );
        t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
        t["metadata"] = list_metadata(&listed);
        return json_response(StatusCode::OK, &t);
    }
    let body = ListBody {
        kind: format!("{}List", rt.kind),
        api_version: rt.api_version(),
        metadata: list_metadata(&listed),
        items: listed.items.iter().map(|a| &**a).collect(),
    };
    bytes_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

fn object_response(
    rt: &crate::resources::ResourceType,
    obj: Value,
    table: Option<TableVersion>,
    include_object: &str,
) -> Response {
    match table {
        Some(TableVersion(v)) => {
            let rv = crate::objmeta::meta_str(&obj, "resourceVersion")
                .unwrap_or("")
                .to_string();
            let mut t = printers::table(
                rt.group,
                rt.kind,
                std::slice::from_ref(&obj),
                &rv,
                true,
                include_object,
                jiff::Timestamp::now(),
            );
            t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
            json_response(StatusCode::OK, &t)
        }
        None => json_response(StatusCode::OK, &obj),
    }
}

fn written_response(written: Written) -> Response {
    let code = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json_response(code, &written.object);
    for w in written.warnings {
        let value = format!("299 - {}", serde_json::Value::String(w));
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append("warning", v);
        }
    }
    response
}

fn success_status(code: StatusCode) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()}),
    )
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    bytes_response(code, serde_json::to_vec(v).unwrap_or_default())
}

fn bytes_response(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [("content-type", "application/json")], body).into_response()
}

fn aggregated_response(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", negotiate::AGGREGATED_DISCOVERY)],
        serde_json::to_vec(&v).unwrap_or_default(),
    )
        .into_response()
}

fn text_response(s: &'static str) -> Response {
    (
        StatusCode::OK,
        [("content-type", "text/plain; charset=utf-8")],
        s,
    )
        .into_response()
}

/// The `Status` answer of an error.
pub fn error_response(e: &Error) -> Response {
    let (code, _) = e.code_and_reason();
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}
