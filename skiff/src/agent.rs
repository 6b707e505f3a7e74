//! `skiff agent --runtime simulated`: a fleet of hollow nodes in one process.

use std::path::PathBuf;

use kubelet::simulated::{Fleet, FleetConfig};
use runtime::Client;

/// Container runtimes the agent can drive.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Hollow nodes: register, heartbeat, report pods Running; run nothing.
    Simulated,
}

/// Flags of `skiff agent`.
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// API server URL.
    #[arg(long)]
    server: Option<String>,
    /// Kubeconfig to reach the API server with.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Container runtime (only `simulated` exists so far).
    #[arg(long, value_enum)]
    runtime: RuntimeKind,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Simulated node names are this prefix plus an index.
    #[arg(long, default_value = "sim-")]
    node_name_prefix: String,
    /// Index of the first node.
    #[arg(long, default_value_t = 0)]
    first_index: usize,
}

/// Runs the fleet until SIGTERM/SIGINT.
pub async fn run(args: AgentArgs) -> Result<(), runtime::Error> {
    let opts = runtime::config::LoadOptions {
        kubeconfig: args.kubeconfig,
        server: args.server,
        ..Default::default()
    };
    let client = Client::new(runtime::config::load(&opts)?)?;
    match args.runtime {
        RuntimeKind::Simulated => {
            let fleet = Fleet::start(
                client,
                FleetConfig {
                    nodes: args.nodes,
                    name_prefix: args.node_name_prefix,
                    first_index: args.first_index,
                    ..FleetConfig::default()
                },
            )
            .await?;
            crate::server::shutdown_signal().await;
            fleet.stop();
        }
    }
    Ok(())
}
