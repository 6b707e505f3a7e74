//! `rollout history`: the revisions of a Deployment, read from the ReplicaSets it controls
//! (their `deployment.kubernetes.io/revision` and `kubernetes.io/change-cause` annotations),
//! printed as kubectl's REVISION / CHANGE-CAUSE table, or one revision's pod template.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::status::revision_of;
use crate::error::{CtlError, Result};
use crate::http::{Http, JSON};
use crate::objects::with_query;

/// The annotation `kubectl --record` and users set to explain a change.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// Whether `owner` is the controller of `o` (a controller ownerReference with its UID).
pub fn controlled_by(o: &Value, owner: &Value) -> bool {
    let uid = &owner["metadata"]["uid"];
    o["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["controller"] == true && &r["uid"] == uid)
}

/// Lists the ReplicaSets the Deployment's selector matches and keeps those it controls.
pub async fn owned_replica_sets(http: &Http, d: &Value) -> Result<Vec<Value>> {
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    let selector =
        runtime::selector::LabelSelector::from_label_selector_json(&d["spec"]["selector"])
            .map_err(|e| CtlError::Local(e.to_string()))?
            .to_string();
    let list = http
        .get(
            &with_query(
                &format!("/apis/apps/v1/namespaces/{ns}/replicasets"),
                &[("labelSelector", &selector)],
            ),
            JSON,
        )
        .await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| controlled_by(rs, d))
        .cloned()
        .collect())
}

/// Revision → pod template (with the ReplicaSet's change-cause copied into the template's
/// annotations), as kubectl's history viewer collects it; unreadable revisions are skipped.
pub fn revisions(replica_sets: &[Value]) -> BTreeMap<i64, Value> {
    let mut out = BTreeMap::new();
    for rs in replica_sets {
        let Ok(v) = revision_of(rs) else { continue };
        let mut tpl = rs["spec"]["template"].clone();
        if !tpl["metadata"].is_object() {
            tpl["metadata"] = json!({});
        }
        if !tpl["metadata"]["annotations"].is_object() {
            tpl["metadata"]["annotations"] = json!({});
        }
        if let Some(cause) = rs["metadata"]["annotations"][CHANGE_CAUSE]
            .as_str()
            .filter(|c| !c.is_empty())
        {
            tpl["metadata"]["annotations"][CHANGE_CAUSE] = json!(cause);
        }
        out.insert(v, tpl);
    }
    out
}

/// The REVISION / CHANGE-CAUSE table (kubectl's tabwriter: padding 2), or kubectl's
/// "No rollout history found.".
pub fn history_table(revs: &BTreeMap<i64, Value>) -> String {
    if revs.is_empty() {
        return "No rollout history found.".into();
    }
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    for (r, tpl) in revs {
        let cause = tpl["metadata"]["annotations"][CHANGE_CAUSE]
            .as_str()
            .filter(|c| !c.is_empty())
            .unwrap_or("<none>");
        text.push_str(&format!("{r}\t{cause}\n"));
    }
    crate::tabwriter::align(&text, 0, 2)
}

/// What `rollout history` prints after the object's name: the table, or with `--revision`
/// that revision's pod template the way kubectl's describer writes it (tabs left raw).
pub fn view(revs: &BTreeMap<i64, Value>, revision: i64) -> Result<String> {
    if revision > 0 && !revs.is_empty() {
        let tpl = revs
            .get(&revision)
            .ok_or_else(|| CtlError::local("unable to find the specified revision"))?;
        let mut w = crate::describe::Writer::default();
        crate::describe::pod_template(&mut w, tpl);
        return Ok(w.into_text());
    }
    Ok(history_table(revs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(rev: Option<&str>, cause: Option<&str>, image: &str) -> Value {
        let mut ann = serde_json::Map::new();
        if let Some(r) = rev {
            ann.insert(super::super::status::REVISION.into(), json!(r));
        }
        if let Some(c) = cause {
            ann.insert(CHANGE_CAUSE.into(), json!(c));
        }
        json!({"metadata": {"annotations": ann},
               "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn tables() {
        for (sets, want) in [
            (vec![], "No rollout history found."),
            (
                vec![rs(Some("2"), None, "b"), rs(Some("1"), None, "a")],
                "REVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n",
            ),
            (
                vec![
                    rs(Some("10"), Some("kubectl set image x"), "c"),
                    rs(Some("9"), None, "b"),
                    rs(Some("x"), None, "bad"),
                    rs(None, None, "unannotated"),
                ],
                "REVISION  CHANGE-CAUSE\n0         <none>\n9         <none>\n10        kubectl set image x\n",
            ),
        ] {
            assert_eq!(history_table(&revisions(&sets)), want);
        }
    }

    #[test]
    fn one_revision() {
        let revs = revisions(&[rs(Some("1"), Some("first"), "nginx:1.25")]);
        let text = view(&revs, 1).expect("revision 1");
        assert!(
            text.starts_with("Pod Template:\n  Labels:\tapp=web\n"),
            "{text}"
        );
        assert!(
            text.contains("  Annotations:\tkubernetes.io/change-cause: first\n"),
            "{text}"
        );
        assert!(text.contains("    Image:\tnginx:1.25\n"), "{text}");
        assert_eq!(
            view(&revs, 2).expect_err("missing").to_string(),
            "error: unable to find the specified revision"
        );
    }

    #[test]
    fn ownership() {
        let d = json!({"metadata": {"uid": "u1"}});
        let owned = json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}});
        let other = json!({"metadata": {"ownerReferences": [{"uid": "u2", "controller": true}]}});
        let not_controller = json!({"metadata": {"ownerReferences": [{"uid": "u1"}]}});
        assert!(controlled_by(&owned, &d));
        assert!(!controlled_by(&other, &d));
        assert!(!controlled_by(&not_controller, &d));
    }
}
