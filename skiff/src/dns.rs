//! The cluster DNS inside `skiff server`: flags, sockets, upstream and the kube-dns Service.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use apiserver::allocator::Ipv4Range;
use dns::kube_dns::KubeDns;
use dns::upstream::{Upstream, forward_targets};
use dns::{DnsConfig, Sockets};
use runtime::Client;
use tracing::warn;

use crate::server::ServerError;

/// Where the host's resolvers are listed.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// `--dns-listen`: an address, or `none` for no DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsListen {
    /// Serve on this address (port 0: any free port, published in the kube-dns endpoints).
    At(SocketAddr),
    /// No DNS server and no kube-dns Service.
    Off,
}

fn parse_listen(s: &str) -> Result<DnsListen, String> {
    if s == "none" {
        return Ok(DnsListen::Off);
    }
    s.parse()
        .map(DnsListen::At)
        .map_err(|e| format!("{s:?} is neither IP:PORT nor none: {e}"))
}

/// `--dns-upstream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamKind {
    /// Forward names outside the cluster domain to the nameservers of /etc/resolv.conf.
    Host,
    /// Answer them NXDOMAIN.
    None,
}

/// Flags of the cluster DNS (`skiff server`).
#[derive(clap::Args, Debug, Clone)]
pub struct DnsFlags {
    /// The cluster domain the DNS serves (agents' `--cluster-domain` must match).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Where the cluster DNS listens, UDP and TCP: IP:PORT, or `none`. Default: the API's
    /// listen IP, port 53 (if that cannot be bound, the server runs without DNS and says so).
    #[arg(long, value_parser = parse_listen)]
    dns_listen: Option<DnsListen>,
    /// Names outside the cluster domain: `host` forwards them to the host's resolvers
    /// (/etc/resolv.conf), `none` answers NXDOMAIN.
    #[arg(long, value_enum, default_value = "host")]
    dns_upstream: UpstreamKind,
}

/// The kube-dns ClusterIP: the 10th address of the service CIDR (`10.96.0.10`), as kubeadm
/// picks; `None` when the range is too small.
pub fn dns_service_ip(service_cidr: &Ipv4Range) -> Option<std::net::Ipv4Addr> {
    (service_cidr.usable() > 10).then(|| service_cidr.nth(9))
}

/// The address published as the kube-dns endpoint: the listen address, unless it is not a
/// single IPv4 address.
fn endpoint_of(addr: SocketAddr) -> Option<SocketAddr> {
    (addr.is_ipv4() && !addr.ip().is_unspecified()).then_some(addr)
}

/// The host's nameservers (none when the file is missing or lists none).
fn host_nameservers(path: &Path) -> Vec<IpAddr> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the host's resolvers");
            return Vec::new();
        }
    };
    kubelet::network::files::ResolvConf::parse(&text)
        .nameservers
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Binds the DNS sockets and starts the server as a client of the API (`config`: the server's
/// own component credentials); `None` when DNS is off (or the default address cannot be
/// bound). It stops when `shutdown` completes.
pub async fn spawn_in_server(
    flags: &DnsFlags,
    api_addr: SocketAddr,
    service_cidr: &Ipv4Range,
    api: runtime::config::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServerError> {
    let (listen, explicit) = match flags.dns_listen {
        Some(DnsListen::Off) => return Ok(None),
        Some(DnsListen::At(addr)) => (addr, true),
        None => (SocketAddr::new(api_addr.ip(), 53), false),
    };
    let sockets = match Sockets::bind(listen).await {
        Ok(s) => s,
        Err(e) if !explicit => {
            warn!(error = %e, "cluster DNS not started (choose an address with --dns-listen)");
            return Ok(None);
        }
        Err(dns::DnsError::Listen(addr, e)) => return Err(ServerError::Listen(addr, e)),
        Err(e) => return Err(ServerError::Flag(e.to_string())),
    };
    let upstream = match flags.dns_upstream {
        UpstreamKind::None => Upstream::None,
        UpstreamKind::Host => {
            let servers = forward_targets(
                &host_nameservers(Path::new(HOST_RESOLV_CONF)),
                sockets.addr(),
            );
            if servers.is_empty() {
                warn!("no host resolvers to forward to: names outside the cluster get SERVFAIL");
            }
            Upstream::Forward(servers)
        }
    };
    let kube_dns = match dns_service_ip(service_cidr) {
        Some(cluster_ip) => Some(KubeDns {
            cluster_ip,
            endpoint: endpoint_of(sockets.addr()),
        }),
        None => {
            warn!(%service_cidr, "service CIDR too small for the kube-dns Service");
            None
        }
    };
    let config = DnsConfig {
        domain: flags.cluster_domain.clone(),
        upstream,
        kube_dns,
    };
    let client = Client::new(api)?;
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = dns::run(client, sockets, config, shutdown).await {
            tracing::error!(error = %e, "cluster DNS stopped");
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ip_is_the_tenth_address() {
        let cases = [
            ("10.96.0.0/16", Some("10.96.0.10")),
            ("10.100.0.0/24", Some("10.100.0.10")),
            ("10.96.0.0/28", Some("10.96.0.10")),
            ("10.96.0.0/29", None),
        ];
        for (cidr, want) in cases {
            let got = dns_service_ip(&cidr.parse().unwrap());
            assert_eq!(got, want.map(|s| s.parse().unwrap()), "{cidr}");
        }
    }

    #[test]
    fn listen_flag() {
        assert_eq!(parse_listen("none"), Ok(DnsListen::Off));
        assert_eq!(
            parse_listen("10.250.1.1:53"),
            Ok(DnsListen::At("10.250.1.1:53".parse().unwrap()))
        );
        assert!(parse_listen("10.250.1.1").is_err());
    }

    #[test]
    fn published_endpoint() {
        let cases = [
            ("10.250.1.1:53", Some("10.250.1.1:53")),
            ("127.0.0.1:5353", Some("127.0.0.1:5353")),
            ("0.0.0.0:53", None),
            ("[::1]:53", None),
        ];
        for (addr, want) in cases {
            let got = endpoint_of(addr.parse().unwrap());
            assert_eq!(got, want.map(|s| s.parse().unwrap()), "{addr}");
        }
    }
}
