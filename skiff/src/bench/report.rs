//! Results, the targets they are judged against, and the human-readable table.

use std::fmt::Write;

use serde::Serialize;

use super::Config;
use super::stats::Throughput;
use super::watch::WatchReport;

/// Targets from the issue, for a 2-core machine.
const EMBEDDED_CREATES_PER_SEC: f64 = 5_000.0;
const MIN_CREATE_RATIO: f64 = 0.5;
const WATCH_P99_MS: f64 = 50.0;

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: Machine,
    pub command: String,
    pub config: Config,
    /// Size of one benchmark Pod as sent (and as written by the raw phase).
    pub pod_bytes: usize,
    pub backends: Vec<BackendReport>,
    /// Whether every target of every backend passed.
    pub all_targets_met: bool,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub os: String,
    /// 1/5/15-minute load averages when the run started and ended: on a shared machine other
    /// work competes for the same cores, and this says how much did.
    pub load_at_start: String,
    pub load_at_end: String,
}

/// The 1/5/15-minute load averages, from /proc/loadavg.
pub fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    fn probe(load_at_start: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            os: format!("{} {}", std::env::consts::OS, kernel.trim()),
            load_at_start,
            load_at_end: load_average(),
        }
    }
}

/// A list phase: lists per second plus the objects they returned per second.
#[derive(Debug, Serialize)]
pub struct ListResult {
    #[serde(flatten)]
    pub throughput: Throughput,
    pub items: usize,
    pub items_per_sec: f64,
}

impl ListResult {
    pub fn new(throughput: Throughput, items: usize) -> Self {
        let items_per_sec = if throughput.seconds > 0.0 {
            items as f64 / throughput.seconds
        } else {
            0.0
        };
        Self {
            throughput,
            items,
            items_per_sec,
        }
    }
}

/// One target, the figure it is judged on, and the verdict.
#[derive(Debug, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

/// Every figure measured on one backend.
#[derive(Debug, Serialize)]
pub struct Measured {
    /// `Store::create` called directly.
    pub raw_put: Throughput,
    /// JSON body → `Registry::create` → store, in process: the API minus HTTP.
    pub registry_create: Throughput,
    /// POST over HTTP/1.1 to the in-process server.
    pub api_create: Throughput,
    pub api_get: Throughput,
    pub list_all: ListResult,
    pub list_selected: ListResult,
    pub watch: WatchReport,
    /// Embedded store only.
    pub writes_per_commit: Option<WritesPerCommit>,
}

/// Writes per durable commit (fsync) of the embedded store in each create phase: group commit
/// batches whatever is queued when the writer is free, so slower producers mean smaller
/// batches and more commit work per write.
#[derive(Debug, Serialize)]
pub struct WritesPerCommit {
    pub raw_put: f64,
    pub registry_create: f64,
    pub api_create: f64,
}

impl WritesPerCommit {
    pub fn new(
        writes: usize,
        raw: Option<u64>,
        registry: Option<u64>,
        api: Option<u64>,
    ) -> Option<Self> {
        let per = |commits: u64| writes as f64 / commits.max(1) as f64;
        Some(Self {
            raw_put: per(raw?),
            registry_create: per(registry?),
            api_create: per(api?),
        })
    }
}

/// One backend's figures with the targets judged on them.
#[derive(Debug, Serialize)]
pub struct BackendReport {
    pub backend: &'static str,
    #[serde(flatten)]
    pub measured: Measured,
    /// API create rate / raw store put rate.
    pub create_ratio: f64,
    pub targets: Vec<TargetCheck>,
}

fn ratio(a: &Throughput, b: &Throughput) -> f64 {
    if b.ops_per_sec > 0.0 {
        a.ops_per_sec / b.ops_per_sec
    } else {
        0.0
    }
}

impl BackendReport {
    pub fn new(backend: &'static str, measured: Measured) -> Self {
        let create_ratio = ratio(&measured.api_create, &measured.raw_put);
        let creates = measured.api_create.ops_per_sec;
        let watch = &measured.watch;
        let mut targets = Vec::new();
        // The absolute create rate is the embedded store's target: etcd's rate is set by etcd.
        if backend == "embedded" {
            targets.push(TargetCheck {
                name: "API pod creates/s".into(),
                target: format!(">= {EMBEDDED_CREATES_PER_SEC:.0}/s"),
                measured: format!("{creates:.0}/s"),
                pass: creates >= EMBEDDED_CREATES_PER_SEC,
            });
        }
        targets.push(TargetCheck {
            name: "API create rate / raw store put rate".into(),
            target: format!(">= {:.0} %", MIN_CREATE_RATIO * 100.0),
            measured: format!("{:.1} %", create_ratio * 100.0),
            pass: create_ratio >= MIN_CREATE_RATIO,
        });
        targets.push(TargetCheck {
            name: format!(
                "watch event p99, {} watchers (all delivered)",
                watch.shape.watchers
            ),
            target: format!("<= {WATCH_P99_MS:.0} ms"),
            measured: format!(
                "{:.1} ms, {}/{} delivered",
                watch.from_ack.p99_ms, watch.delivered, watch.expected
            ),
            pass: watch.complete() && watch.from_ack.p99_ms <= WATCH_P99_MS,
        });
        Self {
            backend,
            measured,
            create_ratio,
            targets,
        }
    }
}

impl Report {
    pub fn new(
        config: Config,
        pod_bytes: usize,
        backends: Vec<BackendReport>,
        load_at_start: String,
    ) -> Self {
        let all_targets_met = backends.iter().flat_map(|b| &b.targets).all(|t| t.pass);
        Self {
            date: jiff::Timestamp::now().to_string(),
            machine: Machine::probe(load_at_start),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            config,
            pod_bytes,
            backends,
            all_targets_met,
        }
    }

    /// The human-readable form: a phase table and a target table per backend.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "skiff bench apiserver — {}", self.date);
        let _ = writeln!(out, "machine: {} CPUs, {}, {}", m.cpus, m.cpu_model, m.os);
        let _ = writeln!(
            out,
            "load average (1/5/15 min): {} at start, {} at end",
            m.load_at_start, m.load_at_end
        );
        let c = &self.config;
        let _ = writeln!(
            out,
            "pods: {} x {} B, concurrency {}, watchers {} x {} events every {} ms",
            c.objects,
            self.pod_bytes,
            c.concurrency,
            c.watch.watchers,
            c.watch.events,
            c.watch.spacing_ms
        );
        for b in &self.backends {
            let _ = writeln!(out, "\n== {} ==", b.backend);
            let _ = writeln!(
                out,
                "{:<36} {:>6} {:>9} {:>8} {:>8} {:>8} {:>9}",
                "phase", "ops", "ops/s", "p50 ms", "p99 ms", "max ms", "CPU us/op"
            );
            let row = |out: &mut String, name: &str, t: &Throughput, extra: &str| {
                let _ = writeln!(
                    out,
                    "{:<36} {:>6} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>9.0}{extra}",
                    name,
                    t.ops,
                    t.ops_per_sec,
                    t.latency.p50_ms,
                    t.latency.p99_ms,
                    t.latency.max_ms,
                    t.cpu_us_per_op
                );
            };
            let m = &b.measured;
            let of_raw =
                |t: &Throughput| format!("  ({:.1} % of raw)", ratio(t, &m.raw_put) * 100.0);
            row(&mut out, "raw store put (Store::create)", &m.raw_put, "");
            let registry = of_raw(&m.registry_create);
            row(
                &mut out,
                "registry create (in process, no HTTP)",
                &m.registry_create,
                &registry,
            );
            row(
                &mut out,
                "API create (POST pod)",
                &m.api_create,
                &of_raw(&m.api_create),
            );
            row(&mut out, "API get (GET pod)", &m.api_get, "");
            for (name, l) in [
                ("API list (whole namespace)", &m.list_all),
                ("API list (labelSelector shard=N)", &m.list_selected),
            ] {
                let items = format!("  ({:.0} items/s)", l.items_per_sec);
                row(&mut out, name, &l.throughput, &items);
            }
            if let Some(wpc) = &m.writes_per_commit {
                let _ = writeln!(
                    out,
                    "embedded group commit, writes per fsync: raw {:.1}, registry {:.1}, API {:.1}",
                    wpc.raw_put, wpc.registry_create, wpc.api_create
                );
            }
            let w = &m.watch;
            let _ = writeln!(
                out,
                "watch fan-out: {} watchers x {} events, {}/{} delivered ({} watchers \
                 incomplete), connected in {:.2} s",
                w.shape.watchers,
                w.shape.events,
                w.delivered,
                w.expected,
                w.incomplete_watchers,
                w.connect_seconds
            );
            for (name, l) in [
                ("from write ack", &w.from_ack),
                ("from write send", &w.from_send),
            ] {
                let _ = writeln!(
                    out,
                    "  delivery delay {name:<16} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
                    l.p50_ms, l.p99_ms, l.max_ms
                );
            }
            let _ = writeln!(out, "targets:");
            for t in &b.targets {
                let _ = writeln!(
                    out,
                    "  {:<46} {:>10}  measured {:<26} {}",
                    t.name,
                    t.target,
                    t.measured,
                    if t.pass { "PASS" } else { "MISS" }
                );
            }
        }
        out
    }
}
