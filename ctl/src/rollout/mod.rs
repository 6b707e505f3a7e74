//! `skiffctl rollout status|history|undo|restart|pause|resume` for Deployments, with the
//! requests kubectl sends: strategic merge patches with `fieldManager=kubectl-rollout` for
//! restart/pause/resume, a list-then-watch for status, the controlled ReplicaSets for history
//! and undo.

pub mod history;
pub mod status;
pub mod undo;

use serde_json::{Value, json};

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::http::{Http, JSON};
use crate::objects::{
    JSON_PATCH, ObjRef, SMP, Selection, parse_duration, patch, select, with_query,
};

/// The template annotation whose change makes the controller roll every pod.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `skiffctl rollout ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RolloutCmd {
    /// Show the status of the rollout.
    Status(StatusArgs),
    /// View rollout history.
    History(HistoryArgs),
    /// Undo a previous rollout.
    Undo(UndoArgs),
    /// Restart a resource.
    Restart(Objects),
    /// Mark the provided resource as paused.
    Pause(Objects),
    /// Resume a paused resource.
    Resume(Objects),
}

/// The objects a rollout subcommand acts on.
#[derive(clap::Args, Debug)]
pub struct Objects {
    /// TYPE NAME or TYPE/NAME ...
    pub args: Vec<String>,
    /// Manifests naming the objects.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Label selector choosing the objects.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Flags of `rollout status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub objects: Objects,
    /// Pin to a specific revision; fail if the Deployment runs another one.
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
    /// Watch until the rollout is done (`--watch=false` prints once).
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub watch: bool,
    /// How long to wait before giving up (`0`: forever), e.g. `30s`, `2m`.
    #[arg(long, default_value = "0s")]
    pub timeout: String,
}

/// Flags of `rollout history`.
#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub objects: Objects,
    /// Show the pod template of this revision.
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
}

/// Flags of `rollout undo`.
#[derive(clap::Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub objects: Objects,
    /// The revision to roll back to (0: the previous one).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub to_revision: i64,
}

/// Runs a rollout subcommand.
pub async fn run(http: &Http, disc: &Discovery, cmd: &RolloutCmd) -> Result<()> {
    let objects = match cmd {
        RolloutCmd::Status(a) => &a.objects,
        RolloutCmd::History(a) => &a.objects,
        RolloutCmd::Undo(a) => &a.objects,
        RolloutCmd::Restart(o) | RolloutCmd::Pause(o) | RolloutCmd::Resume(o) => o,
    };
    let timeout = match cmd {
        RolloutCmd::Status(a) => parse_duration(&a.timeout)?,
        _ => std::time::Duration::ZERO,
    };
    if objects.args.is_empty() && objects.files.is_empty() {
        return Err(CtlError::local("required resource not specified"));
    }
    // A bare type means every object of it, as in kubectl's rollout commands.
    let targets = select(
        http,
        disc,
        &Selection {
            args: &objects.args,
            files: &objects.files,
            selector: objects.selector.as_deref(),
            all: true,
        },
    )
    .await?;
    if targets.is_empty() {
        eprintln!("No resources found in {} namespace.", http.namespace);
        return Ok(());
    }
    for o in &targets {
        let live = http.get(&o.path(), JSON).await?;
        match cmd {
            RolloutCmd::Status(a) => {
                deployment_only(o, "no status viewer has been implemented for {kind}")?;
                status::run(http, o, a.revision, a.watch, timeout).await?;
            }
            RolloutCmd::History(a) => {
                deployment_only(
                    o,
                    "error retrieving history for \"{kind}\", no visitor method exists for {{group} {kind}}",
                )?;
                let revs = history::revisions(&history::owned_replica_sets(http, &live).await?);
                let view = history::view(&revs, a.revision)?;
                let with = if a.revision > 0 {
                    format!("with revision #{}", a.revision)
                } else {
                    String::new()
                };
                println!("{} {with}\n{view}", o.display());
            }
            RolloutCmd::Undo(a) => {
                deployment_only(o, "no rollbacker has been implemented for \"{kind}\"")?;
                let owned = history::owned_replica_sets(http, &live).await?;
                let done =
                    match undo::plan(&live, &owned, a.to_revision).map_err(CtlError::Local)? {
                        undo::Undo::Skipped(r) => format!(
                            "skipped rollback (current template already matches revision {r})"
                        ),
                        undo::Undo::Patch(p) => {
                            restore(http, o, &p, a.to_revision).await?;
                            "rolled back".to_string()
                        }
                    };
                println!("{} {done}", o.display());
            }
            RolloutCmd::Restart(_) => {
                let p = restart_patch(o, &live, &now_rfc3339())?;
                patch(http, &rollout_path(o), SMP, &p).await?;
                println!("{} restarted", o.display());
            }
            RolloutCmd::Pause(_) | RolloutCmd::Resume(_) => {
                let pause = matches!(cmd, RolloutCmd::Pause(_));
                let p = pause_patch(o, &live, pause)?;
                patch(http, &rollout_path(o), SMP, &p).await?;
                println!(
                    "{} {}",
                    o.display(),
                    if pause { "paused" } else { "resumed" }
                );
            }
        }
    }
    Ok(())
}

/// Sends the rollback patch; failures read as kubectl's (`failed restoring revision N: ...`),
/// including a Deployment changed since it was read (the patch's resourceVersion test).
async fn restore(http: &Http, o: &ObjRef<'_>, p: &Value, to_revision: i64) -> Result<()> {
    match patch(http, &o.path(), JSON_PATCH, p).await {
        Ok(_) => Ok(()),
        Err(CtlError::Server { message, .. } | CtlError::Local(message)) => Err(CtlError::Local(
            format!("failed restoring revision {to_revision}: {message}"),
        )),
        Err(other @ (CtlError::Silent | CtlError::Exit(_))) => Err(other),
    }
}

fn rollout_path(o: &ObjRef<'_>) -> String {
    with_query(&o.path(), &[("fieldManager", "kubectl-rollout")])
}

/// Refuses kinds other than Deployment with kubectl's message for them.
fn deployment_only(o: &ObjRef<'_>, message: &str) -> Result<()> {
    let info = &o.resource.info;
    if (info.group.as_str(), info.kind.as_str()) == ("apps", "Deployment") {
        return Ok(());
    }
    Err(CtlError::Local(
        message
            .replace("{kind}", &info.kind)
            .replace("{group}", &info.group),
    ))
}

/// The patch pausing (`{"spec":{"paused":true}}`) or resuming (`null`: the field is
/// `omitempty`) a Deployment, or kubectl's error when there is nothing to do.
pub fn pause_patch(o: &ObjRef<'_>, live: &Value, pause: bool) -> Result<Value> {
    let info = &o.resource.info;
    if (info.group.as_str(), info.kind.as_str()) != ("apps", "Deployment") {
        return Err(CtlError::Local(format!(
            "{}/{} {} is not supported",
            info.plural,
            o.name,
            if pause { "pausing" } else { "resuming" }
        )));
    }
    let paused = live["spec"]["paused"].as_bool().unwrap_or(false);
    match (pause, paused) {
        (true, true) => Err(CtlError::Local(format!("{} is already paused", o.quoted()))),
        (false, false) => Err(CtlError::Local(format!("{} is not paused", o.quoted()))),
        (true, false) => Ok(json!({"spec": {"paused": true}})),
        (false, true) => Ok(json!({"spec": {"paused": null}})),
    }
}

/// The patch stamping `kubectl.kubernetes.io/restartedAt` into the pod template.
pub fn restart_patch(o: &ObjRef<'_>, live: &Value, now: &str) -> Result<Value> {
    let info = &o.resource.info;
    if info.group != "apps"
        || !matches!(
            info.kind.as_str(),
            "Deployment" | "DaemonSet" | "StatefulSet"
        )
    {
        return Err(CtlError::Local(format!(
            "{}/{} restarting is not supported",
            info.plural, o.name
        )));
    }
    if live["spec"]["paused"] == true {
        return Err(CtlError::Local(format!(
            "{} can't restart paused deployment (run rollout resume first)",
            o.quoted()
        )));
    }
    if live["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == now {
        return Err(CtlError::Local(format!(
            "failed to create patch for {}: if restart has already been triggered within the past second, please wait before attempting to trigger another",
            o.name
        )));
    }
    Ok(json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}))
}

/// Now in RFC 3339 with second precision, as kubectl stamps it (UTC).
fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
