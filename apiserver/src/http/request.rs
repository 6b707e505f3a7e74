//! Turning a URL into "which resource, which object, which verb" — pure, so it is unit-tested.

use std::collections::HashMap;

use crate::error::Error;
use crate::resources::{self, ResourceType};

/// What a resource URL names.
#[derive(Debug)]
pub struct Target {
    pub rt: &'static ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path form.
    pub legacy_watch: bool,
}

/// Parses `/api/v1/...` and `/apis/<group>/<version>/...` resource paths. `Ok(None)` means the
/// path is not a resource path at all; `Err` is a resource path naming nothing served.
pub fn parse_resource_path(path: &str) -> Result<Option<Target>, Error> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Ok(None),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let lookup =
        |resource: &str| resources::lookup(group, version, resource).ok_or(Error::NoSuchResource);
    let target = |rt, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        rt,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
        legacy_watch,
    };
    let t = match rest {
        [resource] => target(lookup(resource)?, None, None, None),
        ["namespaces", ns, resource, tail @ ..]
            if resources::lookup(group, version, resource).is_some_and(|r| r.namespaced) =>
        {
            let rt = lookup(resource)?;
            match tail {
                [] => target(rt, Some(ns), None, None),
                [name] => target(rt, Some(ns), Some(name), None),
                [name, sub] => target(rt, Some(ns), Some(name), Some(sub)),
                _ => return Err(Error::NoSuchResource),
            }
        }
        [resource, name] => {
            let rt = lookup(resource)?;
            if rt.namespaced {
                return Err(Error::NoSuchResource);
            }
            target(rt, None, Some(name), None)
        }
        [resource, name, sub] => {
            let rt = lookup(resource)?;
            if rt.namespaced {
                return Err(Error::NoSuchResource);
            }
            target(rt, None, Some(name), Some(sub))
        }
        _ => return Err(Error::NoSuchResource),
    };
    if t.name.as_deref() == Some("") || t.namespace.as_deref() == Some("") {
        return Err(Error::NoSuchResource);
    }
    Ok(Some(t))
}

/// Query parameters; repeated keys keep every value.
#[derive(Debug, Default)]
pub struct Query {
    values: HashMap<String, Vec<String>>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(raw) = raw {
            for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
                values
                    .entry(k.into_owned())
                    .or_default()
                    .push(v.into_owned());
            }
        }
        Self { values }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Whether a boolean parameter is set to true (`true` or `1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// `dryRun=All` (the only value Kubernetes accepts).
    pub fn dry_run(&self) -> Result<bool, Error> {
        match self.values.get("dryRun") {
            None => Ok(false),
            Some(values) => {
                for v in values {
                    if v != "All" {
                        return Err(Error::bad_request(format!(
                            "Invalid dryRun value: {v:?}: supported values: \"All\""
                        )));
                    }
                }
                Ok(!values.is_empty())
            }
        }
    }

    /// A non-negative integer parameter.
    pub fn number(&self, key: &str) -> Result<Option<i64>, Error> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                Error::bad_request(format!("invalid value {v:?} for {key}: must be an integer"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: &str) -> Target {
        parse_resource_path(p).unwrap().unwrap()
    }

    #[test]
    fn resource_paths() {
        let t = parse("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(t.rt.resource, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse("/api/v1/pods");
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = parse("/api/v1/namespaces/kube-system");
        assert_eq!(t.rt.resource, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        let t = parse("/api/v1/namespaces/x/finalize");
        assert_eq!(t.rt.resource, "namespaces");
        assert_eq!(t.subresource.as_deref(), Some("finalize"));
        let t = parse("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(t.rt.kind, "Deployment");
        let t = parse("/api/v1/nodes/n1");
        assert_eq!(t.name.as_deref(), Some("n1"));
        let t = parse("/api/v1/watch/namespaces/default/pods");
        assert!(t.legacy_watch);
    }

    #[test]
    fn unknown_paths() {
        assert!(parse_resource_path("/healthz").unwrap().is_none());
        assert!(parse_resource_path("/api/v1").unwrap().is_none());
        assert!(parse_resource_path("/api/v1/widgets").is_err());
        assert!(parse_resource_path("/apis/apps/v1/pods").is_err());
        assert!(parse_resource_path("/api/v1/pods/x").is_err());
        assert!(parse_resource_path("/api/v1/namespaces/default/pods/a/b/c").is_err());
    }

    #[test]
    fn query_values() {
        let q = Query::parse(Some("dryRun=All&watch=1&limit=5&labelSelector=a%3Db"));
        assert!(q.dry_run().unwrap());
        assert!(q.flag("watch"));
        assert_eq!(q.number("limit").unwrap(), Some(5));
        assert_eq!(q.get("labelSelector"), Some("a=b"));
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
        assert!(Query::parse(Some("limit=x")).number("limit").is_err());
    }
}
