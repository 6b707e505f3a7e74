//! `skiffctl`: a kubectl-like client for Skiff.
//!
//! Every verb resolves the kubeconfig with `runtime::config` (so `KUBECONFIG`,
//! `~/.kube/config`, `--kubeconfig`, `--context`, `--server`, `--token` and `-n` mean what they
//! mean to kubectl), discovers the server's resources once, and prints what kubectl prints.
//! Failures are one line on stderr and exit code 1.

mod age;
mod apply;
mod cordon;
mod delete;
mod describe;
mod describe_node;
mod discovery;
mod drain;
mod edit;
mod error;
mod exec;
mod get;
mod http;
mod jsonpath;
mod kubeconfig;
mod label;
mod logs;
mod manifest;
mod objects;
mod pod_select;
mod port_forward;
mod print;
mod rollout;
mod scale;
mod set_image;
mod smp;
mod tabwriter;
mod yaml;

use clap::{Parser, Subcommand};

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::http::Http;

#[derive(Parser, Debug)]
#[command(name = "skiffctl", about = "A kubectl-like client for Skiff", version)]
struct Cli {
    /// Path to the kubeconfig file.
    #[arg(long, global = true)]
    kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// The address of the API server (overrides the kubeconfig).
    #[arg(short = 's', long, global = true)]
    server: Option<String>,
    /// The namespace for this request.
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Bearer token for authentication.
    #[arg(long, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Display one or many resources.
    Get(get::GetArgs),
    /// Apply a configuration to resources from files or stdin.
    Apply(apply::ApplyArgs),
    /// Create resources from files or stdin.
    Create(apply::ApplyArgs),
    /// Show details of a resource or group of resources.
    Describe(describe::DescribeArgs),
    /// Delete resources by file names, stdin, names or label selector.
    Delete(delete::DeleteArgs),
    /// Edit a resource in $EDITOR.
    Edit(edit::EditArgs),
    /// Update the labels on a resource.
    Label(label::LabelArgs),
    /// Update the annotations on a resource.
    Annotate(label::LabelArgs),
    /// Set a new size for a deployment, replica set, replication controller or stateful set.
    Scale(scale::ScaleArgs),
    /// Change fields of existing objects (`set image`).
    #[command(subcommand)]
    Set(set_image::SetCmd),
    /// Manage the rollout of deployments.
    #[command(subcommand)]
    Rollout(rollout::RolloutCmd),
    /// Mark a node as unschedulable.
    Cordon(cordon::CordonArgs),
    /// Mark a node as schedulable.
    Uncordon(cordon::CordonArgs),
    /// Drain a node in preparation for maintenance.
    Drain(drain::DrainArgs),
    /// Print the logs for a container in a pod.
    Logs(logs::LogsArgs),
    /// Execute a command in a container.
    Exec(exec::ExecArgs),
    /// Forward one or more local ports to a pod.
    PortForward(port_forward::PortForwardArgs),
    /// Read or change the kubeconfig.
    #[command(subcommand)]
    Config(kubeconfig::ConfigCmd),
    /// Print a shell completion script.
    Completion {
        /// bash, zsh or fish.
        shell: clap_complete::Shell,
    },
    /// Print the resource types the server supports.
    ApiResources,
    /// Print the client and server version.
    Version,
}

async fn connect(cli: &Cli) -> Result<Http> {
    let opts = runtime::config::LoadOptions {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        server: cli.server.clone(),
        namespace: cli.namespace.clone(),
        token: cli.token.clone(),
    };
    Http::new(runtime::config::load(&opts)?)
}

async fn run(cli: Cli) -> Result<()> {
    // Commands that never talk to a server.
    match &cli.command {
        Command::Config(c) => {
            return kubeconfig::run(cli.kubeconfig.as_ref(), cli.context.as_deref(), c);
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "skiffctl", &mut std::io::stdout());
            return Ok(());
        }
        _ => {}
    }
    let http = connect(&cli).await?;
    match &cli.command {
        Command::Version => {
            let v = http.get("/version", http::JSON).await?;
            println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
            println!(
                "Server Version: {}",
                v["gitVersion"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        cmd => {
            let disc = Discovery::load(&http).await?;
            match cmd {
                Command::Get(a) => get::run(&http, &disc, a).await,
                Command::Apply(a) => apply::apply(&http, &disc, a).await,
                Command::Create(a) => apply::create(&http, &disc, a).await,
                Command::Delete(a) => delete::run(&http, &disc, a).await,
                Command::Describe(a) => describe::run(&http, &disc, a).await,
                Command::ApiResources => api_resources(&disc),
                Command::Edit(a) => edit::run(&http, &disc, a).await,
                Command::Label(a) => label::run(&http, &disc, a, label::Which::Labels).await,
                Command::Annotate(a) => {
                    label::run(&http, &disc, a, label::Which::Annotations).await
                }
                Command::Scale(a) => scale::run(&http, &disc, a).await,
                Command::Set(set_image::SetCmd::Image(a)) => set_image::run(&http, &disc, a).await,
                Command::Rollout(c) => rollout::run(&http, &disc, c).await,
                Command::Cordon(a) => cordon::run(&http, &disc, a, true).await,
                Command::Uncordon(a) => cordon::run(&http, &disc, a, false).await,
                Command::Drain(a) => drain::run(&http, &disc, a).await,
                Command::Logs(a) => logs::run(&http, &disc, a).await,
                Command::Exec(a) => exec::run(&http, &disc, a).await,
                Command::PortForward(a) => port_forward::run(&http, &disc, a).await,
                Command::Version | Command::Config(_) | Command::Completion { .. } => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

/// `api-resources`: NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND sorted like kubectl.
fn api_resources(disc: &Discovery) -> Result<()> {
    let mut rs: Vec<_> = disc.resources.iter().collect();
    rs.sort_by(|a, b| (&a.info.group, &a.info.plural).cmp(&(&b.info.group, &b.info.plural)));
    let mut rows = vec![
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            .map(String::from)
            .to_vec(),
    ];
    for r in rs {
        rows.push(vec![
            r.info.plural.clone(),
            r.short_names.join(","),
            r.info.api_version(),
            r.info.namespaced.to_string(),
            r.info.kind.clone(),
        ]);
    }
    print!("{}", print::tabwrite(&rows));
    Ok(())
}

/// Any panic still ends as one line and exit code 1 — never a backtrace; a closed stdout
/// (`skiffctl get pods | head`) ends quietly, as kubectl does.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        if !msg.contains("Broken pipe") {
            eprintln!("error: internal error: {}", error::one_line(msg));
        }
        std::process::exit(1);
    }));
}

fn main() {
    quiet_panics();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        if !matches!(e, CtlError::Silent) {
            eprintln!("{e}");
        }
        std::process::exit(match e {
            CtlError::Exit(code) => code,
            _ => 1,
        });
    }
}
