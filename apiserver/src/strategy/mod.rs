//! Per-kind strategies: decoding, defaulting and validation of request bodies.
//!
//! kube-apiserver runs every body through the same pipeline — decode into the typed object
//! (rejecting wrong JSON types, reporting unknown fields), apply the version's defaults, then
//! validate (and, on update, check immutability against the stored object). Clients such as
//! `kubectl` rely on the exact defaults and on the field paths and reasons of the errors, so each
//! kind here follows Kubernetes' own rules. Everything is a pure function over `serde_json::Value`
//! so the registry can call it from any request path (create, update, patch, apply).

mod apps;
mod batch;
mod core;
mod decode;
mod fields;
mod meta;
mod networking;
mod other;
mod pod;
pub mod quantity;
mod rbac;
mod service;
mod storage;

#[cfg(test)]
mod tests;

use k8s_openapi::api::{
    apps::v1 as apps_v1, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2,
    batch::v1 as batch_v1, coordination::v1 as coordination_v1, core::v1 as core_v1,
    discovery::v1 as discovery_v1, networking::v1 as networking_v1, policy::v1 as policy_v1,
    rbac::v1 as rbac_v1,
};
use serde_json::Value;

use crate::error::Cause;
use decode::decode_as;

/// The result of decoding a request body for a kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The body after a typed round trip: unknown fields dropped, types normalized,
    /// `apiVersion`/`kind` kept as sent (or filled in when absent).
    pub object: Value,
    /// Paths of the fields the kind does not know, e.g. `spec.containers[0].imagePullPolcy`;
    /// the API answers 400 for them under `fieldValidation=Strict` and drops them otherwise.
    pub unknown_fields: Vec<String>,
}

/// Per-kind behaviour; all functions are pure.
pub struct KindStrategy {
    /// Checks the body against the kind's k8s-openapi type. A wrong JSON type is an
    /// `Err(message)` naming the field path (the API answers 400 BadRequest).
    pub decode: fn(Value) -> Result<Decoded, String>,
    /// Kubernetes' defaulting for the kind; runs on create and update, on the whole object.
    pub default: fn(&mut Value),
    /// Validation of a new object (metadata name rules + spec rules); empty = valid.
    pub validate: fn(&Value) -> Vec<Cause>,
    /// Validation of an update: `validate` plus the kind's immutability rules.
    pub validate_update: fn(new: &Value, old: &Value) -> Vec<Cause>,
}

/// Builds a `KindStrategy` static from a k8s-openapi type and the kind's functions.
macro_rules! strategy {
    ($name:ident, $ty:ty, $default:path, $validate:path, $update:path) => {
        static $name: KindStrategy = KindStrategy {
            decode: decode_as::<$ty>,
            default: $default,
            validate: $validate,
            validate_update: $update,
        };
    };
}

fn no_defaults(_: &mut Value) {}

strategy!(
    POD,
    core_v1::Pod,
    pod::default_pod,
    pod::validate_pod,
    pod::validate_pod_update
);
strategy!(
    SERVICE,
    core_v1::Service,
    service::default_service,
    service::validate_service,
    service::validate_service_update
);
strategy!(
    ENDPOINTS,
    core_v1::Endpoints,
    service::default_endpoints,
    service::validate_endpoints,
    service::validate_endpoints_update
);
strategy!(
    NODE,
    core_v1::Node,
    core::default_node,
    core::validate_node,
    core::validate_node_update
);
strategy!(
    NAMESPACE,
    core_v1::Namespace,
    core::default_namespace,
    core::validate_namespace,
    core::validate_namespace_update
);
strategy!(
    CONFIG_MAP,
    core_v1::ConfigMap,
    no_defaults,
    core::validate_config_map,
    core::validate_config_map_update
);
strategy!(
    SECRET,
    core_v1::Secret,
    core::default_secret,
    core::validate_secret,
    core::validate_secret_update
);
strategy!(
    EVENT,
    core_v1::Event,
    no_defaults,
    core::validate_event,
    core::validate_event_update
);
strategy!(
    REPLICATION_CONTROLLER,
    core_v1::ReplicationController,
    apps::default_replication_controller,
    apps::validate_replication_controller,
    apps::validate_replication_controller_update
);
strategy!(
    SERVICE_ACCOUNT,
    core_v1::ServiceAccount,
    no_defaults,
    core::validate_service_account,
    core::validate_service_account_update
);
strategy!(
    PERSISTENT_VOLUME,
    core_v1::PersistentVolume,
    storage::default_persistent_volume,
    storage::validate_persistent_volume,
    storage::validate_persistent_volume_update
);
strategy!(
    PERSISTENT_VOLUME_CLAIM,
    core_v1::PersistentVolumeClaim,
    storage::default_persistent_volume_claim,
    storage::validate_persistent_volume_claim,
    storage::validate_persistent_volume_claim_update
);
strategy!(
    LIMIT_RANGE,
    core_v1::LimitRange,
    core::default_limit_range,
    core::validate_limit_range,
    core::validate_limit_range_update
);
strategy!(
    RESOURCE_QUOTA,
    core_v1::ResourceQuota,
    no_defaults,
    core::validate_resource_quota,
    core::validate_resource_quota_update
);
strategy!(
    BINDING,
    core_v1::Binding,
    no_defaults,
    core::validate_binding,
    core::validate_binding_update
);
strategy!(
    DEPLOYMENT,
    apps_v1::Deployment,
    apps::default_deployment,
    apps::validate_deployment,
    apps::validate_deployment_update
);
strategy!(
    REPLICA_SET,
    apps_v1::ReplicaSet,
    apps::default_replica_set,
    apps::validate_replica_set,
    apps::validate_replica_set_update
);
strategy!(
    DAEMON_SET,
    apps_v1::DaemonSet,
    apps::default_daemon_set,
    apps::validate_daemon_set,
    apps::validate_daemon_set_update
);
strategy!(
    STATEFUL_SET,
    apps_v1::StatefulSet,
    apps::default_stateful_set,
    apps::validate_stateful_set,
    apps::validate_stateful_set_update
);
strategy!(
    JOB,
    batch_v1::Job,
    batch::default_job,
    batch::validate_job,
    batch::validate_job_update
);
strategy!(
    CRON_JOB,
    batch_v1::CronJob,
    batch::default_cron_job,
    batch::validate_cron_job,
    batch::validate_cron_job_update
);
strategy!(
    LEASE,
    coordination_v1::Lease,
    no_defaults,
    other::validate_lease,
    other::validate_lease_update
);
strategy!(
    ENDPOINT_SLICE,
    discovery_v1::EndpointSlice,
    service::default_endpoint_slice,
    service::validate_endpoint_slice,
    service::validate_endpoint_slice_update
);
strategy!(
    NETWORK_POLICY,
    networking_v1::NetworkPolicy,
    networking::default_network_policy,
    networking::validate_network_policy,
    networking::validate_network_policy_update
);
strategy!(
    INGRESS,
    networking_v1::Ingress,
    no_defaults,
    networking::validate_ingress,
    networking::validate_ingress_update
);
strategy!(
    ROLE,
    rbac_v1::Role,
    no_defaults,
    rbac::validate_role,
    rbac::validate_role_update
);
strategy!(
    CLUSTER_ROLE,
    rbac_v1::ClusterRole,
    no_defaults,
    rbac::validate_cluster_role,
    rbac::validate_cluster_role_update
);
strategy!(
    ROLE_BINDING,
    rbac_v1::RoleBinding,
    rbac::default_role_binding,
    rbac::validate_role_binding,
    rbac::validate_role_binding_update
);
strategy!(
    CLUSTER_ROLE_BINDING,
    rbac_v1::ClusterRoleBinding,
    rbac::default_role_binding,
    rbac::validate_cluster_role_binding,
    rbac::validate_cluster_role_binding_update
);
strategy!(
    HPA,
    autoscaling_v2::HorizontalPodAutoscaler,
    other::default_hpa,
    other::validate_hpa,
    other::validate_hpa_update
);
strategy!(
    SCALE,
    autoscaling_v1::Scale,
    no_defaults,
    other::validate_scale,
    other::validate_scale_update
);
strategy!(
    PDB,
    policy_v1::PodDisruptionBudget,
    no_defaults,
    other::validate_pdb,
    other::validate_pdb_update
);
strategy!(
    EVICTION,
    policy_v1::Eviction,
    no_defaults,
    other::validate_eviction,
    other::validate_eviction_update
);

/// The fallback for kinds without a dedicated strategy: the body is kept as is (no typed
/// round trip), nothing is defaulted, and only `metadata` is validated.
static GENERIC: KindStrategy = KindStrategy {
    decode: decode::decode_untyped,
    default: no_defaults,
    validate: other::validate_generic,
    validate_update: other::validate_generic_update,
};

/// Server settings that pod admission defaulting depends on (kube-apiserver's admission
/// plugin flags), kept apart from [`KindStrategy::default`] because those are pure functions of
/// the object alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// `tolerationSeconds` of the default not-ready/unreachable tolerations of pods
    /// (`--default-toleration-seconds`).
    pub default_toleration_seconds: i64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            default_toleration_seconds: 300,
        }
    }
}

/// Admission-time defaults of a create or main-resource update, after the kind's defaults:
/// so far DefaultTolerationSeconds on Pods.
pub fn admit(group: &str, kind: &str, obj: &mut Value, admission: &Admission) {
    if group.is_empty() && kind == "Pod" {
        pod::default_toleration_seconds(obj, admission.default_toleration_seconds);
    }
}

/// The strategy for a kind in an API group (`""` for core), e.g. `strategy_for("apps", "Deployment")`.
///
/// Unknown kinds get a permissive strategy (metadata checks only) so that the caller never has
/// to special-case them.
pub fn strategy_for(group: &str, kind: &str) -> &'static KindStrategy {
    match (group, kind) {
        ("", "Pod") => &POD,
        ("", "Service") => &SERVICE,
        ("", "Endpoints") => &ENDPOINTS,
        ("", "Node") => &NODE,
        ("", "Namespace") => &NAMESPACE,
        ("", "ConfigMap") => &CONFIG_MAP,
        ("", "Secret") => &SECRET,
        ("", "Event") => &EVENT,
        ("", "ReplicationController") => &REPLICATION_CONTROLLER,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "PersistentVolume") => &PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => &PERSISTENT_VOLUME_CLAIM,
        ("", "LimitRange") => &LIMIT_RANGE,
        ("", "ResourceQuota") => &RESOURCE_QUOTA,
        ("", "Binding") => &BINDING,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet") => &REPLICA_SET,
        ("apps", "DaemonSet") => &DAEMON_SET,
        ("apps", "StatefulSet") => &STATEFUL_SET,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        ("coordination.k8s.io", "Lease") => &LEASE,
        ("discovery.k8s.io", "EndpointSlice") => &ENDPOINT_SLICE,
        ("networking.k8s.io", "NetworkPolicy") => &NETWORK_POLICY,
        ("networking.k8s.io", "Ingress") => &INGRESS,
        ("rbac.authorization.k8s.io", "Role") => &ROLE,
        ("rbac.authorization.k8s.io", "RoleBinding") => &ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRole") => &CLUSTER_ROLE,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &CLUSTER_ROLE_BINDING,
        ("autoscaling", "HorizontalPodAutoscaler") => &HPA,
        ("autoscaling", "Scale") => &SCALE,
        ("policy", "PodDisruptionBudget") => &PDB,
        ("policy", "Eviction") => &EVICTION,
        _ => &GENERIC,
    }
}

/// Every `(group, kind)` with a dedicated strategy, for callers that want to list or test them.
pub const KINDS: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "Service"),
    ("", "Endpoints"),
    ("", "Node"),
    ("", "Namespace"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "Event"),
    ("", "ReplicationController"),
    ("", "ServiceAccount"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("", "Binding"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "DaemonSet"),
    ("apps", "StatefulSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("coordination.k8s.io", "Lease"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("networking.k8s.io", "Ingress"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("autoscaling", "Scale"),
    ("policy", "PodDisruptionBudget"),
    ("policy", "Eviction"),
];
