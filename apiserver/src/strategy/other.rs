//! The remaining kinds: kinds without a strategy, the scale and eviction subresource bodies,
//! Lease, HorizontalPodAutoscaler and PodDisruptionBudget.

use serde_json::{Value, json};

use super::fields::{
    child, index, int_at, int_or_percent, is_unset, items, nonnegative, object_mut, one_of,
    positive, required, set_default, set_default_str, spec_of, str_at,
};
use super::meta::{NameRule, plain_updates, validate_label_selector, validate_object_meta};
use crate::error::Cause;

// ------------------------------------------------------------------------------ generic

/// Kinds without a strategy: metadata rules only.
pub(crate) fn validate_generic(obj: &Value) -> Vec<Cause> {
    validate_object_meta(obj, NameRule::Subdomain)
}

// ------------------------------------------------------------------------------ Scale, Eviction

/// Scale (scale subresource body) validation: non-negative replicas.
pub(crate) fn validate_scale(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    nonnegative(spec_of(obj), "replicas", "spec", &mut errs);
    errs
}

/// Eviction (pods/eviction body) validation: metadata only; the pod is named by the URL.
pub(crate) fn validate_eviction(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    if let Some(opts) = obj.get("deleteOptions") {
        nonnegative(opts, "gracePeriodSeconds", "deleteOptions", &mut errs);
    }
    errs
}

// ------------------------------------------------------------------------------ Lease

/// Lease validation: positive duration, non-negative transitions.
pub(crate) fn validate_lease(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    positive(spec, "leaseDurationSeconds", "spec", &mut errs);
    nonnegative(spec, "leaseTransitions", "spec", &mut errs);
    errs
}

// ------------------------------------------------------------------------------ autoscaling

/// `autoscaling/v2` HPA defaults: 1 min replica, 80% CPU when no metric is given, and the
/// default scaling rules filled into a given `behavior`.
pub(crate) fn default_hpa(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if is_unset(spec.get("metrics")) {
        spec["metrics"] = json!([{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
        }]);
    }
    let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) else {
        return;
    };
    if let Some(up) = object_mut(behavior, "scaleUp") {
        set_default(up, "stabilizationWindowSeconds", json!(0));
        set_default_str(up, "selectPolicy", "Max");
        set_default(
            up,
            "policies",
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
    if let Some(down) = object_mut(behavior, "scaleDown") {
        set_default_str(down, "selectPolicy", "Max");
        set_default(
            down,
            "policies",
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

/// HPA validation: target reference, replica bounds, metric sources.
pub(crate) fn validate_hpa(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    for field in ["kind", "name"] {
        if is_unset(target.get(field)) {
            errs.push(Cause::required(child("spec.scaleTargetRef", field)));
        }
    }
    let min = int_at(spec, "minReplicas");
    if let Some(min) = min.filter(|m| *m < 1) {
        errs.push(Cause::invalid(
            "spec.minReplicas",
            &json!(min),
            "must be greater than or equal to 1",
        ));
    }
    let max = int_at(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let sources = [
        ("Object", "object"),
        ("Pods", "pods"),
        ("Resource", "resource"),
        ("ContainerResource", "containerResource"),
        ("External", "external"),
    ];
    for (i, metric) in items(spec, "metrics").iter().enumerate() {
        let p = index("spec.metrics", i);
        let kinds: Vec<&str> = sources.iter().map(|(k, _)| *k).collect();
        one_of(metric, "type", &p, &kinds, true, &mut errs);
        let source = sources
            .iter()
            .find(|(k, _)| str_at(metric, "type") == Some(k));
        if let Some((_, field)) = source.filter(|(_, f)| is_unset(metric.get(*f))) {
            errs.push(required(
                child(&p, field),
                "must populate information for the given metric source",
            ));
        }
        for (_, field) in sources {
            if let Some(t) = metric.get(field).and_then(|m| m.get("target")) {
                one_of(
                    t,
                    "type",
                    &child(&child(&p, field), "target"),
                    &["Utilization", "Value", "AverageValue"],
                    true,
                    &mut errs,
                );
            }
        }
    }
    errs
}

// ------------------------------------------------------------------------------ policy

/// PodDisruptionBudget validation: `minAvailable` xor `maxUnavailable`, selector, policy.
pub(crate) fn validate_pdb(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        errs.push(Cause::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    int_or_percent(min, "spec.minAvailable", true, &mut errs);
    int_or_percent(max, "spec.maxUnavailable", true, &mut errs);
    errs.extend(validate_label_selector(
        spec.get("selector"),
        "spec.selector",
    ));
    one_of(
        spec,
        "unhealthyPodEvictionPolicy",
        "spec",
        &["IfHealthyBudget", "AlwaysAllow"],
        false,
        &mut errs,
    );
    errs
}

plain_updates!(
    validate_generic_update => validate_generic,
    validate_scale_update => validate_scale,
    validate_eviction_update => validate_eviction,
    validate_lease_update => validate_lease,
    validate_hpa_update => validate_hpa,
    validate_pdb_update => validate_pdb,
);
