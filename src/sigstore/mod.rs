//! Sigstore bundle verification, fully offline (issue #19).
//!
//! A Sigstore bundle (`*.sigstore.json`, media types v0.1, v0.2 and v0.3)
//! carries a signature over an artifact (a message signature, or a DSSE
//! envelope holding an in-toto statement whose subject is the artifact) and
//! everything needed to check it without asking anyone: the signing
//! certificate (or a key hint), the transparency-log entry with its inclusion
//! proof, checkpoint and signed entry timestamp, and RFC 3161 timestamps.
//!
//! The checks are those of the Sigstore client specification, as implemented
//! by the `sigstore-verify` crate (sigstore/sigstore-rust), running on this
//! project's ring provider ([`crypto`]): certificate chain to a Fulcio CA of
//! the trusted root, valid at a verified signing time; SCTs against the
//! root's CT log keys; Rekor v1 inclusion proofs, checkpoints and signed
//! entry timestamps; Rekor v2 checkpoints (any signature line by the log's
//! key; unknown witness cosignatures are ignored); RFC 3161 timestamps
//! against the root's timestamp authorities; that the log entry records this
//! artifact, this signature and this certificate; the identity (exact, or a
//! regular expression anchored at both ends) and issuer (exact) policy; or,
//! for a managed key, the signature under that key.
//!
//! Guarantees:
//! - no network: nothing here opens a socket; the trust material is the
//!   trusted root file given (or the public-good root embedded in this
//!   build), and a log entry without an inclusion proof is rejected, never
//!   looked up;
//! - an artifact file is read once, in constant memory;
//! - the result names the trust material by its SHA-256 and the signer by
//!   its certificate identity and issuer (or the key's SHA-256);
//! - bad input that is the operator's (unreadable file, malformed trusted
//!   root or key, bad digest) is an [`Outcome::Input`] error (exit 2);
//!   anything wrong with the bundle or what it claims is a rejection with one
//!   reason line (exit 1).
//!
//! [`sign`] is the other side, for tests and the sample release only: a
//! Sigstore instance of our own (CA, CT log, transparency log, timestamp
//! authority) that writes a trusted root and bundles this verifier accepts,
//! or rejects when tampered.

pub mod crypto;
pub mod sign;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::{Bundle, DerPublicKey, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, Verifier};

use crate::error::InputError;

/// Which trusted root to verify against.
#[derive(Debug, Clone, Copy)]
pub enum RootChoice<'a> {
    /// A `trusted_root.json` file (what an operator in a closed network uses).
    File(&'a Path),
    /// The public-good instance's root embedded in this build
    /// (sigstore-trust-root 0.15.1): it is as current as the build.
    PublicGood,
    /// The staging instance's root embedded in this build.
    Staging,
}

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum SignerPolicy {
    /// A Fulcio certificate whose SAN equals `identity` and whose OIDC issuer
    /// extension equals `issuer`.
    Identity { identity: String, issuer: String },
    /// A Fulcio certificate whose whole SAN matches the regular expression
    /// `pattern` (anchored at both ends) and whose OIDC issuer equals
    /// `issuer`.
    IdentityRegexp { pattern: String, issuer: String },
    /// A managed key (PEM public key file); no certificate is involved.
    Key(PathBuf),
}

impl SignerPolicy {
    /// Checks the operator's part of the policy before any verification: a
    /// key file that cannot be read or parsed is an input error (exit 2).
    pub fn check(&self) -> Result<(), InputError> {
        match self {
            SignerPolicy::Key(p) => load_key(p).map(|_| ()),
            SignerPolicy::Identity { .. } => Ok(()),
            SignerPolicy::IdentityRegexp { pattern, .. } => identity_regex(pattern).map(|_| ()),
        }
    }
}

/// The identity pattern, anchored: `.*@example.com` must match the whole
/// SAN, not a part of it (an unanchored pattern would accept
/// `https://evil.test/?x@example.com`-style identities).
fn identity_regex(pattern: &str) -> Result<regex::Regex, InputError> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        InputError::Usage(format!(
            "--certificate-identity-regexp {pattern:?} is not a valid regular expression: {e}"
        ))
    })
}

/// What was signed.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A file, read once.
    File(PathBuf),
    /// A precomputed SHA-256, as `sha256:HEX` on the command line.
    Sha256([u8; 32]),
}

impl Subject {
    /// `FILE_OR_DIGEST` of the conformance protocol: `sha256:<64 hex>` is a
    /// digest, anything else a file path.
    pub fn parse(arg: &str) -> Result<Subject, InputError> {
        match arg.strip_prefix("sha256:") {
            Some(hex_digest) => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(hex_digest, &mut out).map_err(|_| {
                    InputError::Usage(format!(
                        "artifact digest {arg:?}: expected sha256: followed by 64 hex digits"
                    ))
                })?;
                Ok(Subject::Sha256(out))
            }
            None => Ok(Subject::File(PathBuf::from(arg))),
        }
    }
}

/// The trust material: a trusted_root.json, prepared once.
pub struct Trust {
    verifier: Verifier,
    /// Where it came from: the file's path, or which embedded root.
    pub source: String,
    /// SHA-256 of the trusted root's bytes, as hex.
    pub sha256: String,
}

impl Trust {
    /// Loads a trusted root. A malformed root (missing validity start,
    /// duplicate log ids, unparsable certificates) is an input error.
    pub fn load(choice: RootChoice<'_>) -> Result<Trust, InputError> {
        use sigstore_verify::trust_root::{
            SIGSTORE_PRODUCTION_TRUSTED_ROOT, SIGSTORE_STAGING_TRUSTED_ROOT,
        };
        crypto::install();
        let (text, source) = match choice {
            RootChoice::File(p) => (
                std::fs::read_to_string(p)
                    .map_err(|e| InputError::unreadable(p, "trusted root", e))?,
                p.display().to_string(),
            ),
            RootChoice::PublicGood => (
                SIGSTORE_PRODUCTION_TRUSTED_ROOT.to_string(),
                "embedded public-good (sigstore-trust-root 0.15.1)".to_string(),
            ),
            RootChoice::Staging => (
                SIGSTORE_STAGING_TRUSTED_ROOT.to_string(),
                "embedded staging (sigstore-trust-root 0.15.1)".to_string(),
            ),
        };
        let bad = |e: &dyn std::fmt::Display| {
            InputError::Config(format!(
                "trusted root {source}: {e}; give the trusted_root.json of the Sigstore instance \
                 that signed (--trusted-root FILE)"
            ))
        };
        let root = TrustedRoot::from_json(&text).map_err(|e| bad(&e))?;
        let verifier = Verifier::new(&root).map_err(|e| bad(&e))?;
        Ok(Trust {
            verifier,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            source,
        })
    }
}

/// A managed key, loaded before anything is verified.
struct LoadedKey {
    key: DerPublicKey,
    sha256: String,
}

fn load_key(path: &Path) -> Result<LoadedKey, InputError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| InputError::unreadable(path, "public key", e))?;
    let key = DerPublicKey::from_pem(&text).map_err(|e| {
        InputError::Config(format!(
            "public key {}: not a PEM public key ({e}); give the signer's PEM public key \
             (-----BEGIN PUBLIC KEY-----)",
            path.display()
        ))
    })?;
    Ok(LoadedKey {
        sha256: hex::encode(Sha256::digest(key.as_bytes())),
        key,
    })
}

/// What a verified bundle proved.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The bundle's media type (its version).
    pub media_type: String,
    /// Certificate SAN of the signer (keyless bundles).
    pub identity: Option<String>,
    /// Certificate OIDC issuer (keyless bundles).
    pub issuer: Option<String>,
    /// SHA-256 of the managed key's DER (key bundles).
    pub key_sha256: Option<String>,
    /// Source and SHA-256 of the trusted root used.
    pub trust_source: String,
    pub trust_sha256: String,
    /// The authenticated signing times (log integrated time, RFC 3161
    /// timestamps), RFC 3339.
    pub signed_at: Vec<String>,
}

impl Verified {
    /// One line for a person: who signed, against what.
    pub fn summary(&self) -> String {
        let who = match (&self.identity, &self.issuer, &self.key_sha256) {
            (Some(id), Some(iss), _) => format!("signed by {id} (issuer {iss})"),
            (_, _, Some(k)) => format!("signed by the given key (sha256 {k})"),
            _ => "signed".to_string(),
        };
        let when = match self.signed_at.first() {
            Some(t) => format!(" at {t}"),
            None => String::new(),
        };
        format!(
            "{who}{when}; {}; trusted root {} (sha256 {})",
            self.media_type, self.trust_source, self.trust_sha256
        )
    }
}

/// Why a verification did not succeed.
#[derive(Debug)]
pub enum Outcome {
    /// The operator's input is unusable (exit 2).
    Input(InputError),
    /// The bundle does not verify; the reason is one line (exit 1).
    Rejected(String),
}

impl From<InputError> for Outcome {
    fn from(e: InputError) -> Self {
        Outcome::Input(e)
    }
}

/// Parses a bundle's JSON. A bundle that does not parse (unknown version,
/// negative log index, malformed checkpoint) is a rejection: the bundle is
/// what is being judged, not the operator's input.
pub fn parse_bundle(json: &str) -> Result<Bundle, String> {
    Bundle::from_json(json).map_err(|e| format!("not a valid Sigstore bundle: {e}"))
}

/// Verifies `bundle_json` over `subject` for `policy`, against `trust`.
pub fn verify(
    bundle_json: &str,
    subject: &Subject,
    policy: &SignerPolicy,
    trust: &Trust,
) -> Result<Verified, Outcome> {
    crypto::install();
    // The key is the operator's input: load it before judging the bundle.
    let key = match policy {
        SignerPolicy::Key(p) => Some(load_key(p)?),
        SignerPolicy::Identity { .. } | SignerPolicy::IdentityRegexp { .. } => None,
    };
    // A pattern is matched after verification, on the verified certificate's
    // SAN; the issuer is matched exactly by the verifier.
    let (cert_policy, pattern) = match policy {
        SignerPolicy::Identity { identity, issuer } => (
            Some(VerificationPolicy::new(identity.as_str(), issuer.as_str())),
            None,
        ),
        SignerPolicy::IdentityRegexp { pattern, issuer } => (
            Some(VerificationPolicy::any_identity().require_issuer(issuer.as_str())),
            Some((pattern.as_str(), identity_regex(pattern)?)),
        ),
        SignerPolicy::Key(_) => (None, None),
    };
    let bundle = parse_bundle(bundle_json).map_err(Outcome::Rejected)?;
    let run = |v: &Verifier| -> sigstore_verify::Result<sigstore_verify::VerificationResult> {
        let reader =
            |p: &Path| open(p).map_err(|e| sigstore_verify::Error::InvalidBundle(e.to_string()));
        match (&key, &cert_policy, subject) {
            (Some(k), _, Subject::Sha256(d)) => v.verify(
                Sha256Hash::new(*d),
                &bundle,
                &PublicKeyVerificationPolicy::new(k.key.clone()),
            ),
            (Some(k), _, Subject::File(p)) => v.verify_reader(
                reader(p)?,
                &bundle,
                &PublicKeyVerificationPolicy::new(k.key.clone()),
            ),
            (None, Some(c), Subject::Sha256(d)) => v.verify(Sha256Hash::new(*d), &bundle, c),
            (None, Some(c), Subject::File(p)) => v.verify_reader(reader(p)?, &bundle, c),
            (None, None, _) => unreachable!("a policy is a key or a certificate policy"),
        }
    };
    // An unreadable artifact is the operator's problem, not the bundle's:
    // check it can be opened before verifying, so the error maps to exit 2.
    if let Subject::File(p) = subject {
        open(p)?;
    }
    let result = run(&trust.verifier).map_err(|e| Outcome::Rejected(e.to_string()))?;
    if let Some((pattern, re)) = pattern {
        let identity = result.identity().map(|i| i.as_str()).unwrap_or("");
        if !re.is_match(identity) {
            return Err(Outcome::Rejected(format!(
                "identity mismatch: {identity:?} does not match the regular expression {pattern:?}"
            )));
        }
    }
    let mut signed_at: Vec<String> = result
        .integrated_time()
        .into_iter()
        .map(|t| t.to_string())
        .collect();
    for t in result.verified_timestamps() {
        let s = t.to_string();
        if !signed_at.contains(&s) {
            signed_at.push(s);
        }
    }
    Ok(Verified {
        media_type: bundle.media_type.as_str().to_string(),
        identity: result.identity().map(|i| i.as_str().to_string()),
        issuer: result.issuer().map(str::to_string),
        key_sha256: key.map(|k| k.sha256),
        trust_source: trust.source.clone(),
        trust_sha256: trust.sha256.clone(),
        signed_at,
    })
}

fn open(p: &Path) -> Result<impl Read, InputError> {
    std::fs::File::open(p)
        .map(std::io::BufReader::new)
        .map_err(|e| InputError::unreadable(p, "artifact", e))
}
