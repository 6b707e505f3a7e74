//! The generic registry: create, read, update, patch, delete and watch for every kind in
//! [`crate::resources::RESOURCES`], with Kubernetes' semantics.
//!
//! Every write is a read-decide-CAS loop ([`Registry::guaranteed_update`]): read the stored
//! object, decide in pure code what to write, compare-and-swap on its revision, retry on a race.
//! Reads for lists and watches come from the watch caches; single-object reads and the reads
//! inside writes go to the store, so a write never acts on a stale cache.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tracing::{Instrument, info_span};

use crate::allocator::{self, Allocator, NodePortNeed};
use crate::error::{Cause, Error};
use crate::filter::Filter;
use crate::objmeta;
use crate::patch::{self, PatchType};
use crate::resources::{self, ResourceType, Subresource};
use crate::storage::{StorageError, Store};
use crate::strategy;
use crate::watchcache::{CacheConfig, Subscription, WatchCache, WatchStart};

/// Namespaces that exist from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces Kubernetes refuses to delete.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// How many times a write retries after losing a compare-and-swap race.
const MAX_RETRIES: usize = 32;

/// How the request wants unknown fields handled (`?fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; anything unknown is a 400 like kube-apiserver's.
    pub fn parse(s: Option<&str>) -> Result<Self, Error> {
        match s {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(Error::bad_request(format!(
                "fieldValidation parameter unsupported: {other}, must be one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Options every write carries.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    /// Server-side apply: take over fields other managers own.
    pub force: bool,
}

/// The result of a write.
#[derive(Debug)]
pub struct Written {
    pub object: Value,
    /// True when the write created the object (201 rather than 200).
    pub created: bool,
    /// Warnings for the `Warning` response header (e.g. unknown fields under Warn).
    pub warnings: Vec<String>,
}

/// `DeleteOptions` as far as the registry acts on them.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` body (or query parameters already merged into JSON).
    pub fn from_json(v: &Value) -> Result<Self, Error> {
        if !v.is_object() && !v.is_null() {
            return Err(Error::bad_request("DeleteOptions must be an object"));
        }
        let grace = match v.get("gracePeriodSeconds") {
            None | Some(Value::Null) => None,
            Some(g) => Some(g.as_i64().ok_or_else(|| {
                Error::bad_request("DeleteOptions.gracePeriodSeconds must be an integer")
            })?),
        };
        let mut propagation = v
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(p) = &propagation
            && !["Orphan", "Background", "Foreground"].contains(&p.as_str())
        {
            return Err(Error::Invalid {
                kind: "DeleteOptions".into(),
                name: String::new(),
                causes: vec![Cause::not_supported(
                    "propagationPolicy",
                    &json!(p),
                    &["Foreground", "Background", "Orphan"],
                )],
            });
        }
        if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) && propagation.is_none()
        {
            propagation = Some("Orphan".into());
        }
        let dry_run = match v.get("dryRun") {
            Some(Value::Array(a)) => a.iter().any(|x| x == "All"),
            _ => false,
        };
        Ok(Self {
            grace_period_seconds: grace,
            propagation_policy: propagation,
            precondition_uid: v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_resource_version: v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            dry_run,
        })
    }
}

/// Paging and selection of a list.
#[derive(Debug, Default)]
pub struct ListOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// `resourceVersion` query parameter: None/"" for a consistent read, "0" for any.
    pub resource_version: Option<String>,
}

/// A list answer.
pub struct Listed {
    pub items: Vec<Arc<Value>>,
    pub resource_version: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// What a decision inside [`Registry::guaranteed_update`] asks the store to do.
enum Decision {
    Create(Value),
    Put(Value),
    Delete(Value),
    Unchanged(Value),
}

/// The serving core: the store, one cache per resource, allocators.
pub struct Registry {
    store: Arc<dyn Store>,
    caches: HashMap<(&'static str, &'static str), Arc<WatchCache>>,
    allocator: Allocator,
    admission: strategy::Admission,
}

/// Server-side settings of the registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub service_cidr: crate::allocator::Ipv4Range,
    pub node_port_range: crate::allocator::PortRange,
    pub cache: CacheConfig,
    /// `tolerationSeconds` of the not-ready/unreachable tolerations pods get by default
    /// (kube-apiserver's `--default-toleration-seconds`).
    pub default_toleration_seconds: i64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            service_cidr: "10.96.0.0/16".parse().expect("valid default CIDR"),
            node_port_range: "30000-32767".parse().expect("valid default range"),
            cache: CacheConfig::default(),
            default_toleration_seconds: strategy::Admission::default().default_toleration_seconds,
        }
    }
}

/// Current time as Kubernetes writes it (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn rfc3339_in(seconds: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn storage_error(rt: &ResourceType, name: &str, e: StorageError) -> Error {
    match e {
        StorageError::AlreadyExists(_) => Error::AlreadyExists {
            resource: rt.group_resource(),
            name: name.to_string(),
        },
        StorageError::NotFound(_) => not_found(rt, name),
        StorageError::Conflict { .. } => conflict(rt, name),
        StorageError::Compacted {
            requested,
            compacted,
        } => Error::Gone(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StorageError::Unavailable(m) => Error::Internal(format!("storage unavailable: {m}")),
        StorageError::Internal(m) => Error::Internal(m),
    }
}

fn not_found(rt: &ResourceType, name: &str) -> Error {
    Error::NotFound {
        resource: rt.group_resource(),
        name: name.to_string(),
    }
}

/// The current object inside a write decision, or NotFound when it is gone.
fn current_or_not_found<'a>(
    cur: Option<&'a Value>,
    rt: &ResourceType,
    name: &str,
) -> Result<&'a Value, Error> {
    cur.ok_or_else(|| not_found(rt, name))
}

fn conflict(rt: &ResourceType, name: &str) -> Error {
    Error::Conflict {
        resource: rt.group_resource(),
        name: name.to_string(),
        message: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

fn invalid(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> Error {
    Error::Invalid {
        kind: if rt.group.is_empty() {
            rt.kind.to_string()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        },
        name: name.to_string(),
        causes,
    }
}

/// Serializes for the store. The resourceVersion is never stored (it is the revision), so it
/// is dropped in place rather than by copying the object; callers set the new one afterwards.
fn encode(obj: &mut Value) -> Bytes {
    objmeta::meta_mut(obj).remove("resourceVersion");
    Bytes::from(serde_json::to_vec(obj).unwrap_or_default())
}

fn decode_stored(bytes: &[u8], revision: i64) -> Result<Value, Error> {
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Internal(format!("undecodable object in store: {e}")))?;
    objmeta::set_resource_version(&mut v, revision);
    Ok(v)
}

/// Equal apart from resourceVersion and managedFields timestamps: a no-op write.
fn same_object(a: &Value, b: &Value) -> bool {
    objmeta::for_storage(a) == objmeta::for_storage(b)
}

impl Registry {
    /// Starts a cache per resource, waits for them to load and creates the system namespaces.
    pub async fn new(store: Arc<dyn Store>, config: RegistryConfig) -> Result<Arc<Self>, Error> {
        let caches = resources::RESOURCES
            .iter()
            .map(|rt| {
                (
                    (rt.group, rt.resource),
                    WatchCache::start(rt, store.clone(), config.cache),
                )
            })
            .collect::<HashMap<_, _>>();
        for cache in caches.values() {
            cache.wait_ready().await;
        }
        let registry = Arc::new(Self {
            allocator: Allocator::new(store.clone(), config.service_cidr, config.node_port_range),
            admission: strategy::Admission {
                default_toleration_seconds: config.default_toleration_seconds,
            },
            store,
            caches,
        });
        registry.bootstrap().await?;
        Ok(registry)
    }

    /// The store behind the registry (benchmarks compare against it).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The cache of a resource.
    pub fn cache(&self, rt: &ResourceType) -> &Arc<WatchCache> {
        self.caches
            .get(&(rt.group, rt.resource))
            .expect("every resource has a cache")
    }

    async fn bootstrap(&self) -> Result<(), Error> {
        let ns_rt = resources::lookup("", "v1", "namespaces").expect("namespaces served");
        for ns in SYSTEM_NAMESPACES {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self
                .create(ns_rt, None, body, &WriteOptions::default())
                .await
            {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    // ----- reads -----

    /// Reads one object from the store.
    pub async fn get(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, Error> {
        let key = rt.key(ns, name);
        match self
            .store
            .get(&key)
            .await
            .map_err(|e| storage_error(rt, name, e))?
        {
            Some(kv) => decode_stored(&kv.value, kv.mod_revision),
            None => Err(not_found(rt, name)),
        }
    }

    /// Lists from the cache; a consistent read unless `resourceVersion` is given.
    pub async fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Listed, Error> {
        let filter = Filter::parse(
            rt,
            ns,
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
        )?;
        let cache = self.cache(rt);
        let continued = match opts.continue_token.as_deref().filter(|s| !s.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        match (&continued, opts.resource_version.as_deref()) {
            (Some((rv, _)), _) => {
                if *rv < cache.oldest_revision() {
                    return Err(Error::Gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                    ));
                }
            }
            (None, None | Some("")) if !self.store.reliable_progress() => {
                return self.list_from_store(rt, ns, &filter, opts.limit).await;
            }
            (None, None | Some("")) => {
                cache.wait_fresh().await?;
            }
            (None, Some(rv)) => {
                let rv: i64 = rv
                    .parse()
                    .map_err(|_| Error::bad_request(format!("invalid resourceVersion {rv:?}")))?;
                if rv > 0 {
                    cache.wait_for_revision(rv).await?;
                } else {
                    cache.wait_ready().await;
                }
            }
        }
        let (items, revision) =
            cache.snapshot(&filter, continued.as_ref().map(|(_, k)| k.as_str()));
        let revision = continued.as_ref().map(|(rv, _)| *rv).unwrap_or(revision);
        Ok(page(rt, items, revision, opts.limit))
    }

    /// A consistent list read from the store itself, for backends whose progress notices cannot
    /// prove the cache current (see [`Store::reliable_progress`]).
    async fn list_from_store(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        filter: &Filter,
        limit: Option<usize>,
    ) -> Result<Listed, Error> {
        let (kvs, revision) = self
            .store
            .range(&rt.namespace_prefix(ns))
            .await
            .map_err(|e| storage_error(rt, "", e))?;
        let mut items = Vec::with_capacity(kvs.len());
        for kv in kvs {
            let obj = decode_stored(&kv.value, kv.mod_revision)?;
            if filter.matches_selectors(&obj) {
                items.push(Arc::new(obj));
            }
        }
        Ok(page(rt, items, revision, limit))
    }

    /// Starts a watch from the cache and the filter that selects its events.
    pub async fn watch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
        resource_version: Option<&str>,
    ) -> Result<(Subscription, Filter), Error> {
        let filter = Filter::parse(rt, ns, label_selector, field_selector)?;
        let start = match resource_version.filter(|s| !s.is_empty()) {
            None | Some("0") => WatchStart::Now,
            Some(rv) => WatchStart::After(
                rv.parse()
                    .map_err(|_| Error::bad_request(format!("invalid resourceVersion {rv:?}")))?,
            ),
        };
        let sub = self.cache(rt).subscribe(start).await?;
        Ok((sub, filter))
    }

    // ----- writes -----

    /// The read-decide-CAS loop behind every write.
    async fn guaranteed_update<F>(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
        mut decide: F,
    ) -> Result<(Value, bool), Error>
    where
        F: FnMut(Option<&Value>) -> Result<Decision, Error>,
    {
        let key = rt.key(ns, name);
        for _ in 0..MAX_RETRIES {
            let current = self
                .store
                .get(&key)
                .await
                .map_err(|e| storage_error(rt, name, e))?;
            let (current_obj, current_rev) = match &current {
                Some(kv) => (
                    Some(decode_stored(&kv.value, kv.mod_revision)?),
                    kv.mod_revision,
                ),
                None => (None, 0),
            };
            let decision = decide(current_obj.as_ref())?;
            if dry_run {
                return Ok(match decision {
                    Decision::Create(v) => (v, true),
                    Decision::Put(v) | Decision::Delete(v) | Decision::Unchanged(v) => (v, false),
                });
            }
            let result = match decision {
                Decision::Unchanged(v) => return Ok((v, false)),
                Decision::Create(mut v) => {
                    let bytes = encode(&mut v);
                    self.store.create(&key, bytes).await.map(|rev| {
                        self.written(rt, &key, &mut v, rev);
                        (v, true)
                    })
                }
                Decision::Put(mut v) => {
                    let bytes = encode(&mut v);
                    self.store
                        .update(&key, bytes, current_rev)
                        .await
                        .map(|rev| {
                            self.written(rt, &key, &mut v, rev);
                            (v, false)
                        })
                }
                Decision::Delete(mut v) => {
                    self.store
                        .delete(&key, Some(current_rev))
                        .await
                        .map(|(_, rev)| {
                            objmeta::set_resource_version(&mut v, rev);
                            self.after_delete(rt, &v);
                            (v, false)
                        })
                }
            };
            match result {
                Ok(done) => return Ok(done),
                Err(
                    StorageError::Conflict { .. }
                    | StorageError::AlreadyExists(_)
                    | StorageError::NotFound(_),
                ) => {
                    continue;
                }
                Err(e) => return Err(storage_error(rt, name, e)),
            }
        }
        Err(conflict(rt, name))
    }

    /// Stamps the revision a write got and hands the object to the cache, which then need not
    /// parse the stored bytes back when the write's event arrives.
    fn written(&self, rt: &ResourceType, key: &str, obj: &mut Value, revision: i64) {
        objmeta::set_resource_version(obj, revision);
        self.cache(rt).offer(key, revision, obj);
    }

    /// Decodes a body for `rt`: kind check, typed decode, unknown-field policy.
    fn decode_body(
        &self,
        rt: &ResourceType,
        body: Value,
        validation: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, Error> {
        let (group, version, kind) = (rt.group, rt.version, rt.kind);
        decode_as(group, version, kind, body, validation, warnings)
    }

    /// The namespace of a new object must exist and not be terminating.
    async fn check_namespace(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(), Error> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns = ns.ok_or_else(|| Error::bad_request("the namespace of the object is required"))?;
        let ns_rt = resources::lookup("", "v1", "namespaces").expect("namespaces served");
        // The cache answers the common case without a store read; a namespace created a moment
        // ago that the cache has not seen yet is looked up in the store.
        let cached = self.cache(ns_rt).get(&ns_rt.key(None, ns));
        let terminating = match cached {
            Some(n) => objmeta::is_terminating(&n),
            None => objmeta::is_terminating(&self.get(ns_rt, None, ns).await?),
        };
        if terminating {
            return Err(Error::Forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                rt.group_resource(),
                name,
            )));
        }
        Ok(())
    }

    /// Everything a create does before it is stored: names, metadata, defaults, validation.
    fn prepare_new(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, Error> {
        {
            let meta = objmeta::meta_mut(&mut obj);
            if rt.namespaced {
                match (meta.get("namespace").and_then(Value::as_str), ns) {
                    (Some(body_ns), Some(path_ns)) if !body_ns.is_empty() && body_ns != path_ns => {
                        return Err(Error::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                    _ => {}
                }
                if let Some(ns) = ns {
                    meta.insert("namespace".into(), json!(ns));
                }
            } else {
                meta.remove("namespace");
            }
            let has_name = meta
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name
                && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
                && !prefix.is_empty()
            {
                let name = objmeta::generate_name(prefix, &mut rand::rng());
                meta.insert("name".into(), json!(name));
            }
        }
        let now = now_rfc3339();
        objmeta::prepare_create(
            &mut obj,
            &uuid::Uuid::new_v4().to_string(),
            &now,
            rt.tracks_generation,
        );
        reset_status_on_create(rt, &mut obj);
        let strategy = strategy::strategy_for(rt.group, rt.kind);
        (strategy.default)(&mut obj);
        strategy::admit(rt.group, rt.kind, &mut obj, &self.admission);
        let causes = (strategy.validate)(&obj);
        if !causes.is_empty() {
            return Err(invalid(rt, objmeta::name(&obj), causes));
        }
        if let Some(manager) = &opts.field_manager {
            patch::record_update(rt.group, rt.kind, None, &mut obj, manager, &now);
        }
        Ok(obj)
    }

    /// POST: creates an object.
    pub async fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, Error> {
        let mut warnings = Vec::new();
        let obj = self.decode_body(rt, body, opts.field_validation, &mut warnings)?;
        let mut obj = self.prepare_new(rt, ns, obj, opts)?;
        let name = objmeta::name(&obj).to_string();
        self.check_namespace(rt, ns, &name).await?;
        let span = info_span!("create", resource = rt.resource, key = %rt.key(ns, &name));
        async {
            let allocated = if opts.dry_run {
                Vec::new()
            } else {
                self.allocate_service(rt, &mut obj, None).await?
            };
            let key = rt.key(ns, &name);
            if opts.dry_run {
                return Ok(Written {
                    object: obj,
                    created: true,
                    warnings,
                });
            }
            let bytes = encode(&mut obj);
            match self.store.create(&key, bytes).await {
                Ok(rev) => {
                    self.written(rt, &key, &mut obj, rev);
                    Ok(Written {
                        object: obj,
                        created: true,
                        warnings,
                    })
                }
                Err(e) => {
                    self.release(&allocated).await;
                    Err(storage_error(rt, &name, e))
                }
            }
        }
        .instrument(span)
        .await
    }

    /// PUT: replaces an object (or its status), creating it where the kind allows that.
    pub async fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> Result<Written, Error> {
        let mut warnings = Vec::new();
        let body = self.decode_body(rt, body, opts.field_validation, &mut warnings)?;
        if objmeta::name(&body) != name {
            return Err(Error::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                objmeta::name(&body)
            )));
        }
        let precondition = objmeta::resource_version(&body)
            .transpose()
            .map_err(Error::bad_request)?;
        let existing = self.get(rt, ns, name).await;
        let (obj, created) = match existing {
            Err(Error::NotFound { .. }) if rt.create_on_update && sub.is_none() => {
                self.check_namespace(rt, ns, name).await?;
                let new = self.prepare_new(rt, ns, body.clone(), opts)?;
                self.guaranteed_update(rt, ns, name, opts.dry_run, |cur| match cur {
                    None => Ok(Decision::Create(new.clone())),
                    Some(_) => Err(conflict(rt, name)),
                })
                .await?
            }
            _ => {
                let mut previous = None;
                let result = self
                    .update_claiming_node_ports(rt, ns, name, opts.dry_run, |cur, claims| {
                        let cur = current_or_not_found(cur, rt, name)?;
                        remember_service(rt, cur, &mut previous);
                        if let Some(rv) = precondition
                            && objmeta::resource_version(cur).and_then(Result::ok) != Some(rv)
                        {
                            return Err(conflict(rt, name));
                        }
                        self.decide_update(rt, body.clone(), cur, sub, opts, claims)
                    })
                    .await?;
                if let (Some(old), false) = (previous, opts.dry_run) {
                    self.reconcile_service_allocations(rt, &old, &result.0)
                        .await;
                }
                result
            }
        };
        Ok(Written {
            object: obj,
            created,
            warnings,
        })
    }

    /// The pure part of an update: merge rules, defaults, validation, finalizer completion.
    fn decide_update(
        &self,
        rt: &ResourceType,
        body: Value,
        cur: &Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
        claims: &mut NodePortClaims,
    ) -> Result<Decision, Error> {
        let mut new = match sub {
            Some(Subresource::Status) => objmeta::take_status(&body, cur),
            _ => {
                let mut new = body;
                if rt.has_status() {
                    objmeta::keep_status(&mut new, cur);
                }
                carry_over_service_fields(rt, &mut new, cur);
                if is_service(rt) {
                    let need = allocator::settle_node_ports(&mut new, cur, &claims.granted);
                    if !need.is_empty() && !opts.dry_run {
                        claims.need = Some(need);
                        return Err(Error::Internal("NodePorts must be claimed first".into()));
                    }
                }
                new
            }
        };
        objmeta::prepare_update(&mut new, cur, rt.tracks_generation);
        let strategy = strategy::strategy_for(rt.group, rt.kind);
        (strategy.default)(&mut new);
        if sub.is_none() {
            strategy::admit(rt.group, rt.kind, &mut new, &self.admission);
        }
        let causes = (strategy.validate_update)(&new, cur);
        if !causes.is_empty() {
            return Err(invalid(rt, objmeta::name(cur), causes));
        }
        if let Some(manager) = &opts.field_manager {
            patch::record_update(
                rt.group,
                rt.kind,
                Some(cur),
                &mut new,
                manager,
                &now_rfc3339(),
            );
        }
        if update_completes_deletion(rt, &new) {
            return Ok(Decision::Delete(new));
        }
        if same_object(&new, cur) {
            return Ok(Decision::Unchanged(cur.clone()));
        }
        Ok(Decision::Put(new))
    }

    /// PATCH: applies a JSON, merge, strategic-merge or server-side-apply patch.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> Result<Written, Error> {
        let mut warnings = Vec::new();
        let manager = opts.field_manager.clone();
        if patch_type == PatchType::Apply && manager.as_deref().unwrap_or("").is_empty() {
            return Err(Error::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let applied: Option<Value> = if patch_type == PatchType::Apply {
            let v: Value = serde_yaml_ng::from_slice(body)
                .map_err(|e| Error::bad_request(format!("error decoding YAML: {e}")))?;
            if !v.is_object() {
                return Err(Error::bad_request("apply patch must be an object"));
            }
            Some(v)
        } else {
            None
        };
        let now = now_rfc3339();
        let existing = self.get(rt, ns, name).await;
        if let (Err(Error::NotFound { .. }), Some(applied)) = (&existing, &applied)
            && sub.is_none()
        {
            let created = patch::server_side_apply(
                rt.group,
                rt.kind,
                None,
                applied,
                manager.as_deref().unwrap_or_default(),
                opts.force,
                &now,
            )
            .map_err(patch_error(rt, name))?;
            let decoded = self.decode_body(rt, created, opts.field_validation, &mut warnings)?;
            if objmeta::name(&decoded) != name {
                return Err(Error::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            self.check_namespace(rt, ns, name).await?;
            let mut plain = opts.clone();
            plain.field_manager = None;
            let mut obj = self.prepare_new(rt, ns, decoded, &plain)?;
            let allocated = if opts.dry_run {
                Vec::new()
            } else {
                self.allocate_service(rt, &mut obj, None).await?
            };
            let result = self
                .guaranteed_update(rt, ns, name, opts.dry_run, |cur| match cur {
                    None => Ok(Decision::Create(obj.clone())),
                    Some(_) => Err(conflict(rt, name)),
                })
                .await;
            if result.is_err() {
                self.release(&allocated).await;
            }
            let (object, created) = result?;
            return Ok(Written {
                object,
                created,
                warnings,
            });
        }
        existing?;
        let mut previous = None;
        let mut update_opts = opts.clone();
        if patch_type == PatchType::Apply {
            // Apply records its own managed fields; the update path must not add an Update entry.
            update_opts.field_manager = None;
        }
        let (object, created) = self
            .update_claiming_node_ports(rt, ns, name, opts.dry_run, |cur, claims| {
                let cur = current_or_not_found(cur, rt, name)?;
                remember_service(rt, cur, &mut previous);
                let patched = match &applied {
                    Some(applied) => patch::server_side_apply(
                        rt.group,
                        rt.kind,
                        Some(cur),
                        applied,
                        manager.as_deref().unwrap_or_default(),
                        opts.force,
                        &now,
                    )
                    .map_err(patch_error(rt, name))?,
                    None => patch::apply_patch(rt.group, rt.kind, cur, patch_type, body)
                        .map_err(patch_error(rt, name))?,
                };
                // Only the attempt that lands reports its warnings.
                warnings.clear();
                let decoded =
                    self.decode_body(rt, patched, opts.field_validation, &mut warnings)?;
                if objmeta::resource_version(&decoded).and_then(Result::ok)
                    != objmeta::resource_version(cur).and_then(Result::ok)
                {
                    return Err(conflict(rt, name));
                }
                self.decide_update(rt, decoded, cur, sub, &update_opts, claims)
            })
            .await?;
        if let (Some(old), false) = (previous, opts.dry_run) {
            self.reconcile_service_allocations(rt, &old, &object).await;
        }
        Ok(Written {
            object,
            created,
            warnings,
        })
    }

    /// DELETE: graceful for scheduled pods, deferred while finalizers remain, else immediate.
    pub async fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, Error> {
        if rt.group.is_empty() && rt.kind == "Namespace" && IMMORTAL_NAMESPACES.contains(&name) {
            return Err(Error::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let span = info_span!("delete", resource = rt.resource, key = %rt.key(ns, name));
        let (obj, _) = self
            .guaranteed_update(rt, ns, name, opts.dry_run, |cur| {
                let cur = current_or_not_found(cur, rt, name)?;
                decide_delete(rt, cur, opts)
            })
            .instrument(span)
            .await?;
        Ok(obj)
    }

    /// DELETE on a collection: deletes every object the selectors match.
    pub async fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, Error> {
        let listed = self.list(rt, ns, list).await?;
        let mut deleted = Vec::new();
        for item in listed.items {
            let name = objmeta::name(&item).to_string();
            match self
                .delete(rt, objmeta::namespace(&item), &name, opts)
                .await
            {
                Ok(v) => deleted.push(v),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    // ----- subresources -----

    /// PUT namespaces/x/finalize: replaces `spec.finalizers`; a terminating namespace whose
    /// finalizers are all gone is removed.
    pub async fn finalize_namespace(
        &self,
        rt: &ResourceType,
        name: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, Error> {
        let finalizers = body
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or_else(|| json!([]));
        if !finalizers.is_array() {
            return Err(Error::bad_request("spec.finalizers must be a list"));
        }
        let (object, _) = self
            .guaranteed_update(rt, None, name, opts.dry_run, |cur| {
                let cur = current_or_not_found(cur, rt, name)?;
                let mut new = cur.clone();
                new["spec"]["finalizers"] = finalizers.clone();
                let empty = finalizers.as_array().is_none_or(Vec::is_empty);
                if objmeta::is_terminating(&new) && empty && objmeta::finalizers(&new).is_empty() {
                    return Ok(Decision::Delete(new));
                }
                Ok(Decision::Put(new))
            })
            .await?;
        Ok(Written {
            object,
            created: false,
            warnings: Vec::new(),
        })
    }

    /// GET .../scale: the `autoscaling/v1` Scale view.
    pub async fn get_scale(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, Error> {
        let obj = self.get(rt, ns, name).await?;
        Ok(scale_of(&obj))
    }

    /// PUT or PATCH .../scale: writes `spec.replicas` through the Scale view.
    pub async fn update_scale(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        change: ScaleChange<'_>,
        opts: &WriteOptions,
    ) -> Result<Value, Error> {
        let (obj, _) = self
            .guaranteed_update(rt, ns, name, opts.dry_run, |cur| {
                let cur = current_or_not_found(cur, rt, name)?;
                let scale = scale_of(cur);
                let new_scale = match &change {
                    ScaleChange::Replace(v) => v.clone(),
                    ScaleChange::Patch(t, body) => {
                        patch::apply_patch("autoscaling", "Scale", &scale, *t, body)
                            .map_err(patch_error(rt, name))?
                    }
                };
                if let Some(rv) = objmeta::resource_version(&new_scale).and_then(Result::ok)
                    && Some(rv) != objmeta::resource_version(cur).and_then(Result::ok)
                {
                    return Err(conflict(rt, name));
                }
                let replicas = match new_scale.pointer("/spec/replicas") {
                    None | Some(Value::Null) => 0,
                    Some(r) => r
                        .as_i64()
                        .filter(|r| *r >= 0)
                        .ok_or_else(|| Error::Invalid {
                            kind: "Scale.autoscaling".into(),
                            name: name.to_string(),
                            causes: vec![Cause::invalid(
                                "spec.replicas",
                                r,
                                "must be greater than or equal to 0",
                            )],
                        })?,
                };
                let mut new = cur.clone();
                new["spec"]["replicas"] = json!(replicas);
                self.decide_update(rt, new, cur, None, opts, &mut NodePortClaims::default())
            })
            .await?;
        Ok(scale_of(&obj))
    }

    /// POST pods/binding: assigns a pod to a node, once.
    pub async fn bind(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        binding: &Value,
    ) -> Result<(), Error> {
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Invalid {
                kind: "Binding".into(),
                name: name.to_string(),
                causes: vec![Cause::required("target.name")],
            })?
            .to_string();
        self.guaranteed_update(rt, ns, name, false, |cur| {
            let cur = current_or_not_found(cur, rt, name)?;
            if objmeta::is_terminating(cur) {
                return Err(Error::Conflict {
                    resource: rt.group_resource(),
                    name: name.to_string(),
                    message: "pod is being deleted, cannot be assigned to a host".into(),
                });
            }
            if let Some(existing) = cur
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                return Err(Error::Conflict {
                    resource: rt.group_resource(),
                    name: name.to_string(),
                    message: format!("pod {name} is already assigned to node \"{existing}\""),
                });
            }
            let mut new = cur.clone();
            new["spec"]["nodeName"] = json!(node);
            set_condition(&mut new, "PodScheduled", "True");
            Ok(Decision::Put(new))
        })
        .await?;
        Ok(())
    }

    /// POST pods/eviction: deletes the pod unless a PodDisruptionBudget forbids it.
    pub async fn evict(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        eviction: &Value,
    ) -> Result<(), Error> {
        let pod = self.get(rt, ns, name).await?;
        let pdb_rt =
            resources::lookup("policy", "v1", "poddisruptionbudgets").expect("pdbs served");
        let pdbs = self.list(pdb_rt, ns, &ListOptions::default()).await?;
        let labels = pod
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        for pdb in &pdbs.items {
            let Some(sel) = pdb.pointer("/spec/selector") else {
                continue;
            };
            let Ok(selector) = runtime::selector::LabelSelector::from_label_selector_json(sel)
            else {
                continue;
            };
            if selector.is_empty() || !selector.matches_json(&labels) {
                continue;
            }
            let allowed = pdb
                .pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if allowed < 1 {
                return Err(Error::TooManyRequests(format!(
                    "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {} needs {} healthy pods and has {} currently",
                    objmeta::name(pdb),
                    pdb.pointer("/status/desiredHealthy")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                    pdb.pointer("/status/currentHealthy")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                )));
            }
        }
        let opts = DeleteOptions::from_json(eviction.get("deleteOptions").unwrap_or(&Value::Null))?;
        self.delete(rt, ns, name, &opts).await?;
        Ok(())
    }

    // ----- services -----

    /// `guaranteed_update` for writes that may need new NodePorts (a Service turned NodePort, or
    /// given another port): when an attempt finds ports missing they are claimed in the store
    /// and the attempt repeated; claims the written object does not use are released.
    async fn update_claiming_node_ports<F>(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
        mut decide: F,
    ) -> Result<(Value, bool), Error>
    where
        F: FnMut(Option<&Value>, &mut NodePortClaims) -> Result<Decision, Error>,
    {
        let mut claims = NodePortClaims::default();
        for _ in 0..MAX_RETRIES {
            let result = self
                .guaranteed_update(rt, ns, name, dry_run, |cur| decide(cur, &mut claims))
                .await;
            match claims.need.take() {
                Some(need) if result.is_err() => {
                    if let Err(e) = self.claim_node_ports(&need, &mut claims.granted).await {
                        self.release_ports(&claims.granted).await;
                        return Err(e);
                    }
                }
                _ => {
                    let kept = result
                        .as_ref()
                        .map(|(v, _)| allocator::node_ports(v))
                        .unwrap_or_default();
                    claims.granted.retain(|p| !kept.contains(p));
                    self.release_ports(&claims.granted).await;
                    return result;
                }
            }
        }
        self.release_ports(&claims.granted).await;
        Err(conflict(rt, name))
    }

    async fn claim_node_ports(
        &self,
        need: &NodePortNeed,
        granted: &mut Vec<u16>,
    ) -> Result<(), Error> {
        for (field, port) in &need.explicit {
            granted.push(self.allocator.allocate_port(Some(*port), field).await?);
        }
        for _ in 0..need.any {
            granted.push(self.allocator.allocate_port(None, "spec.ports").await?);
        }
        Ok(())
    }

    async fn release_ports(&self, ports: &[u16]) {
        for p in ports {
            self.allocator.release_port(*p).await;
        }
    }

    async fn allocate_service(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        _old: Option<&Value>,
    ) -> Result<Vec<Allocation>, Error> {
        if !is_service(rt) {
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        let result = self.allocate_service_inner(obj, &mut done).await;
        if let Err(e) = result {
            self.release(&done).await;
            return Err(e);
        }
        Ok(done)
    }

    async fn allocate_service_inner(
        &self,
        obj: &mut Value,
        done: &mut Vec<Allocation>,
    ) -> Result<(), Error> {
        let svc_type = obj
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if svc_type == "ExternalName" {
            return Ok(());
        }
        let requested = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if requested.as_deref() != Some("None") {
            let ip = self
                .allocator
                .allocate_ip(requested.as_deref(), "spec.clusterIP")
                .await?;
            done.push(Allocation::Ip(ip.clone()));
            obj["spec"]["clusterIP"] = json!(ip);
            obj["spec"]["clusterIPs"] = json!([ip]);
        } else {
            obj["spec"]["clusterIPs"] = json!(["None"]);
        }
        if (svc_type == "NodePort" || svc_type == "LoadBalancer")
            && let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut)
        {
            for (i, port) in ports.iter_mut().enumerate() {
                let wanted = port
                    .get("nodePort")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok());
                let field = format!("spec.ports[{i}].nodePort");
                let p = self
                    .allocator
                    .allocate_port(wanted.filter(|p| *p != 0), &field)
                    .await?;
                done.push(Allocation::Port(p));
                port["nodePort"] = json!(p);
            }
        }
        Ok(())
    }

    /// After a Service update, releases what the old spec held and the new one doesn't.
    async fn reconcile_service_allocations(&self, rt: &ResourceType, old: &Value, new: &Value) {
        if !is_service(rt) {
            return;
        }
        let old_ports = allocator::node_ports(old);
        let new_ports = allocator::node_ports(new);
        for p in old_ports.iter().filter(|p| !new_ports.contains(p)) {
            self.allocator.release_port(*p).await;
        }
    }

    async fn release(&self, allocations: &[Allocation]) {
        for a in allocations {
            match a {
                Allocation::Ip(ip) => self.allocator.release_ip(ip).await,
                Allocation::Port(p) => self.allocator.release_port(*p).await,
            }
        }
    }

    /// Frees what a deleted object held (ClusterIPs, NodePorts), in the background.
    fn after_delete(&self, rt: &ResourceType, obj: &Value) {
        if !is_service(rt) {
            return;
        }
        let mut allocations = Vec::new();
        if let Some(ip) = obj.pointer("/spec/clusterIP").and_then(Value::as_str)
            && ip != "None"
            && !ip.is_empty()
        {
            allocations.push(Allocation::Ip(ip.to_string()));
        }
        allocations.extend(allocator::node_ports(obj).into_iter().map(Allocation::Port));
        let store = self.store.clone();
        let allocator = Allocator::new(
            store,
            self.allocator.service_range,
            self.allocator.node_ports,
        );
        tokio::spawn(async move {
            for a in allocations {
                match a {
                    Allocation::Ip(ip) => allocator.release_ip(&ip).await,
                    Allocation::Port(p) => allocator.release_port(p).await,
                }
            }
        });
    }
}

/// Keeps the stored Service a write replaces, so its released NodePorts can be freed after.
fn remember_service(rt: &ResourceType, cur: &Value, previous: &mut Option<Value>) {
    if is_service(rt) {
        *previous = Some(cur.clone());
    }
}

fn is_service(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Service"
}

/// NodePorts claimed for one Service write, and what its last attempt still needed.
#[derive(Default)]
struct NodePortClaims {
    granted: Vec<u16>,
    need: Option<NodePortNeed>,
}

enum Allocation {
    Ip(String),
    Port(u16),
}

/// How a scale write arrives.
pub enum ScaleChange<'a> {
    Replace(Value),
    Patch(PatchType, &'a [u8]),
}

/// Decodes `body` as an object of group/version/kind: checks apiVersion and kind, runs the typed
/// decode, applies the unknown-field policy.
pub fn decode_as(
    group: &str,
    version: &str,
    kind: &str,
    mut body: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Value, Error> {
    let Some(map) = body.as_object_mut() else {
        return Err(Error::bad_request(format!(
            "the body of the request must be a {kind} object"
        )));
    };
    let expected_api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    match map.get("apiVersion") {
        None | Some(Value::Null) => {
            map.insert("apiVersion".into(), json!(expected_api_version));
        }
        Some(Value::String(s)) if s.is_empty() => {
            map.insert("apiVersion".into(), json!(expected_api_version));
        }
        Some(Value::String(s)) if *s == expected_api_version => {}
        Some(other) => {
            return Err(Error::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({expected_api_version})",
                other.as_str().unwrap_or("?")
            )));
        }
    }
    match map.get("kind") {
        None | Some(Value::Null) => {
            map.insert("kind".into(), json!(kind));
        }
        Some(Value::String(s)) if s.is_empty() => {
            map.insert("kind".into(), json!(kind));
        }
        Some(Value::String(s)) if s == kind => {}
        Some(other) => {
            return Err(Error::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({kind})",
                other.as_str().unwrap_or("?")
            )));
        }
    }
    let strategy = strategy::strategy_for(group, kind);
    let decoded = (strategy.decode)(body).map_err(Error::bad_request)?;
    if !decoded.unknown_fields.is_empty() {
        match validation {
            FieldValidation::Strict => {
                let fields: Vec<String> = decoded
                    .unknown_fields
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(Error::BadRequest {
                    message: format!("strict decoding error: {}", fields.join(", ")),
                    causes: decoded
                        .unknown_fields
                        .iter()
                        .map(|f| {
                            Cause::new(
                                "FieldValueInvalid",
                                f.clone(),
                                format!("unknown field \"{f}\""),
                            )
                        })
                        .collect(),
                });
            }
            FieldValidation::Warn => warnings.extend(
                decoded
                    .unknown_fields
                    .iter()
                    .map(|f| format!("unknown field \"{f}\"")),
            ),
            FieldValidation::Ignore => {}
        }
    }
    Ok(decoded.object)
}

fn patch_error(rt: &ResourceType, name: &str) -> impl FnOnce(patch::PatchError) -> Error {
    let resource = rt.group_resource();
    let kind = rt.kind;
    let name = name.to_string();
    move |e| e.into_api_error(&resource, kind, &name)
}

fn is_graceful_pod(rt: &ResourceType, obj: &Value) -> bool {
    rt.kind == "Pod"
        && rt.group.is_empty()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|g| g > 0)
}

/// Whether an update leaves a terminating object nothing to wait for, so it is deleted: no
/// finalizers left, not a pod in its grace period, and for a namespace no `spec.finalizers`
/// either (the namespace controller releases those through `/finalize` once the namespace is
/// empty; a label change or the garbage collector dropping `foregroundDeletion` must not
/// remove a namespace that still has content, as in Kubernetes).
fn update_completes_deletion(rt: &ResourceType, obj: &Value) -> bool {
    let namespace_waits = rt.kind == "Namespace"
        && rt.group.is_empty()
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    objmeta::is_terminating(obj)
        && objmeta::finalizers(obj).is_empty()
        && !is_graceful_pod(rt, obj)
        && !namespace_waits
}

/// The pure decision of a delete.
fn decide_delete(rt: &ResourceType, cur: &Value, opts: &DeleteOptions) -> Result<Decision, Error> {
    let name = objmeta::name(cur).to_string();
    if let Some(uid) = &opts.precondition_uid {
        let actual = objmeta::meta_str(cur, "uid").unwrap_or("");
        if uid != actual {
            return Err(Error::Conflict {
                resource: rt.group_resource(),
                name,
                message: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            });
        }
    }
    if let Some(rv) = &opts.precondition_resource_version {
        let actual = objmeta::meta_str(cur, "resourceVersion").unwrap_or("");
        if rv != actual {
            return Err(Error::Conflict {
                resource: rt.group_resource(),
                name,
                message: format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            });
        }
    }
    let mut new = cur.clone();
    let mut finalizers = objmeta::finalizers(cur);
    let extra = match opts.propagation_policy.as_deref() {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    };
    let terminating = objmeta::is_terminating(cur);
    if let Some(f) = extra
        && !terminating
        && !finalizers.iter().any(|x| x == f)
    {
        finalizers.push(f.to_string());
    }
    if rt.kind == "Namespace" && rt.group.is_empty() {
        let spec_finalizers = cur
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if spec_finalizers || !finalizers.is_empty() {
            if terminating {
                return Ok(Decision::Unchanged(cur.clone()));
            }
            let meta = objmeta::meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            new["status"]["phase"] = json!("Terminating");
            return Ok(Decision::Put(new));
        }
    }
    if !finalizers.is_empty() {
        if terminating && extra.is_none() {
            return Ok(Decision::Unchanged(cur.clone()));
        }
        let meta = objmeta::meta_mut(&mut new);
        if !terminating {
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        meta.insert("finalizers".into(), json!(finalizers));
        return Ok(if same_object(&new, cur) {
            Decision::Unchanged(new)
        } else {
            Decision::Put(new)
        });
    }
    if rt.kind == "Pod" && rt.group.is_empty() {
        let scheduled = cur
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            cur.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let default_grace = cur
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let grace = opts.grace_period_seconds.unwrap_or(default_grace).max(0);
        if scheduled && !finished && grace > 0 {
            let current_grace = cur
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if terminating && current_grace.is_some_and(|g| g <= grace) {
                return Ok(Decision::Unchanged(cur.clone()));
            }
            let meta = objmeta::meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(rfc3339_in(grace)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            return Ok(Decision::Put(new));
        }
    }
    Ok(Decision::Delete(new))
}

/// Kubernetes resets status on create for kinds whose status a controller owns, and starts pods
/// and namespaces in their first phase.
fn reset_status_on_create(rt: &ResourceType, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match (rt.group, rt.kind) {
        ("", "Pod") => {
            let qos = qos_class(map.get("spec").unwrap_or(&Value::Null));
            map.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        ("", "Namespace") => {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        ("", "Node") | ("", "PersistentVolume") | ("", "PersistentVolumeClaim") | ("", "Event") => {
        }
        _ if rt.has_status() => {
            map.insert("status".into(), json!({}));
        }
        _ => {}
    }
}

/// The QoS class a pod's resources put it in.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn set_condition(obj: &mut Value, cond_type: &str, status: &str) {
    let now = now_rfc3339();
    let conditions = obj
        .as_object_mut()
        .map(|m| m.entry("status").or_insert_with(|| json!({})))
        .and_then(|s| {
            if !s.is_object() {
                *s = json!({});
            }
            s.as_object_mut()
        })
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(conditions) = conditions else { return };
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("array ensured above");
    let new = json!({"type": cond_type, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(cond_type))
    {
        Some(c) => *c = new,
        None => list.push(new),
    }
}

/// A Service update that leaves clusterIP or nodePorts empty keeps the allocated ones, so
/// `kubectl replace` and apply of a manifest without them work.
fn carry_over_service_fields(rt: &ResourceType, new: &mut Value, old: &Value) {
    if !is_service(rt) {
        return;
    }
    for field in ["clusterIP", "clusterIPs"] {
        let missing = new
            .pointer(&format!("/spec/{field}"))
            .is_none_or(|v| v.is_null() || v == "");
        if missing
            && let Some(v) = old.pointer(&format!("/spec/{field}"))
            && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert(field.into(), v.clone());
        }
    }
    let old_ports = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut() {
            if port.get("nodePort").is_some_and(|p| !p.is_null()) {
                continue;
            }
            let matching = old_ports.iter().find(|o| {
                o.get("port") == port.get("port")
                    && o.get("protocol").unwrap_or(&json!("TCP"))
                        == port.get("protocol").unwrap_or(&json!("TCP"))
            });
            if let Some(np) = matching.and_then(|o| o.get("nodePort")) {
                port["nodePort"] = np.clone();
            }
        }
    }
}

/// The `autoscaling/v1` Scale of a workload.
fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| runtime::selector::LabelSelector::from_label_selector_json(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": objmeta::name(obj),
            "namespace": objmeta::namespace(obj),
            "uid": objmeta::meta_str(obj, "uid"),
            "resourceVersion": objmeta::meta_str(obj, "resourceVersion"),
            "creationTimestamp": objmeta::meta_str(obj, "creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        }
    })
}

/// Cuts a key-ordered list to `limit` items with a continue token for the rest.
fn page(
    rt: &ResourceType,
    mut items: Vec<Arc<Value>>,
    revision: i64,
    limit: Option<usize>,
) -> Listed {
    let mut continue_token = None;
    let mut remaining = None;
    if let Some(limit) = limit.filter(|l| *l > 0)
        && items.len() > limit
    {
        remaining = Some(items.len() - limit);
        items.truncate(limit);
        let last = items
            .last()
            .map(|o| rt.key(objmeta::namespace(o), objmeta::name(o)))
            .unwrap_or_default();
        continue_token = Some(encode_continue(revision, &last));
    }
    Listed {
        items,
        resource_version: revision,
        continue_token,
        remaining,
    }
}

fn encode_continue(revision: i64, last_key: &str) -> String {
    use base64::Engine;
    let raw = json!({"v": "skiff/v1", "rv": revision, "start": last_key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(i64, String), Error> {
    use base64::Engine;
    let bad = || {
        Error::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version skiff/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, start.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/registry/pods/default/a");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "/registry/pods/default/a".into())
        );
        assert!(decode_continue("!!!").is_err());
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }

    #[test]
    fn scheduled_pods_delete_gracefully_and_unscheduled_at_once() {
        let rt = resources::lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        match decide_delete(rt, &pod, &DeleteOptions::default()).unwrap() {
            Decision::Put(p) => assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30),
            _ => panic!("expected a graceful delete"),
        }
        let unscheduled = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(matches!(
            decide_delete(rt, &unscheduled, &DeleteOptions::default()).unwrap(),
            Decision::Delete(_)
        ));
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            decide_delete(rt, &pod, &opts).unwrap(),
            Decision::Delete(_)
        ));
    }

    #[test]
    fn updates_complete_deletions_only_when_nothing_waits() {
        let cm = resources::lookup("", "v1", "configmaps").unwrap();
        let ns = resources::lookup("", "v1", "namespaces").unwrap();
        let ts = "2026-01-01T00:00:00Z";
        let cases = [
            (cm, json!({"metadata": {"name": "c"}}), false),
            (
                cm,
                json!({"metadata": {"name": "c", "deletionTimestamp": ts, "finalizers": ["x"]}}),
                false,
            ),
            (
                cm,
                json!({"metadata": {"name": "c", "deletionTimestamp": ts}}),
                true,
            ),
            (
                ns,
                json!({"metadata": {"name": "n", "deletionTimestamp": ts}, "spec": {"finalizers": ["kubernetes"]}}),
                false,
            ),
            (
                ns,
                json!({"metadata": {"name": "n", "deletionTimestamp": ts}, "spec": {"finalizers": []}}),
                true,
            ),
        ];
        for (rt, obj, want) in cases {
            assert_eq!(update_completes_deletion(rt, &obj), want, "{obj}");
        }
    }

    #[test]
    fn finalizers_defer_deletion_and_preconditions_are_checked() {
        let rt = resources::lookup("", "v1", "configmaps").unwrap();
        let cm = json!({"metadata": {"name": "c", "uid": "u1", "finalizers": ["x"]}});
        match decide_delete(rt, &cm, &DeleteOptions::default()).unwrap() {
            Decision::Put(c) => assert!(c["metadata"]["deletionTimestamp"].is_string()),
            _ => panic!("expected deletion to wait for the finalizer"),
        }
        let opts = DeleteOptions {
            precondition_uid: Some("other".into()),
            ..Default::default()
        };
        assert!(matches!(
            decide_delete(rt, &cm, &opts),
            Err(Error::Conflict { .. })
        ));
    }
}
