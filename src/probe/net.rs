//! Shared networking: name resolution through the perimeter's DNS servers,
//! connections with deadlines, and the mapping of network failures to codes.
//!
//! Guarantees:
//! - every step has a deadline (connect, then each read/write); nothing here
//!   waits longer than the deadline it was given;
//! - a name is resolved through the configured DNS servers only (the
//!   machine's resolver may point outside the perimeter); the machine's own
//!   configuration (`/etc/hosts`, `/etc/resolv.conf`, read by
//!   `system_resolver`, never glibc's NSS) is used only when the
//!   configuration names no DNS server, and the evidence says so;
//! - no connection is ever opened to an address outside `allowed_networks`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::system_resolver::SystemResolver;
use crate::config::{Perimeter, Target, Transport};
use crate::finding::{Code, Finding};

/// Why a network step failed. Each maps to one finding code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    Unresolved(String),
    OutsidePerimeter(IpAddr),
    Refused,
    /// No answer to a connect (or to a UDP request) by the deadline.
    Timeout(Duration),
    /// Connected, but the peer sent nothing back by the deadline.
    NoReply(Duration),
    Unreachable(String),
    /// Any other I/O failure (reset mid-exchange, closed early).
    Io(String),
}

impl NetError {
    pub fn code(&self) -> Code {
        match self {
            NetError::Unresolved(_) => Code::NetUnresolved,
            NetError::OutsidePerimeter(_) => Code::NetOutsidePerimeter,
            NetError::Refused => Code::NetRefused,
            NetError::Timeout(_) => Code::NetTimeout,
            NetError::NoReply(_) => Code::NetNoReply,
            NetError::Unreachable(_) => Code::NetUnreachable,
            NetError::Io(_) => Code::NetNoReply,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            NetError::Unresolved(d) => format!("the name did not resolve: {d}"),
            NetError::OutsidePerimeter(a) => {
                format!("it resolves to {a}, outside allowed_networks; not contacted")
            }
            NetError::Refused => "the connection was refused".into(),
            NetError::Timeout(d) => format!("no answer within {}", fmt_duration(*d)),
            NetError::NoReply(d) => {
                format!(
                    "connected, but nothing came back within {}",
                    fmt_duration(*d)
                )
            }
            NetError::Unreachable(d) => format!("unreachable: {d}"),
            NetError::Io(d) => format!("the connection failed: {d}"),
        }
    }

    /// The finding for this failure on `target`.
    pub fn finding(&self, target: impl Into<String>, what: &str) -> Finding {
        let mut f = Finding::new(self.code(), target, format!("{what}: {}", self.describe()));
        match self {
            NetError::Timeout(d) | NetError::NoReply(d) => {
                f = f.evidence("deadline_ms", d.as_millis() as u64);
            }
            NetError::OutsidePerimeter(a) => f = f.evidence("address", a.to_string()),
            _ => {}
        }
        f
    }

    /// Classifies an I/O error from connect.
    pub fn from_connect(e: &std::io::Error) -> NetError {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => NetError::Refused,
            K::TimedOut => NetError::Unreachable(e.to_string()),
            K::HostUnreachable | K::NetworkUnreachable => NetError::Unreachable(e.to_string()),
            _ => NetError::Io(e.to_string()),
        }
    }

    /// Classifies an I/O error once connected.
    pub fn from_io(e: &std::io::Error) -> NetError {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => NetError::Refused,
            K::HostUnreachable | K::NetworkUnreachable => NetError::Unreachable(e.to_string()),
            _ => NetError::Io(e.to_string()),
        }
    }
}

/// 64 unpredictable bits for transaction ids, nonces and probe names.
/// `RandomState` is seeded from the OS; enough on a closed network, where
/// these only have to be unguessable and unique per run.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

/// The `<id>` of `airgap-verify-probe-<id>` names: 16 hex digits.
pub fn probe_id() -> String {
    format!("{:016x}", random_u64())
}

pub fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Runs `fut` with a deadline; a late future becomes `on_timeout`.
pub async fn deadline<T>(
    d: Duration,
    fut: impl Future<Output = Result<T, NetError>>,
    on_timeout: NetError,
) -> Result<T, NetError> {
    match tokio::time::timeout(d, fut).await {
        Ok(r) => r,
        Err(_) => Err(on_timeout),
    }
}

/// Resolves target names through the perimeter's DNS servers, once per name
/// per run.
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    allowed: Vec<ipnet::IpNet>,
    /// `/etc/hosts` and `/etc/resolv.conf`, read once: used when `servers`
    /// is empty.
    system: SystemResolver,
    cache: Mutex<HashMap<String, Result<Resolved, NetError>>>,
}

/// Addresses of a name and who answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub addrs: Vec<IpAddr>,
    /// `literal`, `/etc/hosts`, the configured DNS server's address, or
    /// `ADDR (from /etc/resolv.conf)`.
    pub via: String,
}

impl Resolver {
    pub fn new(plan: &Perimeter) -> Resolver {
        Resolver {
            servers: plan.dns.servers.clone(),
            timeout: plan.deadlines.connect,
            allowed: plan.allowed_networks.clone(),
            system: if plan.dns.servers.is_empty() {
                SystemResolver::load()
            } else {
                SystemResolver::default()
            },
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Addresses of `host` (an address literal resolves to itself).
    pub async fn resolve(&self, host: &str) -> Result<Resolved, NetError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Resolved {
                addrs: vec![ip],
                via: "literal".into(),
            });
        }
        let mut cache = self.cache.lock().await;
        if let Some(r) = cache.get(host) {
            return r.clone();
        }
        let r = self.lookup(host).await;
        cache.insert(host.to_string(), r.clone());
        r
    }

    async fn lookup(&self, host: &str) -> Result<Resolved, NetError> {
        if self.servers.is_empty() {
            // No perimeter DNS configured: the machine's configuration is all
            // we have.
            let (addrs, via) = self.system_lookup(host, self.timeout).await?;
            return Ok(Resolved { addrs, via });
        }
        let mut errors = Vec::new();
        for server in &self.servers {
            match super::dns::lookup_addresses(*server, host, self.timeout).await {
                Ok(addrs) if !addrs.is_empty() => {
                    return Ok(Resolved {
                        addrs,
                        via: server.to_string(),
                    })
                }
                Ok(_) => errors.push(format!("{server}: no address")),
                Err(e) => errors.push(format!("{server}: {e}")),
            }
        }
        Err(NetError::Unresolved(errors.join("; ")))
    }

    /// `host` through `/etc/hosts` and `/etc/resolv.conf`'s servers, each
    /// query within `timeout`, and where the answer came from.
    pub async fn system_lookup(
        &self,
        host: &str,
        timeout: Duration,
    ) -> Result<(Vec<IpAddr>, String), NetError> {
        self.system.lookup(host, timeout).await
    }

    /// The addresses of `host` that are inside the perimeter; the first one
    /// outside is an error when none is inside.
    pub async fn resolve_inside(&self, host: &str) -> Result<Resolved, NetError> {
        let mut r = self.resolve(host).await?;
        let first = r.addrs.first().copied();
        r.addrs.retain(|a| crate::config::allows(&self.allowed, *a));
        match (r.addrs.is_empty(), first) {
            (true, Some(a)) => Err(NetError::OutsidePerimeter(a)),
            (true, None) => Err(NetError::Unresolved("no address".into())),
            _ => Ok(r),
        }
    }
}

/// A UDP socket connected to `addr`. Connected, so that an ICMP port
/// unreachable comes back as `ECONNREFUSED` (`net:refused`) instead of
/// silence: UDP is judged by a reply or an ICMP error, never by a send.
pub async fn udp_connected(addr: SocketAddr) -> Result<tokio::net::UdpSocket, NetError> {
    let bind: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| NetError::Io(e.to_string()))?;
    sock.connect(addr)
        .await
        .map_err(|e| NetError::from_connect(&e))?;
    Ok(sock)
}

/// Opens a TCP connection to `target` (resolved inside the perimeter), trying
/// its addresses in turn within one connect deadline each.
pub async fn connect_tcp(
    resolver: &Resolver,
    target: &Target,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), NetError> {
    let resolved = resolver.resolve_inside(&target.host).await?;
    let mut last = NetError::Unresolved("no address".into());
    for ip in resolved.addrs {
        let sa = SocketAddr::new(ip, target.port);
        match tokio::time::timeout(timeout, TcpStream::connect(sa)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, sa));
            }
            Ok(Err(e)) => last = NetError::from_connect(&e),
            Err(_) => last = NetError::Timeout(timeout),
        }
    }
    Err(last)
}

/// Transport names for targets and evidence.
pub fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// Shared by every probe of one run.
pub struct ProbeContext {
    pub plan: Arc<Perimeter>,
    pub resolver: Resolver,
    pub tls: super::tls::TlsSettings,
    /// What the write probes wrote and have not removed yet.
    pub ledger: super::cleanup::Ledger,
}
