//! The ownership graph: every object the collector watches, by uid, and for every uid the
//! objects that name it as an owner (whether or not that owner has been seen).
//!
//! The graph decides which objects need a look when something changes ([`Work`]); it never
//! decides to delete anything by itself, because an owner it has not seen may just not have
//! arrived in its caches yet. That confirmation happens against the API server.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use runtime::ResourceInfo;

use super::decide::{DependentInfo, FOREGROUND, ORPHAN};

/// A unit of the collector's work, keyed by object uid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    /// Look at this object: collect it if its owners are gone, or, if it is itself being
    /// deleted in the foreground, work on its dependents.
    AttemptToDelete(String),
    /// This owner is being deleted with the `orphan` finalizer: free its dependents.
    Orphan(String),
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Work::AttemptToDelete(uid) => write!(f, "attempt-to-delete {uid}"),
            Work::Orphan(uid) => write!(f, "orphan {uid}"),
        }
    }
}

/// What the graph keeps of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The resource it belongs to (for API calls).
    pub resource: Arc<ResourceInfo>,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
    /// Its owner references.
    pub owners: Vec<OwnerReference>,
    /// It has a deletionTimestamp.
    pub deleting: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
}

impl Node {
    /// The node of an object's metadata; `None` for objects without uid or name.
    pub fn from_meta(resource: Arc<ResourceInfo>, meta: &ObjectMeta) -> Option<Self> {
        Some(Node {
            resource,
            namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: waits for its dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }

    /// Being deleted with orphaning: its dependents must be freed first.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.has_finalizer(ORPHAN)
    }

    /// `ns/name` or `name`, for logs.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.resource.plural, self.name),
            None => format!("{}/{}", self.resource.plural, self.name),
        }
    }
}

/// The graph itself.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid → uids of objects referencing it.
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// The node with `uid`, if it has been observed.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Number of observed objects.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing has been observed.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The observed objects referencing `owner`, with what foreground deletion needs to know.
    pub fn dependents_of(&self, owner: &str) -> Vec<DependentInfo> {
        let mut out: Vec<DependentInfo> = self
            .dependents
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.nodes.get(uid))
            .map(|n| DependentInfo {
                uid: n.uid.clone(),
                blocking: n
                    .owners
                    .iter()
                    .any(|r| r.uid == owner && r.block_owner_deletion == Some(true)),
                deleting: n.deleting,
            })
            .collect();
        out.sort_by(|a, b| a.uid.cmp(&b.uid));
        out
    }

    /// Whether `uid` has dependents that block its deletion.
    pub fn has_blocking_dependents(&self, uid: &str) -> bool {
        self.dependents_of(uid).iter().any(|d| d.blocking)
    }

    /// An object was added or changed; returns the work it causes.
    pub fn upsert(&mut self, node: Node) -> Vec<Work> {
        let mut work = Vec::new();
        let old = self.nodes.get(&node.uid).cloned();
        let old_owners: HashSet<&str> = old
            .iter()
            .flat_map(|o| o.owners.iter().map(|r| r.uid.as_str()))
            .collect();
        let new_owners: HashSet<&str> = node.owners.iter().map(|r| r.uid.as_str()).collect();
        for gone in old_owners.difference(&new_owners) {
            if let Some(set) = self.dependents.get_mut(*gone) {
                set.remove(&node.uid);
                if set.is_empty() {
                    self.dependents.remove(*gone);
                }
            }
            // An owner waiting in the foreground may have lost its last blocker.
            if self.nodes.get(*gone).is_some_and(Node::deleting_dependents) {
                work.push(Work::AttemptToDelete((*gone).to_string()));
            }
        }
        for owner in &new_owners {
            self.dependents
                .entry((*owner).to_string())
                .or_default()
                .insert(node.uid.clone());
        }
        // A blockOwnerDeletion flip also matters to a waiting owner.
        if let Some(old) = &old
            && old.owners != node.owners
        {
            for r in &node.owners {
                if self
                    .nodes
                    .get(&r.uid)
                    .is_some_and(Node::deleting_dependents)
                {
                    work.push(Work::AttemptToDelete(r.uid.clone()));
                }
            }
        }
        // A dependent whose owner is unseen (maybe gone, maybe not cached yet) or waiting
        // for its dependents needs a look.
        let needs_look = node.owners.iter().any(|r| match self.nodes.get(&r.uid) {
            None => true,
            Some(owner) => owner.deleting_dependents(),
        });
        if needs_look && !node.deleting {
            work.push(Work::AttemptToDelete(node.uid.clone()));
        }
        if node.deleting_dependents() {
            work.push(Work::AttemptToDelete(node.uid.clone()));
            // Starting a foreground deletion: every dependent gets a look.
            if !old.as_ref().is_some_and(Node::deleting_dependents) {
                for d in self.dependents_of(&node.uid) {
                    work.push(Work::AttemptToDelete(d.uid));
                }
            }
        }
        if node.orphaning() {
            work.push(Work::Orphan(node.uid.clone()));
        }
        // Seeing the deletion begin of an object that was being waited on.
        if node.deleting && !old.as_ref().is_some_and(|o| o.deleting) {
            for r in &node.owners {
                if self
                    .nodes
                    .get(&r.uid)
                    .is_some_and(Node::deleting_dependents)
                {
                    work.push(Work::AttemptToDelete(r.uid.clone()));
                }
            }
        }
        self.nodes.insert(node.uid.clone(), node);
        dedup(work)
    }

    /// An object went away; returns the work it causes.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut work = Vec::new();
        for r in &node.owners {
            if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
            if self
                .nodes
                .get(&r.uid)
                .is_some_and(Node::deleting_dependents)
            {
                work.push(Work::AttemptToDelete(r.uid.clone()));
            }
        }
        // Its dependents may now be orphans of a gone owner.
        let mut deps: Vec<String> = self
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        deps.sort();
        work.extend(deps.into_iter().map(Work::AttemptToDelete));
        dedup(work)
    }
}

fn dedup(work: Vec<Work>) -> Vec<Work> {
    let mut seen = HashSet::new();
    work.into_iter()
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: &str, owners: &[(&str, bool)]) -> Node {
        Node {
            resource: Arc::new(ResourceInfo::new("", "v1", "configmaps", "ConfigMap", true)),
            namespace: Some("ns".into()),
            name: format!("n-{uid}"),
            uid: uid.into(),
            owners: owners
                .iter()
                .map(|(o, block)| OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: format!("n-{o}"),
                    uid: (*o).into(),
                    block_owner_deletion: Some(*block),
                    ..OwnerReference::default()
                })
                .collect(),
            deleting: false,
            finalizers: vec![],
        }
    }

    fn deleting(mut n: Node, finalizer: &str) -> Node {
        n.deleting = true;
        n.finalizers = vec![finalizer.to_string()];
        n
    }

    fn del(uid: &str) -> Work {
        Work::AttemptToDelete(uid.into())
    }

    #[test]
    fn changes_and_the_work_they_cause() {
        let mut g = Graph::default();
        // A dependent whose owner has not been seen needs a (live) look.
        assert_eq!(g.upsert(node("d1", &[("o", true)])), [del("d1")]);
        // The owner arrives: nothing to do; nor for a dependent of a seen owner.
        assert_eq!(g.upsert(node("o", &[])), []);
        assert_eq!(g.upsert(node("d2", &[("o", false)])), []);
        assert!(g.has_blocking_dependents("o"));
        // Foreground deletion of the owner: the owner and every dependent get a look.
        assert_eq!(
            g.upsert(deleting(node("o", &[]), FOREGROUND)),
            [del("o"), del("d1"), del("d2")]
        );
        // A dependent starting to go while its owner waits: the owner re-checks.
        assert_eq!(
            g.upsert(deleting(node("d1", &[("o", true)]), "x")),
            [del("o")]
        );
        // A dependent going away: the waiting owner re-checks.
        assert_eq!(g.remove("d1"), [del("o")]);
        assert_eq!(
            g.dependents_of("o"),
            [DependentInfo {
                uid: "d2".into(),
                blocking: false,
                deleting: false
            }]
        );
        // The owner goes: its remaining dependents get a look.
        assert_eq!(g.remove("o"), [del("d2")]);
        assert_eq!(g.remove("o"), []);
    }

    #[test]
    fn orphaning_and_reference_changes() {
        let mut g = Graph::default();
        g.upsert(node("o", &[]));
        g.upsert(node("d", &[("o", true)]));
        assert_eq!(
            g.upsert(deleting(node("o", &[]), ORPHAN)),
            [Work::Orphan("o".into())]
        );
        // The dependent is freed: no longer listed under the owner.
        assert_eq!(g.upsert(node("d", &[])), []);
        assert!(g.dependents_of("o").is_empty());

        // Dropping the blocking reference to a foreground-deleting owner unblocks it.
        g.upsert(node("p", &[]));
        g.upsert(node("e", &[("p", true)]));
        g.upsert(deleting(node("p", &[]), FOREGROUND));
        assert_eq!(g.upsert(node("e", &[("p", false)])), [del("p"), del("e")]);
        assert_eq!(g.upsert(node("e", &[])), [del("p")]);
    }
}
