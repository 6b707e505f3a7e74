//! Pod controllers: Deployment, ReplicaSet, DaemonSet, StatefulSet (`apps/v1` defaults and
//! `pkg/apis/apps/validation`) and the core ReplicationController, which shares their
//! selector-and-template rules.

use serde_json::{Value, json};

use super::fields::{
    at, check_immutable, int_at, int_or_percent, is_unset, items, items_mut, nonnegative,
    object_mut, one_of, set_default, set_default_str, spec_of, str_at,
};
use super::meta::{
    NameRule, go_string_map, map_selector_matches, selector_is_empty, selector_matches,
    update_with, validate_label_selector, validate_labels, validate_object_meta,
};
use super::pod::{default_pod_template, validate_pod_template, validate_template_restart_policy};
use super::storage::validate_pvc_spec;
use crate::error::Cause;

const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";

fn template_labels(spec: &Value) -> Option<&Value> {
    at(spec, &["template", "metadata", "labels"])
}

/// The `selector does not match template labels` cause, with the labels printed like Go does.
fn selector_mismatch(spec: &Value) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        "spec.template.metadata.labels",
        format!(
            "Invalid value: {}: {SELECTOR_MISMATCH}",
            go_string_map(template_labels(spec))
        ),
    )
}

/// Selector and template rules shared by the `apps` controllers: the selector is required,
/// non-empty and must select the template's labels, the template is a valid pod template with
/// `restartPolicy: Always` and no `activeDeadlineSeconds`.
fn validate_selector_and_template(
    spec: &Value,
    empty_selector_msg: &str,
    extra_volumes: &[&str],
) -> Vec<Cause> {
    let mut errs = Vec::new();
    // The typed round trip turns a missing selector into `{}`; both mean "not given".
    let selector = spec.get("selector").filter(|s| !is_unset(Some(s)));
    match selector {
        None => errs.push(Cause::required("spec.selector")),
        Some(sel) => {
            errs.extend(validate_label_selector(Some(sel), "spec.selector"));
            if selector_is_empty(sel) {
                errs.push(Cause::invalid("spec.selector", sel, empty_selector_msg));
            }
        }
    }
    let template = spec.get("template");
    errs.extend(validate_pod_template(
        template,
        "spec.template",
        extra_volumes,
    ));
    let has_template = template.is_some_and(|t| !t.is_null());
    if selector.is_some_and(|sel| {
        has_template && !selector_is_empty(sel) && !selector_matches(sel, template_labels(spec))
    }) {
        errs.push(selector_mismatch(spec));
    }
    errs.extend(validate_controller_template_spec(template));
    errs
}

/// Controllers keep their pods running: `restartPolicy: Always`, no deadline.
fn validate_controller_template_spec(template: Option<&Value>) -> Vec<Cause> {
    let mut errs = validate_template_restart_policy(template, "spec.template", &["Always"]);
    if let Some(d) = template
        .and_then(|t| at(t, &["spec", "activeDeadlineSeconds"]))
        .filter(|d| !d.is_null())
    {
        errs.push(Cause::invalid(
            "spec.template.spec.activeDeadlineSeconds",
            d,
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

/// Validation of an rolling-update block: both fields int-or-percent, not both zero.
fn validate_rolling_update(ru: &Value, path: &str, errs: &mut Vec<Cause>) {
    let unavailable_path = format!("{path}.maxUnavailable");
    let unavailable = int_or_percent(ru.get("maxUnavailable"), &unavailable_path, true, errs);
    let surge = int_or_percent(ru.get("maxSurge"), &format!("{path}.maxSurge"), false, errs);
    if unavailable == Some(0) && surge.is_none_or(|s| s == 0) {
        errs.push(Cause::invalid(
            unavailable_path,
            ru.get("maxUnavailable").unwrap_or(&Value::Null),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

/// The `rollingUpdate` block of a strategy whose type is RollingUpdate, created when absent.
fn rolling_update_mut(strategy: &mut Value) -> Option<&mut Value> {
    if str_at(strategy, "type") == Some("RollingUpdate") {
        object_mut(strategy, "rollingUpdate")
    } else {
        None
    }
}

/// Sets `metadata.labels` when the object has none (controllers inherit their template's).
pub(crate) fn default_labels(obj: &mut Value, labels: Value) {
    if let Some(meta) = object_mut(obj, "metadata").filter(|m| is_unset(m.get("labels"))) {
        meta["labels"] = labels;
    }
}

fn nonnegative_spec_fields(spec: &Value, fields: &[&str], errs: &mut Vec<Cause>) {
    for f in fields {
        nonnegative(spec, f, "spec", errs);
    }
}

fn with_spec(obj: &mut Value, f: impl FnOnce(&mut Value)) {
    if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
        f(spec);
    }
}

// ------------------------------------------------------------------------------ Deployment

/// `apps/v1` Deployment defaults: 1 replica, RollingUpdate 25%/25%, 10 revisions, 600s deadline.
pub(crate) fn default_deployment(obj: &mut Value) {
    with_spec(obj, |spec| {
        set_default(spec, "replicas", json!(1));
        if let Some(strategy) = object_mut(spec, "strategy") {
            set_default_str(strategy, "type", "RollingUpdate");
            if let Some(ru) = rolling_update_mut(strategy) {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
        default_pod_template(spec.get_mut("template"));
    });
}

/// Deployment validation (`ValidateDeploymentSpec`).
pub(crate) fn validate_deployment(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    nonnegative_spec_fields(
        spec,
        &[
            "replicas",
            "minReadySeconds",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
        ],
        &mut errs,
    );
    errs.extend(validate_selector_and_template(
        spec,
        "empty selector is invalid for deployment",
        &[],
    ));
    let min_ready = int_at(spec, "minReadySeconds").unwrap_or(0);
    if let Some(deadline) = int_at(spec, "progressDeadlineSeconds").filter(|d| *d <= min_ready) {
        errs.push(Cause::invalid(
            "spec.progressDeadlineSeconds",
            &json!(deadline),
            "must be greater than minReadySeconds",
        ));
    }
    if let Some(strategy) = spec.get("strategy").filter(|s| s.is_object()) {
        one_of(
            strategy,
            "type",
            "spec.strategy",
            &["Recreate", "RollingUpdate"],
            true,
            &mut errs,
        );
        let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
        match (str_at(strategy, "type"), ru) {
            (Some("Recreate"), Some(_)) => errs.push(Cause::forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )),
            (Some("RollingUpdate"), Some(ru)) => {
                validate_rolling_update(ru, "spec.strategy.rollingUpdate", &mut errs)
            }
            _ => {}
        }
    }
    errs
}

/// Deployment update: the selector is immutable in `apps/v1`.
pub(crate) fn validate_deployment_update(new: &Value, old: &Value) -> Vec<Cause> {
    update_with_immutable_selector(new, old, validate_deployment)
}

fn update_with_immutable_selector(
    new: &Value,
    old: &Value,
    validate: fn(&Value) -> Vec<Cause>,
) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate);
    check_immutable(new, old, &["spec", "selector"], "spec.selector", &mut errs);
    errs
}

// ------------------------------------------------------------------------------ ReplicaSet

/// `apps/v1` ReplicaSet defaults: 1 replica, pod template defaults.
pub(crate) fn default_replica_set(obj: &mut Value) {
    with_spec(obj, |spec| {
        set_default(spec, "replicas", json!(1));
        default_pod_template(spec.get_mut("template"));
    });
}

/// ReplicaSet validation (`ValidateReplicaSetSpec`).
pub(crate) fn validate_replica_set(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    nonnegative_spec_fields(spec, &["replicas", "minReadySeconds"], &mut errs);
    errs.extend(validate_selector_and_template(
        spec,
        "empty selector is invalid for deployment",
        &[],
    ));
    errs
}

/// ReplicaSet update: the selector is immutable in `apps/v1`.
pub(crate) fn validate_replica_set_update(new: &Value, old: &Value) -> Vec<Cause> {
    update_with_immutable_selector(new, old, validate_replica_set)
}

// ------------------------------------------------------------------------------ DaemonSet

/// `apps/v1` DaemonSet defaults: RollingUpdate with maxUnavailable 1 / maxSurge 0, 10 revisions.
pub(crate) fn default_daemon_set(obj: &mut Value) {
    with_spec(obj, |spec| {
        if let Some(strategy) = object_mut(spec, "updateStrategy") {
            set_default_str(strategy, "type", "RollingUpdate");
            if let Some(ru) = rolling_update_mut(strategy) {
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
        default_pod_template(spec.get_mut("template"));
    });
}

/// DaemonSet validation (`ValidateDaemonSetSpec`).
pub(crate) fn validate_daemon_set(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    nonnegative_spec_fields(
        spec,
        &["minReadySeconds", "revisionHistoryLimit"],
        &mut errs,
    );
    errs.extend(validate_selector_and_template(
        spec,
        "empty selector is invalid for daemonset",
        &[],
    ));
    if let Some(strategy) = spec.get("updateStrategy").filter(|s| s.is_object()) {
        one_of(
            strategy,
            "type",
            "spec.updateStrategy",
            &["OnDelete", "RollingUpdate"],
            true,
            &mut errs,
        );
        let ru = strategy.get("rollingUpdate").filter(|r| r.is_object());
        if let Some(ru) = ru.filter(|_| str_at(strategy, "type") == Some("RollingUpdate")) {
            validate_rolling_update(ru, "spec.updateStrategy.rollingUpdate", &mut errs);
        }
    }
    errs
}

/// DaemonSet update: the selector is immutable.
pub(crate) fn validate_daemon_set_update(new: &Value, old: &Value) -> Vec<Cause> {
    update_with_immutable_selector(new, old, validate_daemon_set)
}

// ------------------------------------------------------------------------------ StatefulSet

/// `apps/v1` StatefulSet defaults: OrderedReady, RollingUpdate partition 0, 1 replica,
/// 10 revisions, Retain/Retain claim retention, claim-template defaults.
pub(crate) fn default_stateful_set(obj: &mut Value) {
    with_spec(obj, |spec| {
        set_default_str(spec, "podManagementPolicy", "OrderedReady");
        if let Some(strategy) = object_mut(spec, "updateStrategy") {
            set_default_str(strategy, "type", "RollingUpdate");
            if let Some(ru) = rolling_update_mut(strategy) {
                set_default(ru, "partition", json!(0));
            }
        }
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        if let Some(policy) = object_mut(spec, "persistentVolumeClaimRetentionPolicy") {
            set_default_str(policy, "whenDeleted", "Retain");
            set_default_str(policy, "whenScaled", "Retain");
        }
        for claim in items_mut(spec, "volumeClaimTemplates") {
            super::storage::default_persistent_volume_claim(claim);
        }
        default_pod_template(spec.get_mut("template"));
    });
}

/// StatefulSet validation (`ValidateStatefulSetSpec`); claim templates count as volumes.
pub(crate) fn validate_stateful_set(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    nonnegative_spec_fields(
        spec,
        &["replicas", "minReadySeconds", "revisionHistoryLimit"],
        &mut errs,
    );
    one_of(
        spec,
        "podManagementPolicy",
        "spec",
        &["OrderedReady", "Parallel"],
        true,
        &mut errs,
    );
    if let Some(strategy) = spec.get("updateStrategy").filter(|s| s.is_object()) {
        one_of(
            strategy,
            "type",
            "spec.updateStrategy",
            &["RollingUpdate", "OnDelete"],
            true,
            &mut errs,
        );
        let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
        if let Some(ru) = ru {
            if str_at(strategy, "type") == Some("OnDelete") {
                errs.push(Cause::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    ru,
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
            nonnegative(
                ru,
                "partition",
                "spec.updateStrategy.rollingUpdate",
                &mut errs,
            );
        }
    }
    if let Some(policy) = spec
        .get("persistentVolumeClaimRetentionPolicy")
        .filter(|p| p.is_object())
    {
        for field in ["whenDeleted", "whenScaled"] {
            one_of(
                policy,
                field,
                "spec.persistentVolumeClaimRetentionPolicy",
                &["Retain", "Delete"],
                false,
                &mut errs,
            );
        }
    }
    let claims = items(spec, "volumeClaimTemplates");
    let claim_names: Vec<&str> = claims
        .iter()
        .filter_map(|c| at(c, &["metadata", "name"]).and_then(Value::as_str))
        .collect();
    for (i, claim) in claims.iter().enumerate() {
        let path = format!("spec.volumeClaimTemplates[{i}]");
        if is_unset(at(claim, &["metadata", "name"])) {
            errs.push(Cause::required(format!("{path}.metadata.name")));
        }
        errs.extend(validate_pvc_spec(
            claim.get("spec"),
            &format!("{path}.spec"),
        ));
    }
    errs.extend(validate_selector_and_template(
        spec,
        "empty selector is invalid for statefulset",
        &claim_names,
    ));
    errs
}

/// StatefulSet update: only a few spec fields may change.
pub(crate) fn validate_stateful_set_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_stateful_set);
    let mutable = [
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let strip = |obj: &Value| {
        let mut spec = spec_of(obj).clone();
        if let Some(map) = spec.as_object_mut() {
            map.retain(|k, _| !mutable.contains(&k.as_str()));
        }
        spec
    };
    if strip(new) != strip(old) {
        errs.push(Cause::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

// ------------------------------------------------------------------ ReplicationController

/// core/v1 ReplicationController defaults: selector and labels from the template, 1 replica.
pub(crate) fn default_replication_controller(obj: &mut Value) {
    let labels = obj
        .get("spec")
        .and_then(template_labels)
        .filter(|l| !is_unset(Some(l)))
        .cloned();
    if let Some(labels) = labels {
        if is_unset(obj.get("spec").and_then(|s| s.get("selector"))) {
            obj["spec"]["selector"] = labels.clone();
        }
        default_labels(obj, labels);
    }
    with_spec(obj, |spec| {
        set_default(spec, "replicas", json!(1));
        default_pod_template(spec.get_mut("template"));
    });
}

/// ReplicationController validation (`ValidateReplicationControllerSpec`): a plain map selector.
pub(crate) fn validate_replication_controller(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    nonnegative_spec_fields(spec, &["replicas", "minReadySeconds"], &mut errs);
    let selector = spec.get("selector");
    if is_unset(selector) {
        errs.push(Cause::required("spec.selector"));
    } else {
        errs.extend(validate_labels(selector, "spec.selector"));
    }
    let template = spec.get("template");
    errs.extend(validate_pod_template(template, "spec.template", &[]));
    let has_template = template.is_some_and(|t| !t.is_null());
    if selector.is_some_and(|sel| {
        has_template && !is_unset(Some(sel)) && !map_selector_matches(sel, template_labels(spec))
    }) {
        errs.push(selector_mismatch(spec));
    }
    errs.extend(validate_controller_template_spec(template));
    errs
}

// A ReplicationController's selector may change, so only the object rules apply on update.
super::meta::plain_updates!(validate_replication_controller_update => validate_replication_controller);
