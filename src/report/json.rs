//! The JSON report, `schema_version` 1, specified in docs/json-report.md.
//! Field names and meanings only ever grow; a breaking change bumps
//! `schema_version`.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::Report;
use crate::finding::Finding;

pub const SCHEMA_VERSION: u32 = 1;

pub fn to_value(report: &Report) -> Value {
    let s = report.summary();
    json!({
        "schema_version": SCHEMA_VERSION,
        "tool": { "name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION") },
        "command": report.command,
        "inputs": report.inputs,
        "summary": { "pass": s.pass, "warn": s.warn, "fail": s.fail, "skip": s.skip },
        "exit_code": report.exit_code(),
        "interrupted": report.interrupted.map(|s| s.name()),
        "duration_ms": report.duration_ms,
        "findings": report.findings.iter().map(finding).collect::<Vec<_>>(),
    })
}

fn finding(f: &Finding) -> Value {
    json!({
        "code": f.code.id(),
        "family": f.family(),
        "status": f.status,
        "target": f.target,
        "message": f.message,
        "evidence": f.evidence,
        "remediation": f.remediation(),
        "duration_ms": f.duration_ms,
    })
}

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_value(report))?;
    writeln!(out)
}
