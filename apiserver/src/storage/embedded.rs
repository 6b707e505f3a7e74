//! The embedded backend: one [`redb`] database file, no external process.
//!
//! This is the default store, so a single-machine Skiff needs nothing but its data directory.
//!
//! # Layout
//! One file, `skiff.redb`, under the data directory, with three tables:
//! - `kv`: key → record (`create_revision`, `mod_revision`, value), the current state.
//! - `log`: revision → event (key, new value, previous value), the history watches replay from.
//! - `meta`: `revision` (latest committed revision) and `compacted` (newest revision whose
//!   history is gone; `0` while nothing has been compacted).
//!
//! # Revisions
//! Like etcd, an empty store is at revision 1 and the first write gets revision 2, so a
//! `resourceVersion` is never 0. Every successful write (create, update, delete) takes exactly
//! one new revision, so the log has one entry per revision above `compacted`.
//!
//! # Group commit
//! All writes go through a channel to one writer thread (a plain OS thread, since it blocks in
//! fsync). It drains every pending request, applies them in one write transaction, each with its
//! own compare-and-swap check (a failed check fails only that request), commits once with
//! [`Durability::Immediate`], and only then answers the callers. Concurrent writers therefore
//! share one fsync, and an acknowledged write survives `kill -9`.
//!
//! # Watch
//! After a commit the writer publishes the batch's events on a broadcast channel. A watch
//! subscribes first, then replays the log from its start revision up to the revision current at
//! subscription time, then follows the broadcast, skipping what it already replayed: no gap and no
//! duplicate. A watcher too slow for the broadcast buffer does not lose events: it re-subscribes
//! and catches up from the log again, and fails with [`StorageError::Compacted`] only if the
//! history it still needs has been compacted meanwhile.

mod codec;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use tokio::sync::{broadcast, oneshot};

use super::{EventStream, KeyValue, StorageError, Store, StoreEvent};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<i64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "skiff.redb";

/// How many log entries a watch replays per read transaction, so a long replay neither holds one
/// snapshot open for long nor buffers the whole history in memory.
const REPLAY_CHUNK: i64 = 512;

/// Tuning knobs of [`EmbeddedStore`]; [`Default`] is what the server uses.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Keep at least this many most recent revisions of watch history and compact older ones
    /// automatically, so the file stays bounded under an endless update loop. `None` turns
    /// auto-compaction off (history then only shrinks through [`Store::compact`]).
    pub retain_revisions: Option<i64>,
    /// Run auto-compaction after this many successful writes.
    pub auto_compact_every: u64,
    /// The most write requests applied in one transaction (one fsync).
    pub max_batch: usize,
    /// Capacity of the live-event broadcast, in committed batches. A watcher further behind
    /// than this catches up from the log instead.
    pub watch_buffer: usize,
    /// How long the writer waits for more requests before committing, but only while writes
    /// are arriving concurrently (the previous batch held more than one): API writers spend
    /// most of their time in CPU work before they submit, so without a short wait each fsync
    /// would cover only two or three of them. A lone sequential writer never waits.
    pub linger: std::time::Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            retain_revisions: Some(10_000),
            auto_compact_every: 1_000,
            max_batch: 1_024,
            watch_buffer: 1_024,
            linger: std::time::Duration::from_micros(300),
        }
    }
}

/// The events of one committed transaction, in revision order.
type Batch = Arc<Vec<StoreEvent>>;

/// State shared by the store handle, the writer thread and watch streams.
struct Shared {
    db: Database,
    /// Latest committed revision; set by the writer after commit and before it publishes or
    /// answers, so a reader never sees a revision whose data is not committed.
    revision: AtomicI64,
    /// Latest compacted revision (watches from at or below it fail).
    compacted: AtomicI64,
    /// Durable transactions committed since open (each one fsync).
    commits: AtomicU64,
    /// Weak so that when the writer thread ends, live watch streams see the channel close.
    events: broadcast::WeakSender<Batch>,
}

enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
    Compact {
        revision: i64,
    },
}

enum WriteOutcome {
    Revision(i64),
    Deleted(KeyValue, i64),
    Compacted,
}

struct WriteRequest {
    op: WriteOp,
    /// `None` for internal requests (auto-compaction) nobody waits for.
    reply: Option<oneshot::Sender<Result<WriteOutcome, StorageError>>>,
}

/// A [`Store`] in one local redb file with group commit; see the module docs.
///
/// Dropping it stops the writer thread (after it finishes the batch in flight) and closes the
/// database once the last watch stream on it is dropped too.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn internal(e: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(e.to_string())
}

fn closed() -> StorageError {
    StorageError::Unavailable("embedded store is closed".into())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens (creating if needed) the store in `dir`. Reopening after a crash recovers every
    /// acknowledged write and the revision counter, since both live in the same committed
    /// transactions.
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| internal(format!("creating data dir {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path)
            .map_err(|e| internal(format!("opening {}: {e}", path.display())))?;

        // Create the tables and the initial meta so read transactions can always open them.
        let (revision, compacted) = {
            let txn = begin_write(&db)?;
            let (revision, compacted) = {
                let _ = txn.open_table(KV).map_err(internal)?;
                let _ = txn.open_table(LOG).map_err(internal)?;
                let mut meta = txn.open_table(META).map_err(internal)?;
                let revision = match meta.get(META_REVISION).map_err(internal)? {
                    Some(v) => v.value(),
                    None => 1,
                };
                let compacted = match meta.get(META_COMPACTED).map_err(internal)? {
                    Some(v) => v.value(),
                    None => 0,
                };
                meta.insert(META_REVISION, revision).map_err(internal)?;
                meta.insert(META_COMPACTED, compacted).map_err(internal)?;
                (revision, compacted)
            };
            txn.commit().map_err(internal)?;
            (revision, compacted)
        };
        tracing::info!(path = %path.display(), revision, compacted, "opened embedded store");

        let (events_tx, _) = broadcast::channel(options.watch_buffer.max(1));
        let shared = Arc::new(Shared {
            db,
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            commits: AtomicU64::new(0),
            events: events_tx.downgrade(),
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("skiff-store-writer".into())
            .spawn(move || writer_loop(writer_shared, rx, events_tx, options))
            .map_err(|e| internal(format!("spawning writer thread: {e}")))?;
        Ok(Self {
            shared,
            tx: Some(tx),
            writer: Some(writer),
            path,
        })
    }

    /// How many durable transactions (fsyncs) the writer committed since open. With group
    /// commit this grows slower than the number of writes under concurrency; exposed for metrics
    /// and to test exactly that.
    pub fn commit_count(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// The database file, e.g. to watch its size.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, StorageError> {
        let (reply, answer) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(closed)?;
        tx.send(WriteRequest {
            op,
            reply: Some(reply),
        })
        .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, StorageError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(internal)?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; joining makes sure the database is released
        // (the file lock dropped) when this returns, so the directory can be reopened at once.
        self.tx.take();
        let joined = self.writer.take().map(JoinHandle::join);
        if matches!(joined, Some(Err(_))) {
            tracing::error!("embedded store writer thread panicked");
        }
    }
}

fn begin_write(db: &Database) -> Result<WriteTransaction, StorageError> {
    let mut txn = db.begin_write().map_err(internal)?;
    txn.set_durability(Durability::Immediate)
        .map_err(internal)?;
    Ok(txn)
}

fn begin_read(db: &Database) -> Result<ReadTransaction, StorageError> {
    db.begin_read().map_err(internal)
}

fn read_meta(txn: &ReadTransaction) -> Result<(i64, i64), StorageError> {
    let meta = txn.open_table(META).map_err(internal)?;
    let get = |name: &str| -> Result<i64, StorageError> {
        meta.get(name)
            .map_err(internal)?
            .map(|v| v.value())
            .ok_or_else(|| internal(format!("meta entry {name} missing")))
    };
    Ok((get(META_REVISION)?, get(META_COMPACTED)?))
}

/// The writer thread: group commit loop. Ends when every sender is gone.
fn writer_loop(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<WriteRequest>,
    events: broadcast::Sender<Batch>,
    options: EmbeddedOptions,
) {
    let mut writes_since_compact = 0u64;
    let mut concurrent = false;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = std::time::Instant::now() + options.linger;
        while batch.len() < options.max_batch.max(1) {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(mpsc::TryRecvError::Empty) if concurrent => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(req) => batch.push(req),
                        Err(_) => break,
                    }
                }
                Err(_) => break,
            }
        }
        concurrent = batch.len() > 1;
        writes_since_compact += commit_batch(&shared, &events, batch);

        let due = writes_since_compact >= options.auto_compact_every;
        match options.retain_revisions {
            Some(retain) if due => {
                writes_since_compact = 0;
                let target = shared.revision.load(Ordering::SeqCst) - retain.max(1) + 1;
                if target > shared.compacted.load(Ordering::SeqCst) + 1 {
                    tracing::debug!(target, "auto-compacting embedded store history");
                    let req = WriteRequest {
                        op: WriteOp::Compact { revision: target },
                        reply: None,
                    };
                    commit_batch(&shared, &events, vec![req]);
                }
            }
            _ => {}
        }
    }
    tracing::debug!("embedded store writer stopped");
}

/// Applies `batch` in one durable transaction, then publishes and answers. Returns how many
/// writes succeeded.
fn commit_batch(
    shared: &Shared,
    events: &broadcast::Sender<Batch>,
    batch: Vec<WriteRequest>,
) -> u64 {
    let (ops, replies): (Vec<WriteOp>, Vec<_>) = batch.into_iter().map(|r| (r.op, r.reply)).unzip();
    match apply(&shared.db, &ops) {
        Ok(applied) => {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            shared.revision.store(applied.revision, Ordering::SeqCst);
            shared.compacted.store(applied.compacted, Ordering::SeqCst);
            let count = applied.events.len() as u64;
            if !applied.events.is_empty() {
                // No receivers is fine: nobody is watching.
                let _ = events.send(Arc::new(applied.events));
            }
            for (reply, result) in replies.into_iter().zip(applied.results) {
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            count
        }
        Err(e) => {
            tracing::error!(error = %e, "embedded store commit failed");
            for reply in replies.into_iter().flatten() {
                let _ = reply.send(Err(e.clone()));
            }
            0
        }
    }
}

struct Applied {
    results: Vec<Result<WriteOutcome, StorageError>>,
    events: Vec<StoreEvent>,
    revision: i64,
    compacted: i64,
}

fn apply(db: &Database, ops: &[WriteOp]) -> Result<Applied, StorageError> {
    let txn = begin_write(db)?;
    let applied = {
        let mut kv = txn.open_table(KV).map_err(internal)?;
        let mut log = txn.open_table(LOG).map_err(internal)?;
        let mut meta = txn.open_table(META).map_err(internal)?;
        let read = |meta: &redb::Table<&str, i64>, name: &str| -> Result<i64, StorageError> {
            meta.get(name)
                .map_err(internal)?
                .map(|v| v.value())
                .ok_or_else(|| internal(format!("meta entry {name} missing")))
        };
        let mut revision = read(&meta, META_REVISION)?;
        let mut compacted = read(&meta, META_COMPACTED)?;
        let mut results = Vec::with_capacity(ops.len());
        let mut events = Vec::new();

        for op in ops {
            let result = match op {
                WriteOp::Create { key, value } => {
                    if kv.get(key.as_str()).map_err(internal)?.is_some() {
                        Err(StorageError::AlreadyExists(key.clone()))
                    } else {
                        revision += 1;
                        let new = KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: revision,
                            mod_revision: revision,
                        };
                        write_put(&mut kv, &mut log, &new, None)?;
                        events.push(StoreEvent::Put {
                            kv: new,
                            prev: None,
                        });
                        Ok(WriteOutcome::Revision(revision))
                    }
                }
                WriteOp::Update {
                    key,
                    value,
                    expected,
                } => match current(&kv, key)? {
                    None => Err(StorageError::NotFound(key.clone())),
                    Some(cur) if cur.mod_revision != *expected => Err(StorageError::Conflict {
                        key: key.clone(),
                        current: Some(cur),
                    }),
                    Some(cur) => {
                        revision += 1;
                        let new = KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: cur.create_revision,
                            mod_revision: revision,
                        };
                        write_put(&mut kv, &mut log, &new, Some(&cur))?;
                        events.push(StoreEvent::Put {
                            kv: new,
                            prev: Some(cur),
                        });
                        Ok(WriteOutcome::Revision(revision))
                    }
                },
                WriteOp::Delete { key, expected } => match current(&kv, key)? {
                    None => Err(StorageError::NotFound(key.clone())),
                    Some(cur) if expected.is_some_and(|e| e != cur.mod_revision) => {
                        Err(StorageError::Conflict {
                            key: key.clone(),
                            current: Some(cur),
                        })
                    }
                    Some(cur) => {
                        revision += 1;
                        kv.remove(key.as_str()).map_err(internal)?;
                        let event = StoreEvent::Delete {
                            prev: cur.clone(),
                            revision,
                        };
                        log.insert(revision, codec::encode_event(&event)?.as_slice())
                            .map_err(internal)?;
                        events.push(event);
                        Ok(WriteOutcome::Deleted(cur, revision))
                    }
                },
                WriteOp::Compact { revision: target } => {
                    if *target > revision {
                        Err(StorageError::Internal(format!(
                            "cannot compact to future revision {target} (current {revision})"
                        )))
                    } else if *target - 1 <= compacted {
                        // Already compacted that far: nothing to do, like a repeated request.
                        Ok(WriteOutcome::Compacted)
                    } else {
                        log.retain_in(..*target, |_, _| false).map_err(internal)?;
                        compacted = *target - 1;
                        Ok(WriteOutcome::Compacted)
                    }
                }
            };
            results.push(result);
        }
        meta.insert(META_REVISION, revision).map_err(internal)?;
        meta.insert(META_COMPACTED, compacted).map_err(internal)?;
        Applied {
            results,
            events,
            revision,
            compacted,
        }
    };
    txn.commit().map_err(internal)?;
    Ok(applied)
}

fn current(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<KeyValue>, StorageError> {
    match kv.get(key).map_err(internal)? {
        Some(bytes) => Ok(Some(codec::decode_record(key, bytes.value())?)),
        None => Ok(None),
    }
}

fn write_put(
    kv: &mut redb::Table<&str, &[u8]>,
    log: &mut redb::Table<i64, &[u8]>,
    new: &KeyValue,
    prev: Option<&KeyValue>,
) -> Result<(), StorageError> {
    let record = codec::encode_record(new.create_revision, new.mod_revision, &new.value);
    kv.insert(new.key.as_str(), record.as_slice())
        .map_err(internal)?;
    let event = StoreEvent::Put {
        kv: new.clone(),
        prev: prev.cloned(),
    };
    log.insert(new.mod_revision, codec::encode_event(&event)?.as_slice())
        .map_err(internal)?;
    Ok(())
}

/// Reads log entries `from..=to` (at most [`REPLAY_CHUNK`] of them) whose key starts with
/// `prefix`. Returns them and the next revision to read. Fails with `Compacted` if `from` is no
/// longer in the log.
fn read_history(
    shared: &Shared,
    prefix: &str,
    from: i64,
    to: i64,
) -> Result<(Vec<StoreEvent>, i64), StorageError> {
    let txn = begin_read(&shared.db)?;
    let (_, compacted) = read_meta(&txn)?;
    if from <= compacted {
        return Err(StorageError::Compacted {
            requested: from,
            compacted,
        });
    }
    let end = to.min(from.saturating_add(REPLAY_CHUNK - 1));
    let log = txn.open_table(LOG).map_err(internal)?;
    let mut out = Vec::new();
    for entry in log.range(from..=end).map_err(internal)? {
        let (rev, bytes) = entry.map_err(internal)?;
        let event = codec::decode_event(rev.value(), bytes.value())?;
        if event.key().starts_with(prefix) {
            out.push(event);
        }
    }
    Ok((out, end + 1))
}

/// Per-watch state driven by [`watch_step`].
struct WatchState {
    shared: Arc<Shared>,
    prefix: String,
    /// The next revision this watch has to deliver (or skip, if filtered out).
    next: i64,
    /// While `Some(r)`, revisions `next..=r` still come from the log.
    replay_until: Option<i64>,
    rx: broadcast::Receiver<Batch>,
    buf: VecDeque<StoreEvent>,
    done: bool,
}

/// Subscribes to live events and returns the receiver with the revision current at that moment:
/// every event after that revision is guaranteed to arrive on the receiver (the writer stores
/// the revision before it publishes).
fn subscribe(shared: &Shared) -> Result<(broadcast::Receiver<Batch>, i64), StorageError> {
    let sender = shared.events.upgrade().ok_or_else(closed)?;
    let rx = sender.subscribe();
    Ok((rx, shared.revision.load(Ordering::SeqCst)))
}

async fn watch_step(mut st: WatchState) -> Option<(Result<StoreEvent, StorageError>, WatchState)> {
    loop {
        if let Some(event) = st.buf.pop_front() {
            return Some((Ok(event), st));
        }
        if st.done {
            return None;
        }
        if let Some(until) = st.replay_until {
            if st.next > until {
                st.replay_until = None;
                continue;
            }
            let shared = Arc::clone(&st.shared);
            let prefix = st.prefix.clone();
            let from = st.next;
            let read =
                tokio::task::spawn_blocking(move || read_history(&shared, &prefix, from, until))
                    .await
                    .map_err(internal)
                    .and_then(|r| r);
            match read {
                Ok((events, next)) => {
                    st.buf.extend(events);
                    st.next = next;
                }
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
            continue;
        }
        match st.rx.recv().await {
            Ok(batch) => {
                for event in batch.iter() {
                    if let StoreEvent::Progress { .. } = event {
                        // Everything before `next` has been delivered (or filtered out).
                        st.buf.push_back(StoreEvent::Progress {
                            revision: st.next - 1,
                        });
                        continue;
                    }
                    let rev = event.revision();
                    if rev < st.next {
                        continue; // already replayed from the log
                    }
                    if rev > st.next {
                        // Cannot happen with one writer publishing every commit in order; if it
                        // ever does, fetch the missing revisions from the log instead of
                        // skipping them.
                        tracing::warn!(expected = st.next, got = rev, "gap in live watch events");
                        st.replay_until = Some(rev - 1);
                        break;
                    }
                    if event.key().starts_with(&st.prefix) {
                        st.buf.push_back(event.clone());
                    }
                    st.next = rev + 1;
                }
                if st.replay_until.is_some() {
                    // Re-subscribe so the batch we broke out of is delivered again after replay.
                    match subscribe(&st.shared) {
                        Ok((rx, current)) => {
                            st.rx = rx;
                            st.replay_until = Some(current);
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Too slow for the live buffer: catch up from the log rather than drop events.
                tracing::debug!(
                    missed,
                    next = st.next,
                    "watch lagged; replaying from the log"
                );
                match subscribe(&st.shared) {
                    Ok((rx, current)) => {
                        st.rx = rx;
                        st.replay_until = Some(current);
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                st.done = true;
                return Some((Err(closed()), st));
            }
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<i64, StorageError> {
        match self
            .submit(WriteOp::Create {
                key: key.to_owned(),
                value,
            })
            .await?
        {
            WriteOutcome::Revision(rev) => Ok(rev),
            _ => Err(internal("unexpected write outcome for create")),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_revision: i64,
    ) -> Result<i64, StorageError> {
        match self
            .submit(WriteOp::Update {
                key: key.to_owned(),
                value,
                expected: expected_revision,
            })
            .await?
        {
            WriteOutcome::Revision(rev) => Ok(rev),
            _ => Err(internal("unexpected write outcome for update")),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<i64>,
    ) -> Result<(KeyValue, i64), StorageError> {
        match self
            .submit(WriteOp::Delete {
                key: key.to_owned(),
                expected: expected_revision,
            })
            .await?
        {
            WriteOutcome::Deleted(kv, rev) => Ok((kv, rev)),
            _ => Err(internal("unexpected write outcome for delete")),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        let key = key.to_owned();
        self.read(move |shared| {
            let txn = begin_read(&shared.db)?;
            let kv = txn.open_table(KV).map_err(internal)?;
            current(&kv, &key)
        })
        .await
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StorageError> {
        let prefix = prefix.to_owned();
        self.read(move |shared| {
            let txn = begin_read(&shared.db)?;
            let (revision, _) = read_meta(&txn)?;
            let kv = txn.open_table(KV).map_err(internal)?;
            let mut out = Vec::new();
            for entry in kv.range(prefix.as_str()..).map_err(internal)? {
                let (key, bytes) = entry.map_err(internal)?;
                let key = key.value();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                out.push(codec::decode_record(key, bytes.value())?);
            }
            Ok((out, revision))
        })
        .await
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<EventStream, StorageError> {
        let (rx, current) = subscribe(&self.shared)?;
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        let (next, replay_until) = if from_revision <= 0 {
            (current + 1, None)
        } else if from_revision <= compacted {
            return Err(StorageError::Compacted {
                requested: from_revision,
                compacted,
            });
        } else if from_revision <= current {
            (from_revision, Some(current))
        } else {
            (from_revision, None)
        };
        let state = WatchState {
            shared: Arc::clone(&self.shared),
            prefix: prefix.to_owned(),
            next,
            replay_until,
            rx,
            buf: VecDeque::new(),
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, watch_step)))
    }

    async fn request_progress(&self) -> Result<(), StorageError> {
        // Published on the same ordered channel as committed batches, so every watch sees it
        // after every batch published before it; each watch answers with its own position.
        let sender = self.shared.events.upgrade().ok_or_else(closed)?;
        let revision = self.shared.revision.load(Ordering::SeqCst);
        let _ = sender.send(Arc::new(vec![StoreEvent::Progress { revision }]));
        Ok(())
    }

    async fn current_revision(&self) -> Result<i64, StorageError> {
        Ok(self.shared.revision.load(Ordering::SeqCst))
    }

    async fn compact(&self, revision: i64) -> Result<(), StorageError> {
        self.submit(WriteOp::Compact { revision }).await.map(|_| ())
    }
}
