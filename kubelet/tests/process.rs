//! The process driver (no root needed): host processes under the real shim binary, their CRI
//! logs, exit codes, stops with a grace period, exec and adoption by a new driver.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kubelet::cri::{
    self, ContainerConfig, ContainerRuntime, ContainerState, Sandbox, SandboxConfig, labels,
};
use kubelet::process::ProcessRuntime;
use kubelet::shim::ShimCommand;

const DEADLINE: Duration = Duration::from_secs(30);

/// A driver on a temporary data dir; removes what it still has when dropped.
struct Node {
    dir: tempfile::TempDir,
    driver: ProcessRuntime,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let driver = driver(dir.path());
        Node { dir, driver }
    }

    fn sandbox(&self, uid: &str) -> Sandbox {
        self.driver
            .run_pod_sandbox(&SandboxConfig {
                name: format!("pod-{uid}"),
                namespace: "default".into(),
                uid: uid.into(),
                hostname: format!("pod-{uid}"),
                labels: BTreeMap::from([(labels::POD_UID.into(), uid.into())]),
                ..SandboxConfig::default()
            })
            .unwrap()
    }

    fn config(&self, name: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            name: name.into(),
            image: "host".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            log_path: self.dir.path().join(format!("logs/{name}/0.log")),
            ..ContainerConfig::default()
        }
    }

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
    }
}

fn driver(data_dir: &Path) -> ProcessRuntime {
    let shim = ShimCommand {
        program: env!("CARGO_BIN_EXE_skiff-shim").into(),
        args: vec![],
    };
    ProcessRuntime::new(data_dir, shim).unwrap()
}

fn wait_exited(driver: &dyn ContainerRuntime, id: &str) -> i32 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let state = driver.container_status(id).unwrap().state;
        if let ContainerState::Exited { exit_code, .. } = state {
            return exit_code;
        }
        assert!(Instant::now() < deadline, "{id} still {state:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log's (stream, text) records, checking the CRI format.
fn log_records(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.splitn(4, ' ').collect();
            assert!(parts[0].parse::<jiff::Timestamp>().is_ok(), "{line:?}");
            assert_eq!(parts[2], "F", "{line:?}");
            (
                parts[1].to_string(),
                parts.get(3).unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

fn wait_log(path: &Path, text: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !log_records(path).iter().any(|(_, t)| t == text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in {:?}",
            log_records(path)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn runs_host_processes_with_logs_and_exit_codes() {
    let node = Node::new();
    let sandbox = node.sandbox("p1");
    assert_eq!(sandbox.netns, None);
    let mut config = node.config("hello", "echo hello $WHO; echo oops >&2; pwd; exit 3");
    config.env = vec!["WHO=world".into()];
    config.working_dir = Some("sub".into());
    std::fs::create_dir_all(node.dir.path().join("process/sandboxes/p1/work/sub")).unwrap();
    let id = node.run(&sandbox, &config);
    assert_eq!(wait_exited(&node.driver, &id), 3);
    let records = log_records(&config.log_path);
    assert!(
        records.contains(&("stdout".into(), "hello world".into())),
        "{records:?}"
    );
    assert!(
        records.contains(&("stderr".into(), "oops".into())),
        "{records:?}"
    );
    assert!(
        records.iter().any(|(_, t)| t.ends_with("/work/sub")),
        "cwd relative to the pod dir: {records:?}"
    );

    let mut missing = node.config("missing", "");
    missing.argv = vec!["/no/such/program".into()];
    let id = node.driver.create_container(&sandbox, &missing).unwrap();
    let err = node.driver.start_container(&id).unwrap_err();
    assert_eq!(err.reason(), Some("RunContainerError"), "{err}");
    assert!(err.to_string().contains("/no/such/program"), "{err}");
}

#[test]
fn stop_honours_the_grace_period() {
    let node = Node::new();
    let sandbox = node.sandbox("p2");
    let trap = node.config(
        "trap",
        "trap 'echo trapped; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    );
    let stubborn = node.config(
        "stubborn",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    );
    let trapping = node.run(&sandbox, &trap);
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
    assert_eq!(wait_exited(&node.driver, &trapping), 0);
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
    assert_eq!(wait_exited(&node.driver, &ignoring), 137);
}

#[test]
fn exec_and_adoption_by_a_new_driver() {
    let mut node = Node::new();
    let sandbox = node.sandbox("p3");
    let mut config = node.config(
        "long",
        "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    );
    config.env = vec!["GREETING=hi".into()];
    let id = node.run(&sandbox, &config);
    wait_log(&config.log_path, "ready");
    let argv: Vec<String> = ["sh", "-c", "echo $GREETING; exit 4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = cri::exec_sync(&node.driver, &id, &argv, DEADLINE).unwrap();
    assert_eq!(out.exit_code, Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    // The agent restarts: a new driver on the same state dir finds the shim-run process.
    node.driver = driver(node.dir.path());
    let listed = node.driver.list_containers().unwrap();
    let found = listed.iter().find(|c| c.id == id).expect("listed");
    assert!(
        matches!(found.state, ContainerState::Running { .. }),
        "{:?}",
        found.state
    );
    assert_eq!(node.driver.list_sandboxes().unwrap().len(), 1);
    node.driver
        .stop_container(&id, Duration::from_secs(5))
        .unwrap();
    assert_eq!(wait_exited(&node.driver, &id), 0);
    node.driver.remove_container(&id).unwrap();
    assert!(node.driver.list_containers().unwrap().is_empty());
}
