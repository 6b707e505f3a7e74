//! `rollout status`: kubectl's deployment status viewer over a list-then-watch of the one
//! Deployment (field selector `metadata.name`), printing the verdict at every change until
//! the rollout is done, the progress deadline is exceeded, or `--timeout` passes.

use std::time::Duration;

use serde_json::Value;

use crate::error::{CtlError, Result};
use crate::http::{Http, JSON};
use crate::objects::{ObjRef, with_query};

/// The revision annotation the deployment controller keeps on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// The `deployment.kubernetes.io/revision` of an object (0 when absent, as kubectl reads it).
pub fn revision_of(o: &Value) -> std::result::Result<i64, String> {
    match o["metadata"]["annotations"][REVISION].as_str() {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string()),
    }
}

/// kubectl's deployment status viewer: the line to print and whether the rollout is done,
/// or the error that ends the wait (`exceeded its progress deadline`, revision mismatch).
pub fn deployment_status(d: &Value, revision: i64) -> Result<(String, bool)> {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    if revision > 0 {
        let current = revision_of(d).map_err(|e| {
            CtlError::Local(format!(
                "cannot get the revision of deployment \"{name}\": {e}"
            ))
        })?;
        if revision != current {
            return Err(CtlError::Local(format!(
                "desired revision ({revision}) is different from the running revision ({current})"
            )));
        }
    }
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let (spec, st) = (&d["spec"], &d["status"]);
    if n(&d["metadata"]["generation"]) > n(&st["observedGeneration"]) {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let timed_out = st["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if timed_out {
        return Err(CtlError::Local(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        )));
    }
    let (updated, replicas, available) = (
        n(&st["updatedReplicas"]),
        n(&st["replicas"]),
        n(&st["availableReplicas"]),
    );
    let waiting = |what: String| {
        Ok((
            format!("Waiting for deployment \"{name}\" rollout to finish: {what}"),
            false,
        ))
    };
    if let Some(want) = spec["replicas"].as_i64()
        && updated < want
    {
        return waiting(format!(
            "{updated} out of {want} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return waiting(format!(
            "{} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return waiting(format!(
            "{available} of {updated} updated replicas are available..."
        ));
    }
    Ok((
        format!("deployment \"{name}\" successfully rolled out"),
        true,
    ))
}

/// How a watch stream ended.
enum Ended {
    Done,
    Expired,
    Closed,
}

/// Watches the Deployment until done (or once, with `watch == false`).
pub async fn run(
    http: &Http,
    o: &ObjRef<'_>,
    revision: i64,
    watch: bool,
    timeout: Duration,
) -> Result<()> {
    let work = follow(http, o, revision, watch);
    if timeout.is_zero() {
        return work.await;
    }
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(CtlError::local("timed out waiting for the condition")),
    }
}

async fn follow(http: &Http, o: &ObjRef<'_>, revision: i64, watch: bool) -> Result<()> {
    let collection = crate::get::collection(o.resource, Some(&o.namespace));
    let field = format!("metadata.name={}", o.name);
    loop {
        let list = http
            .get(
                &with_query(&collection, &[("fieldSelector", &field), ("limit", "500")]),
                JSON,
            )
            .await?;
        let Some(d) = list["items"].as_array().and_then(|i| i.first()) else {
            return Err(CtlError::Server {
                reason: "NotFound".into(),
                message: format!("{} not found", o.quoted()),
            });
        };
        if report(d, revision)? || !watch {
            return Ok(());
        }
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let path = with_query(
            &collection,
            &[
                ("allowWatchBookmarks", "true"),
                ("fieldSelector", &field),
                ("resourceVersion", &rv),
                ("watch", "true"),
            ],
        );
        let mut ended = Ended::Closed;
        let mut failure = None;
        let streamed = http
            .watch(&path, JSON, |ev| {
                let obj = &ev["object"];
                let outcome = match ev["type"].as_str().unwrap_or_default() {
                    "ADDED" | "MODIFIED" => match report(obj, revision) {
                        Ok(true) => Some(Ended::Done),
                        Ok(false) => None,
                        Err(e) => {
                            failure = Some(e);
                            Some(Ended::Done)
                        }
                    },
                    "DELETED" => {
                        failure = Some(CtlError::local("object has been deleted"));
                        Some(Ended::Done)
                    }
                    "ERROR" if obj["code"] == 410 => Some(Ended::Expired),
                    "ERROR" => {
                        failure = Some(CtlError::Server {
                            reason: obj["reason"].as_str().unwrap_or_default().into(),
                            message: obj["message"].as_str().unwrap_or_default().into(),
                        });
                        Some(Ended::Done)
                    }
                    _ => None,
                };
                match outcome {
                    Some(e) => {
                        ended = e;
                        Err(CtlError::Silent)
                    }
                    None => Ok(()),
                }
            })
            .await;
        match streamed {
            Ok(()) | Err(CtlError::Silent) => {}
            // An expired resourceVersion as an HTTP status: list again, as informers do.
            Err(CtlError::Server { reason, .. }) if reason == "Expired" || reason == "Gone" => {
                ended = Ended::Expired;
            }
            Err(e) => return Err(e),
        }
        if let Some(e) = failure {
            return Err(e);
        }
        match ended {
            Ended::Done => return Ok(()),
            Ended::Expired | Ended::Closed => continue,
        }
    }
}

/// Prints the verdict for one state of the Deployment; true when the rollout is done.
fn report(d: &Value, revision: i64) -> Result<bool> {
    let (line, done) = deployment_status(d, revision)?;
    println!("{line}");
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(generation: i64, replicas: i64, status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": generation,
                            "annotations": {REVISION: "3"}},
               "spec": {"replicas": replicas}, "status": status})
    }

    #[test]
    fn status_messages() {
        let w = |s: &str| format!("Waiting for deployment \"web\" rollout to finish: {s}");
        for (d, want, done) in [
            (
                deploy(2, 10, json!({"observedGeneration": 1})),
                "Waiting for deployment spec update to be observed...".to_string(),
                false,
            ),
            (
                deploy(
                    2,
                    10,
                    json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 10}),
                ),
                w("2 out of 10 new replicas have been updated..."),
                false,
            ),
            (
                deploy(
                    2,
                    10,
                    json!({"observedGeneration": 2, "updatedReplicas": 10, "replicas": 11}),
                ),
                w("1 old replicas are pending termination..."),
                false,
            ),
            (
                deploy(
                    2,
                    10,
                    json!({"observedGeneration": 2, "updatedReplicas": 10, "replicas": 10, "availableReplicas": 3}),
                ),
                w("3 of 10 updated replicas are available..."),
                false,
            ),
            (
                deploy(
                    2,
                    10,
                    json!({"observedGeneration": 3, "updatedReplicas": 10, "replicas": 10, "availableReplicas": 10}),
                ),
                "deployment \"web\" successfully rolled out".to_string(),
                true,
            ),
            (
                deploy(1, 0, json!({"observedGeneration": 1})),
                "deployment \"web\" successfully rolled out".to_string(),
                true,
            ),
        ] {
            assert_eq!(deployment_status(&d, 0).expect("status"), (want, done));
        }
    }

    #[test]
    fn status_errors() {
        let stuck = deploy(
            1,
            3,
            json!({"observedGeneration": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(
            deployment_status(&stuck, 0)
                .expect_err("deadline")
                .to_string(),
            "error: deployment \"web\" exceeded its progress deadline"
        );
        let d = deploy(1, 0, json!({"observedGeneration": 1}));
        assert!(deployment_status(&d, 3).is_ok());
        assert_eq!(
            deployment_status(&d, 2).expect_err("revision").to_string(),
            "error: desired revision (2) is different from the running revision (3)"
        );
    }
}
