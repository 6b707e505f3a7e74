//! The edge between the wire and the pure resolver: turns a request into a [`Resolution`]
//! (or an upstream answer) and that into a response message.

use std::sync::Arc;

use hickory_proto::op::{Edns, Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use tracing::{debug, warn};

use crate::records::ClusterView;
use crate::resolve::{Data, Resolution, Rr, TTL, Zone};
use crate::upstream::{Upstream, forward};

/// Largest UDP payload this server offers through EDNS (the DNS flag day 2020 value, which
/// avoids IP fragmentation).
const MAX_UDP_PAYLOAD: u16 = 1232;

/// Answers every request: cluster names from the view, the rest through the upstream.
pub struct Handler {
    zone: Zone,
    view: Arc<dyn ClusterView>,
    upstream: Upstream,
    serial: u32,
}

impl Handler {
    /// A handler for `zone` reading `view`; `serial` goes into the zone's SOA.
    pub fn new(zone: Zone, view: Arc<dyn ClusterView>, upstream: Upstream, serial: u32) -> Self {
        Handler {
            zone,
            view,
            upstream,
            serial,
        }
    }

    fn name(name: &str) -> Option<Name> {
        Name::from_ascii(format!("{}.", name.trim_end_matches('.'))).ok()
    }

    /// The zone's SOA record (for SOA answers and negative answers' authority section).
    fn soa(&self) -> Option<Record> {
        let domain = self.zone.domain();
        let rdata = SOA::new(
            Self::name(&format!("ns.dns.{domain}"))?,
            Self::name(&format!("hostmaster.{domain}"))?,
            self.serial,
            7200,
            1800,
            86400,
            TTL,
        );
        Some(Record::from_rdata(
            Self::name(domain)?,
            TTL,
            RData::SOA(rdata),
        ))
    }

    fn record(&self, rr: &Rr) -> Option<Record> {
        let rdata = match &rr.data {
            Data::A(ip) => RData::A(A(*ip)),
            Data::Cname(target) => RData::CNAME(CNAME(Self::name(target)?)),
            Data::Srv {
                priority,
                weight,
                port,
                target,
            } => RData::SRV(SRV::new(*priority, *weight, *port, Self::name(target)?)),
            Data::Soa => return self.soa(),
        };
        Some(Record::from_rdata(Self::name(&rr.name)?, TTL, rdata))
    }

    fn records(&self, rrs: &[Rr]) -> Vec<Record> {
        rrs.iter().filter_map(|rr| self.record(rr)).collect()
    }
}

/// The response's EDNS, when the request had one.
fn response_edns(request: &Request) -> Option<Edns> {
    let asked = request.edns()?;
    let mut edns = Edns::new();
    edns.set_max_payload(asked.max_payload().clamp(512, MAX_UDP_PAYLOAD))
        .set_version(0);
    Some(edns)
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = response_edns(request) {
            builder.edns(edns);
        }
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(matches!(self.upstream, Upstream::Forward(_)));
        let info = match request.request_info() {
            Ok(info)
                if request.message_type() == MessageType::Query
                    && request.op_code() == OpCode::Query =>
            {
                info
            }
            Ok(_) => {
                let msg = builder.error_msg(request.header(), ResponseCode::NotImp);
                return send(&mut response, msg, header).await;
            }
            Err(_) => {
                let msg = builder.error_msg(request.header(), ResponseCode::FormErr);
                return send(&mut response, msg, header).await;
            }
        };
        let query = info.query.original().clone();
        let qname = query.name().to_ascii();
        let qtype = query.query_type();
        let in_class = matches!(query.query_class(), DNSClass::IN | DNSClass::ANY);
        let resolution = if !in_class {
            Resolution::Outside
        } else if !self.view.ready() && self.zone.contains(&qname) {
            // Not synced yet: a temporary failure, not an answer to cache.
            header.set_response_code(ResponseCode::ServFail);
            return send(&mut response, builder.build_no_records(header), header).await;
        } else {
            self.zone.resolve(self.view.as_ref(), &qname, qtype)
        };
        debug!(name = %qname, %qtype, ?resolution, "query");
        let soa: Vec<Record> = self.soa().into_iter().collect();
        match resolution {
            Resolution::Answer {
                answers,
                additionals,
            } => {
                header.set_authoritative(true);
                let (answers, additionals) = (self.records(&answers), self.records(&additionals));
                let msg = builder.build(header, answers.iter(), [], [], additionals.iter());
                send(&mut response, msg, header).await
            }
            Resolution::NoData | Resolution::NxDomain => {
                header.set_authoritative(true);
                if resolution == Resolution::NxDomain {
                    header.set_response_code(ResponseCode::NXDomain);
                }
                let msg = builder.build(header, [], [], soa.iter(), []);
                send(&mut response, msg, header).await
            }
            Resolution::Outside => match &self.upstream {
                Upstream::Forward(servers) if in_class => match forward(servers, &query).await {
                    Ok(reply) => {
                        header.set_response_code(reply.response_code());
                        let msg = builder.build(
                            header,
                            reply.answers().iter(),
                            reply.name_servers().iter(),
                            [],
                            reply.additionals().iter(),
                        );
                        send(&mut response, msg, header).await
                    }
                    Err(e) => {
                        warn!(name = %qname, error = %e, "forwarding failed");
                        header.set_response_code(ResponseCode::ServFail);
                        send(&mut response, builder.build_no_records(header), header).await
                    }
                },
                Upstream::Forward(_) => {
                    header.set_response_code(ResponseCode::Refused);
                    send(&mut response, builder.build_no_records(header), header).await
                }
                Upstream::None => {
                    header.set_response_code(ResponseCode::NXDomain);
                    send(&mut response, builder.build_no_records(header), header).await
                }
            },
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    msg: hickory_server::authority::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    header: Header,
) -> ResponseInfo {
    match response.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            warn!(error = %e, "cannot send a DNS response");
            let mut failed = header;
            failed.set_response_code(ResponseCode::ServFail);
            failed.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{PortRecord, ServiceKind, ServiceRecord, StaticView};
    use crate::upstream::{Transport, ask};
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::RecordType;
    use std::net::SocketAddr;

    /// A server on a loopback port answering from a one-Service view (`default/web`,
    /// 10.96.0.50, port http 80/TCP).
    async fn serve(upstream: Upstream) -> (hickory_server::ServerFuture<Handler>, SocketAddr) {
        let view = StaticView::default().with(
            "default",
            "web",
            ServiceRecord {
                kind: ServiceKind::ClusterIp(vec!["10.96.0.50".parse().unwrap()]),
                ports: vec![PortRecord {
                    name: "http".into(),
                    protocol: "tcp".into(),
                    port: 80,
                }],
                endpoints: vec![],
            },
        );
        let handler = Handler::new(Zone::new("cluster.local"), Arc::new(view), upstream, 42);
        let sockets = crate::serve::Sockets::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = sockets.addr();
        let (udp, tcp) = sockets.into_parts();
        let mut server = hickory_server::ServerFuture::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, std::time::Duration::from_secs(5));
        (server, addr)
    }

    async fn query(addr: SocketAddr, name: &str, t: RecordType, tr: Transport) -> Message {
        let q = Query::query(Name::from_ascii(name).unwrap(), t);
        ask(addr, &q, tr).await.unwrap()
    }

    fn summary(m: &Message) -> (ResponseCode, bool, Vec<String>, Vec<RecordType>) {
        (
            m.response_code(),
            m.authoritative(),
            m.answers().iter().map(|r| r.data().to_string()).collect(),
            m.name_servers().iter().map(|r| r.record_type()).collect(),
        )
    }

    #[tokio::test]
    async fn answers_over_udp_and_tcp() {
        let (_server, addr) = serve(Upstream::None).await;
        use RecordType::{A, AAAA, SRV};
        let cases = [
            (
                "web.default.svc.cluster.local.",
                A,
                ResponseCode::NoError,
                true,
                vec!["10.96.0.50"],
                vec![],
            ),
            (
                "_http._tcp.web.default.svc.cluster.local.",
                SRV,
                ResponseCode::NoError,
                true,
                vec!["0 100 80 web.default.svc.cluster.local."],
                vec![],
            ),
            (
                "web.default.svc.cluster.local.",
                AAAA,
                ResponseCode::NoError,
                true,
                vec![],
                vec![RecordType::SOA],
            ),
            (
                "nope.default.svc.cluster.local.",
                A,
                ResponseCode::NXDomain,
                true,
                vec![],
                vec![RecordType::SOA],
            ),
            (
                "example.com.",
                A,
                ResponseCode::NXDomain,
                false,
                vec![],
                vec![],
            ),
        ];
        for transport in [Transport::Udp, Transport::Tcp] {
            for (name, t, code, aa, answers, authority) in &cases {
                let reply = query(addr, name, *t, transport).await;
                let answers: Vec<String> = answers.iter().map(|s| s.to_string()).collect();
                assert_eq!(
                    summary(&reply),
                    (*code, *aa, answers, authority.clone()),
                    "{name} {t} over {transport:?}"
                );
            }
        }
        // The SRV target's address comes along.
        let reply = query(
            addr,
            "_http._tcp.web.default.svc.cluster.local.",
            SRV,
            Transport::Udp,
        )
        .await;
        assert_eq!(reply.additionals()[0].data().to_string(), "10.96.0.50");
    }

    /// A view whose caches have not synced yet.
    struct Unsynced;

    impl ClusterView for Unsynced {
        fn service(&self, _: &str, _: &str) -> Option<ServiceRecord> {
            None
        }
        fn has_services_in(&self, _: &str) -> bool {
            false
        }
        fn ready(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn cluster_names_fail_temporarily_until_synced() {
        let handler = Handler::new(
            Zone::new("cluster.local"),
            Arc::new(Unsynced),
            Upstream::None,
            1,
        );
        let sockets = crate::serve::Sockets::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = sockets.addr();
        let (udp, _tcp) = sockets.into_parts();
        let mut server = hickory_server::ServerFuture::new(handler);
        server.register_socket(udp);
        let cases = [
            ("web.default.svc.cluster.local.", ResponseCode::ServFail),
            ("cluster.local.", ResponseCode::ServFail),
            ("example.com.", ResponseCode::NXDomain),
        ];
        for (name, code) in cases {
            let reply = query(addr, name, RecordType::A, Transport::Udp).await;
            assert_eq!(reply.response_code(), code, "{name}");
        }
    }

    #[tokio::test]
    async fn outside_names_go_upstream() {
        // The upstream is another instance of this server: its cluster names are "outside"
        // for a server with another domain.
        let (_upstream, upstream_addr) = serve(Upstream::None).await;
        let view = StaticView::default();
        let handler = Handler::new(
            Zone::new("other.test"),
            Arc::new(view),
            Upstream::Forward(vec![upstream_addr]),
            1,
        );
        let sockets = crate::serve::Sockets::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = sockets.addr();
        let (udp, _tcp) = sockets.into_parts();
        let mut server = hickory_server::ServerFuture::new(handler);
        server.register_socket(udp);
        let reply = query(
            addr,
            "web.default.svc.cluster.local.",
            RecordType::A,
            Transport::Udp,
        )
        .await;
        assert_eq!(
            summary(&reply),
            (
                ResponseCode::NoError,
                false,
                vec!["10.96.0.50".to_string()],
                vec![]
            )
        );
        assert!(reply.recursion_available());
        let reply = query(
            addr,
            "nope.default.svc.cluster.local.",
            RecordType::A,
            Transport::Udp,
        )
        .await;
        assert_eq!(reply.response_code(), ResponseCode::NXDomain);
        assert_eq!(reply.name_servers()[0].record_type(), RecordType::SOA);
    }
}
