//! The EndpointSlice controller: publishes the pods behind each Service with a selector as
//! `discovery.k8s.io/v1` EndpointSlices, as Kubernetes' endpointslice controller does.
//!
//! Slices are labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by the
//! Service, hold IPv4 endpoints with `ready`/`serving`/`terminating` conditions (terminating
//! pods stay, marked), one port set per slice and at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints.
//! To keep churn low, an endpoint stays in the slice that already holds it; new endpoints fill
//! existing slices with room before new slices are created; emptied slices are deleted. A
//! Service with no endpoints keeps one empty "placeholder" slice, as in Kubernetes.
//!
//! Which pods and which ports come from [`crate::service_pods`], shared with the Endpoints
//! controller. **Decision:** slices of a deleted Service are deleted here rather than left to
//! the garbage collector, so the controller does not depend on it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runtime::controller::{Controller, ControllerConfig, Expect, Reconciler};
use runtime::informer::Store;
use runtime::objects::controller_ref;
use runtime::{Api, Client, DeleteParams, PostParams};
use tracing::info;

use crate::caches::wait_for_caches;
use crate::context::Context;
use crate::service_pods::{
    LAST_CHANGE_TRIGGER_TIME, PodEndpoint, ResolvedPort, endpoint_labels, format_trigger_time,
    last_change_trigger_time, publishes_not_ready, queue_on_service_and_pod_changes, selector_of,
    service_endpoints,
};

/// The controller's name in `--controllers`.
pub const NAME: &str = "endpointslice";
/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`] (Kubernetes' own, so tools recognise it).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Kubernetes' default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Index of the slice cache: `namespace/service-name` of managed slices.
const SERVICE_INDEX: &str = "endpointslice.service";

/// One write to bring a Service's slices in line.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create a slice (named by `generateName`).
    Create(EndpointSlice),
    /// Replace a slice (same resourceVersion).
    Update(EndpointSlice),
    /// Delete the slice with this name.
    Delete(String),
}

/// The endpoint a pod is in a slice. `serving` is the pod's readiness; `ready` is that unless
/// the pod terminates, or always true with `publishNotReadyAddresses`.
fn to_endpoint(e: &PodEndpoint, publish: bool) -> Endpoint {
    Endpoint {
        addresses: vec![e.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (e.ready && !e.terminating)),
            serving: Some(e.ready),
            terminating: Some(e.terminating),
        }),
        hostname: e.hostname.clone(),
        node_name: e.node_name.clone(),
        target_ref: Some(e.target_ref.clone()),
        ..Endpoint::default()
    }
}

fn to_ports(ports: &[ResolvedPort]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|p| EndpointPort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: Some(p.port),
            protocol: Some(p.protocol.clone()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

/// The port set of a stored slice, comparable with a pod's resolved ports.
fn port_key(slice: &EndpointSlice) -> Vec<ResolvedPort> {
    let mut key: Vec<ResolvedPort> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| ResolvedPort {
            name: p.name.clone().filter(|n| !n.is_empty()),
            port: p.port.unwrap_or_default(),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    key.sort();
    key
}

fn address(e: &Endpoint) -> &str {
    e.addresses.first().map(String::as_str).unwrap_or_default()
}

/// Labels of the slices of `svc`.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = endpoint_labels(svc);
    labels.insert(
        SERVICE_NAME_LABEL.to_string(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels
}

/// Whether a stored slice already says what `want` says (the trigger-time annotation aside,
/// so a slice is not rewritten just because time passed).
fn same_content(have: &EndpointSlice, want: &EndpointSlice) -> bool {
    have.endpoints == want.endpoints
        && port_key(have) == port_key(want)
        && have.metadata.labels == want.metadata.labels
        && have.metadata.owner_references == want.metadata.owner_references
        && have.address_type == want.address_type
}

/// What is fixed for every slice of one Service in one plan.
struct SliceTemplate {
    namespace: Option<String>,
    generate_name: String,
    labels: BTreeMap<String, String>,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    trigger: Option<String>,
}

impl SliceTemplate {
    /// `base` (a stored slice, or a fresh one) with these endpoints and ports.
    fn fill(
        &self,
        base: Option<&EndpointSlice>,
        mut endpoints: Vec<Endpoint>,
        ports: &[ResolvedPort],
    ) -> EndpointSlice {
        endpoints.sort_by(|a, b| address(a).cmp(address(b)));
        let mut meta = base
            .map(|b| b.metadata.clone())
            .unwrap_or_else(|| ObjectMeta {
                generate_name: Some(self.generate_name.clone()),
                namespace: self.namespace.clone(),
                ..ObjectMeta::default()
            });
        meta.labels = Some(self.labels.clone());
        meta.owner_references = self.owner.clone().map(|o| vec![o]);
        let mut annotations = meta.annotations.take().unwrap_or_default();
        if let Some(t) = &self.trigger {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.to_string(), t.clone());
        }
        meta.annotations = (!annotations.is_empty()).then_some(annotations);
        EndpointSlice {
            metadata: meta,
            address_type: "IPv4".into(),
            endpoints,
            ports: Some(to_ports(ports)),
        }
    }
}

/// The whole decision for one Service: its pods and its existing managed slices → writes,
/// creates and updates before deletes (so endpoints never vanish in between).
pub fn plan(
    svc: Option<&Service>,
    pods: &[&Pod],
    existing: &[&EndpointSlice],
    max_per_slice: usize,
) -> Vec<Action> {
    let Some(svc) = svc else {
        // Service gone: its slices go too.
        return existing
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .map(Action::Delete)
            .collect();
    };
    // Without a selector the slices are someone else's; ExternalName Services get none from
    // this controller (as in Kubernetes).
    let external_name = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    if selector_of(svc).is_none() || external_name {
        return Vec::new();
    }
    let max = max_per_slice.max(1);
    let publish = publishes_not_ready(svc);
    let template = SliceTemplate {
        namespace: svc.metadata.namespace.clone(),
        generate_name: format!("{}-", svc.metadata.name.as_deref().unwrap_or_default()),
        labels: slice_labels(svc),
        owner: controller_ref(svc),
        trigger: last_change_trigger_time(svc, pods.iter().copied()).map(format_trigger_time),
    };
    // Desired endpoints by port set, each keyed by address.
    let mut desired: BTreeMap<Vec<ResolvedPort>, BTreeMap<String, Endpoint>> = BTreeMap::new();
    for e in service_endpoints(svc, pods.iter().copied()) {
        desired
            .entry(e.ports.clone())
            .or_default()
            .insert(e.ip.clone(), to_endpoint(&e, publish));
    }
    let mut existing: Vec<&EndpointSlice> = existing
        .iter()
        .copied()
        .filter(|s| s.address_type == "IPv4")
        .collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let mut writes = Vec::new();
    let mut deletes = Vec::new();
    let update_if_changed =
        |have: &EndpointSlice, want: EndpointSlice, writes: &mut Vec<Action>| {
            if !same_content(have, &want) {
                writes.push(Action::Update(want));
            }
        };

    if desired.is_empty() {
        // The placeholder: one slice with no endpoints and no ports.
        match existing.split_first() {
            Some((first, rest)) => {
                let want = template.fill(Some(first), Vec::new(), &[]);
                update_if_changed(first, want, &mut writes);
                deletes.extend(rest.iter().filter_map(|s| s.metadata.name.clone()));
            }
            None => writes.push(Action::Create(template.fill(None, Vec::new(), &[]))),
        }
        writes.extend(deletes.into_iter().map(Action::Delete));
        return writes;
    }

    let mut creates: Vec<(Vec<Endpoint>, &Vec<ResolvedPort>)> = Vec::new();
    let mut emptied: Vec<&EndpointSlice> = Vec::new();
    let mut by_ports: HashMap<Vec<ResolvedPort>, Vec<&EndpointSlice>> = HashMap::new();
    for s in &existing {
        by_ports.entry(port_key(s)).or_default().push(s);
    }
    for (ports, wanted) in &desired {
        let slices = by_ports.remove(ports).unwrap_or_default();
        let mut placed: HashSet<&str> = HashSet::new();
        // Keep every endpoint where it is (with its current state).
        let mut contents: Vec<(&EndpointSlice, Vec<Endpoint>)> = slices
            .iter()
            .map(|s| {
                let kept = s
                    .endpoints
                    .iter()
                    .filter_map(|e| {
                        let (addr, want) = wanted.get_key_value(address(e))?;
                        placed.insert(addr.as_str()).then(|| want.clone())
                    })
                    .collect();
                (*s, kept)
            })
            .collect();
        // New endpoints fill the slices with room, then new slices.
        let mut unplaced = wanted
            .iter()
            .filter(|(addr, _)| !placed.contains(addr.as_str()))
            .map(|(_, e)| e.clone())
            .peekable();
        for (_, content) in &mut contents {
            while content.len() < max {
                match unplaced.next() {
                    Some(e) => content.push(e),
                    None => break,
                }
            }
        }
        let rest: Vec<Endpoint> = unplaced.collect();
        creates.extend(rest.chunks(max).map(|c| (c.to_vec(), ports)));
        for (slice, content) in contents {
            if content.is_empty() {
                emptied.push(slice);
            } else {
                let want = template.fill(Some(slice), content, ports);
                update_if_changed(slice, want, &mut writes);
            }
        }
    }
    // Slices of port sets no pod serves any more.
    emptied.extend(by_ports.into_values().flatten());
    emptied.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // A slice about to be deleted is rewritten instead of creating a new one (so the
    // placeholder turns into the first real slice, and port-set changes reuse slices).
    let mut reusable = emptied.into_iter();
    for (content, ports) in creates {
        writes.push(match reusable.next() {
            Some(old) => Action::Update(template.fill(Some(old), content, ports)),
            None => Action::Create(template.fill(None, content, ports)),
        });
    }
    writes.extend(
        reusable
            .filter_map(|s| s.metadata.name.clone())
            .map(Action::Delete),
    );
    writes
}

/// The controller: caches of Services, Pods and EndpointSlices, and the client.
pub struct EndpointSliceController {
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    client: Client,
}

/// What the caches show for one Service key.
pub struct Observed {
    service: Option<Arc<Service>>,
    pods: Vec<Arc<Pod>>,
    slices: Vec<Arc<EndpointSlice>>,
}

/// `namespace/service` of a slice this controller manages, if it is one.
fn managed_service_key(s: &EndpointSlice) -> Option<String> {
    let labels = s.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    let svc = labels.get(SERVICE_NAME_LABEL)?;
    Some(format!(
        "{}/{svc}",
        s.metadata.namespace.as_deref().unwrap_or_default()
    ))
}

impl Reconciler for EndpointSliceController {
    type Key = String;
    type Observed = Observed;
    type Action = Action;

    fn observe(&self, key: &String) -> Observed {
        let service = self.services.get(key);
        let ns = key.split_once('/').map(|(ns, _)| ns).unwrap_or_default();
        let pods = match service.as_deref().and_then(selector_of) {
            Some(sel) => self.pods.by_selector(Some(ns), &sel),
            None => Vec::new(),
        };
        Observed {
            service,
            pods,
            slices: self.slices.by_index(SERVICE_INDEX, key),
        }
    }

    fn plan(&self, _key: &String, o: &Observed) -> Vec<Action> {
        let pods: Vec<&Pod> = o.pods.iter().map(|p| p.as_ref()).collect();
        let slices: Vec<&EndpointSlice> = o.slices.iter().map(|s| s.as_ref()).collect();
        plan(
            o.service.as_deref(),
            &pods,
            &slices,
            MAX_ENDPOINTS_PER_SLICE,
        )
    }

    fn expects(&self, action: &Action) -> Expect {
        match action {
            Action::Create(_) => Expect::Create,
            Action::Update(_) => Expect::Update,
            Action::Delete(_) => Expect::Delete,
        }
    }

    async fn apply(&self, key: &String, action: Action) -> runtime::Result<()> {
        let ns = key.split_once('/').map(|(ns, _)| ns).unwrap_or_default();
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        match action {
            Action::Create(s) => {
                let created = api.create(&PostParams::default(), &s).await?;
                info!(service = %key, slice = created.metadata.name.as_deref().unwrap_or_default(), "created endpoint slice");
            }
            Action::Update(s) => {
                let name = s.metadata.name.clone().unwrap_or_default();
                api.replace(&name, &PostParams::default(), &s).await?;
            }
            Action::Delete(name) => match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => info!(service = %key, slice = %name, "deleted endpoint slice"),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            },
        }
        Ok(())
    }
}

/// Runs the EndpointSlice controller for one leadership term.
pub fn main(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Arc<Context>) {
    let services = ctx.informers.informer::<Service>();
    let pods = ctx.informers.informer::<Pod>();
    let slices = ctx.informers.informer::<EndpointSlice>();
    slices.store().add_indexer(
        SERVICE_INDEX,
        Arc::new(|s: &EndpointSlice| managed_service_key(s).into_iter().collect()),
    );
    wait_for_caches(&ctx, NAME).await;
    let controller = Controller::new(
        EndpointSliceController {
            services: services.store().clone(),
            pods: pods.store().clone(),
            slices: slices.store().clone(),
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
    // Replayed as Added at start: the slices of a Service deleted meanwhile get cleaned up.
    slices.add_handler(move |ev| {
        let Some(key) = managed_service_key(ev.object()) else {
            return;
        };
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

    fn web() -> Service {
        service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http"}]),
        )
    }

    fn pods(n: usize) -> Vec<Pod> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    "web",
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    true,
                )
            })
            .collect()
    }

    /// Applies a plan to a fake store of slices, naming creates `web-<n>`.
    fn apply(store: &mut Vec<EndpointSlice>, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Create(mut s) => {
                    s.metadata.name = Some(format!("web-{}", store.len() + 100));
                    store.push(s);
                }
                Action::Update(s) => {
                    let i = store
                        .iter()
                        .position(|x| x.metadata.name == s.metadata.name)
                        .unwrap();
                    store[i] = s;
                }
                Action::Delete(name) => store.retain(|x| x.metadata.name.as_deref() != Some(&name)),
            }
        }
    }

    /// Plans against the fake store and applies the plan to it.
    fn sync(store: &mut Vec<EndpointSlice>, svc: &Service, pods: &[Pod]) {
        let actions = plan_for(svc, pods, store);
        apply(store, actions);
    }

    fn plan_for(svc: &Service, pods: &[Pod], store: &[EndpointSlice]) -> Vec<Action> {
        let pods: Vec<&Pod> = pods.iter().collect();
        let slices: Vec<&EndpointSlice> = store.iter().collect();
        plan(Some(svc), &pods, &slices, MAX_ENDPOINTS_PER_SLICE)
    }

    #[test]
    fn a_slice_carries_labels_owner_ports_and_conditions() {
        let svc = web();
        let mut not_ready = pod("b", "web", "10.0.0.2", false);
        not_ready
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("x".into(), "y".into());
        let mut terminating = pod("c", "web", "10.0.0.3", true);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:01:00Z".parse().unwrap(),
            ));
        let all = [pod("a", "web", "10.0.0.1", true), not_ready, terminating];
        let actions = plan_for(&svc, &all, &[]);
        let [Action::Create(s)] = actions.as_slice() else {
            panic!("expected one create, got {actions:#?}");
        };
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels["tier"], "front");
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Service", "svc-uid", Some(true))
        );
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(
            s.ports,
            Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                app_protocol: None
            }])
        );
        let conds: Vec<(&str, bool, bool, bool)> = s
            .endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.as_ref().unwrap();
                (
                    address(e),
                    c.ready.unwrap(),
                    c.serving.unwrap(),
                    c.terminating.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            conds,
            vec![
                ("10.0.0.1", true, true, false),
                ("10.0.0.2", false, false, false),
                ("10.0.0.3", false, true, true),
            ]
        );
        assert_eq!(s.endpoints[0].node_name.as_deref(), Some("node-1"));
        assert_eq!(
            s.endpoints[0]
                .target_ref
                .as_ref()
                .and_then(|r| r.name.as_deref()),
            Some("a")
        );
    }

    #[test]
    fn at_most_a_hundred_per_slice_and_little_churn() {
        let svc = web();
        let mut store = Vec::new();
        let mut all = pods(250);
        sync(&mut store, &svc, &all);
        let mut sizes: Vec<usize> = store.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![50, 100, 100]);
        assert!(
            plan_for(&svc, &all, &store).is_empty(),
            "in sync after applying"
        );

        // One pod more: it goes into the slice with room; nothing else is touched.
        all.push(pod("extra", "web", "10.9.9.9", true));
        let actions = plan_for(&svc, &all, &store);
        assert_eq!(actions.len(), 1, "{actions:#?}");
        let Action::Update(s) = &actions[0] else {
            panic!("{actions:#?}")
        };
        assert_eq!(s.endpoints.len(), 51);
        apply(&mut store, actions);

        // A pod turning not ready rewrites only its own slice.
        let holder = store
            .iter()
            .find(|s| s.endpoints.iter().any(|e| address(e) == "10.0.0.1"))
            .and_then(|s| s.metadata.name.clone());
        all[0] = pod("p000", "web", "10.0.0.1", false);
        let actions = plan_for(&svc, &all, &store);
        assert_eq!(actions.len(), 1);
        assert!(matches!(&actions[0], Action::Update(s) if s.metadata.name == holder));
        apply(&mut store, actions);

        // Down to 10 pods: slices emptied are deleted, the rest shrink in place.
        all.truncate(10);
        sync(&mut store, &svc, &all);
        let total: usize = store.iter().map(|s| s.endpoints.len()).sum();
        assert_eq!(total, 10);
        assert!(store.len() < 3 && store.iter().all(|s| !s.endpoints.is_empty()));
    }

    #[test]
    fn port_sets_get_their_own_slices_and_no_pods_leave_a_placeholder() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http"},
                   {"name": "metrics", "port": 9090, "targetPort": "metrics"}]),
        );
        let mut m = pod("m", "web", "10.0.0.3", true);
        m.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()
            .push(
                serde_json::from_value(json!({"name": "metrics", "containerPort": 9100})).unwrap(),
            );
        let mut store = Vec::new();
        sync(&mut store, &svc, &[pod("a", "web", "10.0.0.1", true), m]);
        let mut shapes: Vec<(usize, usize)> = store
            .iter()
            .map(|s| (s.ports.as_ref().unwrap().len(), s.endpoints.len()))
            .collect();
        shapes.sort();
        assert_eq!(shapes, vec![(1, 1), (2, 1)]);

        // No pods: one placeholder slice without endpoints or ports.
        sync(&mut store, &svc, &[]);
        assert_eq!(store.len(), 1);
        assert!(store[0].endpoints.is_empty());
        assert_eq!(store[0].ports, Some(vec![]));
        assert!(plan_for(&svc, &[], &store).is_empty());
        // Pods again: the placeholder is reused.
        let name = store[0].metadata.name.clone();
        sync(&mut store, &svc, &[pod("a", "web", "10.0.0.1", true)]);
        assert_eq!(store.len(), 1);
        assert_eq!(store[0].metadata.name, name);
        assert_eq!(store[0].endpoints.len(), 1);
    }

    #[test]
    fn services_without_selector_or_gone() {
        let manual = service(json!(null), json!([{"port": 80}]));
        assert!(plan(Some(&manual), &[], &[], 100).is_empty());
        let mut external = web();
        external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert!(plan(Some(&external), &[&pods(1)[0]], &[], 100).is_empty());
        let mut store = Vec::new();
        sync(&mut store, &web(), &pods(3));
        let slices: Vec<&EndpointSlice> = store.iter().collect();
        assert_eq!(
            plan(None, &[], &slices, 100),
            vec![Action::Delete("web-100".into())]
        );
    }

    #[test]
    fn only_managed_slices_are_indexed() {
        let mut store = Vec::new();
        sync(&mut store, &web(), &pods(1));
        let mut s = store[0].clone();
        assert_eq!(managed_service_key(&s).as_deref(), Some("default/web"));
        s.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(MANAGED_BY_LABEL.into(), "someone-else".into());
        assert_eq!(managed_service_key(&s), None);
    }
}
