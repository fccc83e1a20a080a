//! DNS probe: ask each configured server, over UDP and over TCP, for the
//! names the platform needs and for a public name it must not resolve.
//!
//! Built on hickory-proto's message codec with our own transport, because a
//! resolver library hides what we must report (response codes, flags, which
//! server answered, truncation).
//!
//! Guarantees:
//! - each query has one deadline; a server that does not answer is reported
//!   once (`net:timeout`) and not asked again in this run, so a blackholed
//!   server costs one deadline, not one per name;
//! - UDP is judged only by a reply or an ICMP unreachable (`net:refused`),
//!   never by a send that merely succeeded;
//! - a reply is used only if its id, question and QR bit match the query;
//!   a truncated UDP reply is retried over TCP;
//! - every address in an answer is checked against `allowed_networks`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::context::ProbeContext;
use super::dnswire::{query, rcode_name, QueryError, Reply};
use super::net::transport_name;
use crate::config::{ExpectedName, Transport};
use crate::finding::{Code, Finding, Status};

fn reply_evidence(f: Finding, r: &Reply, transport: Transport) -> Finding {
    let mut f = f
        .evidence("transport", transport_name(transport))
        .evidence("rcode", rcode_name(r.rcode))
        .evidence("flags", r.flags.clone())
        .evidence(
            "answers",
            r.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
        .evidence("latency_ms", r.latency.as_secs_f64() * 1000.0);
    if !r.cnames.is_empty() {
        f = f.evidence("cname_chain", r.cnames.clone());
    }
    if r.retried_over_tcp {
        f = f.evidence("retried_over_tcp", true);
    }
    f.duration_ms(r.latency.as_millis() as u64)
}

/// All checks against one server over one transport.
pub async fn probe(ctx: &ProbeContext, server: SocketAddr, transport: Transport) -> Vec<Finding> {
    let plan = &ctx.plan;
    let timeout = plan.deadlines.io.max(plan.deadlines.connect);
    let tname = transport_name(transport);
    let mut out = Vec::new();
    for e in &plan.dns.expect {
        let target = format!("{server}/{tname} {}", e.name);
        match check_expected(ctx, server, transport, e, timeout, &target).await {
            Ok(f) => out.extend(f),
            Err(stop) => {
                // The server itself is unreachable: one finding, no more queries.
                out.push(stop);
                return out;
            }
        }
    }
    for name in &plan.dns.public_names {
        let target = format!("{server}/{tname} {name}");
        match query(server, name, RecordType::A, transport, timeout).await {
            Err(QueryError::Net(e)) => {
                out.push(e.finding(format!("{server}/{tname}"), "DNS server"));
                return out;
            }
            Err(QueryError::Bad(m)) => out.push(
                Finding::new(Code::DnsBadReply, target, format!("public name {name}: {m}"))
                    .evidence("transport", tname),
            ),
            Ok(r) if r.rcode == ResponseCode::NoError && !r.addrs.is_empty() => {
                let mut f = Finding::new(
                    Code::DnsRecursionLeak,
                    target,
                    format!(
                        "the server resolved the public name {name} to {}: it reaches a resolver outside the perimeter",
                        join(&r.addrs)
                    ),
                );
                if plan.strict_airgap {
                    f = f.with_status(Status::Fail).evidence("strict_airgap", true);
                }
                out.push(reply_evidence(f, &r, transport));
            }
            Ok(r) => out.push(reply_evidence(
                Finding::new(
                    Code::DnsNoRecursion,
                    target,
                    format!("the public name {name} was not resolved ({}), as expected of an air-gapped resolver", rcode_name(r.rcode)),
                ),
                &r,
                transport,
            )),
        }
    }
    out
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one expected name. `Err` carries the finding that ends the probe
/// of this server (it does not answer at all).
async fn check_expected(
    ctx: &ProbeContext,
    server: SocketAddr,
    transport: Transport,
    e: &ExpectedName,
    timeout: Duration,
    target: &str,
) -> Result<Vec<Finding>, Finding> {
    let tname = transport_name(transport);
    let want_v6 = e.addresses.iter().any(|a| a.is_ipv6());
    let want_v4 = e.addresses.is_empty() || e.addresses.iter().any(|a| a.is_ipv4());
    let mut types = Vec::new();
    if want_v4 {
        types.push(RecordType::A);
    }
    if want_v6 {
        types.push(RecordType::AAAA);
    }
    let mut got: Option<Reply> = None;
    for t in types {
        match query(server, &e.name, t, transport, timeout).await {
            Err(QueryError::Net(err)) => {
                return Err(err.finding(format!("{server}/{tname}"), "DNS server"));
            }
            Err(QueryError::Bad(m)) => {
                return Ok(vec![Finding::new(
                    Code::DnsBadReply,
                    target,
                    format!("{}: {m}", e.name),
                )
                .evidence("transport", tname)]);
            }
            Ok(r) => {
                got = Some(match got {
                    None => r,
                    Some(mut prev) => {
                        if prev.rcode == ResponseCode::NoError {
                            prev.addrs.extend(r.addrs);
                            prev.latency += r.latency;
                            prev
                        } else {
                            r
                        }
                    }
                });
            }
        }
    }
    let Some(r) = got else { return Ok(Vec::new()) };
    let f = match r.rcode {
        ResponseCode::NoError if r.addrs.is_empty() => Finding::new(
            Code::DnsNoAnswer,
            target,
            format!("{} has no address record (NOERROR, empty answer)", e.name),
        ),
        ResponseCode::NoError => {
            let outside: Vec<IpAddr> = r
                .addrs
                .iter()
                .copied()
                .filter(|a| !ctx.plan.allows(*a))
                .collect();
            let got: BTreeSet<IpAddr> = r.addrs.iter().copied().collect();
            let want: BTreeSet<IpAddr> = e.addresses.iter().copied().collect();
            if !outside.is_empty() {
                Finding::new(
                    Code::DnsOutsidePerimeter,
                    target,
                    format!(
                        "{} resolves to {}, outside allowed_networks",
                        e.name,
                        join(&outside)
                    ),
                )
                .evidence(
                    "outside",
                    outside.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                )
            } else if let Some((ip, (net, label))) = r
                .addrs
                .iter()
                .find_map(|a| crate::config::cluster_network_of(*a).map(|c| (*a, c)))
            {
                Finding::new(
                    Code::DnsClusterNetworkOverlap,
                    target,
                    format!(
                        "{} resolves to {ip}, in the cluster's {label} {net}: from a node it leads into the cluster",
                        e.name
                    ),
                )
                .evidence("address", ip.to_string())
                .evidence("cluster_network", net)
            } else if !want.is_empty() && got != want {
                Finding::new(
                    Code::DnsWrongAddress,
                    target,
                    format!(
                        "{} resolves to {}, expected {}",
                        e.name,
                        join(&r.addrs),
                        join(&e.addresses)
                    ),
                )
                .evidence(
                    "expected",
                    e.addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>(),
                )
            } else {
                Finding::new(
                    Code::DnsAnswer,
                    target,
                    format!("{} resolves to {}", e.name, join(&r.addrs)),
                )
            }
        }
        ResponseCode::NXDomain => Finding::new(
            Code::DnsNoAnswer,
            target,
            format!("{} does not exist on this server (NXDOMAIN)", e.name),
        ),
        other => Finding::new(
            Code::DnsServerError,
            target,
            format!("the server answered {} for {}", rcode_name(other), e.name),
        ),
    };
    Ok(vec![reply_evidence(f, &r, transport)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::dnswire::{decode_reply, encode_query};
    use hickory_proto::op::{Message, MessageType};

    #[test]
    fn reply_must_match_query() {
        let (id, q) = encode_query("a.example", RecordType::A).unwrap();
        let mut m = Message::from_vec(&q).unwrap();
        m.metadata.message_type = MessageType::Response;
        let ok = m.to_vec().unwrap();
        assert!(decode_reply(&ok, id, "a.example", RecordType::A).is_ok());
        assert!(
            decode_reply(&ok, id.wrapping_add(1), "a.example", RecordType::A)
                .unwrap_err()
                .contains("does not match")
        );
        assert!(decode_reply(&ok, id, "b.example", RecordType::A)
            .unwrap_err()
            .contains("different question"));
        assert!(decode_reply(&q, id, "a.example", RecordType::A)
            .unwrap_err()
            .contains("QR bit"));
        assert!(decode_reply(&ok[..5], id, "a.example", RecordType::A).is_err());
    }
}
