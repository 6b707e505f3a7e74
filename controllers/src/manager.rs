//! The controller manager: one leader-elected process running every controller.
//!
//! Only the holder of the Lease `kube-system/kube-controller-manager` runs controllers. A
//! term starts fresh informers and every enabled controller; when leadership is lost the
//! whole term (informers, queues, workers) is torn down and the replica goes back to waiting,
//! so it never acts on a view from before it lost the Lease.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use runtime::Client;
use runtime::informer::{InformerConfig, SharedInformerFactory};
use runtime::leader::{Candidate, LeaderElectionConfig, lost};
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

use crate::context::{Context, ControllerSettings};

/// A controller's main loop: runs until its task is aborted at the end of the term.
pub type ControllerMain = fn(Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every controller the manager knows, by the name `--controllers` uses.
pub fn all_controllers() -> Vec<(&'static str, ControllerMain)> {
    vec![
        ("replicaset", crate::replicaset::start),
        (crate::deployment::NAME, crate::deployment::start),
        (crate::endpoints::NAME, crate::endpoints::main),
        (crate::endpointslice::NAME, crate::endpointslice::main),
        (crate::nodelifecycle::NAME, crate::nodelifecycle::main),
        (crate::nodeipam::NAME, crate::nodeipam::main),
        (crate::garbage::NAME, crate::garbage::main),
        (crate::namespace::NAME, crate::namespace::main),
        (crate::serviceaccount::NAME, crate::serviceaccount::main),
    ]
}

/// Settings of a running manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// This replica's identity (Lease holder, Event `reportingInstance`).
    pub identity: String,
    /// Lease to compete for; `None` runs without election (one replica only!).
    pub leader_election: Option<LeaderElectionConfig>,
    /// Names of the controllers to run; empty means all.
    pub enabled: Vec<String>,
    /// Controller timings.
    pub settings: ControllerSettings,
    /// Informer tuning.
    pub informers: InformerConfig,
}

impl ManagerConfig {
    /// Kubernetes defaults, electing on `kube-system/kube-controller-manager` as `identity`.
    pub fn new(identity: &str) -> Self {
        ManagerConfig {
            identity: identity.to_string(),
            leader_election: Some(LeaderElectionConfig::new(
                "kube-system",
                "kube-controller-manager",
                identity,
            )),
            enabled: Vec::new(),
            settings: ControllerSettings::default(),
            informers: InformerConfig::default(),
        }
    }

    fn is_enabled(&self, name: &str) -> bool {
        self.enabled.is_empty() || self.enabled.iter().any(|n| n == name || n == "*")
    }
}

/// Runs the enabled controllers until `shutdown` completes; with election, only while
/// leading. Returns after releasing the Lease.
pub async fn run(
    client: Client,
    config: ManagerConfig,
    shutdown: impl Future<Output = ()>,
) -> runtime::Result<()> {
    tokio::pin!(shutdown);
    let candidate = Candidate::new(client.clone(), config.leader_election.clone())?;
    loop {
        let leading = tokio::select! {
            _ = &mut shutdown => break,
            r = candidate.acquire() => r?,
        };
        if leading.is_some() {
            info!(identity = %config.identity, "became leader; starting controllers");
        }
        let mut term = start_term(&client, &config);
        tokio::select! {
            _ = &mut shutdown => { term.shutdown().await; break; }
            _ = lost(leading) => {
                warn!(identity = %config.identity, "lost leadership; stopped controllers");
                term.shutdown().await;
            }
        }
    }
    candidate.release().await;
    Ok(())
}

/// Starts one term: a fresh informer factory and every enabled controller on it.
fn start_term(client: &Client, config: &ManagerConfig) -> JoinSet<()> {
    let ctx = Arc::new(Context {
        client: client.clone(),
        informers: SharedInformerFactory::new(client.clone(), config.informers.clone()),
        settings: config.settings.clone(),
        identity: config.identity.clone(),
    });
    let mut set = JoinSet::new();
    for (name, main) in all_controllers() {
        if config.is_enabled(name) {
            info!(controller = name, "starting");
            set.spawn(main(ctx.clone()).instrument(info_span!("controller", name)));
        }
    }
    set
}

/// How long informers get to list before a controller gives up and retries its term.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
