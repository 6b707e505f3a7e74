//! Printers for workload controllers: apps/v1, batch/v1, autoscaling and
//! policy.

use jiff::Timestamp;
use runtime::selector::LabelSelector;
use serde_json::Value;

use super::util::*;
use super::{AGE, Column, NAME, col, wide};

const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of the template's containers.",
);
const IMAGES: Column = wide("Images", "string", "Images of the template's containers.");
const SELECTOR: Column = wide(
    "Selector",
    "string",
    "The label selector of the pods this object owns.",
);

fn name(obj: &Value) -> Value {
    s(str_at(obj, &["metadata", "name"]))
}

/// `spec.replicas`, which the API defaults to 1 when omitted.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

pub(super) const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready pods out of desired pods."),
    col("Up-to-date", "string", "Pods running the latest template."),
    col(
        "Available",
        "string",
        "Pods available to serve (ready for minReadySeconds).",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn deployment(d: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(template_containers(d, &["spec", "template"]));
    // Unlike the other printers, an empty selector prints as "" here.
    let selector = match LabelSelector::from_label_selector_json(
        at(d, &["spec", "selector"]).unwrap_or(&Value::Null),
    ) {
        Ok(sel) => sel.to_string(),
        Err(_) => "<invalid>".to_owned(),
    };
    vec![
        name(d),
        s(format!(
            "{}/{}",
            int_at(d, &["status", "readyReplicas"]),
            desired_replicas(d)
        )),
        n(int_at(d, &["status", "updatedReplicas"])),
        n(int_at(d, &["status", "availableReplicas"])),
        age(d, now),
        names,
        images,
        s(selector),
    ]
}

pub(super) const REPLICA_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", "Requested number of pods."),
    col("Current", "integer", "Number of pods that exist."),
    col("Ready", "integer", "Number of ready pods."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn replica_set(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(template_containers(rs, &["spec", "template"]));
    vec![
        name(rs),
        n(desired_replicas(rs)),
        n(int_at(rs, &["status", "replicas"])),
        n(int_at(rs, &["status", "readyReplicas"])),
        age(rs, now),
        names,
        images,
        s(format_label_selector(at(rs, &["spec", "selector"]))),
    ]
}

pub(super) const DAEMON_SET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Nodes that should run the daemon pod.",
    ),
    col(
        "Current",
        "integer",
        "Nodes running at least one daemon pod.",
    ),
    col("Ready", "integer", "Nodes whose daemon pod is ready."),
    col(
        "Up-to-date",
        "integer",
        "Nodes running the latest template.",
    ),
    col(
        "Available",
        "integer",
        "Nodes whose daemon pod is available.",
    ),
    col(
        "Node Selector",
        "string",
        "The node labels the pods are restricted to.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn daemon_set(ds: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(template_containers(ds, &["spec", "template"]));
    let status = |field: &str| n(int_at(ds, &["status", field]));
    vec![
        name(ds),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        s(format_labels(at(
            ds,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        age(ds, now),
        names,
        images,
        s(format_label_selector(at(ds, &["spec", "selector"]))),
    ]
}

pub(super) const STATEFUL_SET: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready pods out of desired pods."),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub(super) fn stateful_set(sts: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(template_containers(sts, &["spec", "template"]));
    vec![
        name(sts),
        s(format!(
            "{}/{}",
            int_at(sts, &["status", "readyReplicas"]),
            desired_replicas(sts)
        )),
        age(sts, now),
        names,
        images,
    ]
}

pub(super) const JOB: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "Running, Complete, Failed, Suspended, FailureTarget or Terminating.",
    ),
    col(
        "Completions",
        "string",
        "Succeeded pods out of the completions wanted.",
    ),
    col(
        "Duration",
        "string",
        "How long the job ran (or has been running).",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn job(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(job, &["spec", "parallelism"]).unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_at(job, &["status", "startTime"]),
        time_at(job, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => human_signed(end.duration_since(start)),
    };
    let cond = |t: &str| condition_true(job, &["status", "conditions"], t);
    let status = if cond("Complete") {
        "Complete"
    } else if cond("Failed") {
        "Failed"
    } else if present(job, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else if cond("Suspended") {
        "Suspended"
    } else if cond("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(template_containers(job, &["spec", "template"]));
    vec![
        name(job),
        s(status),
        s(completions),
        s(duration),
        age(job, now),
        names,
        images,
        s(format_label_selector(at(job, &["spec", "selector"]))),
    ]
}

pub(super) const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "string", "The cron schedule."),
    col(
        "Timezone",
        "string",
        "The time zone the schedule is read in.",
    ),
    col("Suspend", "boolean", "Whether new runs are held back."),
    col("Active", "integer", "Number of jobs running now."),
    col(
        "Last Schedule",
        "string",
        "How long ago a job was last scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn cron_job(cj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = if present(cj, &["status", "lastScheduleTime"]) {
        since(time_at(cj, &["status", "lastScheduleTime"]), now)
    } else {
        "<none>".to_owned()
    };
    // Kubernetes prints this pointer-to-bool as text, despite the column type.
    let suspend = match opt_bool(cj, &["spec", "suspend"]) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let template = ["spec", "jobTemplate", "spec", "template"];
    let (names, images) = container_cells(template_containers(cj, &template));
    vec![
        name(cj),
        s(str_at(cj, &["spec", "schedule"])),
        s(opt_str(cj, &["spec", "timeZone"]).unwrap_or("<none>")),
        s(suspend),
        n(len_at(cj, &["status", "active"]) as i64),
        s(last_schedule),
        age(cj, now),
        names,
        images,
        s(format_label_selector(at(
            cj,
            &["spec", "jobTemplate", "spec", "selector"],
        ))),
    ]
}

pub(super) const HORIZONTAL_POD_AUTOSCALER: &[Column] = &[
    NAME,
    col("Reference", "string", "The scaled object, as Kind/name."),
    col(
        "Targets",
        "string",
        "Current/target value of up to two metrics.",
    ),
    col("MinPods", "string", "The lower replica bound."),
    col("MaxPods", "string", "The upper replica bound."),
    col("Replicas", "string", "The current number of replicas."),
    AGE,
];

/// A quantity inside an HPA metric; Go prints a nil `*Quantity` as `<nil>`.
fn metric_quantity(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<nil>".to_owned(),
        v => quantity(v),
    }
}

/// One metric's `current/target`, as kubectl's TARGETS column shows it.
fn format_metric(spec: &Value, status: Option<&Value>) -> String {
    // `status` is the entry at the same index of status.currentMetrics,
    // used only when it carries the matching source.
    let source_of = |key: &str| {
        status
            .and_then(|st| at(st, &[key]))
            .filter(|v| !v.is_null())
    };
    let unknown = || "<unknown>".to_owned();
    match str_at(spec, &["type"]) {
        kind @ ("External" | "Object") => {
            let key = if kind == "External" {
                "external"
            } else {
                "object"
            };
            let target = at(spec, &[key, "target"]);
            let current = source_of(key);
            match target
                .and_then(|t| at(t, &["averageValue"]))
                .filter(|v| !v.is_null())
            {
                Some(avg) => {
                    let cur = current
                        .and_then(|c| at(c, &["current", "averageValue"]))
                        .filter(|v| !v.is_null())
                        .map(|q| quantity(Some(q)))
                        .unwrap_or_else(unknown);
                    format!("{cur}/{} (avg)", quantity(Some(avg)))
                }
                None => {
                    let cur = current
                        .map(|c| metric_quantity(at(c, &["current", "value"])))
                        .unwrap_or_else(unknown);
                    format!(
                        "{cur}/{}",
                        metric_quantity(target.and_then(|t| at(t, &["value"])))
                    )
                }
            }
        }
        "Pods" => {
            let cur = source_of("pods")
                .map(|c| metric_quantity(at(c, &["current", "averageValue"])))
                .unwrap_or_else(unknown);
            format!(
                "{cur}/{}",
                metric_quantity(at(spec, &["pods", "target", "averageValue"]))
            )
        }
        kind @ ("Resource" | "ContainerResource") => {
            let key = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let resource = str_at(spec, &[key, "name"]);
            let target = at(spec, &[key, "target"]);
            let current = source_of(key);
            match target
                .and_then(|t| at(t, &["averageValue"]))
                .filter(|v| !v.is_null())
            {
                Some(avg) => {
                    let cur = current
                        .map(|c| metric_quantity(at(c, &["current", "averageValue"])))
                        .unwrap_or_else(unknown);
                    format!("{resource}: {cur}/{}", quantity(Some(avg)))
                }
                None => {
                    let cur = current
                        .and_then(|c| opt_int(c, &["current", "averageUtilization"]))
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(unknown);
                    let tgt = target
                        .and_then(|t| opt_int(t, &["averageUtilization"]))
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<auto>".to_owned());
                    format!("{resource}: {cur}/{tgt}")
                }
            }
        }
        _ => "<unknown type>".to_owned(),
    }
}

fn format_hpa_metrics(hpa: &Value) -> String {
    const MAX: usize = 2;
    let specs = arr_at(hpa, &["spec", "metrics"]);
    if specs.is_empty() {
        return "<none>".to_owned();
    }
    let statuses = arr_at(hpa, &["status", "currentMetrics"]);
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| format_metric(spec, statuses.get(i)))
        .collect();
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
    }
}

pub(super) fn horizontal_pod_autoscaler(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(hpa, &["spec", "scaleTargetRef", "kind"]),
        str_at(hpa, &["spec", "scaleTargetRef", "name"])
    );
    let min_pods = opt_int(hpa, &["spec", "minReplicas"])
        .map(|m| m.to_string())
        .unwrap_or_else(|| "<unset>".to_owned());
    vec![
        name(hpa),
        s(reference),
        s(format_hpa_metrics(hpa)),
        s(min_pods),
        n(int_at(hpa, &["spec", "maxReplicas"])),
        n(int_at(hpa, &["status", "currentReplicas"])),
        age(hpa, now),
    ]
}

pub(super) const POD_DISRUPTION_BUDGET: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "Pods that must stay available, if set.",
    ),
    col(
        "Max Unavailable",
        "string",
        "Pods that may be unavailable, if set.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Pods that may be evicted right now.",
    ),
    AGE,
];

pub(super) fn pod_disruption_budget(pdb: &Value, now: Timestamp) -> Vec<Value> {
    let bound = |field: &str| match at(pdb, &["spec", field]) {
        None | Some(Value::Null) => "N/A".to_owned(),
        Some(v) => int_or_string(v),
    };
    vec![
        name(pdb),
        s(bound("minAvailable")),
        s(bound("maxUnavailable")),
        n(int_at(pdb, &["status", "disruptionsAllowed"])),
        age(pdb, now),
    ]
}
