//! `skiff bench services`: the Service proxy's convergence time with many Services and its
//! cost on the data path.
//!
//! An in-process API server (embedded store) holds `--services` selector-less Services with
//! hand-made EndpointSlices of `--endpoints` endpoints each (the EndpointSlice controller is
//! not what is measured). A real nftables proxy programs a throwaway node network namespace
//! (`kubelet::proxy::testbed`, real CNI pods), so the host's own rules are never touched.
//! 1. Initial sync: proxy start until the whole table is installed.
//! 2. Convergence: `--changes` times, one endpoint of one Service is replaced through the API;
//!    measured from the write until the proxy has installed a ruleset containing it (checked
//!    with `nft list table`).
//! 3. Throughput: `--clients` threads open a connection per request, read a pod's name and
//!    close, for `--seconds` against a pod IP directly (from one client pod) and through a
//!    ClusterIP over two such pods (from another client pod, so the phases' conntrack
//!    entries do not collide), in alternating halves so drifting machine load hits both alike.
//!
//! Targets (issue 7): convergence ≤ 1 s; ClusterIP throughput ≥ 90 % of direct. Needs root.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apiserver::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubelet::proxy::nftables::Nft;
use kubelet::proxy::testbed::{Bed, NameServer, fetch, in_netns};
use kubelet::proxy::{Proxy, ProxyConfig, ProxyMode};
use runtime::{Api, PostParams};
use serde_json::json;

use super::cluster::LocalCluster;
use super::stats::Latency;

/// Flags of `skiff bench services`.
#[derive(clap::Args, Debug)]
pub struct ServicesBench {
    /// Services (one port each).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Endpoint changes timed for convergence.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    /// Seconds of traffic per path (direct, ClusterIP).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Concurrent client threads.
    #[arg(long, default_value_t = 2)]
    clients: usize,
}

type Failure = Box<dyn std::error::Error>;

/// The fake (never contacted) endpoint `e` of Service `s`: 10.244.128.0/17, unique per pair.
fn fake_endpoint(s: usize, e: usize, generation: usize) -> Ipv4Addr {
    let n = (generation * 1_000_003 + s * 64 + e) as u32 % (1 << 15);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 128, 0)) + n)
}

fn slice(service: &str, ips: &[Ipv4Addr], port: u16) -> Result<EndpointSlice, Failure> {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-bench"),
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))?)
}

/// Requests per second from `clients` threads in `netns` for `duration`, each thread cycling
/// through `addrs`.
fn requests_per_second(
    netns: &std::path::Path,
    addrs: &[SocketAddr],
    clients: usize,
    duration: Duration,
) -> Result<(f64, usize), Failure> {
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (netns, done, failed, stop) = (
                netns.to_path_buf(),
                done.clone(),
                failed.clone(),
                stop.clone(),
            );
            let addrs = addrs.to_vec();
            std::thread::spawn(move || {
                in_netns(&netns, move || {
                    for addr in addrs.iter().cycle() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match fetch(*addr, Duration::from_secs(2)) {
                            Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| "client thread panicked")?
            .map_err(|e| format!("client thread: {e}"))?;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    Ok((rate, failed.load(Ordering::Relaxed)))
}

/// Runs the benchmark and prints its figures.
pub async fn run(b: ServicesBench) -> Result<(), Failure> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("skiff bench services needs root (network namespaces, nftables)".into());
    }
    let dir = tempfile::Builder::new()
        .prefix("skiff-bench-svc-")
        .tempdir()?;
    let store = Arc::new(EmbeddedStore::open_with(
        &dir.path().join("store"),
        EmbeddedOptions {
            retain_revisions: Some(200_000),
            ..EmbeddedOptions::default()
        },
    )?);
    let cluster = LocalCluster::start(store, 0).await?;
    let result = measure(&b, &cluster).await;
    cluster.stop().await;
    result
}

async fn measure(b: &ServicesBench, cluster: &LocalCluster) -> Result<(), Failure> {
    let client = cluster.client.clone();
    let bed = Bed::new("10.244.9.0/24")?;
    let nft = Nft::new(Some(bed.node_netns()));
    let mut servers = Vec::new();
    let mut pods = Vec::new();
    for name in ["web-0", "web-1"] {
        let pod = bed.add_pod(name)?;
        servers.push(NameServer::start(&pod.netns, 8080, name)?);
        pods.push(pod);
    }
    let client_pod = bed.add_pod("client")?;
    // A second client for the ClusterIP phases: connections of one phase leave conntrack
    // entries (TIME_WAIT, 120 s) whose tuples the other phase's NAT would have to avoid, so
    // each phase gets its own source address.
    let service_client = bed.add_pod("client-svc")?;

    // The Services: `svc-0` is served by the two real pods, the others by fake endpoints.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    let created: Vec<Result<Ipv4Addr, Failure>> = futures::stream::iter(0..b.services)
        .map(|s| {
            let (services, slices) = (services.clone(), slices.clone());
            let pod_ips: Vec<Ipv4Addr> = pods.iter().map(|p| p.ip).collect();
            let endpoints = b.endpoints;
            async move {
                let name = format!("svc-{s}");
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
                }))?;
                let svc = services.create(&PostParams::default(), &svc).await?;
                let ips: Vec<Ipv4Addr> = if s == 0 {
                    pod_ips
                } else {
                    (0..endpoints).map(|e| fake_endpoint(s, e, 0)).collect()
                };
                slices
                    .create(&PostParams::default(), &slice(&name, &ips, 8080)?)
                    .await?;
                let ip = svc
                    .spec
                    .and_then(|s| s.cluster_ip)
                    .ok_or("no ClusterIP allocated")?;
                Ok(ip.parse()?)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let cluster_ips = created.into_iter().collect::<Result<Vec<_>, _>>()?;
    println!(
        "{} Services × {} endpoints created in {:.1?}",
        b.services,
        b.endpoints,
        started.elapsed()
    );

    // 1. The initial sync.
    let started = Instant::now();
    let mut config = ProxyConfig::new(ProxyMode::Nftables, bed.gateway().into());
    config.netns = Some(bed.node_netns().to_path_buf());
    let proxy = Proxy::start(client.clone(), config)
        .await?
        .ok_or("no proxy")?;
    let mut synced = proxy.synced();
    let first = synced
        .borrow_and_update()
        .clone()
        .ok_or("the first sync failed")?;
    println!(
        "initial sync: {} Service ports in {:.0?} after start (render + nft {:.0?})",
        first.ports,
        started.elapsed(),
        first.took
    );

    // 2. Convergence after single changes.
    let mut samples = Vec::new();
    let mut applies = Vec::new();
    for k in 0..b.changes {
        let s = 1 + (k * 97) % (b.services - 1).max(1);
        let name = format!("svc-{s}");
        let mut ips: Vec<Ipv4Addr> = (0..b.endpoints).map(|e| fake_endpoint(s, e, 0)).collect();
        let new_ip = fake_endpoint(s, 0, k + 1);
        ips[0] = new_ip;
        let mut current = slices.get(&format!("{name}-bench")).await?;
        current.endpoints = slice(&name, &ips, 8080)?.endpoints;
        let written = Instant::now();
        slices
            .replace(&format!("{name}-bench"), &PostParams::default(), &current)
            .await?;
        let needle = format!("{new_ip} . 8080");
        let converged = loop {
            tokio::time::timeout(Duration::from_secs(30), synced.changed())
                .await
                .map_err(|_| "the proxy did not sync within 30 s")??;
            synced.borrow_and_update();
            let nft2 = nft.clone();
            let table = tokio::task::spawn_blocking(move || nft2.list_table()).await??;
            if table.is_some_and(|t| t.contains(&needle)) {
                // The latest sync by now installed it (if an earlier one did, this
                // overstates the time, never understates it).
                let report = synced.borrow_and_update().clone().ok_or("no sync report")?;
                applies.push(report.took);
                break report.at.saturating_duration_since(written);
            }
        };
        samples.push(converged);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let convergence = Latency::from_samples(&mut samples);
    let apply = Latency::from_samples(&mut applies);
    println!(
        "convergence after an endpoint change ({} samples): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target ≤ 1000 ms); of which render + nft: p50 {:.0} ms",
        b.changes, convergence.p50_ms, convergence.p99_ms, convergence.max_ms, apply.p50_ms
    );

    // 3. Throughput: direct to the pods (each client alternating between both, as the
    // Service balances over both) vs through svc-0's ClusterIP, in alternating halves.
    let direct: Vec<SocketAddr> = pods
        .iter()
        .map(|p| SocketAddr::from((p.ip, 8080)))
        .collect();
    let through = [SocketAddr::from((cluster_ips[0], 80))];
    let half = Duration::from_secs_f64(b.seconds / 2.0);
    let (netns, svc_netns, clients) = (
        client_pod.netns.clone(),
        service_client.netns.clone(),
        b.clients,
    );
    let rates = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let mut d = (0.0, 0);
        let mut c = (0.0, 0);
        for _ in 0..2 {
            let (r, f) =
                requests_per_second(&netns, &direct, clients, half).map_err(|e| e.to_string())?;
            d = (d.0 + r / 2.0, d.1 + f);
            let (r, f) = requests_per_second(&svc_netns, &through, clients, half)
                .map_err(|e| e.to_string())?;
            c = (c.0 + r / 2.0, c.1 + f);
        }
        Ok((d, c))
    })
    .await??;
    let ((direct_rate, direct_failed), (svc_rate, svc_failed)) = rates;
    println!(
        "requests/s ({} clients, a connection per request): direct to a pod {:.0}, through the ClusterIP {:.0} ({} and {} failed): ratio {:.0} % (target ≥ 90 %)",
        b.clients,
        direct_rate,
        svc_rate,
        direct_failed,
        svc_failed,
        100.0 * svc_rate / direct_rate.max(1.0)
    );

    proxy.stop().await?;
    if nft.list_table()?.is_some() {
        return Err("the proxy's table is still there after stop".into());
    }
    drop(servers);
    Ok(())
}
