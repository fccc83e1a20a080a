//! `airgap-verify flows`: every flow of the profile whose source is this
//! host's role, tested concurrently against the cluster's hosts.
//!
//! Guarantees:
//! - tri-state per flow: open (answered: the responder's nonce came back, a
//!   service accepted the connection or answered the query), closed
//!   (refused: TCP reset or ICMP unreachable), filtered (nothing by the
//!   deadline);
//! - UDP is judged only by an answer (the responder's, or the DNS or NTP
//!   server's own reply) or an ICMP unreachable, never by a send that
//!   merely succeeded;
//! - each flow has one deadline for connect and challenge together, and all
//!   flows run at once: the whole matrix ends within the deadline plus a
//!   little, whatever mix of open, closed and filtered;
//! - the clock of each responder that answered is compared with this
//!   host's (`flow:clock-skew` beyond `max_clock_skew`, 1 s by default);
//! - through the load balancer, the PROXY header each backend saw is
//!   compared with what the profile expects; when no responder answers
//!   there (the platform is installed), the service itself is checked:
//!   HTTP redirect, TLS, syslog over TLS, RELP (see `lb`);
//! - nothing outside `allowed_networks` is contacted.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::challenge::{self, Answer};
use super::context::ProbeContext;
use super::net::NetError;
use crate::config::{FlowsPlan, Target};
use crate::finding::{Code, Finding};
use crate::profiles::{Expect, Flow, Profile, Proto, Role, ServiceKind};

/// The role `flows` runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRole {
    Orchestration,
    Node,
    /// The load balancer: its own flows to the workers, without going
    /// through its proxy (what a client's checks prove through it).
    Lb,
    Client,
}

impl SourceRole {
    pub fn role(self) -> Role {
        match self {
            SourceRole::Orchestration => Role::Orchestration,
            SourceRole::Node => Role::Node,
            SourceRole::Lb => Role::Lb,
            SourceRole::Client => Role::Client,
        }
    }
}

/// What one attempt found.
#[derive(Debug, Clone)]
pub enum State {
    /// Answered; with the responder's answer when it was ours.
    Open(Option<(Answer, i128, Duration)>),
    Closed(String),
    Filtered,
}

/// One (flow, destination, port) to test.
#[derive(Debug, Clone)]
struct Check {
    flow: Flow,
    host: String,
    addr: SocketAddr,
    /// A DNS or NTP service: ask its own question instead of a challenge.
    service: Option<ServiceKind>,
}

/// The hosts of `role`, as configured.
fn hosts_of(ctx: &ProbeContext, fp: &FlowsPlan, role: Role, flow: &Flow) -> Vec<Target> {
    let plan = &ctx.plan;
    let port = flow.ports.first().copied().unwrap_or(0);
    let t = |h: &String| Target::parse(h, port).ok();
    let mut out: Vec<Target> = match role {
        Role::Lb => fp.load_balancer.iter().filter_map(t).collect(),
        Role::Orchestration => fp.orchestration.iter().filter_map(t).collect(),
        Role::Manager => {
            let mut v: Vec<Target> = fp.managers.iter().filter_map(t).collect();
            // The API address (often a VIP in front of the managers).
            if flow.ports.contains(&6443) {
                v.extend(fp.kube_api.iter().filter_map(t));
            }
            v
        }
        Role::Worker => fp.workers.iter().filter_map(t).collect(),
        Role::Node => {
            let mut v: Vec<Target> = fp
                .managers
                .iter()
                .chain(&fp.workers)
                .filter_map(t)
                .collect();
            // 1.0.0: the Kubernetes API from every node goes to
            // `global.kube_manager_host` too.
            if flow.ports.contains(&6443) {
                v.extend(fp.kube_api.iter().filter_map(t));
            }
            v
        }
        Role::Client => Vec::new(),
        Role::Service(k) => match k {
            ServiceKind::Dns => plan
                .dns
                .servers
                .iter()
                .map(|s| Target {
                    host: s.ip().to_string(),
                    port: s.port(),
                })
                .collect(),
            ServiceKind::Ntp => plan.ntp.servers.clone(),
            ServiceKind::Smtp => plan.smtp.iter().map(|s| s.target.clone()).collect(),
            ServiceKind::Git => plan.git.iter().filter_map(|g| url_target(&g.url)).collect(),
            ServiceKind::Registry => plan
                .registry
                .iter()
                .filter_map(|r| url_target(&r.url))
                .collect(),
            ServiceKind::S3 => plan
                .s3
                .iter()
                .filter_map(|s| url_target(&s.endpoint))
                .collect(),
        },
    };
    out.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    out.dedup_by(|a, b| a.host == b.host && a.port == b.port);
    out
}

fn url_target(url: &str) -> Option<Target> {
    let u = reqwest::Url::parse(url).ok()?;
    Some(Target {
        host: u.host_str()?.trim_matches(['[', ']']).to_string(),
        port: u.port_or_known_default()?,
    })
}

/// True when `ip` is one of this host's addresses (binding to it works):
/// a node does not test flows to itself.
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The flows `role` starts, in the profile's order.
pub fn flows_from(profile: &Profile, role: SourceRole) -> Vec<&Flow> {
    profile
        .flows
        .iter()
        .filter(|f| f.starts_at(role.role()))
        .collect()
}

pub async fn run(ctx: &Arc<ProbeContext>, role: SourceRole, profile: &Profile) -> Vec<Finding> {
    let Some(fp) = ctx.plan.flows.clone() else {
        return Vec::new();
    };
    let deadline = fp.deadline.unwrap_or(ctx.plan.deadlines.connect);
    let mut out = Vec::new();
    let mut checks = Vec::new();
    for flow in flows_from(profile, role) {
        let targets = hosts_of(ctx, &fp, flow.to, flow);
        if targets.is_empty() {
            let hint = match flow.to {
                Role::Service(k) => {
                    format!("no {} server is configured in perimeter.yml", k.name())
                }
                r => format!(
                    "no {} host is configured (perimeter.yml `flows:` or the vendor's inventory)",
                    r.name()
                ),
            };
            out.push(
                Finding::new(
                    Code::FlowSkipped,
                    format!("{} {}", flow.id, flow.to.name()),
                    format!("{} ({}): {hint}", flow.id, flow.purpose),
                )
                .evidence("flow", flow.id.clone()),
            );
            continue;
        }
        let service = match flow.to {
            Role::Service(k) => Some(k),
            _ => None,
        };
        for t in targets {
            let addrs = match ctx.resolver.resolve_inside(&t.host).await {
                Ok(r) => r.addrs,
                Err(e) => {
                    out.push(
                        e.finding(format!("{} {}", flow.proto.name(), t.host), &flow.id)
                            .evidence("flow", flow.id.clone()),
                    );
                    continue;
                }
            };
            let Some(&ip) = addrs.first() else { continue };
            if matches!(role, SourceRole::Node | SourceRole::Lb) && is_local(ip) {
                continue;
            }
            // A service is tested on its configured port; a cluster host on
            // every port of the flow.
            let ports: Vec<u16> = if service.is_some() {
                vec![t.port]
            } else if flow.proto == Proto::Icmp {
                vec![0]
            } else {
                flow.ports.clone()
            };
            for port in ports {
                checks.push(Check {
                    flow: flow.clone(),
                    host: t.host.clone(),
                    addr: SocketAddr::new(ip, port),
                    service,
                });
            }
        }
    }

    // Through the load balancer (client role): several connections per
    // port, to reach each backend and see the header it receives.
    let lb_checks = if role == SourceRole::Client {
        super::lb::plan(ctx, &fp, profile).await
    } else {
        Vec::new()
    };

    let mut set = tokio::task::JoinSet::new();
    for c in checks {
        set.spawn(async move {
            let started = Instant::now();
            let state = attempt(&c, deadline).await;
            (c, state, started.elapsed())
        });
    }
    let lb = {
        let ctx = ctx.clone();
        let profile = profile.clone();
        tokio::spawn(async move { super::lb::run(&ctx, lb_checks, &profile, deadline).await })
    };
    let mut skews: BTreeMap<String, (i128, Duration)> = BTreeMap::new();
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok((c, state, took)) = r {
            // Keyed by the responder's own name: that is whose clock it is.
            if let State::Open(Some((a, skew, err))) = &state {
                let e = skews.entry(a.host.clone()).or_insert((*skew, *err));
                if skew.abs() > e.0.abs() {
                    *e = (*skew, *err);
                }
            }
            results.push(finding(&c, &state, took));
        }
    }
    results.sort_by(|a, b| a.target.cmp(&b.target));
    out.extend(results);
    let (lb_findings, lb_skews) = lb.await.unwrap_or_default();
    out.extend(lb_findings);
    for (host, s) in lb_skews {
        let e = skews.entry(host).or_insert(s);
        if s.0.abs() > e.0.abs() {
            *e = s;
        }
    }
    for (host, (skew, err)) in skews {
        out.push(clock_finding(&host, skew, err, fp.max_clock_skew));
    }
    out
}

pub fn clock_finding(host: &str, skew_ns: i128, err: Duration, max: Duration) -> Finding {
    let ms = skew_ns / 1_000_000;
    let f = if skew_ns.unsigned_abs() > max.as_nanos() {
        Finding::new(
            Code::FlowClockSkew,
            host,
            format!(
                "{host}'s clock is {}{} ms {} this host's (more than {} ms apart)",
                if ms >= 0 { "" } else { "-" },
                ms.abs(),
                if ms >= 0 { "ahead of" } else { "behind" },
                max.as_millis()
            ),
        )
    } else {
        Finding::new(
            Code::FlowClockOk,
            host,
            format!(
                "{host}'s clock is within {} ms of this host's ({ms} ms)",
                max.as_millis()
            ),
        )
    };
    f.evidence("skew_ms", ms as i64)
        .evidence("uncertainty_ms", err.as_millis() as u64)
        .evidence("max_skew_ms", max.as_millis() as u64)
}

/// One attempt, bounded by `deadline` as a whole.
async fn attempt(c: &Check, deadline: Duration) -> State {
    let nonce = format!("{:016x}", super::net::random_u64());
    let until = tokio::time::Instant::now() + deadline;
    let work = async {
        match (c.flow.proto, c.service) {
            (Proto::Tcp, _) => tcp(c.addr, &nonce, c.service.is_none(), until).await,
            (Proto::Udp, Some(ServiceKind::Dns)) => udp_dns(c.addr, deadline).await,
            (Proto::Udp, Some(ServiceKind::Ntp)) => udp_ntp(c.addr).await,
            (Proto::Udp, _) => udp(c.addr, &nonce).await,
            (Proto::Icmp, _) => icmp(c.addr.ip(), deadline).await,
        }
    };
    // TCP judges itself against `until`; the margin only catches the rest.
    match tokio::time::timeout(deadline + Duration::from_millis(50), work).await {
        Ok(s) => s,
        Err(_) => State::Filtered,
    }
}

/// TCP: a refused connect is closed; a connect still pending at `until` is
/// filtered; once connected the flow is open, and the challenge (awaited
/// until `until`, no longer) tells whether our responder is what answered.
async fn tcp(addr: SocketAddr, nonce: &str, challenge: bool, until: tokio::time::Instant) -> State {
    let mut s = match tokio::time::timeout_at(until, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return closed_or_filtered(&e),
        Err(_) => return State::Filtered,
    };
    if !challenge {
        return State::Open(None);
    }
    let exchange = async {
        let sent = challenge::now_ns();
        s.write_all(challenge::challenge_line(nonce).as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 256];
        while !buf.contains(&b'\n') && buf.len() < challenge::MAX_LINE {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let received = challenge::now_ns();
        let line = std::str::from_utf8(&buf).ok()?;
        let a = challenge::parse_answer(line).ok()?;
        (a.nonce == nonce).then(|| {
            let (skew, err) = challenge::skew(sent, received, a.time_ns);
            (a, skew, err)
        })
    };
    // A service that is not our responder (sshd, an HTTP server) stays
    // silent or answers something else: open, without a responder.
    match tokio::time::timeout_at(until, exchange).await {
        Ok(Some(a)) => State::Open(Some(a)),
        _ => State::Open(None),
    }
}

fn closed_or_filtered(e: &std::io::Error) -> State {
    match NetError::from_connect(e) {
        NetError::Refused => State::Closed("refused".into()),
        NetError::Unreachable(d) => State::Closed(format!("unreachable ({d})")),
        _ => State::Filtered,
    }
}

/// UDP with the responder: only its answer (or an ICMP unreachable) counts.
async fn udp(addr: SocketAddr, nonce: &str) -> State {
    let s = match super::net::udp_connected(addr).await {
        Ok(s) => s,
        Err(NetError::Refused) => return State::Closed("refused".into()),
        Err(_) => return State::Filtered,
    };
    let mut buf = [0u8; challenge::MAX_LINE];
    // Resent a few times: one lost datagram must not read as filtered.
    loop {
        let sent = challenge::now_ns();
        if s.send(challenge::challenge_line(nonce).as_bytes())
            .await
            .is_err()
        {
            return State::Filtered;
        }
        match tokio::time::timeout(Duration::from_millis(300), s.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let received = challenge::now_ns();
                if let Ok(a) = std::str::from_utf8(&buf[..n])
                    .map_err(|_| String::new())
                    .and_then(challenge::parse_answer)
                {
                    if a.nonce == nonce {
                        let (skew, err) = challenge::skew(sent, received, a.time_ns);
                        return State::Open(Some((a, skew, err)));
                    }
                }
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return State::Closed("ICMP port unreachable".into())
            }
            _ => {}
        }
    }
}

async fn udp_dns(addr: SocketAddr, deadline: Duration) -> State {
    use super::dnswire::QueryError;
    // Any well-formed reply, whatever its rcode, proves the flow.
    let q = super::dnswire::query(
        addr,
        "airgap-verify-flow.invalid",
        hickory_proto::rr::RecordType::A,
        crate::config::Transport::Udp,
        deadline,
    )
    .await;
    match q {
        Ok(_) => State::Open(None),
        Err(QueryError::Net(NetError::Refused)) => State::Closed("ICMP port unreachable".into()),
        Err(QueryError::Net(NetError::Unreachable(d))) => State::Closed(d),
        Err(_) => State::Filtered,
    }
}

async fn udp_ntp(addr: SocketAddr) -> State {
    let s = match super::net::udp_connected(addr).await {
        Ok(s) => s,
        Err(NetError::Refused) => return State::Closed("refused".into()),
        Err(_) => return State::Filtered,
    };
    let (req, _) = super::ntp::request();
    let mut buf = [0u8; 128];
    loop {
        if s.send(&req).await.is_err() {
            return State::Filtered;
        }
        match tokio::time::timeout(Duration::from_millis(300), s.recv(&mut buf)).await {
            Ok(Ok(n)) if n >= 48 => return State::Open(None),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return State::Closed("ICMP port unreachable".into())
            }
            _ => {}
        }
    }
}

/// ICMP echo through a raw socket (root) or a ping socket; the kernel of
/// the destination answers by itself, no responder needed.
async fn icmp(ip: IpAddr, deadline: Duration) -> State {
    match tokio::task::spawn_blocking(move || super::icmp::echo(ip, deadline)).await {
        Ok(Ok(true)) => State::Open(None),
        Ok(Ok(false)) => State::Filtered,
        Ok(Err(e)) => State::Closed(e),
        Err(_) => State::Filtered,
    }
}

fn finding(c: &Check, state: &State, took: Duration) -> Finding {
    let target = if c.flow.proto == Proto::Icmp {
        format!("icmp {}", c.addr.ip())
    } else {
        format!("{} {}", c.flow.proto.name(), c.addr)
    };
    let what = format!("{} ({})", c.flow.id, c.flow.purpose);
    let (code, msg) = match (c.flow.expect, state) {
        (Expect::Open, State::Open(Some((a, _, _)))) => (
            Code::FlowOpen,
            format!("{what}: open, the responder on {} answered", a.host),
        ),
        (Expect::Open, State::Open(None)) => (
            Code::FlowOpen,
            format!("{what}: open (answered)"),
        ),
        (Expect::Open, State::Closed(why)) => (
            Code::FlowClosed,
            format!("{what}: closed ({why}): the host answered but nothing listens, or a firewall rejects; run `airgap-verify listen` there before installing"),
        ),
        (Expect::Open, State::Filtered) => (
            Code::FlowFiltered,
            match c.flow.proto {
                Proto::Tcp => format!("{what}: filtered, the connection got no answer by the deadline: a firewall drops it, or the host is down"),
                // Linux sends about one ICMP error a second to a peer once
                // a burst of 6 is spent: many closed UDP ports on one host,
                // or runs back to back, can swallow the "closed" answer.
                Proto::Udp => format!("{what}: filtered, neither an answer nor an ICMP unreachable came back by the deadline: a firewall drops it, or nothing answers there and the host rate-limits its ICMP errors; run `airgap-verify listen` there, or raise --timeout"),
                Proto::Icmp => format!("{what}: filtered, no echo reply by the deadline"),
            },
        ),
        (Expect::Blocked, State::Open(_)) => (
            Code::FlowNotBlocked,
            format!("{what}: answered, but the profile says it must be blocked"),
        ),
        (Expect::Blocked, State::Closed(why)) => (
            Code::FlowBlocked,
            format!("{what}: blocked ({why})"),
        ),
        (Expect::Blocked, State::Filtered) => (
            Code::FlowBlocked,
            format!("{what}: blocked (no answer)"),
        ),
    };
    let state_name = match state {
        State::Open(_) => "open",
        State::Closed(_) => "closed",
        State::Filtered => "filtered",
    };
    let mut f = Finding::new(code, target, msg)
        .evidence("flow", c.flow.id.clone())
        .evidence("host", c.host.clone())
        .evidence("state", state_name)
        .evidence("expect", c.flow.expect.name())
        .duration_ms(took.as_millis() as u64);
    if let State::Open(Some((a, skew, _))) = state {
        f = f
            .evidence("responder", a.host.clone())
            .evidence("skew_ms", (*skew / 1_000_000) as i64);
    }
    f
}

/// How `flows` would run, for `--dry-run`: one line per flow and host.
pub fn describe(
    plan: &crate::config::Perimeter,
    role: SourceRole,
    profile: &Profile,
) -> Vec<String> {
    let Some(fp) = &plan.flows else {
        return vec!["flows: no `flows:` section and no vendor inventory".into()];
    };
    let mut out = vec![format!(
        "flows as {}: profile {} ({}), deadline {}, max clock skew {}",
        role.role().name(),
        profile.name,
        if fp.profile_source.is_empty() {
            "default"
        } else {
            &fp.profile_source
        },
        crate::timefmt::fmt_duration(fp.deadline.unwrap_or(plan.deadlines.connect)),
        crate::timefmt::fmt_duration(fp.max_clock_skew)
    )];
    for f in flows_from(profile, role) {
        out.push(format!(
            "  {} {} {} -> {}{}",
            f.id,
            f.proto.name(),
            f.ports_text(","),
            f.to.name(),
            if f.expect == Expect::Blocked {
                " (must be blocked)"
            } else {
                ""
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that accepts and stays silent (an HTTP server waiting for
    /// its request) is open, even when the deadline is shorter than any
    /// challenge wait: the connect already proved the flow.
    #[tokio::test]
    async fn a_silent_listener_is_open_within_the_deadline() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                held.push(c);
            }
        });
        let started = Instant::now();
        let until = tokio::time::Instant::now() + Duration::from_millis(300);
        let state = tcp(addr, "n", true, until).await;
        assert!(matches!(state, State::Open(None)), "{state:?}");
        assert!(started.elapsed() < Duration::from_millis(600));
        // Nothing listens: refused, at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        let state = tcp(
            gone,
            "n",
            true,
            tokio::time::Instant::now() + Duration::from_secs(1),
        )
        .await;
        assert!(matches!(state, State::Closed(_)), "{state:?}");
    }
}
