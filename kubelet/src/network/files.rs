//! The pod's `/etc/hosts` and `/etc/resolv.conf`, rendered the way the Kubernetes kubelet
//! writes them, as pure functions of the pod, its IPs and the node's DNS settings.
//!
//! DNS policy (`spec.dnsPolicy`, default `ClusterFirst`):
//! - `ClusterFirst` (non-host-network pods) and `ClusterFirstWithHostNet`: the cluster DNS
//!   servers only, search `<ns>.svc.<domain> svc.<domain> <domain>` followed by the node's
//!   search domains, `options ndots:5`. Without cluster DNS servers configured it falls back to
//!   `Default`, as the kubelet does.
//! - `ClusterFirst` with `hostNetwork` and `Default`: the node's resolv.conf (nameservers,
//!   searches, options).
//! - `None`: nothing but `spec.dnsConfig`.
//!
//! `spec.dnsConfig` is then merged in: nameservers and searches appended without duplicates,
//! options overriding same-named ones. Finally the kubelet's limits apply: at most 3
//! nameservers, 32 search domains and 2048 characters of search list (extra ones dropped
//! from the end).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{HostAlias, Pod, PodSpec};

/// At most this many nameservers (glibc uses no more).
pub const MAX_NAMESERVERS: usize = 3;
/// At most this many search domains (Kubernetes' expanded DNS configuration limit).
pub const MAX_SEARCHES: usize = 32;
/// At most this many characters in the joined search list.
pub const MAX_SEARCH_CHARS: usize = 2048;

/// The node's DNS settings for pods (kubelet `--cluster-dns`, `--cluster-domain`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// Cluster DNS server IPs; empty = no cluster DNS (ClusterFirst falls back to Default).
    pub cluster_dns: Vec<IpAddr>,
    /// Cluster domain, e.g. `cluster.local`.
    pub cluster_domain: String,
}

/// The contents of a resolv.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<String>,
    /// The `search` domains.
    pub searches: Vec<String>,
    /// `options` entries (`name` or `name:value`).
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses a resolv.conf like the kubelet reads the node's: comments skipped, the last
    /// `search` line wins (trailing dots dropped, `.` ignored), options accumulate.
    pub fn parse(text: &str) -> Self {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => conf.nameservers.extend(fields.next().map(String::from)),
                Some("search") => {
                    conf.searches = fields
                        .filter(|s| *s != ".")
                        .map(|s| s.trim_end_matches('.').to_string())
                        .collect();
                }
                Some("options") => {
                    for option in fields {
                        set_option(&mut conf.options, option.to_string());
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// The file content: `search`, then `nameserver` lines, then `options`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.nameservers {
            out.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn option_name(option: &str) -> &str {
    option.split_once(':').map_or(option, |(name, _)| name)
}

/// Sets `option` (`name[:value]`): replaces a same-named option in place, else appends.
fn set_option(options: &mut Vec<String>, option: String) {
    match options
        .iter_mut()
        .find(|o| option_name(o) == option_name(&option))
    {
        Some(existing) => *existing = option,
        None => options.push(option),
    }
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// The effective DNS policy of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Cluster,
    Host,
    None,
}

fn policy(spec: &PodSpec, settings: &DnsSettings) -> Policy {
    let host_network = spec.host_network.unwrap_or(false);
    let policy = match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "ClusterFirstWithHostNet" => Policy::Cluster,
        "ClusterFirst" if !host_network => Policy::Cluster,
        "None" => Policy::None,
        _ => Policy::Host,
    };
    if policy == Policy::Cluster && settings.cluster_dns.is_empty() {
        Policy::Host
    } else {
        policy
    }
}

/// The pod's resolv.conf. `host` is the node's own (parsed with [`ResolvConf::parse`]).
pub fn pod_resolv_conf(
    spec: &PodSpec,
    namespace: &str,
    settings: &DnsSettings,
    host: &ResolvConf,
) -> ResolvConf {
    let mut conf = match policy(spec, settings) {
        Policy::Host => host.clone(),
        Policy::None => ResolvConf::default(),
        Policy::Cluster => {
            let mut searches = Vec::new();
            if !settings.cluster_domain.is_empty() {
                let domain = &settings.cluster_domain;
                searches = vec![
                    format!("{namespace}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.clone(),
                ];
            }
            push_unique(&mut searches, host.searches.iter().cloned());
            ResolvConf {
                nameservers: settings.cluster_dns.iter().map(IpAddr::to_string).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
    };
    if let Some(extra) = &spec.dns_config {
        push_unique(
            &mut conf.nameservers,
            extra.nameservers.iter().flatten().cloned(),
        );
        push_unique(&mut conf.searches, extra.searches.iter().flatten().cloned());
        for option in extra.options.iter().flatten() {
            let Some(name) = option.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let option = match option.value.as_deref() {
                Some(value) if !value.is_empty() => format!("{name}:{value}"),
                _ => name.to_string(),
            };
            set_option(&mut conf.options, option);
        }
    }
    fit_limits(&mut conf);
    conf
}

fn fit_limits(conf: &mut ResolvConf) {
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    while conf.searches.join(" ").len() > MAX_SEARCH_CHARS {
        conf.searches.pop();
    }
}

/// The pod's hostname: `spec.hostname`, else the pod name cut to 63 characters (without a
/// trailing `-` or `.` left by the cut), as the kubelet does.
pub fn pod_hostname(pod_name: &str, spec: &PodSpec) -> String {
    if let Some(hostname) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        return hostname.to_string();
    }
    match pod_name.char_indices().nth(63) {
        None => pod_name.to_string(),
        Some((cut, _)) => pod_name[..cut].trim_end_matches(['-', '.']).to_string(),
    }
}

/// `<subdomain>.<namespace>.svc.<cluster domain>` when the pod has a `spec.subdomain`.
pub fn pod_domain(spec: &PodSpec, namespace: &str, cluster_domain: &str) -> Option<String> {
    let subdomain = spec.subdomain.as_deref().filter(|s| !s.is_empty())?;
    Some(format!("{subdomain}.{namespace}.svc.{cluster_domain}"))
}

const MANAGED_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

fn host_alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    out
}

/// `/etc/hosts` of a pod on the pod network: localhost boilerplate, one line per pod IP naming
/// the pod (`<ip>\t<hostname>.<domain>\t<hostname>` with a subdomain), then `hostAliases`.
pub fn etc_hosts(pod: &Pod, pod_ips: &[IpAddr], cluster_domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let hostname = pod_hostname(name, &spec);
    let mut out = String::from(MANAGED_HEADER);
    out.push_str(concat!(
        "127.0.0.1\tlocalhost\n",
        "::1\tlocalhost ip6-localhost ip6-loopback\n",
        "fe00::0\tip6-localnet\n",
        "fe00::0\tip6-mcastprefix\n",
        "fe00::1\tip6-allnodes\n",
        "fe00::2\tip6-allrouters\n",
    ));
    let domain = pod_domain(&spec, namespace, cluster_domain);
    for ip in pod_ips {
        match &domain {
            Some(domain) => out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    out.push_str(&host_alias_entries(
        spec.host_aliases.as_deref().unwrap_or_default(),
    ));
    out
}

/// `/etc/hosts` of a host-network pod: the node's own file under a managed header, then
/// `hostAliases`.
pub fn host_network_etc_hosts(node_hosts: &str, spec: &PodSpec) -> String {
    let mut out = String::from(MANAGED_HEADER_HOST_NETWORK);
    out.push_str(node_hosts);
    if !node_hosts.is_empty() && !node_hosts.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&host_alias_entries(
        spec.host_aliases.as_deref().unwrap_or_default(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const HOST: &str = "# generated\nnameserver 192.168.1.1\nnameserver 192.168.1.2\n\
        search lan. example.com .\noptions edns0 ndots:2\n";

    fn settings() -> DnsSettings {
        DnsSettings {
            cluster_dns: vec!["10.96.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
        }
    }

    fn spec(policy: Option<&str>, host_network: bool, extra: Option<PodDNSConfig>) -> PodSpec {
        PodSpec {
            dns_policy: policy.map(String::from),
            host_network: Some(host_network),
            dns_config: extra,
            ..Default::default()
        }
    }

    #[test]
    fn parses_host_resolv_conf() {
        let conf = ResolvConf::parse(&format!("{HOST}search final.\noptions ndots:3\n"));
        assert_eq!(conf.nameservers, ["192.168.1.1", "192.168.1.2"]);
        assert_eq!(conf.searches, ["final"]);
        assert_eq!(conf.options, ["edns0", "ndots:3"]);
        assert_eq!(ResolvConf::parse(HOST).searches, ["lan", "example.com"]);
    }

    #[test]
    fn policies() {
        let host = ResolvConf::parse(HOST);
        let cluster = "search ns1.svc.cluster.local svc.cluster.local cluster.local lan \
            example.com\nnameserver 10.96.0.10\noptions ndots:5\n";
        let node = "search lan example.com\nnameserver 192.168.1.1\nnameserver 192.168.1.2\n\
            options edns0 ndots:2\n";
        let no_dns = DnsSettings {
            cluster_dns: vec![],
            ..settings()
        };
        let cases = [
            (
                "default policy",
                spec(None, false, None),
                settings(),
                cluster,
            ),
            (
                "ClusterFirst",
                spec(Some("ClusterFirst"), false, None),
                settings(),
                cluster,
            ),
            (
                "ClusterFirst on host network",
                spec(Some("ClusterFirst"), true, None),
                settings(),
                node,
            ),
            (
                "ClusterFirstWithHostNet",
                spec(Some("ClusterFirstWithHostNet"), true, None),
                settings(),
                cluster,
            ),
            (
                "Default",
                spec(Some("Default"), false, None),
                settings(),
                node,
            ),
            ("None", spec(Some("None"), false, None), settings(), ""),
            (
                "no cluster DNS",
                spec(Some("ClusterFirst"), false, None),
                no_dns,
                node,
            ),
        ];
        for (name, spec, settings, want) in cases {
            assert_eq!(
                pod_resolv_conf(&spec, "ns1", &settings, &host).render(),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn dns_config_merges() {
        let host = ResolvConf::parse(HOST);
        let option = |name: &str, value: Option<&str>| PodDNSConfigOption {
            name: Some(name.into()),
            value: value.map(String::from),
        };
        let extra = PodDNSConfig {
            nameservers: Some(vec!["10.96.0.10".into(), "1.2.3.4".into()]),
            searches: Some(vec![
                "svc.cluster.local".into(),
                "my.dns.search.suffix".into(),
            ]),
            options: Some(vec![option("ndots", Some("2")), option("edns0", None)]),
        };
        let cases = [
            (
                spec(None, false, Some(extra.clone())),
                "search ns1.svc.cluster.local svc.cluster.local cluster.local lan example.com \
                 my.dns.search.suffix\nnameserver 10.96.0.10\nnameserver 1.2.3.4\n\
                 options ndots:2 edns0\n",
            ),
            (
                spec(Some("None"), false, Some(extra.clone())),
                "search svc.cluster.local my.dns.search.suffix\nnameserver 10.96.0.10\n\
                 nameserver 1.2.3.4\noptions ndots:2 edns0\n",
            ),
            (
                // Three nameservers at most: the host's two plus the first new one.
                spec(Some("Default"), false, Some(extra)),
                "search lan example.com svc.cluster.local my.dns.search.suffix\n\
                 nameserver 192.168.1.1\nnameserver 192.168.1.2\nnameserver 10.96.0.10\n\
                 options edns0 ndots:2\n",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                pod_resolv_conf(&spec, "ns1", &settings(), &host).render(),
                want
            );
        }
    }

    #[test]
    fn search_limits() {
        let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let extra = PodDNSConfig {
            searches: Some(many),
            ..Default::default()
        };
        let conf = pod_resolv_conf(
            &spec(Some("None"), false, Some(extra)),
            "ns",
            &settings(),
            &ResolvConf::default(),
        );
        assert_eq!(conf.searches.len(), MAX_SEARCHES);
        assert_eq!(conf.searches.last().unwrap(), "d31.example");

        let long: Vec<String> = (0..20).map(|i| format!("{i}{}", "x".repeat(200))).collect();
        let extra = PodDNSConfig {
            searches: Some(long),
            ..Default::default()
        };
        let conf = pod_resolv_conf(
            &spec(Some("None"), false, Some(extra)),
            "ns",
            &settings(),
            &ResolvConf::default(),
        );
        assert!(conf.searches.join(" ").len() <= MAX_SEARCH_CHARS);
        assert_eq!(conf.searches.len(), 10);
    }

    fn pod(name: &str, spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns1".into()),
                ..Default::default()
            },
            spec: Some(spec),
            ..Default::default()
        }
    }

    const BOILERPLATE: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
        ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
        fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";

    #[test]
    fn hosts_files() {
        let ip: IpAddr = "10.244.1.5".parse().unwrap();
        let aliases = vec![
            HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: Some(vec!["foo.local".into(), "bar.local".into()]),
            },
            HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: Some(vec!["foo.remote".into()]),
            },
        ];
        let cases = [
            (
                pod("web", PodSpec::default()),
                "10.244.1.5\tweb\n".to_string(),
            ),
            (
                pod(
                    "web-0",
                    PodSpec {
                        hostname: Some("db".into()),
                        subdomain: Some("svc1".into()),
                        ..Default::default()
                    },
                ),
                "10.244.1.5\tdb.svc1.ns1.svc.cluster.local\tdb\n".to_string(),
            ),
            (
                pod(
                    "web",
                    PodSpec {
                        host_aliases: Some(aliases),
                        ..Default::default()
                    },
                ),
                "10.244.1.5\tweb\n\n# Entries added by HostAliases.\n\
                 127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
                    .to_string(),
            ),
        ];
        for (pod, tail) in cases {
            assert_eq!(
                etc_hosts(&pod, &[ip], "cluster.local"),
                format!("{BOILERPLATE}{tail}")
            );
        }
    }

    #[test]
    fn hostnames() {
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let cases = [
            ("web", None, "web"),
            ("web", Some("custom"), "custom"),
            (long.as_str(), None, &"a".repeat(62)[..]),
        ];
        for (name, hostname, want) in cases {
            let spec = PodSpec {
                hostname: hostname.map(String::from),
                ..Default::default()
            };
            assert_eq!(pod_hostname(name, &spec), want, "{name}");
        }
    }

    #[test]
    fn host_network_hosts() {
        let spec = PodSpec {
            host_aliases: Some(vec![HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: Some(vec!["x".into()]),
            }]),
            ..Default::default()
        };
        assert_eq!(
            host_network_etc_hosts("127.0.0.1 localhost", &spec),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n\
             # Entries added by HostAliases.\n10.1.2.3\tx\n"
        );
    }
}
