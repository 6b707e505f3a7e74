//! `skiff scheduler` (standalone) and the scheduler task inside `skiff server`.

use std::sync::Arc;

use runtime::Client;
use scheduler::run::{RunConfig, Stats, default_identity};

/// Flags of `skiff scheduler`.
#[derive(clap::Args, Debug)]
pub struct SchedulerArgs {
    #[command(flatten)]
    client: crate::kubeconfig::ClientFlags,
    /// Identity in the leader Lease (default: host name plus a random suffix).
    #[arg(long)]
    identity: Option<String>,
}

/// Runs the scheduler until SIGTERM/SIGINT.
pub async fn run(args: SchedulerArgs) -> Result<(), runtime::Error> {
    let client = args.client.client().await?;
    let identity = args.identity.unwrap_or_else(default_identity);
    scheduler::run::run(
        client,
        RunConfig::new(&identity),
        Arc::new(Stats::default()),
        crate::server::shutdown_signal(),
    )
    .await
}

/// Starts the in-process scheduler of `skiff server`, talking to the server's own loopback
/// URL like any other client (components share nothing but the API). It stops, releasing its
/// Lease so a restarted server leads at once, when `shutdown` completes.
pub fn spawn_in_server(
    config: runtime::config::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, runtime::Error> {
    let client = Client::new(config)?;
    let identity = default_identity();
    Ok(tokio::spawn(async move {
        let result = scheduler::run::run(
            client,
            RunConfig::new(&identity),
            Arc::new(Stats::default()),
            shutdown,
        )
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "scheduler stopped");
        }
    }))
}
