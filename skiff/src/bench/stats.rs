//! Latency percentiles and throughput summaries.
//!
//! Percentiles use the nearest-rank method on the full sorted sample set (no histogram
//! bucketing), so p99 over 50,000 watch deliveries is an observed delivery, not an estimate.

use std::time::Duration;

use serde::Serialize;

/// Latency distribution of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Summarises `samples` (any order; sorted in place).
    pub fn from_samples(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        Self {
            p50_ms: ms(percentile(samples, 50.0)),
            p99_ms: ms(percentile(samples, 99.0)),
            max_ms: ms(samples.last().copied().unwrap_or_default()),
        }
    }
}

/// A closed-loop phase: how many operations, how long it took on the wall clock, the latency
/// of each operation, and the CPU time the whole process spent per operation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Throughput {
    pub ops: usize,
    pub seconds: f64,
    pub ops_per_sec: f64,
    #[serde(flatten)]
    pub latency: Latency,
    /// Process CPU time (user + system, all threads: server, store and load generator alike)
    /// per operation. On a small shared machine this says more than the rate does: the rate
    /// is capped at cores / CPU-per-op, whatever else is running.
    pub cpu_us_per_op: f64,
}

impl Throughput {
    pub fn new(mut samples: Vec<Duration>, wall: Duration, cpu: Duration) -> Self {
        let seconds = wall.as_secs_f64();
        let per_op = |total: f64| {
            if samples.is_empty() {
                0.0
            } else {
                total / samples.len() as f64
            }
        };
        Self {
            ops: samples.len(),
            seconds,
            ops_per_sec: if seconds > 0.0 {
                samples.len() as f64 / seconds
            } else {
                0.0
            },
            cpu_us_per_op: per_op(cpu.as_secs_f64() * 1e6),
            latency: Latency::from_samples(&mut samples),
        }
    }
}

/// CPU time (user + system) this process has used so far, all threads.
pub fn process_cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given a valid pointer to; zeroed is a valid
    // rusage (plain integers), so reading it is sound even if the call failed.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The nearest-rank `q`-th percentile of `sorted` (ascending); zero for no samples.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A KiB field of a `/proc/<pid>/<file>` (`VmRSS:` of `status`, `Pss:` of `smaps_rollup`).
pub fn proc_kib(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_kib(pid, "status", "VmRSS:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&sorted[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn throughput_rate_and_latency() {
        let samples = vec![Duration::from_millis(3), Duration::from_millis(1)];
        let t = Throughput::new(
            samples,
            Duration::from_millis(500),
            Duration::from_millis(1),
        );
        assert_eq!(t.ops, 2);
        assert!((t.cpu_us_per_op - 500.0).abs() < 1e-9);
        assert!((t.ops_per_sec - 4.0).abs() < 1e-9);
        assert!((t.latency.max_ms - 3.0).abs() < 1e-9);
        assert!((t.latency.p50_ms - 1.0).abs() < 1e-9);
    }
}
