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
pub mod context;
pub mod dns;
pub mod dnswire;
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
pub mod spec;
pub mod system_resolver;
pub mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Perimeter;
use crate::error::InputError;
use crate::finding::{Code, Finding, Status};

pub use context::ProbeContext;
use spec::Probe;
pub use spec::{describe, specs, ProbeSpec, Selection};

/// Told when each probe starts and ends (the binary draws progress lines).
pub trait ProbeProgress: Send + Sync {
    fn started(&self, _probe: &str) {}
    fn finished(&self, _probe: &str, _worst: Status, _elapsed: Duration) {}
}

/// No progress display.
pub struct Quiet;
impl ProbeProgress for Quiet {}

pub use crate::finding::Interrupt;

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
    let specs = specs(&plan, &select);
    let plan = Arc::new(plan);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| InputError::Usage(format!("cannot start the probe runtime: {e}")))?;
    let ctx = Arc::new(ProbeContext {
        resolver: context::Resolver::new(&plan),
        plan: plan.clone(),
        tls,
        ledger: cleanup::Ledger::default(),
    });
    let probes: Vec<Probe> = specs.iter().flat_map(|s| s.start(&ctx)).collect();
    let mut findings = plan.findings.clone();
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
            let limit = p.budget.unwrap_or_else(|| spec::budget(&ctx.plan, 16));
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
