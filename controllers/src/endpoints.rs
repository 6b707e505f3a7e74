//! The Endpoints controller: keeps a core/v1 `Endpoints` object, named like its Service, listing
//! the addresses of the pods the Service selects, as Kubernetes' endpoint controller does.
//!
//! Ready pods are `addresses`, others `notReadyAddresses` (all of them ready with
//! `publishNotReadyAddresses`); terminating pods are left out unless the Service publishes
//! not-ready addresses. Pods are grouped into subsets by the set of ports they serve, so a pod
//! lacking a named `targetPort` is only left out of that port. Services without a selector are
//! left alone (their Endpoints are someone else's); an Endpoints object whose Service is gone
//! is deleted. The object is written only when its subsets or labels differ from what is
//! stored.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runtime::controller::{Controller, ControllerConfig, Expect, Reconciler};
use runtime::informer::Store;
use runtime::{Api, Client, DeleteParams, PostParams};
use tracing::info;

use crate::caches::wait_for_caches;
use crate::context::Context;
use crate::service_pods::{
    LAST_CHANGE_TRIGGER_TIME, PodEndpoint, ResolvedPort, endpoint_labels, format_trigger_time,
    is_headless, last_change_trigger_time, publishes_not_ready, queue_on_service_and_pod_changes,
    selector_of, service_endpoints,
};

/// The controller's name in `--controllers`.
pub const NAME: &str = "endpoints";

/// What to do with one Service's Endpoints.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this Endpoints object.
    Create(Endpoints),
    /// Replace the stored object with this one (same resourceVersion).
    Update(Endpoints),
    /// Delete the Endpoints of a Service that is gone.
    Delete,
}

fn to_port(p: &ResolvedPort) -> EndpointPort {
    EndpointPort {
        name: p.name.clone(),
        port: p.port,
        protocol: Some(p.protocol.clone()),
        app_protocol: p.app_protocol.clone(),
    }
}

fn to_address(e: &PodEndpoint) -> EndpointAddress {
    EndpointAddress {
        ip: e.ip.clone(),
        hostname: e.hostname.clone(),
        node_name: e.node_name.clone(),
        target_ref: Some(e.target_ref.clone()),
    }
}

fn none_if_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn port_key(p: &EndpointPort) -> (Option<&str>, i32, &str) {
    (
        p.name.as_deref(),
        p.port,
        p.protocol.as_deref().unwrap_or("TCP"),
    )
}

fn address_key(a: &EndpointAddress) -> (&str, Option<&str>) {
    (
        a.ip.as_str(),
        a.target_ref.as_ref().and_then(|r| r.name.as_deref()),
    )
}

/// Subsets in one canonical order (ports, addresses sorted; empty lists absent; protocol
/// defaulted), so a stored object and a computed one compare equal when they mean the same.
pub fn canonical(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut out: Vec<EndpointSubset> = subsets
        .iter()
        .map(|s| {
            let mut ports = s.ports.clone().unwrap_or_default();
            for p in &mut ports {
                p.protocol.get_or_insert_with(|| "TCP".to_string());
            }
            ports.sort_by(|a, b| port_key(a).cmp(&port_key(b)));
            let sorted = |v: &Option<Vec<EndpointAddress>>| {
                let mut v = v.clone().unwrap_or_default();
                v.sort_by(|a, b| address_key(a).cmp(&address_key(b)));
                none_if_empty(v)
            };
            EndpointSubset {
                addresses: sorted(&s.addresses),
                not_ready_addresses: sorted(&s.not_ready_addresses),
                ports: none_if_empty(ports),
            }
        })
        .filter(|s| s.addresses.is_some() || s.not_ready_addresses.is_some())
        .collect();
    out.sort_by(|a, b| {
        let key = |s: &EndpointSubset| {
            s.ports
                .iter()
                .flatten()
                .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
                .collect::<Vec<_>>()
        };
        key(a).cmp(&key(b))
    });
    out
}

/// The subsets Kubernetes publishes for `svc` given its pods' endpoints: grouped by port set,
/// ready ones in `addresses`, the rest in `notReadyAddresses`. A Service without ports gets
/// port-less addresses only when headless.
pub fn desired_subsets(svc: &Service, endpoints: &[PodEndpoint]) -> Vec<EndpointSubset> {
    let publish = publishes_not_ready(svc);
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    let headless = is_headless(svc);
    type Group = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<Vec<ResolvedPort>, Group> = BTreeMap::new();
    for ep in endpoints {
        if ep.terminating && !publish {
            continue;
        }
        let ports = match (has_ports, ep.ports.is_empty()) {
            (true, false) => ep.ports.clone(),
            (true, true) => continue,
            (false, _) if headless => Vec::new(),
            (false, _) => continue,
        };
        let group = groups.entry(ports).or_default();
        if publish || ep.ready {
            group.0.push(to_address(ep));
        } else {
            group.1.push(to_address(ep));
        }
    }
    let subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: none_if_empty(ready),
            not_ready_addresses: none_if_empty(not_ready),
            ports: none_if_empty(ports.iter().map(to_port).collect()),
        })
        .collect();
    canonical(&subsets)
}

/// Most addresses one Endpoints object carries (Kubernetes' `maxCapacity`); EndpointSlices
/// have no such limit.
pub const MAX_ADDRESSES: usize = 1000;
/// Annotation marking an Endpoints object whose addresses were cut to [`MAX_ADDRESSES`].
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// Cuts subsets holding more than `max` addresses down to about `max`, as Kubernetes does:
/// ready addresses are kept before not-ready ones, and each subset keeps its share of what is
/// cut, rounded up (so the result may slightly exceed `max`). Returns whether anything was
/// cut.
pub fn truncate(subsets: &mut [EndpointSubset], max: usize) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= max {
        return false;
    }
    // Either the ready addresses alone are too many (cut them, drop every not-ready one), or
    // the not-ready ones get what room is left.
    let cut_ready = ready > max;
    let (room, total) = if cut_ready {
        (max, ready)
    } else {
        (max - ready, not_ready)
    };
    let mut left = room;
    for s in subsets.iter_mut() {
        let list = if cut_ready {
            s.not_ready_addresses = None;
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let here = count(list);
        let share = (here * room).div_ceil(total.max(1)).min(left);
        if let Some(v) = list.as_mut() {
            v.truncate(share);
        }
        left -= count(list);
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    true
}

/// The whole decision for one Service key: what the caches show → at most one action.
pub fn plan(svc: Option<&Service>, pods: &[&Pod], current: Option<&Endpoints>) -> Option<Action> {
    let Some(svc) = svc else {
        return current.map(|_| Action::Delete);
    };
    selector_of(svc)?;
    let eps = service_endpoints(svc, pods.iter().copied());
    let mut subsets = desired_subsets(svc, &eps);
    let truncated = truncate(&mut subsets, MAX_ADDRESSES);
    subsets.retain(|s| s.addresses.is_some() || s.not_ready_addresses.is_some());
    let labels = endpoint_labels(svc);
    if let Some(cur) = current {
        let same_subsets = canonical(cur.subsets.as_deref().unwrap_or_default()) == subsets;
        let same_labels = cur.metadata.labels.clone().unwrap_or_default() == labels;
        let marked = cur
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(OVER_CAPACITY).map(String::as_str) == Some("truncated"));
        if same_subsets && same_labels && marked == truncated {
            return None;
        }
    }
    let mut meta = match current {
        Some(cur) => cur.metadata.clone(),
        None => ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
    };
    meta.labels = (!labels.is_empty()).then_some(labels);
    let mut annotations = meta.annotations.take().unwrap_or_default();
    match last_change_trigger_time(svc, pods.iter().copied()) {
        Some(t) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.to_string(), format_trigger_time(t));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    if truncated {
        annotations.insert(OVER_CAPACITY.to_string(), "truncated".to_string());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    meta.annotations = (!annotations.is_empty()).then_some(annotations);
    let object = Endpoints {
        metadata: meta,
        subsets: none_if_empty(subsets),
    };
    Some(match current {
        Some(_) => Action::Update(object),
        None => Action::Create(object),
    })
}

/// The controller: caches of Services, Pods and Endpoints, and the client to write with.
pub struct EndpointsController {
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    client: Client,
}

/// What the caches show for one Service key.
pub struct Observed {
    service: Option<Arc<Service>>,
    pods: Vec<Arc<Pod>>,
    current: Option<Arc<Endpoints>>,
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("default", key))
}

impl Reconciler for EndpointsController {
    type Key = String;
    type Observed = Observed;
    type Action = Action;

    fn observe(&self, key: &String) -> Observed {
        let service = self.services.get(key);
        let pods = match service.as_deref().and_then(selector_of) {
            Some(sel) => self.pods.by_selector(Some(split_key(key).0), &sel),
            None => Vec::new(),
        };
        Observed {
            service,
            pods,
            current: self.endpoints.get(key),
        }
    }

    fn plan(&self, _key: &String, o: &Observed) -> Vec<Action> {
        let pods: Vec<&Pod> = o.pods.iter().map(|p| p.as_ref()).collect();
        plan(o.service.as_deref(), &pods, o.current.as_deref())
            .into_iter()
            .collect()
    }

    fn expects(&self, action: &Action) -> Expect {
        match action {
            Action::Create(_) => Expect::Create,
            Action::Update(_) => Expect::Update,
            Action::Delete => Expect::Delete,
        }
    }

    async fn apply(&self, key: &String, action: Action) -> runtime::Result<()> {
        let (ns, name) = split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        match action {
            Action::Create(ep) => {
                api.create(&PostParams::default(), &ep).await?;
                info!(endpoints = %key, "created endpoints");
            }
            Action::Update(ep) => {
                api.replace(name, &PostParams::default(), &ep).await?;
            }
            Action::Delete => match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => info!(endpoints = %key, "deleted endpoints of a deleted service"),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            },
        }
        Ok(())
    }
}

/// Runs the Endpoints controller for one leadership term.
pub fn main(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Arc<Context>) {
    let services = ctx.informers.informer::<Service>();
    let pods = ctx.informers.informer::<Pod>();
    let endpoints = ctx.informers.informer::<Endpoints>();
    wait_for_caches(&ctx, NAME).await;
    let controller = Controller::new(
        EndpointsController {
            services: services.store().clone(),
            pods: pods.store().clone(),
            endpoints: endpoints.store().clone(),
            client: ctx.client.clone(),
        },
        ControllerConfig {
            workers: ctx.settings.workers,
            ..ControllerConfig::default()
        },
    );
    queue_on_service_and_pod_changes(&services, &pods, controller.queue());
    let (queue, expectations) = (
        controller.queue().clone(),
        controller.expectations().clone(),
    );
    // Existing Endpoints are replayed as Added at start: one whose Service is gone is then
    // deleted (Kubernetes' check for leftover Endpoints).
    endpoints.add_handler(move |ev| {
        let key = ev.key();
        expectations.observed(&key, Expect::of(ev));
        queue.add(key);
    });
    controller.run().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_pods::tests::{pod, service};
    use serde_json::json;

    fn ips(v: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        v.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    fn ports(s: &EndpointSubset) -> Vec<(Option<&str>, i32)> {
        s.ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.port))
            .collect()
    }

    #[test]
    fn subsets_group_by_port_set_and_readiness() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http"},
                   {"name": "metrics", "port": 9090, "targetPort": "metrics"}]),
        );
        // "m" also serves the named metrics port.
        let mut with_metrics = pod("m", "web", "10.0.0.3", true);
        with_metrics.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()
            .push(
                serde_json::from_value(json!({"name": "metrics", "containerPort": 9100})).unwrap(),
            );
        let mut terminating = pod("t", "web", "10.0.0.4", true);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:01:00Z".parse().unwrap(),
            ));
        let pods = [
            pod("b", "web", "10.0.0.2", false),
            pod("a", "web", "10.0.0.1", true),
            with_metrics,
            terminating,
        ];
        let eps = service_endpoints(&svc, &pods);
        let subsets = desired_subsets(&svc, &eps);
        assert_eq!(subsets.len(), 2, "{subsets:#?}");
        assert_eq!(ports(&subsets[0]), vec![(Some("http"), 8080)]);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.0.0.2"]);
        assert_eq!(
            ports(&subsets[1]),
            vec![(Some("http"), 8080), (Some("metrics"), 9100)]
        );
        assert_eq!(ips(&subsets[1].addresses), vec!["10.0.0.3"]);
        let a = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("node-1"));
        assert_eq!(
            a.target_ref
                .as_ref()
                .map(|r| (r.kind.as_deref(), r.name.as_deref())),
            Some((Some("Pod"), Some("a")))
        );

        // publishNotReadyAddresses: everything is ready, terminating pods included.
        let mut publish = svc.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let subsets = desired_subsets(&publish, &service_endpoints(&publish, &pods));
        assert_eq!(
            ips(&subsets[0].addresses),
            vec!["10.0.0.1", "10.0.0.2", "10.0.0.4"]
        );
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn port_less_services_publish_only_when_headless() {
        let mut svc = service(json!({"app": "web"}), json!([]));
        let pods = [pod("a", "web", "10.0.0.1", true)];
        assert!(desired_subsets(&svc, &service_endpoints(&svc, &pods)).is_empty());
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let subsets = desired_subsets(&svc, &service_endpoints(&svc, &pods));
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1"]);
        assert!(subsets[0].ports.is_none());
    }

    fn addresses(prefix: &str, n: usize) -> Option<Vec<EndpointAddress>> {
        (n > 0).then(|| {
            (0..n)
                .map(|i| EndpointAddress {
                    ip: format!("{prefix}.{i}"),
                    ..EndpointAddress::default()
                })
                .collect()
        })
    }

    #[test]
    fn truncation_keeps_ready_addresses_first_in_proportion() {
        let subset = |ready: usize, not_ready: usize| EndpointSubset {
            addresses: addresses("10.0.0", ready),
            not_ready_addresses: addresses("10.0.1", not_ready),
            ports: None,
        };
        let sizes = |subsets: &[EndpointSubset]| -> Vec<(usize, usize)> {
            subsets
                .iter()
                .map(|s| {
                    (
                        s.addresses.as_ref().map_or(0, Vec::len),
                        s.not_ready_addresses.as_ref().map_or(0, Vec::len),
                    )
                })
                .collect()
        };
        // (subsets as (ready, not ready), max, truncated?, result)
        let cases = [
            (vec![(3, 2)], 10, false, vec![(3, 2)]),
            (vec![(5, 5)], 10, false, vec![(5, 5)]),
            // Room for 4 of the 8 not-ready, shared 1:3.
            (vec![(3, 2), (3, 6)], 10, true, vec![(3, 1), (3, 3)]),
            // Too many ready: not-ready all go, ready shared 6:9 of 10, rounded up.
            (vec![(6, 1), (9, 0)], 10, true, vec![(4, 0), (6, 0)]),
        ];
        for (input, max, cut, want) in cases {
            let mut subsets: Vec<EndpointSubset> =
                input.iter().map(|(r, n)| subset(*r, *n)).collect();
            assert_eq!(truncate(&mut subsets, max), cut, "{input:?}");
            assert_eq!(sizes(&subsets), want, "{input:?}");
        }
    }

    #[test]
    fn plans() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http"}]),
        );
        let a = pod("a", "web", "10.0.0.1", true);
        let b = pod("b", "web", "10.0.0.2", true);
        let created = match plan(Some(&svc), &[&a], None) {
            Some(Action::Create(ep)) => ep,
            other => panic!("expected a create, got {other:?}"),
        };
        assert_eq!(created.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            created
                .metadata
                .labels
                .as_ref()
                .unwrap()
                .get("tier")
                .map(String::as_str),
            Some("front")
        );
        assert_eq!(
            created.metadata.annotations.as_ref().unwrap()[LAST_CHANGE_TRIGGER_TIME],
            "2026-01-01T00:00:05Z"
        );
        // What the server stores (protocol defaulted, same content): in sync.
        let stored = created.clone();
        assert_eq!(plan(Some(&svc), &[&a], Some(&stored)), None);
        // A new pod: an update that keeps the stored metadata.
        let mut stored_rv = stored.clone();
        stored_rv.metadata.resource_version = Some("42".into());
        match plan(Some(&svc), &[&a, &b], Some(&stored_rv)) {
            Some(Action::Update(ep)) => {
                assert_eq!(ep.metadata.resource_version.as_deref(), Some("42"));
                assert_eq!(
                    ips(&ep.subsets.unwrap()[0].addresses),
                    vec!["10.0.0.1", "10.0.0.2"]
                );
            }
            other => panic!("expected an update, got {other:?}"),
        }
        // Changed Service labels are an update too.
        let mut relabelled = svc.clone();
        relabelled.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
        assert!(matches!(
            plan(Some(&relabelled), &[&a], Some(&stored)),
            Some(Action::Update(_))
        ));
        // No selector: left alone, whatever exists.
        let manual = service(json!(null), json!([{"port": 80}]));
        assert_eq!(plan(Some(&manual), &[&a], Some(&stored)), None);
        assert_eq!(plan(Some(&manual), &[&a], None), None);
        // Service gone: delete what is left, nothing when nothing is.
        assert_eq!(plan(None, &[&a], Some(&stored)), Some(Action::Delete));
        assert_eq!(plan(None, &[&a], None), None);
        // More than 1000 pods: truncated and marked; back under, the mark goes.
        let many: Vec<Pod> = (0..1005)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    "web",
                    &format!("10.1.{}.{}", i / 250, i % 250 + 1),
                    true,
                )
            })
            .collect();
        let many_refs: Vec<&Pod> = many.iter().collect();
        let big = match plan(Some(&svc), &many_refs, Some(&stored)) {
            Some(Action::Update(ep)) => ep,
            other => panic!("expected an update, got {other:?}"),
        };
        assert_eq!(
            ips(&big.subsets.as_ref().unwrap()[0].addresses).len(),
            MAX_ADDRESSES
        );
        assert_eq!(
            big.metadata.annotations.as_ref().unwrap()[OVER_CAPACITY],
            "truncated"
        );
        assert_eq!(plan(Some(&svc), &many_refs, Some(&big)), None);
        match plan(Some(&svc), &[&a], Some(&big)) {
            Some(Action::Update(ep)) => {
                assert!(!ep.metadata.annotations.unwrap().contains_key(OVER_CAPACITY))
            }
            other => panic!("expected an update, got {other:?}"),
        }
        // No pods: an Endpoints object with no subsets.
        match plan(Some(&svc), &[], None) {
            Some(Action::Create(ep)) => assert!(ep.subsets.is_none()),
            other => panic!("expected a create, got {other:?}"),
        }
    }
}
