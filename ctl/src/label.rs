//! `skiffctl label` and `skiffctl annotate`: one verb, two metadata maps.
//!
//! `key=value` sets (refusing to change an existing value without `--overwrite`), `key-`
//! removes; the change goes to the server as a JSON merge patch of just that map.

use serde_json::{Map, Value, json};

use crate::discovery::{Discovery, Resource};
use crate::error::{CtlError, Result};
use crate::get::collection;
use crate::http::{Http, JSON};

/// Flags of `label` / `annotate`.
#[derive(clap::Args, Debug)]
pub struct LabelArgs {
    /// TYPE NAME KEY=VAL ... KEY- ..., or TYPE/NAME KEY=VAL ...
    pub args: Vec<String>,
    /// Allow changing existing values.
    #[arg(long)]
    pub overwrite: bool,
    /// Label selector choosing the objects.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
}

/// Which map a run edits.
#[derive(Clone, Copy)]
pub enum Which {
    Labels,
    Annotations,
}

impl Which {
    fn field(self) -> &'static str {
        match self {
            Which::Labels => "labels",
            Which::Annotations => "annotations",
        }
    }

    /// kubectl's two wordings for a change refused without `--overwrite`.
    fn refused(self, key: &str, old: &str) -> String {
        match self {
            Which::Labels => {
                format!("'{key}' already has a value ({old}), and --overwrite is false")
            }
            Which::Annotations => format!(
                "--overwrite is false but found the following declared annotation(s): '{key}' already has a value ({old})"
            ),
        }
    }

    /// kubectl's verdict: annotate always says "annotated"; label tells a change from none,
    /// and a pure removal (without `--overwrite`) from an addition.
    fn done(self, changed: bool, only_removed: bool) -> &'static str {
        match (self, changed, only_removed) {
            (Which::Labels, true, true) => "unlabeled",
            (Which::Labels, true, false) => "labeled",
            (Which::Labels, false, _) => "not labeled",
            (Which::Annotations, _, _) => "annotated",
        }
    }
}

/// Runs `label` or `annotate`.
pub async fn run(http: &Http, disc: &Discovery, a: &LabelArgs, which: Which) -> Result<()> {
    let (objects, changes): (Vec<&String>, Vec<&String>) = a
        .args
        .iter()
        .partition(|x| !x.contains('=') && !x.ends_with('-'));
    let mut set = Map::new();
    let mut remove = Vec::new();
    for c in changes {
        match c.split_once('=') {
            Some((k, v)) => {
                set.insert(k.to_string(), json!(v));
            }
            None => remove.push(c.trim_end_matches('-').to_string()),
        }
    }
    if set.is_empty() && remove.is_empty() {
        return Err(CtlError::Local(format!(
            "at least one {} update is required",
            &which.field()[..which.field().len() - 1]
        )));
    }
    let objects: Vec<String> = objects.into_iter().cloned().collect();
    let targets = crate::get::targets(disc, &objects)?;
    let ns = http.namespace.clone();
    for t in targets {
        let mut names = t.names.clone();
        if names.is_empty() {
            if a.selector.is_none() && !a.all {
                return Err(CtlError::local(
                    "resource(s) were provided, but no name was specified",
                ));
            }
            names = list_names(http, t.resource, &ns, a.selector.as_deref()).await?;
        }
        for n in names {
            let path = format!("{}/{n}", collection(t.resource, Some(&ns)));
            let live = http.get(&path, JSON).await?;
            let current = &live["metadata"][which.field()];
            let mut patch = Map::new();
            for (k, v) in &set {
                match current.get(k) {
                    Some(old) if old == v => {}
                    Some(old) if !a.overwrite => {
                        return Err(CtlError::Local(
                            which.refused(k, old.as_str().unwrap_or_default()),
                        ));
                    }
                    _ => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            let added = !patch.is_empty();
            for k in &remove {
                if current.get(k).is_some() {
                    patch.insert(k.clone(), Value::Null);
                } else if matches!(which, Which::Labels) {
                    println!("label {k:?} not found.");
                }
            }
            let changed = !patch.is_empty();
            if changed {
                let body = json!({"metadata": {which.field(): patch}});
                http.call(
                    reqwest::Method::PATCH,
                    &path,
                    JSON,
                    Some((
                        "application/merge-patch+json",
                        serde_json::to_vec(&body).map_err(|e| CtlError::local(e.to_string()))?,
                    )),
                )
                .await?;
            }
            println!(
                "{}/{n} {}",
                t.resource.qualified_kind(),
                which.done(changed, !added && !a.overwrite)
            );
        }
    }
    Ok(())
}

async fn list_names(
    http: &Http,
    r: &Resource,
    ns: &str,
    selector: Option<&str>,
) -> Result<Vec<String>> {
    let mut path = collection(r, Some(ns));
    if let Some(s) = selector {
        path = format!(
            "{path}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("labelSelector", s)
                .finish()
        );
    }
    let list = http.get(&path, JSON).await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}
