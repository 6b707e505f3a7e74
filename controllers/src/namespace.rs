//! The namespace controller: empties a terminating namespace, then releases it.
//!
//! Deleting a namespace only marks it `Terminating` (the API server refuses new content from
//! then on). This controller deletes every namespaced object in it — every namespaced
//! resource discovery lists, with `deletecollection` where the resource supports it — waits
//! until nothing is left (objects with finalizers or graceful pods take a while), and then
//! removes the `kubernetes` finalizer through `PUT /api/v1/namespaces/NAME/finalize`, which
//! lets the API server remove the namespace.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use runtime::informer::{DynamicObject, Event};
use runtime::queue::{Backoff, WorkQueue};
use runtime::request::RequestBuilder;
use runtime::{Api, Client, DeleteParams, ListParams, PostParams, ResourceInfo};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::context::Context;
use crate::garbage::discovery::{DiscoveredResource, Discovery};
use crate::manager::SYNC_TIMEOUT;

/// The name `--controllers` knows it by.
pub const NAME: &str = "namespace";

/// The `spec.finalizers` entry this controller owns.
pub const FINALIZER: &str = "kubernetes";

/// How soon a namespace with content still going away is looked at again.
const CONTENT_RECHECK: Duration = Duration::from_millis(500);

/// Whether the namespace is terminating and still waits for this controller.
pub fn needs_cleanup(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some() && spec_finalizers(ns).iter().any(|f| f == FINALIZER)
}

fn spec_finalizers(ns: &Namespace) -> Vec<String> {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
}

/// How the content of one resource is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// One `DELETE` on the collection.
    DeleteCollection,
    /// List, then delete one by one.
    DeleteEach,
    /// Not namespaced, or cannot be listed and deleted: nothing to do.
    Skip,
}

/// How to empty `resource` in a namespace.
pub fn sweep_for(resource: &DiscoveredResource) -> Sweep {
    if !resource.info.namespaced || !resource.supports("list") || !resource.supports("delete") {
        Sweep::Skip
    } else if resource.supports("deletecollection") {
        Sweep::DeleteCollection
    } else {
        Sweep::DeleteEach
    }
}

/// What follows a sweep: `remaining` is the count of objects left per resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Empty: remove the finalizer.
    Finalize,
    /// Still content left (named for the log); look again shortly.
    Recheck(Vec<String>),
}

/// Decides from what is left after a sweep.
pub fn next_step(remaining: &[(String, usize)]) -> Next {
    let left: Vec<String> = remaining
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r}: {n}"))
        .collect();
    if left.is_empty() {
        Next::Finalize
    } else {
        Next::Recheck(left)
    }
}

/// The controller's entry point for the manager.
pub fn main(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Arc<Context>) {
    let queue: WorkQueue<String> = WorkQueue::new(Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(60),
    });
    let namespaces = ctx.informers.informer::<Namespace>();
    {
        let queue = queue.clone();
        namespaces.add_handler(move |ev: &Event<Namespace>| {
            let ns = ev.object();
            if !matches!(ev, Event::Deleted(_)) && needs_cleanup(ns) {
                queue.add(ev.key());
            }
        });
    }
    if let Err(e) = namespaces.wait_for_sync(SYNC_TIMEOUT).await {
        warn!(error = %e, "namespace cache did not sync; continuing as it fills");
    }
    let client = ctx.client.clone();
    let requeue = queue.clone();
    queue
        .run_workers(ctx.settings.workers, move |name: String| {
            let client = client.clone();
            let requeue = requeue.clone();
            async move {
                let span = info_span!("namespace", name = %name);
                match clean_up(&client, &name).instrument(span).await? {
                    Next::Finalize => Ok(()),
                    Next::Recheck(_) => {
                        requeue.add_after(name, CONTENT_RECHECK);
                        Ok::<(), runtime::Error>(())
                    }
                }
            }
        })
        .await;
}

/// One pass over a terminating namespace: delete its content, finalize when it is empty.
async fn clean_up(client: &Client, name: &str) -> runtime::Result<Next> {
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = ns_api.get_opt(name).await? else {
        return Ok(Next::Finalize);
    };
    if !needs_cleanup(&ns) {
        return Ok(Next::Finalize);
    }
    let discovery = Discovery::fetch(client).await?;
    let mut remaining = Vec::new();
    for resource in discovery.resources() {
        let sweep = sweep_for(resource);
        if sweep == Sweep::Skip {
            continue;
        }
        let left = sweep_resource(client, &resource.info, name, sweep).await?;
        remaining.push((resource.info.plural.clone(), left));
    }
    let next = next_step(&remaining);
    match &next {
        Next::Finalize => {
            finalize(client, ns).await?;
            info!("namespace emptied; finalized");
        }
        Next::Recheck(left) => debug!(?left, "content still going away"),
    }
    Ok(next)
}

/// Deletes everything of one resource in the namespace; returns how many objects remain.
async fn sweep_resource(
    client: &Client,
    info: &ResourceInfo,
    namespace: &str,
    sweep: Sweep,
) -> runtime::Result<usize> {
    let api = Api::dynamic_objects(client.clone(), info.clone(), Some(namespace));
    let dp = DeleteParams::background();
    let lp = ListParams::default();
    let listed = api.list_all(&lp).await?;
    if listed.items.is_empty() {
        return Ok(0);
    }
    let collection_done = sweep == Sweep::DeleteCollection
        && match api.delete_collection(&dp, &lp).await {
            Ok(_) => true,
            Err(e) if e.is_not_found() => true,
            Err(e) if matches!(e.status(), Some(s) if s.code == 405) => false,
            Err(e) => return Err(e),
        };
    if !collection_done {
        for obj in &listed.items {
            delete_one(&api, obj, &dp).await?;
        }
    }
    Ok(api.list_all(&lp).await?.items.len())
}

async fn delete_one(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
    dp: &DeleteParams,
) -> runtime::Result<()> {
    let Some(name) = obj.metadata.name.as_deref() else {
        return Ok(());
    };
    match api.delete(name, dp).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes this controller's finalizer through the `finalize` subresource.
async fn finalize(client: &Client, mut ns: Namespace) -> runtime::Result<()> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let kept: Vec<String> = spec_finalizers(&ns)
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    ns.spec.get_or_insert_with(Default::default).finalizers = Some(kept);
    let req = RequestBuilder::new(ResourceInfo::of::<Namespace>(), None).replace(
        &name,
        Some("finalize"),
        &PostParams::default(),
        &ns,
    )?;
    match client.request::<serde_json::Value>(req).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ns(deleting: bool, finalizers: &[&str]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("x".into()),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            spec: Some(NamespaceSpec {
                finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            }),
            ..Namespace::default()
        }
    }

    #[test]
    fn which_namespaces_need_cleanup() {
        let cases = [
            ("active", ns(false, &["kubernetes"]), false),
            ("terminating", ns(true, &["kubernetes"]), true),
            (
                "terminating, other finalizers too",
                ns(true, &["example.com/x", "kubernetes"]),
                true,
            ),
            ("terminating, already finalized", ns(true, &[]), false),
            (
                "terminating, only someone else's finalizer",
                ns(true, &["example.com/x"]),
                false,
            ),
        ];
        for (name, n, want) in cases {
            assert_eq!(needs_cleanup(&n), want, "{name}");
        }
    }

    #[test]
    fn sweeps_per_resource() {
        let r = |namespaced, verbs: &[&str]| DiscoveredResource {
            info: ResourceInfo::new("", "v1", "things", "Thing", namespaced),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
        };
        let cases = [
            (
                r(true, &["list", "delete", "deletecollection"]),
                Sweep::DeleteCollection,
            ),
            (r(true, &["list", "delete"]), Sweep::DeleteEach),
            (r(true, &["create"]), Sweep::Skip),
            (
                r(false, &["list", "delete", "deletecollection"]),
                Sweep::Skip,
            ),
        ];
        for (res, want) in cases {
            assert_eq!(sweep_for(&res), want, "{:?}", res.verbs);
        }
    }

    #[test]
    fn finalize_only_when_empty() {
        assert_eq!(next_step(&[]), Next::Finalize);
        assert_eq!(
            next_step(&[("pods".into(), 0), ("secrets".into(), 0)]),
            Next::Finalize
        );
        assert_eq!(
            next_step(&[("pods".into(), 2), ("secrets".into(), 0)]),
            Next::Recheck(vec!["pods: 2".into()])
        );
    }
}
