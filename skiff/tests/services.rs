//! The Service proxy with real packets (root + CNI plugins; CI runs as root): a real `skiff
//! server` (API server + EndpointSlice controller), a proxy programming a throwaway node
//! network namespace with nftables, and pods that are real CNI sandboxes whose servers answer
//! with the pod's name (`kubelet::proxy::testbed`). The test plays the kubelet's part for the
//! pods' status (IP, readiness), so the EndpointSlices are the controller's own, named
//! targetPorts included.

mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubelet::proxy::nftables::Nft;
use kubelet::proxy::testbed::{Bed, BedPod, NameServer, fetch_many};
use kubelet::proxy::{Proxy, ProxyConfig, ProxyMode};
use runtime::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{TestServer, wait_for};

const TIMEOUT: Duration = Duration::from_secs(3);

fn can_run(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let plugins = Path::new("/usr/lib/cni/bridge").is_file();
    let nft = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok();
    if !(root && plugins && nft) {
        eprintln!("skipping {test}: needs root, nft and the CNI plugins (CI has them)");
    }
    root && plugins && nft
}

/// Creates the API pod for a bed pod and reports it Running with its IP, ready or not.
async fn publish_pod(pods: &Api<Pod>, pod: &BedPod, ready: bool) {
    let spec: Pod = serde_json::from_value(json!({
        "metadata": {"name": pod.name, "labels": {"app": "web"}},
        "spec": {
            "nodeName": "bed-node",
            "containers": [{"name": "web", "image": "busybox",
                            "ports": [{"name": "http", "containerPort": 8080}]}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &spec)
        .await
        .expect("create pod");
    set_ready(pods, pod, ready).await;
}

async fn set_ready(pods: &Api<Pod>, pod: &BedPod, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running",
        "podIP": pod.ip.to_string(),
        "podIPs": [{"ip": pod.ip.to_string()}],
        "conditions": [{"type": "Ready", "status": status}],
    }});
    pods.patch_status(&pod.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("pod status");
}

/// `nft list table ip skiff` in the node namespace (empty when absent).
fn table(nft: &Nft) -> String {
    nft.list_table().expect("nft list").unwrap_or_default()
}

/// Waits until the node's table satisfies `check`; returns when it first did.
async fn wait_table(nft: &Nft, what: &str, check: impl Fn(&str) -> bool) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if check(&table(nft)) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the table never showed {what}:\n{}",
            table(nft)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Answers by pod name for `count` requests to `addr` from inside `netns`; every request
/// must succeed.
fn tally(netns: &Path, addr: SocketAddr, count: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for answer in fetch_many(netns, addr, count, TIMEOUT).expect("client thread") {
        let name = answer.unwrap_or_else(|e| panic!("request to {addr} failed: {e}"));
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_and_node_port_balance_over_ready_pods() {
    if !can_run("cluster_ip_and_node_port_balance_over_ready_pods") {
        return;
    }
    let server = TestServer::start_server().await;
    let client = server.runtime_client();
    let bed = Bed::new("10.244.7.0/24").expect("node namespace with a pod network");
    let nft = Nft::new(Some(bed.node_netns()));

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut web = Vec::new();
    let mut servers = Vec::new();
    for i in 0..3 {
        let pod = bed.add_pod(&format!("web-{i}")).expect("pod sandbox");
        servers.push(NameServer::start(&pod.netns, 8080, &pod.name).expect("server"));
        publish_pod(&pods_api, &pod, true).await;
        web.push(pod);
    }
    let svc_api: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    let svc = svc_api
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    let spec = svc.spec.unwrap();
    let cluster_ip: Ipv4Addr = spec.cluster_ip.unwrap().parse().unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap() as u16;

    let mut config = ProxyConfig::new(ProxyMode::Nftables, bed.gateway().into());
    config.netns = Some(bed.node_netns().to_path_buf());
    let proxy = Proxy::start(client.clone(), config)
        .await
        .expect("proxy")
        .expect("nftables proxy");
    // The named targetPort `http` resolved to 8080 by the EndpointSlice controller.
    wait_table(&nft, "the three endpoints", |t| {
        web.iter().all(|p| t.contains(&format!("{} . 8080", p.ip)))
    })
    .await;

    // 300 requests to the ClusterIP from a client pod: every pod gets at least 20 %.
    let client_pod = bed.add_pod("client").expect("client sandbox");
    let counts = tally(&client_pod.netns, SocketAddr::from((cluster_ip, 80)), 300);
    eprintln!("ClusterIP answers: {counts:?}");
    for p in &web {
        let n = counts.get(&p.name).copied().unwrap_or(0);
        assert!(n >= 60, "{} answered {n} of 300: {counts:?}", p.name);
    }

    // The NodePort on the node's address answers too (masqueraded, so replies return).
    let counts = tally(
        &client_pod.netns,
        SocketAddr::from((bed.gateway(), node_port)),
        30,
    );
    assert_eq!(counts.values().sum::<usize>(), 30, "{counts:?}");

    // A pod reaching itself through the Service (hairpin) gets answers, its own included.
    let counts = tally(&web[0].netns, SocketAddr::from((cluster_ip, 80)), 30);
    assert!(counts.contains_key("web-0"), "hairpin: {counts:?}");

    // A pod turned not ready: out of the rules within 1 s of its EndpointSlice change.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    set_ready(&pods_api, &web[2], false).await;
    let gone = web[2].ip.to_string();
    let slice_changed = wait_for(
        "the slice to mark web-2 not ready",
        Duration::from_secs(30),
        || {
            let slices = slices.clone();
            let gone = gone.clone();
            async move {
                let list = slices
                    .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                    .await
                    .ok()?;
                let not_ready = list.items.iter().flat_map(|s| &s.endpoints).any(|e| {
                    e.addresses.contains(&gone)
                        && e.conditions.as_ref().and_then(|c| c.ready) == Some(false)
                });
                not_ready.then(Instant::now)
            }
        },
    )
    .await;
    let rule_changed = wait_table(&nft, "web-2 gone", |t| {
        !t.contains(&format!("{gone} . 8080"))
    })
    .await;
    let lag = rule_changed.saturating_duration_since(slice_changed);
    eprintln!("EndpointSlice change to rule change: {lag:?}");
    assert!(
        lag <= Duration::from_secs(1),
        "rules updated {lag:?} after the slice"
    );
    let counts = tally(&client_pod.netns, SocketAddr::from((cluster_ip, 80)), 100);
    assert!(
        !counts.contains_key("web-2"),
        "a not-ready pod got traffic: {counts:?}"
    );
    assert_eq!(counts.values().sum::<usize>(), 100);

    // sessionAffinity ClientIP: every request of the client goes to one pod.
    svc_api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}})),
        )
        .await
        .expect("affinity");
    wait_table(&nft, "affinity sets", |t| {
        t.contains("set aff-default/web/tcp/80/")
    })
    .await;
    let counts = tally(&client_pod.netns, SocketAddr::from((cluster_ip, 80)), 50);
    assert_eq!(counts.len(), 1, "affinity did not stick: {counts:?}");

    // A Service without endpoints is refused at once, not left to time out.
    let empty: Service = serde_json::from_value(json!({
        "metadata": {"name": "empty"},
        "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    let empty = svc_api
        .create(&PostParams::default(), &empty)
        .await
        .expect("service");
    let empty_ip: Ipv4Addr = empty.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    wait_table(&nft, "the empty service rejected", |t| {
        t.contains(&format!("{empty_ip} . tcp . 80"))
    })
    .await;
    let started = Instant::now();
    let answers = fetch_many(
        &client_pod.netns,
        SocketAddr::from((empty_ip, 80)),
        1,
        TIMEOUT,
    )
    .expect("client thread");
    let err = answers
        .into_iter()
        .next()
        .unwrap()
        .expect_err("no endpoints");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));

    // Stopping the proxy removes its table.
    proxy.stop().await.expect("stop");
    assert_eq!(nft.list_table().expect("nft list"), None);
    drop(servers);
}

/// One HTTP/1.0 GET of `/` from `addr`; the body.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect_timeout(&addr, TIMEOUT)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    Ok(reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// The `process` runtime's userspace proxy: a NodePort on the node's address relays to the
/// Service's ready pods (host processes), round-robin; the named targetPort resolves to a
/// different number in each pod.
#[tokio::test]
async fn userspace_proxy_serves_node_ports_for_process_pods() {
    let server = TestServer::start_server().await;
    let _agent = support::agent::TestAgent::start(
        &server,
        "proc-proxy",
        "process",
        &["--proxy", "userspace"],
    )
    .await;
    let client = server.runtime_client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in ["web-a", "web-b"] {
        let port = support::free_port();
        let script = format!(
            "mkdir -p www && echo {name} > www/index.html && exec busybox httpd -f -p 127.0.0.1:{port} -h www"
        );
        let spec = json!({"nodeName": "proc-proxy", "containers": [{
            "name": "main", "image": "busybox", "command": ["sh", "-c", script],
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
        }]});
        let mut pod = support::agent::pod(name, spec);
        pod.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        support::agent::create(&pods, pod).await;
    }
    let svc_api: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    let svc = svc_api
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    let node_port = svc.spec.unwrap().ports.unwrap()[0].node_port.unwrap() as u16;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, node_port));
    // Wait until both pods are behind the NodePort...
    let batch = move || async move {
        let answers = tokio::task::spawn_blocking(move || {
            (0..20).map(|_| http_get(addr)).collect::<Vec<_>>()
        })
        .await
        .ok()?;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for a in answers {
            *counts.entry(a.ok()?).or_insert(0) += 1;
        }
        Some(counts)
    };
    wait_for(
        "both pods behind the NodePort",
        Duration::from_secs(60),
        || async move { batch().await.filter(|c| c.len() == 2) },
    )
    .await;
    // ...then a fresh batch (the one that saw both may have begun before the second pod was
    // ready): round-robin alternates from whatever position it starts at.
    let counts = batch().await.expect("every request answered");
    assert_eq!(counts.get("web-a"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("web-b"), Some(&10), "{counts:?}");
}

/// Endpoint IPs of Service `default/name` that its EndpointSlices mark ready.
async fn ready_endpoints(slices: &Api<EndpointSlice>, name: &str) -> Vec<String> {
    let Ok(list) = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
        .await
    else {
        return Vec::new();
    };
    let mut ips: Vec<String> = list
        .items
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .flat_map(|e| e.addresses.first().cloned())
        .collect();
    ips.sort();
    ips
}

/// The full path with real agents in lab node namespaces (`--proxy nftables`): a Deployment
/// of busybox httpd pods answering with their names behind a NodePort Service with a named
/// targetPort; a client pod's 300 wget requests to the ClusterIP; an exec readiness probe
/// turned false takes a pod out; scaling up reaches the node's rules within 1 s of the
/// EndpointSlice change; the NodePort answers the host on the node's address.
///
/// The web pods are spread over both nodes (topology spread, max skew 1), the client runs on
/// node-a, so requests cross the nodes through the host-gw routes; NodePorts are tried on both
/// node addresses, reaching pods on either node (masqueraded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_in_lab_nodes_proxy_a_deployment() {
    if !support::cluster::root_or_skip("agents_in_lab_nodes_proxy_a_deployment") {
        return;
    }
    let c = support::cluster::TwoNodeCluster::start_with(&[], &["--proxy", "nftables"]).await;
    let node = c.node_name(0).to_string();
    let nft = Nft::new(Some(c.node_netns(0)));
    let script = "mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www";
    c.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "topologySpreadConstraints": [{"maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "web"}}}],
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "web", "image": "busybox:latest",
                    "imagePullPolicy": "Never", "command": ["sh", "-c", script],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                                       "periodSeconds": 1, "failureThreshold": 1}}]}}},
    }))
    .await;
    let svc = c
        .create(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }))
        .await;
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    c.create(support::cluster::busybox_pod("client", &node, "sleep 3600"))
        .await;
    c.wait_running("client").await;

    let slices: Api<EndpointSlice> = Api::namespaced(c.server.runtime_client(), "default");
    let ready = wait_for("3 ready endpoints", Duration::from_secs(90), || {
        let slices = slices.clone();
        async move {
            let ips = ready_endpoints(&slices, "web").await;
            (ips.len() == 3).then_some(ips)
        }
    })
    .await;
    wait_table(&nft, "the three endpoints", |t| {
        ready.iter().all(|ip| t.contains(&format!("{ip} . 8080")))
    })
    .await;

    // 300 requests from inside a pod: every pod answers at least 20 % of them.
    let loop_300 = format!(
        "for i in $(seq 300); do timeout 5 wget -qO- http://{cluster_ip}/ || echo FAILED; done"
    );
    let out = c.exec("client", &["sh", "-c", &loop_300]);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in out.stdout.lines() {
        *counts.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    eprintln!("answers: {counts:?}");
    assert_eq!(counts.len(), 3, "{counts:?} ({})", out.stderr);
    assert!(counts.values().all(|n| *n >= 60), "{counts:?}");
    let pod_names: Vec<String> = counts.keys().cloned().collect();

    // A pod turned not ready (its probe file removed) gets nothing.
    let sick = &pod_names[0];
    let rm = c.exec(sick, &["rm", "/tmp/ready"]);
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    wait_for("2 ready endpoints", Duration::from_secs(30), || {
        let slices = slices.clone();
        async move { (ready_endpoints(&slices, "web").await.len() == 2).then_some(()) }
    })
    .await;
    let remaining = ready_endpoints(&slices, "web").await;
    wait_table(&nft, "only the ready endpoints", |t| {
        t.matches(" . 8080").count() == 2 && remaining.iter().all(|ip| t.contains(ip.as_str()))
    })
    .await;
    let loop_100 = loop_300.replace("seq 300", "seq 100");
    let out = c.exec("client", &["sh", "-c", &loop_100]);
    assert_eq!(out.stdout.lines().count(), 100, "{}", out.stderr);
    assert!(
        !out.stdout.contains(sick.as_str()),
        "a not-ready pod answered"
    );
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);

    // Scaling up: the new endpoint is in the node's rules within 1 s of its slice change.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(c.server.runtime_client(), "default");
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .expect("scale");
    let (new_ip, slice_changed) = wait_for("a fourth endpoint", Duration::from_secs(90), || {
        let slices = slices.clone();
        let before = remaining.clone();
        async move {
            let ips = ready_endpoints(&slices, "web").await;
            let seen = Instant::now();
            ips.into_iter()
                .find(|ip| !before.contains(ip))
                .map(|ip| (ip, seen))
        }
    })
    .await;
    let rule_changed = wait_table(&nft, "the new endpoint", |t| {
        t.contains(&format!("{new_ip} . 8080"))
    })
    .await;
    let lag = rule_changed.saturating_duration_since(slice_changed);
    eprintln!("EndpointSlice change to rule: {lag:?}");
    assert!(
        lag <= Duration::from_secs(1),
        "rules updated {lag:?} after the slice"
    );

    // The web pods run on both nodes.
    let pods = c
        .pods("default")
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods");
    let nodes: std::collections::BTreeSet<String> = pods
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    assert_eq!(nodes.len(), 2, "web pods on {nodes:?}");

    // The NodePort answers the host on both node addresses (each node's rules, endpoints on
    // either node).
    for i in 0..2 {
        let nft = Nft::new(Some(c.node_netns(i)));
        wait_table(&nft, "the new endpoint", |t| {
            t.contains(&format!("{new_ip} . 8080"))
        })
        .await;
        let addr = SocketAddr::from((c.node_ip(i), node_port));
        let answers = tokio::task::spawn_blocking(move || {
            (0..12).map(|_| http_get(addr)).collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let names: std::collections::BTreeSet<String> = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|e| panic!("NodePort on {addr}: {e}")))
            .collect();
        assert!(names.iter().all(|n| n.starts_with("web-")), "{names:?}");
        assert!(
            names.len() >= 2,
            "NodePort on {addr} reached only {names:?}"
        );
    }
}
