//! `skiffctl port-forward POD|TYPE/NAME [LOCAL:]REMOTE... [--address ADDR,...]`: listens
//! locally and forwards every accepted connection to a port of the pod, as kubectl does.
//!
//! One WebSocket to `pods/NAME/portforward` (subprotocol `SPDY/3.1+portforward.k8s.io`)
//! carries a SPDY/3.1 session ([`runtime::spdy`]); each local connection becomes an
//! error/data stream pair with the next `requestID`. Port specs follow kubectl: `80`,
//! `8080:80`, `:80` or `0:80` (a random local port), a named container port on pods, and
//! service ports translated to their target ports for `svc/NAME`. An error reported by the
//! node ends the whole session ("lost connection to pod"), as in kubectl 1.23+.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use runtime::spdy::portforward::{ForwardError, forward_connection};
use runtime::spdy::{PORT_FORWARD_PROTOCOL, Role, Session, transport};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};
use crate::get::collection;
use crate::http::{Http, JSON};
use crate::objects::parse_flag_duration;
use crate::pod_select::resolve_pod;

/// Flags of `port-forward`.
#[derive(clap::Args, Debug)]
pub struct PortForwardArgs {
    /// POD or TYPE/NAME.
    pub target: String,
    /// `[LOCAL:]REMOTE` port pairs.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Addresses to listen on (comma separated): `localhost` or IP addresses.
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    pub address: Vec<String>,
    /// How long to wait for a controller's pod to exist.
    #[arg(long, default_value = "1m0s")]
    pub pod_running_timeout: String,
}

/// A port pair as written: the remote side may be a container port's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// The local port (0: any free one).
    pub local: u16,
    /// The remote port, or its name.
    pub remote: String,
    /// Whether the local port was written (`REMOTE` alone reuses the remote number).
    pub local_given: bool,
}

/// Parses kubectl's port specs (`5000`, `8888:5000`, `:5000`, `0:5000`, `8080:http`).
pub fn parse_port_specs(specs: &[String]) -> Result<Vec<PortSpec>> {
    specs
        .iter()
        .map(|spec| {
            let parts: Vec<&str> = spec.split(':').collect();
            let (local, remote, local_given) = match parts.as_slice() {
                [one] => (None, *one, false),
                [l, r] => (Some(if l.is_empty() { "0" } else { l }), *r, true),
                _ => {
                    return Err(CtlError::local(format!("invalid port format '{spec}'")));
                }
            };
            let local = match local {
                Some(l) => l
                    .parse::<u16>()
                    .map_err(|e| CtlError::local(format!("error parsing local port '{l}': {e}")))?,
                None => 0,
            };
            if remote.is_empty() {
                return Err(CtlError::local(format!("invalid port format '{spec}'")));
            }
            Ok(PortSpec {
                local,
                remote: remote.to_string(),
                local_given,
            })
        })
        .collect()
}

/// A resolved forward: local port (0: any) to a numeric pod port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The local port.
    pub local: u16,
    /// The port in the pod.
    pub remote: u16,
}

/// The container port of `pod` named `name`.
fn named_container_port(pod: &Value, name: &str) -> Option<u16> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

/// Resolves specs against the pod (named ports) and, for `svc/NAME`, the Service (its port
/// to the target port; an unwritten local port stays the service port), as kubectl does.
pub fn resolve_forwards(
    specs: &[PortSpec],
    pod: &Value,
    service: Option<&Value>,
) -> Result<Vec<Forward>> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    specs
        .iter()
        .map(|s| {
            let numeric = s.remote.parse::<u16>().ok();
            let remote = match (service, numeric) {
                (Some(svc), Some(port)) => service_target_port(svc, pod, port)?,
                (Some(svc), None) => {
                    return Err(CtlError::local(format!(
                        "service '{}' does not have a named port '{}'",
                        svc["metadata"]["name"].as_str().unwrap_or_default(),
                        s.remote
                    )));
                }
                (None, Some(port)) => port,
                (None, None) => named_container_port(pod, &s.remote).ok_or_else(|| {
                    CtlError::local(format!(
                        "Pod '{pod_name}' does not have a named port '{}'",
                        s.remote
                    ))
                })?,
            };
            if remote == 0 {
                return Err(CtlError::local("remote port must be > 0"));
            }
            let local = if s.local_given {
                s.local
            } else {
                numeric.unwrap_or(remote)
            };
            Ok(Forward { local, remote })
        })
        .collect()
}

/// The pod port a Service's `port` leads to (its `targetPort`, a number or a container
/// port name; unset means the same number).
fn service_target_port(svc: &Value, pod: &Value, port: u16) -> Result<u16> {
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let entry = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(u64::from(port)))
        .ok_or_else(|| {
            CtlError::local(format!(
                "Service {name} does not have a service port {port}"
            ))
        })?;
    match &entry["targetPort"] {
        Value::Number(n) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| CtlError::local(format!("invalid target port {n}"))),
        Value::String(s) => match s.parse::<u16>() {
            Ok(p) => Ok(p),
            Err(_) => named_container_port(pod, s).ok_or_else(|| {
                CtlError::local(format!(
                    "Pod '{}' does not have a named port '{s}'",
                    pod["metadata"]["name"].as_str().unwrap_or_default()
                ))
            }),
        },
        _ => Ok(port),
    }
}

/// An address to listen on; `required` ones must all work (explicit IPs), the others
/// (`localhost`'s two) only one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddress {
    /// The IP.
    pub ip: IpAddr,
    /// Whether failing to listen on it fails the port.
    pub required: bool,
}

/// `--address` values: `localhost` means 127.0.0.1 and ::1; sorted like kubectl.
pub fn parse_addresses(addresses: &[String]) -> Result<Vec<ListenAddress>> {
    let mut out: Vec<ListenAddress> = Vec::new();
    for a in addresses {
        let found: Vec<ListenAddress> = if a == "localhost" {
            vec![
                ListenAddress {
                    ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    required: false,
                },
                ListenAddress {
                    ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    required: false,
                },
            ]
        } else {
            let ip = a
                .parse::<IpAddr>()
                .map_err(|_| CtlError::local(format!("{a} is not a valid IP")))?;
            vec![ListenAddress { ip, required: true }]
        };
        for f in found {
            if let Some(existing) = out.iter_mut().find(|e| e.ip == f.ip) {
                existing.required |= f.required;
            } else {
                out.push(f);
            }
        }
    }
    out.sort_by_key(|a| a.ip.to_string());
    Ok(out)
}

/// `host:port` as Go's JoinHostPort writes it.
fn join_host_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// Runs `port-forward` until the connection to the pod is lost.
pub async fn run(http: &Http, disc: &Discovery, a: &PortForwardArgs) -> Result<()> {
    let timeout = parse_flag_duration("--pod-running-timeout", &a.pod_running_timeout)?;
    let specs = parse_port_specs(&a.ports)?;
    let addresses = parse_addresses(&a.address)?;
    let service = match a.target.split_once('/') {
        Some((typed, name)) if disc.resolve(typed)?.info.kind == "Service" => {
            let services = disc.resolve(typed)?;
            Some(
                http.get(
                    &format!("{}/{name}", collection(services, Some(&http.namespace))),
                    JSON,
                )
                .await?,
            )
        }
        _ => None,
    };
    let pod = resolve_pod(http, disc, &a.target, timeout).await?;
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if phase != "Running" {
        return Err(CtlError::local(format!(
            "unable to forward port because pod is not running. Current status={phase}"
        )));
    }
    let forwards = resolve_forwards(&specs, &pod, service.as_ref())?;
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let path = format!(
        "{}/{name}/portforward",
        collection(disc.resolve("pods")?, Some(&http.namespace))
    );
    let upgraded = http
        .websocket(&path, PORT_FORWARD_PROTOCOL)
        .await
        .map_err(|e| match e {
            CtlError::Local(m) if !m.starts_with("error upgrading connection") => {
                CtlError::local(format!("error upgrading connection: {m}"))
            }
            other => other,
        })?;
    let socket = WebSocketStream::from_raw_socket(
        upgraded,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let (rx, tx) = transport::websocket(socket);
    let session = Session::new(Role::Client, rx, tx);

    let (failed_tx, mut failed) = mpsc::channel::<(Forward, String)>(1);
    let request_ids = Arc::new(AtomicU64::new(0));
    let mut listening = false;
    for forward in &forwards {
        match listen(&addresses, *forward).await {
            Ok((listeners, local)) => {
                listening = true;
                let forward = Forward {
                    local,
                    remote: forward.remote,
                };
                for listener in listeners {
                    tokio::spawn(accept_loop(
                        listener,
                        forward,
                        session.clone(),
                        request_ids.clone(),
                        failed_tx.clone(),
                    ));
                }
            }
            Err(e) => eprintln!("Unable to listen on port {}: {e}", forward.local),
        }
    }
    if !listening {
        let pairs: Vec<String> = forwards
            .iter()
            .map(|f| format!("{{{} {}}}", f.local, f.remote))
            .collect();
        return Err(CtlError::local(format!(
            "unable to listen on any of the requested ports: [{}]",
            pairs.join(" ")
        )));
    }
    tokio::select! {
        () = session.closed() => {}
        Some((forward, message)) = failed.recv() => {
            eprintln!(
                "error: an error occurred forwarding {} -> {}: {message}",
                forward.local, forward.remote
            );
            session.close().await;
        }
    }
    Err(CtlError::local("lost connection to pod"))
}

/// Listens on every address for `forward` (a random local port is chosen by the first
/// listener and reused by the rest), printing kubectl's `Forwarding from` lines.
async fn listen(
    addresses: &[ListenAddress],
    forward: Forward,
) -> std::result::Result<(Vec<TcpListener>, u16), String> {
    let mut port = forward.local;
    let mut listeners = Vec::new();
    let mut errors = Vec::new();
    let mut failed_required = false;
    for a in addresses {
        match TcpListener::bind(SocketAddr::new(a.ip, port)).await {
            Ok(l) => {
                port = l.local_addr().map(|s| s.port()).unwrap_or(port);
                println!(
                    "Forwarding from {} -> {}",
                    join_host_port(a.ip, port),
                    forward.remote
                );
                listeners.push(l);
            }
            Err(e) => {
                failed_required |= a.required;
                errors.push(format!(
                    "unable to create listener: Error listen tcp{} {}: {e}",
                    if a.ip.is_ipv4() { "4" } else { "6" },
                    join_host_port(a.ip, port)
                ));
            }
        }
    }
    if listeners.is_empty() || failed_required {
        return Err(format!(
            "Listeners failed to create with the following errors: [{}]",
            errors.join(" ")
        ));
    }
    Ok((listeners, port))
}

/// Accepts local connections and forwards each as its own request.
async fn accept_loop(
    listener: TcpListener,
    forward: Forward,
    session: Session,
    request_ids: Arc<AtomicU64>,
    failed: mpsc::Sender<(Forward, String)>,
) {
    while let Ok((conn, _)) = listener.accept().await {
        println!("Handling connection for {}", forward.local);
        let _ = conn.set_nodelay(true);
        let id = request_ids.fetch_add(1, Ordering::SeqCst);
        let session = session.clone();
        let failed = failed.clone();
        tokio::spawn(async move {
            match forward_connection(&session, forward.remote, id, conn).await {
                Ok(()) => {}
                Err(ForwardError::Remote(message)) => {
                    let _ = failed.send((forward, message)).await;
                }
                Err(e) => eprintln!("error: {e}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn port_specs_parse_like_kubectl() {
        let ok =
            parse_port_specs(&specs(&["5000", "8888:5000", ":5000", "0:80", "8080:http"])).unwrap();
        let got: Vec<(u16, &str, bool)> = ok
            .iter()
            .map(|s| (s.local, s.remote.as_str(), s.local_given))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "5000", false),
                (8888, "5000", true),
                (0, "5000", true),
                (0, "80", true),
                (8080, "http", true),
            ]
        );
        let cases = [
            ("1:2:3", "error: invalid port format '1:2:3'"),
            (
                "x:80",
                "error: error parsing local port 'x': invalid digit found in string",
            ),
            ("80:", "error: invalid port format '80:'"),
        ];
        for (spec, want) in cases {
            let err = parse_port_specs(&specs(&[spec])).unwrap_err();
            assert_eq!(err.to_string(), want, "{spec}");
        }
    }

    #[test]
    fn remote_ports_resolve_through_pods_and_services() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [
            {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
        ]}});
        let svc = json!({"metadata": {"name": "front"}, "spec": {"ports": [
            {"port": 80, "targetPort": "http"},
            {"port": 81, "targetPort": 9090},
            {"port": 82}
        ]}});
        let resolve = |s: &[&str], service: Option<&Value>| {
            resolve_forwards(&parse_port_specs(&specs(s)).unwrap(), &pod, service)
                .map_err(|e| e.to_string())
        };
        let f = |local, remote| Forward { local, remote };
        assert_eq!(resolve(&["80"], None), Ok(vec![f(80, 80)]));
        assert_eq!(resolve(&["9000:http"], None), Ok(vec![f(9000, 8080)]));
        assert_eq!(resolve(&["http"], None), Ok(vec![f(8080, 8080)]));
        assert_eq!(
            resolve(&["grpc"], None),
            Err("error: Pod 'web' does not have a named port 'grpc'".into())
        );
        assert_eq!(
            resolve(&["0"], None),
            Err("error: remote port must be > 0".into())
        );
        assert_eq!(resolve(&["80"], Some(&svc)), Ok(vec![f(80, 8080)]));
        assert_eq!(resolve(&["0:81"], Some(&svc)), Ok(vec![f(0, 9090)]));
        assert_eq!(resolve(&["82"], Some(&svc)), Ok(vec![f(82, 82)]));
        assert_eq!(
            resolve(&["83"], Some(&svc)),
            Err("error: Service front does not have a service port 83".into())
        );
    }

    #[test]
    fn addresses_expand_localhost_and_sort() {
        let got = parse_addresses(&specs(&["localhost", "10.0.0.1"])).unwrap();
        let ips: Vec<(String, bool)> = got.iter().map(|a| (a.ip.to_string(), a.required)).collect();
        assert_eq!(
            ips,
            vec![
                ("10.0.0.1".into(), true),
                ("127.0.0.1".into(), false),
                ("::1".into(), false),
            ]
        );
        assert_eq!(
            parse_addresses(&specs(&["nope"])).unwrap_err().to_string(),
            "error: nope is not a valid IP"
        );
        assert_eq!(join_host_port("::1".parse().unwrap(), 8080), "[::1]:8080");
    }
}
