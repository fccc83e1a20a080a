//! Renderers: one file per output format. A renderer formats findings and
//! never inspects the world; the same [`Report`] feeds every format.

pub mod human;
pub mod json;
pub mod junit;
pub mod sarif;

use std::io::{self, Write};

use crate::bundle::InputSummary;
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
    pub interrupted: Option<crate::probe::Interrupt>,
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

pub fn render(report: &Report, format: Format, color: bool, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Human => human::render(report, color, out),
        Format::Json => json::render(report, out),
        Format::Junit => junit::render(report, out),
        Format::Sarif => sarif::render(report, out),
    }
}
