//! Tests of the strategies: defaults against what kube-apiserver stores, one failing case per
//! validation rule (field path + reason), decode errors, unknown fields, and a no-panic sweep.

use serde_json::{Value, json};

use super::{Admission, KINDS, admit, strategy_for};
use crate::error::Cause;

/// Decode, default and validate a body like the create path does.
fn create(group: &str, kind: &str, body: Value) -> (Value, Vec<Cause>) {
    let s = strategy_for(group, kind);
    let mut obj = (s.decode)(body).expect("decodes").object;
    (s.default)(&mut obj);
    admit(group, kind, &mut obj, &Admission::default());
    let errs = (s.validate)(&obj);
    (obj, errs)
}

/// Decode and default an update, then validate it against `old`.
fn update(group: &str, kind: &str, old: &Value, body: Value) -> Vec<Cause> {
    let s = strategy_for(group, kind);
    let mut new = (s.decode)(body).expect("decodes").object;
    (s.default)(&mut new);
    admit(group, kind, &mut new, &Admission::default());
    (s.validate_update)(&new, old)
}

#[track_caller]
fn assert_cause(errs: &[Cause], field: &str, reason: &str) {
    assert!(
        errs.iter().any(|c| c.field == field && c.reason == reason),
        "expected {reason} at {field}, got {errs:#?}"
    );
}

#[track_caller]
fn assert_valid(errs: &[Cause]) {
    assert!(errs.is_empty(), "expected no errors, got {errs:#?}");
}

fn nginx_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": containers}})
}

fn pod_errors(spec_patch: Value) -> Vec<Cause> {
    let mut body = pod(json!([{"name": "c", "image": "nginx"}]));
    merge(&mut body["spec"], spec_patch);
    create("", "Pod", body).1
}

/// JSON merge patch, enough for building test variants.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

// ------------------------------------------------------------------------------ defaults

#[test]
fn nginx_deployment_defaults_like_kube_apiserver() {
    let (obj, errs) = create("apps", "Deployment", nginx_deployment());
    assert_valid(&errs);
    let spec = &obj["spec"];
    assert_eq!(spec["replicas"], json!(3));
    assert_eq!(spec["revisionHistoryLimit"], json!(10));
    assert_eq!(spec["progressDeadlineSeconds"], json!(600));
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    let pod_spec = &spec["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Always");
    assert_eq!(pod_spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod_spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod_spec["schedulerName"], "default-scheduler");
    assert_eq!(pod_spec["securityContext"], json!({}));
    // Pod-only defaults do not apply to templates.
    assert!(pod_spec.get("enableServiceLinks").is_none());
    assert!(pod_spec.get("tolerations").is_none());
    assert_eq!(
        pod_spec["containers"][0],
        json!({
            "image": "nginx:1.14.2",
            "imagePullPolicy": "IfNotPresent",
            "name": "nginx",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"
        })
    );
    assert_eq!(obj["apiVersion"], "apps/v1");
    assert_eq!(obj["kind"], "Deployment");
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, policy) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:1.0", "IfNotPresent"),
        (
            "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "IfNotPresent",
        ),
    ] {
        let (obj, errs) = create(
            "",
            "Pod",
            pod(json!([{"name": "c", "image": image, "ports": [{"containerPort": 80}]}])),
        );
        assert_valid(&errs);
        assert_eq!(
            obj["spec"]["containers"][0]["imagePullPolicy"], policy,
            "{image}"
        );
        assert_eq!(obj["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    }
}

#[test]
fn pod_only_defaults() {
    let body = pod(
        json!([{"name": "c", "image": "nginx", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
    );
    let (obj, errs) = create("", "Pod", body);
    assert_valid(&errs);
    let spec = &obj["spec"];
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(
        spec["containers"][0]["resources"]["requests"],
        json!({"cpu": "1", "memory": "1Gi"})
    );
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );
    assert_eq!(
        obj["status"],
        json!({"phase": "Pending", "qosClass": "Guaranteed"})
    );

    // An existing toleration for the taint is kept and not duplicated.
    let mut body = pod(json!([{"name": "c", "image": "nginx"}]));
    body["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]);
    let (obj, _) = create("", "Pod", body);
    let tolerations = obj["spec"]["tolerations"].as_array().unwrap();
    assert_eq!(tolerations.len(), 2);
    assert_eq!(tolerations[0]["tolerationSeconds"], 10);
    assert_eq!(obj["status"]["qosClass"], "BestEffort");
}

#[test]
fn default_toleration_seconds_follow_the_server_setting() {
    let cases = [
        // (tolerations sent, seconds, tolerations stored)
        (
            json!(null),
            10,
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
            ]),
        ),
        // Tolerating every NoExecute taint (empty key, Exists) already covers both.
        (
            json!([{"operator": "Exists", "effect": "NoExecute"}]),
            10,
            json!([{"operator": "Exists", "effect": "NoExecute"}]),
        ),
        // An effect-less toleration of one key covers that key's NoExecute taint.
        (
            json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]),
            7,
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 7}
            ]),
        ),
        // A NoSchedule toleration does not.
        (
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}]),
            300,
            json!([
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]),
        ),
    ];
    for (sent, seconds, want) in cases {
        let mut obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "tolerations": sent}});
        admit(
            "",
            "Pod",
            &mut obj,
            &Admission {
                default_toleration_seconds: seconds,
            },
        );
        assert_eq!(obj["spec"]["tolerations"], want, "sent {sent}");
    }
    // Other kinds, and pod templates, are left alone.
    let mut rs = json!({"spec": {"template": {"spec": {"containers": []}}}});
    admit("apps", "ReplicaSet", &mut rs, &Admission::default());
    assert!(rs["spec"].get("tolerations").is_none());
}

#[test]
fn pods_run_as_the_default_service_account_unless_named() {
    let cases = [
        ("neither field", json!({}), "default"),
        (
            "name given",
            json!({"serviceAccountName": "builder"}),
            "builder",
        ),
        (
            "only the deprecated field",
            json!({"serviceAccount": "old"}),
            "old",
        ),
        (
            "both: the name wins",
            json!({"serviceAccountName": "new", "serviceAccount": "old"}),
            "new",
        ),
        ("empty name", json!({"serviceAccountName": ""}), "default"),
    ];
    for (name, fields, want) in cases {
        let mut body = pod(json!([{"name": "c", "image": "nginx"}]));
        for (k, v) in fields.as_object().unwrap() {
            body["spec"][k] = v.clone();
        }
        let (obj, errs) = create("", "Pod", body);
        assert_valid(&errs);
        assert_eq!(obj["spec"]["serviceAccountName"], want, "{name}");
        assert_eq!(obj["spec"]["serviceAccount"], want, "{name}");
    }
    // Templates are left alone, as in Kubernetes (the pods made from them get the default).
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (obj, _) = create("apps", "Deployment", deployment);
    assert!(
        obj["spec"]["template"]["spec"]
            .get("serviceAccountName")
            .is_none()
    );
}

#[test]
fn probe_and_volume_defaults() {
    let mut body = pod(json!([{
        "name": "c", "image": "nginx",
        "livenessProbe": {"httpGet": {"port": 80}},
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "scratch", "mountPath": "/tmp"}]
    }]));
    body["spec"]["volumes"] =
        json!([{"name": "cfg", "configMap": {"name": "c"}}, {"name": "scratch"}]);
    let (obj, errs) = create("", "Pod", body);
    assert_valid(&errs);
    assert_eq!(
        obj["spec"]["containers"][0]["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(obj["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
    assert_eq!(obj["spec"]["volumes"][1]["emptyDir"], json!({}));
}

#[test]
fn service_defaults() {
    let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let (obj, errs) = create("", "Service", body);
    assert_valid(&errs);
    let spec = &obj["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert!(spec.get("externalTrafficPolicy").is_none());

    let body = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http", "nodePort": 30080}]}});
    let (obj, errs) = create("", "Service", body);
    assert_valid(&errs);
    assert_eq!(obj["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(obj["spec"]["ports"][0]["targetPort"], "http");
}

#[test]
fn controller_defaults() {
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (ds, errs) = create(
        "apps",
        "DaemonSet",
        json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
    );
    assert_valid(&errs);
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

    let mut sts_template = template.clone();
    sts_template["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    let (sts, errs) = create(
        "apps",
        "StatefulSet",
        json!({"metadata": {"name": "s"}, "spec": {
            "serviceName": "s", "selector": {"matchLabels": {"app": "x"}}, "template": sts_template,
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }}),
    );
    assert_valid(&errs);
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );

    let (rs, errs) = create(
        "apps",
        "ReplicaSet",
        json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
    );
    assert_valid(&errs);
    assert_eq!(rs["spec"]["replicas"], 1);

    let (rc, errs) = create(
        "",
        "ReplicationController",
        json!({"metadata": {"name": "rc"}, "spec": {"template": template}}),
    );
    assert_valid(&errs);
    assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
}

#[test]
fn job_and_cronjob_defaults() {
    let template = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}});
    let body = json!({"metadata": {"name": "pi", "uid": "1234"}, "spec": {"template": template}});
    let (job, errs) = create("batch", "Job", body);
    assert_valid(&errs);
    let spec = &job["spec"];
    assert_eq!(
        (spec["completions"].clone(), spec["parallelism"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}})
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "pi"
    );
    assert_eq!(job["metadata"]["labels"]["job-name"], "pi");

    let body = json!({"metadata": {"name": "hello"}, "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": template}}}});
    let (cj, errs) = create("batch", "CronJob", body);
    assert_valid(&errs);
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert!(
        cj["spec"]["jobTemplate"]["spec"]
            .get("backoffLimit")
            .is_none()
    );
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn namespace_secret_and_misc_defaults() {
    let (ns, errs) = create("", "Namespace", json!({"metadata": {"name": "dev"}}));
    assert_valid(&errs);
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "dev"
    );

    let (secret, errs) = create(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}}),
    );
    assert_valid(&errs);
    assert_eq!(secret["type"], "Opaque");

    let (pvc, errs) = create(
        "",
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    assert_valid(&errs);
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"]["phase"], "Pending");

    let (hpa, errs) = create(
        "autoscaling",
        "HorizontalPodAutoscaler",
        json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "maxReplicas": 5}}),
    );
    assert_valid(&errs);
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );

    let (np, errs) = create(
        "networking.k8s.io",
        "NetworkPolicy",
        json!({"metadata": {"name": "n"}, "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}),
    );
    assert_valid(&errs);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");

    let (rb, errs) = create(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        json!({"metadata": {"name": "rb"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default", "namespace": "x"}]}),
    );
    assert_valid(&errs);
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
}

// ------------------------------------------------------------------------------ validation

#[test]
fn metadata_rules() {
    let (_, errs) = create("", "ConfigMap", json!({"metadata": {}}));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].line(),
        "metadata.name: Required value: name or generateName is required"
    );

    let (_, errs) = create("", "ConfigMap", json!({"metadata": {"name": "Bad_Name"}}));
    assert_eq!(
        errs[0].line(),
        "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    let (_, errs) = create(
        "",
        "ConfigMap",
        json!({"metadata": {"name": "a".repeat(254)}}),
    );
    assert!(
        errs[0]
            .message
            .contains("must be no more than 253 characters")
    );

    let (_, errs) = create("", "Namespace", json!({"metadata": {"name": "my.ns"}}));
    assert_eq!(
        errs[0].line(),
        "metadata.name: Invalid value: \"my.ns\": must not contain dots"
    );
    let (_, errs) = create(
        "",
        "Service",
        json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}),
    );
    assert!(errs[0].message.contains("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character"));
    let (_, errs) = create(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        json!({"metadata": {"name": "system:Weird Name"}}),
    );
    assert_valid(&errs);
    let (_, errs) = create(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        json!({"metadata": {"name": "a/b"}}),
    );
    assert_cause(&errs, "metadata.name", "FieldValueInvalid");

    let (_, errs) = create(
        "",
        "ConfigMap",
        json!({"metadata": {"name": "c", "labels": {"bad key": "v", "ok": "bad value!", "x": "a".repeat(64)}}}),
    );
    assert_eq!(
        errs.iter().filter(|c| c.field == "metadata.labels").count(),
        3,
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|c| c.message.contains("must be no more than 63 characters"))
    );
    let (_, errs) = create(
        "",
        "ConfigMap",
        json!({"metadata": {"name": "c", "labels": {"example.com/app": "web", "a/b/c": "x"}}}),
    );
    assert_eq!(errs.len(), 1);
    let (_, errs) = create(
        "",
        "ConfigMap",
        json!({"metadata": {"name": "c", "annotations": {"big": "x".repeat(256 * 1024)}}}),
    );
    assert_cause(&errs, "metadata.annotations", "FieldValueTooLong");
    let (_, errs) = create(
        "",
        "ConfigMap",
        json!({"metadata": {"generateName": "web-"}}),
    );
    assert_valid(&errs);
}

#[test]
fn pod_rules() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"containers": []}),
            "spec.containers",
            "FieldValueRequired",
        ),
        (
            json!({"containers": [{"name": "Web_1", "image": "x"}]}),
            "spec.containers[0].name",
            "FieldValueInvalid",
        ),
        (
            json!({"containers": [{"image": "x"}]}),
            "spec.containers[0].name",
            "FieldValueRequired",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}),
            "spec.containers[1].name",
            "FieldValueDuplicate",
        ),
        (
            json!({"containers": [{"name": "a"}]}),
            "spec.containers[0].image",
            "FieldValueRequired",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Sometimes"}]}),
            "spec.containers[0].imagePullPolicy",
            "FieldValueNotSupported",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 70000}]}]}),
            "spec.containers[0].ports[0].containerPort",
            "FieldValueInvalid",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 0}]}]}),
            "spec.containers[0].ports[0].containerPort",
            "FieldValueRequired",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "protocol": "HTTP"}]}]}),
            "spec.containers[0].ports[0].protocol",
            "FieldValueNotSupported",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 81, "name": "http"}]}]}),
            "spec.containers[0].ports[1].name",
            "FieldValueDuplicate",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1x"}}}]}),
            "spec.containers[0].resources.limits[cpu]",
            "FieldValueInvalid",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"memory": "-1Gi"}}}]}),
            "spec.containers[0].resources.requests[memory]",
            "FieldValueInvalid",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}}]}),
            "spec.containers[0].resources.requests",
            "FieldValueInvalid",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"gpu": "1"}}}]}),
            "spec.containers[0].resources.requests[gpu]",
            "FieldValueInvalid",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "env": [{"name": "A=B", "value": "1"}]}]}),
            "spec.containers[0].env[0].name",
            "FieldValueInvalid",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "env": [{"value": "1"}]}]}),
            "spec.containers[0].env[0].name",
            "FieldValueRequired",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/m"}]}]}),
            "spec.containers[0].volumeMounts[0].name",
            "FieldValueNotFound",
        ),
        (
            json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]}),
            "spec.volumes[1].name",
            "FieldValueDuplicate",
        ),
        (
            json!({"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]}),
            "spec.volumes[0].hostPath",
            "FieldValueForbidden",
        ),
        (
            json!({"restartPolicy": "Sometimes"}),
            "spec.restartPolicy",
            "FieldValueNotSupported",
        ),
        (
            json!({"dnsPolicy": "None"}),
            "spec.dnsConfig",
            "FieldValueRequired",
        ),
        (
            json!({"activeDeadlineSeconds": 0}),
            "spec.activeDeadlineSeconds",
            "FieldValueInvalid",
        ),
        (
            json!({"tolerations": [{"operator": "Equal", "value": "x"}]}),
            "spec.tolerations[0].operator",
            "FieldValueInvalid",
        ),
        (
            json!({"nodeSelector": {"disk": "fast ssd"}}),
            "spec.nodeSelector",
            "FieldValueInvalid",
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "livenessProbe": {"periodSeconds": 3}}]}),
            "spec.containers[0].livenessProbe",
            "FieldValueRequired",
        ),
    ];
    for (patch, field, reason) in cases {
        let errs = pod_errors(patch.clone());
        assert!(
            errs.iter().any(|c| c.field == field && c.reason == reason),
            "{patch}: expected {reason} at {field}, got {errs:#?}"
        );
    }
    let errs = pod_errors(
        json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}}]}),
    );
    assert_eq!(
        errs[0].line(),
        "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1500m"
    );
    let errs = pod_errors(
        json!({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1x"}}}]}),
    );
    assert_eq!(
        errs[0].message,
        "Invalid value: \"1x\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    // Valid quantities in every notation.
    assert_valid(&pod_errors(
        json!({"containers": [{"name": "a", "image": "x",
        "resources": {"requests": {"cpu": "100m", "memory": "1e3"}, "limits": {"cpu": "0.5", "memory": "1Gi"}}}]}),
    ));
}

#[test]
fn deployment_rules() {
    let mut body = nginx_deployment();
    body["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
    let (_, errs) = create("apps", "Deployment", body);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        errs[0].line(),
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"
    );

    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"spec": {"selector": null}}),
            "spec.selector",
            "FieldValueRequired",
        ),
        (
            json!({"spec": {"selector": {"matchLabels": {"app": null}}}}),
            "spec.selector",
            "FieldValueInvalid",
        ),
        (
            json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}),
            "spec.template.spec.restartPolicy",
            "FieldValueNotSupported",
        ),
        (
            json!({"spec": {"replicas": -1}}),
            "spec.replicas",
            "FieldValueInvalid",
        ),
        (
            json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}}),
            "spec.strategy.rollingUpdate.maxUnavailable",
            "FieldValueInvalid",
        ),
        (
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "abc"}}}}),
            "spec.strategy.rollingUpdate.maxSurge",
            "FieldValueInvalid",
        ),
        (
            json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}}),
            "spec.strategy.rollingUpdate",
            "FieldValueForbidden",
        ),
        (
            json!({"spec": {"strategy": {"type": "Blue"}}}),
            "spec.strategy.type",
            "FieldValueNotSupported",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": ""}]}}}}),
            "spec.template.spec.containers[0].image",
            "FieldValueRequired",
        ),
        (
            json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}}),
            "spec.selector.matchExpressions[0].values",
            "FieldValueRequired",
        ),
        (
            json!({"spec": {"minReadySeconds": 700}}),
            "spec.progressDeadlineSeconds",
            "FieldValueInvalid",
        ),
        (
            json!({"metadata": {"name": "Nginx"}}),
            "metadata.name",
            "FieldValueInvalid",
        ),
    ];
    for (patch, field, reason) in cases {
        let mut body = nginx_deployment();
        merge(&mut body, patch.clone());
        let (_, errs) = create("apps", "Deployment", body);
        assert!(
            errs.iter().any(|c| c.field == field && c.reason == reason),
            "{patch}: expected {reason} at {field}, got {errs:#?}"
        );
    }
    // matchExpressions that select the template are fine.
    let mut body = nginx_deployment();
    body["spec"]["selector"] =
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["nginx", "web"]}]});
    assert_valid(&create("apps", "Deployment", body).1);
}

#[test]
fn service_rules() {
    let svc = |spec: Value| json!({"metadata": {"name": "web"}, "spec": spec});
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"ports": []}), "spec.ports", "FieldValueRequired"),
        (
            json!({"ports": [{"port": 80}, {"port": 81, "name": "b"}]}),
            "spec.ports[0].name",
            "FieldValueRequired",
        ),
        (
            json!({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}),
            "spec.ports[1].name",
            "FieldValueDuplicate",
        ),
        (
            json!({"ports": [{"port": 0}]}),
            "spec.ports[0].port",
            "FieldValueInvalid",
        ),
        (
            json!({"ports": [{"port": 80, "nodePort": 30001}]}),
            "spec.ports[0].nodePort",
            "FieldValueForbidden",
        ),
        (
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
            "spec.ports[0].nodePort",
            "FieldValueInvalid",
        ),
        (
            json!({"type": "Bogus", "ports": [{"port": 80}]}),
            "spec.type",
            "FieldValueNotSupported",
        ),
        (
            json!({"type": "ExternalName"}),
            "spec.externalName",
            "FieldValueRequired",
        ),
        (
            json!({"sessionAffinity": "Sticky", "ports": [{"port": 80}]}),
            "spec.sessionAffinity",
            "FieldValueNotSupported",
        ),
        (
            json!({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]}),
            "spec.clusterIPs[0]",
            "FieldValueInvalid",
        ),
        (
            json!({"ports": [{"port": 80, "targetPort": "not_valid"}]}),
            "spec.ports[0].targetPort",
            "FieldValueInvalid",
        ),
        (
            json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
            "spec.externalTrafficPolicy",
            "FieldValueInvalid",
        ),
    ];
    for (spec, field, reason) in cases {
        let (_, errs) = create("", "Service", svc(spec.clone()));
        assert!(
            errs.iter().any(|c| c.field == field && c.reason == reason),
            "{spec}: expected {reason} at {field}, got {errs:#?}"
        );
    }
    // Headless services need no ports.
    assert_valid(
        &create(
            "",
            "Service",
            svc(json!({"clusterIP": "None", "selector": {"a": "b"}})),
        )
        .1,
    );
}

#[test]
fn other_kind_rules() {
    let cases: Vec<(&str, &str, Value, &str, &str)> = vec![
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "c"}, "data": {"bad key": "v"}}),
            "data[bad key]",
            "FieldValueInvalid",
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}}),
            "data[tls.key]",
            "FieldValueRequired",
        ),
        (
            "",
            "Namespace",
            json!({"metadata": {"name": "Bad_Name"}}),
            "metadata.name",
            "FieldValueInvalid",
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
            "spec.template.spec.restartPolicy",
            "FieldValueNotSupported",
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"completionMode": "Indexed", "parallelism": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}),
            "spec.completions",
            "FieldValueRequired",
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"backoffLimit": -1, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}),
            "spec.backoffLimit",
            "FieldValueInvalid",
        ),
        (
            "batch",
            "CronJob",
            json!({"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}}),
            "spec.schedule",
            "FieldValueRequired",
        ),
        (
            "batch",
            "CronJob",
            json!({"metadata": {"name": "c"}, "spec": {"schedule": "61 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}}),
            "spec.schedule",
            "FieldValueInvalid",
        ),
        (
            "batch",
            "CronJob",
            json!({"metadata": {"name": "c"}, "spec": {"schedule": "@daily", "concurrencyPolicy": "Sometimes", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}}),
            "spec.concurrencyPolicy",
            "FieldValueNotSupported",
        ),
        (
            "apps",
            "StatefulSet",
            json!({"metadata": {"name": "s"}, "spec": {"podManagementPolicy": "Random", "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
            "spec.podManagementPolicy",
            "FieldValueNotSupported",
        ),
        (
            "apps",
            "DaemonSet",
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
            "spec.template.metadata.labels",
            "FieldValueInvalid",
        ),
        (
            "",
            "ReplicationController",
            json!({"metadata": {"name": "r"}, "spec": {"selector": {"a": "b"}, "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
            "spec.template.metadata.labels",
            "FieldValueInvalid",
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "c"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
            "spec.accessModes",
            "FieldValueRequired",
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"]}}),
            "spec.resources[storage]",
            "FieldValueRequired",
        ),
        (
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}),
            "spec",
            "FieldValueRequired",
        ),
        (
            "",
            "Node",
            json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}),
            "spec.taints[0].effect",
            "FieldValueNotSupported",
        ),
        (
            "",
            "Binding",
            json!({"metadata": {"name": "p"}, "target": {"kind": "Pod", "name": "n"}}),
            "target.kind",
            "FieldValueNotSupported",
        ),
        (
            "",
            "Binding",
            json!({"metadata": {"name": "p"}, "target": {}}),
            "target.name",
            "FieldValueRequired",
        ),
        (
            "",
            "Event",
            json!({"metadata": {"name": "e", "namespace": "a"}, "involvedObject": {"namespace": "b"}}),
            "involvedObject.namespace",
            "FieldValueInvalid",
        ),
        (
            "",
            "LimitRange",
            json!({"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}}),
            "spec.limits[0].min[cpu]",
            "FieldValueInvalid",
        ),
        (
            "",
            "ResourceQuota",
            json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "ten"}}}),
            "spec.hard[pods]",
            "FieldValueInvalid",
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}),
            "spec.leaseDurationSeconds",
            "FieldValueInvalid",
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": [{"addresses": ["not-an-ip"]}]}),
            "endpoints[0].addresses[0]",
            "FieldValueInvalid",
        ),
        (
            "",
            "Endpoints",
            json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "x"}], "ports": [{"port": 80}]}]}),
            "subsets[0].addresses[0].ip",
            "FieldValueInvalid",
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"metadata": {"name": "i"}, "spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}),
            "spec.rules[0].http.paths[0].pathType",
            "FieldValueRequired",
        ),
        (
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"metadata": {"name": "n"}, "spec": {"podSelector": {}, "policyTypes": ["Sideways"]}}),
            "spec.policyTypes",
            "FieldValueNotSupported",
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            "rules[0].verbs",
            "FieldValueRequired",
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
            "rules[0].nonResourceURLs",
            "FieldValueInvalid",
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Secret", "name": "r"}}),
            "roleRef.kind",
            "FieldValueNotSupported",
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({"metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}),
            "subjects[0].namespace",
            "FieldValueRequired",
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "minReplicas": 5, "maxReplicas": 2}}),
            "spec.maxReplicas",
            "FieldValueInvalid",
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment"}, "maxReplicas": 2}}),
            "spec.scaleTargetRef.name",
            "FieldValueRequired",
        ),
        (
            "autoscaling",
            "Scale",
            json!({"metadata": {"name": "s"}, "spec": {"replicas": -2}}),
            "spec.replicas",
            "FieldValueInvalid",
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"metadata": {"name": "p"}, "spec": {"minAvailable": 1, "maxUnavailable": "10%"}}),
            "spec",
            "FieldValueInvalid",
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "150%"}}),
            "spec.minAvailable",
            "FieldValueInvalid",
        ),
    ];
    for (group, kind, body, field, reason) in cases {
        let (_, errs) = create(group, kind, body.clone());
        assert!(
            errs.iter().any(|c| c.field == field && c.reason == reason),
            "{kind} {body}: expected {reason} at {field}, got {errs:#?}"
        );
    }
}

// ------------------------------------------------------------------------------ updates

#[test]
fn node_pod_cidrs_are_set_once() {
    let node = |spec: Value| json!({"metadata": {"name": "n"}, "spec": spec});
    // podCIDR and podCIDRs agree after defaulting; the list wins.
    let cases = [
        (
            json!({"podCIDR": "10.244.1.0/24"}),
            json!("10.244.1.0/24"),
            json!(["10.244.1.0/24"]),
        ),
        (
            json!({"podCIDRs": ["10.244.2.0/24"]}),
            json!("10.244.2.0/24"),
            json!(["10.244.2.0/24"]),
        ),
        (
            json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.2.0/24"]}),
            json!("10.244.2.0/24"),
            json!(["10.244.2.0/24"]),
        ),
        (json!({}), Value::Null, Value::Null),
    ];
    for (spec, single, list) in cases {
        let (obj, errs) = create("", "Node", node(spec.clone()));
        assert_valid(&errs);
        assert_eq!(obj["spec"]["podCIDR"], single, "{spec}");
        assert_eq!(obj["spec"]["podCIDRs"], list, "{spec}");
    }
    let (bare, _) = create("", "Node", node(json!({})));
    let (assigned, _) = create("", "Node", node(json!({"podCIDR": "10.244.1.0/24"})));
    let updates = [
        (
            "assign to a node without",
            &bare,
            json!({"podCIDR": "10.244.1.0/24"}),
            true,
        ),
        (
            "same again",
            &assigned,
            json!({"podCIDRs": ["10.244.1.0/24"]}),
            true,
        ),
        (
            "change",
            &assigned,
            json!({"podCIDR": "10.244.9.0/24"}),
            false,
        ),
        (
            "change the list",
            &assigned,
            json!({"podCIDRs": ["10.244.9.0/24"]}),
            false,
        ),
        ("remove", &assigned, json!({}), false),
    ];
    for (what, old, spec, ok) in updates {
        let errs = update("", "Node", old, node(spec));
        if ok {
            assert_valid(&errs);
        } else {
            assert_cause(&errs, "spec.podCIDRs", "FieldValueForbidden");
            assert!(errs[0].message.contains("may not change podCIDR"), "{what}");
        }
    }
}

#[test]
fn update_rules() {
    let (old, _) = create("apps", "Deployment", nginx_deployment());
    let mut changed = nginx_deployment();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.16");
    assert_valid(&update("apps", "Deployment", &old, changed));
    let mut changed = nginx_deployment();
    changed["spec"]["selector"]["matchLabels"]["tier"] = json!("web");
    changed["spec"]["template"]["metadata"]["labels"]["tier"] = json!("web");
    let errs = update("apps", "Deployment", &old, changed);
    assert_cause(&errs, "spec.selector", "FieldValueInvalid");
    assert!(errs[0].message.ends_with("field is immutable"));
    let mut renamed = nginx_deployment();
    renamed["metadata"]["name"] = json!("other");
    assert_cause(
        &update("apps", "Deployment", &old, renamed),
        "metadata.name",
        "FieldValueInvalid",
    );

    let (old_pod, _) = create("", "Pod", pod(json!([{"name": "c", "image": "nginx:1.0"}])));
    assert_valid(&update(
        "",
        "Pod",
        &old_pod,
        pod(json!([{"name": "c", "image": "nginx:2.0"}])),
    ));
    let errs = update(
        "",
        "Pod",
        &old_pod,
        pod(json!([{"name": "c", "image": "nginx:1.0", "ports": [{"containerPort": 80}]}])),
    );
    assert_cause(&errs, "spec", "FieldValueForbidden");
    assert!(errs[0].message.starts_with(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    ));

    let svc = |ip: &str| json!({"metadata": {"name": "web"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
    let (old_svc, _) = create("", "Service", svc("10.0.0.10"));
    assert_valid(&update("", "Service", &old_svc, svc("10.0.0.10")));
    assert_valid(&update("", "Service", &old_svc, svc("")));
    assert_cause(
        &update("", "Service", &old_svc, svc("10.0.0.11")),
        "spec.clusterIPs[0]",
        "FieldValueInvalid",
    );

    let cm = |v: &str| json!({"metadata": {"name": "c"}, "immutable": true, "data": {"k": v}});
    let (old_cm, _) = create("", "ConfigMap", cm("a"));
    assert_valid(&update("", "ConfigMap", &old_cm, cm("a")));
    assert_cause(
        &update("", "ConfigMap", &old_cm, cm("b")),
        "data",
        "FieldValueForbidden",
    );
    let mut unlocked = cm("a");
    unlocked["immutable"] = json!(false);
    assert_cause(
        &update("", "ConfigMap", &old_cm, unlocked),
        "immutable",
        "FieldValueForbidden",
    );

    let secret = |ty: &str| json!({"metadata": {"name": "s"}, "type": ty, "data": {"a": "YQ=="}});
    let (old_secret, _) = create("", "Secret", secret("Opaque"));
    assert_cause(
        &update("", "Secret", &old_secret, secret("example.com/other")),
        "type",
        "FieldValueInvalid",
    );

    let job = |image: &str| json!({"metadata": {"name": "j", "uid": "u1"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image}]}}}});
    let (old_job, _) = create("batch", "Job", job("a"));
    let (same, _) = create("batch", "Job", job("a"));
    assert_valid(&update("batch", "Job", &old_job, same));
    assert_cause(
        &update("batch", "Job", &old_job, job("b")),
        "spec.template",
        "FieldValueInvalid",
    );

    let pvc = |mode: &str, size: &str| json!({"metadata": {"name": "c"}, "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}}});
    let (old_pvc, _) = create("", "PersistentVolumeClaim", pvc("ReadWriteOnce", "1Gi"));
    assert_valid(&update(
        "",
        "PersistentVolumeClaim",
        &old_pvc,
        pvc("ReadWriteOnce", "2Gi"),
    ));
    assert_cause(
        &update(
            "",
            "PersistentVolumeClaim",
            &old_pvc,
            pvc("ReadWriteMany", "1Gi"),
        ),
        "spec",
        "FieldValueForbidden",
    );

    let rb = |role: &str| json!({"metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}});
    let (old_rb, _) = create("rbac.authorization.k8s.io", "RoleBinding", rb("a"));
    assert_cause(
        &update("rbac.authorization.k8s.io", "RoleBinding", &old_rb, rb("b")),
        "roleRef",
        "FieldValueInvalid",
    );

    let sts = |service: &str| json!({"metadata": {"name": "s"}, "spec": {"serviceName": service, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let (old_sts, _) = create("apps", "StatefulSet", sts("one"));
    assert_cause(
        &update("apps", "StatefulSet", &old_sts, sts("two")),
        "spec",
        "FieldValueForbidden",
    );
}

// ------------------------------------------------------------------------------ decoding

#[test]
fn wrong_types_are_decode_errors_naming_the_field() {
    let mut body = nginx_deployment();
    body["spec"]["replicas"] = json!("three");
    let err = (strategy_for("apps", "Deployment").decode)(body).unwrap_err();
    assert!(err.contains("spec.replicas"), "{err}");

    let mut body = pod(json!({}));
    let err = (strategy_for("", "Pod").decode)(body.clone()).unwrap_err();
    assert!(err.contains("spec.containers"), "{err}");
    body["spec"]["containers"] =
        json!([{"name": "c", "image": "x", "ports": [{"containerPort": "80"}]}]);
    let err = (strategy_for("", "Pod").decode)(body).unwrap_err();
    assert!(
        err.contains("spec.containers[0].ports[0].containerPort"),
        "{err}"
    );

    let body = json!({"metadata": {"name": "c", "labels": {"version": 2}}});
    let err = (strategy_for("", "ConfigMap").decode)(body).unwrap_err();
    assert!(err.contains("metadata.labels.version"), "{err}");

    let body = json!({"metadata": {"name": "s"}, "data": {"k": "not base64!"}});
    let err = (strategy_for("", "Secret").decode)(body).unwrap_err();
    assert!(err.contains("data.k"), "{err}");

    let err = (strategy_for("", "Pod").decode)(json!([1, 2])).unwrap_err();
    assert!(err.contains("array"), "{err}");
}

#[test]
fn unknown_fields_are_reported_with_paths() {
    let mut body = nginx_deployment();
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = json!("Always");
    body["spec"]["replica"] = json!(2);
    body["extra"] = json!({"a": 1});
    let decoded = (strategy_for("apps", "Deployment").decode)(body).unwrap();
    assert_eq!(
        decoded.unknown_fields,
        vec![
            "spec.template.spec.containers[0].imagePullPolcy",
            "spec.replica",
            "extra"
        ]
    );
    assert!(decoded.object.get("extra").is_none());
    assert!(
        decoded.object["spec"]["template"]["spec"]["containers"][0]
            .get("imagePullPolcy")
            .is_none()
    );

    let decoded = (strategy_for("", "Pod").decode)(pod(
        json!([{"name": "c", "image": "x", "imagePullPolcy": "Always"}]),
    ))
    .unwrap();
    assert_eq!(
        decoded.unknown_fields,
        vec!["spec.containers[0].imagePullPolcy"]
    );
}

#[test]
fn decode_normalizes_and_keeps_type_meta() {
    // Numbers are valid quantities and become strings; an absent apiVersion/kind is filled in.
    let body = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": 2}}}]}});
    let decoded = (strategy_for("", "Pod").decode)(body).unwrap();
    assert_eq!(
        decoded.object["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "2"
    );
    assert_eq!(decoded.object["apiVersion"], "v1");
    assert_eq!(decoded.object["kind"], "Pod");
    // A different version the API layer accepted is kept as sent.
    let body = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}});
    let decoded = (strategy_for("autoscaling", "HorizontalPodAutoscaler").decode)(body).unwrap();
    assert_eq!(decoded.object["apiVersion"], "autoscaling/v2");
    // Unknown kinds pass through.
    let body = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": 1}});
    let decoded = (strategy_for("example.com", "Widget").decode)(body.clone()).unwrap();
    assert_eq!(decoded.object, body);
}

// ------------------------------------------------------------------------------ robustness

/// Values that break assumptions: wrong types at every level.
fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(-1),
        json!("x"),
        json!([null, 1.5e300, "", {}]),
        json!({"name": 5, "items": {}, "": true}),
    ]
}

/// Every subtree of `v` replaced in turn by `odd`.
fn mutations(v: &Value, odd: &Value, out: &mut Vec<Value>) {
    out.push(odd.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let mut sub = Vec::new();
                mutations(child, odd, &mut sub);
                for s in sub {
                    let mut copy = v.clone();
                    copy[k] = s;
                    out.push(copy);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let mut sub = Vec::new();
                mutations(child, odd, &mut sub);
                for s in sub {
                    let mut copy = v.clone();
                    copy[i] = s;
                    out.push(copy);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn no_input_panics() {
    let template = json!({"metadata": {"labels": {"a": "b"}}, "spec": {
        "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}},
            "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
            "volumeMounts": [{"name": "v", "mountPath": "/v"}],
            "livenessProbe": {"httpGet": {"port": 80}}}],
        "volumes": [{"name": "v", "emptyDir": {}}],
        "tolerations": [{"key": "k", "operator": "Exists"}]}});
    let sample = json!({
        "metadata": {"name": "n", "namespace": "d", "labels": {"a": "b"}, "annotations": {"a": "b"}, "uid": "u"},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]},
            "template": template.clone(), "containers": template["spec"]["containers"].clone(),
            "strategy": {"rollingUpdate": {"maxSurge": 1}}, "updateStrategy": {"type": "RollingUpdate"},
            "ports": [{"port": 80, "targetPort": 80}], "type": "NodePort",
            "jobTemplate": {"spec": {"template": template}}, "schedule": "* * * * *",
            "volumeClaimTemplates": [{"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
            "limits": [{"type": "Container", "max": {"cpu": "1"}}], "hard": {"pods": "1"},
            "rules": [{"http": {"paths": [{"path": "/", "backend": {}}]}}], "ingress": [{"ports": [{"port": 1}], "from": [{}]}],
            "metrics": [{"type": "Resource", "resource": {"target": {}}}], "behavior": {"scaleUp": {}},
            "taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDR": "10.0.0.0/24", "finalizers": ["kubernetes"],
            "minAvailable": "50%", "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/"}
        },
        "data": {"k": "dg=="}, "rules": [{"verbs": ["get"]}], "subjects": [{"kind": "User", "name": "u"}],
        "roleRef": {"kind": "Role", "name": "r"}, "subsets": [{"addresses": [{"ip": "1.2.3.4"}], "ports": [{"port": 1}]}],
        "endpoints": [{"addresses": ["1.2.3.4"]}], "target": {"name": "n"}, "involvedObject": {"namespace": "d"},
        "status": {"capacity": {"cpu": "1"}}
    });
    let mut inputs = Vec::new();
    for odd in odd_values() {
        mutations(&sample, &odd, &mut inputs);
    }
    assert!(inputs.len() > 500, "{}", inputs.len());
    for (group, kind) in KINDS.iter().chain(&[("example.com", "Widget")]) {
        let s = strategy_for(group, kind);
        for (i, input) in inputs.iter().enumerate() {
            // Decoding is serde's job and slow in debug builds: sample it.
            if i % 10 == 0 {
                let _ = (s.decode)(input.clone());
            }
            let mut obj = input.clone();
            (s.default)(&mut obj);
            let _ = (s.validate)(&obj);
            let _ = (s.validate_update)(&obj, input);
            let _ = (s.validate_update)(input, &sample);
        }
    }
}

#[test]
fn every_kind_has_a_strategy() {
    for (group, kind) in KINDS {
        let s = strategy_for(group, kind);
        assert!(
            !std::ptr::eq(s, strategy_for("example.com", "Widget")),
            "{group}/{kind}"
        );
        // An empty body decodes (typed defaults) and fails only on the missing name.
        let mut obj = (s.decode)(json!({})).unwrap().object;
        (s.default)(&mut obj);
        assert_cause(&(s.validate)(&obj), "metadata.name", "FieldValueRequired");
    }
}

#[test]
fn secret_string_data_is_folded_into_data() {
    let s = strategy_for("", "Secret");
    let mut obj = json!({
        "metadata": {"name": "s"},
        "data": {"a": "b2xk", "keep": "eA=="},
        "stringData": {"a": "new", "pw": "hunter2"},
    });
    (s.default)(&mut obj);
    assert_eq!(obj.get("stringData"), None, "write-only");
    assert_eq!(obj["data"]["a"], "bmV3", "stringData wins");
    assert_eq!(obj["data"]["pw"], "aHVudGVyMg==");
    assert_eq!(obj["data"]["keep"], "eA==");
    assert_eq!(obj["type"], "Opaque");
}
