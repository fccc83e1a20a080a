//! DNS queries on the wire, for the DNS probe and for name resolution
//! alike: hickory-proto's message codec with our own transport, because a
//! resolver library hides what we must report (response codes, flags, which
//! server answered, truncation).
//!
//! Guarantees: each exchange has one deadline; a reply is used only if its
//! id, question and QR bit match the query; a truncated UDP reply is
//! retried over TCP; UDP is judged only by a reply or an ICMP unreachable.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::net::NetError;
use crate::config::Transport;

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
