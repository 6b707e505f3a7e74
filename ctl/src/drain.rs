//! `skiffctl drain NODE`: cordon, list the node's pods (`fieldSelector=spec.nodeName=NODE`),
//! refuse — naming them, in kubectl's words — pods that cannot safely go (no controller
//! without `--force`, DaemonSet pods without `--ignore-daemonsets`, emptyDir pods without
//! `--delete-emptydir-data`), then evict the rest through `pods/eviction` (retrying 429, as a
//! PodDisruptionBudget asks) or delete them with `--disable-eviction`, and wait until they are
//! gone.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::http::{Http, JSON};
use crate::objects::{go_duration, parse_duration, send_json, with_query};

/// Flags of `drain`.
#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// NODE ...
    pub nodes: Vec<String>,
    /// Ignore DaemonSet-managed pods.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Continue even if there are pods using emptyDir (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Continue even if there are pods that do not declare a controller.
    #[arg(long)]
    pub force: bool,
    /// Seconds each pod gets to terminate (-1: the pod's own grace period).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// How long to wait before giving up (`0s`: forever), e.g. `30s`.
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Label selector choosing which of the node's pods to drain.
    #[arg(long)]
    pub pod_selector: Option<String>,
    /// Delete pods instead of evicting them (bypasses PodDisruptionBudgets).
    #[arg(long)]
    pub disable_eviction: bool,
}

/// The drain policy the flags choose.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    pub force: bool,
    pub ignore_daemonsets: bool,
    pub delete_emptydir_data: bool,
}

/// What becomes of one pod (kubectl's `PodDeleteStatus`).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Evict it.
    Delete,
    /// Evict it, but say so (`deleting Pods that declare no controller`).
    DeleteWithWarning(String),
    /// Leave it, and say so (`ignoring DaemonSet-managed Pods`).
    KeepWithWarning(String),
    /// Leave it silently (mirror pods).
    Skip,
    /// Refuse the whole drain.
    Refuse(String),
}

impl Verdict {
    fn deletes(&self) -> bool {
        matches!(self, Verdict::Delete | Verdict::DeleteWithWarning(_))
    }
}

/// Whether a pod's DaemonSet still exists (looked up only for DaemonSet-controlled pods).
#[derive(Debug, Clone, PartialEq)]
pub enum DaemonSetLookup {
    Exists,
    NotFound(String),
    Failed(String),
}

/// The controller ownerReference of an object.
fn controller_of(pod: &Value) -> Option<&Value> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
}

/// The DaemonSet controlling the pod, if one does and the pod has not finished.
pub fn daemonset_of(pod: &Value) -> Option<String> {
    let c = controller_of(pod)?;
    (c["kind"] == "DaemonSet" && !finished(pod))
        .then(|| c["name"].as_str().unwrap_or_default().to_string())
}

fn finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// kubectl's drain filters, in order (DaemonSet, mirror pod, local storage, unreplicated);
/// the first that keeps the pod decides, otherwise the last one's verdict stands.
pub fn classify(pod: &Value, p: Policy, ds: Option<&DaemonSetLookup>) -> Verdict {
    let filters: [&dyn Fn() -> Verdict; 4] = [
        &|| match (daemonset_of(pod), ds) {
            (None, _) => Verdict::Delete,
            (Some(_), Some(DaemonSetLookup::NotFound(e))) if p.force => {
                Verdict::DeleteWithWarning(e.clone())
            }
            (Some(_), Some(DaemonSetLookup::NotFound(e) | DaemonSetLookup::Failed(e))) => {
                Verdict::Refuse(e.clone())
            }
            (Some(_), _) if !p.ignore_daemonsets => {
                Verdict::Refuse("DaemonSet-managed Pods (use --ignore-daemonsets to ignore)".into())
            }
            (Some(_), _) => Verdict::KeepWithWarning("ignoring DaemonSet-managed Pods".into()),
        },
        &|| {
            if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null() {
                Verdict::Delete
            } else {
                Verdict::Skip
            }
        },
        &|| {
            let local = pod["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v.get("emptyDir").is_some_and(|e| !e.is_null()));
            if !local || finished(pod) {
                Verdict::Delete
            } else if !p.delete_emptydir_data {
                Verdict::Refuse(
                    "Pods with local storage (use --delete-emptydir-data to override)".into(),
                )
            } else {
                Verdict::DeleteWithWarning("deleting Pods with local storage".into())
            }
        },
        &|| {
            if finished(pod) || controller_of(pod).is_some() {
                Verdict::Delete
            } else if p.force {
                Verdict::DeleteWithWarning("deleting Pods that declare no controller".into())
            } else {
                Verdict::Refuse(
                    "cannot delete Pods that declare no controller (use --force to override)"
                        .into(),
                )
            }
        },
    ];
    let mut last = Verdict::Delete;
    for f in filters {
        last = f();
        if !last.deletes() {
            break;
        }
    }
    last
}

fn ns_name(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Groups pods by message in first-seen order: `message: ns/a, ns/b`.
fn grouped<'a>(items: impl Iterator<Item = (&'a str, String)>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (msg, pod) in items {
        match out.iter_mut().find(|(m, _)| m == msg) {
            Some((_, pods)) => pods.push(pod),
            None => out.push((msg.to_string(), vec![pod])),
        }
    }
    out
}

/// kubectl's refusals, one per reason: `cannot delete <reason>: ns/a, ns/b`.
pub fn refusals(verdicts: &[(Value, Verdict)]) -> Vec<String> {
    grouped(verdicts.iter().filter_map(|(p, v)| match v {
        Verdict::Refuse(m) => Some((m.as_str(), ns_name(p))),
        _ => None,
    }))
    .into_iter()
    .map(|(m, pods)| format!("cannot delete {m}: {}", pods.join(", ")))
    .collect()
}

/// kubectl's warning line (without `Warning: `), if any.
pub fn warnings(verdicts: &[(Value, Verdict)]) -> Option<String> {
    let parts: Vec<String> = grouped(verdicts.iter().filter_map(|(p, v)| match v {
        Verdict::DeleteWithWarning(m) | Verdict::KeepWithWarning(m) => {
            Some((m.as_str(), ns_name(p)))
        }
        _ => None,
    }))
    .into_iter()
    .map(|(m, pods)| format!("{m}: {}", pods.join(", ")))
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The eviction kubectl posts for a pod.
pub fn eviction(pod: &Value, grace_period: i64) -> Value {
    let mut opts = json!({});
    if grace_period >= 0 {
        opts["gracePeriodSeconds"] = json!(grace_period);
    }
    json!({"kind": "Eviction", "apiVersion": "policy/v1",
           "metadata": {"name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"]},
           "deleteOptions": opts})
}

/// kubectl's aggregate error text: one error as is, several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Runs `drain`: cordons every node first, then drains them one by one, going on after a
/// failure and reporting all of them at the end, as kubectl does.
pub async fn run(http: &Http, _disc: &Discovery, a: &DrainArgs) -> Result<()> {
    if a.nodes.is_empty() {
        return Err(CtlError::local(
            "USAGE: drain NODE [flags]; see 'skiffctl drain -h' for help",
        ));
    }
    let timeout = parse_duration(&a.timeout)?;
    let policy = Policy {
        force: a.force,
        ignore_daemonsets: a.ignore_daemonsets,
        delete_emptydir_data: a.delete_emptydir_data,
    };
    for node in &a.nodes {
        println!(
            "{}",
            crate::cordon::set_schedulable(http, node, true).await?
        );
    }
    let mut failures = Vec::new();
    let mut pending = Vec::new();
    for node in &a.nodes {
        match drain_node(http, node, a, policy, timeout).await {
            Ok(()) => println!("node/{node} drained"),
            Err(errors) => {
                eprintln!(
                    "error: unable to drain node \"{node}\" due to error: {}, continuing command...",
                    aggregate(&errors)
                );
                pending.push(node);
                failures.push(errors);
            }
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    eprintln!("There are pending nodes to be drained:");
    for n in pending {
        eprintln!(" {n}");
    }
    // kubectl's aggregate of per-node aggregates: one failing node's errors line by line,
    // several nodes one line each.
    let lines: Vec<String> = match failures.as_slice() {
        [one] => one.clone(),
        many => many.iter().map(|e| aggregate(e)).collect(),
    };
    for l in lines {
        eprintln!("{l}");
    }
    Err(CtlError::Silent)
}

/// The node's pods and what becomes of each, or kubectl's refusals.
async fn pods_for_deletion(
    http: &Http,
    node: &str,
    a: &DrainArgs,
    policy: Policy,
) -> std::result::Result<Vec<(Value, Verdict)>, Vec<String>> {
    let one = |e: CtlError| vec![message_of(&e)];
    let pods = list_pods(http, node, a.pod_selector.as_deref())
        .await
        .map_err(one)?;
    let mut verdicts = Vec::new();
    for pod in pods {
        let ds = match daemonset_of(&pod) {
            None => None,
            Some(name) => {
                let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
                Some(
                    match http
                        .get(
                            &format!("/apis/apps/v1/namespaces/{ns}/daemonsets/{name}"),
                            JSON,
                        )
                        .await
                    {
                        Ok(_) => DaemonSetLookup::Exists,
                        Err(e) if e.is_not_found() => DaemonSetLookup::NotFound(message_of(&e)),
                        Err(e) => DaemonSetLookup::Failed(message_of(&e)),
                    },
                )
            }
        };
        let v = classify(&pod, policy, ds.as_ref());
        verdicts.push((pod, v));
    }
    let refused = refusals(&verdicts);
    if !refused.is_empty() {
        return Err(refused);
    }
    Ok(verdicts)
}

/// Drains one (cordoned) node; the errors are kubectl's, one per line.
async fn drain_node(
    http: &Http,
    node: &str,
    a: &DrainArgs,
    policy: Policy,
    timeout: Duration,
) -> std::result::Result<(), Vec<String>> {
    let verdicts = pods_for_deletion(http, node, a, policy).await?;
    if let Some(w) = warnings(&verdicts) {
        eprintln!("Warning: {w}");
    }
    let doomed: Vec<Value> = verdicts
        .into_iter()
        .filter(|(_, v)| v.deletes())
        .map(|(p, _)| p)
        .collect();
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let results = futures::future::join_all(doomed.iter().map(|pod| async move {
        if a.disable_eviction {
            delete_and_wait(http, pod, a.grace_period, deadline).await
        } else {
            evict_and_wait(http, pod, a.grace_period, deadline, timeout).await
        }
    }))
    .await;
    let errors: Vec<String> = results.into_iter().filter_map(|r| r.err()).collect();
    if errors.is_empty() {
        return Ok(());
    }
    // What is still there, as kubectl lists it before giving up on the node.
    if let Ok(left) = pods_for_deletion(http, node, a, policy).await {
        let left: Vec<&Value> = left
            .iter()
            .filter(|(_, v)| v.deletes())
            .map(|(p, _)| p)
            .collect();
        if !left.is_empty() {
            eprintln!(
                "There are pending pods in node \"{node}\" when an error occurred: {}",
                aggregate(&errors)
            );
            for p in left {
                eprintln!("pod/{}", p["metadata"]["name"].as_str().unwrap_or_default());
            }
        }
    }
    Err(errors)
}

fn message_of(e: &CtlError) -> String {
    match e {
        CtlError::Server { message, .. } => message.clone(),
        CtlError::Local(m) => m.clone(),
        CtlError::Silent | CtlError::Exit(_) => e.to_string(),
    }
}

fn reason_of(e: &CtlError) -> &str {
    match e {
        CtlError::Server { reason, .. } => reason,
        _ => "",
    }
}

async fn list_pods(http: &Http, node: &str, selector: Option<&str>) -> Result<Vec<Value>> {
    let field = format!("spec.nodeName={node}");
    let mut out = Vec::new();
    let mut cont = String::new();
    loop {
        let mut q = vec![("fieldSelector", field.as_str()), ("limit", "500")];
        if let Some(s) = selector {
            q.insert(0, ("labelSelector", s));
        }
        if !cont.is_empty() {
            q.insert(0, ("continue", cont.as_str()));
        }
        let list = http.get(&with_query("/api/v1/pods", &q), JSON).await?;
        out.extend(list["items"].as_array().cloned().unwrap_or_default());
        cont = list["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if cont.is_empty() {
            return Ok(out);
        }
    }
}

fn pod_path(pod: &Value) -> (String, String, String) {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (format!("/api/v1/namespaces/{ns}/pods/{name}"), ns, name)
}

fn timed_out(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

async fn evict_and_wait(
    http: &Http,
    pod: &Value,
    grace_period: i64,
    deadline: Option<Instant>,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let (path, ns, name) = pod_path(pod);
    let body = eviction(pod, grace_period);
    loop {
        println!("evicting pod {ns}/{name}");
        if timed_out(deadline) {
            return Err(format!(
                "error when evicting pods/\"{name}\" -n \"{ns}\": global timeout reached: {}",
                go_duration(timeout)
            ));
        }
        match send_json(
            http,
            reqwest::Method::POST,
            &format!("{path}/eviction"),
            &body,
        )
        .await
        {
            Ok(_) => break,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if reason_of(&e) == "TooManyRequests" => {
                eprintln!(
                    "error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after 5s): {}",
                    message_of(&e)
                );
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => {
                return Err(format!(
                    "error when evicting pods/\"{name}\" -n \"{ns}\": {}",
                    message_of(&e)
                ));
            }
        }
    }
    let (_, ns, name) = pod_path(pod);
    wait_gone(http, pod, true, deadline).await.map_err(|e| {
        format!(
            "error when waiting for pod \"{name}\" in namespace \"{ns}\" to terminate: {}",
            e.unwrap_or_else(|| "context deadline exceeded".into())
        )
    })
}

async fn delete_and_wait(
    http: &Http,
    pod: &Value,
    grace_period: i64,
    deadline: Option<Instant>,
) -> std::result::Result<(), String> {
    let (path, _, _) = pod_path(pod);
    let mut opts = json!({});
    if grace_period >= 0 {
        opts["gracePeriodSeconds"] = json!(grace_period);
    }
    match send_json(http, reqwest::Method::DELETE, &path, &opts).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(message_of(&e)),
    }
    wait_gone(http, pod, false, deadline)
        .await
        .map_err(|e| e.unwrap_or_else(|| "timed out waiting for the condition".into()))
}

/// Polls the pod every second until it is gone (or replaced by a new pod of the same name)
/// and prints `pod/NAME evicted` (or `deleted`). Fails with the server's message, or `None`
/// when the deadline passed.
async fn wait_gone(
    http: &Http,
    pod: &Value,
    evicted: bool,
    deadline: Option<Instant>,
) -> std::result::Result<(), Option<String>> {
    let (path, _, name) = pod_path(pod);
    let uid = &pod["metadata"]["uid"];
    loop {
        match http.get(&path, JSON).await {
            Err(e) if e.is_not_found() => break,
            Ok(p) if &p["metadata"]["uid"] != uid => break,
            Ok(_) => {}
            Err(e) => {
                let failed = if evicted {
                    "eviction failed"
                } else {
                    "deletion failed"
                };
                println!("pod/{name} {failed}");
                return Err(Some(message_of(&e)));
            }
        }
        if timed_out(deadline) {
            return Err(None);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("pod/{name} {}", if evicted { "evicted" } else { "deleted" });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner: Option<&str>, extra: Value) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {}, "status": {"phase": "Running"}});
        if let Some(kind) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": kind, "name": "owner", "controller": true}]);
        }
        if let Some(v) = extra.get("volumes") {
            p["spec"]["volumes"] = v.clone();
        }
        if let Some(a) = extra.get("annotations") {
            p["metadata"]["annotations"] = a.clone();
        }
        if let Some(ph) = extra.get("phase") {
            p["status"]["phase"] = ph.clone();
        }
        p
    }

    #[test]
    fn filters() {
        let strict = Policy::default();
        let force = Policy {
            force: true,
            ..Policy::default()
        };
        let all = Policy {
            force: true,
            ignore_daemonsets: true,
            delete_emptydir_data: true,
        };
        let empty_dir = json!({"volumes": [{"name": "d", "emptyDir": {}}]});
        let no_ctl = "cannot delete Pods that declare no controller (use --force to override)";
        for (p, policy, ds, want) in [
            (
                pod("a", Some("ReplicaSet"), json!({})),
                strict,
                None,
                Verdict::Delete,
            ),
            (
                pod("a", None, json!({})),
                strict,
                None,
                Verdict::Refuse(no_ctl.into()),
            ),
            (
                pod("a", None, json!({})),
                force,
                None,
                Verdict::DeleteWithWarning("deleting Pods that declare no controller".into()),
            ),
            (
                pod("a", None, json!({"phase": "Succeeded"})),
                strict,
                None,
                Verdict::Delete,
            ),
            (
                pod("a", Some("DaemonSet"), json!({})),
                strict,
                Some(DaemonSetLookup::Exists),
                Verdict::Refuse(
                    "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)".into(),
                ),
            ),
            (
                pod("a", Some("DaemonSet"), json!({})),
                all,
                Some(DaemonSetLookup::Exists),
                Verdict::KeepWithWarning("ignoring DaemonSet-managed Pods".into()),
            ),
            // An orphaned DaemonSet pod goes with --force; its warning is overwritten by the
            // later filters, as in kubectl.
            (
                pod("a", Some("DaemonSet"), json!({})),
                force,
                Some(DaemonSetLookup::NotFound("gone".into())),
                Verdict::Delete,
            ),
            (
                pod("a", Some("DaemonSet"), json!({})),
                strict,
                Some(DaemonSetLookup::NotFound("gone".into())),
                Verdict::Refuse("gone".into()),
            ),
            (
                pod("a", Some("ReplicaSet"), empty_dir.clone()),
                strict,
                None,
                Verdict::Refuse(
                    "Pods with local storage (use --delete-emptydir-data to override)".into(),
                ),
            ),
            // The unreplicated filter runs last and overwrites the local-storage warning, as
            // in kubectl.
            (
                pod("a", Some("ReplicaSet"), empty_dir.clone()),
                all,
                None,
                Verdict::Delete,
            ),
            (
                pod("a", None, empty_dir),
                all,
                None,
                Verdict::DeleteWithWarning("deleting Pods that declare no controller".into()),
            ),
            (
                pod(
                    "a",
                    None,
                    json!({"annotations": {"kubernetes.io/config.mirror": "x"}}),
                ),
                strict,
                None,
                Verdict::Skip,
            ),
        ] {
            assert_eq!(classify(&p, policy, ds.as_ref()), want, "{p} {policy:?}");
        }
    }

    #[test]
    fn messages() {
        let v = vec![
            (pod("a", None, json!({})), Verdict::Refuse("X".into())),
            (pod("b", None, json!({})), Verdict::Refuse("Y".into())),
            (pod("c", None, json!({})), Verdict::Refuse("X".into())),
            (
                pod("d", None, json!({})),
                Verdict::DeleteWithWarning("W".into()),
            ),
            (
                pod("e", None, json!({})),
                Verdict::KeepWithWarning("V".into()),
            ),
            (pod("f", None, json!({})), Verdict::Delete),
        ];
        assert_eq!(
            refusals(&v),
            vec!["cannot delete X: ns/a, ns/c", "cannot delete Y: ns/b"]
        );
        assert_eq!(warnings(&v).as_deref(), Some("W: ns/d; V: ns/e"));
        assert_eq!(warnings(&v[5..]), None);
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }

    #[test]
    fn evictions() {
        let p = pod("a", None, json!({}));
        assert_eq!(
            eviction(&p, -1).to_string(),
            r#"{"kind":"Eviction","apiVersion":"policy/v1","metadata":{"name":"a","namespace":"ns"},"deleteOptions":{}}"#
        );
        assert_eq!(eviction(&p, 0)["deleteOptions"]["gracePeriodSeconds"], 0);
    }
}
