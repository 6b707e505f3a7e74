//! Names outside the cluster domain: forwarded to the host's resolvers, or refused with
//! NXDOMAIN.
//!
//! **Decision:** the forwarder relays the question as it is (one query, recursion desired) to
//! the nameservers of the host's `/etc/resolv.conf`, in order, over UDP (TCP when the answer
//! comes back truncated), and relays the answer's code and sections back. No address is built
//! in: a host without nameservers gets SERVFAIL for outside names, and `--dns-upstream none`
//! answers them NXDOMAIN without sending anything anywhere (what tests use). A nameserver that
//! is this DNS server itself is dropped, so a host pointing at it cannot make a loop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::debug;

use crate::error::DnsError;

/// How long one upstream server gets to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What happens to names outside the cluster domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// NXDOMAIN, nothing sent.
    None,
    /// Forwarded to these servers, in order.
    Forward(Vec<SocketAddr>),
}

/// The servers to forward to: the host's `nameservers` on port 53, without the DNS server's
/// own `listen` address (a loopback or unspecified `listen` address also drops every
/// nameserver on the same port that reaches it).
pub fn forward_targets(nameservers: &[IpAddr], listen: SocketAddr) -> Vec<SocketAddr> {
    let reaches_self = |ip: IpAddr| {
        ip == listen.ip()
            || (listen.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
    };
    let mut out: Vec<SocketAddr> = Vec::new();
    for ip in nameservers {
        let target = SocketAddr::new(*ip, 53);
        if (listen.port() == 53 && reaches_self(*ip)) || out.contains(&target) {
            continue;
        }
        out.push(target);
    }
    out
}

/// The query sent upstream for `query`: a fresh id, recursion desired.
fn upstream_query(query: &Query, id: u16) -> Message {
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(query.clone());
    msg
}

/// Whether `reply` answers `sent` (same id, a response, same question).
fn answers(reply: &Message, sent: &Message) -> bool {
    reply.id() == sent.id()
        && reply.message_type() == MessageType::Response
        && reply.queries() == sent.queries()
}

/// Asks the upstream servers in turn; the first reply that is not SERVFAIL or REFUSED wins
/// (else the last reply). Errors only when no server replied at all.
pub async fn forward(servers: &[SocketAddr], query: &Query) -> Result<Message, DnsError> {
    let mut last: Option<Message> = None;
    let mut last_error = DnsError::NoUpstream;
    for server in servers {
        match ask(*server, query, Transport::Udp).await {
            Ok(reply)
                if !matches!(
                    reply.response_code(),
                    ResponseCode::ServFail | ResponseCode::Refused
                ) =>
            {
                return Ok(reply);
            }
            Ok(reply) => last = Some(reply),
            Err(e) => {
                debug!(%server, error = %e, "upstream did not answer");
                last_error = e;
            }
        }
    }
    last.ok_or(last_error)
}

/// How [`ask`] sends its question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP, retried over TCP when the answer comes back truncated.
    Udp,
    /// TCP only.
    Tcp,
}

/// Asks one server one question (recursion desired): the client side of the forwarder,
/// also what tests and probes query a DNS server with.
pub async fn ask(
    server: SocketAddr,
    query: &Query,
    transport: Transport,
) -> Result<Message, DnsError> {
    let sent = upstream_query(query, rand::random());
    match transport {
        Transport::Udp => exchange(server, &sent).await,
        Transport::Tcp => tokio::time::timeout(
            UPSTREAM_TIMEOUT,
            exchange_tcp(server, &sent.to_vec()?, &sent),
        )
        .await
        .map_err(|_| DnsError::UpstreamTimeout(server))?,
    }
}

/// One question to one server: UDP, then TCP if the UDP answer is truncated.
async fn exchange(server: SocketAddr, sent: &Message) -> Result<Message, DnsError> {
    let bytes = sent.to_vec()?;
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(&bytes).await?;
    let mut buf = vec![0u8; 65535];
    let reply = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        loop {
            let n = socket.recv(&mut buf).await?;
            if let Ok(reply) = Message::from_vec(&buf[..n])
                && answers(&reply, sent)
            {
                return Ok::<_, DnsError>(reply);
            }
        }
    })
    .await
    .map_err(|_| DnsError::UpstreamTimeout(server))??;
    if !reply.truncated() {
        return Ok(reply);
    }
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange_tcp(server, &bytes, sent))
        .await
        .map_err(|_| DnsError::UpstreamTimeout(server))?
}

async fn exchange_tcp(
    server: SocketAddr,
    bytes: &[u8],
    sent: &Message,
) -> Result<Message, DnsError> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len()).map_err(|_| DnsError::TooLarge)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    let n = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    stream.read_exact(&mut buf).await?;
    let reply = Message::from_vec(&buf)?;
    if answers(&reply, sent) {
        Ok(reply)
    } else {
        Err(DnsError::Mismatch(server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn targets_skip_the_server_itself() {
        let cases: [(&[&str], &str, &[&str]); 6] = [
            (
                &["192.168.1.1", "1.1.1.1"],
                "10.250.1.1:53",
                &["192.168.1.1:53", "1.1.1.1:53"],
            ),
            (&["127.0.0.53"], "10.250.1.1:53", &["127.0.0.53:53"]),
            (
                &["127.0.0.1", "127.0.0.53"],
                "127.0.0.1:53",
                &["127.0.0.53:53"],
            ),
            (&["127.0.0.1"], "127.0.0.1:5353", &["127.0.0.1:53"]),
            (&["127.0.0.53", "10.0.0.2"], "0.0.0.0:53", &["10.0.0.2:53"]),
            (&["10.0.0.2", "10.0.0.2"], "0.0.0.0:5353", &["10.0.0.2:53"]),
        ];
        for (nameservers, listen, want) in cases {
            let got = forward_targets(&addrs(nameservers), listen.parse().unwrap());
            let want: Vec<SocketAddr> = want.iter().map(|s| s.parse().unwrap()).collect();
            assert_eq!(got, want, "{nameservers:?} {listen}");
        }
    }

    /// A one-shot upstream on loopback: answers the first question with `code` and, for
    /// NOERROR, `192.0.2.1`; returns its address.
    async fn fake_upstream(code: ResponseCode) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_response_code(code)
                .add_queries(q.queries().to_vec());
            if code == ResponseCode::NoError {
                let name = q.queries()[0].name().clone();
                r.add_answer(Record::from_rdata(name, 30, RData::A(A::new(192, 0, 2, 1))));
            }
            socket.send_to(&r.to_vec().unwrap(), from).await.unwrap();
        });
        addr
    }

    fn question() -> Query {
        Query::query(Name::from_ascii("example.test.").unwrap(), RecordType::A)
    }

    #[tokio::test]
    async fn relays_the_first_useful_answer() {
        let failing = fake_upstream(ResponseCode::ServFail).await;
        let good = fake_upstream(ResponseCode::NoError).await;
        let reply = forward(&[failing, good], &question()).await.unwrap();
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert_eq!(reply.answers()[0].data(), &RData::A(A::new(192, 0, 2, 1)));
    }

    #[tokio::test]
    async fn relays_nxdomain() {
        let upstream = fake_upstream(ResponseCode::NXDomain).await;
        let reply = forward(&[upstream], &question()).await.unwrap();
        assert_eq!(reply.response_code(), ResponseCode::NXDomain);
    }

    #[tokio::test]
    async fn no_servers_is_an_error() {
        assert!(matches!(
            forward(&[], &question()).await,
            Err(DnsError::NoUpstream)
        ));
    }
}
