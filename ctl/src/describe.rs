//! `skiffctl describe`: kubectl's describers for pods, deployments, services and configmaps
//! (plus a generic one for everything else), each followed by the object's Events.
//!
//! Describers write tab-separated lines; the whole output then goes through Go's tabwriter
//! algorithm (padding 2), as kubectl's does, so sections align exactly as they do there.

use serde_json::Value;

use crate::age;
use crate::discovery::{Discovery, Resource};
use crate::error::{CtlError, Result};
use crate::get::{collection, targets};
use crate::http::{Http, JSON};
use crate::jsonpath::scalar;

/// Flags of `describe`.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// TYPE [NAME...] or TYPE/NAME
    pub args: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// The annotation kubectl leaves out of describe.
const LAST_APPLIED: &str = crate::apply::LAST_APPLIED;

/// Runs `describe`.
pub async fn run(http: &Http, disc: &Discovery, a: &DescribeArgs) -> Result<()> {
    let ns = http.namespace.clone();
    let mut objects = Vec::new();
    for t in targets(disc, &a.args)? {
        if t.names.is_empty() {
            let mut path = collection(t.resource, Some(&ns));
            if let Some(s) = &a.selector {
                path = format!(
                    "{path}?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("labelSelector", s)
                        .finish()
                );
            }
            let list = http.get(&path, JSON).await?;
            for it in list["items"].as_array().cloned().unwrap_or_default() {
                objects.push((t.resource, it));
            }
        } else {
            for n in &t.names {
                let path = format!("{}/{n}", collection(t.resource, Some(&ns)));
                objects.push((t.resource, http.get(&path, JSON).await?));
            }
        }
    }
    if objects.is_empty() {
        eprintln!("No resources found in {ns} namespace.");
        return Ok(());
    }
    let mut pages = Vec::new();
    for (r, o) in &objects {
        let mut w = Writer::default();
        if (r.info.group.as_str(), r.info.kind.as_str()) == ("", "Node") {
            crate::describe_node::node(http, &mut w, o).await?;
        } else if (r.info.group.as_str(), r.info.kind.as_str()) == ("", "Service") {
            let slices = endpoint_slices(http, o).await?;
            service(&mut w, o, &slices);
        } else {
            describe(&mut w, r, o);
        }
        if (r.info.group.as_str(), r.info.kind.as_str()) == ("apps", "Deployment") {
            replica_sets(http, &mut w, o).await?;
        }
        events(http, &mut w, o).await?;
        pages.push(crate::tabwriter::align(&w.text, 0, 2));
    }
    print!("{}", pages.join("\n\n"));
    Ok(())
}

/// Collects describer lines; `\t` separates cells.
#[derive(Default)]
pub struct Writer {
    text: String,
}

impl Writer {
    /// The collected lines, tabs unaligned.
    pub fn into_text(self) -> String {
        self.text
    }

    pub fn line(&mut self, indent: usize, s: &str) {
        self.text.extend(std::iter::repeat_n(' ', indent));
        self.text.push_str(s);
        self.text.push('\n');
    }

    /// `Key:\tvalue`, or `Key:\t<none>` for an empty value.
    pub fn field(&mut self, indent: usize, key: &str, value: &str) {
        self.line(indent, &format!("{key}:\t{value}"));
    }

    /// Like [`Writer::multiline`], but the continuation lines start at the margin, as
    /// kubectl's pod-template describer writes them (after tab alignment the two look the
    /// same; `rollout history --revision` prints the tabs raw).
    pub fn multiline_bare(&mut self, indent: usize, key: &str, items: &[String]) {
        if items.is_empty() {
            return self.field(indent, key, "<none>");
        }
        self.field(indent, key, &items[0]);
        for it in &items[1..] {
            self.line(0, &format!("\t{it}"));
        }
    }

    /// A list under a key: the first item on the key's line, the rest below it.
    pub fn multiline(&mut self, indent: usize, key: &str, items: &[String]) {
        if items.is_empty() {
            return self.field(indent, key, "<none>");
        }
        self.field(indent, key, &items[0]);
        for it in &items[1..] {
            self.line(indent, &format!("\t{it}"));
        }
    }
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

pub fn map_items(v: &Value, sep: &str, skip: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}{sep}{}", scalar(v)))
        .collect();
    out.sort();
    out
}

fn common_header(w: &mut Writer, o: &Value, namespaced: bool) {
    let m = &o["metadata"];
    w.field(0, "Name", s(&m["name"]));
    if namespaced {
        w.field(0, "Namespace", s(&m["namespace"]));
    }
}

pub fn labels_annotations(w: &mut Writer, indent: usize, m: &Value) {
    w.multiline(indent, "Labels", &map_items(&m["labels"], "=", &[]));
    w.multiline(
        indent,
        "Annotations",
        &map_items(&m["annotations"], ": ", &[LAST_APPLIED]),
    );
}

fn describe(w: &mut Writer, r: &Resource, o: &Value) {
    match (r.info.group.as_str(), r.info.kind.as_str()) {
        ("", "Pod") => pod(w, o),
        ("apps", "Deployment") => deployment(w, o),
        ("", "ConfigMap") => configmap(w, o),
        _ => generic(w, r, o),
    }
}

fn pod(w: &mut Writer, o: &Value) {
    let (m, spec, st) = (&o["metadata"], &o["spec"], &o["status"]);
    common_header(w, o, true);
    if let Some(p) = spec["priority"].as_i64() {
        w.field(0, "Priority", &p.to_string());
    }
    if let Some(p) = spec["priorityClassName"].as_str().filter(|p| !p.is_empty()) {
        w.field(0, "Priority Class Name", p);
    }
    if let Some(sa) = spec["serviceAccountName"]
        .as_str()
        .filter(|p| !p.is_empty())
    {
        w.field(0, "Service Account", sa);
    }
    match spec["nodeName"].as_str().filter(|n| !n.is_empty()) {
        None => w.field(0, "Node", "<none>"),
        Some(n) => w.field(0, "Node", &format!("{n}/{}", s(&st["hostIP"]))),
    }
    if let Some(t) = st["startTime"].as_str() {
        w.field(0, "Start Time", &age::rfc1123z(t));
    }
    labels_annotations(w, 0, m);
    if let Some(t) = m["deletionTimestamp"].as_str() {
        w.field(
            0,
            "Status",
            &format!(
                "Terminating (lasts {})",
                age::human(age::since(t).unwrap_or(0))
            ),
        );
    } else {
        w.field(0, "Status", s(&st["phase"]));
    }
    for k in ["reason", "message"] {
        if let Some(v) = st[k].as_str().filter(|v| !v.is_empty()) {
            let mut key = k.to_string();
            key[..1].make_ascii_uppercase();
            w.field(0, &key, v);
        }
    }
    w.field(0, "IP", s(&st["podIP"]));
    let ips: Vec<String> = st["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| format!("IP:\t{}", s(&i["ip"])))
        .collect();
    if ips.is_empty() {
        w.field(0, "IPs", "<none>");
    } else {
        w.line(0, "IPs:");
        for ip in ips {
            w.line(2, &ip);
        }
    }
    if let Some(c) = m["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == true)
    {
        w.field(
            0,
            "Controlled By",
            &format!("{}/{}", s(&c["kind"]), s(&c["name"])),
        );
    }
    let statuses = |k: &str| st[k].as_array().cloned().unwrap_or_default();
    if spec["initContainers"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        containers(
            w,
            "Init Containers",
            0,
            2,
            &spec["initContainers"],
            &statuses("initContainerStatuses"),
        );
    }
    containers(
        w,
        "Containers",
        0,
        2,
        &spec["containers"],
        &statuses("containerStatuses"),
    );
    if let Some(conds) = st["conditions"].as_array().filter(|c| !c.is_empty()) {
        w.line(0, "Conditions:");
        w.line(2, "Type\tStatus");
        for c in conds {
            w.line(2, &format!("{} \t{} ", s(&c["type"]), s(&c["status"])));
        }
    }
    volumes(w, 0, &spec["volumes"]);
    let qos = match st["qosClass"].as_str() {
        Some(q) => q.to_string(),
        None => qos_class(spec),
    };
    w.field(0, "QoS Class", &qos);
    w.multiline(
        0,
        "Node-Selectors",
        &map_items(&spec["nodeSelector"], "=", &[]),
    );
    w.multiline(0, "Tolerations", &tolerations(&spec["tolerations"]));
}

/// The QoS class the API server would assign, for pods whose status does not say.
fn qos_class(spec: &Value) -> String {
    let cs: Vec<&Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let any = cs.iter().any(|c| {
        ["requests", "limits"]
            .iter()
            .any(|k| c["resources"][k].as_object().is_some_and(|m| !m.is_empty()))
    });
    if !any {
        return "BestEffort".into();
    }
    let guaranteed = cs.iter().all(|c| {
        let (l, r) = (&c["resources"]["limits"], &c["resources"]["requests"]);
        ["cpu", "memory"]
            .iter()
            .all(|k| !l[k].is_null() && (r[k].is_null() || r[k] == l[k]))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
    .into()
}

/// Tolerations one per line, sorted as kubectl sorts them.
fn tolerations(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut out = s(&t["key"]).to_string();
            if let Some(val) = t["value"].as_str().filter(|x| !x.is_empty()) {
                out.push('=');
                out.push_str(val);
            }
            if let Some(e) = t["effect"].as_str().filter(|x| !x.is_empty()) {
                out.push(':');
                out.push_str(e);
            }
            if t["operator"] == "Exists" && t["value"].as_str().unwrap_or_default().is_empty() {
                out.push_str(if out.is_empty() {
                    "op=Exists"
                } else {
                    " op=Exists"
                });
            }
            if let Some(secs) = t["tolerationSeconds"].as_i64() {
                out.push_str(&format!(" for {secs}s"));
            }
            out
        })
        .collect();
    out.sort();
    out
}

fn ports(c: &Value, key: &str) -> Vec<String> {
    c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let n = p[key].as_i64().unwrap_or(0);
            format!("{n}/{}", p["protocol"].as_str().unwrap_or("TCP"))
        })
        .collect()
}

/// A container list: `header` at `indent`, names at `name_indent` (kubectl indents a pod's
/// container names by 2 but a template's by 3), details always at 4.
fn containers(
    w: &mut Writer,
    header: &str,
    indent: usize,
    name_indent: usize,
    list: &Value,
    statuses: &[Value],
) {
    w.line(indent, &format!("{header}:"));
    for c in list.as_array().into_iter().flatten() {
        let name = s(&c["name"]);
        w.line(name_indent, &format!("{name}:"));
        let status = statuses.iter().find(|x| x["name"] == name);
        if let Some(id) = status.and_then(|x| x["containerID"].as_str()) {
            w.field(4, "Container ID", id);
        }
        w.field(4, "Image", s(&c["image"]));
        if let Some(st) = status {
            w.field(4, "Image ID", s(&st["imageID"]));
        }
        let (p, hp) = (ports(c, "containerPort"), ports(c, "hostPort"));
        match p.len() {
            0 => {
                w.field(4, "Port", "<none>");
                w.field(4, "Host Port", "<none>");
            }
            1 => {
                w.field(4, "Port", &p[0]);
                w.field(4, "Host Port", &hp[0]);
            }
            _ => {
                w.field(4, "Ports", &p.join(", "));
                w.field(4, "Host Ports", &hp.join(", "));
            }
        }
        for (key, label) in [("command", "Command"), ("args", "Args")] {
            if let Some(items) = c[key].as_array().filter(|a| !a.is_empty()) {
                w.line(4, &format!("{label}:"));
                for it in items {
                    w.line(6, s(it));
                }
            }
        }
        if let Some(st) = status {
            container_state(w, "State", &st["state"]);
            if st["lastState"].as_object().is_some_and(|m| !m.is_empty()) {
                container_state(w, "Last State", &st["lastState"]);
            }
            w.field(
                4,
                "Ready",
                &st["ready"].as_bool().unwrap_or(false).to_string(),
            );
            w.field(
                4,
                "Restart Count",
                &st["restartCount"].as_i64().unwrap_or(0).to_string(),
            );
        }
        for (key, label) in [("limits", "Limits"), ("requests", "Requests")] {
            let items = map_items(&c["resources"][key], ":\t", &[]);
            if !items.is_empty() {
                w.line(4, &format!("{label}:"));
                for it in items {
                    w.line(6, &it);
                }
            }
        }
        let env: Vec<String> = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| match e.get("valueFrom") {
                None => format!("{}:\t{}", s(&e["name"]), s(&e["value"])),
                Some(from) => format!("{}:\t{}", s(&e["name"]), value_from(from)),
            })
            .collect();
        if env.is_empty() {
            w.field(4, "Environment", "<none>");
        } else {
            w.line(4, "Environment:");
            for e in env {
                w.line(6, &e);
            }
        }
        let mounts: Vec<String> = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let mode = if m["readOnly"] == true { "ro" } else { "rw" };
                let sub = m["subPath"].as_str().filter(|x| !x.is_empty());
                match sub {
                    Some(p) => format!(
                        "{} from {} ({mode},path=\"{p}\")",
                        s(&m["mountPath"]),
                        s(&m["name"])
                    ),
                    None => format!("{} from {} ({mode})", s(&m["mountPath"]), s(&m["name"])),
                }
            })
            .collect();
        if mounts.is_empty() {
            w.field(4, "Mounts", "<none>");
        } else {
            w.line(4, "Mounts:");
            for m in mounts {
                w.line(6, &m);
            }
        }
    }
}

fn value_from(from: &Value) -> String {
    if let Some(f) = from.get("fieldRef") {
        return format!(
            " ({}:{})",
            f["apiVersion"].as_str().unwrap_or("v1"),
            s(&f["fieldPath"])
        );
    }
    if let Some(c) = from.get("configMapKeyRef") {
        return format!(
            "<set to the key '{}' of config map '{}'>",
            s(&c["key"]),
            s(&c["name"])
        );
    }
    if let Some(c) = from.get("secretKeyRef") {
        return format!(
            "<set to the key '{}' in secret '{}'>",
            s(&c["key"]),
            s(&c["name"])
        );
    }
    String::new()
}

fn container_state(w: &mut Writer, label: &str, state: &Value) {
    if let Some(r) = state.get("running") {
        w.field(4, label, "Running");
        w.field(6, "Started", &age::rfc1123z(s(&r["startedAt"])));
    } else if let Some(t) = state.get("waiting") {
        w.field(4, label, "Waiting");
        if let Some(reason) = t["reason"].as_str() {
            w.field(6, "Reason", reason);
        }
    } else if let Some(t) = state.get("terminated") {
        w.field(4, label, "Terminated");
        if let Some(reason) = t["reason"].as_str() {
            w.field(6, "Reason", reason);
        }
        w.field(
            6,
            "Exit Code",
            &t["exitCode"].as_i64().unwrap_or(0).to_string(),
        );
        w.field(6, "Started", &age::rfc1123z(s(&t["startedAt"])));
        w.field(6, "Finished", &age::rfc1123z(s(&t["finishedAt"])));
    } else {
        w.field(4, label, "Waiting");
    }
}

fn volumes(w: &mut Writer, indent: usize, list: &Value) {
    let Some(vs) = list.as_array().filter(|v| !v.is_empty()) else {
        return w.field(indent, "Volumes", "<none>");
    };
    w.line(indent, "Volumes:");
    for v in vs {
        w.line(indent + 2, &format!("{}:", s(&v["name"])));
        let i = indent + 4;
        if let Some(e) = v.get("emptyDir") {
            w.field(
                i,
                "Type",
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
            );
            w.field(i, "Medium", s(&e["medium"]));
            w.field(i, "SizeLimit", e["sizeLimit"].as_str().unwrap_or("<unset>"));
        } else if let Some(c) = v.get("configMap") {
            w.field(i, "Type", "ConfigMap (a volume populated by a ConfigMap)");
            w.field(i, "Name", s(&c["name"]));
            w.field(
                i,
                "Optional",
                &c["optional"].as_bool().unwrap_or(false).to_string(),
            );
        } else if let Some(c) = v.get("secret") {
            w.field(i, "Type", "Secret (a volume populated by a Secret)");
            w.field(i, "SecretName", s(&c["secretName"]));
            w.field(
                i,
                "Optional",
                &c["optional"].as_bool().unwrap_or(false).to_string(),
            );
        } else if let Some(h) = v.get("hostPath") {
            w.field(i, "Type", "HostPath (bare host directory volume)");
            w.field(i, "Path", s(&h["path"]));
            w.field(i, "HostPathType", s(&h["type"]));
        } else {
            w.field(i, "Type", "<unknown>");
        }
    }
}

fn selector_string(sel: &Value) -> String {
    let mut parts = map_items(&sel["matchLabels"], "=", &[]);
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let vals: Vec<String> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(scalar)
            .collect();
        let (k, op) = (s(&e["key"]), s(&e["operator"]));
        parts.push(match op {
            "In" => format!("{k} in ({})", vals.join(",")),
            "NotIn" => format!("{k} notin ({})", vals.join(",")),
            "Exists" => k.to_string(),
            _ => format!("!{k}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn deployment(w: &mut Writer, o: &Value) {
    let (m, spec, st) = (&o["metadata"], &o["spec"], &o["status"]);
    common_header(w, o, true);
    w.field(
        0,
        "CreationTimestamp",
        &age::rfc1123z(s(&m["creationTimestamp"])),
    );
    labels_annotations(w, 0, m);
    w.field(0, "Selector", &selector_string(&spec["selector"]));
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    w.field(
        0,
        "Replicas",
        &format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            spec["replicas"].as_i64().unwrap_or(1),
            n(&st["updatedReplicas"]),
            n(&st["replicas"]),
            n(&st["availableReplicas"]),
            n(&st["unavailableReplicas"])
        ),
    );
    let strategy = &spec["strategy"];
    w.field(0, "StrategyType", s(&strategy["type"]));
    w.field(
        0,
        "MinReadySeconds",
        &n(&spec["minReadySeconds"]).to_string(),
    );
    if let Some(ru) = strategy.get("rollingUpdate") {
        w.field(
            0,
            "RollingUpdateStrategy",
            &format!(
                "{} max unavailable, {} max surge",
                scalar(&ru["maxUnavailable"]),
                scalar(&ru["maxSurge"])
            ),
        );
    }
    pod_template(w, &spec["template"]);
    if let Some(conds) = st["conditions"].as_array().filter(|c| !c.is_empty()) {
        w.line(0, "Conditions:");
        w.line(2, "Type\tStatus\tReason");
        w.line(2, "----\t------\t------");
        for c in conds {
            w.line(
                2,
                &format!(
                    "{} \t{}\t{}",
                    s(&c["type"]),
                    s(&c["status"]),
                    s(&c["reason"])
                ),
            );
        }
    }
}

/// kubectl's `DescribePodTemplate`: the "Pod Template:" block of `describe deployment`,
/// also printed by `rollout history --revision`.
pub fn pod_template(w: &mut Writer, tpl: &Value) {
    w.line(0, "Pod Template:");
    labels_only(w, 2, &tpl["metadata"]);
    let tspec = &tpl["spec"];
    if tspec["serviceAccountName"]
        .as_str()
        .is_some_and(|x| !x.is_empty())
    {
        w.field(2, "Service Account", s(&tspec["serviceAccountName"]));
    }
    if tspec["initContainers"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        containers(w, "Init Containers", 2, 3, &tspec["initContainers"], &[]);
    }
    containers(w, "Containers", 2, 3, &tspec["containers"], &[]);
    volumes(w, 2, &tspec["volumes"]);
    w.multiline_bare(
        2,
        "Node-Selectors",
        &map_items(&tspec["nodeSelector"], "=", &[]),
    );
    w.multiline_bare(2, "Tolerations", &tolerations(&tspec["tolerations"]));
}

/// A pod template's labels (and annotations only when there are some), as kubectl prints.
fn labels_only(w: &mut Writer, indent: usize, m: &Value) {
    w.multiline_bare(indent, "Labels", &map_items(&m["labels"], "=", &[]));
    let ann = map_items(&m["annotations"], ": ", &[]);
    if !ann.is_empty() {
        w.multiline_bare(indent, "Annotations", &ann);
    }
}

/// The EndpointSlices of a Service (by the `kubernetes.io/service-name` label), which
/// kubectl's describe reads its `Endpoints:` lines from.
async fn endpoint_slices(http: &Http, svc: &Value) -> Result<Vec<Value>> {
    let m = &svc["metadata"];
    let path = format!(
        "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices?{}",
        m["namespace"].as_str().unwrap_or("default"),
        form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "labelSelector",
                &format!("kubernetes.io/service-name={}", s(&m["name"]))
            )
            .finish()
    );
    match http.get(&path, JSON).await {
        Ok(list) => Ok(list["items"].as_array().cloned().unwrap_or_default()),
        Err(CtlError::Server { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// kubectl's `Endpoints:` value for one Service port: the ready endpoints of the slices
/// serving a port of that name as `ip:port` (bare IPs from port-less slices), at most three
/// then `+ N more...`; `<none>` when the Service has no slices at all, empty when they hold no
/// ready endpoint. An endpoint without a `ready` condition counts as ready.
pub fn format_endpoint_slices(slices: &[Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    const SHOWN: usize = 3;
    let mut shown: Vec<String> = Vec::new();
    let mut overflow = false;
    let mut count = 0usize;
    let mut consider = |endpoint: &Value, text: &dyn Fn(&str) -> String| {
        // kubectl notices the list is full before checking readiness.
        if shown.len() == SHOWN {
            overflow = true;
        }
        if endpoint["conditions"]["ready"] == false {
            return;
        }
        if !overflow {
            shown.push(text(s(&endpoint["addresses"][0])));
        }
        count += 1;
    };
    for slice in slices {
        let endpoints = slice["endpoints"].as_array().cloned().unwrap_or_default();
        let ports = slice["ports"].as_array().cloned().unwrap_or_default();
        if ports.is_empty() {
            for e in &endpoints {
                consider(e, &|ip| ip.to_string());
            }
            continue;
        }
        for port in ports.iter().filter(|p| s(&p["name"]) == port_name) {
            let number = port["port"].as_i64().unwrap_or_default();
            for e in &endpoints {
                consider(e, &|ip| {
                    if ip.contains(':') {
                        format!("[{ip}]:{number}")
                    } else {
                        format!("{ip}:{number}")
                    }
                });
            }
        }
    }
    let joined = shown.join(",");
    if overflow {
        format!("{joined} + {} more...", count.saturating_sub(SHOWN))
    } else {
        joined
    }
}

fn service(w: &mut Writer, o: &Value, slices: &[Value]) {
    let (m, spec) = (&o["metadata"], &o["spec"]);
    common_header(w, o, true);
    labels_annotations(w, 0, m);
    let sel = map_items(&spec["selector"], "=", &[]);
    w.field(
        0,
        "Selector",
        &if sel.is_empty() {
            "<none>".into()
        } else {
            sel.join(",")
        },
    );
    w.field(0, "Type", s(&spec["type"]));
    if let Some(p) = spec["ipFamilyPolicy"].as_str() {
        w.field(0, "IP Family Policy", p);
    }
    let fams: Vec<String> = spec["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(scalar)
        .collect();
    if !fams.is_empty() {
        w.field(0, "IP Families", &fams.join(","));
    }
    w.field(0, "IP", s(&spec["clusterIP"]));
    let ips: Vec<String> = spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(scalar)
        .collect();
    if !ips.is_empty() {
        w.field(0, "IPs", &ips.join(","));
    }
    for p in spec["ports"].as_array().into_iter().flatten() {
        let name = p["name"]
            .as_str()
            .filter(|x| !x.is_empty())
            .unwrap_or("<unset>");
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        w.field(0, "Port", &format!("{name}  {}/{proto}", p["port"]));
        let target = match &p["targetPort"] {
            Value::Null => "<none>".to_string(),
            t => format!("{}/{proto}", scalar(t)),
        };
        w.field(0, "TargetPort", &target);
        if let Some(np) = p["nodePort"].as_i64() {
            w.field(0, "NodePort", &format!("{name}  {np}/{proto}"));
        }
        w.field(
            0,
            "Endpoints",
            &format_endpoint_slices(slices, s(&p["name"])),
        );
    }
    w.field(
        0,
        "Session Affinity",
        spec["sessionAffinity"].as_str().unwrap_or("None"),
    );
    if let Some(p) = spec["internalTrafficPolicy"].as_str() {
        w.field(0, "Internal Traffic Policy", p);
    }
}

fn configmap(w: &mut Writer, o: &Value) {
    common_header(w, o, true);
    labels_annotations(w, 0, &o["metadata"]);
    w.line(0, "");
    w.line(0, "Data");
    w.line(0, "====");
    for (k, v) in sorted_entries(&o["data"]) {
        w.line(0, &format!("{k}:"));
        w.line(0, "----");
        w.line(0, &scalar(&v));
        w.line(0, "");
    }
    w.line(0, "");
    w.line(0, "BinaryData");
    w.line(0, "====");
    for (k, v) in sorted_entries(&o["binaryData"]) {
        w.line(0, &format!("{k}: {} bytes", scalar(&v).len() * 3 / 4));
    }
    w.line(0, "");
}

fn sorted_entries(v: &Value) -> Vec<(String, Value)> {
    let mut e: Vec<(String, Value)> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    e.sort_by(|a, b| a.0.cmp(&b.0));
    e
}

/// Any other kind: the header fields, then spec and status as indented YAML.
fn generic(w: &mut Writer, r: &Resource, o: &Value) {
    common_header(w, o, r.info.namespaced);
    labels_annotations(w, 0, &o["metadata"]);
    w.field(0, "API Version", s(&o["apiVersion"]));
    w.field(0, "Kind", s(&o["kind"]));
    for key in ["spec", "data", "status"] {
        if let Some(v) = o
            .get(key)
            .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        {
            let mut title = key.to_string();
            title[..1].make_ascii_uppercase();
            w.line(0, &format!("{title}:"));
            for l in crate::yaml::emit(&crate::print::sorted(v)).lines() {
                w.line(2, l);
            }
        }
    }
}

/// `OldReplicaSets` / `NewReplicaSet` of a deployment, printed once it has any ReplicaSets
/// it controls.
async fn replica_sets(http: &Http, w: &mut Writer, d: &Value) -> Result<()> {
    let m = &d["metadata"];
    let path = format!(
        "/apis/apps/v1/namespaces/{}/replicasets?{}",
        s(&m["namespace"]),
        form_urlencoded::Serializer::new(String::new())
            .append_pair("labelSelector", &selector_string(&d["spec"]["selector"]))
            .finish()
    );
    let Ok(list) = http.get(&path, JSON).await else {
        return Ok(());
    };
    let owned: Vec<&Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["controller"] == true && o["uid"] == m["uid"])
        })
        .collect();
    if owned.is_empty() {
        return Ok(());
    }
    // The new ReplicaSet is the one whose pod template is the deployment's, apart from the
    // pod-template-hash label the controller adds.
    let without_hash = |t: &Value| {
        let mut t = t.clone();
        if let Some(l) = t["metadata"]["labels"].as_object_mut() {
            l.remove("pod-template-hash");
        }
        t
    };
    let template = without_hash(&d["spec"]["template"]);
    let (new, old): (Vec<&Value>, Vec<&Value>) = owned
        .into_iter()
        .partition(|rs| without_hash(&rs["spec"]["template"]) == template);
    let show = |list: &[&Value]| -> String {
        if list.is_empty() {
            return "<none>".into();
        }
        list.iter()
            .map(|rs| {
                format!(
                    "{} ({}/{} replicas created)",
                    s(&rs["metadata"]["name"]),
                    rs["status"]["replicas"].as_i64().unwrap_or(0),
                    rs["spec"]["replicas"].as_i64().unwrap_or(1)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    w.field(0, "OldReplicaSets", &show(&old));
    w.field(0, "NewReplicaSet", &show(&new));
    Ok(())
}

/// The Events section: events about this object (by name, namespace and uid), oldest first.
async fn events(http: &Http, w: &mut Writer, o: &Value) -> Result<()> {
    let m = &o["metadata"];
    let mut selector = format!("involvedObject.name={}", s(&m["name"]));
    let ns = m["namespace"].as_str().unwrap_or("default");
    selector.push_str(&format!(",involvedObject.namespace={ns}"));
    if let Some(kind) = o["kind"].as_str() {
        selector.push_str(&format!(",involvedObject.kind={kind}"));
    }
    if let Some(uid) = m["uid"].as_str() {
        selector.push_str(&format!(",involvedObject.uid={uid}"));
    }
    let path = format!(
        "/api/v1/namespaces/{ns}/events?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("fieldSelector", &selector)
            .finish()
    );
    let list = match http.get(&path, JSON).await {
        Ok(l) => l,
        Err(CtlError::Server { .. }) => Value::Null,
        Err(e) => return Err(e),
    };
    let mut evs = list["items"].as_array().cloned().unwrap_or_default();
    if evs.is_empty() {
        w.field(0, "Events", "<none>");
        return Ok(());
    }
    let when = |e: &Value| {
        e["lastTimestamp"]
            .as_str()
            .or(e["eventTime"].as_str())
            .or(e["firstTimestamp"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    evs.sort_by_key(when);
    w.line(0, "Events:");
    w.line(2, "Type\tReason\tAge\tFrom\tMessage");
    w.line(2, "----\t------\t----\t----\t-------");
    for e in &evs {
        let last = age::since(&when(e))
            .map(age::human)
            .unwrap_or_else(|| "<unknown>".into());
        let count = e["count"].as_i64().unwrap_or(1);
        let age = match e["firstTimestamp"].as_str().and_then(age::since) {
            Some(first) if count > 1 => format!("{last} (x{count} over {})", age::human(first)),
            _ => last,
        };
        let from = match (
            s(&e["source"]["component"]),
            e["reportingComponent"].as_str(),
        ) {
            ("", Some(r)) => r.to_string(),
            (c, _) => {
                let host = s(&e["source"]["host"]);
                if host.is_empty() {
                    c.to_string()
                } else {
                    format!("{c}, {host}")
                }
            }
        };
        w.line(
            2,
            &format!(
                "{}\t{}\t{age}\t{from}\t{}",
                s(&e["type"]),
                s(&e["reason"]),
                s(&e["message"]).trim()
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::format_endpoint_slices;
    use serde_json::json;

    fn ep(ip: &str, ready: Option<bool>) -> serde_json::Value {
        match ready {
            Some(r) => json!({"addresses": [ip], "conditions": {"ready": r}}),
            None => json!({"addresses": [ip]}),
        }
    }

    #[test]
    fn endpoints_lines_like_kubectl() {
        let http = |eps: Vec<serde_json::Value>| json!({"ports": [{"name": "http", "port": 8080}], "endpoints": eps});
        let cases = [
            (vec![], "http", "<none>"),
            (vec![json!({"ports": [], "endpoints": []})], "http", ""),
            (
                vec![http(vec![
                    ep("10.0.0.1", Some(true)),
                    ep("10.0.0.2", Some(false)),
                    ep("10.0.0.3", None),
                ])],
                "http",
                "10.0.0.1:8080,10.0.0.3:8080",
            ),
            (vec![http(vec![ep("10.0.0.1", Some(true))])], "metrics", ""),
            (
                vec![json!({"ports": [], "endpoints": [ep("10.0.0.9", Some(true))]})],
                "",
                "10.0.0.9",
            ),
            (
                vec![http(
                    (1..=5)
                        .map(|i| ep(&format!("10.0.0.{i}"), Some(true)))
                        .collect(),
                )],
                "http",
                "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more...",
            ),
            (
                vec![http(vec![ep("fd00::1", Some(true))])],
                "http",
                "[fd00::1]:8080",
            ),
        ];
        for (slices, port, want) in cases {
            assert_eq!(format_endpoint_slices(&slices, port), want, "{slices:?}");
        }
    }
}
