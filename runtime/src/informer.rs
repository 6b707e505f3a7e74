//! Informers: list then watch into an indexed, read-only local cache.
//!
//! Components read the cluster from memory instead of asking the API server every time. An
//! [`Informer`] lists a resource, then watches from the list's resourceVersion and applies
//! every event to its [`Store`]. When the server says the version is too old (410 Expired) it
//! lists again and reconciles the cache with the fresh list, emitting the differences as
//! events, so handlers never miss a change. Connection failures are retried with jittered
//! exponential backoff. A [`SharedInformerFactory`] keeps one informer (one watch) per
//! resource type for a whole process.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span, warn};

use crate::client::{Api, Client};
use crate::error::{Error, Result};
use crate::request::{ListParams, ResourceInfo, WatchParams};
use crate::selector::LabelSelector;
use kube_core::watch::WatchEvent;

/// What an informer can cache: anything carrying Kubernetes object metadata. Every
/// k8s-openapi type ([`Object`]) is one; [`DynamicObject`] covers resources only known at run
/// time (the garbage collector and the namespace controller watch whatever discovery lists).
pub trait Cached: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The object's metadata (name, namespace, uid, resourceVersion, labels …).
    fn meta(&self) -> &ObjectMeta;
}

/// A k8s-openapi object type: what typed informers (and [`SharedInformerFactory::informer`])
/// cache.
pub trait Object:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + Clone
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Object for K where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Clone
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

impl<K: Object> Cached for K {
    fn meta(&self) -> &ObjectMeta {
        self.metadata()
    }
}

/// An object of any resource: typed metadata, everything else kept as JSON.
///
/// Informers need the metadata of what they cache (key, resourceVersion, labels); a plain
/// `serde_json::Value` cannot offer it as a borrowed `ObjectMeta`, so dynamic informers cache
/// this instead. It round-trips the whole object (`apiVersion`, `kind`, `spec`, `status` …
/// live in `rest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct DynamicObject {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Every other top-level field.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl DynamicObject {
    /// A top-level string field such as `apiVersion` or `kind`.
    pub fn str_field(&self, field: &str) -> Option<&str> {
        self.rest.get(field).and_then(serde_json::Value::as_str)
    }
}

impl Cached for DynamicObject {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects.
pub fn object_key(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// A change the informer applied to its cache, as handlers see it.
#[derive(Debug)]
pub enum Event<K> {
    /// A new object (also replayed for existing objects to a handler added late).
    Added(Arc<K>),
    /// An object changed; `old` is the cached version before the change.
    Updated {
        /// Before.
        old: Arc<K>,
        /// After.
        new: Arc<K>,
    },
    /// An object went away (its last known state).
    Deleted(Arc<K>),
    /// Periodic resync: the object did not change, but handlers get a chance to re-check it.
    Resync(Arc<K>),
}

impl<K> Clone for Event<K> {
    fn clone(&self) -> Self {
        match self {
            Event::Added(o) => Event::Added(o.clone()),
            Event::Updated { old, new } => Event::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Event::Deleted(o) => Event::Deleted(o.clone()),
            Event::Resync(o) => Event::Resync(o.clone()),
        }
    }
}

impl<K: Cached> Event<K> {
    /// The object the event is about (the new version for updates).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Event::Added(o) | Event::Deleted(o) | Event::Resync(o) => o,
            Event::Updated { new, .. } => new,
        }
    }

    /// The cache key of the object.
    pub fn key(&self) -> String {
        object_key(self.object().meta())
    }
}

/// A function computing the index values of an object (for example its `spec.nodeName`).
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// Name of the built-in index on `metadata.namespace`.
pub const NAMESPACE_INDEX: &str = "namespace";

struct StoreState<K> {
    items: HashMap<String, Arc<K>>,
    indexers: HashMap<String, IndexFn<K>>,
    /// index name -> index value -> keys.
    indices: HashMap<String, HashMap<String, HashSet<String>>>,
}

impl<K: Cached> StoreState<K> {
    fn index(&mut self, key: &str, obj: &K) {
        for (name, f) in &self.indexers {
            let index = self.indices.entry(name.clone()).or_default();
            for v in f(obj) {
                index.entry(v).or_default().insert(key.to_string());
            }
        }
    }

    fn unindex(&mut self, key: &str, obj: &K) {
        for (name, f) in &self.indexers {
            let Some(index) = self.indices.get_mut(name) else {
                continue;
            };
            for v in f(obj) {
                if let Some(keys) = index.get_mut(&v) {
                    keys.remove(key);
                    if keys.is_empty() {
                        index.remove(&v);
                    }
                }
            }
        }
    }

    fn upsert(&mut self, key: String, obj: Arc<K>) -> Option<Arc<K>> {
        let old = self.items.insert(key.clone(), obj.clone());
        if let Some(o) = &old {
            self.unindex(&key, o);
        }
        self.index(&key, &obj);
        old
    }

    fn remove(&mut self, key: &str) -> Option<Arc<K>> {
        let old = self.items.remove(key);
        if let Some(o) = &old {
            self.unindex(key, o);
        }
        old
    }
}

/// The informer's read-only, indexed cache. Cheap to clone; clones share the cache.
pub struct Store<K> {
    state: Arc<RwLock<StoreState<K>>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            state: self.state.clone(),
        }
    }
}

impl<K: Cached> Default for Store<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Cached> Store<K> {
    /// An empty store with the namespace index.
    pub fn new() -> Self {
        let store = Store {
            state: Arc::new(RwLock::new(StoreState {
                items: HashMap::new(),
                indexers: HashMap::new(),
                indices: HashMap::new(),
            })),
        };
        store.add_indexer(
            NAMESPACE_INDEX,
            Arc::new(|o: &K| o.meta().namespace.clone().into_iter().collect()),
        );
        store
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, StoreState<K>> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, StoreState<K>> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) a custom index and indexes the objects already cached.
    pub fn add_indexer(&self, name: &str, f: IndexFn<K>) {
        let mut st = self.write();
        st.indexers.insert(name.to_string(), f.clone());
        let mut index: HashMap<String, HashSet<String>> = HashMap::new();
        for (key, obj) in &st.items {
            for v in f(obj) {
                index.entry(v).or_default().insert(key.clone());
            }
        }
        st.indices.insert(name.to_string(), index);
    }

    /// The object cached under `key` (`ns/name` or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.read().items.get(key).cloned()
    }

    /// The object `name` in `namespace`.
    pub fn get_namespaced(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.get(&format!("{namespace}/{name}"))
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().items.values().cloned().collect()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<String> {
        self.read().items.keys().cloned().collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.read().items.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Objects whose index `index` has the value `value`.
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<K>> {
        let st = self.read();
        st.indices
            .get(index)
            .and_then(|i| i.get(value))
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| st.items.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Objects in one namespace.
    pub fn by_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.by_index(NAMESPACE_INDEX, namespace)
    }

    /// Objects whose labels match `selector`, optionally within one namespace.
    pub fn by_selector(&self, namespace: Option<&str>, selector: &LabelSelector) -> Vec<Arc<K>> {
        let candidates = match namespace {
            Some(ns) => self.by_namespace(ns),
            None => self.list(),
        };
        let empty = Default::default();
        candidates
            .into_iter()
            .filter(|o| selector.matches(o.meta().labels.as_ref().unwrap_or(&empty)))
            .collect()
    }
}

/// Tuning of an informer.
#[derive(Debug, Clone)]
pub struct InformerConfig {
    /// Re-deliver every cached object as [`Event::Resync`] this often (`None`: never).
    pub resync: Option<Duration>,
    /// Page size of lists.
    pub page_size: u32,
    /// First delay after a failure; doubles per consecutive failure, with ±50 % jitter.
    pub backoff_initial: Duration,
    /// Ceiling of that delay.
    pub backoff_max: Duration,
    /// Server-side watch timeout; each watch uses a random value between this and twice it,
    /// so many informers do not reconnect in lockstep.
    pub watch_timeout: Duration,
}

impl Default for InformerConfig {
    fn default() -> Self {
        InformerConfig {
            resync: None,
            page_size: 500,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            watch_timeout: Duration::from_secs(300),
        }
    }
}

impl InformerConfig {
    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let d = self
            .backoff_initial
            .saturating_mul(1 << exp)
            .min(self.backoff_max);
        d.mul_f64(rand::random_range(0.5..1.5))
    }
}

/// Counters describing what an informer went through (for tests and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InformerStats {
    /// Full lists (the first one and every re-list).
    pub lists: u64,
    /// Watches opened.
    pub watches: u64,
    /// 410 Expired answers that forced a re-list.
    pub expired: u64,
    /// Failures that led to a backoff.
    pub errors: u64,
}

type Handler<K> = Arc<dyn Fn(&Event<K>) + Send + Sync>;

struct Shared<K> {
    api: Api<K>,
    params: ListParams,
    config: InformerConfig,
    store: Store<K>,
    /// Held while the cache changes and handlers run, so a late handler's replay and the
    /// live events neither overlap nor leave a gap.
    handlers: Mutex<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
    lists: AtomicU64,
    watches: AtomicU64,
    expired: AtomicU64,
    errors: AtomicU64,
}

/// A running list+watch of one resource into a [`Store`]. Stops when dropped.
pub struct Informer<K> {
    shared: Arc<Shared<K>>,
    task: JoinHandle<()>,
}

impl<K> Drop for Informer<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K: Cached> Informer<K> {
    /// Starts an informer for the objects `api` addresses that match `params`' selectors.
    /// Must be called inside a Tokio runtime.
    pub fn new(api: Api<K>, params: ListParams, config: InformerConfig) -> Self {
        let shared = Arc::new(Shared {
            api,
            params,
            config,
            store: Store::new(),
            handlers: Mutex::new(Vec::new()),
            synced: watch::channel(false).0,
            lists: AtomicU64::new(0),
            watches: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let span = info_span!("informer", kind = %shared.api.info().kind, namespace = shared.api.namespace().unwrap_or(""));
        let task = tokio::spawn(run(shared.clone()).instrument(span));
        Informer { shared, task }
    }

    /// The cache.
    pub fn store(&self) -> &Store<K> {
        &self.shared.store
    }

    /// Whether the first list has been loaded into the cache.
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until the first list has been loaded, at most `timeout`.
    pub async fn wait_for_sync(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.shared.synced.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|s| *s)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::ShutDown),
            Err(_) => Err(Error::Timeout(format!(
                "{} informer did not sync within {timeout:?}",
                self.shared.api.info().kind
            ))),
        }
    }

    /// A receiver of the synced flag, for waiting on several informers.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.shared.synced.subscribe()
    }

    /// Registers a handler. It first receives [`Event::Added`] for every cached object, then
    /// every change, in order. Handlers run on the informer's task: keep them short (queue a
    /// key) and do not register handlers from inside one.
    pub fn add_handler(&self, handler: impl Fn(&Event<K>) + Send + Sync + 'static) {
        let handler: Handler<K> = Arc::new(handler);
        let mut handlers = self
            .shared
            .handlers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for obj in self.shared.store.list() {
            handler(&Event::Added(obj));
        }
        handlers.push(handler);
    }

    /// Every event from now on (after a replay of the cache as `Added`) on an unbounded
    /// channel, for consumers that prefer a stream to a callback.
    pub fn events(&self) -> mpsc::UnboundedReceiver<Event<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.add_handler(move |ev| {
            let _ = tx.send(ev.clone());
        });
        rx
    }

    /// What the informer went through so far.
    pub fn stats(&self) -> InformerStats {
        let s = &self.shared;
        InformerStats {
            lists: s.lists.load(Ordering::Relaxed),
            watches: s.watches.load(Ordering::Relaxed),
            expired: s.expired.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
        }
    }
}

impl<K: Cached> Shared<K> {
    /// Applies a change to the cache and tells the handlers, atomically with respect to
    /// [`Informer::add_handler`].
    fn apply(&self, change: impl FnOnce(&Store<K>) -> Vec<Event<K>>) {
        let handlers = self.handlers.lock().unwrap_or_else(|p| p.into_inner());
        for ev in change(&self.store) {
            debug!(key = %ev.key(), event = event_name(&ev), "cache changed");
            for h in handlers.iter() {
                h(&ev);
            }
        }
    }

    fn upsert(&self, obj: K) {
        self.apply(|store| {
            let key = object_key(obj.meta());
            let new = Arc::new(obj);
            match store.write().upsert(key, new.clone()) {
                Some(old) => vec![Event::Updated { old, new }],
                None => vec![Event::Added(new)],
            }
        });
    }

    fn delete(&self, obj: K) {
        self.apply(|store| {
            let key = object_key(obj.meta());
            match store.write().remove(&key) {
                Some(_) => vec![Event::Deleted(Arc::new(obj))],
                None => Vec::new(),
            }
        });
    }

    /// Replaces the cache with a fresh list, emitting the differences.
    fn replace(&self, items: Vec<K>) {
        self.apply(|store| {
            let mut st = store.write();
            let mut events = Vec::new();
            let mut fresh = HashSet::with_capacity(items.len());
            for obj in items {
                let key = object_key(obj.meta());
                fresh.insert(key.clone());
                let unchanged = st.items.get(&key).is_some_and(|o| {
                    o.meta().resource_version == obj.meta().resource_version
                        && o.meta().uid == obj.meta().uid
                });
                if unchanged {
                    continue;
                }
                let new = Arc::new(obj);
                match st.upsert(key, new.clone()) {
                    Some(old) => events.push(Event::Updated { old, new }),
                    None => events.push(Event::Added(new)),
                }
            }
            let gone: Vec<String> = st
                .items
                .keys()
                .filter(|k| !fresh.contains(*k))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = st.remove(&key) {
                    events.push(Event::Deleted(old));
                }
            }
            events
        });
    }

    fn resync(&self) {
        self.apply(|store| store.list().into_iter().map(Event::Resync).collect());
    }
}

fn event_name<K>(ev: &Event<K>) -> &'static str {
    match ev {
        Event::Added(_) => "added",
        Event::Updated { .. } => "updated",
        Event::Deleted(_) => "deleted",
        Event::Resync(_) => "resync",
    }
}

/// How a watch ended.
enum WatchEnd {
    /// Normal end (server timeout): watch again from the last version.
    Closed { progressed: bool },
    /// 410: list again.
    Expired,
    /// Something failed: back off, then watch again from the last version.
    Failed(Error),
}

async fn run<K: Cached>(shared: Arc<Shared<K>>) {
    let mut version: Option<String> = None;
    let mut failures = 0u32;
    let mut resync = shared.config.resync.map(|period| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let rv = match version.take() {
            Some(rv) => rv,
            None => match list(&shared).await {
                Ok(rv) => {
                    failures = 0;
                    rv
                }
                Err(e) => {
                    failures += 1;
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    let delay = shared.config.backoff(failures);
                    warn!(error = %e, ?delay, "list failed; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
        };
        let mut last = rv;
        match watch_once(&shared, &mut last, resync.as_mut()).await {
            WatchEnd::Closed { progressed } => {
                if progressed {
                    failures = 0;
                } else {
                    // A watch that ends at once without news: don't spin.
                    failures += 1;
                    tokio::time::sleep(shared.config.backoff(failures)).await;
                }
                version = Some(last);
            }
            WatchEnd::Expired => {
                shared.expired.fetch_add(1, Ordering::Relaxed);
                debug!(resource_version = %last, "watch expired; re-listing");
                version = None;
            }
            WatchEnd::Failed(e) => {
                failures += 1;
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let delay = shared.config.backoff(failures);
                debug!(error = %e, ?delay, "watch failed; reconnecting");
                tokio::time::sleep(delay).await;
                version = Some(last);
            }
        }
    }
}

/// Lists everything into the cache; returns the list's resourceVersion.
async fn list<K: Cached>(shared: &Shared<K>) -> Result<String> {
    let lp = ListParams {
        limit: Some(shared.config.page_size),
        continue_token: None,
        resource_version: None,
        ..shared.params.clone()
    };
    let list = shared.api.list_all(&lp).await?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    shared.lists.fetch_add(1, Ordering::Relaxed);
    debug!(items = list.items.len(), resource_version = %rv, "listed");
    shared.replace(list.items);
    shared.synced.send_replace(true);
    Ok(rv)
}

async fn watch_once<K: Cached>(
    shared: &Shared<K>,
    last: &mut String,
    mut resync: Option<&mut tokio::time::Interval>,
) -> WatchEnd {
    let base = shared.config.watch_timeout.as_secs().max(1);
    let timeout = rand::random_range(base..=base * 2);
    let wp =
        WatchParams::from_list(&shared.params).timeout(u32::try_from(timeout).unwrap_or(u32::MAX));
    shared.watches.fetch_add(1, Ordering::Relaxed);
    let mut stream = match shared.api.watch(&wp, last).await {
        Ok(s) => s,
        Err(e) if e.is_gone() => return WatchEnd::Expired,
        Err(e) => return WatchEnd::Failed(e),
    };
    let started = tokio::time::Instant::now();
    let mut progressed = false;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = async {
                match resync.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                shared.resync();
                continue;
            }
        };
        let event = match next {
            None => {
                let long_enough = started.elapsed() >= Duration::from_secs(1);
                return WatchEnd::Closed {
                    progressed: progressed || long_enough,
                };
            }
            Some(Err(e)) => return WatchEnd::Failed(e),
            Some(Ok(ev)) => ev,
        };
        progressed = true;
        match event {
            WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                if let Some(rv) = &obj.meta().resource_version {
                    last.clone_from(rv);
                }
                shared.upsert(obj);
            }
            WatchEvent::Deleted(obj) => {
                if let Some(rv) = &obj.meta().resource_version {
                    last.clone_from(rv);
                }
                shared.delete(obj);
            }
            WatchEvent::Bookmark(b) => {
                if !b.metadata.resource_version.is_empty() {
                    *last = b.metadata.resource_version;
                }
            }
            WatchEvent::Error(status) => {
                let err = Error::Api(status);
                if err.is_gone() {
                    return WatchEnd::Expired;
                }
                return WatchEnd::Failed(err);
            }
        }
    }
}

/// One informer per resource type for a whole process, so every consumer of, say, Pods
/// shares one watch and one cache.
pub struct SharedInformerFactory {
    client: Client,
    namespace: Option<String>,
    config: InformerConfig,
    informers: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    dynamic: Mutex<HashMap<ResourceInfo, Arc<Informer<DynamicObject>>>>,
    synced: Mutex<Vec<(String, watch::Receiver<bool>)>>,
}

impl SharedInformerFactory {
    /// Informers over all namespaces.
    pub fn new(client: Client, config: InformerConfig) -> Self {
        SharedInformerFactory {
            client,
            namespace: None,
            config,
            informers: Mutex::new(HashMap::new()),
            dynamic: Mutex::new(HashMap::new()),
            synced: Mutex::new(Vec::new()),
        }
    }

    /// Informers limited to one namespace (cluster-scoped types are unaffected).
    pub fn namespaced(client: Client, namespace: &str, config: InformerConfig) -> Self {
        SharedInformerFactory {
            namespace: Some(namespace.to_string()),
            ..Self::new(client, config)
        }
    }

    /// The informer for `K`, started on first use and shared afterwards.
    pub fn informer<K: Object>(&self) -> Arc<Informer<K>>
    where
        K::Scope: 'static,
    {
        let mut map = self.informers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = map.get(&TypeId::of::<K>())
            && let Ok(inf) = existing.clone().downcast::<Informer<K>>()
        {
            return inf;
        }
        let api = match &self.namespace {
            Some(ns) => Api::<K>::namespaced(self.client.clone(), ns),
            None => Api::<K>::all(self.client.clone()),
        };
        let inf = Arc::new(Informer::new(
            api,
            ListParams::default(),
            self.config.clone(),
        ));
        map.insert(TypeId::of::<K>(), inf.clone());
        self.synced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((K::KIND.to_string(), inf.synced()));
        inf
    }

    /// The informer for the resource `info` describes, objects as [`DynamicObject`]; started
    /// on first use and shared afterwards (for resources found through discovery).
    pub fn dynamic_informer(&self, info: &ResourceInfo) -> Arc<Informer<DynamicObject>> {
        let mut map = self.dynamic.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = map.get(info) {
            return existing.clone();
        }
        let api =
            Api::dynamic_objects(self.client.clone(), info.clone(), self.namespace.as_deref());
        let inf = Arc::new(Informer::new(
            api,
            ListParams::default(),
            self.config.clone(),
        ));
        map.insert(info.clone(), inf.clone());
        self.synced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((info.kind.clone(), inf.synced()));
        inf
    }

    /// Waits until every informer created so far has synced, at most `timeout` in total.
    pub async fn wait_for_sync(&self, timeout: Duration) -> Result<()> {
        let receivers = self
            .synced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let deadline = tokio::time::Instant::now() + timeout;
        for (kind, mut rx) in receivers {
            match tokio::time::timeout_at(deadline, rx.wait_for(|s| *s)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(Error::ShutDown),
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "{kind} informer did not sync within {timeout:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, PodSpec};
    use std::collections::BTreeMap;

    fn pod(ns: &str, name: &str, node: &str, app: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([("app".into(), app.into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()).filter(|n: &String| !n.is_empty()),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn names(mut v: Vec<Arc<Pod>>) -> Vec<String> {
        v.sort_by_key(|p| object_key(&p.metadata));
        v.iter().map(|p| object_key(&p.metadata)).collect()
    }

    #[test]
    fn store_indexes_by_namespace_label_and_custom_index() {
        let store: Store<Pod> = Store::new();
        {
            let mut st = store.write();
            for p in [
                pod("a", "p1", "n1", "web"),
                pod("a", "p2", "n2", "db"),
                pod("b", "p3", "n1", "web"),
                pod("b", "p4", "", "web"),
            ] {
                st.upsert(object_key(&p.metadata), Arc::new(p));
            }
        }
        // Added after the fact: existing objects are indexed too.
        store.add_indexer(
            "spec.nodeName",
            Arc::new(|p: &Pod| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .into_iter()
                    .collect()
            }),
        );
        assert_eq!(names(store.by_namespace("a")), ["a/p1", "a/p2"]);
        assert_eq!(
            names(store.by_index("spec.nodeName", "n1")),
            ["a/p1", "b/p3"]
        );
        let web = LabelSelector::parse("app=web").unwrap();
        assert_eq!(
            names(store.by_selector(None, &web)),
            ["a/p1", "b/p3", "b/p4"]
        );
        assert_eq!(names(store.by_selector(Some("b"), &web)), ["b/p3", "b/p4"]);

        // Moving a pod to another node re-indexes it; removing it unindexes it.
        store
            .write()
            .upsert("a/p1".into(), Arc::new(pod("a", "p1", "n2", "web")));
        assert_eq!(names(store.by_index("spec.nodeName", "n1")), ["b/p3"]);
        assert_eq!(
            names(store.by_index("spec.nodeName", "n2")),
            ["a/p1", "a/p2"]
        );
        store.write().remove("a/p2");
        assert_eq!(names(store.by_index("spec.nodeName", "n2")), ["a/p1"]);
        assert_eq!(names(store.by_namespace("a")), ["a/p1"]);
        assert!(store.get("a/p2").is_none());
        assert_eq!(
            store
                .get_namespaced("b", "p3")
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("p3")
        );
    }

    #[test]
    fn dynamic_objects_round_trip_and_are_indexed_like_typed_ones() {
        let json = serde_json::json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "a", "uid": "u", "labels": {"app": "web"}},
            "spec": {"size": 3}
        });
        let obj: DynamicObject = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(obj.str_field("kind"), Some("Widget"));
        assert_eq!(obj.meta().uid.as_deref(), Some("u"));
        assert_eq!(serde_json::to_value(&obj).unwrap(), json);
        let store: Store<DynamicObject> = Store::new();
        store.write().upsert(object_key(obj.meta()), Arc::new(obj));
        assert!(store.get_namespaced("a", "w").is_some());
        let web = LabelSelector::parse("app=web").unwrap();
        assert_eq!(store.by_selector(Some("a"), &web).len(), 1);
        assert!(store.by_namespace("b").is_empty());
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let c = InformerConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..InformerConfig::default()
        };
        for _ in 0..50 {
            let d1 = c.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 < Duration::from_millis(150));
            let d3 = c.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 < Duration::from_millis(600));
            assert!(c.backoff(30) < Duration::from_millis(1500));
        }
    }
}
