//! Bad input gets the right `Status`, stores nothing, and leaves the server serving.

mod support;

use serde_json::{Value, json};
use support::{Api, TestServer};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";

struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    code: u16,
    reason: &'static str,
    /// A field the Status must name in details.causes, if any.
    field: Option<&'static str>,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: &str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    code: u16,
    reason: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_string(),
        content_type,
        body: body.into(),
        code,
        reason,
        field: None,
    }
}

async fn send(api: &Api, c: &Case) -> (u16, Value) {
    let url = format!("{}{}", api.base, c.path);
    let req = match c.method {
        "POST" => api.http.post(url),
        "PUT" => api.http.put(url),
        "PATCH" => api.http.patch(url),
        "DELETE" => api.http.delete(url),
        _ => api.http.get(url),
    };
    let resp = req
        .header("content-type", c.content_type)
        .body(c.body.clone())
        .send()
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (code, body)
}

/// Every object of the test's kinds, so "nothing stored" can be compared exactly.
async fn snapshot(api: &Api) -> Vec<Value> {
    let mut all = Vec::new();
    for p in [
        CM,
        DEPLOYS,
        PODS,
        "/api/v1/namespaces",
        "/api/v1/namespaces/default/services",
    ] {
        let r = api.get(p).await;
        assert_eq!(r.code, 200);
        all.extend(r.body["items"].as_array().cloned().unwrap_or_default());
    }
    all
}

#[tokio::test]
async fn bad_requests_get_statuses_and_store_nothing() {
    let server = TestServer::start().await;
    let api = server.client();
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    assert_eq!(api.post(DEPLOYS, &deploy).await.code, 201);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut d = deploy.clone();
        d["metadata"]["name"] = json!("other");
        f(&mut d);
        serde_json::to_vec(&d).unwrap()
    };
    let json_ct = "application/json";
    let mut cases = vec![
        case(
            "malformed JSON",
            "POST",
            CM,
            json_ct,
            "{\"metadata\": {",
            400,
            "BadRequest",
        ),
        case(
            "malformed YAML",
            "POST",
            CM,
            "application/yaml",
            "metadata: [unclosed\n  name: x",
            400,
            "BadRequest",
        ),
        case(
            "not an object",
            "POST",
            CM,
            json_ct,
            "[1,2]",
            400,
            "BadRequest",
        ),
        case(
            "wrong type",
            "POST",
            DEPLOYS,
            json_ct,
            with(&|d| d["spec"]["replicas"] = json!("three")),
            400,
            "BadRequest",
        ),
        case(
            "wrong type deep",
            "POST",
            DEPLOYS,
            json_ct,
            with(&|d| d["spec"]["template"]["spec"]["containers"] = json!({})),
            400,
            "BadRequest",
        ),
        case(
            "unknown field (Strict)",
            "POST",
            &format!("{DEPLOYS}?fieldValidation=Strict"),
            json_ct,
            with(&|d| d["spec"]["replicaz"] = json!(2)),
            400,
            "BadRequest",
        ),
        case(
            "wrong kind",
            "POST",
            DEPLOYS,
            json_ct,
            with(&|d| d["kind"] = json!("Pod")),
            400,
            "BadRequest",
        ),
        case(
            "wrong apiVersion",
            "POST",
            DEPLOYS,
            json_ct,
            with(&|d| d["apiVersion"] = json!("apps/v2")),
            400,
            "BadRequest",
        ),
        case(
            "namespace mismatch",
            "POST",
            DEPLOYS,
            json_ct,
            with(&|d| d["metadata"]["namespace"] = json!("kube-system")),
            400,
            "BadRequest",
        ),
        Case {
            field: Some("spec.template.spec.containers[0].image"),
            ..case(
                "missing image",
                "POST",
                DEPLOYS,
                json_ct,
                with(&|d| {
                    d["spec"]["template"]["spec"]["containers"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("image");
                }),
                422,
                "Invalid",
            )
        },
        Case {
            field: Some("spec.template.metadata.labels"),
            ..case(
                "selector does not match",
                "POST",
                DEPLOYS,
                json_ct,
                with(&|d| d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"})),
                422,
                "Invalid",
            )
        },
        Case {
            field: Some("metadata.name"),
            ..case(
                "invalid name",
                "POST",
                CM,
                json_ct,
                r#"{"metadata":{"name":"Bad_Name"}}"#,
                422,
                "Invalid",
            )
        },
        Case {
            field: Some("metadata.name"),
            ..case(
                "missing name",
                "POST",
                CM,
                json_ct,
                r#"{"metadata":{}}"#,
                422,
                "Invalid",
            )
        },
        Case {
            field: Some("spec.template.spec.containers[0].resources.limits[cpu]"),
            ..case(
                "bad quantity",
                "POST",
                DEPLOYS,
                json_ct,
                with(&|d| {
                    d["spec"]["template"]["spec"]["containers"][0]["resources"] =
                        json!({"limits": {"cpu": "lots"}})
                }),
                422,
                "Invalid",
            )
        },
        case(
            "oversized body",
            "POST",
            CM,
            json_ct,
            format!(
                "{{\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"a\":\"{}\"}}}}",
                "x".repeat(3 * 1024 * 1024 + 10)
            ),
            413,
            "RequestEntityTooLarge",
        ),
        case(
            "protobuf body",
            "POST",
            CM,
            "application/vnd.kubernetes.protobuf",
            vec![0u8, 1, 2],
            415,
            "UnsupportedMediaType",
        ),
        case(
            "bad label selector",
            "GET",
            &format!("{CM}?labelSelector=a%20in%20(b"),
            json_ct,
            "",
            400,
            "BadRequest",
        ),
        case(
            "bad field selector",
            "GET",
            &format!("{CM}?fieldSelector=spec.nope%3D1"),
            json_ct,
            "",
            400,
            "BadRequest",
        ),
        case(
            "unknown resource",
            "GET",
            "/api/v1/widgets",
            json_ct,
            "",
            404,
            "NotFound",
        ),
        case(
            "method not allowed",
            "POST",
            &format!("{DEPLOYS}/web"),
            json_ct,
            "{}",
            405,
            "MethodNotAllowed",
        ),
        case(
            "bad JSON patch",
            "PATCH",
            &format!("{DEPLOYS}/web"),
            "application/json-patch+json",
            r#"[{"op":"explode","path":"/spec"}]"#,
            400,
            "BadRequest",
        ),
        case(
            "malformed merge patch",
            "PATCH",
            &format!("{DEPLOYS}/web"),
            "application/merge-patch+json",
            "{nope",
            400,
            "BadRequest",
        ),
        case(
            "bad strategic directive",
            "PATCH",
            &format!("{DEPLOYS}/web"),
            "application/strategic-merge-patch+json",
            r#"{"spec":{"$patch":"explode"}}"#,
            400,
            "BadRequest",
        ),
        case(
            "patch makes it invalid",
            "PATCH",
            &format!("{DEPLOYS}/web"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":-3}}"#,
            422,
            "Invalid",
        ),
        case(
            "patch of unknown type",
            "PATCH",
            &format!("{DEPLOYS}/web"),
            "text/plain",
            "x",
            415,
            "UnsupportedMediaType",
        ),
        case(
            "bad dryRun",
            "POST",
            &format!("{CM}?dryRun=Sometimes"),
            json_ct,
            r#"{"metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
        ),
        case(
            "bad fieldValidation",
            "POST",
            &format!("{CM}?fieldValidation=Loose"),
            json_ct,
            r#"{"metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
        ),
        case(
            "bad propagationPolicy",
            "DELETE",
            &format!("{DEPLOYS}/web"),
            json_ct,
            r#"{"propagationPolicy":"Sideways"}"#,
            422,
            "Invalid",
        ),
        case(
            "apply without manager",
            "PATCH",
            &format!("{CM}/x"),
            "application/apply-patch+yaml",
            "metadata:\n  name: x\n",
            400,
            "BadRequest",
        ),
    ];
    cases.push(case(
        "binary garbage",
        "POST",
        CM,
        json_ct,
        vec![0xff, 0xfe, 0x00, 0x10],
        400,
        "BadRequest",
    ));
    let before = snapshot(&api).await;
    for c in &cases {
        let (code, body) = send(&api, c).await;
        assert_eq!(code, c.code, "{}: {body}", c.what);
        assert_eq!(body["kind"], "Status", "{}: {body}", c.what);
        assert_eq!(body["status"], "Failure", "{}", c.what);
        assert_eq!(body["reason"], c.reason, "{}: {body}", c.what);
        assert_eq!(body["code"], c.code, "{}", c.what);
        if let Some(field) = c.field {
            let causes = body["details"]["causes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                causes.iter().any(|x| x["field"] == field),
                "{}: no cause for {field} in {body}",
                c.what
            );
        }
        assert_eq!(
            api.get("/readyz").await.code,
            200,
            "server still serving after {}",
            c.what
        );
    }
    let after = snapshot(&api).await;
    assert_eq!(before, after, "no bad request changed anything");

    // Unknown fields under the default (Warn) are dropped with a warning header.
    let warned = api
        .http
        .post(format!("{}{CM}", api.base))
        .json(&json!({"metadata": {"name": "warned"}, "dataa": {"a": "b"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(warned.status().as_u16(), 201);
    let warning = warned
        .headers()
        .get("warning")
        .expect("a Warning header")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(warning, r#"299 - "unknown field \"dataa\"""#);
    let body: Value = warned.json().await.unwrap();
    assert!(body.get("dataa").is_none());

    // Patches report unknown fields the same way.
    let patched = api
        .http
        .patch(format!("{}{CM}/warned", api.base))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"binaryDataa":{"x":"eQ=="}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    let warning = patched
        .headers()
        .get("warning")
        .expect("a Warning header on patch");
    assert!(warning.to_str().unwrap().contains("binaryDataa"));
}
