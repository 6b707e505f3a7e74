//! Restart decisions: whether an exited container is restarted under the pod's
//! `restartPolicy`, and how long the kubelet waits first (the crash-loop back-off).
//!
//! Kubernetes waits 10 s before the first restart of a failing container, doubles the wait per
//! further restart up to 5 minutes, and starts over once a container ran long enough (10
//! minutes) to count as healthy. While waiting the container shows `CrashLoopBackOff`.
//!
//! Image pulls reuse the same shape: after the n-th failed pull the next attempt waits
//! [`BackoffPolicy::delay`]`(n, ZERO)` and the container shows `ImagePullBackOff` meanwhile, so
//! one [`BackoffPolicy`] value (or two, if they should differ) serves both.

use std::time::Duration;

/// The pod's `spec.restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart whatever the exit code (the API default).
    Always,
    /// Restart only after a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The policy named in a pod spec; unset or unknown values mean `Always`, the API default.
    pub fn from_spec(policy: Option<&str>) -> RestartPolicy {
        match policy {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// The policy of `pod` (`Always` when it has no spec).
    pub fn of(pod: &k8s_openapi::api::core::v1::Pod) -> RestartPolicy {
        RestartPolicy::from_spec(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()))
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// The shape of a back-off. [`Default`] is the kubelet's: 10 s doubling to 300 s, reset after a
/// run of 10 minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Wait before the first retry.
    pub initial: Duration,
    /// Cap of the doubling.
    pub max: Duration,
    /// A container that ran at least this long before exiting starts over at `initial`.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackoffPolicy {
    /// The wait before retry number `failures` (1-based: the first restart after the first
    /// failure is 1) of something whose last run lasted `ran_for` (use `ZERO` for pulls).
    /// `failures == 0` needs no wait.
    pub fn delay(&self, failures: u32, ran_for: Duration) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        if ran_for >= self.reset_after {
            return self.initial.min(self.max);
        }
        let doublings = (failures - 1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// How much longer a container that exited at `finished_at` after starting at
    /// `started_at` must wait at `now` before restart number `failures`; `None` when it may
    /// restart now. The container shows `CrashLoopBackOff` while this is `Some`.
    pub fn remaining(
        &self,
        failures: u32,
        started_at: jiff::Timestamp,
        finished_at: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Option<Duration> {
        let ran_for =
            Duration::try_from(finished_at.duration_since(started_at)).unwrap_or_default();
        let delay = self.delay(failures, ran_for);
        let waited = Duration::try_from(now.duration_since(finished_at)).unwrap_or_default();
        (waited < delay).then(|| delay - waited)
    }
}

/// The waiting message of a container held back by the crash-loop back-off, worded like the
/// kubelet's (`back-off 20s restarting failed container=app pod=web-1_default(uid)`).
pub fn crash_loop_message(
    delay: Duration,
    container: &str,
    pod_name: &str,
    namespace: &str,
    uid: &str,
) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod_name}_{namespace}({uid})",
        go_duration(delay)
    )
}

/// The waiting message of a container whose image pull is backing off.
pub fn image_pull_backoff_message(image: &str) -> String {
    format!("Back-off pulling image {image:?}")
}

/// A duration the way Go prints whole-second ones (`10s`, `1m20s`, `5m0s`).
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_decide_by_exit_code() {
        use RestartPolicy::*;
        let cases = [
            (None, 0, true),
            (Some("Always"), 0, true),
            (Some("Always"), 1, true),
            (Some("OnFailure"), 0, false),
            (Some("OnFailure"), 137, true),
            (Some("Never"), 0, false),
            (Some("Never"), 1, false),
            (Some("bogus"), 0, true),
        ];
        for (policy, code, want) in cases {
            assert_eq!(
                RestartPolicy::from_spec(policy).restarts(code),
                want,
                "{policy:?} {code}"
            );
        }
        assert_eq!(RestartPolicy::from_spec(Some("OnFailure")), OnFailure);
        assert_eq!(RestartPolicy::of(&Default::default()), Always);
        assert_eq!(RestartPolicy::from_spec(Some("Never")), Never);
    }

    #[test]
    fn delays_double_to_the_cap_and_reset_after_a_long_run() {
        let p = BackoffPolicy::default();
        let short = Duration::from_secs(5);
        let cases = [
            (0, short, 0),
            (1, short, 10),
            (2, short, 20),
            (3, short, 40),
            (5, short, 160),
            (6, short, 300),
            (7, short, 300),
            (1000, short, 300),
            (6, Duration::from_secs(599), 300),
            (6, Duration::from_secs(600), 10),
            (9, Duration::from_secs(3600), 10),
        ];
        for (n, ran, want) in cases {
            assert_eq!(p.delay(n, ran), Duration::from_secs(want), "{n} {ran:?}");
        }
        let custom = BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(250),
            reset_after: Duration::from_secs(1),
        };
        assert_eq!(custom.delay(2, Duration::ZERO), Duration::from_millis(200));
        assert_eq!(custom.delay(3, Duration::ZERO), Duration::from_millis(250));
    }

    #[test]
    fn remaining_counts_from_the_finish_time() {
        let p = BackoffPolicy::default();
        let t = |s: i64| jiff::Timestamp::from_second(1_700_000_000 + s).unwrap();
        // (failures, started, finished, now, remaining seconds)
        let cases = [
            (1, 0, 1, 1, Some(10)),
            (1, 0, 1, 5, Some(6)),
            (1, 0, 1, 11, None),
            (2, 0, 1, 11, Some(10)),
            (3, 0, 1, 100, None),
            (6, 0, 1, 200, Some(101)),
            // ran 10 minutes: back to the initial delay
            (6, 0, 600, 605, Some(5)),
            (0, 0, 1, 1, None),
        ];
        for (n, s, f, now, want) in cases {
            assert_eq!(
                p.remaining(n, t(s), t(f), t(now)),
                want.map(Duration::from_secs),
                "{n} {s} {f} {now}"
            );
        }
    }

    #[test]
    fn messages_read_like_the_kubelets() {
        assert_eq!(
            crash_loop_message(Duration::from_secs(20), "app", "web", "default", "u1"),
            "back-off 20s restarting failed container=app pod=web_default(u1)"
        );
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(
            image_pull_backoff_message("nginx:1"),
            "Back-off pulling image \"nginx:1\""
        );
    }
}
