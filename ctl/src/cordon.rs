//! `skiffctl cordon` / `uncordon`: mark nodes (un)schedulable with the strategic merge patch
//! kubectl sends (`{"spec":{"unschedulable":true}}`, or `null` to clear it), after a `GET`
//! that tells "already cordoned" apart.

use serde_json::{Value, json};

use crate::discovery::Discovery;
use crate::error::Result;
use crate::http::{Http, JSON};
use crate::objects::{SMP, patch, with_query};

/// Flags of `cordon` / `uncordon`.
#[derive(clap::Args, Debug)]
pub struct CordonArgs {
    /// NODE ...
    pub nodes: Vec<String>,
    /// Label selector choosing the nodes.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// The patch making a node's schedulability `cordoned`; clearing sends `null` (the field is
/// `omitempty`), exactly as kubectl computes it.
pub fn unschedulable_patch(cordoned: bool) -> Value {
    json!({"spec": {"unschedulable": if cordoned { json!(true) } else { Value::Null }}})
}

/// What kubectl prints after the node's current state is known: whether a patch is needed,
/// and the verdict word.
pub fn verdict(currently: bool, cordon: bool) -> (bool, &'static str) {
    match (currently == cordon, cordon) {
        (true, true) => (false, "already cordoned"),
        (true, false) => (false, "already uncordoned"),
        (false, true) => (true, "cordoned"),
        (false, false) => (true, "uncordoned"),
    }
}

/// Cordons or uncordons one node and returns kubectl's line (`node/n1 cordoned`).
pub async fn set_schedulable(http: &Http, node: &str, cordon: bool) -> Result<String> {
    let path = format!("/api/v1/nodes/{node}");
    let live = http.get(&path, JSON).await?;
    let currently = live["spec"]["unschedulable"].as_bool().unwrap_or(false);
    let (needed, word) = verdict(currently, cordon);
    if needed {
        patch(http, &path, SMP, &unschedulable_patch(cordon)).await?;
    }
    Ok(format!("node/{node} {word}"))
}

/// Runs `cordon` (`cordon = true`) or `uncordon`.
pub async fn run(http: &Http, _disc: &Discovery, a: &CordonArgs, cordon: bool) -> Result<()> {
    let mut nodes = a.nodes.clone();
    if let Some(sel) = &a.selector {
        let list = http
            .get(
                &with_query("/api/v1/nodes", &[("labelSelector", sel)]),
                JSON,
            )
            .await?;
        nodes.extend(
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string)),
        );
    }
    if nodes.is_empty() {
        let verb = if cordon { "cordon" } else { "uncordon" };
        return Err(crate::error::CtlError::Local(format!(
            "USAGE: {verb} NODE [flags]; see 'skiffctl {verb} -h' for help"
        )));
    }
    for n in nodes {
        println!("{}", set_schedulable(http, &n, cordon).await?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_patches() {
        for (currently, cordon, needed, word) in [
            (false, true, true, "cordoned"),
            (true, true, false, "already cordoned"),
            (true, false, true, "uncordoned"),
            (false, false, false, "already uncordoned"),
        ] {
            assert_eq!(verdict(currently, cordon), (needed, word));
        }
        assert_eq!(
            unschedulable_patch(true).to_string(),
            r#"{"spec":{"unschedulable":true}}"#
        );
        assert_eq!(
            unschedulable_patch(false).to_string(),
            r#"{"spec":{"unschedulable":null}}"#
        );
    }
}
