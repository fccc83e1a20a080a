//! The ledger of everything a probe writes, so that nothing is left behind.
//!
//! Guarantees:
//! - a write probe records how to undo a write *before* it sends it (a
//!   request cut off in flight may still have landed), and strikes the entry
//!   once its own clean-up has run, whatever that clean-up's outcome (the
//!   probe reports that outcome itself);
//! - every entry still open when the probes stop — because a probe overran
//!   its budget, or the run was interrupted by SIGINT or SIGTERM — is undone
//!   by [`Ledger::settle`] before the report is written, concurrently and
//!   within one clean-up deadline;
//! - each such entry becomes a finding: `cleanup:removed` when the undo
//!   worked, `cleanup:left-behind` naming exactly what remains when it did
//!   not (or when a second signal cut the clean-up short);
//! - undo actions are idempotent: "already gone" counts as removed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::finding::{Code, Finding};

/// An undo action: a future that has not been polled yet (futures are lazy,
/// so recording it costs nothing and sends nothing).
pub type Undo = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

struct Entry {
    target: String,
    /// What was written, in words an operator can act on.
    what: String,
    undo: Undo,
}

/// Open write-probe entries, shared by every probe of a run.
#[derive(Default)]
pub struct Ledger {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
}

/// Proof of one open entry; [`Ledger::done`] strikes it.
#[must_use = "strike the entry with Ledger::done once the probe's own clean-up ran"]
#[derive(Debug)]
pub struct Ticket(u64);

/// Why the open entries are being settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The probe overran its budget.
    Budget,
    /// The run was interrupted (the signal's name).
    Interrupted(&'static str),
}

impl Ledger {
    /// Records that `what` is about to be written at `target`, and how to
    /// remove it.
    pub fn record(&self, target: &str, what: impl Into<String>, undo: Undo) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            Entry {
                target: target.to_string(),
                what: what.into(),
                undo,
            },
        );
        Ticket(id)
    }

    /// The probe's own clean-up ran; the entry is no longer the ledger's.
    pub fn done(&self, ticket: Ticket) {
        self.lock().remove(&ticket.0);
    }

    /// How many entries are open.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (insert and remove are single calls), so a poisoned lock is used.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Undoes every open entry, concurrently, each within `deadline`, and
    /// returns one finding per entry. `stop` resolving (a second signal)
    /// abandons the undos still running; they are reported as left behind.
    pub async fn settle(
        &self,
        cause: Cause,
        deadline: Duration,
        stop: impl Future<Output = ()>,
    ) -> Vec<Finding> {
        let entries: Vec<Entry> = std::mem::take(&mut *self.lock()).into_values().collect();
        if entries.is_empty() {
            return Vec::new();
        }
        let why = match cause {
            Cause::Budget => "the probe overran its budget".to_string(),
            Cause::Interrupted(sig) => format!("the run was interrupted ({sig})"),
        };
        let mut set = tokio::task::JoinSet::new();
        let mut pending: BTreeMap<tokio::task::Id, (String, String)> = BTreeMap::new();
        for e in entries {
            let started = Instant::now();
            let names = (e.target.clone(), e.what.clone());
            let handle = set.spawn(async move {
                let r = match tokio::time::timeout(deadline, e.undo).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "no answer within {}",
                        crate::timefmt::fmt_duration(deadline)
                    )),
                };
                (e.target, e.what, r, started.elapsed())
            });
            // Names kept outside the task, for the entries a second signal abandons.
            pending.insert(handle.id(), names);
        }
        let mut out = Vec::new();
        let collect = async {
            while let Some(r) = set.join_next_with_id().await {
                if let Ok((id, (target, what, result, took))) = r {
                    pending.remove(&id);
                    out.push(finding(&why, target, what, result, took));
                }
            }
        };
        tokio::pin!(stop);
        let abandoned = tokio::select! {
            _ = collect => false,
            _ = &mut stop => true,
        };
        if abandoned {
            set.abort_all();
            // Collect what finished in the meantime; the rest is reported
            // with what it was about to remove.
            // Aborted tasks end in an error and are reported from `pending`.
            while let Some(r) = set.join_next_with_id().await {
                if let Ok((id, (target, what, result, took))) = r {
                    pending.remove(&id);
                    out.push(finding(&why, target, what, result, took));
                }
            }
            for (target, what) in pending.into_values() {
                out.push(finding(
                    &why,
                    target,
                    what,
                    Err("the clean-up was cut short by a second signal".into()),
                    Duration::ZERO,
                ));
            }
        }
        out
    }
}

fn finding(
    why: &str,
    target: String,
    what: String,
    result: Result<(), String>,
    took: Duration,
) -> Finding {
    let mut f = match result {
        Ok(()) => Finding::new(
            Code::CleanupRemoved,
            target,
            format!("{why} while it wrote {what}; removed it afterwards"),
        ),
        Err(e) => Finding::new(
            Code::CleanupLeftBehind,
            target,
            format!(
                "{why} while it wrote {what}; it could not be removed ({e}): remove it by hand"
            ),
        ),
    };
    f.duration_ms = took.as_millis() as u64;
    f.evidence("object", what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undo(r: Result<(), &'static str>, after: Duration) -> Undo {
        Box::pin(async move {
            tokio::time::sleep(after).await;
            r.map_err(String::from)
        })
    }

    fn codes(f: &[Finding]) -> Vec<(Code, String)> {
        let mut v: Vec<_> = f
            .iter()
            .map(|f| (f.code, f.evidence["object"].as_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn struck_entries_are_left_alone_and_open_ones_undone() {
        let l = Ledger::default();
        let a = l.record("t", "object a", undo(Ok(()), Duration::ZERO));
        let _b = l.record("t", "object b", undo(Ok(()), Duration::ZERO));
        let _c = l.record("t", "object c", undo(Err("403"), Duration::ZERO));
        l.done(a);
        assert_eq!(l.open(), 2);
        let f = l
            .settle(
                Cause::Interrupted("SIGINT"),
                Duration::from_secs(5),
                std::future::pending(),
            )
            .await;
        assert_eq!(
            codes(&f),
            vec![
                (Code::CleanupRemoved, "object b".into()),
                (Code::CleanupLeftBehind, "object c".into()),
            ]
        );
        assert!(f.iter().any(|f| f.message.contains("(403)")));
        assert!(f.iter().all(|f| f.message.contains("interrupted (SIGINT)")));
        assert_eq!(l.open(), 0, "settled entries are gone");
    }

    #[tokio::test]
    async fn a_hung_undo_is_cut_at_the_deadline() {
        let l = Ledger::default();
        let _t = l.record("t", "object", undo(Ok(()), Duration::from_secs(60)));
        let started = Instant::now();
        let f = l
            .settle(
                Cause::Budget,
                Duration::from_millis(50),
                std::future::pending(),
            )
            .await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(codes(&f), vec![(Code::CleanupLeftBehind, "object".into())]);
        assert!(
            f[0].message.contains("no answer within"),
            "{}",
            f[0].message
        );
    }

    #[tokio::test]
    async fn a_second_signal_abandons_the_clean_up_but_names_what_remains() {
        let l = Ledger::default();
        let _fast = l.record("t", "fast", undo(Ok(()), Duration::ZERO));
        let _slow = l.record("t", "slow", undo(Ok(()), Duration::from_secs(60)));
        let f = l
            .settle(
                Cause::Interrupted("SIGTERM"),
                Duration::from_secs(120),
                tokio::time::sleep(Duration::from_millis(100)),
            )
            .await;
        assert_eq!(
            codes(&f),
            vec![
                (Code::CleanupRemoved, "fast".into()),
                (Code::CleanupLeftBehind, "slow".into()),
            ]
        );
        assert!(f.iter().any(|f| f.message.contains("second signal")));
    }
}
