//! The wire format between `airgap-verify flows` and `airgap-verify listen`,
//! and the PROXY protocol headers a load balancer may put in front of it.
//!
//! A challenge is one line, `AGV1 <nonce> <unix-ns>\n`, sent over TCP or as
//! one UDP datagram. The responder answers with one line,
//! `AGV1 <nonce> <host> <port> <unix-ns> <proxy> <proxy-source>\n`, where
//! `proxy` is `none`, `v1` or `v2`: the PROXY header that preceded the
//! challenge on this connection. A pass therefore proves that the packet
//! reached this responder (the nonce is random per flow), not a middlebox
//! that accepts every connection.
//!
//! Guarantees: parsing is bounded (a line longer than [`MAX_LINE`] or a
//! PROXY v2 header longer than 232 bytes is refused), and every parser
//! returns an error on malformed input, never panics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const MAGIC: &str = "AGV1";
/// The longest challenge or answer line accepted.
pub const MAX_LINE: usize = 512;
/// PROXY protocol v2 signature.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Nanoseconds since the epoch (0 before 1970).
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub fn challenge_line(nonce: &str) -> String {
    format!("{MAGIC} {nonce} {}\n", now_ns())
}

/// The nonce of a challenge line.
pub fn parse_challenge(line: &str) -> Result<String, String> {
    let mut it = line.trim_end().split(' ');
    match (it.next(), it.next()) {
        (Some(MAGIC), Some(nonce))
            if !nonce.is_empty()
                && nonce.len() <= 64
                && nonce.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Ok(nonce.to_string())
        }
        _ => Err("not an airgap-verify challenge".into()),
    }
}

/// Which PROXY header preceded the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySeen {
    None,
    V1 { source: String },
    V2 { source: String },
}

impl ProxySeen {
    pub fn kind(&self) -> &'static str {
        match self {
            ProxySeen::None => "none",
            ProxySeen::V1 { .. } => "v1",
            ProxySeen::V2 { .. } => "v2",
        }
    }

    pub fn source(&self) -> &str {
        match self {
            ProxySeen::None => "-",
            ProxySeen::V1 { source } | ProxySeen::V2 { source } => source,
        }
    }
}

/// The responder's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub nonce: String,
    pub host: String,
    pub port: u16,
    pub time_ns: u128,
    pub proxy: String,
    pub proxy_source: String,
}

pub fn answer_line(
    nonce: &str,
    host: &str,
    port: u16,
    clock_offset_ns: i128,
    proxy: &ProxySeen,
) -> String {
    let t = (now_ns() as i128 + clock_offset_ns).max(0);
    format!(
        "{MAGIC} {nonce} {host} {port} {t} {} {}\n",
        proxy.kind(),
        proxy.source()
    )
}

pub fn parse_answer(line: &str) -> Result<Answer, String> {
    let f: Vec<&str> = line.trim_end().split(' ').collect();
    if f.len() != 7 || f[0] != MAGIC {
        return Err("not an airgap-verify answer".into());
    }
    Ok(Answer {
        nonce: f[1].to_string(),
        host: f[2].to_string(),
        port: f[3].parse().map_err(|_| "bad port in the answer")?,
        time_ns: f[4].parse().map_err(|_| "bad time in the answer")?,
        proxy: f[5].to_string(),
        proxy_source: f[6].to_string(),
    })
}

/// The responder's clock minus ours, from the send and receive times
/// (NTP's midpoint estimate; its error is at most half the round trip).
pub fn skew(sent_ns: u128, received_ns: u128, remote_ns: u128) -> (i128, Duration) {
    let mid = (sent_ns as i128 + received_ns as i128) / 2;
    let rtt = received_ns.saturating_sub(sent_ns);
    (
        remote_ns as i128 - mid,
        Duration::from_nanos((rtt / 2).min(u64::MAX as u128) as u64),
    )
}

/// How many bytes of `buf` a PROXY header takes, and what it said:
/// `Ok(None)` when more bytes are needed, `Ok(Some((0, None)))` when `buf`
/// does not start with a PROXY header.
pub fn parse_proxy(buf: &[u8]) -> Result<Option<(usize, ProxySeen)>, String> {
    // v1: "PROXY TCP4 src dst sport dport\r\n", at most 107 bytes.
    if buf.starts_with(b"PROXY ") || (buf.len() < 6 && b"PROXY ".starts_with(buf)) {
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
            return if buf.len() > 107 {
                Err("PROXY v1 header longer than 107 bytes".into())
            } else {
                Ok(None)
            };
        };
        let line = std::str::from_utf8(&buf[..end]).map_err(|_| "PROXY v1 header is not text")?;
        let f: Vec<&str> = line.split(' ').collect();
        let source = match f.get(1) {
            Some(&"TCP4") | Some(&"TCP6") if f.len() == 6 => format!("{}:{}", f[2], f[4]),
            Some(&"UNKNOWN") => "unknown".into(),
            _ => return Err(format!("malformed PROXY v1 header `{line}`")),
        };
        return Ok(Some((end + 2, ProxySeen::V1 { source })));
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        if buf.len() < 16 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
        if len > 216 {
            return Err(format!(
                "PROXY v2 header announces {len} bytes of addresses"
            ));
        }
        if buf.len() < 16 + len {
            return Ok(None);
        }
        let fam = buf[13];
        let a = &buf[16..16 + len];
        let source = match fam >> 4 {
            1 if a.len() >= 12 => format!(
                "{}.{}.{}.{}:{}",
                a[0],
                a[1],
                a[2],
                a[3],
                u16::from_be_bytes([a[8], a[9]])
            ),
            2 if a.len() >= 36 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[..16]);
                format!(
                    "[{}]:{}",
                    std::net::Ipv6Addr::from(o),
                    u16::from_be_bytes([a[32], a[33]])
                )
            }
            _ => "unknown".into(),
        };
        return Ok(Some((16 + len, ProxySeen::V2 { source })));
    }
    Ok(Some((0, ProxySeen::None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_and_answer_round_trip() {
        let c = challenge_line("abc123");
        assert_eq!(parse_challenge(&c).unwrap(), "abc123");
        assert!(parse_challenge("GET / HTTP/1.1\r\n").is_err());
        assert!(parse_challenge("AGV1 a;b 1\n").is_err());
        let a = answer_line(
            "abc123",
            "node1",
            8472,
            5_000_000_000,
            &ProxySeen::V1 {
                source: "10.0.0.2:5555".into(),
            },
        );
        let p = parse_answer(&a).unwrap();
        assert_eq!(
            (p.nonce.as_str(), p.port, p.proxy.as_str()),
            ("abc123", 8472, "v1")
        );
        assert_eq!(p.proxy_source, "10.0.0.2:5555");
        // The offset shows in the reported time.
        let (skew, _) = skew(now_ns(), now_ns(), p.time_ns);
        assert!((4_000_000_000..6_000_000_000).contains(&skew), "{skew}");
        assert!(parse_answer("AGV1 x").is_err());
    }

    #[test]
    fn proxy_headers_are_recognised_and_bounded() {
        let v1 = b"PROXY TCP4 10.0.255.2 10.0.255.10 40000 443\r\nAGV1 n 1\n";
        let (n, seen) = parse_proxy(v1).unwrap().unwrap();
        assert_eq!(&v1[n..n + 4], b"AGV1");
        assert_eq!(
            seen,
            ProxySeen::V1 {
                source: "10.0.255.2:40000".into()
            }
        );
        assert_eq!(parse_proxy(b"PROX").unwrap(), None, "needs more bytes");
        assert_eq!(
            parse_proxy(b"AGV1 n 1\n").unwrap(),
            Some((0, ProxySeen::None))
        );
        assert!(parse_proxy(&[b"PROXY ".as_slice(), &[b'x'; 200]].concat()).is_err());
        assert!(parse_proxy(b"PROXY BOGUS\r\n").is_err());

        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 10, 0, 255, 2, 10, 0, 255, 10, 0x9c, 0x40, 1, 187,
        ]);
        v2.extend_from_slice(b"AGV1 n 1\n");
        let (n, seen) = parse_proxy(&v2).unwrap().unwrap();
        assert_eq!(n, 28);
        assert_eq!(
            seen,
            ProxySeen::V2 {
                source: "10.0.255.2:40000".into()
            }
        );
        assert_eq!(parse_proxy(&v2[..20]).unwrap(), None);
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(parse_proxy(&huge).is_err());
    }
}
