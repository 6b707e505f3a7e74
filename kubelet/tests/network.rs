//! The CNI pod network with the real `bridge`, `host-local` and `loopback` plugins, as root.
//!
//! Every test builds a throwaway "node" network namespace and points the network at it
//! (`NetworkConfig::node_netns`), so the bridge, veths and routes never touch the host's own
//! namespace. A guard deletes the sandbox namespaces, the node namespace and the state
//! directory even when an assertion fails.
//!
//! The executor's side of the protocol (environment, stdin chaining, error objects, timeouts)
//! is checked with small shell-script plugins that record what they were given: real plugins
//! cannot be made to hang or to echo their input. Those tests need neither root nor plugins.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kubelet::cri::PodNetwork;
use kubelet::network::cni::{Attachment, Executor};
use kubelet::network::{CniNetwork, NetworkConfig, netns};
use serde_json::json;

const PLUGIN: &str = "/usr/lib/cni/bridge";

/// A node of its own: namespace, state and namespace directories; cleaned up on drop.
struct Node {
    dir: tempfile::TempDir,
    node_netns: PathBuf,
}

impl Node {
    /// `None` (with a message) when the test cannot run here.
    fn new(test: &str) -> Option<Node> {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping {test}: needs root");
            return None;
        }
        if !Path::new(PLUGIN).is_file() {
            eprintln!("skipping {test}: {PLUGIN} missing (containernetworking-plugins)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("nodes")).unwrap();
        let node_netns = netns::create(&dir.path().join("nodes"), "node").expect("node netns");
        Some(Node { dir, node_netns })
    }

    fn config(&self, pod_cidr: &str) -> NetworkConfig {
        let mut config =
            NetworkConfig::new(pod_cidr.parse().unwrap(), self.dir.path().join("agent"));
        config.netns_dir = self.dir.path().join("netns");
        config.node_netns = Some(self.node_netns.clone());
        config
    }

    fn netns_dir(&self) -> PathBuf {
        self.dir.path().join("netns")
    }

    /// Runs `argv` in the namespace at `netns`; returns (success, stdout + stderr).
    fn run_in(netns: &Path, argv: &[&str]) -> (bool, String) {
        let output = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(argv)
            .output()
            .expect("nsenter");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.netns_dir()) {
            for entry in entries.flatten() {
                let _ = netns::delete(&entry.path());
            }
        }
        let _ = netns::release_dir(&self.netns_dir());
        // The bridge and host-side veths die with the node namespace.
        let _ = netns::delete(&self.node_netns);
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns the last observation.
fn wait_for(timeout: Duration, mut condition: impl FnMut() -> (bool, String)) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let (ok, seen) = condition();
        if ok || Instant::now() >= deadline {
            return (ok, seen);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ping(from: &Path, to: IpAddr) {
    let (ok, output) = wait_for(Duration::from_secs(20), || {
        Node::run_in(from, &["busybox", "ping", "-c1", "-W2", &to.to_string()])
    });
    assert!(ok, "ping {to} from {}: {output}", from.display());
}

#[test]
fn pods_get_distinct_ips_reach_each_other_and_keep_them_across_restarts() {
    let Some(node) = Node::new("pods_get_distinct_ips") else {
        return;
    };
    let config = node.config("10.244.7.0/24");
    let network = CniNetwork::new(config.clone()).expect("network");

    let (ns_a, ip_a) = network.setup("sandbox-a").expect("setup a");
    let (ns_b, ip_b) = network.setup("sandbox-b").expect("setup b");
    assert_eq!(
        network.attached_sandboxes().unwrap(),
        ["sandbox-a", "sandbox-b"]
    );
    assert_ne!(ip_a, ip_b);
    for (ns, ip) in [(&ns_a, ip_a), (&ns_b, ip_b)] {
        let IpAddr::V4(v4) = ip else {
            panic!("{ip} is not IPv4")
        };
        assert!(config.pod_cidr.contains(v4), "{ip} outside the node CIDR");
        assert_ne!(v4.octets()[3], 1, "the gateway address went to a pod");
        assert!(netns::is_netns(ns), "{} is not a namespace", ns.display());
        assert!(ns.starts_with(node.netns_dir()));
    }

    ping(&ns_a, ip_b);
    ping(&ns_b, ip_a);
    // The loopback plugin brought lo up in the pod.
    ping(&ns_a, "127.0.0.1".parse().unwrap());

    // Idempotent, also for a new instance (an agent restart) and under CHECK.
    assert_eq!(network.setup("sandbox-a").unwrap(), (ns_a.clone(), ip_a));
    let restarted = CniNetwork::new(config.clone()).expect("network after restart");
    assert_eq!(restarted.setup("sandbox-a").unwrap(), (ns_a.clone(), ip_a));
    restarted.check("sandbox-a").expect("CHECK");

    // Node side: the gateway on the bridge, unreachable routes for the pod and service ranges.
    let (ok, addrs) = Node::run_in(&node.node_netns, &["ip", "-4", "addr", "show", "skiff0"]);
    assert!(ok && addrs.contains("10.244.7.1/24"), "{addrs}");
    let (ok, routes) = Node::run_in(
        &node.node_netns,
        &["ip", "route", "show", "type", "unreachable"],
    );
    assert!(ok, "{routes}");
    for cidr in ["10.244.0.0/16", "10.96.0.0/16"] {
        assert!(routes.contains(&format!("unreachable {cidr}")), "{routes}");
    }
    // With a default route out of the node (the lab's uplink, here a veth), unassigned pod and
    // Service addresses are still dropped on the node, while other traffic would leave.
    for argv in [
        &[
            "ip",
            "link",
            "add",
            "uplink",
            "type",
            "veth",
            "peer",
            "name",
            "uplink-peer",
        ][..],
        &["ip", "link", "set", "uplink", "up"],
        &["ip", "link", "set", "uplink-peer", "up"],
        &["ip", "addr", "add", "192.0.2.100/24", "dev", "uplink"],
        &["ip", "route", "add", "default", "via", "192.0.2.1"],
    ] {
        let (ok, output) = Node::run_in(&node.node_netns, argv);
        assert!(ok, "{argv:?}: {output}");
    }
    let route_get = |ip: &str| Node::run_in(&node.node_netns, &["ip", "route", "get", ip]);
    for dropped in ["10.244.9.9", "10.96.0.1"] {
        let (ok, route) = route_get(dropped);
        assert!(
            !ok && !route.contains("uplink"),
            "{dropped} is routed: {route}"
        );
    }
    let (ok, route) = route_get("10.244.7.200");
    assert!(ok && route.contains("dev skiff0"), "{route}");
    let (ok, route) = route_get("10.1.1.1");
    assert!(ok && route.contains("dev uplink"), "{route}");
    // ... and none of it in the host's namespace (this test's node shares no bridge with it).
    let host_routes = Command::new("ip")
        .args(["route", "show", "10.244.7.0/24"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&host_routes.stdout).contains("skiff0"),
        "the node's bridge route leaked into the host namespace"
    );

    // Teardown: namespace gone, idempotent, unknown sandboxes are fine.
    network.teardown("sandbox-a").expect("teardown a");
    assert!(!ns_a.exists(), "{} still exists", ns_a.display());
    network.teardown("sandbox-a").expect("second teardown");
    network.teardown("never-existed").expect("unknown teardown");
    assert!(network.check("sandbox-a").is_err());
    let (ok, _) = Node::run_in(&ns_b, &["busybox", "ping", "-c1", "-W1", &ip_a.to_string()]);
    assert!(!ok, "{ip_a} still answers after teardown");
    network.teardown("sandbox-b").expect("teardown b");
    assert!(network.attached_sandboxes().unwrap().is_empty());
}

#[test]
fn teardown_releases_the_ip_and_exhaustion_is_a_clear_error() {
    let Some(node) = Node::new("teardown_releases_the_ip") else {
        return;
    };
    // A /30 has a single pod address next to the gateway.
    let network = CniNetwork::new(node.config("10.244.8.0/30")).expect("network");
    let (_, first) = network.setup("first").expect("setup first");
    assert_eq!(first, "10.244.8.2".parse::<IpAddr>().unwrap());

    let err = network.setup("second").expect_err("the range is exhausted");
    let message = err.to_string();
    assert!(
        matches!(err, kubelet::Error::Cni { ref command, .. } if command == "ADD"),
        "{err:?}"
    );
    assert!(message.contains("no IP addresses available"), "{message}");
    assert!(
        !node.netns_dir().join("second").exists(),
        "a failed setup left its namespace behind"
    );

    network.teardown("first").expect("teardown first");
    let (ns, second) = network
        .setup("second")
        .expect("the released IP is free again");
    assert_eq!(second, first);

    // The namespace vanishes behind the network's back (a reboot empties /run) while the
    // lease and the cached result survive: setup releases the stale lease and attaches afresh.
    netns::delete(&ns).unwrap();
    let (ns, again) = network
        .setup("second")
        .expect("setup after the namespace was lost");
    assert_eq!(again, first, "the stale lease was not released");
    assert!(netns::is_netns(&ns));

    // The agent died after ADD, before caching the result: the next setup starts over cleanly
    // (the lease is released, or the /30 would be exhausted).
    let cache = network.config().results_dir().join("second.json");
    std::fs::remove_file(&cache).unwrap();
    let (ns, again) = network
        .setup("second")
        .expect("setup after a lost result cache");
    assert_eq!(again, first);
    assert!(netns::is_netns(&ns) && cache.exists());
    network.teardown("second").expect("teardown second");
}

#[test]
fn a_bad_pod_cidr_fails_with_the_plugins_message() {
    let Some(node) = Node::new("a_bad_pod_cidr") else {
        return;
    };
    // host-local cannot allocate from a /31; the error object comes back through bridge.
    let network = CniNetwork::new(node.config("10.244.9.0/31")).expect("network");
    let err = network.setup("pod").expect_err("a /31 is too small");
    let kubelet::Error::Cni {
        plugin, code, msg, ..
    } = &err
    else {
        panic!("not a CNI error: {err:?}")
    };
    assert_eq!(plugin, "bridge");
    assert_ne!(*code, 0, "{err}");
    assert!(msg.contains("10.244.9.0/31"), "{err}");
    assert!(!node.netns_dir().join("pod").exists());
}

#[test]
fn concurrent_setups_get_distinct_ips() {
    let Some(node) = Node::new("concurrent_setups") else {
        return;
    };
    let network = CniNetwork::new(node.config("10.244.10.0/24")).expect("network");
    let ips: Vec<IpAddr> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let network = &network;
                scope.spawn(move || network.setup(&format!("pod-{i}")).expect("setup").1)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{ips:?}");
    for i in 0..4 {
        network.teardown(&format!("pod-{i}")).expect("teardown");
    }
    let leases = std::fs::read_dir(network.config().ipam_dir().join("skiff"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("10.244."))
        .count();
    assert_eq!(leases, 0, "leases left after teardown");
}

/// A plugin directory with shell-script plugins.
struct ScriptPlugins {
    dir: tempfile::TempDir,
}

impl ScriptPlugins {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Adds plugin `name` running `body`; `$LOG` is a file to record into.
    fn add(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        let log = self.dir.path().join(format!("{name}.log"));
        let order = self.dir.path().join("order.log");
        let script = format!(
            "#!/bin/sh\nLOG={}\nORDER={}\n{body}\n",
            log.display(),
            order.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn executor(&self, timeout: Duration) -> Executor {
        Executor::new(vec![self.dir.path().to_path_buf()], None, timeout)
    }
}

/// Records env and stdin (one line each per call) and the call order, then answers with
/// `result`.
fn recording_plugin(name: &str, result: &str) -> String {
    format!(
        "echo \"{name} $CNI_COMMAND\" >> $ORDER\n\
         echo \"$CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME $CNI_PATH\" >> $LOG\n\
         cat >> $LOG\necho >> $LOG\necho '{result}'"
    )
}

fn attachment() -> Attachment {
    Attachment {
        container_id: "sb1".into(),
        netns: Some("/run/skiff/netns/sb1".into()),
        ifname: "eth0".into(),
    }
}

#[test]
fn executor_chains_results_and_reverses_del() {
    let plugins = ScriptPlugins::new();
    let first = r#"{"cniVersion":"1.0.0","ips":[{"address":"10.244.1.9/24"}]}"#;
    let second = r#"{"cniVersion":"1.0.0","ips":[{"address":"10.244.1.9/24"}],"dns":{}}"#;
    plugins.add("one", &recording_plugin("one", first));
    plugins.add("two", &recording_plugin("two", second));
    let executor = plugins.executor(Duration::from_secs(30));
    let list = json!({"cniVersion": "1.0.0", "name": "net", "plugins": [
        {"type": "one", "a": 1}, {"type": "two", "b": 2}
    ]});

    let result = executor.add(&list, &attachment()).expect("ADD");
    assert_eq!(
        result,
        serde_json::from_str::<serde_json::Value>(second).unwrap()
    );
    let dir = plugins.dir.path().display();
    let one = plugins.log("one");
    let two = plugins.log("two");
    assert!(
        one.starts_with(&format!("ADD sb1 /run/skiff/netns/sb1 eth0 {dir}\n")),
        "{one}"
    );
    let stdin_one: serde_json::Value = serde_json::from_str(one.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        stdin_one,
        json!({"type": "one", "a": 1, "cniVersion": "1.0.0", "name": "net"})
    );
    let stdin_two: serde_json::Value = serde_json::from_str(two.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        stdin_two["prevResult"],
        serde_json::from_str::<serde_json::Value>(first).unwrap()
    );

    // DEL: reverse order, both given the cached result, no netns when it is gone.
    let gone = Attachment {
        netns: None,
        ..attachment()
    };
    executor.del(&list, &gone, Some(&result)).expect("DEL");
    let one = plugins.log("one");
    let del_one = one.lines().nth(2).unwrap_or_default();
    assert!(del_one.starts_with("DEL sb1  eth0"), "{one}");
    let stdin: serde_json::Value = serde_json::from_str(one.lines().nth(3).unwrap()).unwrap();
    assert_eq!(stdin["prevResult"], result);
    assert_eq!(
        plugins.log("order"),
        "one ADD\ntwo ADD\ntwo DEL\none DEL\n",
        "ADD in order, DEL in reverse"
    );
}

#[test]
fn executor_reports_plugin_errors() {
    let plugins = ScriptPlugins::new();
    plugins.add(
        "object",
        r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no subnet"}'; exit 1"#,
    );
    plugins.add("stderr", "echo 'panic: boom' >&2; exit 2");
    plugins.add("garbage", "cat >/dev/null; echo 'not json'");
    let executor = plugins.executor(Duration::from_secs(30));
    let list =
        |kind: &str| json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": kind}]});
    let cases = [
        (
            "object",
            "CNI plugin object ADD failed (code 7): bad config: no subnet",
        ),
        (
            "stderr",
            "CNI plugin stderr ADD failed (code 0): panic: boom (exit status: 2)",
        ),
        (
            "garbage",
            "CNI plugin garbage ADD failed (code 0): unparseable output",
        ),
        ("missing", "CNI plugin \"missing\" not found"),
    ];
    for (kind, want) in cases {
        let err = executor
            .add(&list(kind), &attachment())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{kind}: {err}");
    }
}

#[test]
fn executor_kills_a_hung_plugin_and_its_children() {
    let plugins = ScriptPlugins::new();
    // The grandchild holds stdout and stderr open: only killing the group ends the wait.
    plugins.add("hang", "sleep 300\necho '{}'");
    let executor = plugins.executor(Duration::from_millis(500));
    let started = Instant::now();
    let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "hang"}]});
    let err = executor.add(&list, &attachment()).unwrap_err().to_string();
    assert!(err.contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
