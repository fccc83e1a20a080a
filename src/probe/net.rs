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

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::Transport;
use crate::finding::{Code, Finding};
use crate::timefmt::fmt_duration;

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

/// Transport names for targets and evidence.
pub fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}
