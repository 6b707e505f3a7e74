//! Server-side table printing (`meta.k8s.io/v1` `Table`).
//!
//! `kubectl get` asks the API server for a `Table`
//! (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`) and prints its
//! columns and cells verbatim, so what users see in `kubectl get pods` is
//! decided here. The columns and the way each cell is computed follow
//! Kubernetes' own printers (`pkg/printers/internalversion`) kind by kind, so
//! Skiff's output is indistinguishable from a real cluster's.
//!
//! As in Kubernetes, the server always produces every column, including the
//! wide ones (priority 1); kubectl hides those unless run with `-o wide`.
//! Kinds without a dedicated printer (Role, ClusterRole, LimitRange, custom
//! kinds, ...) get Kubernetes' default table: `Name` and `Created At`.
//!
//! Everything here is a pure function of the object and the current time.
//! Objects may be partial: a missing field prints the way Kubernetes prints
//! the Go zero value (`<none>`, `<unknown>`, `0`, or an empty cell); nothing
//! panics.

mod core_v1;
mod misc;
mod util;
mod workloads;

#[cfg(test)]
mod tests;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

/// One column of a table, as sent in `Table.columnDefinitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header text; kubectl prints it upper-cased (`Nominated Node` becomes
    /// `NOMINATED NODE`).
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`...
    pub type_: &'static str,
    /// `name` for the column holding the object's name, empty otherwise.
    pub format: &'static str,
    /// What the column shows, for clients that display it.
    pub description: &'static str,
    /// 0: shown by default; 1: shown only with `-o wide`.
    pub priority: i32,
}

/// A default-priority column.
const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A column kubectl shows only with `-o wide`.
const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, type_, description)
    }
}

/// The NAME column every printer starts with.
const NAME: Column = Column {
    format: "name",
    ..col(
        "Name",
        "string",
        "The object's name, unique among objects of its kind in its namespace (or in the cluster for cluster-scoped kinds).",
    )
};

/// The AGE column: time since the object was created.
const AGE: Column = col(
    "Age",
    "string",
    "How long ago the object was created (from metadata.creationTimestamp).",
);

/// The columns of Kubernetes' default table, for kinds without a printer.
const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Created At",
        "date",
        "When the object was created (metadata.creationTimestamp), RFC 3339 in UTC.",
    ),
];

type CellsFn = fn(&Value, Timestamp) -> Vec<Value>;

/// The printer for a group and kind, if Kubernetes has one. The API version
/// does not matter: Kubernetes prints every version of a kind the same way.
fn printer(group: &str, kind: &str) -> Option<(&'static [Column], CellsFn)> {
    use self::core_v1 as c;
    use self::misc as m;
    use self::workloads as w;
    let p: (&'static [Column], CellsFn) = match (group, kind) {
        ("", "Pod") => (c::POD, c::pod),
        ("", "Service") => (c::SERVICE, c::service),
        ("", "Endpoints") => (c::ENDPOINTS, c::endpoints),
        ("", "Node") => (c::NODE, c::node),
        ("", "Namespace") => (c::NAMESPACE, c::namespace),
        ("", "ConfigMap") => (c::CONFIG_MAP, c::config_map),
        ("", "Secret") => (c::SECRET, c::secret),
        ("", "Event") => (c::EVENT, c::event),
        ("", "ReplicationController") => (c::REPLICATION_CONTROLLER, c::replication_controller),
        ("", "ServiceAccount") => (c::SERVICE_ACCOUNT, c::service_account),
        ("", "PersistentVolume") => (c::PERSISTENT_VOLUME, c::persistent_volume),
        ("", "PersistentVolumeClaim") => (c::PERSISTENT_VOLUME_CLAIM, c::persistent_volume_claim),
        ("", "ResourceQuota") => (c::RESOURCE_QUOTA, c::resource_quota),
        ("apps", "Deployment") => (w::DEPLOYMENT, w::deployment),
        ("apps", "ReplicaSet") => (w::REPLICA_SET, w::replica_set),
        ("apps", "DaemonSet") => (w::DAEMON_SET, w::daemon_set),
        ("apps", "StatefulSet") => (w::STATEFUL_SET, w::stateful_set),
        ("batch", "Job") => (w::JOB, w::job),
        ("batch", "CronJob") => (w::CRON_JOB, w::cron_job),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            (w::HORIZONTAL_POD_AUTOSCALER, w::horizontal_pod_autoscaler)
        }
        ("policy", "PodDisruptionBudget") => (w::POD_DISRUPTION_BUDGET, w::pod_disruption_budget),
        ("coordination.k8s.io", "Lease") => (m::LEASE, m::lease),
        ("discovery.k8s.io", "EndpointSlice") => (m::ENDPOINT_SLICE, m::endpoint_slice),
        ("networking.k8s.io", "NetworkPolicy") => (m::NETWORK_POLICY, m::network_policy),
        ("networking.k8s.io", "Ingress") => (m::INGRESS, m::ingress),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            (m::ROLE_BINDING, m::role_binding)
        }
        // Role, ClusterRole, LimitRange and everything else: no printer in
        // Kubernetes either, so they get the default table.
        _ => return None,
    };
    Some(p)
}

/// The columns for a kind, e.g. `("", "Pod")` or `("apps", "Deployment")`,
/// wide ones included. Kinds without a printer get `Name`, `Created At`.
pub fn columns(group: &str, kind: &str) -> &'static [Column] {
    printer(group, kind).map_or(DEFAULT_COLUMNS, |(columns, _)| columns)
}

/// One row's cells for `obj` (a JSON object of that kind), in the order of
/// [`columns`], one cell per column. `now` is the reference for AGE-like
/// cells, so results are reproducible.
pub fn cells(group: &str, kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    match printer(group, kind) {
        Some((_, cells)) => cells(obj, now),
        None => default_cells(obj),
    }
}

/// Kubernetes' short human duration (`5s`, `3m20s`, `2d3h`, `4y`), exactly
/// apimachinery's `duration.HumanDuration`, as used by AGE and similar
/// columns. (An unset timestamp prints as `<unknown>` before this is called.)
pub fn human_duration(d: std::time::Duration) -> String {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    util::human_signed(d)
}

/// Builds a whole `Table` for a list (or single object) response.
///
/// * `resource_version` goes to `metadata.resourceVersion` (omitted if empty).
/// * `include_columns` false leaves `columnDefinitions` empty, as Kubernetes
///   does for every watch event after the first.
/// * `include_object` is the `includeObject` query parameter: `None` (no
///   object in rows), `Object` (the full object) or, by default, `Metadata`
///   (a `PartialObjectMetadata` carrying the object's metadata).
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    resource_version: &str,
    include_columns: bool,
    include_object: &str,
    now: Timestamp,
) -> Value {
    let columns: Vec<Value> = if include_columns {
        columns(group, kind)
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells(group, kind, obj, now)));
            let conditions = match (group, kind) {
                ("", "Pod") => core_v1::pod_row_conditions(obj),
                _ => None,
            };
            if let Some(conditions) = conditions {
                row.insert("conditions".into(), conditions);
            }
            match include_object {
                "None" => {}
                "Object" => {
                    row.insert("object".into(), obj.clone());
                }
                _ => {
                    let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
                    row.insert(
                        "object".into(),
                        json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": metadata,
                        }),
                    );
                }
            }
            Value::Object(row)
        })
        .collect();
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), json!(resource_version));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The default table's cells: the name, and the creation time as RFC 3339
/// in UTC with whole seconds (Go's zero time when unset).
fn default_cells(obj: &Value) -> Vec<Value> {
    let created = util::time_at(obj, &["metadata", "creationTimestamp"])
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned());
    vec![
        util::s(util::str_at(obj, &["metadata", "name"])),
        util::s(created),
    ]
}
