//! Leader election against a real `skiff server`: two electors never lead at once, a crashed
//! leader is replaced only after its Lease expires, and a released Lease is taken at once.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use runtime::Api;
use runtime::leader::{LeaderElectionConfig, LeaderElector, Term};
use support::{TestServer, wait_for};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(100);

fn config(identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_duration: LEASE,
        renew_deadline: Duration::from_millis(1500),
        retry_period: RETRY,
        ..LeaderElectionConfig::new("default", "skiff-test", identity)
    }
}

fn assert_disjoint(a: &[Term], b: &[Term]) {
    for x in a {
        for y in b {
            assert!(
                x.until <= y.since || y.until <= x.since,
                "terms overlap: {x:?} and {y:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_never_lead_at_once_and_take_over_after_expiry() {
    let server = TestServer::start(&[]).await;
    let client = server.client();
    let a = LeaderElector::spawn(client.clone(), config("a")).unwrap();
    let b = LeaderElector::spawn(client.clone(), config("b")).unwrap();

    // One of them wins; for a few lease periods the winner keeps renewing and the other
    // never gets in.
    let (leader, follower) = wait_for("a leader", Duration::from_secs(10), || {
        let r = if a.is_leader() {
            Some(("a", "b"))
        } else if b.is_leader() {
            Some(("b", "a"))
        } else {
            None
        };
        async move { r }
    })
    .await;
    let watch_until = Instant::now() + LEASE * 2;
    while Instant::now() < watch_until {
        assert!(!(a.is_leader() && b.is_leader()), "both lead at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (winner, other) = if leader == "a" { (a, b) } else { (b, a) };
    assert_eq!(winner.terms().len(), 1, "{leader} kept one term");
    assert!(
        other.terms().is_empty(),
        "{follower} never led while {leader} renewed"
    );

    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease = api.get("skiff-test").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(leader));
    assert_eq!(spec.lease_duration_seconds, Some(2));
    assert!(
        spec.renew_time.unwrap().0 > spec.acquire_time.unwrap().0,
        "renewed"
    );
    let transitions = spec.lease_transitions.unwrap_or(0);

    // Crash the leader: no release. The other takes over, but only after expiry.
    let crashed_terms = winner.terms();
    let crashed_at = Instant::now();
    drop(winner);
    other
        .wait_for_leadership(Duration::from_secs(10))
        .await
        .unwrap();
    let took_over = other.terms()[0].since;
    assert_disjoint(&crashed_terms, &other.terms());
    assert!(
        took_over >= crashed_at + LEASE - RETRY * 3,
        "took over {:?} after the crash, before the lease could expire",
        took_over - crashed_at
    );
    let spec = api.get("skiff-test").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(follower));
    assert_eq!(spec.lease_transitions, Some(transitions + 1));

    // A clean release lets a newcomer in well before the lease would expire.
    let newcomer = LeaderElector::spawn(client.clone(), config("c")).unwrap();
    tokio::time::sleep(RETRY * 3).await;
    assert!(!newcomer.is_leader());
    let released_at = Instant::now();
    let other_terms = other.release().await;
    newcomer
        .wait_for_leadership(Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        newcomer.terms()[0].since < released_at + LEASE,
        "a released lease is taken without waiting for expiry"
    );
    assert_disjoint(&other_terms, &newcomer.terms());
    assert_disjoint(&crashed_terms, &newcomer.terms());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contending_electors_with_restarts_never_overlap() {
    let server = TestServer::start(&[]).await;
    let client = server.client();
    let mut all_terms: Vec<(String, Vec<Term>)> = Vec::new();
    let mut electors: Vec<(String, LeaderElector)> = (0..3)
        .map(|i| {
            let id = format!("e{i}");
            (
                id.clone(),
                LeaderElector::spawn(client.clone(), config(&id)).unwrap(),
            )
        })
        .collect();
    // Three rounds: wait for a leader, crash or release it, and bring a new candidate in.
    for round in 0..3 {
        let idx = wait_for(
            "a leader among the candidates",
            Duration::from_secs(10),
            || {
                let i = electors.iter().position(|(_, e)| e.is_leader());
                async move { i }
            },
        )
        .await;
        let (id, leader) = electors.remove(idx);
        let terms = if round % 2 == 0 {
            let t = leader.terms();
            drop(leader);
            t
        } else {
            leader.release().await
        };
        all_terms.push((id, terms));
        let id = format!("n{round}");
        electors.push((
            id.clone(),
            LeaderElector::spawn(client.clone(), config(&id)).unwrap(),
        ));
    }
    wait_for("a final leader", Duration::from_secs(10), || {
        let any = electors.iter().any(|(_, e)| e.is_leader());
        async move { any.then_some(()) }
    })
    .await;
    for (id, e) in &electors {
        all_terms.push((id.clone(), e.terms()));
    }
    let leaders = all_terms.iter().filter(|(_, t)| !t.is_empty()).count();
    assert!(leaders >= 4, "four rounds of leadership: {all_terms:?}");
    for (i, (_, a)) in all_terms.iter().enumerate() {
        for (_, b) in &all_terms[i + 1..] {
            assert_disjoint(a, b);
        }
    }
}
