//! `skiff bench apiserver --quick` must keep working: it runs every phase on the embedded store
//! with small counts and reports positive rates, so the benchmark cannot rot unnoticed.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

#[test]
fn quick_embedded_bench_reports_positive_rates() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "bench",
            "apiserver",
            "--quick",
            "--backend",
            "embedded",
            "--json",
        ])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("SKIFF_LOG", "warn")
        .output()
        .expect("run skiff bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "skiff bench failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not the JSON report ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });

    let backends = report["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), 1, "{report:#}");
    let embedded = &backends[0];
    assert_eq!(embedded["backend"], "embedded");
    for phase in [
        "raw_put",
        "registry_create",
        "api_create",
        "api_get",
        "list_all",
        "list_selected",
    ] {
        let rate = embedded[phase]["ops_per_sec"].as_f64().unwrap_or_default();
        assert!(rate > 0.0, "{phase} rate {rate}: {report:#}");
        assert!(embedded[phase]["ops"].as_u64().unwrap_or_default() > 0);
    }
    assert!(
        embedded["list_all"]["items_per_sec"]
            .as_f64()
            .unwrap_or_default()
            > 0.0
    );
    assert!(embedded["create_ratio"].as_f64().unwrap_or_default() > 0.0);
    let watch = &embedded["watch"];
    assert!(watch["expected"].as_u64().unwrap_or_default() > 0);
    assert_eq!(watch["delivered"], watch["expected"], "{watch:#}");
    // Every target is reported, pass or miss.
    assert_eq!(embedded["targets"].as_array().map(Vec::len), Some(3));
    eprintln!("quick bench took {:?}", started.elapsed());
}

/// `skiff bench controllers` with small counts: the Deployment becomes available and rolls,
/// and both figures are printed, so the benchmark cannot rot unnoticed.
#[test]
fn small_controllers_bench_rolls_out() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "bench",
            "controllers",
            "--nodes",
            "3",
            "--replicas",
            "20",
            "--timeout",
            "120",
        ])
        .arg("--data-dir")
        .arg(data_dir.path().join("store"))
        .env("SKIFF_LOG", "warn")
        .output()
        .expect("run skiff bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "skiff bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("20 replicas on 3 nodes: all available after"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rolling update v1 -> v2 of 20 replicas"),
        "{stdout}"
    );
}

/// `skiff bench services` with small counts (root: network namespaces and nftables): every
/// figure is printed and the proxy's table is gone afterwards (the bench checks that itself).
#[test]
fn small_services_bench_reports_convergence_and_throughput() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping small_services_bench: needs root (CI runs as root)");
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["bench", "services", "--services", "20", "--endpoints", "3"])
        .args(["--changes", "2", "--seconds", "0.4", "--clients", "1"])
        .env("SKIFF_LOG", "warn")
        .output()
        .expect("run skiff bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "skiff bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "initial sync: 20 Service ports",
        "convergence after an endpoint change (2 samples)",
        "requests/s (1 clients",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}
