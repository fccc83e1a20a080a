//! NTP probe: a hand-written SNTPv4 client (RFC 4330 / RFC 5905).
//!
//! Hand-written because the crates refuse to report an unsynchronised
//! server, which is exactly what we must report.
//!
//! Guarantees:
//! - one request, one deadline; UDP is judged only by a reply or an ICMP
//!   unreachable;
//! - a reply is used only if it is a server-mode packet whose origin
//!   timestamp equals the transmit timestamp we sent (the nonce), so a
//!   stale or spoofed packet is `ntp:bad-reply`, never a pass;
//! - every check that fails is reported (unsynchronised, stratum, offset);
//!   the pass says stratum, leap indicator, offset, delay, root distance.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::context::ProbeContext;
use super::net::NetError;
use crate::config::Target;
use crate::finding::{Code, Finding};

/// Seconds between the NTP era 0 epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
pub const PACKET_LEN: usize = 48;

fn now_ntp() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// A request whose transmit timestamp is the current time with random low
/// bits: the low 20 bits are below clock precision and make it a nonce.
pub fn request() -> ([u8; PACKET_LEN], u64) {
    let mut p = [0u8; PACKET_LEN];
    p[0] = 0x23; // LI 0, VN 4, mode 3 (client)
    let noise = super::net::random_u64() & 0xf_ffff;
    let xmt = (now_ntp() & !0xf_ffff) | noise;
    p[40..48].copy_from_slice(&xmt.to_be_bytes());
    (p, xmt)
}

/// The fields of a server reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub leap: u8,
    pub version: u8,
    pub mode: u8,
    pub stratum: u8,
    pub poll: i8,
    pub precision: i8,
    /// Seconds.
    pub root_delay: f64,
    /// Seconds.
    pub root_dispersion: f64,
    pub reference_id: [u8; 4],
    pub origin: u64,
    pub receive: u64,
    pub transmit: u64,
}

impl Reply {
    /// The kiss code of a stratum-0 packet, if its reference id is one.
    pub fn kiss_code(&self) -> Option<String> {
        (self.stratum == 0 && self.reference_id.iter().all(|b| b.is_ascii_uppercase()))
            .then(|| String::from_utf8_lossy(&self.reference_id).into_owned())
    }

    /// The reference id as text: a kiss code or source name for stratum 0
    /// and 1, an IPv4 address above.
    pub fn reference(&self) -> String {
        if self.stratum <= 1 {
            String::from_utf8_lossy(&self.reference_id)
                .trim_end_matches('\0')
                .to_string()
        } else {
            std::net::Ipv4Addr::from(self.reference_id).to_string()
        }
    }
}

/// Parses and checks a reply to the request whose transmit timestamp was
/// `sent`.
pub fn parse_reply(b: &[u8], sent: u64) -> Result<Reply, String> {
    if b.len() < PACKET_LEN {
        return Err(format!(
            "reply is {} bytes, an NTP packet has at least 48",
            b.len()
        ));
    }
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let short = |v: u32| (v >> 16) as f64 + (v & 0xffff) as f64 / 65536.0;
    let r = Reply {
        leap: b[0] >> 6,
        version: (b[0] >> 3) & 7,
        mode: b[0] & 7,
        stratum: b[1],
        poll: b[2] as i8,
        precision: b[3] as i8,
        root_delay: short(u32_at(4)),
        root_dispersion: short(u32_at(8)),
        reference_id: [b[12], b[13], b[14], b[15]],
        origin: u64_at(24),
        receive: u64_at(32),
        transmit: u64_at(40),
    };
    if r.mode != 4 {
        return Err(format!(
            "reply mode is {}, a server answers with mode 4",
            r.mode
        ));
    }
    if !(1..=4).contains(&r.version) {
        return Err(format!("reply version is {}", r.version));
    }
    if r.origin != sent {
        return Err(
            "the reply's origin timestamp does not match our request (stale or spoofed packet)"
                .into(),
        );
    }
    if r.kiss_code().is_none() && (r.transmit == 0 || r.receive == 0) && r.leap != 3 {
        return Err("the reply carries no receive or transmit timestamp".into());
    }
    Ok(r)
}

/// Offset and round-trip delay in seconds (RFC 5905 on-wire calculation).
pub fn offset_and_delay(r: &Reply, t1: u64, t4: u64) -> (f64, f64) {
    // Differences of 64-bit timestamps, done in wrapping arithmetic so the
    // 2036 era rollover does not matter.
    let d = |a: u64, b: u64| (a.wrapping_sub(b) as i64) as f64 / 4_294_967_296.0;
    let offset = (d(r.receive, t1) + d(r.transmit, t4)) / 2.0;
    let delay = d(t4, t1) - d(r.transmit, r.receive);
    (offset, delay.max(0.0))
}

pub(crate) async fn exchange(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(Vec<u8>, u64, u64), NetError> {
    let sock = super::net::udp_connected(addr).await?;
    let (req, t1) = request();
    sock.send(&req).await.map_err(|e| NetError::from_io(&e))?;
    let mut buf = vec![0u8; 512];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let t4 = now_ntp();
                // A datagram with another origin is not ours: keep waiting
                // for ours until the deadline, but report it if nothing else
                // comes.
                let got = buf[..n].to_vec();
                if n >= PACKET_LEN
                    && got[24..32] != t1.to_be_bytes()
                    && tokio::time::Instant::now() < deadline
                {
                    continue;
                }
                return Ok((got, t1, t4));
            }
            Ok(Err(e)) => return Err(NetError::from_io(&e)),
            Err(_) => return Err(NetError::Timeout(timeout)),
        }
    }
}

fn ms(s: f64) -> f64 {
    (s * 1_000_000.0).round() / 1000.0
}

pub async fn probe(ctx: &ProbeContext, target: &Target) -> Vec<Finding> {
    let plan = &ctx.plan.ntp;
    let name = target.to_string();
    let resolved = match ctx.resolver.resolve_inside(&target.host).await {
        Ok(r) => r,
        Err(e) => return vec![e.finding(name, "NTP server")],
    };
    let addr = SocketAddr::new(resolved.addrs[0], target.port);
    let timeout = ctx.plan.deadlines.io.max(ctx.plan.deadlines.connect);
    let (bytes, t1, t4) = match exchange(addr, timeout).await {
        Ok(x) => x,
        Err(e) => {
            return vec![e
                .finding(name, "NTP server")
                .evidence("address", addr.to_string())]
        }
    };
    let r = match parse_reply(&bytes, t1) {
        Ok(r) => r,
        Err(m) => {
            return vec![
                Finding::new(Code::NtpBadReply, name, m).evidence("address", addr.to_string())
            ]
        }
    };
    let (offset, delay) = offset_and_delay(&r, t1, t4);
    let root_distance = r.root_delay / 2.0 + r.root_dispersion + delay / 2.0;
    let ev = |f: Finding| {
        f.evidence("address", addr.to_string())
            .evidence("stratum", r.stratum)
            .evidence("leap_indicator", r.leap)
            .evidence("version", r.version)
            .evidence("reference_id", r.reference())
            .evidence("offset_ms", ms(offset))
            .evidence("delay_ms", ms(delay))
            .evidence("root_delay_ms", ms(r.root_delay))
            .evidence("root_dispersion_ms", ms(r.root_dispersion))
            .evidence("root_distance_ms", ms(root_distance))
            .evidence("max_offset_ms", plan.max_offset.as_secs_f64() * 1000.0)
            .evidence("max_stratum", plan.max_stratum)
            .duration_ms((delay * 1000.0) as u64)
    };
    if let Some(code) = r.kiss_code() {
        return vec![ev(Finding::new(
            Code::NtpKissOfDeath,
            name,
            format!("the server sent kiss-o'-death {code}: it refuses to serve this client"),
        )
        .evidence("kiss_code", code))];
    }
    let mut out = Vec::new();
    if r.leap == 3 || r.stratum == 0 || r.stratum >= 16 {
        out.push(ev(Finding::new(
            Code::NtpUnsynchronised,
            name.clone(),
            format!(
                "the server is not synchronised (leap indicator {}, stratum {})",
                r.leap, r.stratum
            ),
        )));
        // Its offset and stratum mean nothing while unsynchronised.
        return out;
    }
    if r.stratum > plan.max_stratum {
        out.push(ev(Finding::new(
            Code::NtpStratumTooHigh,
            name.clone(),
            format!(
                "stratum {} exceeds max_stratum {}",
                r.stratum, plan.max_stratum
            ),
        )));
    }
    if offset.abs() > plan.max_offset.as_secs_f64() {
        out.push(ev(Finding::new(
            Code::NtpOffsetTooLarge,
            name.clone(),
            format!(
                "offset {:+.3} ms exceeds max_offset {:.3} ms",
                offset * 1000.0,
                plan.max_offset.as_secs_f64() * 1000.0
            ),
        )));
    }
    if out.is_empty() {
        out.push(ev(Finding::new(
            Code::NtpSynchronised,
            name,
            format!(
                "synchronised, stratum {}, offset {:+.3} ms, delay {:.3} ms",
                r.stratum,
                offset * 1000.0,
                delay * 1000.0
            ),
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_to(sent: u64, first: u8, stratum: u8, refid: &[u8; 4]) -> Vec<u8> {
        let mut b = vec![0u8; 48];
        b[0] = first;
        b[1] = stratum;
        b[12..16].copy_from_slice(refid);
        b[24..32].copy_from_slice(&sent.to_be_bytes());
        b[32..40].copy_from_slice(&(sent + (1 << 32)).to_be_bytes());
        b[40..48].copy_from_slice(&(sent + (1 << 32)).to_be_bytes());
        b
    }

    #[test]
    fn origin_must_match() {
        let (_, sent) = request();
        let ok = reply_to(sent, 0x24, 2, &[10, 0, 0, 1]);
        assert_eq!(parse_reply(&ok, sent).unwrap().stratum, 2);
        assert!(parse_reply(&ok, sent ^ 1).unwrap_err().contains("origin"));
        assert!(parse_reply(&ok[..47], sent).is_err());
        let client_mode = reply_to(sent, 0x23, 2, &[0; 4]);
        assert!(parse_reply(&client_mode, sent)
            .unwrap_err()
            .contains("mode"));
    }

    #[test]
    fn kiss_codes_and_leap() {
        let (_, sent) = request();
        let kod = parse_reply(&reply_to(sent, 0xe4, 0, b"RATE"), sent).unwrap();
        assert_eq!(kod.kiss_code().as_deref(), Some("RATE"));
        let unsync = parse_reply(&reply_to(sent, 0xe4, 0, &[0; 4]), sent).unwrap();
        assert_eq!((unsync.leap, unsync.kiss_code()), (3, None));
    }

    #[test]
    fn offset_is_symmetric() {
        // Server one second ahead, 10 ms each way.
        let t1: u64 = 1000 << 32;
        let ms10 = (1u64 << 32) / 100;
        let r = Reply {
            leap: 0,
            version: 4,
            mode: 4,
            stratum: 2,
            poll: 0,
            precision: 0,
            root_delay: 0.0,
            root_dispersion: 0.0,
            reference_id: [0; 4],
            origin: t1,
            receive: t1 + ms10 + (1 << 32),
            transmit: t1 + ms10 + (1 << 32),
        };
        let (o, d) = offset_and_delay(&r, t1, t1 + 2 * ms10);
        assert!((o - 1.0).abs() < 1e-6, "{o}");
        assert!((d - 0.02).abs() < 1e-6, "{d}");
    }
}
