//! The Deployment controller inside a real `skiff server` (scheduler, ReplicaSet and
//! Deployment controllers), pods run by simulated nodes in the test process: rolling updates
//! stay within maxSurge/maxUnavailable at every observed change, `kubectl rollout undo`
//! reuses the old ReplicaSet, Recreate never mixes versions, scaling mid-rollout is
//! proportional, and a paused Deployment does not roll.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kubelet::simulated::{Fleet, FleetConfig};
use runtime::informer::{Informer, InformerConfig, Store};
use runtime::{Api, Client, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{TestServer, wait_for};

const WAIT: Duration = Duration::from_secs(45);
const REVISION: &str = "deployment.kubernetes.io/revision";

async fn fleet(client: &Client) -> Fleet {
    Fleet::start(
        client.clone(),
        FleetConfig {
            nodes: 2,
            name_prefix: "sim-".into(),
            cpu: "64".into(),
            pods: "110".into(),
            ..FleetConfig::default()
        },
    )
    .await
    .expect("start simulated fleet")
}

fn deployment(name: &str, replicas: i32, strategy: Value, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }))
    .expect("deployment")
}

fn image(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn is_active(p: &Pod) -> bool {
    runtime::objects::is_pod_active(p)
}

fn is_available(p: &Pod) -> bool {
    is_active(p) && runtime::objects::is_pod_ready(p)
}

fn labelled(store: &Store<Pod>, app: &str) -> Vec<Arc<Pod>> {
    store
        .list()
        .into_iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .is_some_and(|a| a == app)
        })
        .collect()
}

/// Watches pods and ReplicaSets of one app and checks a rule at every change it sees.
struct Monitor {
    pods: Informer<Pod>,
    rss: Informer<ReplicaSet>,
    _deployments: Informer<Deployment>,
    violations: Arc<Mutex<Vec<String>>>,
    /// Highest active pod count and lowest available count seen while armed.
    extremes: Arc<Mutex<(usize, usize, usize)>>,
}

type Rule = Arc<
    dyn Fn(&[Arc<Pod>], &[Arc<ReplicaSet>], Option<&Deployment>) -> Option<String> + Send + Sync,
>;

impl Monitor {
    async fn start(c: &Client, app: &str, rule: Rule) -> Monitor {
        let lp = ListParams::default().labels(&format!("app={app}"));
        let pods = Informer::new(
            Api::<Pod>::namespaced(c.clone(), "default"),
            lp.clone(),
            InformerConfig::default(),
        );
        let rss = Informer::new(
            Api::<ReplicaSet>::namespaced(c.clone(), "default"),
            lp,
            InformerConfig::default(),
        );
        let deployments = Informer::new(
            Api::<Deployment>::namespaced(c.clone(), "default"),
            ListParams::default().fields(&format!("metadata.name={app}")),
            InformerConfig::default(),
        );
        pods.wait_for_sync(WAIT).await.expect("pod informer");
        rss.wait_for_sync(WAIT).await.expect("rs informer");
        deployments
            .wait_for_sync(WAIT)
            .await
            .expect("deployment informer");
        let violations = Arc::new(Mutex::new(Vec::new()));
        let extremes = Arc::new(Mutex::new((0, usize::MAX, 0)));
        let check = {
            let (ps, rs, ds) = (
                pods.store().clone(),
                rss.store().clone(),
                deployments.store().clone(),
            );
            let (violations, extremes) = (violations.clone(), extremes.clone());
            move || {
                let p = ps.list();
                let r = rs.list();
                let active = p.iter().filter(|p| is_active(p)).count();
                let available = p.iter().filter(|p| is_available(p)).count();
                {
                    let mut e = extremes.lock().unwrap();
                    e.0 = e.0.max(active);
                    e.1 = e.1.min(available);
                    e.2 += 1;
                }
                let d = ds.list().into_iter().next();
                if let Some(v) = rule(&p, &r, d.as_deref()) {
                    violations.lock().unwrap().push(v);
                }
            }
        };
        let c1 = check.clone();
        pods.add_handler(move |_| c1());
        let c2 = check.clone();
        rss.add_handler(move |_| c2());
        deployments.add_handler(move |_| check());
        Monitor {
            pods,
            rss,
            _deployments: deployments,
            violations,
            extremes,
        }
    }

    fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

async fn get_deploy(api: &Api<Deployment>, name: &str) -> Option<Deployment> {
    api.get(name).await.ok()
}

/// What `kubectl rollout status` waits for: the controller saw the latest generation, every
/// replica is updated, no old replica is left and all are available.
fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
}

async fn wait_rolled_out(
    api: &Api<Deployment>,
    pods: &Store<Pod>,
    name: &str,
    image_want: &str,
) -> Deployment {
    wait_for(
        &format!("{name} rolled out to {image_want}"),
        WAIT,
        || async {
            let d = get_deploy(api, name).await?;
            let want = d.spec.as_ref()?.replicas? as usize;
            let active: Vec<_> = labelled(pods, name)
                .into_iter()
                .filter(|p| is_active(p))
                .collect();
            (rolled_out(&d)
                && active.len() == want
                && active
                    .iter()
                    .all(|p| image(p) == image_want && is_available(p)))
            .then_some(d)
        },
    )
    .await
}

async fn set_image(api: &Api<Deployment>, name: &str, image: &str) {
    let patch = Patch::Strategic(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
    );
    api.patch(name, &PatchParams::default(), &patch)
        .await
        .expect("patch image");
}

fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    meta.annotations.as_ref()?.get(REVISION).cloned()
}

fn rs_image(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

async fn event_messages(c: &Client, name: &str, reason: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(c.clone(), "default");
    let Ok(list) = events.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.involved_object.name.as_deref() == Some(name)
                && e.involved_object.kind.as_deref() == Some("Deployment")
        })
        .filter_map(|e| e.message)
        .collect()
}

/// A 10-replica Deployment (maxSurge 3, maxUnavailable 2) rolls v1 -> v2 and, through the
/// real `kubectl rollout undo`, back to v1 on its old ReplicaSet; at every observed change the
/// pods stay within [8 available, 13 running] and the ReplicaSets within 13 replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_stays_within_bounds_and_rolls_back() {
    let server = TestServer::start_server().await;
    let c = server.runtime_client();
    let _fleet = fleet(&c).await;
    let api: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}});
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = armed.clone();
    let monitor = Monitor::start(
        &c,
        "web",
        Arc::new(move |pods, rss, d| {
            let specs: i32 = rss
                .iter()
                .map(|r| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
                .sum();
            let active = pods.iter().filter(|p| is_active(p)).count();
            let available = pods.iter().filter(|p| is_available(p)).count();
            if specs > 13 {
                return Some(format!("ReplicaSets want {specs} pods (> 13)"));
            }
            if active > 13 {
                return Some(format!("{active} pods running (> 13)"));
            }
            let armed = a.load(std::sync::atomic::Ordering::SeqCst);
            if armed && available < 8 {
                return Some(format!("only {available} pods available (< 8)"));
            }
            let status = d.and_then(|d| d.status.as_ref());
            let reported = status.and_then(|s| s.available_replicas).unwrap_or(0);
            if armed && reported < 8 {
                return Some(format!("the Deployment reports {reported} available (< 8)"));
            }
            None
        }),
    )
    .await;
    api.create(
        &PostParams::default(),
        &deployment("web", 10, strategy, "nginx:v1"),
    )
    .await
    .expect("create deployment");
    let d = wait_rolled_out(&api, monitor.pods.store(), "web", "nginx:v1").await;
    assert_eq!(revision(&d.metadata).as_deref(), Some("1"));
    let v1: Vec<Arc<ReplicaSet>> = monitor.rss.store().list();
    assert_eq!(v1.len(), 1);
    let v1_name = v1[0].metadata.name.clone().unwrap();
    let hash = v1[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(v1_name, format!("web-{hash}"));
    assert_eq!(
        v1[0]
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()["pod-template-hash"],
        hash
    );
    let ann = v1[0].metadata.annotations.clone().unwrap();
    assert_eq!(
        (
            ann["deployment.kubernetes.io/desired-replicas"].as_str(),
            ann["deployment.kubernetes.io/max-replicas"].as_str()
        ),
        ("10", "13")
    );
    *monitor.extremes.lock().unwrap() = (0, usize::MAX, 0);
    armed.store(true, std::sync::atomic::Ordering::SeqCst);

    set_image(&api, "web", "nginx:v2").await;
    let d = wait_rolled_out(&api, monitor.pods.store(), "web", "nginx:v2").await;
    assert_eq!(revision(&d.metadata).as_deref(), Some("2"));
    let status = d.status.clone().unwrap();
    let cond = |t: &str| {
        status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        cond("Available").reason.as_deref(),
        Some("MinimumReplicasAvailable")
    );
    // `kubectl rollout status` agrees (it reads exactly these fields).
    let out = server.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(out.ok().contains("successfully rolled out"), "{out:?}");
    wait_for("Progressing=NewReplicaSetAvailable", WAIT, || async {
        let d = get_deploy(&api, "web").await?;
        let c = d
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing")?;
        (c.reason.as_deref() == Some("NewReplicaSetAvailable")).then_some(())
    })
    .await;
    let (max_active, min_available, seen) = *monitor.extremes.lock().unwrap();
    assert!(
        monitor.violations().is_empty(),
        "{:?}",
        monitor.violations()
    );
    assert!(
        seen > 20 && max_active > 10,
        "the rollout surged: max {max_active} active over {seen} changes"
    );
    assert!(min_available >= 8, "{min_available}");
    let rss = monitor.rss.store().list();
    assert_eq!(rss.len(), 2);
    let v2 = rss
        .iter()
        .find(|r| r.metadata.name.as_deref() != Some(&v1_name))
        .unwrap();
    let v2_name = v2.metadata.name.clone().unwrap();
    let scaled = wait_for("the last scale-down Event", WAIT, || async {
        let scaled = event_messages(&c, "web", "ScalingReplicaSet").await;
        scaled
            .iter()
            .any(|m| {
                m.starts_with(&format!("Scaled down replica set {v1_name} from "))
                    && m.ends_with(" to 0")
            })
            .then_some(scaled)
    })
    .await;
    assert!(
        scaled.contains(&format!("Scaled up replica set {v2_name} from 0 to 3")),
        "{scaled:?}"
    );
    assert!(
        scaled.contains(&format!("Scaled down replica set {v1_name} from 10 to 8")),
        "{scaled:?}"
    );
    assert!(
        scaled.iter().any(
            |m| m.starts_with(&format!("Scaled down replica set {v1_name} from "))
                && m.ends_with(" to 0")
        ),
        "{scaled:?}"
    );

    // Roll back with the real kubectl: it copies v1's template (minus the hash) back.
    let out = server.kubectl(&["rollout", "undo", "deployment/web"]);
    assert!(out.ok().contains("rolled back"), "{out:?}");
    let d = wait_rolled_out(&api, monitor.pods.store(), "web", "nginx:v1").await;
    assert_eq!(revision(&d.metadata).as_deref(), Some("3"));
    let rss = monitor.rss.store().list();
    let names: BTreeSet<String> = rss.iter().filter_map(|r| r.metadata.name.clone()).collect();
    assert_eq!(
        names,
        BTreeSet::from([v1_name.clone(), v2_name.clone()]),
        "the old set is reused"
    );
    let back = monitor
        .rss
        .store()
        .get(&format!("default/{v1_name}"))
        .unwrap();
    let ann = back.metadata.annotations.clone().unwrap();
    assert_eq!(
        (
            ann[REVISION].as_str(),
            ann["deployment.kubernetes.io/revision-history"].as_str()
        ),
        ("3", "1")
    );
    assert_eq!(rs_image(&back), "nginx:v1");
    // kubectl finds the new set itself (by template equality ignoring the hash).
    let describe = server.kubectl(&["describe", "deployment/web"]);
    let text = describe.ok();
    assert!(
        text.contains(&format!(
            "NewReplicaSet:   {v1_name} (10/10 replicas created)"
        )),
        "{text}"
    );
    assert!(
        text.contains("ScalingReplicaSet") && text.contains("deployment-controller"),
        "{text}"
    );
    let history = server.kubectl(&["rollout", "history", "deployment/web"]);
    let h = history.ok();
    assert!(h.contains("2 ") && h.contains("3 "), "{h}");
    assert!(
        monitor.violations().is_empty(),
        "{:?}",
        monitor.violations()
    );
}

/// Recreate scales the old pods away before any new one exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_runs_old_and_new_together() {
    let server = TestServer::start_server().await;
    let c = server.runtime_client();
    let _fleet = fleet(&c).await;
    let api: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let monitor = Monitor::start(
        &c,
        "rec",
        Arc::new(|pods, _, _| {
            let images: BTreeSet<String> = pods.iter().map(|p| image(p)).collect();
            (images.len() > 1).then(|| format!("pods of {images:?} exist together"))
        }),
    )
    .await;
    api.create(
        &PostParams::default(),
        &deployment("rec", 4, json!({"type": "Recreate"}), "nginx:v1"),
    )
    .await
    .expect("create deployment");
    wait_rolled_out(&api, monitor.pods.store(), "rec", "nginx:v1").await;
    set_image(&api, "rec", "nginx:v2").await;
    let d = wait_rolled_out(&api, monitor.pods.store(), "rec", "nginx:v2").await;
    assert_eq!(revision(&d.metadata).as_deref(), Some("2"));
    assert!(
        monitor.violations().is_empty(),
        "{:?}",
        monitor.violations()
    );
    let scaled = wait_for("the new set's scale-up Event", WAIT, || async {
        let scaled = event_messages(&c, "rec", "ScalingReplicaSet").await;
        (scaled.iter().filter(|m| m.ends_with("from 0 to 4")).count() == 2).then_some(scaled)
    })
    .await;
    assert!(
        scaled.iter().any(|m| m.ends_with("from 4 to 0")),
        "{scaled:?}"
    );
    assert!(
        scaled.iter().filter(|m| m.ends_with("from 0 to 4")).count() == 2,
        "{scaled:?}"
    );
    let rss = monitor.rss.store().list();
    let ann: BTreeMap<String, String> = rss
        .iter()
        .filter(|r| rs_image(r) == "nginx:v2")
        .map(|r| r.metadata.annotations.clone().unwrap())
        .next()
        .unwrap();
    assert_eq!(
        ann["deployment.kubernetes.io/max-replicas"], "4",
        "Recreate never surges"
    );
}

/// A rollout stuck on unschedulable new pods is resized: both sets grow in proportion.
/// A paused Deployment takes template changes without rolling, but still scales.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_mid_rollout_is_proportional_and_paused_does_not_roll() {
    let server = TestServer::start_server().await;
    let c = server.runtime_client();
    let _fleet = fleet(&c).await;
    let api: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let rss_api: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let monitor = Monitor::start(&c, "prop", Arc::new(|_, _, _| None)).await;
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}});
    api.create(
        &PostParams::default(),
        &deployment("prop", 10, strategy, "nginx:v1"),
    )
    .await
    .expect("create deployment");
    wait_rolled_out(&api, monitor.pods.store(), "prop", "nginx:v1").await;
    // v2 pods can never be scheduled: the rollout stalls at old 8 + new 5 = 13.
    let patch = Patch::Strategic(json!({"spec": {"template": {"spec": {
        "nodeSelector": {"disktype": "none"},
        "containers": [{"name": "c", "image": "nginx:v2"}]}}}}));
    api.patch("prop", &PatchParams::default(), &patch)
        .await
        .expect("patch");
    let sizes = |want: Vec<(&'static str, i32)>| {
        let rss_api = rss_api.clone();
        async move {
            wait_for(&format!("set sizes {want:?}"), WAIT, || async {
                let list = rss_api
                    .list(&ListParams::default().labels("app=prop"))
                    .await
                    .ok()?;
                let mut got: Vec<(String, i32)> = list
                    .items
                    .iter()
                    .map(|r| {
                        (
                            rs_image(r),
                            r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                        )
                    })
                    .collect();
                got.sort();
                let want: Vec<(String, i32)> =
                    want.iter().map(|(i, n)| (i.to_string(), *n)).collect();
                (got == want).then_some(())
            })
            .await
        }
    };
    sizes(vec![("nginx:v1", 8), ("nginx:v2", 5)]).await;
    // 10 -> 20 replicas: allowed 23, +10 spread 8*23/13 -> 14 and 5*23/13 -> 9.
    let out = server.kubectl(&["scale", "deployment/prop", "--replicas=20"]);
    out.ok();
    sizes(vec![("nginx:v1", 14), ("nginx:v2", 9)]).await;
    wait_for("the proportional scale-up Event", WAIT, || async {
        let scaled = event_messages(&c, "prop", "ScalingReplicaSet").await;
        scaled
            .iter()
            .any(|m| m.ends_with("from 8 to 14"))
            .then_some(())
    })
    .await;

    // Pause, change the template: nothing rolls, the condition says paused...
    server
        .kubectl(&["rollout", "pause", "deployment/prop"])
        .ok();
    let patch = Patch::Strategic(json!({"spec": {"template": {"spec": {
        "nodeSelector": null,
        "containers": [{"name": "c", "image": "nginx:v3"}]}}}}));
    api.patch("prop", &PatchParams::default(), &patch)
        .await
        .expect("patch");
    let d = wait_for("paused deployment observed", WAIT, || async {
        let d = get_deploy(&api, "prop").await?;
        let s = d.status.as_ref()?;
        let c = s
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Progressing")?;
        (s.observed_generation? >= d.metadata.generation?
            && c.reason.as_deref() == Some("DeploymentPaused"))
        .then_some(d)
    })
    .await;
    assert_eq!(
        d.status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap()
            .status,
        "Unknown"
    );
    // ...but scaling still applies (and proves the controller has acted since the pause).
    server
        .kubectl(&["scale", "deployment/prop", "--replicas=10"])
        .ok();
    sizes(vec![("nginx:v1", 8), ("nginx:v2", 5)]).await;
    let list = rss_api
        .list(&ListParams::default().labels("app=prop"))
        .await
        .unwrap();
    assert!(
        list.items.iter().all(|r| rs_image(r) != "nginx:v3"),
        "a paused Deployment created a new set"
    );

    // Resume: it rolls to v3 (v2's unschedulable pods go too).
    server
        .kubectl(&["rollout", "resume", "deployment/prop"])
        .ok();
    wait_rolled_out(&api, monitor.pods.store(), "prop", "nginx:v3").await;
}

/// A rollout that cannot progress is marked `ProgressDeadlineExceeded` (and the real
/// `kubectl rollout status` gives up on it); a fixed template then completes, and
/// `kubectl rollout restart` rolls every pod again. minReadySeconds reaches the sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_deadline_then_fix_and_restart() {
    let server = TestServer::start_server().await;
    let c = server.runtime_client();
    let _fleet = fleet(&c).await;
    let api: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let monitor = Monitor::start(&c, "slow", Arc::new(|_, _, _| None)).await;
    let mut d = deployment("slow", 2, json!({"type": "RollingUpdate"}), "nginx:v1");
    let spec = d.spec.as_mut().unwrap();
    spec.progress_deadline_seconds = Some(3);
    spec.min_ready_seconds = Some(1);
    spec.template.spec.as_mut().unwrap().node_selector = Some(BTreeMap::from([(
        "disktype".to_string(),
        "none".to_string(),
    )]));
    api.create(&PostParams::default(), &d)
        .await
        .expect("create");
    let progressing = |reason: &'static str| {
        let api = api.clone();
        async move {
            wait_for(&format!("Progressing reason {reason}"), WAIT, || async {
                let d = get_deploy(&api, "slow").await?;
                let c = d
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "Progressing")?;
                (c.reason.as_deref() == Some(reason)).then_some(c)
            })
            .await
        }
    };
    let timed_out = progressing("ProgressDeadlineExceeded").await;
    assert_eq!(timed_out.status, "False");
    assert!(
        timed_out
            .message
            .unwrap()
            .ends_with("has timed out progressing.")
    );
    let out = server.kubectl(&["rollout", "status", "deployment/slow", "--timeout=20s"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("exceeded its progress deadline"),
        "{out:?}"
    );

    let patch = Patch::Strategic(json!({"spec": {"template": {"spec": {"nodeSelector": null}}}}));
    api.patch("slow", &PatchParams::default(), &patch)
        .await
        .expect("patch");
    wait_rolled_out(&api, monitor.pods.store(), "slow", "nginx:v1").await;
    progressing("NewReplicaSetAvailable").await;
    let rss = monitor.rss.store().list();
    assert!(
        rss.iter()
            .all(|r| r.spec.as_ref().unwrap().min_ready_seconds == Some(1))
    );

    let before: BTreeSet<String> = monitor
        .pods
        .store()
        .list()
        .iter()
        .filter(|p| is_active(p))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    server
        .kubectl(&["rollout", "restart", "deployment/slow"])
        .ok();
    let d = wait_for("restarted pods", WAIT, || async {
        let d = get_deploy(&api, "slow").await?;
        let active: BTreeSet<String> = labelled(monitor.pods.store(), "slow")
            .iter()
            .filter(|p| is_available(p))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        (rolled_out(&d)
            && revision(&d.metadata).as_deref() == Some("3")
            && active.len() == 2
            && active.is_disjoint(&before))
        .then_some(d)
    })
    .await;
    assert!(
        d.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()
            .contains_key("kubectl.kubernetes.io/restartedAt")
    );
}

/// A Deployment adopts an orphaned ReplicaSet it selects and, since that set runs its
/// template, uses it as its current one instead of creating another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_an_orphaned_replica_set_running_its_template() {
    let server = TestServer::start_server().await;
    let c = server.runtime_client();
    let _fleet = fleet(&c).await;
    let api: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let rss_api: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let monitor = Monitor::start(&c, "adopt", Arc::new(|_, _, _| None)).await;
    let orphan: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "adopt-old", "namespace": "default",
                     "labels": {"app": "adopt", "pod-template-hash": "old"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "adopt", "pod-template-hash": "old"}},
            "template": {
                "metadata": {"labels": {"app": "adopt", "pod-template-hash": "old"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:v1"}]},
            },
        },
    }))
    .unwrap();
    rss_api
        .create(&PostParams::default(), &orphan)
        .await
        .expect("orphan");
    // The ReplicaSet controller shares the manager's ReplicaSet cache with the Deployment
    // controller: once it has written the orphan's status, that cache holds the orphan, so
    // the Deployment below is synced against it (otherwise it may race ahead and create one).
    wait_for(
        "the orphan to be synced",
        Duration::from_secs(60),
        || async {
            let rs = rss_api.get("adopt-old").await.ok()?;
            let st = rs.status?;
            (st.observed_generation == Some(1) && st.replicas == 1).then_some(())
        },
    )
    .await;
    let d = api
        .create(
            &PostParams::default(),
            &deployment("adopt", 3, json!({"type": "RollingUpdate"}), "nginx:v1"),
        )
        .await
        .expect("create");
    wait_rolled_out(&api, monitor.pods.store(), "adopt", "nginx:v1").await;
    let list = rss_api
        .list(&ListParams::default().labels("app=adopt"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1, "no second set was created");
    let rs = &list.items[0];
    assert_eq!(rs.metadata.name.as_deref(), Some("adopt-old"));
    let owner = runtime::objects::controller_of(&rs.metadata).expect("adopted");
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid)),
        ("Deployment", d.metadata.uid.as_ref())
    );
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(revision(&rs.metadata).as_deref(), Some("1"));
}
