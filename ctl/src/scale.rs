//! `skiffctl scale`: sets `spec.replicas` through the `/scale` subresource, as kubectl does —
//! a merge patch `{"spec":{"replicas":N}}`, or with `--current-replicas` / `--resource-version`
//! a `GET` of the `Scale` followed by a `PUT` carrying its `resourceVersion`, so a concurrent
//! change makes the write fail instead of being overwritten.

use serde_json::{Value, json};

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::http::{Http, JSON};
use crate::objects::{MERGE, ObjRef, Selection, patch, select, send_json};

/// Flags of `scale`.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// TYPE NAME ... or TYPE/NAME ...
    pub args: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long, allow_hyphen_values = true)]
    pub replicas: Option<i64>,
    /// Precondition: only scale if the current replicas match (-1: no precondition).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub current_replicas: i64,
    /// Precondition: only scale if the resourceVersion matches.
    #[arg(long)]
    pub resource_version: Option<String>,
    /// Manifests naming the objects to scale.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Label selector choosing the objects.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
}

/// Checks the flags before anything is sent, with kubectl's messages.
pub fn validate(a: &ScaleArgs) -> Result<i64> {
    match a.replicas {
        None => Err(CtlError::local("required flag(s) \"replicas\" not set")),
        Some(n) if n < 0 => Err(CtlError::local(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0",
        )),
        Some(n) => Ok(n),
    }
}

/// The precondition failure kubectl reports (`Expected replicas to be 2, was 3`), if any.
pub fn precondition_error(
    scale: &Value,
    current_replicas: i64,
    resource_version: Option<&str>,
) -> Option<String> {
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if current_replicas >= 0 && current_replicas != replicas {
        return Some(format!(
            "Expected replicas to be {current_replicas}, was {replicas}"
        ));
    }
    let rv = scale["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    match resource_version {
        Some(want) if !want.is_empty() && want != rv => {
            Some(format!("Expected resource version to be {want}, was {rv}"))
        }
        _ => None,
    }
}

/// Runs `scale`.
pub async fn run(http: &Http, disc: &Discovery, a: &ScaleArgs) -> Result<()> {
    let replicas = validate(a)?;
    let objects = select(
        http,
        disc,
        &Selection {
            args: &a.args,
            files: &a.files,
            selector: a.selector.as_deref(),
            all: a.all,
        },
    )
    .await?;
    // kubectl reads every object first; a missing one ends the command before any change.
    let mut found = Vec::new();
    for o in objects {
        match http.get(&o.path(), JSON).await {
            Ok(_) => found.push(o),
            Err(CtlError::Server { message, .. }) => {
                return Err(CtlError::Local(format!(
                    "no objects passed to scale {message}"
                )));
            }
            Err(e) => return Err(e),
        }
    }
    if found.is_empty() {
        return Err(CtlError::local("no objects passed to scale"));
    }
    if a.resource_version.is_some() && found.len() > 1 {
        return Err(CtlError::local(
            "cannot use --resource-version with multiple resources",
        ));
    }
    for o in &found {
        scale_one(http, o, replicas, a).await?;
        println!("{} scaled", o.display());
    }
    Ok(())
}

async fn scale_one(http: &Http, o: &ObjRef<'_>, replicas: i64, a: &ScaleArgs) -> Result<()> {
    let path = format!("{}/scale", o.path());
    if a.current_replicas < 0 && a.resource_version.is_none() {
        patch(http, &path, MERGE, &json!({"spec": {"replicas": replicas}})).await?;
        return Ok(());
    }
    let mut scale = http.get(&path, JSON).await?;
    if let Some(msg) = precondition_error(&scale, a.current_replicas, a.resource_version.as_deref())
    {
        return Err(CtlError::Local(msg));
    }
    scale["spec"]["replicas"] = json!(replicas);
    send_json(http, reqwest::Method::PUT, &path, &scale).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions() {
        let scale = json!({"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 3}});
        for (current, rv, want) in [
            (-1, None, None),
            (3, None, None),
            (2, None, Some("Expected replicas to be 2, was 3")),
            (-1, Some("7"), None),
            (
                3,
                Some("6"),
                Some("Expected resource version to be 6, was 7"),
            ),
        ] {
            assert_eq!(
                precondition_error(&scale, current, rv).as_deref(),
                want,
                "{current} {rv:?}"
            );
        }
    }
}
