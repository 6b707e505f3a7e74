//! `skiff`: every Skiff component in one binary, like k3s.

mod agent;
mod agent_image;
mod agent_runtime;
mod bench;
mod controllers;
mod dns;
mod kubeconfig;
mod lab;
mod scheduler;
mod security;
mod server;

use clap::{Parser, Subcommand};

/// Skiff: a small Kubernetes-style container orchestrator.
#[derive(Parser)]
#[command(name = "skiff", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the control plane: API server, scheduler and controllers.
    Server(server::ServerArgs),
    /// Runs the API server alone.
    Apiserver(server::ServerArgs),
    /// Runs the scheduler alone (leader-elected, so several may run).
    Scheduler(scheduler::SchedulerArgs),
    /// Runs the controller manager alone (leader-elected, so several may run).
    Controllers(controllers::ControllersArgs),
    /// Runs a node agent: real containers (`--runtime runc`), host processes (`process`) or
    /// simulated nodes (`simulated`).
    Agent(agent::AgentArgs),
    /// A multi-node lab cluster on this machine: up, status, down, node faults.
    Lab(lab::LabArgs),
    /// Runs a benchmark and prints the figures next to Skiff's targets.
    Bench(bench::BenchArgs),
}

fn main() {
    // The per-container shim (`skiff agent shim DIR`) is started by the agent for every
    // container and lives as long as it: no async runtime, no logging set-up, no clap.
    let mut raw = std::env::args_os().skip(1);
    if raw.next().is_some_and(|a| a == "agent") && raw.next().is_some_and(|a| a == "shim") {
        std::process::exit(match kubelet::shim::main(raw) {
            code if code == std::process::ExitCode::SUCCESS => 0,
            _ => 1,
        });
    }
    let cli = Cli::parse();
    // The lab commands talk to a person: only warnings, unless SKIFF_LOG says otherwise.
    let default_level = match cli.command {
        Command::Lab(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skiff: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(args, true).await,
            Command::Apiserver(args) => server::run(args, false).await,
            Command::Scheduler(args) => scheduler::run(args).await.map_err(Into::into),
            Command::Controllers(args) => controllers::run(args).await.map_err(Into::into),
            Command::Agent(args) => agent::run(args).await.map_err(Into::into),
            Command::Lab(args) => lab::run(args).await.map_err(server::ServerError::Lab),
            Command::Bench(args) => bench::run(args)
                .await
                .map_err(|e| server::ServerError::Bench(e.to_string())),
        }
    });
    if let Err(e) = result {
        eprintln!("skiff: {e}");
        std::process::exit(1);
    }
}
