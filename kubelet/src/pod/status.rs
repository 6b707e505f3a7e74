//! The pod status the agent writes through `pods/status`, computed purely from what it
//! observed (the kubelet's `generateAPIPodStatus`): container and init container statuses,
//! phase, conditions, addresses, start time and QoS class.
//!
//! The agent describes every container with a [`ContainerInput`] (the runtime's view of its
//! current and previous attempt, or why it waits, plus probe results) and calls
//! [`pod_status`] with the pod as it is stored (its spec and the previous status, which keeps
//! condition transition times and the start time stable).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::backoff::RestartPolicy;
use crate::cri::ContainerState;

/// One run of a container as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The runtime's container id (reported as `<runtime>://<id>`).
    pub id: String,
    /// Its state.
    pub state: ContainerState,
    /// Set when starting it failed (`RunContainerError`): its termination then shows reason
    /// `StartError` with this message.
    pub start_error: Option<String>,
}

/// Why a container waits, as decided by the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// `ContainerCreating`, `PodInitializing`, `ErrImagePull`, `ImagePullBackOff`,
    /// `CrashLoopBackOff`, `CreateContainerConfigError`, `CreateContainerError`,
    /// `RunContainerError`, ...
    pub reason: String,
    /// The detail shown with it.
    pub message: Option<String>,
}

/// What the agent observed about one container of the pod spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInput {
    /// Container name in the spec.
    pub name: String,
    /// The newest attempt, if one exists.
    pub current: Option<Attempt>,
    /// The attempt before it (the source of `lastState`), if kept.
    pub previous: Option<Attempt>,
    /// Set while the container waits (image pull, back-off, config error). A waiting reason
    /// wins over an exited `current` attempt, which then becomes `lastState` (a crash-looping
    /// container shows `waiting: CrashLoopBackOff` and its last termination).
    pub waiting: Option<Waiting>,
    /// How often it was restarted.
    pub restart_count: i32,
    /// Readiness as the probes decided (see `probe::container_ready`); only counts while
    /// running.
    pub ready: bool,
    /// Started as the startup probe decided (see `probe::container_started`).
    pub started: bool,
    /// Image digest reference (`docker.io/library/nginx@sha256:...`), if known.
    pub image_id: String,
}

/// Everything the pod status is computed from.
#[derive(Clone, Copy, Debug)]
pub struct PodStatusInput<'a> {
    /// The pod: spec and previous status.
    pub pod: &'a Pod,
    /// One entry per init container observed (missing ones count as not yet created).
    pub init_containers: &'a [ContainerInput],
    /// One entry per regular container observed.
    pub containers: &'a [ContainerInput],
    /// The pod sandbox (network namespace, IP) exists.
    pub sandbox_ready: bool,
    /// Pod IPs (first = `podIP`).
    pub pod_ips: &'a [IpAddr],
    /// Node IPs (first = `hostIP`).
    pub host_ips: &'a [IpAddr],
    /// The container id scheme (`runc`, `process`): ids are reported as `<runtime>://<id>`.
    pub runtime: &'a str,
    /// Now (truncated to seconds, the API's precision).
    pub now: jiff::Timestamp,
}

/// Condition types the agent owns; others in the previous status (set by other components,
/// e.g. `DisruptionTarget`) are kept as they are.
const OWNED: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodScheduled",
];

/// Computes the pod's status.
pub fn pod_status(input: &PodStatusInput<'_>) -> PodStatus {
    let pod = input.pod;
    let previous = pod.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::from_second(input.now.as_second()).unwrap_or(input.now);
    let spec = pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .map(|c| {
            container_status(
                c,
                find(input.init_containers, &c.name),
                input.runtime,
                "PodInitializing",
            )
        })
        .collect();
    let init_done = init_statuses.iter().all(init_succeeded)
        || input.containers.iter().any(|c| c.current.is_some());
    let default_reason = if init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            container_status(
                c,
                find(input.containers, &c.name),
                input.runtime,
                default_reason,
            )
        })
        .collect();
    let mut phase = phase(RestartPolicy::of(pod), &init_statuses, &statuses, init_done);
    if let Some(old @ ("Succeeded" | "Failed")) = previous.phase.as_deref() {
        // A terminal phase is final.
        phase = if old == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    let conditions = conditions(&Observed {
        previous: &previous,
        init_statuses: &init_statuses,
        statuses: &statuses,
        init_done,
        phase,
        sandbox_ready: input.sandbox_ready,
        now,
    });
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        pod_ip: input
            .pod_ips
            .first()
            .map(|ip| ip.to_string())
            .or(previous.pod_ip.clone()),
        pod_ips: if input.pod_ips.is_empty() {
            previous.pod_ips.clone()
        } else {
            Some(
                input
                    .pod_ips
                    .iter()
                    .map(|ip| PodIP { ip: ip.to_string() })
                    .collect(),
            )
        },
        host_ip: input
            .host_ips
            .first()
            .map(|ip| ip.to_string())
            .or(previous.host_ip.clone()),
        host_ips: if input.host_ips.is_empty() {
            previous.host_ips.clone()
        } else {
            Some(
                input
                    .host_ips
                    .iter()
                    .map(|ip| HostIP { ip: ip.to_string() })
                    .collect(),
            )
        },
        start_time: previous.start_time.clone().or(Some(Time(now))),
        qos_class: Some(qos_class(pod).to_string()),
        nominated_node_name: previous.nominated_node_name.clone(),
        ..PodStatus::default()
    }
}

/// The observation for container `name`, if any.
fn find<'c>(list: &'c [ContainerInput], name: &str) -> Option<&'c ContainerInput> {
    list.iter().find(|c| c.name == name)
}

fn time(t: &jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(*t))
}

/// `state.terminated` of an exited attempt: reason `OOMKilled`, `Completed` (exit 0) or
/// `Error`; `StartError` when it never started. An attempt whose state the runtime lost
/// shows as `ContainerStatusUnknown` with exit code 137, like the kubelet.
fn terminated(a: &Attempt, runtime: &str) -> Option<ContainerStateTerminated> {
    let container_id = Some(format!("{runtime}://{}", a.id));
    match &a.state {
        ContainerState::Exited {
            started_at,
            finished_at,
            exit_code,
            oom_killed,
        } => {
            let reason = match (&a.start_error, oom_killed, exit_code) {
                (Some(_), _, _) => "StartError",
                (None, true, _) => "OOMKilled",
                (None, false, 0) => "Completed",
                _ => "Error",
            };
            Some(ContainerStateTerminated {
                exit_code: *exit_code,
                reason: Some(reason.into()),
                message: a.start_error.clone(),
                started_at: Some(time(started_at)),
                finished_at: Some(time(finished_at)),
                container_id,
                ..Default::default()
            })
        }
        ContainerState::Unknown => Some(ContainerStateTerminated {
            exit_code: 137,
            reason: Some("ContainerStatusUnknown".into()),
            message: Some("The container could not be located when the pod was terminated".into()),
            container_id,
            ..Default::default()
        }),
        ContainerState::Created | ContainerState::Running { .. } => None,
    }
}

fn waiting(reason: &str, message: Option<String>) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

/// The status of one container: `state` from the waiting reason or the current attempt
/// (`default_reason` when nothing exists yet), `lastState` from the attempt before.
pub fn container_status(
    spec: &Container,
    observed: Option<&ContainerInput>,
    runtime: &str,
    default_reason: &str,
) -> ContainerStatus {
    let empty = ContainerInput::default();
    let o = observed.unwrap_or(&empty);
    let terminated_of = |a: &Option<Attempt>| {
        a.as_ref()
            .and_then(|a| terminated(a, runtime))
            .map(|t| ApiState {
                terminated: Some(t),
                ..Default::default()
            })
    };
    let (state, last_state) = match (&o.waiting, &o.current) {
        (Some(w), current) => {
            // While waiting, the exited current attempt is the last termination.
            let last = terminated_of(current).or_else(|| terminated_of(&o.previous));
            (waiting(&w.reason, w.message.clone()), last)
        }
        (None, None) => (waiting(default_reason, None), terminated_of(&o.previous)),
        (None, Some(a)) => {
            let state = match &a.state {
                ContainerState::Running { started_at } => ApiState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(time(started_at)),
                    }),
                    ..Default::default()
                },
                ContainerState::Created => waiting("ContainerCreating", None),
                _ => terminated_of(&o.current).unwrap_or_default(),
            };
            (state, terminated_of(&o.previous))
        }
    };
    let running = state.running.is_some();
    ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: o.image_id.clone(),
        container_id: o.current.as_ref().map(|a| format!("{runtime}://{}", a.id)),
        ready: running && o.ready,
        started: Some(running && o.started),
        restart_count: o.restart_count,
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..Default::default()
    }
}

/// Whether an init container status says it completed successfully.
fn init_succeeded(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

/// The pod phase by the kubelet's rules: Pending while initializing or while any container
/// waits for its first run; Running once all containers ran and one runs (or, under
/// `Always`/`OnFailure`, while they restart); Succeeded when all exited 0 and none will be
/// restarted; Failed when one failed under `Never` (also a failed init container under
/// `Never`).
pub fn phase(
    policy: RestartPolicy,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    init_done: bool,
) -> &'static str {
    let terminated = |s: &ContainerStatus| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    let last_terminated = |s: &ContainerStatus| {
        s.last_state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    let mut failed_init = 0;
    for s in init_statuses {
        let failed = match terminated(s) {
            Some(code) => code != 0,
            None => {
                s.state.as_ref().is_some_and(|st| st.waiting.is_some())
                    && last_terminated(s).is_some_and(|c| c != 0)
            }
        };
        failed_init += usize::from(failed);
    }
    if failed_init > 0 && policy == RestartPolicy::Never {
        return "Failed";
    }
    if !init_done {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let st = s.state.as_ref();
        if st.is_some_and(|st| st.running.is_some()) {
            running += 1;
        } else if let Some(code) = terminated(s) {
            stopped += 1;
            succeeded += usize::from(code == 0);
        } else if last_terminated(s).is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped == 0 {
        "Pending"
    } else if policy == RestartPolicy::Always {
        "Running"
    } else if stopped == succeeded {
        "Succeeded"
    } else if policy == RestartPolicy::Never {
        "Failed"
    } else {
        "Running"
    }
}

/// What the conditions are computed from.
struct Observed<'a> {
    previous: &'a PodStatus,
    init_statuses: &'a [ContainerStatus],
    statuses: &'a [ContainerStatus],
    init_done: bool,
    phase: &'static str,
    sandbox_ready: bool,
    now: jiff::Timestamp,
}

/// `[a b]`, the way Go prints a string slice in the kubelet's condition messages.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// The pod's conditions: the agent's own (`PodReadyToStartContainers`, `Initialized`,
/// `ContainersReady`, `Ready`, `PodScheduled` when missing) in that order after the others
/// it keeps; a condition whose status did not change keeps its `lastTransitionTime`.
fn conditions(o: &Observed<'_>) -> Vec<PodCondition> {
    let flag = |b: bool| if b { "True" } else { "False" };
    let mut out: Vec<PodCondition> = o
        .previous
        .conditions
        .iter()
        .flatten()
        .filter(|c| !OWNED.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let mut add = |type_: &str, status: &str, reason: Option<String>, message: Option<String>| {
        let old = o
            .previous
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_);
        let since = match old {
            Some(c) if c.status == status => c
                .last_transition_time
                .clone()
                .unwrap_or_else(|| time(&o.now)),
            _ => time(&o.now),
        };
        out.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason,
            message,
            last_transition_time: Some(since),
            last_probe_time: None,
            observed_generation: None,
        });
    };
    add(
        "PodReadyToStartContainers",
        flag(o.sandbox_ready),
        None,
        None,
    );

    let incomplete: Vec<&str> = o
        .init_statuses
        .iter()
        .filter(|s| !init_succeeded(s))
        .map(|s| s.name.as_str())
        .collect();
    if o.init_statuses.is_empty() || o.init_done {
        let reason = (!o.init_statuses.is_empty() && o.phase == "Succeeded")
            .then(|| "PodCompleted".to_string());
        add("Initialized", "True", reason, None);
    } else {
        add(
            "Initialized",
            "False",
            Some("ContainersNotInitialized".into()),
            Some(format!(
                "containers with incomplete status: {}",
                go_list(&incomplete)
            )),
        );
    }

    let unready: Vec<&str> = o
        .statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let (status, reason, message) = if o.phase == "Succeeded" {
        ("False", Some("PodCompleted".to_string()), None)
    } else if unready.is_empty() {
        ("True", None, None)
    } else {
        (
            "False",
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: {}",
                go_list(&unready)
            )),
        )
    };
    add("ContainersReady", status, reason.clone(), message.clone());
    add("Ready", status, reason, message);
    let scheduled = o
        .previous
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")
        .cloned();
    match scheduled {
        Some(c) => out.push(c),
        None => add("PodScheduled", "True", None, None),
    }
    out
}

/// The pod's QoS class by Kubernetes' rule over cpu and memory of all containers: no
/// requests or limits anywhere = `BestEffort`; every container limits both and requests equal
/// limits = `Guaranteed`; anything else `Burstable`. A missing request counts as its limit
/// (the API server's defaulting).
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        let r = c.resources.as_ref();
        let amounts = |m: Option<
            &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >| {
            ["cpu", "memory"]
                .into_iter()
                .filter_map(|name| {
                    let q = m?.get(name)?;
                    let v = runtime::objects::Quantity::parse(&q.0).ok()?.nanos();
                    (v > 0).then_some((name, v))
                })
                .collect::<BTreeMap<&str, i128>>()
        };
        let lim = amounts(r.and_then(|r| r.limits.as_ref()));
        let mut req = amounts(r.and_then(|r| r.requests.as_ref()));
        for (name, v) in &lim {
            req.entry(name).or_insert(*v);
        }
        if lim.len() < 2 {
            guaranteed = false;
        }
        for (name, v) in req {
            *requests.entry(name).or_default() += v;
        }
        for (name, v) in lim {
            *limits.entry(name).or_default() += v;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && requests == limits {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn running(id: &str, at: i64) -> Option<Attempt> {
        Some(Attempt {
            id: id.into(),
            state: ContainerState::Running { started_at: ts(at) },
            start_error: None,
        })
    }

    fn exited(id: &str, code: i32, oom: bool) -> Option<Attempt> {
        Some(Attempt {
            id: id.into(),
            state: ContainerState::Exited {
                started_at: ts(1),
                finished_at: ts(2),
                exit_code: code,
                oom_killed: oom,
            },
            start_error: None,
        })
    }

    fn obs(name: &str, current: Option<Attempt>, ready: bool) -> ContainerInput {
        ContainerInput {
            name: name.into(),
            current,
            ready,
            started: true,
            ..Default::default()
        }
    }

    fn wait(name: &str, reason: &str, current: Option<Attempt>) -> ContainerInput {
        ContainerInput {
            name: name.into(),
            current,
            waiting: Some(Waiting {
                reason: reason.into(),
                message: Some("m".into()),
            }),
            restart_count: 1,
            ..Default::default()
        }
    }

    fn pod(policy: &str, inits: &[&str], containers: &[&str]) -> Pod {
        let c = |n: &&str| json!({"name": n, "image": format!("img-{n}")});
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "d", "uid": "u"},
            "spec": {"restartPolicy": policy,
                "initContainers": inits.iter().map(c).collect::<Vec<_>>(),
                "containers": containers.iter().map(c).collect::<Vec<_>>()}}),
        )
        .unwrap()
    }

    fn status(
        pod: &Pod,
        inits: &[ContainerInput],
        containers: &[ContainerInput],
        now: i64,
    ) -> PodStatus {
        pod_status(&PodStatusInput {
            pod,
            init_containers: inits,
            containers,
            sandbox_ready: true,
            pod_ips: &["10.1.0.7".parse().unwrap()],
            host_ips: &["192.168.0.2".parse().unwrap()],
            runtime: "runc",
            now: ts(now),
        })
    }

    fn cond<'s>(s: &'s PodStatus, t: &str) -> &'s PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn phases_follow_the_kubelets_rules() {
        // (policy, init observations, container observations, phase)
        let cases: Vec<(&str, Vec<ContainerInput>, Vec<ContainerInput>, &str)> = vec![
            ("Always", vec![], vec![], "Pending"),
            (
                "Always",
                vec![],
                vec![wait("a", "ContainerCreating", None)],
                "Pending",
            ),
            (
                "Always",
                vec![],
                vec![obs("a", running("1", 1), true)],
                "Running",
            ),
            (
                "Always",
                vec![],
                vec![obs("a", exited("1", 0, false), false)],
                "Running",
            ),
            (
                "OnFailure",
                vec![],
                vec![obs("a", exited("1", 0, false), false)],
                "Succeeded",
            ),
            (
                "OnFailure",
                vec![],
                vec![obs("a", exited("1", 1, false), false)],
                "Running",
            ),
            (
                "Never",
                vec![],
                vec![obs("a", exited("1", 0, false), false)],
                "Succeeded",
            ),
            (
                "Never",
                vec![],
                vec![obs("a", exited("1", 2, false), false)],
                "Failed",
            ),
            (
                "Never",
                vec![],
                vec![obs("a", exited("1", 0, true), false)],
                "Succeeded",
            ),
            // a crash-looping container counts as stopped, not waiting
            (
                "Always",
                vec![],
                vec![wait("a", "CrashLoopBackOff", exited("1", 1, false))],
                "Running",
            ),
            (
                "OnFailure",
                vec![],
                vec![wait("a", "CrashLoopBackOff", exited("1", 1, false))],
                "Running",
            ),
            // one still waiting for its first run keeps the pod Pending
            (
                "Always",
                vec![],
                vec![
                    obs("a", running("1", 1), true),
                    wait("b", "ErrImagePull", None),
                ],
                "Pending",
            ),
            (
                "Never",
                vec![],
                vec![
                    obs("a", running("1", 1), true),
                    obs("b", exited("2", 1, false), false),
                ],
                "Running",
            ),
            // init containers
            (
                "Always",
                vec![obs("i", running("i1", 1), false)],
                vec![],
                "Pending",
            ),
            (
                "Always",
                vec![obs("i", exited("i1", 0, false), false)],
                vec![obs("a", running("1", 1), true)],
                "Running",
            ),
            (
                "Never",
                vec![obs("i", exited("i1", 1, false), false)],
                vec![],
                "Failed",
            ),
            (
                "Always",
                vec![wait("i", "CrashLoopBackOff", exited("i1", 1, false))],
                vec![],
                "Pending",
            ),
            (
                "Never",
                vec![wait("i", "CrashLoopBackOff", exited("i1", 1, false))],
                vec![],
                "Failed",
            ),
        ];
        for (i, (policy, inits, containers, want)) in cases.into_iter().enumerate() {
            let init_names: Vec<&str> = inits.iter().map(|c| c.name.as_str()).collect();
            let mut names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
            if names.is_empty() {
                names.push("a");
            }
            let p = pod(policy, &init_names, &names);
            let s = status(&p, &inits, &containers, 10);
            assert_eq!(s.phase.as_deref(), Some(want), "case {i} ({policy})");
        }
    }

    #[test]
    fn container_states_carry_reasons_and_last_state() {
        let spec: Container =
            serde_json::from_value(json!({"name": "a", "image": "nginx"})).unwrap();
        let st = |o: ContainerInput| container_status(&spec, Some(&o), "runc", "ContainerCreating");
        let s = st(obs("a", running("abc", 5), true));
        assert_eq!(
            s.state
                .as_ref()
                .unwrap()
                .running
                .as_ref()
                .unwrap()
                .started_at,
            Some(Time(ts(5)))
        );
        assert_eq!(s.container_id.as_deref(), Some("runc://abc"));
        assert_eq!(
            (s.ready, s.started, s.image.as_str()),
            (true, Some(true), "nginx")
        );
        // (exit code, oom, start error, reason)
        let cases = [
            (0, false, None, "Completed"),
            (1, false, None, "Error"),
            (137, true, None, "OOMKilled"),
            (128, false, Some("exec: not found"), "StartError"),
        ];
        for (code, oom, err, reason) in cases {
            let mut a = exited("x", code, oom).unwrap();
            a.start_error = err.map(str::to_string);
            let s = st(obs("a", Some(a), true));
            let t = s.state.unwrap().terminated.unwrap();
            assert_eq!(
                (t.exit_code, t.reason.as_deref(), t.message.as_deref()),
                (code, Some(reason), err),
                "{reason}"
            );
            assert_eq!(t.finished_at, Some(Time(ts(2))));
            assert!(!s.ready, "an exited container is never ready");
        }
        // crash loop: waiting with the exited attempt as last state
        let s = st(wait("a", "CrashLoopBackOff", exited("old", 3, false)));
        let w = s.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(
            (w.reason.as_deref(), w.message.as_deref()),
            (Some("CrashLoopBackOff"), Some("m"))
        );
        assert_eq!(
            s.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            3
        );
        assert_eq!(s.restart_count, 1);
        // running again: last state from the previous attempt
        let mut o = obs("a", running("new", 9), false);
        o.previous = exited("old", 1, false);
        let s = st(o);
        assert_eq!(
            s.last_state
                .unwrap()
                .terminated
                .unwrap()
                .container_id
                .as_deref(),
            Some("runc://old")
        );
        assert!(!s.ready);
        // nothing known: the default reason
        let s = container_status(&spec, None, "runc", "PodInitializing");
        assert_eq!(
            s.state.unwrap().waiting.unwrap().reason.as_deref(),
            Some("PodInitializing")
        );
        assert_eq!(
            (s.ready, s.started, s.container_id),
            (false, Some(false), None)
        );
        let mut lost = exited("gone", 0, false).unwrap();
        lost.state = ContainerState::Unknown;
        let t = st(obs("a", Some(lost), false))
            .state
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(
            (t.exit_code, t.reason.as_deref()),
            (137, Some("ContainerStatusUnknown"))
        );
    }

    #[test]
    fn conditions_and_kept_transition_times() {
        let mut p = pod("Always", &["init"], &["a", "b"]);
        let inits = [obs("init", exited("i", 0, false), false)];
        let s1 = status(
            &p,
            &inits,
            &[
                obs("a", running("1", 1), true),
                obs("b", running("2", 1), false),
            ],
            10,
        );
        assert_eq!(cond(&s1, "Initialized").status, "True");
        assert_eq!(cond(&s1, "PodReadyToStartContainers").status, "True");
        let ready = cond(&s1, "Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_deref(),
                ready.message.as_deref()
            ),
            (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [b]")
            )
        );
        assert_eq!(cond(&s1, "ContainersReady").status, "False");
        assert_eq!(cond(&s1, "PodScheduled").status, "True");
        assert_eq!(s1.start_time, Some(Time(ts(10))));
        assert_eq!(s1.pod_ip.as_deref(), Some("10.1.0.7"));
        assert_eq!(s1.host_ips.as_ref().unwrap()[0].ip, "192.168.0.2");
        assert_eq!(s1.init_container_statuses.as_ref().unwrap().len(), 1);

        // later: b becomes ready; Ready flips (new time), Initialized keeps its time
        p.status = Some(s1.clone());
        let s2 = status(
            &p,
            &inits,
            &[
                obs("a", running("1", 1), true),
                obs("b", running("2", 1), true),
            ],
            50,
        );
        assert_eq!(cond(&s2, "Ready").status, "True");
        assert_eq!(cond(&s2, "Ready").last_transition_time, Some(Time(ts(50))));
        assert_eq!(
            cond(&s2, "Initialized").last_transition_time,
            Some(Time(ts(10)))
        );
        assert_eq!(s2.start_time, Some(Time(ts(10))), "start time is kept");

        // foreign conditions are kept, PodScheduled from the scheduler is not rewritten
        let mut prev = s2.clone();
        for c in prev.conditions.as_mut().unwrap() {
            if c.type_ == "PodScheduled" {
                c.last_transition_time = Some(Time(ts(1)));
            }
        }
        prev.conditions.as_mut().unwrap().push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            ..Default::default()
        });
        p.status = Some(prev);
        let s3 = status(
            &p,
            &inits,
            &[
                obs("a", running("1", 1), true),
                obs("b", running("2", 1), true),
            ],
            90,
        );
        assert_eq!(cond(&s3, "DisruptionTarget").status, "True");
        assert_eq!(
            cond(&s3, "PodScheduled").last_transition_time,
            Some(Time(ts(1)))
        );
        assert_eq!(cond(&s3, "Ready").last_transition_time, Some(Time(ts(50))));
    }

    #[test]
    fn initializing_and_completed_pods() {
        let p = pod("OnFailure", &["i1", "i2"], &["a"]);
        let s = status(
            &p,
            &[
                obs("i1", exited("x", 0, false), false),
                obs("i2", running("y", 1), false),
            ],
            &[],
            5,
        );
        let init = cond(&s, "Initialized");
        assert_eq!(
            (
                init.status.as_str(),
                init.reason.as_deref(),
                init.message.as_deref()
            ),
            (
                "False",
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [i2]")
            )
        );
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            a.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));

        let done = [
            obs("i1", exited("x", 0, false), false),
            obs("i2", exited("y", 0, false), false),
        ];
        let s = status(&p, &done, &[obs("a", exited("z", 0, false), false)], 9);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let ready = cond(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );
        assert_eq!(
            cond(&s, "Initialized").reason.as_deref(),
            Some("PodCompleted")
        );

        // a terminal phase is never left
        let mut p2 = p.clone();
        p2.status = Some(s);
        let again = status(&p2, &done, &[wait("a", "ContainerCreating", None)], 20);
        assert_eq!(again.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn qos_classes() {
        let pod_with = |resources: Vec<serde_json::Value>| -> Pod {
            let containers: Vec<_> = resources
                .into_iter()
                .enumerate()
                .map(|(i, r)| json!({"name": format!("c{i}"), "resources": r}))
                .collect();
            serde_json::from_value(json!({"spec": {"containers": containers}})).unwrap()
        };
        let both = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        let cases = [
            (vec![json!({})], "BestEffort"),
            (vec![json!({}), json!({})], "BestEffort"),
            (vec![json!({"requests": {"cpu": "0"}})], "BestEffort"),
            (vec![both.clone()], "Guaranteed"),
            (vec![both.clone(), both.clone()], "Guaranteed"),
            (
                vec![
                    json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}),
                ],
                "Guaranteed",
            ),
            (
                vec![json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})],
                "Burstable",
            ),
            (vec![json!({"limits": {"cpu": "1"}})], "Burstable"),
            (vec![both.clone(), json!({})], "Burstable"),
            (vec![json!({"requests": {"memory": "10Mi"}})], "Burstable"),
        ];
        for (resources, want) in cases {
            assert_eq!(
                qos_class(&pod_with(resources.clone())),
                want,
                "{resources:?}"
            );
        }
    }
}
