//! The `process` runtime's Service proxy: a TCP relay in the agent, no root needed.
//!
//! **What it can offer.** Without root the agent can neither write nftables rules nor bind a
//! ClusterIP (the address is on no interface, and adding it needs `CAP_NET_ADMIN`), so
//! ClusterIPs are not served. NodePorts are: every TCP NodePort (30000–32767, unprivileged
//! ports) gets a listener on the node's address (`--node-ip`), and each accepted connection is
//! relayed to one of the Service port's ready endpoints, chosen round-robin (even over time),
//! or the one a client used last with `sessionAffinity: ClientIP` within the timeout.
//! A connection to a Service without endpoints is accepted and closed at once (the nftables
//! dataplane rejects it; a listener cannot refuse a single connection). UDP and SCTP
//! NodePorts are not served. A NodePort already bound by something else on the host is
//! logged and skipped until a later sync finds it free.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Dataplane;
use super::model::{Backend, Protocol, ServicePort, ServicePortKey};
use crate::error::Result;

/// How long connecting to one endpoint may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Chooses endpoints for one Service port.
#[derive(Debug, Default)]
pub struct Balancer {
    backends: Vec<Backend>,
    next: AtomicUsize,
    affinity: Option<Duration>,
    clients: Mutex<HashMap<IpAddr, (Backend, Instant)>>,
}

impl Balancer {
    /// A balancer over `backends`, sticky per client for `affinity` when given.
    pub fn new(backends: Vec<Backend>, affinity: Option<Duration>) -> Self {
        Balancer {
            backends,
            affinity,
            ..Balancer::default()
        }
    }

    /// The endpoints to try for a connection from `client`, best first: the client's sticky
    /// endpoint (if it is still an endpoint and the affinity has not expired), else the next
    /// in round-robin order; the others follow as fallbacks.
    pub fn order(&self, client: IpAddr, now: Instant) -> Vec<Backend> {
        let n = self.backends.len();
        if n == 0 {
            return Vec::new();
        }
        let mut first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        if let Some(timeout) = self.affinity {
            let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((b, seen)) = clients.get(&client)
                && now.duration_since(*seen) < timeout
                && let Some(i) = self.backends.iter().position(|x| x == b)
            {
                first = i;
            }
        }
        (0..n).map(|i| self.backends[(first + i) % n]).collect()
    }

    /// Remembers that `client` was sent to `backend` (for affinity).
    pub fn used(&self, client: IpAddr, backend: Backend, now: Instant) {
        if let Some(timeout) = self.affinity {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            clients.retain(|_, (_, seen)| now.duration_since(*seen) < timeout);
            clients.insert(client, (backend, now));
        }
    }
}

struct Listener {
    key: ServicePortKey,
    balancer: Arc<Mutex<Arc<Balancer>>>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The userspace dataplane: one listener per TCP NodePort.
pub struct Userspace {
    handle: Handle,
    listen_ip: IpAddr,
    listeners: HashMap<u16, Listener>,
}

impl Userspace {
    /// A dataplane listening on `listen_ip`; must be created inside the Tokio runtime that
    /// will run the relays.
    pub fn new(listen_ip: IpAddr) -> Self {
        Userspace {
            handle: Handle::current(),
            listen_ip,
            listeners: HashMap::new(),
        }
    }

    /// The NodePorts currently listened on.
    pub fn ports(&self) -> Vec<u16> {
        let mut p: Vec<u16> = self.listeners.keys().copied().collect();
        p.sort();
        p
    }

    fn listen(
        &self,
        node_port: u16,
        key: &ServicePortKey,
        balancer: Arc<Balancer>,
    ) -> Option<Listener> {
        let addr = SocketAddr::new(self.listen_ip, node_port);
        let std_listener = match std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
        {
            Ok(l) => l,
            Err(e) => {
                warn!(service = %key, %addr, error = %e, "cannot listen for the NodePort");
                return None;
            }
        };
        let _guard = self.handle.enter();
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                warn!(service = %key, %addr, error = %e, "cannot listen for the NodePort");
                return None;
            }
        };
        let shared = Arc::new(Mutex::new(balancer));
        let for_task = shared.clone();
        let task = self.handle.spawn(
            accept_loop(listener, for_task)
                .instrument(info_span!("nodeport", service = %key, port = node_port)),
        );
        info!(service = %key, %addr, "userspace proxy listening");
        Some(Listener {
            key: key.clone(),
            balancer: shared,
            task,
        })
    }
}

async fn accept_loop(listener: TcpListener, balancer: Arc<Mutex<Arc<Balancer>>>) {
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let b = balancer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tokio::spawn(relay(conn, peer.ip(), b));
    }
}

async fn relay(mut conn: TcpStream, client: IpAddr, balancer: Arc<Balancer>) {
    for backend in balancer.order(client, Instant::now()) {
        let addr = SocketAddr::new(IpAddr::V4(backend.ip), backend.port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(mut upstream)) => {
                balancer.used(client, backend, Instant::now());
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                return;
            }
            Ok(Err(e)) => debug!(%addr, error = %e, "endpoint refused; trying the next"),
            Err(_) => debug!(%addr, "endpoint timed out; trying the next"),
        }
    }
    // No endpoint (left): the connection is closed by dropping it.
}

impl Dataplane for Userspace {
    fn sync(&mut self, ports: &[ServicePort]) -> Result<()> {
        let wanted: HashMap<u16, &ServicePort> = ports
            .iter()
            .filter(|p| p.key.protocol == Protocol::Tcp)
            .filter_map(|p| p.node_port.map(|n| (n, p)))
            .collect();
        self.listeners
            .retain(|port, l| wanted.get(port).is_some_and(|p| p.key == l.key));
        for (node_port, p) in wanted {
            let balancer = Arc::new(Balancer::new(
                p.backends.clone(),
                p.affinity_timeout
                    .map(|s| Duration::from_secs(u64::from(s))),
            ));
            match self.listeners.get(&node_port) {
                Some(l) => {
                    let mut current = l.balancer.lock().unwrap_or_else(PoisonError::into_inner);
                    if current.backends != balancer.backends
                        || current.affinity != balancer.affinity
                    {
                        *current = balancer;
                    }
                }
                None => {
                    if let Some(l) = self.listen(node_port, &p.key, balancer) {
                        self.listeners.insert(node_port, l);
                    }
                }
            }
        }
        Ok(())
    }

    fn clean_up(&mut self) -> Result<()> {
        self.listeners.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(last: u8) -> Backend {
        Backend {
            ip: std::net::Ipv4Addr::new(10, 0, 0, last),
            port: 80,
        }
    }

    #[test]
    fn round_robin_spreads_evenly_and_falls_back_to_the_others() {
        let bal = Balancer::new(vec![b(1), b(2), b(3)], None);
        let client: IpAddr = "10.9.0.1".parse().unwrap();
        let now = Instant::now();
        let mut counts = HashMap::new();
        for _ in 0..300 {
            let order = bal.order(client, now);
            assert_eq!(order.len(), 3, "every endpoint is a fallback");
            *counts.entry(order[0]).or_insert(0) += 1;
        }
        assert_eq!(
            counts.values().copied().collect::<Vec<_>>(),
            vec![100, 100, 100]
        );
        assert!(Balancer::new(vec![], None).order(client, now).is_empty());
    }

    #[test]
    fn affinity_sticks_until_the_timeout() {
        let bal = Balancer::new(vec![b(1), b(2), b(3)], Some(Duration::from_secs(10)));
        let (c1, c2): (IpAddr, IpAddr) = ("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap());
        let t0 = Instant::now();
        let first = bal.order(c1, t0)[0];
        bal.used(c1, first, t0);
        // (client, time offset, sticks to `first`)
        let cases = [
            (c1, 1, true),
            (c1, 9, true),
            (c2, 1, false),
            (c1, 11, false),
        ];
        for (client, secs, sticks) in cases {
            let mut picks = std::collections::HashSet::new();
            for _ in 0..3 {
                picks.insert(bal.order(client, t0 + Duration::from_secs(secs))[0]);
            }
            assert_eq!(
                picks.len() == 1 && picks.contains(&first),
                sticks,
                "{client} +{secs}s"
            );
        }
    }
}
