//! JUnit XML: one test suite per check family, one test case per finding;
//! `fail` is a `<failure>`, `skip` is `<skipped>`, `warn` passes with the
//! warning in `<system-out>` (CI dashboards would otherwise hide it).
//!
//! Guarantees:
//! - counts are the verdict's ([`Summary`]): a "N more not listed" case
//!   stands for the N findings it replaces, never for one more failure;
//! - times are consistent: the run's time is the wall time; a suite's is
//!   the sum of its cases, at most the run's (checks of one family run side
//!   by side, and a pass's findings share its one measured time), and no
//!   case is longer than its suite.

use std::io::{self, Write};

use super::Report;
use crate::finding::{Status, Summary};

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even when escaped.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let s = report.summary();
    let total_ms = report.duration_ms;
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="airgap-verify {}" tests="{}" failures="{}" skipped="{}" time="{:.3}">"#,
        escape(&report.command),
        s.total(),
        s.fail,
        s.skip,
        total_ms as f64 / 1000.0
    )?;
    for family in report.families() {
        let cases: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.family() == family)
            .collect();
        let fs = Summary::of(&cases.iter().map(|f| (*f).clone()).collect::<Vec<_>>());
        let time: u64 = cases
            .iter()
            .map(|f| f.duration_ms)
            .sum::<u64>()
            .min(total_ms);
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}" skipped="{}" time="{:.3}">"#,
            escape(family),
            fs.total(),
            fs.fail,
            fs.skip,
            time as f64 / 1000.0
        )?;
        for f in cases {
            let name = format!("{} {}", f.code.id(), f.target);
            write!(
                out,
                r#"    <testcase classname="{}" name="{}" time="{:.3}">"#,
                escape(family),
                escape(&name),
                f.duration_ms.min(time) as f64 / 1000.0
            )?;
            match f.status {
                Status::Fail => write!(
                    out,
                    "\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    ",
                    escape(f.code.id()),
                    escape(&f.message),
                    escape(f.remediation())
                )?,
                Status::Skip => write!(
                    out,
                    "\n      <skipped message=\"{}\"/>\n    ",
                    escape(&f.message)
                )?,
                Status::Warn => write!(
                    out,
                    "\n      <system-out>WARN {}: {}</system-out>\n    ",
                    escape(&f.message),
                    escape(f.remediation())
                )?,
                Status::Pass => {}
            }
            writeln!(out, "</testcase>")?;
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}
