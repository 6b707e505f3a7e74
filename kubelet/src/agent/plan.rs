//! What to do next for one pod: the pure heart of a pod worker (the kubelet's
//! `computePodActions`). Given the pod spec, the containers the runtime has for it and what the
//! probes said, it returns the containers to start, kill and remove, the containers that must
//! wait (crash-loop back-off) and when to look again. The worker executes the plan.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::cri::{ContainerInfo, ContainerState};

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create and start container `name` (an init container when `init`) as `attempt`.
    Start {
        /// Container name.
        name: String,
        /// Restart attempt (the new container's restartCount).
        attempt: u32,
        /// Whether it is an init container.
        init: bool,
    },
    /// Stop a running container (liveness failure).
    Kill {
        /// Runtime id.
        id: String,
        /// Container name.
        name: String,
    },
    /// Remove a container the runtime no longer needs (older attempts; a half-created one).
    Remove {
        /// Runtime id.
        id: String,
    },
}

/// The outcome of planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// Containers held back by crash-loop back-off, with the waiting message.
    pub backing_off: BTreeMap<String, String>,
    /// When to look again even if nothing changes (end of the shortest back-off).
    pub wake_after: Option<Duration>,
}

/// Inputs besides the pod.
pub struct PlanInput<'a> {
    /// Every container the runtime has for this pod, any attempt, any state.
    pub containers: &'a [ContainerInfo],
    /// Containers whose liveness (or startup) probe asks for a restart.
    pub unhealthy: &'a HashSet<String>,
    /// Now.
    pub now: jiff::Timestamp,
    /// Crash-loop delay before restart number `restart_count` of a container that ran for
    /// `ran_for` (pure; see `pod::backoff`).
    pub restart_delay: &'a dyn Fn(u32, Duration) -> Duration,
}

/// The latest attempt of container `name` among `containers`.
pub fn latest<'c>(containers: &'c [ContainerInfo], name: &str) -> Option<&'c ContainerInfo> {
    containers
        .iter()
        .filter(|c| c.name == name)
        .max_by_key(|c| c.attempt)
}

/// Whether a container that exited with `exit_code` is restarted under `policy`.
pub fn restarts(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Plans the next steps for `pod` (not being deleted: termination is the worker's own path).
pub fn plan(pod: &Pod, input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let Some(spec) = pod.spec.as_ref() else {
        return plan;
    };
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    remove_stale_attempts(spec.init_containers.iter().flatten(), input, &mut plan);
    remove_stale_attempts(spec.containers.iter(), input, &mut plan);

    // Once any regular container exists, init containers are done (also after adoption).
    let main_started = spec
        .containers
        .iter()
        .any(|c| latest(input.containers, &c.name).is_some());
    if !main_started {
        for init in spec.init_containers.iter().flatten() {
            match latest(input.containers, &init.name) {
                None => {
                    plan.actions.push(start(&init.name, 0, true));
                    return plan;
                }
                Some(c) => match &c.state {
                    ContainerState::Exited { exit_code: 0, .. } => continue,
                    ContainerState::Exited { .. } if policy == "Never" => return plan,
                    ContainerState::Exited { .. } => {
                        restart_after_backoff(init, c, true, input, &mut plan);
                        return plan;
                    }
                    ContainerState::Created | ContainerState::Unknown => {
                        plan.actions.push(Action::Remove { id: c.id.clone() });
                        plan.actions.push(start(&init.name, c.attempt + 1, true));
                        return plan;
                    }
                    ContainerState::Running { .. } => return plan,
                },
            }
        }
    }
    for container in &spec.containers {
        match latest(input.containers, &container.name) {
            None => plan.actions.push(start(&container.name, 0, false)),
            Some(c) => match &c.state {
                ContainerState::Running { .. } => {
                    if input.unhealthy.contains(&container.name) {
                        plan.actions.push(Action::Kill {
                            id: c.id.clone(),
                            name: container.name.clone(),
                        });
                    }
                }
                ContainerState::Exited { exit_code, .. } => {
                    if restarts(policy, *exit_code) {
                        restart_after_backoff(container, c, false, input, &mut plan);
                    }
                }
                ContainerState::Created | ContainerState::Unknown => {
                    plan.actions.push(Action::Remove { id: c.id.clone() });
                    plan.actions
                        .push(start(&container.name, c.attempt + 1, false));
                }
            },
        }
    }
    plan
}

fn start(name: &str, attempt: u32, init: bool) -> Action {
    Action::Start {
        name: name.to_string(),
        attempt,
        init,
    }
}

/// Restarts `c` (an exited attempt of `container`) once its back-off has passed; until then
/// records the CrashLoopBackOff message and when to look again.
fn restart_after_backoff(
    container: &Container,
    c: &ContainerInfo,
    init: bool,
    input: &PlanInput<'_>,
    plan: &mut Plan,
) {
    let ContainerState::Exited {
        started_at,
        finished_at,
        ..
    } = &c.state
    else {
        return;
    };
    let ran_for = finished_at.duration_since(*started_at).unsigned_abs();
    let delay = (input.restart_delay)(c.attempt + 1, ran_for);
    let since_exit = input.now.duration_since(*finished_at).unsigned_abs();
    if input.now < *finished_at || since_exit < delay {
        let remaining = delay
            .saturating_sub(since_exit)
            .max(Duration::from_millis(10));
        plan.wake_after = Some(plan.wake_after.map_or(remaining, |w| w.min(remaining)));
        plan.backing_off.insert(
            container.name.clone(),
            format!(
                "back-off {} restarting failed container={}",
                format_delay(delay),
                container.name
            ),
        );
        return;
    }
    plan.actions
        .push(start(&container.name, c.attempt + 1, init));
}

/// Kubernetes prints back-off delays like Go durations: `10s`, `1m20s`, `5m0s`.
fn format_delay(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// Exited attempts older than the two newest are removed: the newest is the container, the one
/// before it carries the last termination state (`lastState`); `logs --previous` reads log
/// files, which outlive their containers.
fn remove_stale_attempts<'s>(
    specs: impl Iterator<Item = &'s Container>,
    input: &PlanInput<'_>,
    plan: &mut Plan,
) {
    for spec in specs {
        let mut attempts: Vec<u32> = input
            .containers
            .iter()
            .filter(|c| c.name == spec.name)
            .map(|c| c.attempt)
            .collect();
        attempts.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&keep_from) = attempts.get(1) else {
            continue;
        };
        for c in input.containers.iter().filter(|c| c.name == spec.name) {
            if c.attempt < keep_from && matches!(c.state, ContainerState::Exited { .. }) {
                plan.actions.push(Action::Remove { id: c.id.clone() });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn pod(policy: &str, inits: &[&str], containers: &[&str]) -> Pod {
        let c = |n: &&str| json!({"name": n, "image": "busybox"});
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "restartPolicy": policy,
                "initContainers": inits.iter().map(c).collect::<Vec<_>>(),
                "containers": containers.iter().map(c).collect::<Vec<_>>(),
            }
        }))
        .expect("pod")
    }

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).expect("time")
    }

    fn info(name: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}-{attempt}"),
            sandbox_id: "s".into(),
            name: name.into(),
            attempt,
            image: "busybox".into(),
            state,
            log_path: PathBuf::new(),
            labels: Default::default(),
        }
    }

    fn running(name: &str, attempt: u32) -> ContainerInfo {
        info(name, attempt, ContainerState::Running { started_at: t(0) })
    }

    fn exited(name: &str, attempt: u32, code: i32, finished: i64) -> ContainerInfo {
        info(
            name,
            attempt,
            ContainerState::Exited {
                started_at: t(finished - 1),
                finished_at: t(finished),
                exit_code: code,
                oom_killed: false,
            },
        )
    }

    fn run(pod: &Pod, containers: &[ContainerInfo], unhealthy: &[&str], now: i64) -> Plan {
        let unhealthy: HashSet<String> = unhealthy.iter().map(|s| s.to_string()).collect();
        let delay = |n: u32, _ran: Duration| Duration::from_secs(10 * 2u64.pow(n.min(5) - 1));
        plan(
            pod,
            &PlanInput {
                containers,
                unhealthy: &unhealthy,
                now: t(now),
                restart_delay: &delay,
            },
        )
    }

    #[test]
    fn fresh_pod_starts_first_init_container_only() {
        let p = pod("Always", &["i1", "i2"], &["a", "b"]);
        assert_eq!(run(&p, &[], &[], 0).actions, vec![start("i1", 0, true)]);
        let done = [exited("i1", 0, 0, 1)];
        assert_eq!(run(&p, &done, &[], 2).actions, vec![start("i2", 0, true)]);
        let both = [exited("i1", 0, 0, 1), exited("i2", 0, 0, 2)];
        assert_eq!(
            run(&p, &both, &[], 3).actions,
            vec![start("a", 0, false), start("b", 0, false)]
        );
        let waiting = [exited("i1", 0, 0, 1), running("i2", 0)];
        assert_eq!(run(&p, &waiting, &[], 3).actions, vec![]);
    }

    #[test]
    fn failed_init_container_restarts_unless_never() {
        let failed = [exited("i1", 0, 1, 100)];
        let always = pod("Always", &["i1"], &["a"]);
        assert_eq!(
            run(&always, &failed, &[], 111).actions,
            vec![start("i1", 1, true)]
        );
        let never = pod("Never", &["i1"], &["a"]);
        assert_eq!(run(&never, &failed, &[], 111).actions, vec![]);
    }

    #[test]
    fn restart_policy_decides_who_restarts() {
        for (policy, code, restarted) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 1, false),
        ] {
            let p = pod(policy, &[], &["a"]);
            let plan = run(&p, &[exited("a", 0, code, 0)], &[], 60);
            assert_eq!(
                plan.actions == vec![start("a", 1, false)],
                restarted,
                "{policy} exit {code}"
            );
        }
    }

    #[test]
    fn crash_loop_back_off_waits_then_restarts() {
        let p = pod("Always", &[], &["a"]);
        // Third attempt (attempt 2) exited at t=100: the next restart waits 40 s.
        let c = [exited("a", 2, 1, 100)];
        let early = run(&p, &c, &[], 110);
        assert_eq!(early.actions, vec![]);
        assert_eq!(early.wake_after, Some(Duration::from_secs(30)));
        assert_eq!(
            early.backing_off["a"],
            "back-off 40s restarting failed container=a"
        );
        let late = run(&p, &c, &[], 140);
        assert_eq!(late.actions, vec![start("a", 3, false)]);
        assert!(late.backing_off.is_empty());
    }

    #[test]
    fn liveness_failure_kills_and_stale_attempts_are_removed() {
        let p = pod("Always", &[], &["a", "b"]);
        let c = [
            exited("a", 0, 1, 1),
            exited("a", 1, 1, 2),
            running("a", 2),
            running("b", 0),
        ];
        assert_eq!(
            run(&p, &c, &["a"], 5).actions,
            vec![
                Action::Remove { id: "a-0".into() },
                Action::Kill {
                    id: "a-2".into(),
                    name: "a".into()
                }
            ]
        );
    }

    #[test]
    fn half_created_container_is_replaced() {
        let p = pod("Always", &[], &["a"]);
        let c = [info("a", 0, ContainerState::Created)];
        assert_eq!(
            run(&p, &c, &[], 5).actions,
            vec![Action::Remove { id: "a-0".into() }, start("a", 1, false)]
        );
    }

    #[test]
    fn delays_print_like_go_durations() {
        assert_eq!(format_delay(Duration::from_secs(10)), "10s");
        assert_eq!(format_delay(Duration::from_secs(80)), "1m20s");
        assert_eq!(format_delay(Duration::from_secs(300)), "5m0s");
    }
}
