//! The objects the benchmark writes.

use bytes::Bytes;
use serde_json::{Value, json};

/// Pods carry `shard=<i % SHARDS>` so a label-selected list returns about `objects / SHARDS`.
pub const SHARDS: usize = 100;

/// The name of the `i`-th benchmark pod.
pub fn pod_name(i: usize) -> String {
    format!("bench-{i:06}")
}

/// How many of the pods `0..objects` carry `shard=<shard>`.
pub fn pods_in_shard(objects: usize, shard: usize) -> usize {
    objects / SHARDS + usize::from(shard < objects % SHARDS)
}

/// A realistic Pod (about 1.5 KB of JSON): labels and annotations like a Deployment's pod, an
/// app container with env, ports, resources, probes and mounts, and a sidecar. Both the raw
/// store phase and the API phase write exactly these bytes, so their rates are comparable.
pub fn pod(i: usize, namespace: &str) -> Bytes {
    let name = pod_name(i);
    let shard = (i % SHARDS).to_string();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app": "bench",
                "tier": "backend",
                "shard": shard,
                "pod-template-hash": "5d8f7c9b6d",
            },
            "annotations": {
                "skiff.dev/bench": "apiserver",
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.internal/bench/app:1.27.3",
                    "args": ["--listen=:8080", "--metrics=:9090", "--log-level=info"],
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                    ],
                    "env": [
                        {"name": "POD_SHARD", "value": shard},
                        {"name": "CACHE_SIZE_MB", "value": "256"},
                        {"name": "UPSTREAM_URL", "value": "http://upstream.bench.svc:8080"},
                    ],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080},
                        "periodSeconds": 5,
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/livez", "port": 8080},
                        "initialDelaySeconds": 10,
                        "periodSeconds": 10,
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/app", "readOnly": true},
                        {"name": "scratch", "mountPath": "/tmp"},
                    ],
                },
                {
                    "name": "log-shipper",
                    "image": "registry.example.internal/bench/shipper:0.9.1",
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "volumeMounts": [{"name": "scratch", "mountPath": "/var/log/app"}],
                },
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "bench-config"}},
                {"name": "scratch", "emptyDir": {}},
            ],
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
    });
    Bytes::from(serde_json::to_vec(&pod).expect("a json! value serialises"))
}

/// The ConfigMap the watch phase updates; `seq` tells watchers which write an event is.
pub fn watched_config_map(name: &str, seq: i64, resource_version: Option<&str>) -> Value {
    let mut cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"seq": seq.to_string()},
    });
    if let Some(rv) = resource_version {
        cm["metadata"]["resourceVersion"] = json!(rv);
    }
    cm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_is_about_one_and_a_half_kilobytes() {
        let len = pod(12345, "default").len();
        assert!((1200..=2000).contains(&len), "pod is {len} bytes");
    }

    #[test]
    fn shard_counts_add_up() {
        for objects in [0, 1, 99, 100, 101, 20_000, 20_057] {
            let total: usize = (0..SHARDS).map(|s| pods_in_shard(objects, s)).sum();
            assert_eq!(total, objects);
            let shard7 = (0..objects).filter(|i| i % SHARDS == 7).count();
            assert_eq!(pods_in_shard(objects, 7), shard7);
        }
    }
}
