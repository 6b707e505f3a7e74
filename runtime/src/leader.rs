//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Several replicas of a controller may run; only one may act. They compete for a Lease: the
//! holder renews it every `retry_period`; the others take it over once it has not changed for
//! `lease_duration` as measured on *their own* clock since they last saw it change (so clock
//! skew between machines does not matter). Writes use the Lease's resourceVersion, so two
//! candidates can never both win the same round.
//!
//! The safety argument: a leader only believes it leads until `renew_deadline` after it
//! *sent* its last successful renewal; any other candidate saw that renewal no earlier than it
//! was written, and waits a full `lease_duration` (> `renew_deadline`) after seeing it. So the
//! terms of two electors never overlap.
//!
//! [`decide`] is the whole decision as a pure function of (lease, when it was observed, now,
//! identity); [`LeaderElector`] is the loop that feeds it from the API server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::client::{Api, Client};
use crate::error::{Error, Result};
use crate::request::PostParams;

/// What a candidate observed of the Lease, and when (on its own clock) it last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The Lease's spec as last read.
    pub spec: LeaseSpec,
    /// Local time at which this spec was first seen.
    pub observed_at: Instant,
}

/// What a candidate should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No Lease exists: create it holding it.
    Create(LeaseSpec),
    /// We hold the Lease: write this renewal.
    Renew(LeaseSpec),
    /// The Lease is free or expired: take it over with this spec.
    TakeOver(LeaseSpec),
    /// Someone else holds a live Lease.
    Follow {
        /// Its holder.
        holder: String,
        /// How long until it expires (from our point of view) unless renewed.
        expires_in: Duration,
    },
}

/// Decides the next step for `identity`, given the current Lease (if any), when its current
/// content was first observed, local `now`, wall-clock `wall` (written into the Lease), and
/// the lease duration we would write.
pub fn decide(
    current: Option<&Observation>,
    now: Instant,
    wall: jiff::Timestamp,
    identity: &str,
    lease_duration: Duration,
) -> Decision {
    let secs = i32::try_from(lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let fresh = |transitions: i32| LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(secs),
        acquire_time: Some(MicroTime(wall)),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(obs) = current else {
        return Decision::Create(fresh(0));
    };
    let spec = &obs.spec;
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    let transitions = spec.lease_transitions.unwrap_or(0);
    if holder == identity {
        return Decision::Renew(LeaseSpec {
            holder_identity: Some(identity.to_string()),
            lease_duration_seconds: Some(secs),
            acquire_time: spec.acquire_time.clone().or(Some(MicroTime(wall))),
            renew_time: Some(MicroTime(wall)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        });
    }
    if holder.is_empty() {
        return Decision::TakeOver(fresh(transitions + 1));
    }
    // The holder's own duration counts, from when *we* saw the Lease last change.
    let held_for = Duration::from_secs(
        u64::try_from(spec.lease_duration_seconds.unwrap_or(secs).max(1)).unwrap_or(1),
    );
    let expires_at = obs.observed_at + held_for;
    if now >= expires_at {
        Decision::TakeOver(fresh(transitions + 1))
    } else {
        Decision::Follow {
            holder: holder.to_string(),
            expires_in: expires_at - now,
        }
    }
}

/// Settings of an elector.
#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (unique per process: host name plus a random suffix).
    pub identity: String,
    /// How long others wait after the last renewal before taking over (Kubernetes: 15 s).
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal; must be shorter than
    /// `lease_duration` (Kubernetes: 10 s).
    pub renew_deadline: Duration,
    /// Pause between attempts (Kubernetes: 2 s).
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Kubernetes' default timings for a Lease `namespace/name`.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaderElectionConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether this elector currently leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderState {
    /// Not leading.
    Following,
    /// Leading until `until` unless renewed before then.
    Leading {
        /// When this term began.
        since: Instant,
        /// When leadership lapses without another successful renewal.
        until: Instant,
    },
}

/// A component that may or may not run under election: the loop shape the scheduler and
/// the controller manager share. [`Candidate::acquire`] waits for a term (at once without
/// election), [`lost`] on its result tells when the term ends, [`Candidate::release`] steps
/// down at shutdown.
pub struct Candidate {
    elector: Option<LeaderElector>,
}

impl Candidate {
    /// Competes for the Lease of `config`, or leads unconditionally when it is `None`.
    pub fn new(client: Client, config: Option<LeaderElectionConfig>) -> Result<Self> {
        let elector = match config {
            Some(c) => Some(LeaderElector::spawn(client, c)?),
            None => None,
        };
        Ok(Candidate { elector })
    }

    /// Waits until this candidate leads; returns the state to pass to [`lost`] (`None`
    /// without election, where the term never ends).
    pub async fn acquire(&self) -> Result<Option<watch::Receiver<LeaderState>>> {
        let Some(el) = &self.elector else {
            return Ok(None);
        };
        let mut rx = el.state();
        rx.wait_for(|s| matches!(s, LeaderState::Leading { .. }))
            .await
            .map_err(|_| Error::ShutDown)?;
        Ok(Some(el.state()))
    }

    /// Stops competing, handing the Lease back if held.
    pub async fn release(self) {
        if let Some(el) = self.elector {
            el.release().await;
        }
    }
}

/// Completes when the leadership seen through `state` is lost: the elector says so, or
/// the term lapses unrenewed. Never completes for `None` (running without election).
pub async fn lost(state: Option<watch::Receiver<LeaderState>>) {
    let Some(mut rx) = state else {
        return std::future::pending().await;
    };
    loop {
        let until = match *rx.borrow_and_update() {
            LeaderState::Following => return,
            LeaderState::Leading { until, .. } => until,
        };
        if Instant::now() >= until {
            return;
        }
        // Either the state changes (renewed or lost) or the term lapses unrenewed.
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(until) => {}
        }
    }
}

/// One term of leadership, as this elector saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// When leadership was won.
    pub since: Instant,
    /// When it ended (or will lapse, for a term still running or cut short by a crash).
    pub until: Instant,
}

/// A running election candidate. Dropping it stops it without releasing the Lease (like a
/// crash); call [`LeaderElector::release`] to step down cleanly.
pub struct LeaderElector {
    state: watch::Receiver<LeaderState>,
    terms: Arc<Mutex<Vec<Term>>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl LeaderElector {
    /// Starts competing for the Lease. Must be called inside a Tokio runtime.
    pub fn spawn(client: Client, config: LeaderElectionConfig) -> Result<Self> {
        if config.renew_deadline >= config.lease_duration {
            return Err(Error::Request(
                "renew_deadline must be shorter than lease_duration".into(),
            ));
        }
        let (state_tx, state) = watch::channel(LeaderState::Following);
        let (stop, stop_rx) = watch::channel(false);
        let terms = Arc::new(Mutex::new(Vec::new()));
        let span = info_span!("leader_election", lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity);
        let mut elector = Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            state: state_tx,
            terms: terms.clone(),
        };
        let task = tokio::spawn(async move { elector.run(stop_rx).await }.instrument(span));
        Ok(LeaderElector {
            state,
            terms,
            stop,
            task: Some(task),
        })
    }

    /// Whether this elector leads right now.
    pub fn is_leader(&self) -> bool {
        matches!(*self.state.borrow(), LeaderState::Leading { until, .. } if Instant::now() < until)
    }

    /// A receiver of leadership changes.
    pub fn state(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// Every term so far.
    pub fn terms(&self) -> Vec<Term> {
        self.terms.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until this elector leads, at most `timeout`.
    pub async fn wait_for_leadership(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.state.clone();
        match tokio::time::timeout(
            timeout,
            rx.wait_for(|s| matches!(s, LeaderState::Leading { .. })),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::ShutDown),
            Err(_) => Err(Error::Timeout(format!("not leading after {timeout:?}"))),
        }
    }

    /// Stops competing and, if leading, hands the Lease back so another candidate can take
    /// over at once instead of waiting for it to expire. Returns every term, the last one
    /// ending when leadership was given up.
    pub async fn release(mut self) -> Vec<Term> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.terms()
    }
}

struct Elector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    observed: Option<(Observation, String)>,
    state: watch::Sender<LeaderState>,
    terms: Arc<Mutex<Vec<Term>>>,
}

impl Elector {
    fn leading_until(&self) -> Option<Instant> {
        let current = *self.state.borrow();
        match current {
            LeaderState::Leading { until, .. } => Some(until),
            LeaderState::Following => None,
        }
    }

    fn record_term(&self, f: impl FnOnce(&mut Vec<Term>)) {
        f(&mut self.terms.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// A write sent at `sent` succeeded: lead until `sent + renew_deadline`.
    fn renewed(&self, sent: Instant) {
        let until = sent + self.config.renew_deadline;
        // Copy the state out: holding the borrow while sending would deadlock.
        let current = *self.state.borrow();
        match current {
            LeaderState::Leading { since, .. } => {
                self.record_term(|t| {
                    if let Some(last) = t.last_mut() {
                        last.until = until;
                    }
                });
                self.state
                    .send_replace(LeaderState::Leading { since, until });
            }
            LeaderState::Following => {
                info!("became leader");
                self.record_term(|t| t.push(Term { since: sent, until }));
                self.state
                    .send_replace(LeaderState::Leading { since: sent, until });
            }
        }
    }

    fn step_down(&self, why: &str) {
        if let Some(until) = self.leading_until() {
            let end = Instant::now().min(until);
            warn!(reason = why, "lost leadership");
            self.record_term(|t| {
                if let Some(last) = t.last_mut() {
                    last.until = end;
                }
            });
            self.state.send_replace(LeaderState::Following);
        }
    }

    async fn run(&mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.try_once().await {
                debug!(error = %e, "election round failed");
            }
            if self.leading_until().is_some_and(|u| Instant::now() >= u) {
                self.step_down("renew deadline passed");
            }
            let jitter = self
                .config
                .retry_period
                .mul_f64(rand::random_range(0.0..0.2));
            let pause = self.config.retry_period + jitter;
            let pause = match self.leading_until() {
                // Don't sleep past our own deadline without noticing it.
                Some(u) => pause.min(u.saturating_duration_since(Instant::now())),
                None => pause,
            };
            let stopped = tokio::select! {
                _ = tokio::time::sleep(pause) => None,
                r = stop.wait_for(|s| *s) => Some(r.is_ok()),
            };
            match stopped {
                None => {}
                Some(true) => {
                    self.release().await;
                    return;
                }
                // The handle is gone: stop as if crashed.
                Some(false) => return,
            }
        }
    }

    async fn try_once(&mut self) -> Result<()> {
        let current = self.api.get_opt(&self.config.name).await?;
        let now = Instant::now();
        let (obs, rv) = match &current {
            None => (None, String::new()),
            Some(lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let rv = lease.metadata.resource_version.clone().unwrap_or_default();
                let observed_at = match &self.observed {
                    Some((o, _)) if o.spec == spec => o.observed_at,
                    _ => now,
                };
                (Some(Observation { spec, observed_at }), rv)
            }
        };
        self.observed = obs.clone().map(|o| (o, rv.clone()));
        let decision = decide(
            obs.as_ref(),
            now,
            jiff::Timestamp::now(),
            &self.config.identity,
            self.config.lease_duration,
        );
        let sent = Instant::now();
        match decision {
            Decision::Follow { holder, .. } => {
                self.step_down(&format!("{holder} holds the lease"));
                Ok(())
            }
            Decision::Create(spec) => {
                let lease = self.lease(spec, None);
                self.api.create(&PostParams::default(), &lease).await?;
                self.renewed(sent);
                Ok(())
            }
            Decision::Renew(spec) | Decision::TakeOver(spec) => {
                let lease = self.lease(spec, Some(rv));
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await?;
                self.renewed(sent);
                Ok(())
            }
        }
    }

    fn lease(&self, spec: LeaseSpec, resource_version: Option<String>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                resource_version,
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    /// Hands the Lease back if we hold it: empty holder, 1 s duration.
    async fn release(&mut self) {
        if self.leading_until().is_none() {
            return;
        }
        // Stop believing we lead before the Lease says we don't.
        self.step_down("released");
        // Read the Lease afresh rather than trusting the last observation: that was taken before
        // our own last write (and is empty right after we created the Lease).
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(Some(l)) => l,
            _ => return,
        };
        let Some(spec) = current.spec else { return };
        if spec.holder_identity.as_deref() != Some(&self.config.identity) {
            return;
        }
        let rv = current.metadata.resource_version.unwrap_or_default();
        let spec = LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..spec
        };
        let lease = self.lease(spec, Some(rv));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("released the lease"),
            Err(e) => warn!(error = %e, "could not release the lease; it will expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(10);

    fn wall() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn held_by(holder: &str, transitions: i32, observed_at: Instant) -> Observation {
        Observation {
            spec: LeaseSpec {
                holder_identity: Some(holder.into()).filter(|h: &String| !h.is_empty()),
                lease_duration_seconds: Some(10),
                acquire_time: Some(MicroTime(
                    jiff::Timestamp::from_second(1_600_000_000).unwrap(),
                )),
                renew_time: Some(MicroTime(
                    jiff::Timestamp::from_second(1_600_000_000).unwrap(),
                )),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            },
            observed_at,
        }
    }

    #[test]
    fn no_lease_is_created_held_by_us() {
        let t0 = Instant::now();
        match decide(None, t0, wall(), "a", D) {
            Decision::Create(s) => {
                assert_eq!(s.holder_identity.as_deref(), Some("a"));
                assert_eq!(s.lease_duration_seconds, Some(10));
                assert_eq!(s.lease_transitions, Some(0));
                assert_eq!(s.acquire_time, Some(MicroTime(wall())));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn holder_renews_keeping_acquire_time_and_transitions() {
        let t0 = Instant::now();
        let obs = held_by("a", 3, t0);
        // Even long after: our own lease is always renewable.
        match decide(Some(&obs), t0 + D * 5, wall(), "a", D) {
            Decision::Renew(s) => {
                assert_eq!(s.lease_transitions, Some(3));
                assert_eq!(s.acquire_time, obs.spec.acquire_time);
                assert_eq!(s.renew_time, Some(MicroTime(wall())));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn others_follow_until_expiry_on_their_own_clock_then_take_over() {
        let t0 = Instant::now();
        let obs = held_by("a", 3, t0);
        let just_before = t0 + D - Duration::from_millis(1);
        assert_eq!(
            decide(Some(&obs), just_before, wall(), "b", D),
            Decision::Follow {
                holder: "a".into(),
                expires_in: Duration::from_millis(1)
            }
        );
        match decide(Some(&obs), t0 + D, wall(), "b", D) {
            Decision::TakeOver(s) => {
                assert_eq!(s.holder_identity.as_deref(), Some("b"));
                assert_eq!(s.lease_transitions, Some(4));
                assert_eq!(s.acquire_time, Some(MicroTime(wall())));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_holders_duration_counts_not_ours() {
        let t0 = Instant::now();
        let mut obs = held_by("a", 0, t0);
        obs.spec.lease_duration_seconds = Some(60);
        assert!(matches!(
            decide(Some(&obs), t0 + D * 2, wall(), "b", D),
            Decision::Follow { .. }
        ));
        assert!(matches!(
            decide(Some(&obs), t0 + Duration::from_secs(60), wall(), "b", D),
            Decision::TakeOver(_)
        ));
    }

    #[test]
    fn released_lease_is_taken_at_once() {
        let t0 = Instant::now();
        let obs = held_by("", 5, t0);
        match decide(Some(&obs), t0, wall(), "b", D) {
            Decision::TakeOver(s) => assert_eq!(s.lease_transitions, Some(6)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn renew_deadline_must_be_shorter_than_the_lease() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client =
                Client::new(crate::config::Config::from_url("http://127.0.0.1:1")).unwrap();
            let mut c = LeaderElectionConfig::new("ns", "l", "a");
            c.renew_deadline = c.lease_duration;
            assert!(LeaderElector::spawn(client, c).is_err());
        });
    }
}
