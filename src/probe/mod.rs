//! Online checks: one module per protocol, run concurrently against the
//! services inside the perimeter.
//!
//! Guarantees:
//! - probes return findings and never print; [`run`] collects them;
//! - every probe runs concurrently with the others and has a hard budget
//!   (connect + handshake + a few I/O deadlines): a blackholed or tarpit
//!   target fails at its deadline and never delays the rest;
//! - nothing is contacted outside `allowed_networks`;
//! - whatever a write probe wrote is removed, also when the probe overran its
//!   budget or the run was interrupted by SIGINT or SIGTERM (see [`cleanup`]);
//!   an interrupted run still returns the findings gathered so far.

pub mod challenge;
pub mod cleanup;
pub mod dns;
pub mod egress;
pub mod flows;
pub mod git;
pub mod host;
pub mod http;
pub mod icmp;
pub mod lb;
pub mod listen;
pub mod net;
pub mod ntp;
pub mod platform_cert;
pub mod registry;
pub mod s3;
pub mod s3bench;
pub mod smtp;
pub mod system_resolver;
pub mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Perimeter;
use crate::error::InputError;
use crate::finding::{Code, Finding, Status};

pub use net::ProbeContext;

/// Told when each probe starts and ends (the binary draws progress lines).
pub trait ProbeProgress: Send + Sync {
    fn started(&self, _probe: &str) {}
    fn finished(&self, _probe: &str, _worst: Status, _elapsed: Duration) {}
}

/// No progress display.
pub struct Quiet;
impl ProbeProgress for Quiet {}

type ProbeFuture = Pin<Box<dyn Future<Output = Vec<Finding>> + Send>>;

/// One unit of concurrent work: a name for progress, and its future.
struct Probe {
    name: String,
    /// The target used if the probe overruns its budget.
    target: String,
    fut: ProbeFuture,
    /// A budget of its own, for probes that measure rather than ask.
    budget: Option<Duration>,
}

/// The hard budget of one probe: its steps' deadlines, plus slack. A probe
/// that still runs then is cut off with `net:no-reply`; probes keep their
/// own, finer deadlines, so this only fires on a bug.
fn budget(plan: &Perimeter, io_steps: u32) -> Duration {
    let d = plan.deadlines;
    d.connect + d.handshake * 2 + d.io * io_steps + Duration::from_millis(500)
}

pub use crate::finding::Interrupt;

/// Which probes a run starts.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    /// DNS, NTP, SMTP, Git, registry, S3 as configured.
    pub services: bool,
    /// The flows this host starts, as this role.
    pub flows_as: Option<flows::SourceRole>,
}

impl Selection {
    pub const SERVICES: Selection = Selection {
        services: true,
        flows_as: None,
    };
}

/// What a run of the probes produced.
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// Set when SIGINT or SIGTERM stopped the probes early.
    pub interrupted: Option<Interrupt>,
}

/// SIGINT and SIGTERM, caught for the length of the probe run so that an
/// interrupt removes what the write probes wrote instead of killing the
/// process mid-write.
struct Signals {
    /// Tells [`crate::scratch`]'s watcher that these signals are handled here.
    _handled: crate::scratch::ProbesHandleSignals,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Must be called inside the runtime.
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            // If a handler cannot be installed the default action stays:
            // the process dies, as it would without this code.
            Signals {
                _handled: crate::scratch::ProbesHandleSignals::claim(),
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {
            _handled: crate::scratch::ProbesHandleSignals::claim(),
        }
    }

    /// The next signal; pending forever when none can arrive.
    async fn recv(&mut self) -> Interrupt {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        if s.recv().await.is_none() {
                            std::future::pending::<()>().await
                        }
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.int) => Interrupt::Sigint,
                _ = next(&mut self.term) => Interrupt::Sigterm,
            }
        }
        #[cfg(not(unix))]
        std::future::pending().await
    }
}

/// Runs every probe the plan names and returns their findings (including
/// the configuration's own findings).
pub fn run(
    plan: Perimeter,
    select: Selection,
    progress: Arc<dyn ProbeProgress>,
) -> Result<Outcome, InputError> {
    let tls = tls::TlsSettings::new(&plan)?;
    // The profile is resolved before any I/O: a bad name is a usage error.
    let profile = match (&select.flows_as, &plan.flows) {
        (Some(_), Some(fp)) => Some(
            crate::profiles::get(fp.profile_name())
                .map_err(|m| InputError::Usage(format!("--profile: {m}")))?,
        ),
        _ => None,
    };
    let plan = Arc::new(plan);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| InputError::Usage(format!("cannot start the probe runtime: {e}")))?;
    let ctx = Arc::new(ProbeContext {
        resolver: net::Resolver::new(&plan),
        plan: plan.clone(),
        tls,
        ledger: cleanup::Ledger::default(),
    });
    let mut probes = if select.services {
        plan_probes(&ctx)
    } else {
        Vec::new()
    };
    if let (Some(role), Some(profile)) = (select.flows_as, profile) {
        let c = ctx.clone();
        let deadline = plan
            .flows
            .as_ref()
            .and_then(|f| f.deadline)
            .unwrap_or(plan.deadlines.connect);
        probes.push(Probe {
            name: format!("flows as {}", role.role().name()),
            target: "flows".into(),
            fut: Box::pin(async move { flows::run(&c, role, &profile).await }),
            // Every flow runs at once within its deadline; resolving the
            // hosts comes first.
            budget: Some(deadline * 2 + plan.deadlines.connect + Duration::from_secs(1)),
        });
    }
    let mut findings = plan.findings.clone();
    // The platform's certificate is checked where it is: nothing to contact.
    if let (true, Some(pc)) = (select.services && plan.run_services, &plan.platform_cert) {
        findings.extend(platform_cert::check(pc, &ctx.tls));
    }
    let (found, interrupted) = rt.block_on(async move {
        let mut signals = Signals::install();
        let run_started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        // Probes still running, by task: what to report if they are cut off.
        let mut running = std::collections::HashMap::new();
        for p in probes {
            let progress = progress.clone();
            // The longest conversation (STARTTLS, AUTH LOGIN, a test mail) takes
            // 13 I/O steps and a short QUIT.
            let limit = p.budget.unwrap_or_else(|| budget(&ctx.plan, 16));
            let (name, target) = (p.name.clone(), p.target.clone());
            let handle = set.spawn(async move {
                progress.started(&p.name);
                let started = Instant::now();
                let mut out = match tokio::time::timeout(limit, p.fut).await {
                    Ok(f) => f,
                    Err(_) => vec![net::NetError::NoReply(limit)
                        .finding(p.target.clone(), &format!("{} did not finish", p.name))],
                };
                let elapsed = started.elapsed();
                for f in &mut out {
                    if f.duration_ms == 0 {
                        f.duration_ms = elapsed.as_millis() as u64;
                    }
                }
                let worst = out.iter().map(|f| f.status).max().unwrap_or(Status::Skip);
                progress.finished(&p.name, worst, elapsed);
                out
            });
            running.insert(handle.id(), (name, target));
        }
        let mut all = Vec::new();
        let mut interrupted = None;
        loop {
            tokio::select! {
                r = set.join_next_with_id() => match r {
                    None => break,
                    Some(Ok((id, f))) => {
                        running.remove(&id);
                        all.extend(f);
                    }
                    Some(Err(e)) => {
                        let target = running.remove(&e.id()).map(|(_, t)| t);
                        all.push(Finding::new(
                            Code::NetNoReply,
                            target.unwrap_or_else(|| "airgap-verify".into()),
                            format!("a probe stopped unexpectedly: {e}"),
                        ));
                    }
                },
                sig = signals.recv() => {
                    interrupted = Some(sig);
                    break;
                }
            }
        }
        if let Some(sig) = interrupted {
            // Dropping a probe's future stops it at its next await; what it
            // had recorded in the ledger is undone below.
            set.abort_all();
            while let Some(r) = set.join_next_with_id().await {
                if let Ok((id, f)) = r {
                    running.remove(&id);
                    all.extend(f);
                }
            }
            let mut cut: Vec<_> = running.into_values().collect();
            cut.sort();
            for (name, target) in cut {
                progress.finished(&name, Status::Fail, run_started.elapsed());
                all.push(Finding::new(
                    Code::RunInterrupted,
                    target,
                    format!("{name} was interrupted ({}) before it finished", sig.name()),
                ));
            }
        }
        let cause = match interrupted {
            Some(sig) => cleanup::Cause::Interrupted(sig.name()),
            None => cleanup::Cause::Budget,
        };
        let d = ctx.plan.deadlines;
        let settle_deadline = d.connect + d.handshake + d.io * 3;
        let stop = async {
            signals.recv().await;
        };
        all.extend(ctx.ledger.settle(cause, settle_deadline, stop).await);
        (all, interrupted)
    });
    findings.extend(found);
    Ok(Outcome {
        findings,
        interrupted,
    })
}

/// The egress checks of the plan: the static ones when enabled, the active
/// ones only with `--probe-internet`.
fn egress_probes(ctx: &Arc<ProbeContext>) -> Vec<Probe> {
    let plan = &ctx.plan;
    let eg = &plan.egress;
    let mut probes = Vec::new();
    if !eg.enabled {
        return probes;
    }
    let c = ctx.clone();
    probes.push(Probe {
        name: "egress static".into(),
        target: "egress".into(),
        fut: Box::pin(egress::static_checks(c)),
        budget: None,
    });
    if !eg.probe_internet {
        return probes;
    }
    // One attempt per target, all at once; each has the egress deadline.
    let slack = Duration::from_millis(500);
    if !eg.internet_names.is_empty() {
        let servers: Vec<Option<std::net::SocketAddr>> = if plan.dns.servers.is_empty() {
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

/// The plan in words, one line per probe, for `services --dry-run`.
pub fn describe(plan: &Perimeter) -> Vec<String> {
    let mut out = vec![format!(
        "deadlines: connect {}, handshake {}, io {}",
        net::fmt_duration(plan.deadlines.connect),
        net::fmt_duration(plan.deadlines.handshake),
        net::fmt_duration(plan.deadlines.io)
    )];
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
    if plan.egress.enabled {
        out.extend(egress::describe(plan));
    }
    if !plan.run_services {
        return out;
    }
    for &server in &plan.dns.servers {
        for &t in &plan.dns.transports {
            out.push(format!(
                "dns {server}/{}: {} expected name(s), {} public name(s)",
                net::transport_name(t),
                plan.dns.expect.len(),
                plan.dns.public_names.len()
            ));
        }
    }
    for t in &plan.ntp.servers {
        out.push(format!(
            "ntp {t}: max offset {}, max stratum {}",
            net::fmt_duration(plan.ntp.max_offset),
            plan.ntp.max_stratum
        ));
    }
    for s in &plan.smtp {
        out.push(format!(
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
                (true, Some(from), Some(to)) =>
                    format!(", sends one test message from {from} to {to} (--send-test-mail)"),
                (true, _, _) =>
                    ", no test message (--send-test-mail needs mail_from and rcpt_to)".into(),
                (false, _, _) => String::new(),
            }
        ));
    }
    if let Some(g) = &plan.git {
        out.push(format!(
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
        ));
    }
    if let Some(r) = &plan.registry {
        out.push(format!(
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
        ));
    }
    if let Some(s) = &plan.s3 {
        out.push(format!(
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
        ));
        if plan.s3_benchmark {
            out.push(format!(
                "s3 benchmark {}: {} x {} MiB each way, {} small objects, {} in flight, at most {} s",
                s.endpoint,
                s3bench::LARGE_COUNT,
                s3bench::LARGE_SIZE >> 20,
                s3bench::SMALL_COUNT,
                s3bench::CONCURRENCY,
                s3bench::DEADLINE.as_secs()
            ));
        }
    }
    out
}

fn plan_probes(ctx: &Arc<ProbeContext>) -> Vec<Probe> {
    let plan = &ctx.plan;
    let mut probes = egress_probes(ctx);
    if !plan.run_services {
        return probes;
    }
    for &server in &plan.dns.servers {
        for &transport in &plan.dns.transports {
            let ctx = ctx.clone();
            probes.push(Probe {
                name: format!("dns {server} {}", net::transport_name(transport)),
                target: format!("{server}/{}", net::transport_name(transport)),
                fut: Box::pin(async move { dns::probe(&ctx, server, transport).await }),
                budget: None,
            });
        }
    }
    for target in &plan.ntp.servers {
        let ctx = ctx.clone();
        let target = target.clone();
        probes.push(Probe {
            name: format!("ntp {target}"),
            target: target.to_string(),
            fut: Box::pin(async move { ntp::probe(&ctx, &target).await }),
            budget: None,
        });
    }
    for (i, relay) in plan.smtp.iter().enumerate() {
        let ctx = ctx.clone();
        probes.push(Probe {
            name: format!("smtp {}", relay.target),
            target: relay.target.to_string(),
            fut: Box::pin(async move {
                let relay = &ctx.plan.smtp[i];
                smtp::probe(&ctx, relay).await
            }),
            budget: None,
        });
    }
    if plan.git.is_some() {
        let ctx = ctx.clone();
        let url = plan.git.as_ref().map(|g| g.url.clone()).unwrap_or_default();
        probes.push(Probe {
            name: format!("git {url}"),
            target: url,
            fut: Box::pin(async move {
                let git = ctx.plan.git.as_ref().expect("checked above");
                git::probe(&ctx, git).await
            }),
            budget: None,
        });
    }
    if plan.registry.is_some() {
        let ctx = ctx.clone();
        let url = plan
            .registry
            .as_ref()
            .map(|r| r.url.clone())
            .unwrap_or_default();
        probes.push(Probe {
            name: format!("registry {url}"),
            target: url,
            fut: Box::pin(async move {
                let reg = ctx.plan.registry.as_ref().expect("checked above");
                registry::probe(&ctx, reg).await
            }),
            // One more request per image of the release, looked up one
            // after the other: a release of thousands of images must not
            // run out of the fixed budget of a handful of requests.
            budget: plan
                .registry
                .as_ref()
                .map(|r| budget(plan, 16u32.saturating_add(r.images.len() as u32))),
        });
    }
    if let Some(s3plan) = &plan.s3 {
        let url = s3plan.endpoint.clone();
        let c = ctx.clone();
        probes.push(Probe {
            name: format!("s3 {url}"),
            target: url.clone(),
            fut: Box::pin(async move {
                let s3 = c.plan.s3.as_ref().expect("checked above");
                s3::probe(&c, s3).await
            }),
            // Each round of buckets: a listing, HeadBucket, and up to six
            // requests of the write probe.
            budget: Some(budget(plan, 8 + 8 * s3::rounds(s3plan.buckets.len()))),
        });
        if plan.s3_benchmark {
            let c = ctx.clone();
            probes.push(Probe {
                name: format!("s3 benchmark {url}"),
                target: url,
                fut: Box::pin(async move {
                    let s3 = c.plan.s3.as_ref().expect("checked above");
                    s3bench::probe(&c, s3).await
                }),
                // Its own deadline, plus the clean-up of what it wrote.
                budget: Some(s3bench::DEADLINE + budget(plan, 4)),
            });
        }
    }
    probes
}
