//! What the scheduler writes back for users: the `PodScheduled` condition and core/v1 Events.
//!
//! `kubectl describe pod` explains a Pending pod from exactly two places, the pod's
//! `PodScheduled` condition and the Events whose `involvedObject` is the pod, so both are
//! written the way kube-scheduler writes them (reason `Unschedulable`, event reasons
//! `FailedScheduling` / `Scheduled`, component `default-scheduler`). Repeated identical
//! failures bump `count` and `lastTimestamp` of one Event instead of creating a new one each
//! retry, like client-go's event correlator, so a pod pending for an hour leaves one Event.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use runtime::events::{EventRecorder, object_reference};
use runtime::{Api, Client, Patch, PatchParams};
use serde_json::{Value, json};

/// The component name kube-scheduler reports, which `kubectl describe` shows as "From".
pub const COMPONENT: &str = "default-scheduler";

/// Writes scheduling Events and conditions; cheap to share between workers.
#[derive(Debug)]
pub struct Recorder {
    client: Client,
    events: EventRecorder,
}

fn now_time() -> Value {
    serde_json::to_value(Time(jiff::Timestamp::now())).unwrap_or(Value::Null)
}

impl Recorder {
    /// A recorder writing through `client`; `instance` identifies this scheduler replica.
    pub fn new(client: Client, instance: &str) -> Self {
        Recorder {
            events: EventRecorder::new(client.clone(), COMPONENT, instance),
            client,
        }
    }

    /// Forgets the event state of a pod (deleted).
    pub fn forget(&self, uid: &str) {
        self.events.forget(uid);
    }

    /// Records `Scheduled`: "Successfully assigned ns/pod to node".
    pub async fn scheduled(&self, pod: &Pod, node: &str) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let message = format!("Successfully assigned {ns}/{name} to {node}");
        self.events
            .normal(&object_reference(pod), "Scheduled", &message)
            .await;
        if let Some(uid) = pod.metadata.uid.as_deref() {
            self.forget(uid);
        }
    }

    /// Records `FailedScheduling` with `message`; an identical repeat for the same pod bumps
    /// the count of the existing Event instead of creating another.
    pub async fn failed_scheduling(&self, pod: &Pod, message: &str) {
        self.events
            .warning(&object_reference(pod), "FailedScheduling", message)
            .await;
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
