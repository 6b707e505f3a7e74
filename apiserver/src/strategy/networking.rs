//! `networking.k8s.io`: NetworkPolicy and Ingress.

use serde_json::{Value, json};

use super::fields::{
    at, child, index, int_at, invalid_str, is_cidr, is_unset, items, items_mut, one_of, required,
    set_default_str, spec_of, str_at, string_or_empty,
};
use super::meta::{
    NameRule, dns1123_subdomain, plain_updates, validate_label_selector, validate_object_meta,
};
use super::pod::validate_port_num_or_name;
use crate::error::Cause;

// ------------------------------------------------------------------------------ networking

/// NetworkPolicy defaults: TCP ports, and policy types from the rules present.
pub(crate) fn default_network_policy(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    for list in ["ingress", "egress"] {
        for rule in items_mut(spec, list) {
            for port in items_mut(rule, "ports") {
                set_default_str(port, "protocol", "TCP");
            }
        }
    }
    if is_unset(spec.get("policyTypes")) {
        let mut types = vec![json!("Ingress")];
        if !items(spec, "egress").is_empty() {
            types.push(json!("Egress"));
        }
        spec["policyTypes"] = Value::Array(types);
    }
}

/// NetworkPolicy validation: selectors, peers, ports, policy types.
pub(crate) fn validate_network_policy(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    errs.extend(validate_label_selector(
        spec.get("podSelector"),
        "spec.podSelector",
    ));
    for (list, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(spec, list).iter().enumerate() {
            let rp = index(&child("spec", list), i);
            for (j, port) in items(rule, "ports").iter().enumerate() {
                let pp = index(&child(&rp, "ports"), j);
                one_of(
                    port,
                    "protocol",
                    &pp,
                    &["TCP", "UDP", "SCTP"],
                    false,
                    &mut errs,
                );
                if let Some(p) = port.get("port").filter(|p| !p.is_null()) {
                    validate_port_num_or_name(Some(p), &child(&pp, "port"), &mut errs);
                }
                if let Some(end) = int_at(port, "endPort") {
                    match port.get("port").and_then(Value::as_i64) {
                        Some(start) if end >= start => {}
                        Some(_) => errs.push(Cause::invalid(
                            child(&pp, "endPort"),
                            &json!(end),
                            "must be greater than or equal to `port`",
                        )),
                        None => errs.push(Cause::required(child(&pp, "port"))),
                    }
                }
            }
            for (j, peer) in items(rule, peers).iter().enumerate() {
                let pp = index(&child(&rp, peers), j);
                for sel in ["podSelector", "namespaceSelector"] {
                    errs.extend(validate_label_selector(peer.get(sel), &child(&pp, sel)));
                }
                if let Some(cidr) = at(peer, &["ipBlock", "cidr"])
                    .and_then(Value::as_str)
                    .filter(|c| !is_cidr(c))
                {
                    errs.push(invalid_str(
                        child(&pp, "ipBlock.cidr"),
                        cidr,
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    ));
                }
            }
        }
    }
    let types = items(spec, "policyTypes");
    for t in types {
        if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
            errs.push(Cause::not_supported(
                "spec.policyTypes",
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
    if types.len() > 2 {
        errs.push(Cause::invalid(
            "spec.policyTypes",
            &json!(types),
            "may not specify more than two policyTypes",
        ));
    }
    errs
}

/// An Ingress backend: a service (name + port name or number) or a resource, not both.
fn validate_ingress_backend(backend: &Value, path: &str, errs: &mut Vec<Cause>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => errs.push(invalid_str(
            path,
            "",
            "cannot set both service and resource backends",
        )),
        (None, None) => errs.push(invalid_str(
            path,
            "",
            "one backend (`service` or `resource`) must be specified",
        )),
        (Some(svc), None) => {
            let sp = child(path, "service");
            if is_unset(svc.get("name")) {
                errs.push(Cause::required(child(&sp, "name")));
            }
            let port = svc.get("port").unwrap_or(&Value::Null);
            match (
                is_unset(port.get("name")),
                int_at(port, "number").unwrap_or(0),
            ) {
                (true, 0) => errs.push(required(
                    child(&sp, "port"),
                    "port name or number is required",
                )),
                (false, n) if n != 0 => errs.push(invalid_str(
                    child(&sp, "port"),
                    "",
                    "cannot set both port name & port number",
                )),
                (true, n) => super::pod::port_number(n, &child(&sp, "port.number"), errs),
                (false, _) => {}
            }
        }
        (None, Some(_)) => {}
    }
}

/// Ingress validation: hosts, paths (with required `pathType`), backends.
pub(crate) fn validate_ingress(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let spec = spec_of(obj);
    if let Some(backend) = spec.get("defaultBackend").filter(|b| !b.is_null()) {
        validate_ingress_backend(backend, "spec.defaultBackend", &mut errs);
    }
    for (i, rule) in items(spec, "rules").iter().enumerate() {
        let rp = index("spec.rules", i);
        if let Some(host) = str_at(rule, "host").filter(|h| !h.is_empty()) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            for msg in dns1123_subdomain(bare) {
                errs.push(invalid_str(child(&rp, "host"), host, &msg));
            }
            if super::fields::is_ip(host) {
                errs.push(invalid_str(
                    child(&rp, "host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let paths_path = child(&rp, "http.paths");
        let paths = items(http, "paths");
        if paths.is_empty() {
            errs.push(Cause::required(&paths_path));
        }
        for (j, p) in paths.iter().enumerate() {
            let pp = index(&paths_path, j);
            let path = string_or_empty(p, "path");
            match str_at(p, "pathType") {
                None | Some("") => errs.push(required(
                    child(&pp, "pathType"),
                    "pathType must be specified",
                )),
                Some("Exact" | "Prefix") if !path.starts_with('/') => {
                    errs.push(invalid_str(
                        child(&pp, "path"),
                        path,
                        "must be an absolute path",
                    ));
                }
                Some("Exact" | "Prefix" | "ImplementationSpecific") => {}
                Some(other) => errs.push(Cause::not_supported(
                    child(&pp, "pathType"),
                    &json!(other),
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            validate_ingress_backend(
                p.get("backend").unwrap_or(&Value::Null),
                &child(&pp, "backend"),
                &mut errs,
            );
        }
    }
    errs
}

plain_updates!(
    validate_network_policy_update => validate_network_policy,
    validate_ingress_update => validate_ingress,
);
