use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;

fn now() -> Timestamp {
    "2026-11-26T14:00:00Z".parse().unwrap()
}

/// A timestamp `secs` seconds before [`now`], as JSON.
fn ago(secs: i64) -> Value {
    json!(
        now()
            .checked_sub(jiff::SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    )
}

const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86400;

fn row(group: &str, kind: &str, obj: Value) -> Vec<Value> {
    let cells = cells(group, kind, &obj, now());
    assert_eq!(
        cells.len(),
        columns(group, kind).len(),
        "{kind}: one cell per column"
    );
    cells
}

/// Cells as kubectl would print them: strings bare, numbers as digits.
fn texts(cells: &[Value]) -> Vec<String> {
    cells
        .iter()
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn headers(group: &str, kind: &str) -> Vec<&'static str> {
    columns(group, kind).iter().map(|c| c.name).collect()
}

// --- human_duration --------------------------------------------------------

#[test]
fn human_duration_matches_apimachinery() {
    let cases = [
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (9 * MIN + 59, "9m59s"),
        (10 * MIN + 30, "10m"),
        (179 * MIN, "179m"),
        (3 * HOUR, "3h"),
        (3 * HOUR + 5 * MIN, "3h5m"),
        (7 * HOUR + 59 * MIN, "7h59m"),
        (8 * HOUR + 30 * MIN, "8h"),
        (47 * HOUR, "47h"),
        (2 * DAY + 3 * HOUR, "2d3h"),
        (3 * DAY, "3d"),
        (8 * DAY, "8d"),
        (729 * DAY, "729d"),
        (730 * DAY, "2y"),
        (740 * DAY, "2y10d"),
        (8 * 365 * DAY, "8y"),
        (20 * 365 * DAY, "20y"),
    ];
    for (secs, want) in cases {
        assert_eq!(
            human_duration(Duration::from_secs(secs as u64)),
            want,
            "{secs}s"
        );
    }
    assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
    // Clock skew: up to a second in the future is "0s", beyond is invalid.
    assert_eq!(
        util::human_signed(jiff::SignedDuration::from_millis(-1500)),
        "0s"
    );
    assert_eq!(
        util::human_signed(jiff::SignedDuration::from_secs(-2)),
        "<invalid>"
    );
}

// --- every kind --------------------------------------------------------------

#[test]
fn every_kind_has_columns_and_tolerates_partial_objects() {
    let odd_objects = [
        json!({}),
        json!(null),
        json!({"metadata": {"name": "x"}}),
        json!({"metadata": [], "spec": 5, "status": "broken", "subsets": {}, "rules": 1}),
        json!({"metadata": {"creationTimestamp": "not a time", "labels": {"a": 1}},
               "spec": {"containers": [1, null], "ports": [{}], "selector": {"matchExpressions": [{}]},
                        "metrics": [{"type": "Resource"}, {}, {"type": "External"}]},
               "status": {"containerStatuses": [{"state": {"terminated": {}}}],
                          "conditions": [null], "hard": {"cpu": 1}}}),
    ];
    // Every kind the API server serves.
    for (group, kind) in crate::resources::RESOURCES
        .iter()
        .map(|r| (r.group, r.kind))
    {
        let cols = columns(group, kind);
        assert!(!cols.is_empty(), "{kind}");
        let name_cols: Vec<_> = cols.iter().filter(|c| c.format == "name").collect();
        assert_eq!(name_cols.len(), 1, "{kind}: exactly one name column");
        assert_eq!(name_cols[0].name, "Name");
        if kind == "Event" {
            assert_eq!(cols[0].name, "Last Seen");
        } else {
            assert_eq!(cols[0].name, "Name", "{kind}");
            assert_eq!(cols[0].priority, 0);
        }
        for c in cols {
            assert!(c.priority == 0 || c.priority == 1);
            assert!(
                ["string", "integer", "boolean", "date"].contains(&c.type_),
                "{kind} {}",
                c.name
            );
            assert!(!c.description.is_empty());
        }
        for obj in &odd_objects {
            let cells = row(group, kind, obj.clone());
            assert!(cells.iter().all(|c| !c.is_null()), "{kind}: {cells:?}");
        }
    }
}

#[test]
fn empty_objects_print_kubernetes_zero_values() {
    assert_eq!(
        texts(&row("", "Pod", json!({}))),
        [
            "",
            "0/0",
            "",
            "0",
            "<unknown>",
            "<none>",
            "<none>",
            "<none>",
            "<none>"
        ]
    );
    assert_eq!(
        texts(&row("apps", "Deployment", json!({}))),
        ["", "0/1", "0", "0", "<unknown>", "", "", ""]
    );
    assert_eq!(
        texts(&row("", "Node", json!({}))),
        [
            "",
            "Unknown",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ]
    );
    assert_eq!(
        texts(&row("", "Service", json!({}))),
        [
            "",
            "ClusterIP",
            "<none>",
            "<none>",
            "<none>",
            "<unknown>",
            "<none>"
        ]
    );
}

// --- Pod -------------------------------------------------------------------

fn pod(metadata: Value, spec: Value, status: Value) -> Value {
    let mut meta =
        json!({"name": "web-1", "namespace": "default", "creationTimestamp": ago(10 * MIN)});
    meta.as_object_mut()
        .unwrap()
        .extend(metadata.as_object().unwrap().clone());
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status})
}

fn running(name: &str, restarts: i64, last_finished: Option<Value>) -> Value {
    let mut c = json!({
        "name": name, "ready": true, "restartCount": restarts, "started": true,
        "image": "nginx", "imageID": "", "containerID": "containerd://abc",
        "state": {"running": {"startedAt": ago(4 * MIN)}}
    });
    if let Some(finished) = last_finished {
        c["lastState"] =
            json!({"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": finished}});
    }
    c
}

#[test]
fn running_pod_with_restarts() {
    let p = pod(
        json!({}),
        json!({"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}, {"name": "log", "image": "busybox"}]}),
        json!({
            "phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [running("app", 3, Some(ago(5 * MIN))), running("log", 0, None)]
        }),
    );
    assert_eq!(
        texts(&row("", "Pod", p)),
        [
            "web-1",
            "2/2",
            "Running",
            "3 (5m ago)",
            "10m",
            "10.244.1.5",
            "node-1",
            "<none>",
            "<none>"
        ]
    );
    assert_eq!(
        headers("", "Pod"),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
}

#[test]
fn pending_pods() {
    let unscheduled = pod(
        json!({}),
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Pending", "nominatedNodeName": "node-2",
               "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}),
    );
    assert_eq!(
        texts(&row("", "Pod", unscheduled)),
        [
            "web-1", "0/1", "Pending", "0", "10m", "<none>", "<none>", "node-2", "<none>"
        ]
    );

    let creating = pod(
        json!({}),
        json!({"nodeName": "node-1", "containers": [{"name": "app"}]}),
        json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]}),
    );
    assert_eq!(
        texts(&row("", "Pod", creating))[..4],
        ["web-1", "0/1", "ContainerCreating", "0"]
    );

    let gated = pod(
        json!({}),
        json!({"containers": [{"name": "app"}], "schedulingGates": [{"name": "wait"}]}),
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
    );
    assert_eq!(texts(&row("", "Pod", gated))[2], "SchedulingGated");
}

#[test]
fn crash_looping_pod() {
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 12,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(90)}}
        }]}),
    );
    assert_eq!(
        texts(&row("", "Pod", p))[1..4],
        ["0/1", "CrashLoopBackOff", "12 (90s ago)"]
    );
}

#[test]
fn terminating_and_lost_pods() {
    let spec = json!({"containers": [{"name": "app"}]});
    let status = json!({"phase": "Running", "containerStatuses": [running("app", 0, None)]});
    let terminating = pod(
        json!({"deletionTimestamp": ago(5)}),
        spec.clone(),
        status.clone(),
    );
    assert_eq!(
        texts(&row("", "Pod", terminating))[1..3],
        ["1/1", "Terminating"]
    );

    let mut lost_status = status.clone();
    lost_status["reason"] = json!("NodeLost");
    let lost = pod(
        json!({"deletionTimestamp": ago(5)}),
        spec.clone(),
        lost_status,
    );
    assert_eq!(texts(&row("", "Pod", lost))[2], "Unknown");

    // A finished pod being deleted keeps saying how it finished.
    let done = pod(
        json!({"deletionTimestamp": ago(5)}),
        spec,
        json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]}),
    );
    assert_eq!(texts(&row("", "Pod", done))[1..3], ["0/1", "Completed"]);
}

#[test]
fn init_containers() {
    let spec = json!({
        "initContainers": [{"name": "migrate"}, {"name": "seed"}],
        "containers": [{"name": "app"}]
    });
    let waiting = |reason: &str| json!({"name": "x", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}});
    let done = json!({"name": "migrate", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});

    let first = pod(
        json!({}),
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "migrate", "ready": false, "restartCount": 0, "state": {"running": {}}}, waiting("PodInitializing")
        ]}),
    );
    assert_eq!(
        texts(&row("", "Pod", first))[1..4],
        ["0/1", "Init:0/2", "0"]
    );

    let second = pod(
        json!({}),
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [
            done.clone(), waiting("PodInitializing")
        ]}),
    );
    assert_eq!(texts(&row("", "Pod", second))[2], "Init:1/2");

    let mut crashing = waiting("CrashLoopBackOff");
    crashing["restartCount"] = json!(4);
    let crash = pod(
        json!({}),
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [done.clone(), crashing]}),
    );
    assert_eq!(
        texts(&row("", "Pod", crash))[2..4],
        ["Init:CrashLoopBackOff", "4"]
    );

    let failed = pod(
        json!({}),
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "migrate", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}
        ]}),
    );
    assert_eq!(texts(&row("", "Pod", failed))[2], "Init:ExitCode:3");

    let signalled = pod(
        json!({}),
        spec,
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "migrate", "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}
        ]}),
    );
    assert_eq!(texts(&row("", "Pod", signalled))[2], "Init:Signal:9");
}

#[test]
fn sidecar_init_containers_count_as_containers() {
    let p = pod(
        json!({}),
        json!({
            "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}]
        }),
        json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3 * HOUR)}}}],
            "containerStatuses": [running("app", 0, None)]
        }),
    );
    assert_eq!(
        texts(&row("", "Pod", p))[1..4],
        ["2/2", "Running", "1 (3h ago)"]
    );
}

#[test]
fn completed_pod_and_row_conditions() {
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "job"}], "readinessGates": [{"conditionType": "example.com/ready"}]}),
        json!({"phase": "Succeeded",
               "conditions": [{"type": "example.com/ready", "status": "True"}],
               "containerStatuses": [{"name": "job", "ready": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
    );
    let cells = row("", "Pod", p.clone());
    assert_eq!(texts(&cells)[1..4], ["0/1", "Completed", "0"]);
    assert_eq!(texts(&cells)[8], "1/1");
    let t = table("", "Pod", &[p], "7", true, "Metadata", now());
    assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
}

#[test]
fn completed_container_with_running_sibling_is_running_or_not_ready() {
    let status = |ready: &str| {
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
        "containerStatuses": [
            running("app", 0, None),
            {"name": "once", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]})
    };
    let spec = json!({"containers": [{"name": "app"}, {"name": "once"}]});
    assert_eq!(
        texts(&row(
            "",
            "Pod",
            pod(json!({}), spec.clone(), status("True"))
        ))[2],
        "Running"
    );
    assert_eq!(
        texts(&row("", "Pod", pod(json!({}), spec, status("False"))))[2],
        "NotReady"
    );
}

// --- apps --------------------------------------------------------------------

#[test]
fn deployment() {
    let d = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(HOUR + 5)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.27"}, {"name": "sidecar", "image": "envoy:1"}
            ]}}
        },
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    assert_eq!(
        texts(&row("apps", "Deployment", d)),
        [
            "web",
            "2/3",
            "3",
            "2",
            "60m",
            "nginx,sidecar",
            "nginx:1.27,envoy:1",
            "app=web"
        ]
    );
    assert_eq!(
        headers("apps", "Deployment"),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let wide: Vec<_> = columns("apps", "Deployment")
        .iter()
        .map(|c| c.priority)
        .collect();
    assert_eq!(wide, [0, 0, 0, 0, 0, 1, 1, 1]);
}

#[test]
fn replica_set_daemon_set_stateful_set() {
    let template = json!({"spec": {"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"disk": "ssd"}}});
    let rs = json!({"metadata": {"name": "web-abc", "creationTimestamp": ago(2 * DAY)},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}}, "template": template},
        "status": {"replicas": 2, "readyReplicas": 1}});
    assert_eq!(
        texts(&row("apps", "ReplicaSet", rs)),
        [
            "web-abc",
            "2",
            "2",
            "1",
            "2d",
            "c",
            "i",
            "app=web,pod-template-hash=abc"
        ]
    );
    let ds = json!({"metadata": {"name": "agent"},
        "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["agent"]}]}, "template": template},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}});
    assert_eq!(
        texts(&row("apps", "DaemonSet", ds)),
        [
            "agent",
            "3",
            "3",
            "2",
            "3",
            "2",
            "disk=ssd",
            "<unknown>",
            "c",
            "i",
            "app in (agent)"
        ]
    );
    let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": template},
        "status": {"readyReplicas": 3}});
    assert_eq!(
        texts(&row("apps", "StatefulSet", sts)),
        ["db", "3/3", "<unknown>", "c", "i"]
    );
}

// --- core --------------------------------------------------------------------

#[test]
fn node_port_and_other_services() {
    let svc = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(5 * DAY)},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                 "selector": {"app": "web", "tier": "front"},
                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                           {"port": 53, "protocol": "UDP"}]}
    });
    assert_eq!(
        texts(&row("", "Service", svc)),
        [
            "web",
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80:30080/TCP,53/UDP",
            "5d",
            "app=web,tier=front"
        ]
    );
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"],
        "ports": [{"port": 443}]}});
    assert_eq!(
        texts(&row("", "Service", lb))[1..5],
        ["LoadBalancer", "10.96.0.11", "<pending>", "443/TCP"]
    );
    let lb_up = json!({"spec": {"type": "LoadBalancer", "externalIPs": ["1.1.1.1"]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "a.example.com"}]}}});
    assert_eq!(
        texts(&row("", "Service", lb_up))[3],
        "203.0.113.9,a.example.com,1.1.1.1"
    );
    let ext = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    assert_eq!(
        texts(&row("", "Service", ext))[1..5],
        ["ExternalName", "<none>", "db.example.com", "<none>"]
    );
    let headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432, "protocol": "TCP"}]}});
    assert_eq!(
        texts(&row("", "Service", headless))[1..5],
        ["ClusterIP", "None", "<none>", "5432/TCP"]
    );
}

#[test]
fn ready_unschedulable_control_plane_node() {
    let node = json!({
        "metadata": {"name": "cp-1", "creationTimestamp": ago(20 * DAY),
                     "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "",
                                "kubernetes.io/hostname": "cp-1"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "cp-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Ubuntu 24.04.1 LTS",
                         "kernelVersion": "6.8.0-45-generic", "containerRuntimeVersion": "containerd://1.7.22"}
        }
    });
    assert_eq!(
        texts(&row("", "Node", node)),
        [
            "cp-1",
            "Ready,SchedulingDisabled",
            "control-plane,etcd",
            "20d",
            "v1.33.1",
            "192.168.1.10",
            "<none>",
            "Ubuntu 24.04.1 LTS",
            "6.8.0-45-generic",
            "containerd://1.7.22"
        ]
    );
    let not_ready = json!({"metadata": {"labels": {"kubernetes.io/role": "worker"}},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(
        texts(&row("", "Node", not_ready))[1..3],
        ["NotReady", "worker"]
    );
}

#[test]
fn event() {
    let ev = json!({
        "metadata": {"name": "web-1.17f", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(HOUR), "lastTimestamp": ago(30), "count": 7
    });
    assert_eq!(
        texts(&row("", "Event", ev)),
        [
            "30s",
            "Warning",
            "BackOff",
            "pod/web-1",
            "spec.containers{app}",
            "kubelet, node-1",
            "Back-off restarting failed container",
            "60m",
            "7",
            "web-1.17f"
        ]
    );
    assert_eq!(
        headers("", "Event"),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    let prios: Vec<_> = columns("", "Event").iter().map(|c| c.priority).collect();
    assert_eq!(prios, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);

    // events.k8s.io-style writers: eventTime, series, reporting fields.
    let series = json!({
        "metadata": {"name": "e2"}, "involvedObject": {"kind": "Node"},
        "eventTime": "2026-11-26T13:58:00.123456Z", "reportingComponent": "scheduler",
        "series": {"count": 4, "lastObservedTime": ago(10)}
    });
    let t = texts(&row("", "Event", series));
    assert_eq!(t[0], "10s");
    assert_eq!(t[3], "node");
    assert_eq!(t[5], "scheduler");
    assert_eq!(t[7], "119s");
    assert_eq!(t[8], "4");
    let singleton = json!({"metadata": {"name": "e3"}});
    assert_eq!(texts(&row("", "Event", singleton))[..1], ["<unknown>"]);
}

#[test]
fn small_core_kinds() {
    let meta = json!({"name": "x", "creationTimestamp": ago(3 * MIN)});
    assert_eq!(
        texts(&row(
            "",
            "Namespace",
            json!({"metadata": meta, "status": {"phase": "Active"}})
        )),
        ["x", "Active", "3m"]
    );
    assert_eq!(
        texts(&row(
            "",
            "ConfigMap",
            json!({"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}})
        )),
        ["x", "3", "3m"]
    );
    assert_eq!(
        texts(&row(
            "",
            "Secret",
            json!({"metadata": meta, "type": "Opaque", "data": {"a": "MQ=="}})
        )),
        ["x", "Opaque", "1", "3m"]
    );
    assert_eq!(
        texts(&row("", "ServiceAccount", json!({"metadata": meta}))),
        ["x", "0", "3m"]
    );
    let rc = json!({"metadata": meta, "spec": {"replicas": 2, "selector": {"app": "a"},
        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2}});
    assert_eq!(
        texts(&row("", "ReplicationController", rc)),
        ["x", "2", "2", "2", "3m", "c", "i", "app=a"]
    );
}

#[test]
fn endpoints_formatting() {
    let ep = json!({"metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}], "ports": [{"port": 8080}, {"port": 9090}]}
    ]});
    assert_eq!(
        texts(&row("", "Endpoints", ep))[1],
        "10.0.0.1:8080,[fd00::2]:8080,10.0.0.1:9090 + 1 more..."
    );
    let headless = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
    assert_eq!(texts(&row("", "Endpoints", headless))[1], "10.0.0.1");
    assert_eq!(texts(&row("", "Endpoints", json!({})))[1], "<none>");
}

#[test]
fn storage_and_quota() {
    let pv = json!({"metadata": {"name": "pv1"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                 "claimRef": {"namespace": "default", "name": "data"}},
        "status": {"phase": "Bound"}});
    assert_eq!(
        texts(&row("", "PersistentVolume", pv)),
        [
            "pv1",
            "10Gi",
            "RWO,RWX",
            "Retain",
            "Bound",
            "default/data",
            "fast",
            "<unset>",
            "",
            "<unknown>",
            "<unset>"
        ]
    );
    let pvc = json!({"metadata": {"name": "data", "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
        "spec": {"volumeName": "pv1", "storageClassName": "fast", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        texts(&row("", "PersistentVolumeClaim", pvc)),
        [
            "data",
            "Bound",
            "pv1",
            "10Gi",
            "RWO",
            "old",
            "<unset>",
            "<unknown>",
            "Filesystem"
        ]
    );
    let pending = json!({"spec": {"storageClassName": "fast"}, "status": {"phase": "Pending"}});
    assert_eq!(
        texts(&row("", "PersistentVolumeClaim", pending))[1..6],
        ["Pending", "", "", "", "fast"]
    );

    let rq = json!({"metadata": {"name": "q"}, "status": {
        "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "4Gi", "limits.cpu": "4"},
        "used": {"pods": "3", "requests.cpu": "500m", "limits.cpu": "1"}}});
    assert_eq!(
        texts(&row("", "ResourceQuota", rq)),
        [
            "q",
            "pods: 3/10, requests.cpu: 500m/2",
            "limits.cpu: 1/4, limits.memory: 0/4Gi",
            "<unknown>"
        ]
    );
}

// --- batch, autoscaling, policy ---------------------------------------------

#[test]
fn jobs_and_cron_jobs() {
    let template = json!({"spec": {"containers": [{"name": "pi", "image": "perl"}]}});
    let complete = json!({"metadata": {"name": "pi", "creationTimestamp": ago(10 * MIN)},
        "spec": {"completions": 1, "parallelism": 1, "template": template,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}},
        "status": {"succeeded": 1, "startTime": ago(10 * MIN), "completionTime": ago(10 * MIN - 42),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
    assert_eq!(
        texts(&row("batch", "Job", complete)),
        [
            "pi",
            "Complete",
            "1/1",
            "42s",
            "10m",
            "pi",
            "perl",
            "batch.kubernetes.io/controller-uid=u1"
        ]
    );
    let running = json!({"spec": {"parallelism": 3}, "status": {"startTime": ago(5 * MIN)}});
    assert_eq!(
        texts(&row("batch", "Job", running))[1..4],
        ["Running", "0/1 of 3", "5m"]
    );
    let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}});
    assert_eq!(
        texts(&row("batch", "Job", failed))[1..4],
        ["Failed", "0/1", ""]
    );
    let suspended = json!({"status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
    assert_eq!(texts(&row("batch", "Job", suspended))[1], "Suspended");
    let deleting = json!({"metadata": {"deletionTimestamp": ago(1)}});
    assert_eq!(texts(&row("batch", "Job", deleting))[1], "Terminating");

    let cj = json!({"metadata": {"name": "nightly", "creationTimestamp": ago(3 * DAY)},
        "spec": {"schedule": "0 3 * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": template}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(11 * HOUR)}});
    assert_eq!(
        texts(&row("batch", "CronJob", cj)),
        [
            "nightly",
            "0 3 * * *",
            "<none>",
            "False",
            "1",
            "11h",
            "3d",
            "pi",
            "perl",
            "<none>"
        ]
    );
    assert_eq!(
        texts(&row("batch", "CronJob", json!({})))[2..6],
        ["<none>", "<unset>", "0", "<none>"]
    );
}

#[test]
fn horizontal_pod_autoscaler_targets() {
    let hpa = json!({"metadata": {"name": "web"},
    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10,
             "metrics": [
                 {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                 {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                 {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}
             ]},
    "status": {"currentReplicas": 3, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "90m"}}}
    ]}});
    assert_eq!(
        texts(&row("autoscaling", "HorizontalPodAutoscaler", hpa)),
        [
            "web",
            "Deployment/web",
            "cpu: 45%/80%, memory: <unknown>/500Mi + 1 more...",
            "2",
            "10",
            "3",
            "<unknown>"
        ]
    );
    let bare =
        json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 5}});
    assert_eq!(
        texts(&row("autoscaling", "HorizontalPodAutoscaler", bare))[2..5],
        ["<none>", "<unset>", "5"]
    );
}

#[test]
fn pod_disruption_budget() {
    let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        texts(&row("policy", "PodDisruptionBudget", pdb)),
        ["web", "50%", "N/A", "1", "<unknown>"]
    );
    let pdb = json!({"spec": {"maxUnavailable": 1}});
    assert_eq!(
        texts(&row("policy", "PodDisruptionBudget", pdb))[1..4],
        ["N/A", "1", "0"]
    );
}

// --- networking, discovery, coordination, rbac --------------------------------

#[test]
fn networking_and_discovery() {
    let ing = json!({"metadata": {"name": "web"},
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                 "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}, {"host": "c.example.com"}, {"host": "d.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}});
    assert_eq!(
        texts(&row("networking.k8s.io", "Ingress", ing)),
        [
            "web",
            "nginx",
            "a.example.com,b.example.com,c.example.com + 2 more...",
            "203.0.113.5",
            "80, 443",
            "<unknown>"
        ]
    );
    assert_eq!(
        texts(&row("networking.k8s.io", "Ingress", json!({}))),
        ["", "<none>", "*", "", "80", "<unknown>"]
    );

    let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
    assert_eq!(
        texts(&row("networking.k8s.io", "NetworkPolicy", np))[1],
        "<none>"
    );
    let np = json!({"spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
    assert_eq!(
        texts(&row("networking.k8s.io", "NetworkPolicy", np))[1],
        "role=db"
    );

    let slice = json!({"metadata": {"name": "web-x1"}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "metrics"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}]});
    assert_eq!(
        texts(&row("discovery.k8s.io", "EndpointSlice", slice)),
        [
            "web-x1",
            "IPv4",
            "80,metrics",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
            "<unknown>"
        ]
    );
    assert_eq!(
        texts(&row("discovery.k8s.io", "EndpointSlice", json!({})))[2..4],
        ["<unset>", "<unset>"]
    );

    let lease = json!({"metadata": {"name": "node-1", "creationTimestamp": ago(DAY)}, "spec": {"holderIdentity": "node-1"}});
    assert_eq!(
        texts(&row("coordination.k8s.io", "Lease", lease)),
        ["node-1", "node-1", "24h"]
    );
}

#[test]
fn rbac() {
    let rb = json!({"metadata": {"name": "admins", "creationTimestamp": ago(MIN)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                     {"kind": "Group", "name": "ops"}, {"kind": "ServiceAccount", "namespace": "ci", "name": "deployer"}]});
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        assert_eq!(
            texts(&row("rbac.authorization.k8s.io", kind, rb.clone())),
            [
                "admins",
                "ClusterRole/admin",
                "60s",
                "alice, bob",
                "ops",
                "ci/deployer"
            ]
        );
    }
    // Roles have no printer in Kubernetes: the default table.
    let role =
        json!({"metadata": {"name": "reader", "creationTimestamp": "2026-01-02T03:04:05.678Z"}});
    assert_eq!(
        headers("rbac.authorization.k8s.io", "Role"),
        ["Name", "Created At"]
    );
    assert_eq!(
        columns("rbac.authorization.k8s.io", "ClusterRole")[1].type_,
        "date"
    );
    assert_eq!(
        texts(&row("rbac.authorization.k8s.io", "Role", role)),
        ["reader", "2026-01-02T03:04:05Z"]
    );
    assert_eq!(
        texts(&row("", "LimitRange", json!({}))),
        ["", "0001-01-01T00:00:00Z"]
    );
    assert_eq!(headers("example.com", "Widget"), ["Name", "Created At"]);
}

// --- table -------------------------------------------------------------------

#[test]
fn table_shape() {
    let pods = [
        pod(
            json!({"name": "a", "labels": {"app": "x"}}),
            json!({"containers": [{"name": "c"}]}),
            json!({"phase": "Pending"}),
        ),
        pod(
            json!({"name": "b"}),
            json!({"containers": [{"name": "c"}]}),
            json!({"phase": "Pending"}),
        ),
    ];
    let t = table("", "Pod", &pods, "42", true, "Metadata", now());
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"]["resourceVersion"], "42");
    let defs = t["columnDefinitions"].as_array().unwrap();
    assert_eq!(defs.len(), 9);
    assert_eq!(
        defs[0],
        json!({"name": "Name", "type": "string", "format": "name",
        "description": NAME.description, "priority": 0})
    );
    assert_eq!(defs[5]["priority"], 1);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["cells"][0], "a");
    assert_eq!(rows[0]["cells"][2], "Pending");
    assert!(rows[0].get("conditions").is_none());
    assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(rows[0]["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(rows[0]["object"]["metadata"]["labels"]["app"], "x");
    assert_eq!(rows[1]["object"]["metadata"]["name"], "b");

    let t = table("", "Pod", &pods, "", false, "None", now());
    assert_eq!(t["columnDefinitions"], json!([]));
    assert_eq!(t["metadata"], json!({}));
    assert!(t["rows"][0].get("object").is_none());
    assert_eq!(t["rows"][0]["cells"].as_array().unwrap().len(), 9);

    let t = table("", "Pod", &pods, "1", true, "Object", now());
    assert_eq!(t["rows"][0]["object"], pods[0]);

    let t = table("apps", "Deployment", &[], "9", true, "Metadata", now());
    assert_eq!(t["rows"], json!([]));
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 8);
}
