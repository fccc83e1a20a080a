//! `airgap-verify merge`: several hosts' JSON reports become one report of
//! the cluster.
//!
//! Guarantees:
//! - a file that is not a JSON report this version wrote (not JSON, another
//!   program's JSON, another schema version, an unknown code) is an
//!   [`InputError`] naming the file and what to do: exit 2, nothing merged;
//! - every finding of the merged report carries the host it was observed
//!   from: the `NAME` given for its file, else the host its report recorded;
//!   several reports may belong to one host;
//! - the checks that need the whole cluster are added as findings: host
//!   identities told apart (`cluster:duplicate-*`, `cluster:hosts-distinct`)
//!   and every clock compared with the cluster's median (`cluster:clock-*`);
//! - merging reads files only: no probe runs, nothing is contacted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::codes::Code;
use crate::error::InputError;
use crate::finding::{Finding, InputSummary, Policy};
use crate::report::{json, HostIdentity, Report, RunContext};

/// The clock skew allowed when no `flow:clock-*` finding says (the flows'
/// default `max_clock_skew`).
const DEFAULT_MAX_SKEW_MS: i64 = 1000;

/// One `[NAME=]REPORT.json` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    pub name: Option<String>,
    pub path: PathBuf,
}

/// `NAME=FILE` or `FILE`. A prefix with a `/` in it is part of a path.
pub fn parse_report_file(s: &str) -> Result<ReportFile, String> {
    if s.is_empty() {
        return Err("an empty report file name".into());
    }
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => {
            if path.is_empty() {
                return Err(format!("`{s}`: no file after `{name}=`"));
            }
            if name.contains(char::is_whitespace) {
                return Err(format!("`{name}`: a host name is one word"));
            }
            Ok(ReportFile {
                name: Some(name.to_string()),
                path: PathBuf::from(path),
            })
        }
        _ => Ok(ReportFile {
            name: None,
            path: PathBuf::from(s),
        }),
    }
}

/// Reads one report file back into the report model, and describes the
/// file as an input of the merge (its size and sha256).
pub fn read(path: &Path) -> Result<(Report, InputSummary), InputError> {
    let bytes = std::fs::read(path).map_err(|e| InputError::unreadable(path, "report", e))?;
    let bad =
        |why: String, what: &str| InputError::Usage(format!("{}: {why}; {what}", path.display()));
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        bad(
            format!("not JSON ({e})"),
            "give the file an airgap-verify run wrote with `--format json` (or `--output json=FILE`)",
        )
    })?;
    let report = json::from_value(&value).map_err(|e| match e {
        json::ReadError::Foreign(m) => bad(
            m,
            "give the file an airgap-verify run wrote with `--format json` (or `--output json=FILE`)",
        ),
        json::ReadError::Version(m) => bad(
            m,
            "merge with the airgap-verify version that wrote it, or rerun the check with this one",
        ),
        json::ReadError::Field(m) => bad(
            format!("not a readable airgap-verify report: {m}"),
            "give the report as the run wrote it, unedited",
        ),
    })?;
    let input = InputSummary {
        path: path.display().to_string(),
        kind: "report",
        size: bytes.len() as u64,
        sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))),
    };
    Ok((report, input))
}

/// Reads every file ([`read`]) and merges them ([`merge`]); the files are
/// the merged report's first inputs.
pub fn merge_files(files: &[ReportFile], policy: &Policy) -> Result<Report, InputError> {
    let mut reports = Vec::new();
    let mut inputs = Vec::new();
    for f in files {
        let (report, input) = read(&f.path)?;
        let name = f
            .name
            .clone()
            .unwrap_or_else(|| report.context.host.clone());
        reports.push((name, report));
        inputs.push(input);
    }
    let mut merged = merge(reports, Vec::new());
    inputs.append(&mut merged.inputs);
    merged.inputs = inputs;
    merged.judge(policy);
    Ok(merged)
}

/// One report of the cluster from each host's reports (`host`, report),
/// plus `extra` findings the caller made itself (a host that could not be
/// reached): every finding carries its host, and the cluster-wide checks
/// are added. The context is this machine's, with every host in `hosts`.
pub fn merge(reports: Vec<(String, Report)>, extra: Vec<Finding>) -> Report {
    let mut hosts: Vec<HostIdentity> = Vec::new();
    let mut findings = Vec::new();
    let mut inputs: Vec<InputSummary> = Vec::new();
    let mut duration_ms = 0;
    let mut interrupted = None;
    let mut fail_on_warn = false;
    for (name, report) in reports {
        // A merged report merged again keeps its hosts and their findings.
        let identities = if report.context.hosts.is_empty() {
            vec![HostIdentity {
                name: name.clone(),
                hostnames: vec![report.context.host.clone()],
                machine_id: report.context.machine_id.clone(),
                addresses: report.context.addresses.clone(),
                commands: vec![report.command.clone()],
            }]
        } else {
            report.context.hosts.clone()
        };
        for id in identities {
            match hosts.iter_mut().find(|h| h.name == id.name) {
                Some(h) => {
                    for n in id.hostnames {
                        if !h.hostnames.contains(&n) {
                            h.hostnames.push(n);
                        }
                    }
                    if h.machine_id.is_none() {
                        h.machine_id = id.machine_id;
                    }
                    for a in id.addresses {
                        if !h.addresses.contains(&a) {
                            h.addresses.push(a);
                        }
                    }
                    h.commands.extend(id.commands);
                }
                None => hosts.push(id),
            }
        }
        for i in report.inputs {
            if !inputs.contains(&i) {
                inputs.push(i);
            }
        }
        duration_ms = duration_ms.max(report.duration_ms);
        interrupted = interrupted.or(report.interrupted);
        fail_on_warn |= report.context.fail_on_warn;
        for mut f in report.findings {
            if f.host.is_none() {
                f.host = Some(name.clone());
            }
            findings.push(f);
        }
    }
    for h in &mut hosts {
        h.addresses.sort();
    }
    findings.extend(identity_findings(&hosts));
    findings.extend(clock_findings(&hosts, &findings));
    for mut f in extra {
        if f.host.is_none() {
            f.host = f.host.or_else(|| Some(f.target.clone()));
        }
        findings.push(f);
    }
    findings.sort_by(|a, b| (a.code, &a.host, &a.target).cmp(&(b.code, &b.host, &b.target)));
    let mut context = RunContext::begin(&Policy::default());
    context.fail_on_warn = fail_on_warn;
    context.hosts = hosts;
    Report {
        command: "merge".into(),
        inputs,
        findings,
        duration_ms,
        interrupted,
        context,
    }
}

/// Host names, machine ids and addresses seen on two hosts or more.
fn identity_findings<'a>(hosts: &'a [HostIdentity]) -> Vec<Finding> {
    if hosts.len() < 2 {
        return Vec::new();
    }
    let mut by_hostname: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut by_id: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut by_addr: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for h in hosts {
        for n in &h.hostnames {
            by_hostname.entry(n).or_default().insert(&h.name);
        }
        if let Some(id) = &h.machine_id {
            by_id.entry(id).or_default().insert(&h.name);
        }
        for a in &h.addresses {
            by_addr.entry(a).or_default().insert(&h.name);
        }
    }
    // Each value held by two hosts or more, with those hosts.
    let shared = |m: BTreeMap<&'a str, BTreeSet<&'a str>>| {
        m.into_iter()
            .filter(|(_, names)| names.len() > 1)
            .map(|(v, names)| (v, names.into_iter().collect::<Vec<&str>>()))
            .collect::<Vec<_>>()
    };
    let said = |what: &str, value: &str, names: &[&str]| {
        format!(
            "{} hosts have {what} {value}: {}",
            names.len(),
            names.join(", ")
        )
    };
    let mut out = Vec::new();
    for (v, names) in shared(by_hostname) {
        out.push(
            Finding::new(
                Code::ClusterDuplicateHostname,
                v,
                said("the host name", v, &names),
            )
            .evidence("hostname", v)
            .evidence("hosts", names),
        );
    }
    for (v, names) in shared(by_id) {
        out.push(
            Finding::new(
                Code::ClusterDuplicateMachineId,
                v,
                said("the machine id", v, &names),
            )
            .evidence("machine_id", v)
            .evidence("hosts", names),
        );
    }
    for (v, names) in shared(by_addr) {
        out.push(
            Finding::new(
                Code::ClusterDuplicateAddress,
                v,
                said("the address", v, &names),
            )
            .evidence("address", v)
            .evidence("hosts", names),
        );
    }
    if out.is_empty() {
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        out.push(
            Finding::new(
                Code::ClusterHostsDistinct,
                "cluster",
                format!(
                    "{} hosts with distinct host names, machine ids and addresses",
                    names.len()
                ),
            )
            .evidence("hosts", names),
        );
    }
    out
}

/// Each host's clock against the median of the cluster's. Every `flows`
/// run measured the responders' clocks against its own host's
/// (`flow:clock-*`, `skew_ms` = responder - source); chained from host to
/// host these give every clock's offset from one of them, and the median
/// of those offsets is the cluster's time.
fn clock_findings(hosts: &[HostIdentity], findings: &[Finding]) -> Vec<Finding> {
    // Responders name themselves (`listen --name`, else the host name).
    let alias = |n: &str| -> String {
        hosts
            .iter()
            .find(|h| h.name == n || h.hostnames.iter().any(|x| x == n))
            .map(|h| h.name.clone())
            .unwrap_or_else(|| n.to_string())
    };
    let mut max_ms = None::<i64>;
    // (a, b) with a < b -> estimates of clock(b) - clock(a).
    let mut pairs: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for f in findings {
        if !matches!(f.code, Code::FlowClockOk | Code::FlowClockSkew) {
            continue;
        }
        let (Some(source), Some(skew)) = (
            f.host.as_deref(),
            f.evidence.get("skew_ms").and_then(|v| v.as_i64()),
        ) else {
            continue;
        };
        if let Some(m) = f.evidence.get("max_skew_ms").and_then(|v| v.as_i64()) {
            max_ms = Some(max_ms.map_or(m, |x| x.max(m)));
        }
        let (s, r) = (alias(source), alias(&f.target));
        if s == r {
            continue;
        }
        if s < r {
            pairs.entry((s, r)).or_default().push(skew);
        } else {
            pairs.entry((r, s)).or_default().push(-skew);
        }
    }
    let max_ms = max_ms.unwrap_or(DEFAULT_MAX_SKEW_MS);
    let mut edges: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for ((a, b), v) in &pairs {
        let mean = v.iter().sum::<i64>() as f64 / v.len() as f64;
        edges.entry(a).or_default().push((b, mean));
        edges.entry(b).or_default().push((a, -mean));
    }
    let mut offset: BTreeMap<&str, f64> = BTreeMap::new();
    let mut out = Vec::new();
    let nodes: Vec<&str> = edges.keys().copied().collect();
    for start in nodes {
        if offset.contains_key(start) {
            continue;
        }
        // One connected set of hosts that measured each other.
        let mut component = vec![start];
        offset.insert(start, 0.0);
        let mut i = 0;
        while i < component.len() {
            let n = component[i];
            let base = offset[n];
            for (m, d) in &edges[n] {
                if !offset.contains_key(m) {
                    offset.insert(m, base + d);
                    component.push(m);
                }
            }
            i += 1;
        }
        let mut sorted: Vec<f64> = component.iter().map(|n| offset[n]).collect();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let k = sorted.len();
        let median = if k % 2 == 1 {
            sorted[k / 2]
        } else {
            (sorted[k / 2 - 1] + sorted[k / 2]) / 2.0
        };
        component.sort();
        let names: Vec<String> = component.iter().map(|s| s.to_string()).collect();
        for n in &component {
            let off = (offset[n] - median).round() as i64;
            let (code, msg) = if off.abs() > max_ms {
                (
                    Code::ClusterClockSkew,
                    format!(
                        "{n}'s clock is {} ms {} the median of the {k} clocks measured (more than {max_ms} ms apart)",
                        off.abs(),
                        if off >= 0 { "ahead of" } else { "behind" }
                    ),
                )
            } else {
                (
                    Code::ClusterClockOk,
                    format!(
                        "{n}'s clock is within {max_ms} ms of the median of the {k} clocks measured ({off} ms)"
                    ),
                )
            };
            let mut f = Finding::new(code, *n, msg)
                .evidence("skew_ms", off)
                .evidence("max_skew_ms", max_ms)
                .evidence("hosts", names.clone());
            f.host = Some(n.to_string());
            out.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, id: &str, addr: &str) -> HostIdentity {
        HostIdentity {
            name: name.into(),
            hostnames: vec![name.into()],
            machine_id: Some(id.into()),
            addresses: vec![addr.into()],
            commands: vec!["flows".into()],
        }
    }

    fn clock(from: &str, responder: &str, skew: i64) -> Finding {
        let mut f = Finding::new(Code::FlowClockOk, responder, "m").evidence("skew_ms", skew);
        f.host = Some(from.into());
        f
    }

    #[test]
    fn the_host_off_the_median_is_named_not_every_pair() {
        let hosts = vec![
            host("a", "1", "10.0.0.1"),
            host("b", "2", "10.0.0.2"),
            host("c", "3", "10.0.0.3"),
            host("d", "4", "10.0.0.4"),
        ];
        // c is 5 s ahead; a measured b, c, d; b measured c; d measured a.
        let f = vec![
            clock("a", "b", 10),
            clock("a", "c", 5000),
            clock("a", "d", -20),
            clock("b", "c", 4990),
            clock("d", "a", 20),
        ];
        let out = clock_findings(&hosts, &f);
        let skewed: Vec<&str> = out
            .iter()
            .filter(|f| f.code == Code::ClusterClockSkew)
            .map(|f| f.target.as_str())
            .collect();
        assert_eq!(skewed, vec!["c"]);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn duplicates_are_named_once_per_value() {
        let hosts = vec![
            host("a", "same", "10.0.0.1"),
            host("b", "same", "10.0.0.2"),
            host("c", "other", "10.0.0.2"),
        ];
        let out = identity_findings(&hosts);
        let codes: Vec<(Code, &str)> = out.iter().map(|f| (f.code, f.target.as_str())).collect();
        assert_eq!(
            codes,
            vec![
                (Code::ClusterDuplicateMachineId, "same"),
                (Code::ClusterDuplicateAddress, "10.0.0.2"),
            ]
        );
    }

    #[test]
    fn report_file_arguments() {
        assert_eq!(
            parse_report_file("node-1=r.json").unwrap().name.as_deref(),
            Some("node-1")
        );
        assert_eq!(parse_report_file("./a=b.json").unwrap().name, None);
        assert!(parse_report_file("n=").is_err());
    }
}
