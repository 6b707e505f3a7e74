//! A throwaway etcd on loopback for the etcd backend, and the loopback-only rule for etcd
//! endpoints the user passes.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apiserver::storage::etcd::EtcdStore;

use super::BenchError;

/// Where Debian's `etcd-server` installs etcd.
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// Room for two phases of 1.5 KB pods plus history: far above what a bounded run writes, so a
/// run never trips etcd's space alarm (the 2 GiB default would, with large `--objects`).
const QUOTA_BACKEND_BYTES: u64 = 8 << 30;

/// How long etcd may take to answer after spawn.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running etcd, killed (and its data dir removed) on drop — also when the run fails or is
/// interrupted, since the benchmark's Ctrl-C handling unwinds to here.
pub struct EtcdProcess {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::new(format!("binding a loopback port: {e}")))?;
    Ok(listener
        .local_addr()
        .map_err(|e| BenchError::new(format!("loopback port: {e}")))?
        .port())
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let start = log.len().saturating_sub(2000);
    log.get(start..).unwrap_or(&log).to_owned()
}

impl EtcdProcess {
    /// Starts etcd under `parent` on free loopback ports and waits until it answers. Retries
    /// with new ports when etcd exits early (another process may grab a port we picked).
    pub async fn start(parent: &Path) -> Result<Self, BenchError> {
        if !Path::new(ETCD_BIN).exists() {
            return Err(BenchError::new(format!(
                "{ETCD_BIN} not found: install etcd (Debian: apt-get install etcd-server), \
                 pass --etcd-endpoints, or use --backend embedded"
            )));
        }
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(parent).await {
                Ok(etcd) => return Ok(etcd),
                Err(e) => last = e.to_string(),
            }
        }
        Err(BenchError::new(format!("could not start etcd: {last}")))
    }

    async fn try_start(parent: &Path) -> Result<Self, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-bench-etcd-")
            .tempdir_in(parent)
            .map_err(|e| BenchError::new(format!("etcd temp dir: {e}")))?;
        let client_url = format!("http://127.0.0.1:{}", free_port()?);
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let log = dir.path().join("etcd.log");
        let open_log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| BenchError::new(format!("etcd log: {e}")))
        };
        let child = Command::new(ETCD_BIN)
            .args(["--name", "bench"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .arg("--initial-cluster")
            .arg(format!("bench={peer_url}"))
            .arg("--quota-backend-bytes")
            .arg(QUOTA_BACKEND_BYTES.to_string())
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(open_log()?))
            .stderr(Stdio::from(open_log()?))
            .spawn()
            .map_err(|e| BenchError::new(format!("spawning {ETCD_BIN}: {e}")))?;
        let mut etcd = Self {
            child,
            endpoint: client_url,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                return Err(BenchError::new(format!(
                    "etcd exited early ({status}):\n{}",
                    log_tail(&etcd.log)
                )));
            }
            let endpoints = [etcd.endpoint.clone()];
            let probe =
                tokio::time::timeout(Duration::from_secs(2), EtcdStore::connect(&endpoints, None));
            if let Ok(Ok(_)) = probe.await {
                return Ok(etcd);
            }
            if Instant::now() > deadline {
                return Err(BenchError::new(format!(
                    "etcd at {} not ready within {READY_TIMEOUT:?}:\n{}",
                    etcd.endpoint,
                    log_tail(&etcd.log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Accepts only `http(s)://<loopback>:<port>` endpoints: load generated by a benchmark must never
/// leave the machine.
pub fn check_loopback(endpoint: &str) -> Result<(), BenchError> {
    let refuse = |why: &str| {
        Err(BenchError::new(format!(
            "--etcd-endpoints {endpoint:?}: {why}; the benchmark only talks to loopback"
        )))
    };
    let Some(rest) = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
    else {
        return refuse("expected http://HOST:PORT");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(());
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(()),
        Ok(_) => refuse("not a loopback address"),
        Err(_) => refuse("host must be a loopback IP or localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::check_loopback;

    #[test]
    fn only_loopback_endpoints_pass() {
        for ok in [
            "http://127.0.0.1:2379",
            "http://127.1.2.3:2379",
            "http://localhost:2379",
            "https://[::1]:2379",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:2379",
            "http://etcd.example.com:2379",
            "http://[2001:db8::1]:2379",
            "127.0.0.1:2379",
            "http://127.0.0.1.evil.com:2379",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }
}
