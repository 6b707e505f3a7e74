//! Printers for coordination, discovery, networking and RBAC kinds.

use jiff::Timestamp;
use serde_json::Value;

use super::core_v1::load_balancer_addresses;
use super::util::*;
use super::{AGE, Column, NAME, col, wide};

fn name(obj: &Value) -> Value {
    s(str_at(obj, &["metadata", "name"]))
}

/// Up to `max` items joined by `,`, then `+ N more...`; `<unset>` when empty.
fn list_with_more(items: &[String], max: usize) -> String {
    if items.len() > max {
        format!("{} + {} more...", items[..max].join(","), items.len() - max)
    } else if items.is_empty() {
        "<unset>".to_owned()
    } else {
        items.join(",")
    }
}

pub(super) const LEASE: &[Column] = &[
    NAME,
    col(
        "Holder",
        "string",
        "The identity currently holding the lease.",
    ),
    AGE,
];

pub(super) fn lease(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(lease),
        s(str_at(lease, &["spec", "holderIdentity"])),
        age(lease, now),
    ]
}

pub(super) const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", "IPv4, IPv6 or FQDN."),
    col("Ports", "string", "Up to three port numbers (or names)."),
    col("Endpoints", "string", "Up to three endpoint addresses."),
    AGE,
];

pub(super) fn endpoint_slice(slice: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = arr_at(slice, &["ports"])
        .iter()
        .map(|p| match (opt_int(p, &["port"]), opt_str(p, &["name"])) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.to_owned(),
            (None, None) => "*".to_owned(),
        })
        .collect();
    let addresses: Vec<String> = arr_at(slice, &["endpoints"])
        .iter()
        .flat_map(|e| arr_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_owned())
        .collect();
    vec![
        name(slice),
        s(str_at(slice, &["addressType"])),
        s(list_with_more(&ports, 3)),
        s(list_with_more(&addresses, 3)),
        age(slice, now),
    ]
}

pub(super) const NETWORK_POLICY: &[Column] = &[
    NAME,
    col("Pod-Selector", "string", "The pods the policy applies to."),
    AGE,
];

pub(super) fn network_policy(np: &Value, now: Timestamp) -> Vec<Value> {
    // podSelector is a struct, not a pointer: absent means "all pods".
    let empty = Value::Object(Default::default());
    let selector = at(np, &["spec", "podSelector"])
        .filter(|v| !v.is_null())
        .unwrap_or(&empty);
    vec![
        name(np),
        s(format_label_selector(Some(selector))),
        age(np, now),
    ]
}

pub(super) const INGRESS: &[Column] = &[
    NAME,
    col("Class", "string", "The IngressClass handling this ingress."),
    col("Hosts", "string", "Up to three hosts the rules match."),
    col(
        "Address",
        "string",
        "Addresses of the load balancer serving the ingress.",
    ),
    col("Ports", "string", "80, plus 443 when TLS is configured."),
    AGE,
];

pub(super) fn ingress(ing: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let rules = arr_at(ing, &["spec", "rules"]);
    // Non-empty hosts until three are listed; any rule after that is "more".
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
            break;
        }
        match str_at(rule, &["host"]) {
            "" => {}
            host => hosts.push(host),
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_owned()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    };
    let ports = if arr_at(ing, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(ing),
        s(opt_str(ing, &["spec", "ingressClassName"]).unwrap_or("<none>")),
        s(hosts),
        s(load_balancer_addresses(ing).join(",")),
        s(ports),
        age(ing, now),
    ]
}

pub(super) const ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "string", "The bound role, as Kind/name."),
    AGE,
    wide("Users", "string", "Users the binding grants the role to."),
    wide("Groups", "string", "Groups the binding grants the role to."),
    wide(
        "ServiceAccounts",
        "string",
        "Service accounts (namespace/name) the binding grants the role to.",
    ),
];

/// Shared by RoleBinding and ClusterRoleBinding.
pub(super) fn role_binding(rb: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(rb, &["roleRef", "kind"]),
        str_at(rb, &["roleRef", "name"])
    );
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for subject in arr_at(rb, &["subjects"]) {
        let subject_name = str_at(subject, &["name"]);
        match str_at(subject, &["kind"]) {
            "User" => users.push(subject_name.to_owned()),
            "Group" => groups.push(subject_name.to_owned()),
            "ServiceAccount" => sas.push(format!(
                "{}/{subject_name}",
                str_at(subject, &["namespace"])
            )),
            _ => {}
        }
    }
    vec![
        name(rb),
        s(role),
        age(rb, now),
        s(users.join(", ")),
        s(groups.join(", ")),
        s(sas.join(", ")),
    ]
}
