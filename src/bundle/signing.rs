//! Which signatures apply to a run, and their verdicts as findings.
//!
//! Guarantees:
//! - keys given on the command line are loaded before the pass starts, so a
//!   bad key fails in milliseconds (exit 2);
//! - the archive's signature is verified from the same single read as its
//!   checksum (the verifiers ride on the outer hash thread);
//! - a signature inside the archive (`manifest.json.minisig`) is verified
//!   against the manifest's captured bytes after the pass;
//! - a Sigstore bundle beside the archive (`PATH.sigstore.json`) is verified
//!   over the archive's SHA-256 from that same read, and one beside a member
//!   (`X.sigstore.json` inside the archive) over `X`'s SHA-256 from the walk,
//!   after the pass: nothing is read again;
//! - nothing here touches the network: cosign's transparency log is never
//!   consulted, and a Sigstore bundle is checked against its own inclusion
//!   proof and the trusted root file only.

use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;

use super::signature::{
    load_cosign_key, load_minisign_key, CosignKey, CosignOutcome, CosignSignature, MinisignKey,
    MinisignOutcome, MinisignSignature, MinisignVerifier, SigError,
};
use crate::error::InputError;
use crate::finding::{Code, Finding};

/// Keys from the command line.
#[derive(Debug, Clone, Default)]
pub struct SignatureOptions {
    /// `--pubkey`: a minisign public key string or file.
    pub minisign_key: Option<String>,
    /// `--cosign-key`: a PEM public key.
    pub cosign_key: Option<PathBuf>,
    /// Who must have signed `PATH.sigstore.json`, against which trusted root.
    pub sigstore: SigstoreOptions,
}

/// `--certificate-identity`/`--certificate-oidc-issuer` or `--sigstore-key`,
/// and `--trusted-root`.
#[derive(Debug, Clone, Default)]
pub struct SigstoreOptions {
    pub signer: Option<crate::sigstore::SignerPolicy>,
    pub trusted_root: Option<PathBuf>,
    /// `--require-signed-images`, `--require-sbom`, `--require-provenance`.
    pub images: super::imagesig::ImagePolicy,
}

/// The Sigstore part of a plan: the prepared trust and the bundle found.
pub struct SigstorePlan {
    pub signer: Option<crate::sigstore::SignerPolicy>,
    pub trust: Option<crate::sigstore::Trust>,
    /// `PATH.sigstore.json` (empty for a folder or standard input), and its
    /// text when present (a read error is kept for the report).
    pub bundle_path: String,
    pub bundle: Option<Result<String, String>>,
    /// Which absences of image signatures and attestations fail.
    pub images: super::imagesig::ImagePolicy,
}

/// Largest Sigstore bundle read: real ones are a few KiB (a certificate
/// chain, a log entry, a timestamp); this only stops a runaway file.
const MAX_SIGSTORE_BUNDLE: u64 = 16 << 20;

/// Loaded keys and the archive's detached signatures.
#[derive(Default)]
pub struct SignaturePlan {
    pub minisign_key: Option<std::sync::Arc<MinisignKey>>,
    pub cosign_key: Option<CosignKey>,
    /// `PATH.minisig`, when present (parse errors kept for the report).
    pub archive_minisig: Option<Result<MinisignSignature, SigError>>,
    /// `PATH.sig`, when present.
    pub archive_cosig: Option<Result<CosignSignature, SigError>>,
    pub archive_minisig_path: String,
    pub archive_cosig_path: String,
    /// Sigstore: set when an archive is verified.
    pub sigstore: Option<SigstorePlan>,
}

fn beside(archive: &Path, ext: &str) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// Loads keys (errors are exit 2) and looks for signatures beside `archive`.
pub fn plan(opts: &SignatureOptions, archive: Option<&Path>) -> Result<SignaturePlan, InputError> {
    let mut p = SignaturePlan {
        minisign_key: opts
            .minisign_key
            .as_deref()
            .map(load_minisign_key)
            .transpose()
            .map_err(|e| InputError::Usage(format!("--pubkey: {e}")))?
            .map(std::sync::Arc::new),
        cosign_key: opts
            .cosign_key
            .as_deref()
            .map(load_cosign_key)
            .transpose()
            .map_err(|e| InputError::Usage(format!("--cosign-key: {e}")))?,
        ..Default::default()
    };
    if let Some(a) = archive {
        let m = beside(a, ".minisig");
        p.archive_minisig_path = m.display().to_string();
        if m.exists() {
            p.archive_minisig = Some(MinisignSignature::load(&m));
        }
        let c = beside(a, ".sig");
        p.archive_cosig_path = c.display().to_string();
        if c.exists() {
            p.archive_cosig = Some(CosignSignature::load(&c));
        }
    }
    // A folder or standard input has nothing beside it, but its images may
    // carry signatures.
    p.sigstore = Some(sigstore_plan(&opts.sigstore, archive)?);
    Ok(p)
}

/// Loads the trusted root and checks the key before the pass (bad ones are
/// exit 2), and reads `PATH.sigstore.json` when it exists.
fn sigstore_plan(
    opts: &SigstoreOptions,
    archive: Option<&Path>,
) -> Result<SigstorePlan, InputError> {
    if opts.images.any() && opts.signer.is_none() {
        let flag = if opts.images.require_signed {
            "--require-signed-images"
        } else if opts.images.require_sbom {
            "--require-sbom"
        } else {
            "--require-provenance"
        };
        return Err(InputError::Usage(format!(
            "{flag} needs a signer to verify against: --certificate-identity (or --certificate-identity-regexp) with --certificate-oidc-issuer, or --sigstore-key"
        )));
    }
    let trust = match &opts.signer {
        None => None,
        Some(signer) => {
            signer.check()?;
            Some(crate::sigstore::Trust::load(match &opts.trusted_root {
                Some(p) => crate::sigstore::RootChoice::File(p),
                None => crate::sigstore::RootChoice::PublicGood,
            })?)
        }
    };
    let path = archive.map(|a| beside(a, ".sigstore.json"));
    let bundle = match &path {
        Some(p) if p.exists() => Some(read_capped(p, MAX_SIGSTORE_BUNDLE)),
        _ => None,
    };
    Ok(SigstorePlan {
        signer: opts.signer.clone(),
        trust,
        bundle_path: path.map(|p| p.display().to_string()).unwrap_or_default(),
        bundle,
        images: opts.images,
    })
}

fn read_capped(path: &Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > max {
        return Err(format!(
            "{} is larger than {} MiB: not a Sigstore bundle",
            path.display(),
            max >> 20
        ));
    }
    Ok(text)
}

/// Suffix of a Sigstore bundle; `X.sigstore.json` signs `X`.
pub const SIGSTORE_SUFFIX: &str = ".sigstore.json";

/// Verdicts on `PATH.sigstore.json` (over the archive's SHA-256 from the
/// pass) and on every `X.sigstore.json` member (over member `X`'s SHA-256
/// from the same pass). `members` holds the bundles' captured bytes.
pub fn sigstore_findings(
    plan: &SignaturePlan,
    archive_sha256: Option<[u8; 32]>,
    files: &super::table::FileTable,
    members: &[(String, Vec<u8>)],
    images_signed: bool,
    target: &str,
    findings: &Sender<Finding>,
) {
    let Some(p) = &plan.sigstore else { return };
    let send = |f: Finding| {
        let _ = findings.send(f);
    };
    match (&p.signer, &p.bundle) {
        (None, None) => {}
        // Like minisign: signed members are enough, the archive need not be.
        // Signed images are enough too: the signer may be given for them.
        (Some(_), None) if members.is_empty() && !images_signed && !p.bundle_path.is_empty() => send(Finding::new(
            Code::SigstoreMissing,
            target,
            format!(
                "a Sigstore signer was given but there is no {} beside the archive, no *{SIGSTORE_SUFFIX} inside it and no signature attached to an image",
                p.bundle_path
            ),
        )),
        (Some(_), None) => {}
        (_, Some(Err(e))) => send(
            Finding::new(Code::SigstoreRejected, target, e.clone())
                .evidence("scheme", "sigstore")
                .evidence("bundle", p.bundle_path.clone()),
        ),
        // A bundle beside the input is only read for an archive, whose
        // digest is known.
        (_, Some(Ok(json))) => {
            if let Some(sha256) = archive_sha256 {
                send(sigstore_verdict(p, json, sha256, &p.bundle_path, target))
            }
        }
    }
    for (path, bytes) in members {
        let signed = &path[..path.len() - SIGSTORE_SUFFIX.len()];
        let f = match (std::str::from_utf8(bytes), files.get(signed)) {
            (Err(_), _) => Finding::new(
                Code::SigstoreRejected,
                signed,
                format!("{path}: not a Sigstore bundle (not UTF-8 JSON)"),
            )
            .evidence("scheme", "sigstore")
            .evidence("bundle", path.clone()),
            (Ok(_), None) => Finding::new(
                Code::SigstoreRejected,
                signed,
                format!("{path} signs {signed}, which is not a file in the archive"),
            )
            .evidence("scheme", "sigstore")
            .evidence("bundle", path.clone()),
            (Ok(json), Some(rec)) => sigstore_verdict(p, json, rec.sha256, path, signed),
        };
        send(f);
    }
}

/// One bundle's finding: verified, rejected, or not verified for want of
/// a signer.
fn sigstore_verdict(
    p: &SigstorePlan,
    json: &str,
    sha256: [u8; 32],
    bundle_path: &str,
    target: &str,
) -> Finding {
    use crate::sigstore::{Outcome, Subject};
    let (signer, trust) = match (&p.signer, &p.trust) {
        (Some(s), Some(t)) => (s, t),
        _ => {
            return Finding::new(
                Code::SigstoreUnverified,
                target,
                format!(
                    "{bundle_path} not verified: no --certificate-identity/--certificate-oidc-issuer or --sigstore-key given"
                ),
            )
            .evidence("scheme", "sigstore")
            .evidence("bundle", bundle_path)
        }
    };
    let f = match crate::sigstore::verify(json, &Subject::Sha256(sha256), signer, trust) {
        Ok(v) => {
            let mut f = Finding::new(
                Code::SigstoreVerified,
                target,
                format!("{bundle_path}: {}", v.summary()),
            )
            .evidence("media_type", v.media_type.clone())
            .evidence("signed_at", v.signed_at.clone());
            if let Some(i) = &v.identity {
                f = f.evidence("identity", i.clone());
            }
            if let Some(i) = &v.issuer {
                f = f.evidence("issuer", i.clone());
            }
            if let Some(k) = &v.key_sha256 {
                f = f.evidence("key_sha256", k.clone());
            }
            f
        }
        Err(Outcome::Rejected(reason)) => Finding::new(
            Code::SigstoreRejected,
            target,
            format!("{bundle_path}: {reason}"),
        ),
        // The key was checked before the pass; should it have changed
        // since, the finding says so.
        Err(Outcome::Input(e)) => Finding::new(
            Code::SigstoreRejected,
            target,
            format!("{bundle_path}: {e}"),
        ),
    };
    policy_evidence(f, p).evidence("bundle", bundle_path)
}

/// The policy a Sigstore verdict was judged against, as evidence: the
/// expected signer and the trusted root's SHA-256.
pub fn policy_evidence(f: Finding, p: &SigstorePlan) -> Finding {
    use crate::sigstore::SignerPolicy;
    let (Some(signer), Some(trust)) = (&p.signer, &p.trust) else {
        return f;
    };
    let f = match signer {
        SignerPolicy::Identity { identity, issuer } => f
            .evidence("expected_identity", identity.clone())
            .evidence("expected_issuer", issuer.clone()),
        SignerPolicy::IdentityRegexp { pattern, issuer } => f
            .evidence("expected_identity_regexp", pattern.clone())
            .evidence("expected_issuer", issuer.clone()),
        SignerPolicy::Key(k) => f.evidence("key", k.display().to_string()),
    };
    f.evidence("trusted_root", trust.source.clone())
        .evidence("trusted_root_sha256", trust.sha256.clone())
        .evidence("scheme", "sigstore")
}

/// Streaming verifiers for the archive, fed by the outer hash thread.
pub struct ArchiveVerifiers<'a> {
    pub minisign: Option<Result<MinisignVerifier<'a>, String>>,
    pub cosign: Option<super::signature::CosignVerifier>,
}

impl<'a> ArchiveVerifiers<'a> {
    pub fn new(plan: &'a SignaturePlan) -> Self {
        let minisign = match (&plan.minisign_key, &plan.archive_minisig) {
            (Some(k), Some(Ok(s))) => {
                Some(MinisignVerifier::new(k.as_ref(), s).map_err(|e| e.to_string()))
            }
            _ => None,
        };
        let cosign = match (&plan.cosign_key, &plan.archive_cosig) {
            (Some(k), Some(Ok(s))) => Some(super::signature::CosignVerifier::new(k, s)),
            _ => None,
        };
        ArchiveVerifiers { minisign, cosign }
    }

    /// Whether any verifier reads the archive's bytes (a key and a
    /// signature were given, and the signature could be read).
    pub fn needs_bytes(&self) -> bool {
        matches!(self.minisign, Some(Ok(_))) || self.cosign.is_some()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(Ok(v)) = &mut self.minisign {
            v.update(chunk);
        }
        if let Some(v) = &mut self.cosign {
            v.update(chunk);
        }
    }
}

/// Verdicts of the archive's signatures.
pub struct ArchiveVerdicts {
    pub minisign: Option<Result<super::signature::MinisignVerdict, String>>,
    pub cosign: Option<CosignOutcome>,
}

impl ArchiveVerifiers<'_> {
    pub fn finish(self) -> ArchiveVerdicts {
        ArchiveVerdicts {
            minisign: self.minisign.map(|r| r.map(|v| v.finish())),
            cosign: self.cosign.map(|v| v.finish()),
        }
    }
}

fn minisign_finding(
    target: &str,
    what: &str,
    verdict: &super::signature::MinisignVerdict,
) -> Finding {
    let f = match &verdict.outcome {
        MinisignOutcome::Valid => Finding::new(
            Code::SignatureValid,
            target,
            format!(
                "{what}: minisign signature by key {} verifies ({})",
                verdict.key_id, verdict.trusted_comment
            ),
        ),
        MinisignOutcome::Invalid => Finding::new(
            Code::SignatureInvalid,
            target,
            format!("{what}: {}", verdict.reason().unwrap_or_default()),
        ),
        MinisignOutcome::OtherKey {
            signed_by,
            expected,
        } => Finding::new(
            Code::SignatureWrongKey,
            target,
            format!("{what}: minisign signature by key {signed_by}, expected key {expected}"),
        )
        .evidence("expected_key_id", expected.clone()),
    };
    f.evidence("scheme", "minisign")
        .evidence("key_id", verdict.key_id.clone())
        .evidence("trusted_comment", verdict.trusted_comment.clone())
}

/// Findings for the archive's own signatures.
pub fn archive_findings(
    plan: &SignaturePlan,
    verdicts: ArchiveVerdicts,
    manifest_signatures: usize,
    target: &str,
    findings: &Sender<Finding>,
) {
    let send = |f: Finding| {
        let _ = findings.send(f);
    };
    // minisign
    match (&plan.minisign_key, &plan.archive_minisig) {
        (Some(_), None) if manifest_signatures == 0 => send(Finding::new(
            Code::SignatureMissing,
            target,
            format!(
                "--pubkey given but there is no {} beside the archive and no manifest.json.minisig inside it",
                plan.archive_minisig_path
            ),
        )),
        (Some(_), None) => {}
        (_, Some(Err(e))) => send(Finding::new(Code::SignatureInvalid, target, e.to_string())),
        (None, Some(Ok(s))) => send(
            Finding::new(
                Code::SignatureNoKey,
                target,
                format!("{} (key {}) not verified: no --pubkey given", plan.archive_minisig_path, s.key_id()),
            )
            .evidence("key_id", s.key_id().to_string()),
        ),
        (Some(_), Some(Ok(_))) => match verdicts.minisign {
            Some(Ok(v)) => send(minisign_finding(target, &plan.archive_minisig_path, &v)),
            Some(Err(e)) => send(Finding::new(Code::SignatureInvalid, target, e)),
            None => {}
        },
        (None, None) => {}
    }
    // cosign
    match (&plan.cosign_key, &plan.archive_cosig) {
        (Some(_), None) => send(Finding::new(
            Code::SignatureMissing,
            target,
            format!(
                "--cosign-key given but no {} beside the archive",
                plan.archive_cosig_path
            ),
        )),
        (_, Some(Err(e))) => send(Finding::new(Code::SignatureInvalid, target, e.to_string())),
        (None, Some(Ok(_))) => send(Finding::new(
            Code::SignatureNoKey,
            target,
            format!(
                "{} not verified: no --cosign-key given",
                plan.archive_cosig_path
            ),
        )),
        (Some(_), Some(Ok(_))) => match verdicts.cosign {
            Some(CosignOutcome::Valid) => send(
                Finding::new(
                    Code::SignatureValid,
                    target,
                    format!(
                        "{}: cosign signature verifies (offline, no transparency log)",
                        plan.archive_cosig_path
                    ),
                )
                .evidence("scheme", "cosign"),
            ),
            Some(o) => send(
                Finding::new(
                    Code::SignatureInvalid,
                    target,
                    format!(
                        "{}: {}",
                        plan.archive_cosig_path,
                        o.reason().unwrap_or("the cosign signature does not verify")
                    ),
                )
                .evidence("scheme", "cosign"),
            ),
            None => {}
        },
        (None, None) => {}
    }
}

/// `manifest.json.minisig` inside the archive, checked against the
/// manifest's captured bytes.
pub fn manifest_findings(
    key: Option<&MinisignKey>,
    manifest_path: &str,
    manifest: &[u8],
    minisig: Option<&[u8]>,
    findings: &Sender<Finding>,
) {
    let sig_path = format!("{manifest_path}.minisig");
    let f = match (key, minisig) {
        // An unsigned manifest is fine when the archive itself is signed;
        // "no signature at all" is judged once, by the caller.
        (_, None) => return,
        (k, Some(bytes)) => match MinisignSignature::parse(bytes, &sig_path) {
            Err(e) => Finding::new(Code::SignatureInvalid, sig_path.clone(), e.to_string()),
            Ok(sig) => match k {
                None => Finding::new(
                    Code::SignatureNoKey,
                    sig_path.clone(),
                    format!(
                        "{sig_path} (key {}) not verified: no --pubkey given",
                        sig.key_id()
                    ),
                )
                .evidence("key_id", sig.key_id().to_string()),
                Some(k) => match MinisignVerifier::new(k, &sig) {
                    Err(e) => Finding::new(Code::SignatureInvalid, sig_path.clone(), e.to_string()),
                    Ok(mut v) => {
                        v.update(manifest);
                        minisign_finding(manifest_path, &sig_path, &v.finish())
                    }
                },
            },
        },
    };
    let _ = findings.send(f);
}
