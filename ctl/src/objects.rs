//! What the imperative verbs (`scale`, `set image`, `rollout`, `cordon`, `drain`) act on: named
//! objects resolved from `TYPE NAME`, `TYPE/NAME`, `-l` or `-f`, and the patch request they
//! all send.

use serde_json::Value;

use crate::discovery::{Discovery, Resource};
use crate::error::{CtlError, Result};
use crate::get::{collection, targets};
use crate::http::{Http, JSON};

/// One object a verb acts on.
#[derive(Clone)]
pub struct ObjRef<'a> {
    pub resource: &'a Resource,
    pub namespace: String,
    pub name: String,
}

impl ObjRef<'_> {
    /// The object's URL path.
    pub fn path(&self) -> String {
        format!(
            "{}/{}",
            collection(self.resource, Some(&self.namespace)),
            self.name
        )
    }

    /// `deployment.apps/web`, as kubectl's name printer shows it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.resource.qualified_kind(), self.name)
    }

    /// `deployments.apps "web"`, as the API's messages name it.
    pub fn quoted(&self) -> String {
        format!("{} \"{}\"", self.resource.qualified_plural(), self.name)
    }
}

/// How the objects of a verb were chosen on the command line.
pub struct Selection<'s> {
    pub args: &'s [String],
    pub files: &'s [String],
    pub selector: Option<&'s str>,
    pub all: bool,
}

/// Resolves the selection to objects, in command-line order. Listing with `-l`/`--all` and
/// naming with `-f` need no extra request; named objects are not fetched here.
pub async fn select<'a>(
    http: &Http,
    disc: &'a Discovery,
    sel: &Selection<'_>,
) -> Result<Vec<ObjRef<'a>>> {
    let ns = http.namespace.clone();
    let mut out = Vec::new();
    if !sel.files.is_empty() {
        for doc in crate::manifest::read_all(sel.files, false)? {
            let r = disc.for_kind(
                doc.object["apiVersion"].as_str().unwrap_or_default(),
                doc.object["kind"].as_str().unwrap_or_default(),
            )?;
            out.push(ObjRef {
                resource: r,
                namespace: doc.object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(&ns)
                    .to_string(),
                name: doc.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        return Ok(out);
    }
    if sel.args.is_empty() {
        return Err(CtlError::local(
            "You must provide one or more resources by argument or filename.",
        ));
    }
    for t in targets(disc, sel.args)? {
        if !t.names.is_empty() {
            for n in t.names {
                out.push(ObjRef {
                    resource: t.resource,
                    namespace: ns.clone(),
                    name: n,
                });
            }
            continue;
        }
        if sel.selector.is_none() && !sel.all {
            return Err(CtlError::local(
                "resource(s) were provided, but no name was specified",
            ));
        }
        let mut path = collection(t.resource, Some(&ns));
        if let Some(s) = sel.selector {
            path = with_query(&path, &[("labelSelector", s)]);
        }
        let list = http.get(&path, JSON).await?;
        for it in list["items"].as_array().into_iter().flatten() {
            out.push(ObjRef {
                resource: t.resource,
                namespace: ns.clone(),
                name: it["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    Ok(out)
}

/// `path?k=v&...`, form-encoded.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("{path}?{}", q.finish())
}

/// Strategic merge patch, as kubectl's imperative verbs send it.
pub const SMP: &str = "application/strategic-merge-patch+json";
/// JSON merge patch (`scale`).
pub const MERGE: &str = "application/merge-patch+json";
/// JSON patch (`rollout undo`).
pub const JSON_PATCH: &str = "application/json-patch+json";

/// Sends a `PATCH` of `content_type` and returns the patched object.
pub async fn patch(http: &Http, path: &str, content_type: &str, body: &Value) -> Result<Value> {
    let bytes = serde_json::to_vec(body).map_err(|e| CtlError::local(e.to_string()))?;
    http.call(
        reqwest::Method::PATCH,
        path,
        JSON,
        Some((content_type, bytes)),
    )
    .await
}

/// Sends a body with `method` (`POST`, `PUT`) as JSON.
pub async fn send_json(
    http: &Http,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> Result<Value> {
    let bytes = serde_json::to_vec(body).map_err(|e| CtlError::local(e.to_string()))?;
    http.call(method, path, JSON, Some((JSON, bytes))).await
}

/// Go's `time.Duration` flag syntax (`30s`, `1m30s`, `500ms`, `0`), as kubectl's `--timeout`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    parse_flag_duration("--timeout", s)
}

/// A Go duration given to `flag`; errors name the flag as kubectl's do.
pub fn parse_flag_duration(flag: &str, s: &str) -> Result<std::time::Duration> {
    let bad = || {
        CtlError::Local(format!(
            "invalid argument \"{s}\" for \"{flag}\" flag: time: invalid duration \"{s}\""
        ))
    };
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// Go's `Duration.String()` for whole seconds and above (`2s`, `1m0s`, `1h0m30s`), which
/// kubectl's timeout messages contain.
pub fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (h, m) = ((secs / 3600.0) as u64, ((secs % 3600.0) / 60.0) as u64);
    let s = secs % 60.0;
    let s_text = if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{}s", format!("{s:.9}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s_text,
        (0, m) => format!("{m}m{s_text}"),
        (h, m) => format!("{h}h{m}m{s_text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_and_print_like_go() {
        for (text, secs, printed) in [
            ("0", 0.0, "0s"),
            ("2s", 2.0, "2s"),
            ("90s", 90.0, "1m30s"),
            ("1m", 60.0, "1m0s"),
            ("1h0m30s", 3630.0, "1h0m30s"),
            ("1.5s", 1.5, "1.5s"),
            ("500ms", 0.5, "500ms"),
        ] {
            let d = parse_duration(text).expect(text);
            assert_eq!(d, Duration::from_secs_f64(secs), "{text}");
            assert_eq!(go_duration(d), printed, "{text}");
        }
        for bad in ["", "5", "5x", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
