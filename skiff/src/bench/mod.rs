//! `skiff bench`: benchmarks that print what they measured next to the targets Skiff aims for.
//!
//! `skiff bench apiserver` measures, for each storage backend on a fresh store:
//! 1. the raw store put rate (`Store::create` from C tasks),
//! 2. the API create rate (POST Pods through the real HTTP stack of an in-process API server)
//!    and its ratio to 1, which is what the API layer costs on top of storage,
//! 3. single GETs, whole-namespace lists and label-selected lists,
//! 4. watch fan-out: W watch connections and the delay of every event delivery.
//!
//! Everything runs on loopback with bounded counts and per-phase time limits. etcd is started on
//! free loopback ports in a temp dir (or taken from `--etcd-endpoints`, which must be loopback).

mod api;
mod cluster;
mod etcd;
mod lab;
mod load;
mod payload;
mod report;
mod rollout;
mod scheduling;
mod services;
mod startup;
mod stats;
mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apiserver::registry::{Registry, RegistryConfig, WriteOptions};
use apiserver::resources;
use apiserver::storage::Store;
use apiserver::storage::embedded::EmbeddedStore;
use apiserver::storage::etcd::EtcdStore;
use bytes::Bytes;
use reqwest::StatusCode;
use serde::Serialize;

use self::api::{InProcessApi, expect, pooled_client};
use self::load::closed_loop;
use self::payload::{SHARDS, pod_name, pods_in_shard};
use self::report::{BackendReport, ListResult, Measured, Report, WritesPerCommit};
use self::watch::FanOut;

/// A benchmark failed to run (as opposed to running and missing a target).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

impl BenchError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// `skiff bench <what>`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Store put rate, API create/get/list rates and watch fan-out latency, per backend.
    Apiserver(ApiserverArgs),
    /// End-to-end scheduling throughput with simulated nodes.
    Scheduler(scheduling::SchedulerBench),
    /// Time for a large Deployment to become available and to roll out an update.
    Controllers(rollout::ControllersBench),
    /// Pod startup latency (single pods and a burst) and memory of a real node agent.
    Startup(startup::StartupBench),
    /// Service proxy convergence with many Services, and ClusterIP vs direct throughput.
    Services(services::ServicesBench),
    /// Time for `skiff lab up` to have every node Ready, the lab's idle memory, binary size.
    Lab(lab::LabBench),
}

/// Which backends to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BackendChoice {
    Embedded,
    Etcd,
    Both,
}

/// Flags of `skiff bench apiserver`. Counts left unset take the default, or the small `--quick`
/// value.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiserverArgs {
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendChoice,
    /// Pods created per phase [default: 20000, quick: 500].
    #[arg(long)]
    objects: Option<usize>,
    /// Concurrent clients (store tasks, HTTP connections) [default: 64, quick: 16].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Concurrent watch connections [default: 1000, quick: 50].
    #[arg(long)]
    watchers: Option<usize>,
    /// Writes the watchers must all see [default: 50, quick: 10].
    #[arg(long)]
    watch_events: Option<usize>,
    /// Small counts for a smoke run (a few seconds).
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON on stdout instead of tables (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Use this etcd (comma-separated loopback URLs) instead of starting one. The benchmark
    /// writes under a fresh `/skiff-bench/<run>/` key prefix and leaves it there.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Where fresh embedded stores and the etcd data dir go [default: the system temp dir].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The resolved counts of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub objects: usize,
    pub concurrency: usize,
    pub gets: usize,
    pub full_lists: usize,
    pub full_list_concurrency: usize,
    pub selected_lists: usize,
    pub watch: FanOut,
}

impl Config {
    fn resolve(args: &ApiserverArgs) -> Self {
        let (objects, concurrency, watchers, events, full_lists, selected_lists) = if args.quick {
            (500, 16, 50, 10, 3, 50)
        } else {
            (20_000, 64, 1_000, 50, 10, 500)
        };
        let objects = args.objects.unwrap_or(objects).max(1);
        Self {
            objects,
            concurrency: args.concurrency.unwrap_or(concurrency).max(1),
            gets: objects,
            full_lists,
            // A whole-namespace list of 20,000 pods is ~40 MB of JSON; two at a time keep both
            // cores busy without measuring memory pressure instead.
            full_list_concurrency: 2,
            selected_lists,
            watch: FanOut {
                watchers: args.watchers.unwrap_or(watchers),
                events: args.watch_events.unwrap_or(events).max(1),
                spacing_ms: 20,
            },
        }
    }
}

/// No single phase may take longer than this: the run ends with an error instead of hanging.
const PHASE_LIMIT: Duration = Duration::from_secs(180);

const PODS: &str = "/api/v1/namespaces/default/pods";

/// Runs `skiff bench <what>`; SIGINT or SIGTERM stops it cleanly: dropping the run kills a
/// started etcd and removes the temp dirs.
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let args = match args.what {
        What::Apiserver(args) => args,
        What::Scheduler(b) => {
            return scheduling::run(b)
                .await
                .map_err(|e| BenchError::new(e.to_string()));
        }
        What::Controllers(b) => {
            return rollout::run(b)
                .await
                .map_err(|e| BenchError::new(e.to_string()));
        }
        What::Lab(b) => {
            return lab::run(b)
                .await
                .map_err(|e| BenchError::new(e.to_string()));
        }
        What::Startup(b) => {
            return startup::run(b)
                .await
                .map_err(|e| BenchError::new(e.to_string()));
        }
        What::Services(b) => {
            return services::run(b)
                .await
                .map_err(|e| BenchError::new(e.to_string()));
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| BenchError::new(format!("installing the SIGTERM handler: {e}")))?;
    tokio::select! {
        result = run_apiserver(args) => result,
        _ = tokio::signal::ctrl_c() => Err(BenchError::new("interrupted")),
        _ = term.recv() => Err(BenchError::new("terminated")),
    }
}

async fn run_apiserver(args: ApiserverArgs) -> Result<(), BenchError> {
    for endpoint in &args.etcd_endpoints {
        etcd::check_loopback(endpoint)?;
    }
    let load_at_start = report::load_average();
    let config = Config::resolve(&args);
    // Every watch holds a client and a server socket; the pools hold a few more.
    raise_nofile_limit(2 * (config.watch.watchers + config.concurrency) as u64 + 256)?;
    let data_dir = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| BenchError::new(format!("data dir {}: {e}", data_dir.display())))?;
    // Built up front so neither phase times JSON generation on the client side.
    let payloads: Arc<Vec<Bytes>> = Arc::new(
        (0..config.objects)
            .map(|i| payload::pod(i, "default"))
            .collect(),
    );

    let mut backends = Vec::new();
    if args.backend != BackendChoice::Etcd {
        let backend = Backend::Embedded {
            dir: data_dir.clone(),
        };
        backends.push(bench_backend(&backend, &config, &payloads).await?);
    }
    if args.backend != BackendChoice::Embedded {
        // Keeps a started etcd alive for the phases; dropped (killed) at the end of this block.
        let (endpoints, _etcd) = if args.etcd_endpoints.is_empty() {
            progress("etcd: starting etcd on loopback");
            let etcd = etcd::EtcdProcess::start(&data_dir).await?;
            (vec![etcd.endpoint.clone()], Some(etcd))
        } else {
            (args.etcd_endpoints.clone(), None)
        };
        let run_id = format!(
            "{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_millisecond()
        );
        let backend = Backend::Etcd { endpoints, run_id };
        backends.push(bench_backend(&backend, &config, &payloads).await?);
    }

    let report = Report::new(config, payloads[0].len(), backends, load_at_start);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report)
                .map_err(|e| BenchError::new(format!("encoding the report: {e}")))?
        );
    } else {
        print!("{}", report.table());
    }
    // Missing a target is a result; a watcher missing an event is a bug, and fails the run.
    for backend in &report.backends {
        let watch = &backend.measured.watch;
        if !watch.complete() {
            return Err(BenchError::new(format!(
                "{}: watchers received {} of {} events ({} watchers incomplete)",
                backend.backend, watch.delivered, watch.expected, watch.incomplete_watchers
            )));
        }
    }
    Ok(())
}

/// Where fresh stores come from.
enum Backend {
    /// A new redb file in a temp dir under `dir` per phase.
    Embedded { dir: PathBuf },
    /// A new key prefix per phase on one etcd: etcd cannot be emptied cheaply, but a prefix
    /// nobody has written to is an empty store as far as Skiff can tell.
    Etcd {
        endpoints: Vec<String>,
        run_id: String,
    },
}

/// A fresh store and whatever must outlive it (its temp dir).
struct FreshStore {
    store: Arc<dyn Store>,
    /// The same store when it is embedded, for its commit counter.
    embedded: Option<Arc<EmbeddedStore>>,
    _dir: Option<tempfile::TempDir>,
}

impl FreshStore {
    /// Runs `phase` and, on the embedded store, counts the durable commits (fsyncs) it caused:
    /// writes per commit is how well group commit batched, which sets the store's CPU cost per
    /// write.
    async fn counting_commits<T>(
        &self,
        phase: impl Future<Output = Result<T, BenchError>>,
    ) -> Result<(T, Option<u64>), BenchError> {
        let before = self.embedded.as_ref().map(|s| s.commit_count());
        let result = phase.await?;
        let after = self.embedded.as_ref().map(|s| s.commit_count());
        Ok((result, after.zip(before).map(|(a, b)| a - b)))
    }
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Embedded { .. } => "embedded",
            Backend::Etcd { .. } => "etcd",
        }
    }

    async fn fresh(&self, phase: &str) -> Result<FreshStore, BenchError> {
        match self {
            Backend::Embedded { dir } => {
                let tmp = tempfile::Builder::new()
                    .prefix(&format!("skiff-bench-{phase}-"))
                    .tempdir_in(dir)
                    .map_err(|e| BenchError::new(format!("temp dir: {e}")))?;
                let store =
                    Arc::new(EmbeddedStore::open(tmp.path()).map_err(|e| {
                        BenchError::new(format!("opening the embedded store: {e}"))
                    })?);
                Ok(FreshStore {
                    store: Arc::clone(&store) as Arc<dyn Store>,
                    embedded: Some(store),
                    _dir: Some(tmp),
                })
            }
            Backend::Etcd { endpoints, run_id } => {
                let prefix = format!("/skiff-bench/{run_id}/{phase}");
                let store = EtcdStore::connect(endpoints, Some(prefix))
                    .await
                    .map_err(|e| BenchError::new(format!("connecting to etcd: {e}")))?;
                Ok(FreshStore {
                    store: Arc::new(store),
                    embedded: None,
                    _dir: None,
                })
            }
        }
    }
}

/// Every phase against one backend.
async fn bench_backend(
    backend: &Backend,
    config: &Config,
    payloads: &Arc<Vec<Bytes>>,
) -> Result<BackendReport, BenchError> {
    let name = backend.name();
    let n = config.objects;
    let c = config.concurrency;

    progress(&format!("{name}: raw store put, {n} pods from {c} tasks"));
    let (raw_put, raw_commits) = {
        let fresh = backend.fresh("raw").await?;
        let store = Arc::clone(&fresh.store);
        let payloads = Arc::clone(payloads);
        let phase = closed_loop("raw store put", n, c, PHASE_LIMIT, move |i| {
            let store = Arc::clone(&store);
            let value = payloads[i].clone();
            async move {
                let key = format!("/registry/pods/default/{}", pod_name(i));
                store
                    .create(&key, value)
                    .await
                    .map(drop)
                    .map_err(|e| BenchError::new(format!("store create {key}: {e}")))
            }
        });
        fresh.counting_commits(phase).await?
    };

    progress(&format!(
        "{name}: registry create (in process, no HTTP), {n} pods from {c} tasks"
    ));
    let (registry_create, registry_commits) = {
        let fresh = backend.fresh("registry").await?;
        let registry = Registry::new(Arc::clone(&fresh.store), RegistryConfig::default())
            .await
            .map_err(|e| BenchError::new(format!("starting the registry: {e}")))?;
        let pods = resources::lookup("", "v1", "pods")
            .ok_or_else(|| BenchError::new("the registry serves no v1 pods"))?;
        let payloads = Arc::clone(payloads);
        let phase = closed_loop("registry create", n, c, PHASE_LIMIT, move |i| {
            let registry = Arc::clone(&registry);
            let body = payloads[i].clone();
            async move {
                // Parsing the body is part of the server's work, as in the HTTP phase.
                let body = serde_json::from_slice(&body)
                    .map_err(|e| BenchError::new(format!("pod JSON: {e}")))?;
                registry
                    .create(pods, Some("default"), body, &WriteOptions::default())
                    .await
                    .map(drop)
                    .map_err(|e| BenchError::new(format!("registry create: {e}")))
            }
        });
        fresh.counting_commits(phase).await?
    };

    let fresh = backend.fresh("api").await?;
    let server = InProcessApi::start(Arc::clone(&fresh.store)).await?;
    let client = pooled_client(c)?;
    let pods = format!("{}{PODS}", server.base);

    progress(&format!(
        "{name}: API create, {n} POST pods over {c} connections"
    ));
    let (api_create, api_commits) = {
        let (client, pods, payloads) = (client.clone(), pods.clone(), Arc::clone(payloads));
        let phase = closed_loop("API create", n, c, PHASE_LIMIT, move |i| {
            let request = client
                .post(&pods)
                .header("content-type", "application/json")
                .body(payloads[i].clone());
            async move {
                expect(request, StatusCode::CREATED, "POST pod")
                    .await
                    .map(drop)
            }
        });
        fresh.counting_commits(phase).await?
    };

    progress(&format!("{name}: API get, {} GET pod", config.gets));
    let api_get = {
        let (client, pods) = (client.clone(), pods.clone());
        closed_loop("API get", config.gets, c, PHASE_LIMIT, move |_| {
            let name = pod_name(rand::random_range(0..n));
            let request = client.get(format!("{pods}/{name}"));
            async move { expect(request, StatusCode::OK, "GET pod").await.map(drop) }
        })
        .await?
    };

    progress(&format!(
        "{name}: API list, {} lists of all {n} pods",
        config.full_lists
    ));
    let list_all = list_phase(
        &client,
        ListSpec {
            what: "list all pods",
            lists: config.full_lists,
            concurrency: config.full_list_concurrency,
            url: Box::new(move |_| pods.clone()),
            items: Box::new(move |_| n),
        },
    )
    .await?;

    progress(&format!(
        "{name}: API list by label, {} lists of ~{} pods",
        config.selected_lists,
        n / SHARDS
    ));
    let base = format!("{}{PODS}", server.base);
    let list_selected = list_phase(
        &client,
        ListSpec {
            what: "list pods by label",
            lists: config.selected_lists,
            concurrency: c,
            url: Box::new(move |i| format!("{base}?labelSelector=shard%3D{}", i % SHARDS)),
            items: Box::new(move |i| pods_in_shard(n, i % SHARDS)),
        },
    )
    .await?;

    progress(&format!(
        "{name}: watch fan-out, {} watchers x {} events",
        config.watch.watchers, config.watch.events
    ));
    let watch = watch::fan_out(&server.base, &client, config.watch).await?;
    server.stop().await?;

    Ok(BackendReport::new(
        name,
        Measured {
            raw_put,
            registry_create,
            api_create,
            api_get,
            list_all,
            list_selected,
            watch,
            writes_per_commit: WritesPerCommit::new(n, raw_commits, registry_commits, api_commits),
        },
    ))
}

/// A list phase: list `i` fetches `url(i)`, which must hold `items(i)` objects.
struct ListSpec {
    what: &'static str,
    lists: usize,
    concurrency: usize,
    url: Box<dyn Fn(usize) -> String + Send + Sync>,
    items: Box<dyn Fn(usize) -> usize + Send + Sync>,
}

/// Checks once (untimed) that a list returns the expected items, then times `lists` lists
/// that only read the body, so client-side JSON parsing of megabytes is not in the figure.
async fn list_phase(client: &reqwest::Client, spec: ListSpec) -> Result<ListResult, BenchError> {
    let first = expect(client.get((spec.url)(0)), StatusCode::OK, spec.what).await?;
    let listed: serde_json::Value = serde_json::from_slice(&first)
        .map_err(|e| BenchError::new(format!("{}: not JSON: {e}", spec.what)))?;
    let got = listed["items"].as_array().map_or(0, Vec::len);
    if got != (spec.items)(0) {
        return Err(BenchError::new(format!(
            "{}: listed {got} items, expected {}",
            spec.what,
            (spec.items)(0)
        )));
    }
    let items: usize = (0..spec.lists).map(|i| (spec.items)(i)).sum();
    let client = client.clone();
    let what = spec.what;
    let url = spec.url;
    let throughput = closed_loop(what, spec.lists, spec.concurrency, PHASE_LIMIT, move |i| {
        let request = client.get(url(i));
        async move { expect(request, StatusCode::OK, what).await.map(drop) }
    })
    .await?;
    Ok(ListResult::new(throughput, items))
}

fn progress(msg: &str) {
    eprintln!("skiff bench: {msg}");
}

/// Raises the soft open-files limit to at least `needed` (up to the hard limit): 1,000 watchers
/// are 2,000 loopback sockets in this one process, more than the common soft limit of 1,024.
fn raise_nofile_limit(needed: u64) -> Result<(), BenchError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass a valid pointer to.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(BenchError::new(format!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        )));
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    if limit.rlim_max < needed {
        return Err(BenchError::new(format!(
            "need {needed} open files but the hard limit is {}; lower --watchers or raise it",
            limit.rlim_max
        )));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit only reads the struct we pass a valid pointer to.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(BenchError::new(format!(
            "setrlimit(RLIMIT_NOFILE, {needed}): {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
