//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount.
//!
//! Pods that name no ServiceAccount run as `default` (the API server defaults
//! `spec.serviceAccountName`), so each namespace needs one; it is created when a namespace
//! appears and recreated when deleted, as Kubernetes' `serviceaccount` controller does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runtime::controller::{Controller, ControllerConfig, Expect, Reconciler};
use runtime::informer::{Event, Informer};
use runtime::{Api, Client, PostParams};
use tracing::{info, warn};

use crate::context::Context;
use crate::manager::SYNC_TIMEOUT;

/// The name `--controllers` knows it by.
pub const NAME: &str = "serviceaccount";

/// The ServiceAccount every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Whether `namespace` (as cached; `None` when unknown) needs its `default` ServiceAccount
/// created: it exists, is not terminating (the API server would refuse), and has none.
pub fn needs_default(namespace: Option<&Namespace>, has_default: bool) -> bool {
    let Some(ns) = namespace else {
        return false;
    };
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    !terminating && !has_default
}

/// The one action: create `default` in the namespace.
#[derive(Debug)]
pub struct CreateDefault;

/// Reconciles one namespace (the key is its name).
pub struct ServiceAccounts {
    client: Client,
    namespaces: Arc<Informer<Namespace>>,
    accounts: Arc<Informer<ServiceAccount>>,
}

impl Reconciler for ServiceAccounts {
    type Key = String;
    type Observed = bool;
    type Action = CreateDefault;

    fn observe(&self, ns: &String) -> bool {
        let namespace = self.namespaces.store().get(ns);
        let has = self
            .accounts
            .store()
            .get_namespaced(ns, DEFAULT_SERVICE_ACCOUNT)
            .is_some();
        needs_default(namespace.as_deref(), has)
    }

    fn plan(&self, _ns: &String, needed: &bool) -> Vec<CreateDefault> {
        if *needed { vec![CreateDefault] } else { vec![] }
    }

    fn expects(&self, _: &CreateDefault) -> Expect {
        Expect::Create
    }

    async fn apply(&self, ns: &String, _: CreateDefault) -> runtime::Result<()> {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {
                info!(namespace = %ns, "created the default ServiceAccount");
                Ok(())
            }
            // Already there (a stale cache), or the namespace went away or started
            // terminating meanwhile: nothing to do.
            Err(e) if e.is_already_exists() || e.is_not_found() => Ok(()),
            Err(e) if e.status().is_some_and(|s| s.code == 403) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The controller's entry point for the manager.
pub fn main(ctx: Arc<Context>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Arc<Context>) {
    let namespaces = ctx.informers.informer::<Namespace>();
    let accounts = ctx.informers.informer::<ServiceAccount>();
    let controller = Controller::new(
        ServiceAccounts {
            client: ctx.client.clone(),
            namespaces: namespaces.clone(),
            accounts: accounts.clone(),
        },
        ControllerConfig {
            workers: ctx.settings.workers,
            // A create refused because the namespace is terminating is never observed.
            expectations_ttl: Duration::from_secs(30),
            ..ControllerConfig::default()
        },
    );
    {
        let queue = controller.queue().clone();
        namespaces.add_handler(move |ev: &Event<Namespace>| {
            if !matches!(ev, Event::Deleted(_)) {
                queue.add(ev.key());
            }
        });
    }
    {
        let queue = controller.queue().clone();
        let expectations = controller.expectations().clone();
        accounts.add_handler(move |ev: &Event<ServiceAccount>| {
            let sa = ev.object();
            if sa.metadata.name.as_deref() != Some(DEFAULT_SERVICE_ACCOUNT) {
                return;
            }
            let ns = sa.metadata.namespace.clone().unwrap_or_default();
            match ev {
                Event::Added(_) => expectations.observed(&ns, Expect::Create),
                Event::Deleted(_) => queue.add(ns),
                _ => {}
            }
        });
    }
    if let Err(e) = ctx.informers.wait_for_sync(SYNC_TIMEOUT).await {
        warn!(error = %e, "caches did not sync; continuing as they fill");
    }
    controller.run().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(deleting: bool, phase: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("x".into()),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            status: Some(NamespaceStatus {
                phase: Some(phase.into()),
                ..NamespaceStatus::default()
            }),
            ..Namespace::default()
        }
    }

    #[test]
    fn when_default_is_created() {
        let active = ns(false, "Active");
        let terminating = ns(true, "Terminating");
        let cases = [
            ("active without default", Some(&active), false, true),
            ("active with default", Some(&active), true, false),
            ("terminating", Some(&terminating), false, false),
            ("unknown namespace", None, false, false),
        ];
        for (name, n, has, want) in cases {
            assert_eq!(needs_default(n, has), want, "{name}");
        }
    }
}
