//! The one place a run's findings go: every producer (the archive pass on
//! its threads, the probes, the configuration, `manifest create`, what the
//! run adds itself) hands its findings to one [`Sink`], which
//!
//! - keeps at most [`MAX_FINDINGS_PER_CODE`] of each code, the first by
//!   target whatever order threads sent them in, and counts the rest
//!   (`omitted` on one marker finding per capped code), so memory is
//!   bounded by the number of codes, never by the archive or the plan;
//! - receives from threads over a *bounded* channel ([`Sink::collect`]):
//!   producers wait for it rather than queue a backlog;
//! - sorts the findings by code and target, so reports are reproducible;
//! - applies the user's [`Policy`] (per-code severity, then `--fail-on`) in
//!   that one place, after everything has arrived.
//!
//! Typed results a later step needs (the release's image references) do not
//! travel through here: findings may be capped.

use crossbeam_channel::Sender;

use crate::finding::{Finding, FindingCap, Policy};

pub use crate::finding::MAX_FINDINGS_PER_CODE;

/// How many findings a producer may send ahead of the collector.
const CHANNEL_BOUND: usize = 1024;

/// Collects a run's findings; see the module documentation.
#[derive(Default)]
pub struct Sink {
    cap: FindingCap,
}

impl Sink {
    pub fn new() -> Sink {
        Sink::default()
    }

    pub fn push(&mut self, f: Finding) {
        self.cap.push(f);
    }

    pub fn extend(&mut self, findings: impl IntoIterator<Item = Finding>) {
        for f in findings {
            self.cap.push(f);
        }
    }

    /// Whether any finding held matches `pred` (see [`FindingCap::any`]):
    /// for the findings a run adds about what the others did not cover.
    pub fn any(&self, pred: impl FnMut(&Finding) -> bool) -> bool {
        self.cap.any(pred)
    }

    /// How many findings are held (capped findings not counted).
    pub fn len(&self) -> usize {
        self.cap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `produce` with a bounded sender whose findings this sink
    /// receives as they come, on a thread of its own (it only ever
    /// receives, so it cannot wait on the producers). Returns what
    /// `produce` returned, once every finding it sent has arrived.
    pub fn collect<T>(&mut self, produce: impl FnOnce(&Sender<Finding>) -> T) -> T {
        let (tx, rx) = crossbeam_channel::bounded::<Finding>(CHANNEL_BOUND);
        let mut cap = std::mem::take(&mut self.cap);
        std::thread::scope(|s| {
            let collector = s.spawn(move || {
                for f in rx {
                    cap.push(f);
                }
                cap
            });
            let out = produce(&tx);
            drop(tx);
            // The collector cannot panic short of an allocation failure;
            // should it, the findings it held are lost, never the run.
            self.cap = collector.join().unwrap_or_default();
            out
        })
    }

    /// The findings, capped (markers name `input`), sorted by code and
    /// target, with `policy` applied.
    pub fn finish(self, input: &str, policy: &Policy) -> Vec<Finding> {
        let mut findings = self.cap.finish(input);
        // Producers run on several threads; sort so reports are reproducible.
        findings.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
        policy.apply(&mut findings);
        findings
    }

    /// The findings as collected, capped and sorted, without any policy:
    /// for callers that look at the checks' own verdicts (`manifest
    /// create` refuses a baseline from a copy with a failing check).
    pub fn finish_unjudged(self, input: &str) -> Vec<Finding> {
        self.finish(input, &Policy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Code, Status};

    #[test]
    fn findings_from_threads_are_capped_sorted_and_judged_once() {
        let mut sink = Sink::new();
        sink.push(Finding::new(Code::BundleChecksumMissing, "b", "m"));
        let n = MAX_FINDINGS_PER_CODE + 10;
        // More than the channel holds, from two threads, in reverse order.
        let sent = sink.collect(|tx| {
            std::thread::scope(|s| {
                for half in 0..2 {
                    let tx = tx.clone();
                    s.spawn(move || {
                        for i in (0..n).rev().filter(|i| i % 2 == half) {
                            tx.send(Finding::new(
                                Code::BundleFileMissing,
                                format!("f{i:05}"),
                                "m",
                            ))
                            .unwrap();
                        }
                    });
                }
            });
            n
        });
        assert_eq!(sent, n);
        let policy = Policy {
            fail_on_warn: false,
            overrides: [(Code::BundleChecksumMissing, Status::Pass)]
                .into_iter()
                .collect(),
        };
        let out = sink.finish("input.tar", &policy);
        let missing: Vec<_> = out
            .iter()
            .filter(|f| f.code == Code::BundleFileMissing)
            .collect();
        assert_eq!(missing.len(), MAX_FINDINGS_PER_CODE + 1);
        assert_eq!(missing[0].target, "f00000");
        assert_eq!(missing.last().unwrap().evidence["omitted"], 10);
        let warned = out
            .iter()
            .find(|f| f.code == Code::BundleChecksumMissing)
            .unwrap();
        assert_eq!(warned.status, Status::Pass, "the policy was applied");
        let mut sorted = out.clone();
        sorted.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
        assert_eq!(
            out.iter().map(|f| &f.target).collect::<Vec<_>>(),
            sorted.iter().map(|f| &f.target).collect::<Vec<_>>()
        );
    }
}
