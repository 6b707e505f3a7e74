//! Services and their endpoints (Endpoints, EndpointSlice).
//!
//! Cluster IP and node port *allocation* is the registry's job; here are the defaults and the
//! shape rules of `ValidateService` and friends.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::fields::{
    IP_MSG, child, index, int_at, invalid_str, is_ip, is_unset, items, items_mut, one_of,
    set_default, set_default_str, str_at, string_or_empty,
};
use super::meta::{
    NameRule, dns1123_label, dns1123_subdomain, update_with, validate_labels, validate_object_meta,
};
use super::pod::{port_number, validate_port_num_or_name};
use crate::error::Cause;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

fn is_headless(spec: &Value) -> bool {
    str_at(spec, "clusterIP") == Some("None")
}

/// Service defaults: ClusterIP, no session affinity, TCP ports targeting themselves, traffic
/// policies, single-stack IPv4 (dual-stack for selector-less headless services, as Kubernetes
/// does).
pub(crate) fn default_service(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    set_default_str(spec, "type", "ClusterIP");
    set_default_str(spec, "sessionAffinity", "None");
    if str_at(spec, "sessionAffinity") == Some("ClientIP") {
        set_default(
            spec,
            "sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
    }
    for port in items_mut(spec, "ports") {
        set_default_str(port, "protocol", "TCP");
        let target_unset =
            is_unset(port.get("targetPort")) || port.get("targetPort") == Some(&json!(0));
        if let Some(p) = port.get("port").cloned().filter(|_| target_unset) {
            port["targetPort"] = p;
        }
    }
    let ty = string_or_empty(spec, "type").to_string();
    if ty == "ExternalName" {
        return;
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    set_default_str(spec, "internalTrafficPolicy", "Cluster");
    if is_headless(spec) && is_unset(spec.get("selector")) {
        set_default_str(spec, "ipFamilyPolicy", "RequireDualStack");
        set_default(spec, "ipFamilies", json!(["IPv4", "IPv6"]));
    } else {
        set_default_str(spec, "ipFamilyPolicy", "SingleStack");
        set_default(spec, "ipFamilies", json!(["IPv4"]));
    }
}

/// Service validation (`ValidateService`): DNS-1035 name, type, ports, selector, IPs,
/// traffic policies.
pub(crate) fn validate_service(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Dns1035);
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        errs.push(Cause::required("spec"));
        return errs;
    };
    one_of(
        spec,
        "type",
        "spec",
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        true,
        &mut errs,
    );
    let ty = string_or_empty(spec, "type");
    let ports = items(spec, "ports");
    if ports.is_empty() && ty != "ExternalName" && !is_headless(spec) {
        errs.push(Cause::required("spec.ports"));
    }
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = string_or_empty(port, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                errs.push(Cause::required(child(&p, "name")));
            }
        } else {
            for msg in dns1123_label(name) {
                errs.push(invalid_str(child(&p, "name"), name, &msg));
            }
            if !names.insert(name) {
                errs.push(Cause::duplicate(child(&p, "name"), &json!(name)));
            }
        }
        let number = int_at(port, "port").unwrap_or(0);
        port_number(number, &child(&p, "port"), &mut errs);
        one_of(port, "protocol", &p, PROTOCOLS, true, &mut errs);
        if !keys.insert((number, string_or_empty(port, "protocol"))) {
            errs.push(Cause::duplicate(
                &p,
                &json!({"port": number, "protocol": string_or_empty(port, "protocol")}),
            ));
        }
        if ty != "ExternalName" {
            validate_port_num_or_name(port.get("targetPort"), &child(&p, "targetPort"), &mut errs);
        }
        if let Some(node_port) = int_at(port, "nodePort").filter(|n| *n != 0) {
            let np = child(&p, "nodePort");
            if ty == "NodePort" || ty == "LoadBalancer" {
                if !NODE_PORT_RANGE.contains(&node_port) {
                    errs.push(Cause::invalid(
                        np,
                        &json!(node_port),
                        "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    ));
                }
            } else {
                errs.push(Cause::forbidden(
                    np,
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            }
        }
    }
    one_of(
        spec,
        "sessionAffinity",
        "spec",
        &["ClientIP", "None"],
        true,
        &mut errs,
    );
    if ty == "ExternalName" {
        let external = string_or_empty(spec, "externalName");
        if external.is_empty() {
            errs.push(Cause::required("spec.externalName"));
        } else {
            for msg in dns1123_subdomain(external.strip_suffix('.').unwrap_or(external)) {
                errs.push(invalid_str("spec.externalName", external, &msg));
            }
        }
        if let Some(ip) = str_at(spec, "clusterIP").filter(|ip| !ip.is_empty()) {
            errs.push(Cause::forbidden(
                "spec.clusterIP",
                &format!("may not be set for ExternalName services, got {ip:?}"),
            ));
        }
    } else {
        errs.extend(validate_labels(spec.get("selector"), "spec.selector"));
        if let Some(ip) =
            str_at(spec, "clusterIP").filter(|ip| !ip.is_empty() && *ip != "None" && !is_ip(ip))
        {
            errs.push(invalid_str("spec.clusterIPs[0]", ip, IP_MSG));
        }
    }
    for (i, ip) in items(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        if !is_ip(ip) {
            errs.push(invalid_str(index("spec.externalIPs", i), ip, IP_MSG));
        }
    }
    one_of(
        spec,
        "externalTrafficPolicy",
        "spec",
        &["Cluster", "Local"],
        false,
        &mut errs,
    );
    if !is_unset(spec.get("externalTrafficPolicy")) && ty != "NodePort" && ty != "LoadBalancer" {
        let v = spec.get("externalTrafficPolicy").unwrap_or(&Value::Null);
        errs.push(Cause::invalid(
            "spec.externalTrafficPolicy",
            v,
            "may only be set for externally-accessible services",
        ));
    }
    one_of(
        spec,
        "internalTrafficPolicy",
        "spec",
        &["Cluster", "Local"],
        false,
        &mut errs,
    );
    one_of(
        spec,
        "ipFamilyPolicy",
        "spec",
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
        false,
        &mut errs,
    );
    for (i, family) in items(spec, "ipFamilies").iter().enumerate() {
        if !matches!(family.as_str(), Some("IPv4" | "IPv6")) {
            errs.push(Cause::not_supported(
                index("spec.ipFamilies", i),
                family,
                &["IPv4", "IPv6"],
            ));
        }
    }
    errs
}

/// Service update: a set cluster IP may not change (an omitted one is carried over by the
/// registry, as Kubernetes does).
pub(crate) fn validate_service_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_service);
    let ip = |o: &Value| {
        o.get("spec")
            .and_then(|s| str_at(s, "clusterIP"))
            .unwrap_or("")
            .to_string()
    };
    let (new_ip, old_ip) = (ip(new), ip(old));
    let to_external_name = new.get("spec").and_then(|s| str_at(s, "type")) == Some("ExternalName");
    if !old_ip.is_empty() && !new_ip.is_empty() && new_ip != old_ip && !to_external_name {
        errs.push(invalid_str(
            "spec.clusterIPs[0]",
            &new_ip,
            "may not change once set",
        ));
    }
    errs
}

// ------------------------------------------------------------------------------ Endpoints

/// Endpoints defaults: port protocol TCP.
pub(crate) fn default_endpoints(obj: &mut Value) {
    for subset in items_mut(obj, "subsets") {
        for port in items_mut(subset, "ports") {
            set_default_str(port, "protocol", "TCP");
        }
    }
}

/// Endpoints validation: address IPs, ports (names required when several).
pub(crate) fn validate_endpoints(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    for (i, subset) in items(obj, "subsets").iter().enumerate() {
        let sp = index("subsets", i);
        for list in ["addresses", "notReadyAddresses"] {
            for (j, addr) in items(subset, list).iter().enumerate() {
                let ip = string_or_empty(addr, "ip");
                let p = child(&index(&child(&sp, list), j), "ip");
                if !is_ip(ip) {
                    errs.push(invalid_str(p, ip, IP_MSG));
                }
            }
        }
        let ports = items(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            let p = index(&child(&sp, "ports"), j);
            validate_endpoint_port(port, &p, ports.len() > 1, &mut errs);
        }
    }
    errs
}

fn validate_endpoint_port(port: &Value, p: &str, name_required: bool, errs: &mut Vec<Cause>) {
    let name = string_or_empty(port, "name");
    if name.is_empty() {
        if name_required {
            errs.push(Cause::required(child(p, "name")));
        }
    } else {
        for msg in dns1123_label(name) {
            errs.push(invalid_str(child(p, "name"), name, &msg));
        }
    }
    port_number(int_at(port, "port").unwrap_or(0), &child(p, "port"), errs);
    one_of(port, "protocol", p, PROTOCOLS, true, errs);
}

super::meta::plain_updates!(validate_endpoints_update => validate_endpoints);

// -------------------------------------------------------------------------- EndpointSlice

/// EndpointSlice defaults (`discovery/v1`): ports get protocol TCP and an empty name.
pub(crate) fn default_endpoint_slice(obj: &mut Value) {
    for port in items_mut(obj, "ports") {
        set_default_str(port, "protocol", "TCP");
        set_default(port, "name", json!(""));
    }
}

/// EndpointSlice validation: address type, 1–100 addresses per endpoint, ports.
pub(crate) fn validate_endpoint_slice(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    one_of(
        obj,
        "addressType",
        "",
        &["IPv4", "IPv6", "FQDN"],
        true,
        &mut errs,
    );
    let address_type = string_or_empty(obj, "addressType");
    for (i, ep) in items(obj, "endpoints").iter().enumerate() {
        let p = child(&index("endpoints", i), "addresses");
        let addresses = items(ep, "addresses");
        if addresses.is_empty() || addresses.len() > 100 {
            errs.push(Cause::invalid(
                &p,
                &json!(addresses.len()),
                "must contain at least 1 and at most 100 addresses",
            ));
        }
        for (j, a) in addresses.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let ok = match address_type {
                "IPv4" => a.parse::<std::net::Ipv4Addr>().is_ok(),
                "IPv6" => a.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => dns1123_subdomain(a).is_empty(),
            };
            if !ok {
                let msg = match address_type {
                    "IPv4" => "must be a valid IPv4 address",
                    "IPv6" => "must be a valid IPv6 address",
                    _ => "must be a valid FQDN",
                };
                errs.push(invalid_str(index(&p, j), a, msg));
            }
        }
    }
    let ports = items(obj, "ports");
    for (i, port) in ports.iter().enumerate() {
        let p = index("ports", i);
        let name = string_or_empty(port, "name");
        if !name.is_empty() {
            for msg in dns1123_label(name) {
                errs.push(invalid_str(child(&p, "name"), name, &msg));
            }
        }
        if let Some(n) = int_at(port, "port") {
            port_number(n, &child(&p, "port"), &mut errs);
        }
        one_of(port, "protocol", &p, PROTOCOLS, false, &mut errs);
    }
    errs
}

/// EndpointSlice update: the address type is immutable.
pub(crate) fn validate_endpoint_slice_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_endpoint_slice);
    super::fields::check_immutable(new, old, &["addressType"], "addressType", &mut errs);
    errs
}
