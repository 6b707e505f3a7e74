//! `skiffctl set image TYPE/NAME CONTAINER=IMAGE ...`: changes container images in a pod or a
//! workload's pod template with the two-way strategic merge patch kubectl computes
//! (`$setElementOrder/containers` plus only the changed entries), sent with
//! `fieldManager=kubectl-set`. An unchanged object is not patched and not reported.

use serde_json::{Map, Value, json};

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::http::{Http, JSON};
use crate::objects::{SMP, Selection, patch, select, with_query};

/// `skiffctl set ...`.
#[derive(clap::Subcommand, Debug)]
pub enum SetCmd {
    /// Update the images of a pod template.
    Image(SetImageArgs),
}

/// Flags of `set image`.
#[derive(clap::Args, Debug)]
pub struct SetImageArgs {
    /// TYPE NAME ... or TYPE/NAME ..., then CONTAINER=IMAGE ... (`*=IMAGE` for all).
    pub args: Vec<String>,
    /// Manifests naming the objects.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Label selector choosing the objects.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
}

/// One `container=image` update (`*` for every container).
pub type Update = (String, String);

/// Splits the arguments into objects and `container=image` updates, checking them as kubectl
/// does.
pub fn parse_updates(args: &[String], has_files: bool) -> Result<(Vec<String>, Vec<Update>)> {
    let (updates, objects): (Vec<&String>, Vec<&String>) =
        args.iter().partition(|a| a.contains('='));
    let updates: Vec<Update> = updates
        .into_iter()
        .filter_map(|u| {
            u.split_once('=')
                .map(|(c, i)| (c.to_string(), i.to_string()))
        })
        .collect();
    let mut errors = Vec::new();
    if objects.is_empty() && !has_files {
        errors.push("You must provide one or more resources by argument or filename.");
    }
    if updates.is_empty() {
        errors.push("at least one image update is required");
    } else if updates.len() > 1 && updates.iter().any(|(c, _)| c == "*") {
        errors.push(
            "all containers are already specified by *, but saw more than one container_name=container_image pairs",
        );
    }
    match errors.as_slice() {
        [] => Ok((objects.into_iter().cloned().collect(), updates)),
        [one] => Err(CtlError::local(*one)),
        many => Err(CtlError::Local(format!("[{}]", many.join(", ")))),
    }
}

/// Where the pod spec sits in an object of this kind, if it has one.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "PodTemplate" => Some("/template/spec"),
        "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// The strategic merge patch that sets the images: `{}` when nothing changes, or an error
/// naming a container that does not exist.
pub fn image_patch(pod_spec: &Value, updates: &[Update]) -> Result<Value> {
    let mut found = vec![false; updates.len()];
    let mut spec_patch = Map::new();
    let mut changed_lists = Vec::new();
    for list in ["initContainers", "containers"] {
        let containers = pod_spec[list].as_array().cloned().unwrap_or_default();
        let mut changed = Vec::new();
        for c in &containers {
            let name = c["name"].as_str().unwrap_or_default();
            let mut image = None;
            for (i, (want, img)) in updates.iter().enumerate() {
                if want == name || want == "*" {
                    found[i] = true;
                    image = Some(img);
                }
            }
            if let Some(img) = image
                && c["image"].as_str() != Some(img.as_str())
            {
                changed.push(json!({"image": img, "name": name}));
            }
        }
        if !changed.is_empty() {
            let order: Vec<Value> = containers
                .iter()
                .map(|c| json!({"name": c["name"]}))
                .collect();
            changed_lists.push((list, order, changed));
        }
    }
    if let Some(i) = found.iter().position(|f| !f) {
        return Err(CtlError::Local(format!(
            "unable to find container named \"{}\"",
            updates[i].0
        )));
    }
    // Go marshals map keys sorted: every `$setElementOrder/...` before the lists.
    changed_lists.sort_by_key(|(list, _, _)| *list);
    for (list, order, _) in &changed_lists {
        spec_patch.insert(
            format!("$setElementOrder/{list}"),
            Value::Array(order.clone()),
        );
    }
    for (list, _, changed) in changed_lists {
        spec_patch.insert(list.to_string(), Value::Array(changed));
    }
    Ok(Value::Object(spec_patch))
}

/// Wraps a pod-spec patch into the object's shape (`{"spec":{"template":{"spec":...}}}`).
pub fn nest(pointer: &str, inner: Value) -> Value {
    pointer
        .split('/')
        .filter(|s| !s.is_empty())
        .rev()
        .fold(inner, |acc, key| json!({ key: acc }))
}

/// Runs `set image`.
pub async fn run(http: &Http, disc: &Discovery, a: &SetImageArgs) -> Result<()> {
    let (objects, updates) = parse_updates(&a.args, !a.files.is_empty())?;
    let targets = select(
        http,
        disc,
        &Selection {
            args: &objects,
            files: &a.files,
            selector: a.selector.as_deref(),
            all: a.all,
        },
    )
    .await?;
    for o in targets {
        let live = http.get(&o.path(), JSON).await?;
        let kind = &o.resource.info.kind;
        let Some(ptr) = pod_spec_pointer(kind) else {
            return Err(CtlError::Local(format!(
                "{}/{} the object is not a pod or does not have a pod template: *v1.{kind}",
                o.resource.info.plural, o.name
            )));
        };
        let inner = image_patch(live.pointer(ptr).unwrap_or(&Value::Null), &updates)?;
        if inner.as_object().is_none_or(Map::is_empty) {
            continue;
        }
        let path = with_query(&o.path(), &[("fieldManager", "kubectl-set")]);
        patch(http, &path, SMP, &nest(ptr, inner)).await?;
        println!("{} image updated", o.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn image_patches() {
        let spec = json!({"containers": [{"name": "web", "image": "nginx:1.25"}, {"name": "side", "image": "busybox"}],
                          "initContainers": [{"name": "init", "image": "busybox"}]});
        for (updates, want) in [
            (
                ups(&[("web", "nginx:1.27")]),
                r#"{"$setElementOrder/containers":[{"name":"web"},{"name":"side"}],"containers":[{"image":"nginx:1.27","name":"web"}]}"#,
            ),
            (ups(&[("web", "nginx:1.25")]), "{}"),
            (
                ups(&[("*", "busybox")]),
                r#"{"$setElementOrder/containers":[{"name":"web"},{"name":"side"}],"containers":[{"image":"busybox","name":"web"}]}"#,
            ),
            (
                ups(&[("init", "alpine"), ("side", "alpine")]),
                r#"{"$setElementOrder/containers":[{"name":"web"},{"name":"side"}],"$setElementOrder/initContainers":[{"name":"init"}],"containers":[{"image":"alpine","name":"side"}],"initContainers":[{"image":"alpine","name":"init"}]}"#,
            ),
        ] {
            assert_eq!(
                image_patch(&spec, &updates).expect("patch").to_string(),
                want,
                "{updates:?}"
            );
        }
        let err = image_patch(&spec, &ups(&[("nope", "x")])).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "error: unable to find container named \"nope\""
        );
    }

    #[test]
    fn arguments() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (objs, u) = parse_updates(&args(&["deploy", "web", "a=b"]), false).expect("ok");
        assert_eq!(objs, args(&["deploy", "web"]));
        assert_eq!(u, ups(&[("a", "b")]));
        for (input, msg) in [
            (vec!["deploy/web"], "at least one image update is required"),
            (
                vec!["deploy/web", "*=a", "b=c"],
                "all containers are already specified by *",
            ),
            (vec!["a=b"], "You must provide one or more resources"),
        ] {
            let e = parse_updates(&args(&input), false).expect_err("bad");
            assert!(e.to_string().contains(msg), "{input:?}: {e}");
        }
    }

    #[test]
    fn nesting() {
        assert_eq!(
            nest("/spec/template/spec", json!({"a": 1})).to_string(),
            r#"{"spec":{"template":{"spec":{"a":1}}}}"#
        );
        assert_eq!(nest("/spec", json!({})).to_string(), r#"{"spec":{}}"#);
    }
}
