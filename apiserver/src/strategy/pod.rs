//! Pods and pod templates: `pkg/apis/core/v1/defaults.go` defaulting and the pod rules of
//! `pkg/apis/core/validation`. Workload kinds reuse the template functions with their own
//! field paths (`spec.template.spec...`).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::fields::{
    child, index, int_at, invalid_str, is_unset, items, items_mut, key, not_found, object_at,
    object_mut, one_of, required, set_default, set_default_str, str_at, string_or_empty,
};
use super::meta::{
    NameRule, dns1123_label, dns1123_subdomain, label_value, qualified_name, update_with,
    validate_annotations, validate_labels, validate_object_meta,
};
use super::quantity;
use crate::error::Cause;

const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// The probe handlers; exactly one must be set.
const PROBE_HANDLERS: [&str; 4] = ["exec", "httpGet", "tcpSocket", "grpc"];

// ---------------------------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------------------------

/// Defaults of a Pod: the pod-spec defaults, the Pod-only ones (`enableServiceLinks`, requests
/// from limits, host-network ports) and the initial status. The not-ready/unreachable
/// tolerations come from [`default_toleration_seconds`], which depends on a server flag.
pub(crate) fn default_pod(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    default_pod_spec(spec);
    default_service_account(spec);
    set_default(spec, "enableServiceLinks", Value::Bool(true));
    if int_at(spec, "terminationGracePeriodSeconds").is_some_and(|s| s < 0) {
        spec["terminationGracePeriodSeconds"] = json!(1);
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["initContainers", "containers"] {
        for container in items_mut(spec, list) {
            default_requests_from_limits(container);
            if host_network {
                for port in items_mut(container, "ports") {
                    if let Some(p) = port.get("containerPort").cloned() {
                        set_default(port, "hostPort", p);
                    }
                }
            }
        }
    }
    let qos = qos_class(spec);
    if let Some(status) = object_mut(obj, "status") {
        set_default_str(status, "phase", "Pending");
        set_default_str(status, "qosClass", qos);
    }
}

/// What Kubernetes' ServiceAccount admission plugin does to a new pod (Pods only, not
/// templates): a pod that names no ServiceAccount runs as `default`, and the deprecated
/// `serviceAccount` mirrors `serviceAccountName` (filling it when only the old field is set).
/// **Decision:** the ServiceAccount need not exist yet — the serviceaccount controller may
/// lag a namespace created a moment ago, and Skiff mounts no tokens that would need it.
fn default_service_account(spec: &mut Value) {
    let named = |field| str_at(spec, field).filter(|s| !s.is_empty());
    let name = named("serviceAccountName")
        .or_else(|| named("serviceAccount"))
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(name);
    spec["serviceAccount"] = json!(name);
}

/// Defaults of a pod template (`spec.template` of workloads).
pub(crate) fn default_pod_template(template: Option<&mut Value>) {
    if let Some(spec) = template
        .and_then(|t| t.get_mut("spec"))
        .filter(|s| s.is_object())
    {
        default_pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything nested in it.
pub(crate) fn default_pod_spec(spec: &mut Value) {
    set_default_str(spec, "dnsPolicy", "ClusterFirst");
    set_default_str(spec, "restartPolicy", "Always");
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default_str(spec, "schedulerName", "default-scheduler");
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in items_mut(spec, list) {
            default_container(container);
        }
    }
    for volume in items_mut(spec, "volumes") {
        default_volume(volume);
    }
}

fn default_container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    set_default_str(c, "terminationMessagePath", "/dev/termination-log");
    set_default_str(c, "terminationMessagePolicy", "File");
    if is_unset(c.get("imagePullPolicy")) {
        let policy = match image_tag(string_or_empty(c, "image")) {
            Some("latest") => "Always",
            _ => "IfNotPresent",
        };
        c["imagePullPolicy"] = json!(policy);
    }
    set_default(c, "resources", json!({}));
    for port in items_mut(c, "ports") {
        set_default_str(port, "protocol", "TCP");
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            default_http_get(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lifecycle.get_mut(hook) {
                default_http_get(h);
            }
        }
    }
    for env in items_mut(c, "env") {
        if let Some(field_ref) = env.get_mut("valueFrom").and_then(|v| v.get_mut("fieldRef")) {
            set_default_str(field_ref, "apiVersion", "v1");
        }
    }
}

fn default_http_get(handler: &mut Value) {
    if let Some(get) = handler.get_mut("httpGet").filter(|g| g.is_object()) {
        set_default_str(get, "path", "/");
        set_default_str(get, "scheme", "HTTP");
    }
}

/// The tag Kubernetes sees in an image reference: `latest` when neither tag nor digest is given,
/// `None` for a digest-only reference.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    let last = &name[name.rfind('/').map_or(0, |i| i + 1)..];
    match last.rsplit_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest => None,
        None => Some("latest"),
    }
}

fn default_volume(v: &mut Value) {
    let Some(map) = v.as_object_mut() else {
        return;
    };
    if map.iter().all(|(k, val)| k == "name" || val.is_null()) {
        map.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = map.get_mut(source).filter(|s| s.is_object()) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = map.get_mut("hostPath").filter(|h| h.is_object()) {
        set_default(h, "type", json!(""));
    }
    if let Some(projected) = map.get_mut("projected") {
        for source in items_mut(projected, "sources") {
            if let Some(token) = source
                .get_mut("serviceAccountToken")
                .filter(|t| t.is_object())
            {
                set_default(token, "expirationSeconds", json!(3600));
            }
        }
    }
}

fn default_requests_from_limits(c: &mut Value) {
    let Some(limits) = c
        .get("resources")
        .and_then(|r| r.get("limits"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    if let Some(requests) = c
        .get_mut("resources")
        .and_then(|r| object_mut(r, "requests"))
    {
        for (name, q) in limits {
            set_default(requests, &name, q);
        }
    }
}

/// Whether a toleration already tolerates a `NoExecute` taint with this key.
fn tolerates_no_execute(t: &Value, taint_key: &str) -> bool {
    let effect = string_or_empty(t, "effect");
    let key = string_or_empty(t, "key");
    (effect.is_empty() || effect == "NoExecute")
        && (key == taint_key || (key.is_empty() && string_or_empty(t, "operator") == "Exists"))
}

/// Kubernetes' DefaultTolerationSeconds admission plugin: a pod that does not tolerate the
/// `node.kubernetes.io/not-ready` / `unreachable` `NoExecute` taints gets tolerations for them
/// with `tolerationSeconds` = `seconds` (`--default-toleration-seconds`, 300 in Kubernetes), so
/// the node lifecycle controller evicts it that long after its node fails instead of at once.
pub(crate) fn default_toleration_seconds(obj: &mut Value, seconds: i64) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if !matches!(
        spec.get("tolerations"),
        None | Some(Value::Null) | Some(Value::Array(_))
    ) {
        return;
    }
    let existing = items(spec, "tolerations").to_vec();
    let mut added = Vec::new();
    for taint in [NOT_READY_TAINT, UNREACHABLE_TAINT] {
        if !existing.iter().any(|t| tolerates_no_execute(t, taint)) {
            added.push(json!({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
    if !added.is_empty() {
        let mut all = existing;
        all.extend(added);
        spec["tolerations"] = Value::Array(all);
    }
}

/// Kubernetes' QoS class: BestEffort without any cpu/memory request or limit, Guaranteed when
/// every container limits cpu and memory and requests equal limits, Burstable otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in items(spec, "initContainers")
        .iter()
        .chain(items(spec, "containers"))
    {
        let res = c.get("resources");
        let get = |kind: &str, name: &str| {
            res.and_then(|r| r.get(kind))
                .and_then(|m| m.get(name))
                .and_then(Value::as_str)
                .and_then(|q| quantity::parse(q).ok())
                .filter(|v| *v != 0.0)
        };
        for name in ["cpu", "memory"] {
            let (req, lim) = (get("requests", name), get("limits", name));
            any |= req.is_some() || lim.is_some();
            if lim.is_none() || req.is_some_and(|r| Some(r) != lim) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Validation of a new Pod: metadata (DNS subdomain name) and the pod spec.
pub(crate) fn validate_pod(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    errs.extend(validate_pod_spec_at(obj.get("spec"), "spec", &[]));
    errs
}

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Validation of a Pod update: the spec is immutable except images, `activeDeadlineSeconds`
/// (may only shrink), added tolerations and `terminationGracePeriodSeconds`.
pub(crate) fn validate_pod_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_pod);
    let null = Value::Null;
    let new_spec = new.get("spec").unwrap_or(&null);
    let mut old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    if old_spec.is_object() && new_spec.is_object() {
        for list in ["containers", "initContainers"] {
            let new_items = items(new_spec, list);
            for (i, c) in items_mut(&mut old_spec, list).enumerate() {
                if let (Some(c), Some(image)) = (
                    c.as_object_mut(),
                    new_items.get(i).and_then(|n| n.get("image")),
                ) {
                    c.insert("image".into(), image.clone());
                }
            }
        }
        for field in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            match new_spec.get(field) {
                Some(v) => old_spec[field] = v.clone(),
                None => {
                    old_spec.as_object_mut().map(|m| m.remove(field));
                }
            }
        }
    }
    if &old_spec != new_spec {
        errs.push(Cause::forbidden("spec", POD_UPDATE_MSG));
    }
    if let Some(old_deadline) = old
        .get("spec")
        .and_then(|s| int_at(s, "activeDeadlineSeconds"))
    {
        match int_at(new_spec, "activeDeadlineSeconds") {
            None => errs.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                &Value::Null,
                "must not update from a positive integer to nil value",
            )),
            Some(n) if n > old_deadline => errs.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                &json!(n),
                "must be less than or equal to previous value",
            )),
            _ => {}
        }
    }
    let without_seconds = |t: &Value| {
        let mut t = t.clone();
        t.as_object_mut().map(|m| m.remove("tolerationSeconds"));
        t
    };
    let new_tolerations: Vec<Value> = items(new_spec, "tolerations")
        .iter()
        .map(without_seconds)
        .collect();
    let old_spec_ref = old.get("spec").unwrap_or(&null);
    if items(old_spec_ref, "tolerations")
        .iter()
        .any(|t| !new_tolerations.contains(&without_seconds(t)))
    {
        errs.push(Cause::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    errs
}

/// Validation of a workload's pod template at `path` (e.g. `spec.template`): template labels
/// and annotations, then the pod spec. `extra_volumes` are volume names provided by the
/// workload itself (StatefulSet claim templates).
pub(crate) fn validate_pod_template(
    template: Option<&Value>,
    path: &str,
    extra_volumes: &[&str],
) -> Vec<Cause> {
    let Some(template) = template.filter(|t| !t.is_null()) else {
        return vec![Cause::required(path)];
    };
    let meta = template.get("metadata");
    let meta_path = child(path, "metadata");
    let mut errs = validate_labels(
        meta.and_then(|m| m.get("labels")),
        &child(&meta_path, "labels"),
    );
    errs.extend(validate_annotations(
        meta.and_then(|m| m.get("annotations")),
        &child(&meta_path, "annotations"),
    ));
    errs.extend(validate_pod_spec_at(
        template.get("spec"),
        &child(path, "spec"),
        extra_volumes,
    ));
    errs
}

/// A template's `restartPolicy` must be one of `allowed` (Always for controllers, OnFailure or
/// Never for Jobs).
pub(crate) fn validate_template_restart_policy(
    template: Option<&Value>,
    path: &str,
    allowed: &[&str],
) -> Vec<Cause> {
    let policy = template
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("restartPolicy"));
    match policy {
        Some(Value::String(p)) if allowed.contains(&p.as_str()) => Vec::new(),
        None | Some(Value::Null) => Vec::new(), // reported as required by the pod spec rules
        Some(other) => vec![Cause::not_supported(
            child(path, "spec.restartPolicy"),
            other,
            allowed,
        )],
    }
}

fn validate_pod_spec_at(spec: Option<&Value>, path: &str, extra_volumes: &[&str]) -> Vec<Cause> {
    match spec {
        Some(spec) if spec.is_object() => validate_pod_spec(spec, path, extra_volumes),
        _ => vec![Cause::required(path)],
    }
}

/// The rules of `ValidatePodSpec` that matter for real manifests.
pub(crate) fn validate_pod_spec(spec: &Value, path: &str, extra_volumes: &[&str]) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut volumes: HashSet<&str> = extra_volumes.iter().copied().collect();
    validate_volumes(spec, path, &mut volumes, &mut errs);

    let containers_path = child(path, "containers");
    if items(spec, "containers").is_empty() {
        errs.push(Cause::required(&containers_path));
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let mut names = HashSet::new();
    let ctx = ContainerCtx {
        volumes: &volumes,
        host_network,
    };
    for (list, init) in [("initContainers", true), ("containers", false)] {
        let list_path = child(path, list);
        for (i, c) in items(spec, list).iter().enumerate() {
            validate_container(c, &index(&list_path, i), init, &ctx, &mut names, &mut errs);
        }
    }

    one_of(
        spec,
        "restartPolicy",
        path,
        &["Always", "OnFailure", "Never"],
        true,
        &mut errs,
    );
    one_of(
        spec,
        "dnsPolicy",
        path,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        true,
        &mut errs,
    );
    if str_at(spec, "dnsPolicy") == Some("None") && is_unset(spec.get("dnsConfig")) {
        errs.push(required(
            child(path, "dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    if let Some(deadline) =
        int_at(spec, "activeDeadlineSeconds").filter(|d| !(1..=i64::from(i32::MAX)).contains(d))
    {
        errs.push(Cause::invalid(
            child(path, "activeDeadlineSeconds"),
            &json!(deadline),
            &format!("must be between 1 and {}, inclusive", i32::MAX),
        ));
    }
    errs.extend(validate_labels(
        spec.get("nodeSelector"),
        &child(path, "nodeSelector"),
    ));
    for (field, check) in [
        (
            "serviceAccountName",
            dns1123_subdomain as fn(&str) -> Vec<String>,
        ),
        ("nodeName", dns1123_subdomain),
        ("hostname", dns1123_label),
        ("subdomain", dns1123_label),
    ] {
        if let Some(v) = str_at(spec, field).filter(|v| !v.is_empty()) {
            for msg in check(v) {
                errs.push(invalid_str(child(path, field), v, &msg));
            }
        }
    }
    validate_tolerations(
        items(spec, "tolerations"),
        &child(path, "tolerations"),
        &mut errs,
    );
    errs
}

fn validate_volumes<'a>(
    spec: &'a Value,
    path: &str,
    names: &mut HashSet<&'a str>,
    errs: &mut Vec<Cause>,
) {
    let volumes_path = child(path, "volumes");
    for (i, v) in items(spec, "volumes").iter().enumerate() {
        let p = index(&volumes_path, i);
        let name = string_or_empty(v, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        } else {
            for msg in dns1123_label(name) {
                errs.push(invalid_str(child(&p, "name"), name, &msg));
            }
            if !names.insert(name) {
                errs.push(Cause::duplicate(child(&p, "name"), &json!(name)));
            }
        }
        let sources: Vec<&String> = v
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, val)| *k != "name" && !val.is_null())
            .map(|(k, _)| k)
            .collect();
        match sources.len() {
            0 => errs.push(required(&p, "must specify a volume type")),
            1 => {}
            _ => errs.push(Cause::forbidden(
                child(&p, sources[1]),
                "may not specify more than 1 volume type",
            )),
        }
        for (source, field) in [
            ("hostPath", "path"),
            ("persistentVolumeClaim", "claimName"),
            ("configMap", "name"),
            ("secret", "secretName"),
        ] {
            if v.get(source)
                .filter(|s| s.is_object())
                .is_some_and(|s| is_unset(s.get(field)))
            {
                errs.push(Cause::required(child(&child(&p, source), field)));
            }
        }
        if let Some(limit) = v.get("emptyDir").and_then(|e| e.get("sizeLimit")) {
            validate_quantity(limit, &child(&p, "emptyDir.sizeLimit"), errs);
        }
    }
}

struct ContainerCtx<'a> {
    volumes: &'a HashSet<&'a str>,
    host_network: bool,
}

fn validate_container(
    c: &Value,
    path: &str,
    init: bool,
    ctx: &ContainerCtx<'_>,
    names: &mut HashSet<String>,
    errs: &mut Vec<Cause>,
) {
    let name = string_or_empty(c, "name");
    if name.is_empty() {
        errs.push(Cause::required(child(path, "name")));
    } else {
        for msg in dns1123_label(name) {
            errs.push(invalid_str(child(path, "name"), name, &msg));
        }
        if !names.insert(name.to_string()) {
            errs.push(Cause::duplicate(child(path, "name"), &json!(name)));
        }
    }
    let image = string_or_empty(c, "image");
    if image.is_empty() {
        errs.push(Cause::required(child(path, "image")));
    } else if image.trim() != image {
        errs.push(invalid_str(
            child(path, "image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    one_of(
        c,
        "imagePullPolicy",
        path,
        &["Always", "IfNotPresent", "Never"],
        true,
        errs,
    );
    one_of(
        c,
        "terminationMessagePolicy",
        path,
        &["File", "FallbackToLogsOnError"],
        true,
        errs,
    );
    if init {
        one_of(c, "restartPolicy", path, &["Always"], false, errs);
    } else if !is_unset(c.get("restartPolicy")) {
        errs.push(Cause::forbidden(
            child(path, "restartPolicy"),
            "may not be set for non-init containers",
        ));
    }
    validate_ports(c, path, ctx.host_network, errs);
    validate_env(c, path, errs);
    validate_volume_mounts(c, path, ctx.volumes, errs);
    validate_resources(c.get("resources"), &child(path, "resources"), errs);
    let sidecar = init && str_at(c, "restartPolicy") == Some("Always");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = c.get(probe).filter(|p| !p.is_null()) else {
            continue;
        };
        let probe_path = child(path, probe);
        if init && !sidecar {
            errs.push(Cause::forbidden(
                &probe_path,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(p, &probe_path, probe != "readinessProbe", errs);
    }
}

fn validate_ports(c: &Value, path: &str, host_network: bool, errs: &mut Vec<Cause>) {
    let ports_path = child(path, "ports");
    let mut port_names = HashSet::new();
    for (i, port) in items(c, "ports").iter().enumerate() {
        let p = index(&ports_path, i);
        if let Some(name) = str_at(port, "name").filter(|n| !n.is_empty()) {
            for msg in port_name(name) {
                errs.push(invalid_str(child(&p, "name"), name, &msg));
            }
            if !port_names.insert(name) {
                errs.push(Cause::duplicate(child(&p, "name"), &json!(name)));
            }
        }
        let container_port = int_at(port, "containerPort").unwrap_or(0);
        if container_port == 0 {
            errs.push(Cause::required(child(&p, "containerPort")));
        } else {
            port_number(container_port, &child(&p, "containerPort"), errs);
        }
        if let Some(host_port) = int_at(port, "hostPort").filter(|h| *h != 0) {
            port_number(host_port, &child(&p, "hostPort"), errs);
            if host_network && host_port != container_port {
                errs.push(Cause::invalid(
                    child(&p, "hostPort"),
                    &json!(host_port),
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        one_of(port, "protocol", &p, &["SCTP", "TCP", "UDP"], true, errs);
    }
}

/// `must be between 1 and 65535, inclusive` for an out-of-range port.
pub(crate) fn port_number(port: i64, path: &str, errs: &mut Vec<Cause>) {
    if !(1..=65535).contains(&port) {
        errs.push(Cause::invalid(
            path,
            &json!(port),
            "must be between 1 and 65535, inclusive",
        ));
    }
}

/// apimachinery's `IsValidPortName` (IANA service names: ≤15 chars, a letter, no `--`).
pub(crate) fn port_name(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !name.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// A port given as a number or an IANA name (probes, Service targetPort).
pub(crate) fn validate_port_num_or_name(port: Option<&Value>, path: &str, errs: &mut Vec<Cause>) {
    match port {
        Some(Value::Number(n)) => port_number(n.as_i64().unwrap_or(0), path, errs),
        Some(Value::String(s)) if s.is_empty() => errs.push(Cause::required(path)),
        Some(Value::String(s)) => {
            for msg in port_name(s) {
                errs.push(invalid_str(path, s, &msg));
            }
        }
        _ => errs.push(Cause::required(path)),
    }
}

fn validate_env(c: &Value, path: &str, errs: &mut Vec<Cause>) {
    let env_path = child(path, "env");
    for (i, env) in items(c, "env").iter().enumerate() {
        let p = index(&env_path, i);
        let name = string_or_empty(env, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        } else if name
            .chars()
            .any(|ch| !ch.is_ascii() || ch.is_ascii_control() || ch == '=')
        {
            // Kubernetes ≥1.32 (RelaxedEnvironmentVariableValidation) accepts any printable ASCII but '='.
            errs.push(invalid_str(
                child(&p, "name"),
                name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        let Some(from) = env.get("valueFrom").filter(|v| !v.is_null()) else {
            continue;
        };
        let from_path = child(&p, "valueFrom");
        let sources = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
            "fileKeyRef",
        ];
        let set: Vec<&str> = sources
            .iter()
            .copied()
            .filter(|s| !is_unset(from.get(*s)))
            .collect();
        match set.len() {
            0 => errs.push(invalid_str(
                &from_path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )),
            1 => {}
            _ => errs.push(invalid_str(&from_path, "", "may not have more than one field specified at a time")),
        }
        if !string_or_empty(env, "value").is_empty() {
            errs.push(invalid_str(
                &from_path,
                "",
                "may not be specified when `value` is not empty",
            ));
        }
        for (source, field) in [
            ("fieldRef", "fieldPath"),
            ("configMapKeyRef", "key"),
            ("secretKeyRef", "key"),
            ("resourceFieldRef", "resource"),
        ] {
            if from
                .get(source)
                .filter(|s| s.is_object())
                .is_some_and(|s| is_unset(s.get(field)))
            {
                errs.push(Cause::required(child(&child(&from_path, source), field)));
            }
        }
    }
}

fn validate_volume_mounts(c: &Value, path: &str, volumes: &HashSet<&str>, errs: &mut Vec<Cause>) {
    let mounts_path = child(path, "volumeMounts");
    let mut mount_paths = HashSet::new();
    for (i, m) in items(c, "volumeMounts").iter().enumerate() {
        let p = index(&mounts_path, i);
        let name = string_or_empty(m, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        } else if !volumes.contains(name) {
            errs.push(not_found(child(&p, "name"), name));
        }
        let mount_path = string_or_empty(m, "mountPath");
        if mount_path.is_empty() {
            errs.push(Cause::required(child(&p, "mountPath")));
        } else if !mount_paths.insert(mount_path) {
            errs.push(invalid_str(
                child(&p, "mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        let sub_path = string_or_empty(m, "subPath");
        if sub_path.starts_with('/') {
            errs.push(invalid_str(
                child(&p, "subPath"),
                sub_path,
                "must be a relative path",
            ));
        } else if sub_path.split('/').any(|seg| seg == "..") {
            errs.push(invalid_str(
                child(&p, "subPath"),
                sub_path,
                "must not contain '..'",
            ));
        }
    }
}

fn validate_probe(p: &Value, path: &str, success_must_be_one: bool, errs: &mut Vec<Cause>) {
    let handlers: Vec<&str> = PROBE_HANDLERS
        .iter()
        .copied()
        .filter(|h| !p.get(*h).is_none_or(Value::is_null))
        .collect();
    match handlers.len() {
        0 => errs.push(required(path, "must specify a handler type")),
        1 => {}
        _ => errs.push(Cause::forbidden(
            child(path, handlers[1]),
            "may not specify more than 1 handler type",
        )),
    }
    for handler in ["httpGet", "tcpSocket"] {
        if let Some(h) = p.get(handler).filter(|h| h.is_object()) {
            validate_port_num_or_name(h.get("port"), &child(&child(path, handler), "port"), errs);
        }
    }
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        super::fields::nonnegative(p, field, path, errs);
    }
    if success_must_be_one && int_at(p, "successThreshold").is_some_and(|s| s != 1) {
        let v = int_at(p, "successThreshold").unwrap_or(0);
        errs.push(Cause::invalid(
            child(path, "successThreshold"),
            &json!(v),
            "must be 1",
        ));
    }
}

/// Standard container resources; others must be qualified (`example.com/gpu`).
fn validate_container_resource_name(name: &str, path: &str, errs: &mut Vec<Cause>) {
    if name.contains('/') {
        for msg in qualified_name(name) {
            errs.push(invalid_str(path, name, &msg));
        }
    } else if !matches!(name, "cpu" | "memory" | "ephemeral-storage")
        && !name.starts_with("hugepages-")
    {
        errs.push(invalid_str(
            path,
            name,
            "must be a standard resource for containers",
        ));
    }
}

/// A quantity must parse and be non-negative; returns its value.
pub(crate) fn validate_quantity(q: &Value, path: &str, errs: &mut Vec<Cause>) -> Option<f64> {
    let text = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            errs.push(Cause::invalid(path, other, quantity::FORMAT_ERROR));
            return None;
        }
    };
    match quantity::parse(&text) {
        Err(msg) => {
            errs.push(invalid_str(path, &text, msg));
            None
        }
        Ok(v) if v < 0.0 => {
            errs.push(invalid_str(
                path,
                &text,
                "must be greater than or equal to 0",
            ));
            None
        }
        Ok(v) => Some(v),
    }
}

/// `requests`/`limits` of a container: names, quantities, and requests ≤ limits (equal for
/// resources that cannot be overcommitted: hugepages and extended resources).
pub(crate) fn validate_resources(res: Option<&Value>, path: &str, errs: &mut Vec<Cause>) {
    let Some(res) = res else {
        return;
    };
    let limits_path = child(path, "limits");
    let requests_path = child(path, "requests");
    let mut limits = std::collections::HashMap::new();
    for (name, q) in object_at(res, "limits").into_iter().flatten() {
        let p = key(&limits_path, name);
        validate_container_resource_name(name, &p, errs);
        if let Some(v) = validate_quantity(q, &p, errs) {
            limits.insert(name.as_str(), (v, q.as_str().unwrap_or("")));
        }
    }
    for (name, q) in object_at(res, "requests").into_iter().flatten() {
        let p = key(&requests_path, name);
        validate_container_resource_name(name, &p, errs);
        let Some(request) = validate_quantity(q, &p, errs) else {
            continue;
        };
        let Some((limit, limit_text)) = limits.get(name.as_str()) else {
            continue;
        };
        let shown = q.as_str().unwrap_or("");
        let overcommit = !name.starts_with("hugepages-")
            && (!name.contains('/') || name.starts_with("kubernetes.io/"));
        if !overcommit && request != *limit {
            errs.push(invalid_str(
                &requests_path,
                shown,
                &format!("must be equal to {name} limit of {limit_text}"),
            ));
        } else if request > *limit {
            errs.push(invalid_str(
                &requests_path,
                shown,
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            ));
        }
    }
}

fn validate_tolerations(tolerations: &[Value], path: &str, errs: &mut Vec<Cause>) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let key = string_or_empty(t, "key");
        let operator = string_or_empty(t, "operator");
        let effect = string_or_empty(t, "effect");
        let value = string_or_empty(t, "value");
        if !key.is_empty() {
            for msg in qualified_name(key) {
                errs.push(invalid_str(child(&p, "key"), key, &msg));
            }
        } else if operator != "Exists" {
            errs.push(invalid_str(
                child(&p, "operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.get("tolerationSeconds").is_some_and(|s| !s.is_null()) && effect != "NoExecute" {
            errs.push(invalid_str(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "" | "Equal" => {
                for msg in label_value(value) {
                    errs.push(invalid_str(child(&p, "value"), value, &msg));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid_str(
                        child(&p, "value"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(Cause::not_supported(
                child(&p, "operator"),
                &json!(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            one_of(
                t,
                "effect",
                &p,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                false,
                errs,
            );
        }
    }
}
