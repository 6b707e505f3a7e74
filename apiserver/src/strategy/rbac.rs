//! RBAC: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

use serde_json::{Value, json};

use super::fields::{
    child, index, invalid_str, is_unset, items, items_mut, one_of, required, set_default, str_at,
    string_or_empty,
};
use super::meta::{
    NameRule, dns1123_subdomain, path_segment_name, plain_updates, update_with,
    validate_label_selector, validate_object_meta,
};
use crate::error::Cause;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

// ------------------------------------------------------------------------------ RBAC

fn validate_policy_rules(obj: &Value, namespaced: bool) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::PathSegment);
    for (i, rule) in items(obj, "rules").iter().enumerate() {
        let p = index("rules", i);
        if items(rule, "verbs").is_empty() {
            errs.push(required(
                child(&p, "verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = items(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let up = child(&p, "nonResourceURLs");
            if namespaced {
                errs.push(Cause::invalid(
                    &up,
                    &json!(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !items(rule, "apiGroups").is_empty() || !items(rule, "resources").is_empty() {
                errs.push(Cause::invalid(
                    &up,
                    &json!(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if items(rule, "apiGroups").is_empty() {
            errs.push(required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if items(rule, "resources").is_empty() {
            errs.push(required(
                child(&p, "resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

/// Role validation: path-segment name, resource rules only.
pub(crate) fn validate_role(obj: &Value) -> Vec<Cause> {
    validate_policy_rules(obj, true)
}

/// ClusterRole validation: path-segment name, rules, aggregation selectors.
pub(crate) fn validate_cluster_role(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_policy_rules(obj, false);
    for (i, sel) in items(
        obj.get("aggregationRule").unwrap_or(&Value::Null),
        "clusterRoleSelectors",
    )
    .iter()
    .enumerate()
    {
        errs.extend(validate_label_selector(
            Some(sel),
            &index("aggregationRule.clusterRoleSelectors", i),
        ));
    }
    errs
}

/// RoleBinding/ClusterRoleBinding defaults: subjects' apiGroup by kind.
pub(crate) fn default_role_binding(obj: &mut Value) {
    for subject in items_mut(obj, "subjects") {
        let group = match str_at(subject, "kind") {
            Some("ServiceAccount") => "",
            Some("User" | "Group") => RBAC_GROUP,
            _ => continue,
        };
        set_default(subject, "apiGroup", json!(group));
    }
}

fn validate_binding_common(
    obj: &Value,
    role_kinds: &[&str],
    namespace_required: bool,
) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::PathSegment);
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    if str_at(role_ref, "apiGroup") != Some(RBAC_GROUP) {
        errs.push(Cause::not_supported(
            "roleRef.apiGroup",
            role_ref.get("apiGroup").unwrap_or(&json!("")),
            &[RBAC_GROUP],
        ));
    }
    one_of(role_ref, "kind", "roleRef", role_kinds, true, &mut errs);
    let role_name = string_or_empty(role_ref, "name");
    if role_name.is_empty() {
        errs.push(Cause::required("roleRef.name"));
    }
    for msg in path_segment_name(role_name) {
        errs.push(invalid_str("roleRef.name", role_name, &msg));
    }
    for (i, s) in items(obj, "subjects").iter().enumerate() {
        let p = index("subjects", i);
        let name = string_or_empty(s, "name");
        if name.is_empty() {
            errs.push(Cause::required(child(&p, "name")));
        }
        let group = s.get("apiGroup").cloned().unwrap_or(json!(""));
        match str_at(s, "kind") {
            Some("ServiceAccount") => {
                if group != json!("") {
                    errs.push(Cause::not_supported(child(&p, "apiGroup"), &group, &[""]));
                }
                for msg in dns1123_subdomain(name)
                    .into_iter()
                    .filter(|_| !name.is_empty())
                {
                    errs.push(invalid_str(child(&p, "name"), name, &msg));
                }
                if namespace_required && is_unset(s.get("namespace")) {
                    errs.push(Cause::required(child(&p, "namespace")));
                }
            }
            Some("User" | "Group") => {
                if group != json!(RBAC_GROUP) {
                    errs.push(Cause::not_supported(
                        child(&p, "apiGroup"),
                        &group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            _ => one_of(
                s,
                "kind",
                &p,
                &["ServiceAccount", "User", "Group"],
                true,
                &mut errs,
            ),
        }
    }
    errs
}

/// RoleBinding validation: role reference (Role or ClusterRole) and subjects.
pub(crate) fn validate_role_binding(obj: &Value) -> Vec<Cause> {
    validate_binding_common(obj, &["Role", "ClusterRole"], false)
}

/// ClusterRoleBinding validation: ClusterRole reference, namespaced service-account subjects.
pub(crate) fn validate_cluster_role_binding(obj: &Value) -> Vec<Cause> {
    validate_binding_common(obj, &["ClusterRole"], true)
}

fn role_ref_unchanged(new: &Value, old: &Value, errs: &mut Vec<Cause>) {
    if new.get("roleRef") != old.get("roleRef") {
        errs.push(Cause::invalid(
            "roleRef",
            new.get("roleRef").unwrap_or(&Value::Null),
            "cannot change roleRef",
        ));
    }
}

/// RoleBinding update: the role reference is immutable.
pub(crate) fn validate_role_binding_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_role_binding);
    role_ref_unchanged(new, old, &mut errs);
    errs
}

/// ClusterRoleBinding update: the role reference is immutable.
pub(crate) fn validate_cluster_role_binding_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_cluster_role_binding);
    role_ref_unchanged(new, old, &mut errs);
    errs
}

plain_updates!(
    validate_role_update => validate_role,
    validate_cluster_role_update => validate_cluster_role,
);
