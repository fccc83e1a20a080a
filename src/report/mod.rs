//! Renderers: one file per output format. A renderer formats findings and
//! never inspects the world; the same [`Report`] feeds every format.

pub mod html;
pub mod human;
pub mod json;
pub mod junit;
pub mod matrix;
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
    /// This machine's id (`/var/lib/dbus/machine-id`, else
    /// `/etc/machine-id`, as Ansible's `ansible_machine_id`): cloned VMs
    /// share it, which `merge` reports.
    pub machine_id: Option<String>,
    /// This machine's addresses but loopback and link-local, sorted.
    pub addresses: Vec<String>,
    /// For a merged report, every host whose reports it holds; empty for
    /// the report of one run (its one host is the fields above).
    pub hosts: Vec<HostIdentity>,
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
            machine_id: machine_id(),
            addresses: addresses(),
            hosts: Vec::new(),
            arguments: std::env::args().skip(1).collect(),
            fail_on_warn: policy.fail_on_warn,
            severity: severity_of(policy),
            settings: Default::default(),
        }
    }

    /// `started_at` as RFC 3339 UTC, to the second.
    pub fn started_rfc3339(&self) -> String {
        crate::timefmt::rfc3339_seconds(self.started_at)
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

/// The machine id as Ansible's `ansible_machine_id` reads it: the D-Bus
/// copy first, then systemd's.
pub fn machine_id() -> Option<String> {
    ["/var/lib/dbus/machine-id", "/etc/machine-id"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// This machine's addresses (of its network namespace), without loopback
/// and link-local ones: what other hosts reach it by. IPv4 from the kernel's
/// local routing table (`/proc/net/fib_trie`, its `/32 host LOCAL` leaves),
/// IPv6 from `/proc/net/if_inet6` (global scope only).
pub fn addresses() -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<std::net::Ipv4Addr> = None;
        for line in text.lines() {
            let t = line.trim_start();
            if let Some(ip) = t.strip_prefix("|-- ") {
                last = ip.trim().parse().ok();
            } else if t.starts_with("/32 host LOCAL") {
                if let Some(ip) = last.take() {
                    if !ip.is_loopback() && !ip.is_link_local() {
                        out.insert(std::net::IpAddr::V4(ip));
                    }
                }
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // address, interface index, prefix length, scope, flags, name;
            // scope 00 is global.
            if cols.len() < 4 || cols[3] != "00" || cols[0].len() != 32 {
                continue;
            }
            if let Ok(bits) = u128::from_str_radix(cols[0], 16) {
                out.insert(std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits)));
            }
        }
    }
    out.into_iter().map(|a| a.to_string()).collect()
}

/// One host of a merged report: the name it is known by and what
/// identifies the machine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostIdentity {
    /// The name given to `merge` (`NAME=FILE`), else the host name its
    /// reports recorded.
    pub name: String,
    /// The kernel host names its reports recorded.
    pub hostnames: Vec<String>,
    pub machine_id: Option<String>,
    pub addresses: Vec<String>,
    /// The commands whose reports were merged for it (`flows`, `services`).
    pub commands: Vec<String>,
}

/// The per-code severity in force, by code id, as the report records it.
fn severity_of(
    policy: &crate::finding::Policy,
) -> std::collections::BTreeMap<String, crate::finding::Status> {
    policy
        .overrides
        .iter()
        .map(|(c, s)| (c.id().to_string(), *s))
        .collect()
}

impl Report {
    /// `policy` applied to findings that arrive already collected (merged
    /// hosts' reports), and recorded in the context as a run records it.
    pub fn judge(&mut self, policy: &crate::finding::Policy) {
        self.context.fail_on_warn = policy.fail_on_warn;
        self.context.severity = severity_of(policy);
        policy.apply(&mut self.findings);
    }

    /// The host a finding was observed from.
    pub fn host_of<'a>(&'a self, f: &'a Finding) -> &'a str {
        f.host.as_deref().unwrap_or(&self.context.host)
    }

    /// Every host of the report: the merged ones, or this run's own.
    pub fn hosts(&self) -> Vec<HostIdentity> {
        if !self.context.hosts.is_empty() {
            return self.context.hosts.clone();
        }
        let c = &self.context;
        vec![HostIdentity {
            name: c.host.clone(),
            hostnames: vec![c.host.clone()],
            machine_id: c.machine_id.clone(),
            addresses: c.addresses.clone(),
            commands: vec![self.command.clone()],
        }]
    }

    /// The summary of the findings observed from `host`.
    pub fn summary_of(&self, host: &str) -> Summary {
        let mine: Vec<Finding> = self
            .findings
            .iter()
            .filter(|f| self.host_of(f) == host)
            .cloned()
            .collect();
        Summary::of(&mine)
    }

    /// The flow matrix of the report's `flow:*` findings.
    pub fn matrix(&self) -> matrix::Matrix {
        matrix::Matrix::of(self)
    }

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

    /// One row per image of the release: who signed it, its SBOM and its
    /// provenance's builder, from the per-image summary findings
    /// (`image:signed`, `image:unsigned`, `image:signature-unverified`).
    pub fn image_signatures(&self) -> Vec<ImageRow> {
        use crate::codes::Code;
        let text = |f: &Finding, k: &str| {
            f.evidence
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        self.findings
            .iter()
            .filter(|f| {
                matches!(
                    f.code,
                    Code::ImageSigned | Code::ImageUnsigned | Code::ImageSignatureUnverified
                )
            })
            .map(|f| ImageRow {
                target: f.target.clone(),
                image: text(f, "image").unwrap_or_else(|| "-".into()),
                signature: match f.code {
                    Code::ImageSigned => format!(
                        "signed by {}",
                        text(f, "signed_by").unwrap_or_else(|| "?".into())
                    ),
                    Code::ImageSignatureUnverified => {
                        "signature not verified (no signer given)".into()
                    }
                    _ => "not signed".into(),
                },
                sbom: text(f, "sbom").unwrap_or_else(|| "none".into()),
                provenance_builder: text(f, "provenance_builder").unwrap_or_else(|| "none".into()),
                status: f.status,
            })
            .collect()
    }

    /// Each distinct external host and how many references name it, most
    /// named first, for the table the human and HTML reports show. The
    /// counts are those of `refs:scanned`, which counts every reference,
    /// not only those the report keeps as `refs:external` findings (a
    /// report written before it did: the findings). Empty when no
    /// `refs:external` finding is in the report (`--no-content`, or none
    /// outside the perimeter).
    pub fn external_hosts(&self) -> ExternalHosts {
        use crate::codes::Code;
        let mut out = ExternalHosts::default();
        if !self.findings.iter().any(|f| f.code == Code::RefsExternal) {
            return out;
        }
        let mut counts = std::collections::BTreeMap::<&str, u64>::new();
        let scanned: Vec<_> = self
            .findings
            .iter()
            .filter(|f| f.code == Code::RefsScanned)
            .filter_map(|f| Some((f, f.evidence.get("hosts")?.as_object()?)))
            .collect();
        if scanned.is_empty() {
            for f in &self.findings {
                if f.code == Code::RefsExternal {
                    if let Some(h) = f.evidence.get("host").and_then(|h| h.as_str()) {
                        *counts.entry(h).or_default() += 1;
                    }
                }
            }
        }
        for (f, hosts) in scanned {
            for (h, n) in hosts {
                *counts.entry(h).or_default() += n.as_u64().unwrap_or(0);
            }
            out.omitted += f
                .evidence
                .get("hosts_omitted")
                .and_then(|n| n.as_u64())
                .unwrap_or(0);
        }
        out.rows = counts
            .into_iter()
            .map(|(h, n)| (h.to_string(), n))
            .collect();
        out.rows
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
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

/// The external hosts the reports list (see [`Report::external_hosts`]).
#[derive(Debug, Clone, Default)]
pub struct ExternalHosts {
    /// Host and references, most referenced first, then by name.
    pub rows: Vec<(String, u64)>,
    /// References to hosts past the first 1,000 a scan counts one by one
    /// (`hosts_omitted`), not listed.
    pub omitted: u64,
}

/// An image of the release as the reports list it.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub target: String,
    pub image: String,
    /// `signed by ID`, `not signed`, or why it is not known.
    pub signature: String,
    pub sbom: String,
    pub provenance_builder: String,
    pub status: crate::codes::Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Junit,
    Sarif,
    /// One self-contained HTML page (inline style and script, fetches nothing).
    Html,
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
        Format::Html => html::render(report, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::Code;

    fn report(findings: Vec<Finding>) -> Report {
        Report {
            command: "bundle".into(),
            inputs: Vec::new(),
            findings,
            duration_ms: 0,
            interrupted: None,
            context: RunContext::begin(&crate::finding::Policy::default()),
        }
    }

    fn external(host: &str) -> Finding {
        Finding::new(Code::RefsExternal, "f.yaml:1", "m").evidence("host", host)
    }

    /// The counts of every `refs:scanned` (two when reports are merged)
    /// are summed, most referenced first; without them, the findings are
    /// counted; without any `refs:external` finding there is no table.
    #[test]
    fn external_hosts_are_the_scans_counts() {
        let scanned = |hosts: serde_json::Value, omitted: u64| {
            Finding::new(Code::RefsScanned, "r.tar", "m")
                .evidence("hosts", hosts)
                .evidence("hosts_omitted", omitted)
        };
        let r = report(vec![
            external("a.io"),
            scanned(serde_json::json!({"a.io": 3, "b.io": 5}), 7),
            scanned(serde_json::json!({"a.io": 2, "c.io": 5}), 0),
        ]);
        let h = r.external_hosts();
        assert_eq!(
            h.rows,
            [("a.io".into(), 5), ("b.io".into(), 5), ("c.io".into(), 5)]
        );
        assert_eq!(h.omitted, 7);
        let mut out = Vec::new();
        human::render(&r, false, human::Verbosity::Normal, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("and 7 references to further hosts, not listed"),
            "{out}"
        );
        // A report from before the counts: its findings.
        let r = report(vec![external("a.io"), external("b.io"), external("a.io")]);
        let h = r.external_hosts();
        assert_eq!(h.rows, [("a.io".into(), 2), ("b.io".into(), 1)]);
        assert_eq!(h.omitted, 0);
        let r = report(vec![scanned(serde_json::json!({"a.io": 3}), 0)]);
        assert!(r.external_hosts().rows.is_empty());
    }
}
