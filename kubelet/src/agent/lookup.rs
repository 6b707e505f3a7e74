//! The agent's answer to the kubelet API's "which container is `ns/pod/container`?": the pod
//! from the informer cache, its newest container attempt from the runtime.

use std::sync::Weak;

use crate::cri::labels;
use crate::server::portforward::{self, ForwardTarget, PodPorts};
use crate::server::{ContainerLookup, FoundContainer, LookupError};

use super::Shared;

/// Looks containers up in the agent's state.
pub(crate) struct AgentLookup {
    pub(crate) shared: Weak<Shared>,
}

impl ContainerLookup for AgentLookup {
    fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<FoundContainer, LookupError> {
        let s = self.shared.upgrade().ok_or(LookupError::PodNotFound)?;
        let p = s
            .pods
            .store()
            .get_namespaced(namespace, pod)
            .ok_or(LookupError::PodNotFound)?;
        let known = super::spec_container(&p, container, false).is_some();
        if !known {
            return Err(LookupError::ContainerNotFound);
        }
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let containers = s.runtime.list_containers().unwrap_or_default();
        let newest = containers
            .iter()
            .filter(|c| c.labels.get(labels::POD_UID) == Some(&uid) && c.name == container)
            .max_by_key(|c| c.attempt);
        match newest {
            Some(c) => Ok(FoundContainer {
                container_id: c.id.clone(),
                log_dir: super::volumes::pod_log_dir(&s.config.data_dir, namespace, pod, &uid)
                    .join(container),
                attempt: c.attempt,
            }),
            None => {
                let reason = p
                    .status
                    .as_ref()
                    .and_then(|st| {
                        st.container_statuses
                            .iter()
                            .chain(st.init_container_statuses.iter())
                            .flatten()
                            .find(|cs| cs.name == container)
                    })
                    .and_then(|cs| cs.state.as_ref()?.waiting.as_ref()?.reason.clone())
                    .unwrap_or_else(|| "ContainerCreating".into());
                Err(LookupError::Waiting { reason })
            }
        }
    }
}

impl PodPorts for AgentLookup {
    /// The pod's sandbox: ports are dialled on `localhost` inside its network namespace (or
    /// on the host's loopback when it has none: host network, the process driver). Messages
    /// name the pod by sandbox id, as CRI runtimes do.
    fn target(&self, namespace: &str, pod: &str) -> Result<ForwardTarget, LookupError> {
        let s = self.shared.upgrade().ok_or(LookupError::PodNotFound)?;
        let p = s
            .pods
            .store()
            .get_namespaced(namespace, pod)
            .ok_or(LookupError::PodNotFound)?;
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let sandbox = s
            .runtime
            .list_sandboxes()
            .unwrap_or_default()
            .into_iter()
            .find(|sb| sb.labels.get(labels::POD_UID) == Some(&uid))
            .ok_or_else(|| LookupError::Waiting {
                reason: "ContainerCreating".into(),
            })?;
        Ok(ForwardTarget {
            pod: sandbox.id,
            uid,
            dial: match sandbox.netns {
                Some(netns) => portforward::dial_in_netns(netns),
                None => portforward::dial_host_loopback(),
            },
        })
    }
}
