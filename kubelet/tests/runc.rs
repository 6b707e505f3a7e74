//! The runc driver against the real runc (root only; CI runs as root): busybox images built in
//! Rust and put straight into a store, containers run under the real shim binary, their logs,
//! exit codes, stops, OOM kills, writable layers, exec and adoption by a new driver.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubelet::cri::{
    self, ContainerConfig, ContainerRuntime, ContainerState, Resources, Sandbox, SandboxConfig,
    labels,
};
use kubelet::image::Store;
use kubelet::image::build::{HOST_BUSYBOX, store_busybox};
use kubelet::runc::{RuncConfig, RuncRuntime};
use kubelet::shim::ShimCommand;
use support::root_or_skip;

const DEADLINE: Duration = Duration::from_secs(30);

/// A driver on a temporary data dir with busybox in its store; removes every container it
/// still has when dropped (also when a test fails).
struct Node {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    driver: RuncRuntime,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("images")).unwrap());
        store_busybox(&store, "busybox", Path::new(HOST_BUSYBOX)).unwrap();
        let driver = driver(dir.path(), &store);
        Node { dir, store, driver }
    }

    fn sandbox(&self, uid: &str) -> Sandbox {
        let sandbox = self
            .driver
            .run_pod_sandbox(&SandboxConfig {
                name: format!("pod-{uid}"),
                namespace: "default".into(),
                uid: uid.into(),
                hostname: format!("pod-{uid}"),
                host_network: false,
                labels: BTreeMap::from([(labels::POD_UID.into(), uid.into())]),
                ..SandboxConfig::default()
            })
            .unwrap();
        assert_eq!(sandbox.netns, None, "no pod network given: the host's");
        sandbox
    }

    fn config(&self, name: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            name: name.into(),
            image: "busybox".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            log_path: self.dir.path().join(format!("logs/{name}/0.log")),
            labels: BTreeMap::from([(labels::CONTAINER_NAME.into(), name.into())]),
            ..ContainerConfig::default()
        }
    }

    /// Creates and starts a container running `sh -c script`.
    fn run(&self, sandbox: &Sandbox, config: &ContainerConfig) -> String {
        let id = self.driver.create_container(sandbox, config).unwrap();
        self.driver.start_container(&id).unwrap();
        id
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for c in self.driver.list_containers().unwrap_or_default() {
            let _ = self.driver.remove_container(&c.id);
        }
        for s in self.driver.list_sandboxes().unwrap_or_default() {
            let _ = self.driver.remove_pod_sandbox(&s.id);
        }
    }
}

fn driver(data_dir: &Path, store: &Arc<Store>) -> RuncRuntime {
    RuncRuntime::new(RuncConfig {
        data_dir: data_dir.to_path_buf(),
        runc: PathBuf::from("runc"),
        shim: ShimCommand {
            program: env!("CARGO_BIN_EXE_skiff-shim").into(),
            args: vec![],
        },
        store: store.clone(),
        network: None,
    })
    .unwrap()
}

/// Waits until the container exited; returns (exit code, OOM killed).
fn wait_exited(driver: &dyn ContainerRuntime, id: &str) -> (i32, bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let state = driver.container_status(id).unwrap().state;
        if let ContainerState::Exited {
            exit_code,
            oom_killed,
            ..
        } = state
        {
            return (exit_code, oom_killed);
        }
        assert!(Instant::now() < deadline, "{id} still {state:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the log has a record with `text`.
fn wait_log(path: &Path, text: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !log_records(path).iter().any(|(_, _, t)| t == text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the log: {:?}",
            log_records(path)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log's records as (stream, tag, text); panics on a line not in the CRI format.
fn log_records(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let ts = parts.next().unwrap();
            ts.parse::<jiff::Timestamp>()
                .unwrap_or_else(|e| panic!("bad timestamp in {line:?}: {e}"));
            assert!(ts.contains('.'), "nanoseconds in {ts}");
            let stream = parts.next().unwrap().to_string();
            assert!(stream == "stdout" || stream == "stderr", "{line:?}");
            let tag = parts.next().unwrap().to_string();
            assert!(tag == "F" || tag == "P", "{line:?}");
            (stream, tag, parts.next().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn runs_a_container_and_logs_its_output_in_the_cri_format() {
    if !root_or_skip("runs_a_container_and_logs_its_output_in_the_cri_format") {
        return;
    }
    let node = Node::new();
    let sandbox = node.sandbox("log");
    let config = node.config("hello", "echo hello; echo oops >&2; hostname; pwd");
    let id = node.run(&sandbox, &config);
    assert_eq!(wait_exited(&node.driver, &id), (0, false));
    let records = log_records(&config.log_path);
    for want in [
        ("stdout", "hello"),
        ("stderr", "oops"),
        ("stdout", "pod-log"),
        ("stdout", "/"),
    ] {
        assert!(
            records
                .iter()
                .any(|(s, tag, t)| s == want.0 && tag == "F" && t == want.1),
            "{want:?} in {records:?}"
        );
    }
    let info = node.driver.container_status(&id).unwrap();
    assert_eq!(info.name, "hello");
    assert_eq!(info.sandbox_id, sandbox.id);
    assert_eq!(info.image, "docker.io/library/busybox:latest");
    assert_eq!(info.labels[labels::CONTAINER_NAME], "hello");

    let cgroup = Path::new("/sys/fs/cgroup/memory/skiff/podlog");
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.oom_control").exists();
    assert!(!v1 || cgroup.is_dir(), "the pod's cgroup exists");
    node.driver.remove_container(&id).unwrap();
    node.driver.remove_pod_sandbox(&sandbox.id).unwrap();
    assert!(!cgroup.exists(), "the pod's cgroup went with the sandbox");
    assert!(node.driver.list_sandboxes().unwrap().is_empty());
    assert!(node.driver.list_containers().unwrap().is_empty());
    assert!(
        config.log_path.is_file(),
        "logs stay for the agent to remove"
    );
}

#[test]
fn exit_codes_and_start_failures_are_reported() {
    if !root_or_skip("exit_codes_and_start_failures_are_reported") {
        return;
    }
    let node = Node::new();
    let sandbox = node.sandbox("exit");
    let id = node.run(&sandbox, &node.config("three", "exit 3"));
    assert_eq!(wait_exited(&node.driver, &id), (3, false));

    let mut missing = node.config("missing", "");
    missing.argv = vec!["/no/such/program".into()];
    let id = node.driver.create_container(&sandbox, &missing).unwrap();
    let err = node.driver.start_container(&id).unwrap_err();
    assert_eq!(err.reason(), Some("RunContainerError"), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("/no/such/program") && message.contains("no such file"),
        "clear message: {message}"
    );
    node.driver.remove_container(&id).unwrap();
    assert!(node.driver.container_status(&id).is_err());
}

#[test]
fn stop_waits_for_a_term_handler_and_kills_after_the_grace_period() {
    if !root_or_skip("stop_waits_for_a_term_handler_and_kills_after_the_grace_period") {
        return;
    }
    let node = Node::new();
    let sandbox = node.sandbox("stop");
    let trap = node.config(
        "trap",
        "trap 'echo trapped; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    );
    let trapping = node.run(&sandbox, &trap);
    // A shell that ignores TERM: as the pid namespace's init it gets no default action.
    let stubborn = node.config("stubborn", "echo ready; while true; do sleep 0.1; done");
    let ignoring = node.run(&sandbox, &stubborn);
    wait_log(&trap.log_path, "ready");
    wait_log(&stubborn.log_path, "ready");

    let began = Instant::now();
    node.driver
        .stop_container(&trapping, Duration::from_secs(2))
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(wait_exited(&node.driver, &trapping), (0, false));
    wait_log(&trap.log_path, "trapped");

    let began = Instant::now();
    node.driver
        .stop_container(&ignoring, Duration::from_secs(2))
        .unwrap();
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(wait_exited(&node.driver, &ignoring), (137, false));
}

#[test]
fn exceeding_the_memory_limit_is_an_oom_kill() {
    if !root_or_skip("exceeding_the_memory_limit_is_an_oom_kill") {
        return;
    }
    let node = Node::new();
    let sandbox = node.sandbox("oom");
    let mut config = node.config(
        "hog",
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}",
    );
    config.resources = Resources {
        memory_limit_bytes: Some(16 << 20),
        cpu_limit_millis: Some(500),
        cpu_request_millis: Some(100),
    };
    let id = node.run(&sandbox, &config);
    assert_eq!(wait_exited(&node.driver, &id), (137, true));
}

#[test]
fn the_writable_layer_goes_with_the_container() {
    if !root_or_skip("the_writable_layer_goes_with_the_container") {
        return;
    }
    let node = Node::new();
    let sandbox = node.sandbox("layer");
    let config = node.config("writer", "test -e /tmp/mark && exit 7; echo x > /tmp/mark");
    let id = node.run(&sandbox, &config);
    assert_eq!(wait_exited(&node.driver, &id), (0, false));
    node.driver.remove_container(&id).unwrap();
    let again = node.run(&sandbox, &config);
    assert_eq!(again, id, "same sandbox, name and attempt: same id");
    assert_eq!(wait_exited(&node.driver, &again), (0, false), "mark gone");
}

#[test]
fn exec_runs_in_the_running_container() {
    if !root_or_skip("exec_runs_in_the_running_container") {
        return;
    }
    let node = Node::new();
    let sandbox = node.sandbox("exec");
    let mut config = node.config("box", "echo inside > /tmp/f; echo ready; sleep 1000");
    config.env = vec!["GREETING=hi".into()];
    config.working_dir = Some("/tmp".into());
    let id = node.run(&sandbox, &config);
    wait_log(&config.log_path, "ready");
    let argv: Vec<String> = ["sh", "-c", "echo $GREETING; cat f; pwd; exit 4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = cri::exec_sync(&node.driver, &id, &argv, DEADLINE).unwrap();
    assert_eq!(out.exit_code, Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\ninside\n/tmp\n");
    node.driver
        .stop_container(&id, Duration::from_secs(1))
        .unwrap();
    assert!(node.driver.exec_command(&id, &argv).is_err(), "not running");
}

#[test]
fn a_new_driver_adopts_running_containers() {
    if !root_or_skip("a_new_driver_adopts_running_containers") {
        return;
    }
    let mut node = Node::new();
    let sandbox = node.sandbox("adopt");
    let config = node.config(
        "long",
        "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    );
    let id = node.run(&sandbox, &config);
    wait_log(&config.log_path, "ready");
    // The agent restarts: the old driver is gone, a new one reads the same state dir.
    node.driver = driver(node.dir.path(), &node.store);
    let listed = node.driver.list_containers().unwrap();
    let found = listed.iter().find(|c| c.id == id).expect("listed");
    assert!(
        matches!(found.state, ContainerState::Running { .. }),
        "{:?}",
        found.state
    );
    assert_eq!(node.driver.list_sandboxes().unwrap(), vec![sandbox]);
    node.driver
        .stop_container(&id, Duration::from_secs(5))
        .unwrap();
    assert_eq!(wait_exited(&node.driver, &id), (0, false));
}
