//! Running a validated plan: producers send findings over one channel to one
//! collector; the report is built from what arrived, then the user's policy
//! is applied in one place.

use std::time::Instant;

use crate::bundle::{self, BundleOptions, Progress};
use crate::error::InputError;
use crate::finding::{Finding, Policy};
use crate::report::Report;

/// `airgap-verify bundle`: verify one archive or folder.
pub fn bundle(
    opts: &BundleOptions,
    policy: &Policy,
    progress: &dyn Progress,
) -> Result<Report, InputError> {
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::unbounded::<Finding>();
    let verified = bundle::verify(opts, progress, &tx)?;
    drop(tx);
    let mut findings: Vec<Finding> = rx.into_iter().collect();
    // Producers run on several threads; sort so reports are reproducible.
    findings.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
    policy.apply(&mut findings);
    Ok(Report {
        command: "bundle".into(),
        inputs: vec![verified.input],
        findings,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
