//! `rollout undo`: kubectl's client-side rollback. The ReplicaSet of the wanted revision (by
//! default the one before the newest) gives back its pod template, minus the
//! `pod-template-hash` label, and its annotations; a JSON patch writes both into the
//! Deployment. Unlike kubectl the patch starts with a `test` of the `resourceVersion` read, so
//! a Deployment changed in between is not silently overwritten.

use serde_json::{Map, Value, json};

use super::status::{REVISION, revision_of};

/// The label the deployment controller adds to tell its ReplicaSets' pods apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Deployment annotations that stay the Deployment's own; every other annotation comes from
/// the ReplicaSet rolled back to (kubectl's `annotationsToSkip`).
const KEEP_FROM_DEPLOYMENT: &[&str] = &[
    crate::apply::LAST_APPLIED,
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// What undo does.
#[derive(Debug, PartialEq)]
pub enum Undo {
    /// The template already matches: kubectl's "skipped rollback (...revision N)" (N as
    /// typed, so 0 for the default).
    Skipped(i64),
    /// Send this JSON patch.
    Patch(Value),
}

/// Decides the rollback of Deployment `d` to `to_revision` (0: the previous revision) among
/// the ReplicaSets it controls, with kubectl's errors.
pub fn plan(d: &Value, owned: &[Value], to_revision: i64) -> Result<Undo, String> {
    let not_found = |r: i64| format!("unable to find specified revision {r} in history");
    if to_revision < 0 {
        return Err(not_found(to_revision));
    }
    let rs = pick(owned, to_revision).ok_or_else(|| {
        if to_revision > 0 {
            not_found(to_revision)
        } else {
            format!(
                "no rollout history found for deployment \"{}\"",
                d["metadata"]["name"].as_str().unwrap_or_default()
            )
        }
    })?;
    if d["spec"]["paused"] == true {
        return Err("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again".into());
    }
    let mut template = rs["spec"]["template"].clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    if same_template(&template, &d["spec"]["template"]) {
        return Ok(Undo::Skipped(to_revision));
    }
    let mut annotations = Map::new();
    let own = &d["metadata"]["annotations"];
    for k in KEEP_FROM_DEPLOYMENT {
        if let Some(v) = own.get(*k) {
            annotations.insert((*k).to_string(), v.clone());
        }
    }
    for (k, v) in rs["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !KEEP_FROM_DEPLOYMENT.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    Ok(Undo::Patch(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": d["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ])))
}

/// The ReplicaSet of `to_revision`, or for 0 the second-newest revision (kubectl's
/// `deploymentRevision`); unreadable revisions are ignored.
fn pick(owned: &[Value], to_revision: i64) -> Option<&Value> {
    let mut latest: Option<(i64, &Value)> = None;
    let mut previous: Option<(i64, &Value)> = None;
    for rs in owned {
        let Ok(v) = revision_of(rs) else { continue };
        if to_revision > 0 {
            if v == to_revision {
                return Some(rs);
            }
            continue;
        }
        match latest {
            Some((l, _)) if v <= l => {
                if previous.is_none_or(|(p, _)| p < v) {
                    previous = Some((v, rs));
                }
            }
            _ => {
                previous = latest;
                latest = Some((v, rs));
            }
        }
    }
    if to_revision > 0 {
        None
    } else {
        previous.map(|(_, rs)| rs)
    }
}

/// Template equality ignoring the hash label, with empty and absent fields equal (as Go's
/// semantic DeepEqual sees typed objects).
pub fn same_template(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(l) = t
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            l.remove(POD_TEMPLATE_HASH);
        }
        prune(&t)
    };
    strip(a) == strip(b)
}

/// Drops nulls, empty objects and empty arrays, recursively.
fn prune(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), prune(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(prune).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str, hash: Option<&str>) -> Value {
        let mut labels = json!({"app": "web"});
        if let Some(h) = hash {
            labels[POD_TEMPLATE_HASH] = json!(h);
        }
        json!({"metadata": {"labels": labels},
               "spec": {"containers": [{"name": "web", "image": image, "resources": {}}]}})
    }

    fn rs(rev: &str, image: &str, extra: Value) -> Value {
        let mut ann = json!({REVISION: rev});
        for (k, v) in extra.as_object().into_iter().flatten() {
            ann[k] = v.clone();
        }
        json!({"metadata": {"annotations": ann},
               "spec": {"template": template(image, Some(&format!("h{rev}")))}})
    }

    fn deploy(image: &str, paused: bool) -> Value {
        json!({"metadata": {"name": "web", "resourceVersion": "42",
                            "annotations": {REVISION: "3", crate::apply::LAST_APPLIED: "{}", "note": "mine"}},
               "spec": {"paused": paused, "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn plans() {
        let owned = vec![
            rs("1", "a", json!({"kubernetes.io/change-cause": "first"})),
            rs("3", "c", json!({})),
            rs("2", "b", json!({})),
        ];
        // Default: the previous revision (2); its template without the hash label, the
        // Deployment's own revision and last-applied kept, its other annotations dropped.
        let Undo::Patch(p) = plan(&deploy("c", false), &owned, 0).expect("plan") else {
            panic!("expected a patch")
        };
        assert_eq!(
            p,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
                {"op": "replace", "path": "/spec/template", "value": template("b", None)},
                {"op": "replace", "path": "/metadata/annotations",
                 "value": {crate::apply::LAST_APPLIED: "{}", REVISION: "3"}},
            ])
        );
        let Undo::Patch(p) = plan(&deploy("c", false), &owned, 1).expect("plan") else {
            panic!("expected a patch")
        };
        assert_eq!(p[2]["value"]["kubernetes.io/change-cause"], "first");
        assert_eq!(p[1]["value"]["spec"]["containers"][0]["image"], "a");

        for (d, rev, want) in [
            (deploy("b", false), 0, Ok(Undo::Skipped(0))),
            (deploy("c", false), 3, Ok(Undo::Skipped(3))),
            (
                deploy("c", false),
                7,
                Err("unable to find specified revision 7 in history".to_string()),
            ),
            (
                deploy("c", false),
                -1,
                Err("unable to find specified revision -1 in history".to_string()),
            ),
            (
                deploy("c", true),
                0,
                Err("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again".to_string()),
            ),
        ] {
            assert_eq!(plan(&d, &owned, rev), want, "revision {rev}");
        }
        assert_eq!(
            plan(&deploy("c", false), &owned[1..2], 0),
            Err("no rollout history found for deployment \"web\"".to_string())
        );
        assert_eq!(
            plan(&deploy("c", false), &[], 0),
            Err("no rollout history found for deployment \"web\"".to_string())
        );
    }

    #[test]
    fn previous_revision_picked_in_any_order() {
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let all = [
                rs("5", "a", json!({})),
                rs("9", "b", json!({})),
                rs("7", "c", json!({})),
            ];
            let owned: Vec<Value> = order.iter().map(|i| all[*i].clone()).collect();
            assert_eq!(
                pick(&owned, 0).and_then(|r| r["metadata"]["annotations"][REVISION].as_str()),
                Some("7"),
                "{order:?}"
            );
        }
    }
}
