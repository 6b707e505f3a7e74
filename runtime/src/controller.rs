//! The reconcile harness controllers are built on.
//!
//! A controller is split in two: [`Reconciler::plan`], a pure function from what the caches
//! show for one key to a list of actions, and [`Reconciler::apply`], which carries out one
//! action through the API. The logic lives in `plan` and is unit-tested without a server; the
//! harness runs keys from a [`WorkQueue`], retries failures with backoff, and keeps
//! [`Expectations`] so a key is not acted on again while the caches have not yet caught up
//! with what it already did (the classic double-create on a stale cache).

use std::collections::HashMap;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{Instrument, debug, info_span};

use crate::error::Result;
use crate::queue::{Backoff, WorkQueue};

/// What an action will make the informers observe for its key once it has been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Nothing worth waiting for.
    Nothing,
    /// A new object (a child created for the key).
    Create,
    /// An object going away.
    Delete,
    /// A change to an existing object (the key's own status, say).
    Update,
}

impl Expect {
    /// What an informer event shows of a change: the observation a handler reports to
    /// [`Expectations::observed`] for the key the object belongs to.
    pub fn of<K>(event: &crate::informer::Event<K>) -> Expect {
        use crate::informer::Event;
        match event {
            Event::Added(_) => Expect::Create,
            Event::Updated { .. } => Expect::Update,
            Event::Deleted(_) => Expect::Delete,
            Event::Resync(_) => Expect::Nothing,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    create: i64,
    delete: i64,
    update: i64,
    since: Instant,
}

impl Pending {
    fn slot(&mut self, e: Expect) -> Option<&mut i64> {
        match e {
            Expect::Nothing => None,
            Expect::Create => Some(&mut self.create),
            Expect::Delete => Some(&mut self.delete),
            Expect::Update => Some(&mut self.update),
        }
    }

    fn fulfilled(&self) -> bool {
        self.create <= 0 && self.delete <= 0 && self.update <= 0
    }
}

/// Per-key counts of changes a controller made and still waits to see in its caches.
///
/// Informer handlers report what they see with [`Expectations::observed`]. Expectations
/// expire after a TTL so a lost event cannot wedge a key forever.
pub struct Expectations<K> {
    pending: Mutex<HashMap<K, Pending>>,
    ttl: Duration,
}

impl<K: Clone + Eq + Hash> Expectations<K> {
    /// Expectations that expire after `ttl` (client-go uses 5 minutes).
    pub fn new(ttl: Duration) -> Self {
        Expectations {
            pending: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `key` is about to cause these observable changes.
    pub fn expect(&self, key: &K, changes: &[Expect]) {
        let mut p = Pending {
            create: 0,
            delete: 0,
            update: 0,
            since: Instant::now(),
        };
        for e in changes {
            if let Some(n) = p.slot(*e) {
                *n += 1;
            }
        }
        if p.fulfilled() {
            self.lock().remove(key);
        } else {
            self.lock().insert(key.clone(), p);
        }
    }

    /// An informer saw a change it attributes to `key`.
    pub fn observed(&self, key: &K, change: Expect) {
        let mut map = self.lock();
        if let Some(p) = map.get_mut(key) {
            if let Some(n) = p.slot(change) {
                *n -= 1;
            }
            if p.fulfilled() {
                map.remove(key);
            }
        }
    }

    /// Whether `key` may be acted on: nothing pending, everything observed, or expired.
    pub fn satisfied(&self, key: &K) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(p) => p.fulfilled() || p.since.elapsed() >= self.ttl,
        }
    }

    /// Forgets `key` (its object was deleted).
    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    /// When the expectation of `key` expires, if one is pending.
    fn expires_in(&self, key: &K) -> Option<Duration> {
        self.lock()
            .get(key)
            .map(|p| self.ttl.saturating_sub(p.since.elapsed()))
    }
}

/// A controller's logic: observe, plan (pure), apply.
pub trait Reconciler: Send + Sync + 'static {
    /// What the queue holds, normally the `ns/name` of the object owning the work.
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;
    /// A snapshot of everything `plan` needs, read from caches.
    type Observed: Send;
    /// One step of work.
    type Action: Debug + Send;

    /// Reads what the caches show for `key`. No API calls: the caches are the truth the
    /// plan works from.
    fn observe(&self, key: &Self::Key) -> Self::Observed;

    /// Decides what to do. Pure: same observation, same plan; empty when in sync.
    fn plan(&self, key: &Self::Key, observed: &Self::Observed) -> Vec<Self::Action>;

    /// What applying `action` will make the informers observe for `key`.
    fn expects(&self, action: &Self::Action) -> Expect {
        let _ = action;
        Expect::Nothing
    }

    /// Carries out one action through the API.
    fn apply(
        &self,
        key: &Self::Key,
        action: Self::Action,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Tuning of a controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Keys processed at once.
    pub workers: usize,
    /// Retry backoff of failed keys.
    pub backoff: Backoff,
    /// How long to wait for expected observations before acting anyway.
    pub expectations_ttl: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            workers: 2,
            backoff: Backoff::default(),
            expectations_ttl: Duration::from_secs(300),
        }
    }
}

/// What one reconcile of a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Waited: earlier actions are not yet visible in the caches.
    Waiting,
    /// Planned nothing: in sync.
    InSync,
    /// Applied this many actions.
    Applied(usize),
}

/// Runs a [`Reconciler`] from a work queue.
pub struct Controller<R: Reconciler> {
    reconciler: Arc<R>,
    queue: WorkQueue<R::Key>,
    expectations: Arc<Expectations<R::Key>>,
    config: ControllerConfig,
}

impl<R: Reconciler> Clone for Controller<R> {
    fn clone(&self) -> Self {
        Controller {
            reconciler: self.reconciler.clone(),
            queue: self.queue.clone(),
            expectations: self.expectations.clone(),
            config: self.config.clone(),
        }
    }
}

impl<R: Reconciler> Controller<R> {
    /// A controller for `reconciler`; nothing runs until [`Controller::run`].
    pub fn new(reconciler: R, config: ControllerConfig) -> Self {
        Controller {
            reconciler: Arc::new(reconciler),
            queue: WorkQueue::new(config.backoff),
            expectations: Arc::new(Expectations::new(config.expectations_ttl)),
            config,
        }
    }

    /// The queue: informer handlers `add` keys to it.
    pub fn queue(&self) -> &WorkQueue<R::Key> {
        &self.queue
    }

    /// The expectations: informer handlers report observations to it.
    pub fn expectations(&self) -> &Arc<Expectations<R::Key>> {
        &self.expectations
    }

    /// The reconciler.
    pub fn reconciler(&self) -> &Arc<R> {
        &self.reconciler
    }

    /// Reconciles one key: skip while expectations are pending, else observe, plan and
    /// apply. An apply failure lowers the expectations of the actions that did not happen and
    /// returns the error (the queue then retries the key with backoff).
    pub async fn reconcile(&self, key: &R::Key) -> Result<Outcome> {
        let span = info_span!("reconcile", key = %key);
        async {
            if !self.expectations.satisfied(key) {
                debug!("waiting for earlier changes to show up in the cache");
                if let Some(d) = self.expectations.expires_in(key) {
                    // Come back when they expire, in case an event was lost.
                    self.queue
                        .add_after(key.clone(), d + Duration::from_millis(1));
                }
                return Ok(Outcome::Waiting);
            }
            let observed = self.reconciler.observe(key);
            let actions = self.reconciler.plan(key, &observed);
            if actions.is_empty() {
                return Ok(Outcome::InSync);
            }
            let expected: Vec<Expect> =
                actions.iter().map(|a| self.reconciler.expects(a)).collect();
            self.expectations.expect(key, &expected);
            let n = actions.len();
            for (i, action) in actions.into_iter().enumerate() {
                debug!(?action, "applying");
                if let Err(e) = self.reconciler.apply(key, action).await {
                    // Nothing will be observed for this action and the ones after it.
                    for e in &expected[i..] {
                        self.expectations.observed(key, *e);
                    }
                    return Err(e);
                }
            }
            Ok(Outcome::Applied(n))
        }
        .instrument(span)
        .await
    }

    /// Processes keys with `config.workers` workers until [`Controller::shut_down`].
    pub async fn run(&self) {
        let this = self.clone();
        self.queue
            .run_workers(self.config.workers, move |key: R::Key| {
                let this = this.clone();
                async move { this.reconcile(&key).await.map(|_| ()) }
            })
            .await;
    }

    /// Stops taking keys, lets in-flight reconciles finish.
    pub async fn shut_down(&self) {
        self.queue.shut_down_with_drain().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A toy "replica" controller: key wants `want` children; the cache and the server are
    /// separate so the test controls when the cache catches up.
    #[derive(Default)]
    struct Toy {
        want: Mutex<HashMap<String, usize>>,
        cached: Mutex<HashMap<String, usize>>,
        server: Mutex<HashMap<String, usize>>,
        fail_after: Mutex<Option<usize>>,
        applied: AtomicUsize,
    }

    #[derive(Debug, PartialEq)]
    enum Act {
        Create,
        Delete,
    }

    impl Reconciler for Toy {
        type Key = String;
        type Observed = (usize, usize);
        type Action = Act;

        fn observe(&self, key: &String) -> (usize, usize) {
            let want = self.want.lock().unwrap().get(key).copied().unwrap_or(0);
            let have = self.cached.lock().unwrap().get(key).copied().unwrap_or(0);
            (want, have)
        }

        fn plan(&self, _key: &String, &(want, have): &(usize, usize)) -> Vec<Act> {
            if have < want {
                (have..want).map(|_| Act::Create).collect()
            } else {
                (want..have).map(|_| Act::Delete).collect()
            }
        }

        fn expects(&self, a: &Act) -> Expect {
            match a {
                Act::Create => Expect::Create,
                Act::Delete => Expect::Delete,
            }
        }

        async fn apply(&self, key: &String, a: Act) -> Result<()> {
            let mut fail = self.fail_after.lock().unwrap();
            if let Some(n) = fail.as_mut() {
                if *n == 0 {
                    return Err(Error::Request("injected failure".into()));
                }
                *n -= 1;
            }
            self.applied.fetch_add(1, Ordering::SeqCst);
            let mut s = self.server.lock().unwrap();
            let c = s.entry(key.clone()).or_insert(0);
            match a {
                Act::Create => *c += 1,
                Act::Delete => *c -= 1,
            }
            Ok(())
        }
    }

    fn controller() -> Controller<Toy> {
        let toy = Toy::default();
        toy.want.lock().unwrap().insert("ns/a".into(), 3);
        Controller::new(
            toy,
            ControllerConfig {
                expectations_ttl: Duration::from_secs(60),
                ..ControllerConfig::default()
            },
        )
    }

    /// The cache catches up with one server change and the handler reports it.
    fn observe_one(c: &Controller<Toy>, key: &str, e: Expect) {
        let toy = c.reconciler();
        let mut cached = toy.cached.lock().unwrap();
        let n = cached.entry(key.to_string()).or_insert(0);
        match e {
            Expect::Create => *n += 1,
            Expect::Delete => *n -= 1,
            _ => {}
        }
        c.expectations().observed(&key.to_string(), e);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_cache_does_not_double_create() {
        let c = controller();
        let key = "ns/a".to_string();
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Applied(3));
        // The cache still shows no children: without expectations this would create 3 more.
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Waiting);
        observe_one(&c, &key, Expect::Create);
        observe_one(&c, &key, Expect::Create);
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Waiting);
        observe_one(&c, &key, Expect::Create);
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::InSync);
        assert_eq!(c.reconciler().server.lock().unwrap()["ns/a"], 3);
        assert_eq!(c.reconciler().applied.load(Ordering::SeqCst), 3);

        // Scale down: two deletes, same protection.
        c.reconciler().want.lock().unwrap().insert(key.clone(), 1);
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Applied(2));
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Waiting);
        observe_one(&c, &key, Expect::Delete);
        observe_one(&c, &key, Expect::Delete);
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::InSync);
        assert_eq!(c.reconciler().server.lock().unwrap()["ns/a"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_apply_lowers_expectations_and_expired_ones_unblock() {
        let c = controller();
        let key = "ns/a".to_string();
        *c.reconciler().fail_after.lock().unwrap() = Some(1);
        assert!(c.reconcile(&key).await.is_err());
        // One create went through; only that one is awaited.
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Waiting);
        observe_one(&c, &key, Expect::Create);
        *c.reconciler().fail_after.lock().unwrap() = None;
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Applied(2));
        // The observations never come: after the TTL the key may act again.
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Waiting);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(c.reconcile(&key).await.unwrap(), Outcome::Applied(2));
    }

    #[tokio::test(start_paused = true)]
    async fn run_processes_queued_keys_until_shutdown() {
        let c = controller();
        c.reconciler().want.lock().unwrap().insert("ns/b".into(), 2);
        let runner = {
            let c = c.clone();
            tokio::spawn(async move { c.run().await })
        };
        c.queue().add("ns/a".to_string());
        c.queue().add("ns/b".to_string());
        c.queue().add("ns/a".to_string());
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.reconciler().applied.load(Ordering::SeqCst) < 5 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        c.shut_down().await;
        runner.await.unwrap();
        let server = c.reconciler().server.lock().unwrap();
        assert_eq!((server["ns/a"], server["ns/b"]), (3, 2));
        assert_eq!(c.reconciler().applied.load(Ordering::SeqCst), 5);
    }
}
