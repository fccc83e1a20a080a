//! The probes of a run, as data. [`specs`] turns a validated plan and a
//! [`Selection`] into a list of [`ProbeSpec`]s; `--dry-run` prints each
//! one's [`ProbeSpec::describe`], and the run starts each one's
//! [`ProbeSpec::start`]: the plan shown and the plan run are the same list,
//! so they cannot drift apart.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::context::ProbeContext;
use super::{dns, egress, flows, git, net, ntp, platform_cert, registry, s3, s3bench, smtp};
use crate::config::{Perimeter, Transport};
use crate::finding::Finding;
use crate::profiles::Profile;

/// Which probes a run starts.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The egress checks and DNS, NTP, SMTP, Git, registry, S3 as
    /// configured.
    pub services: bool,
    /// The flows this host starts, as this role, from this profile
    /// (resolved once, when the plan was made).
    pub flows: Option<(flows::SourceRole, crate::profiles::Profile)>,
}

impl Selection {
    pub const SERVICES: Selection = Selection {
        services: true,
        flows: None,
    };
}

type ProbeFuture = Pin<Box<dyn Future<Output = Vec<Finding>> + Send>>;

/// One unit of concurrent work: a name for progress, and its future.
pub(super) struct Probe {
    pub(super) name: String,
    /// The target used if the probe overruns its budget.
    pub(super) target: String,
    pub(super) fut: ProbeFuture,
    /// A budget of its own, for probes that measure rather than ask.
    pub(super) budget: Option<Duration>,
}

/// The hard budget of one probe: its steps' deadlines, plus slack. A probe
/// that still runs then is cut off with `net:no-reply`; probes keep their
/// own, finer deadlines, so this only fires on a bug.
pub(super) fn budget(plan: &Perimeter, io_steps: u32) -> Duration {
    let d = plan.deadlines;
    d.connect + d.handshake * 2 + d.io * io_steps + Duration::from_millis(500)
}

/// One check of the live run.
#[derive(Debug, Clone)]
pub enum ProbeSpec {
    /// The static egress checks (proxies, endpoints against the allowed
    /// networks); always part of an egress run.
    EgressStatic,
    /// `--probe-internet`: one attempt per public target, all at once.
    EgressInternet,
    /// The platform's certificate, checked where it is: nothing contacted.
    PlatformCert,
    Dns {
        server: SocketAddr,
        transport: Transport,
    },
    /// `ntp.servers[i]`.
    Ntp(usize),
    /// `smtp[i]`.
    Smtp(usize),
    Git,
    Registry,
    S3,
    S3Benchmark,
    /// The flows this host starts, as `role`.
    Flows {
        role: flows::SourceRole,
        profile: Profile,
    },
}

/// The probes `select` starts for `plan`, in the order `--dry-run` lists them.
pub fn specs(plan: &Perimeter, select: &Selection) -> Vec<ProbeSpec> {
    let mut out = Vec::new();
    if select.services {
        if plan.egress.enabled {
            out.push(ProbeSpec::EgressStatic);
            if plan.egress.probe_internet {
                out.push(ProbeSpec::EgressInternet);
            }
        }
        if plan.run_services {
            if plan.platform_cert.is_some() {
                out.push(ProbeSpec::PlatformCert);
            }
            for &server in &plan.dns.servers {
                for &transport in &plan.dns.transports {
                    out.push(ProbeSpec::Dns { server, transport });
                }
            }
            out.extend((0..plan.ntp.servers.len()).map(ProbeSpec::Ntp));
            out.extend((0..plan.smtp.len()).map(ProbeSpec::Smtp));
            if plan.git.is_some() {
                out.push(ProbeSpec::Git);
            }
            if plan.registry.is_some() {
                out.push(ProbeSpec::Registry);
            }
            if plan.s3.is_some() {
                out.push(ProbeSpec::S3);
                if plan.s3_benchmark {
                    out.push(ProbeSpec::S3Benchmark);
                }
            }
        }
    }
    if let (Some((role, profile)), Some(_)) = (&select.flows, &plan.flows) {
        out.push(ProbeSpec::Flows {
            role: *role,
            profile: profile.clone(),
        });
    }
    out
}

/// The plan in words for `--dry-run`: the run's settings (when services
/// are selected), then each probe of [`specs`].
pub fn describe(plan: &Perimeter, select: &Selection) -> Vec<String> {
    let mut out = Vec::new();
    if select.services {
        out.push(format!(
            "deadlines: connect {}, handshake {}, io {}",
            crate::timefmt::fmt_duration(plan.deadlines.connect),
            crate::timefmt::fmt_duration(plan.deadlines.handshake),
            crate::timefmt::fmt_duration(plan.deadlines.io)
        ));
        out.push(format!(
            "trust: {}",
            match (&plan.ca_bundle, plan.system_roots) {
                (Some(ca), false) => ca.display().to_string(),
                (Some(ca), true) => format!("{} and the system roots", ca.display()),
                (None, true) => "the system roots".into(),
                (None, false) => "nothing (no ca_bundle: every TLS check will fail)".into(),
            }
        ));
        for f in &plan.findings {
            out.push(format!(
                "config finding: {} {}: {}",
                f.code, f.target, f.message
            ));
        }
    }
    for spec in specs(plan, select) {
        out.extend(spec.describe(plan));
    }
    out
}

impl ProbeSpec {
    /// This probe in words, for `--dry-run`.
    pub fn describe(&self, plan: &Perimeter) -> Vec<String> {
        match self {
            ProbeSpec::EgressStatic => {
                let mut v = vec![egress::describe_static(plan)];
                if !plan.egress.probe_internet {
                    v.push(
                        "egress: no public target is contacted (--probe-internet is not set)"
                            .into(),
                    );
                }
                v
            }
            ProbeSpec::EgressInternet => vec![egress::describe_internet(plan)],
            ProbeSpec::PlatformCert => plan
                .platform_cert
                .iter()
                .map(|pc| {
                    format!(
                        "platform certificate for {}: {}",
                        pc.hosts.join(", "),
                        match (&pc.cert_pem, &pc.key_pem) {
                            (Some(_), Some(_)) =>
                                "TRAEFIK_PUBKEY's chain, names and key checked here (nothing contacted)",
                            _ =>
                                "TRAEFIK_PUBKEY and TRAEFIK_PRIVKEY are not both set: reported as such (nothing contacted)",
                        }
                    )
                })
                .collect(),
            ProbeSpec::Dns { server, transport } => vec![format!(
                "dns {server}/{}: {} expected name(s), {} public name(s)",
                net::transport_name(*transport),
                plan.dns.expect.len(),
                plan.dns.public_names.len()
            )],
            ProbeSpec::Ntp(i) => vec![format!(
                "ntp {}: max offset {}, max stratum {}",
                plan.ntp.servers[*i],
                crate::timefmt::fmt_duration(plan.ntp.max_offset),
                plan.ntp.max_stratum
            )],
            ProbeSpec::Smtp(i) => {
                let s = &plan.smtp[*i];
                vec![format!(
                    "smtp {}: {}{}{}",
                    s.target,
                    if s.tls {
                        "implicit TLS"
                    } else if s.starttls {
                        "STARTTLS required"
                    } else {
                        "STARTTLS optional"
                    },
                    if s.username.is_some() { ", AUTH" } else { "" },
                    match (plan.send_test_mail, &s.mail_from, &s.rcpt_to) {
                        (true, Some(from), Some(to)) => format!(
                            ", sends one test message from {from} to {to} (--send-test-mail)"
                        ),
                        (true, _, _) =>
                            ", no test message (--send-test-mail needs mail_from and rcpt_to)"
                                .into(),
                        (false, _, _) => String::new(),
                    }
                )]
            }
            ProbeSpec::Git => plan
                .git
                .iter()
                .map(|g| {
                    format!(
                        "git {}: branch {}{}{}",
                        g.url,
                        g.branch,
                        if g.username.is_some() {
                            ", push access"
                        } else {
                            ""
                        },
                        if plan.write_probe {
                            ", write probe"
                        } else {
                            ""
                        }
                    )
                })
                .collect(),
            ProbeSpec::Registry => plan
                .registry
                .iter()
                .map(|r| {
                    format!(
                        "registry {}: project {}, check repository {}{}{}",
                        r.url,
                        r.project,
                        r.check_repo,
                        if r.images.is_empty() {
                            String::new()
                        } else {
                            format!(", {} image(s)", r.images.len())
                        },
                        if plan.write_probe {
                            ", write probe"
                        } else {
                            ""
                        }
                    )
                })
                .collect(),
            ProbeSpec::S3 => plan.s3.iter().map(|s| describe_s3(plan, s)).collect(),
            ProbeSpec::S3Benchmark => plan
                .s3
                .iter()
                .map(|s| {
                    format!(
                        "s3 benchmark {}: {} x {} MiB each way, {} small objects, {} in flight, at most {} s",
                        s.endpoint,
                        s3bench::LARGE_COUNT,
                        s3bench::LARGE_SIZE >> 20,
                        s3bench::SMALL_COUNT,
                        s3bench::CONCURRENCY,
                        s3bench::DEADLINE.as_secs()
                    )
                })
                .collect(),
            ProbeSpec::Flows { role, profile } => flows::describe(plan, *role, profile),
        }
    }

    /// The concurrent work this probe is, each piece with its budget.
    pub(super) fn start(&self, ctx: &Arc<ProbeContext>) -> Vec<Probe> {
        let plan = &ctx.plan;
        let c = ctx.clone();
        match self {
            ProbeSpec::EgressStatic => vec![Probe {
                name: "egress static".into(),
                target: "egress".into(),
                fut: Box::pin(egress::static_checks(c)),
                budget: None,
            }],
            ProbeSpec::EgressInternet => egress_internet(ctx),
            ProbeSpec::PlatformCert => vec![Probe {
                name: "platform certificate".into(),
                target: "platform certificate".into(),
                fut: Box::pin(async move {
                    match &c.plan.platform_cert {
                        Some(pc) => platform_cert::check(pc, &c.tls),
                        None => Vec::new(),
                    }
                }),
                budget: None,
            }],
            &ProbeSpec::Dns { server, transport } => vec![Probe {
                name: format!("dns {server} {}", net::transport_name(transport)),
                target: format!("{server}/{}", net::transport_name(transport)),
                fut: Box::pin(async move { dns::probe(&c, server, transport).await }),
                budget: None,
            }],
            &ProbeSpec::Ntp(i) => {
                let target = plan.ntp.servers[i].clone();
                vec![Probe {
                    name: format!("ntp {target}"),
                    target: target.to_string(),
                    fut: Box::pin(async move { ntp::probe(&c, &c.plan.ntp.servers[i]).await }),
                    budget: None,
                }]
            }
            &ProbeSpec::Smtp(i) => {
                let target = plan.smtp[i].target.to_string();
                vec![Probe {
                    name: format!("smtp {target}"),
                    target,
                    fut: Box::pin(async move { smtp::probe(&c, &c.plan.smtp[i]).await }),
                    budget: None,
                }]
            }
            ProbeSpec::Git => plan
                .git
                .iter()
                .map(|g| Probe {
                    name: format!("git {}", g.url),
                    target: g.url.clone(),
                    fut: {
                        let c = c.clone();
                        Box::pin(async move {
                            match &c.plan.git {
                                Some(git) => git::probe(&c, git).await,
                                None => Vec::new(),
                            }
                        })
                    },
                    budget: None,
                })
                .collect(),
            ProbeSpec::Registry => plan
                .registry
                .iter()
                .map(|r| Probe {
                    name: format!("registry {}", r.url),
                    target: r.url.clone(),
                    fut: {
                        let c = c.clone();
                        Box::pin(async move {
                            match &c.plan.registry {
                                Some(reg) => registry::probe(&c, reg).await,
                                None => Vec::new(),
                            }
                        })
                    },
                    // One more request per image of the release, looked up
                    // one after the other: a release of thousands of images
                    // must not run out of the fixed budget of a handful of
                    // requests.
                    budget: Some(budget(plan, 16u32.saturating_add(r.images.len() as u32))),
                })
                .collect(),
            ProbeSpec::S3 => plan
                .s3
                .iter()
                .map(|s| Probe {
                    name: format!("s3 {}", s.endpoint),
                    target: s.endpoint.clone(),
                    fut: {
                        let c = c.clone();
                        Box::pin(async move {
                            match &c.plan.s3 {
                                Some(s3) => s3::probe(&c, s3).await,
                                None => Vec::new(),
                            }
                        })
                    },
                    // Each round of buckets: a listing, HeadBucket, and up
                    // to six requests of the write probe.
                    budget: Some(budget(plan, 8 + 8 * s3::rounds(s.buckets.len()))),
                })
                .collect(),
            ProbeSpec::S3Benchmark => plan
                .s3
                .iter()
                .map(|s| Probe {
                    name: format!("s3 benchmark {}", s.endpoint),
                    target: s.endpoint.clone(),
                    fut: {
                        let c = c.clone();
                        Box::pin(async move {
                            match &c.plan.s3 {
                                Some(s3) => s3bench::probe(&c, s3).await,
                                None => Vec::new(),
                            }
                        })
                    },
                    // Its own deadline, plus the clean-up of what it wrote.
                    budget: Some(s3bench::DEADLINE + budget(plan, 4)),
                })
                .collect(),
            ProbeSpec::Flows { role, profile } => {
                let (role, profile) = (*role, profile.clone());
                let deadline = plan
                    .flows
                    .as_ref()
                    .and_then(|f| f.deadline)
                    .unwrap_or(plan.deadlines.connect);
                vec![Probe {
                    name: format!("flows as {}", role.role().name()),
                    target: "flows".into(),
                    fut: Box::pin(async move { flows::run(&c, role, &profile).await }),
                    // Every flow runs at once within its deadline; resolving
                    // the hosts comes first.
                    budget: Some(deadline * 2 + plan.deadlines.connect + Duration::from_secs(1)),
                }]
            }
        }
    }
}

/// `--probe-internet`: one attempt per target, all at once; each has the
/// egress deadline.
fn egress_internet(ctx: &Arc<ProbeContext>) -> Vec<Probe> {
    let plan = &ctx.plan;
    let eg = &plan.egress;
    let mut probes = Vec::new();
    let slack = Duration::from_millis(500);
    if !eg.internet_names.is_empty() {
        let servers: Vec<Option<SocketAddr>> = if plan.dns.servers.is_empty() {
            vec![None]
        } else {
            plan.dns.servers.iter().copied().map(Some).collect()
        };
        for server in servers {
            let c = ctx.clone();
            let via = server.map_or("system resolver".to_string(), |s| format!("{s}/udp"));
            probes.push(Probe {
                name: format!("egress dns {via}"),
                target: via,
                fut: Box::pin(async move { egress::probe_dns(&c, server).await }),
                budget: Some(eg.deadline * (eg.internet_names.len() as u32) + slack),
            });
        }
    }
    for &addr in &eg.internet_addresses {
        let c = ctx.clone();
        probes.push(Probe {
            name: format!("egress tcp {addr}"),
            target: addr.to_string(),
            fut: Box::pin(async move { egress::probe_tcp(&c, addr).await }),
            budget: Some(eg.deadline + slack),
        });
    }
    for &addr in &eg.ntp_pool {
        let c = ctx.clone();
        probes.push(Probe {
            name: format!("egress ntp {addr}"),
            target: addr.to_string(),
            fut: Box::pin(async move { egress::probe_ntp(&c, addr).await }),
            budget: Some(eg.deadline + slack),
        });
    }
    probes
}

fn describe_s3(plan: &Perimeter, s: &crate::config::S3Plan) -> String {
    format!(
        "s3 {}: region {}, {}, {}",
        s.endpoint,
        s.region,
        if s.path_style {
            "path-style"
        } else {
            "virtual-host"
        },
        {
            let write = s.always_write || plan.write_probe;
            match (&s.event_prefix, s.buckets.is_empty(), write) {
                (_, true, true) => {
                    "list buckets, write probe in a temporary bucket (created and removed)"
                        .to_string()
                }
                (_, true, false) => "list buckets".to_string(),
                (Some(p), false, w) => format!(
                    "the {} event buckets {p}self-hosted-events-0 to -f{}",
                    s.buckets.len(),
                    if w {
                        ", write probe in each (one object written and removed)"
                    } else {
                        " (exist and can be listed; add --write-probe to write)"
                    }
                ),
                (None, false, w) => format!(
                    "bucket(s) {}{}",
                    s.buckets.join(", "),
                    if w {
                        ", write probe (one object written and removed)"
                    } else {
                        ""
                    }
                ),
            }
        }
    )
}
