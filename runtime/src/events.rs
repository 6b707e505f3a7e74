//! core/v1 Events, written the way client-go's recorder writes them.
//!
//! `kubectl describe` shows an object's Events (those whose `involvedObject` is the object),
//! so every controller reports what it did there: `ScalingReplicaSet`, `SuccessfulCreate`,
//! `NodeNotReady`, ... A repeat of the same (object, type, reason, message) bumps `count` and
//! `lastTimestamp` of the Event already written instead of creating another, like client-go's
//! event correlator, so a controller retrying for an hour leaves one Event, not thousands.
//!
//! Events are best effort: a failure to write one is logged, never returned, because no
//! controller should stop reconciling for want of an Event.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;
use tracing::debug;

use crate::client::{Api, Client};
use crate::request::{Patch, PatchParams, PostParams};

/// `Normal` or `Warning`, the two Event types Kubernetes knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something a user may need to act on.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A reference to `obj` for an Event's `involvedObject` (or anywhere else an
/// ObjectReference is wanted).
pub fn object_reference<K>(obj: &K) -> ObjectReference
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = obj.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Identity of an Event about one object for correlation: same type, reason and message.
type Correlation = (EventType, String, String);

/// Remembered Events per object (uid, or name when there is none), so forgetting an object
/// is one removal.
type Memory = HashMap<String, HashMap<Correlation, Written>>;

#[derive(Debug, Clone)]
struct Written {
    namespace: String,
    name: String,
    count: i32,
}

/// Writes Events for one component (`source.component`, shown as "From" by describe).
#[derive(Debug)]
pub struct EventRecorder {
    client: Client,
    component: String,
    instance: String,
    written: Mutex<Memory>,
}

/// Bound on objects with remembered Events; past it the memory is cleared (a later repeat then creates a
/// fresh Event, which is harmless).
const MAX_REMEMBERED: usize = 4096;

impl EventRecorder {
    /// A recorder for `component` (e.g. `deployment-controller`); `instance` names this
    /// replica (`reportingInstance`).
    pub fn new(client: Client, component: &str, instance: &str) -> Self {
        EventRecorder {
            client,
            component: component.to_string(),
            instance: instance.to_string(),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// The component name Events carry.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// Forgets the Events written about the object with this uid (it was deleted), so the
    /// correlation memory does not grow with churn.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Records a `Normal` Event about `object`.
    pub async fn normal(&self, object: &ObjectReference, reason: &str, message: &str) {
        self.record(object, EventType::Normal, reason, message)
            .await;
    }

    /// Records a `Warning` Event about `object`.
    pub async fn warning(&self, object: &ObjectReference, reason: &str, message: &str) {
        self.record(object, EventType::Warning, reason, message)
            .await;
    }

    /// Records an Event about `object`; a repeat bumps the count of the earlier one.
    pub async fn record(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        if let Err(e) = self.try_record(object, type_, reason, message).await {
            debug!(error = %e, reason, "could not write event");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn try_record(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> crate::Result<()> {
        let object_key = object
            .uid
            .clone()
            .or_else(|| object.name.clone())
            .unwrap_or_default();
        let key: Correlation = (type_, reason.to_string(), message.to_string());
        let now = Time(jiff::Timestamp::now());
        let previous = self
            .lock()
            .get(&object_key)
            .and_then(|events| events.get(&key))
            .cloned();
        if let Some(prev) = previous {
            let count = prev.count + 1;
            let api: Api<Event> = Api::namespaced(self.client.clone(), &prev.namespace);
            let patch = Patch::Merge(json!({"count": count, "lastTimestamp": now}));
            match api.patch(&prev.name, &PatchParams::default(), &patch).await {
                Ok(_) => {
                    self.remember(object_key, key, Written { count, ..prev });
                    return Ok(());
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        // Cluster-scoped objects (Nodes) have their Events in `default`, as in Kubernetes.
        let namespace = object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let object_name = object.name.clone().unwrap_or_default();
        let nanos = jiff::Timestamp::now().as_nanosecond().max(0);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{object_name}.{nanos:x}")),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.as_str().to_string()),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = api.create(&PostParams::default(), &event).await?;
        self.remember(
            object_key,
            key,
            Written {
                namespace,
                name: created.metadata.name.unwrap_or_default(),
                count: 1,
            },
        );
        Ok(())
    }

    fn remember(&self, object: String, key: Correlation, written: Written) {
        let mut memory = self.lock();
        if memory.len() >= MAX_REMEMBERED && !memory.contains_key(&object) {
            memory.clear();
        }
        memory.entry(object).or_default().insert(key, written);
    }
}
