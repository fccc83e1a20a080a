//! Renderers: one file per output format. A renderer formats findings and
//! never inspects the world; the same [`Report`] feeds every format.

pub mod human;
pub mod json;
pub mod junit;
pub mod sarif;

use std::io::{self, Write};

use crate::finding::InputSummary;
use crate::finding::{Finding, Summary};

/// Everything a renderer may show.
#[derive(Debug, Clone)]
pub struct Report {
    /// The subcommand that produced it (`bundle`, `services`, `check`).
    pub command: String,
    pub inputs: Vec<InputSummary>,
    pub findings: Vec<Finding>,
    pub duration_ms: u64,
    /// Set when SIGINT or SIGTERM cut the run short: the report is partial.
    pub interrupted: Option<crate::finding::Interrupt>,
    /// When, where and how the run was made.
    pub context: RunContext,
}

/// When, where and with which options and policy a run was made: what a
/// report filed as evidence must carry so that a `--no-content` run cannot
/// read like a full one.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub started_at: std::time::SystemTime,
    /// This machine's name.
    pub host: String,
    /// The command line after the program name, as given (secrets are
    /// only ever given by reference, so none is here).
    pub arguments: Vec<String>,
    /// `--fail-on warn` in force.
    pub fail_on_warn: bool,
    /// The per-code severity in force (perimeter.yml `severity:` and the
    /// command line's `--warn`/`--fail`/`--allow`), by code.
    pub severity: std::collections::BTreeMap<String, crate::finding::Status>,
    /// The settings the verdict depends on, defaults included (limits,
    /// `--no-content`, `--strict-airgap`, deadlines...), by flag name.
    pub settings: std::collections::BTreeMap<String, serde_json::Value>,
}

impl RunContext {
    /// Now, on this host, with this process's arguments.
    pub fn begin(policy: &crate::finding::Policy) -> RunContext {
        RunContext {
            started_at: std::time::SystemTime::now(),
            host: hostname(),
            arguments: std::env::args().skip(1).collect(),
            fail_on_warn: policy.fail_on_warn,
            severity: policy
                .overrides
                .iter()
                .map(|(c, s)| (c.id().to_string(), *s))
                .collect(),
            settings: Default::default(),
        }
    }

    /// `started_at` as RFC 3339 UTC, to the second.
    pub fn started_rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.started_at).to_string()
    }
}

/// This machine's name (the kernel's), or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Report {
    pub fn summary(&self) -> Summary {
        Summary::of(&self.findings)
    }

    /// 0 ready, 1 not ready, 130/143 when interrupted (the findings of a
    /// partial run cannot say "ready").
    pub fn exit_code(&self) -> i32 {
        match self.interrupted {
            Some(sig) => sig.exit_code(),
            None => self.summary().exit_code(),
        }
    }

    /// Families in first-appearance order, for grouping.
    pub fn families(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for f in &self.findings {
            if !out.contains(&f.family()) {
                out.push(f.family());
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Junit,
    Sarif,
}

/// Renders `report` in `format`; `color` and `verbosity` apply to the human
/// format only (the machine formats always carry every finding).
pub fn render(
    report: &Report,
    format: Format,
    color: bool,
    verbosity: human::Verbosity,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human::render(report, color, verbosity, out),
        Format::Json => json::render(report, out),
        Format::Junit => junit::render(report, out),
        Format::Sarif => sarif::render(report, out),
    }
}
