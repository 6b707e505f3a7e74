//! Running the API server: build the registry over a store and serve HTTP until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::error::Error;
use crate::http::authn::Authentication;
use crate::http::node_proxy::KubeletClientCert;
use crate::http::{self, ApiState, Metrics};
use crate::registry::{Registry, RegistryConfig};
use crate::storage::Store;

/// Settings of one API server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub registry: RegistryConfig,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Who may ask. The default lets anyone in: right only for in-process servers
    /// (benchmarks) and the loopback plain-HTTP mode.
    pub authentication: Authentication,
    /// The cluster CA bundle served on `/cacerts` for joining machines.
    pub ca_bundle: Option<String>,
    /// The client certificate presented to kubelets (which then admit only this server).
    pub kubelet_client_cert: Option<KubeletClientCert>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            registry: RegistryConfig::default(),
            bookmark_interval: Duration::from_secs(60),
            authentication: Authentication::default(),
            ca_bundle: None,
            kubelet_client_cert: None,
        }
    }
}

/// A started API server: its registry is loaded; `serve` answers requests.
pub struct ApiServer {
    state: Arc<ApiState>,
}

impl ApiServer {
    /// Loads every cache from the store and creates the system namespaces.
    pub async fn new(store: Arc<dyn Store>, config: ServerConfig) -> Result<Self, Error> {
        let kubelet = http::node_proxy::kubelet_client(config.kubelet_client_cert.as_ref())?;
        let registry = Registry::new(store, config.registry).await?;
        Ok(Self {
            state: Arc::new(ApiState {
                registry,
                metrics: Metrics::default(),
                bookmark_interval: config.bookmark_interval,
                shutdown: tokio::sync::watch::channel(false).0,
                authentication: config.authentication,
                ca_bundle: config.ca_bundle,
                kubelet,
            }),
        })
    }

    /// The registry, for in-process components and benchmarks.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.state.registry
    }

    /// Serves HTTP on `listener` until `shutdown` completes, then stops accepting and lets
    /// in-flight requests finish.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = http::router(self.state.clone());
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            state.shutdown.send_replace(true);
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves HTTPS on `listener` with `tls` until `shutdown` completes, then stops accepting
    /// and lets in-flight requests finish (open watches end at shutdown).
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = http::router(self.state.clone());
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            state.shutdown.send_replace(true);
        };
        runtime::tls_serve::serve(
            listener,
            tls,
            app,
            shutdown,
            runtime::tls_serve::Drain::Wait,
        )
        .await
    }
}
