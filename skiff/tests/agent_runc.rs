//! The real node agent with the `runc` driver end to end (root only; CI runs as root): real
//! OCI images in the node's store, runc containers on overlayfs, a network namespace per pod
//! on a CNI bridge, probes, volumes, memory limits, and the real kubectl's `exec` and `logs`.

mod support;

/// Test images and a real `docker-registry` on loopback, shared with the kubelet's tests.
#[path = "../../kubelet/tests/support/mod.rs"]
mod images;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use runtime::{Api, PostParams};
use serde_json::{Value, json};
use support::agent::{TestAgent, create, phase, pod, status_of};
use support::{TestServer, wait_for};

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping {test}: the runc driver needs root; CI runs as root");
    }
    root
}

async fn cluster(node: &str) -> (TestServer, TestAgent) {
    let server = TestServer::start_server().await;
    let agent = TestAgent::start(&server, node, "runc", &[]).await;
    (server, agent)
}

fn busybox(script: &str) -> Value {
    json!({"name": "main", "image": "busybox:latest", "imagePullPolicy": "Never",
           "command": ["sh", "-c", script]})
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn wait_pod(api: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    support::agent::wait_pod(api, name, what, Duration::from_secs(60), check).await
}

#[tokio::test]
async fn pods_reach_each_other_and_readiness_follows_the_probe() {
    if !root_or_skip("pods_reach_each_other_and_readiness_follows_the_probe") {
        return;
    }
    let (server, _agent) = cluster("runc-net").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    let mut web = busybox("httpd -f -p 8080 -h /www");
    web["readinessProbe"] = json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1});
    create(&api, pod("web", json!({"containers": [web]}))).await;
    create(
        &api,
        pod("client", json!({"containers": [busybox("sleep 3600")]})),
    )
    .await;
    let web = wait_pod(&api, "web", "web Ready", pod_ready).await;
    wait_pod(&api, "client", "client Running", |p| phase(p) == "Running").await;
    let ip = web
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("web has a pod IP");
    assert!(
        ip.starts_with("10.244."),
        "pod IP from the node's CIDR: {ip}"
    );
    let out = server.kubectl(&[
        "exec",
        "client",
        "--",
        "wget",
        "-qO-",
        &format!("http://{ip}:8080/"),
    ]);
    assert_eq!(out.ok().trim(), "hello from skiff");

    // Readiness flips both ways with the probe's answer.
    server
        .kubectl(&[
            "exec",
            "web",
            "--",
            "mv",
            "/www/index.html",
            "/www/gone.html",
        ])
        .ok();
    wait_pod(&api, "web", "web not Ready", |p| !pod_ready(p)).await;
    server
        .kubectl(&[
            "exec",
            "web",
            "--",
            "mv",
            "/www/gone.html",
            "/www/index.html",
        ])
        .ok();
    let web = wait_pod(&api, "web", "web Ready again", pod_ready).await;
    assert_eq!(
        status_of(&web).map(|c| c.restart_count),
        Some(0),
        "readiness never restarts"
    );
}

#[tokio::test]
async fn failing_liveness_probe_restarts_the_container() {
    if !root_or_skip("failing_liveness_probe_restarts_the_container") {
        return;
    }
    let (server, _agent) = cluster("runc-live").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    let mut c = busybox("touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600");
    c["livenessProbe"] = json!({"exec": {"command": ["cat", "/tmp/healthy"]},
                                "periodSeconds": 1, "failureThreshold": 1});
    create(&api, pod("live", json!({"containers": [c]}))).await;
    let p = wait_pod(&api, "live", "a liveness restart", |p| {
        status_of(p).is_some_and(|c| c.restart_count >= 1)
    })
    .await;
    let last = status_of(&p)
        .and_then(|c| c.last_state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!(last.exit_code, 137, "killed after the failed probe");
    let events = server.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
    ]);
    assert!(events.ok().contains("Unhealthy"), "{}", events.stdout);
}

#[tokio::test]
async fn memory_limit_gives_oomkilled() {
    if !root_or_skip("memory_limit_gives_oomkilled") {
        return;
    }
    let (server, _agent) = cluster("runc-oom").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    // The shell itself holds the 64 MB, so the container's main process is the one killed.
    let mut c = busybox("x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}");
    c["resources"] = json!({"limits": {"memory": "16Mi"}});
    create(
        &api,
        pod("oom", json!({"restartPolicy": "Never", "containers": [c]})),
    )
    .await;
    let p = wait_pod(&api, "oom", "OOMKilled", |p| {
        status_of(p)
            .and_then(|c| c.state.clone()?.terminated)
            .is_some()
    })
    .await;
    let t = status_of(&p)
        .and_then(|c| c.state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!(t.reason.as_deref(), Some("OOMKilled"), "{t:?}");
    assert_eq!(t.exit_code, 137);
}

#[tokio::test]
async fn configmap_and_secret_volumes_and_env_are_visible_inside() {
    if !root_or_skip("configmap_and_secret_volumes_and_env_are_visible_inside") {
        return;
    }
    let (server, _agent) = cluster("runc-vol").await;
    let client = server.runtime_client();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"color": "blue"}}))
            .expect("cm"),
    )
    .await
    .expect("create cm");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "sec"}, "stringData": {"token": "s3cret"}}),
            )
            .expect("secret"),
        )
        .await
        .expect("create secret");
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut c = busybox("sleep 3600");
    c["volumeMounts"] = json!([
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "sec", "mountPath": "/etc/sec", "readOnly": true},
        {"name": "scratch", "mountPath": "/scratch"},
    ]);
    c["env"] = json!([{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                      {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]);
    create(
        &api,
        pod(
            "vol",
            json!({"containers": [c], "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
                {"name": "scratch", "emptyDir": {}},
            ]}),
        ),
    )
    .await;
    let p = wait_pod(&api, "vol", "vol Running", |p| phase(p) == "Running").await;
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    let out = server.kubectl(&[
        "exec", "vol", "--", "sh", "-c",
        "cat /etc/cfg/color; echo; cat /etc/sec/token; echo; echo $COLOR $POD_IP; hostname; echo x > /scratch/f && cat /scratch/f",
    ]);
    assert_eq!(
        out.ok().lines().collect::<Vec<_>>(),
        vec!["blue", "s3cret", &format!("blue {ip}"), "vol", "x"]
    );
    let denied = server.kubectl(&["exec", "vol", "--", "sh", "-c", "echo no > /etc/sec/token"]);
    assert_ne!(denied.code, 0, "secret volume mounted read-only");
}

#[tokio::test]
async fn restarted_agent_leaves_runc_containers_running() {
    if !root_or_skip("restarted_agent_leaves_runc_containers_running") {
        return;
    }
    let (server, mut agent) = cluster("runc-adopt").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    create(
        &api,
        pod(
            "keep",
            json!({"containers": [busybox("echo started; sleep 3600")]}),
        ),
    )
    .await;
    let before = wait_pod(&api, "keep", "keep Running", |p| phase(p) == "Running").await;
    let id = status_of(&before).and_then(|c| c.container_id.clone());
    agent.kill();
    // The container outlives its agent.
    let alive = server.kubectl(&["get", "pod", "keep", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(alive.ok(), "Running");
    agent.spawn();
    let out = wait_for(
        "exec through the restarted agent",
        Duration::from_secs(60),
        || async {
            let o = server.kubectl(&["exec", "keep", "--", "echo", "still here"]);
            (o.code == 0).then_some(o.stdout)
        },
    )
    .await;
    assert_eq!(out.trim(), "still here");
    let after = api.get("keep").await.expect("keep");
    let c = status_of(&after).cloned().unwrap_or_default();
    assert_eq!(c.restart_count, 0);
    assert_eq!(c.container_id, id);
    let logs = server.kubectl(&["logs", "keep"]);
    assert_eq!(logs.ok().trim(), "started");
    // `skiff agent reset` (run when the test agent is dropped) leaves nothing behind.
    let bridge = agent.bridge().to_string();
    let data_dir = agent.data_dir.clone();
    drop(agent);
    let link = std::process::Command::new("ip")
        .args(["link", "show", &bridge])
        .output()
        .expect("ip");
    assert!(!link.status.success(), "bridge {bridge} removed");
    // No shim (their command lines name the container directory) outlives the reset.
    let needle = data_dir.to_string_lossy().into_owned();
    let shims = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .filter(|c| String::from_utf8_lossy(c).contains(&needle))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(shims, 0, "the container's shim is gone");
}

#[tokio::test]
async fn images_come_from_a_registry_or_an_archive_and_a_missing_one_fails() {
    if !root_or_skip("images_come_from_a_registry_or_an_archive_and_a_missing_one_fails") {
        return;
    }
    let registry = images::Registry::start(None).await;
    let pulled = images::TestImage::new(vec![images::base_layer(), images::top_layer("pulled\n")]);
    registry.push("skiff/pulled:1", &pulled).await;
    let (server, agent) = cluster("runc-images").await;
    // The second image shares the base layer and comes from an archive, like `kind load`.
    let archived =
        images::TestImage::new(vec![images::base_layer(), images::top_layer("archived\n")]);
    let archive = agent.data_dir.join("archived.tar");
    archived.write_archive(&archive, "example.com/archived:1");
    let loaded = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["agent", "image", "load"])
        .arg(&archive)
        .arg("--data-dir")
        .arg(&agent.data_dir)
        .output()
        .expect("skiff agent image load");
    assert!(loaded.status.success(), "{loaded:?}");

    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    let show = |image: &str, policy: &str| {
        json!({"name": "main", "image": image, "imagePullPolicy": policy,
               "command": ["/bin/busybox", "sh", "-c", "/bin/busybox cat /etc/top.txt; /bin/busybox sleep 3600"]})
    };
    let from_registry = registry.image("skiff/pulled:1");
    create(
        &api,
        pod(
            "pulled",
            json!({"containers": [show(&from_registry, "IfNotPresent")]}),
        ),
    )
    .await;
    create(
        &api,
        pod(
            "archived",
            json!({"containers": [show("example.com/archived:1", "Never")]}),
        ),
    )
    .await;
    let missing = registry.image("skiff/nope:1");
    create(
        &api,
        pod(
            "missing",
            json!({"containers": [show(&missing, "IfNotPresent")]}),
        ),
    )
    .await;
    for name in ["pulled", "archived"] {
        wait_pod(&api, name, &format!("{name} Running"), |p| {
            phase(p) == "Running"
        })
        .await;
        let logs = wait_for(
            "the image's file in the log",
            Duration::from_secs(30),
            || async {
                let out = server.kubectl(&["logs", name]);
                (out.code == 0 && !out.stdout.is_empty()).then_some(out.stdout)
            },
        )
        .await;
        assert_eq!(logs.trim(), name, "each pod sees its own top layer");
    }
    let p = wait_pod(&api, "missing", "ErrImagePull", |p| {
        status_of(p)
            .and_then(|c| c.state.clone()?.waiting?.reason)
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await;
    let waiting = status_of(&p)
        .and_then(|c| c.state.clone()?.waiting)
        .unwrap_or_default();
    assert!(
        waiting.message.unwrap_or_default().contains("skiff/nope"),
        "the message names the image"
    );
    // The shared base and the two top layers: three unpacked layers, not four (the seeded
    // busybox image is not unpacked until a container uses it).
    let layers = std::fs::read_dir(agent.data_dir.join("images").join("layers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(layers, 3, "the base layer is stored once");
    // The other pods keep running while one cannot pull.
    let pulled = api.get("pulled").await.expect("pulled");
    assert_eq!(phase(&pulled), "Running");
}

#[tokio::test]
async fn kubectl_exec_reports_exit_codes_and_takes_stdin() {
    if !root_or_skip("kubectl_exec_reports_exit_codes_and_takes_stdin") {
        return;
    }
    let (server, _agent) = cluster("runc-exec").await;
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    create(
        &api,
        pod(
            "sh",
            json!({"containers": [busybox("echo ready; sleep 3600")]}),
        ),
    )
    .await;
    wait_pod(&api, "sh", "sh Running", |p| phase(p) == "Running").await;
    let three = server.kubectl(&["exec", "sh", "--", "sh", "-c", "exit 3"]);
    assert_eq!(three.code, 3, "{three:?}");
    let echoed = server.kubectl_stdin(
        &["exec", "-i", "sh", "--", "tr", "a-z", "A-Z"],
        Some("hello\n"),
    );
    assert_eq!(echoed.ok(), "HELLO\n");
    let logs = server.kubectl(&["logs", "sh"]);
    assert_eq!(logs.ok(), "ready\n");
}

#[tokio::test]
async fn volumes_are_mounted_into_containers() {
    if !root_or_skip("volumes_are_mounted_into_containers") {
        return;
    }
    let (server, _agent) = cluster("runc-vol").await;
    let client = server.runtime_client();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let cm = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg"}, "data": {"color": "blue"}}))
    .expect("configmap");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let api: Api<Pod> = Api::namespaced(client, "default");
    // The init container leaves a file in the shared emptyDir; the main container checks
    // every volume and exits 0 only when all are right (a read-only mount must refuse writes).
    let mut init = busybox(
        "echo hi > /scratch/from-init; mkdir -p /scratch/nested; echo hi > /scratch/nested/here",
    );
    init["name"] = json!("init");
    init["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch"}]);
    let mut main = busybox(
        "set -x; test \"$(cat /cfg/color)\" = blue || exit 1; \
         test \"$(cat /scratch/from-init)\" = hi || exit 2; \
         grep -q 'app=\"vol\"' /info/labels || exit 3; \
         test \"$(cat /sub/here)\" = hi || exit 4; \
         if touch /cfg/new 2>/dev/null; then exit 5; fi; exit 0",
    );
    main["volumeMounts"] = json!([
        {"name": "cfg", "mountPath": "/cfg", "readOnly": true},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "scratch", "mountPath": "/sub", "subPath": "nested"},
        {"name": "info", "mountPath": "/info"}
    ]);
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "vol", "namespace": "default", "labels": {"app": "vol"}},
        "spec": {"restartPolicy": "Never", "initContainers": [init], "containers": [main],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
            ]}
    }))
    .expect("pod");
    create(&api, p).await;
    let p = wait_pod(&api, "vol", "the volume checks to finish", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    let t = status_of(&p)
        .and_then(|c| c.state.clone()?.terminated)
        .unwrap_or_default();
    assert_eq!((phase(&p), t.exit_code), ("Succeeded", 0), "{t:?}");
}

#[tokio::test]
async fn private_registry_images_need_the_pods_pull_secret() {
    if !root_or_skip("private_registry_images_need_the_pods_pull_secret") {
        return;
    }
    use base64::Engine as _;
    let registry = images::Registry::start(Some(("skiff", "s3cret"))).await;
    let image = images::TestImage::new(vec![images::base_layer(), images::top_layer("private\n")]);
    registry.push("team/private:1", &image).await;
    let (server, _agent) = cluster("runc-auth").await;
    let client = server.runtime_client();
    let auth = base64::engine::general_purpose::STANDARD.encode("skiff:s3cret");
    let config = json!({"auths": {registry.addr.clone(): {"auth": auth}}}).to_string();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "regcred"},
                "type": "kubernetes.io/dockerconfigjson",
                "stringData": {".dockerconfigjson": config},
            }))
            .expect("secret"),
        )
        .await
        .expect("create pull secret");
    let api: Api<Pod> = Api::namespaced(client, "default");
    let container = json!({"name": "main", "image": registry.image("team/private:1"),
        "command": ["/bin/busybox", "sh", "-c", "/bin/busybox cat /etc/top.txt; /bin/busybox sleep 3600"]});
    create(
        &api,
        pod("anonymous", json!({"containers": [container.clone()]})),
    )
    .await;
    create(
        &api,
        pod(
            "authorized",
            json!({"containers": [container], "imagePullSecrets": [{"name": "regcred"}]}),
        ),
    )
    .await;
    wait_pod(&api, "authorized", "authorized Running", |p| {
        phase(p) == "Running"
    })
    .await;
    let p = wait_pod(&api, "anonymous", "anonymous pull refused", |p| {
        status_of(p)
            .and_then(|c| c.state.clone()?.waiting?.reason)
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await;
    assert_eq!(phase(&p), "Pending");
}

/// The walkthrough's example images: built offline by `skiff agent image build-examples`, the
/// web app answers with its version and pod name and serves its ConfigMap/Secret settings, and
/// the crasher goes into a crash loop.
#[tokio::test]
async fn example_images_build_offline_and_run() {
    if !root_or_skip("example_images_build_offline_and_run") {
        return;
    }
    let (server, agent) = cluster("runc-examples").await;
    let built = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["agent", "image", "build-examples", "--data-dir"])
        .arg(&agent.data_dir)
        .output()
        .expect("skiff agent image build-examples");
    let listing = String::from_utf8_lossy(&built.stdout).to_string();
    assert!(built.status.success(), "{listing} {:?}", built.stderr);
    for image in skiff_examples::IMAGES {
        assert!(listing.contains(image.name), "{} in {listing}", image.name);
    }
    let api: Api<Pod> = Api::namespaced(server.runtime_client(), "default");
    let web = json!({"name": "web", "image": "skiff.local/web:v2",
        "env": [{"name": "GREETING", "value": "hi"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}});
    create(&api, pod("web", json!({"containers": [web]}))).await;
    let crasher = json!({"name": "crasher", "image": "skiff.local/crasher:v1",
        "env": [{"name": "CRASH_AFTER", "value": "0"}]});
    create(&api, pod("crasher", json!({"containers": [crasher]}))).await;
    let web = wait_pod(&api, "web", "web Ready", pod_ready).await;
    let ip = web.status.and_then(|s| s.pod_ip).expect("pod IP");
    let get = |path: &str| {
        let url = format!("http://{ip}:8080{path}");
        async move { reqwest::get(url).await.ok()?.text().await.ok() }
    };
    assert_eq!(get("/").await.as_deref(), Some("web v2 web\n"));
    let config = get("/config").await.unwrap_or_default();
    assert!(config.contains("greeting: hi"), "{config}");
    wait_pod(&api, "crasher", "the crasher restarted", |p| {
        status_of(p).is_some_and(|c| c.restart_count >= 1)
    })
    .await;
    let logs = server.kubectl(&["logs", "crasher", "--previous"]);
    assert!(
        logs.ok().contains("crasher: exiting with status 1"),
        "{}",
        logs.ok()
    );
}
