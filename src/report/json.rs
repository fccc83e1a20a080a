//! The JSON report, `schema_version` 1, specified in docs/json-report.md.
//! Field names and meanings only ever grow; a breaking change bumps
//! `schema_version`.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::{HostIdentity, Report, RunContext};
use crate::codes::Code;
use crate::finding::{Finding, InputSummary, Interrupt, Status};

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
        "machine_id": c.machine_id,
        "addresses": c.addresses,
        "arguments": c.arguments,
        "policy": {
            "fail_on": if c.fail_on_warn { "warn" } else { "fail" },
            "severity": c.severity,
            "settings": c.settings,
        },
        "inputs": report.inputs,
        "summary": { "pass": s.pass, "warn": s.warn, "fail": s.fail, "skip": s.skip },
        "hosts": report.hosts().iter().map(|h| {
            let s = report.summary_of(&h.name);
            json!({
                "name": h.name,
                "hostnames": h.hostnames,
                "machine_id": h.machine_id,
                "addresses": h.addresses,
                "commands": h.commands,
                "summary": { "pass": s.pass, "warn": s.warn, "fail": s.fail, "skip": s.skip },
            })
        }).collect::<Vec<_>>(),
        "skipped": report
            .findings
            .iter()
            .filter(|f| f.status == Status::Skip)
            .map(|f| json!({ "code": f.code.id(), "target": f.target, "reason": f.message }))
            .collect::<Vec<_>>(),
        "exit_code": report.exit_code(),
        "interrupted": report.interrupted.map(|s| s.name()),
        "duration_ms": report.duration_ms,
        "matrix": matrix(&report.matrix()),
        "findings": report.findings.iter().map(|f| finding(report, f)).collect::<Vec<_>>(),
    })
}

fn matrix(m: &super::matrix::Matrix) -> Value {
    json!({
        "hosts": m.hosts,
        "cells": m.cells.iter().map(|c| json!({
            "source": c.source,
            "destination": c.destination,
            "address": c.address,
            "flow": c.flow,
            "protocol": c.protocol,
            "port": c.port,
            "state": c.state.as_str(),
            "expect": c.expect,
            "status": c.status,
        })).collect::<Vec<_>>(),
        "problems": m.problems.iter().map(|p| json!({
            "text": p.text,
            "protocol": p.protocol,
            "port": p.port,
            "cells": p.cells,
        })).collect::<Vec<_>>(),
    })
}

fn finding(report: &Report, f: &Finding) -> Value {
    let mut v = json!({
        "code": f.code.id(),
        "family": f.family(),
        "host": report.host_of(f),
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

/// Why a JSON document is not a report this version can read back.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// Not JSON, or JSON of another program.
    Foreign(String),
    /// An airgap-verify report of another schema version.
    Version(String),
    /// An airgap-verify report with a field this version cannot read.
    Field(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Foreign(m) | ReadError::Version(m) | ReadError::Field(m) => f.write_str(m),
        }
    }
}

fn field<'a>(v: &'a Value, path: &str) -> Result<&'a Value, ReadError> {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur
            .get(k)
            .ok_or_else(|| ReadError::Field(format!("no field `{path}`")))?;
    }
    Ok(cur)
}

fn string(v: &Value, path: &str) -> Result<String, ReadError> {
    field(v, path)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ReadError::Field(format!("`{path}` is not a string")))
}

fn strings(v: &Value, path: &str) -> Result<Vec<String>, ReadError> {
    match v.get(path) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ReadError::Field(format!("`{path}` holds a non-string")))
            })
            .collect(),
        Some(_) => Err(ReadError::Field(format!("`{path}` is not an array"))),
    }
}

fn uint(v: &Value, path: &str) -> Result<u64, ReadError> {
    field(v, path)?
        .as_u64()
        .ok_or_else(|| ReadError::Field(format!("`{path}` is not a whole number")))
}

fn status(v: &Value, path: &str) -> Result<Status, ReadError> {
    let s = string(v, path)?;
    Status::parse(&s).ok_or_else(|| ReadError::Field(format!("`{path}`: unknown status `{s}`")))
}

/// The input kinds a report writes (`inputs[].kind`).
fn input_kind(k: &str) -> &'static str {
    match k {
        "tar" => "tar",
        "tar+gzip" => "tar+gzip",
        "tar+zstd" => "tar+zstd",
        "directory" => "directory",
        "config" => "config",
        _ => "unknown",
    }
}

/// Reads back a report this version wrote with `--format json` (schema
/// version 1): the report model, with each finding's host kept when it is
/// not the report's own (a merged report merged again). Remediations and
/// families come from this version's code table, not from the file.
pub fn from_value(v: &Value) -> Result<Report, ReadError> {
    if !v.is_object() {
        return Err(ReadError::Foreign(
            "not a JSON object, so not an airgap-verify report".into(),
        ));
    }
    match v.pointer("/tool/name").and_then(Value::as_str) {
        Some(env!("CARGO_PKG_NAME")) => {}
        Some(n) => {
            return Err(ReadError::Foreign(format!(
                "written by `{n}`, not by airgap-verify"
            )))
        }
        None => {
            return Err(ReadError::Foreign(
                "no `tool.name`: not an airgap-verify JSON report".into(),
            ))
        }
    }
    let version = v.get("schema_version").and_then(Value::as_u64);
    if version != Some(SCHEMA_VERSION as u64) {
        let by = v
            .pointer("/tool/version")
            .and_then(Value::as_str)
            .unwrap_or("?");
        return Err(ReadError::Version(format!(
            "schema version {}, written by airgap-verify {by}; this airgap-verify {} reads version {SCHEMA_VERSION} only",
            version.map(|n| n.to_string()).unwrap_or_else(|| "missing".into()),
            env!("CARGO_PKG_VERSION")
        )));
    }
    let started = string(v, "started_at")?;
    let started_at = humantime::parse_rfc3339(&started)
        .map_err(|e| ReadError::Field(format!("`started_at` `{started}`: {e}")))?;
    let host = string(v, "host")?;
    let severity = match field(v, "policy.severity")? {
        Value::Object(m) => m
            .iter()
            .map(|(k, s)| {
                s.as_str()
                    .and_then(Status::parse)
                    .map(|s| (k.clone(), s))
                    .ok_or_else(|| {
                        ReadError::Field(format!("`policy.severity.{k}` is not a status"))
                    })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ReadError::Field(
                "`policy.severity` is not an object".into(),
            ))
        }
    };
    let settings = match field(v, "policy.settings")? {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => {
            return Err(ReadError::Field(
                "`policy.settings` is not an object".into(),
            ))
        }
    };
    let command = string(v, "command")?;
    let hosts = if command == "merge" {
        field(v, "hosts")?
            .as_array()
            .ok_or_else(|| ReadError::Field("`hosts` is not an array".into()))?
            .iter()
            .map(|h| {
                Ok(HostIdentity {
                    name: string(h, "name")?,
                    hostnames: strings(h, "hostnames")?,
                    machine_id: h
                        .get("machine_id")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    addresses: strings(h, "addresses")?,
                    commands: strings(h, "commands")?,
                })
            })
            .collect::<Result<Vec<_>, ReadError>>()?
    } else {
        Vec::new()
    };
    let context = RunContext {
        started_at,
        host: host.clone(),
        machine_id: v
            .get("machine_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        addresses: strings(v, "addresses")?,
        hosts,
        arguments: strings(v, "arguments")?,
        fail_on_warn: string(v, "policy.fail_on")? == "warn",
        severity,
        settings,
    };
    let inputs = field(v, "inputs")?
        .as_array()
        .ok_or_else(|| ReadError::Field("`inputs` is not an array".into()))?
        .iter()
        .map(|i| {
            Ok(InputSummary {
                path: string(i, "path")?,
                kind: input_kind(&string(i, "kind")?),
                size: uint(i, "size")?,
                sha256: i.get("sha256").and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect::<Result<Vec<_>, ReadError>>()?;
    let interrupted = match v.get("interrupted").and_then(Value::as_str) {
        Some("SIGINT") => Some(Interrupt::Sigint),
        Some("SIGTERM") => Some(Interrupt::Sigterm),
        _ => None,
    };
    let findings = field(v, "findings")?
        .as_array()
        .ok_or_else(|| ReadError::Field("`findings` is not an array".into()))?
        .iter()
        .enumerate()
        .map(|(i, f)| {
            read_finding(f, &host).map_err(|e| ReadError::Field(format!("findings[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, ReadError>>()?;
    Ok(Report {
        command,
        inputs,
        findings,
        duration_ms: uint(v, "duration_ms")?,
        interrupted,
        context,
    })
}

fn read_finding(f: &Value, report_host: &str) -> Result<Finding, ReadError> {
    let id = string(f, "code")?;
    let code = Code::from_id(&id).ok_or_else(|| {
        ReadError::Field(format!(
            "unknown finding code `{id}` (written by a newer airgap-verify? merge with the version that wrote the report)"
        ))
    })?;
    let evidence = match f.get("evidence") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => return Err(ReadError::Field("`evidence` is not an object".into())),
    };
    let mut out = Finding::new(code, string(f, "target")?, string(f, "message")?)
        .with_status(status(f, "status")?)
        .duration_ms(uint(f, "duration_ms")?);
    out.evidence = evidence;
    if f.get("original_status").is_some() {
        out.original_status = Some(status(f, "original_status")?);
    }
    out.host = f
        .get("host")
        .and_then(Value::as_str)
        .filter(|h| *h != report_host)
        .map(str::to_string);
    Ok(out)
}
