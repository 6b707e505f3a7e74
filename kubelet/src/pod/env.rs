//! A container's environment, and its command and args with `$(VAR)` references expanded, the
//! way the kubelet builds them (`makeEnvironmentVariables`).
//!
//! Order of precedence: every `envFrom` source in order, then every `env` entry in order; a
//! later definition of a name overrides an earlier one (keeping the earlier position). A literal
//! `value` is expanded against what is defined *before* it; values from `valueFrom` are taken
//! verbatim. The agent fetches the pod's ConfigMaps and Secrets ([`referenced_config_maps`],
//! [`referenced_secrets`]) and passes them in; a missing non-optional one fails with
//! [`Error::CreateContainerConfig`], which the pod shows as `CreateContainerConfigError`.
//!
//! Not done: Service environment variables (`enableServiceLinks`); the agent may add them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, ResourceFieldSelector, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::{Error, Result};

/// What the environment is computed from besides the pod and container.
#[derive(Clone, Copy, Debug)]
pub struct EnvInputs<'a> {
    /// The pod's ConfigMaps by name (its namespace's, as fetched by the agent). Absent = not found.
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
    /// The pod's Secrets by name.
    pub secrets: &'a BTreeMap<String, Secret>,
    /// The node's allocatable resources: the value of a `limits.*` resourceFieldRef when the
    /// container sets no limit.
    pub node_allocatable: &'a BTreeMap<String, Quantity>,
    /// The pod's IPs (first = `status.podIP`).
    pub pod_ips: &'a [IpAddr],
    /// The node's IPs (first = `status.hostIP`).
    pub host_ips: &'a [IpAddr],
}

/// Keys of an `envFrom` source that are not valid variable names and were skipped. The
/// kubelet reports them as a Warning event `InvalidEnvironmentVariableNames`
/// ([`SkippedKeys::event_message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKeys {
    /// `"configMap"` or `"secret"`.
    pub kind: &'static str,
    /// The source's name.
    pub name: String,
    /// The skipped keys (with the prefix), sorted.
    pub keys: Vec<String>,
}

impl SkippedKeys {
    /// The event message, worded like the kubelet's.
    pub fn event_message(&self, namespace: &str) -> String {
        format!(
            "Keys [{}] from the EnvFrom {} {namespace}/{} were skipped since they are considered invalid environment variable names.",
            self.keys.join(", "),
            self.kind,
            self.name
        )
    }
}

/// A container's final environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerEnv {
    /// Variables in order of first definition, each with its final value.
    pub vars: Vec<(String, String)>,
    /// `envFrom` keys skipped as invalid names (for the Warning event).
    pub skipped: Vec<SkippedKeys>,
}

impl ContainerEnv {
    /// The value of `name`, if defined.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `NAME=value` strings for [`crate::cri::ContainerConfig::env`].
    pub fn to_cri(&self) -> Vec<String> {
        self.vars.iter().map(|(n, v)| format!("{n}={v}")).collect()
    }

    /// The container's `command` and `args` with `$(VAR)` expanded against this environment
    /// (before the image's entrypoint and cmd are applied; those are never expanded).
    pub fn expand_command(&self, container: &Container) -> (Vec<String>, Vec<String>) {
        let lookup = |n: &str| self.get(n);
        let expand_all = |v: &Option<Vec<String>>| {
            v.iter()
                .flatten()
                .map(|s| expand(s, lookup))
                .collect::<Vec<_>>()
        };
        (expand_all(&container.command), expand_all(&container.args))
    }

    fn set(&mut self, index: &mut HashMap<String, usize>, name: String, value: String) {
        match index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }
}

/// Computes the environment of `container` (a regular or init container of `pod`).
pub fn container_env(
    pod: &Pod,
    container: &Container,
    inputs: &EnvInputs<'_>,
) -> Result<ContainerEnv> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = ContainerEnv::default();
    let mut index = HashMap::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (kind, name, pairs): (&'static str, &str, Vec<(String, String)>) =
            if let Some(r) = &from.config_map_ref {
                match config_map(inputs, &r.name, r.optional)? {
                    None => continue,
                    Some(cm) => (
                        "configMap",
                        &r.name,
                        cm.data
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                }
            } else if let Some(r) = &from.secret_ref {
                match secret(inputs, &r.name, r.optional)? {
                    None => continue,
                    Some(s) => (
                        "secret",
                        &r.name,
                        s.data
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                            .collect(),
                    ),
                }
            } else {
                continue;
            };
        let mut invalid = Vec::new();
        for (key, value) in pairs {
            let key = format!("{prefix}{key}");
            if is_env_var_name(&key) {
                env.set(&mut index, key, value);
            } else {
                invalid.push(key);
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            env.skipped.push(SkippedKeys {
                kind: if kind == "configMap" {
                    "configMap"
                } else {
                    "secret"
                },
                name: name.to_string(),
                keys: invalid,
            });
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => {
                let env_so_far = &env;
                expand(v, |n| env_so_far.get(n))
            }
            (_, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, inputs.pod_ips, inputs.host_ips)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(pod, container, r, inputs.node_allocatable)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let Some(cm) = config_map(inputs, &r.name, r.optional)? else {
                        continue;
                    };
                    match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(Error::CreateContainerConfig(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                r.key, r.name
                            )));
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let Some(s) = secret(inputs, &r.name, r.optional)? else {
                        continue;
                    };
                    match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(Error::CreateContainerConfig(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                r.key, r.name
                            )));
                        }
                    }
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        env.set(&mut index, var.name.clone(), value);
    }
    Ok(env)
}

/// The ConfigMap `name`; `Ok(None)` when it is missing and `optional`.
fn config_map<'a>(
    inputs: &EnvInputs<'a>,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<&'a ConfigMap>> {
    match inputs.config_maps.get(name) {
        Some(cm) => Ok(Some(cm)),
        None if optional == Some(true) => Ok(None),
        None => Err(Error::CreateContainerConfig(format!(
            "configmap {name:?} not found"
        ))),
    }
}

/// The Secret `name`; `Ok(None)` when it is missing and `optional`.
fn secret<'a>(
    inputs: &EnvInputs<'a>,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<&'a Secret>> {
    match inputs.secrets.get(name) {
        Some(s) => Ok(Some(s)),
        None if optional == Some(true) => Ok(None),
        None => Err(Error::CreateContainerConfig(format!(
            "secret {name:?} not found"
        ))),
    }
}

/// Whether `name` may be an environment variable name from `envFrom`: Kubernetes' classic
/// rule `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// Expands `$(NAME)` references in `input` with Kubernetes' rules: `$$` is a literal `$`, a
/// reference `lookup` does not know stays as written, an unclosed `$(` and any other `$` are
/// kept.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            out.push('$');
            rest = escaped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(close) = body.find(')')
        {
            let name = &body[..close];
            match lookup(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a downward-API `fieldRef` (env and downwardAPI volumes): `metadata.name`,
/// `.namespace`, `.uid`, `.labels`, `.annotations` (whole maps as sorted `k="v"` lines),
/// `metadata.labels['k']`, `metadata.annotations['k']` (missing key = empty),
/// `spec.nodeName`, `spec.serviceAccountName`, `status.hostIP(s)`, `status.podIP(s)` (plural =
/// comma-separated).
pub fn field_value(
    pod: &Pod,
    path: &str,
    pod_ips: &[IpAddr],
    host_ips: &[IpAddr],
) -> Result<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let join = |ips: &[IpAddr]| {
        ips.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(m.labels.as_ref()),
        "metadata.annotations" => format_map(m.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => pod_ips.first().map(|i| i.to_string()).unwrap_or_default(),
        "status.podIPs" => join(pod_ips),
        "status.hostIP" => host_ips.first().map(|i| i.to_string()).unwrap_or_default(),
        "status.hostIPs" => join(host_ips),
        _ => {
            if let Some(key) = subscript("metadata.labels") {
                m.labels
                    .as_ref()
                    .and_then(|l| l.get(&key))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(key) = subscript("metadata.annotations") {
                m.annotations
                    .as_ref()
                    .and_then(|l| l.get(&key))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(Error::CreateContainerConfig(format!(
                    "unsupported fieldPath: {path}"
                )));
            }
        }
    })
}

/// A map as the downward API writes it: `key="value"` lines sorted by key, values quoted the
/// way Go's `%q` does, no trailing newline.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A string quoted like Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef` (env and downwardAPI volumes) for `container` (or the
/// pod's container named in the selector): `limits.`/`requests.` `cpu`, `memory`,
/// `ephemeral-storage`, divided by `divisor` (default 1) and rounded up, as the kubelet does
/// (`limits.cpu` with divisor `1` is whole cores, rounded up; `1m` is millicores). A missing
/// limit is the node's allocatable; a missing request is the limit when one is set (the API
/// server's defaulting), else 0.
pub fn resource_value(
    pod: &Pod,
    container: &Container,
    selector: &ResourceFieldSelector,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<String> {
    let container = match selector.container_name.as_deref() {
        None | Some("") => container,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| {
                Error::CreateContainerConfig(format!("container {name} not found in pod"))
            })?,
    };
    let unsupported = || {
        Error::CreateContainerConfig(format!(
            "unsupported container resource : {}",
            selector.resource
        ))
    };
    let (kind, resource) = selector.resource.split_once('.').ok_or_else(unsupported)?;
    if !matches!(resource, "cpu" | "memory" | "ephemeral-storage") {
        return Err(unsupported());
    }
    let resources = container.resources.as_ref();
    let limit = resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get(resource))
        .cloned();
    let value = match kind {
        "limits" => limit.or_else(|| node_allocatable.get(resource).cloned()),
        "requests" => resources
            .and_then(|r| r.requests.as_ref())
            .and_then(|l| l.get(resource))
            .cloned()
            .or(limit),
        _ => return Err(unsupported()),
    };
    let parse = |q: &Quantity| {
        runtime::objects::Quantity::parse(&q.0)
            .map_err(|e| Error::CreateContainerConfig(e.to_string()))
    };
    let value = value.as_ref().map(parse).transpose()?;
    let divisor = selector
        .divisor
        .as_ref()
        .map(parse)
        .transpose()?
        .filter(|d| d.nanos() != 0);
    let (amount, per) = if resource == "cpu" {
        (
            value.map_or(0, |v| v.millis_ceil()),
            divisor.map_or(1000, |d| d.millis_ceil()),
        )
    } else {
        (
            value.map_or(0, |v| v.value_ceil()),
            divisor.map_or(1, |d| d.value_ceil()),
        )
    };
    if per <= 0 {
        return Err(Error::CreateContainerConfig(format!(
            "invalid divisor for {}",
            selector.resource
        )));
    }
    let q = amount / per + i128::from(amount % per > 0);
    Ok(q.to_string())
}

/// Names of the ConfigMaps the pod's containers (env, envFrom) and volumes (configMap,
/// projected) refer to: what the agent fetches before calling [`container_env`] and
/// [`super::volumes`].
pub fn referenced_config_maps(pod: &Pod) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for c in containers(pod) {
        for f in c.env_from.iter().flatten() {
            names.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            names.extend(
                e.value_from
                    .as_ref()
                    .and_then(|f| f.config_map_key_ref.as_ref())
                    .map(|r| r.name.clone()),
            );
        }
    }
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        names.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            names.extend(s.config_map.as_ref().map(|c| c.name.clone()));
        }
    }
    names
}

/// Names of the Secrets the pod's containers and volumes refer to (see
/// [`referenced_config_maps`]).
pub fn referenced_secrets(pod: &Pod) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for c in containers(pod) {
        for f in c.env_from.iter().flatten() {
            names.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            names.extend(
                e.value_from
                    .as_ref()
                    .and_then(|f| f.secret_key_ref.as_ref())
                    .map(|r| r.name.clone()),
            );
        }
    }
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        names.extend(v.secret.as_ref().and_then(|c| c.secret_name.clone()));
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            names.extend(s.secret.as_ref().map(|c| c.name.clone()));
        }
    }
    names
}

/// Every init and regular container of the pod.
fn containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"note": "say \"hi\"\n"}},
            "spec": {"nodeName": "node-a", "serviceAccountName": "robot", "containers": containers}
        }))
        .unwrap()
    }

    fn objects() -> (BTreeMap<String, ConfigMap>, BTreeMap<String, Secret>) {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cfg"},
            "data": {"MODE": "fast", "LEVEL": "3", "bad key": "x", "1st": "y"}
        }))
        .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "creds"},
            // base64 of "s3cret" and "admin"
            "data": {"password": "czNjcmV0", "user": "YWRtaW4="}
        }))
        .unwrap();
        (
            BTreeMap::from([("cfg".to_string(), cm)]),
            BTreeMap::from([("creds".to_string(), secret)]),
        )
    }

    fn env_of(container: serde_json::Value) -> Result<ContainerEnv> {
        let p = pod(json!([container]));
        let (cms, secrets) = objects();
        let alloc = BTreeMap::from([
            ("cpu".to_string(), Quantity("4".into())),
            ("memory".to_string(), Quantity("8Gi".into())),
        ]);
        let pod_ips = ["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let host_ips = ["192.168.1.2".parse().unwrap()];
        let inputs = EnvInputs {
            config_maps: &cms,
            secrets: &secrets,
            node_allocatable: &alloc,
            pod_ips: &pod_ips,
            host_ips: &host_ips,
        };
        let container = p.spec.as_ref().unwrap().containers[0].clone();
        container_env(&p, &container, &inputs)
    }

    fn value(env: serde_json::Value) -> Result<String> {
        let e = env_of(json!({"name": "c", "env": [{"name": "X", "valueFrom": env}]}))?;
        Ok(e.get("X").unwrap_or("<unset>").to_string())
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = HashMap::from([("A", "1"), ("B", "two"), ("EMPTY", "")]);
        let cases = [
            ("$(A)", "1"),
            ("x$(A)y$(B)z", "x1ytwoz"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$1"),
            ("$$$$", "$$"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$(A", "$(A"),
            ("$A", "$A"),
            ("$", "$"),
            ("a$", "a$"),
            ("$()", "$()"),
            ("$(EMPTY)x", "x"),
            ("$(A)$(A)", "11"),
            ("no refs", "no refs"),
            ("$(A)$", "1$"),
            ("ünï$(B)cödé", "ünïtwocödé"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, |n| vars.get(n).copied()), want, "{input}");
        }
    }

    #[test]
    fn field_refs_read_the_pod() {
        let cases = [
            ("metadata.name", "web"),
            ("metadata.namespace", "prod"),
            ("metadata.uid", "u-1"),
            ("metadata.labels['app']", "web"),
            ("metadata.labels['missing']", ""),
            ("metadata.annotations['note']", "say \"hi\"\n"),
            ("metadata.labels", "app=\"web\"\ntier=\"front\""),
            ("metadata.annotations", "note=\"say \\\"hi\\\"\\n\""),
            ("spec.nodeName", "node-a"),
            ("spec.serviceAccountName", "robot"),
            ("status.podIP", "10.0.0.5"),
            ("status.podIPs", "10.0.0.5,fd00::5"),
            ("status.hostIP", "192.168.1.2"),
            ("status.hostIPs", "192.168.1.2"),
        ];
        for (path, want) in cases {
            assert_eq!(
                value(json!({"fieldRef": {"fieldPath": path}})).unwrap(),
                want,
                "{path}"
            );
        }
        let err = value(json!({"fieldRef": {"fieldPath": "spec.bogus"}})).unwrap_err();
        assert_eq!(err.to_string(), "unsupported fieldPath: spec.bogus");
    }

    #[test]
    fn resource_refs_divide_and_round_up() {
        let c = |resources: serde_json::Value, resource: &str, divisor: Option<&str>| {
            let mut sel = json!({"resource": resource});
            if let Some(d) = divisor {
                sel["divisor"] = json!(d);
            }
            let e = env_of(json!({"name": "c", "resources": resources,
                "env": [{"name": "X", "valueFrom": {"resourceFieldRef": sel}}]}))
            .unwrap();
            e.get("X").unwrap().to_string()
        };
        let r = json!({"limits": {"cpu": "250m", "memory": "64Mi"},
                       "requests": {"cpu": "100m", "memory": "1000"}});
        let cases = [
            (r.clone(), "limits.cpu", None, "1"),
            (r.clone(), "limits.cpu", Some("1m"), "250"),
            (r.clone(), "limits.cpu", Some("100m"), "3"),
            (r.clone(), "requests.cpu", Some("1m"), "100"),
            (r.clone(), "limits.memory", None, "67108864"),
            (r.clone(), "limits.memory", Some("1Mi"), "64"),
            (r.clone(), "limits.memory", Some("1M"), "68"),
            (r.clone(), "requests.memory", Some("1Ki"), "1"),
            // no limit: the node's allocatable
            (json!({}), "limits.cpu", None, "4"),
            (json!({}), "limits.memory", Some("1Gi"), "8"),
            // no request: the limit (API defaulting), else 0
            (json!({"limits": {"cpu": "2"}}), "requests.cpu", None, "2"),
            (json!({}), "requests.cpu", None, "0"),
            (json!({"limits": {"cpu": "1500m"}}), "limits.cpu", None, "2"),
        ];
        for (res, resource, divisor, want) in cases {
            assert_eq!(
                c(res.clone(), resource, divisor),
                want,
                "{res} {resource} {divisor:?}"
            );
        }
        let err = env_of(json!({"name": "c",
            "env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}))
        .unwrap_err();
        assert!(
            err.to_string().contains("unsupported container resource"),
            "{err}"
        );
    }

    #[test]
    fn config_map_and_secret_refs_with_optional() {
        let cases: [(serde_json::Value, Result<&str, &str>); 9] = [
            (
                json!({"configMapKeyRef": {"name": "cfg", "key": "MODE"}}),
                Ok("fast"),
            ),
            (
                json!({"secretKeyRef": {"name": "creds", "key": "password"}}),
                Ok("s3cret"),
            ),
            (
                json!({"configMapKeyRef": {"name": "nope", "key": "MODE"}}),
                Err("configmap \"nope\" not found"),
            ),
            (
                json!({"secretKeyRef": {"name": "nope", "key": "k"}}),
                Err("secret \"nope\" not found"),
            ),
            (
                json!({"configMapKeyRef": {"name": "cfg", "key": "k"}}),
                Err("couldn't find key k in ConfigMap prod/cfg"),
            ),
            (
                json!({"secretKeyRef": {"name": "creds", "key": "k"}}),
                Err("couldn't find key k in Secret prod/creds"),
            ),
            (
                json!({"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}),
                Ok("<unset>"),
            ),
            (
                json!({"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}),
                Ok("<unset>"),
            ),
            (
                json!({"secretKeyRef": {"name": "creds", "key": "k", "optional": true}}),
                Ok("<unset>"),
            ),
        ];
        for (from, want) in cases {
            match (value(from.clone()), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{from}"),
                (Err(e), Err(want)) => {
                    assert_eq!(e.to_string(), want, "{from}");
                    assert_eq!(e.reason(), Some("CreateContainerConfigError"));
                }
                (got, want) => panic!("{from}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn env_from_prefix_invalid_names_and_precedence() {
        let e = env_of(json!({"name": "c",
        "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"configMapRef": {"name": "cfg"}},
            {"secretRef": {"name": "creds"}},
            {"secretRef": {"name": "missing", "optional": true}}
        ],
        "env": [
            {"name": "MODE", "value": "slow-$(LEVEL)"},
            {"name": "REF", "value": "$(MODE)/$(LATER)/$$(MODE)"},
            {"name": "LATER", "value": "l"}
        ]}))
        .unwrap();
        let want: Vec<(String, String)> = [
            ("CFG_1st", "y"),
            ("CFG_LEVEL", "3"),
            ("CFG_MODE", "fast"),
            ("LEVEL", "3"),
            ("MODE", "slow-3"),
            ("password", "s3cret"),
            ("user", "admin"),
            ("REF", "slow-3/$(LATER)/$(MODE)"),
            ("LATER", "l"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(e.vars, want);
        assert_eq!(
            e.skipped,
            vec![
                SkippedKeys {
                    kind: "configMap",
                    name: "cfg".into(),
                    keys: vec!["CFG_bad key".into()]
                },
                SkippedKeys {
                    kind: "configMap",
                    name: "cfg".into(),
                    keys: vec!["1st".into(), "bad key".into()]
                },
            ]
        );
        assert_eq!(
            e.skipped[1].event_message("prod"),
            "Keys [1st, bad key] from the EnvFrom configMap prod/cfg were skipped since they are considered invalid environment variable names."
        );
        let err = env_of(json!({"name": "c", "envFrom": [{"configMapRef": {"name": "gone"}}]}))
            .unwrap_err();
        assert_eq!(err.to_string(), "configmap \"gone\" not found");
        assert_eq!(e.to_cri()[0], "CFG_1st=y");
    }

    #[test]
    fn command_and_args_expand_against_the_final_env() {
        let p = pod(json!([{"name": "c",
            "command": ["sh", "-c", "echo $(GREETING) $$(GREETING) $(NOPE)"],
            "args": ["$(WHO)"],
            "env": [{"name": "GREETING", "value": "hi"}, {"name": "WHO", "value": "$(GREETING) there"}]}]));
        let (cms, secrets) = objects();
        let none = BTreeMap::new();
        let inputs = EnvInputs {
            config_maps: &cms,
            secrets: &secrets,
            node_allocatable: &none,
            pod_ips: &[],
            host_ips: &[],
        };
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = container_env(&p, c, &inputs).unwrap();
        let (command, args) = env.expand_command(c);
        assert_eq!(command, ["sh", "-c", "echo hi $(GREETING) $(NOPE)"]);
        assert_eq!(args, ["hi there"]);
    }

    #[test]
    fn env_var_names_and_references() {
        for (name, ok) in [
            ("A", true),
            ("a.b-c_1", true),
            ("_x", true),
            ("1x", false),
            ("a b", false),
            ("", false),
            ("a=b", false),
        ] {
            assert_eq!(is_env_var_name(name), ok, "{name}");
        }
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s1"}}],
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}]}],
            "initContainers": [{"name": "i", "env": [{"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "b", "key": "k"}}}]}],
            "volumes": [{"name": "v", "configMap": {"name": "c"}}, {"name": "w", "secret": {"secretName": "s3"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "d"}}, {"secret": {"name": "s4"}}]}}]
        }}))
        .unwrap();
        assert_eq!(
            referenced_config_maps(&p).into_iter().collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            referenced_secrets(&p).into_iter().collect::<Vec<_>>(),
            ["s1", "s2", "s3", "s4"]
        );
    }
}
