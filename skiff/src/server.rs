//! `skiff server` / `skiff apiserver`: open the store, serve the API, write the kubeconfig.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apiserver::registry::RegistryConfig;
use apiserver::storage::Store;
use apiserver::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use apiserver::storage::etcd::EtcdStore;
use apiserver::watchcache::CacheConfig;
use apiserver::{ApiServer, ServerConfig};
use tokio::net::TcpListener;
use tracing::info;

/// Flags of `skiff server`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Address to serve the API on (loopback by default: nothing leaves the machine).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where the embedded store, the cluster CA, the tokens and the kubeconfig live.
    #[arg(long, default_value = "/var/lib/skiff/server")]
    data_dir: PathBuf,
    /// Extra names (DNS names or IPs) for the serving certificate, comma-separated or
    /// repeated: the addresses other machines reach this server by.
    #[arg(long, value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Serve plain HTTP without TLS or authentication (loopback --listen only): for test
    /// suites that put their own TLS front before the server.
    #[arg(long)]
    plain_http: bool,
    /// Use etcd at these comma-separated URLs instead of the embedded store.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Range ClusterIPs come from.
    #[arg(long, default_value = "10.96.0.0/16")]
    service_cidr: String,
    /// Range NodePorts come from.
    #[arg(long, default_value = "30000-32767")]
    node_port_range: String,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, default_value_t = 60)]
    bookmark_interval: u64,
    /// Revisions of history kept for watches resuming from a past resourceVersion: the events
    /// each watch cache holds, and the embedded store's history before auto-compaction.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Seconds between compactions of etcd (to the revision seen one interval earlier).
    #[arg(long, default_value_t = 300)]
    etcd_compaction_interval: u64,
    /// tolerationSeconds of the `node.kubernetes.io/not-ready` and `unreachable` NoExecute
    /// tolerations every pod gets unless it has its own (Kubernetes' DefaultTolerationSeconds).
    #[arg(long, default_value_t = 300)]
    default_toleration_seconds: i64,
    /// Do not run the scheduler inside `skiff server` (run `skiff scheduler` elsewhere).
    #[arg(long)]
    no_scheduler: bool,
    /// Do not run the controllers inside `skiff server` (run `skiff controllers` elsewhere).
    #[arg(long)]
    no_controllers: bool,
    #[command(flatten)]
    controllers: crate::controllers::ControllerFlags,
    #[command(flatten)]
    dns: crate::dns::DnsFlags,
}

/// Everything that can stop `skiff server`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid flag: {0}")]
    Flag(String),
    #[error("cannot use data dir {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("cannot set up TLS and authentication: {0}")]
    Security(String),
    #[error("cannot open the store: {0}")]
    Store(#[from] apiserver::storage::StorageError),
    #[error("cannot start the API server: {0}")]
    Api(#[from] apiserver::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Client(#[from] runtime::Error),
    #[error("benchmark failed: {0}")]
    Bench(String),
    #[error("{0}")]
    Lab(String),
}

/// Runs the server until SIGTERM or SIGINT; `with_components` also runs the scheduler and
/// the controllers (`skiff server`, unless `--no-scheduler` / `--no-controllers`) rather than
/// the API server alone.
pub async fn run(args: ServerArgs, with_components: bool) -> Result<(), ServerError> {
    let service_cidr: apiserver::allocator::Ipv4Range =
        args.service_cidr.parse().map_err(ServerError::Flag)?;
    let registry = RegistryConfig {
        service_cidr,
        node_port_range: args.node_port_range.parse().map_err(ServerError::Flag)?,
        cache: CacheConfig {
            history: args.history.max(1),
            ..CacheConfig::default()
        },
        default_toleration_seconds: args.default_toleration_seconds,
    };
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| ServerError::DataDir(args.data_dir.clone(), e))?;
    let security = crate::security::Security::prepare(
        &args.data_dir,
        args.listen,
        &registry.service_cidr,
        &args.tls_san,
        args.plain_http,
    )
    .map_err(ServerError::Security)?;
    let store: Arc<dyn Store> = if args.etcd_endpoints.is_empty() {
        let history = i64::try_from(args.history.max(1)).unwrap_or(i64::MAX);
        let options = EmbeddedOptions {
            retain_revisions: Some(history),
            auto_compact_every: u64::try_from(history).unwrap_or(u64::MAX).clamp(1, 1000),
            ..EmbeddedOptions::default()
        };
        Arc::new(EmbeddedStore::open_with(
            &args.data_dir.join("store"),
            options,
        )?)
    } else {
        let store = Arc::new(EtcdStore::connect(&args.etcd_endpoints, None).await?);
        tokio::spawn(apiserver::storage::compact_periodically(
            store.clone(),
            Duration::from_secs(args.etcd_compaction_interval.max(1)),
        ));
        store
    };
    let config = ServerConfig {
        registry,
        bookmark_interval: Duration::from_secs(args.bookmark_interval.max(1)),
        authentication: security.authentication.clone(),
        ca_bundle: security.ca_pem.clone(),
        kubelet_client_cert: security.kubelet_client_cert.clone(),
    };
    let server = ApiServer::new(store, config).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| ServerError::Listen(args.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Listen(args.listen, e))?;
    let kubeconfig = args.data_dir.join("kubeconfig.yaml");
    let url = crate::security::local_url(security.scheme(), addr);
    crate::kubeconfig::write(&kubeconfig, &security.kubeconfig(&url))
        .map_err(|e| ServerError::DataDir(kubeconfig.clone(), e))?;
    info!(%addr, kubeconfig = %kubeconfig.display(), "API server serving");
    // The scheduler and the controllers are clients of this server's own loopback address;
    // their informers retry until `serve` below accepts connections.
    let (stop_components, components_stopped) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = components_stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let component_config = security.component_config(&url);
    let mut components = Vec::new();
    if with_components && !args.no_scheduler {
        components.push((
            "scheduler",
            crate::scheduler::spawn_in_server(component_config.clone(), stopped())?,
        ));
    }
    if with_components && !args.no_controllers {
        components.push((
            "controller manager",
            crate::controllers::spawn_in_server(
                component_config.clone(),
                &args.controllers,
                stopped(),
            )?,
        ));
    }
    if with_components
        && let Some(dns) = crate::dns::spawn_in_server(
            &args.dns,
            addr,
            &service_cidr,
            component_config.clone(),
            stopped(),
        )
        .await?
    {
        components.push(("cluster DNS", dns));
    }
    // On SIGTERM the components stop first, while the API still serves, so they can release
    // their Leases; then the API server drains and stops.
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop_components.send(true);
        for (name, task) in components {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("{name} did not stop within 5 s");
            }
        }
    };
    match security.tls {
        Some(tls) => server.serve_tls(listener, tls, shutdown).await,
        None => server.serve(listener, shutdown).await,
    }
    .map_err(ServerError::Serve)?;
    info!("API server stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
