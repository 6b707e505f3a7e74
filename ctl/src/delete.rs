//! `skiffctl delete`: by name, by selector, `--all` or from manifests; waits for the objects
//! to disappear unless `--wait=false`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::apply::DryRun;
use crate::discovery::{Discovery, Resource};
use crate::error::{CtlError, Result};
use crate::get::{collection, targets};
use crate::http::{Http, JSON};

/// Flags of `delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// TYPE NAME... or TYPE/NAME ...
    pub args: Vec<String>,
    /// Manifests naming the objects to delete.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Recurse into directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Seconds the objects get to shut down (-1: the object's default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// background, foreground or orphan.
    #[arg(long, default_value = "background", num_args = 0..=1, default_missing_value = "background")]
    pub cascade: String,
    /// none, client or server.
    #[arg(long, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: String,
    /// Treat "not found" as a successful delete.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Deletion wait deadline in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// Runs `delete`.
pub async fn run(http: &Http, disc: &Discovery, a: &DeleteArgs) -> Result<()> {
    let policy = match a.cascade.as_str() {
        "background" | "true" => "Background",
        "foreground" => "Foreground",
        "orphan" | "false" => "Orphan",
        other => {
            return Err(CtlError::Local(format!(
                "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
            )));
        }
    };
    let mut body =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
    if a.grace_period >= 0 {
        body["gracePeriodSeconds"] = json!(a.grace_period);
    }
    let ns = http.namespace.clone();
    let dry = DryRun::parse(&a.dry_run)?;
    if dry == DryRun::Server {
        body["dryRun"] = json!(["All"]);
    }
    // (resource, namespace, name, manifest it came from)
    let mut todo: Vec<(&Resource, String, String, Option<String>)> = Vec::new();
    if !a.files.is_empty() {
        for doc in crate::manifest::read_all(&a.files, a.recursive)? {
            let r = disc.for_kind(
                doc.object["apiVersion"].as_str().unwrap_or_default(),
                doc.object["kind"].as_str().unwrap_or_default(),
            )?;
            let obj_ns = doc.object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(&ns)
                .to_string();
            let name = doc.object["metadata"]["name"].as_str().unwrap_or_default();
            todo.push((r, obj_ns, name.to_string(), Some(doc.source)));
        }
    } else {
        let ts = targets(disc, &a.args)?;
        for t in ts {
            if t.names.is_empty() {
                if a.selector.is_none() && !a.all {
                    return Err(CtlError::local(
                        "resource(s) were provided, but no name was specified",
                    ));
                }
                let mut path = collection(t.resource, Some(&ns));
                if let Some(s) = &a.selector {
                    path = format!(
                        "{path}?{}",
                        form_urlencoded::Serializer::new(String::new())
                            .append_pair("labelSelector", s)
                            .finish()
                    );
                }
                let list = http.get(&path, JSON).await?;
                for it in list["items"].as_array().into_iter().flatten() {
                    let name = it["metadata"]["name"].as_str().unwrap_or_default();
                    todo.push((t.resource, ns.clone(), name.to_string(), None));
                }
            } else {
                for n in t.names {
                    todo.push((t.resource, ns.clone(), n, None));
                }
            }
        }
        if todo.is_empty() {
            // kubectl's delete (unlike get) says this on stdout.
            println!("No resources found");
            return Ok(());
        }
    }
    let mut deleted = Vec::new();
    let mut first_err = None;
    for (r, ns, name, source) in &todo {
        let path = format!("{}/{name}", collection(r, Some(ns)));
        let bytes = serde_json::to_vec(&body).map_err(|e| CtlError::local(e.to_string()))?;
        let res = match dry {
            DryRun::Client => Ok(Value::Null),
            _ => {
                http.call(reqwest::Method::DELETE, &path, JSON, Some((JSON, bytes)))
                    .await
            }
        };
        match res {
            Ok(_) => {
                println!("{} \"{name}\" deleted{}", r.qualified_kind(), dry.suffix());
                deleted.push(path);
            }
            Err(e) if a.ignore_not_found && e.is_not_found() => {}
            Err(e) => {
                let e = match source {
                    Some(src) => e.when("deleting", src),
                    None => e,
                };
                eprintln!("{e}");
                first_err.get_or_insert(());
            }
        }
    }
    if a.wait && dry == DryRun::None {
        let deadline = Instant::now() + Duration::from_secs(a.timeout);
        for path in &deleted {
            loop {
                match http.get(path, JSON).await {
                    Err(e) if e.is_not_found() => break,
                    Err(e) => return Err(e),
                    Ok(obj) => wait_tick(&obj, deadline, path)?,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    match first_err {
        Some(()) => Err(CtlError::Silent),
        None => Ok(()),
    }
}

fn wait_tick(_obj: &Value, deadline: Instant, path: &str) -> Result<()> {
    if Instant::now() > deadline {
        return Err(CtlError::Local(format!(
            "timed out waiting for the deletion of {path}"
        )));
    }
    Ok(())
}
