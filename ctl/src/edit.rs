//! `skiffctl edit`: the object as YAML in `$EDITOR` (`KUBE_EDITOR` first, then `EDITOR`, then
//! `vi`), and what changed sent back as a strategic merge patch.
//!
//! The patch is the two-way diff between what was shown and what was saved (the three-way
//! diff with the shown object as both the original and the live state), so fields the user did
//! not touch are never sent.

use serde::Deserialize;
use serde_json::Value;

use crate::discovery::Discovery;
use crate::error::{CtlError, Result, one_line};
use crate::get::{collection, targets};
use crate::http::{Http, JSON};

/// Flags of `edit`.
#[derive(clap::Args, Debug)]
pub struct EditArgs {
    /// TYPE NAME or TYPE/NAME
    pub args: Vec<String>,
}

const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
";

fn editor() -> String {
    ["KUBE_EDITOR", "EDITOR"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string())
}

/// Runs `edit`.
pub async fn run(http: &Http, disc: &Discovery, a: &EditArgs) -> Result<()> {
    let ns = http.namespace.clone();
    for t in targets(disc, &a.args)? {
        if t.names.is_empty() {
            return Err(CtlError::local("edit needs the name of the object to edit"));
        }
        for name in &t.names {
            let path = format!("{}/{name}", collection(t.resource, Some(&ns)));
            let mut shown = http.get(&path, JSON).await?;
            crate::print::strip_managed_fields(&mut shown);
            let text = format!("{HEADER}{}", crate::print::to_yaml(&shown)?);
            let edited = edit_text(&text, &format!("{}-{name}", t.resource.info.plural))?;
            if edited
                .lines()
                .all(|l| l.trim().is_empty() || l.starts_with('#'))
            {
                eprintln!("Edit cancelled, saved file was empty.");
                continue;
            }
            let de = serde_yaml_ng::Deserializer::from_str(&edited);
            let new = Value::deserialize(de).map_err(|e| {
                CtlError::Local(format!("edit cancelled: {}", one_line(&e.to_string())))
            })?;
            let patch = crate::smp::three_way(&shown, &new, &shown);
            if patch.as_object().is_some_and(|m| m.is_empty()) {
                eprintln!("Edit cancelled, no changes made.");
                continue;
            }
            let body = serde_json::to_vec(&patch).map_err(|e| CtlError::local(e.to_string()))?;
            http.call(
                reqwest::Method::PATCH,
                &format!("{path}?fieldManager=kubectl-edit"),
                JSON,
                Some(("application/strategic-merge-patch+json", body)),
            )
            .await?;
            println!("{}/{name} edited", t.resource.qualified_kind());
        }
    }
    Ok(())
}

/// Writes `text` to a temporary file, runs the editor on it and reads it back.
fn edit_text(text: &str, stem: &str) -> Result<String> {
    let dir = std::env::temp_dir();
    let file = dir.join(format!("skiffctl-edit-{}-{stem}.yaml", std::process::id()));
    std::fs::write(&file, text)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} \"$1\"", editor()))
        .arg("sh")
        .arg(&file)
        .status();
    let result = match status {
        Ok(s) if s.success() => std::fs::read_to_string(&file).map_err(CtlError::from),
        Ok(s) => Err(CtlError::Local(format!(
            "there was a problem with the editor \"{}\": {s}",
            editor()
        ))),
        Err(e) => Err(CtlError::Local(format!(
            "cannot run the editor \"{}\": {e}",
            editor()
        ))),
    };
    let _ = std::fs::remove_file(&file);
    result
}
