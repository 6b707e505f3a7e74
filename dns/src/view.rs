//! The cluster as the DNS server sees it: the informer caches of Services and EndpointSlices.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use runtime::informer::{Informer, Store};

use crate::records::{ClusterView, ServiceRecord};

/// Label naming the Service an EndpointSlice belongs to (whoever manages the slice).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Index of the slice cache: `namespace/service-name`.
const SERVICE_INDEX: &str = "dns.service";

/// `namespace/service` of the Service a slice belongs to.
fn service_key(slice: &EndpointSlice) -> Option<String> {
    let svc = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(format!(
        "{}/{svc}",
        slice.metadata.namespace.as_deref().unwrap_or_default()
    ))
}

/// A [`ClusterView`] over informer caches; every answer reads the caches as they are at
/// that moment, so records follow the cluster as fast as the watches do.
pub struct InformerView {
    services: Arc<Informer<Service>>,
    slices: Arc<Informer<EndpointSlice>>,
}

impl InformerView {
    /// A view over these informers (adds its index to the slice cache).
    pub fn new(services: Arc<Informer<Service>>, slices: Arc<Informer<EndpointSlice>>) -> Self {
        slices.store().add_indexer(
            SERVICE_INDEX,
            Arc::new(|s: &EndpointSlice| service_key(s).into_iter().collect()),
        );
        InformerView { services, slices }
    }

    fn slices(&self) -> &Store<EndpointSlice> {
        self.slices.store()
    }
}

impl ClusterView for InformerView {
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceRecord> {
        let svc = self.services.store().get_namespaced(namespace, name)?;
        let slices = self
            .slices()
            .by_index(SERVICE_INDEX, &format!("{namespace}/{name}"));
        let slices: Vec<&EndpointSlice> = slices.iter().map(|s| s.as_ref()).collect();
        Some(ServiceRecord::from_objects(&svc, &slices))
    }

    fn has_services_in(&self, namespace: &str) -> bool {
        !self.services.store().by_namespace(namespace).is_empty()
    }

    fn ready(&self) -> bool {
        self.services.has_synced() && self.slices.has_synced()
    }
}
