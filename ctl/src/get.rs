//! `skiffctl get`: tables from the server's `Table` answers, or the objects themselves as
//! YAML, JSON, names, JSONPath or custom columns; optionally followed by a watch.

use std::cmp::Ordering;

use serde_json::Value;

use crate::discovery::{Discovery, Resource};
use crate::error::{CtlError, Result};
use crate::http::{Http, JSON, TABLE};
use crate::jsonpath::{Template, scalar};
use crate::print::{list_of, tabwrite, to_json, to_yaml};

/// Flags of `get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// TYPE[,TYPE...] [NAME...] or TYPE/NAME ...
    pub args: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=..., custom-columns=...
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes without listing first.
    #[arg(long)]
    pub watch_only: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Show labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// Print table rows without the header line.
    #[arg(long)]
    pub no_headers: bool,
    /// Sort by this JSONPath expression (e.g. `.metadata.name`).
    #[arg(long)]
    pub sort_by: Option<String>,
}

/// What a command line asks for: a resource type and, optionally, names of it.
pub struct Target<'a> {
    pub resource: &'a Resource,
    pub names: Vec<String>,
}

/// Parses `deploy,svc`, `pods a b` and `deploy/web svc/x` into targets.
pub fn targets<'a>(disc: &'a Discovery, args: &[String]) -> Result<Vec<Target<'a>>> {
    let Some(first) = args.first() else {
        return Err(CtlError::local(
            "you must specify the type of resource to get",
        ));
    };
    if args.iter().any(|a| a.contains('/')) {
        let mut out: Vec<Target> = Vec::new();
        for a in args {
            let (kind, name) = a.split_once('/').ok_or_else(|| {
                CtlError::local(format!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiffctl get resource/<resource_name>' instead of 'skiffctl get resource resource/<resource_name>'): {a}"
                ))
            })?;
            let r = disc.resolve(kind)?;
            match out.iter_mut().find(|t| std::ptr::eq(t.resource, r)) {
                Some(t) => t.names.push(name.to_string()),
                None => out.push(Target {
                    resource: r,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    let mut out = Vec::new();
    for k in first.split(',') {
        for resource in disc.expand(k)? {
            out.push(Target {
                resource,
                names: names.clone(),
            });
        }
    }
    Ok(out)
}

/// The collection path of a resource in a namespace (`None` for all namespaces).
pub fn collection(r: &Resource, ns: Option<&str>) -> String {
    let ns = if r.info.namespaced { ns } else { None };
    r.info.collection_path(ns)
}

fn query(base: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("{base}?{}", q.finish())
    } else {
        base.to_string()
    }
}

enum Format {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
    JsonPath(Template),
    Columns(Vec<(String, Template)>),
}

fn parse_format(o: Option<&str>) -> Result<Format> {
    Ok(match o {
        None => Format::Table { wide: false },
        Some("wide") => Format::Table { wide: true },
        Some("yaml") => Format::Yaml,
        Some("json") => Format::Json,
        Some("name") => Format::Name,
        Some(o) if o.starts_with("jsonpath=") => {
            Format::JsonPath(Template::parse(&o["jsonpath=".len()..])?)
        }
        Some(o) if o.starts_with("custom-columns=") => {
            let spec = &o["custom-columns=".len()..];
            let mut cols = Vec::new();
            for c in spec.split(',') {
                let (h, p) = c.split_once(':').ok_or_else(|| {
                    CtlError::local(format!(
                        "unexpected custom-columns spec: {c}, expected <header>:<json-path-expr>"
                    ))
                })?;
                let p = p.trim_start_matches('{').trim_end_matches('}');
                let p = if p.starts_with('.') {
                    p.to_string()
                } else {
                    format!(".{p}")
                };
                cols.push((h.to_string(), Template::parse(&format!("{{{p}}}"))?));
            }
            Format::Columns(cols)
        }
        Some(o) => {
            return Err(CtlError::Local(format!(
                "unable to match a printer suitable for the output format \"{o}\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
            )));
        }
    })
}

/// Runs `get`.
pub async fn run(http: &Http, disc: &Discovery, a: &GetArgs) -> Result<()> {
    let targets = targets(disc, &a.args)?;
    let format = parse_format(a.output.as_deref())?;
    let ns = if a.all_namespaces {
        None
    } else {
        Some(http.namespace.as_str())
    };
    let sort = a.sort_by.as_deref().map(sort_template).transpose()?;
    let with_kind = targets.len() > 1
        || a.args
            .first()
            .is_some_and(|k| disc.resolve(k).is_err() && !k.contains('/'));
    match &format {
        Format::Table { wide } if a.watch || a.watch_only => {
            let [t] = targets.as_slice() else {
                return Err(CtlError::local(
                    "you may only specify a single resource type",
                ));
            };
            watch(http, t, ns, a, *wide, sort.is_some()).await?;
        }
        Format::Table { wide } => {
            let mut printed_any = false;
            let mut missing = Vec::new();
            let mut out = String::new();
            for t in &targets {
                let table = fetch_table(http, t, ns, a, sort.is_some(), &mut missing).await?;
                let rows = sort_rows(rows_of(&table), sort.as_ref());
                if rows.is_empty() {
                    continue;
                }
                let cols = Columns::new(&table, *wide, a, t.resource, with_kind);
                // kubectl separates kinds by a blank line only when they have headers.
                if printed_any && !a.no_headers {
                    out.push('\n');
                }
                let mut lines = cols.header_lines();
                lines.extend(rows.iter().map(|r| cols.row(r)));
                out.push_str(&tabwrite(&lines));
                printed_any = true;
            }
            print!("{out}");
            for e in &missing {
                eprintln!("{e}");
            }
            if !missing.is_empty() {
                return Err(CtlError::Silent);
            }
            if !printed_any {
                no_resources(a, ns);
            }
        }
        other => {
            let mut items = Vec::new();
            let mut single = targets.len() == 1 && targets[0].names.len() == 1;
            for t in &targets {
                if t.names.is_empty() {
                    single = false;
                    let list = http.get(&list_path(t, ns, a, false), JSON).await?;
                    let (api_version, kind) =
                        (t.resource.info.api_version(), &t.resource.info.kind);
                    for mut it in list["items"].as_array().cloned().unwrap_or_default() {
                        if let Value::Object(o) = &mut it {
                            o.insert("apiVersion".into(), api_version.clone().into());
                            o.insert("kind".into(), kind.clone().into());
                        }
                        items.push(it);
                    }
                } else {
                    for n in &t.names {
                        let path = format!("{}/{n}", collection(t.resource, ns));
                        items.push(http.get(&path, JSON).await?);
                    }
                }
            }
            if let Some(s) = &sort {
                items.sort_by(|x, y| {
                    compare(s.values(x).first().copied(), s.values(y).first().copied())
                });
            }
            if items.is_empty() && !matches!(other, Format::Yaml | Format::Json) {
                no_resources(a, ns);
                return Ok(());
            }
            let mut doc = if single {
                items.pop().expect("one item")
            } else {
                list_of(items)
            };
            crate::print::strip_managed_fields(&mut doc);
            match other {
                Format::Yaml => print!("{}", to_yaml(&doc)?),
                Format::Json => print!("{}", to_json(&doc)?),
                Format::JsonPath(t) => print!("{}", t.render(&doc)?),
                Format::Name => {
                    let objs = if single {
                        vec![doc]
                    } else {
                        doc["items"].as_array().cloned().unwrap_or_default()
                    };
                    for o in objs {
                        println!("{}", object_name(disc, &o));
                    }
                }
                Format::Columns(cols) => {
                    let objs = if single {
                        vec![doc]
                    } else {
                        doc["items"].as_array().cloned().unwrap_or_default()
                    };
                    let mut lines = vec![cols.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>()];
                    for o in objs {
                        lines.push(
                            cols.iter()
                                .map(|(_, t)| {
                                    let v = t.values(&o);
                                    if v.is_empty() {
                                        "<none>".to_string()
                                    } else {
                                        v.into_iter().map(scalar).collect::<Vec<_>>().join(",")
                                    }
                                })
                                .collect(),
                        );
                    }
                    print!("{}", tabwrite(&lines));
                }
                Format::Table { .. } => unreachable!("handled above"),
            }
        }
    }
    Ok(())
}

/// `deployment.apps/web` for an object, from its apiVersion and kind.
pub fn object_name(disc: &Discovery, o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or_default();
    let av = o["apiVersion"].as_str().unwrap_or_default();
    let prefix = disc
        .for_kind(av, kind)
        .map(Resource::qualified_kind)
        .unwrap_or_else(|_| kind.to_lowercase());
    format!(
        "{prefix}/{}",
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn no_resources(a: &GetArgs, ns: Option<&str>) {
    match ns {
        Some(ns) if !a.all_namespaces => eprintln!("No resources found in {ns} namespace."),
        _ => eprintln!("No resources found"),
    }
}

fn sort_template(s: &str) -> Result<Template> {
    let s = s.trim_start_matches('{').trim_end_matches('}');
    let s = if s.starts_with('.') {
        s.to_string()
    } else {
        format!(".{s}")
    };
    Template::parse(&format!("{{{s}}}"))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(x), Some(y)) => natural(&scalar(x), &scalar(y)),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// kubectl's natural string order: runs of digits compare as numbers (`9` < `11`).
fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.len() - a.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let db = b.len() - b.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let (na, nb) = (
                    a[..da].trim_start_matches('0'),
                    b[..db].trim_start_matches('0'),
                );
                let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if o != Ordering::Equal {
                    return o;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

fn list_path(t: &Target, ns: Option<&str>, a: &GetArgs, objects: bool) -> String {
    query(
        &collection(t.resource, ns),
        &[
            ("labelSelector", a.selector.as_deref()),
            ("fieldSelector", a.field_selector.as_deref()),
            ("includeObject", objects.then_some("Object")),
        ],
    )
}

/// The Table for a target: the list, or one Table per name merged into one.
async fn fetch_table(
    http: &Http,
    t: &Target<'_>,
    ns: Option<&str>,
    a: &GetArgs,
    objects: bool,
    missing: &mut Vec<CtlError>,
) -> Result<Value> {
    if t.names.is_empty() {
        return http.get(&list_path(t, ns, a, objects), TABLE).await;
    }
    let mut merged: Option<Value> = None;
    for n in &t.names {
        let path = query(
            &format!("{}/{n}", collection(t.resource, ns)),
            &[("includeObject", objects.then_some("Object"))],
        );
        let tbl = match http.get(&path, TABLE).await {
            Ok(t) => t,
            Err(e) if e.is_not_found() && t.names.len() > 1 => {
                missing.push(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        match &mut merged {
            None => merged = Some(tbl),
            Some(m) => {
                let rows = tbl["rows"].as_array().cloned().unwrap_or_default();
                if let Some(arr) = m["rows"].as_array_mut() {
                    arr.extend(rows);
                }
            }
        }
    }
    Ok(merged.unwrap_or(Value::Null))
}

fn rows_of(table: &Value) -> Vec<Value> {
    table["rows"].as_array().cloned().unwrap_or_default()
}

fn sort_rows(mut rows: Vec<Value>, sort: Option<&Template>) -> Vec<Value> {
    if let Some(s) = sort {
        rows.sort_by(|x, y| {
            compare(
                s.values(&x["object"]).first().copied(),
                s.values(&y["object"]).first().copied(),
            )
        });
    }
    rows
}

/// Which of the Table's columns are printed, and the extra ones kubectl adds.
struct Columns {
    /// (index into cells, header)
    shown: Vec<(usize, String)>,
    name_index: Option<usize>,
    namespace: bool,
    labels: bool,
    headers: bool,
    prefix: Option<String>,
}

impl Columns {
    fn new(table: &Value, wide: bool, a: &GetArgs, r: &Resource, with_kind: bool) -> Self {
        let defs = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut shown = Vec::new();
        let mut name_index = None;
        for (i, d) in defs.iter().enumerate() {
            if d["priority"].as_i64().unwrap_or(0) > 0 && !wide {
                continue;
            }
            if d["format"] == "name" && name_index.is_none() {
                name_index = Some(i);
            }
            shown.push((i, d["name"].as_str().unwrap_or_default().to_uppercase()));
        }
        Columns {
            shown,
            name_index,
            namespace: a.all_namespaces && r.info.namespaced,
            labels: a.show_labels,
            headers: !a.no_headers,
            prefix: with_kind.then(|| r.qualified_kind()),
        }
    }

    /// The header line, unless `--no-headers`.
    fn header_lines(&self) -> Vec<Vec<String>> {
        if self.headers {
            vec![self.header()]
        } else {
            Vec::new()
        }
    }

    fn header(&self) -> Vec<String> {
        let mut h = Vec::new();
        if self.namespace {
            h.push("NAMESPACE".to_string());
        }
        h.extend(self.shown.iter().map(|(_, n)| n.clone()));
        if self.labels {
            h.push("LABELS".to_string());
        }
        h
    }

    fn row(&self, row: &Value) -> Vec<String> {
        let meta = &row["object"]["metadata"];
        let mut out = Vec::new();
        if self.namespace {
            out.push(meta["namespace"].as_str().unwrap_or_default().to_string());
        }
        for (i, _) in &self.shown {
            let cell = cell(&row["cells"][*i]);
            match (&self.prefix, self.name_index) {
                (Some(p), Some(n)) if n == *i => out.push(format!("{p}/{cell}")),
                _ => out.push(cell),
            }
        }
        if self.labels {
            out.push(labels(&meta["labels"]));
        }
        out
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "<none>".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `k=v,k2=v2` sorted by key, or `<none>`.
pub fn labels(v: &Value) -> String {
    let Some(m) = v.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut kv: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", scalar(v)))
        .collect();
    kv.sort();
    kv.join(",")
}

/// Lists (printing the table unless `--watch-only`), then follows a watch from the list's
/// resourceVersion, printing one row per event under the remembered column widths. The
/// server sends column definitions only with the list, so they are kept from there.
async fn watch(
    http: &Http,
    t: &Target<'_>,
    ns: Option<&str>,
    a: &GetArgs,
    wide: bool,
    objects: bool,
) -> Result<()> {
    use std::io::Write;
    let table = fetch_table(http, t, ns, a, objects, &mut Vec::new()).await?;
    let rv = table["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cols = Columns::new(&table, wide, a, t.resource, false);
    let mut tw = crate::print::TabWriter::default();
    let mut header_done = false;
    let rows = rows_of(&table);
    if !a.watch_only {
        if rows.is_empty() {
            no_resources(a, ns);
        } else {
            let mut lines = cols.header_lines();
            lines.extend(rows.iter().map(|r| cols.row(r)));
            print!("{}", tw.write(&lines));
            header_done = true;
        }
    }
    let _ = std::io::stdout().flush();
    let field = match t.names.as_slice() {
        [n] => Some(format!("metadata.name={n}")),
        _ => a.field_selector.clone(),
    };
    let path = query(
        &collection(t.resource, ns),
        &[
            ("watch", Some("true")),
            ("resourceVersion", Some(&rv)),
            ("labelSelector", a.selector.as_deref()),
            ("fieldSelector", field.as_deref()),
        ],
    );
    http.watch(&path, TABLE, |ev| {
        let table = &ev["object"];
        if ev["type"] == "ERROR" {
            return Err(CtlError::Server {
                reason: table["reason"].as_str().unwrap_or_default().to_string(),
                message: table["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        if table["kind"] != "Table" {
            return Ok(());
        }
        let mut lines = Vec::new();
        if !header_done {
            lines.extend(cols.header_lines());
            header_done = true;
        }
        lines.extend(rows_of(table).iter().map(|r| cols.row(r)));
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(tw.write(&lines).as_bytes());
        let _ = out.flush();
        Ok(())
    })
    .await
}
