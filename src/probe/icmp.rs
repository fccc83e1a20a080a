//! ICMP echo, for the profile's node-to-node ICMP flow. Blocking: it runs on
//! a blocking thread with a receive timeout, so the caller's deadline holds.
//!
//! A ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP`) is tried first, since it
//! needs no privilege where `net.ipv4.ping_group_range` allows it; a raw
//! socket (root or CAP_NET_RAW) otherwise. Only an echo reply from the
//! destination with our identifier and sequence counts.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum = sum.wrapping_add(w as u32);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `Ok(true)` on an echo reply, `Ok(false)` on silence by the deadline,
/// `Err` when no ICMP socket can be opened or the host is unreachable.
pub fn echo(ip: IpAddr, deadline: Duration) -> Result<bool, String> {
    let IpAddr::V4(_) = ip else {
        return Err("ICMPv6 echo is not supported yet".into());
    };
    let (sock, raw) = match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
        Ok(s) => (s, false),
        Err(_) => Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
            .map(|s| (s, true))
            .map_err(|e| format!("cannot open an ICMP socket ({e}); run as root"))?,
    };
    let id = (super::net::random_u64() & 0xffff) as u16;
    let seq: u16 = 1;
    let mut pkt = vec![8u8, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"airgap-verify");
    let c = checksum(&pkt);
    pkt[2..4].copy_from_slice(&c.to_be_bytes());
    // Connected: the kernel then hands us only packets from `ip`.
    let dest = SocketAddr::new(ip, 0);
    sock.connect(&dest.into())
        .map_err(|e| format!("addressing {ip}: {e}"))?;
    sock.send(&pkt)
        .map_err(|e| format!("sending the echo request: {e}"))?;
    let started = Instant::now();
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(false);
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = match (&sock).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e.to_string()),
        };
        let data = &buf[..n];
        // A raw socket hands us the IP header too.
        let icmp = if raw {
            let ihl = ((data.first().copied().unwrap_or(0) & 0x0f) as usize) * 4;
            data.get(ihl..).unwrap_or(&[])
        } else {
            data
        };
        match judge(icmp, raw, id, seq) {
            Some(Reply::Echo) => return Ok(true),
            Some(Reply::Unreachable(code)) => {
                return Err(format!(
                    "destination unreachable ({})",
                    unreachable_name(code)
                ))
            }
            None => continue,
        }
    }
}

#[derive(Debug, PartialEq)]
enum Reply {
    Echo,
    Unreachable(u8),
}

/// What one ICMP message from the destination says about our echo request
/// `id`/`seq`, or `None` when it is about something else. A raw socket sees
/// every ICMP message from the host, among them the port unreachables that
/// the flows' own UDP probes draw at the same time: a destination
/// unreachable counts only when the datagram it quotes is our echo request.
fn judge(icmp: &[u8], raw: bool, id: u16, seq: u16) -> Option<Reply> {
    if icmp.len() < 8 {
        return None;
    }
    let ours = |m: &[u8]| {
        m.len() >= 8
            && u16::from_be_bytes([m[4], m[5]]) == id
            && u16::from_be_bytes([m[6], m[7]]) == seq
    };
    match icmp[0] {
        // Echo reply; a ping socket rewrites the identifier itself.
        0 if !raw || ours(icmp) => Some(Reply::Echo),
        3 if raw => {
            // The quoted datagram: its IP header, then its first 8 bytes.
            let quoted = &icmp[8..];
            let ihl = ((quoted.first().copied().unwrap_or(0) & 0x0f) as usize) * 4;
            let is_icmp = quoted.get(9) == Some(&1);
            let inner = quoted.get(ihl..).unwrap_or(&[]);
            (ihl >= 20 && is_icmp && inner.first() == Some(&8) && ours(inner))
                .then_some(Reply::Unreachable(icmp[1]))
        }
        _ => None,
    }
}

fn unreachable_name(code: u8) -> String {
    match code {
        0 => "network unreachable".into(),
        1 => "host unreachable".into(),
        2 => "protocol unreachable".into(),
        9 | 10 | 13 => "administratively prohibited, a firewall rejects it".into(),
        c => format!("code {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{judge, Reply};

    /// An ICMP destination unreachable (code `code`) quoting an IPv4
    /// datagram of `proto` whose first bytes are `inner`.
    fn unreachable(code: u8, proto: u8, inner: &[u8]) -> Vec<u8> {
        let mut m = vec![3u8, code, 0, 0, 0, 0, 0, 0];
        let mut ip = vec![0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&[10, 0, 255, 20, 10, 0, 255, 21]);
        m.extend(ip);
        m.extend_from_slice(inner);
        m
    }

    #[test]
    fn only_our_own_echo_or_its_error_counts() {
        let (id, seq) = (0x1234, 1);
        let echo_req = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        assert_eq!(
            judge(&[0, 0, 0, 0, 0x12, 0x34, 0, 1], true, id, seq),
            Some(Reply::Echo)
        );
        // Another ping's reply, on a raw socket.
        assert_eq!(judge(&[0, 0, 0, 0, 0x99, 0x99, 0, 1], true, id, seq), None);
        // A ping socket rewrites the identifier: any echo reply is ours.
        assert_eq!(
            judge(&[0, 0, 0, 0, 0x99, 0x99, 0, 1], false, id, seq),
            Some(Reply::Echo)
        );
        // A firewall rejecting our echo request.
        assert_eq!(
            judge(&unreachable(13, 1, &echo_req), true, id, seq),
            Some(Reply::Unreachable(13))
        );
        // The port unreachable a concurrent UDP probe drew: not about us.
        let udp = [0x9c, 0x40, 0x21, 0x1c, 0, 8, 0, 0];
        assert_eq!(judge(&unreachable(3, 17, &udp), true, id, seq), None);
        // An error quoting someone else's echo request.
        let other = [8u8, 0, 0, 0, 0x55, 0x55, 0, 1];
        assert_eq!(judge(&unreachable(1, 1, &other), true, id, seq), None);
        // Truncated messages are ignored, never read past their end.
        assert_eq!(judge(&[3, 1, 0, 0, 0, 0, 0, 0, 0x45], true, id, seq), None);
        assert_eq!(judge(&[0, 0, 0], true, id, seq), None);
    }

    #[test]
    fn checksum_of_a_known_packet() {
        // Echo request id 0x1234 seq 1, no payload: checksum 0xe5ca.
        let p = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        assert_eq!(super::checksum(&p), 0xe5ca);
    }
}
