//! The load balancer's behaviour, seen from a client (`flows --role
//! client`).
//!
//! Guarantees:
//! - before installation (responders on the workers): several connections
//!   per port reach the backends through the load balancer, and the PROXY
//!   header each backend saw (none, v1, v2) is compared with the profile
//!   (`lb:proxy-ok`, `lb:proxy-mismatch`);
//! - once the platform answers (no responder there): port 80 must redirect
//!   to HTTPS on the same host (`lb:redirect-ok`, `lb:no-redirect`), 443
//!   must complete TLS with the perimeter's CA (`tls:*`), 10514 must take
//!   one RFC 5424 line over TLS (`lb:syslog-ok`), 11514 must answer the RELP
//!   `open` command with `rsp 200` (`lb:relp-ok`), else `lb:ingest-failed`;
//! - every read is bounded in bytes and by the flow deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::challenge::{self, Answer};
use super::context::ProbeContext;
use crate::config::FlowsPlan;
use crate::finding::{Code, Finding};
use crate::profiles::{Profile, ProxyExpect, Role, ServiceCheck};

/// One port of the load balancer to examine.
#[derive(Debug, Clone)]
pub struct LbCheck {
    pub flow_id: String,
    /// The profile's port (what the expectation is about).
    pub port: u16,
    /// Where to connect (the port may be published as another one).
    pub addr: SocketAddr,
    /// The name for Host headers and TLS.
    pub host: String,
    pub check: Option<ServiceCheck>,
    /// Connections to make, to reach every backend.
    pub tries: usize,
}

/// The load balancer's ports from the client's flows.
pub async fn plan(ctx: &ProbeContext, fp: &FlowsPlan, profile: &Profile) -> Vec<LbCheck> {
    let Some(lb) = &fp.load_balancer else {
        return Vec::new();
    };
    let Ok(t) = crate::config::Target::parse(lb, 443) else {
        return Vec::new();
    };
    let Ok(r) = ctx.resolver.resolve_inside(&t.host).await else {
        return Vec::new(); // the generic flow checks report the name
    };
    let Some(&ip) = r.addrs.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in &profile.flows {
        if f.to != Role::Lb || !f.from.contains(&Role::Client) {
            continue;
        }
        for &port in &f.ports {
            let published = fp.lb_ports.get(&port).copied().unwrap_or(port);
            out.push(LbCheck {
                flow_id: f.id.clone(),
                port,
                addr: SocketAddr::new(ip, published),
                host: t.host.clone(),
                check: f.check,
                // Three rounds of the workers: a round-robin balancer
                // reaches each at least once even when a connection is
                // lost, so a backend without an answer is worth a look.
                tries: (fp.workers.len() * 3).clamp(4, 24),
            });
        }
    }
    out
}

type Skews = Vec<(String, (i128, Duration))>;

pub async fn run(
    ctx: &Arc<ProbeContext>,
    checks: Vec<LbCheck>,
    profile: &Profile,
    deadline: Duration,
) -> (Vec<Finding>, Skews) {
    let mut set = tokio::task::JoinSet::new();
    for c in checks {
        let ctx = ctx.clone();
        let expect = profile.proxy_expectation(c.port);
        let backend_flow = profile.backend_flow(c.port).map(|f| f.id.clone());
        let profile_name = profile.name.clone();
        set.spawn(async move {
            let (mut found, skews) =
                tokio::time::timeout(deadline, examine(&ctx, &c, expect, &profile_name, deadline))
                    .await
                    .unwrap_or_default();
            // Which of the load balancer's own flows an answer proves (the
            // flow matrix's load balancer -> backend cells).
            if let Some(id) = backend_flow {
                found = found
                    .into_iter()
                    .map(|f| match f.code {
                        Code::LbProxyOk | Code::LbProxyMismatch => {
                            f.evidence("backend_flow", id.clone())
                        }
                        _ => f,
                    })
                    .collect();
            }
            (found, skews)
        });
    }
    let mut findings = Vec::new();
    let mut skews = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok((f, s)) = r {
            findings.extend(f);
            skews.extend(s);
        }
    }
    findings.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
    (findings, skews)
}

async fn examine(
    ctx: &ProbeContext,
    c: &LbCheck,
    expect: Option<ProxyExpect>,
    profile: &str,
    deadline: Duration,
) -> (Vec<Finding>, Skews) {
    // The challenges run for part of the deadline so that the service
    // check still fits when nothing answers them.
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..c.tries {
        let addr = c.addr;
        tries.spawn(async move {
            tokio::time::timeout(deadline / 3, challenge_once(addr))
                .await
                .ok()
                .flatten()
        });
    }
    let mut answers: Vec<(Answer, i128, Duration)> = Vec::new();
    while let Some(r) = tries.join_next().await {
        if let Ok(Some(a)) = r {
            answers.push(a);
        }
    }
    let target = format!("tcp {} ({} via the load balancer)", c.addr, c.flow_id);
    if !answers.is_empty() {
        let skews = answers
            .iter()
            .map(|(a, s, e)| (a.host.clone(), (*s, *e)))
            .collect();
        return (
            vec![proxy_finding(&target, c.port, &answers, expect, profile)],
            skews,
        );
    }
    let left = deadline - deadline / 3;
    let f = match c.check {
        None => Vec::new(),
        Some(ServiceCheck::HttpRedirect) => vec![redirect(c, &target, left).await],
        Some(ServiceCheck::Tls) => tls(ctx, c, &target, left).await,
        Some(ServiceCheck::SyslogTls) => syslog_tls(ctx, c, &target, left).await,
        Some(ServiceCheck::Relp) => vec![relp(c, &target, left).await],
    };
    (f, Vec::new())
}

async fn challenge_once(addr: SocketAddr) -> Option<(Answer, i128, Duration)> {
    let nonce = format!("{:016x}", super::net::random_u64());
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let sent = challenge::now_ns();
    s.write_all(challenge::challenge_line(&nonce).as_bytes())
        .await
        .ok()?;
    let line = read_line(&mut s, challenge::MAX_LINE).await?;
    let received = challenge::now_ns();
    let a = challenge::parse_answer(&line).ok()?;
    if a.nonce != nonce {
        return None;
    }
    let (skew, err) = challenge::skew(sent, received, a.time_ns);
    Some((a, skew, err))
}

async fn read_line<S: AsyncRead + Unpin>(s: &mut S, max: usize) -> Option<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 256];
    while !buf.contains(&b'\n') {
        if buf.len() > max {
            return None;
        }
        let n = s.read(&mut b).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&b[..n]);
    }
    let end = buf.iter().position(|&c| c == b'\n').unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

fn proxy_finding(
    target: &str,
    port: u16,
    answers: &[(Answer, i128, Duration)],
    expect: Option<ProxyExpect>,
    profile: &str,
) -> Finding {
    let mut backends: Vec<String> = answers.iter().map(|(a, _, _)| a.host.clone()).collect();
    backends.sort();
    backends.dedup();
    let seen: Vec<String> = answers
        .iter()
        .map(|(a, _, _)| format!("{}: {}", a.host, a.proxy))
        .collect();
    let want = match expect {
        Some(ProxyExpect::V1) => Some("v1"),
        Some(ProxyExpect::V2) => Some("v2"),
        Some(ProxyExpect::None) => Some("none"),
        Some(ProxyExpect::Any) | None => None,
    };
    let wrong: Vec<&(Answer, i128, Duration)> = answers
        .iter()
        .filter(|(a, _, _)| want.is_some_and(|w| a.proxy != w))
        .collect();
    let describe = |k: &str| match k {
        "none" => "no PROXY header".to_string(),
        k => format!("a PROXY {k} header"),
    };
    let f = if wrong.is_empty() {
        Finding::new(
            Code::LbProxyOk,
            target,
            format!(
                "port {port} reaches {} through the load balancer, with {}{}",
                backends.join(", "),
                describe(&answers[0].0.proxy),
                match want {
                    Some(_) => format!(", as {profile} expects"),
                    None => format!(" ({profile} accepts either)"),
                }
            ),
        )
    } else {
        let (a, _, _) = wrong[0];
        Finding::new(
            Code::LbProxyMismatch,
            target,
            format!(
                "backend {} received {} on port {port}; {profile} expects {}",
                a.host,
                describe(&a.proxy),
                describe(want.unwrap_or("none"))
            ),
        )
    };
    f.evidence("backends", backends)
        .evidence("seen", seen)
        .evidence("expected", want.unwrap_or("any"))
        .evidence("port", port)
}

/// HTTP on 80: a redirect to `https://` on the same host.
async fn redirect(c: &LbCheck, target: &str, deadline: Duration) -> Finding {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(c.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let req = format!(
            "GET /airgap-verify HTTP/1.1\r\nHost: {}\r\nUser-Agent: airgap-verify\r\nConnection: close\r\n\r\n",
            c.host
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
            let n = s.read(&mut b).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&b[..n]);
        }
        Ok::<String, String>(String::from_utf8_lossy(&head).into_owned())
    };
    let head = match tokio::time::timeout(deadline, work).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            return Finding::new(Code::LbNoRedirect, target, format!("HTTP on port 80: {e}"))
        }
        Err(_) => {
            return Finding::new(
                Code::LbNoRedirect,
                target,
                "HTTP on port 80: no reply by the deadline",
            )
        }
    };
    let status_line = head.lines().next().unwrap_or("").to_string();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let same_host = reqwest::Url::parse(&location)
        .ok()
        .filter(|u| u.scheme() == "https")
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .is_some_and(|h| h.eq_ignore_ascii_case(&c.host));
    let f = if matches!(status, 301 | 302 | 303 | 307 | 308) && same_host {
        Finding::new(
            Code::LbRedirectOk,
            target,
            format!("HTTP answers {status} to {location}"),
        )
    } else {
        Finding::new(
            Code::LbNoRedirect,
            target,
            if status == 0 {
                "HTTP on port 80 did not answer as HTTP".to_string()
            } else if location.is_empty() {
                format!("HTTP answers `{status_line}` without a redirect to HTTPS")
            } else {
                format!("HTTP redirects to {location}, not to https://{} ", c.host)
            },
        )
    };
    f.evidence("status", status as u64)
        .evidence("location", location)
}

async fn tls(ctx: &ProbeContext, c: &LbCheck, target: &str, deadline: Duration) -> Vec<Finding> {
    match tokio::time::timeout(deadline, tokio::net::TcpStream::connect(c.addr)).await {
        Ok(Ok(s)) => match ctx.tls.handshake(s, &c.host, target, deadline).await {
            Ok((_, f)) => f,
            Err(f) => f,
        },
        Ok(Err(e)) => vec![super::net::NetError::from_connect(&e).finding(target, "TLS on 443")],
        Err(_) => vec![super::net::NetError::Timeout(deadline).finding(target, "TLS on 443")],
    }
}

/// One RFC 5424 line, octet-counted (RFC 5425), over TLS.
async fn syslog_tls(
    ctx: &ProbeContext,
    c: &LbCheck,
    target: &str,
    deadline: Duration,
) -> Vec<Finding> {
    let s = match tokio::time::timeout(deadline, tokio::net::TcpStream::connect(c.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return vec![Finding::new(
                Code::LbIngestFailed,
                target,
                format!(
                    "syslog over TLS: {}",
                    super::net::NetError::from_connect(&e).describe()
                ),
            )]
        }
        Err(_) => {
            return vec![Finding::new(
                Code::LbIngestFailed,
                target,
                "syslog over TLS: no answer to the connect",
            )]
        }
    };
    let (mut tls, mut out) = match ctx.tls.handshake(s, &c.host, target, deadline).await {
        Ok(r) => r,
        Err(f) => return f,
    };
    let id = super::net::probe_id();
    let msg = syslog_line(&id);
    let framed = format!("{} {msg}", msg.len());
    let sent = async {
        tls.write_all(framed.as_bytes()).await?;
        tls.flush().await?;
        tls.shutdown().await
    };
    out.push(match tokio::time::timeout(deadline, sent).await {
        Ok(Ok(())) => Finding::new(
            Code::LbSyslogOk,
            target,
            format!("syslog over TLS accepted one RFC 5424 line (MSGID airgap-verify, id {id})"),
        )
        .evidence("message_id", id),
        Ok(Err(e)) => Finding::new(
            Code::LbIngestFailed,
            target,
            format!("syslog over TLS: sending the test line failed: {e}"),
        ),
        Err(_) => Finding::new(
            Code::LbIngestFailed,
            target,
            "syslog over TLS: the test line could not be sent by the deadline",
        ),
    });
    out
}

fn syslog_line(id: &str) -> String {
    // <14> = facility user, severity info.
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "airgap-verify".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    format!(
        "<14>1 {} {host} airgap-verify - airgap-verify - airgap-verify flow test {id}",
        crate::timefmt::rfc3339_now()
    )
}

/// RELP: `open`, then one `syslog`, then `close`; each must be answered
/// `rsp 200`.
async fn relp(c: &LbCheck, target: &str, deadline: Duration) -> Finding {
    let id = super::net::probe_id();
    let work = async {
        let mut s = tokio::net::TcpStream::connect(c.addr)
            .await
            .map_err(|e| super::net::NetError::from_connect(&e).describe())?;
        let offers = "relp_version=0\nrelp_software=airgap-verify\ncommands=syslog";
        relp_command(&mut s, 1, "open", offers).await?;
        relp_command(&mut s, 2, "syslog", &syslog_line(&id)).await?;
        relp_command(&mut s, 3, "close", "").await?;
        Ok::<(), String>(())
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok(())) => Finding::new(
            Code::LbRelpOk,
            target,
            format!("RELP answered `open` and `syslog` with 200 (test line id {id})"),
        )
        .evidence("message_id", id),
        Ok(Err(e)) => Finding::new(Code::LbIngestFailed, target, format!("RELP: {e}")),
        Err(_) => Finding::new(
            Code::LbIngestFailed,
            target,
            "RELP: no complete answer by the deadline",
        ),
    }
}

/// Sends one RELP frame (`TXNR SP COMMAND SP DATALEN [SP DATA] LF`) and
/// reads its `rsp`, which must start with 200.
async fn relp_command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    txnr: u32,
    command: &str,
    data: &str,
) -> Result<(), String> {
    let frame = if data.is_empty() {
        format!("{txnr} {command} 0\n")
    } else {
        format!("{txnr} {command} {} {data}\n", data.len())
    };
    s.write_all(frame.as_bytes())
        .await
        .map_err(|e| format!("sending `{command}`: {e}"))?;
    // The answer: TXNR SP "rsp" SP DATALEN SP DATA LF, DATA = "200 OK..."
    let mut buf = Vec::new();
    let mut b = [0u8; 512];
    loop {
        if let Some(r) = parse_rsp(&buf) {
            let (n, text) = r?;
            if n != txnr {
                return Err(format!("answer to transaction {n}, not {txnr}"));
            }
            return if text.starts_with("200") || (command == "close" && text.is_empty()) {
                Ok(())
            } else {
                Err(format!(
                    "`{command}` answered `{}`",
                    text.lines().next().unwrap_or("")
                ))
            };
        }
        if buf.len() > 64 << 10 {
            return Err("answer longer than 64 KiB".into());
        }
        let n = s
            .read(&mut b)
            .await
            .map_err(|e| format!("reading the answer to `{command}`: {e}"))?;
        if n == 0 {
            return Err(format!(
                "the server closed the connection after `{command}`"
            ));
        }
        buf.extend_from_slice(&b[..n]);
    }
}

/// A complete `rsp` frame at the start of `buf`: `None` when more bytes are
/// needed.
fn parse_rsp(buf: &[u8]) -> Option<Result<(u32, String), String>> {
    let bad = |m: String| Some(Err(m));
    let sp1 = buf.iter().position(|&b| b == b' ')?;
    let sp2 = sp1
        + 1
        + buf[sp1 + 1..]
            .iter()
            .position(|&b| b == b' ' || b == b'\n')?;
    let cmd = &buf[sp1 + 1..sp2];
    if cmd != b"rsp" {
        return bad(format!(
            "expected `rsp`, got `{}`",
            String::from_utf8_lossy(cmd)
        ));
    }
    let Some(txnr) = std::str::from_utf8(&buf[..sp1])
        .ok()
        .and_then(|t| t.parse::<u32>().ok())
    else {
        return bad("bad transaction number in the RELP answer".into());
    };
    let rest = &buf[sp2 + 1..];
    let len_end = rest.iter().position(|b| !b.is_ascii_digit())?;
    let Some(n) = std::str::from_utf8(&rest[..len_end])
        .ok()
        .and_then(|l| l.parse::<usize>().ok())
    else {
        return bad("malformed RELP answer (no data length)".into());
    };
    if n == 0 {
        return Some(Ok((txnr, String::new())));
    }
    let start = len_end + 1;
    if rest.len() < start + n {
        return None;
    }
    Some(Ok((
        txnr,
        String::from_utf8_lossy(&rest[start..start + n]).into_owned(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relp_answers_parse() {
        assert_eq!(
            parse_rsp(b"1 rsp 6 200 OK\n").unwrap().unwrap(),
            (1, "200 OK".to_string())
        );
        assert!(parse_rsp(b"1 rsp 6 200").is_none(), "needs more bytes");
        assert_eq!(
            parse_rsp(b"3 rsp 0\n").unwrap().unwrap(),
            (3, String::new())
        );
        assert!(parse_rsp(b"1 serverclose 0\n").unwrap().is_err());
        assert!(parse_rsp(b"x rsp zz\n").unwrap().is_err());
        let open = b"1 rsp 92 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,https://libestr.adiscon.com\ncommands=syslog\n";
        let (n, text) = parse_rsp(open).unwrap().unwrap();
        assert_eq!(n, 1);
        assert!(text.starts_with("200 OK"));
    }
}
