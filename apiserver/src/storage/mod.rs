//! Storage with etcd's model, behind one trait with two backends.
//!
//! A single global revision orders every write; an object's `resourceVersion` is the revision of
//! its last write (its mod revision). Updates and deletes are compare-and-swap on that revision,
//! so optimistic concurrency at the API is exactly the store's. Watches replay history from any
//! revision that has not been compacted away; older revisions answer [`StorageError::Compacted`]
//! (410 Gone at the API). Keys look like `/registry/<resource>/<namespace>/<name>`.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub mod embedded;
pub mod etcd;

/// A stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key.
    pub create_revision: i64,
    /// Revision of the latest write to the key: the object's resourceVersion.
    pub mod_revision: i64,
}

/// One change seen by a watch, in revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A create or update; `kv.mod_revision` is the event's revision.
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A delete at `revision`; `prev` is the last value the key held.
    Delete { prev: KeyValue, revision: i64 },
    /// Every change under the watched prefix up to `revision` has been delivered on this stream.
    /// Sent after [`Store::request_progress`], so a cache can prove it is current even when its
    /// prefix saw no writes lately.
    Progress { revision: i64 },
}

impl StoreEvent {
    /// The revision at which this change happened.
    pub fn revision(&self) -> i64 {
        match self {
            StoreEvent::Put { kv, .. } => kv.mod_revision,
            StoreEvent::Delete { revision, .. } | StoreEvent::Progress { revision } => *revision,
        }
    }

    /// The key this change touched ("" for a progress notice).
    pub fn key(&self) -> &str {
        match self {
            StoreEvent::Put { kv, .. } => &kv.key,
            StoreEvent::Delete { prev, .. } => &prev.key,
            StoreEvent::Progress { .. } => "",
        }
    }
}

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    /// The compare-and-swap failed: the key's mod revision is now `current` (None when the key is
    /// gone).
    #[error("key {key} was modified (now at revision {current:?})")]
    Conflict {
        key: String,
        current: Option<KeyValue>,
    },
    /// The requested revision has been compacted; `compacted` is the oldest one still kept - 1.
    #[error("required revision {requested} has been compacted (compact revision {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Internal(String),
}

/// A stream of watch events; an `Err` item ends the stream (e.g. compaction or backend loss).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StoreEvent, StorageError>> + Send>>;

/// The contract both backends keep. Every method is linearizable: once a write returns, every
/// later read sees it, and it survives a crash of the process (`kill -9`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `value` under `key` if the key does not exist; returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<i64, StorageError>;

    /// Replaces the value if the key's mod revision equals `expected_revision`; returns the new
    /// revision. A missing key is `NotFound`; a different revision is `Conflict`.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_revision: i64,
    ) -> Result<i64, StorageError>;

    /// Deletes the key, if `expected_revision` is given only when its mod revision equals it.
    /// Returns the deleted value and the revision of the delete.
    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<i64>,
    ) -> Result<(KeyValue, i64), StorageError>;

    /// Reads one key at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError>;

    /// Reads every key that starts with `prefix`, in key order, with the revision the read was
    /// taken at.
    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StorageError>;

    /// Streams every change under `prefix` with revision `>= from_revision`, in order, then live
    /// changes as they happen. Fails with `Compacted` when that history is gone.
    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<EventStream, StorageError>;

    /// The latest revision of the whole store.
    async fn current_revision(&self) -> Result<i64, StorageError>;

    /// Whether [`StoreEvent::Progress`] notices can be trusted to mean "every event up to this
    /// revision has been delivered". When not, consistent lists read the store instead of
    /// waiting for the watch cache.
    fn reliable_progress(&self) -> bool {
        true
    }

    /// Asks every open watch stream to yield a [`StoreEvent::Progress`] soon, carrying a revision
    /// at least as new as every write acknowledged before this call.
    async fn request_progress(&self) -> Result<(), StorageError>;

    /// Drops history older than `revision`; watches from before it then fail with `Compacted`.
    async fn compact(&self, revision: i64) -> Result<(), StorageError>;
}

/// Compacts `store` every `interval` to the revision it had one interval earlier, as
/// kube-apiserver does for etcd: watchers get at least one interval to resume, and history does
/// not grow without bound. Runs until the process ends.
pub async fn compact_periodically(store: std::sync::Arc<dyn Store>, interval: std::time::Duration) {
    let mut previous: Option<i64> = None;
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        if let Some(revision) = previous
            && let Err(e) = store.compact(revision).await
        {
            tracing::warn!(revision, error = %e, "periodic compaction failed");
        }
        previous = store.current_revision().await.ok();
    }
}
