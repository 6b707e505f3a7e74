//! A compact table of how the built-in Kubernetes types merge.
//!
//! Strategic merge patch and server-side apply both need to know, for a field, whether a list is
//! merged by key, merged as a set of primitives, or replaced as a whole, and which type its
//! elements (or the nested object) have. Kubernetes reads this from the Go struct tags
//! (`patchStrategy`, `patchMergeKey`) and the `+listType`/`+listMapKey` markers of
//! `k8s.io/api`; this module restates only the fields that matter — every field that is a merge
//! list, plus the object fields that lead to one. Anything not listed behaves as Kubernetes does
//! for a field without tags: objects merge key by key, lists are atomic (replaced whole).
//!
//! Facts checked against `staging/src/k8s.io/api/{core,apps,batch}/v1/types.go` and
//! `apimachinery/pkg/apis/meta/v1/types.go`. Notable non-merge lists: Node `spec.taints`,
//! Endpoints `subsets`, Pod `status.containerStatuses`, Namespace `spec.finalizers`, container
//! `args`/`command`, tolerations — all replaced wholesale.

/// How strategic merge patch treats a list field (the Go `patchStrategy` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpList {
    /// No strategy: the patch's list replaces the original (also for non-list fields).
    Replace,
    /// `patchStrategy:"merge"` on a list of primitives: union, `$deleteFromPrimitiveList` removes.
    MergePrimitives,
    /// `patchStrategy:"merge"` with `patchMergeKey`: items are matched by this key.
    MergeByKey(&'static str),
}

/// How server-side apply treats a list field (the `+listType` marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsaList {
    /// `listType=atomic` (the default for built-in lists): owned and replaced as one value.
    Atomic,
    /// `listType=set`: primitives owned one by one (`v:` path elements).
    Set,
    /// `listType=map`: items owned one by one, identified by these key fields (`k:` elements).
    Map(&'static [MapKey]),
}

/// One `listMapKey` and the default the API server would fill in when an item omits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapKey {
    /// JSON name of the key field.
    pub name: &'static str,
    /// Default string value (e.g. `protocol` defaults to `TCP`); `None` when there is none.
    pub default: Option<&'static str>,
}

/// Merge behaviour of one field and the type of its value (or of its list items).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub smp: SmpList,
    pub ssa: SsaList,
    /// The object type of the value (for lists: of each item), when it has interesting fields.
    pub ty: Option<&'static TypeDef>,
}

/// The interesting fields of one object type.
#[derive(Debug)]
pub struct TypeDef {
    pub fields: &'static [(&'static str, Field)],
}

impl TypeDef {
    /// The merge behaviour of field `name`, or `None` for a plain (untagged) field.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }
}

/// Merge behaviour of `name` within an optional type: untagged when either is unknown.
pub fn lookup(ty: Option<&'static TypeDef>, name: &str) -> Option<&'static Field> {
    ty.and_then(|t| t.field(name))
}

const fn key(name: &'static str) -> MapKey {
    MapKey {
        name,
        default: None,
    }
}

const fn key_default(name: &'static str, default: &'static str) -> MapKey {
    MapKey {
        name,
        default: Some(default),
    }
}

/// A nested object field without list semantics.
const fn obj(ty: &'static TypeDef) -> Field {
    Field {
        smp: SmpList::Replace,
        ssa: SsaList::Atomic,
        ty: Some(ty),
    }
}

/// A list merged by one key in both SMP and SSA.
const fn keyed(
    smp_key: &'static str,
    ssa_keys: &'static [MapKey],
    ty: Option<&'static TypeDef>,
) -> Field {
    Field {
        smp: SmpList::MergeByKey(smp_key),
        ssa: SsaList::Map(ssa_keys),
        ty,
    }
}

/// A list of primitives merged as a set.
const fn primitive_set() -> Field {
    Field {
        smp: SmpList::MergePrimitives,
        ssa: SsaList::Set,
        ty: None,
    }
}

/// A list that SSA treats as a map but SMP replaces (no `patchStrategy` tag).
const fn ssa_only_map(keys: &'static [MapKey]) -> Field {
    Field {
        smp: SmpList::Replace,
        ssa: SsaList::Map(keys),
        ty: None,
    }
}

const NAME: &[MapKey] = &[key("name")];
const TYPE: &[MapKey] = &[key("type")];
const IP: &[MapKey] = &[key("ip")];

/// A `conditions` list keyed by `type` (every status type of the supported kinds).
const CONDITIONS: Field = keyed("type", TYPE, None);

pub static OBJECT_META: TypeDef = TypeDef {
    fields: &[
        ("ownerReferences", keyed("uid", &[key("uid")], None)),
        ("finalizers", primitive_set()),
    ],
};

static CONTAINER_PORT_KEYS: &[MapKey] = &[key("containerPort"), key_default("protocol", "TCP")];

static RESOURCE_REQUIREMENTS: TypeDef = TypeDef {
    fields: &[("claims", ssa_only_map(NAME))],
};

/// Container and EphemeralContainer (same list fields).
pub static CONTAINER: TypeDef = TypeDef {
    fields: &[
        ("ports", keyed("containerPort", CONTAINER_PORT_KEYS, None)),
        ("env", keyed("name", NAME, None)),
        (
            "volumeMounts",
            keyed("mountPath", &[key("mountPath")], None),
        ),
        (
            "volumeDevices",
            keyed("devicePath", &[key("devicePath")], None),
        ),
        ("resources", obj(&RESOURCE_REQUIREMENTS)),
    ],
};

pub static POD_SPEC: TypeDef = TypeDef {
    fields: &[
        // patchStrategy "merge,retainKeys": the retainKeys part only matters to patch
        // generators; the server honours `$retainKeys` wherever it appears.
        ("volumes", keyed("name", NAME, None)),
        ("initContainers", keyed("name", NAME, Some(&CONTAINER))),
        ("containers", keyed("name", NAME, Some(&CONTAINER))),
        ("ephemeralContainers", keyed("name", NAME, Some(&CONTAINER))),
        ("imagePullSecrets", keyed("name", NAME, None)),
        ("hostAliases", keyed("ip", IP, None)),
        (
            "topologySpreadConstraints",
            keyed(
                "topologyKey",
                &[key("topologyKey"), key("whenUnsatisfiable")],
                None,
            ),
        ),
        ("schedulingGates", keyed("name", NAME, None)),
        ("resourceClaims", keyed("name", NAME, None)),
    ],
};

static POD_STATUS: TypeDef = TypeDef {
    fields: &[
        ("conditions", CONDITIONS),
        // hostIPs: SMP merges by ip, SSA treats it as atomic.
        (
            "hostIPs",
            Field {
                smp: SmpList::MergeByKey("ip"),
                ssa: SsaList::Atomic,
                ty: None,
            },
        ),
        ("podIPs", keyed("ip", IP, None)),
        ("resourceClaimStatuses", keyed("name", NAME, None)),
    ],
};

pub static POD_TEMPLATE_SPEC: TypeDef = TypeDef {
    fields: &[("metadata", obj(&OBJECT_META)), ("spec", obj(&POD_SPEC))],
};

static POD: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&POD_SPEC)),
        ("status", obj(&POD_STATUS)),
    ],
};

static POD_TEMPLATE: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("template", obj(&POD_TEMPLATE_SPEC)),
    ],
};

/// `spec` of every workload whose pod template is at `spec.template`.
static WORKLOAD_SPEC: TypeDef = TypeDef {
    fields: &[("template", obj(&POD_TEMPLATE_SPEC))],
};

/// `status` of every kind whose only merge list there is `conditions`.
static CONDITIONS_STATUS: TypeDef = TypeDef {
    fields: &[("conditions", CONDITIONS)],
};

/// Deployment, ReplicaSet, DaemonSet, StatefulSet, Job, ReplicationController.
static WORKLOAD: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&WORKLOAD_SPEC)),
        ("status", obj(&CONDITIONS_STATUS)),
    ],
};

static JOB_TEMPLATE_SPEC: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&WORKLOAD_SPEC)),
    ],
};

static CRON_JOB_SPEC: TypeDef = TypeDef {
    fields: &[("jobTemplate", obj(&JOB_TEMPLATE_SPEC))],
};

static CRON_JOB: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&CRON_JOB_SPEC)),
    ],
};

static SERVICE_SPEC: TypeDef = TypeDef {
    fields: &[(
        "ports",
        keyed("port", &[key("port"), key_default("protocol", "TCP")], None),
    )],
};

static SERVICE: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&SERVICE_SPEC)),
        ("status", obj(&CONDITIONS_STATUS)),
    ],
};

static NODE_SPEC: TypeDef = TypeDef {
    // taints carry no patchStrategy: replaced wholesale.
    fields: &[("podCIDRs", primitive_set())],
};

static NODE_STATUS: TypeDef = TypeDef {
    fields: &[
        ("conditions", CONDITIONS),
        ("addresses", keyed("type", TYPE, None)),
    ],
};

static NODE: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&NODE_SPEC)),
        ("status", obj(&NODE_STATUS)),
    ],
};

/// Namespace and PersistentVolumeClaim (conditions keyed by type; Namespace
/// `spec.finalizers` has no strategy).
static WITH_STATUS_CONDITIONS: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("status", obj(&CONDITIONS_STATUS)),
    ],
};

static SERVICE_ACCOUNT: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("secrets", keyed("name", NAME, None)),
    ],
};

/// Any other object: only `metadata` is known (ConfigMap, Secret, Endpoints, Lease, Event,
/// custom resources...). Their other maps merge and their lists are replaced.
static GENERIC: TypeDef = TypeDef {
    fields: &[("metadata", obj(&OBJECT_META))],
};

/// The root type of `kind` in API group `group` (`""` for the core group).
///
/// Unknown kinds get a root that only knows `metadata` (an `ObjectMeta`), so their lists replace.
pub fn root(group: &str, kind: &str) -> &'static TypeDef {
    match (group, kind) {
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("", "ReplicationController") => &WORKLOAD,
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => &WORKLOAD,
        ("batch", "Job") => &WORKLOAD,
        ("batch", "CronJob") => &CRON_JOB,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "Namespace" | "PersistentVolumeClaim") => &WITH_STATUS_CONDITIONS,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        _ => &GENERIC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cronjob_reaches_containers() {
        let t = root("batch", "CronJob");
        let spec = t.field("spec").unwrap().ty;
        let jt = lookup(spec, "jobTemplate").unwrap().ty;
        let js = lookup(jt, "spec").unwrap().ty;
        let tpl = lookup(js, "template").unwrap().ty;
        let ps = lookup(tpl, "spec").unwrap().ty;
        let c = lookup(ps, "containers").unwrap();
        assert_eq!(c.smp, SmpList::MergeByKey("name"));
        assert_eq!(
            lookup(c.ty, "env").unwrap().smp,
            SmpList::MergeByKey("name")
        );
    }

    #[test]
    fn taints_and_subsets_replace() {
        let node_spec = root("", "Node").field("spec").unwrap().ty;
        assert!(lookup(node_spec, "taints").is_none());
        assert!(root("", "Endpoints").field("subsets").is_none());
    }
}
