//! DNS probe: ask each configured server, over UDP and over TCP, for the
//! names the platform needs and for a public name it must not resolve.
//!
//! Built on hickory-proto's message codec with our own transport, because a
//! resolver library hides what we must report (response codes, flags, which
//! server answered, truncation).
//!
//! Guarantees:
//! - each query has one deadline; a server that does not answer is reported
//!   once (`net:timeout`) and not asked again in this run, so a blackholed
//!   server costs one deadline, not one per name;
//! - UDP is judged only by a reply or an ICMP unreachable (`net:refused`),
//!   never by a send that merely succeeded;
//! - a reply is used only if its id, question and QR bit match the query;
//!   a truncated UDP reply is retried over TCP;
//! - every address in an answer is checked against `allowed_networks`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::net::{transport_name, NetError, ProbeContext};
use crate::config::{ExpectedName, Transport};
use crate::finding::{Code, Finding, Status};

/// A parsed reply and how it was obtained.
#[derive(Debug, Clone)]
pub struct Reply {
    pub rcode: ResponseCode,
    pub flags: Vec<&'static str>,
    pub addrs: Vec<IpAddr>,
    /// CNAME targets followed by the server, in order.
    pub cnames: Vec<String>,
    pub latency: Duration,
    /// The UDP reply was truncated and the answer came over TCP.
    pub retried_over_tcp: bool,
}

/// Why a reply could not be used.
#[derive(Debug, Clone)]
pub enum QueryError {
    Net(NetError),
    Bad(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Net(e) => f.write_str(&e.describe()),
            QueryError::Bad(m) => f.write_str(m),
        }
    }
}

/// Encodes a query for `name`/`rtype` with a fresh id.
pub fn encode_query(name: &str, rtype: RecordType) -> Result<(u16, Vec<u8>), String> {
    let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| format!("`{name}` is not a DNS name: {e}"))?;
    let id = super::net::random_u64() as u16;
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(fqdn, rtype));
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    Ok((id, bytes))
}

/// Decodes and checks a reply to the query `id` for `name`/`rtype`.
pub fn decode_reply(
    bytes: &[u8],
    id: u16,
    name: &str,
    rtype: RecordType,
) -> Result<Message, String> {
    let msg = Message::from_vec(bytes).map_err(|e| format!("malformed reply: {e}"))?;
    if msg.metadata.message_type != MessageType::Response {
        return Err("the reply is not a response (QR bit clear)".into());
    }
    if msg.metadata.id != id {
        return Err(format!(
            "reply id {} does not match query id {id}",
            msg.metadata.id
        ));
    }
    let want = name.trim_end_matches('.').to_ascii_lowercase();
    let matches = msg.queries.iter().any(|q| {
        q.query_type() == rtype
            && q.name()
                .to_ascii()
                .trim_end_matches('.')
                .eq_ignore_ascii_case(&want)
    });
    // Servers may drop the question from an error reply (unbound does for
    // REFUSED); a question that is present must be ours.
    if !matches && !msg.queries.is_empty() {
        return Err("the reply answers a different question".into());
    }
    Ok(msg)
}

/// The mnemonic of a response code (`SERVFAIL`, not "Server Failure").
pub fn rcode_name(r: ResponseCode) -> String {
    match r {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

pub(crate) fn summarise(msg: &Message, latency: Duration, retried_over_tcp: bool) -> Reply {
    let mut flags = Vec::new();
    let h = &msg.metadata;
    if h.authoritative {
        flags.push("aa");
    }
    if h.truncation {
        flags.push("tc");
    }
    if h.recursion_desired {
        flags.push("rd");
    }
    if h.recursion_available {
        flags.push("ra");
    }
    let mut addrs = Vec::new();
    let mut cnames = Vec::new();
    for r in &msg.answers {
        match &r.data {
            RData::A(a) => addrs.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
            RData::CNAME(c) => cnames.push(c.0.to_ascii().trim_end_matches('.').to_string()),
            _ => {}
        }
    }
    Reply {
        rcode: h.response_code,
        flags,
        addrs,
        cnames,
        latency,
        retried_over_tcp,
    }
}

/// First wait for a UDP reply before the query is sent again; each later
/// wait doubles. A datagram lost on the way, or an ICMP port unreachable
/// the destination's rate limit swallowed (Linux sends about one a second
/// per peer once its burst is spent), must not read as a dead server, as
/// stub resolvers know: they resend too.
const UDP_RESEND_FIRST: Duration = Duration::from_millis(250);

/// Sends `query` over UDP, resending the same bytes (same id) with a
/// doubling wait, and returns the first datagram that comes back within
/// `timeout` in all.
async fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, NetError> {
    let sock = super::net::udp_connected(server).await?;
    let until = Instant::now() + timeout;
    let mut wait = UDP_RESEND_FIRST;
    let mut buf = vec![0u8; 4096];
    loop {
        sock.send(query).await.map_err(|e| NetError::from_io(&e))?;
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait.min(left), sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Ok(Err(e)) => return Err(NetError::from_io(&e)),
            Err(_) if Instant::now() >= until => return Err(NetError::Timeout(timeout)),
            Err(_) => wait *= 2,
        }
    }
}

async fn tcp_exchange(
    server: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, NetError> {
    let started = Instant::now();
    let mut s = match tokio::time::timeout(timeout, TcpStream::connect(server)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(NetError::from_connect(&e)),
        Err(_) => return Err(NetError::Timeout(timeout)),
    };
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    let io = async {
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(query);
        s.write_all(&framed).await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(left, io).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(NetError::from_io(&e)),
        Err(_) => Err(NetError::NoReply(timeout)),
    }
}

/// One query over one transport; a truncated UDP reply is retried over TCP.
pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    transport: Transport,
    timeout: Duration,
) -> Result<Reply, QueryError> {
    let (id, bytes) = encode_query(name, rtype).map_err(QueryError::Bad)?;
    let started = Instant::now();
    let raw = match transport {
        Transport::Udp => udp_exchange(server, &bytes, timeout).await,
        Transport::Tcp => tcp_exchange(server, &bytes, timeout).await,
    }
    .map_err(QueryError::Net)?;
    let msg = decode_reply(&raw, id, name, rtype).map_err(QueryError::Bad)?;
    if msg.metadata.truncation {
        if transport == Transport::Tcp {
            return Err(QueryError::Bad("the TCP reply is truncated".into()));
        }
        let (id, bytes) = encode_query(name, rtype).map_err(QueryError::Bad)?;
        let raw = tcp_exchange(server, &bytes, timeout).await.map_err(|e| {
            QueryError::Bad(format!(
                "truncated over UDP, and the TCP retry failed: {}",
                e.describe()
            ))
        })?;
        let msg = decode_reply(&raw, id, name, rtype).map_err(QueryError::Bad)?;
        return Ok(summarise(&msg, started.elapsed(), true));
    }
    Ok(summarise(&msg, started.elapsed(), false))
}

/// A and then AAAA addresses of `name` from one server (for the resolver).
pub async fn lookup_addresses(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, String> {
    let a = query(server, name, RecordType::A, Transport::Udp, timeout)
        .await
        .map_err(|e| e.to_string())?;
    match a.rcode {
        ResponseCode::NoError => {}
        other => return Err(rcode_name(other)),
    }
    if !a.addrs.is_empty() {
        return Ok(a.addrs);
    }
    let aaaa = query(server, name, RecordType::AAAA, Transport::Udp, timeout)
        .await
        .map_err(|e| e.to_string())?;
    Ok(aaaa.addrs)
}

fn reply_evidence(f: Finding, r: &Reply, transport: Transport) -> Finding {
    let mut f = f
        .evidence("transport", transport_name(transport))
        .evidence("rcode", rcode_name(r.rcode))
        .evidence("flags", r.flags.clone())
        .evidence(
            "answers",
            r.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
        .evidence("latency_ms", r.latency.as_secs_f64() * 1000.0);
    if !r.cnames.is_empty() {
        f = f.evidence("cname_chain", r.cnames.clone());
    }
    if r.retried_over_tcp {
        f = f.evidence("retried_over_tcp", true);
    }
    f.duration_ms(r.latency.as_millis() as u64)
}

/// All checks against one server over one transport.
pub async fn probe(ctx: &ProbeContext, server: SocketAddr, transport: Transport) -> Vec<Finding> {
    let plan = &ctx.plan;
    let timeout = plan.deadlines.io.max(plan.deadlines.connect);
    let tname = transport_name(transport);
    let mut out = Vec::new();
    for e in &plan.dns.expect {
        let target = format!("{server}/{tname} {}", e.name);
        match check_expected(ctx, server, transport, e, timeout, &target).await {
            Ok(f) => out.extend(f),
            Err(stop) => {
                // The server itself is unreachable: one finding, no more queries.
                out.push(stop);
                return out;
            }
        }
    }
    for name in &plan.dns.public_names {
        let target = format!("{server}/{tname} {name}");
        match query(server, name, RecordType::A, transport, timeout).await {
            Err(QueryError::Net(e)) => {
                out.push(e.finding(format!("{server}/{tname}"), "DNS server"));
                return out;
            }
            Err(QueryError::Bad(m)) => out.push(
                Finding::new(Code::DnsBadReply, target, format!("public name {name}: {m}"))
                    .evidence("transport", tname),
            ),
            Ok(r) if r.rcode == ResponseCode::NoError && !r.addrs.is_empty() => {
                let mut f = Finding::new(
                    Code::DnsRecursionLeak,
                    target,
                    format!(
                        "the server resolved the public name {name} to {}: it reaches a resolver outside the perimeter",
                        join(&r.addrs)
                    ),
                );
                if plan.strict_airgap {
                    f = f.with_status(Status::Fail).evidence("strict_airgap", true);
                }
                out.push(reply_evidence(f, &r, transport));
            }
            Ok(r) => out.push(reply_evidence(
                Finding::new(
                    Code::DnsNoRecursion,
                    target,
                    format!("the public name {name} was not resolved ({}), as expected of an air-gapped resolver", rcode_name(r.rcode)),
                ),
                &r,
                transport,
            )),
        }
    }
    out
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one expected name. `Err` carries the finding that ends the probe
/// of this server (it does not answer at all).
async fn check_expected(
    ctx: &ProbeContext,
    server: SocketAddr,
    transport: Transport,
    e: &ExpectedName,
    timeout: Duration,
    target: &str,
) -> Result<Vec<Finding>, Finding> {
    let tname = transport_name(transport);
    let want_v6 = e.addresses.iter().any(|a| a.is_ipv6());
    let want_v4 = e.addresses.is_empty() || e.addresses.iter().any(|a| a.is_ipv4());
    let mut types = Vec::new();
    if want_v4 {
        types.push(RecordType::A);
    }
    if want_v6 {
        types.push(RecordType::AAAA);
    }
    let mut got: Option<Reply> = None;
    for t in types {
        match query(server, &e.name, t, transport, timeout).await {
            Err(QueryError::Net(err)) => {
                return Err(err.finding(format!("{server}/{tname}"), "DNS server"));
            }
            Err(QueryError::Bad(m)) => {
                return Ok(vec![Finding::new(
                    Code::DnsBadReply,
                    target,
                    format!("{}: {m}", e.name),
                )
                .evidence("transport", tname)]);
            }
            Ok(r) => {
                got = Some(match got {
                    None => r,
                    Some(mut prev) => {
                        if prev.rcode == ResponseCode::NoError {
                            prev.addrs.extend(r.addrs);
                            prev.latency += r.latency;
                            prev
                        } else {
                            r
                        }
                    }
                });
            }
        }
    }
    let Some(r) = got else { return Ok(Vec::new()) };
    let f = match r.rcode {
        ResponseCode::NoError if r.addrs.is_empty() => Finding::new(
            Code::DnsNoAnswer,
            target,
            format!("{} has no address record (NOERROR, empty answer)", e.name),
        ),
        ResponseCode::NoError => {
            let outside: Vec<IpAddr> = r
                .addrs
                .iter()
                .copied()
                .filter(|a| !ctx.plan.allows(*a))
                .collect();
            let got: BTreeSet<IpAddr> = r.addrs.iter().copied().collect();
            let want: BTreeSet<IpAddr> = e.addresses.iter().copied().collect();
            if !outside.is_empty() {
                Finding::new(
                    Code::DnsOutsidePerimeter,
                    target,
                    format!(
                        "{} resolves to {}, outside allowed_networks",
                        e.name,
                        join(&outside)
                    ),
                )
                .evidence(
                    "outside",
                    outside.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                )
            } else if let Some((ip, (net, label))) = r
                .addrs
                .iter()
                .find_map(|a| crate::config::cluster_network_of(*a).map(|c| (*a, c)))
            {
                Finding::new(
                    Code::DnsClusterNetworkOverlap,
                    target,
                    format!(
                        "{} resolves to {ip}, in the cluster's {label} {net}: from a node it leads into the cluster",
                        e.name
                    ),
                )
                .evidence("address", ip.to_string())
                .evidence("cluster_network", net)
            } else if !want.is_empty() && got != want {
                Finding::new(
                    Code::DnsWrongAddress,
                    target,
                    format!(
                        "{} resolves to {}, expected {}",
                        e.name,
                        join(&r.addrs),
                        join(&e.addresses)
                    ),
                )
                .evidence(
                    "expected",
                    e.addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>(),
                )
            } else {
                Finding::new(
                    Code::DnsAnswer,
                    target,
                    format!("{} resolves to {}", e.name, join(&r.addrs)),
                )
            }
        }
        ResponseCode::NXDomain => Finding::new(
            Code::DnsNoAnswer,
            target,
            format!("{} does not exist on this server (NXDOMAIN)", e.name),
        ),
        other => Finding::new(
            Code::DnsServerError,
            target,
            format!("the server answered {} for {}", rcode_name(other), e.name),
        ),
    };
    Ok(vec![reply_evidence(f, &r, transport)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_must_match_query() {
        let (id, q) = encode_query("a.example", RecordType::A).unwrap();
        let mut m = Message::from_vec(&q).unwrap();
        m.metadata.message_type = MessageType::Response;
        let ok = m.to_vec().unwrap();
        assert!(decode_reply(&ok, id, "a.example", RecordType::A).is_ok());
        assert!(
            decode_reply(&ok, id.wrapping_add(1), "a.example", RecordType::A)
                .unwrap_err()
                .contains("does not match")
        );
        assert!(decode_reply(&ok, id, "b.example", RecordType::A)
            .unwrap_err()
            .contains("different question"));
        assert!(decode_reply(&q, id, "a.example", RecordType::A)
            .unwrap_err()
            .contains("QR bit"));
        assert!(decode_reply(&ok[..5], id, "a.example", RecordType::A).is_err());
    }
}
