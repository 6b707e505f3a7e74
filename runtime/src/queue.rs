//! A de-duplicating, rate-limited work queue, in the spirit of client-go's `workqueue`.
//!
//! Controllers do not act on events; they act on keys. Many events for one object collapse
//! into one pending key (de-duplication), a key is never processed by two workers at once (a
//! key re-added while being processed is queued again once the worker is done), failures are
//! retried with per-key exponential backoff, and shutdown lets in-flight work finish. All time
//! goes through `tokio::time`, so tests run on virtual time with `tokio::time::pause()`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Per-key exponential backoff: the n-th consecutive failure waits `base * 2^(n-1)`, at most
/// `max` (client-go's defaults are 5 ms and 1000 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Ceiling of the delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl Backoff {
    /// Delay before retry number `failures` (1 for the first retry).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(63);
        self.base
            .checked_mul(1u32.checked_shl(exp.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

struct State<T> {
    queue: VecDeque<T>,
    /// Keys waiting to be processed (in `queue`, or parked until their processing ends).
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    /// Earliest pending deadline of each delayed key.
    waiting: HashMap<T, Instant>,
    shutting_down: bool,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    /// Wakes `get` callers when a key is queued or the queue shuts down.
    ready: Notify,
    /// Wakes drain waiters when processing finishes.
    idle: Notify,
    backoff: Backoff,
}

/// The queue. Cheap to clone; clones share the same queue.
pub struct WorkQueue<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new(Backoff::default())
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    /// An empty queue retrying failures with `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        WorkQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    failures: HashMap::new(),
                    waiting: HashMap::new(),
                    shutting_down: false,
                }),
                ready: Notify::new(),
                idle: Notify::new(),
                backoff,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` unless it is already waiting. If it is being processed, it is queued
    /// again when that processing is [`done`](Self::done). Ignored after shutdown.
    pub fn add(&self, item: T) {
        let mut st = self.lock();
        if st.shutting_down || st.dirty.contains(&item) {
            return;
        }
        st.dirty.insert(item.clone());
        if st.processing.contains(&item) {
            return;
        }
        st.queue.push_back(item);
        drop(st);
        self.inner.ready.notify_one();
    }

    /// Queues `item` after `delay`. Of several pending delays for one key the earliest wins,
    /// and the key is added once.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(item);
        }
        let deadline = Instant::now() + delay;
        {
            let mut st = self.lock();
            if st.shutting_down {
                return;
            }
            if st.waiting.get(&item).is_some_and(|d| *d <= deadline) {
                return;
            }
            st.waiting.insert(item.clone(), deadline);
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let mut st = queue.lock();
            if st.waiting.get(&item) == Some(&deadline) {
                st.waiting.remove(&item);
                drop(st);
                queue.add(item);
            }
        });
    }

    /// Queues `item` after its backoff: each call without a [`forget`](Self::forget) in
    /// between doubles the delay.
    pub fn add_rate_limited(&self, item: T) {
        let failures = {
            let mut st = self.lock();
            let n = st.failures.entry(item.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = self.inner.backoff.delay(failures);
        self.add_after(item, delay);
    }

    /// Clears the failure count of `item` (call after it was processed successfully).
    pub fn forget(&self, item: &T) {
        self.lock().failures.remove(item);
    }

    /// How many times `item` has been retried since it was last forgotten.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// Keys ready to be handed out.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next key. The caller owns it until [`done`](Self::done). Returns
    /// `None` once the queue is shut down and empty.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.inner.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if let Some(item) = st.queue.pop_front() {
                    st.dirty.remove(&item);
                    st.processing.insert(item.clone());
                    if !st.queue.is_empty() {
                        // Pass the baton: another waiter may take the next key.
                        self.inner.ready.notify_one();
                    }
                    return Some(item);
                }
                if st.shutting_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Ends the processing of `item`; if it was re-added meanwhile, it is queued again.
    pub fn done(&self, item: &T) {
        let mut st = self.lock();
        st.processing.remove(item);
        if st.dirty.contains(item) {
            st.queue.push_back(item.clone());
            drop(st);
            self.inner.ready.notify_one();
            return;
        }
        if st.processing.is_empty() && st.queue.is_empty() {
            drop(st);
            self.inner.idle.notify_waiters();
        }
    }

    /// Stops accepting keys. Keys already queued are still handed out; then `get` returns
    /// `None`. Delayed keys that have not come due are dropped.
    pub fn shut_down(&self) {
        let mut st = self.lock();
        st.shutting_down = true;
        st.waiting.clear();
        drop(st);
        self.inner.ready.notify_waiters();
        self.inner.idle.notify_waiters();
    }

    /// Whether [`shut_down`](Self::shut_down) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.lock().shutting_down
    }

    /// Shuts down and waits until every queued and in-flight key has been processed.
    pub async fn shut_down_with_drain(&self) {
        self.shut_down();
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let st = self.lock();
                if st.processing.is_empty() && st.queue.is_empty() {
                    return;
                }
            }
            idle.await;
        }
    }

    /// Runs `workers` tasks that process keys with `handler` until the queue shuts down and
    /// drains. A handler error retries the key with backoff; success forgets its failures.
    /// At most `workers` keys are processed at once, and never one key twice at once.
    pub async fn run_workers<F, Fut, E>(&self, workers: usize, handler: F)
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let handler = Arc::new(handler);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let queue = self.clone();
            let handler = handler.clone();
            tasks.spawn(async move {
                while let Some(item) = queue.get().await {
                    match handler(item.clone()).await {
                        Ok(()) => queue.forget(&item),
                        Err(e) => {
                            tracing::debug!(error = %e, retries = queue.num_requeues(&item), "work item failed; retrying with backoff");
                            queue.add_rate_limited(item.clone());
                        }
                    }
                    queue.done(&item);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(100),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_adds_collapse() {
        let q = queue();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn key_readded_while_processing_runs_again_after_done() {
        let q = queue();
        q.add("a");
        let a = q.get().await.unwrap();
        q.add("a");
        q.add("a");
        assert_eq!(q.len(), 0, "not handed out while being processed");
        q.done(&a);
        assert_eq!(q.len(), 1, "queued once more after done");
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_keys_back_off_exponentially_until_forgotten() {
        let q = queue();
        let mut waits = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            q.add_rate_limited("a");
            let got = q.get().await.unwrap();
            waits.push(t0.elapsed());
            q.done(&got);
        }
        let ms = |n| Duration::from_millis(n);
        assert_eq!(waits, vec![ms(10), ms(20), ms(40), ms(80), ms(100)]);
        assert_eq!(q.num_requeues(&"a"), 5);
        q.forget(&"a");
        assert_eq!(q.num_requeues(&"a"), 0);
        let t0 = Instant::now();
        q.add_rate_limited("a");
        q.get().await.unwrap();
        assert_eq!(t0.elapsed(), ms(10));
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_keep_the_earliest_and_add_once() {
        let q = queue();
        let t0 = Instant::now();
        q.add_after("a", Duration::from_millis(100));
        q.add_after("a", Duration::from_millis(50));
        q.add_after("a", Duration::from_millis(70));
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(t0.elapsed(), Duration::from_millis(50));
        q.done(&"a");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            q.is_empty(),
            "the later deadlines did not add the key again"
        );
        // A key added now is not delayed by a pending delayed add.
        q.add_after("b", Duration::from_secs(10));
        q.add("b");
        assert_eq!(q.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_hands_out_queued_keys_then_none_and_drain_waits() {
        let q = queue();
        q.add("a");
        q.add("b");
        let a = q.get().await.unwrap();
        let drained = Arc::new(AtomicUsize::new(0));
        let drain = {
            let (q, drained) = (q.clone(), drained.clone());
            tokio::spawn(async move {
                q.shut_down_with_drain().await;
                drained.store(1, Ordering::SeqCst);
            })
        };
        tokio::task::yield_now().await;
        q.add("c");
        q.add_after("d", Duration::from_millis(1));
        assert_eq!(q.get().await, Some("b"));
        assert_eq!(drained.load(Ordering::SeqCst), 0);
        q.done(&a);
        tokio::task::yield_now().await;
        assert_eq!(drained.load(Ordering::SeqCst), 0, "b is still in flight");
        q.done(&"b");
        tokio::time::timeout(Duration::from_secs(1), drain)
            .await
            .expect("drain finishes")
            .unwrap();
        assert_eq!(q.get().await, None, "c and d were refused after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn workers_bound_concurrency_and_retry_failures() {
        let q: WorkQueue<u32> = WorkQueue::new(Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(10),
        });
        for i in 0..20 {
            q.add(i);
        }
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
        let workers = {
            let (q2, running, peak, calls) =
                (q.clone(), running.clone(), peak.clone(), calls.clone());
            tokio::spawn(async move {
                q2.run_workers(3, move |i: u32| {
                    let (running, peak, calls) = (running.clone(), peak.clone(), calls.clone());
                    async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        let mut c = calls.lock().unwrap();
                        let n = c.entry(i).or_insert(0);
                        *n += 1;
                        // Key 7 fails twice before it succeeds.
                        if i == 7 && *n < 3 {
                            Err("not yet")
                        } else {
                            Ok(())
                        }
                    }
                })
                .await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while calls.lock().unwrap().values().sum::<u32>() < 22 {
            assert!(Instant::now() < deadline, "workers did not finish");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        q.shut_down_with_drain().await;
        workers.await.unwrap();
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 20);
        assert_eq!(calls[&7], 3);
        assert!(calls.iter().all(|(k, n)| *k == 7 || *n == 1));
        assert_eq!(q.num_requeues(&7), 0, "forgotten after success");
    }
}
