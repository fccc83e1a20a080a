//! The JSON report, `schema_version` 1, specified in docs/json-report.md.
//! Field names and meanings only ever grow; a breaking change bumps
//! `schema_version`.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::Report;
use crate::finding::{Finding, Status};

pub const SCHEMA_VERSION: u32 = 1;

pub fn to_value(report: &Report) -> Value {
    let s = report.summary();
    let c = &report.context;
    json!({
        "schema_version": SCHEMA_VERSION,
        "tool": { "name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION") },
        "command": report.command,
        "started_at": c.started_rfc3339(),
        "host": c.host,
        "arguments": c.arguments,
        "policy": {
            "fail_on": if c.fail_on_warn { "warn" } else { "fail" },
            "severity": c.severity,
            "settings": c.settings,
        },
        "inputs": report.inputs,
        "summary": { "pass": s.pass, "warn": s.warn, "fail": s.fail, "skip": s.skip },
        "skipped": report
            .findings
            .iter()
            .filter(|f| f.status == Status::Skip)
            .map(|f| json!({ "code": f.code.id(), "target": f.target, "reason": f.message }))
            .collect::<Vec<_>>(),
        "exit_code": report.exit_code(),
        "interrupted": report.interrupted.map(|s| s.name()),
        "duration_ms": report.duration_ms,
        "findings": report.findings.iter().map(finding).collect::<Vec<_>>(),
    })
}

fn finding(f: &Finding) -> Value {
    let mut v = json!({
        "code": f.code.id(),
        "family": f.family(),
        "status": f.status,
        "target": f.target,
        "message": f.message,
        "evidence": f.evidence,
        "remediation": f.remediation(),
        "duration_ms": f.duration_ms,
    });
    // Only on a finding the user's policy re-graded.
    if let Some(o) = f.original_status {
        v["original_status"] = json!(o);
    }
    v
}

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_value(report))?;
    writeln!(out)
}
