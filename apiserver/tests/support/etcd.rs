//! Launches a throwaway etcd on loopback for the etcd backend's tests.
//!
//! Each test gets its own etcd (own data dir, own ports): compaction is cluster-wide, so tests
//! sharing one etcd could not test watches and compaction independently.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apiserver::storage::etcd::EtcdStore;

/// Where CI installs etcd (Debian package `etcd-server`).
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// A running etcd, killed (and its data dir removed) on drop.
pub struct EtcdServer {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago. Another process could grab it before etcd binds
/// it; [`EtcdServer::start`] retries with new ports if etcd exits early.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local addr").port()
}

fn read_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let start = log.len().saturating_sub(4000);
    log.get(start..).unwrap_or(&log).to_owned()
}

impl EtcdServer {
    /// Starts etcd and waits (with a deadline) until it answers requests, then returns it with a
    /// connected store. Panics with a clear message if etcd is not installed: these tests must
    /// fail, not pass vacuously, where etcd is missing.
    pub async fn start() -> (Self, EtcdStore) {
        assert!(
            Path::new(ETCD_BIN).exists(),
            "{ETCD_BIN} not found: the etcd backend tests need a real etcd \
             (Debian/Ubuntu: apt-get install etcd-server)"
        );
        let mut last_failure = String::new();
        for _attempt in 0..3 {
            match Self::try_start().await {
                Ok(started) => return started,
                Err(why) => last_failure = why,
            }
        }
        panic!("could not start etcd: {last_failure}");
    }

    async fn try_start() -> Result<(Self, EtcdStore), String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let client_url = format!("http://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let log = dir.path().join("etcd.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("log file: {e}"))?;
        let log_err = log_file.try_clone().map_err(|e| format!("log file: {e}"))?;
        let child = Command::new(ETCD_BIN)
            .arg("--name")
            .arg("default")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("default={peer_url}"))
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("spawning {ETCD_BIN}: {e}"))?;
        let mut server = EtcdServer {
            child,
            endpoint: client_url,
            log,
            _dir: dir,
        };

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "etcd exited early ({status}); log:\n{}",
                    read_log(&server.log)
                ));
            }
            let endpoints = [server.endpoint.clone()];
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), EtcdStore::connect(&endpoints, None))
                    .await;
            if let Ok(Ok(store)) = attempt {
                return Ok((server, store));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd at {} not ready within 20s; log:\n{}",
                    server.endpoint,
                    read_log(&server.log)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
