//! Tests of the patch engine: strategic merge patch directives and merge keys, kubectl's real
//! patches, JSON/merge patch wrappers, malformed input.

use serde_json::{Value, json};

use super::*;

fn smp(group: &str, kind: &str, original: Value, patch: Value) -> Value {
    apply_patch(
        group,
        kind,
        &original,
        PatchType::StrategicMerge,
        patch.to_string().as_bytes(),
    )
    .unwrap_or_else(|e| panic!("patch failed: {e}"))
}

fn smp_err(group: &str, kind: &str, original: Value, patch: &str) -> PatchError {
    apply_patch(
        group,
        kind,
        &original,
        PatchType::StrategicMerge,
        patch.as_bytes(),
    )
    .expect_err("patch should fail")
}

fn deploy(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "default", "labels": {"app": "x"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": containers}
            }
        }
    })
}

fn containers_of(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| match &i[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[test]
fn content_types() {
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json"),
        Some(PatchType::StrategicMerge)
    );
    assert_eq!(
        PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
        Some(PatchType::Merge)
    );
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json"),
        Some(PatchType::Json)
    );
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+yaml"),
        Some(PatchType::Apply)
    );
    assert_eq!(PatchType::from_content_type("application/json"), None);
    assert_eq!(PatchType::from_content_type(""), None);
}

#[test]
fn kubectl_apply_three_way_patch() {
    let live = deploy(json!([
        {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}
    ]));
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
        "spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"image": "nginx:1.26", "name": "web"}]
        }}}
    });
    let out = smp("apps", "Deployment", live, patch);
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        containers_of(&out),
        &json!([{"name": "web", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}])
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}\n"
    );
    assert_eq!(out["metadata"]["labels"]["app"], "x");
}

#[test]
fn kubectl_container_removal() {
    let live = deploy(json!([
        {"name": "web", "image": "nginx"},
        {"name": "sidecar", "image": "busybox"}
    ]));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}]
    }}}});
    let out = smp("apps", "Deployment", live, patch);
    assert_eq!(
        containers_of(&out),
        &json!([{"name": "web", "image": "nginx"}])
    );
}

#[test]
fn kubectl_env_removal() {
    let live = deploy(json!([{
        "name": "web", "image": "nginx",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    }]));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{
            "$setElementOrder/env": [{"name": "A"}],
            "env": [{"$patch": "delete", "name": "B"}],
            "name": "web"
        }]
    }}}});
    let out = smp("apps", "Deployment", live, patch);
    assert_eq!(
        containers_of(&out),
        &json!([{"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}]}])
    );
}

#[test]
fn kubectl_set_image_and_restart() {
    let live = deploy(json!([{"name": "web", "image": "nginx:1.25"}]));
    let out = smp(
        "apps",
        "Deployment",
        live,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"image": "nginx:1.27", "name": "web"}]
        }}}}),
    );
    assert_eq!(containers_of(&out)[0]["image"], "nginx:1.27");
    let out = smp(
        "apps",
        "Deployment",
        out,
        json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2026-11-26T14:13:20Z"
        }}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["metadata"],
        json!({"labels": {"app": "x"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-26T14:13:20Z"}})
    );
}

#[test]
fn cordon_and_uncordon() {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.0.0.0/24"}});
    let out = smp("", "Node", node, json!({"spec": {"unschedulable": true}}));
    assert_eq!(
        out["spec"],
        json!({"podCIDR": "10.0.0.0/24", "unschedulable": true})
    );
    let out = smp("", "Node", out, json!({"spec": {"unschedulable": null}}));
    assert_eq!(out["spec"], json!({"podCIDR": "10.0.0.0/24"}));
}

#[test]
fn null_deletes_keys_and_unmatched_nulls_vanish() {
    let cm = json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
    let out = smp(
        "",
        "ConfigMap",
        cm,
        json!({"metadata": {"labels": {"a": null, "zz": null}}, "data": null, "extra": {"x": null, "y": 1}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "c", "labels": {"b": "2"}}, "extra": {"y": 1}})
    );
}

#[test]
fn merge_keys_of_pod_spec() {
    let pod = json!({"kind": "Pod", "spec": {
        "containers": [{"name": "a", "image": "i",
            "ports": [{"containerPort": 80, "name": "http"}],
            "volumeMounts": [{"mountPath": "/data", "name": "d"}],
            "volumeDevices": [{"devicePath": "/dev/x", "name": "d"}],
            "env": [{"name": "E", "value": "1"}],
            "args": ["2", "1"]}],
        "initContainers": [{"name": "init", "image": "i"}],
        "ephemeralContainers": [{"name": "dbg", "image": "i"}],
        "volumes": [{"name": "d", "emptyDir": {}}],
        "imagePullSecrets": [{"name": "s1"}],
        "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["a"]}],
        "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}],
        "tolerations": [{"key": "k1"}]
    }});
    let patch = json!({"spec": {
        "containers": [{"name": "a",
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}],
            "volumeDevices": [{"devicePath": "/dev/y", "name": "e"}],
            "env": [{"name": "F", "value": "2"}],
            "args": ["3"]}],
        "initContainers": [{"name": "init2", "image": "j"}],
        "ephemeralContainers": [{"name": "dbg", "image": "k"}],
        "volumes": [{"name": "e", "emptyDir": {}}],
        "imagePullSecrets": [{"name": "s2"}],
        "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}],
        "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}],
        "tolerations": [{"key": "k2"}]
    }});
    let out = smp("", "Pod", pod, patch);
    let spec = &out["spec"];
    let c = &spec["containers"][0];
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"mountPath": "/data", "name": "d", "readOnly": true}])
    );
    assert_eq!(
        names(&c["volumeDevices"], "devicePath"),
        ["/dev/y", "/dev/x"]
    );
    assert_eq!(names(&c["env"], "name"), ["F", "E"]);
    assert_eq!(c["args"], json!(["3"]), "args has no merge strategy");
    assert_eq!(names(&spec["initContainers"], "name"), ["init2", "init"]);
    assert_eq!(
        spec["ephemeralContainers"],
        json!([{"name": "dbg", "image": "k"}])
    );
    assert_eq!(names(&spec["volumes"], "name"), ["e", "d"]);
    assert_eq!(names(&spec["imagePullSecrets"], "name"), ["s2", "s1"]);
    assert_eq!(
        spec["hostAliases"],
        json!([{"ip": "1.1.1.1", "hostnames": ["b"]}])
    );
    assert_eq!(
        spec["topologySpreadConstraints"],
        json!([{"topologyKey": "zone", "maxSkew": 2}])
    );
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "k2"}]),
        "tolerations replace"
    );
}

#[test]
fn merge_keys_of_status_and_metadata() {
    let pod = json!({"metadata": {
        "finalizers": ["a", "b"],
        "ownerReferences": [{"uid": "1", "name": "rs1"}]
    },
    "status": {
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}],
        "podIPs": [{"ip": "10.0.0.1"}],
        "containerStatuses": [{"name": "a", "ready": false}, {"name": "b", "ready": false}]
    }});
    let out = smp(
        "",
        "Pod",
        pod,
        json!({"metadata": {"finalizers": ["c", "a"], "ownerReferences": [{"uid": "2", "name": "rs2"}]},
               "status": {"conditions": [{"type": "Ready", "status": "True"}],
                          "podIPs": [{"ip": "fd00::1"}],
                          "containerStatuses": [{"name": "a", "ready": true}]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    assert_eq!(
        names(&out["metadata"]["ownerReferences"], "uid"),
        ["2", "1"]
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}])
    );
    assert_eq!(
        names(&out["status"]["podIPs"], "ip"),
        ["fd00::1", "10.0.0.1"]
    );
    assert_eq!(
        out["status"]["containerStatuses"],
        json!([{"name": "a", "ready": true}]),
        "containerStatuses has no merge strategy"
    );
}

#[test]
fn merge_keys_of_other_kinds() {
    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let out = smp(
        "",
        "Service",
        svc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );

    let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "podCIDRs": ["10.0.0.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "1.2.3.4"}, {"type": "Hostname", "address": "n"}],
                   "conditions": [{"type": "Ready", "status": "True"}]}});
    let out = smp(
        "",
        "Node",
        node,
        json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}], "podCIDRs": ["fd00::/64"]},
               "status": {"addresses": [{"type": "InternalIP", "address": "5.6.7.8"}],
                          "conditions": [{"type": "MemoryPressure", "status": "False"}]}}),
    );
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key": "b", "effect": "NoExecute"}]),
        "taints replace"
    );
    assert_eq!(out["spec"]["podCIDRs"], json!(["fd00::/64", "10.0.0.0/24"]));
    assert_eq!(
        out["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "5.6.7.8"}, {"type": "Hostname", "address": "n"}])
    );
    assert_eq!(
        names(&out["status"]["conditions"], "type"),
        ["MemoryPressure", "Ready"]
    );

    for (group, kind) in [
        ("apps", "ReplicaSet"),
        ("apps", "DaemonSet"),
        ("apps", "StatefulSet"),
        ("batch", "Job"),
        ("", "ReplicationController"),
    ] {
        let obj = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}]}}},
                         "status": {"conditions": [{"type": "A", "status": "True"}]}});
        let out = smp(
            group,
            kind,
            obj,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "2"}]}}},
                                              "status": {"conditions": [{"type": "B", "status": "True"}]}}),
        );
        assert_eq!(names(containers_of(&out), "name"), ["b", "a"], "{kind}");
        assert_eq!(
            names(&out["status"]["conditions"], "type"),
            ["B", "A"],
            "{kind}"
        );
    }

    let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}}});
    let out = smp(
        "batch",
        "CronJob",
        cj,
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}}}}),
    );
    assert_eq!(
        out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
        json!([{"name": "b"}, {"name": "a"}])
    );

    let ep = json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]});
    let out = smp(
        "",
        "Endpoints",
        ep,
        json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
    );
    assert_eq!(
        out["subsets"],
        json!([{"addresses": [{"ip": "2.2.2.2"}]}]),
        "subsets are atomic"
    );
}

#[test]
fn unknown_kind_merges_maps_and_replaces_lists() {
    let obj = json!({"metadata": {"finalizers": ["a"]}, "spec": {"items": [{"name": "a"}], "m": {"x": 1}}});
    let out = smp(
        "example.com",
        "Widget",
        obj,
        json!({"metadata": {"finalizers": ["b"]}, "spec": {"items": [{"name": "b"}], "m": {"y": 2}}}),
    );
    assert_eq!(
        out["spec"],
        json!({"items": [{"name": "b"}], "m": {"x": 1, "y": 2}})
    );
    // New patch items come before server-only ones, as in Kubernetes.
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["b", "a"]),
        "metadata is always ObjectMeta"
    );
}

#[test]
fn patch_replace_directive_in_map() {
    let cm = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
    let out = smp(
        "",
        "ConfigMap",
        cm,
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
}

#[test]
fn patch_delete_directive_in_map() {
    let cm = json!({"metadata": {"labels": {"a": "1"}, "name": "c"}});
    let out = smp(
        "",
        "ConfigMap",
        cm,
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    );
    assert_eq!(out["metadata"], json!({"labels": {}, "name": "c"}));
    let out = smp(
        "",
        "ConfigMap",
        json!({"a": 1}),
        json!({"$patch": "delete"}),
    );
    assert_eq!(out, json!({}));
}

#[test]
fn patch_replace_directive_in_list() {
    let live = deploy(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]));
    let out = smp(
        "apps",
        "Deployment",
        live,
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "3"}]}}}}),
    );
    assert_eq!(containers_of(&out), &json!([{"name": "c", "image": "3"}]));
}

#[test]
fn patch_merge_directive_is_rejected_like_kubernetes() {
    let live = deploy(json!([{"name": "a"}]));
    let e = smp_err(
        "apps",
        "Deployment",
        live.clone(),
        r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"merge"}]}}}}"#,
    );
    assert!(
        e.to_string()
            .contains("merging lists cannot yet be specified"),
        "{e}"
    );
    let e = smp_err(
        "apps",
        "Deployment",
        live,
        r#"{"metadata":{"$patch":"merge"}}"#,
    );
    assert!(matches!(e, PatchError::BadRequest(_)));
}

#[test]
fn new_values_lose_their_directives() {
    let live = deploy(json!([{"name": "a"}]));
    let out = smp(
        "apps",
        "Deployment",
        live,
        json!({"spec": {"template": {"spec": {
            "containers": [{"name": "b", "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X", "value": null}, {"name": "Y", "$patch": "delete"}]}],
            "volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}]
        }}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"],
        json!({"containers": [{"name": "b", "env": [{"name": "X"}]}, {"name": "a"}],
               "volumes": [{"name": "v", "emptyDir": {}}]})
    );
}

#[test]
fn retain_keys_directive() {
    let d =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let out = smp(
        "apps",
        "Deployment",
        d.clone(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

    let pod = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
    let out = smp(
        "",
        "Pod",
        pod,
        json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}}),
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "v", "hostPath": {"path": "/x"}}])
    );

    let e = smp_err(
        "apps",
        "Deployment",
        d.clone(),
        r#"{"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}"#,
    );
    assert!(e.to_string().contains("retainKeys"), "{e}");
    let e = smp_err(
        "apps",
        "Deployment",
        d,
        r#"{"spec":{"strategy":{"$retainKeys":"type"}}}"#,
    );
    assert!(e.to_string().contains("retainKeys"), "{e}");
}

#[test]
fn set_element_order_orders_merged_list() {
    let live = deploy(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
    // Reorder two items the patch names; "b" is server-only and keeps its place relative to them.
    let out = smp(
        "apps",
        "Deployment",
        live.clone(),
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}}}}),
    );
    // Kubernetes interleaves: "b" was live before "c", so it stays first.
    assert_eq!(names(containers_of(&out), "name"), ["b", "c", "a"]);

    // A new item placed first by the order list.
    let out = smp(
        "apps",
        "Deployment",
        live,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "z"}, {"name": "a"}, {"name": "b"}, {"name": "c"}],
            "containers": [{"name": "z", "image": "zz"}]
        }}}}),
    );
    assert_eq!(names(containers_of(&out), "name"), ["z", "a", "b", "c"]);
}

#[test]
fn set_element_order_on_primitive_list() {
    let obj = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let out = smp(
        "",
        "ConfigMap",
        obj,
        json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "b", "a"]));
}

#[test]
fn set_element_order_mismatch_is_an_error() {
    let live = deploy(json!([{"name": "a"}]));
    let e = smp_err(
        "apps",
        "Deployment",
        live,
        r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":[{"name":"b"}]}}}}"#,
    );
    assert!(e.to_string().contains("setElementOrder"), "{e}");
}

#[test]
fn merged_list_order_follows_patch_then_live() {
    let live = deploy(json!([{"name": "a"}, {"name": "b"}]));
    let out = smp(
        "apps",
        "Deployment",
        live,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c"}, {"name": "a", "image": "x"}]}}}}),
    );
    // Kubernetes: patch items in patch order, server-only "b" after "a" as in the live list.
    assert_eq!(names(containers_of(&out), "name"), ["c", "a", "b"]);
}

#[test]
fn primitive_list_union_and_delete_from() {
    let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
    let out = smp(
        "",
        "ConfigMap",
        obj.clone(),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let out = smp(
        "",
        "ConfigMap",
        obj.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    // Both in one patch, as kubectl sends them.
    let out = smp(
        "",
        "ConfigMap",
        obj,
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "d"], "$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["d"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "d"]));
    // Deleting from a missing list is a no-op.
    let out = smp(
        "",
        "ConfigMap",
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn type_change_replaces_value() {
    let out = smp(
        "",
        "ConfigMap",
        json!({"data": {"a": "b"}}),
        json!({"data": ["x"]}),
    );
    assert_eq!(out, json!({"data": ["x"]}));
    let out = smp(
        "",
        "ConfigMap",
        json!({"data": "s"}),
        json!({"data": {"a": null, "b": 1}}),
    );
    assert_eq!(out, json!({"data": {"b": 1}}));
}

#[test]
fn number_merge_keys_compare_as_numbers() {
    let pod = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}});
    let out = smp(
        "",
        "Pod",
        pod,
        json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "h"}]}]}}),
    );
    assert_eq!(
        out["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn malformed_strategic_patches() {
    let live = deploy(json!([{"name": "web", "image": "nginx"}]));
    let cases = [
        "not json",
        "[1,2]",
        "\"str\"",
        "null",
        r#"{"$patch":"bogus"}"#,
        r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
        r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"delete"}]}}}}"#,
        r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"bogus","name":"web"}]}}}}"#,
        r#"{"spec":{"template":{"spec":{"containers":["web"]}}}}"#,
        r#"{"spec":{"template":{"spec":{"containers":[[1]]}}}}"#,
        r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":{"name":"web"}}}}}"#,
        r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"x":"web"}]}}}}"#,
        r#"{"spec":{"$setElementOrdercontainers":[]}}"#,
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":"a","finalizers":["a"]}}"#,
        r#"{"metadata":{"$deleteFromPrimitiveListfinalizers":["a"]}}"#,
        r#"{"spec":{"$bogus":1}}"#,
    ];
    for case in cases {
        let e = smp_err("apps", "Deployment", live.clone(), case);
        assert!(matches!(e, PatchError::BadRequest(_)), "{case}: {e:?}");
        assert_eq!(e.status_code(), 400);
    }
}

#[test]
fn json_patch_wrapper() {
    let live = deploy(json!([{"name": "web"}]));
    let patch = r#"[{"op":"replace","path":"/spec/replicas","value":5},{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]"#;
    let out = apply_patch(
        "apps",
        "Deployment",
        &live,
        PatchType::Json,
        patch.as_bytes(),
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(out["metadata"]["annotations"]["a"], "b");

    let bad = apply_patch("apps", "Deployment", &live, PatchType::Json, b"{\"op\":1}").unwrap_err();
    assert_eq!(bad.status_code(), 400);
    let missing = apply_patch(
        "apps",
        "Deployment",
        &live,
        PatchType::Json,
        br#"[{"op":"replace","path":"/spec/nope/deeper","value":1}]"#,
    )
    .unwrap_err();
    assert_eq!(missing.status_code(), 422, "{missing}");
    let test_failed = apply_patch(
        "apps",
        "Deployment",
        &live,
        PatchType::Json,
        br#"[{"op":"test","path":"/spec/replicas","value":7}]"#,
    )
    .unwrap_err();
    assert!(matches!(test_failed, PatchError::Unprocessable(_)));
}

#[test]
fn merge_patch_wrapper() {
    let live = deploy(json!([{"name": "web"}, {"name": "b"}]));
    let out = apply_patch(
        "apps",
        "Deployment",
        &live,
        PatchType::Merge,
        br#"{"spec":{"replicas":5,"template":{"spec":{"containers":[{"name":"only"}]}}},"metadata":{"labels":null}}"#,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(containers_of(&out), &json!([{"name": "only"}]));
    assert!(out["metadata"].get("labels").is_none());
    for bad in [&b"nope"[..], b"[]", b"3"] {
        let e = apply_patch("apps", "Deployment", &live, PatchType::Merge, bad).unwrap_err();
        assert_eq!(e.status_code(), 400);
    }
    let e = apply_patch("apps", "Deployment", &live, PatchType::Apply, b"{}").unwrap_err();
    assert_eq!(e.status_code(), 400);
}

/// A small deterministic generator of odd JSON values: no input may panic.
#[test]
fn odd_inputs_never_panic() {
    let atoms = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1.5),
        json!(""),
        json!("replace"),
        json!("delete"),
        json!([]),
        json!({}),
        json!([null]),
        json!([[]]),
        json!([{}]),
        json!([{"name": "web"}]),
        json!([{"$patch": "replace"}]),
        json!([{"$patch": "delete", "name": "web"}]),
        json!(["a", 1]),
        json!({"$patch": "replace"}),
        json!({"$patch": 3}),
        json!({"$retainKeys": [1, null]}),
        json!([{"name": {"x": 1}}]),
    ];
    let keys = [
        "containers",
        "env",
        "ports",
        "finalizers",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$setElementOrder/finalizers",
        "$deleteFromPrimitiveList/finalizers",
        "$deleteFromPrimitiveList/containers",
        "$setElementOrder/",
        "name",
        "spec",
    ];
    let live = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "u"}]},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "A"}], "ports": [{"containerPort": 80}]}]}}}});
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..4000 {
        let mut inner = serde_json::Map::new();
        for _ in 0..(1 + next(3)) {
            inner.insert(
                keys[next(keys.len())].to_string(),
                atoms[next(atoms.len())].clone(),
            );
        }
        let container = Value::Array(vec![Value::Object({
            let mut m = inner.clone();
            m.insert("name".into(), json!("web"));
            m
        })]);
        let patch = match next(4) {
            0 => json!({"spec": {"template": {"spec": Value::Object(inner)}}}),
            1 => json!({"spec": {"template": {"spec": {"containers": container}}}}),
            2 => json!({"metadata": Value::Object(inner)}),
            _ => Value::Object(inner),
        };
        let body = patch.to_string();
        for (group, kind) in [("apps", "Deployment"), ("", "Pod"), ("x.io", "Thing")] {
            for pt in [PatchType::StrategicMerge, PatchType::Merge, PatchType::Json] {
                let _ = apply_patch(group, kind, &live, pt, body.as_bytes());
            }
        }
        for odd in &atoms {
            let _ = apply_patch(
                "apps",
                "Deployment",
                odd,
                PatchType::StrategicMerge,
                body.as_bytes(),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server-side apply
// ---------------------------------------------------------------------------------------------

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-02T00:00:00Z";
const T3: &str = "2026-01-03T00:00:00Z";

fn config(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "default", "labels": {"app": "x"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]}}}})
}

fn ssa(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, PatchError> {
    server_side_apply("apps", "Deployment", live, applied, manager, force, now)
}

fn entries(obj: &Value) -> &Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    entries(obj).iter().find(|e| e["manager"] == manager)
}

#[test]
fn ssa_create_records_apply_entry() {
    let out = ssa(None, &config(2, "nginx:1.25"), "kubectl", false, T1).unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(out["metadata"]["name"], "x");
    let e = entry(&out, "kubectl").unwrap();
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T1);
    assert_eq!(e["fieldsType"], "FieldsV1");
    let f = &e["fieldsV1"];
    assert_eq!(f["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        f["f:spec"]["f:selector"],
        json!({"f:matchLabels": {"f:app": {}}})
    );
    assert!(
        f["f:metadata"].get("f:name").is_none(),
        "name is not tracked"
    );
    let web = &f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
    assert_eq!(web["."], json!({}));
    assert_eq!(web["f:image"], json!({}));
    assert_eq!(
        web["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"],
        json!({".": {}, "f:containerPort": {}})
    );
}

#[test]
fn ssa_change_and_noop_reapply() {
    let created = ssa(None, &config(2, "nginx:1.25"), "kubectl", false, T1).unwrap();
    let changed = ssa(
        Some(&created),
        &config(3, "nginx:1.26"),
        "kubectl",
        false,
        T2,
    )
    .unwrap();
    assert_eq!(changed["spec"]["replicas"], 3);
    assert_eq!(containers_of(&changed)[0]["image"], "nginx:1.26");
    assert_eq!(entry(&changed, "kubectl").unwrap()["time"], T2);
    let again = ssa(
        Some(&changed),
        &config(3, "nginx:1.26"),
        "kubectl",
        false,
        T3,
    )
    .unwrap();
    assert_eq!(
        again, changed,
        "same config twice is a no-op, time included"
    );
}

#[test]
fn ssa_field_removal() {
    let mut cfg = config(2, "nginx");
    cfg["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox", "env": [{"name": "A", "value": "1"}]}));
    cfg["metadata"]["labels"]["tier"] = json!("web");
    let created = ssa(None, &cfg, "kubectl", false, T1).unwrap();
    let out = ssa(Some(&created), &config(2, "nginx"), "kubectl", false, T2).unwrap();
    assert_eq!(names(containers_of(&out), "name"), ["web"]);
    assert_eq!(out["metadata"]["labels"], json!({"app": "x"}));

    // Dropping replicas from the config removes the field.
    let mut no_replicas = config(2, "nginx");
    no_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let out = ssa(Some(&out), &no_replicas, "kubectl", false, T3).unwrap();
    assert!(out["spec"].get("replicas").is_none());
    assert!(
        entry(&out, "kubectl").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
}

#[test]
fn ssa_conflict_and_force() {
    let created = ssa(None, &config(2, "nginx"), "kubectl", false, T1).unwrap();
    let mut other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 5}});
    let err = ssa(Some(&created), &other, "hpa", false, T2).unwrap_err();
    assert_eq!(err.status_code(), 409);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    let causes = err.conflict_causes();
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].field, ".spec.replicas");
    assert_eq!(causes[0].message, "conflict with \"kubectl\"");

    let forced = ssa(Some(&created), &other, "hpa", true, T2).unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    assert!(
        entry(&forced, "kubectl").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert_eq!(
        entry(&forced, "hpa").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // kubectl re-applies without replicas: hpa's value stays because hpa owns it now.
    let mut no_replicas = config(2, "nginx");
    no_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let out = ssa(Some(&forced), &no_replicas, "kubectl", false, T3).unwrap();
    assert_eq!(out["spec"]["replicas"], 5);

    // Two conflicts with two managers are listed per manager.
    other["spec"]["replicas"] = json!(6);
    other["spec"]["template"] =
        json!({"spec": {"containers": [{"name": "web", "image": "other"}]}});
    let err = ssa(Some(&forced), &other, "third", false, T3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"hpa\":\n- .spec.replicas\nconflicts with \"kubectl\":\n- .spec.template.spec.containers[name=\"web\"].image"
    );
}

#[test]
fn ssa_two_managers_share_a_field() {
    let created = ssa(None, &config(2, "nginx"), "a", false, T1).unwrap();
    let shared = ssa(
        Some(&created),
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2}}),
        "b",
        false,
        T2,
    )
    .expect("same value is no conflict");
    assert!(
        entry(&shared, "a").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some()
    );
    assert!(
        entry(&shared, "b").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some()
    );
    // "a" stops applying replicas: "b" still owns it, so it stays.
    let mut no_replicas = config(2, "nginx");
    no_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let out = ssa(Some(&shared), &no_replicas, "a", false, T3).unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn ssa_merges_with_fields_of_others() {
    let created = ssa(None, &config(2, "nginx"), "kubectl", false, T1).unwrap();
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "b"}]}}}});
    let out = ssa(Some(&created), &sidecar, "injector", false, T2).unwrap();
    assert_eq!(names(containers_of(&out), "name"), ["web", "sidecar"]);
    assert_eq!(
        containers_of(&out)[0]["ports"],
        json!([{"containerPort": 80}])
    );
}

#[test]
fn record_update_then_apply_conflicts() {
    let mut created = config(2, "nginx");
    created["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"});
    record_update(
        "apps",
        "Deployment",
        None,
        &mut created,
        "kubectl-client-side-apply",
        T1,
    );
    let e = entry(&created, "kubectl-client-side-apply").unwrap();
    assert_eq!(e["operation"], "Update");
    assert!(e["fieldsV1"]["f:spec"].get("f:replicas").is_some());

    let err = ssa(Some(&created), &config(3, "nginx"), "kubectl", false, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    // Same values: no conflict, shared ownership.
    let out = ssa(Some(&created), &config(2, "nginx"), "kubectl", false, T2).unwrap();
    assert_eq!(entries(&out).len(), 2);
    assert_eq!(
        entries(&out)[0]["operation"],
        "Apply",
        "Apply entries sort first"
    );
}

#[test]
fn record_update_moves_changed_fields() {
    let mut created = config(2, "nginx");
    record_update("apps", "Deployment", None, &mut created, "creator", T1);
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(4);
    record_update(
        "apps",
        "Deployment",
        Some(&created),
        &mut scaled,
        "scaler",
        T2,
    );
    assert!(
        entry(&scaled, "creator").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert_eq!(
        entry(&scaled, "scaler").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(entry(&scaled, "scaler").unwrap()["time"], T2);
    // A no-op update by a new manager adds no entry.
    let mut same = scaled.clone();
    record_update("apps", "Deployment", Some(&scaled), &mut same, "idle", T3);
    assert!(entry(&same, "idle").is_none());
    assert_eq!(same, scaled);
}

#[test]
fn ssa_rejects_bad_configs() {
    for bad in [
        json!([]),
        json!("x"),
        json!({"kind": "Pod"}),
        json!({"metadata": {"managedFields": [{"manager": "m"}]}}),
    ] {
        let e = ssa(None, &bad, "kubectl", false, T1).unwrap_err();
        assert_eq!(e.status_code(), 400, "{bad}");
    }
    let dup =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
    assert_eq!(
        ssa(None, &dup, "kubectl", false, T1)
            .unwrap_err()
            .status_code(),
        400
    );
}

#[test]
fn ssa_odd_inputs_never_panic() {
    let odd = [
        json!({}),
        json!({"spec": null}),
        json!({"spec": {"template": {"spec": {"containers": [1, {"name": "a"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [{"image": "nokey"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": "x"}}}}),
        json!({"metadata": {"finalizers": ["a", "a"], "labels": null}}),
        json!({"metadata": {"managedFields": [{"manager": 1, "fieldsV1": "x"}, {"manager": "m", "fieldsV1": {"f:spec": {"f:replicas": 3}}}]}, "spec": {"replicas": 1}}),
        json!({"metadata": {"managedFields": "x"}}),
        json!([1]),
        json!(null),
    ];
    for live in &odd {
        for applied in &odd {
            for force in [false, true] {
                let _ =
                    server_side_apply("apps", "Deployment", Some(live), applied, "m", force, T1);
                let _ = server_side_apply("", "Pod", Some(live), applied, "n", force, T1);
            }
            let mut new = applied.clone();
            record_update("apps", "Deployment", Some(live), &mut new, "u", T2);
            let mut new = applied.clone();
            record_update("apps", "Deployment", None, &mut new, "u", T2);
        }
    }
}
