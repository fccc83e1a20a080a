//! Running a validated plan: producers send findings over one channel to one
//! collector; the report is built from what arrived, then the user's policy
//! is applied in one place.

use std::time::Instant;

use crate::bundle::{self, BundleOptions, Progress};
use crate::error::InputError;
use crate::finding::{Code, Finding, Policy, Status};
use crate::report::Report;

/// `airgap-verify bundle`: verify one archive or folder.
pub fn bundle(
    opts: &BundleOptions,
    policy: &Policy,
    progress: &dyn Progress,
) -> Result<Report, InputError> {
    let started = Instant::now();
    let context = crate::report::RunContext::begin(policy);
    let (verified, mut findings) = bundle::verify_collected(opts, progress)?;
    let unverified = what_the_pass_did_not_verify(opts, &verified, &findings);
    findings.extend(unverified);
    if let Some(f) = nothing_verified(&findings, "bundle") {
        findings.push(f);
    }
    // Producers run on several threads; sort so reports are reproducible.
    findings.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
    policy.apply(&mut findings);
    Ok(Report {
        command: "bundle".into(),
        inputs: vec![verified.input],
        findings,
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: None,
        context,
    })
}

/// `airgap-verify services` (and `flows`): run the selected probes.
pub fn services(
    command: &str,
    plan: crate::config::Perimeter,
    select: crate::probe::Selection,
    policy: &Policy,
    progress: std::sync::Arc<dyn crate::probe::ProbeProgress>,
) -> Result<Report, InputError> {
    probes(command, plan, select, policy, progress)
}

/// `airgap-verify egress`: the proof of the air gap (the plan runs only the
/// egress checks).
pub fn egress(
    plan: crate::config::Perimeter,
    policy: &Policy,
    progress: std::sync::Arc<dyn crate::probe::ProbeProgress>,
) -> Result<Report, InputError> {
    // `plan.run_services` is off: the planned probes are the egress checks.
    probes(
        "egress",
        plan,
        crate::probe::Selection::SERVICES,
        policy,
        progress,
    )
}

fn probes(
    command: &str,
    plan: crate::config::Perimeter,
    select: crate::probe::Selection,
    policy: &Policy,
    progress: std::sync::Arc<dyn crate::probe::ProbeProgress>,
) -> Result<Report, InputError> {
    let started = Instant::now();
    let context = crate::report::RunContext::begin(policy);
    let inputs = plan
        .sources
        .iter()
        .map(|p| config_input(p))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = crate::probe::run(plan, select, progress)?;
    let mut findings = outcome.findings;
    if outcome.interrupted.is_none() {
        if let Some(f) = nothing_verified(&findings, command) {
            findings.push(f);
        }
    }
    findings.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
    policy.apply(&mut findings);
    Ok(Report {
        command: command.into(),
        inputs,
        findings,
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: outcome.interrupted,
        context,
    })
}

/// `airgap-verify check`: the archive (when given) and every configured
/// probe, in one report. The release's images found by the archive pass are
/// looked up in the configured registry.
pub fn check(
    bundle_opts: Option<&BundleOptions>,
    mut plan: crate::config::Perimeter,
    select: crate::probe::Selection,
    policy: &Policy,
    bundle_progress: &dyn Progress,
    progress: std::sync::Arc<dyn crate::probe::ProbeProgress>,
) -> Result<Report, InputError> {
    let started = Instant::now();
    let context = crate::report::RunContext::begin(policy);
    let mut inputs = Vec::new();
    let mut findings = Vec::new();
    if let Some(opts) = bundle_opts {
        let (verified, found) = bundle::verify_collected(opts, bundle_progress)?;
        let unverified = what_the_pass_did_not_verify(opts, &verified, &found);
        findings.extend(found);
        findings.extend(unverified);
        if let Some(reg) = plan.registry.as_mut() {
            // From the pass's typed result, not from the findings: those are
            // capped per code, and an image past the cap would go unchecked.
            let mut known: std::collections::HashSet<(String, String)> = reg
                .images
                .iter()
                .map(|i| (i.repo.clone(), i.tag.clone()))
                .collect();
            for image in release_images(&verified.images) {
                if known.insert((image.repo.clone(), image.tag.clone())) {
                    reg.images.push(image);
                }
            }
        }
        inputs.push(verified.input);
    }
    for p in &plan.sources {
        inputs.push(config_input(p)?);
    }
    if bundle_opts.is_none() {
        findings.push(Finding::new(
            Code::RunArchiveNotChecked,
            "check",
            "no --bundle: the release archive was not verified",
        ));
    }
    let outcome = crate::probe::run(plan, select, progress)?;
    findings.extend(outcome.findings);
    if outcome.interrupted.is_none() {
        if let Some(f) = nothing_verified(&findings, "check") {
            findings.push(f);
        }
    }
    findings.sort_by(|a, b| (a.code, &a.target).cmp(&(b.code, &b.target)));
    policy.apply(&mut findings);
    Ok(Report {
        command: "check".into(),
        inputs,
        findings,
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: outcome.interrupted,
        context,
    })
}

/// Findings for what an archive pass did not verify although a user would
/// assume it did: an input with no file at all, content not opened, and
/// nothing (checksum, manifest, signature) tying it to the vendor.
fn what_the_pass_did_not_verify(
    opts: &BundleOptions,
    verified: &bundle::Verified,
    found: &[Finding],
) -> Vec<Finding> {
    let target = &verified.input.path;
    let mut out = Vec::new();
    // Only when nothing else failed: a damaged or hostile archive whose
    // pass stopped early has said what is wrong already.
    let failed = found.iter().any(|f| f.status == Status::Fail);
    if verified.files.is_empty() && !failed {
        out.push(Finding::new(
            Code::BundleEmpty,
            target.clone(),
            if verified.input.kind == "directory" {
                "the folder holds no file: nothing was verified (is the staging volume mounted?)"
            } else {
                "the archive holds no file: nothing was verified"
            },
        ));
    }
    if opts.limits.max_depth == 0 {
        out.push(Finding::new(
            Code::BundleContentNotChecked,
            target.clone(),
            "nested archives (images, charts, content and Git bundles) were not opened and text files not scanned for external references (--no-content): their content was not verified",
        ));
    }
    let vouched = found.iter().any(|f| {
        matches!(
            f.code,
            Code::BundleChecksumVerified | Code::BundleManifestVerified | Code::SignatureValid
        ) && f.status == Status::Pass
    });
    if !vouched && !verified.files.is_empty() {
        out.push(Finding::new(
            Code::BundleUnauthenticated,
            target.clone(),
            "no checksum matched, no manifest was verified and no signature was checked: nothing ties this release to what the vendor shipped",
        ));
    }
    out
}

/// `run:nothing-verified` when no check ran: every finding (if any) is
/// about the configuration or a skipped part. Such a report says nothing,
/// and must not read as ready.
fn nothing_verified(findings: &[Finding], command: &str) -> Option<Finding> {
    if findings
        .iter()
        .any(|f| f.status != Status::Skip && !matches!(f.family(), "config" | "run"))
    {
        return None;
    }
    Some(Finding::new(
        Code::RunNothingVerified,
        command,
        format!(
            "{command} verified nothing: no check ran ({} finding(s), all about the configuration or skipped parts)",
            findings.len()
        ),
    ))
}

/// The images a verified release carries (the references of its intact
/// images), as registry paths: the registry host of the reference is
/// dropped, since the images are pushed to the perimeter's registry under
/// the same path.
fn release_images(refs: &[String]) -> Vec<crate::config::ImageRef> {
    refs.iter()
        .filter_map(|r| {
            // `host[:port]/path:tag`: the first segment is a host when it has
            // a dot or a port, or is `localhost`.
            let path = match r.split_once('/') {
                Some((first, rest))
                    if first.contains('.') || first.contains(':') || first == "localhost" =>
                {
                    rest
                }
                _ => r,
            };
            crate::config::ImageRef::parse(path).ok()
        })
        .collect()
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
