//! A Sigstore instance of our own, for **test trust material only**.
//!
//! Nothing can be fetched inside the perimeter, and neither can the tests or
//! the demo: to show signed releases, signed images and attestations being
//! verified (and tampered ones rejected) they need bundles signed under a
//! trusted root they hold. [`TestInstance`] plays every part of a Sigstore
//! deployment in-process, from a seed:
//!
//! - a Fulcio-like CA (self-signed P-256 certificate) that issues short-lived
//!   leaf certificates with the signer's identity (SAN, e-mail or URI) and
//!   OIDC issuer (Fulcio's extensions 1.3.6.1.4.1.57264.1.1 and .1.8), the
//!   code-signing EKU, and one embedded SCT;
//! - a CT log key that signs that SCT over the precertificate, as RFC 6962
//!   says (the verifier requires an SCT from a CT log of the root);
//! - a Rekor-v1-like log key: each bundle carries a `hashedrekord` or `dsse`
//!   0.0.1 entry whose canonicalized body is what Rekor writes, an inclusion
//!   proof in an RFC 6962 Merkle tree, a signed checkpoint, and the signed
//!   entry timestamp (inclusion promise) over the integrated time;
//! - an RFC 3161 timestamp authority (a root and a time-stamping leaf
//!   certificate): each bundle carries a timestamp token (CMS SignedData
//!   over a TSTInfo whose message imprint is the SHA-256 of the signature),
//!   as cosign v3 bundles do, so the verifier checks the certificate at two
//!   verified times;
//! - [`TestInstance::trusted_root_json`]: the `trusted_root.json` naming the
//!   CA, the log, the CT log and the timestamp authority with their validity
//!   periods.
//!
//! What it makes, for an identity policy (`identity` + `issuer`):
//! - [`TestInstance::sign_digest`]: a bundle v0.3 with a message signature over
//!   an artifact's SHA-256 (what `cosign sign-blob --bundle` writes);
//! - [`TestInstance::attest`]: a bundle v0.3 with a DSSE envelope holding an
//!   in-toto statement v1 (subjects, predicate type, predicate), as
//!   `cosign attest-blob --bundle` or an image attestation carries.
//!
//! ```no_run
//! use airgap_verify::sigstore::sign::{SignOptions, Statement, Subject, Tamper, TestInstance};
//! let ours = TestInstance::new("my test");
//! std::fs::write("trusted_root.json", ours.trusted_root_json()).unwrap();
//! let who = SignOptions::new("release@vendor.test", "https://oidc.vendor.test");
//! let digest = [0u8; 32]; // the artifact's SHA-256
//! let blob = ours.sign_digest(&digest, &who);
//! let sbom = ours.attest(
//!     &Statement {
//!         subjects: vec![Subject { name: "registry.test/app".into(), sha256: digest }],
//!         predicate_type: "https://spdx.dev/Document".into(),
//!         predicate: serde_json::json!({"spdxVersion": "SPDX-2.3"}),
//!     },
//!     &who.clone().tampered(Tamper::SubjectMismatch),
//! );
//! ```
//!
//! Each can be made wrong in one way ([`Tamper`]) so tests see each check of
//! the verifier reject it. The verifier is never told about this module:
//! these bundles pass `crate::sigstore::verify` only because every signature,
//! proof and time in them is right.
//!
//! Guarantees:
//! - deterministic: the same seed and options give byte-identical roots and
//!   bundles (keys derive from the seed; ECDSA signatures are RFC 6979);
//! - no randomness, no clock, no network: times come from [`SignOptions`];
//! - the keys derive from the caller's seed, and the seeds of the tests and
//!   the sample are in the source: anything signed here proves nothing to
//!   anyone outside a test or a demo. Never put such a root in front of real
//!   releases.
//!
//! Not modelled: Rekor v2, Fulcio certificate chains with intermediates, and
//! log consistency between bundles (each bundle's entry sits in a small tree
//! of its own).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::Signer as _;
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::{BitString, Ia5String, ObjectIdentifier, OctetString, UtcTime};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

/// 2025-01-01T00:00:00Z: the start of every validity period of the root.
pub const ROOT_VALID_FROM: i64 = 1_735_689_600;

/// 2026-01-01T00:00:00Z: when bundles are signed unless the caller says
/// otherwise (in the past, so the log's integrated time is never "in the
/// future" for the verifier; fixed, so outputs are reproducible).
pub const DEFAULT_SIGNED_AT: i64 = 1_767_225_600;

/// The test CA's distinguished name.
pub const CA_NAME: &str = "CN=airgap-verify test Fulcio,O=airgap-verify test";
/// The timestamp authority's root and signing certificate names.
const TSA_ROOT_NAME: &str = "CN=airgap-verify test TSA root,O=airgap-verify test";
const TSA_NAME: &str = "CN=airgap-verify test TSA,O=airgap-verify test";

/// The payload type of an in-toto statement in a DSSE envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const LOG_ORIGIN: &str = "rekor.airgap-verify.test - 1";
/// The signer name of the checkpoint's signature line (one word).
const LOG_NAME: &str = "rekor.airgap-verify.test";
/// Leaves in the tree each entry is proven into, and the entry's index: not a
/// power of two and not the last leaf, so the proof has hashes on both sides.
const TREE_SIZE: u64 = 13;
const LEAF_INDEX: u64 = 9;
/// Fulcio's certificates live ten minutes.
const CERT_LIFETIME: i64 = 600;

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const FULCIO_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const FULCIO_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const CT_PRECERT_SCTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
const ID_KP_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// The TSA's policy: an OID under the enterprise number reserved for
/// documentation (32473, RFC 5612).
const TSA_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.32473.1");

/// One way to make a bundle wrong, each aimed at one check of the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// The signature (and the log entry) cover another artifact: verifying
    /// over the intended artifact fails as if the file had been changed.
    ArtifactChanged,
    /// The certificate names `wrong-signer@airgap-verify.test` instead of the
    /// identity asked for.
    WrongIdentity,
    /// The certificate names `https://wrong-issuer.airgap-verify.test` as its
    /// OIDC issuer.
    WrongIssuer,
    /// The certificate expired ten minutes before the log's integrated time
    /// (the bundle then carries no RFC 3161 timestamp, so the log's time is
    /// the one that shows it).
    CertificateExpired,
    /// One hash of the inclusion proof is flipped (the checkpoint is still
    /// validly signed over the true root).
    InclusionProofBroken,
    /// The artifact (or envelope) is signed by another key than the
    /// certificate's; the log recorded that signature as given.
    OtherKey,
    /// DSSE only: the statement's subjects carry another digest than the
    /// one given (an attestation about something else).
    SubjectMismatch,
}

impl Tamper {
    /// Every variant, for tests that go through them all.
    pub const ALL: [Tamper; 7] = [
        Tamper::ArtifactChanged,
        Tamper::WrongIdentity,
        Tamper::WrongIssuer,
        Tamper::CertificateExpired,
        Tamper::InclusionProofBroken,
        Tamper::OtherKey,
        Tamper::SubjectMismatch,
    ];

    /// Words of the reason our verifier rejects this tamper with (in a
    /// DSSE bundle when `dsse`): the check it aims at, so a test can tell
    /// a rejection by that check from one by another.
    pub fn rejected_with(self, dsse: bool) -> &'static str {
        match self {
            Tamper::ArtifactChanged if dsse => "artifact hash does not match any subject",
            Tamper::ArtifactChanged => "message digest in bundle does not match artifact hash",
            Tamper::WrongIdentity => "identity mismatch",
            Tamper::WrongIssuer => "issuer mismatch",
            Tamper::CertificateExpired => "CertExpired",
            Tamper::InclusionProofBroken => "invalid inclusion proof",
            Tamper::OtherKey => "signature invalid",
            Tamper::SubjectMismatch => "artifact hash does not match any subject",
        }
    }

    /// A short name (file names, test names).
    pub fn name(self) -> &'static str {
        match self {
            Tamper::ArtifactChanged => "artifact-changed",
            Tamper::WrongIdentity => "wrong-identity",
            Tamper::WrongIssuer => "wrong-issuer",
            Tamper::CertificateExpired => "certificate-expired",
            Tamper::InclusionProofBroken => "inclusion-proof-broken",
            Tamper::OtherKey => "other-key",
            Tamper::SubjectMismatch => "subject-mismatch",
        }
    }
}

/// Who signs, when, and how the bundle is to be spoiled.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// The certificate's SAN: an e-mail address, or a URI when it contains
    /// `://` (a CI workflow identity).
    pub identity: String,
    /// The OIDC issuer recorded in the certificate.
    pub issuer: String,
    /// Unix seconds: the certificate starts one minute before, the log
    /// integrates the entry five seconds after. Must not be in the future
    /// when the bundle is verified.
    pub signed_at: i64,
    pub tamper: Option<Tamper>,
}

impl SignOptions {
    /// Signs as `identity` from `issuer` at [`DEFAULT_SIGNED_AT`], untampered.
    pub fn new(identity: impl Into<String>, issuer: impl Into<String>) -> SignOptions {
        SignOptions {
            identity: identity.into(),
            issuer: issuer.into(),
            signed_at: DEFAULT_SIGNED_AT,
            tamper: None,
        }
    }

    /// The same, spoiled one way.
    pub fn tampered(mut self, tamper: Tamper) -> SignOptions {
        self.tamper = Some(tamper);
        self
    }
}

/// One subject of an in-toto statement.
#[derive(Debug, Clone)]
pub struct Subject {
    pub name: String,
    /// The SHA-256 of what the subject names (a file, an image manifest).
    pub sha256: [u8; 32],
}

/// An in-toto statement v1 to attest.
#[derive(Debug, Clone)]
pub struct Statement {
    pub subjects: Vec<Subject>,
    /// e.g. `https://spdx.dev/Document`, `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

impl Statement {
    /// The statement's JSON, as the envelope carries it.
    pub fn to_json(&self) -> String {
        let subjects: Vec<serde_json::Value> = self
            .subjects
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "digest": {"sha256": hex::encode(s.sha256)}}))
            .collect();
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": subjects,
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        })
        .to_string()
    }
}

/// A P-256 key derived from the seed and a label.
struct Key {
    signing: p256::ecdsa::SigningKey,
    /// SubjectPublicKeyInfo, DER.
    spki: Vec<u8>,
}

impl Key {
    fn derive(seed: &[u8], label: &str) -> Key {
        let mut counter = 0u32;
        loop {
            let mut h = Sha256::new();
            h.update(b"airgap-verify test key\0");
            h.update(seed);
            h.update([0]);
            h.update(label.as_bytes());
            h.update(counter.to_be_bytes());
            // A scalar out of range (or zero) has probability ~2^-32: try
            // the next counter.
            if let Ok(signing) = p256::ecdsa::SigningKey::from_slice(&h.finalize()) {
                let point = signing.verifying_key().to_sec1_bytes();
                // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING point }
                let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200")
                    .expect("constant hex");
                spki.extend_from_slice(&point);
                return Key { signing, spki };
            }
            counter += 1;
        }
    }

    /// ECDSA P-256 with SHA-256 over `message`, DER.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.signing.sign(message);
        sig.to_der().as_bytes().to_vec()
    }

    /// ECDSA P-256 over a SHA-256 digest already computed, DER.
    fn sign_digest(&self, digest: &[u8; 32]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self
            .signing
            .sign_prehash(digest)
            .expect("a 32-byte digest is a valid P-256 prehash");
        sig.to_der().as_bytes().to_vec()
    }

    /// SHA-256 of the SPKI: the log id of a log with this key, and the
    /// source of the checkpoint's key hint.
    fn key_id(&self) -> [u8; 32] {
        Sha256::digest(&self.spki).into()
    }

    fn spki_owned(&self) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned::from_der(&self.spki).expect("an SPKI we encoded")
    }

    /// A subject key identifier: the first 20 bytes of the SPKI's SHA-256.
    fn ski(&self) -> Vec<u8> {
        self.key_id()[..20].to_vec()
    }
}

/// A test Sigstore deployment (CA, transparency log, CT log), from a seed.
pub struct TestInstance {
    seed: Vec<u8>,
    ca: Key,
    ca_cert: Vec<u8>,
    log: Key,
    ct: Key,
    tsa: Key,
    tsa_root_cert: Vec<u8>,
    tsa_cert: Vec<u8>,
}

impl TestInstance {
    /// The instance for `seed`: the same seed gives the same keys and root.
    pub fn new(seed: &str) -> TestInstance {
        let seed = seed.as_bytes().to_vec();
        let ca = Key::derive(&seed, "fulcio ca");
        let log = Key::derive(&seed, "rekor log");
        let ct = Key::derive(&seed, "ct log");
        let ca_cert = ca_certificate(&ca, CA_NAME);
        let tsa_root = Key::derive(&seed, "tsa root");
        let tsa = Key::derive(&seed, "tsa");
        let tsa_root_cert = ca_certificate(&tsa_root, TSA_ROOT_NAME);
        let tsa_cert = tsa_certificate(&tsa, &tsa_root);
        TestInstance {
            seed,
            ca,
            ca_cert,
            log,
            ct,
            tsa,
            tsa_root_cert,
            tsa_cert,
        }
    }

    /// The CA certificate (DER), e.g. to show in a report.
    pub fn ca_certificate_der(&self) -> &[u8] {
        &self.ca_cert
    }

    /// The `trusted_root.json` of this instance: the CA, the log, the CT log
    /// and the timestamp authority, each valid from [`ROOT_VALID_FROM`] with
    /// no end.
    pub fn trusted_root_json(&self) -> String {
        let start = rfc3339(ROOT_VALID_FROM);
        // A transparency log and a CT log are described alike: a P-256 key
        // and its id.
        let log = |url: &str, key: &Key| {
            serde_json::json!({
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": B64.encode(&key.spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": B64.encode(key.key_id())},
            })
        };
        let root = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log("https://rekor.airgap-verify.test", &self.log)],
            "certificateAuthorities": [{
                "subject": {"organization": "airgap-verify test", "commonName": "airgap-verify test Fulcio"},
                "uri": "https://fulcio.airgap-verify.test",
                "certChain": {"certificates": [{"rawBytes": B64.encode(&self.ca_cert)}]},
                "validFor": {"start": start},
            }],
            "ctlogs": [log("https://ctfe.airgap-verify.test", &self.ct)],
            "timestampAuthorities": [{
                "subject": {"organization": "airgap-verify test", "commonName": "airgap-verify test TSA"},
                "uri": "https://tsa.airgap-verify.test",
                "certChain": {"certificates": [
                    {"rawBytes": B64.encode(&self.tsa_cert)},
                    {"rawBytes": B64.encode(&self.tsa_root_cert)},
                ]},
                "validFor": {"start": start},
            }],
        });
        serde_json::to_string_pretty(&root).expect("JSON values serialize") + "\n"
    }

    /// A bundle v0.3 with a message signature over the artifact whose
    /// SHA-256 is `sha256` ([`Tamper::SubjectMismatch`] does not apply and
    /// leaves it untampered).
    pub fn sign_digest(&self, sha256: &[u8; 32], opts: &SignOptions) -> String {
        let signed = if opts.tamper == Some(Tamper::ArtifactChanged) {
            other_digest(sha256)
        } else {
            *sha256
        };
        let leaf_key = self.leaf_key(opts);
        let cert = self.leaf_certificate(&leaf_key, opts);
        let signer = if opts.tamper == Some(Tamper::OtherKey) {
            Key::derive(&self.seed, &format!("other key {}", opts.identity))
        } else {
            leaf_key
        };
        let signature = signer.sign_digest(&signed);
        // hashedrekord 0.0.1, as Rekor canonicalizes it (keys sorted).
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(signed)}},
                "signature": {
                    "content": B64.encode(&signature),
                    "publicKey": {"content": B64.encode(pem_certificate(&cert))},
                },
            },
        })
        .to_string();
        let entry = self.log_entry(body.as_bytes(), "hashedrekord", opts);
        let bundle = serde_json::json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": B64.encode(&cert)},
                "tlogEntries": [entry],
                "timestampVerificationData": self.timestamps(&signature, opts),
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(signed)},
                "signature": B64.encode(&signature),
            },
        });
        serde_json::to_string_pretty(&bundle).expect("JSON values serialize") + "\n"
    }

    /// A bundle v0.3 with a DSSE envelope holding `statement`, logged as a
    /// `dsse` 0.0.1 entry. [`Tamper::ArtifactChanged`] and
    /// [`Tamper::SubjectMismatch`] both replace every subject's digest.
    pub fn attest(&self, statement: &Statement, opts: &SignOptions) -> String {
        let mut statement = statement.clone();
        if matches!(
            opts.tamper,
            Some(Tamper::ArtifactChanged | Tamper::SubjectMismatch)
        ) {
            for s in &mut statement.subjects {
                s.sha256 = other_digest(&s.sha256);
            }
        }
        let payload = statement.to_json();
        let pae = pae(IN_TOTO_PAYLOAD_TYPE, payload.as_bytes());
        let leaf_key = self.leaf_key(opts);
        let cert = self.leaf_certificate(&leaf_key, opts);
        let signer = if opts.tamper == Some(Tamper::OtherKey) {
            Key::derive(&self.seed, &format!("other key {}", opts.identity))
        } else {
            leaf_key
        };
        let signature = signer.sign(&pae);
        let envelope_hash = Sha256::digest(
            serde_json::json!({
                "payload": B64.encode(payload.as_bytes()),
                "payloadType": IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": B64.encode(&signature)}],
            })
            .to_string()
            .as_bytes(),
        );
        // dsse 0.0.1, as Rekor canonicalizes it (keys sorted).
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex::encode(envelope_hash)},
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload.as_bytes()))},
                "signatures": [{
                    "signature": B64.encode(&signature),
                    "verifier": B64.encode(pem_certificate(&cert)),
                }],
            },
        })
        .to_string();
        let entry = self.log_entry(body.as_bytes(), "dsse", opts);
        let bundle = serde_json::json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": B64.encode(&cert)},
                "tlogEntries": [entry],
                "timestampVerificationData": self.timestamps(&signature, opts),
            },
            "dsseEnvelope": {
                "payload": B64.encode(payload.as_bytes()),
                "payloadType": IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": B64.encode(&signature)}],
            },
        });
        serde_json::to_string_pretty(&bundle).expect("JSON values serialize") + "\n"
    }

    /// The ephemeral key a signer's certificate is issued for (derived from
    /// the identity and the time, as a fresh key per signing would be).
    fn leaf_key(&self, opts: &SignOptions) -> Key {
        Key::derive(
            &self.seed,
            &format!("leaf {} {} {}", opts.identity, opts.issuer, opts.signed_at),
        )
    }

    /// A Fulcio-like leaf certificate for `key`, with one embedded SCT.
    fn leaf_certificate(&self, key: &Key, opts: &SignOptions) -> Vec<u8> {
        let identity = match opts.tamper {
            Some(Tamper::WrongIdentity) => "wrong-signer@airgap-verify.test",
            _ => opts.identity.as_str(),
        };
        let issuer = match opts.tamper {
            Some(Tamper::WrongIssuer) => "https://wrong-issuer.airgap-verify.test",
            _ => opts.issuer.as_str(),
        };
        let (not_before, not_after) = match opts.tamper {
            Some(Tamper::CertificateExpired) => (
                opts.signed_at - 2 * CERT_LIFETIME,
                opts.signed_at - CERT_LIFETIME,
            ),
            _ => (opts.signed_at - 60, opts.signed_at - 60 + CERT_LIFETIME),
        };
        let san = if identity.contains("://") {
            GeneralName::UniformResourceIdentifier(
                Ia5String::new(identity).expect("identities are ASCII"),
            )
        } else {
            GeneralName::Rfc822Name(Ia5String::new(identity).expect("identities are ASCII"))
        };
        let subject = Name::default();
        let ca_name: Name = CA_NAME.parse().expect("constant name");
        let mut extensions = vec![
            ext(
                &KeyUsage(KeyUsages::DigitalSignature.into()),
                &subject,
                true,
            ),
            ext(&ExtendedKeyUsage(vec![ID_KP_CODE_SIGNING]), &subject, false),
            ext(
                &SubjectKeyIdentifier(OctetString::new(key.ski()).expect("20 bytes")),
                &subject,
                false,
            ),
            ext(
                &AuthorityKeyIdentifier {
                    key_identifier: Some(OctetString::new(self.ca.ski()).expect("20 bytes")),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
                &subject,
                false,
            ),
            // The subject is empty: the SAN is the identity, critical (RFC 5280).
            ext(&SubjectAltName(vec![san]), &subject, true),
            Extension {
                extn_id: FULCIO_ISSUER_V1,
                critical: false,
                extn_value: OctetString::new(issuer.as_bytes()).expect("short"),
            },
            Extension {
                extn_id: FULCIO_ISSUER_V2,
                critical: false,
                extn_value: OctetString::new(
                    x509_cert::der::asn1::Utf8StringRef::new(issuer)
                        .expect("UTF-8")
                        .to_der()
                        .expect("encodes"),
                )
                .expect("short"),
            },
        ];
        let serial = {
            let mut h = Sha256::new();
            h.update(key.spki.as_slice());
            h.update(identity.as_bytes());
            let mut s = h.finalize()[..16].to_vec();
            s[0] = (s[0] & 0x7f) | 0x01;
            s
        };
        let mut tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&serial).expect("16 positive bytes"),
            signature: ecdsa_sha256(),
            issuer: ca_name,
            validity: validity(not_before, not_after),
            subject,
            subject_public_key_info: key.spki_owned(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(extensions.clone()),
        };
        // The SCT signs the precertificate: this TBS without the SCT
        // extension, with the issuer's key hash (RFC 6962 3.2).
        let precert_tbs = tbs.to_der().expect("TBS encodes");
        let sct = self.sct(&precert_tbs, opts.signed_at - 60);
        extensions.push(Extension {
            extn_id: CT_PRECERT_SCTS,
            critical: false,
            extn_value: OctetString::new(
                OctetString::new(sct)
                    .expect("short")
                    .to_der()
                    .expect("encodes"),
            )
            .expect("short"),
        });
        tbs.extensions = Some(extensions);
        sign_certificate(tbs, &self.ca)
    }

    /// A TLS-encoded SignedCertificateTimestampList holding one SCT v1 by
    /// the CT log over the precertificate `tbs` at `at` (Unix seconds).
    fn sct(&self, tbs: &[u8], at: i64) -> Vec<u8> {
        let timestamp = (at as u64) * 1000;
        let issuer_key_hash: [u8; 32] = Sha256::digest(&self.ca.spki).into();
        // digitally-signed struct: version, signature_type, timestamp,
        // entry_type precert, PreCert{issuer_key_hash, tbs u24}, extensions.
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&timestamp.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&issuer_key_hash);
        let len = tbs.len() as u32;
        signed.extend_from_slice(&len.to_be_bytes()[1..]);
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&0u16.to_be_bytes());
        let sig = self.ct.sign(&signed);
        let mut sct = vec![0u8];
        sct.extend_from_slice(&self.ct.key_id());
        sct.extend_from_slice(&timestamp.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        // SHA-256 (4), ECDSA (3), then the signature with a u16 length.
        sct.extend_from_slice(&[4, 3]);
        sct.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        sct.extend_from_slice(&sig);
        let mut list = Vec::new();
        list.extend_from_slice(&((sct.len() + 2) as u16).to_be_bytes());
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        list
    }

    /// The bundle's `timestampVerificationData`: one RFC 3161 token over
    /// `signature`, two seconds after signing (none for
    /// [`Tamper::CertificateExpired`], aimed at the log's time).
    fn timestamps(&self, signature: &[u8], opts: &SignOptions) -> serde_json::Value {
        if opts.tamper == Some(Tamper::CertificateExpired) {
            return serde_json::json!({});
        }
        let token = self.timestamp_token(signature, opts.signed_at + 2);
        serde_json::json!({"rfc3161Timestamps": [{"signedTimestamp": B64.encode(token)}]})
    }

    /// An RFC 3161 TimeStampToken (a CMS ContentInfo holding SignedData over
    /// a TSTInfo) stamping `signature` at `at`, signed by the TSA.
    fn timestamp_token(&self, signature: &[u8], at: i64) -> Vec<u8> {
        let alg_sha256 = der_seq(&[oid(ID_SHA256)]);
        let gen_time = x509_cert::der::asn1::GeneralizedTime::from_unix_duration(
            std::time::Duration::from_secs(at as u64),
        )
        .expect("a time after 1970")
        .to_der()
        .expect("encodes");
        // TSTInfo: version, policy, messageImprint, serialNumber, genTime.
        let tst_info = der_seq(&[
            der_uint(&[1]),
            oid(TSA_POLICY),
            der_seq(&[
                alg_sha256.clone(),
                der_tlv(0x04, &Sha256::digest(signature)),
            ]),
            der_uint(&at.to_be_bytes()),
            gen_time,
        ]);
        let tsa_cert = Certificate::from_der(&self.tsa_cert).expect("ours");
        let cert_hash = Sha256::digest(&self.tsa_cert);
        // Signed attributes, in DER SET OF order: content type, message
        // digest of the TSTInfo, and the signing certificate (ESSCertIDv2).
        let mut attrs = [
            der_seq(&[oid(ID_CONTENT_TYPE), der_tlv(0x31, &oid(ID_CT_TST_INFO))]),
            der_seq(&[
                oid(ID_MESSAGE_DIGEST),
                der_tlv(0x31, &der_tlv(0x04, &Sha256::digest(&tst_info))),
            ]),
            der_seq(&[
                oid(ID_SIGNING_CERTIFICATE_V2),
                der_tlv(
                    0x31,
                    &der_seq(&[der_seq(&[der_seq(&[der_tlv(0x04, &cert_hash)])])]),
                ),
            ]),
        ];
        attrs.sort();
        let attrs = attrs.concat();
        // The signature covers the attributes encoded as a SET (RFC 5652 5.4).
        let sig = self.tsa.sign(&der_tlv(0x31, &attrs));
        let signer_info = der_seq(&[
            der_uint(&[1]),
            der_seq(&[
                tsa_cert.tbs_certificate.issuer.to_der().expect("encodes"),
                tsa_cert
                    .tbs_certificate
                    .serial_number
                    .to_der()
                    .expect("encodes"),
            ]),
            alg_sha256.clone(),
            der_tlv(0xa0, &attrs),
            der_seq(&[oid(ECDSA_WITH_SHA256)]),
            der_tlv(0x04, &sig),
        ]);
        let signed_data = der_seq(&[
            der_uint(&[3]),
            der_tlv(0x31, &alg_sha256),
            der_seq(&[
                oid(ID_CT_TST_INFO),
                der_tlv(0xa0, &der_tlv(0x04, &tst_info)),
            ]),
            der_tlv(0xa0, &self.tsa_cert),
            der_tlv(0x31, &signer_info),
        ]);
        der_seq(&[oid(ID_SIGNED_DATA), der_tlv(0xa0, &signed_data)])
    }

    /// A Rekor v1 transparency-log entry for `body`, proven into a tree,
    /// with a signed checkpoint and a signed entry timestamp.
    fn log_entry(&self, body: &[u8], kind: &str, opts: &SignOptions) -> serde_json::Value {
        let integrated_time = opts.signed_at + 5;
        let log_index = LEAF_INDEX;
        // The other leaves: earlier and later entries of the log.
        let leaves: Vec<[u8; 32]> = (0..TREE_SIZE)
            .map(|i| {
                if i == LEAF_INDEX {
                    leaf_hash(body)
                } else {
                    let mut filler = self.seed.clone();
                    filler.extend_from_slice(format!(" entry {i} {integrated_time}").as_bytes());
                    leaf_hash(&filler)
                }
            })
            .collect();
        let root = merkle_root(&leaves);
        let mut proof = merkle_path(LEAF_INDEX as usize, &leaves);
        if opts.tamper == Some(Tamper::InclusionProofBroken) {
            proof[1][0] ^= 0x01;
        }
        let note = format!("{LOG_ORIGIN}\n{TREE_SIZE}\n{}\n", B64.encode(root));
        let mut hinted = self.log.key_id()[..4].to_vec();
        hinted.extend_from_slice(&self.log.sign(note.as_bytes()));
        let checkpoint = format!("{note}\n\u{2014} {LOG_NAME} {}\n", B64.encode(hinted));
        let body_b64 = B64.encode(body);
        // The SET: the log's signature over the canonical JSON of the body,
        // integrated time, log id and index (keys in canonical order).
        let set_payload = format!(
            "{{\"body\":\"{body_b64}\",\"integratedTime\":{integrated_time},\"logID\":\"{}\",\"logIndex\":{log_index}}}",
            hex::encode(self.log.key_id())
        );
        let set = self.log.sign(set_payload.as_bytes());
        serde_json::json!({
            "logIndex": log_index.to_string(),
            "logId": {"keyId": B64.encode(self.log.key_id())},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": B64.encode(set)},
            "inclusionProof": {
                "logIndex": log_index.to_string(),
                "rootHash": B64.encode(root),
                "treeSize": TREE_SIZE.to_string(),
                "hashes": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": body_b64,
        })
    }
}

/// A CA: self-signed, CA:true, may sign certificates.
fn ca_certificate(ca: &Key, name: &str) -> Vec<u8> {
    let name: Name = name.parse().expect("constant name");
    let extensions = vec![
        ext(
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            &name,
            true,
        ),
        ext(
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(1),
            },
            &name,
            true,
        ),
        ext(
            &SubjectKeyIdentifier(OctetString::new(ca.ski()).expect("20 bytes")),
            &name,
            false,
        ),
    ];
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x01, 0x5a]).expect("positive"),
        signature: ecdsa_sha256(),
        issuer: name.clone(),
        // Ten years from the root's start.
        validity: validity(ROOT_VALID_FROM, ROOT_VALID_FROM + 10 * 365 * 86_400),
        subject: name,
        subject_public_key_info: ca.spki_owned(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    sign_certificate(tbs, ca)
}

/// The TSA's signing certificate: issued by its root, for time stamping
/// only (critical EKU, RFC 3161 2.3), valid as long as the root.
fn tsa_certificate(tsa: &Key, root: &Key) -> Vec<u8> {
    let subject: Name = TSA_NAME.parse().expect("constant name");
    let extensions = vec![
        ext(
            &KeyUsage(KeyUsages::DigitalSignature.into()),
            &subject,
            true,
        ),
        ext(&ExtendedKeyUsage(vec![ID_KP_TIME_STAMPING]), &subject, true),
        ext(
            &SubjectKeyIdentifier(OctetString::new(tsa.ski()).expect("20 bytes")),
            &subject,
            false,
        ),
        ext(
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(root.ski()).expect("20 bytes")),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            &subject,
            false,
        ),
    ];
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x02, 0x5a]).expect("positive"),
        signature: ecdsa_sha256(),
        issuer: TSA_ROOT_NAME.parse().expect("constant name"),
        validity: validity(ROOT_VALID_FROM, ROOT_VALID_FROM + 10 * 365 * 86_400),
        subject,
        subject_public_key_info: tsa.spki_owned(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    sign_certificate(tbs, root)
}

/// A DER TLV with a one-byte tag.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn der_seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der_tlv(0x30, &parts.concat())
}

/// A non-negative INTEGER from big-endian bytes, minimally encoded.
fn der_uint(be: &[u8]) -> Vec<u8> {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let mut v = be[skip.min(be.len().saturating_sub(1))..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    der_tlv(0x02, &v)
}

fn oid(o: ObjectIdentifier) -> Vec<u8> {
    o.to_der().expect("an OID encodes")
}

fn ext<T: AsExtension>(value: &T, subject: &Name, critical: bool) -> Extension {
    let mut e = value.to_extension(subject, &[]).expect("extension encodes");
    e.critical = critical;
    e
}

fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    }
}

fn validity(not_before: i64, not_after: i64) -> Validity {
    let t = |s: i64| {
        Time::UtcTime(
            UtcTime::from_unix_duration(std::time::Duration::from_secs(s as u64))
                .expect("a time between 1970 and 2049"),
        )
    };
    Validity {
        not_before: t(not_before),
        not_after: t(not_after),
    }
}

fn sign_certificate(tbs: TbsCertificate, by: &Key) -> Vec<u8> {
    let sig = by.sign(&tbs.to_der().expect("TBS encodes"));
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_sha256(),
        signature: BitString::from_bytes(&sig).expect("signature fits"),
    }
    .to_der()
    .expect("certificate encodes")
}

fn pem_certificate(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// DSSE's pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Another digest, derived from `d` (what "the artifact changed" looks like
/// from the signature's side).
fn other_digest(d: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"changed ");
    h.update(d);
    h.finalize().into()
}

fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two below `n` (n > 1), RFC 6962's split point.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 MTH over leaf hashes.
fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = split(leaves.len());
    node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
}

/// RFC 6962 PATH(m, D[n]): the audit path, leaf level first.
fn merkle_path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    if leaves.len() == 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    if m < k {
        let mut p = merkle_path(m, &leaves[..k]);
        p.push(merkle_root(&leaves[k..]));
        p
    } else {
        let mut p = merkle_path(m - k, &leaves[k..]);
        p.push(merkle_root(&leaves[..k]));
        p
    }
}

fn rfc3339(unix: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigstore::{verify, Outcome, RootChoice, SignerPolicy, Subject as Artifact, Trust};

    const ID: &str = "release@vendor.test";
    const ISSUER: &str = "https://oidc.vendor.test";

    fn trust(instance: &TestInstance) -> (tempfile::TempDir, Trust) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted_root.json");
        std::fs::write(&path, instance.trusted_root_json()).unwrap();
        let trust = Trust::load(RootChoice::File(&path)).unwrap();
        (dir, trust)
    }

    fn policy() -> SignerPolicy {
        SignerPolicy::Identity {
            identity: ID.into(),
            issuer: ISSUER.into(),
        }
    }

    fn outcome(bundle: &str, digest: [u8; 32], trust: &Trust) -> Result<String, String> {
        match verify(bundle, &Artifact::Sha256(digest), &policy(), trust) {
            Ok(v) => Ok(v.summary()),
            Err(Outcome::Rejected(r)) => Err(r),
            Err(Outcome::Input(e)) => panic!("input error: {e}"),
        }
    }

    fn statement(digest: [u8; 32]) -> Statement {
        Statement {
            subjects: vec![Subject {
                name: "release.tar".into(),
                sha256: digest,
            }],
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            predicate: serde_json::json!({"buildDefinition": {"buildType": "https://airgap-verify.test/build"}}),
        }
    }

    #[test]
    fn merkle_paths_reach_the_root() {
        for n in 1..20usize {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
            let root = merkle_root(&leaves);
            for m in 0..n {
                // Recompute the root from the path (RFC 9162 2.1.3.2).
                let path = merkle_path(m, &leaves);
                let (mut f, mut r) = (m, leaves[m]);
                let mut sn = n - 1;
                for p in &path {
                    if sn == 0 {
                        panic!("path too long");
                    }
                    if f & 1 == 1 || f == sn {
                        r = node_hash(p, &r);
                        while f & 1 == 0 && f != 0 {
                            f >>= 1;
                            sn >>= 1;
                        }
                    } else {
                        r = node_hash(&r, p);
                    }
                    f >>= 1;
                    sn >>= 1;
                }
                assert_eq!(r, root, "n={n} m={m}");
            }
        }
    }

    #[test]
    fn deterministic_from_the_seed() {
        let a = TestInstance::new("seed");
        let b = TestInstance::new("seed");
        let c = TestInstance::new("other seed");
        assert_eq!(a.trusted_root_json(), b.trusted_root_json());
        assert_ne!(a.trusted_root_json(), c.trusted_root_json());
        let opts = SignOptions::new(ID, ISSUER);
        assert_eq!(
            a.sign_digest(&[1; 32], &opts),
            b.sign_digest(&[1; 32], &opts)
        );
    }

    #[test]
    fn message_signature_verifies_and_each_tamper_is_rejected_by_its_check() {
        let instance = TestInstance::new("unit");
        let (_dir, trust) = trust(&instance);
        let digest: [u8; 32] = Sha256::digest(b"release").into();
        let good = instance.sign_digest(&digest, &SignOptions::new(ID, ISSUER));
        let summary = outcome(&good, digest, &trust).expect("good bundle verifies");
        assert!(summary.contains(ID), "{summary}");
        // Two verified times: the log's integrated time and the TSA's.
        let v = verify(&good, &Artifact::Sha256(digest), &policy(), &trust).unwrap();
        assert_eq!(
            v.signed_at,
            ["2026-01-01T00:00:05Z", "2026-01-01T00:00:02Z"],
            "{v:?}"
        );
        // A good bundle over another artifact does not verify.
        assert!(outcome(&good, [0; 32], &trust).is_err());
        for t in Tamper::ALL {
            let bad = instance.sign_digest(&digest, &SignOptions::new(ID, ISSUER).tampered(t));
            let r = outcome(&bad, digest, &trust);
            if t == Tamper::SubjectMismatch {
                assert!(
                    r.is_ok(),
                    "subject mismatch does not apply to a message signature"
                );
            } else {
                let reason = r.expect_err(t.name());
                assert!(reason.contains(t.rejected_with(false)), "{t:?}: {reason}");
            }
        }
    }

    #[test]
    fn attestation_verifies_and_each_tamper_is_rejected_by_its_check() {
        let instance = TestInstance::new("unit");
        let (_dir, trust) = trust(&instance);
        let digest: [u8; 32] = Sha256::digest(b"release").into();
        let good = instance.attest(&statement(digest), &SignOptions::new(ID, ISSUER));
        outcome(&good, digest, &trust).expect("good attestation verifies");
        for t in Tamper::ALL {
            let bad = instance.attest(
                &statement(digest),
                &SignOptions::new(ID, ISSUER).tampered(t),
            );
            let r = outcome(&bad, digest, &trust);
            let reason = r.expect_err(t.name());
            assert!(reason.contains(t.rejected_with(true)), "{t:?}: {reason}");
        }
    }

    /// The SCT, the log entry and the CA are each really checked: a root
    /// missing one of them (or with another key for it) rejects the bundle.
    #[test]
    fn each_part_of_the_root_is_needed() {
        let instance = TestInstance::new("unit");
        let other = TestInstance::new("someone else");
        let digest: [u8; 32] = Sha256::digest(b"release").into();
        let good = instance.sign_digest(&digest, &SignOptions::new(ID, ISSUER));
        let ours: serde_json::Value = serde_json::from_str(&instance.trusted_root_json()).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(&other.trusted_root_json()).unwrap();
        for (part, reason) in [
            ("ctlogs", "SCT"),
            ("tlogs", "No log key valid at integrated time"),
            ("certificateAuthorities", "certificate chain"),
            ("timestampAuthorities", "TSA timestamp verification failed"),
        ] {
            let mut root = ours.clone();
            root[part] = theirs[part].clone();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("root.json");
            std::fs::write(&path, root.to_string()).unwrap();
            let trust = Trust::load(RootChoice::File(&path)).unwrap();
            let r = outcome(&good, digest, &trust).expect_err(part);
            assert!(r.contains(reason), "{part}: {r}");
        }
    }

    #[test]
    fn another_instance_root_rejects() {
        let instance = TestInstance::new("unit");
        let (_dir, other) = trust(&TestInstance::new("someone else"));
        let digest: [u8; 32] = Sha256::digest(b"release").into();
        let good = instance.sign_digest(&digest, &SignOptions::new(ID, ISSUER));
        assert!(outcome(&good, digest, &other).is_err());
    }
}
