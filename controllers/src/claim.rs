//! Which objects a controller owns: adoption of orphans and release of strays.
//!
//! A controller (a ReplicaSet for its Pods, a Deployment for its ReplicaSets) owns the objects
//! whose `controller: true` owner reference carries its uid. Labels can change under it, so
//! each sync it re-decides, like Kubernetes' `ControllerRefManager`:
//! - owned by it and still matching its selector: keep;
//! - owned by it but no longer matching: release (remove the owner reference), unless the
//!   owner is being deleted (then it leaves things as they are);
//! - an orphan (no controller) in its namespace that matches and is not being deleted:
//!   adopt (add its controller reference), unless the owner is being deleted;
//! - controlled by someone else: never touched.
//!
//! The decision ([`decide`], [`partition`]) is pure; [`execute`] carries it out with patches.
//! An adoption first re-reads the owner from the API ([`recheck_owner`]), because adopting
//! on behalf of a cached owner that has since been deleted (or recreated with a new uid)
//! would hand the orphan to a ghost.

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use runtime::informer::Object;
use runtime::objects::controller_of;
use runtime::selector::LabelSelector;
use runtime::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::debug;

use crate::error::{Error, Result};

/// The would-be owner, as the claim decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// Its uid (what controller references point at).
    pub uid: &'a str,
    /// Its namespace: it only ever claims objects in it.
    pub namespace: &'a str,
    /// Which objects it wants.
    pub selector: &'a LabelSelector,
    /// Whether it has a `deletionTimestamp`: a dying owner neither adopts nor releases.
    pub deleting: bool,
}

/// What to do with one candidate object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Already owned and still wanted.
    Owned,
    /// An orphan to adopt.
    Adopt,
    /// Owned, but no longer matching: release it.
    Release,
    /// Not ours and not to become ours.
    Ignore,
}

/// Decides what `owner` does with the object described by `child`.
pub fn decide(owner: &Owner<'_>, child: &ObjectMeta) -> Decision {
    let empty = Default::default();
    let matches = owner
        .selector
        .matches(child.labels.as_ref().unwrap_or(&empty));
    match controller_of(child) {
        Some(r) if r.uid != owner.uid => Decision::Ignore,
        // Keeping what it owns needs no write, so a dying owner may still do it.
        Some(_) if matches => Decision::Owned,
        Some(_) if owner.deleting => Decision::Ignore,
        Some(_) => Decision::Release,
        None if owner.deleting || !matches || child.deletion_timestamp.is_some() => {
            Decision::Ignore
        }
        None if child.namespace.as_deref().unwrap_or_default() != owner.namespace => {
            Decision::Ignore
        }
        None => Decision::Adopt,
    }
}

/// Candidates sorted by decision (ignored ones are dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Claims<T> {
    /// Owned and still wanted.
    pub owned: Vec<T>,
    /// Orphans to adopt.
    pub adopt: Vec<T>,
    /// Owned strays to release.
    pub release: Vec<T>,
}

impl<T> Default for Claims<T> {
    fn default() -> Self {
        Claims {
            owned: Vec::new(),
            adopt: Vec::new(),
            release: Vec::new(),
        }
    }
}

impl<T> Claims<T> {
    /// Whether carrying the claims out needs no write.
    pub fn is_settled(&self) -> bool {
        self.adopt.is_empty() && self.release.is_empty()
    }
}

/// Applies [`decide`] to every candidate.
pub fn partition<K>(
    owner: &Owner<'_>,
    candidates: impl IntoIterator<Item = Arc<K>>,
) -> Claims<Arc<K>>
where
    K: k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let mut claims = Claims::default();
    for c in candidates {
        match decide(owner, c.metadata()) {
            Decision::Owned => claims.owned.push(c),
            Decision::Adopt => claims.adopt.push(c),
            Decision::Release => claims.release.push(c),
            Decision::Ignore => {}
        }
    }
    claims
}

/// The strategic merge patch that adopts an object: adds `controller_ref` to its owner
/// references (merged by uid). The object's own uid rides along as a precondition: should
/// the name now belong to a different object, the API refuses to change its uid.
pub fn adopt_patch(controller_ref: &OwnerReference, child_uid: &str) -> Value {
    json!({"metadata": {
        "ownerReferences": [controller_ref],
        "uid": child_uid,
    }})
}

/// The strategic merge patch that releases an object: deletes the owner reference with
/// `owner_uid`, with the object's uid as precondition (see [`adopt_patch`]).
pub fn release_patch(owner_uid: &str, child_uid: &str) -> Value {
    json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
        "uid": child_uid,
    }})
}

/// Re-reads the owner from the API (not the cache) and fails unless it is still the same
/// object (`uid`) and not being deleted: Kubernetes' `RecheckDeletionTimestamp`, checked
/// once before the first adoption of a sync.
pub async fn recheck_owner<O: Object>(api: &Api<O>, name: &str, uid: &str) -> Result<()>
where
    O::Scope: 'static,
{
    let fresh = api.get(name).await?;
    let meta = fresh.metadata();
    let ns = meta.namespace.as_deref().unwrap_or_default();
    if meta.uid.as_deref() != Some(uid) {
        return Err(Error::OwnerChanged(format!(
            "original {} {ns}/{name} is gone: got uid {}, wanted {uid}",
            O::KIND,
            meta.uid.as_deref().unwrap_or_default()
        )));
    }
    if let Some(t) = &meta.deletion_timestamp {
        return Err(Error::OwnerChanged(format!(
            "{} {ns}/{name} has just been deleted at {}",
            O::KIND,
            t.0
        )));
    }
    Ok(())
}

/// Carries out `claims` in the namespace of `api`: releases, then adopts (after `can_adopt`,
/// awaited once and only if there is something to adopt). Returns the objects now owned
/// (the owned ones plus those adopted, as the API returned them) and the first error, after
/// trying everything. Objects that vanished meanwhile (404) are skipped silently.
pub async fn execute<K: Object>(
    api: &Api<K>,
    controller_ref: &OwnerReference,
    can_adopt: impl Future<Output = Result<()>>,
    claims: Claims<Arc<K>>,
) -> (Vec<Arc<K>>, Option<Error>) {
    let Claims {
        mut owned,
        adopt,
        release,
    } = claims;
    let mut first_error: Option<Error> = None;
    let params = PatchParams::default();
    for obj in release {
        let meta = obj.metadata();
        let name = meta.name.as_deref().unwrap_or_default();
        let patch = Patch::Strategic(release_patch(
            &controller_ref.uid,
            meta.uid.as_deref().unwrap_or_default(),
        ));
        debug!(child = name, "releasing");
        match api.patch(name, &params, &patch).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                first_error.get_or_insert(e.into());
            }
        }
    }
    if adopt.is_empty() {
        return (owned, first_error);
    }
    if let Err(e) = can_adopt.await {
        return (owned, Some(first_error.unwrap_or(e)));
    }
    for obj in adopt {
        let meta = obj.metadata();
        let name = meta.name.as_deref().unwrap_or_default();
        let patch = Patch::Strategic(adopt_patch(
            controller_ref,
            meta.uid.as_deref().unwrap_or_default(),
        ));
        debug!(child = name, "adopting");
        match api.patch(name, &params, &patch).await {
            Ok(adopted) => owned.push(Arc::new(adopted)),
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                first_error.get_or_insert(e.into());
            }
        }
    }
    (owned, first_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::collections::BTreeMap;

    fn reference(uid: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: controller.then_some(true),
            block_owner_deletion: controller.then_some(true),
        }
    }

    struct Child {
        app: &'static str,
        refs: Vec<OwnerReference>,
        namespace: &'static str,
        deleting: bool,
    }

    fn child(app: &'static str, refs: Vec<OwnerReference>) -> Child {
        Child {
            app,
            refs,
            namespace: "ns",
            deleting: false,
        }
    }

    fn meta(c: &Child) -> ObjectMeta {
        ObjectMeta {
            name: Some(format!("pod-{}", c.app)),
            namespace: Some(c.namespace.into()),
            labels: Some(BTreeMap::from([("app".into(), c.app.into())])),
            owner_references: Some(c.refs.clone()).filter(|r| !r.is_empty()),
            deletion_timestamp: c
                .deleting
                .then(|| Time(jiff::Timestamp::from_second(1).unwrap())),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn decisions() {
        use Decision::*;
        let selector = LabelSelector::parse("app=web").unwrap();
        let mine = || reference("me", true);
        let cases: Vec<(&str, Child, bool, Decision)> = vec![
            (
                "owned and matching",
                child("web", vec![mine()]),
                false,
                Owned,
            ),
            (
                "owned and matching, owner dying: still counts",
                child("web", vec![mine()]),
                true,
                Owned,
            ),
            (
                "owned, no longer matching",
                child("db", vec![mine()]),
                false,
                Release,
            ),
            (
                "owned, no longer matching, owner dying: left alone",
                child("db", vec![mine()]),
                true,
                Ignore,
            ),
            ("matching orphan", child("web", vec![]), false, Adopt),
            (
                "orphan with a non-controller reference to us",
                child("web", vec![reference("me", false)]),
                false,
                Adopt,
            ),
            (
                "matching orphan, owner dying",
                child("web", vec![]),
                true,
                Ignore,
            ),
            ("orphan not matching", child("db", vec![]), false, Ignore),
            (
                "matching orphan being deleted",
                Child {
                    deleting: true,
                    ..child("web", vec![])
                },
                false,
                Ignore,
            ),
            (
                "matching orphan in another namespace",
                Child {
                    namespace: "other",
                    ..child("web", vec![])
                },
                false,
                Ignore,
            ),
            (
                "controlled by another owner",
                child("web", vec![reference("other", true)]),
                false,
                Ignore,
            ),
            (
                "controlled by another owner, not matching",
                child("db", vec![reference("other", true)]),
                false,
                Ignore,
            ),
        ];
        for (what, c, deleting, want) in cases {
            let owner = Owner {
                uid: "me",
                namespace: "ns",
                selector: &selector,
                deleting,
            };
            assert_eq!(decide(&owner, &meta(&c)), want, "{what}");
        }
    }

    #[test]
    fn partition_sorts_candidates() {
        let selector = LabelSelector::parse("app=web").unwrap();
        let owner = Owner {
            uid: "me",
            namespace: "ns",
            selector: &selector,
            deleting: false,
        };
        let pod = |c: Child| {
            Arc::new(Pod {
                metadata: meta(&c),
                ..Pod::default()
            })
        };
        let claims = partition(
            &owner,
            vec![
                pod(child("web", vec![reference("me", true)])),
                pod(child("web", vec![])),
                pod(child("db", vec![reference("me", true)])),
                pod(child("web", vec![reference("x", true)])),
            ],
        );
        let names = |v: &[Arc<Pod>]| -> Vec<String> {
            v.iter()
                .map(|p| {
                    let refs = p.metadata.owner_references.as_deref().unwrap_or_default();
                    format!("{}/{}", p.metadata.name.as_deref().unwrap(), refs.len())
                })
                .collect()
        };
        assert_eq!(names(&claims.owned), ["pod-web/1"]);
        assert_eq!(names(&claims.adopt), ["pod-web/0"]);
        assert_eq!(names(&claims.release), ["pod-db/1"]);
        assert!(!claims.is_settled());
        assert!(Claims::<Arc<Pod>>::default().is_settled());
    }

    #[test]
    fn patches() {
        let r = reference("me", true);
        assert_eq!(
            adopt_patch(&r, "child-uid"),
            json!({"metadata": {"ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs-me", "uid": "me",
                "controller": true, "blockOwnerDeletion": true,
            }], "uid": "child-uid"}})
        );
        assert_eq!(
            release_patch("me", "child-uid"),
            json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "me"}], "uid": "child-uid"}})
        );
    }
}
