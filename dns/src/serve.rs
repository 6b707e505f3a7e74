//! Running the DNS server: sockets, informers, the hickory server loop, the kube-dns keeper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use runtime::Client;
use runtime::informer::{InformerConfig, SharedInformerFactory};
use tokio::net::{TcpListener, UdpSocket};
use tracing::{info, warn};

use crate::error::DnsError;
use crate::handler::Handler;
use crate::kube_dns::{self, KubeDns};
use crate::resolve::Zone;
use crate::upstream::Upstream;
use crate::view::InformerView;

/// How long a TCP client may stay idle before its connection is closed.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries at finding a port free for both UDP and TCP when asked for port 0.
const PORT_TRIES: usize = 20;

/// The DNS server's sockets, bound before anything else so a taken address fails early and
/// port 0 resolves to a real port (the same one for UDP and TCP).
pub struct Sockets {
    udp: UdpSocket,
    tcp: TcpListener,
    addr: SocketAddr,
}

impl Sockets {
    /// Binds UDP and TCP on `listen`; port 0 picks a port free for both.
    pub async fn bind(listen: SocketAddr) -> Result<Sockets, DnsError> {
        let tries = if listen.port() == 0 { PORT_TRIES } else { 1 };
        let mut last = None;
        for _ in 0..tries {
            let udp = UdpSocket::bind(listen)
                .await
                .map_err(|e| DnsError::Listen(listen, e))?;
            let addr = udp.local_addr().map_err(|e| DnsError::Listen(listen, e))?;
            match TcpListener::bind(addr).await {
                Ok(tcp) => return Ok(Sockets { udp, tcp, addr }),
                Err(e) => last = Some(e),
            }
        }
        Err(DnsError::Listen(
            listen,
            last.unwrap_or_else(|| std::io::Error::other("no port")),
        ))
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The UDP socket and the TCP listener.
    pub fn into_parts(self) -> (UdpSocket, TcpListener) {
        (self.udp, self.tcp)
    }
}

/// What the DNS server serves.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// Names outside it.
    pub upstream: Upstream,
    /// The kube-dns Service to keep, if any.
    pub kube_dns: Option<KubeDns>,
}

/// Serves DNS on `sockets` from the cluster `client` reaches until `shutdown` completes.
pub async fn run(
    client: Client,
    sockets: Sockets,
    config: DnsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), DnsError> {
    let informers = SharedInformerFactory::new(client.clone(), InformerConfig::default());
    let services = informers.informer::<Service>();
    let slices = informers.informer::<EndpointSlice>();
    let view = InformerView::new(services.clone(), slices.clone());
    let serial = u32::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
    .unwrap_or(0);
    let zone = Zone::new(&config.domain);
    let handler = Handler::new(zone, Arc::new(view), config.upstream.clone(), serial);
    let mut server = hickory_server::ServerFuture::new(handler);
    let addr = sockets.addr;
    server.register_socket(sockets.udp);
    server.register_listener(sockets.tcp, TCP_TIMEOUT);
    info!(%addr, domain = %config.domain, upstream = ?config.upstream, "cluster DNS serving");
    // The keeper's own informer factory watches kube-system only, for the Endpoints.
    let system = SharedInformerFactory::namespaced(
        client.clone(),
        kube_dns::NAMESPACE,
        InformerConfig::default(),
    );
    let keeper = config.kube_dns.map(|want| {
        tokio::spawn(kube_dns::keep(
            client,
            want,
            services.clone(),
            slices.clone(),
            system.informer::<Endpoints>(),
        ))
    });
    shutdown.await;
    if let Some(k) = keeper {
        k.abort();
    }
    if let Err(e) = server.shutdown_gracefully().await {
        warn!(error = %e, "DNS server did not stop cleanly");
    }
    info!("cluster DNS stopped");
    Ok(())
}
