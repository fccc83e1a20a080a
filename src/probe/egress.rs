//! The proof of the air gap: `airgap-verify egress`, and part of `check`.
//!
//! Static checks (no packet leaves the perimeter): every endpoint the
//! configuration names, and every address the configured DNS returns for it,
//! lies inside `allowed_networks`; every proxy of the environment and of the
//! vendor's `config.yml` is reported with what it would carry, and a Git,
//! registry or S3 host that its `no_proxy` does not cover is a failure.
//!
//! Active checks, only with `--probe-internet`: public names are asked of
//! the configured resolvers, TCP connections are tried to public addresses,
//! an SNTP request is sent to public NTP servers. Each must fail; an answer
//! is a warning (a failure with `--strict-airgap`).
//!
//! Guarantees:
//! - this is the only code that sends anything to an address outside
//!   `allowed_networks`, it does so only with `--probe-internet`, and only to
//!   the targets of the plan (the built-in defaults of [`crate::config`] or
//!   `egress.*` of perimeter.yml, listed by `egress --dry-run`); names are
//!   only ever asked of the configured DNS servers (the system resolver only
//!   when none is configured, as every other probe does);
//! - each active attempt has one deadline (`egress.deadline`, 2 s by
//!   default); a blocked network costs at most that per target, in parallel;
//! - a proxy URL appears only with its password replaced by `***`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::context::ProbeContext;
use super::net::NetError;
use crate::config::proxy::{self, NoProxy};
use crate::config::{Endpoint, Transport};
use crate::finding::{Code, Finding, Status};

fn strs<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// What the resolver said about one host.
type Lookup = Result<(Vec<IpAddr>, String), String>;

/// Resolves every host at once (each lookup has its own deadline).
async fn resolve_all(ctx: &Arc<ProbeContext>, hosts: Vec<String>) -> Vec<(String, Lookup)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, host) in hosts.into_iter().enumerate() {
        let ctx = ctx.clone();
        set.spawn(async move {
            let r = ctx
                .resolver
                .resolve(&host)
                .await
                .map(|r| (r.addrs, r.via))
                .map_err(|e| e.describe());
            (i, host, r)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(x) = r {
            out.push(x);
        }
    }
    out.sort_by_key(|x| x.0);
    out.into_iter().map(|(_, h, r)| (h, r)).collect()
}

/// The static checks: endpoints and proxies.
pub async fn static_checks(ctx: Arc<ProbeContext>) -> Vec<Finding> {
    let plan = ctx.plan.clone();
    let eg = &plan.egress;
    let mut out = Vec::new();
    if plan.allowed_networks.is_empty() {
        let f = Finding::new(
            Code::EgressNoPerimeter,
            "allowed_networks",
            "allowed_networks is `[]`: no address can be judged inside or outside the perimeter, so the air gap cannot be proven",
        );
        // --strict-airgap asks for a proof: one that cannot be made fails.
        out.push(if plan.strict_airgap {
            f.with_status(crate::finding::Status::Fail)
        } else {
            f
        });
    }

    // Every host to resolve once: endpoints and proxies.
    let mut hosts: Vec<String> = eg.endpoints.iter().map(|e| e.host.clone()).collect();
    for g in &eg.proxies {
        hosts.extend(g.proxies.iter().filter_map(|p| p.host.clone()));
    }
    hosts.sort();
    hosts.dedup();
    let resolved = resolve_all(&ctx, hosts).await;
    let lookup = |h: &str| -> &Lookup {
        &resolved
            .iter()
            .find(|(x, _)| x == h)
            .expect("every host was resolved")
            .1
    };

    if !plan.allowed_networks.is_empty() {
        for e in &eg.endpoints {
            out.push(endpoint_finding(&plan, e, lookup(&e.host)));
        }
    }

    // Proxies.
    let any_proxy = eg.proxies.iter().any(|g| !g.proxies.is_empty());
    if !any_proxy {
        let mut f = Finding::new(
            Code::EgressProxyNone,
            "proxies",
            "no proxy is set: neither HTTP_PROXY, HTTPS_PROXY (nor their lower-case forms) in the environment nor a proxy in the vendor's config.yml",
        );
        if let Some(g) = eg.proxies.iter().find(|g| g.no_proxy_source.is_some()) {
            f = f.evidence("no_proxy", g.no_proxy.clone());
        }
        out.push(f);
    }
    for g in eg.proxies.iter().filter(|g| !g.proxies.is_empty()) {
        // The HTTP services this scope carries.
        let carried: Vec<&Endpoint> = eg
            .endpoints
            .iter()
            .filter(|e| e.scheme.is_some() && g.scope.carries(&e.what))
            .collect();
        let mut routed_by: Vec<(&Endpoint, Vec<&proxy::Proxy>, NoProxy)> = Vec::new();
        for e in &carried {
            let scheme = e.scheme.unwrap_or("https");
            let via: Vec<&proxy::Proxy> = g
                .proxies
                .iter()
                .filter(|p| p.schemes.contains(&scheme))
                .collect();
            if via.is_empty() {
                continue;
            }
            let addrs = match lookup(&e.host) {
                Ok((a, _)) => a.clone(),
                Err(_) => Vec::new(),
            };
            routed_by.push((e, via, proxy::covers(&g.no_proxy, &e.host, &addrs)));
        }
        for p in &g.proxies {
            out.push(proxy_finding(
                &plan,
                g,
                p,
                &routed_by,
                p.host.as_deref().map(lookup),
            ));
        }
        for (e, via, np) in &routed_by {
            if let NoProxy::Covered(_) = np {
                continue;
            }
            let sources: Vec<String> = via.iter().map(|p| p.source.clone()).collect();
            let np_src = g
                .no_proxy_source
                .clone()
                .unwrap_or_else(|| "no no_proxy".into());
            let why = match np {
                NoProxy::CidrOnly(c) => format!(
                    "; no_proxy holds {c}, which contains its address, but a CIDR never matches a host name"
                ),
                _ => String::new(),
            };
            let mut f = Finding::new(
                Code::EgressProxyNotBypassed,
                e.shown.clone(),
                format!(
                    "the {} host {} is not covered by {np_src}: {} traffic to it goes through {} ({}){why}",
                    e.what,
                    e.host,
                    g.scope.name(),
                    via.iter().map(|p| p.url.as_str()).collect::<Vec<_>>().join(", "),
                    sources.join(", "),
                ),
            )
            .evidence("scope", g.scope.name())
            .evidence("service", e.what.clone())
            .evidence("host", e.host.clone())
            .evidence("proxy_sources", sources)
            .evidence("no_proxy", g.no_proxy.clone());
            if let Some(s) = &g.no_proxy_source {
                f = f.evidence("no_proxy_source", s.clone());
            }
            if let NoProxy::CidrOnly(c) = np {
                f = f.evidence("cidr_entry", c.clone());
            }
            out.push(f);
        }
    }

    if !eg.probe_internet {
        out.push(
            Finding::new(
                Code::EgressNotProbed,
                "--probe-internet",
                "the active checks did not run: only --probe-internet lets the tool try to reach the public targets",
            )
            .evidence("internet_names", eg.internet_names.clone())
            .evidence("internet_addresses", strs(&eg.internet_addresses))
            .evidence("ntp_pool", strs(&eg.ntp_pool)),
        );
    }
    out
}

fn endpoint_finding(plan: &crate::config::Perimeter, e: &Endpoint, r: &Lookup) -> Finding {
    let target = format!("{} {}", e.what, e.shown);
    match r {
        Err(why) => Finding::new(
            Code::EgressNotResolved,
            target,
            format!("{} did not resolve ({why}): nothing can reach it, so it cannot lead outside; its own probe says why", e.host),
        ),
        Ok((addrs, via)) => {
            let outside: Vec<IpAddr> = addrs.iter().copied().filter(|a| !plan.allows(*a)).collect();
            let f = if outside.is_empty() {
                let msg = if e.host.parse::<IpAddr>().is_ok() {
                    format!("the address {} is inside allowed_networks", e.host)
                } else {
                    format!(
                        "{} and every address it resolves to ({}) are inside allowed_networks",
                        e.host,
                        strs(addrs).join(", ")
                    )
                };
                Finding::new(Code::EgressInside, target, msg)
            } else {
                let msg = if e.host.parse::<IpAddr>().is_ok() {
                    format!("the address {} is outside allowed_networks", e.host)
                } else {
                    format!(
                        "{} resolves to {}, outside allowed_networks",
                        e.host,
                        strs(&outside).join(", ")
                    )
                };
                Finding::new(Code::EgressOutside, target, msg)
                .evidence("outside", strs(&outside))
            };
            f.evidence("addresses", strs(addrs)).evidence("via", via.clone())
        }
    }
}

fn proxy_finding(
    plan: &crate::config::Perimeter,
    g: &proxy::ProxyGroup,
    p: &proxy::Proxy,
    routed_by: &[(&Endpoint, Vec<&proxy::Proxy>, NoProxy)],
    host: Option<&Lookup>,
) -> Finding {
    let carried: Vec<String> = routed_by
        .iter()
        .filter(|(_, via, np)| via.contains(&p) && !matches!(np, NoProxy::Covered(_)))
        .map(|(e, _, _)| format!("{} {}", e.what, e.host))
        .collect();
    let bypassed: Vec<String> = routed_by
        .iter()
        .filter(|(_, via, np)| via.contains(&p) && matches!(np, NoProxy::Covered(_)))
        .map(|(e, _, _)| format!("{} {}", e.what, e.host))
        .collect();
    let routes = if carried.is_empty() {
        String::new()
    } else {
        format!("{}, and ", carried.join(", "))
    };
    let (addrs, outside): (Vec<IpAddr>, Vec<IpAddr>) = match host {
        Some(Ok((a, _))) => (
            a.clone(),
            a.iter().copied().filter(|x| !plan.allows(*x)).collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let is_outside = !outside.is_empty() && !plan.allowed_networks.is_empty();
    let mut f = Finding::new(
        if is_outside {
            Code::EgressProxyOutside
        } else {
            Code::EgressProxy
        },
        p.source.clone(),
        format!(
            "{} = {} sends the {} traffic of {} (scope {}) through {}: {routes}every destination no_proxy does not cover{}",
            p.source,
            p.url,
            p.schemes.join(" and "),
            match g.scope {
                proxy::ProxyScope::Environment => "this host and the installer run from it",
                proxy::ProxyScope::Platform => "the platform's services",
                proxy::ProxyScope::K3s => "k3s and containerd (image pulls)",
                proxy::ProxyScope::Git => "the installer's Git pushes",
            },
            g.scope.name(),
            p.host.as_deref().unwrap_or("an unnamed host"),
            if is_outside {
                format!(
                    "; the proxy itself is at {}, outside allowed_networks: whatever it carries leaves the perimeter",
                    strs(&outside).join(", ")
                )
            } else if let Some(Err(e)) = host {
                format!("; the proxy's name did not resolve ({e})")
            } else {
                String::new()
            }
        ),
    )
    .evidence("scope", g.scope.name())
    .evidence("url", p.url.clone())
    .evidence("schemes", p.schemes.clone())
    .evidence("routed", carried)
    .evidence("bypassed", bypassed)
    .evidence("no_proxy", g.no_proxy.clone());
    if let Some(h) = &p.host {
        f = f.evidence("proxy_host", h.clone());
    }
    if !addrs.is_empty() {
        f = f.evidence("proxy_addresses", strs(&addrs));
    }
    f
}

/// An answer from outside: a warning, a failure with `--strict-airgap`.
fn answered(ctx: &ProbeContext, f: Finding) -> Finding {
    if ctx.plan.strict_airgap {
        f.with_status(Status::Fail).evidence("strict_airgap", true)
    } else {
        f
    }
}

/// Public names through one configured DNS server (`None`: the system
/// resolver, `/etc/hosts` and `/etc/resolv.conf` read by us, when no server
/// is configured).
pub async fn probe_dns(ctx: &ProbeContext, server: Option<SocketAddr>) -> Vec<Finding> {
    let eg = &ctx.plan.egress;
    let d = eg.deadline;
    let via = server.map_or("system resolver".to_string(), |s| format!("{s}/udp"));
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for name in &eg.internet_names {
        let started = Instant::now();
        let r: Result<Vec<IpAddr>, String> = match server {
            Some(s) => match super::dnswire::query(s, name, RecordType::A, Transport::Udp, d).await
            {
                Ok(r) if r.rcode == ResponseCode::NoError => Ok(r.addrs),
                Ok(r) => Err(super::dnswire::rcode_name(r.rcode)),
                Err(super::dnswire::QueryError::Net(e)) => {
                    // The server does not answer at all: nothing will resolve.
                    let mut f = Finding::new(
                        Code::EgressBlocked,
                        via.clone(),
                        format!(
                            "the resolver does not answer ({}): it resolves no public name",
                            e.describe()
                        ),
                    )
                    .evidence("check", "dns");
                    f = f.evidence("names", eg.internet_names.clone());
                    out.push(f);
                    return out;
                }
                Err(super::dnswire::QueryError::Bad(m)) => Err(m),
            },
            None => match ctx.resolver.system_lookup(name, d).await {
                Ok((addrs, _)) => Ok(addrs),
                Err(e) => Err(e.describe()),
            },
        };
        match r {
            Ok(addrs) if !addrs.is_empty() => out.push(answered(
                ctx,
                Finding::new(
                    Code::EgressDnsAnswered,
                    format!("{via} {name}"),
                    format!(
                        "the public name {name} resolved to {} through {via}: names outside the perimeter resolve",
                        strs(&addrs).join(", ")
                    ),
                )
                .evidence("answers", strs(&addrs))
                .evidence("via", via.clone())
                .duration_ms(started.elapsed().as_millis() as u64),
            )),
            Ok(_) => refused.push(format!("{name}: no address")),
            Err(why) => refused.push(format!("{name}: {why}")),
        }
    }
    if !refused.is_empty() && out.is_empty() {
        out.push(
            Finding::new(
                Code::EgressBlocked,
                via.clone(),
                format!(
                    "no public name resolved through {via} ({})",
                    refused.join("; ")
                ),
            )
            .evidence("check", "dns")
            .evidence("names", eg.internet_names.clone())
            .evidence("results", refused),
        );
    }
    out
}

/// One TCP connection attempt to a public address.
pub async fn probe_tcp(ctx: &ProbeContext, addr: SocketAddr) -> Vec<Finding> {
    let d = ctx.plan.egress.deadline;
    let started = Instant::now();
    let r = match tokio::time::timeout(d, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(NetError::from_connect(&e)),
        Err(_) => Err(NetError::Timeout(d)),
    };
    let ms = started.elapsed().as_millis() as u64;
    vec![match r {
        Ok(s) => {
            let local = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
            drop(s);
            answered(
                ctx,
                Finding::new(
                    Code::EgressTcpConnected,
                    addr.to_string(),
                    format!("a TCP connection to the public address {addr} was accepted: this host reaches the internet"),
                )
                .evidence("local_address", local)
                .duration_ms(ms),
            )
        }
        Err(e) => blocked(addr, "tcp", &e, d).duration_ms(ms),
    }]
}

fn blocked(addr: SocketAddr, check: &str, e: &NetError, d: Duration) -> Finding {
    Finding::new(
        Code::EgressBlocked,
        addr.to_string(),
        format!(
            "{check} to the public address {addr} failed, as it must: {}",
            e.describe()
        ),
    )
    .evidence("check", check)
    .evidence("error", e.code().id())
    .evidence("deadline_ms", d.as_millis() as u64)
}

/// One SNTP request to a public NTP server.
pub async fn probe_ntp(ctx: &ProbeContext, addr: SocketAddr) -> Vec<Finding> {
    let d = ctx.plan.egress.deadline;
    let started = Instant::now();
    let r = super::ntp::exchange(addr, d).await;
    let ms = started.elapsed().as_millis() as u64;
    vec![match r {
        Ok((bytes, t1, _)) => {
            let valid = super::ntp::parse_reply(&bytes, t1);
            let mut f = Finding::new(
                Code::EgressNtpAnswered,
                addr.to_string(),
                format!(
                    "the public NTP server {addr} answered ({}): UDP reaches the internet",
                    match &valid {
                        Ok(r) => format!("stratum {}", r.stratum),
                        Err(m) => format!("an unusable reply: {m}"),
                    }
                ),
            )
            .evidence("reply_bytes", bytes.len() as u64)
            .duration_ms(ms);
            if let Ok(r) = valid {
                f = f.evidence("stratum", r.stratum);
            }
            answered(ctx, f)
        }
        Err(e) => blocked(addr, "ntp", &e, d).duration_ms(ms),
    }]
}

/// The static egress checks in words, for `--dry-run`.
pub fn describe_static(plan: &crate::config::Perimeter) -> String {
    let eg = &plan.egress;
    format!(
        "egress static: {} endpoint(s) against {} allowed network(s); {} proxy setting(s){}",
        eg.endpoints.len(),
        plan.allowed_networks.len(),
        eg.proxies.iter().map(|g| g.proxies.len()).sum::<usize>(),
        eg.proxies
            .iter()
            .flat_map(|g| g.proxies.iter().map(|p| format!(" {}={}", p.source, p.url)))
            .collect::<String>()
    )
}

/// `--probe-internet` in words, for `--dry-run`.
pub fn describe_internet(plan: &crate::config::Perimeter) -> String {
    let eg = &plan.egress;
    let servers = if plan.dns.servers.is_empty() {
        "the system resolver".to_string()
    } else {
        strs(&plan.dns.servers).join(", ")
    };
    format!(
            "egress --probe-internet (deadline {}): resolve {} through {servers}; TCP connect to {}; SNTP to {}",
            crate::timefmt::fmt_duration(eg.deadline),
            if eg.internet_names.is_empty() { "nothing".into() } else { eg.internet_names.join(", ") },
            if eg.internet_addresses.is_empty() { "nothing".into() } else { strs(&eg.internet_addresses).join(", ") },
        if eg.ntp_pool.is_empty() { "nothing".into() } else { strs(&eg.ntp_pool).join(", ") },
    )
}
