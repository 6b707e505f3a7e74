//! The cluster DNS of a real `skiff server`, queried over UDP and TCP on its listen address:
//! Service, headless Service (pods of a simulated node behind it), SRV, pod names, NXDOMAIN
//! for unknown and (with `--dns-upstream none`) outside names, records following changes;
//! and the `kube-system/kube-dns` Service, EndpointSlice and Endpoints the server keeps.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use dns::proto::op::{Message, Query, ResponseCode};
use dns::proto::rr::{Name, RecordType};
use dns::upstream::{Transport, ask};
use kubelet::simulated::{Fleet, FleetConfig};
use serde_json::{Value, json};
use support::{TestServer, wait_for};

const DEADLINE: Duration = Duration::from_secs(20);

/// A `skiff server` whose DNS listens on a free loopback port and forwards nothing.
async fn server() -> TestServer {
    TestServer::start_server_with(&["--dns-listen", "127.0.0.1:0", "--dns-upstream", "none"]).await
}

/// The DNS address, as the kube-dns EndpointSlice publishes it.
async fn dns_addr(server: &TestServer) -> SocketAddr {
    let api = server.client();
    wait_for("the kube-dns EndpointSlice", DEADLINE, || {
        let api = api.clone();
        async move {
            let r = api
                .get("/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns")
                .await;
            let s = (r.code == 200).then_some(r.body)?;
            let ip = s["endpoints"][0]["addresses"][0].as_str()?;
            let port = s["ports"][0]["port"].as_u64()?;
            format!("{ip}:{port}").parse().ok()
        }
    })
    .await
}

async fn query(addr: SocketAddr, name: &str, t: RecordType, transport: Transport) -> Message {
    let q = Query::query(Name::from_ascii(name).expect("name"), t);
    ask(addr, &q, transport).await.expect("DNS answer")
}

/// Response code and answer data (as text, sorted).
async fn lookup(addr: SocketAddr, name: &str, t: RecordType) -> (ResponseCode, Vec<String>) {
    let reply = query(addr, name, t, Transport::Udp).await;
    let mut data: Vec<String> = reply
        .answers()
        .iter()
        .map(|r| r.data().to_string())
        .collect();
    data.sort();
    (reply.response_code(), data)
}

/// Waits until `name` answers `want` (code and data).
async fn wait_answer(addr: SocketAddr, name: &str, t: RecordType, want: (ResponseCode, Vec<&str>)) {
    let want = (
        want.0,
        want.1.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let mut last = None;
    let found = tokio::time::timeout(DEADLINE, async {
        loop {
            let got = lookup(addr, name, t).await;
            if got == want {
                return;
            }
            last = Some(got);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "{name} {t}: want {want:?}, last answer {last:?}"
    );
}

async fn create(server: &TestServer, path: &str, body: Value) -> Value {
    let r = server.client().post(path, &body).await;
    assert_eq!(r.code, 201, "create {path}: {}", r.body);
    r.body
}

#[tokio::test]
async fn services_pods_and_unknown_names() {
    let server = server().await;
    let addr = dns_addr(&server).await;
    let svc = create(
        &server,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    )
    .await;
    let ip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_string();
    let web = "web.default.svc.cluster.local.";
    wait_answer(addr, web, RecordType::A, (ResponseCode::NoError, vec![&ip])).await;
    // The same over TCP, authoritative.
    let reply = query(addr, web, RecordType::A, Transport::Tcp).await;
    assert!(reply.authoritative());
    assert_eq!(reply.answers()[0].data().to_string(), ip);
    // SRV names the port, with the Service as target.
    let (code, srv) = lookup(
        addr,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        (code, srv),
        (ResponseCode::NoError, vec![format!("0 100 80 {web}")])
    );
    // Pods by dashed address; unknown names; outside names with --dns-upstream none.
    assert_eq!(
        lookup(addr, "10-244-1-5.default.pod.cluster.local.", RecordType::A).await,
        (ResponseCode::NoError, vec!["10.244.1.5".to_string()])
    );
    for name in [
        "nope.default.svc.cluster.local.",
        "web.nope.svc.cluster.local.",
        "example.com.",
    ] {
        assert_eq!(
            lookup(addr, name, RecordType::A).await,
            (ResponseCode::NXDomain, vec![]),
            "{name}"
        );
    }
    // The kube-dns Service itself resolves to its ClusterIP.
    assert_eq!(
        lookup(
            addr,
            "kube-dns.kube-system.svc.cluster.local.",
            RecordType::A
        )
        .await,
        (ResponseCode::NoError, vec!["10.96.0.10".to_string()])
    );
    // Records follow the cluster: the Service deleted, its name goes.
    let r = server
        .client()
        .delete("/api/v1/namespaces/default/services/web", None)
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    wait_answer(addr, web, RecordType::A, (ResponseCode::NXDomain, vec![])).await;
}

#[tokio::test]
async fn headless_service_answers_with_ready_pods() {
    let server = server().await;
    let addr = dns_addr(&server).await;
    let _fleet = Fleet::start(
        server.runtime_client(),
        FleetConfig {
            nodes: 1,
            name_prefix: "dns-".into(),
            ..FleetConfig::default()
        },
    )
    .await
    .expect("simulated node");
    create(
        &server,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None",
            "selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432}]}}),
    )
    .await;
    for i in 0..2 {
        create(
            &server,
            "/api/v1/namespaces/default/pods",
            json!({"metadata": {"name": format!("db-{i}"), "labels": {"app": "db"}},
                "spec": {"nodeName": "dns-0", "hostname": format!("db-{i}"), "subdomain": "db",
                    "containers": [{"name": "c", "image": "postgres",
                        "ports": [{"name": "pg", "containerPort": 5432}]}]}}),
        )
        .await;
    }
    let api = server.client();
    let ips: Vec<String> = wait_for("both pods running with IPs", DEADLINE, || {
        let api = api.clone();
        async move {
            let r = api.get("/api/v1/namespaces/default/pods").await;
            let mut ips: Vec<String> = r.body["items"]
                .as_array()?
                .iter()
                .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
                .collect();
            ips.sort();
            (ips.len() == 2).then_some(ips)
        }
    })
    .await;
    let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    wait_answer(
        addr,
        "db.default.svc.cluster.local.",
        RecordType::A,
        (ResponseCode::NoError, ip_refs.clone()),
    )
    .await;
    // Each pod by its hostname under the Service.
    let db0 = lookup(addr, "db-0.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(db0.0, ResponseCode::NoError);
    assert_eq!(db0.1.len(), 1);
    assert!(ips.contains(&db0.1[0]), "{db0:?} not in {ips:?}");
    // SRV: one per pod, targets the pods' names, their addresses in the additional section.
    let reply = query(
        addr,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
        Transport::Udp,
    )
    .await;
    let mut targets: Vec<String> = reply
        .answers()
        .iter()
        .map(|r| r.data().to_string())
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec![
            "0 50 5432 db-0.db.default.svc.cluster.local.".to_string(),
            "0 50 5432 db-1.db.default.svc.cluster.local.".to_string(),
        ]
    );
    let mut extra: Vec<String> = reply
        .additionals()
        .iter()
        .map(|r| r.data().to_string())
        .collect();
    extra.sort();
    assert_eq!(extra, ips);
    // A pod deleted leaves the answer.
    let r = api
        .delete(
            "/api/v1/namespaces/default/pods/db-1?gracePeriodSeconds=0",
            None,
        )
        .await;
    assert!(r.code == 200 || r.code == 202, "{}", r.body);
    let db0_ip = db0.1[0].as_str();
    wait_answer(
        addr,
        "db.default.svc.cluster.local.",
        RecordType::A,
        (ResponseCode::NoError, vec![db0_ip]),
    )
    .await;
}

#[tokio::test]
async fn kube_dns_service_is_kept() {
    let server = server().await;
    let addr = dns_addr(&server).await;
    let api = server.client();
    let svc = "/api/v1/namespaces/kube-system/services/kube-dns";
    let slice = "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns";
    let eps = "/api/v1/namespaces/kube-system/endpoints/kube-dns";
    let check = |addr: SocketAddr| {
        let api = api.clone();
        async move {
            let s = api.get(svc).await;
            let sl = api.get(slice).await;
            let e = api.get(eps).await;
            if s.code != 200 || sl.code != 200 || e.code != 200 {
                return None;
            }
            Some((s.body, sl.body, e.body, addr))
        }
    };
    let (s, sl, e, _) = wait_for("kube-dns objects", DEADLINE, || check(addr)).await;
    assert_eq!(s["spec"]["clusterIP"], "10.96.0.10");
    assert!(s["spec"].get("selector").is_none(), "{s}");
    let port = i64::from(addr.port());
    assert_eq!(
        s["spec"]["ports"],
        json!([
            {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": port},
            {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": port},
        ])
    );
    assert_eq!(
        sl["metadata"]["labels"]["kubernetes.io/service-name"],
        "kube-dns"
    );
    assert_ne!(
        sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(sl["endpoints"][0]["addresses"], json!(["127.0.0.1"]));
    assert_eq!(e["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
    assert_eq!(e["subsets"][0]["ports"][0]["port"], port);
    // Deleted, each comes back (a new object: another uid).
    let uids = [&s, &sl, &e].map(|o| {
        o["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    // (The Endpoints controller may get to the Endpoints first, as it deletes the Endpoints
    // of a deleted Service.)
    for path in [svc, slice, eps] {
        let r = api.delete(path, None).await;
        assert!(r.code == 200 || r.code == 404, "delete {path}: {}", r.body);
    }
    wait_for("kube-dns objects recreated", DEADLINE, || {
        let (check, uids) = (check(addr), uids.clone());
        async move {
            let (s, sl, e, _) = check.await?;
            let now = [&s, &sl, &e].map(|o| {
                o["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
            (now.iter().zip(&uids).all(|(a, b)| a != b)).then_some(())
        }
    })
    .await;
    // Tampered ports are put back.
    let r = api
        .patch(
            svc,
            "application/merge-patch+json",
            &json!({"spec": {"ports": [{"name": "x", "port": 99, "protocol": "TCP"}]}}).to_string(),
        )
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    wait_for("kube-dns ports restored", DEADLINE, || {
        let api = api.clone();
        async move {
            let s = api.get(svc).await;
            (s.body["spec"]["ports"][0]["name"] == "dns").then_some(())
        }
    })
    .await;
}

/// The must-show: in a two-node lab cluster (agents with the nftables proxy, pods'
/// resolv.conf naming the kube-dns ClusterIP), a pod resolves a Service's name through the
/// kube-dns Service (DNATed and masqueraded to the server's DNS on the lab bridge) and
/// reaches the Service by its short name through the search domains.
#[tokio::test]
async fn from_inside_a_pod_the_service_name_resolves_and_answers() {
    use support::cluster::{TwoNodeCluster, busybox_pod, httpd_pod, root_or_skip};
    if !root_or_skip("from_inside_a_pod_the_service_name_resolves_and_answers") {
        return;
    }
    let c = TwoNodeCluster::start_with(&["--dns-upstream", "none"], &["--proxy", "nftables"]).await;
    let node = c.node_name(0).to_string();
    c.create(httpd_pod("web-0", &node)).await;
    let svc = c
        .create(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web-0"}, "ports": [{"name": "http", "port": 80}]}}))
        .await;
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_string();
    c.create(busybox_pod("client", &node, "sleep 3600")).await;
    c.wait_running("web-0").await;
    c.wait_running("client").await;
    // The kubelet pointed the pod at the kube-dns Service with Kubernetes' search path.
    let resolv = c.exec("client", &["cat", "/etc/resolv.conf"]);
    let resolv = resolv.ok();
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("ndots:5"), "{resolv}");
    // The name resolves to the ClusterIP (retried until the proxy has the rules).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = c.exec("client", &["nslookup", "web.default.svc.cluster.local"]);
        if out.code == 0 && out.stdout.contains(&cluster_ip) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nslookup in the pod never gave {cluster_ip}: code {} stdout {} stderr {}",
            out.code,
            out.stdout,
            out.stderr
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // An unknown name does not resolve.
    let out = c.exec("client", &["nslookup", "nope.default.svc.cluster.local"]);
    assert!(
        out.code != 0 || !out.stdout.contains("Name:"),
        "unknown name resolved: {}",
        out.stdout
    );
    // The short name, through the search domains and the Service, answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = c.exec("client", &["timeout", "10", "wget", "-qO-", "http://web"]);
        if out.code == 0 && out.stdout.trim() == "web-0" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wget http://web from the pod: code {} stdout {} stderr {}",
            out.code,
            out.stdout,
            out.stderr
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
