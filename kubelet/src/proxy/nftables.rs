//! The nftables ruleset of the proxy, rendered whole from the model (pure), and the `nft`
//! invocations that install, check and remove it (side effects, at the bottom).
//!
//! One table, `ip skiff`, holds everything. It is replaced in one transaction
//! (`add table` + `delete table` + the full definition, fed to `nft -f -`), so packets see
//! either the old or the new rules, never a mix, and nothing of an older version lingers.
//!
//! Shape of the table:
//! - `nat-prerouting` / `nat-output` (hooks) jump to `services`, which looks the destination
//!   up in the verdict map `service-ips` (`ClusterIP . proto . port`) and, for addresses of
//!   the node itself (`fib daddr type local`, loopback excluded), in `service-nodeports`
//!   (`proto . port`).
//! - A NodePort enters `ext-KEY`, which marks the packet for masquerading, then the
//!   Service port's chain `svc-KEY`.
//! - `svc-KEY` balances evenly with `numgen random mod N` over the ready endpoints: one
//!   `dnat ... to numgen random mod N map { i : ip . port }` rule. With
//!   `sessionAffinity: ClientIP` it instead jumps to a chain per endpoint `ep-KEY/IP/PORT`,
//!   which records the client in the set `aff-KEY/IP/PORT` (timeout = `timeoutSeconds`) and
//!   DNATs; a client found in one of those sets goes straight back to that endpoint.
//! - `filter-prerouting` / `filter-output` reject (ICMP port unreachable) new connections to
//!   Service ports without endpoints (`no-endpoint-services`, `no-endpoint-nodeports`), so
//!   clients fail fast instead of timing out on the service range's blackhole route.
//! - `nat-postrouting` masquerades NodePort traffic (the mark), hairpin traffic (a pod
//!   reaching itself through a Service: the set `hairpin` of `ip . ip` pairs) and Service
//!   traffic sent to endpoints outside the cluster CIDR (e.g. a DNS server on the host).
//!
//! **Decision — no chain per endpoint unless affinity needs one.** A chain per endpoint
//! (kube-proxy's layout) made replacing the table for 1,000 Services × 10 endpoints take
//! 1.1–1.9 s here (the kernel's cost is per chain: 11,000 of them), over the 1 s convergence
//! target; the same Services with the DNAT map in one rule per Service port take 0.15–0.25 s.
//! Hairpin detection then moves to postrouting (after DNAT the pair `saddr . daddr` is known),
//! which is why the `hairpin` set exists. Affinity needs per-endpoint state, so only Services
//! that ask for it pay for per-endpoint chains and sets.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::model::{Backend, ServicePort, ServicePortKey};
use crate::error::{Error, IoContext, Result};
use crate::network::{Ipv4Cidr, netns};

/// The table the proxy owns (family `ip`).
pub const TABLE: &str = "skiff";

/// The packet mark bit asking `nat-postrouting` to masquerade.
pub const MASQUERADE_MARK: u32 = 0x4000;

/// What the ruleset depends on besides the Service ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderConfig {
    /// The cluster's pod CIDR: Service traffic sent to endpoints outside it is masqueraded
    /// (their replies would not find the way back to a pod address). `None`: never.
    pub cluster_cidr: Option<Ipv4Cidr>,
}

fn svc_chain(key: &ServicePortKey) -> String {
    format!("svc-{key}")
}

fn ext_chain(key: &ServicePortKey) -> String {
    format!("ext-{key}")
}

fn ep_chain(key: &ServicePortKey, b: &Backend) -> String {
    format!("ep-{key}/{}/{}", b.ip, b.port)
}

fn affinity_set(key: &ServicePortKey, b: &Backend) -> String {
    format!("aff-{key}/{}/{}", b.ip, b.port)
}

/// Writes `elements = { ... }` (one per line) unless there are none.
fn elements(out: &mut String, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str("\t\telements = {\n");
    for (i, item) in items.iter().enumerate() {
        let sep = if i + 1 < items.len() { "," } else { "" };
        let _ = writeln!(out, "\t\t\t{item}{sep}");
    }
    out.push_str("\t\t}\n");
}

fn set(out: &mut String, name: &str, type_: &str, items: &[String]) {
    let _ = writeln!(out, "\tset {name} {{\n\t\ttype {type_}");
    elements(out, items);
    out.push_str("\t}\n");
}

fn map(out: &mut String, name: &str, type_: &str, items: &[String]) {
    let _ = writeln!(out, "\tmap {name} {{\n\t\ttype {type_} : verdict");
    elements(out, items);
    out.push_str("\t}\n");
}

fn chain(out: &mut String, name: &str, rules: &[String]) {
    let _ = writeln!(out, "\tchain {name} {{");
    for r in rules {
        let _ = writeln!(out, "\t\t{r}");
    }
    out.push_str("\t}\n");
}

/// The rule DNATing to one of `backends` (non-empty) chosen evenly at random.
fn dnat_rule(proto: &str, backends: &[Backend]) -> String {
    match backends {
        [one] => format!("meta l4proto {proto} dnat to {one}"),
        _ => {
            let entries: Vec<String> = backends
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{i} : {} . {}", b.ip, b.port))
                .collect();
            format!(
                "meta l4proto {proto} dnat ip addr . port to numgen random mod {} map {{ {} }}",
                backends.len(),
                entries.join(", ")
            )
        }
    }
}

/// Hook priorities as numbers: nft 1.0.6 accepts the names `dstnat`/`srcnat` only on some
/// hooks. The filter chains run just before DNAT (dstnat − 10), like kube-proxy's.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

/// Local addresses other than loopback: NodePorts answer on every node address.
const LOCAL: &str = "fib daddr type local ip daddr != 127.0.0.0/8";

/// The complete `nft -f` input replacing table `ip skiff` with the rules for `ports`.
/// Deterministic (same input, same text), so the caller can skip unchanged syncs.
pub fn render(ports: &[ServicePort], config: &RenderConfig) -> String {
    let mut service_ips = Vec::new();
    let mut node_ports = Vec::new();
    let mut no_endpoint_ips = Vec::new();
    let mut no_endpoint_node_ports = Vec::new();
    let mut hairpin = BTreeSet::new();
    let mut chains = String::new();
    let mut sets = String::new();
    for p in ports {
        let key = &p.key;
        let proto = key.protocol.nft();
        let Some(cluster_ip) = p.cluster_ip else {
            continue;
        };
        let tuple = format!("{cluster_ip} . {proto} . {}", key.port);
        let node_tuple = p.node_port.map(|n| format!("{proto} . {n}"));
        if p.backends.is_empty() {
            no_endpoint_ips.push(tuple);
            no_endpoint_node_ports.extend(node_tuple);
            continue;
        }
        let svc = svc_chain(key);
        service_ips.push(format!("{tuple} : goto {svc}"));
        if let Some(node_tuple) = node_tuple {
            let ext = ext_chain(key);
            node_ports.push(format!("{node_tuple} : goto {ext}"));
            chain(
                &mut chains,
                &ext,
                &[
                    format!("meta mark set meta mark | {MASQUERADE_MARK:#x}"),
                    format!("goto {svc}"),
                ],
            );
        }
        hairpin.extend(p.backends.iter().map(|b| b.ip));
        match p.affinity_timeout {
            None => chain(&mut chains, &svc, &[dnat_rule(proto, &p.backends)]),
            Some(timeout) => {
                let mut rules: Vec<String> = p
                    .backends
                    .iter()
                    .map(|b| {
                        format!(
                            "ip saddr @{} goto {}",
                            affinity_set(key, b),
                            ep_chain(key, b)
                        )
                    })
                    .collect();
                let choices: Vec<String> = p
                    .backends
                    .iter()
                    .enumerate()
                    .map(|(i, b)| format!("{i} : goto {}", ep_chain(key, b)))
                    .collect();
                rules.push(format!(
                    "numgen random mod {} vmap {{ {} }}",
                    p.backends.len(),
                    choices.join(", ")
                ));
                chain(&mut chains, &svc, &rules);
                for b in &p.backends {
                    let aff = affinity_set(key, b);
                    let _ = writeln!(
                        sets,
                        "\tset {aff} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s\n\t}}"
                    );
                    chain(
                        &mut chains,
                        &ep_chain(key, b),
                        &[
                            format!("update @{aff} {{ ip saddr }}"),
                            format!("meta l4proto {proto} dnat to {b}"),
                        ],
                    );
                }
            }
        }
    }
    let hairpin: Vec<String> = hairpin.iter().map(|ip| format!("{ip} . {ip}")).collect();

    let mut out = format!("add table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n");
    map(
        &mut out,
        "service-ips",
        "ipv4_addr . inet_proto . inet_service",
        &service_ips,
    );
    map(
        &mut out,
        "service-nodeports",
        "inet_proto . inet_service",
        &node_ports,
    );
    set(
        &mut out,
        "no-endpoint-services",
        "ipv4_addr . inet_proto . inet_service",
        &no_endpoint_ips,
    );
    set(
        &mut out,
        "no-endpoint-nodeports",
        "inet_proto . inet_service",
        &no_endpoint_node_ports,
    );
    set(&mut out, "hairpin", "ipv4_addr . ipv4_addr", &hairpin);
    out.push_str(&sets);
    for (name, kind, hook, priority, target) in [
        (
            "nat-prerouting",
            "nat",
            "prerouting",
            DSTNAT,
            "jump services",
        ),
        ("nat-output", "nat", "output", DSTNAT, "jump services"),
        (
            "nat-postrouting",
            "nat",
            "postrouting",
            SRCNAT,
            "jump masquerading",
        ),
        (
            "filter-prerouting",
            "filter",
            "prerouting",
            DSTNAT - 10,
            "ct state new jump endpoints-check",
        ),
        (
            "filter-output",
            "filter",
            "output",
            DSTNAT - 10,
            "ct state new jump endpoints-check",
        ),
    ] {
        chain(
            &mut out,
            name,
            &[
                format!("type {kind} hook {hook} priority {priority}; policy accept;"),
                target.to_string(),
            ],
        );
    }
    chain(
        &mut out,
        "services",
        &[
            "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
            format!("{LOCAL} meta l4proto . th dport vmap @service-nodeports"),
        ],
    );
    chain(
        &mut out,
        "endpoints-check",
        &[
            "ip daddr . meta l4proto . th dport @no-endpoint-services reject".into(),
            format!("{LOCAL} meta l4proto . th dport @no-endpoint-nodeports reject"),
        ],
    );
    let mut masquerading = vec![
        format!(
            "meta mark & {m:#x} == {m:#x} meta mark set meta mark ^ {m:#x} masquerade fully-random",
            m = MASQUERADE_MARK
        ),
        "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random".to_string(),
    ];
    if let Some(cidr) = config.cluster_cidr {
        masquerading.push(format!(
            "ct status dnat ip daddr != {cidr} masquerade fully-random"
        ));
    }
    chain(&mut out, "masquerading", &masquerading);
    out.push_str(&chains);
    out.push_str("}\n");
    out
}

/// The `nft -f` input removing the table (and succeeding when it is already gone).
pub fn delete_script() -> String {
    format!("add table ip {TABLE}\ndelete table ip {TABLE}\n")
}

/// Runs `nft` in a network namespace (the node's): the edge where rulesets take effect.
#[derive(Clone, Debug, Default)]
pub struct Nft {
    /// The namespace to run in (the agent's own when `None`).
    pub netns: Option<PathBuf>,
}

impl Nft {
    /// `nft` in `netns` (the current namespace when `None`).
    pub fn new(netns: Option<&Path>) -> Self {
        Nft {
            netns: netns.map(Path::to_path_buf),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut command = Command::new("nft");
        command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        netns::run_in(&mut command, self.netns.as_deref())?;
        let mut child = command.spawn().context(|| "running nft".to_string())?;
        if let Some(input) = stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            pipe.write_all(input.as_bytes())
                .context(|| "writing the ruleset to nft".to_string())?;
        }
        let output = child
            .wait_with_output()
            .context(|| "waiting for nft".to_string())?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first: Vec<&str> = stderr.lines().take(6).collect();
            return Err(Error::Proxy(format!(
                "nft {} failed: {}",
                args.join(" "),
                first.join(" | ")
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Installs `script` (a [`render`] output) in one transaction.
    pub fn apply(&self, script: &str) -> Result<()> {
        self.run(&["-f", "-"], Some(script)).map(|_| ())
    }

    /// Asks the kernel whether `script` would be accepted, changing nothing (`nft -c`).
    pub fn check(&self, script: &str) -> Result<()> {
        self.run(&["-c", "-f", "-"], Some(script)).map(|_| ())
    }

    /// Removes the proxy's table (a no-op when it is absent).
    pub fn delete_table(&self) -> Result<()> {
        self.apply(&delete_script())
    }

    /// `nft list table ip skiff`, or `None` when the table does not exist.
    pub fn list_table(&self) -> Result<Option<String>> {
        let tables = self.run(&["list", "tables", "ip"], None)?;
        if !tables
            .lines()
            .any(|l| l.trim() == format!("table ip {TABLE}"))
        {
            return Ok(None);
        }
        self.run(&["list", "table", "ip", TABLE], None).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Protocol;
    use super::*;

    fn port(name: &str, proto: Protocol, port: u16, backends: &[(&str, u16)]) -> ServicePort {
        ServicePort {
            key: ServicePortKey {
                namespace: "default".into(),
                name: name.into(),
                protocol: proto,
                port,
            },
            cluster_ip: Some("10.96.0.10".parse().unwrap()),
            node_port: None,
            affinity_timeout: None,
            backends: backends
                .iter()
                .map(|(ip, port)| Backend {
                    ip: ip.parse().unwrap(),
                    port: *port,
                })
                .collect(),
        }
    }

    fn config() -> RenderConfig {
        RenderConfig {
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        }
    }

    fn three() -> [(&'static str, u16); 3] {
        [
            ("10.244.0.2", 8080),
            ("10.244.0.3", 8080),
            ("10.244.1.2", 9090),
        ]
    }

    /// (case, the ports, lines that must appear, lines that must not)
    type Case = (
        &'static str,
        Vec<ServicePort>,
        Vec<&'static str>,
        Vec<&'static str>,
    );

    fn cases() -> Vec<Case> {
        let mut node_port = port("web", Protocol::Tcp, 80, &three());
        node_port.node_port = Some(30080);
        let mut affinity = port("web", Protocol::Tcp, 80, &three()[..2]);
        affinity.affinity_timeout = Some(60);
        let mut empty_node_port = port("web", Protocol::Tcp, 80, &[]);
        empty_node_port.node_port = Some(30080);
        let mut headless = port("web", Protocol::Tcp, 80, &three());
        headless.cluster_ip = None;
        vec![
            (
                "even balancing over three endpoints",
                vec![port("web", Protocol::Tcp, 80, &three())],
                vec![
                    "10.96.0.10 . tcp . 80 : goto svc-default/web/tcp/80",
                    "chain svc-default/web/tcp/80 {",
                    "meta l4proto tcp dnat ip addr . port to numgen random mod 3 map { 0 : 10.244.0.2 . 8080, 1 : 10.244.0.3 . 8080, 2 : 10.244.1.2 . 9090 }",
                    "10.244.0.2 . 10.244.0.2,",
                    "10.244.1.2 . 10.244.1.2",
                ],
                vec!["chain ep-", "chain ext-", "set aff-"],
            ),
            (
                "one endpoint, UDP",
                vec![port("dns", Protocol::Udp, 53, &[("10.250.0.1", 53)])],
                vec![
                    "10.96.0.10 . udp . 53 : goto svc-default/dns/udp/53",
                    "meta l4proto udp dnat to 10.250.0.1:53",
                ],
                vec!["numgen"],
            ),
            (
                "no endpoints: rejected, not routed",
                vec![empty_node_port],
                vec![
                    "10.96.0.10 . tcp . 80",
                    "tcp . 30080",
                    "ip daddr . meta l4proto . th dport @no-endpoint-services reject",
                ],
                vec![
                    ": goto svc-default/web/tcp/80",
                    "chain svc-default/web/tcp/80 {",
                ],
            ),
            (
                "NodePort: marked for masquerading, then the service chain",
                vec![node_port],
                vec![
                    "tcp . 30080 : goto ext-default/web/tcp/80",
                    "chain ext-default/web/tcp/80 {",
                    "meta mark set meta mark | 0x4000",
                    "goto svc-default/web/tcp/80",
                    "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
                ],
                vec![],
            ),
            (
                "ClientIP affinity: per-endpoint sets and chains",
                vec![affinity],
                vec![
                    "set aff-default/web/tcp/80/10.244.0.2/8080 {",
                    "timeout 60s",
                    "ip saddr @aff-default/web/tcp/80/10.244.0.2/8080 goto ep-default/web/tcp/80/10.244.0.2/8080",
                    "numgen random mod 2 vmap { 0 : goto ep-default/web/tcp/80/10.244.0.2/8080, 1 : goto ep-default/web/tcp/80/10.244.0.3/8080 }",
                    "chain ep-default/web/tcp/80/10.244.0.3/8080 {",
                    "update @aff-default/web/tcp/80/10.244.0.3/8080 { ip saddr }",
                    "meta l4proto tcp dnat to 10.244.0.3:8080",
                ],
                vec!["dnat ip addr . port"],
            ),
            (
                "headless: nothing",
                vec![headless],
                vec!["map service-ips {"],
                vec!["svc-default", "10.244.0.2 . 10.244.0.2"],
            ),
            (
                "masquerading: marks, hairpin, outside the cluster CIDR",
                vec![],
                vec![
                    "add table ip skiff",
                    "delete table ip skiff",
                    "type nat hook prerouting priority -100; policy accept;",
                    "type nat hook output priority -100; policy accept;",
                    "type nat hook postrouting priority 100; policy accept;",
                    "type filter hook prerouting priority -110; policy accept;",
                    "type filter hook output priority -110; policy accept;",
                    "meta mark & 0x4000 == 0x4000 meta mark set meta mark ^ 0x4000 masquerade fully-random",
                    "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random",
                    "ct status dnat ip daddr != 10.244.0.0/16 masquerade fully-random",
                ],
                vec![],
            ),
        ]
    }

    #[test]
    fn rulesets_for_cases() {
        for (case, ports, present, absent) in cases() {
            let text = render(&ports, &config());
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for want in present {
                assert!(lines.contains(&want), "{case}: missing {want:?} in\n{text}");
            }
            for unwanted in absent {
                assert!(
                    !text.contains(unwanted),
                    "{case}: unexpected {unwanted:?} in\n{text}"
                );
            }
        }
    }

    #[test]
    fn rendering_is_deterministic_and_config_dependent() {
        let ports = vec![port("web", Protocol::Tcp, 80, &three())];
        assert_eq!(render(&ports, &config()), render(&ports, &config()));
        let no_cidr = render(&ports, &RenderConfig { cluster_cidr: None });
        assert!(!no_cidr.contains("ct status dnat ip daddr != "));
    }

    /// The real `nft` (check mode: parsed and validated by the kernel, nothing committed)
    /// accepts the ruleset of every case and of a mix of all of them. Needs `nft` and
    /// CAP_NET_ADMIN; skipped (with a message) without them.
    #[test]
    fn nft_accepts_the_rendered_rulesets() {
        let nft = Nft::default();
        if let Err(e) = nft.run(&["list", "tables"], None) {
            eprintln!("skipping: nft unusable here ({e})");
            return;
        }
        let mut all = Vec::new();
        for (i, (case, ports, _, _)) in cases().into_iter().enumerate() {
            nft.check(&render(&ports, &config()))
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            all.extend(ports.into_iter().map(|mut p| {
                p.key.name = format!("svc{i}");
                p.cluster_ip = p
                    .cluster_ip
                    .map(|_| format!("10.96.1.{i}").parse().unwrap());
                p.node_port = p.node_port.map(|n| n + i as u16);
                p
            }));
        }
        let text = render(&all, &config());
        nft.check(&text)
            .unwrap_or_else(|e| panic!("mixed: {e}\n{text}"));
    }
}
