//! Whole rollouts run in memory: the planner in a loop against a toy ReplicaSet controller,
//! checking Kubernetes' rollout guarantees at every step for many surge/unavailable settings.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::recreate::PodPhases;
use super::revision::REVISION;
use super::rolling::{max_surge, max_unavailable};
use super::sets::{self, desired, replicas};
use super::sync::{Action, Observed, plan};

/// A Deployment, its sets, and a clock; pods become available one step after they exist.
struct Cluster {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    step: i64,
}

impl Cluster {
    fn new(replicas: i32, strategy: Value) -> Cluster {
        let d = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": strategy,
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "v1"}]}},
                "revisionHistoryLimit": 2,
                "progressDeadlineSeconds": 600,
            },
        }))
        .unwrap();
        Cluster {
            d,
            rss: Vec::new(),
            step: 0,
        }
    }

    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_000_000 + self.step).unwrap()
    }

    /// One Deployment sync, its writes applied.
    fn sync(&mut self) {
        let obs = Observed {
            deployment: Some(Arc::new(self.d.clone())),
            replica_sets: self.rss.iter().cloned().map(Arc::new).collect(),
            unsettled: None,
            name_holder: None,
            pods: PodPhases::new(),
            now: self.now(),
        };
        for a in plan(&obs) {
            match a {
                Action::Create(rs) => {
                    let mut rs = *rs;
                    rs.metadata.uid = Some(format!("uid-{}", self.step));
                    rs.metadata.creation_timestamp = Some(Time(self.now()));
                    self.rss.push(rs);
                }
                Action::Update(rs) => {
                    let i = self
                        .rss
                        .iter()
                        .position(|r| sets::name(r) == sets::name(&rs))
                        .unwrap();
                    let status = self.rss[i].status.clone();
                    self.rss[i] = *rs;
                    self.rss[i].status = status;
                }
                Action::Delete { name, .. } => self.rss.retain(|r| sets::name(r) != name),
                Action::UpdateStatus(d) => self.d.status = d.status.clone(),
                Action::SetRevision(r) => {
                    self.d
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(REVISION.into(), r);
                }
                Action::Event { .. } | Action::RequeueAfter(_) | Action::Claim(_) => {}
            }
        }
    }

    /// The ReplicaSet controller and kubelets: scaling down is immediate, new pods are
    /// available one step after they were created.
    fn pods_move(&mut self) {
        self.step += 1;
        for rs in &mut self.rss {
            let want = replicas(rs);
            let st = rs.status.get_or_insert_with(ReplicaSetStatus::default);
            let existed = st.replicas;
            st.available_replicas = Some(want.min(existed));
            st.ready_replicas = st.available_replicas;
            st.replicas = want;
            st.observed_generation = Some(0);
        }
    }

    fn spec_total(&self) -> i32 {
        sets::total_replicas(&self.rss)
    }

    fn available(&self) -> i32 {
        sets::total_available(&self.rss)
    }

    fn done(&self, image: &str) -> bool {
        let st = self.d.status.clone().unwrap_or_default();
        super::progress::deployment_complete(&self.d, &st)
            && self.rss.iter().all(|rs| {
                let runs = rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.spec.as_ref())
                    .map(|s| s.containers[0].image.clone().unwrap_or_default());
                replicas(rs) == 0 || runs.as_deref() == Some(image)
            })
    }

    /// Syncs until the rollout completes, checking the bounds at every step.
    fn run_until_done(&mut self, image: &str, check_floor: bool, what: &str) {
        for _ in 0..200 {
            self.sync();
            let (want, surge, unavailable) = (
                desired(&self.d),
                max_surge(&self.d),
                max_unavailable(&self.d),
            );
            assert!(
                self.spec_total() <= want + surge,
                "{what}: {} sets' replicas > {want} + {surge}",
                self.spec_total()
            );
            self.pods_move();
            if check_floor {
                assert!(
                    self.available() >= want - unavailable,
                    "{what}: {} available < {want} - {unavailable}",
                    self.available()
                );
            }
            if self.done(image) {
                return;
            }
        }
        panic!(
            "{what}: no convergence: {:?}",
            self.rss
                .iter()
                .map(|r| (sets::name(r).to_string(), replicas(r)))
                .collect::<Vec<_>>()
        );
    }

    fn set_image(&mut self, image: &str) {
        let spec = self.d.spec.as_mut().unwrap();
        spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(0) + 1);
    }
}

#[test]
fn rolling_updates_stay_within_bounds_and_converge() {
    let settings = [
        (10, json!(3), json!(2)),
        (10, json!("25%"), json!("25%")),
        (5, json!(0), json!(1)),
        (7, json!(1), json!(0)),
        (3, json!("100%"), json!(0)),
        (20, json!("30%"), json!("10%")),
        (1, json!("25%"), json!("25%")),
        (4, json!(0), json!("10%")), // both resolve to 0: unavailable becomes 1
    ];
    for (n, surge, unavailable) in settings {
        let what = format!("replicas {n} surge {surge} unavailable {unavailable}");
        let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}});
        let mut c = Cluster::new(n, strategy);
        c.run_until_done("v1", false, &what);
        for (i, image) in ["v2", "v3", "v1"].iter().enumerate() {
            c.set_image(image);
            c.run_until_done(image, true, &format!("{what}, update {i} to {image}"));
        }
        // Revisions 1..4 were made; rolling back to v1 reused its set, so 3 sets exist, and
        // the history limit (2 old sets) keeps them all.
        assert_eq!(c.rss.len(), 3, "{what}");
        assert_eq!(
            c.d.metadata.annotations.as_ref().unwrap()[REVISION],
            "4",
            "{what}"
        );
    }
}

#[test]
fn resizing_mid_rollout_converges_within_the_new_bounds() {
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}});
    let mut c = Cluster::new(10, strategy);
    c.run_until_done("v1", false, "start");
    c.set_image("v2");
    c.sync();
    c.pods_move();
    c.sync();
    c.pods_move();
    assert!(
        c.rss.iter().filter(|r| replicas(r) > 0).count() == 2,
        "mid-rollout"
    );
    c.d.spec.as_mut().unwrap().replicas = Some(25);
    c.d.metadata.generation = Some(3);
    c.run_until_done("v2", false, "resized up");
    assert_eq!(c.spec_total(), 25);
    c.set_image("v3");
    c.sync();
    c.pods_move();
    c.d.spec.as_mut().unwrap().replicas = Some(4);
    c.run_until_done("v3", false, "resized down");
    assert_eq!(c.spec_total(), 4);
}

#[test]
fn recreate_converges_without_overlap() {
    let mut c = Cluster::new(6, json!({"type": "Recreate"}));
    c.run_until_done("v1", false, "start");
    c.set_image("v2");
    for _ in 0..50 {
        c.sync();
        let running: Vec<String> = c
            .rss
            .iter()
            .filter(|r| replicas(r) > 0 || sets::actual(r) > 0)
            .map(|r| sets::name(r).to_string())
            .collect();
        assert!(
            running.len() <= 1,
            "old and new sets run together: {running:?}"
        );
        c.pods_move();
        if c.done("v2") {
            return;
        }
    }
    panic!("Recreate did not converge");
}
