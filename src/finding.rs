//! Findings: the only thing validators and probes produce.
//!
//! Guarantees:
//! - every finding carries a stable code from [`crate::codes`]; its remediation
//!   and default status come from that table, never from the producer;
//! - status overrides (`--fail-on`, per-code overrides) are applied in exactly
//!   one place, [`Policy::apply`], after producers have finished;
//! - the exit code is derived from findings alone ([`Summary::exit_code`]).

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::codes::{Code, Status};

/// Structured evidence: what exactly was verified (sizes, digests, counts).
/// A `BTreeMap` keeps keys sorted so reports are byte-for-byte reproducible.
pub type Evidence = BTreeMap<String, serde_json::Value>;

/// One result of one check on one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub code: Code,
    pub status: Status,
    /// What was checked: for archive findings the member path inside the
    /// archive (nested members joined with `!`), otherwise a host, file or
    /// the archive itself.
    pub target: String,
    pub message: String,
    pub evidence: Evidence,
    pub duration_ms: u64,
    /// The status the check gave, when the user's policy (a severity
    /// override, `--fail-on warn`) changed it: the report shows both.
    pub original_status: Option<Status>,
    /// The host the finding was observed from, when it is not the host
    /// of the report that holds it: set by `merge` on the findings of each
    /// host's report. `None` is the report's own host.
    pub host: Option<String>,
}

impl Finding {
    /// A finding with the code's default status.
    pub fn new(code: Code, target: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            code,
            status: code.default_status(),
            target: target.into(),
            message: message.into(),
            evidence: Evidence::new(),
            duration_ms: 0,
            original_status: None,
            host: None,
        }
    }

    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    pub fn evidence(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.evidence.insert(key.to_string(), value.into());
        self
    }

    pub fn duration_ms(mut self, ms: u64) -> Self {
        self.duration_ms = ms;
        self
    }

    pub fn family(&self) -> &'static str {
        self.code.family()
    }

    pub fn remediation(&self) -> &'static str {
        self.code.info().remediation
    }

    /// For the one finding per capped code that [`FindingCap`] adds: how
    /// many findings of that code it stands for (evidence `omitted`).
    /// The key is the cap's alone: no check writes it.
    pub fn omitted(&self) -> Option<usize> {
        self.evidence
            .get("omitted")
            .and_then(|v| v.as_u64())
            .map(|n| n as usize)
    }
}

/// Counts per status. A cap marker counts as the findings it stands for,
/// not as one more: 2,500 absolute paths are 2,500 failures whether 1,000
/// of them are listed or all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Summary {
        let mut s = Summary::default();
        for f in findings {
            let n = f.omitted().unwrap_or(1);
            match f.status {
                Status::Pass => s.pass += n,
                Status::Warn => s.warn += n,
                Status::Fail => s.fail += n,
                Status::Skip => s.skip += n,
            }
        }
        s
    }

    /// Every finding counted, listed or not.
    pub fn total(&self) -> usize {
        self.pass + self.warn + self.fail + self.skip
    }

    /// The exit-code contract: 0 ready, 1 not ready. (2 is decided before any
    /// check runs, from usage, input or configuration errors.)
    pub fn exit_code(&self) -> i32 {
        if self.fail > 0 {
            1
        } else {
            0
        }
    }
}

/// How the user wants statuses judged: the one place severity is changed.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `--fail-on warn`: warnings fail the run.
    pub fail_on_warn: bool,
    /// Per-code severity (perimeter.yml `severity:`, then `--warn`, `--fail`,
    /// `--allow`), applied before `fail_on_warn`.
    pub overrides: BTreeMap<Code, Status>,
}

impl Policy {
    /// Re-grades the findings; each changed one keeps its original status.
    pub fn apply(&self, findings: &mut [Finding]) {
        for f in findings.iter_mut() {
            let before = f.status;
            if let Some(s) = self.overrides.get(&f.code) {
                // An override never turns a pass into a problem, nor a skip
                // into a verdict: it re-grades problems only.
                if f.status != Status::Pass && f.status != Status::Skip {
                    f.status = *s;
                }
            }
            if self.fail_on_warn && f.status == Status::Warn {
                f.status = Status::Fail;
            }
            if f.status != before && f.original_status.is_none() {
                f.original_status = Some(before);
            }
        }
    }
}

/// A severity as the user writes it (`fail`, `warn`, `pass`, or `allow` for
/// pass, as cargo-deny says it).
pub fn parse_severity(s: &str) -> Result<Status, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "fail" | "deny" | "error" => Ok(Status::Fail),
        "warn" | "warning" => Ok(Status::Warn),
        "pass" | "allow" => Ok(Status::Pass),
        other => Err(format!(
            "`{other}` is not a severity: write fail, warn or allow (pass)"
        )),
    }
}

/// A finding code as the user writes it; an unknown one names the nearest.
pub fn parse_code(s: &str) -> Result<Code, String> {
    Code::from_id(s.trim()).ok_or_else(|| {
        let hint = match crate::codes::suggest(s).as_slice() {
            [] => String::new(),
            [one] => format!("; did you mean `{one}`?"),
            many => format!(
                "; did you mean one of {}?",
                many.iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!(
            "unknown finding code `{s}`{hint} (`airgap-verify explain --list` shows every code)"
        )
    })
}

/// The signal that interrupted a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    Sigint,
    Sigterm,
}

impl Interrupt {
    pub fn name(self) -> &'static str {
        match self {
            Interrupt::Sigint => "SIGINT",
            Interrupt::Sigterm => "SIGTERM",
        }
    }

    /// The shell's convention: 128 + the signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            Interrupt::Sigint => 130,
            Interrupt::Sigterm => 143,
        }
    }
}

/// The input as the report's `inputs` section describes it.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct InputSummary {
    pub path: String,
    pub kind: &'static str,
    pub size: u64,
    /// SHA-256 of the whole file; `None` for a folder or an unreadable file.
    pub sha256: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_cap_keeps_the_first_by_target_in_any_order() {
        let n = MAX_FINDINGS_PER_CODE + 500;
        let make = |i: usize| Finding::new(Code::BundleFileMissing, format!("f/{i:06}"), "m");
        for reversed in [false, true] {
            let mut cap = FindingCap::default();
            let order: Vec<usize> = if reversed {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            };
            for i in order {
                cap.push(make(i));
            }
            cap.push(Finding::new(Code::BundleSetuid, "x", "m"));
            let mut out = cap.finish("input.tar");
            out.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
            assert_eq!(out.len(), MAX_FINDINGS_PER_CODE + 2);
            let missing: Vec<&Finding> = out
                .iter()
                .filter(|f| f.code == Code::BundleFileMissing)
                .collect();
            assert_eq!(missing[0].target, "f/000000");
            assert_eq!(missing[MAX_FINDINGS_PER_CODE - 1].target, "f/000999");
            let summary = missing.last().unwrap();
            assert_eq!(summary.target, "input.tar");
            assert_eq!(summary.evidence["omitted"], 500);
        }
    }

    #[test]
    fn fail_on_warn_turns_warnings_into_failures() {
        let mut v = vec![
            Finding::new(Code::BundleChecksumMissing, "a", "m"),
            Finding::new(Code::BundleChecksumVerified, "a", "m"),
        ];
        assert_eq!(Summary::of(&v).exit_code(), 0);
        Policy {
            fail_on_warn: true,
            ..Default::default()
        }
        .apply(&mut v);
        assert_eq!(v[0].status, Status::Fail);
        assert_eq!(v[1].status, Status::Pass);
        assert_eq!(Summary::of(&v).exit_code(), 1);
    }

    #[test]
    fn override_regrades_problems_only() {
        let mut v = vec![
            Finding::new(Code::BundleCaseCollision, "a", "m"),
            Finding::new(Code::BundleChecksumVerified, "a", "m"),
        ];
        let mut overrides = BTreeMap::new();
        overrides.insert(Code::BundleCaseCollision, Status::Fail);
        overrides.insert(Code::BundleChecksumVerified, Status::Fail);
        Policy {
            fail_on_warn: false,
            overrides,
        }
        .apply(&mut v);
        assert_eq!(v[0].status, Status::Fail);
        assert_eq!(v[1].status, Status::Pass);
    }
}

/// Most findings of one code kept in a report; the rest are counted in one
/// summary finding of the same code. A hostile archive can make a finding
/// per entry (200,000 files listed in a manifest and missing, an absolute
/// path on every entry): kept whole, they cost a gigabyte and a report no
/// one can read, and the verdict is the same with a thousand.
pub const MAX_FINDINGS_PER_CODE: usize = 1000;

/// Evidence key of [`Finding::omitted_upstream`].
const OMITTED_UPSTREAM: &str = "omitted_upstream";

impl Finding {
    /// Stands for `n` findings of `code` that a producer did not build
    /// because none of them could be among the [`MAX_FINDINGS_PER_CODE`]
    /// a report keeps: it had already sent at least that many that sort
    /// before each of them. [`FindingCap`] counts them as omitted; the
    /// report is the same as if they had been sent. A skip, so that a
    /// reader of the raw channel that looks for problems ignores it.
    pub fn omitted_upstream(code: Code, n: usize) -> Finding {
        Finding::new(code, "", "")
            .with_status(Status::Skip)
            .evidence(OMITTED_UPSTREAM, n)
    }
}

/// A finding ordered by what the report sorts on, for [`FindingCap`].
struct ByTarget(Finding);

impl ByTarget {
    fn key(&self) -> (&str, &str) {
        (&self.0.target, &self.0.message)
    }
}

impl PartialEq for ByTarget {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for ByTarget {}
impl PartialOrd for ByTarget {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByTarget {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key().cmp(&o.key())
    }
}

/// Collects findings keeping at most [`MAX_FINDINGS_PER_CODE`] of each code:
/// the first by target and message, whatever order the producers' threads
/// sent them in, so the report stays reproducible. Memory is bounded by the
/// number of codes, not of findings.
#[derive(Default)]
pub struct FindingCap {
    kept: std::collections::HashMap<Code, std::collections::BinaryHeap<ByTarget>>,
    omitted: BTreeMap<Code, usize>,
}

impl FindingCap {
    pub fn push(&mut self, f: Finding) {
        let code = f.code;
        if f.target.is_empty() && f.message.is_empty() {
            if let Some(n) = f.evidence.get(OMITTED_UPSTREAM).and_then(|v| v.as_u64()) {
                *self.omitted.entry(code).or_default() += n as usize;
                return;
            }
        }
        let heap = self.kept.entry(code).or_default();
        heap.push(ByTarget(f));
        if heap.len() > MAX_FINDINGS_PER_CODE {
            // Drop the greatest, so the smallest targets stay.
            heap.pop();
            *self.omitted.entry(code).or_default() += 1;
        }
    }

    /// Whether any finding kept so far matches `pred`. Every code that was
    /// sent has kept findings, so a question about codes and statuses gets
    /// the same answer as over everything sent.
    pub fn any(&self, mut pred: impl FnMut(&Finding) -> bool) -> bool {
        self.kept.values().flatten().any(|b| pred(&b.0))
    }

    /// How many findings are kept so far.
    pub fn len(&self) -> usize {
        self.kept.values().map(|h| h.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The kept findings, plus one per capped code naming `target` (the
    /// input) and how many were left out.
    pub fn finish(self, target: &str) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .kept
            .into_values()
            .flat_map(|h| h.into_vec().into_iter().map(|b| b.0))
            .collect();
        for (code, n) in self.omitted {
            out.push(
                Finding::new(
                    code,
                    target,
                    format!(
                        "{n} more {code} findings not listed: a report keeps the first {MAX_FINDINGS_PER_CODE} of each code (by target)"
                    ),
                )
                .evidence("omitted", n),
            );
        }
        out
    }
}
