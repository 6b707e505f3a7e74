//! The `kube-system/kube-dns` Service and its endpoints: how pods reach the cluster DNS.
//!
//! Pods' resolv.conf names the Service's ClusterIP (the agents' `--cluster-dns`, by default
//! the 10th address of the service CIDR, `10.96.0.10`, as kubeadm picks); the Service proxy
//! sends that to the DNS server's listen address. The server keeps:
//! - the Service: that ClusterIP, ports `dns` 53/UDP and `dns-tcp` 53/TCP targeting the
//!   listen port, no selector (so the endpoint controllers leave its endpoints alone);
//! - an EndpointSlice `kube-dns` labelled `kubernetes.io/service-name: kube-dns` and
//!   `endpointslice.kubernetes.io/managed-by: skiff-server` (not the endpointslice
//!   controller's value, so that controller never touches it);
//! - the Endpoints `kube-dns` (for consumers still reading the core API).
//!
//! Each is created when missing (also after someone deletes it) and put back when its ports
//! or address drift. **Decision:** an existing Service whose ClusterIP differs is left with
//! it (ClusterIPs are immutable; agents are configured with the address anyway) and a
//! warning is logged; the objects carry no owner references (like the API server's own
//! `kubernetes` Service endpoints), so deleting the Service does not take the slice along.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use runtime::controller::{Controller, ControllerConfig, Expect, Reconciler};
use runtime::informer::{Informer, Store};
use runtime::{Api, Client, PostParams};
use tracing::{info, warn};

/// The namespace of the DNS Service.
pub const NAMESPACE: &str = "kube-system";
/// The name of the DNS Service, its EndpointSlice and its Endpoints.
pub const NAME: &str = "kube-dns";
/// The `endpointslice.kubernetes.io/managed-by` value of the slice.
pub const MANAGED_BY: &str = "skiff-server";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const SERVICE_NAME_LABEL: &str = crate::view::SERVICE_NAME_LABEL;

/// What the DNS Service should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeDns {
    /// The Service's ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Where the DNS server listens (the endpoint); `None` keeps the Service without
    /// endpoints (a server listening on every address has no single one to publish).
    pub endpoint: Option<SocketAddr>,
}

/// `ns/name` of the objects, the controller's only key.
pub fn key() -> String {
    format!("{NAMESPACE}/{NAME}")
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("k8s-app".to_string(), NAME.to_string()),
        ("kubernetes.io/name".to_string(), "SkiffDNS".to_string()),
    ])
}

fn meta(labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(NAMESPACE.into()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// The ports of the Service: 53 over UDP and TCP, to the listen port.
fn service_ports(target: u16) -> Vec<ServicePort> {
    [("dns", "UDP"), ("dns-tcp", "TCP")]
        .into_iter()
        .map(|(name, protocol)| ServicePort {
            name: Some(name.into()),
            protocol: Some(protocol.into()),
            port: 53,
            target_port: Some(IntOrString::Int(i32::from(target))),
            ..ServicePort::default()
        })
        .collect()
}

/// The Service as it should be.
pub fn desired_service(want: &KubeDns) -> Service {
    let target = want.endpoint.map_or(53, |e| e.port());
    Service {
        metadata: meta(labels()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(want.cluster_ip.to_string()),
            cluster_ips: Some(vec![want.cluster_ip.to_string()]),
            ports: Some(service_ports(target)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The EndpointSlice as it should be, if there is an endpoint.
pub fn desired_slice(want: &KubeDns) -> Option<EndpointSlice> {
    let endpoint = want.endpoint?;
    let mut labels = labels();
    labels.insert(SERVICE_NAME_LABEL.into(), NAME.into());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
        .into_iter()
        .map(|(name, protocol)| EndpointPort {
            name: Some(name.into()),
            protocol: Some(protocol.into()),
            port: Some(i32::from(endpoint.port())),
            app_protocol: None,
        })
        .collect();
    Some(EndpointSlice {
        metadata: meta(labels),
        address_type: "IPv4".into(),
        endpoints: vec![Endpoint {
            addresses: vec![endpoint.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Endpoint::default()
        }],
        ports: Some(ports),
    })
}

/// The Endpoints as they should be, if there is an endpoint.
pub fn desired_endpoints(want: &KubeDns) -> Option<Endpoints> {
    let endpoint = want.endpoint?;
    Some(Endpoints {
        metadata: meta(labels()),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: endpoint.ip().to_string(),
                ..EndpointAddress::default()
            }]),
            ports: Some(
                [("dns", "UDP"), ("dns-tcp", "TCP")]
                    .into_iter()
                    .map(|(name, protocol)| CorePort {
                        name: Some(name.into()),
                        protocol: Some(protocol.into()),
                        port: i32::from(endpoint.port()),
                        app_protocol: None,
                    })
                    .collect(),
            ),
            not_ready_addresses: None,
        }]),
    })
}

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the Service.
    CreateService(Box<Service>),
    /// Replace the Service (ports, selector, labels put back).
    UpdateService(Box<Service>),
    /// Create the slice.
    CreateSlice(Box<EndpointSlice>),
    /// Replace the slice.
    UpdateSlice(Box<EndpointSlice>),
    /// Create the Endpoints.
    CreateEndpoints(Box<Endpoints>),
    /// Replace the Endpoints.
    UpdateEndpoints(Box<Endpoints>),
}

/// Whether every label of `want` is on `have` (others may add their own).
fn has_labels(have: &ObjectMeta, want: &ObjectMeta) -> bool {
    let empty = BTreeMap::new();
    let have = have.labels.as_ref().unwrap_or(&empty);
    want.labels
        .iter()
        .flatten()
        .all(|(k, v)| have.get(k) == Some(v))
}

/// `have` with `want`'s labels added and its resourceVersion kept: the base of a replace.
fn merged_meta(have: &ObjectMeta, want: &ObjectMeta) -> ObjectMeta {
    let mut meta = have.clone();
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(want.labels.clone().unwrap_or_default());
    meta
}

/// What of a Service port this keeper cares about: name, protocol, port, target port.
type PortKey<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    i32,
    Option<&'a IntOrString>,
);

/// A Service's ports in a comparable order (defaults the API server adds aside).
fn ports_of(spec: &ServiceSpec) -> Vec<PortKey<'_>> {
    let mut ports: Vec<_> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.as_deref(),
                p.protocol.as_deref(),
                p.port,
                p.target_port.as_ref(),
            )
        })
        .collect();
    ports.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    ports
}

fn service_in_sync(have: &Service, want: &Service) -> bool {
    let (h, w) = (
        have.spec.clone().unwrap_or_default(),
        want.spec.clone().unwrap_or_default(),
    );
    has_labels(&have.metadata, &want.metadata)
        && ports_of(&h) == ports_of(&w)
        && h.selector.as_ref().is_none_or(BTreeMap::is_empty)
        && h.type_.as_deref().unwrap_or("ClusterIP") == "ClusterIP"
}

/// What to write so the objects say what `want` says. Pure.
pub fn plan(
    want: &KubeDns,
    service: Option<&Service>,
    slice: Option<&EndpointSlice>,
    endpoints: Option<&Endpoints>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let svc = desired_service(want);
    match service {
        None => actions.push(Action::CreateService(Box::new(svc))),
        Some(have) if !service_in_sync(have, &svc) => {
            let mut fixed = have.clone();
            fixed.metadata = merged_meta(&have.metadata, &svc.metadata);
            let spec = fixed.spec.get_or_insert_with(ServiceSpec::default);
            spec.ports = svc.spec.as_ref().and_then(|s| s.ports.clone());
            spec.selector = None;
            spec.type_ = Some("ClusterIP".into());
            actions.push(Action::UpdateService(Box::new(fixed)));
        }
        Some(_) => {}
    }
    if let Some(want_slice) = desired_slice(want) {
        match slice {
            None => actions.push(Action::CreateSlice(Box::new(want_slice))),
            Some(have)
                if !has_labels(&have.metadata, &want_slice.metadata)
                    || have.endpoints != want_slice.endpoints
                    || have.ports != want_slice.ports
                    || have.address_type != want_slice.address_type =>
            {
                let mut fixed = want_slice.clone();
                fixed.metadata = merged_meta(&have.metadata, &want_slice.metadata);
                actions.push(Action::UpdateSlice(Box::new(fixed)));
            }
            Some(_) => {}
        }
    }
    if let Some(want_eps) = desired_endpoints(want) {
        match endpoints {
            None => actions.push(Action::CreateEndpoints(Box::new(want_eps))),
            Some(have)
                if !has_labels(&have.metadata, &want_eps.metadata)
                    || have.subsets != want_eps.subsets =>
            {
                let mut fixed = want_eps.clone();
                fixed.metadata = merged_meta(&have.metadata, &want_eps.metadata);
                actions.push(Action::UpdateEndpoints(Box::new(fixed)));
            }
            Some(_) => {}
        }
    }
    actions
}

/// The keeper of the three objects, as a [`Reconciler`] of the single key [`key()`].
pub struct KubeDnsKeeper {
    want: KubeDns,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    endpoints: Store<Endpoints>,
    client: Client,
}

/// What the caches show.
pub struct Observed {
    service: Option<Arc<Service>>,
    slice: Option<Arc<EndpointSlice>>,
    endpoints: Option<Arc<Endpoints>>,
}

impl Reconciler for KubeDnsKeeper {
    type Key = String;
    type Observed = Observed;
    type Action = Action;

    fn observe(&self, key: &String) -> Observed {
        Observed {
            service: self.services.get(key),
            slice: self.slices.get(key),
            endpoints: self.endpoints.get(key),
        }
    }

    fn plan(&self, _key: &String, o: &Observed) -> Vec<Action> {
        if let Some(ip) = o
            .service
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.cluster_ip.as_deref())
            && ip != self.want.cluster_ip.to_string()
        {
            warn!(
                service = %key(),
                cluster_ip = ip,
                want = %self.want.cluster_ip,
                "the DNS Service has another ClusterIP than agents use by default"
            );
        }
        plan(
            &self.want,
            o.service.as_deref(),
            o.slice.as_deref(),
            o.endpoints.as_deref(),
        )
    }

    fn expects(&self, action: &Action) -> Expect {
        match action {
            Action::CreateService(_) | Action::CreateSlice(_) | Action::CreateEndpoints(_) => {
                Expect::Create
            }
            _ => Expect::Update,
        }
    }

    async fn apply(&self, _key: &String, action: Action) -> runtime::Result<()> {
        let pp = PostParams::default();
        let c = self.client.clone();
        match action {
            Action::CreateService(s) => {
                Api::<Service>::namespaced(c, NAMESPACE)
                    .create(&pp, &s)
                    .await?;
                info!(service = %key(), "created the DNS Service");
            }
            Action::UpdateService(s) => {
                Api::<Service>::namespaced(c, NAMESPACE)
                    .replace(NAME, &pp, &s)
                    .await?;
                info!(service = %key(), "restored the DNS Service's ports");
            }
            Action::CreateSlice(s) => {
                Api::<EndpointSlice>::namespaced(c, NAMESPACE)
                    .create(&pp, &s)
                    .await?;
                info!(slice = %key(), "created the DNS EndpointSlice");
            }
            Action::UpdateSlice(s) => {
                Api::<EndpointSlice>::namespaced(c, NAMESPACE)
                    .replace(NAME, &pp, &s)
                    .await?;
                info!(slice = %key(), "restored the DNS EndpointSlice");
            }
            Action::CreateEndpoints(e) => {
                Api::<Endpoints>::namespaced(c, NAMESPACE)
                    .create(&pp, &e)
                    .await?;
                info!(endpoints = %key(), "created the DNS Endpoints");
            }
            Action::UpdateEndpoints(e) => {
                Api::<Endpoints>::namespaced(c, NAMESPACE)
                    .replace(NAME, &pp, &e)
                    .await?;
                info!(endpoints = %key(), "restored the DNS Endpoints");
            }
        }
        Ok(())
    }
}

/// Queues the key (and reports the observation) on every event about one of the objects.
fn watch<K: runtime::informer::Cached>(
    informer: &Informer<K>,
    controller: &Controller<KubeDnsKeeper>,
) {
    let (queue, expectations) = (
        controller.queue().clone(),
        controller.expectations().clone(),
    );
    informer.add_handler(move |ev| {
        if ev.key() == key() {
            expectations.observed(&ev.key(), Expect::of(ev));
            queue.add(ev.key());
        }
    });
}

/// Keeps the objects until the task is dropped. `services` and `slices` are shared with the
/// DNS view; `endpoints` watches `kube-system` only.
pub async fn keep(
    client: Client,
    want: KubeDns,
    services: Arc<Informer<Service>>,
    slices: Arc<Informer<EndpointSlice>>,
    endpoints: Arc<Informer<Endpoints>>,
) {
    let controller = Controller::new(
        KubeDnsKeeper {
            want,
            services: services.store().clone(),
            slices: slices.store().clone(),
            endpoints: endpoints.store().clone(),
            client,
        },
        ControllerConfig {
            workers: 1,
            ..ControllerConfig::default()
        },
    );
    for synced in [services.synced(), slices.synced(), endpoints.synced()] {
        let mut synced = synced;
        if synced.wait_for(|s| *s).await.is_err() {
            return;
        }
    }
    watch(&services, &controller);
    watch(&slices, &controller);
    watch(&endpoints, &controller);
    controller.queue().add(key());
    controller.run().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(endpoint: Option<&str>) -> KubeDns {
        KubeDns {
            cluster_ip: "10.96.0.10".parse().unwrap(),
            endpoint: endpoint.map(|e| e.parse().unwrap()),
        }
    }

    /// The names of the planned actions, for compact tables.
    fn names(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .map(|a| match a {
                Action::CreateService(_) => "create service",
                Action::UpdateService(_) => "update service",
                Action::CreateSlice(_) => "create slice",
                Action::UpdateSlice(_) => "update slice",
                Action::CreateEndpoints(_) => "create endpoints",
                Action::UpdateEndpoints(_) => "update endpoints",
            })
            .collect()
    }

    /// `obj` as the API server would store it: with a resourceVersion and extra defaults.
    fn stored<T: Clone>(obj: &T, f: impl FnOnce(&mut T)) -> T {
        let mut o = obj.clone();
        f(&mut o);
        o
    }

    #[test]
    fn desired_objects() {
        let w = want(Some("10.250.3.1:53"));
        let svc = serde_json::to_value(desired_service(&w)).unwrap();
        assert_eq!(svc["metadata"]["namespace"], "kube-system");
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(
            svc["spec"]["ports"],
            serde_json::json!([
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53},
                {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53},
            ])
        );
        assert!(svc["spec"].get("selector").is_none());
        let slice = serde_json::to_value(desired_slice(&w).unwrap()).unwrap();
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "kube-dns"
        );
        assert_eq!(
            slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "skiff-server"
        );
        assert_eq!(
            slice["endpoints"][0]["addresses"],
            serde_json::json!(["10.250.3.1"])
        );
        let eps = serde_json::to_value(desired_endpoints(&w).unwrap()).unwrap();
        assert_eq!(eps["subsets"][0]["addresses"][0]["ip"], "10.250.3.1");
        assert_eq!(eps["subsets"][0]["ports"][1]["port"], 53);
        // A listen port other than 53 is the target port and the endpoint port.
        let w = want(Some("127.0.0.1:5353"));
        let svc = serde_json::to_value(desired_service(&w)).unwrap();
        assert_eq!(svc["spec"]["ports"][0]["port"], 53);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 5353);
        let slice = serde_json::to_value(desired_slice(&w).unwrap()).unwrap();
        assert_eq!(slice["ports"][0]["port"], 5353);
        // No endpoint, no slice or Endpoints.
        assert!(desired_slice(&want(None)).is_none());
        assert!(desired_endpoints(&want(None)).is_none());
    }

    #[test]
    fn plans() {
        let w = want(Some("10.250.3.1:53"));
        let svc = desired_service(&w);
        let slice = desired_slice(&w).unwrap();
        let eps = desired_endpoints(&w).unwrap();
        // As stored: resourceVersion, defaulted fields, extra labels: still in sync.
        let svc_stored = stored(&svc, |s| {
            s.metadata.resource_version = Some("7".into());
            s.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert("extra".into(), "x".into());
            let spec = s.spec.as_mut().unwrap();
            spec.session_affinity = Some("None".into());
            spec.ip_families = Some(vec!["IPv4".into()]);
        });
        let slice_stored = stored(&slice, |s| s.metadata.resource_version = Some("8".into()));
        let eps_stored = stored(&eps, |e| e.metadata.resource_version = Some("9".into()));
        let moved = desired_slice(&want(Some("10.250.3.1:5353"))).unwrap();
        let moved_eps = desired_endpoints(&want(Some("10.250.3.1:5353"))).unwrap();
        let moved_svc = desired_service(&want(Some("10.250.3.1:5353")));
        let with_selector = stored(&svc_stored, |s| {
            s.spec.as_mut().unwrap().selector = Some(BTreeMap::from([("app".into(), "x".into())]));
        });
        let without_ports = stored(&svc_stored, |s| s.spec.as_mut().unwrap().ports = None);
        let relabelled = stored(&slice_stored, |s| s.metadata.labels = None);
        let other_ip = stored(&svc_stored, |s| {
            s.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.99".into())
        });
        type Case<'a> = (
            &'a str,
            KubeDns,
            Option<&'a Service>,
            Option<&'a EndpointSlice>,
            Option<&'a Endpoints>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing yet",
                w,
                None,
                None,
                None,
                vec!["create service", "create slice", "create endpoints"],
            ),
            (
                "in sync",
                w,
                Some(&svc_stored),
                Some(&slice_stored),
                Some(&eps_stored),
                vec![],
            ),
            (
                "service deleted",
                w,
                None,
                Some(&slice_stored),
                Some(&eps_stored),
                vec!["create service"],
            ),
            (
                "slice deleted",
                w,
                Some(&svc_stored),
                None,
                Some(&eps_stored),
                vec!["create slice"],
            ),
            (
                "endpoints deleted",
                w,
                Some(&svc_stored),
                Some(&slice_stored),
                None,
                vec!["create endpoints"],
            ),
            (
                "someone added a selector",
                w,
                Some(&with_selector),
                Some(&slice_stored),
                Some(&eps_stored),
                vec!["update service"],
            ),
            (
                "someone removed the ports",
                w,
                Some(&without_ports),
                Some(&slice_stored),
                Some(&eps_stored),
                vec!["update service"],
            ),
            (
                "slice lost its labels",
                w,
                Some(&svc_stored),
                Some(&relabelled),
                Some(&eps_stored),
                vec!["update slice"],
            ),
            (
                "server moved to another port",
                want(Some("10.250.3.1:5353")),
                Some(&svc_stored),
                Some(&slice_stored),
                Some(&eps_stored),
                vec!["update service", "update slice", "update endpoints"],
            ),
            (
                "moved, already updated",
                want(Some("10.250.3.1:5353")),
                Some(&moved_svc),
                Some(&moved),
                Some(&moved_eps),
                vec![],
            ),
            (
                "another ClusterIP is left alone",
                w,
                Some(&other_ip),
                Some(&slice_stored),
                Some(&eps_stored),
                vec![],
            ),
            (
                "no endpoint: the Service only",
                want(None),
                None,
                None,
                None,
                vec!["create service"],
            ),
        ];
        for (what, w, svc, slice, eps, expected) in cases {
            assert_eq!(names(&plan(&w, svc, slice, eps)), expected, "{what}");
        }
    }

    #[test]
    fn updates_keep_the_stored_version_and_fix_the_spec() {
        let w = want(Some("10.250.3.1:53"));
        let svc = stored(&desired_service(&w), |s| {
            s.metadata.resource_version = Some("7".into());
            s.spec.as_mut().unwrap().selector = Some(BTreeMap::from([("a".into(), "b".into())]));
        });
        let actions = plan(&w, Some(&svc), None, None);
        let Action::UpdateService(fixed) = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(fixed.metadata.resource_version.as_deref(), Some("7"));
        assert!(fixed.spec.as_ref().unwrap().selector.is_none());
        assert!(service_in_sync(fixed, &desired_service(&w)));
    }
}
