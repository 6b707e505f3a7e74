//! Shared helpers for the storage suite: backends under test and watch helpers with deadlines.

#![allow(dead_code)] // each test binary uses a different subset

pub mod etcd;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use apiserver::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use apiserver::storage::{EventStream, StorageError, Store, StoreEvent};
use bytes::Bytes;
use futures::StreamExt;

/// How long any single expected thing may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A store under test plus whatever must live as long as it (temp dir, etcd process).
pub struct Harness {
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

/// An embedded store in a fresh temp dir.
pub async fn embedded() -> Harness {
    embedded_with(EmbeddedOptions::default())
}

pub fn embedded_with(options: EmbeddedOptions) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with(dir.path(), options).expect("open embedded store");
    Harness {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

/// An etcd store on a fresh etcd process of its own.
pub async fn etcd() -> Harness {
    let (server, store) = etcd::EtcdServer::start().await;
    Harness {
        store: Arc::new(store),
        _guard: Box::new(server),
    }
}

pub fn val(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

/// The next watch event, failing the test on a stream error, end, or timeout.
pub async fn next_event(stream: &mut EventStream) -> StoreEvent {
    match tokio::time::timeout(DEADLINE, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended unexpectedly"),
        Err(_) => panic!("no watch event within {DEADLINE:?}"),
    }
}

/// Asserts nothing arrives on the watch for a short while (used after all expected events, to
/// catch duplicates or leaks from other prefixes).
pub async fn assert_quiet(stream: &mut EventStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("expected no more watch events, got {item:?}");
    }
}

/// Asserts a watch from a compacted revision fails with `Compacted`: either `watch` itself
/// returns the error (embedded) or the stream's first item is that error (etcd reports it
/// asynchronously).
pub async fn assert_watch_compacted(store: &dyn Store, prefix: &str, from: i64) {
    match store.watch(prefix, from).await {
        Err(StorageError::Compacted { requested, .. }) => {
            assert_eq!(requested, from)
        }
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(mut stream) => match tokio::time::timeout(DEADLINE, stream.next()).await {
            Ok(Some(Err(StorageError::Compacted { .. }))) => {}
            other => panic!("expected a Compacted error from watch at {from}, got {other:?}"),
        },
    }
}
