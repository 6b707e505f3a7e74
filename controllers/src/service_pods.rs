//! Which pods back a Service, at which address and on which ports: the one computation the
//! Endpoints and EndpointSlice controllers share, so both publish the same backends.
//!
//! Everything here is pure. The two controllers differ only in how they package the result
//! (Endpoints subsets vs. EndpointSlices with conditions) and in whether terminating pods are
//! kept, which [`PodEndpoint::terminating`] lets each decide.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use runtime::objects::is_pod_ready;
use runtime::selector::LabelSelector;

/// Annotation with the time of the last pod or Service change the published endpoints reflect
/// (Kubernetes' `endpoints.kubernetes.io/last-change-trigger-time`, read by latency SLIs).
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Label Kubernetes puts on the endpoints of a headless Service (`clusterIP: None`).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// One Service port resolved for one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResolvedPort {
    /// The Service port's name (empty for a single unnamed port).
    pub name: Option<String>,
    /// The pod's port number the Service port leads to.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The Service port's `appProtocol`.
    pub app_protocol: Option<String>,
}

/// A pod backing a Service, as both endpoint controllers publish it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEndpoint {
    /// The pod's IPv4 address.
    pub ip: String,
    /// The node the pod runs on.
    pub node_name: Option<String>,
    /// `spec.hostname` when the pod's `spec.subdomain` names this Service (DNS records).
    pub hostname: Option<String>,
    /// Reference to the pod.
    pub target_ref: ObjectReference,
    /// The pod's `Ready` condition is `True`.
    pub ready: bool,
    /// The pod is being deleted.
    pub terminating: bool,
    /// The Service ports this pod serves, sorted; a named `targetPort` the pod lacks is absent.
    pub ports: Vec<ResolvedPort>,
}

/// The Service's pod selector; `None` when it has none (or an empty one), which means its
/// endpoints are managed by someone else and the controllers leave them alone.
pub fn selector_of(svc: &Service) -> Option<LabelSelector> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|m| !m.is_empty())
        .map(LabelSelector::from_map)
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether the Service publishes pods that are not ready (`publishNotReadyAddresses`).
pub fn publishes_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

fn protocol_of(p: Option<&String>) -> &str {
    p.map(String::as_str).unwrap_or("TCP")
}

/// The pod port a Service port leads to: a number `targetPort` as is (the Service port itself
/// when unset); a named one looked up among the pod's container ports (and its restartable
/// init containers, i.e. sidecars) with the same protocol. `None` when the pod lacks the name.
pub fn find_port(pod: &Pod, svc_port: &ServicePort) -> Option<i32> {
    match &svc_port.target_port {
        None => Some(svc_port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol_of(p.protocol.as_ref())
                            == protocol_of(svc_port.protocol.as_ref())
                })
                .map(|p| p.container_port)
        }
    }
}

/// The pod's IPv4 address, if it has one.
fn ipv4_of(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    status
        .pod_ip
        .as_deref()
        .into_iter()
        .chain(listed)
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The endpoint `pod` gives `svc`, or `None` when it gives none: not selected, no IP yet, or
/// finished (Succeeded/Failed). Terminating pods are returned, marked, for the caller to judge.
pub fn pod_endpoint(svc: &Service, selector: &LabelSelector, pod: &Pod) -> Option<PodEndpoint> {
    if pod.metadata.namespace != svc.metadata.namespace
        || !selector.matches(pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
        || is_terminal(pod)
    {
        return None;
    }
    let ip = ipv4_of(pod)?;
    let spec = pod.spec.as_ref();
    let svc_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let mut ports: Vec<ResolvedPort> = svc_ports
        .iter()
        .filter_map(|sp| {
            Some(ResolvedPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: find_port(pod, sp)?,
                protocol: protocol_of(sp.protocol.as_ref()).to_string(),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    ports.sort();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .filter(|_| spec.and_then(|s| s.subdomain.as_deref()) == svc.metadata.name.as_deref());
    Some(PodEndpoint {
        ip,
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        hostname,
        target_ref: ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        },
        ready: is_pod_ready(pod),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        ports,
    })
}

/// Every endpoint of `svc` among `pods`, sorted by IP then pod name; empty when the Service
/// has no selector.
pub fn service_endpoints<'a>(
    svc: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<PodEndpoint> {
    let Some(selector) = selector_of(svc) else {
        return Vec::new();
    };
    let mut eps: Vec<PodEndpoint> = pods
        .into_iter()
        .filter_map(|p| pod_endpoint(svc, &selector, p))
        .collect();
    eps.sort_by(|a, b| (&a.ip, &a.target_ref.name).cmp(&(&b.ip, &b.target_ref.name)));
    eps
}

/// The labels published endpoints carry: the Service's own, plus the headless marker.
pub fn endpoint_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// The time of the latest change the endpoints reflect: the Service's creation or a selected
/// pod's last readiness transition (its creation when it has none). Derived from the objects,
/// not from when this controller happened to look, so a restarted controller agrees.
pub fn last_change_trigger_time<'a>(
    svc: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<jiff::Timestamp> {
    let selector = selector_of(svc)?;
    let empty = BTreeMap::new();
    let pod_times = pods
        .into_iter()
        .filter(|p| {
            p.metadata.namespace == svc.metadata.namespace
                && selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty))
        })
        .filter_map(|p| {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .and_then(|c| c.last_transition_time.as_ref());
            ready
                .or(p.metadata.creation_timestamp.as_ref())
                .map(|t| t.0)
        });
    svc.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .into_iter()
        .chain(pod_times)
        .max()
}

/// Formats a trigger time as Kubernetes does (RFC 3339 with nanoseconds, UTC).
pub fn format_trigger_time(t: jiff::Timestamp) -> String {
    t.to_string()
}

/// Keys (`ns/name`) of the Services in `services` whose selector picks a pod with `labels` in
/// `namespace`: what a pod change must requeue in either endpoint controller.
pub fn services_selecting(
    services: &runtime::informer::Store<Service>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<String> {
    services
        .by_namespace(namespace)
        .into_iter()
        .filter(|s| selector_of(s).is_some_and(|sel| sel.matches(labels)))
        .map(|s| runtime::informer::object_key(&s.metadata))
        .collect()
}

/// Wiring shared by the Service-driven controllers: a Service change queues the Service, a
/// pod change queues every Service selecting the pod (before or after the change).
pub fn queue_on_service_and_pod_changes(
    services: &runtime::informer::Informer<Service>,
    pods: &runtime::informer::Informer<Pod>,
    queue: &runtime::queue::WorkQueue<String>,
) {
    let q = queue.clone();
    services.add_handler(move |ev| q.add(ev.key()));
    let (q, svc_store) = (queue.clone(), services.store().clone());
    pods.add_handler(move |ev| queue_services_of_pod(&svc_store, &q, ev));
}

/// Queues, for a pod event, every Service that selects the pod before or after the change.
pub fn queue_services_of_pod(
    services: &runtime::informer::Store<Service>,
    queue: &runtime::queue::WorkQueue<String>,
    ev: &runtime::informer::Event<Pod>,
) {
    let empty = BTreeMap::new();
    let mut pods: Vec<&Pod> = vec![ev.object()];
    if let runtime::informer::Event::Updated { old, .. } = ev {
        pods.push(old);
    }
    let mut keys: Vec<String> = pods
        .into_iter()
        .flat_map(|p| {
            services_selecting(
                services,
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.labels.as_ref().unwrap_or(&empty),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        queue.add(k);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn service(selector: serde_json::Value, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                         "labels": {"app": "web", "tier": "front"},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"selector": selector, "ports": ports, "clusterIP": "10.96.0.10"},
        }))
        .unwrap()
    }

    /// A pod `name` labelled app=`app` with `ip` (empty: none), Ready=`ready`, and container
    /// ports `http`=8080/TCP and `dns`=53/UDP.
    pub(crate) fn pod(name: &str, app: &str, ip: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "labels": {"app": app},
                         "creationTimestamp": "2026-01-01T00:00:01Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            ]}]},
            "status": {
                "phase": "Running",
                "podIP": if ip.is_empty() { serde_json::Value::Null } else { json!(ip) },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                "lastTransitionTime": "2026-01-01T00:00:05Z"}],
            },
        }))
        .unwrap()
    }

    fn port(name: &str, target: serde_json::Value, protocol: &str) -> ServicePort {
        serde_json::from_value(
            json!({"name": name, "port": 80, "targetPort": target, "protocol": protocol}),
        )
        .unwrap()
    }

    #[test]
    fn ports_resolve_by_number_or_by_name_and_protocol() {
        let p = pod("a", "web", "10.0.0.1", true);
        let cases = [
            (port("n", json!(9000), "TCP"), Some(9000)),
            (port("h", json!("http"), "TCP"), Some(8080)),
            (port("h", json!("http"), "UDP"), None),
            (port("d", json!("dns"), "UDP"), Some(53)),
            (port("m", json!("metrics"), "TCP"), None),
            (
                serde_json::from_value(json!({"port": 81})).unwrap(),
                Some(81),
            ),
        ];
        for (sp, want) in cases {
            assert_eq!(find_port(&p, &sp), want, "{sp:?}");
        }
        // A restartable init container (sidecar) counts; a plain init container does not.
        let mut side = p.clone();
        let spec = side.spec.as_mut().unwrap();
        spec.init_containers = Some(vec![
            serde_json::from_value(json!({"name": "i", "ports": [{"name": "init", "containerPort": 1}]})).unwrap(),
            serde_json::from_value(json!({"name": "s", "restartPolicy": "Always", "ports": [{"name": "side", "containerPort": 2}]})).unwrap(),
        ]);
        assert_eq!(find_port(&side, &port("s", json!("side"), "TCP")), Some(2));
        assert_eq!(find_port(&side, &port("i", json!("init"), "TCP")), None);
    }

    #[test]
    fn which_pods_back_a_service() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http"},
                   {"name": "metrics", "port": 9090, "targetPort": "metrics"}]),
        );
        let mut terminating = pod("term", "web", "10.0.0.4", true);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:01:00Z".parse().unwrap(),
            ));
        let mut finished = pod("done", "web", "10.0.0.5", false);
        finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut other_ns = pod("elsewhere", "web", "10.0.0.6", true);
        other_ns.metadata.namespace = Some("other".into());
        let pods = [
            pod("b", "web", "10.0.0.2", false),
            pod("a", "web", "10.0.0.1", true),
            pod("no-ip", "web", "", true),
            pod("db", "db", "10.0.0.3", true),
            terminating,
            finished,
            other_ns,
        ];
        let eps = service_endpoints(&svc, &pods);
        let summary: Vec<(&str, bool, bool, usize)> = eps
            .iter()
            .map(|e| {
                (
                    e.target_ref.name.as_deref().unwrap(),
                    e.ready,
                    e.terminating,
                    e.ports.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a", true, false, 1),
                ("b", false, false, 1),
                ("term", true, true, 1)
            ]
        );
        assert_eq!(
            eps[0].ports,
            vec![ResolvedPort {
                name: Some("http".into()),
                port: 8080,
                protocol: "TCP".into(),
                app_protocol: None
            }]
        );
        assert_eq!(eps[0].node_name.as_deref(), Some("node-1"));
        assert_eq!(eps[0].target_ref.uid.as_deref(), Some("uid-a"));

        // No selector (or an empty one): nothing, the endpoints belong to someone else.
        for sel in [json!(null), json!({})] {
            assert!(service_endpoints(&service(sel, json!([])), &pods).is_empty());
        }
    }

    #[test]
    fn hostname_only_for_the_matching_subdomain() {
        let svc = service(json!({"app": "web"}), json!([]));
        let mut p = pod("a", "web", "10.0.0.1", true);
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("a-host".into());
        spec.subdomain = Some("web".into());
        let sel = selector_of(&svc).unwrap();
        assert_eq!(
            pod_endpoint(&svc, &sel, &p).unwrap().hostname.as_deref(),
            Some("a-host")
        );
        p.spec.as_mut().unwrap().subdomain = Some("other".into());
        assert_eq!(pod_endpoint(&svc, &sel, &p).unwrap().hostname, None);
    }

    #[test]
    fn trigger_time_is_the_latest_change() {
        let svc = service(json!({"app": "web"}), json!([]));
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            last_change_trigger_time(&svc, &[]),
            Some(t("2026-01-01T00:00:00Z"))
        );
        let mut late = pod("a", "web", "10.0.0.1", true);
        late.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t("2026-01-01T00:09:00Z")),
        );
        let unrelated = {
            let mut p = pod("x", "db", "10.0.0.9", true);
            p.metadata.creation_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t("2027-01-01T00:00:00Z")),
            );
            p.status = None;
            p
        };
        assert_eq!(
            last_change_trigger_time(&svc, &[pod("b", "web", "10.0.0.2", true), late, unrelated]),
            Some(t("2026-01-01T00:09:00Z"))
        );
    }

    #[test]
    fn labels_copy_the_service_and_mark_headless() {
        let mut svc = service(json!({"app": "web"}), json!([]));
        assert_eq!(
            endpoint_labels(&svc),
            BTreeMap::from([
                ("app".into(), "web".into()),
                ("tier".into(), "front".into())
            ])
        );
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert_eq!(
            endpoint_labels(&svc)
                .get(HEADLESS_LABEL)
                .map(String::as_str),
            Some("")
        );
    }
}
