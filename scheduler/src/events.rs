//! What the scheduler writes back for users: the `PodScheduled` condition and core/v1 Events.
//!
//! `kubectl describe pod` explains a Pending pod from exactly two places, the pod's
//! `PodScheduled` condition and the Events whose `involvedObject` is the pod, so both are
//! written the way kube-scheduler writes them (reason `Unschedulable`, event reasons
//! `FailedScheduling` / `Scheduled`, component `default-scheduler`). Repeated identical
//! failures bump `count` and `lastTimestamp` of one Event instead of creating a new one each
//! retry, like client-go's event correlator, so a pod pending for an hour leaves one Event.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use runtime::{Api, Client, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The component name kube-scheduler reports, which `kubectl describe` shows as "From".
pub const COMPONENT: &str = "default-scheduler";

/// A Warning/Normal event already written for one pod, so a repeat only patches it.
#[derive(Debug, Clone)]
struct Written {
    name: String,
    namespace: String,
    message: String,
    count: i32,
}

/// Writes scheduling Events and conditions; cheap to share between workers.
#[derive(Debug)]
pub struct Recorder {
    client: Client,
    instance: String,
    /// Last FailedScheduling event per pod uid.
    failed: Mutex<HashMap<String, Written>>,
}

fn now_time() -> Value {
    serde_json::to_value(Time(jiff::Timestamp::now())).unwrap_or(Value::Null)
}

/// `<pod>.<hex nanoseconds>`, the naming scheme Kubernetes uses for events.
fn event_name(pod: &str) -> String {
    let nanos = jiff::Timestamp::now().as_nanosecond();
    format!("{pod}.{:x}", nanos.max(0))
}

impl Recorder {
    /// A recorder writing through `client`; `instance` identifies this scheduler replica.
    pub fn new(client: Client, instance: &str) -> Self {
        Recorder {
            client,
            instance: instance.to_string(),
            failed: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the event state of a pod (scheduled or deleted).
    pub fn forget(&self, uid: &str) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    fn event_body(&self, pod: &Pod, type_: &str, reason: &str, message: &str) -> Value {
        let meta = &pod.metadata;
        let ns = meta.namespace.as_deref().unwrap_or("default");
        let name = meta.name.as_deref().unwrap_or_default();
        let now = now_time();
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name(name), "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": ns,
                "name": name,
                "uid": meta.uid.clone().unwrap_or_default(),
                "resourceVersion": meta.resource_version.clone().unwrap_or_default(),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "action": if type_ == "Warning" { "Scheduling" } else { "Binding" },
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": Value::Null,
        })
    }

    async fn create(&self, body: Value) -> runtime::Result<String> {
        let ns = body["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let event: Event = serde_json::from_value(body)?;
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let created = api.create(&PostParams::default(), &event).await?;
        Ok(created.metadata.name.unwrap_or_default())
    }

    /// Records `Scheduled`: "Successfully assigned ns/pod to node".
    pub async fn scheduled(&self, pod: &Pod, node: &str) -> runtime::Result<()> {
        if let Some(uid) = pod.metadata.uid.as_deref() {
            self.forget(uid);
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let message = format!("Successfully assigned {ns}/{name} to {node}");
        self.create(self.event_body(pod, "Normal", "Scheduled", &message))
            .await
            .map(|_| ())
    }

    /// Records `FailedScheduling` with `message`; an identical repeat for the same pod bumps
    /// the count of the existing Event instead of creating another.
    pub async fn failed_scheduling(&self, pod: &Pod, message: &str) -> runtime::Result<()> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let previous = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uid)
            .cloned();
        if let Some(prev) = previous.filter(|p| p.message == message) {
            let count = prev.count + 1;
            let api: Api<Event> = Api::namespaced(self.client.clone(), &prev.namespace);
            let patch = Patch::Merge(json!({"count": count, "lastTimestamp": now_time()}));
            match api.patch(&prev.name, &PatchParams::default(), &patch).await {
                Ok(_) => {
                    self.remember(&uid, Written { count, ..prev });
                    return Ok(());
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let body = self.event_body(pod, "Warning", "FailedScheduling", message);
        let namespace = body["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = self.create(body).await?;
        self.remember(
            &uid,
            Written {
                name,
                namespace,
                message: message.to_string(),
                count: 1,
            },
        );
        Ok(())
    }

    fn remember(&self, uid: &str, w: Written) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_string(), w);
    }

    /// Sets `PodScheduled=False` / `Unschedulable` with `message` on the pod's status, unless
    /// the pod already says exactly that (a retry must not write the pod again).
    pub async fn mark_unschedulable(&self, pod: &Pod, message: &str) -> runtime::Result<()> {
        let already = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .is_some_and(|c| {
                c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(message)
            });
        if already {
            return Ok(());
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        // Strategic merge: conditions merge by `type`, so other conditions survive.
        let patch = Patch::Strategic(json!({
            "status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": Value::Null,
                "lastTransitionTime": now_time(),
            }]}
        }));
        api.patch_status(name, &PatchParams::default(), &patch)
            .await
            .map(|_| ())
    }
}
