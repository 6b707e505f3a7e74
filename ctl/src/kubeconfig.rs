//! `skiffctl config view|get-contexts|use-context|current-context`: reading and editing the
//! kubeconfig file itself (no server needed).
//!
//! The file is handled as a generic document so fields skiffctl does not know survive a
//! `use-context`. Only the first file of `KUBECONFIG` is read and written, which is the file
//! kubectl writes to as well.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{CtlError, Result};
use crate::print::{tabwrite, to_yaml};

/// `config` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Display the kubeconfig (secrets redacted).
    View {
        /// Output format: yaml or json.
        #[arg(short = 'o', long, default_value = "yaml")]
        output: String,
        /// Show only what the current context uses.
        #[arg(long)]
        minify: bool,
        /// Show certificate data and tokens.
        #[arg(long)]
        raw: bool,
    },
    /// List the contexts.
    GetContexts,
    /// Print the current context.
    CurrentContext,
    /// Set the current context.
    UseContext {
        /// Context name.
        name: String,
    },
}

/// The kubeconfig file these commands act on.
fn path(explicit: Option<&PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.clone());
    }
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty())
        && let Some(first) = std::env::split_paths(&k).next()
    {
        return Ok(first);
    }
    match std::env::var_os("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".kube").join("config")),
        None => Err(CtlError::local(
            "no kubeconfig: neither KUBECONFIG nor HOME is set",
        )),
    }
}

fn read(p: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| CtlError::Local(format!("cannot read kubeconfig {}: {e}", p.display())))?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let v = Value::deserialize(de).map_err(|e| {
        CtlError::Local(format!(
            "cannot read kubeconfig {}: {}",
            p.display(),
            crate::error::one_line(&e.to_string())
        ))
    })?;
    Ok(if v.is_null() { json!({}) } else { v })
}

fn named<'a>(v: &'a Value, list: &str) -> impl Iterator<Item = &'a Value> {
    v[list].as_array().into_iter().flatten()
}

/// Runs a `config` subcommand.
pub fn run(explicit: Option<&PathBuf>, context: Option<&str>, cmd: &ConfigCmd) -> Result<()> {
    let p = path(explicit)?;
    let mut kc = read(&p)?;
    let current = context
        .map(str::to_string)
        .or_else(|| kc["current-context"].as_str().map(str::to_string))
        .unwrap_or_default();
    match cmd {
        ConfigCmd::View {
            output,
            minify,
            raw,
        } => {
            let mut view = json!({
                "apiVersion": "v1",
                "clusters": kc["clusters"].as_array().cloned().unwrap_or_default(),
                "contexts": kc["contexts"].as_array().cloned().unwrap_or_default(),
                "current-context": kc["current-context"].as_str().unwrap_or_default(),
                "kind": "Config",
                "preferences": {},
                "users": kc["users"].as_array().cloned().unwrap_or_default(),
            });
            if *minify {
                minify_to(&mut view, &current)?;
            }
            if !raw {
                redact(&mut view);
            }
            match output.as_str() {
                "json" => print!("{}", struct_order_json(&view)?),
                "yaml" => print!("{}", to_yaml(&view)?),
                o => {
                    return Err(CtlError::Local(format!(
                        "unsupported output format \"{o}\""
                    )));
                }
            }
        }
        ConfigCmd::GetContexts => {
            let mut rows = vec![
                ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
                    .map(String::from)
                    .to_vec(),
            ];
            let mut ctxs: Vec<&Value> = named(&kc, "contexts").collect();
            ctxs.sort_by_key(|c| c["name"].as_str().unwrap_or_default().to_string());
            for c in ctxs {
                let name = c["name"].as_str().unwrap_or_default();
                let ctx = &c["context"];
                rows.push(vec![
                    if name == current {
                        "*".into()
                    } else {
                        String::new()
                    },
                    name.into(),
                    ctx["cluster"].as_str().unwrap_or_default().into(),
                    ctx["user"].as_str().unwrap_or_default().into(),
                    ctx["namespace"].as_str().unwrap_or_default().into(),
                ]);
            }
            print!("{}", tabwrite(&rows));
        }
        ConfigCmd::CurrentContext => {
            if current.is_empty() {
                return Err(CtlError::local("current-context is not set"));
            }
            println!("{current}");
        }
        ConfigCmd::UseContext { name } => {
            if !named(&kc, "contexts").any(|c| c["name"] == name.as_str()) {
                return Err(CtlError::Local(format!(
                    "no context exists with the name: \"{name}\""
                )));
            }
            kc["current-context"] = json!(name);
            let text = serde_yaml_ng::to_string(&kc).map_err(|e| CtlError::local(e.to_string()))?;
            std::fs::write(&p, text)?;
            println!("Switched to context \"{name}\".");
        }
    }
    Ok(())
}

/// Keeps only the current context and the cluster and user it names.
fn minify_to(view: &mut Value, current: &str) -> Result<()> {
    let ctx = named(view, "contexts")
        .find(|c| c["name"] == current)
        .cloned()
        .ok_or_else(|| CtlError::Local(format!("cannot locate context {current}")))?;
    let keep = |list: &str, name: &Value| -> Vec<Value> {
        named(view, list)
            .filter(|x| x["name"] == *name)
            .cloned()
            .collect()
    };
    let clusters = keep("clusters", &ctx["context"]["cluster"]);
    let users = keep("users", &ctx["context"]["user"]);
    view["clusters"] = json!(clusters);
    view["users"] = json!(users);
    view["contexts"] = json!([ctx]);
    view["current-context"] = json!(current);
    Ok(())
}

/// kubectl's redaction: certificate and key data become `DATA+OMITTED`, secrets `REDACTED`.
fn redact(view: &mut Value) {
    for list in ["clusters", "users"] {
        for item in view[list].as_array_mut().into_iter().flatten() {
            let inner = if list == "clusters" {
                "cluster"
            } else {
                "user"
            };
            if let Some(m) = item[inner].as_object_mut() {
                for (k, v) in m.iter_mut() {
                    if k.ends_with("-data") {
                        *v = json!("DATA+OMITTED");
                    } else if k == "token" || k == "password" {
                        *v = json!("REDACTED");
                    }
                }
            }
        }
    }
}

/// `config view -o json` follows the Go struct's field order (YAML goes through a map and is
/// sorted, JSON is not).
fn struct_order_json(view: &Value) -> Result<String> {
    fn pick(v: &Value, keys: &[&str]) -> Value {
        let mut m = serde_json::Map::new();
        for k in keys {
            if let Some(x) = v.get(*k) {
                m.insert(k.to_string(), x.clone());
            }
        }
        if let Some(o) = v.as_object() {
            for (k, x) in o {
                if !keys.contains(&k.as_str()) {
                    m.insert(k.clone(), x.clone());
                }
            }
        }
        Value::Object(m)
    }
    let list = |name: &str, inner: &str, inner_keys: &[&str]| -> Value {
        Value::Array(
            named(view, name)
                .map(|item| {
                    let mut it = pick(item, &["name", inner]);
                    if let Some(x) = item.get(inner) {
                        it[inner] = pick(x, inner_keys);
                    }
                    it
                })
                .collect(),
        )
    };
    let mut out = pick(view, &["kind", "apiVersion", "preferences"]);
    let ordered = json!({
        "clusters": list("clusters", "cluster", &[]),
        "users": list("users", "user", &[]),
        "contexts": list("contexts", "context", &["cluster", "user", "namespace"]),
    });
    let m = out.as_object_mut().expect("object");
    for k in ["clusters", "users", "contexts"] {
        m.shift_remove(k);
        m.insert(k.to_string(), ordered[k].clone());
    }
    let cc = m.shift_remove("current-context").unwrap_or(json!(""));
    m.insert("current-context".into(), cc);
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&out, &mut ser).map_err(|e| CtlError::local(e.to_string()))?;
    Ok(String::from_utf8_lossy(&buf).into_owned() + "\n")
}
