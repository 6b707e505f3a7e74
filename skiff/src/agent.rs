//! `skiff agent --runtime simulated`: a fleet of hollow nodes in one process; `skiff agent image`
//! manages the node's image store.

use kubelet::simulated::{Fleet, FleetConfig};

/// Container runtimes the agent can drive.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Hollow nodes: register, heartbeat, report pods Running; run nothing.
    Simulated,
}

/// Flags of `skiff agent`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    #[command(flatten)]
    client: crate::kubeconfig::ClientFlags,
    /// Container runtime (only `simulated` exists so far).
    #[arg(long, value_enum, required = true)]
    runtime: Option<RuntimeKind>,
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

/// Subcommands of `skiff agent`.
#[derive(clap::Subcommand, Debug)]
pub enum AgentCommand {
    /// Manages the node's image store (load OCI archives, list images).
    Image(crate::agent_image::ImageArgs),
}

/// Runs the fleet until SIGTERM/SIGINT, or the given subcommand.
pub async fn run(args: AgentArgs) -> Result<(), runtime::Error> {
    if let Some(AgentCommand::Image(image)) = args.command {
        crate::agent_image::run(image).await;
        return Ok(());
    }
    let client = args.client.client()?;
    match args.runtime {
        None => Err(runtime::Error::Request("--runtime is required".into())),
        Some(RuntimeKind::Simulated) => {
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
            Ok(())
        }
    }
}
