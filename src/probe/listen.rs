//! `airgap-verify listen`: the responder that makes a flow test conclusive
//! before anything is installed. Before Kubernetes runs, nothing listens on
//! 6443, 2379 or 8472, so a plain connect cannot tell an open firewall from
//! a closed one; with the responder bound there, an answer carrying the
//! tester's nonce proves the packet reached this host.
//!
//! Guarantees:
//! - every destination port of the role that is free is bound, TCP and UDP
//!   as the profile says; a port already taken is reported with the process
//!   that holds it when `/proc` tells (`flow:port-taken`), never stolen;
//! - each answer carries this host's clock (plus `--clock-offset`, for
//!   tests) and the PROXY header that preceded the challenge, if any;
//! - a connection that does not send a challenge within the I/O deadline,
//!   or sends something else, is closed; reads are bounded, so nothing a
//!   client sends can grow memory;
//! - the responder stops at its deadline or on SIGINT/SIGTERM, and returns
//!   how many challenges it answered.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::challenge::{self, ProxySeen};
use crate::finding::{Code, Finding};
use crate::profiles::{Profile, Proto, Role};

/// What `listen` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenRole {
    /// A Kubernetes node: every flow whose destination is a node, a manager
    /// or a worker (the load balancer's backend ports included).
    Node,
    /// Only the load balancer's backend ports.
    LbBackend,
}

#[derive(Debug, Clone)]
pub struct ListenOptions {
    pub role: ListenRole,
    pub bind: IpAddr,
    /// The name put in answers (the host name by default).
    pub host: String,
    pub deadline: Duration,
    /// Added to this host's clock in every answer (tests of skew detection).
    pub clock_offset_ns: i128,
    /// How long a connection may take to send its challenge.
    pub io: Duration,
}

/// Ports of the profile that `role` must answer on, with the flows that
/// need each.
pub fn ports(profile: &Profile, role: ListenRole) -> BTreeMap<(u16, &'static str), Vec<String>> {
    let mut out: BTreeMap<(u16, &'static str), Vec<String>> = BTreeMap::new();
    for f in &profile.flows {
        let wanted = match role {
            ListenRole::Node => f.to.is(Role::Node),
            ListenRole::LbBackend => f.to.is(Role::Worker) && f.from.contains(&Role::Lb),
        };
        if !wanted || f.proto == Proto::Icmp {
            continue;
        }
        for &p in &f.ports {
            out.entry((p, f.proto.name()))
                .or_default()
                .push(f.id.clone());
        }
    }
    out
}

/// The process holding `proto`/`port`, from /proc (Linux), as `name (pid N)`.
pub fn port_owner(proto: &str, port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
        let Ok(text) = std::fs::read_to_string(&table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            // TCP: listening sockets only (state 0A); UDP: any bound socket.
            if local_port == Some(port) && (proto == "udp" || f[3] == "0A") {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    let comm = std::fs::read_to_string(entry.path().join("comm"))
                        .map(|c| c.trim().to_string())
                        .unwrap_or_else(|_| "?".into());
                    return Some(format!("{comm} (pid {pid})"));
                }
            }
        }
    }
    Some("another process".into())
}

/// Sockets bound by [`bind`].
pub struct Bound {
    tcp: Vec<(u16, tokio::net::TcpListener)>,
    udp: Vec<(u16, tokio::net::UdpSocket)>,
}

impl Bound {
    pub fn count(&self) -> usize {
        self.tcp.len() + self.udp.len()
    }
}

/// Binds every port of the role; returns what was bound and one finding per
/// port. Must run inside a tokio runtime.
pub async fn bind(profile: &Profile, opts: &ListenOptions) -> (Bound, Vec<Finding>) {
    let mut bound = Bound {
        tcp: Vec::new(),
        udp: Vec::new(),
    };
    let mut findings = Vec::new();
    for ((port, proto), flows) in ports(profile, opts.role) {
        let sa = SocketAddr::new(opts.bind, port);
        let target = format!("{proto} {sa}");
        let result = if proto == "tcp" {
            tokio::net::TcpListener::bind(sa)
                .await
                .map(|l| bound.tcp.push((port, l)))
        } else {
            tokio::net::UdpSocket::bind(sa)
                .await
                .map(|s| bound.udp.push((port, s)))
        };
        let f = match result {
            Ok(()) => Finding::new(
                Code::FlowListening,
                target,
                format!(
                    "answering challenges on {proto}/{port} ({})",
                    flows.join(", ")
                ),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let owner = port_owner(proto, port);
                Finding::new(
                    Code::FlowPortTaken,
                    target,
                    format!(
                        "{proto}/{port} is already taken by {}: the flow can only be tested against it",
                        owner.as_deref().unwrap_or("another process")
                    ),
                )
                .evidence("owner", owner.unwrap_or_default())
            }
            Err(e) => Finding::new(
                Code::FlowPortTaken,
                target,
                format!("{proto}/{port} cannot be bound: {e}"),
            ),
        };
        findings.push(f.evidence("flows", flows).evidence("port", port));
    }
    (bound, findings)
}

/// Serves until `stop` resolves or the deadline passes; returns the number
/// of challenges answered.
pub async fn serve(
    bound: Bound,
    opts: ListenOptions,
    stop: impl std::future::Future<Output = ()>,
) -> u64 {
    let answered = Arc::new(AtomicU64::new(0));
    let opts = Arc::new(opts);
    let mut set = tokio::task::JoinSet::new();
    for (port, l) in bound.tcp {
        let (opts, answered) = (opts.clone(), answered.clone());
        set.spawn(async move {
            loop {
                let Ok((conn, _)) = l.accept().await else {
                    continue;
                };
                let (opts, answered) = (opts.clone(), answered.clone());
                tokio::spawn(async move {
                    if answer_tcp(conn, port, &opts).await {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
    }
    for (port, s) in bound.udp {
        let (opts, answered) = (opts.clone(), answered.clone());
        set.spawn(async move {
            let mut buf = [0u8; challenge::MAX_LINE];
            loop {
                let Ok((n, from)) = s.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(text) = std::str::from_utf8(&buf[..n]) else {
                    continue;
                };
                if let Ok(nonce) = challenge::parse_challenge(text) {
                    let a = challenge::answer_line(
                        &nonce,
                        &opts.host,
                        port,
                        opts.clock_offset_ns,
                        &ProxySeen::None,
                    );
                    if s.send_to(a.as_bytes(), from).await.is_ok() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    tokio::select! {
        _ = stop => {}
        _ = tokio::time::sleep(opts.deadline) => {}
    }
    set.abort_all();
    answered.load(Ordering::Relaxed)
}

/// Reads an optional PROXY header and one challenge line, answers it.
async fn answer_tcp(mut conn: tokio::net::TcpStream, port: u16, opts: &ListenOptions) -> bool {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let read = async {
        let mut proxy: Option<(usize, ProxySeen)> = None;
        loop {
            if proxy.is_none() {
                match challenge::parse_proxy(&buf) {
                    Ok(Some(p)) => proxy = Some(p),
                    Ok(None) => {}
                    Err(_) => return None,
                }
            }
            if let Some((skip, seen)) = &proxy {
                if let Some(end) = buf[*skip..].iter().position(|&b| b == b'\n') {
                    let line = std::str::from_utf8(&buf[*skip..*skip + end]).ok()?;
                    return Some((challenge::parse_challenge(line).ok()?, seen.clone()));
                }
            }
            if buf.len() > challenge::MAX_LINE + 232 {
                return None;
            }
            let n = conn.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let Ok(Some((nonce, seen))) = tokio::time::timeout(opts.io, read).await else {
        return false;
    };
    let a = challenge::answer_line(&nonce, &opts.host, port, opts.clock_offset_ns, &seen);
    let ok = conn.write_all(a.as_bytes()).await.is_ok();
    let _ = conn.shutdown().await;
    ok
}

/// The responder's whole life: binds, hands the startup findings to
/// `on_ready` (the binary prints them), serves until the deadline or
/// SIGINT/SIGTERM. Returns the number of challenges answered and the signal
/// that stopped it, if any.
pub fn run(
    profile: &Profile,
    opts: ListenOptions,
    on_ready: impl FnOnce(&[Finding]),
) -> Result<(u64, Option<super::Interrupt>), crate::error::InputError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crate::error::InputError::Usage(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let mut signals = super::Signals::install();
        let (bound, findings) = bind(profile, &opts).await;
        on_ready(&findings);
        if bound.count() == 0 {
            return Ok((0, None));
        }
        let mut stopped_by = None;
        let stop = async {
            stopped_by = Some(signals.recv().await);
        };
        let n = serve(bound, opts, stop).await;
        Ok((n, stopped_by))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ports_cover_the_profile_and_lb_backend_only_the_lb_ports() {
        let p = crate::profiles::get("sekoia-1.0.0").unwrap();
        let node = ports(&p, ListenRole::Node);
        for want in [
            (6443, "tcp"),
            (2379, "tcp"),
            (8472, "udp"),
            (10250, "tcp"),
            (10901, "tcp"),
            (443, "tcp"),
        ] {
            assert!(node.contains_key(&want), "{want:?} missing: {node:?}");
        }
        assert!(
            !node.contains_key(&(53, "udp")),
            "service ports are not a node's"
        );
        let lb: Vec<_> = ports(&p, ListenRole::LbBackend).into_keys().collect();
        assert_eq!(
            lb,
            vec![(80, "tcp"), (443, "tcp"), (10514, "tcp"), (11514, "tcp")]
        );
    }

    #[tokio::test]
    async fn a_taken_port_is_reported_with_its_owner() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let owner = port_owner("tcp", port).expect("our own listener is found");
        assert!(
            owner.contains(&format!("pid {}", std::process::id())),
            "{owner}"
        );
        assert_eq!(port_owner("tcp", 1), None);
    }

    #[tokio::test]
    async fn answers_a_challenge_behind_a_proxy_header_and_ignores_junk() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let opts = ListenOptions {
            role: ListenRole::Node,
            bind: addr.ip(),
            host: "node-x".into(),
            deadline: Duration::from_secs(5),
            clock_offset_ns: 0,
            io: Duration::from_millis(500),
        };
        let bound = Bound {
            tcp: vec![(addr.port(), l)],
            udp: Vec::new(),
        };
        let server = tokio::spawn(serve(bound, opts, std::future::pending()));
        let ask = |payload: Vec<u8>| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(&payload).await.unwrap();
            let mut out = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), c.read_to_string(&mut out)).await;
            out
        };
        let mut p = b"PROXY TCP4 10.0.255.2 10.0.255.10 40000 443\r\n".to_vec();
        p.extend_from_slice(challenge::challenge_line("n1").as_bytes());
        let a = challenge::parse_answer(&ask(p).await).unwrap();
        assert_eq!(
            (a.nonce.as_str(), a.host.as_str(), a.proxy.as_str()),
            ("n1", "node-x", "v1")
        );
        let a = challenge::parse_answer(&ask(challenge::challenge_line("n2").into_bytes()).await)
            .unwrap();
        assert_eq!(a.proxy, "none");
        assert_eq!(
            ask(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await,
            "",
            "junk gets no answer"
        );
        server.abort();
    }
}
