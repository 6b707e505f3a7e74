//! A whole cluster in this process for `skiff bench scheduler|controllers`: an API server on a
//! loopback port over a given embedded store, simulated nodes, and on request the scheduler and
//! the controller manager, all talking HTTP to the server like separate processes would.

use std::sync::Arc;
use std::time::Duration;

use apiserver::registry::RegistryConfig;
use apiserver::storage::Store;
use apiserver::storage::embedded::EmbeddedStore;
use apiserver::watchcache::CacheConfig;
use apiserver::{ApiServer, ServerConfig};
use kubelet::simulated::{Fleet, FleetConfig};
use runtime::Client;
use scheduler::run::{RunConfig, Stats};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Watch history of the benchmark server: large enough that no informer falls off it.
const HISTORY: usize = 200_000;

/// The running cluster; [`LocalCluster::stop`] shuts it down in order.
pub struct LocalCluster {
    /// A client of the server.
    pub client: Client,
    /// The server's URL (for components started as separate processes).
    pub url: String,
    /// The simulated nodes.
    pub fleet: Option<Fleet>,
    stop: watch::Sender<bool>,
    components: Vec<JoinHandle<()>>,
    serving: JoinHandle<std::io::Result<()>>,
}

impl LocalCluster {
    /// Serves `store` on a free loopback port and registers `nodes` simulated nodes.
    pub async fn start(
        store: Arc<EmbeddedStore>,
        nodes: usize,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let registry = RegistryConfig {
            cache: CacheConfig {
                history: HISTORY,
                ..CacheConfig::default()
            },
            ..RegistryConfig::default()
        };
        let server = ApiServer::new(
            store as Arc<dyn Store>,
            ServerConfig {
                registry,
                bookmark_interval: Duration::from_secs(60),
                ..ServerConfig::default()
            },
        )
        .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = watch::channel(false);
        let serving = tokio::spawn(async move {
            let mut stopped = stopped;
            server
                .serve(listener, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        let client = Client::new(runtime::config::Config::from_url(&url))?;
        let server_url = url.clone();
        let started = std::time::Instant::now();
        let fleet = Fleet::start(
            client.clone(),
            FleetConfig {
                nodes,
                name_prefix: "bench-node-".into(),
                ..FleetConfig::default()
            },
        )
        .await?;
        println!(
            "{nodes} simulated nodes registered in {:.2?}",
            started.elapsed()
        );
        Ok(LocalCluster {
            client,
            url: server_url,
            fleet: Some(fleet),
            stop,
            components: Vec::new(),
            serving,
        })
    }

    /// A future completing when the cluster stops, for a component's shutdown.
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Runs the scheduler (no election) with `workers` binding workers, counting into `stats`.
    pub fn spawn_scheduler(&mut self, workers: usize, stats: Arc<Stats>) {
        let mut cfg = RunConfig::new("bench");
        cfg.leader_election = None;
        cfg.workers = workers;
        let run = scheduler::run::run(self.client.clone(), cfg, stats, self.stopped());
        self.components.push(tokio::spawn(async move {
            if let Err(e) = run.await {
                eprintln!("scheduler stopped: {e}");
            }
        }));
    }

    /// Runs the controller manager (no election).
    pub fn spawn_controllers(&mut self, mut config: controllers::ManagerConfig) {
        config.leader_election = None;
        let run = controllers::run(self.client.clone(), config, self.stopped());
        self.components.push(tokio::spawn(async move {
            if let Err(e) = run.await {
                eprintln!("controller manager stopped: {e}");
            }
        }));
    }

    /// Stops the components, the nodes, then the server.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in self.components.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        drop(self.fleet.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.serving).await;
    }
}
