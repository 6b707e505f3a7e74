//! kubectl's node describer: roles, taints, lease, conditions, addresses, capacity, system
//! info, the pods on the node with their share of its allocatable resources.

use runtime::objects::Quantity;
use serde_json::Value;

use crate::age;
use crate::describe::{Writer, map_items, s};
use crate::error::Result;
use crate::http::{Http, JSON};

/// Writes the node's description (without Events).
pub async fn node(http: &Http, w: &mut Writer, o: &Value) -> Result<()> {
    let (m, spec, st) = (&o["metadata"], &o["spec"], &o["status"]);
    let name = s(&m["name"]);
    w.field(0, "Name", name);
    let mut roles: Vec<String> = m["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(r) => Some(r.to_string()),
            None if k == "kubernetes.io/role" => v.as_str().map(str::to_string),
            None => None,
        })
        .collect();
    roles.sort();
    w.field(
        0,
        "Roles",
        &if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        },
    );
    crate::describe::labels_annotations(w, 0, m);
    w.field(
        0,
        "CreationTimestamp",
        &age::rfc1123z(s(&m["creationTimestamp"])),
    );
    let mut taints: Vec<String> = spec["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| match t["value"].as_str().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}={v}:{}", s(&t["key"]), s(&t["effect"])),
            None => format!("{}:{}", s(&t["key"]), s(&t["effect"])),
        })
        .collect();
    taints.sort();
    w.multiline(0, "Taints", &taints);
    w.field(
        0,
        "Unschedulable",
        &spec["unschedulable"].as_bool().unwrap_or(false).to_string(),
    );
    let lease_path =
        format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}");
    match http.get(&lease_path, JSON).await {
        Ok(l) => {
            let ls = &l["spec"];
            let t = |k: &str| {
                ls[k]
                    .as_str()
                    .map(age::rfc1123z)
                    .unwrap_or_else(|| "<unset>".into())
            };
            w.line(0, "Lease:");
            w.field(
                2,
                "HolderIdentity",
                ls["holderIdentity"].as_str().unwrap_or("<unset>"),
            );
            w.field(2, "AcquireTime", &t("acquireTime"));
            w.field(2, "RenewTime", &t("renewTime"));
        }
        Err(crate::error::CtlError::Server { message, .. }) => {
            w.field(0, "Lease", &format!("Failed to get lease: {message}"));
        }
        Err(e) => return Err(e),
    }
    if let Some(conds) = st["conditions"].as_array().filter(|c| !c.is_empty()) {
        w.line(0, "Conditions:");
        w.line(
            2,
            "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
        );
        w.line(
            2,
            "----\t------\t-----------------\t------------------\t------\t-------",
        );
        for c in conds {
            w.line(
                2,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}",
                    s(&c["type"]),
                    s(&c["status"]),
                    age::rfc1123z(s(&c["lastHeartbeatTime"])),
                    age::rfc1123z(s(&c["lastTransitionTime"])),
                    s(&c["reason"]),
                    s(&c["message"])
                ),
            );
        }
    }
    w.line(0, "Addresses:");
    for a in st["addresses"].as_array().into_iter().flatten() {
        w.field(2, s(&a["type"]), s(&a["address"]));
    }
    for (key, title) in [("capacity", "Capacity"), ("allocatable", "Allocatable")] {
        let items = map_items(&st[key], ":\t", &[]);
        if !items.is_empty() {
            w.line(0, &format!("{title}:"));
            for it in items {
                w.line(2, &it);
            }
        }
    }
    let info = &st["nodeInfo"];
    w.line(0, "System Info:");
    for (k, label) in [
        ("machineID", "Machine ID"),
        ("systemUUID", "System UUID"),
        ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"),
        ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"),
        ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
        ("kubeProxyVersion", "Kube-Proxy Version"),
    ] {
        w.field(2, label, s(&info[k]));
    }
    if let Some(c) = spec["podCIDR"].as_str().filter(|c| !c.is_empty()) {
        w.field(0, "PodCIDR", c);
    }
    let cidrs: Vec<&str> = spec["podCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !cidrs.is_empty() {
        w.field(0, "PodCIDRs", &cidrs.join(","));
    }
    if let Some(p) = spec["providerID"].as_str().filter(|c| !c.is_empty()) {
        w.field(0, "ProviderID", p);
    }
    pods_on_node(http, w, name, &st["allocatable"]).await
}

/// The sum of one resource over a pod's containers (requests or limits).
fn pod_sum(pod: &Value, kind: &str, resource: &str) -> Vec<String> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["resources"][kind][resource].as_str().map(str::to_string))
        .collect()
}

/// Adds quantities; a single one keeps its spelling, as kubectl's does.
fn total(parts: &[String]) -> (String, i128) {
    let nanos: i128 = parts
        .iter()
        .filter_map(|p| Quantity::parse(p).ok())
        .map(|q| q.nanos())
        .sum();
    let text = match parts {
        [] => "0".to_string(),
        [one] => one.clone(),
        _ => format_nanos(nanos),
    };
    (text, nanos)
}

fn format_nanos(n: i128) -> String {
    const NANO: i128 = 1_000_000_000;
    if n % NANO != 0 {
        return format!("{}m", n / 1_000_000);
    }
    let v = n / NANO;
    for (suffix, scale) in [("Gi", 1i128 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if v != 0 && v % scale == 0 {
            return format!("{}{suffix}", v / scale);
        }
    }
    v.to_string()
}

fn percent(part: i128, whole: &Value) -> i128 {
    let whole = whole
        .as_str()
        .and_then(|w| Quantity::parse(w).ok())
        .map(|q| q.nanos())
        .unwrap_or(0);
    if whole == 0 { 0 } else { part * 100 / whole }
}

async fn pods_on_node(http: &Http, w: &mut Writer, node: &str, alloc: &Value) -> Result<()> {
    let selector = format!("spec.nodeName={node},status.phase!=Succeeded,status.phase!=Failed");
    let path = format!(
        "/api/v1/pods?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("fieldSelector", &selector)
            .finish()
    );
    let list = http.get(&path, JSON).await?;
    let pods = list["items"].as_array().cloned().unwrap_or_default();
    w.field(
        0,
        "Non-terminated Pods",
        &format!("({} in total)", pods.len()),
    );
    w.line(
        2,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge",
    );
    w.line(
        2,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---",
    );
    let resources = ["cpu", "memory", "ephemeral-storage"];
    let mut sums: Vec<(Vec<String>, Vec<String>)> = vec![(Vec::new(), Vec::new()); resources.len()];
    for p in &pods {
        let cell = |kind: &str, r: &str| {
            let (t, n) = total(&pod_sum(p, kind, r));
            format!("{t} ({}%)", percent(n, &alloc[r]))
        };
        let created = s(&p["metadata"]["creationTimestamp"]);
        w.line(
            2,
            &format!(
                "{}\t{}\t\t{}\t{}\t{}\t{}\t{}",
                s(&p["metadata"]["namespace"]),
                s(&p["metadata"]["name"]),
                cell("requests", "cpu"),
                cell("limits", "cpu"),
                cell("requests", "memory"),
                cell("limits", "memory"),
                age::since(created).map(age::human).unwrap_or_default()
            ),
        );
        for (i, r) in resources.iter().enumerate() {
            sums[i].0.extend(pod_sum(p, "requests", r));
            sums[i].1.extend(pod_sum(p, "limits", r));
        }
    }
    w.line(0, "Allocated resources:");
    w.line(
        2,
        "(Total limits may be over 100 percent, i.e., overcommitted.)",
    );
    w.line(2, "Resource\tRequests\tLimits");
    w.line(2, "--------\t--------\t------");
    for (i, r) in resources.iter().enumerate() {
        let (rq, rn) = total(&sums[i].0);
        let (lq, ln) = total(&sums[i].1);
        w.line(
            2,
            &format!(
                "{r}\t{rq} ({}%)\t{lq} ({}%)",
                percent(rn, &alloc[r]),
                percent(ln, &alloc[r])
            ),
        );
    }
    Ok(())
}
