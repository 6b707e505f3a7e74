//! One in-memory cache per resource, fed by a single store watch, serving lists and watches.
//!
//! Like kube-apiserver's cacher: thousands of watchers cost one store watch. Each event is
//! serialized at most once and shared by every watcher (`Arc`); fan-out goes through a bounded
//! broadcast ring, so a slow watcher can neither stall the others nor grow memory — it falls
//! behind the ring, its stream ends, and it re-watches from the last revision it saw (or gets
//! 410 Expired and re-lists).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

use crate::error::Error;
use crate::filter::Filter;
use crate::objmeta;
use crate::resources::ResourceType;
use crate::storage::{EventStream, KeyValue, Store, StoreEvent};

/// How long a consistent read waits for the cache to catch up with the store.
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object, as watchers see it.
#[derive(Debug)]
pub struct CacheEvent {
    pub revision: i64,
    pub event_type: EventType,
    /// The object after the change (for deletes: its last state, at the delete's revision).
    pub object: Arc<Value>,
    /// The object before the change, so selector watchers can turn a change into ADDED/DELETED.
    pub prev: Option<Arc<Value>>,
    json: OnceLock<Bytes>,
}

impl CacheEvent {
    fn new(
        revision: i64,
        event_type: EventType,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Self {
        Self {
            revision,
            event_type,
            object,
            prev,
            json: OnceLock::new(),
        }
    }

    /// The object serialized as JSON, computed once and shared by every watcher.
    pub fn object_json(&self) -> &Bytes {
        self.json.get_or_init(|| {
            Bytes::from(serde_json::to_vec(&*self.object).unwrap_or_else(|_| b"{}".to_vec()))
        })
    }
}

/// Where a new watch starts.
pub enum WatchStart {
    /// The current state as synthetic ADDED events, then changes (resourceVersion unset or "0").
    Now,
    /// Every change after this revision.
    After(i64),
}

/// Where a watcher's live events come from.
enum Live {
    /// The shared in-memory feed (the normal case).
    Cache(broadcast::Receiver<Arc<CacheEvent>>),
    /// A store watch of its own, for a watcher resuming from a revision older than the cache's
    /// history (e.g. right after a server restart) while the store still has that history.
    Store(EventStream),
}

/// A watcher's view: the events to send first, then the live feed.
pub struct Subscription {
    pub initial: Vec<Arc<CacheEvent>>,
    live: Live,
}

impl Subscription {
    /// The next live event; None when the feed has ended (the watcher fell behind, the cache
    /// re-listed, or the store watch failed) and the client must resume.
    pub async fn next(&mut self) -> Option<Arc<CacheEvent>> {
        use futures::StreamExt;
        match &mut self.live {
            Live::Cache(rx) => rx.recv().await.ok(),
            Live::Store(stream) => loop {
                match stream.next().await? {
                    Ok(StoreEvent::Progress { .. }) => continue,
                    Ok(ev) => {
                        if let Some(ev) = event_from_store(ev) {
                            return Some(Arc::new(ev));
                        }
                    }
                    Err(_) => return None,
                }
            },
        }
    }

    /// An event already waiting, without blocking. Store-backed feeds never report buffered
    /// events here.
    pub fn try_next(&mut self) -> Polled {
        match &mut self.live {
            Live::Cache(rx) => match rx.try_recv() {
                Ok(ev) => Polled::Event(ev),
                Err(broadcast::error::TryRecvError::Empty) => Polled::Empty,
                Err(_) => Polled::Ended,
            },
            Live::Store(_) => Polled::Empty,
        }
    }

    /// Whether the feed is the cache's, so the cache's revision bounds what it has delivered.
    pub fn is_cache_backed(&self) -> bool {
        matches!(self.live, Live::Cache(_))
    }
}

/// What [`Subscription::try_next`] found.
pub enum Polled {
    Event(Arc<CacheEvent>),
    /// Nothing buffered right now.
    Empty,
    /// The feed has ended; the client must resume.
    Ended,
}

fn event_from_store(ev: StoreEvent) -> Option<CacheEvent> {
    match ev {
        StoreEvent::Put { kv, prev } => {
            let obj = decode(&kv, kv.mod_revision)?;
            let prev = prev.and_then(|p| decode(&p, p.mod_revision)).map(Arc::new);
            let event_type = if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            };
            Some(CacheEvent::new(
                kv.mod_revision,
                event_type,
                Arc::new(obj),
                prev,
            ))
        }
        StoreEvent::Delete { prev, revision } => {
            let obj = Arc::new(decode(&prev, revision)?);
            Some(CacheEvent::new(
                revision,
                EventType::Deleted,
                obj.clone(),
                Some(obj),
            ))
        }
        StoreEvent::Progress { .. } => None,
    }
}

struct State {
    objects: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// History holds every event with a revision greater than this.
    oldest: i64,
    revision: i64,
    sender: broadcast::Sender<Arc<CacheEvent>>,
}

/// Tuning of every cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Events kept for watches that resume from a past revision.
    pub history: usize,
    /// Events a watcher may fall behind before its stream is ended.
    pub watcher_buffer: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            history: 10_000,
            watcher_buffer: 4_096,
        }
    }
}

/// The cache of one resource.
pub struct WatchCache {
    rt: &'static ResourceType,
    store: Arc<dyn Store>,
    config: CacheConfig,
    state: RwLock<State>,
    revision_tx: watch::Sender<i64>,
    ready_tx: watch::Sender<bool>,
    /// Objects this API server just wrote, by key, with their revision: the feed uses them
    /// instead of parsing the same bytes back from the store.
    offered: std::sync::Mutex<std::collections::HashMap<String, (i64, Arc<Value>)>>,
}

/// Offers kept at most; past it they are dropped (the feed then parses, which is only slower).
const MAX_OFFERED: usize = 16_384;

impl WatchCache {
    /// Creates the cache and starts the task that feeds it from the store.
    pub fn start(
        rt: &'static ResourceType,
        store: Arc<dyn Store>,
        config: CacheConfig,
    ) -> Arc<Self> {
        let (sender, _) = broadcast::channel(config.watcher_buffer);
        let cache = Arc::new(Self {
            rt,
            store,
            config,
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                oldest: 0,
                revision: 0,
                sender,
            }),
            revision_tx: watch::channel(0).0,
            ready_tx: watch::channel(false).0,
            offered: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move { feed(weak).await });
        cache
    }

    /// The newest revision the cache has seen.
    pub fn revision(&self) -> i64 {
        *self.revision_tx.borrow()
    }

    /// Waits until the first list has been loaded.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready_tx.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Waits until the cache reflects every write acknowledged before the call (a consistent
    /// read), and returns the revision it is at.
    pub async fn wait_fresh(&self) -> Result<i64, Error> {
        self.wait_ready().await;
        let target = self.store.current_revision().await.map_err(storage_error)?;
        self.wait_for_revision(target).await
    }

    /// Waits until the cache has seen revision `target`, asking the store for a progress
    /// notice so that quiet resources catch up too.
    pub async fn wait_for_revision(&self, target: i64) -> Result<i64, Error> {
        self.wait_ready().await;
        if self.revision() >= target {
            return Ok(self.revision());
        }
        let mut rx = self.revision_tx.subscribe();
        let waited = tokio::time::timeout(FRESHNESS_TIMEOUT, async {
            loop {
                self.store.request_progress().await.map_err(storage_error)?;
                let caught_up = tokio::time::timeout(Duration::from_millis(200), async {
                    rx.wait_for(|rv| *rv >= target).await.is_ok()
                })
                .await;
                if let Ok(true) = caught_up {
                    return Ok::<_, Error>(());
                }
            }
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(self.revision()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout(format!(
                "Too large resource version: {target}, current: {}",
                self.revision()
            ))),
        }
    }

    /// The objects passing `filter`, in key order, with the cache's revision.
    pub fn snapshot(&self, filter: &Filter, after_key: Option<&str>) -> (Vec<Arc<Value>>, i64) {
        let state = self.state.read().expect("cache lock poisoned");
        let prefix = self.rt.namespace_prefix(filter.namespace.as_deref());
        let start = match after_key {
            Some(k) if k >= prefix.as_str() => std::ops::Bound::Excluded(k.to_string()),
            _ => std::ops::Bound::Included(prefix.clone()),
        };
        let items = state
            .objects
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, v)| filter.matches_selectors(v))
            .map(|(_, v)| v.clone())
            .collect();
        (items, state.revision)
    }

    /// Hands over an object just written at `revision` (with that resourceVersion set).
    pub fn offer(&self, key: &str, revision: i64, obj: &Value) {
        if revision <= self.revision() {
            return; // its event has been applied already
        }
        let mut offered = self.offered.lock().expect("offer lock poisoned");
        if offered.len() >= MAX_OFFERED {
            offered.clear();
        }
        offered.insert(key.to_string(), (revision, Arc::new(obj.clone())));
    }

    fn take_offered(&self, key: &str, revision: i64) -> Option<Arc<Value>> {
        let mut offered = self.offered.lock().expect("offer lock poisoned");
        match offered.remove(key) {
            Some((rev, obj)) if rev == revision => Some(obj),
            Some((rev, obj)) if rev > revision => {
                // A newer write's offer: keep it for its own event.
                offered.insert(key.to_string(), (rev, obj));
                None
            }
            _ => None,
        }
    }

    /// One object by storage key, as the cache last saw it.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.state
            .read()
            .expect("cache lock poisoned")
            .objects
            .get(key)
            .cloned()
    }

    /// The key of an object in this cache (for continue tokens).
    pub fn key_of(&self, obj: &Value) -> String {
        self.rt.key(objmeta::namespace(obj), objmeta::name(obj))
    }

    /// The oldest revision a watch can resume after.
    pub fn oldest_revision(&self) -> i64 {
        self.state.read().expect("cache lock poisoned").oldest
    }

    /// Starts a watch. The initial events and the live feed join without gap or overlap because
    /// both are taken under the same lock that appends new events.
    pub async fn subscribe(&self, start: WatchStart) -> Result<Subscription, Error> {
        self.wait_ready().await;
        if let WatchStart::After(rv) = start
            && rv > self.revision()
        {
            self.wait_for_revision(rv).await?;
        }
        if let WatchStart::After(rv) = start {
            let oldest = self.state.read().expect("cache lock poisoned").oldest;
            if rv < oldest {
                return match self.store.watch(&self.rt.prefix(), rv + 1).await {
                    Ok(stream) => Ok(Subscription {
                        initial: Vec::new(),
                        live: Live::Store(stream),
                    }),
                    Err(crate::storage::StorageError::Compacted { .. }) => Err(Error::Gone(
                        format!("too old resource version: {rv} ({oldest})"),
                    )),
                    Err(e) => Err(storage_error(e)),
                };
            }
        }
        let state = self.state.read().expect("cache lock poisoned");
        let initial = match start {
            WatchStart::Now => state
                .objects
                .values()
                .map(|obj| {
                    let rv = objmeta::resource_version(obj)
                        .and_then(Result::ok)
                        .unwrap_or(state.revision);
                    Arc::new(CacheEvent::new(rv, EventType::Added, obj.clone(), None))
                })
                .collect(),
            WatchStart::After(rv) => {
                if rv < state.oldest {
                    return Err(Error::Gone(format!(
                        "too old resource version: {rv} ({})",
                        state.oldest
                    )));
                }
                state
                    .history
                    .iter()
                    .filter(|e| e.revision > rv)
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription {
            initial,
            live: Live::Cache(state.sender.subscribe()),
        })
    }

    fn reset(&self, objects: BTreeMap<String, Arc<Value>>, revision: i64) {
        let mut state = self.state.write().expect("cache lock poisoned");
        // A fresh sender ends every existing watch: they resume from their last revision,
        // which is now older than `oldest`, and re-list after 410 Expired.
        let (sender, _) = broadcast::channel(self.config.watcher_buffer);
        state.sender = sender;
        state.objects = objects;
        state.history.clear();
        state.oldest = revision;
        state.revision = revision;
        drop(state);
        self.revision_tx.send_replace(revision);
        self.ready_tx.send_replace(true);
    }

    fn apply(&self, event: StoreEvent) {
        let mut state = self.state.write().expect("cache lock poisoned");
        let revision = event.revision();
        let cache_event = match event {
            StoreEvent::Progress { .. } => None,
            StoreEvent::Put { kv, .. } => match self
                .take_offered(&kv.key, kv.mod_revision)
                .or_else(|| decode(&kv, kv.mod_revision).map(Arc::new))
            {
                Some(obj) => {
                    let prev = state.objects.insert(kv.key.clone(), obj.clone());
                    let event_type = if prev.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    Some(CacheEvent::new(revision, event_type, obj, prev))
                }
                None => None,
            },
            StoreEvent::Delete { prev, revision } => {
                let last = state.objects.remove(&prev.key);
                decode(&prev, revision)
                    .map(|obj| CacheEvent::new(revision, EventType::Deleted, Arc::new(obj), last))
            }
        };
        if revision > state.revision {
            state.revision = revision;
        }
        if let Some(ev) = cache_event {
            let ev = Arc::new(ev);
            state.history.push_back(ev.clone());
            while state.history.len() > self.config.history {
                if let Some(old) = state.history.pop_front() {
                    state.oldest = old.revision;
                }
            }
            // No receivers is fine: nobody is watching.
            let _ = state.sender.send(ev);
        }
        let rv = state.revision;
        drop(state);
        self.revision_tx.send_if_modified(|cur| {
            if *cur < rv {
                *cur = rv;
                true
            } else {
                false
            }
        });
    }
}

fn decode(kv: &KeyValue, revision: i64) -> Option<Value> {
    match serde_json::from_slice::<Value>(&kv.value) {
        Ok(mut obj) => {
            objmeta::set_resource_version(&mut obj, revision);
            Some(obj)
        }
        Err(e) => {
            warn!(key = %kv.key, error = %e, "skipping undecodable object in store");
            None
        }
    }
}

fn storage_error(e: crate::storage::StorageError) -> Error {
    Error::Internal(e.to_string())
}

/// Lists then watches the store forever (until the cache is dropped), re-listing after errors.
async fn feed(cache: std::sync::Weak<WatchCache>) {
    use futures::StreamExt;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(c) = cache.upgrade() else { return };
        let prefix = c.rt.prefix();
        let listed = c.store.range(&prefix).await;
        let (kvs, revision) = match listed {
            Ok(r) => r,
            Err(e) => {
                warn!(resource = c.rt.resource, error = %e, "cache list failed; retrying");
                drop(c);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let objects = kvs
            .iter()
            .filter_map(|kv| decode(kv, kv.mod_revision).map(|o| (kv.key.clone(), Arc::new(o))))
            .collect();
        c.reset(objects, revision);
        let mut stream = match c.store.watch(&prefix, revision + 1).await {
            Ok(s) => s,
            Err(e) => {
                warn!(resource = c.rt.resource, error = %e, "cache watch failed; re-listing");
                drop(c);
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        drop(c);
        while let Some(item) = stream.next().await {
            let Some(c) = cache.upgrade() else { return };
            match item {
                Ok(ev) => c.apply(ev),
                Err(e) => {
                    debug!(resource = c.rt.resource, error = %e, "cache watch ended; re-listing");
                    break;
                }
            }
        }
    }
}
