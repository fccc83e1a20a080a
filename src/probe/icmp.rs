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
        if icmp.len() < 8 {
            continue;
        }
        match icmp[0] {
            // Echo reply; a ping socket rewrites the identifier itself.
            0 if !raw
                || (u16::from_be_bytes([icmp[4], icmp[5]]) == id
                    && u16::from_be_bytes([icmp[6], icmp[7]]) == seq) =>
            {
                return Ok(true)
            }
            3 if raw => return Err("destination unreachable".into()),
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_of_a_known_packet() {
        // Echo request id 0x1234 seq 1, no payload: checksum 0xe5ca.
        let p = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        assert_eq!(super::checksum(&p), 0xe5ca);
    }
}
