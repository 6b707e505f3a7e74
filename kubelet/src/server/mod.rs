//! The kubelet HTTPS API on each node: what the API server proxies `pods/log` and
//! `pods/exec` to.
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}?follow&tailLines&sinceSeconds&sinceTime&timestamps&previous&limitBytes`:
//!   `text/plain`, streamed (chunked) while following.
//! - `GET /exec/{namespace}/{pod}/{container}?command=..&command=..&stdin&stdout&stderr&tty`:
//!   a WebSocket with subprotocol `v5.channel.k8s.io` or `v4.channel.k8s.io` (see
//!   [`channel`]). Commands run without a terminal: `tty=true` is accepted and the command's
//!   stderr then goes to the stdout channel, as a terminal would merge them, but there is no
//!   pty (no prompt, no job control) and resize messages are ignored. SPDY (what kubectl falls
//!   back to with `POST`) is not served: such requests get the same checks, then a 400.
//! - `GET|POST /portForward/{namespace}/{pod}`: SPDY/3.1 port forwarding, in a WebSocket
//!   (`SPDY/3.1+portforward.k8s.io`) or an HTTP upgrade ([`portforward`]; its own router,
//!   merged in by the agent because it needs a [`portforward::PodPorts`]).
//! - `GET /healthz`.
//!
//! Containers are found through [`ContainerLookup`] (the agent's state) and run through the
//! node's [`ContainerRuntime`]. Failures are Kubernetes `Status` objects ([`status`]).
//! Served over TLS with a [`ServingCert`]; hyper serves each connection by hand because
//! `axum::serve` has no TLS, with upgrades enabled for exec.

pub mod channel;
mod exec;
mod logs;
pub mod lookup;
pub mod portforward;
pub mod status;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::cri::ContainerRuntime;
pub use lookup::{ContainerLookup, FoundContainer, LookupError};
pub use status::ApiError;
pub use tls::ServingCert;

/// The default port of the kubelet API (Kubernetes' 10250).
pub const DEFAULT_PORT: u16 = 10250;

/// What the handlers share.
#[derive(Clone)]
pub struct KubeletApi {
    /// The node's container runtime (exec, "is it still running?").
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The agent's view of pods and containers.
    pub lookup: Arc<dyn ContainerLookup>,
}

impl KubeletApi {
    /// The router of the whole API.
    pub fn router(self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/containerLogs/{namespace}/{pod}/{container}",
                get(logs::container_logs),
            )
            .route(
                "/exec/{namespace}/{pod}/{container}",
                get(exec::exec).post(exec::exec),
            )
            .with_state(self)
    }

    /// The newest container of `namespace/pod/container`, or the `Status` saying why not.
    /// The lookup runs on a blocking thread: implementations may ask the runtime.
    async fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<FoundContainer, ApiError> {
        let lookup = self.lookup.clone();
        let (ns, p, c) = (
            namespace.to_string(),
            pod.to_string(),
            container.to_string(),
        );
        let found = tokio::task::spawn_blocking(move || lookup.find(&ns, &p, &c))
            .await
            .map_err(|e| ApiError::internal(format!("container lookup failed: {e}")))?;
        found.map_err(|e| match e {
            LookupError::PodNotFound => ApiError::not_found("pods", pod),
            LookupError::ContainerNotFound => {
                ApiError::bad_request(format!("container {container} is not valid for pod {pod}"))
            }
            LookupError::Waiting { reason } => ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"
            )),
        })
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes (then stops accepting;
/// open streams end with their clients or containers).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    runtime::tls_serve::serve(
        listener,
        tls,
        app,
        shutdown,
        runtime::tls_serve::Drain::Detach,
    )
    .await
}
