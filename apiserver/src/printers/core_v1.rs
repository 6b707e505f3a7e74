//! Printers for the core (`""`, `v1`) group.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::util::*;
use super::{AGE, Column, NAME, col, wide};

// --- Pod -------------------------------------------------------------------

pub(super) const POD: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "Ready containers out of all containers (sidecars included).",
    ),
    col(
        "Status",
        "string",
        "A one-word summary of the pod's state, as kubectl derives it from phase and container states.",
    ),
    col(
        "Restarts",
        "string",
        "Container restarts, with how long ago the last one happened.",
    ),
    AGE,
    wide("IP", "string", "The pod's first IP address."),
    wide("Node", "string", "The node the pod is bound to."),
    wide(
        "Nominated Node",
        "string",
        "The node the scheduler nominated after preempting pods there.",
    ),
    wide(
        "Readiness Gates",
        "string",
        "Extra readiness conditions that are true, out of those the pod declares.",
    ),
];

/// What the pod printer derives, shared by the cells and the row conditions.
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// kubectl's STATUS logic: start from the phase (or `status.reason`), let the
/// first unfinished init container explain itself (`Init:1/3`,
/// `Init:CrashLoopBackOff`), otherwise let the containers' waiting or
/// terminated reasons override it (last container wins), and finally say
/// `Terminating` (or `Unknown` on a lost node) for pods being deleted.
fn summarize_pod(pod: &Value) -> PodSummary {
    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = match str_at(pod, &["status", "reason"]) {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    let conditions = arr_at(pod, &["status", "conditions"]);
    if conditions.iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    }) {
        reason = "SchedulingGated".to_owned();
    }

    let init_specs = arr_at(pod, &["spec", "initContainers"]);
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, &["name"]) == name && str_at(c, &["restartPolicy"]) == "Always")
    };
    let mut total = len_at(pod, &["spec", "containers"]);
    total += init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();

    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut sidecar_last_restart = None;
    let mut initializing = false;
    let finished = |c: &Value| time_at(c, &["lastState", "terminated", "finishedAt"]);

    for (i, c) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        restarts += int_at(c, &["restartCount"]);
        last_restart = later(last_restart, finished(c));
        let sidecar = is_sidecar(str_at(c, &["name"]));
        if sidecar {
            sidecar_restarts += int_at(c, &["restartCount"]);
            sidecar_last_restart = later(sidecar_last_restart, finished(c));
        }
        let terminated = at(c, &["state", "terminated"]).filter(|t| !t.is_null());
        let waiting_reason = str_at(c, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && bool_at(c, &["started"]) {
            if bool_at(c, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = match str_at(t, &["reason"]) {
                "" if int_at(t, &["signal"]) != 0 => {
                    format!("Init:Signal:{}", int_at(t, &["signal"]))
                }
                "" => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
                r => format!("Init:{r}"),
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, &["status", "conditions"], "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for c in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(c, &["restartCount"]);
            last_restart = later(last_restart, finished(c));
            let terminated = at(c, &["state", "terminated"]).filter(|t| !t.is_null());
            let waiting_reason = str_at(c, &["state", "waiting", "reason"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if let Some(t) = terminated {
                reason = match str_at(t, &["reason"]) {
                    "" if int_at(t, &["signal"]) != 0 => {
                        format!("Signal:{}", int_at(t, &["signal"]))
                    }
                    "" => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                    r => r.to_owned(),
                };
            } else if bool_at(c, &["ready"]) && present(c, &["state", "running"]) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, &["status", "conditions"], "Ready") {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }

    if present(pod, &["metadata", "deletionTimestamp"]) {
        if str_at(pod, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".to_owned();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_owned();
        }
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

pub(super) fn pod(pod: &Value, now: Timestamp) -> Vec<Value> {
    let sum = summarize_pod(pod);
    let restarts = match sum.last_restart {
        Some(t) if sum.restarts != 0 => format!("{} ({} ago)", sum.restarts, since(Some(t), now)),
        _ => sum.restarts.to_string(),
    };
    let ip = arr_at(pod, &["status", "podIPs"])
        .first()
        .map(|p| str_at(p, &["ip"]))
        // Older writers set only the singular field.
        .unwrap_or_else(|| str_at(pod, &["status", "podIP"]));
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let conditions = arr_at(pod, &["status", "conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let wanted = str_at(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == wanted)
                    .is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        s(str_at(pod, &["metadata", "name"])),
        s(format!("{}/{}", sum.ready, sum.total)),
        s(sum.reason),
        s(restarts),
        age(pod, now),
        s(or_none(ip)),
        s(or_none(str_at(pod, &["spec", "nodeName"]))),
        s(or_none(str_at(pod, &["status", "nominatedNodeName"]))),
        s(readiness_gates),
    ]
}

/// Row conditions Kubernetes attaches to finished pods, so clients can tell
/// them apart without reading the object.
pub(super) fn pod_row_conditions(pod: &Value) -> Option<Value> {
    match str_at(pod, &["status", "phase"]) {
        "Succeeded" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."
        }])),
        "Failed" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."
        }])),
        _ => None,
    }
}

// --- Service ---------------------------------------------------------------

pub(super) const SERVICE: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName.",
    ),
    col(
        "Cluster-IP",
        "string",
        "The service's virtual IP inside the cluster.",
    ),
    col(
        "External-IP",
        "string",
        "Addresses reachable from outside the cluster.",
    ),
    col(
        "Port(s)",
        "string",
        "Service ports, with node ports where allocated.",
    ),
    AGE,
    wide(
        "Selector",
        "string",
        "The labels of the pods this service sends traffic to.",
    ),
];

pub(super) fn service(svc: &Value, now: Timestamp) -> Vec<Value> {
    // The API defaults an empty type to ClusterIP; show what it would store.
    let svc_type = match str_at(svc, &["spec", "type"]) {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = arr_at(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_str(svc, &["spec", "clusterIP"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");
    let external_ips: Vec<&str> = arr_at(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            // The server always renders the wide form, so nothing is clipped.
            let mut all = load_balancer_addresses(svc);
            all.extend(external_ips.iter().map(|ip| ip.to_string()));
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_owned(),
        _ => "<unknown>".to_owned(),
    };
    let ports: Vec<String> = arr_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let protocol = match str_at(p, &["protocol"]) {
                "" => "TCP",
                proto => proto,
            };
            let port = int_at(p, &["port"]);
            match int_at(p, &["nodePort"]) {
                np if np > 0 => format!("{port}:{np}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    vec![
        s(str_at(svc, &["metadata", "name"])),
        s(svc_type),
        s(cluster_ip),
        s(external),
        s(or_none(&ports.join(","))),
        age(svc, now),
        s(format_labels(at(svc, &["spec", "selector"]))),
    ]
}

/// IPs (or hostnames) of `status.loadBalancer.ingress`, sorted and unique.
pub(super) fn load_balancer_addresses(obj: &Value) -> Vec<String> {
    arr_at(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, &["ip"]);
            let host = str_at(i, &["hostname"]);
            let addr = if ip.is_empty() { host } else { ip };
            (!addr.is_empty()).then(|| addr.to_owned())
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

// --- Endpoints -------------------------------------------------------------

pub(super) const ENDPOINTS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "Up to three ready addresses with their ports.",
    ),
    AGE,
];

pub(super) fn endpoints(ep: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let subsets = arr_at(ep, &["subsets"]);
    let text = if subsets.is_empty() {
        "<none>".to_owned()
    } else {
        let mut list = Vec::new();
        let mut count = 0;
        for ss in subsets {
            let addrs = arr_at(ss, &["addresses"]);
            let ports = arr_at(ss, &["ports"]);
            if ports.is_empty() {
                // Headless services may have no ports.
                count += addrs.len();
                for a in addrs {
                    if list.len() == MAX {
                        break;
                    }
                    list.push(str_at(a, &["ip"]).to_owned());
                }
                continue;
            }
            for p in ports {
                count += addrs.len();
                for a in addrs {
                    if list.len() == MAX {
                        break;
                    }
                    list.push(join_host_port(str_at(a, &["ip"]), int_at(p, &["port"])));
                }
            }
        }
        let joined = list.join(",");
        if count > MAX {
            format!("{joined} + {} more...", count - MAX)
        } else {
            joined
        }
    };
    vec![s(str_at(ep, &["metadata", "name"])), s(text), age(ep, now)]
}

// --- Node ------------------------------------------------------------------

pub(super) const NODE: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "Ready, NotReady or Unknown, plus SchedulingDisabled when cordoned.",
    ),
    col(
        "Roles",
        "string",
        "Roles from node-role.kubernetes.io/<role> labels.",
    ),
    AGE,
    col("Version", "string", "The kubelet version the node reports."),
    wide(
        "Internal-IP",
        "string",
        "The node's first InternalIP address.",
    ),
    wide(
        "External-IP",
        "string",
        "The node's first ExternalIP address.",
    ),
    wide(
        "OS-Image",
        "string",
        "The operating system image the node reports.",
    ),
    wide(
        "Kernel-Version",
        "string",
        "The kernel version the node reports.",
    ),
    wide(
        "Container-Runtime",
        "string",
        "The container runtime and version the node reports.",
    ),
];

pub(super) fn node(node: &Value, now: Timestamp) -> Vec<Value> {
    // Only the Ready condition counts; the last entry of a type wins, as
    // when Kubernetes builds its condition map.
    let ready = arr_at(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_owned());
                }
            } else if let Some(v) = v
                .as_str()
                .filter(|v| k == "kubernetes.io/role" && !v.is_empty())
            {
                roles.insert(v.to_owned());
            }
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");
    let address = |type_: &str| {
        arr_at(node, &["status", "addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == type_)
            .map(|a| str_at(a, &["address"]).to_owned())
            .unwrap_or_else(|| "<none>".to_owned())
    };
    let info = |field: &str| match str_at(node, &["status", "nodeInfo", field]) {
        "" => "<unknown>".to_owned(),
        v => v.to_owned(),
    };
    vec![
        s(str_at(node, &["metadata", "name"])),
        s(status.join(",")),
        s(or_none(&roles)),
        age(node, now),
        s(str_at(node, &["status", "nodeInfo", "kubeletVersion"])),
        s(address("InternalIP")),
        s(address("ExternalIP")),
        s(info("osImage")),
        s(info("kernelVersion")),
        s(info("containerRuntimeVersion")),
    ]
}

// --- Event -----------------------------------------------------------------

pub(super) const EVENT: &[Column] = &[
    col(
        "Last Seen",
        "string",
        "How long ago the event last happened.",
    ),
    col("Type", "string", "Normal or Warning."),
    col("Reason", "string", "A short machine-readable cause."),
    col(
        "Object",
        "string",
        "The object the event is about, as kind/name.",
    ),
    wide(
        "Subobject",
        "string",
        "The part of the object concerned, e.g. a container.",
    ),
    wide(
        "Source",
        "string",
        "The component (and host) that reported the event.",
    ),
    col("Message", "string", "A human-readable description."),
    wide(
        "First Seen",
        "string",
        "How long ago the event first happened.",
    ),
    wide("Count", "string", "How many times the event happened."),
    Column {
        priority: 1,
        ..NAME
    },
];

pub(super) fn event(ev: &Value, now: Timestamp) -> Vec<Value> {
    let first = match time_at(ev, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(ev, &["eventTime"]), now),
    };
    let mut last = match time_at(ev, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int_at(ev, &["count"]);
    if present(ev, &["series"]) {
        last = since(time_at(ev, &["series", "lastObservedTime"]), now);
        count = int_at(ev, &["series", "count"]);
    } else if count == 0 {
        // Events from the newer API are singletons without a count.
        count = 1;
    }
    let kind = str_at(ev, &["involvedObject", "kind"]).to_lowercase();
    let target = match str_at(ev, &["involvedObject", "name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let first_non_empty =
        |a: &'static [&'static str], b: &'static [&'static str]| match str_at(ev, a) {
            "" => str_at(ev, b),
            v => v,
        };
    let component = first_non_empty(&["source", "component"], &["reportingComponent"]);
    let host = first_non_empty(&["source", "host"], &["reportingInstance"]);
    let source = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };
    vec![
        s(last),
        s(str_at(ev, &["type"])),
        s(str_at(ev, &["reason"])),
        s(target),
        s(str_at(ev, &["involvedObject", "fieldPath"])),
        s(source),
        s(str_at(ev, &["message"]).trim()),
        s(first),
        n(count),
        s(str_at(ev, &["metadata", "name"])),
    ]
}

// --- simple core kinds -----------------------------------------------------

pub(super) const NAMESPACE: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "Active, or Terminating while being deleted.",
    ),
    AGE,
];

pub(super) fn namespace(ns: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(str_at(ns, &["metadata", "name"])),
        s(str_at(ns, &["status", "phase"])),
        age(ns, now),
    ]
}

pub(super) const CONFIG_MAP: &[Column] = &[
    NAME,
    col("Data", "string", "Number of keys in data and binaryData."),
    AGE,
];

pub(super) fn config_map(cm: &Value, now: Timestamp) -> Vec<Value> {
    let keys = len_at(cm, &["data"]) + len_at(cm, &["binaryData"]);
    vec![
        s(str_at(cm, &["metadata", "name"])),
        n(keys as i64),
        age(cm, now),
    ]
}

pub(super) const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", "The secret type, e.g. Opaque."),
    col("Data", "string", "Number of keys in data."),
    AGE,
];

pub(super) fn secret(secret: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(str_at(secret, &["metadata", "name"])),
        s(str_at(secret, &["type"])),
        n(len_at(secret, &["data"]) as i64),
        age(secret, now),
    ]
}

pub(super) const SERVICE_ACCOUNT: &[Column] = &[
    NAME,
    col(
        "Secrets",
        "string",
        "Number of secrets listed on the service account.",
    ),
    AGE,
];

pub(super) fn service_account(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(str_at(sa, &["metadata", "name"])),
        n(len_at(sa, &["secrets"]) as i64),
        age(sa, now),
    ]
}

pub(super) const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    col("Desired", "integer", "Requested number of pods."),
    col("Current", "integer", "Number of pods that exist."),
    col("Ready", "integer", "Number of ready pods."),
    AGE,
    wide(
        "Containers",
        "string",
        "Names of the template's containers.",
    ),
    wide("Images", "string", "Images of the template's containers."),
    wide(
        "Selector",
        "string",
        "The labels of the pods this controller owns.",
    ),
];

pub(super) fn replication_controller(rc: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(template_containers(rc, &["spec", "template"]));
    vec![
        s(str_at(rc, &["metadata", "name"])),
        // The API defaults replicas to 1.
        n(opt_int(rc, &["spec", "replicas"]).unwrap_or(1)),
        n(int_at(rc, &["status", "replicas"])),
        n(int_at(rc, &["status", "readyReplicas"])),
        age(rc, now),
        names,
        images,
        s(format_labels(at(rc, &["spec", "selector"]))),
    ]
}

// --- storage ---------------------------------------------------------------

/// Access modes in kubectl's short form, fixed order, duplicates dropped.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| has(long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The storage class, honouring the beta annotation that predates the field.
fn storage_class(obj: &Value) -> String {
    if let Some(class) = opt_str(obj, &["metadata", "annotations", BETA_STORAGE_CLASS]) {
        return class.to_owned();
    }
    str_at(obj, &["spec", "storageClassName"]).to_owned()
}

fn phase_or_terminating(obj: &Value) -> String {
    if present(obj, &["metadata", "deletionTimestamp"]) {
        "Terminating".to_owned()
    } else {
        str_at(obj, &["status", "phase"]).to_owned()
    }
}

fn unset_or(obj: &Value, path: &[&str]) -> String {
    opt_str(obj, path).unwrap_or("<unset>").to_owned()
}

pub(super) const PERSISTENT_VOLUME: &[Column] = &[
    NAME,
    col("Capacity", "string", "The volume's storage capacity."),
    col(
        "Access Modes",
        "string",
        "How the volume can be mounted (RWO, ROX, RWX, RWOP).",
    ),
    col(
        "Reclaim Policy",
        "string",
        "What happens to the volume when its claim is released.",
    ),
    col("Status", "string", "The volume's phase, or Terminating."),
    col(
        "Claim",
        "string",
        "The claim bound to the volume, as namespace/name.",
    ),
    col("StorageClass", "string", "The storage class of the volume."),
    col(
        "VolumeAttributesClass",
        "string",
        "The volume attributes class of the volume.",
    ),
    col(
        "Reason",
        "string",
        "Why the volume is in its phase, if failed.",
    ),
    AGE,
    wide("VolumeMode", "string", "Filesystem or Block."),
];

pub(super) fn persistent_volume(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = if present(pv, &["spec", "claimRef"]) {
        format!(
            "{}/{}",
            str_at(pv, &["spec", "claimRef", "namespace"]),
            str_at(pv, &["spec", "claimRef", "name"])
        )
    } else {
        String::new()
    };
    vec![
        s(str_at(pv, &["metadata", "name"])),
        s(quantity(at(pv, &["spec", "capacity", "storage"]))),
        s(access_modes(arr_at(pv, &["spec", "accessModes"]))),
        s(str_at(pv, &["spec", "persistentVolumeReclaimPolicy"])),
        s(phase_or_terminating(pv)),
        s(claim),
        s(storage_class(pv)),
        s(unset_or(pv, &["spec", "volumeAttributesClassName"])),
        s(str_at(pv, &["status", "reason"])),
        age(pv, now),
        s(unset_or(pv, &["spec", "volumeMode"])),
    ]
}

pub(super) const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME,
    col("Status", "string", "The claim's phase, or Terminating."),
    col("Volume", "string", "The volume bound to the claim."),
    col("Capacity", "string", "The bound volume's capacity."),
    col(
        "Access Modes",
        "string",
        "How the bound volume can be mounted.",
    ),
    col("StorageClass", "string", "The storage class of the claim."),
    col(
        "VolumeAttributesClass",
        "string",
        "The volume attributes class of the claim.",
    ),
    AGE,
    wide("VolumeMode", "string", "Filesystem or Block."),
];

pub(super) fn persistent_volume_claim(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let volume = str_at(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(pvc, &["status", "capacity", "storage"])),
            access_modes(arr_at(pvc, &["status", "accessModes"])),
        )
    };
    vec![
        s(str_at(pvc, &["metadata", "name"])),
        s(phase_or_terminating(pvc)),
        s(volume),
        s(capacity),
        s(modes),
        s(storage_class(pvc)),
        s(unset_or(pvc, &["spec", "volumeAttributesClassName"])),
        age(pvc, now),
        s(unset_or(pvc, &["spec", "volumeMode"])),
    ]
}

// --- ResourceQuota ---------------------------------------------------------

pub(super) const RESOURCE_QUOTA: &[Column] = &[
    NAME,
    col(
        "Request",
        "string",
        "Used/hard for every quota that is not a limit.",
    ),
    col("Limit", "string", "Used/hard for the limits.* quotas."),
    AGE,
];

pub(super) fn resource_quota(rq: &Value, now: Timestamp) -> Vec<Value> {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    if let Some(hard) = at(rq, &["status", "hard"]).and_then(Value::as_object) {
        let mut names: Vec<&String> = hard.keys().collect();
        names.sort();
        for name in names {
            let used = quantity(at(rq, &["status", "used", name]));
            let entry = format!("{name}: {used}/{}", quantity(hard.get(name)));
            match name.split_once('.') {
                Some(("limits", _)) => limits.push(entry),
                _ => requests.push(entry),
            }
        }
    }
    vec![
        s(str_at(rq, &["metadata", "name"])),
        s(requests.join(", ")),
        s(limits.join(", ")),
        age(rq, now),
    ]
}
