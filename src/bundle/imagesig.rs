//! Signatures and attestations of the images of a release: found while an
//! image is judged, verified after the pass with the run's one Sigstore
//! policy (the same signer and trusted root as `PATH.sigstore.json`).
//!
//! What is found, in an OCI layout (an image file, an image folder, or the
//! OCI part of a newer `docker save` archive):
//! - OCI 1.1 referrers: any manifest among the image's blobs whose `subject`
//!   is one of the layout's images, listed in `index.json` or not, with a
//!   Sigstore bundle layer (`application/vnd.dev.sigstore.bundle.v0.3+json`,
//!   what cosign v3 writes: for `cosign sign` a DSSE in-toto statement of
//!   predicate type `https://sigstore.dev/cosign/sign/v1` whose subject is
//!   the manifest digest; for `cosign attest` the attestation's statement);
//! - cosign's older tag scheme: `index.json` entries named
//!   `sha256-<hex>.sig`, `.att`, `.sbom` (or marked `kind:
//!   dev.cosignproject.cosign/sigs|atts|sboms`, as `cosign save` and Hauler
//!   write them): simple-signing payloads and DSSE envelopes with the
//!   signature, certificate and transparency-log bundle in annotations.
//!
//! Guarantees:
//! - only the small JSON blobs the walk captured are read: nothing is read a
//!   second time, layers never;
//! - each signature or attestation is verified against the image it is
//!   attached to: a statement whose subject does not name the image's
//!   manifest digest is reported (`image:subject-mismatch`), never counted;
//! - an older cosign signature is verified by the same verifier, as the
//!   Sigstore v0.1 bundle its annotations amount to (certificate, signed
//!   entry timestamp, log entry); one without a log bundle cannot be tied to
//!   the trusted root offline and is reported as such
//!   (`image:signature-unverifiable`), never counted as a signature;
//! - every finding names the image file or folder and the image reference.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use crossbeam_channel::Sender;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::signing::SignaturePlan;
use crate::finding::{Code, Finding, Status};

/// One image of an image file or folder and what is attached to it.
#[derive(Debug, Clone, Default)]
pub struct ImageSupply {
    /// The image file or folder, as findings name it.
    pub target: String,
    pub reference: Option<String>,
    /// `sha256:<hex>` of the image's manifest (or index); `None` for a
    /// `docker save` archive without an OCI layout, which does not have one.
    pub digest: Option<String>,
    pub attached: Vec<Attached>,
}

/// A signature, attestation or SBOM attached to an image.
#[derive(Debug, Clone)]
pub struct Attached {
    /// Where it is: the referrer's or tag's manifest blob.
    pub source: String,
    pub content: Content,
}

#[derive(Debug, Clone)]
pub enum Content {
    /// A Sigstore bundle (JSON), from an OCI 1.1 referrer.
    Bundle(Vec<u8>),
    /// An older cosign signature (`.sig` tag): the simple-signing payload and
    /// its annotations.
    SimpleSigning { payload: Vec<u8>, legacy: Legacy },
    /// An older cosign attestation (`.att` tag): the DSSE envelope.
    Envelope { envelope: Vec<u8>, legacy: Legacy },
    /// An SBOM attached without a signature (`.sbom` tag, `cosign attach
    /// sbom`): its media type.
    Sbom(String),
    /// Something attached that cannot be read: why, and whether it is an
    /// attestation (from the referrer's `dev.sigstore.bundle.predicateType`
    /// or the tag) rather than a signature.
    Unreadable { why: String, attestation: bool },
    /// A bundle or envelope that is in the image but was too large to be
    /// kept as the image streamed past (over 4 MiB, or past the 16 MiB all
    /// of an image's JSON may take): not verified, and said so.
    TooLarge(String),
}

/// The annotations cosign puts on an older signature's layer.
#[derive(Debug, Clone, Default)]
pub struct Legacy {
    /// `dev.cosignproject.cosign/signature`: base64.
    pub signature: String,
    /// `dev.sigstore.cosign/certificate`: PEM.
    pub certificate: Option<String>,
    /// `dev.sigstore.cosign/chain`: PEM.
    pub chain: Option<String>,
    /// `dev.sigstore.cosign/bundle`: the transparency log's answer (signed
    /// entry timestamp and entry).
    pub rekor: Option<String>,
}

pub const BUNDLE_MEDIA_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The predicate type of a cosign v3 image signature.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const KIND: &str = "kind";

/// What an `index.json` entry is, when it is not an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    Sig,
    Att,
    Sbom,
    /// The referrers tag scheme's index (`sha256-<hex>`) or a referrer.
    Referrers,
}

/// The digest an entry's tag names (`sha256-<hex>.sig`) and what it is.
fn tag_of(reference: &str) -> Option<(Option<String>, TagKind)> {
    let tag = match reference.rsplit_once(':') {
        Some((_, t)) if !t.contains('/') => t,
        _ => reference,
    };
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, kind) = match rest.split_once('.') {
        Some((h, "sig")) => (h, TagKind::Sig),
        Some((h, "att")) => (h, TagKind::Att),
        Some((h, "sbom")) => (h, TagKind::Sbom),
        None => (rest, TagKind::Referrers),
        _ => return None,
    };
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (Some(format!("sha256:{}", hex.to_ascii_lowercase())), kind))
}

/// Whether an `index.json` descriptor (any depth) is something attached to
/// an image rather than an image: a cosign tag, a `cosign save` entry, an
/// artifact, or a manifest with a `subject`. Such an entry is not judged by
/// the image rules (its layers are signatures, not file systems).
pub fn is_attachment(
    ref_name: Option<&str>,
    annotations: Option<&HashMap<String, String>>,
    artifact_type: bool,
    manifest: Option<&[u8]>,
) -> bool {
    if ref_name.and_then(tag_of).is_some() || artifact_type {
        return true;
    }
    if let Some(k) = annotations.and_then(|a| a.get(KIND)) {
        if matches!(
            k.as_str(),
            "dev.cosignproject.cosign/sigs"
                | "dev.cosignproject.cosign/atts"
                | "dev.cosignproject.cosign/sboms"
        ) {
            return true;
        }
    }
    manifest.is_some_and(|m| referrer_subject(m).is_some())
}

/// The subject digest of a referrer manifest.
fn referrer_subject(bytes: &[u8]) -> Option<String> {
    // Cheap test first: most captured blobs are configs.
    if !bytes.windows(9).any(|w| w == b"\"subject\"") {
        return None;
    }
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("layers")?;
    v.get("subject")?
        .get("digest")?
        .as_str()
        .map(str::to_ascii_lowercase)
}

/// An entry of `index.json`, as the discovery needs it.
pub struct IndexEntry {
    pub digest: String,
    pub reference: Option<String>,
    /// The entry's own `org.opencontainers.image.ref.name`, as written.
    pub ref_name: Option<String>,
    pub annotations: Option<HashMap<String, String>>,
    pub attachment: bool,
}

/// Finds what is attached to each image of an OCI layout. `blobs`: the
/// captured JSON blobs by path (`blobs/sha256/<hex>`); `present`: whether
/// a path is a file of the image (captured or not); `entries`: the entries
/// of `index.json`.
pub fn discover(
    target: &str,
    entries: &[IndexEntry],
    blobs: &HashMap<&str, &[u8]>,
    present: &dyn Fn(&str) -> bool,
) -> Vec<ImageSupply> {
    let too_large = |digest: &str| {
        digest
            .strip_prefix("sha256:")
            .map(|hex| format!("blobs/sha256/{hex}"))
            .filter(|p| present(p) && !blobs.contains_key(p.as_str()))
    };
    let mut images: Vec<ImageSupply> = entries
        .iter()
        .filter(|e| !e.attachment)
        .map(|e| ImageSupply {
            target: target.to_string(),
            reference: e.reference.clone(),
            digest: Some(e.digest.to_ascii_lowercase()),
            attached: Vec::new(),
        })
        .collect();
    let blob = |digest: &str| -> Option<&[u8]> {
        let hex = digest.strip_prefix("sha256:")?;
        blobs.get(format!("blobs/sha256/{hex}").as_str()).copied()
    };
    let mut seen: Vec<String> = Vec::new();
    // OCI 1.1 referrers, listed or not: every captured manifest whose
    // subject is one of the layout's images.
    let mut paths: Vec<&&str> = blobs.keys().collect();
    paths.sort();
    for path in paths {
        let bytes = blobs[*path];
        let Some(subject) = referrer_subject(bytes) else {
            continue;
        };
        let Some(image) = images
            .iter_mut()
            .find(|i| i.digest.as_deref() == Some(subject.as_str()))
        else {
            continue;
        };
        seen.push(path.to_string());
        let Ok(m) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        for layer in m["layers"].as_array().into_iter().flatten() {
            let media = layer["mediaType"].as_str().unwrap_or_default();
            let digest = layer["digest"].as_str().unwrap_or_default();
            let predicate = m["annotations"]["dev.sigstore.bundle.predicateType"].as_str();
            let content = if media.starts_with(BUNDLE_MEDIA_PREFIX) {
                match (blob(digest), too_large(digest)) {
                    (Some(b), _) => Content::Bundle(b.to_vec()),
                    (None, Some(p)) => Content::TooLarge(format!(
                        "its Sigstore bundle {p} is larger than the pass keeps of an image's JSON (4 MiB each, 16 MiB in all)"
                    )),
                    (None, None) => Content::Unreadable {
                        why: format!(
                            "its Sigstore bundle {digest} is not in the image or not a JSON document small enough to read"
                        ),
                        attestation: predicate.is_some_and(|t| t != SIGN_PREDICATE),
                    },
                }
            } else if let Some(kind) = sbom_media_kind(media) {
                Content::Sbom(kind.to_string())
            } else {
                // Other artifacts (Notary signatures, vulnerability
                // reports): not ours to judge.
                continue;
            };
            image.attached.push(Attached {
                source: path.to_string(),
                content,
            });
        }
    }
    // cosign's tag scheme and `cosign save`'s kinds.
    let only = (images.len() == 1)
        .then(|| images[0].digest.clone())
        .flatten();
    for e in entries.iter().filter(|e| e.attachment) {
        let path = match e.digest.strip_prefix("sha256:") {
            Some(hex) => format!("blobs/sha256/{hex}"),
            None => continue,
        };
        if seen.contains(&path) {
            continue;
        }
        let tagged = e.ref_name.as_deref().and_then(tag_of);
        let kind = match (&tagged, e.annotations.as_ref().and_then(|a| a.get(KIND))) {
            (Some((_, k)), _) => *k,
            (None, Some(k)) if k.ends_with("/sigs") => TagKind::Sig,
            (None, Some(k)) if k.ends_with("/atts") => TagKind::Att,
            (None, Some(k)) if k.ends_with("/sboms") => TagKind::Sbom,
            _ => continue,
        };
        if kind == TagKind::Referrers {
            continue;
        }
        // The image the tag names; `cosign save` writes one image per
        // layout and names none.
        let Some(subject) = tagged.and_then(|(d, _)| d).or_else(|| only.clone()) else {
            continue;
        };
        let Some(image) = images
            .iter_mut()
            .find(|i| i.digest.as_deref() == Some(subject.as_str()))
        else {
            continue;
        };
        let Some(m) = blob(&e.digest).and_then(|b| serde_json::from_slice::<Value>(b).ok()) else {
            image.attached.push(Attached {
                source: path.clone(),
                content: Content::Unreadable {
                    why: format!("{path} is not a JSON manifest small enough to read"),
                    attestation: kind == TagKind::Att,
                },
            });
            continue;
        };
        for layer in m["layers"].as_array().into_iter().flatten() {
            let media = layer["mediaType"].as_str().unwrap_or_default();
            let digest = layer["digest"].as_str().unwrap_or_default();
            let note = |k: &str| layer["annotations"][k].as_str().map(str::to_string);
            let legacy = Legacy {
                signature: note("dev.cosignproject.cosign/signature").unwrap_or_default(),
                certificate: note("dev.sigstore.cosign/certificate").filter(|s| !s.is_empty()),
                chain: note("dev.sigstore.cosign/chain").filter(|s| !s.is_empty()),
                rekor: note("dev.sigstore.cosign/bundle").filter(|s| !s.is_empty()),
            };
            let content = match (kind, media, blob(digest)) {
                (_, _, None) if sbom_media_kind(media).is_none() && too_large(digest).is_some() => Content::TooLarge(format!(
                    "layer {digest} of {path} is larger than the pass keeps of an image's JSON (4 MiB each, 16 MiB in all)"
                )),
                (_, _, None) if sbom_media_kind(media).is_none() => Content::Unreadable {
                    why: format!(
                        "layer {digest} of {path} is not in the image or not a JSON document small enough to read"
                    ),
                    attestation: kind == TagKind::Att,
                },
                (TagKind::Sig, SIMPLESIGNING, Some(b)) => Content::SimpleSigning {
                    payload: b.to_vec(),
                    legacy,
                },
                (TagKind::Att, DSSE_ENVELOPE, Some(b)) => Content::Envelope {
                    envelope: b.to_vec(),
                    legacy,
                },
                (_, m, _) if sbom_media_kind(m).is_some() => {
                    Content::Sbom(sbom_media_kind(m).unwrap_or_default().to_string())
                }
                (_, m, _) => Content::Unreadable {
                    why: format!(
                        "layer {digest} of {path} has media type {m:?}, not a cosign signature or attestation"
                    ),
                    attestation: kind == TagKind::Att,
                },
            };
            image.attached.push(Attached {
                source: path.clone(),
                content,
            });
        }
    }
    images
}

/// SPDX or CycloneDX, from an attached SBOM's media type.
fn sbom_media_kind(media: &str) -> Option<&'static str> {
    let m = media.to_ascii_lowercase();
    if m.contains("spdx") {
        Some("SPDX")
    } else if m.contains("cyclonedx") {
        Some("CycloneDX")
    } else {
        None
    }
}

/// What an in-toto statement (or a signature) is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Signature,
    Sbom(&'static str),
    /// SLSA provenance, with its builder's id when it names one.
    Provenance(Option<String>),
    Other(String),
}

impl Kind {
    fn of(predicate_type: &str, predicate: &Value) -> Kind {
        let t = predicate_type;
        if t == SIGN_PREDICATE {
            Kind::Signature
        } else if t.starts_with("https://spdx.dev/Document") || t.starts_with("https://spdx.org/") {
            Kind::Sbom("SPDX")
        } else if t.starts_with("https://cyclonedx.org/bom") {
            Kind::Sbom("CycloneDX")
        } else if t.starts_with("https://slsa.dev/provenance/") {
            // v0.1/v0.2: predicate.builder.id; v1: runDetails.builder.id.
            let id = predicate["builder"]["id"]
                .as_str()
                .or_else(|| predicate["runDetails"]["builder"]["id"].as_str())
                .map(str::to_string);
            Kind::Provenance(id)
        } else {
            Kind::Other(t.to_string())
        }
    }

    fn is_signature(&self) -> bool {
        *self == Kind::Signature
    }
}

/// An in-toto statement, as far as the checks need it.
struct Statement {
    kind: Kind,
    predicate_type: String,
    /// Its subjects' SHA-256 digests, lower-case hex.
    subjects: Vec<String>,
}

fn statement_of_envelope(envelope: &Value) -> Result<Statement, String> {
    let payload = envelope["payload"]
        .as_str()
        .ok_or("the DSSE envelope has no payload")?;
    let bytes = STANDARD
        .decode(payload)
        .map_err(|e| format!("the DSSE payload is not base64: {e}"))?;
    let s: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the DSSE payload is not an in-toto statement: {e}"))?;
    let predicate_type = s["predicateType"]
        .as_str()
        .ok_or("the in-toto statement has no predicateType")?
        .to_string();
    let subjects = s["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["digest"]["sha256"].as_str())
        .map(str::to_ascii_lowercase)
        .collect();
    Ok(Statement {
        kind: Kind::of(&predicate_type, &s["predicate"]),
        predicate_type,
        subjects,
    })
}

/// A Sigstore v0.1 bundle made of an older cosign signature's parts, so the
/// one verifier judges it. `content` is the bundle's `messageSignature` or
/// `dsseEnvelope` member. `Err`: why it cannot be verified offline.
fn legacy_bundle(legacy: &Legacy, content: (&str, Value)) -> Result<String, String> {
    let rekor = legacy
        .rekor
        .as_deref()
        .ok_or("no transparency-log bundle (dev.sigstore.cosign/bundle): signed without the log, it cannot be tied to the trusted root offline")?;
    let rekor: Value = serde_json::from_str(rekor)
        .map_err(|e| format!("dev.sigstore.cosign/bundle is not JSON: {e}"))?;
    let payload = &rekor["Payload"];
    let body = payload["body"]
        .as_str()
        .ok_or("dev.sigstore.cosign/bundle has no Payload.body")?;
    let body_json: Value = STANDARD
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("dev.sigstore.cosign/bundle's Payload.body is not base64 JSON")?;
    let log_id = payload["logID"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .ok_or("dev.sigstore.cosign/bundle's Payload.logID is not hexadecimal")?;
    let number = |v: &Value| {
        v.as_i64()
            .map(|n| n.to_string())
            .or_else(|| v.as_str().map(str::to_string))
    };
    let material = match (&legacy.certificate, &legacy.chain) {
        (Some(cert), chain) => {
            let mut certs = pem_blocks(cert);
            if let Some(c) = chain {
                certs.extend(pem_blocks(c));
            }
            if certs.is_empty() {
                return Err("dev.sigstore.cosign/certificate holds no PEM certificate".into());
            }
            serde_json::json!({ "x509CertificateChain": { "certificates":
                certs.iter().map(|c| serde_json::json!({ "rawBytes": c })).collect::<Vec<_>>() } })
        }
        (None, _) => serde_json::json!({ "publicKey": { "hint": "" } }),
    };
    let mut vm = material;
    vm["tlogEntries"] = serde_json::json!([{
        "logIndex": number(&payload["logIndex"]).unwrap_or_default(),
        "logId": { "keyId": STANDARD.encode(log_id) },
        "kindVersion": { "kind": body_json["kind"], "version": body_json["apiVersion"] },
        "integratedTime": number(&payload["integratedTime"]).unwrap_or_default(),
        "inclusionPromise": { "signedEntryTimestamp": rekor["SignedEntryTimestamp"] },
        "canonicalizedBody": body,
    }]);
    let mut bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": vm,
    });
    bundle[content.0] = content.1;
    Ok(bundle.to_string())
}

/// The base64 bodies of the PEM blocks of `text`.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN ") {
            cur = Some(String::new());
        } else if line.starts_with("-----END ") {
            out.extend(cur.take());
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    out
}

/// The image-signature part of the plan: which absences fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImagePolicy {
    pub require_signed: bool,
    pub require_sbom: bool,
    pub require_provenance: bool,
}

impl ImagePolicy {
    pub fn any(&self) -> bool {
        self.require_signed || self.require_sbom || self.require_provenance
    }
}

/// The `--dry-run` line: what will be done with the images' signatures.
pub fn describe(plan: &super::signing::SigstorePlan, content: bool) -> String {
    if !content {
        return "bundle image signatures: not checked (--no-content: images are not opened)".into();
    }
    let how = match (&plan.signer, &plan.trust) {
        (Some(_), Some(t)) => format!(
            "verified with the Sigstore signer given against {} (sha256 {})",
            t.source, t.sha256
        ),
        _ => "found and reported, not verified (no --certificate-identity/--certificate-oidc-issuer or --sigstore-key)".into(),
    };
    let p = plan.images;
    let required: Vec<&str> = [
        (p.require_signed, "a signature"),
        (p.require_sbom, "an SBOM attestation"),
        (p.require_provenance, "a provenance attestation"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect();
    format!(
        "bundle image signatures: OCI 1.1 referrers and cosign .sig/.att/.sbom tags of each image {how}; {}",
        if required.is_empty() {
            "an unsigned image warns".to_string()
        } else {
            format!("every image must carry {}", required.join(", "))
        }
    )
}

/// How one attached item was judged.
enum Judged {
    Verified(crate::sigstore::Verified),
    /// No signer given: not verified.
    NoPolicy,
}

/// What is known of one image after its attachments were judged.
#[derive(Default)]
struct Tally {
    signers: Vec<crate::sigstore::Verified>,
    found: usize,
    unverified: usize,
    sbom: Vec<String>,
    builders: Vec<String>,
    provenance: bool,
}

/// Verdicts on every image's signatures and attestations, and the per-image
/// summary (`image:signed`, `image:unsigned` or `image:signature-unverified`).
pub fn findings(plan: &SignaturePlan, images: &[ImageSupply], findings: &Sender<Finding>) {
    for image in images {
        judge(plan, image, findings);
    }
}

fn label(image: &ImageSupply) -> String {
    match &image.reference {
        Some(r) => format!("{} ({r})", image.target),
        None => image.target.clone(),
    }
}

fn base(code: Code, image: &ImageSupply, what: String) -> Finding {
    let mut f = Finding::new(
        code,
        image.target.clone(),
        format!("{}: {what}", label(image)),
    );
    if let Some(r) = &image.reference {
        f = f.evidence("image", r.clone());
    }
    if let Some(d) = &image.digest {
        f = f.evidence("manifest_digest", d.clone());
    }
    f
}

fn judge(plan: &SignaturePlan, image: &ImageSupply, out: &Sender<Finding>) {
    let send = |f: Finding| {
        let _ = out.send(f);
    };
    let policy = plan.sigstore.as_ref().map(|s| s.images).unwrap_or_default();
    let signer = plan
        .sigstore
        .as_ref()
        .and_then(|s| Some((s.signer.as_ref()?, s.trust.as_ref()?)));
    let mut t = Tally::default();
    let digest_hex = image
        .digest
        .as_deref()
        .and_then(|d| d.strip_prefix("sha256:"))
        .map(str::to_string);
    let mut image_sha = [0u8; 32];
    if let Some(h) = &digest_hex {
        let _ = hex::decode_to_slice(h, &mut image_sha);
    }
    for a in &image.attached {
        // (bundle JSON to verify, over what, what it is)
        let prepared: Prepared = match &a.content {
            Content::Sbom(kind) => {
                // Unsigned: shown, never enough for --require-sbom.
                t.sbom.push(format!("{kind} (attached, unsigned)"));
                continue;
            }
            Content::TooLarge(why) => Err((Code::ImageSignatureUnverifiable, why.clone(), false)),
            Content::Unreadable { why, attestation } => Err((
                if *attestation {
                    Code::ImageAttestationInvalid
                } else {
                    Code::ImageSignatureInvalid
                },
                why.clone(),
                !attestation,
            )),
            Content::Bundle(bytes) => prepare_bundle(bytes, image_sha),
            Content::SimpleSigning { payload, legacy } => {
                prepare_simplesigning(payload, legacy, digest_hex.as_deref())
            }
            Content::Envelope { envelope, legacy } => prepare_envelope(envelope, legacy, image_sha),
        };
        let ToVerify {
            json,
            over: subject,
            kind,
            predicate_type,
        } = match prepared {
            Ok(p) => p,
            Err((code, why, signature)) => {
                // A signature refused before verification still makes the
                // image "signed, but not verifiably".
                if signature {
                    t.found += 1;
                }
                let mut f = base(code, image, format!("{}: {why}", a.source))
                    .evidence("source", a.source.clone());
                if code == Code::ImageSubjectMismatch {
                    f = f.evidence("expected_digest", image.digest.clone().unwrap_or_default());
                }
                send(f);
                continue;
            }
        };
        // A statement about another image was refused above; this one is
        // about this image.
        if let Kind::Sbom(_) | Kind::Provenance(_) = &kind {
            if signer.is_none() {
                note_attestation(&mut t, &kind, " (unverified)");
            }
        }
        if kind.is_signature() {
            t.found += 1;
        }
        let judged = match signer {
            None => Ok(Judged::NoPolicy),
            Some((s, trust)) => {
                crate::sigstore::verify(&json, &crate::sigstore::Subject::Sha256(subject), s, trust)
                    .map(Judged::Verified)
                    .map_err(|e| match e {
                        crate::sigstore::Outcome::Rejected(r) => r,
                        crate::sigstore::Outcome::Input(e) => e.to_string(),
                    })
            }
        };
        match judged {
            Ok(Judged::NoPolicy) => {
                if kind.is_signature() {
                    t.unverified += 1;
                }
            }
            Ok(Judged::Verified(v)) => {
                if kind.is_signature() {
                    t.signers.push(v);
                } else {
                    note_attestation(&mut t, &kind, "");
                }
            }
            Err(reason) => {
                let code = if kind.is_signature() {
                    Code::ImageSignatureInvalid
                } else {
                    Code::ImageAttestationInvalid
                };
                let mut f = base(code, image, format!("{}: {reason}", a.source))
                    .evidence("source", a.source.clone())
                    .evidence("reason", reason)
                    .evidence("predicate_type", predicate_type);
                if let Some(p) = &plan.sigstore {
                    f = super::signing::policy_evidence(f, p);
                }
                send(f);
            }
        }
    }
    // The summary: one per image.
    let sbom = if t.sbom.is_empty() {
        "none".to_string()
    } else {
        t.sbom.join(", ")
    };
    let builder = if t.builders.is_empty() {
        if t.provenance {
            "provenance without a builder id".to_string()
        } else {
            "none".to_string()
        }
    } else {
        t.builders.join(", ")
    };
    let facts = format!("SBOM: {sbom}; provenance: {builder}");
    let summary = if let Some(v) = t.signers.first() {
        let who = signer_name(v);
        let mut f = base(
            Code::ImageSigned,
            image,
            format!("signed by {who}; {facts}"),
        )
        .evidence("signed_by", who)
        .evidence("signatures", t.signers.len());
        if let Some(i) = &v.issuer {
            f = f.evidence("issuer", i.clone());
        }
        f.evidence("trusted_root_sha256", v.trust_sha256.clone())
    } else if t.unverified > 0 {
        base(
            Code::ImageSignatureUnverified,
            image,
            format!(
                "{} signature(s) not verified: no --certificate-identity/--certificate-oidc-issuer or --sigstore-key given; {facts}",
                t.unverified
            ),
        )
        .evidence("signatures", t.unverified)
    } else {
        let why = match (&image.digest, t.found) {
            (None, _) => "not signed: a docker save archive without an OCI layout has no manifest digest for a signature to name".to_string(),
            (Some(_), 0) => "not signed: no signature is attached (no referrer, no sha256-<digest>.sig tag)".to_string(),
            (Some(_), n) => format!("not signed: none of its {n} attached signature(s) verifies"),
        };
        let f = base(Code::ImageUnsigned, image, format!("{why}; {facts}"));
        if policy.require_signed {
            f.with_status(Status::Fail)
                .evidence("required", "--require-signed-images")
        } else {
            f
        }
    };
    send(
        summary
            .evidence("sbom", sbom.clone())
            .evidence("provenance_builder", builder),
    );
    let verified_sbom = t.sbom.iter().any(|s| !s.contains('('));
    if policy.require_sbom && !verified_sbom {
        send(
            base(
                Code::ImageSbomMissing,
                image,
                format!(
                    "no verified SBOM attestation (SPDX or CycloneDX) is attached; found: {sbom}"
                ),
            )
            .evidence("required", "--require-sbom"),
        );
    }
    let verified_provenance = t.provenance;
    if policy.require_provenance && !verified_provenance {
        send(
            base(
                Code::ImageProvenanceMissing,
                image,
                "no verified SLSA provenance attestation is attached".to_string(),
            )
            .evidence("required", "--require-provenance"),
        );
    }
}

fn note_attestation(t: &mut Tally, kind: &Kind, suffix: &str) {
    match kind {
        Kind::Sbom(k) => t.sbom.push(format!("{k}{suffix}")),
        Kind::Provenance(b) => {
            if suffix.is_empty() {
                t.provenance = true;
            }
            if let Some(b) = b {
                t.builders.push(format!("{b}{suffix}"));
            }
        }
        _ => {}
    }
}

fn signer_name(v: &crate::sigstore::Verified) -> String {
    match (&v.identity, &v.key_sha256) {
        (Some(i), _) => i.clone(),
        (None, Some(k)) => format!("key sha256:{k}"),
        _ => "an unnamed signer".to_string(),
    }
}

/// A signature or attestation ready for the verifier: the bundle, the
/// SHA-256 it must be over, and what it is.
struct ToVerify {
    json: String,
    over: [u8; 32],
    kind: Kind,
    predicate_type: String,
}

/// Why an attachment is not verified: its code, the reason, and whether it
/// is (or claims to be) an image signature rather than an attestation.
type Refused = (Code, String, bool);
type Prepared = Result<ToVerify, Refused>;

/// A referrer's Sigstore bundle: a message signature over the manifest, or
/// a DSSE statement whose subject must be the manifest.
fn prepare_bundle(bytes: &[u8], image: [u8; 32]) -> Prepared {
    let json = std::str::from_utf8(bytes).map_err(|_| {
        (
            Code::ImageSignatureInvalid,
            "the bundle is not UTF-8 JSON".to_string(),
            true,
        )
    })?;
    let v: Value = serde_json::from_str(json).map_err(|e| {
        (
            Code::ImageSignatureInvalid,
            format!("not a Sigstore bundle: {e}"),
            true,
        )
    })?;
    if v.get("messageSignature").is_some() {
        return Ok(ToVerify {
            json: json.to_string(),
            over: image,
            kind: Kind::Signature,
            predicate_type: String::new(),
        });
    }
    let envelope = v.get("dsseEnvelope").ok_or((
        Code::ImageSignatureInvalid,
        "the bundle has neither a messageSignature nor a dsseEnvelope".to_string(),
        true,
    ))?;
    let s =
        statement_of_envelope(envelope).map_err(|e| (Code::ImageAttestationInvalid, e, false))?;
    subject_check(&s, image)?;
    Ok(ToVerify {
        json: json.to_string(),
        over: image,
        kind: s.kind,
        predicate_type: s.predicate_type,
    })
}

fn subject_check(s: &Statement, image: [u8; 32]) -> Result<(), Refused> {
    let want = hex::encode(image);
    if s.subjects.contains(&want) {
        return Ok(());
    }
    Err((
        Code::ImageSubjectMismatch,
        format!(
            "the {} statement's subject is {}, not this image's manifest sha256:{want}",
            s.predicate_type,
            if s.subjects.is_empty() {
                "empty".to_string()
            } else {
                s.subjects
                    .iter()
                    .map(|d| format!("sha256:{d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        s.kind.is_signature(),
    ))
}

/// An older `.sig`: the payload names the image; the signature is over the
/// payload's bytes.
fn prepare_simplesigning(payload: &[u8], legacy: &Legacy, image: Option<&str>) -> Prepared {
    let v: Value = serde_json::from_slice(payload).map_err(|e| {
        (
            Code::ImageSignatureInvalid,
            format!("the simple-signing payload is not JSON: {e}"),
            true,
        )
    })?;
    let named = v["critical"]["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let want = image.map(|h| format!("sha256:{h}")).unwrap_or_default();
    if named != want {
        return Err((
            Code::ImageSubjectMismatch,
            format!("the signature payload names {named:?}, not this image's manifest {want}"),
            true,
        ));
    }
    let digest: [u8; 32] = Sha256::digest(payload).into();
    let content = serde_json::json!({
        "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(digest) },
        "signature": legacy.signature,
    });
    // Found, though it cannot be verified: counted among the signatures
    // that do not verify.
    let json = legacy_bundle(legacy, ("messageSignature", content))
        .map_err(|e| (Code::ImageSignatureUnverifiable, e, true))?;
    Ok(ToVerify {
        json,
        over: digest,
        kind: Kind::Signature,
        predicate_type: String::new(),
    })
}

/// An older `.att`: a DSSE envelope whose statement must name the image.
fn prepare_envelope(envelope: &[u8], legacy: &Legacy, image: [u8; 32]) -> Prepared {
    let v: Value = serde_json::from_slice(envelope).map_err(|e| {
        (
            Code::ImageAttestationInvalid,
            format!("the DSSE envelope is not JSON: {e}"),
            false,
        )
    })?;
    let s = statement_of_envelope(&v).map_err(|e| (Code::ImageAttestationInvalid, e, false))?;
    subject_check(&s, image)?;
    let json = legacy_bundle(legacy, ("dsseEnvelope", v))
        .map_err(|e| (Code::ImageSignatureUnverifiable, e, s.kind.is_signature()))?;
    Ok(ToVerify {
        json,
        over: image,
        kind: s.kind,
        predicate_type: s.predicate_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_the_signed_digest() {
        let hex = "ab".repeat(32);
        let d = Some(format!("sha256:{hex}"));
        assert_eq!(
            tag_of(&format!("sha256-{hex}.sig")),
            Some((d.clone(), TagKind::Sig))
        );
        assert_eq!(
            tag_of(&format!("registry.example:5000/a/b:sha256-{hex}.att")),
            Some((d.clone(), TagKind::Att))
        );
        assert_eq!(
            tag_of(&format!("sha256-{hex}")),
            Some((d, TagKind::Referrers))
        );
        assert_eq!(tag_of("registry.example/a:1.0"), None);
        assert_eq!(tag_of(&format!("sha256-{hex}.tar")), None);
        assert_eq!(tag_of("sha256-abc.sig"), None);
    }

    #[test]
    fn predicate_types_are_classified() {
        let null = Value::Null;
        assert_eq!(Kind::of(SIGN_PREDICATE, &null), Kind::Signature);
        assert_eq!(
            Kind::of("https://spdx.dev/Document", &null),
            Kind::Sbom("SPDX")
        );
        assert_eq!(
            Kind::of("https://cyclonedx.org/bom/v1.5", &null),
            Kind::Sbom("CycloneDX")
        );
        let v02 = serde_json::json!({"builder": {"id": "https://ci.example/b"}});
        assert_eq!(
            Kind::of("https://slsa.dev/provenance/v0.2", &v02),
            Kind::Provenance(Some("https://ci.example/b".into()))
        );
        let v1 = serde_json::json!({"runDetails": {"builder": {"id": "https://ci.example/v1"}}});
        assert_eq!(
            Kind::of("https://slsa.dev/provenance/v1", &v1),
            Kind::Provenance(Some("https://ci.example/v1".into()))
        );
        assert!(matches!(
            Kind::of("https://in-toto.io/attestation/vulns", &null),
            Kind::Other(_)
        ));
    }

    #[test]
    fn a_legacy_signature_without_a_log_bundle_is_unverifiable() {
        let legacy = Legacy {
            signature: "AAAA".into(),
            ..Default::default()
        };
        let e = legacy_bundle(&legacy, ("messageSignature", Value::Null)).unwrap_err();
        assert!(e.contains("dev.sigstore.cosign/bundle"), "{e}");
    }

    #[test]
    fn a_legacy_signature_becomes_a_v01_bundle() {
        let body = STANDARD.encode(br#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}"#);
        let rekor = serde_json::json!({
            "SignedEntryTimestamp": "U0VU",
            "Payload": { "body": body, "integratedTime": 1700000000, "logIndex": 7, "logID": "0a0b" }
        });
        let legacy = Legacy {
            signature: "c2ln".into(),
            certificate: Some(
                "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n".into(),
            ),
            chain: None,
            rekor: Some(rekor.to_string()),
        };
        let json = legacy_bundle(
            &legacy,
            ("messageSignature", serde_json::json!({"signature": "c2ln"})),
        )
        .unwrap();
        let b: Value = serde_json::from_str(&json).unwrap();
        let vm = &b["verificationMaterial"];
        assert_eq!(
            vm["x509CertificateChain"]["certificates"][0]["rawBytes"],
            "QUJDREVG"
        );
        let e = &vm["tlogEntries"][0];
        assert_eq!(e["logIndex"], "7");
        assert_eq!(e["integratedTime"], "1700000000");
        assert_eq!(e["logId"]["keyId"], STANDARD.encode([0x0a, 0x0b]));
        assert_eq!(e["kindVersion"]["kind"], "hashedrekord");
        assert_eq!(e["kindVersion"]["version"], "0.0.1");
        assert_eq!(e["inclusionPromise"]["signedEntryTimestamp"], "U0VU");
        assert_eq!(b["messageSignature"]["signature"], "c2ln");
    }
}
