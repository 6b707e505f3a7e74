//! The README walkthrough, end to end, on a real 3-node lab (root: runc, network namespaces,
//! nftables): `skiff lab up`, web v1 spread over the nodes behind a Service, a rolling update
//! to v2 with zero failed requests, rollback, a node killed and its pods rescheduled, a node
//! partitioned and healed, and `skiff lab down` leaving nothing behind.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{KubectlOutput, run_cli, skiffctl_path, wait_for};

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping {test}: the lab needs root; CI runs as root");
    }
    root
}

/// A lab in a temporary directory; `lab down` on drop (also after a failed assertion).
struct Lab {
    dir: tempfile::TempDir,
    down: bool,
}

impl Lab {
    /// A lab directory of its own; nothing runs until `up`.
    fn new() -> Self {
        Lab {
            dir: tempfile::Builder::new()
                .prefix("skiff-lab-")
                .tempdir()
                .expect("tempdir"),
            down: false,
        }
    }

    fn skiff(&self, args: &[&str]) -> KubectlOutput {
        let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("lab")
            .args(args)
            .arg("--dir")
            .arg(self.dir.path())
            .env("SKIFF_LOG", "warn")
            .output()
            .expect("run skiff lab");
        KubectlOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("server/kubeconfig.yaml")
    }

    fn skiffctl(&self, args: &[&str]) -> KubectlOutput {
        run_cli(&skiffctl_path(), &self.kubeconfig(), args, None)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(self.skiffctl(&all).ok()).expect("json")
    }

    /// `(pod name, node, ready)` of the web pods that are not being deleted.
    fn web_pods(&self) -> Vec<(String, String, bool)> {
        let pods = self.json(&["get", "pods", "-l", "app=web"]);
        pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                let ready = p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                (
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    ready,
                )
            })
            .collect()
    }

    fn node_ips(&self) -> Vec<(String, String)> {
        let nodes = self.json(&["get", "nodes"]);
        nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let ip = n["status"]["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == "InternalIP")
                    .and_then(|a| a["address"].as_str())
                    .unwrap_or_default()
                    .to_string();
                (
                    n["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    ip,
                )
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.down {
            let out = self.skiff(&["down"]);
            if out.code != 0 {
                eprintln!("lab down failed: {}{}", out.stdout, out.stderr);
            }
        }
    }
}

async fn get(url: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let r = client.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .display()
        .to_string()
}

/// What this lab left on the machine: namespaces, links, mounts, processes naming its dir.
fn leftovers(dir: &Path, netns_prefix: &str, link_prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(netns_prefix) {
            found.push(format!("netns {name}"));
        }
    }
    for entry in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(link_prefix) {
            found.push(format!("link {name}"));
        }
    }
    let dir_text = dir.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for line in mounts.lines().filter(|l| l.contains(&dir_text)) {
        found.push(format!("mount {line}"));
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&dir_text) {
            found.push(format!("process {cmdline}"));
        }
    }
    found
}

// Multi-threaded: the client task keeps calling the Service while the test thread blocks on
// skiffctl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_walkthrough() {
    if !root_or_skip("lab_walkthrough") {
        return;
    }
    let mut lab = Lab::new();
    let up = lab.skiff(&["up", "--nodes", "3"]);
    let up_out = up.ok().to_string();
    assert!(up_out.contains("export KUBECONFIG="), "{up_out}");
    let again = lab.skiff(&["up", "--nodes", "3"]);
    assert!(again.ok().contains("already running"), "{}", again.stdout);
    let status = lab.skiff(&["status"]);
    assert_eq!(status.ok().matches("Ready").count(), 3, "{}", status.stdout);
    let nodes = lab.node_ips();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    // The bridge and namespaces of this lab, from the first node's address 10.250.K.2.
    let k: u8 = nodes[0]
        .1
        .split('.')
        .nth(2)
        .and_then(|k| k.parse().ok())
        .expect("lab index");
    let (netns_prefix, link_prefix) = (format!("sklab{k}-"), format!("sklab{k}"));

    // web v1: 3 replicas over at least 2 nodes, every pod answering through the Service.
    lab.skiffctl(&["apply", "-f", &example("web.yaml")]).ok();
    lab.skiffctl(&["rollout", "status", "deploy/web", "--timeout=120s"])
        .ok();
    let pods = lab.web_pods();
    let used: std::collections::BTreeSet<&str> = pods.iter().map(|p| p.1.as_str()).collect();
    assert!(used.len() >= 2, "web pods spread over nodes: {pods:?}");
    let urls: Vec<String> = nodes
        .iter()
        .map(|(_, ip)| format!("http://{ip}:30080/"))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..150 {
        if let Some(answer) = get(&urls[i % urls.len()]).await {
            seen.insert(answer.trim().to_string());
        }
    }
    for (name, _, _) in &pods {
        assert!(
            seen.contains(&format!("web v1 {name}")),
            "{name} answered: {seen:?}"
        );
    }

    // Rolling update to v2 with a client calling the Service all along: not one failure.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), urls[0].clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match get(&url).await {
                    Some(_) => ok.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    lab.skiffctl(&["apply", "-f", &example("web-v2.yaml")]).ok();
    lab.skiffctl(&["rollout", "status", "deploy/web", "--timeout=180s"])
        .ok();
    wait_for("only v2 answering", Duration::from_secs(30), || {
        let url = urls[1].clone();
        async move {
            for _ in 0..20 {
                if !get(&url).await?.starts_with("web v2 ") {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    client.await.expect("client");
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok >= 20, "the client kept calling: {ok} answers");
    assert_eq!(
        failed, 0,
        "failed requests during the rollout ({ok} succeeded)"
    );

    // Rollback.
    lab.skiffctl(&["rollout", "undo", "deploy/web"]).ok();
    lab.skiffctl(&["rollout", "status", "deploy/web", "--timeout=180s"])
        .ok();
    wait_for("v1 answering again", Duration::from_secs(30), || {
        let url = urls[2].clone();
        async move { get(&url).await?.starts_with("web v1 ").then_some(()) }
    })
    .await;

    // Kill a node with web pods: they come back on the others within grace + toleration +
    // 10 s (the lab's 10 s + 10 s).
    let pods = lab.web_pods();
    let victim = pods[0].1.clone();
    let killed = Instant::now();
    lab.skiff(&["node", "kill", &victim]).ok();
    wait_for(
        "the killed node's pods Running elsewhere",
        Duration::from_secs(30),
        || {
            let pods = lab.web_pods();
            let victim = victim.clone();
            async move {
                (pods.len() == 3 && pods.iter().all(|p| p.1 != victim && p.2)).then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "pods rescheduled {:?} after the node was killed",
        killed.elapsed()
    );
    lab.skiff(&["node", "start", &victim]).ok();

    // Partition a node: it goes NotReady/Unknown; heal: Ready again.
    let target = nodes[2].0.clone();
    let ready_of = |lab: &Lab, name: &str| {
        let node = lab.json(&["get", "node", name]);
        node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .and_then(|c| c["status"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    lab.skiff(&["node", "partition", &target]).ok();
    assert!(lab.skiff(&["status"]).ok().contains("PARTITIONED"));
    wait_for(
        "the partitioned node not Ready",
        Duration::from_secs(40),
        || {
            let status = ready_of(&lab, &target);
            async move { (status != "True").then_some(()) }
        },
    )
    .await;
    lab.skiff(&["node", "heal", &target]).ok();
    wait_for("the healed node Ready", Duration::from_secs(40), || {
        let status = ready_of(&lab, &target);
        async move { (status == "True").then_some(()) }
    })
    .await;

    // Down: nothing left behind.
    // The pods' cgroups, in the unified hierarchy (v2) or in each v1 controller's.
    let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
    hierarchies.extend(
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path()),
    );
    let pod_cgroups: Vec<PathBuf> = lab.json(&["get", "pods", "-A"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["uid"].as_str())
        .flat_map(|uid| {
            let leaf = format!("skiff/pod{}", uid.replace('-', "_"));
            hierarchies.iter().map(move |h| h.join(&leaf))
        })
        .collect();
    assert!(
        pod_cgroups.iter().any(|c| c.exists()),
        "pod cgroups exist: {pod_cgroups:?}"
    );
    let dir = lab.dir.path().to_path_buf();
    lab.skiff(&["down"]).ok();
    lab.down = true;
    let mut left = leftovers(&dir, &netns_prefix, &link_prefix);
    left.extend(
        pod_cgroups
            .iter()
            .filter(|c| c.exists())
            .map(|c| format!("cgroup {}", c.display())),
    );
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    let tables = String::from_utf8_lossy(&tables.stdout).to_string();
    if tables.contains("table ip skiff") {
        left.push(format!("host nftables: {tables}"));
    }
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert!(!dir.join("lab.json").exists());
}

/// `--store etcd`: the lab runs a real etcd on loopback for the server, and `down` stops it.
#[tokio::test]
async fn lab_with_an_etcd_store() {
    if !root_or_skip("lab_with_an_etcd_store") {
        return;
    }
    let mut lab = Lab::new();
    lab.skiff(&["up", "--nodes", "1", "--store", "etcd"]).ok();
    let status = lab.skiff(&["status"]);
    let status = status.ok();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("etcd") && l.contains("running")),
        "{status}"
    );
    assert!(status.contains("node-1     Ready"), "{status}");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\ndata:\n  a: b\n";
    run_cli(
        &skiffctl_path(),
        &lab.kubeconfig(),
        &["apply", "-f", "-"],
        Some(cm),
    )
    .ok();
    assert_eq!(
        lab.json(&["get", "configmap", "kept"])["data"]["a"],
        "b",
        "objects live in the lab's etcd"
    );
    let dir = lab.dir.path().to_path_buf();
    lab.skiff(&["down"]).ok();
    lab.down = true;
    let left = leftovers(&dir, "\0", "\0");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
