//! `skiffctl apply` (client-side three-way merge or `--server-side`) and `create -f`.

use serde_json::{Value, json};

use crate::discovery::{Discovery, Resource};
use crate::error::{CtlError, Result};
use crate::get::collection;
use crate::http::{Http, JSON};
use crate::manifest::read_all;

/// The annotation kubectl keeps the last applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Flags of `apply` and `create`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Files, directories or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Recurse into directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Apply on the server (server-side apply).
    #[arg(long)]
    pub server_side: bool,
    /// Take over fields other managers own (server-side apply).
    #[arg(long)]
    pub force_conflicts: bool,
    /// none, client or server.
    #[arg(long, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: String,
}

#[derive(Clone, Copy, PartialEq)]
pub enum DryRun {
    None,
    Client,
    Server,
}

impl DryRun {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(DryRun::None),
            "client" => Ok(DryRun::Client),
            "server" => Ok(DryRun::Server),
            o => Err(CtlError::Local(format!(
                "Invalid dry-run value ({o}). Must be \"none\", \"server\", or \"client\"."
            ))),
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }
}

/// Where one manifest object lives on the server.
struct Placed<'a> {
    resource: &'a Resource,
    source: String,
    object: Value,
    item_path: String,
    collection_path: String,
}

fn place<'a>(disc: &'a Discovery, http: &Http, doc: crate::manifest::Doc) -> Result<Placed<'a>> {
    let mut object = doc.object;
    let resource = disc.for_kind(
        object["apiVersion"].as_str().unwrap_or_default(),
        object["kind"].as_str().unwrap_or_default(),
    )?;
    let ns = if resource.info.namespaced {
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(&http.namespace)
            .to_string();
        object["metadata"]["namespace"] = json!(ns);
        Some(ns)
    } else {
        None
    };
    let collection_path = collection(resource, ns.as_deref());
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    Ok(Placed {
        resource,
        source: doc.source,
        item_path: format!("{collection_path}/{name}"),
        collection_path,
        object,
    })
}

fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("{path}?{}", q.finish())
}

fn body(v: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| CtlError::local(e.to_string()))
}

/// The manifest with the last-applied annotation holding the manifest itself (which holds
/// an empty annotations map), as kubectl's `GetModifiedConfiguration` builds it: compact
/// JSON with sorted keys and a trailing newline.
fn with_last_applied(object: &Value) -> Result<Value> {
    let mut bare = object.clone();
    let annots = bare["metadata"]
        .as_object_mut()
        .map(|m| m.entry("annotations").or_insert_with(|| json!({})))
        .ok_or_else(|| CtlError::local("metadata is not an object"))?;
    if let Some(a) = annots.as_object_mut() {
        a.remove(LAST_APPLIED);
    }
    let mut encoded = serde_json::to_string(&crate::print::sorted(&bare))
        .map_err(|e| CtlError::local(e.to_string()))?;
    encoded.push('\n');
    let mut out = bare;
    out["metadata"]["annotations"][LAST_APPLIED] = json!(encoded);
    Ok(out)
}

/// Runs `apply`.
pub async fn apply(http: &Http, disc: &Discovery, a: &ApplyArgs) -> Result<()> {
    let dry = DryRun::parse(&a.dry_run)?;
    let docs = read_all(&a.files, a.recursive)?;
    let mut failed = false;
    for d in docs {
        let p = place(disc, http, d)?;
        let name = p.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let res = if a.server_side {
            server_side(http, &p, a.force_conflicts, dry).await
        } else {
            client_side(http, &p, dry).await
        };
        match res {
            Ok(verb) => println!(
                "{}/{name} {verb}{}",
                p.resource.qualified_kind(),
                dry.suffix()
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(CtlError::Silent)
    } else {
        Ok(())
    }
}

async fn server_side(
    http: &Http,
    p: &Placed<'_>,
    force: bool,
    dry: DryRun,
) -> Result<&'static str> {
    let mut q = vec![("fieldManager", "kubectl"), ("fieldValidation", "Strict")];
    q.push(("force", if force { "true" } else { "false" }));
    if dry == DryRun::Server {
        q.push(("dryRun", "All"));
    }
    if dry != DryRun::Client {
        http.call(
            reqwest::Method::PATCH,
            &with_query(&p.item_path, &q),
            JSON,
            Some(("application/apply-patch+yaml", body(&p.object)?)),
        )
        .await?;
    }
    Ok("serverside-applied")
}

async fn client_side(http: &Http, p: &Placed<'_>, dry: DryRun) -> Result<&'static str> {
    let modified = with_last_applied(&p.object)?;
    let live = match http.get(&p.item_path, JSON).await {
        Ok(v) => v,
        Err(e) if e.is_not_found() => {
            if dry != DryRun::Client {
                let mut q = vec![
                    ("fieldManager", "kubectl-client-side-apply"),
                    ("fieldValidation", "Strict"),
                ];
                if dry == DryRun::Server {
                    q.push(("dryRun", "All"));
                }
                http.call(
                    reqwest::Method::POST,
                    &with_query(&p.collection_path, &q),
                    JSON,
                    Some((JSON, body(&modified)?)),
                )
                .await
                .map_err(|e| e.when("creating", &p.source))?;
            }
            return Ok("created");
        }
        Err(e) => return Err(e.when("retrieving current configuration of", &p.source)),
    };
    let original: Value = live["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    if original.is_null() {
        eprintln!(
            "Warning: resource {}/{} is missing the {LAST_APPLIED} annotation which is required by skiffctl apply. skiffctl apply should only be used on resources created declaratively by either skiffctl create --save-config or skiffctl apply. The missing annotation will be patched automatically.",
            p.resource.qualified_plural(),
            p.object["metadata"]["name"].as_str().unwrap_or_default()
        );
    }
    let patch = crate::smp::three_way(&original, &modified, &live);
    if patch.as_object().is_some_and(|m| m.is_empty()) {
        return Ok("unchanged");
    }
    if dry != DryRun::Client {
        let mut q = vec![
            ("fieldManager", "kubectl-client-side-apply"),
            ("fieldValidation", "Strict"),
        ];
        if dry == DryRun::Server {
            q.push(("dryRun", "All"));
        }
        http.call(
            reqwest::Method::PATCH,
            &with_query(&p.item_path, &q),
            JSON,
            Some(("application/strategic-merge-patch+json", body(&patch)?)),
        )
        .await?;
    }
    Ok("configured")
}

/// Runs `create -f`.
pub async fn create(http: &Http, disc: &Discovery, a: &ApplyArgs) -> Result<()> {
    let dry = DryRun::parse(&a.dry_run)?;
    let mut failed = false;
    for d in read_all(&a.files, a.recursive)? {
        let p = place(disc, http, d)?;
        let name = p.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut q = vec![
            ("fieldManager", "kubectl-create"),
            ("fieldValidation", "Strict"),
        ];
        if dry == DryRun::Server {
            q.push(("dryRun", "All"));
        }
        let res = if dry == DryRun::Client {
            Ok(Value::Null)
        } else {
            http.call(
                reqwest::Method::POST,
                &with_query(&p.collection_path, &q),
                JSON,
                Some((JSON, body(&p.object)?)),
            )
            .await
            .map_err(|e| e.when("creating", &p.source))
        };
        match res {
            Ok(_) => println!(
                "{}/{name} created{}",
                p.resource.qualified_kind(),
                dry.suffix()
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(CtlError::Silent)
    } else {
        Ok(())
    }
}
