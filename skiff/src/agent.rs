//! `skiff agent --runtime simulated`: a fleet of hollow nodes in one process.

use kubelet::simulated::{Fleet, FleetConfig};

/// Container runtimes the agent can drive.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Hollow nodes: register, heartbeat, report pods Running; run nothing.
    Simulated,
}

/// Flags of `skiff agent`.
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    #[command(flatten)]
    client: crate::kubeconfig::ClientFlags,
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
    let client = args.client.client()?;
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
