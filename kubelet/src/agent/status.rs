//! The pod status the agent reports through `pods/status`, computed purely from what the
//! runtime has (container attempts and their states), what the worker knows (waiting reasons,
//! start errors, probe readiness) and the previous status (transition times, start time), the
//! way the kubelet's `generateAPIPodStatus` does.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Pod, PodCondition};
use runtime::{Api, Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::Shared;
use super::worker::Waiting;
use crate::cri::{ContainerInfo, ContainerState};

/// What the status is computed from.
pub(crate) struct StatusInput<'a> {
    /// The pod (spec and previous status).
    pub pod: &'a Pod,
    /// Every container attempt the runtime has for the pod.
    pub containers: &'a [ContainerInfo],
    /// Why containers wait (by name).
    pub waiting: &'a HashMap<String, Waiting>,
    /// Start errors by container id (those attempts show as StartError).
    pub start_errors: &'a HashMap<String, String>,
    /// Containers whose readiness probe (or, without one, whose running state) says ready.
    pub ready: &'a HashSet<String>,
    /// The sandbox exists.
    pub sandbox_ready: bool,
    /// Pod IP, node IP.
    pub pod_ip: Option<IpAddr>,
    /// The node's address.
    pub host_ip: IpAddr,
    /// Prefix of container ids (`<runtime>://`).
    pub runtime: &'a str,
    /// Now, as a Kubernetes time string.
    pub now: &'a str,
}

fn time(t: &jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The two newest attempts of container `name`.
fn attempts<'c>(
    containers: &'c [ContainerInfo],
    name: &str,
) -> (Option<&'c ContainerInfo>, Option<&'c ContainerInfo>) {
    let mut mine: Vec<&ContainerInfo> = containers.iter().filter(|c| c.name == name).collect();
    mine.sort_by_key(|c| std::cmp::Reverse(c.attempt));
    (mine.first().copied(), mine.get(1).copied())
}

/// `state.terminated` of an exited attempt.
fn terminated(c: &ContainerInfo, input: &StatusInput<'_>) -> Option<Value> {
    let ContainerState::Exited {
        started_at,
        finished_at,
        exit_code,
        oom_killed,
    } = &c.state
    else {
        return None;
    };
    let start_error = input.start_errors.get(&c.id);
    let reason = match (start_error, oom_killed, exit_code) {
        (Some(_), _, _) => "StartError",
        (None, true, _) => "OOMKilled",
        (None, false, 0) => "Completed",
        _ => "Error",
    };
    let mut t = json!({
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": time(started_at),
        "finishedAt": time(finished_at),
        "containerID": format!("{}{}", input.runtime, c.id),
    });
    if let Some(message) = start_error {
        t["message"] = json!(message);
    }
    Some(t)
}

/// How a container counts towards the pod phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Count {
    Running,
    Waiting,
    Succeeded,
    Failed,
    Unknown,
}

/// One container's status and how it counts.
fn container_status(
    spec: &Container,
    input: &StatusInput<'_>,
    default_waiting: &str,
) -> (Value, Count) {
    let (newest, previous) = attempts(input.containers, &spec.name);
    let waiting = input.waiting.get(&spec.name);
    let mut status = json!({
        "name": spec.name,
        "image": spec.image.clone().unwrap_or_default(),
        "imageID": "",
        "restartCount": newest.map_or(0, |c| c.attempt),
        "ready": false,
        "started": false,
        "lastState": {},
    });
    let waiting_value = |w: Option<&Waiting>| match w {
        Some(w) => json!({"waiting": {"reason": w.reason, "message": w.message}}),
        None => json!({"waiting": {"reason": default_waiting}}),
    };
    let count = match newest.map(|c| (&c.state, c)) {
        Some((ContainerState::Running { started_at }, c)) => {
            status["state"] = json!({"running": {"startedAt": time(started_at)}});
            status["containerID"] = json!(format!("{}{}", input.runtime, c.id));
            status["started"] = json!(true);
            status["ready"] = json!(input.ready.contains(&spec.name));
            if let Some(last) = previous.and_then(|p| terminated(p, input)) {
                status["lastState"] = json!({ "terminated": last });
            }
            Count::Running
        }
        Some((ContainerState::Exited { exit_code, .. }, c)) => {
            let t = terminated(c, input).unwrap_or_default();
            status["containerID"] = json!(format!("{}{}", input.runtime, c.id));
            match waiting {
                // To be restarted: waiting (CrashLoopBackOff, ...) with the exit as lastState.
                Some(w) => {
                    status["state"] = waiting_value(Some(w));
                    status["lastState"] = json!({ "terminated": t });
                }
                None => {
                    status["state"] = json!({ "terminated": t });
                    if let Some(last) = previous.and_then(|p| terminated(p, input)) {
                        status["lastState"] = json!({ "terminated": last });
                    }
                }
            }
            if *exit_code == 0 && !input.start_errors.contains_key(&c.id) {
                Count::Succeeded
            } else {
                Count::Failed
            }
        }
        Some((ContainerState::Unknown, _)) => {
            status["state"] = waiting_value(waiting);
            Count::Unknown
        }
        Some((ContainerState::Created, _)) | None => {
            status["state"] = waiting_value(waiting);
            let last = newest
                .filter(|c| matches!(c.state, ContainerState::Exited { .. }))
                .or(previous)
                .and_then(|p| terminated(p, input));
            match last {
                Some(last) => {
                    status["lastState"] = json!({ "terminated": last });
                    Count::Failed
                }
                None => Count::Waiting,
            }
        }
    };
    (status, count)
}

/// Kubernetes' pod phase from the regular containers' counts (crash-looping containers count
/// as stopped, by their last exit).
fn phase(policy: &str, init_pending: bool, init_failed: bool, counts: &[Count]) -> &'static str {
    if init_failed && policy == "Never" {
        return "Failed";
    }
    let n = |k: Count| counts.iter().filter(|c| **c == k).count();
    let (running, waiting, unknown) = (n(Count::Running), n(Count::Waiting), n(Count::Unknown));
    let (succeeded, failed) = (n(Count::Succeeded), n(Count::Failed));
    let stopped = succeeded + failed;
    if init_pending || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        return match policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

/// A condition, keeping the previous transition time when its status did not change.
fn condition(
    previous: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| time(&t.0))
        .unwrap_or_else(|| now.to_string());
    let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// The `status` to write for the pod.
pub(crate) fn compute(input: &StatusInput<'_>) -> Value {
    let spec = input.pod.spec.clone().unwrap_or_default();
    let old = input.pod.status.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let inits = spec.init_containers.clone().unwrap_or_default();
    let main_started = spec
        .containers
        .iter()
        .any(|c| attempts(input.containers, &c.name).0.is_some());

    let mut init_statuses = Vec::new();
    let mut incomplete_inits = Vec::new();
    let mut init_failed = false;
    for c in &inits {
        let (mut status, count) = container_status(c, input, "PodInitializing");
        let done = count == Count::Succeeded || main_started;
        if done && count != Count::Succeeded {
            // Adopted pods whose init containers were removed count as initialized.
            status["ready"] = json!(true);
        }
        if count == Count::Succeeded {
            status["ready"] = json!(true);
        }
        if !done {
            incomplete_inits.push(c.name.clone());
        }
        init_failed |= count == Count::Failed;
        init_statuses.push(status);
    }
    let init_pending = !incomplete_inits.is_empty();
    let default_waiting = if init_pending {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let mut statuses = Vec::new();
    let mut counts = Vec::new();
    let mut unready = Vec::new();
    for c in &spec.containers {
        let (status, count) = container_status(c, input, default_waiting);
        if status["ready"] != json!(true) {
            unready.push(c.name.clone());
        }
        statuses.push(status);
        counts.push(count);
    }
    let phase = phase(
        policy,
        init_pending,
        init_failed && policy == "Never",
        &counts,
    );
    let previous = old.conditions.clone().unwrap_or_default();
    let now = input.now;
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let (ready_reason, ready_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let all_ready = unready.is_empty() && !terminal;
    let mut conditions = vec![
        condition(
            &previous,
            "PodReadyToStartContainers",
            input.sandbox_ready,
            None,
            None,
            now,
        ),
        condition(
            &previous,
            "Initialized",
            !init_pending,
            init_pending.then_some("ContainersNotInitialized"),
            init_pending.then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    incomplete_inits.join(" ")
                )
            }),
            now,
        ),
        condition(
            &previous,
            "ContainersReady",
            all_ready,
            ready_reason,
            ready_message.clone(),
            now,
        ),
        condition(
            &previous,
            "Ready",
            all_ready,
            ready_reason,
            ready_message,
            now,
        ),
    ];
    // Conditions owned by others (PodScheduled by the scheduler, DisruptionTarget, ...) stay.
    let ours = [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ];
    for c in previous
        .iter()
        .filter(|c| !ours.contains(&c.type_.as_str()))
    {
        conditions.push(serde_json::to_value(c).unwrap_or_default());
    }
    let mut status = Map::new();
    status.insert("phase".into(), json!(phase));
    status.insert("conditions".into(), json!(conditions));
    status.insert("hostIP".into(), json!(input.host_ip.to_string()));
    status.insert("hostIPs".into(), json!([{"ip": input.host_ip.to_string()}]));
    if let Some(ip) = input.pod_ip {
        status.insert("podIP".into(), json!(ip.to_string()));
        status.insert("podIPs".into(), json!([{"ip": ip.to_string()}]));
    }
    let start = old
        .start_time
        .as_ref()
        .map(|t| time(&t.0))
        .unwrap_or_else(|| now.to_string());
    status.insert("startTime".into(), json!(start));
    status.insert("containerStatuses".into(), json!(statuses));
    if !inits.is_empty() {
        status.insert("initContainerStatuses".into(), json!(init_statuses));
    }
    Value::Object(status)
}

/// The status of `pod` as the worker sees it now.
pub(crate) fn pod_status(
    s: &Shared,
    w: &super::worker::Worker,
    pod: &Pod,
    containers: &[ContainerInfo],
    ready: &HashSet<String>,
) -> Value {
    let now = time(&jiff::Timestamp::now());
    let runtime = format!("{}://", s.runtime.name());
    let start_errors: HashMap<String, String> = w.start_error_messages();
    compute(&StatusInput {
        pod,
        containers,
        waiting: &w.waiting,
        start_errors: &start_errors,
        ready,
        sandbox_ready: w.sandbox.is_some(),
        pod_ip: w.sandbox.as_ref().and_then(|sb| sb.ip),
        host_ip: s.config.node_ip,
        runtime: &runtime,
        now: &now,
    })
}

/// Writes `status` with a merge patch on `pods/status`.
pub(crate) async fn write(s: &Shared, pod: &Pod, status: &Value) -> runtime::Result<()> {
    let api: Api<Pod> = Api::namespaced(
        s.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn pod(policy: &str, inits: &[&str], containers: &[&str]) -> Pod {
        let c = |n: &&str| json!({"name": n, "image": "busybox"});
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "restartPolicy": policy,
                "initContainers": inits.iter().map(c).collect::<Vec<_>>(),
                "containers": containers.iter().map(c).collect::<Vec<_>>(),
            },
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]},
        }))
        .expect("pod")
    }

    fn t(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).expect("t")
    }

    fn info(name: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}{attempt}"),
            sandbox_id: "s".into(),
            name: name.into(),
            attempt,
            image: "busybox".into(),
            state,
            log_path: PathBuf::new(),
            labels: Default::default(),
        }
    }

    fn exited(name: &str, attempt: u32, code: i32, oom: bool) -> ContainerInfo {
        info(
            name,
            attempt,
            ContainerState::Exited {
                started_at: t(0),
                finished_at: t(1),
                exit_code: code,
                oom_killed: oom,
            },
        )
    }

    fn running(name: &str, attempt: u32) -> ContainerInfo {
        info(name, attempt, ContainerState::Running { started_at: t(5) })
    }

    struct Case<'a> {
        pod: Pod,
        containers: Vec<ContainerInfo>,
        waiting: Vec<(&'a str, &'a str)>,
        ready: Vec<&'a str>,
    }

    fn compute_case(case: &Case<'_>) -> Value {
        let waiting = case
            .waiting
            .iter()
            .map(|(n, r)| {
                (
                    n.to_string(),
                    Waiting {
                        reason: r.to_string(),
                        message: format!("{r} message"),
                    },
                )
            })
            .collect();
        let ready = case.ready.iter().map(|s| s.to_string()).collect();
        compute(&StatusInput {
            pod: &case.pod,
            containers: &case.containers,
            waiting: &waiting,
            start_errors: &HashMap::new(),
            ready: &ready,
            sandbox_ready: true,
            pod_ip: Some("10.244.1.5".parse().expect("ip")),
            host_ip: "127.0.0.1".parse().expect("ip"),
            runtime: "runc://",
            now: "2026-01-01T00:00:00Z",
        })
    }

    fn cond<'v>(status: &'v Value, type_: &str) -> &'v Value {
        status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == type_))
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn phases_follow_kubernetes_rules() {
        let cases: Vec<(&str, Case<'_>, &str)> = vec![
            (
                "nothing yet",
                Case {
                    pod: pod("Always", &[], &["a"]),
                    containers: vec![],
                    waiting: vec![],
                    ready: vec![],
                },
                "Pending",
            ),
            (
                "running",
                Case {
                    pod: pod("Always", &[], &["a"]),
                    containers: vec![running("a", 0)],
                    waiting: vec![],
                    ready: vec!["a"],
                },
                "Running",
            ),
            (
                "crash loop",
                Case {
                    pod: pod("Always", &[], &["a"]),
                    containers: vec![exited("a", 2, 1, false)],
                    waiting: vec![("a", "CrashLoopBackOff")],
                    ready: vec![],
                },
                "Running",
            ),
            (
                "never ok",
                Case {
                    pod: pod("Never", &[], &["a"]),
                    containers: vec![exited("a", 0, 0, false)],
                    waiting: vec![],
                    ready: vec![],
                },
                "Succeeded",
            ),
            (
                "never bad",
                Case {
                    pod: pod("Never", &[], &["a"]),
                    containers: vec![exited("a", 0, 3, false)],
                    waiting: vec![],
                    ready: vec![],
                },
                "Failed",
            ),
            (
                "onfailure ok",
                Case {
                    pod: pod("OnFailure", &[], &["a"]),
                    containers: vec![exited("a", 0, 0, false)],
                    waiting: vec![],
                    ready: vec![],
                },
                "Succeeded",
            ),
            (
                "onfailure retrying",
                Case {
                    pod: pod("OnFailure", &[], &["a"]),
                    containers: vec![exited("a", 0, 2, false)],
                    waiting: vec![("a", "CrashLoopBackOff")],
                    ready: vec![],
                },
                "Running",
            ),
            (
                "init running",
                Case {
                    pod: pod("Always", &["i"], &["a"]),
                    containers: vec![running("i", 0)],
                    waiting: vec![],
                    ready: vec![],
                },
                "Pending",
            ),
            (
                "init failed never",
                Case {
                    pod: pod("Never", &["i"], &["a"]),
                    containers: vec![exited("i", 0, 1, false)],
                    waiting: vec![],
                    ready: vec![],
                },
                "Failed",
            ),
            (
                "pull error",
                Case {
                    pod: pod("Always", &[], &["a", "b"]),
                    containers: vec![running("a", 0)],
                    waiting: vec![("b", "ErrImagePull")],
                    ready: vec!["a"],
                },
                "Pending",
            ),
        ];
        for (what, case, want) in cases {
            assert_eq!(compute_case(&case)["phase"], want, "{what}");
        }
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_termination() {
        let case = Case {
            pod: pod("Always", &[], &["a"]),
            containers: vec![exited("a", 1, 0, false), exited("a", 2, 2, false)],
            waiting: vec![("a", "CrashLoopBackOff")],
            ready: vec![],
        };
        let s = compute_case(&case);
        let c = &s["containerStatuses"][0];
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 2);
        assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(cond(&s, "Ready")["status"], "False");
        assert_eq!(
            cond(&s, "Ready")["message"],
            "containers with unready status: [a]"
        );
        assert_eq!(cond(&s, "PodScheduled")["status"], "True", "kept");
    }

    #[test]
    fn terminated_reasons_and_readiness() {
        let oom = compute_case(&Case {
            pod: pod("Never", &[], &["a"]),
            containers: vec![exited("a", 0, 137, true)],
            waiting: vec![],
            ready: vec![],
        });
        assert_eq!(
            oom["containerStatuses"][0]["state"]["terminated"]["reason"],
            "OOMKilled"
        );
        assert_eq!(cond(&oom, "Ready")["reason"], "PodCompleted");
        let restarted = compute_case(&Case {
            pod: pod("Always", &[], &["a"]),
            containers: vec![exited("a", 0, 0, false), running("a", 1)],
            waiting: vec![],
            ready: vec![],
        });
        let c = &restarted["containerStatuses"][0];
        assert_eq!(c["lastState"]["terminated"]["reason"], "Completed");
        assert_eq!(c["ready"], false, "not ready until the probe says so");
        assert_eq!(c["containerID"], "runc://a1");
        assert_eq!(cond(&restarted, "ContainersReady")["status"], "False");
        let ready = compute_case(&Case {
            pod: pod("Always", &["i"], &["a"]),
            containers: vec![exited("i", 0, 0, false), running("a", 0)],
            waiting: vec![],
            ready: vec!["a"],
        });
        assert_eq!(cond(&ready, "Ready")["status"], "True");
        assert_eq!(cond(&ready, "Initialized")["status"], "True");
        assert_eq!(
            ready["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(ready["podIP"], "10.244.1.5");
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let mut p = pod("Always", &[], &["a"]);
        p.status = Some(serde_json::from_value(json!({"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-05-05T05:05:05Z"},
            {"type": "Initialized", "status": "False", "lastTransitionTime": "2025-05-05T05:05:05Z"},
        ], "startTime": "2025-05-05T05:05:00Z"})).expect("status"));
        let s = compute_case(&Case {
            pod: p,
            containers: vec![running("a", 0)],
            waiting: vec![],
            ready: vec!["a"],
        });
        assert_eq!(
            cond(&s, "Ready")["lastTransitionTime"],
            "2025-05-05T05:05:05Z"
        );
        assert_eq!(
            cond(&s, "Initialized")["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(s["startTime"], "2025-05-05T05:05:00Z");
    }
}
