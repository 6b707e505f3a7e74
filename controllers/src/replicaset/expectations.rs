//! What a ReplicaSet is still waiting to see after creating or deleting pods.
//!
//! Built on the runtime's counting [`Expectations`], plus the keys of the pods it deleted,
//! like client-go's `UIDTrackingControllerExpectations`: a deleted pod is seen going away
//! twice (an update with a `deletionTimestamp`, later the delete itself) and also when its
//! delete call fails, and each pod must lower the count once, or a sync could run on a cache
//! that still holds pods it has deleted and delete more.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use runtime::controller::{Expect, Expectations};

/// Pending pod creations and deletions per ReplicaSet key.
pub struct PodExpectations {
    counts: Expectations<String>,
    /// ReplicaSet key -> keys of the pods it deleted and has not yet seen go.
    deleting: Mutex<HashMap<String, HashSet<String>>>,
}

impl PodExpectations {
    /// Expectations that stop blocking after `ttl` (a lost event must not wedge a key).
    pub fn new(ttl: Duration) -> Self {
        PodExpectations {
            counts: Expectations::new(ttl),
            deleting: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.deleting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the ReplicaSet may create or delete: everything it did has been seen (or the
    /// wait expired).
    pub fn satisfied(&self, rs: &String) -> bool {
        self.counts.satisfied(rs)
    }

    /// The ReplicaSet is about to create `count` pods.
    pub fn expect_creations(&self, rs: &String, count: usize) {
        self.lock().remove(rs);
        self.counts.expect(rs, &vec![Expect::Create; count]);
    }

    /// A pod of the ReplicaSet appeared, or a create will never show up (it failed).
    pub fn creation_observed(&self, rs: &String) {
        self.counts.observed(rs, Expect::Create);
    }

    /// The ReplicaSet is about to delete these pods (keys `ns/name`).
    pub fn expect_deletions(&self, rs: &String, pods: &[String]) {
        self.lock()
            .insert(rs.clone(), pods.iter().cloned().collect());
        self.counts.expect(rs, &vec![Expect::Delete; pods.len()]);
    }

    /// A pod of the ReplicaSet is going or gone (or its delete failed); only the first
    /// sighting of a pod it deleted counts.
    pub fn deletion_observed(&self, rs: &String, pod: &str) {
        let expected = self.lock().get_mut(rs).is_some_and(|pods| pods.remove(pod));
        if expected {
            self.counts.observed(rs, Expect::Delete);
        }
    }

    /// Forgets the ReplicaSet (it was deleted).
    pub fn forget(&self, rs: &String) {
        self.lock().remove(rs);
        self.counts.forget(rs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        s.to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn creations() {
        let e = PodExpectations::new(Duration::from_secs(300));
        let rs = key("ns/web");
        assert!(e.satisfied(&rs), "nothing pending");
        e.expect_creations(&rs, 2);
        assert!(!e.satisfied(&rs));
        e.creation_observed(&rs);
        assert!(!e.satisfied(&rs));
        e.creation_observed(&rs);
        assert!(e.satisfied(&rs));
        // Another ReplicaSet's pods do not count.
        e.expect_creations(&rs, 1);
        e.creation_observed(&key("ns/other"));
        assert!(!e.satisfied(&rs));
        e.forget(&rs);
        assert!(e.satisfied(&rs));
    }

    #[tokio::test(start_paused = true)]
    async fn each_deleted_pod_counts_once() {
        let e = PodExpectations::new(Duration::from_secs(300));
        let rs = key("ns/web");
        e.expect_deletions(&rs, &[key("ns/a"), key("ns/b")]);
        // Pod a is seen terminating, then deleted: one observation.
        e.deletion_observed(&rs, "ns/a");
        e.deletion_observed(&rs, "ns/a");
        assert!(!e.satisfied(&rs), "b has not gone yet");
        // A pod it did not delete (a user deleted it) does not stand in for b.
        e.deletion_observed(&rs, "ns/c");
        assert!(!e.satisfied(&rs));
        e.deletion_observed(&rs, "ns/b");
        assert!(e.satisfied(&rs));
        // A late sighting after all was seen changes nothing for the next round.
        e.expect_deletions(&rs, &[key("ns/d")]);
        e.deletion_observed(&rs, "ns/b");
        assert!(!e.satisfied(&rs));
        e.deletion_observed(&rs, "ns/d");
        assert!(e.satisfied(&rs));
    }

    #[tokio::test(start_paused = true)]
    async fn expire_after_the_ttl() {
        let e = PodExpectations::new(Duration::from_secs(300));
        let rs = key("ns/web");
        e.expect_deletions(&rs, &[key("ns/a")]);
        tokio::time::sleep(Duration::from_secs(299)).await;
        assert!(!e.satisfied(&rs));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            e.satisfied(&rs),
            "a lost event does not wedge the ReplicaSet"
        );
    }
}
