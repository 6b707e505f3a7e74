//! One reconcile of a Deployment, planned without side effects (Kubernetes'
//! `syncDeployment` and the `sync`, `rolloutRolling`, `rolloutRecreate` flows).
//!
//! Kubernetes' controller writes as it goes: it updates a ReplicaSet, then reads the returned
//! object on. Here the flows run against working copies of the Deployment and its sets; each
//! step mutates the copies exactly as the API write would, and at the end every changed set
//! becomes one write (a set touched twice in one pass, e.g. re-annotated then scaled, is
//! written once with its final state) followed by the Events of its scaling steps, then the
//! Deployment's status. Every write carries the `resourceVersion` it was planned from, so a
//! plan made on a stale cache fails with a conflict and is made again, as in Kubernetes.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runtime::objects::{controller_ref, is_controlled_by};

use crate::claim::Claims;

use super::hash::{POD_TEMPLATE_HASH_LABEL, equal_ignore_hash, pod_template_hash};
use super::progress::{self, PROGRESSING};
use super::recreate::{PodPhases, old_pods_running};
use super::revision::{self, DESIRED_REPLICAS};
use super::rolling::{self, max_surge};
use super::scale;
use super::sets::{self, desired, replicas};
use super::status;

/// What the caches show for one Deployment.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The Deployment; `None` once deleted.
    pub deployment: Option<Arc<Deployment>>,
    /// The ReplicaSets it owns and still selects.
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    /// Orphans to adopt and strays to release ([`crate::claim`]), when there are any.
    pub unsettled: Option<Claims<Arc<ReplicaSet>>>,
    /// Whatever ReplicaSet already holds the name the new set would get, to detect a hash
    /// collision before creating.
    pub name_holder: Option<Arc<ReplicaSet>>,
    /// Phases of the pods of each owned set, by set uid (Recreate waits for them to stop).
    pub pods: PodPhases,
    /// The time the plan is made at (whole seconds, as the API stores condition times).
    pub now: jiff::Timestamp,
}

/// One step of a reconcile, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Adopt orphaned and release no longer selected ReplicaSets. Planned alone: the rest of
    /// the sync is planned once the ownership changes are back in the cache (Kubernetes
    /// continues in the same pass; the outcome is the same one pass later, and no write is
    /// made against the resourceVersions the adoption just changed).
    Claim(Claims<Arc<ReplicaSet>>),
    /// Create the new ReplicaSet.
    Create(Box<ReplicaSet>),
    /// Replace a ReplicaSet (scale and/or annotations), conditional on its resourceVersion.
    Update(Box<ReplicaSet>),
    /// Delete an old ReplicaSet past the revision history limit.
    Delete {
        /// Its name.
        name: String,
        /// Its uid (precondition: the very set planned on).
        uid: Option<String>,
    },
    /// Replace the Deployment's status, conditional on its resourceVersion.
    UpdateStatus(Box<Deployment>),
    /// Set the Deployment's revision annotation (Skiff's status subresource keeps only
    /// status, so the annotation Kubernetes writes along with the status goes separately).
    SetRevision(String),
    /// An Event on the Deployment.
    Event {
        /// `Warning` rather than `Normal`.
        warning: bool,
        /// Reason, e.g. `ScalingReplicaSet`.
        reason: String,
        /// Message.
        message: String,
    },
    /// Look at the Deployment again after this long (the progress deadline may pass).
    RequeueAfter(Duration),
}

/// The flow stopped early (Kubernetes returns an error there and retries the key); what was
/// planned up to then is still applied.
struct Stop;

struct Sync<'a> {
    obs: &'a Observed,
    orig: &'a Deployment,
    d: Deployment,
    /// Working copies; `orig[i]` is `None` for a set this plan creates.
    rss: Vec<ReplicaSet>,
    orig_rss: Vec<Option<&'a ReplicaSet>>,
    touched: Vec<usize>,
    deleted: Vec<usize>,
    /// Events, each with the set whose write it reports (applied right after that write).
    events: Vec<(Option<usize>, Action)>,
    requeue: Option<Duration>,
}

/// Plans one reconcile of the Deployment in `obs`. Empty when everything is in sync.
pub fn plan(obs: &Observed) -> Vec<Action> {
    let Some(d) = obs.deployment.as_deref() else {
        return Vec::new();
    };
    // An empty selector would claim every ReplicaSet of the namespace: only warn about it.
    if !selects_everything(d)
        && let Some(claims) = &obs.unsettled
        && !claims.is_settled()
    {
        return vec![Action::Claim(claims.clone())];
    }
    let mut s = Sync {
        obs,
        orig: d,
        d: d.clone(),
        rss: obs.replica_sets.iter().map(|r| (**r).clone()).collect(),
        orig_rss: obs.replica_sets.iter().map(|r| Some(&**r)).collect(),
        touched: Vec::new(),
        deleted: Vec::new(),
        events: Vec::new(),
        requeue: None,
    };
    if selects_everything(d) {
        s.event(
            None,
            true,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        let generation = sets::generation(d);
        let st = s.d.status.get_or_insert_with(Default::default);
        if st.observed_generation.unwrap_or(0) < generation {
            st.observed_generation = Some(generation);
        }
    } else {
        let _ = s.run();
    }
    s.into_actions()
}

fn selects_everything(d: &Deployment) -> bool {
    d.spec.as_ref().is_none_or(|s| {
        s.selector
            .match_labels
            .as_ref()
            .is_none_or(|m| m.is_empty())
            && s.selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty())
    })
}

impl Sync<'_> {
    fn now(&self) -> jiff::Timestamp {
        self.obs.now
    }

    fn event(&mut self, about: Option<usize>, warning: bool, reason: &str, message: String) {
        self.events.push((
            about,
            Action::Event {
                warning,
                reason: reason.to_string(),
                message,
            },
        ));
    }

    fn touch(&mut self, i: usize) {
        if !self.touched.contains(&i) {
            self.touched.push(i);
        }
    }

    fn refs(&self, idx: &[usize]) -> Vec<&ReplicaSet> {
        idx.iter().map(|i| &self.rss[*i]).collect()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.rss.len()).collect()
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| sets::is_active(&self.rss[*i]))
            .collect()
    }

    fn index_of(&self, rs: &ReplicaSet) -> usize {
        self.rss
            .iter()
            .position(|r| sets::name(r) == sets::name(rs))
            .unwrap_or(0)
    }

    fn run(&mut self) -> Result<(), Stop> {
        if self.d.metadata.deletion_timestamp.is_some() {
            let (new, _) = self.get_all(false)?;
            self.sync_deployment_status(new);
            return Ok(());
        }
        let now = self.now();
        progress::check_paused_conditions(&mut self.d, now);
        if sets::is_paused(&self.d) || self.is_scaling_event()? {
            return self.sync();
        }
        if sets::is_recreate(&self.d) {
            self.rollout_recreate()
        } else {
            self.rollout_rolling()
        }
    }

    /// `getAllReplicaSetsAndSyncRevision`: the new set (brought up to date, or created when
    /// `create`) and every other set as old.
    fn get_all(&mut self, create: bool) -> Result<(Option<usize>, Vec<usize>), Stop> {
        let all = self.all();
        let found = {
            let refs = self.refs(&all);
            revision::find_new(&self.d, &refs).map(|rs| self.index_of(rs))
        };
        let old: Vec<usize> = all.iter().copied().filter(|i| Some(*i) != found).collect();
        let new_revision = revision::max_revision(self.refs(&old)) + 1;
        if let Some(i) = found {
            let mut rs = self.rss[i].clone();
            let mut changed =
                revision::set_new_rs_annotations(&self.d, &mut rs, new_revision, true);
            let min_ready = sets::min_ready_seconds(&self.d);
            let spec = rs.spec.get_or_insert_with(Default::default);
            if spec.min_ready_seconds.unwrap_or(0) != min_ready {
                spec.min_ready_seconds = Some(min_ready);
                changed = true;
            }
            if changed {
                self.rss[i] = rs;
                self.touch(i);
            }
            let rev = sets::annotation(&self.rss[i], revision::REVISION)
                .unwrap_or_default()
                .to_string();
            revision::set_deployment_revision(&mut self.d, &rev);
            let has_cond = self
                .d
                .status
                .as_ref()
                .and_then(|s| progress::get_condition(s, PROGRESSING))
                .is_some();
            if progress::progress_deadline(&self.d).is_some() && !has_cond {
                let msg = format!("Found new replica set {:?}", sets::name(&self.rss[i]));
                let cond = progress::new_condition(
                    PROGRESSING,
                    "True",
                    progress::FOUND_NEW_RS,
                    &msg,
                    self.now(),
                );
                progress::set_condition(self.d.status.get_or_insert_with(Default::default), cond);
            }
            return Ok((Some(i), old));
        }
        if !create {
            return Ok((None, old));
        }
        let mut rs = self.new_replica_set();
        if let Some(holder) = self.obs.name_holder.as_deref() {
            let ours = self
                .d
                .metadata
                .uid
                .as_deref()
                .is_some_and(|uid| is_controlled_by(&holder.metadata, uid));
            let same = holder
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .zip(self.d.spec.as_ref().map(|s| &s.template))
                .is_some_and(|(a, b)| equal_ignore_hash(a, b));
            if !(ours && same) {
                // Another template already has this name: hash again with the next count.
                let st = self.d.status.get_or_insert_with(Default::default);
                st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
            }
            return Err(Stop);
        }
        self.rss.push(rs.clone());
        self.orig_rss.push(None);
        let i = self.rss.len() - 1;
        let count = {
            let all = self.all();
            rolling::new_rs_new_replicas(&self.d, &self.refs(&all), &self.rss[i])
        };
        sets::set_replicas(&mut rs, count);
        revision::set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        self.rss[i] = rs;
        self.touch(i);
        if count > 0 {
            let msg = format!(
                "Scaled up replica set {} from 0 to {count}",
                sets::name(&self.rss[i])
            );
            self.event(Some(i), false, "ScalingReplicaSet", msg);
        }
        revision::set_deployment_revision(&mut self.d, &new_revision.to_string());
        if progress::progress_deadline(&self.d).is_some() {
            let msg = format!("Created new replica set {:?}", sets::name(&self.rss[i]));
            let cond = progress::new_condition(
                PROGRESSING,
                "True",
                progress::NEW_RS_CREATED,
                &msg,
                self.now(),
            );
            progress::set_condition(self.d.status.get_or_insert_with(Default::default), cond);
        }
        Ok((Some(i), old))
    }

    /// The ReplicaSet for the current template, named and labelled with its hash, at 0.
    fn new_replica_set(&self) -> ReplicaSet {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&spec.template, collisions);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(new_rs_name(&self.d, &hash)),
                namespace: self.d.metadata.namespace.clone(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: controller_ref(&self.d).map(|r| vec![r]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        }
    }

    /// `isScalingEvent`: an active set was sized for a different `spec.replicas`.
    fn is_scaling_event(&mut self) -> Result<bool, Stop> {
        let (_, _) = self.get_all(false)?;
        let want = desired(&self.d);
        let all = self.all();
        Ok(self.active(&all).into_iter().any(|i| {
            sets::annotation(&self.rss[i], DESIRED_REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|n| n != want)
        }))
    }

    /// `scaleReplicaSetAndRecordEvent`: resizes a set if its size differs.
    fn scale_and_record(&mut self, i: usize, n: i32) -> bool {
        if replicas(&self.rss[i]) == n {
            return false;
        }
        self.scale_rs(i, n)
    }

    /// `scaleReplicaSet`: sets the size and the replica annotations; an Event when the size
    /// changed. Returns whether it did.
    fn scale_rs(&mut self, i: usize, n: i32) -> bool {
        let want = desired(&self.d);
        let max = want + max_surge(&self.d);
        let old = replicas(&self.rss[i]);
        let resize = old != n;
        if !resize && !revision::replicas_annotations_need_update(&self.rss[i], want, max) {
            return false;
        }
        sets::set_replicas(&mut self.rss[i], n);
        revision::set_replicas_annotations(&mut self.rss[i], want, max);
        self.touch(i);
        if resize {
            let op = if old < n { "up" } else { "down" };
            let msg = format!(
                "Scaled {op} replica set {} from {old} to {n}",
                sets::name(&self.rss[i])
            );
            self.event(Some(i), false, "ScalingReplicaSet", msg);
        }
        resize
    }

    /// `sync`: scaling (paused or resized Deployments) without rollout progress.
    fn sync(&mut self) -> Result<(), Stop> {
        let (new, old) = self.get_all(false)?;
        let before: Vec<ReplicaSet> = old.iter().map(|i| self.rss[*i].clone()).collect();
        self.scale(new, &old);
        if sets::is_paused(&self.d) {
            let before: Vec<&ReplicaSet> = before.iter().collect();
            self.cleanup(&before);
        }
        self.sync_deployment_status(new);
        Ok(())
    }

    /// `scale`: the single active (or latest) set takes the new size; a saturated new set
    /// lets the old ones go; otherwise the change is spread in proportion.
    fn scale(&mut self, new: Option<usize>, old: &[usize]) {
        let want = desired(&self.d);
        let target = {
            let new_ref = new.map(|i| &self.rss[i]);
            let old_refs = self.refs(old);
            scale::find_active_or_latest(new_ref, &old_refs).map(|rs| self.index_of(rs))
        };
        if let Some(i) = target {
            if replicas(&self.rss[i]) != want {
                self.scale_and_record(i, want);
            }
            return;
        }
        if scale::is_saturated(&self.d, new.map(|i| &self.rss[i])) {
            for i in self.active(old) {
                self.scale_and_record(i, 0);
            }
            return;
        }
        if sets::is_recreate(&self.d) {
            return;
        }
        let mut all: Vec<usize> = old.to_vec();
        all.extend(new);
        let active = self.active(&all);
        let sizes = scale::proportional_sizes(&self.d, &self.refs(&active));
        for (name, size) in sizes {
            if let Some(i) = self.rss.iter().position(|r| sets::name(r) == name) {
                self.scale_rs(i, size);
            }
        }
    }

    /// `cleanupDeployment`: deletes old sets past the history limit.
    fn cleanup(&mut self, old: &[&ReplicaSet]) {
        for name in revision::history_to_delete(&self.d, old) {
            if let Some(i) = self.rss.iter().position(|r| sets::name(r) == name)
                && !self.deleted.contains(&i)
            {
                self.deleted.push(i);
            }
        }
    }

    fn cleanup_old(&mut self, old: &[usize]) {
        let before: Vec<ReplicaSet> = old.iter().map(|i| self.rss[*i].clone()).collect();
        let before: Vec<&ReplicaSet> = before.iter().collect();
        self.cleanup(&before);
    }

    fn rollout_rolling(&mut self) -> Result<(), Stop> {
        let (new, old) = self.get_all(true)?;
        let Some(new) = new else {
            return Ok(());
        };
        if self.reconcile_new(new) {
            self.sync_rollout_status(Some(new));
            return Ok(());
        }
        let active_old = self.active(&old);
        if self.reconcile_old(new, &active_old) {
            self.sync_rollout_status(Some(new));
            return Ok(());
        }
        if progress::deployment_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup_old(&old);
        }
        self.sync_rollout_status(Some(new));
        Ok(())
    }

    /// `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self, new: usize) -> bool {
        let want = desired(&self.d);
        let n = replicas(&self.rss[new]);
        if n == want {
            return false;
        }
        if n > want {
            return self.scale_and_record(new, want);
        }
        let count = {
            let all = self.all();
            rolling::new_rs_new_replicas(&self.d, &self.refs(&all), &self.rss[new])
        };
        self.scale_and_record(new, count)
    }

    /// `reconcileOldReplicaSets`: unhealthy old pods first, then as many as availability
    /// allows.
    fn reconcile_old(&mut self, new: usize, old: &[usize]) -> bool {
        if sets::total_replicas(self.refs(old)) == 0 {
            return false;
        }
        let all = {
            let mut v = old.to_vec();
            v.push(new);
            v
        };
        let budget = rolling::max_scaled_down(&self.d, &self.refs(&all), &self.rss[new]);
        if budget <= 0 {
            return false;
        }
        let mut total = 0;
        for (name, size) in rolling::cleanup_unhealthy(&self.refs(old), budget) {
            if let Some(i) = self.rss.iter().position(|r| sets::name(r) == name) {
                total += replicas(&self.rss[i]) - size;
                self.scale_and_record(i, size);
            }
        }
        for (name, size) in rolling::scale_down_old(&self.d, &self.refs(&all), &self.refs(old)) {
            if let Some(i) = self.rss.iter().position(|r| sets::name(r) == name) {
                total += replicas(&self.rss[i]) - size;
                self.scale_and_record(i, size);
            }
        }
        total > 0
    }

    fn rollout_recreate(&mut self) -> Result<(), Stop> {
        let (mut new, mut old) = self.get_all(false)?;
        let mut scaled = false;
        for i in self.active(&old) {
            scaled |= self.scale_and_record(i, 0);
        }
        if scaled {
            self.sync_rollout_status(new);
            return Ok(());
        }
        let new_uid = new.and_then(|i| self.rss[i].metadata.uid.clone());
        if old_pods_running(new_uid.as_deref(), &self.refs(&old), &self.obs.pods) {
            self.sync_rollout_status(new);
            return Ok(());
        }
        if new.is_none() {
            (new, old) = self.get_all(true)?;
        }
        if let Some(i) = new {
            let want = desired(&self.d);
            self.scale_and_record(i, want);
        }
        if progress::deployment_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup_old(&old);
        }
        self.sync_rollout_status(new);
        Ok(())
    }

    /// `syncDeploymentStatus`: counts only.
    fn sync_deployment_status(&mut self, new: Option<usize>) {
        let all = self.all();
        let st = status::calculate_status(
            &self.d,
            &self.refs(&all),
            new.map(|i| &self.rss[i]),
            self.now(),
        );
        if !status::same(self.d.status.as_ref(), Some(&st)) {
            self.d.status = Some(st);
        }
    }

    /// `syncRolloutStatus`: counts and progress; an unchanged, unfinished rollout is looked
    /// at again when its deadline would pass.
    fn sync_rollout_status(&mut self, new: Option<usize>) {
        let all = self.all();
        let st = progress::rollout_status(
            &self.d,
            &self.refs(&all),
            new.map(|i| &self.rss[i]),
            self.now(),
        );
        if status::same(self.d.status.as_ref(), Some(&st)) {
            self.requeue = progress::requeue_stuck_after(&self.d, &st, self.now());
        } else {
            self.d.status = Some(st);
        }
    }

    fn into_actions(self) -> Vec<Action> {
        let mut out = Vec::new();
        let events_about = |i: Option<usize>| {
            self.events
                .iter()
                .filter(move |(about, _)| *about == i)
                .map(|(_, e)| e.clone())
        };
        // A set's Events follow its write, so a later failing write cannot swallow them.
        for i in &self.touched {
            match self.orig_rss[*i] {
                None => out.push(Action::Create(Box::new(self.rss[*i].clone()))),
                Some(orig) if *orig != self.rss[*i] => {
                    out.push(Action::Update(Box::new(self.rss[*i].clone())))
                }
                Some(_) => continue,
            }
            out.extend(events_about(Some(*i)));
        }
        for i in &self.deleted {
            out.push(Action::Delete {
                name: sets::name(&self.rss[*i]).to_string(),
                uid: self.rss[*i].metadata.uid.clone(),
            });
        }
        if !status::same(self.orig.status.as_ref(), self.d.status.as_ref()) {
            let mut d = self.d.clone();
            d.status = d.status.as_ref().map(status::normalized);
            out.push(Action::UpdateStatus(Box::new(d)));
        }
        let rev = |d: &Deployment| {
            d.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(revision::REVISION).cloned())
        };
        if let Some(r) = rev(&self.d)
            && rev(self.orig).as_ref() != Some(&r)
        {
            out.push(Action::SetRevision(r));
        }
        out.extend(events_about(None));
        out.extend(self.requeue.map(Action::RequeueAfter));
        out
    }
}

/// `<deployment>-<hash>`.
pub fn new_rs_name(d: &Deployment, hash: &str) -> String {
    format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default())
}

/// The name the Deployment's new ReplicaSet gets with its current collision count.
pub fn expected_new_rs_name(d: &Deployment) -> Option<String> {
    let spec = d.spec.as_ref()?;
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    Some(new_rs_name(
        d,
        &pod_template_hash(&spec.template, collisions),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::revision::{MAX_REPLICAS, REVISION};
    use crate::deployment::sets::fixtures::{annotated, deployment, rs};
    use serde_json::json;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    fn observed(d: Deployment, rss: Vec<ReplicaSet>) -> Observed {
        Observed {
            deployment: Some(Arc::new(d)),
            replica_sets: rss.into_iter().map(Arc::new).collect(),
            unsettled: None,
            name_holder: None,
            pods: PodPhases::new(),
            now: at(10_000),
        }
    }

    /// Ours: controlled by the fixture Deployment, at revision `rev`, sized for `desired`.
    fn owned(mut r: ReplicaSet, rev: &str, desired: i32, max: i32) -> ReplicaSet {
        r.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": true})).unwrap()]);
        annotated(
            r,
            &[
                (REVISION, rev),
                (DESIRED_REPLICAS, &desired.to_string()),
                (MAX_REPLICAS, &max.to_string()),
            ],
        )
    }

    fn scaled(actions: &[Action]) -> Vec<(String, i32)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(r) | Action::Update(r) => {
                    Some((sets::name(r).to_string(), replicas(r)))
                }
                _ => None,
            })
            .collect()
    }

    fn events(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    fn new_status(actions: &[Action]) -> Option<k8s_openapi::api::apps::v1::DeploymentStatus> {
        actions.iter().find_map(|a| match a {
            Action::UpdateStatus(d) => d.status.clone(),
            _ => None,
        })
    }

    #[test]
    fn a_new_deployment_creates_its_first_replica_set() {
        let d = deployment(10, json!(3), json!(2));
        let actions = plan(&observed(d.clone(), vec![]));
        let Action::Create(rs) = &actions[0] else {
            panic!("{actions:?}")
        };
        let hash = pod_template_hash(&d.spec.as_ref().unwrap().template, None);
        assert_eq!(sets::name(rs), format!("web-{hash}"));
        assert_eq!(
            replicas(rs),
            10,
            "room for 13, but never more than replicas"
        );
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap()["pod-template-hash"],
            hash
        );
        let tl = spec
            .template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(
            (tl["pod-template-hash"].as_str(), tl["app"].as_str()),
            (hash.as_str(), "web")
        );
        assert_eq!(
            rs.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            hash
        );
        assert_eq!(
            rs.metadata.owner_references.as_ref().unwrap()[0].uid,
            "d-uid"
        );
        assert_eq!(sets::annotation(rs, REVISION), Some("1"));
        assert_eq!(sets::annotation(rs, DESIRED_REPLICAS), Some("10"));
        assert_eq!(sets::annotation(rs, MAX_REPLICAS), Some("13"));
        assert!(actions.contains(&Action::SetRevision("1".into())));
        assert_eq!(
            events(&actions),
            [format!("Scaled up replica set web-{hash} from 0 to 10")]
        );
        let st = new_status(&actions).unwrap();
        let p = progress::get_condition(&st, PROGRESSING).unwrap();
        assert_eq!(p.reason.as_deref(), Some(progress::NEW_RS_CREATED));
        assert_eq!(st.observed_generation, Some(1));
    }

    #[test]
    fn rolling_update_steps_follow_surge_and_unavailability() {
        let mut d = deployment(10, json!(3), json!(2));
        d.metadata.annotations = Some([(REVISION.to_string(), "1".to_string())].into());
        let mut d2 = d.clone();
        d2.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("v2".into());
        // v1 running 10/10; the template moved to v2: create v2 at 3 (surge), revision 2,
        // and in the same pass v1 drops to 8 (13 - 8 min available - 3 unavailable new = 2).
        let old = owned(rs("v1", 1, 10, 10), "1", 10, 13);
        let actions = plan(&observed(d2.clone(), vec![old.clone()]));
        let Action::Create(new) = &actions[0] else {
            panic!()
        };
        let new_name = sets::name(new).to_string();
        assert_eq!(
            scaled(&actions),
            [(new_name.clone(), 3), ("v1".to_string(), 8)]
        );
        assert_eq!(sets::annotation(new, REVISION), Some("2"));
        assert!(actions.contains(&Action::SetRevision("2".into())));
        assert_eq!(
            events(&actions),
            [
                format!("Scaled up replica set {new_name} from 0 to 3"),
                "Scaled down replica set v1 from 10 to 8".to_string()
            ]
        );

        // Next pass: v1 at 8 (all available), v2 at 3 not yet available: v2 grows to 5.
        let mut new = owned((**new).clone(), "2", 10, 13);
        new.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(5)));
        new.metadata.uid = Some("new-uid".into());
        new.status = Some(serde_json::from_value(json!({"replicas": 3})).unwrap());
        let old8 = owned(rs("v1", 1, 8, 8), "1", 10, 13);
        let actions = plan(&observed(d2.clone(), vec![old8.clone(), new.clone()]));
        assert_eq!(scaled(&actions), [(new_name.clone(), 5)]);
        let st = new_status(&actions).unwrap();
        assert_eq!(
            (
                st.replicas,
                st.updated_replicas,
                st.available_replicas,
                st.unavailable_replicas
            ),
            (Some(11), Some(3), Some(8), Some(5))
        );

        // v2 at 5 with 3 available: no room to grow; 11 available may drop to 8: v1 to 5.
        let mut new5 = new.clone();
        sets::set_replicas(&mut new5, 5);
        new5.status = Some(
            serde_json::from_value(
                json!({"replicas": 5, "availableReplicas": 3, "readyReplicas": 3}),
            )
            .unwrap(),
        );
        let actions = plan(&observed(d2.clone(), vec![old8, new5.clone()]));
        assert_eq!(scaled(&actions), [("v1".to_string(), 5)]);

        // An unhealthy old pod goes first even with availability at the floor.
        let old_sick = owned(rs("v1", 1, 5, 4), "1", 10, 13);
        let mut new5b = new5.clone();
        sets::set_replicas(&mut new5b, 8);
        new5b.status = Some(
            serde_json::from_value(
                json!({"replicas": 8, "availableReplicas": 4, "readyReplicas": 4}),
            )
            .unwrap(),
        );
        // 13 pods, min 8, new unavailable 4: budget 1; available 8 = floor, so only the sick one.
        let actions = plan(&observed(d2, vec![old_sick, new5b]));
        assert_eq!(scaled(&actions), [("v1".to_string(), 4)]);
    }

    #[test]
    fn complete_rollout_cleans_up_history_and_reports_success() {
        let mut d = deployment(2, json!(1), json!(0));
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let mut cur = owned(rs("v1", 5, 2, 2), "3", 2, 3);
        cur.metadata.uid = Some("cur".into());
        let r1 = owned(rs("a", 1, 0, 0), "1", 2, 3);
        let r2 = owned(rs("b", 2, 0, 0), "2", 2, 3);
        d.status = Some(serde_json::from_value(json!({
            "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "m",
                            "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]})).unwrap());
        d.metadata.annotations = Some([(REVISION.to_string(), "3".to_string())].into());
        let actions = plan(&observed(d, vec![r1, r2, cur]));
        assert!(
            actions.contains(&Action::Delete {
                name: "a".into(),
                uid: Some("a-uid".into())
            }),
            "{actions:?}"
        );
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Delete { name, .. } if name == "b"))
        );
        let st = new_status(&actions).unwrap();
        let p = progress::get_condition(&st, PROGRESSING).unwrap();
        assert_eq!(p.reason.as_deref(), Some(progress::NEW_RS_AVAILABLE));
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"v1\" has successfully progressed.")
        );
        let a = progress::get_condition(&st, progress::AVAILABLE).unwrap();
        assert_eq!(
            a.reason.as_deref(),
            Some(progress::MINIMUM_REPLICAS_AVAILABLE)
        );
    }

    #[test]
    fn rollback_reuses_the_old_set_and_bumps_its_revision() {
        let mut d = deployment(3, json!(1), json!(0));
        d.metadata.annotations = Some([(REVISION.to_string(), "2".to_string())].into());
        // v1 (revision 1) is the template again; v2 (revision 2) runs.
        let v1 = owned(rs("v1", 1, 0, 0), "1", 3, 4);
        let v2 = owned(rs("v2", 2, 3, 3), "2", 3, 4);
        let actions = plan(&observed(d, vec![v1, v2]));
        let Some(Action::Update(back)) = actions.first() else {
            panic!("{actions:?}")
        };
        assert_eq!(sets::name(back), "v1");
        assert_eq!(sets::annotation(back, REVISION), Some("3"));
        assert_eq!(
            sets::annotation(back, revision::REVISION_HISTORY),
            Some("1")
        );
        assert_eq!(replicas(back), 1, "one surge pod");
        assert!(actions.contains(&Action::SetRevision("3".into())));
        assert_eq!(
            scaled(&actions).len(),
            1,
            "one write for re-annotate + scale"
        );
    }

    #[test]
    fn scaling_mid_rollout_is_proportional_and_paused_does_not_roll() {
        let mut d = deployment(15, json!(3), json!(2));
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("v2".into());
        let old = owned(rs("v1", 1, 8, 8), "1", 10, 13);
        let new = owned(rs("v2", 2, 5, 0), "2", 10, 13);
        let actions = plan(&observed(d.clone(), vec![old.clone(), new.clone()]));
        assert_eq!(
            scaled(&actions),
            [("v1".to_string(), 11), ("v2".to_string(), 7)]
        );
        let Some(Action::Update(u)) = actions.first() else {
            panic!()
        };
        assert_eq!(
            (
                sets::annotation(u, DESIRED_REPLICAS),
                sets::annotation(u, MAX_REPLICAS)
            ),
            (Some("15"), Some("18"))
        );

        // Paused with a new template: no new set, the Progressing condition says paused.
        let mut paused = deployment(3, json!(1), json!(0));
        paused.spec.as_mut().unwrap().paused = Some(true);
        paused
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("v9".into());
        let v1 = owned(rs("v1", 1, 3, 3), "1", 3, 4);
        let actions = plan(&observed(paused.clone(), vec![v1.clone()]));
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Create(_))),
            "{actions:?}"
        );
        let st = new_status(&actions).unwrap();
        assert_eq!(
            progress::get_condition(&st, PROGRESSING)
                .unwrap()
                .reason
                .as_deref(),
            Some(progress::PAUSED)
        );
        // ...but scaling still applies.
        paused.spec.as_mut().unwrap().replicas = Some(5);
        let actions = plan(&observed(paused, vec![v1]));
        assert_eq!(scaled(&actions), [("v1".to_string(), 5)]);
        assert_eq!(events(&actions), ["Scaled up replica set v1 from 3 to 5"]);
    }

    #[test]
    fn recreate_scales_old_down_then_waits_for_pods_then_creates() {
        let mut d = deployment(3, json!(1), json!(0));
        d.spec.as_mut().unwrap().strategy =
            Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("v2".into());
        let v1 = owned(rs("v1", 1, 3, 3), "1", 3, 3);
        let actions = plan(&observed(d.clone(), vec![v1.clone()]));
        assert_eq!(scaled(&actions), [("v1".to_string(), 0)]);
        assert!(!actions.iter().any(|a| matches!(a, Action::Create(_))));

        // Scaled to 0 but a pod still runs: wait.
        let mut v1_down = owned(rs("v1", 1, 0, 0), "1", 3, 3);
        v1_down.status = Some(Default::default());
        let mut obs = observed(d.clone(), vec![v1_down.clone()]);
        obs.pods.insert("v1-uid".into(), vec!["Running".into()]);
        let actions = plan(&obs);
        assert!(scaled(&actions).is_empty(), "{actions:?}");
        // Gone: the new set is created at full size.
        obs.pods.insert("v1-uid".into(), vec![]);
        let actions = plan(&obs);
        let Some(Action::Create(new)) = actions.first() else {
            panic!("{actions:?}")
        };
        assert_eq!(replicas(new), 3);
        assert_eq!(sets::annotation(new, MAX_REPLICAS), Some("3"));
    }

    #[test]
    fn a_name_taken_by_another_template_bumps_the_collision_count() {
        let d = deployment(1, json!(1), json!(0));
        let name = expected_new_rs_name(&d).unwrap();
        let mut other = rs("other", 1, 1, 1);
        other.metadata.name = Some(name);
        let mut obs = observed(d, vec![]);
        obs.name_holder = Some(Arc::new(other));
        let actions = plan(&obs);
        assert!(!actions.iter().any(|a| matches!(a, Action::Create(_))));
        assert_eq!(new_status(&actions).unwrap().collision_count, Some(1));
        // With the bumped count the name differs.
        let mut d2 = deployment(1, json!(1), json!(0));
        d2.status = Some(Default::default());
        d2.status.as_mut().unwrap().collision_count = Some(1);
        assert_ne!(
            expected_new_rs_name(&d2),
            expected_new_rs_name(&deployment(1, json!(1), json!(0)))
        );
    }

    #[test]
    fn ownership_is_settled_before_anything_else() {
        let d = deployment(3, json!(1), json!(0));
        let orphan = Arc::new(rs("orphan", 1, 3, 3));
        let mut obs = observed(d, vec![]);
        obs.unsettled = Some(Claims {
            owned: vec![],
            adopt: vec![orphan.clone()],
            release: vec![],
        });
        assert_eq!(
            plan(&obs),
            [Action::Claim(Claims {
                owned: vec![],
                adopt: vec![orphan],
                release: vec![]
            })]
        );
        obs.unsettled = Some(Claims::default());
        assert!(matches!(plan(&obs)[0], Action::Create(_)));
    }

    #[test]
    fn existing_sets_follow_the_deployment_and_deleting_only_reports() {
        let mut d = deployment(2, json!(1), json!(0));
        d.spec.as_mut().unwrap().min_ready_seconds = Some(5);
        d.metadata.annotations = Some(
            [
                (REVISION.to_string(), "1".to_string()),
                ("team".to_string(), "a".to_string()),
            ]
            .into(),
        );
        let cur = owned(rs("v1", 1, 2, 2), "1", 2, 3);
        let actions = plan(&observed(d.clone(), vec![cur.clone()]));
        let Some(Action::Update(u)) = actions.first() else {
            panic!("{actions:?}")
        };
        assert_eq!(u.spec.as_ref().unwrap().min_ready_seconds, Some(5));
        assert_eq!(sets::annotation(u, "team"), Some("a"));
        assert_eq!(sets::annotation(u, REVISION), Some("1"), "no new revision");

        // Being deleted: status only, no scaling even though replicas changed.
        d.metadata.deletion_timestamp = cur.metadata.creation_timestamp.clone();
        d.spec.as_mut().unwrap().replicas = Some(7);
        let actions = plan(&observed(d, vec![cur]));
        assert!(scaled(&actions).iter().all(|(_, n)| *n == 2), "{actions:?}");
        assert!(new_status(&actions).is_some());
    }

    #[test]
    fn an_empty_selector_only_warns() {
        let mut d = deployment(1, json!(1), json!(0));
        d.spec.as_mut().unwrap().selector = Default::default();
        let mut obs = observed(d, vec![]);
        obs.unsettled = Some(Claims {
            owned: vec![],
            adopt: vec![Arc::new(rs("orphan", 1, 1, 1))],
            release: vec![],
        });
        let actions = plan(&obs);
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Claim(_))),
            "adopts nothing"
        );
        assert!(events(&actions)[0].contains("selecting all pods"));
        assert!(scaled(&actions).is_empty());
    }
}
