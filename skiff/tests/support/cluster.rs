//! A two-node cluster in network namespaces, as in the lab: a `skiff server` listening on the
//! host's address of a fresh lab bridge (`10.250.K.1`), and two runc agents, each started with
//! `nsenter --net=/run/netns/sklabK-nI` in a node namespace of its own (`10.250.K.2`, `.3`),
//! with the busybox image in their stores. The node namespaces have no default route: nothing
//! a test sends can leave for an address outside the namespaces it made.
//!
//! Everything is removed on drop, also when the test panics: the agents (killed, then `skiff
//! agent reset` in their namespace), the server, then the namespaces and the bridge.
//!
//! Helpers for tests building on it: [`TwoNodeCluster::create`] (any object from JSON),
//! [`busybox_pod`] / [`httpd_pod`] (pods pinned to a node), [`TwoNodeCluster::wait_running`]
//! (a pod Running, with its IP), [`TwoNodeCluster::exec`] (a command in a pod, through the API
//! server and the node's kubelet API, with the real kubectl), [`TwoNodeCluster::in_node`] (a
//! command in a node's namespace).
//!
//! Needs root (namespaces, runc): call [`root_or_skip`] first.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kubelet::network::topology::LabNetwork;
use serde_json::{Value, json};

use super::agent::{TestAgent, wait_pod};
use super::{KubectlOutput, TestServer};

/// The node names, in lab order.
pub const NODES: [&str; 2] = ["node-a", "node-b"];

/// The API server's port on the lab bridge address (the address is unique per lab, so a
/// fixed port never collides).
pub const API_PORT: u16 = 6443;

/// Whether the test can run (root); prints why it is skipped otherwise.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping {test}: network namespaces and runc need root; CI runs as root");
    }
    root
}

/// Removes the lab network when dropped (after the agents and the server: see field order).
struct LabGuard(LabNetwork);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove() {
            eprintln!("removing the lab network: {e}");
        }
    }
}

/// The lab index to try first: spread by process id and a per-process counter, so parallel
/// tests rarely even try the same one (a taken one is skipped anyway).
fn first_lab_index() -> u8 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ((std::process::id().wrapping_mul(37)).wrapping_add(n.wrapping_mul(11)) % 256) as u8
}

/// A server and two runc agents in lab node namespaces. Fields drop in order: agents, then
/// server, then the network.
pub struct TwoNodeCluster {
    agents: Vec<TestAgent>,
    /// The control plane (`skiff server`: API server, scheduler, controllers).
    pub server: TestServer,
    lab: LabGuard,
}

impl TwoNodeCluster {
    /// Starts the cluster with default flags; returns once both Nodes are Ready.
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// Starts the cluster with extra `skiff server` flags and extra flags for both agents.
    pub async fn start_with(server_extra: &[&str], agent_extra: &[&str]) -> Self {
        let lab = LabGuard(
            LabNetwork::create_any(NODES.len(), first_lab_index()).expect("lab network (root)"),
        );
        let listen = format!("{}:{API_PORT}", lab.0.host_ip());
        let server = TestServer::start_server_on(&listen, server_extra).await;
        let mut agents = Vec::new();
        for (i, name) in NODES.iter().enumerate() {
            let node = &lab.0.nodes[i];
            // No --pod-cidr: the agent waits for node IPAM to assign its Node one.
            agents.push(
                TestAgent::start_in_netns(
                    &server,
                    name,
                    "runc",
                    &node.netns_path,
                    IpAddr::V4(node.ip),
                    None,
                    agent_extra,
                )
                .await,
            );
        }
        Self {
            agents,
            server,
            lab,
        }
    }

    /// Node `i`'s name.
    pub fn node_name(&self, i: usize) -> &str {
        NODES[i]
    }

    /// Node `i`'s address (its InternalIP).
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        self.lab.0.nodes[i].ip
    }

    /// Node `i`'s network namespace handle (`/run/netns/...`).
    pub fn node_netns(&self, i: usize) -> &Path {
        &self.lab.0.nodes[i].netns_path
    }

    /// The host's address on the lab bridge (where the API server listens).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.lab.0.host_ip()
    }

    /// The lab network.
    pub fn lab(&self) -> &LabNetwork {
        &self.lab.0
    }

    /// Node `i`'s pod CIDR (`spec.podCIDR`, from node IPAM).
    pub async fn pod_cidr(&self, i: usize) -> String {
        let api: runtime::Api<k8s_openapi::api::core::v1::Node> =
            runtime::Api::all(self.server.runtime_client());
        let node = api.get(NODES[i]).await.expect("get node");
        node.spec
            .and_then(|s| s.pod_cidr)
            .expect("the node has a pod CIDR")
    }

    /// Node `i`'s agent.
    pub fn agent(&self, i: usize) -> &TestAgent {
        &self.agents[i]
    }

    /// Creates the object `manifest` describes (core or `apps/v1` etc.; namespaced objects
    /// default to `default`) and returns what the server stored; fails the test on refusal.
    pub async fn create(&self, manifest: Value) -> Value {
        let path = collection_path(&manifest);
        let reply = self.server.client().post(&path, &manifest).await;
        assert_eq!(reply.code, 201, "creating {path} failed: {}", reply.body);
        reply.body
    }

    /// A runtime API for pods in `namespace`.
    pub fn pods(&self, namespace: &str) -> runtime::Api<Pod> {
        runtime::Api::namespaced(self.server.runtime_client(), namespace)
    }

    /// Waits (up to 90 s) until pod `default/name` is Running with an IP; returns the IP.
    pub async fn wait_running(&self, name: &str) -> IpAddr {
        let pod = wait_pod(
            &self.pods("default"),
            name,
            "the pod to be Running with an IP",
            Duration::from_secs(90),
            |p| {
                let status = p.status.as_ref();
                status.and_then(|s| s.phase.as_deref()) == Some("Running")
                    && status.and_then(|s| s.pod_ip.as_ref()).is_some()
            },
        )
        .await;
        pod.status
            .and_then(|s| s.pod_ip)
            .and_then(|ip| ip.parse().ok())
            .expect("a parsable pod IP")
    }

    /// Runs `command` in pod `default/pod` (its first container) through the API server and
    /// the node's kubelet API, with the real kubectl; the exit code and output come back.
    pub fn exec(&self, pod: &str, command: &[&str]) -> KubectlOutput {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(command);
        self.server.kubectl(&args)
    }

    /// Runs `command` in node `i`'s network namespace (and the host's other namespaces).
    pub fn in_node(&self, i: usize, command: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.node_netns(i).display()))
            .args(command)
            .output()
            .expect("run nsenter")
    }
}

/// The collection URL path for `manifest` (`/api/v1/namespaces/default/pods`,
/// `/apis/apps/v1/namespaces/default/deployments`, ...): plural = lowercased kind + "s",
/// which holds for the kinds tests create (no Ingress, no Endpoints).
pub fn collection_path(manifest: &Value) -> String {
    let api_version = manifest["apiVersion"].as_str().expect("apiVersion");
    let kind = manifest["kind"].as_str().expect("kind");
    let group = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let plural = format!("{}s", kind.to_lowercase());
    match kind {
        "Namespace" | "Node" => format!("{group}/{plural}"),
        _ => {
            let ns = manifest["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            format!("{group}/namespaces/{ns}/{plural}")
        }
    }
}

/// A busybox container running `sh -c script`.
pub fn busybox_container(script: &str) -> Value {
    json!({"name": "main", "image": "busybox:latest", "imagePullPolicy": "Never",
           "command": ["sh", "-c", script]})
}

/// A pod `default/name` on node `node` (by `spec.nodeName`) running `sh -c script` in busybox.
pub fn busybox_pod(name: &str, node: &str, script: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [busybox_container(script)],
        },
    })
}

/// The script of a busybox web server answering every GET on `port` with `body` and a newline.
pub fn httpd_script(body: &str, port: u16) -> String {
    format!("mkdir -p /www && echo '{body}' > /www/index.html && exec httpd -f -p {port} -h /www")
}

/// A pod on `node` serving its own name over HTTP on port 80.
pub fn httpd_pod(name: &str, node: &str) -> Value {
    busybox_pod(name, node, &httpd_script(name, 80))
}
