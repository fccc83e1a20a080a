//! Git bundles inside the release, validated as they stream past.
//!
//! Why a scratch folder: libgit2's indexer writes the pack and its index to
//! disk while verifying; `gitbundle::validate_with` creates it in the first
//! of `$TMPDIR`, `/tmp`, `/var/tmp` and the current directory where it can
//! (`crate::scratch::parent_candidates`: an empty chroot or a minimal
//! container has no `/tmp`) and always removes it. Nothing else is written.
//! When none of them is writable the bundle is not checked, and
//! `gitbundle:not-checked` says so and which places were tried.

use crossbeam_channel::Sender;

use super::gitbundle::{self, GitBundleProblem};
use super::member::NestedOutcome;
use super::stream::ChunkReader;
use crate::finding::{Code, Finding};

pub fn run(
    input: &mut ChunkReader,
    findings: &Sender<Finding>,
    target: &str,
    max_ratio: u64,
) -> Option<NestedOutcome> {
    let report = gitbundle::validate_with(input, &crate::scratch::parent_candidates(), max_ratio);
    // Keep the outer stream flowing whatever happened.
    let _ = std::io::copy(input, &mut std::io::sink());
    if input.aborted() {
        return None;
    }
    let report = match report {
        Ok(r) => r,
        Err(e) if gitbundle::is_scratch_error(&e) => {
            let _ = findings.send(Finding::new(
                Code::GitbundleNotChecked,
                target,
                format!("{target}: the Git bundle was not checked: {e}"),
            ));
            return Some(NestedOutcome::default());
        }
        Err(e) => {
            let _ = findings.send(Finding::new(
                Code::BundleReadError,
                target,
                format!("{target}: cannot validate the Git bundle: {e}"),
            ));
            return Some(NestedOutcome::default());
        }
    };
    let send = |code: Code, msg: String| {
        let _ = findings.send(
            Finding::new(code, target, format!("{target}: {msg}"))
                .evidence("bundle_version", report.version),
        );
    };
    let mut failed = false;
    for p in &report.problems {
        let code = match p {
            GitBundleProblem::BadHeader { .. } | GitBundleProblem::NoRefs => {
                Code::GitbundleBadHeader
            }
            GitBundleProblem::NotSelfContained { .. }
            | GitBundleProblem::ThinPack { .. }
            | GitBundleProblem::Filtered { .. } => Code::GitbundleNotSelfContained,
            GitBundleProblem::UnsupportedObjectFormat { .. } => Code::GitbundleUnsupported,
            GitBundleProblem::PackInvalid { .. } => Code::GitbundlePackInvalid,
            GitBundleProblem::RefMissing { .. } => Code::GitbundleRefMissing,
            GitBundleProblem::ExpansionRatio { .. } => Code::BundleExpansionRatioExceeded,
        };
        failed |= code.default_status() == crate::finding::Status::Fail;
        send(code, p.to_string());
    }
    if report.problems.is_empty() {
        let refs: Vec<String> = report.refs.iter().map(|(n, _)| n.clone()).collect();
        let _ = findings.send(
            Finding::new(
                Code::GitbundleValid,
                target,
                format!(
                    "{target}: v{} bundle, {} objects, refs {}",
                    report.version,
                    report.objects,
                    refs.join(", ")
                ),
            )
            .evidence("bundle_version", report.version)
            .evidence("objects", report.objects)
            .evidence("pack_bytes", report.pack_bytes)
            .evidence("refs", refs),
        );
    }
    Some(NestedOutcome {
        intact: !failed,
        ..Default::default()
    })
}
