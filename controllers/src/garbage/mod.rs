//! The garbage collector (Kubernetes' `garbagecollector` controller).
//!
//! It watches every resource that discovery lists as listable, watchable and deletable
//! (dynamic informers, objects as [`runtime::informer::DynamicObject`]) and keeps an
//! ownership [`graph`]. From it:
//! - an object all of whose owners are gone (checked by uid, confirmed with a live read of
//!   each owner) is deleted in the background;
//! - an owner carrying `foregroundDeletion` gets its dependents deleted, and loses the
//!   finalizer once no dependent with `blockOwnerDeletion` remains;
//! - an owner carrying `orphan` is removed from its dependents' ownerReferences, then loses
//!   the finalizer.
//!
//! The decisions are pure ([`decide`]); [`collector`] carries them out. Discovery is
//! refreshed periodically so resources served later are watched too.

pub mod collector;
pub mod decide;
pub mod discovery;
pub mod graph;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use runtime::ResourceInfo;
use runtime::informer::{DynamicObject, Event};
use runtime::queue::{Backoff, WorkQueue};
use tracing::{info, warn};

use crate::context::Context;
use crate::manager::SYNC_TIMEOUT;
use collector::{Change, Collector};
use discovery::Discovery;
use graph::Node;

/// The name `--controllers` knows it by.
pub const NAME: &str = "garbagecollector";

/// How often discovery is refreshed to pick up new resources.
const REDISCOVERY: Duration = Duration::from_secs(30);
/// How soon a failed start (discovery or cache sync) is retried.
const STARTUP_RETRY: Duration = Duration::from_secs(1);

/// The controller's entry point for the manager.
pub fn main(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Arc<Context>) {
    let queue = WorkQueue::new(Backoff {
        base: Duration::from_millis(5),
        max: Duration::from_secs(60),
    });
    let gc = Arc::new(Collector::new(ctx.client.clone(), queue.clone()));
    let mut watched: HashSet<ResourceInfo> = HashSet::new();
    let mut workers = None;
    loop {
        match Discovery::fetch(&ctx.client).await {
            Ok(d) => {
                watch_new_resources(&ctx, &gc, &d, &mut watched);
                *gc.discovery.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(d);
            }
            Err(e) => warn!(error = %e, "discovery failed; retrying"),
        }
        if workers.is_none() && !watched.is_empty() {
            // Decide nothing before every cache is loaded: a half-filled graph would make
            // owners look absent (they are still checked live, but that is wasted work).
            match ctx.informers.wait_for_sync(SYNC_TIMEOUT).await {
                Ok(()) => {
                    info!(
                        resources = watched.len(),
                        "caches synced; collecting garbage"
                    );
                    let gc = gc.clone();
                    let n = ctx.settings.workers;
                    workers = Some(AbortOnDrop(tokio::spawn(async move {
                        let q = gc.queue.clone();
                        q.run_workers(n, move |w| {
                            let gc = gc.clone();
                            async move { gc.process(w).await }
                        })
                        .await;
                    })));
                }
                Err(e) => warn!(error = %e, "caches did not sync; retrying"),
            }
        }
        // Until the collector runs, retry soon; afterwards only pick up new resources.
        let pause = if workers.is_some() {
            REDISCOVERY
        } else {
            STARTUP_RETRY
        };
        tokio::time::sleep(pause).await;
    }
}

/// Aborts the workers when the controller's future is dropped (end of a leadership term).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts an informer, feeding the graph, for every collectable resource not yet watched.
fn watch_new_resources(
    ctx: &Context,
    gc: &Arc<Collector>,
    discovery: &Discovery,
    watched: &mut HashSet<ResourceInfo>,
) {
    for r in discovery.resources() {
        if !r.is_collectable() || watched.contains(&r.info) {
            continue;
        }
        watched.insert(r.info.clone());
        let info = Arc::new(r.info.clone());
        let informer = ctx.informers.dynamic_informer(&r.info);
        let gc = gc.clone();
        informer.add_handler(move |ev: &Event<DynamicObject>| {
            let change = match ev {
                Event::Added(o) | Event::Updated { new: o, .. } | Event::Resync(o) => {
                    Node::from_meta(info.clone(), &o.metadata).map(Change::Upsert)
                }
                Event::Deleted(o) => o.metadata.uid.clone().map(Change::Remove),
            };
            if let Some(c) = change {
                gc.observe(c);
            }
        });
    }
}
