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

/// `airgap-verify services`: probe every service the plan names.
pub fn services(
    plan: crate::config::Perimeter,
    policy: &Policy,
    progress: std::sync::Arc<dyn crate::probe::ProbeProgress>,
) -> Result<Report, InputError> {
    let started = Instant::now();
    let inputs = plan
        .sources
        .iter()
        .map(|p| config_input(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut findings = crate::probe::run(plan, progress)?;
    findings.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
    policy.apply(&mut findings);
    Ok(Report {
        command: "services".into(),
        inputs,
        findings,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// A configuration file as the report's `inputs` describes it.
fn config_input(path: &std::path::Path) -> Result<bundle::InputSummary, InputError> {
    use sha2::Digest;
    let bytes =
        std::fs::read(path).map_err(|e| InputError::unreadable(path, "configuration", e))?;
    Ok(bundle::InputSummary {
        path: path.display().to_string(),
        kind: "config",
        size: bytes.len() as u64,
        sha256: Some(hex::encode(sha2::Sha256::digest(&bytes))),
    })
}
