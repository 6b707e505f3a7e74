//! The etcd backend: the [`Store`] contract mapped one-to-one onto etcd's v3 API.
//!
//! This is how Skiff grows past one machine: several API servers share one etcd cluster, and
//! etcd's global revision is the `resourceVersion` for all of them. Every write is a single etcd
//! transaction whose compare carries the precondition, so the compare-and-swap is done by etcd
//! itself and no client-side lock is needed:
//! - create: `create_revision(key) == 0` then put;
//! - update: `version(key) > 0 && mod_revision(key) == expected` then put, else get (to report
//!   `NotFound` or the `Conflict`'s current value);
//! - delete: `version(key) > 0` (and `mod_revision(key) == expected` if given) then delete with
//!   the previous value, else get.
//!
//! Revisions are etcd's own (an empty cluster is at revision 1; the first write gets 2), the same
//! convention as the embedded backend. Compaction is etcd's: after `compact(r)` revisions `< r`
//! are gone, which the trait reports as `compacted: r - 1`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions, WatchRequestSender, WatchResponseStream,
};

use super::{EventStream, KeyValue, StorageError, Store, StoreEvent};

/// Keys per page when listing, so one list never needs one huge gRPC message.
const RANGE_PAGE: i64 = 500;
/// Largest gRPC message accepted from etcd (a page of large objects can exceed tonic's 4 MiB
/// default; etcd's own request limit is 1.5 MiB per value).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// A [`Store`] backed by an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// Prepended to every key, so several Skiff clusters (or test runs) can share one etcd.
    /// Empty by default: keys are stored exactly as given (`/registry/...`).
    prefix: String,
    /// Bumped by [`Store::request_progress`]; every open watch then asks etcd for a progress
    /// notification on its own stream.
    progress: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// gRPC status codes that mean "try again later" (standard gRPC numbering), compared as
/// integers so this module needs no direct `tonic` dependency.
const RETRYABLE_GRPC_CODES: [i32; 5] = [
    1,  // CANCELLED
    4,  // DEADLINE_EXCEEDED
    8,  // RESOURCE_EXHAUSTED
    10, // ABORTED
    14, // UNAVAILABLE
];

/// Maps an etcd client error: anything that smells of the connection (transport, I/O,
/// unavailable, deadline) is [`StorageError::Unavailable`], so callers can retry; the rest is
/// [`StorageError::Internal`].
fn map_err(e: etcd_client::Error) -> StorageError {
    use etcd_client::Error as E;
    match e {
        E::TransportError(e) => StorageError::Unavailable(format!("etcd transport: {e}")),
        E::IoError(e) => StorageError::Unavailable(format!("etcd i/o: {e}")),
        E::GRpcStatus(status) => {
            if RETRYABLE_GRPC_CODES.contains(&i32::from(status.code())) {
                StorageError::Unavailable(format!("etcd: {}", status.message()))
            } else {
                StorageError::Internal(format!("etcd: {}", status.message()))
            }
        }
        E::WatchError(e) => StorageError::Unavailable(format!("etcd watch: {e}")),
        other => StorageError::Internal(format!("etcd: {other}")),
    }
}

fn is_compacted_error(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.message().contains("required revision has been compacted"))
}

/// The smallest key greater than every key starting with `prefix` (etcd's `range_end` for a
/// prefix); `\0` means "to the end of the key space".
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn header_revision(resp: &TxnResponse) -> Result<i64, StorageError> {
    resp.header()
        .map(|h| h.revision())
        .ok_or_else(|| StorageError::Internal("etcd response without header".into()))
}

/// Why one attempt at a paginated list failed.
enum RangeFailure {
    /// The list's revision was compacted between pages; listing again at a newer one works.
    Compacted,
    Other(StorageError),
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (e.g. `http://127.0.0.1:2379`) and checks that it answers,
    /// so a wrong address fails at startup rather than at the first request. `prefix`, if given,
    /// is prepended to every key (keys are stored exactly as given otherwise).
    pub async fn connect(
        endpoints: &[String],
        prefix: Option<String>,
    ) -> Result<Self, StorageError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            // Bounds unary calls and establishing a watch, not a watch's lifetime.
            .with_timeout(Duration::from_secs(30))
            // Detects a dead connection under an otherwise idle watch.
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| {
                StorageError::Unavailable(format!("connecting to etcd {endpoints:?}: {e}"))
            })?;
        let store = Self {
            client,
            prefix: prefix.unwrap_or_default(),
            progress: Arc::new(tokio::sync::watch::channel(0).0),
        };
        store
            .kv()
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| {
                StorageError::Unavailable(format!(
                    "etcd {endpoints:?} not reachable: {}",
                    map_err(e)
                ))
            })?;
        tracing::info!(?endpoints, prefix = %store.prefix, "connected to etcd");
        Ok(store)
    }

    fn kv(&self) -> KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE)
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Converts an etcd key-value, stripping our key prefix; a key outside it or not UTF-8 is
    /// corrupt data, reported rather than panicked on.
    fn convert(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StorageError> {
        let key = std::str::from_utf8(kv.key())
            .map_err(|_| StorageError::Internal("etcd key is not UTF-8".into()))?;
        let key = key.strip_prefix(self.prefix.as_str()).ok_or_else(|| {
            StorageError::Internal(format!("etcd key {key} is outside prefix {}", self.prefix))
        })?;
        Ok(KeyValue {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// The value read by a failed transaction's `else` get: `None` means the key is missing.
    fn current_from_else(&self, resp: &TxnResponse) -> Result<Option<KeyValue>, StorageError> {
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                return get.kvs().first().map(|kv| self.convert(kv)).transpose();
            }
        }
        Ok(None)
    }

    /// One consistent paginated listing: the first page fixes the revision, later pages read at
    /// that same revision.
    async fn range_once(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), RangeFailure> {
        let mut kv = self.kv();
        let full = self.full_key(prefix);
        let end = prefix_end(full.as_bytes());
        let mut start = full.into_bytes();
        if start.is_empty() {
            start = vec![0]; // etcd rejects an empty key; "\0" is the first key there is.
        }
        let mut revision = 0;
        let mut out = Vec::new();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(RANGE_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = kv.get(start.clone(), Some(options)).await.map_err(|e| {
                if is_compacted_error(&e) {
                    RangeFailure::Compacted
                } else {
                    RangeFailure::Other(map_err(e))
                }
            })?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).ok_or_else(|| {
                    RangeFailure::Other(StorageError::Internal(
                        "etcd response without header".into(),
                    ))
                })?;
            }
            for item in resp.kvs() {
                out.push(self.convert(item).map_err(RangeFailure::Other)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok((out, revision))
    }

    fn convert_event(&self, event: &etcd_client::Event) -> Result<StoreEvent, StorageError> {
        let kv = event
            .kv()
            .ok_or_else(|| StorageError::Internal("etcd watch event without kv".into()))?;
        match event.event_type() {
            EventType::Put => {
                let kv = self.convert(kv)?;
                // etcd leaves out the previous value when it is compacted away, which happens to
                // the first event of a watch started exactly at the compaction revision. The
                // update itself is still right, so it is delivered without `prev`; a consumer
                // tells updates from creates by `create_revision != mod_revision`.
                let prev = event.prev_kv().map(|prev| self.convert(prev)).transpose()?;
                if prev.is_none() && kv.create_revision != kv.mod_revision {
                    tracing::debug!(key = %kv.key, revision = kv.mod_revision,
                        "etcd update event without previous value (compacted)");
                }
                Ok(StoreEvent::Put { kv, prev })
            }
            EventType::Delete => {
                let revision = kv.mod_revision();
                let prev = match event.prev_kv() {
                    Some(prev) => self.convert(prev)?,
                    None => {
                        // A delete must say what was deleted; without it the only honest answer
                        // is that the needed history is gone (the watcher re-lists).
                        return Err(StorageError::Compacted {
                            requested: revision - 1,
                            compacted: revision - 1,
                        });
                    }
                };
                Ok(StoreEvent::Delete { prev, revision })
            }
        }
    }
}

/// Per-watch state: the etcd stream (request and response halves kept together; dropping the
/// request half would end the watch) and events of the last response not yet handed out.
struct WatchState {
    store: EtcdStore,
    requests: WatchRequestSender,
    responses: WatchResponseStream,
    progress: tokio::sync::watch::Receiver<u64>,
    buf: VecDeque<StoreEvent>,
    /// An error to report once the events before it are handed out; it ends the stream.
    pending_err: Option<StorageError>,
    /// The revision this watch expects next, for error reports.
    next: i64,
    done: bool,
}

async fn watch_step(mut st: WatchState) -> Option<(Result<StoreEvent, StorageError>, WatchState)> {
    loop {
        if let Some(event) = st.buf.pop_front() {
            st.next = event.revision() + 1;
            return Some((Ok(event), st));
        }
        if st.done {
            return None;
        }
        if let Some(e) = st.pending_err.take() {
            st.done = true;
            return Some((Err(e), st));
        }
        let message = tokio::select! {
            m = st.responses.message() => m,
            changed = st.progress.changed() => {
                if changed.is_ok()
                    && let Err(e) = st.requests.request_progress().await {
                        st.pending_err = Some(map_err(e));
                    }
                continue;
            }
        };
        let resp = match message {
            Ok(Some(resp)) => resp,
            Ok(None) => {
                st.pending_err = Some(StorageError::Unavailable("etcd watch stream ended".into()));
                continue;
            }
            Err(e) => {
                st.pending_err = Some(map_err(e));
                continue;
            }
        };
        if resp.compact_revision() > 0 {
            st.pending_err = Some(StorageError::Compacted {
                requested: st.next,
                compacted: resp.compact_revision() - 1,
            });
            continue;
        }
        if resp.canceled() {
            st.pending_err = Some(StorageError::Unavailable(format!(
                "etcd canceled the watch: {}",
                resp.cancel_reason()
            )));
            continue;
        }
        if resp.events().is_empty() {
            // A progress notification: every event up to the header's revision has been sent.
            // (The "created" answer carries no such promise.)
            if !resp.created()
                && let Some(header) = resp.header()
            {
                st.buf.push_back(StoreEvent::Progress {
                    revision: header.revision(),
                });
            }
            continue;
        }
        for event in resp.events() {
            match st.store.convert_event(event) {
                Ok(event) => st.buf.push_back(event),
                Err(e) => {
                    st.pending_err = Some(e);
                    break;
                }
            }
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<i64, StorageError> {
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full, value.to_vec(), None)]);
        let resp = self.kv().txn(txn).await.map_err(map_err)?;
        if resp.succeeded() {
            header_revision(&resp)
        } else {
            Err(StorageError::AlreadyExists(key.to_owned()))
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_revision: i64,
    ) -> Result<i64, StorageError> {
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([
                // Without this, expected 0 would match a missing key and create it.
                Compare::version(full.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(full.clone(), CompareOp::Equal, expected_revision),
            ])
            .and_then([TxnOp::put(full.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.kv().txn(txn).await.map_err(map_err)?;
        if resp.succeeded() {
            return header_revision(&resp);
        }
        match self.current_from_else(&resp)? {
            None => Err(StorageError::NotFound(key.to_owned())),
            Some(current) => Err(StorageError::Conflict {
                key: key.to_owned(),
                current: Some(current),
            }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<i64>,
    ) -> Result<(KeyValue, i64), StorageError> {
        let full = self.full_key(key);
        let mut compares = vec![Compare::version(full.clone(), CompareOp::Greater, 0)];
        if let Some(expected) = expected_revision {
            compares.push(Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                full.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.kv().txn(txn).await.map_err(map_err)?;
        if resp.succeeded() {
            let revision = header_revision(&resp)?;
            for op in resp.op_responses() {
                let prev = match &op {
                    TxnOpResponse::Delete(del) => del.prev_kvs().first(),
                    _ => None,
                };
                if let Some(prev) = prev {
                    return Ok((self.convert(prev)?, revision));
                }
            }
            return Err(StorageError::Internal(format!(
                "etcd deleted {key} without returning its previous value"
            )));
        }
        match self.current_from_else(&resp)? {
            None => Err(StorageError::NotFound(key.to_owned())),
            Some(current) => Err(StorageError::Conflict {
                key: key.to_owned(),
                current: Some(current),
            }),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        let resp = self
            .kv()
            .get(self.full_key(key), None)
            .await
            .map_err(map_err)?;
        resp.kvs().first().map(|kv| self.convert(kv)).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StorageError> {
        // A compaction between pages invalidates the listing's revision; start over a few times.
        for attempt in 0..3 {
            match self.range_once(prefix).await {
                Ok(result) => return Ok(result),
                Err(RangeFailure::Compacted) => {
                    tracing::debug!(prefix, attempt, "list revision compacted; listing again");
                }
                Err(RangeFailure::Other(e)) => return Err(e),
            }
        }
        Err(StorageError::Unavailable(format!(
            "listing {prefix} kept racing with compaction"
        )))
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<EventStream, StorageError> {
        let mut options = WatchOptions::new().with_prefix().with_prev_key();
        if from_revision > 0 {
            options = options.with_start_revision(from_revision);
        }
        let stream = self
            .client
            .watch_client()
            .watch(self.full_key(prefix), Some(options))
            .await
            .map_err(map_err)?;
        let (requests, responses) = stream.split();
        let state = WatchState {
            store: self.clone(),
            requests,
            responses,
            progress: self.progress.subscribe(),
            buf: VecDeque::new(),
            pending_err: None,
            next: from_revision,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, watch_step)))
    }

    /// etcd before 3.4.31 / 3.5.13 can answer a progress request with a revision ahead of events
    /// it has not yet sent (etcd issue 15220; Debian 12 ships 3.4.23), so consistent lists on
    /// etcd read etcd itself, as kube-apiserver does on such versions.
    fn reliable_progress(&self) -> bool {
        false
    }

    async fn request_progress(&self) -> Result<(), StorageError> {
        self.progress.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn current_revision(&self) -> Result<i64, StorageError> {
        let resp = self
            .kv()
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(map_err)?;
        resp.header()
            .map(|h| h.revision())
            .ok_or_else(|| StorageError::Internal("etcd response without header".into()))
    }

    async fn compact(&self, revision: i64) -> Result<(), StorageError> {
        match self.kv().compact(revision, None).await {
            Ok(_) => Ok(()),
            // Already compacted that far: nothing to do, as in the embedded backend.
            Err(e) if is_compacted_error(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
