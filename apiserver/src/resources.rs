//! The table of every kind the API server serves.
//!
//! One generic registry serves them all: a new kind is one entry here plus its strategy (see
//! `strategy`) and printer (see `printers`). Discovery, OpenAPI, routing and storage keys are all
//! derived from this table, so they cannot disagree.

/// A subresource the API serves below an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: writes touch only `.status`; the main resource ignores `.status`.
    Status,
    /// `/scale`: an `autoscaling/v1` `Scale` view of `.spec.replicas`.
    Scale,
    /// `pods/binding`: assigns a pod to a node.
    Binding,
    /// `pods/eviction`: a `policy/v1` `Eviction` that deletes the pod.
    Eviction,
    /// `pods/log`, `pods/exec` (proxied to the node's kubelet, `http::node_proxy`),
    /// `pods/portforward`, `pods/attach` (advertised, not served yet).
    Log,
    Exec,
    PortForward,
    Attach,
    /// `serviceaccounts/token`: advertised for completeness only.
    Token,
}

impl Subresource {
    /// The path segment and discovery name suffix.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::PortForward => "portforward",
            Subresource::Attach => "attach",
            Subresource::Token => "token",
        }
    }

    /// The verbs discovery lists for the subresource.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Subresource::Status | Subresource::Scale => &["get", "patch", "update"],
            Subresource::Binding | Subresource::Eviction | Subresource::Token => &["create"],
            Subresource::Log => &["get"],
            Subresource::Exec | Subresource::PortForward | Subresource::Attach => {
                &["create", "get"]
            }
        }
    }

    /// Group, version and kind of the subresource's body, when it differs from the parent.
    pub fn body_gvk(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Subresource::Scale => Some(("autoscaling", "v1", "Scale")),
            Subresource::Binding => Some(("", "v1", "Binding")),
            Subresource::Eviction => Some(("policy", "v1", "Eviction")),
            Subresource::Token => Some(("authentication.k8s.io", "v1", "TokenRequest")),
            Subresource::Exec => Some(("", "v1", "PodExecOptions")),
            Subresource::PortForward => Some(("", "v1", "PodPortForwardOptions")),
            Subresource::Attach => Some(("", "v1", "PodAttachOptions")),
            Subresource::Status | Subresource::Log => None,
        }
    }
}

/// One served resource: everything routing, discovery and storage need to know about a kind.
#[derive(Debug)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    /// Plural lower-case name used in URLs and storage keys, e.g. `deployments`.
    pub resource: &'static str,
    pub kind: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Whether `metadata.generation` tracks spec changes (workload kinds).
    pub tracks_generation: bool,
    /// Whether a PUT of a missing object creates it (Kubernetes' AllowCreateOnUpdate).
    pub create_on_update: bool,
}

impl ResourceType {
    /// `apiVersion` as objects carry it: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` or `pods`: the group-qualified resource used in error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Whether the kind has a status subresource, i.e. spec and status are written separately.
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&Subresource::Status)
    }

    /// The subresource named `name`, if this kind serves it.
    pub fn subresource(&self, name: &str) -> Option<Subresource> {
        self.subresources.iter().copied().find(|s| s.name() == name)
    }

    /// Storage prefix of all objects of this resource, ending in `/`.
    pub fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/registry/{}/", self.resource)
        } else {
            format!("/registry/{}/{}/", self.group, self.resource)
        }
    }

    /// Storage prefix of the objects in one namespace (or of all, for cluster-scoped kinds).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.prefix()),
            _ => format!("{}{name}", self.prefix()),
        }
    }

    /// The verbs discovery lists for the main resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

use Subresource::*;

macro_rules! resource {
    ($group:expr, $version:expr, $resource:expr, $kind:expr, $singular:expr, namespaced: $ns:expr,
     short: [$($short:expr),*], categories: [$($cat:expr),*], sub: [$($sub:expr),*],
     generation: $generation:expr, create_on_update: $cou:expr) => {
        ResourceType {
            group: $group,
            version: $version,
            resource: $resource,
            kind: $kind,
            singular: $singular,
            namespaced: $ns,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            tracks_generation: $generation,
            create_on_update: $cou,
        }
    };
}

/// Every resource served, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    // core/v1
    resource!("", "v1", "pods", "Pod", "pod", namespaced: true, short: ["po"], categories: ["all"],
        sub: [Status, Binding, Eviction, Log, Exec, PortForward, Attach], generation: false, create_on_update: false),
    resource!("", "v1", "services", "Service", "service", namespaced: true, short: ["svc"], categories: ["all"],
        sub: [Status], generation: false, create_on_update: false),
    resource!("", "v1", "endpoints", "Endpoints", "endpoints", namespaced: true, short: ["ep"], categories: [],
        sub: [], generation: false, create_on_update: true),
    resource!("", "v1", "nodes", "Node", "node", namespaced: false, short: ["no"], categories: [],
        sub: [Status], generation: false, create_on_update: false),
    resource!("", "v1", "namespaces", "Namespace", "namespace", namespaced: false, short: ["ns"], categories: [],
        sub: [Status], generation: false, create_on_update: false),
    resource!("", "v1", "configmaps", "ConfigMap", "configmap", namespaced: true, short: ["cm"], categories: [],
        sub: [], generation: false, create_on_update: false),
    resource!("", "v1", "secrets", "Secret", "secret", namespaced: true, short: [], categories: [],
        sub: [], generation: false, create_on_update: false),
    resource!("", "v1", "events", "Event", "event", namespaced: true, short: ["ev"], categories: [],
        sub: [], generation: false, create_on_update: true),
    resource!("", "v1", "replicationcontrollers", "ReplicationController", "replicationcontroller", namespaced: true,
        short: ["rc"], categories: ["all"], sub: [Status, Scale], generation: true, create_on_update: false),
    resource!("", "v1", "serviceaccounts", "ServiceAccount", "serviceaccount", namespaced: true, short: ["sa"],
        categories: [], sub: [Token], generation: false, create_on_update: false),
    resource!("", "v1", "persistentvolumes", "PersistentVolume", "persistentvolume", namespaced: false, short: ["pv"],
        categories: [], sub: [Status], generation: false, create_on_update: false),
    resource!("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", "persistentvolumeclaim", namespaced: true,
        short: ["pvc"], categories: [], sub: [Status], generation: false, create_on_update: false),
    resource!("", "v1", "limitranges", "LimitRange", "limitrange", namespaced: true, short: ["limits"], categories: [],
        sub: [], generation: false, create_on_update: false),
    resource!("", "v1", "resourcequotas", "ResourceQuota", "resourcequota", namespaced: true, short: ["quota"],
        categories: [], sub: [Status], generation: false, create_on_update: false),
    // apps/v1
    resource!("apps", "v1", "deployments", "Deployment", "deployment", namespaced: true, short: ["deploy"],
        categories: ["all"], sub: [Status, Scale], generation: true, create_on_update: false),
    resource!("apps", "v1", "replicasets", "ReplicaSet", "replicaset", namespaced: true, short: ["rs"],
        categories: ["all"], sub: [Status, Scale], generation: true, create_on_update: false),
    resource!("apps", "v1", "daemonsets", "DaemonSet", "daemonset", namespaced: true, short: ["ds"],
        categories: ["all"], sub: [Status], generation: true, create_on_update: false),
    resource!("apps", "v1", "statefulsets", "StatefulSet", "statefulset", namespaced: true, short: ["sts"],
        categories: ["all"], sub: [Status, Scale], generation: true, create_on_update: false),
    // batch/v1
    resource!("batch", "v1", "jobs", "Job", "job", namespaced: true, short: [], categories: ["all"],
        sub: [Status], generation: true, create_on_update: false),
    resource!("batch", "v1", "cronjobs", "CronJob", "cronjob", namespaced: true, short: ["cj"], categories: ["all"],
        sub: [Status], generation: true, create_on_update: false),
    // autoscaling/v2
    resource!("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", "horizontalpodautoscaler",
        namespaced: true, short: ["hpa"], categories: ["all"], sub: [Status], generation: true, create_on_update: false),
    // coordination.k8s.io/v1
    resource!("coordination.k8s.io", "v1", "leases", "Lease", "lease", namespaced: true, short: [], categories: [],
        sub: [], generation: false, create_on_update: false),
    // discovery.k8s.io/v1
    resource!("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", "endpointslice", namespaced: true,
        short: [], categories: [], sub: [], generation: true, create_on_update: false),
    // networking.k8s.io/v1
    resource!("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", "networkpolicy", namespaced: true,
        short: ["netpol"], categories: [], sub: [], generation: true, create_on_update: false),
    resource!("networking.k8s.io", "v1", "ingresses", "Ingress", "ingress", namespaced: true, short: ["ing"],
        categories: [], sub: [Status], generation: true, create_on_update: false),
    // policy/v1
    resource!("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", "poddisruptionbudget", namespaced: true,
        short: ["pdb"], categories: [], sub: [Status], generation: true, create_on_update: false),
    // rbac.authorization.k8s.io/v1
    resource!("rbac.authorization.k8s.io", "v1", "roles", "Role", "role", namespaced: true, short: [], categories: [],
        sub: [], generation: false, create_on_update: true),
    resource!("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", "rolebinding", namespaced: true,
        short: [], categories: [], sub: [], generation: false, create_on_update: true),
    resource!("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", "clusterrole", namespaced: false,
        short: [], categories: [], sub: [], generation: false, create_on_update: true),
    resource!("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", "clusterrolebinding",
        namespaced: false, short: [], categories: [], sub: [], generation: false, create_on_update: true),
];

/// The resource served at `group`/`version`/`resource`.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// The resource of a kind, e.g. for objects named by `apiVersion` and `kind`.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// The group-versions served, in discovery order, with the core group first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Splits an `apiVersion` into group and version (`v1` → ("", "v1")).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_share_prefixes_across_resources() {
        for a in RESOURCES {
            for b in RESOURCES {
                if std::ptr::eq(a, b) {
                    continue;
                }
                assert!(
                    !b.prefix().starts_with(&a.prefix()),
                    "{} is inside {}",
                    b.prefix(),
                    a.prefix()
                );
            }
        }
    }

    #[test]
    fn lookup_finds_core_and_group_resources() {
        assert_eq!(lookup("", "v1", "pods").unwrap().kind, "Pod");
        assert_eq!(
            lookup("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
        assert!(lookup("apps", "v1", "pods").is_none());
        assert_eq!(
            lookup("apps", "v1", "deployments")
                .unwrap()
                .key(Some("default"), "web"),
            "/registry/apps/deployments/default/web"
        );
        assert_eq!(
            lookup("", "v1", "nodes").unwrap().key(None, "n1"),
            "/registry/nodes/n1"
        );
    }
}
