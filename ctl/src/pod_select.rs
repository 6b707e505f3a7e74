//! Which pod and container `logs` and `exec` talk to: `POD`, `pod/NAME`, or a controller
//! (`deployment/web`, `rs/web-1`, `svc/web`, ...) whose selector picks the pod the way kubectl
//! does (`Found 2 pods, using pod/web-1`), then the container (`-c`, the
//! `kubectl.kubernetes.io/default-container` annotation, or the first one with
//! `Defaulted container "a" out of: a, b`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::get::collection;
use crate::http::{Http, JSON};
use crate::objects::with_query;

/// The annotation naming the container kubectl picks when none is given.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The pod `POD` or `TYPE/NAME` stands for, fetched. Controllers without pods yet are
/// waited for up to `timeout` (kubectl's `--pod-running-timeout`).
pub async fn resolve_pod(
    http: &Http,
    disc: &Discovery,
    target: &str,
    timeout: Duration,
) -> Result<Value> {
    let ns = &http.namespace;
    let (typed, name) = match target.split_once('/') {
        Some((t, n)) => (Some(t), n),
        None => (None, target),
    };
    let pods = disc.resolve("pods")?;
    let resource = match typed {
        None => pods,
        Some(t) => disc.resolve(t)?,
    };
    if name.is_empty() {
        return Err(CtlError::local(
            "arguments in resource/name form must have a single resource and name",
        ));
    }
    if resource.info.kind == "Pod" {
        return http
            .get(&format!("{}/{name}", collection(pods, Some(ns))), JSON)
            .await;
    }
    let owner = http
        .get(&format!("{}/{name}", collection(resource, Some(ns))), JSON)
        .await?;
    let selector = selector_of(&owner["spec"]["selector"]).ok_or_else(|| {
        CtlError::local(format!(
            "cannot attach to {}/{name}: selector for {} not implemented",
            resource.qualified_kind(),
            resource.qualified_kind()
        ))
    })?;
    let path = with_query(&collection(pods, Some(ns)), &[("labelSelector", &selector)]);
    let deadline = Instant::now() + timeout;
    loop {
        let list = http.get(&path, JSON).await?;
        let mut items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            items.sort_by(by_logging);
            let chosen = items.swap_remove(0);
            if items.len() + 1 > 1 {
                eprintln!(
                    "Found {} pods, using pod/{}",
                    items.len() + 1,
                    chosen["metadata"]["name"].as_str().unwrap_or_default()
                );
            }
            return Ok(chosen);
        }
        if Instant::now() >= deadline {
            return Err(CtlError::local("timed out waiting for the condition"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A controller's pod selector as a label-selector string: structured (`matchLabels`,
/// `matchExpressions`) or a plain map (Services, ReplicationControllers).
pub fn selector_of(spec_selector: &Value) -> Option<String> {
    let map = spec_selector.as_object()?;
    let structured = if map.contains_key("matchLabels") || map.contains_key("matchExpressions") {
        spec_selector.clone()
    } else {
        json!({ "matchLabels": spec_selector })
    };
    let s = runtime::selector::LabelSelector::from_label_selector_json(&structured).ok()?;
    let text = s.to_string();
    (!text.is_empty()).then_some(text)
}

/// kubectl's order for picking the pod to log from: scheduled first; Running, then Unknown,
/// then Pending; ready first; ready for longer first; more restarts first; older first.
pub fn by_logging(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Reverse;
    let key = |p: &Value| {
        let phase_rank = match p["status"]["phase"].as_str() {
            Some("Unknown") => 1,
            Some("Pending") => 2,
            _ => 0,
        };
        let ready = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready");
        let is_ready = ready.is_some_and(|c| c["status"] == "True");
        let ready_since = ready
            .filter(|_| is_ready)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(str::to_string);
        let restarts = p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["restartCount"].as_i64())
            .max()
            .unwrap_or(0);
        let created = p["metadata"]["creationTimestamp"]
            .as_str()
            .map(str::to_string);
        (
            p["spec"]["nodeName"].as_str().unwrap_or("").is_empty(),
            phase_rank,
            !is_ready,
            // Earlier times sort first; a missing time last.
            ready_since.is_none(),
            ready_since,
            Reverse(restarts),
            created.is_none(),
            created,
        )
    };
    key(a).cmp(&key(b))
}

/// The container to use: `-c` (which must exist in the pod: kubectl `logs` checks that
/// itself; `exec` passes `-c` to the server unchecked), else the default-container annotation,
/// else the first one (saying so on stderr when there was a choice).
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let containers = names("containers");
    if let Some(c) = requested.filter(|c| !c.is_empty()) {
        let known = containers
            .iter()
            .chain(&names("initContainers"))
            .chain(&names("ephemeralContainers"))
            .any(|n| n == c);
        return if known {
            Ok(c.to_string())
        } else {
            Err(CtlError::local(format!(
                "container {c} is not valid for pod {pod_name}"
            )))
        };
    }
    if let Some(annotated) = pod["metadata"]["annotations"][DEFAULT_CONTAINER_ANNOTATION].as_str()
        && containers.iter().any(|c| c == annotated)
    {
        return Ok(annotated.to_string());
    }
    let first = containers
        .first()
        .cloned()
        .ok_or_else(|| CtlError::local(format!("pod {pod_name} does not have any containers")))?;
    if containers.len() > 1 {
        let mut all = containers.clone();
        all.extend(
            names("initContainers")
                .into_iter()
                .map(|c| format!("{c} (init)")),
        );
        eprintln!("Defaulted container \"{first}\" out of: {}", all.join(", "));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_of_controllers() {
        let cases = [
            (json!({"matchLabels": {"app": "web"}}), Some("app=web")),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}),
                Some("tier in (a)"),
            ),
            (json!({"app": "web", "x": "y"}), Some("app=web,x=y")),
            (json!({}), None),
            (Value::Null, None),
        ];
        for (sel, want) in cases {
            assert_eq!(selector_of(&sel).as_deref(), want, "{sel}");
        }
    }

    #[test]
    fn picks_pods_like_kubectl() {
        let pod = |name: &str,
                   node: &str,
                   phase: &str,
                   ready: bool,
                   restarts: i64,
                   created: &str| {
            json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"nodeName": node},
                "status": {
                    "phase": phase,
                    "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": created}],
                    "containerStatuses": [{"restartCount": restarts}],
                },
            })
        };
        let cases = [
            (
                pod("a", "", "Running", true, 0, "2025-01-01T00:00:00Z"),
                pod("b", "n", "Pending", false, 0, "2025-01-02T00:00:00Z"),
                "b",
            ),
            (
                pod("a", "n", "Pending", false, 0, "2025-01-01T00:00:00Z"),
                pod("b", "n", "Running", false, 0, "2025-01-02T00:00:00Z"),
                "b",
            ),
            (
                pod("a", "n", "Running", false, 0, "2025-01-01T00:00:00Z"),
                pod("b", "n", "Running", true, 0, "2025-01-02T00:00:00Z"),
                "b",
            ),
            (
                pod("a", "n", "Running", true, 0, "2025-01-01T00:00:00Z"),
                pod("b", "n", "Running", true, 0, "2025-01-02T00:00:00Z"),
                "a",
            ),
            (
                pod("a", "n", "Running", false, 1, "2025-01-02T00:00:00Z"),
                pod("b", "n", "Running", false, 3, "2025-01-02T00:00:00Z"),
                "b",
            ),
            (
                pod("a", "n", "Running", false, 0, "2025-01-02T00:00:00Z"),
                pod("b", "n", "Running", false, 0, "2025-01-01T00:00:00Z"),
                "b",
            ),
        ];
        for (a, b, want) in cases {
            let mut v = [a.clone(), b.clone()];
            v.sort_by(by_logging);
            assert_eq!(v[0]["metadata"]["name"], want, "{a} vs {b}");
            let mut v = [b, a];
            v.sort_by(by_logging);
            assert_eq!(v[0]["metadata"]["name"], want);
        }
    }

    #[test]
    fn picks_the_container() {
        let pod = json!({"metadata": {"name": "p", "annotations": {DEFAULT_CONTAINER_ANNOTATION: "side"}},
                         "spec": {"containers": [{"name": "web"}, {"name": "side"}]}});
        let pick = |pod: &Value, c| pick_container(pod, c).map_err(|e| e.to_string());
        assert_eq!(pick(&pod, Some("web")), Ok("web".into()));
        assert_eq!(pick(&pod, None), Ok("side".into()));
        assert_eq!(
            pick(&pod, Some("nope")),
            Err("error: container nope is not valid for pod p".into())
        );
        let plain = json!({"spec": {"containers": [{"name": "web"}, {"name": "side"}]}});
        assert_eq!(pick(&plain, None), Ok("web".into()));
        assert!(pick(&json!({"metadata": {"name": "p"}, "spec": {}}), None).is_err());
    }
}
