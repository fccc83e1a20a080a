//! The human report: findings grouped by check family, problems first, each
//! problem followed by its remediation, and a one-line verdict at the end.
//! Colour only when asked for (the caller decides from TTY and `NO_COLOR`).
//!
//! How much is shown ([`Verbosity`]): by default failures, warnings and
//! skips in full and the passing findings counted per family (by code);
//! `-v` lists every passing finding; `-q` shows the failures and the
//! verdict only. The verdict line always counts every finding.

use std::io::{self, Write};

use super::Report;
use crate::finding::Status;

/// How much of the report the human format shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Failures and the verdict.
    Quiet,
    /// Failures, warnings and skips in full; passes counted per family.
    #[default]
    Normal,
    /// Every finding.
    Verbose,
}

impl Verbosity {
    fn shows(self, s: Status) -> bool {
        match self {
            Verbosity::Quiet => s == Status::Fail,
            Verbosity::Normal => s != Status::Pass,
            Verbosity::Verbose => true,
        }
    }
}

struct Paint {
    on: bool,
}

impl Paint {
    fn status(&self, s: Status) -> String {
        let (label, code) = match s {
            Status::Pass => ("pass", "32"),
            Status::Warn => ("WARN", "33"),
            Status::Fail => ("FAIL", "31;1"),
            Status::Skip => ("skip", "2"),
        };
        if self.on {
            format!("\x1b[{code}m{label}\x1b[0m")
        } else {
            label.to_string()
        }
    }

    /// Text in the failure colour.
    fn status_text(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[31;1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn bold(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn dim(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Text from the input (member names, server answers) as a terminal may
/// show it: control characters written as `\xNN` / `\u{NNNN}`, so a
/// hostile archive cannot clear the screen, move the cursor or hide a
/// failure behind an escape sequence. The machine formats keep the text as
/// it is (JSON escapes it itself).
pub fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if (c as u32) < 0x100 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The table that ends the `refs` family: each distinct external host and
/// how many references name it ([`Report::external_hosts`]).
fn external_hosts(report: &Report, p: &Paint, out: &mut dyn Write) -> io::Result<()> {
    let hosts = report.external_hosts();
    if hosts.rows.is_empty() {
        return Ok(());
    }
    writeln!(out, "  {}", p.bold("external hosts"))?;
    let width = hosts
        .rows
        .iter()
        .map(|(h, _)| h.len())
        .max()
        .unwrap_or(4)
        .max(4);
    for (h, n) in &hosts.rows {
        writeln!(out, "    {:<width$}  {n:>5}", shown(h))?;
    }
    if hosts.omitted > 0 {
        writeln!(
            out,
            "    {}",
            p.dim(&format!(
                "and {} references to further hosts, not listed",
                hosts.omitted
            ))
        )?;
    }
    Ok(())
}

/// The table that ends the `image` family: each image, who signed it, its
/// SBOM and its provenance's builder.
fn image_signatures(report: &Report, p: &Paint, out: &mut dyn Write) -> io::Result<()> {
    let rows = report.image_signatures();
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "  {}",
        p.bold("images: signed by, SBOM, provenance builder")
    )?;
    for r in rows {
        writeln!(
            out,
            "    {} {}  {}: {}; SBOM: {}; provenance: {}",
            p.status(r.status),
            shown(&r.target),
            shown(&r.image),
            shown(&r.signature),
            shown(&r.sbom),
            shown(&r.provenance_builder)
        )?;
    }
    Ok(())
}

/// The flow matrix as a text grid: one row per source host, one column per
/// destination, each cell the flows as expected out of those tested
/// (`!` when one is not), then the problems, collapsed. False when the
/// report has no flow.
fn flow_grid(report: &Report, p: &Paint, out: &mut dyn Write) -> io::Result<bool> {
    let m = report.matrix();
    if m.cells.is_empty() {
        return Ok(false);
    }
    let sources = m.sources();
    let dests = m.destinations();
    let text = |s: &str, d: &str| -> String {
        let cells: Vec<_> = m.between(s, d).collect();
        if cells.is_empty() {
            return "-".into();
        }
        let ok = cells.iter().filter(|c| c.state.as_expected()).count();
        if ok == cells.len() {
            format!("{ok}/{}", cells.len())
        } else {
            format!("{ok}/{}!", cells.len())
        }
    };
    let first = sources
        .iter()
        .map(|s| shown(s).len())
        .max()
        .unwrap_or(0)
        .max(6);
    let widths: Vec<usize> = dests
        .iter()
        .map(|d| {
            sources
                .iter()
                .map(|s| text(s, d).len())
                .chain([shown(d).len()])
                .max()
                .unwrap_or(1)
        })
        .collect();
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        p.bold(
            "flow matrix (rows: from, columns: to; flows as expected / tested, ! when one is not)"
        )
    )?;
    let mut line = format!("  {:<first$}", "");
    for (d, w) in dests.iter().zip(&widths) {
        line.push_str(&format!("  {:>w$}", shown(d)));
    }
    writeln!(out, "{}", line.trim_end())?;
    for s in &sources {
        let mut line = format!("  {:<first$}", shown(s));
        for (d, w) in dests.iter().zip(&widths) {
            let t = text(s, d);
            let cell = format!("{t:>w$}");
            line.push_str("  ");
            line.push_str(&if t.ends_with('!') {
                p.status_text(&cell)
            } else {
                cell
            });
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    for pr in &m.problems {
        writeln!(out, "  {}  {}", p.status(Status::Fail), shown(&pr.text))?;
    }
    Ok(true)
}

pub fn render(
    report: &Report,
    color: bool,
    verbosity: Verbosity,
    out: &mut dyn Write,
) -> io::Result<()> {
    let p = Paint { on: color };
    let inputs: &[_] = if verbosity == Verbosity::Quiet {
        &[]
    } else {
        &report.inputs
    };
    let several_hosts = report.context.hosts.len() > 1;
    // Whether anything precedes the verdict (a quiet, clean run is one line).
    let mut printed = !inputs.is_empty();
    for input in inputs {
        let digest = input
            .sha256
            .as_deref()
            .map(|d| format!(", sha256:{d}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{} {} ({}, {} bytes{})",
            p.bold("input"),
            shown(&input.path),
            input.kind,
            input.size,
            digest
        )?;
    }
    for family in report.families() {
        let mut items: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.family() == family)
            .collect();
        // Problems first, worst first; stable within a status.
        items.sort_by_key(|f| std::cmp::Reverse(f.status));
        // Passing findings not listed one by one, counted by code.
        let mut collapsed: Vec<(crate::codes::Code, usize)> = Vec::new();
        if !verbosity.shows(Status::Pass) {
            for f in items.iter().filter(|f| f.status == Status::Pass) {
                match collapsed.iter_mut().find(|(c, _)| *c == f.code) {
                    Some((_, n)) => *n += 1,
                    None => collapsed.push((f.code, 1)),
                }
            }
        }
        items.retain(|f| verbosity.shows(f.status));
        if items.is_empty() && (verbosity == Verbosity::Quiet || collapsed.is_empty()) {
            continue;
        }
        printed = true;
        writeln!(out)?;
        writeln!(out, "{}", p.bold(family))?;
        // A remediation is printed once per code: fifty identical fixes
        // under fifty findings bury the findings.
        let mut fixed: Vec<crate::codes::Code> = Vec::new();
        for f in items {
            // Online findings of the same code differ only by their target
            // (which server, which transport): show it on pass lines too.
            let suffix = if report.command != "bundle"
                && !matches!(f.status, Status::Fail | Status::Warn)
                && !f.message.contains(&f.target)
            {
                format!("  {}", p.dim(&format!("[{}]", shown(&f.target))))
            } else {
                String::new()
            };
            let regraded = match f.original_status {
                Some(o) => format!("  {}", p.dim(&format!("(re-graded from {})", o.as_str()))),
                None => String::new(),
            };
            // A merged report says which host saw each finding.
            let host = if several_hosts {
                format!("{}: ", shown(report.host_of(f)))
            } else {
                String::new()
            };
            writeln!(
                out,
                "  {}  {}  {host}{}{suffix}{regraded}",
                p.status(f.status),
                f.code.id(),
                shown(&f.message)
            )?;
            if matches!(f.status, Status::Fail | Status::Warn) {
                if f.target != f.message && !f.message.contains(&f.target) {
                    writeln!(out, "        {} {}", p.dim("at:"), shown(&f.target))?;
                }
                if !fixed.contains(&f.code) {
                    fixed.push(f.code);
                    writeln!(out, "        {} {}", p.dim("fix:"), f.remediation())?;
                }
            }
        }
        if verbosity != Verbosity::Quiet && !collapsed.is_empty() {
            collapsed.sort_by_key(|c| std::cmp::Reverse(c.1));
            let total: usize = collapsed.iter().map(|(_, n)| n).sum();
            let by_code: Vec<String> = if collapsed.len() == 1 {
                vec![collapsed[0].0.id().to_string()]
            } else {
                collapsed
                    .iter()
                    .map(|(c, n)| format!("{} {n}", c.id()))
                    .collect()
            };
            writeln!(
                out,
                "  {}  {total} passed: {}  {}",
                p.status(Status::Pass),
                by_code.join(", "),
                p.dim("(-v lists them)")
            )?;
        }
        if family == "refs" && verbosity != Verbosity::Quiet {
            external_hosts(report, &p, out)?;
        }
        if family == "image" && verbosity != Verbosity::Quiet {
            image_signatures(report, &p, out)?;
        }
    }
    if verbosity != Verbosity::Quiet {
        printed |= flow_grid(report, &p, out)?;
    }
    if several_hosts {
        writeln!(out)?;
        writeln!(out, "{}", p.bold("hosts"))?;
        let hosts = report.hosts();
        let width = hosts
            .iter()
            .map(|h| shown(&h.name).len())
            .max()
            .unwrap_or(4);
        for h in &hosts {
            let s = report.summary_of(&h.name);
            writeln!(
                out,
                "  {:<width$}  {} pass, {} warn, {} fail, {} skip  {}",
                shown(&h.name),
                s.pass,
                s.warn,
                s.fail,
                s.skip,
                p.dim(&format!("({})", h.commands.join(", ")))
            )?;
        }
        printed = true;
    }
    let s = report.summary();
    let verdict = if let Some(sig) = report.interrupted {
        p.status(Status::Fail) + &format!(" interrupted by {}, partial report", sig.name())
    } else if s.fail > 0 {
        p.status(Status::Fail) + " not ready"
    } else {
        p.status(Status::Pass) + " ready"
    };
    if printed {
        writeln!(out)?;
    }
    writeln!(
        out,
        "{}: {} pass, {} warn, {} fail, {} skip in {:.1}s",
        verdict,
        s.pass,
        s.warn,
        s.fail,
        s.skip,
        report.duration_ms as f64 / 1000.0
    )
}
