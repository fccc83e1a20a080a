//! Sigstore bundles made by our own test instance (`sigstore::sign`): a
//! Fulcio-like CA, a CT log and a transparency log in a trusted root of our
//! own. The real binary accepts the good bundles (message signature and DSSE
//! attestation) and rejects each tampered variant with the reason of the
//! check it aims at, through `sigstore verify-bundle` and through `bundle`
//! (beside the archive and beside a member).

use airgap_verify::sigstore::sign::{SignOptions, Statement, Subject, Tamper, TestInstance};
use sha2::{Digest, Sha256};

use crate::harness::tarkit::{write_members, Member};
use crate::harness::{av, bundle, extract, Sandbox};
use crate::sigstore::clear_rejection;

const ID: &str = "release@vendor.test";
const ISSUER: &str = "https://oidc.vendor.test";

/// The tampers that apply to a kind of bundle (a message signature has no
/// statement subject to mismatch).
fn tampers(dsse: bool) -> impl Iterator<Item = Tamper> {
    Tamper::ALL
        .into_iter()
        .filter(move |t| dsse || *t != Tamper::SubjectMismatch)
}

fn statement(name: &str, sha256: [u8; 32]) -> Statement {
    Statement {
        subjects: vec![Subject {
            name: name.into(),
            sha256,
        }],
        predicate_type: "https://slsa.dev/provenance/v1".into(),
        predicate: serde_json::json!({"buildDefinition": {"buildType": "https://vendor.test/build/v1"}}),
    }
}

/// A bundle of either kind over `data`.
fn sign(
    instance: &TestInstance,
    dsse: bool,
    name: &str,
    data: &[u8],
    opts: &SignOptions,
) -> String {
    let digest: [u8; 32] = Sha256::digest(data).into();
    if dsse {
        instance.attest(&statement(name, digest), opts)
    } else {
        instance.sign_digest(&digest, opts)
    }
}

#[test]
fn verify_bundle_accepts_ours_and_rejects_each_tamper_with_its_reason() {
    let sb = Sandbox::new("sigstore_own_verify_bundle");
    let instance = TestInstance::new("tests/sigstore_own.rs");
    let root = sb.write("trusted_root.json", instance.trusted_root_json());
    let data = b"the vendor's release\n".repeat(100);
    let artifact = sb.write("release.tar", &data);
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
    let args = |bundle: &std::path::Path, root: &std::path::Path, subject: &str| {
        vec![
            "sigstore".to_string(),
            "verify-bundle".into(),
            "--bundle".into(),
            bundle.display().to_string(),
            "--certificate-identity".into(),
            ID.into(),
            "--certificate-oidc-issuer".into(),
            ISSUER.into(),
            "--trusted-root".into(),
            root.display().to_string(),
            subject.into(),
        ]
    };
    for dsse in [false, true] {
        let kind = if dsse { "dsse" } else { "message" };
        let good = sb.write(
            &format!("{kind}.sigstore.json"),
            sign(
                &instance,
                dsse,
                "release.tar",
                &data,
                &SignOptions::new(ID, ISSUER),
            ),
        );
        for subject in [artifact.display().to_string(), digest.clone()] {
            let r = av(args(&good, &root, &subject));
            r.code(0);
            assert!(r.stdout.starts_with("OK: "), "{kind}: {}", r.stdout);
            assert!(
                r.stdout.contains(ID) && r.stdout.contains(ISSUER),
                "{}",
                r.stdout
            );
        }
        // The same bundle against the public-good root: not our signer.
        let public_good = crate::sigstore::suite().join("public-good-trusted_root.json");
        let r = av(args(&good, &public_good, &digest));
        clear_rejection(&r).unwrap_or_else(|e| panic!("{kind} under public-good: {e}"));

        for t in tampers(dsse) {
            let bad = sb.write(
                &format!("{kind}-{}.sigstore.json", t.name()),
                sign(
                    &instance,
                    dsse,
                    "release.tar",
                    &data,
                    &SignOptions::new(ID, ISSUER).tampered(t),
                ),
            );
            let r = av(args(&bad, &root, &artifact.display().to_string()));
            clear_rejection(&r).unwrap_or_else(|e| panic!("{kind} {t:?}: {e}"));
            assert_eq!(r.code, 1, "{kind} {t:?}: {}", r.stderr);
            assert!(
                r.stderr.contains(t.rejected_with(dsse)),
                "{kind} {t:?}: rejected for another reason: {}",
                r.stderr
            );
        }
    }
}

/// `bundle` with our bundles beside the archive (a message signature) and
/// beside a member (an attestation whose subject is the member): both
/// verify with the signer's identity in the evidence; each tampered one
/// is a `sigstore:rejected` failure on its target with its reason.
#[test]
fn bundle_verifies_ours_beside_archive_and_member_and_rejects_each_tamper() {
    let sb = Sandbox::new("sigstore_own_bundle");
    let instance = TestInstance::new("tests/sigstore_own.rs");
    let root = sb.write("trusted_root.json", instance.trusted_root_json());
    let root_sha = hex::encode(Sha256::digest(instance.trusted_root_json()));
    let tool = b"#!/bin/sh\necho installer\n".to_vec();
    let good_opts = SignOptions::new(ID, ISSUER);
    let policy = [
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        ISSUER,
        "--trusted-root",
        root.to_str().unwrap(),
    ];
    // The archive holds the tool and its attestation; the archive's own
    // bundle is written beside it over the archive's bytes.
    let write = |member_bundle: &str, archive_opts: &SignOptions| {
        let tar = write_members(&[
            Member::file("bin/install.sh", &tool),
            Member::file("bin/install.sh.sigstore.json", member_bundle.as_bytes()),
        ]);
        let archive = sb.write("release.tar", &tar);
        sb.write(
            "release.tar.sigstore.json",
            sign(&instance, false, "release.tar", &tar, archive_opts),
        );
        archive
    };
    let good_member = sign(&instance, true, "bin/install.sh", &tool, &good_opts);

    let archive = write(&good_member, &good_opts);
    let r = bundle(&archive, &policy);
    r.code(0);
    let a = r.has("sigstore:verified", "pass", "release.tar");
    let m = r.has("sigstore:verified", "pass", "bin/install.sh");
    for f in [&a, &m] {
        assert_eq!(f.evidence["identity"], ID);
        assert_eq!(f.evidence["issuer"], ISSUER);
        assert_eq!(f.evidence["trusted_root_sha256"], root_sha.as_str());
    }
    assert_eq!(m.evidence["bundle"], "bin/install.sh.sigstore.json");
    r.lacks("sigstore:rejected").lacks("sigstore:missing");
    // The archive's bundle ties the release to its signer.
    r.lacks("bundle:unauthenticated");

    // The archive's bundle tampered, the member's good.
    for t in tampers(false) {
        let archive = write(&good_member, &SignOptions::new(ID, ISSUER).tampered(t));
        let r = bundle(&archive, &policy);
        r.code(1);
        let f = r.has("sigstore:rejected", "fail", "release.tar");
        assert!(
            f.message.contains(t.rejected_with(false)),
            "archive {t:?}: {}",
            f.message
        );
        r.has("sigstore:verified", "pass", "bin/install.sh");
        // A signed member does not vouch for the whole release.
        r.has("bundle:unauthenticated", "warn", "release.tar");
    }
    // The member's attestation tampered, the archive's good.
    for t in tampers(true) {
        let bad = sign(
            &instance,
            true,
            "bin/install.sh",
            &tool,
            &SignOptions::new(ID, ISSUER).tampered(t),
        );
        let archive = write(&bad, &good_opts);
        let r = bundle(&archive, &policy);
        r.code(1);
        let f = r.has("sigstore:rejected", "fail", "bin/install.sh");
        assert!(
            f.message.contains(t.rejected_with(true)),
            "member {t:?}: {}",
            f.message
        );
        assert_eq!(f.evidence["bundle"], "bin/install.sh.sigstore.json");
        r.has("sigstore:verified", "pass", "release.tar");
        r.lacks("bundle:unauthenticated");
    }
}

/// The sample release is signed by our test instance: the bundles beside
/// the `.tar` and the `.tar.gz`, the one beside the manifest inside and its
/// OCI image's signature and attestations verify against the trusted root
/// written beside them, and nothing else than the sample's signer is
/// accepted.
#[test]
fn sample_release_is_signed_and_verifies_against_its_own_root() {
    use airgap_verify::sample::{SIGNER_IDENTITY, TRUSTED_ROOT};
    let sb = Sandbox::new("sigstore_own_sample");
    let gz = sb.sample_gz();
    let tar = gz.with_extension("");
    let signer = Sandbox::sample_signer(&tar);
    let signer: Vec<&str> = signer.iter().map(String::as_str).collect();
    for archive in [&tar, &gz] {
        let r = bundle(archive, &signer);
        r.code(0).clean();
        let name = archive.file_name().unwrap().to_str().unwrap();
        let a = r.has("sigstore:verified", "pass", name);
        assert_eq!(a.evidence["identity"], SIGNER_IDENTITY);
        let m = r.has("sigstore:verified", "pass", "manifest.json");
        assert_eq!(
            m.evidence["bundle"],
            "platform/v1.0.0/manifest.json.sigstore.json"
        );
        // The manifest's bundle is its own companion, not an unlisted file.
        r.lacks("bundle:unlisted-file").lacks("sigstore:rejected");
        // Its OCI image is signed, with an SBOM and provenance, by the
        // same signer (cosign v3 referrers).
        let img = r.has("image:signed", "pass", "images/collector-oci.tar.gz");
        for want in [
            SIGNER_IDENTITY,
            "SBOM: SPDX",
            "provenance: https://ci.sekoia.example/builder@v1",
        ] {
            assert!(img.message.contains(want), "{want}: {}", img.message);
        }
    }
    // No network while all of it is verified (the log entries, timestamps,
    // SCTs and image referrers are all checked from the files).
    let mut args: Vec<String> = vec![
        "bundle".into(),
        tar.display().to_string(),
        "--format".into(),
        "json".into(),
        "--no-progress".into(),
    ];
    args.extend(signer.iter().map(|s| s.to_string()));
    let (r, calls) = crate::sigstore::connects(&sb, "sample", crate::harness::BIN, &args);
    r.has("image:signed", "pass", "images/collector-oci.tar.gz");
    r.has("sigstore:verified", "pass", "manifest.json");
    assert!(calls.is_empty(), "bundle connected: {calls:?}");
    // The conformance entry point agrees.
    let root = tar.parent().unwrap().join(TRUSTED_ROOT);
    assert!(signer.contains(&root.to_str().unwrap()), "{signer:?}");
    let mut args = vec![
        "sigstore".to_string(),
        "verify-bundle".into(),
        "--bundle".into(),
        format!("{}.sigstore.json", tar.display()),
    ];
    args.extend(signer.iter().map(|s| s.to_string()));
    args.push(tar.display().to_string());
    av(&args).code(0);
    // Without a signer the bundles are found, not verified.
    let r = bundle(&tar, &[]);
    r.has("sigstore:unverified", "warn", "manifest.json");
    r.lacks("sigstore:verified");
    // Another signer is not the sample's.
    let mut other: Vec<&str> = signer.clone();
    other[1] = "someone@else.example";
    let r = bundle(&tar, &other);
    r.code(1);
    let f = r.has("sigstore:rejected", "fail", "manifest.json");
    assert!(f.message.contains("identity mismatch"), "{}", f.message);
    r.has(
        "image:signature-invalid",
        "fail",
        "images/collector-oci.tar.gz",
    );
}

/// A staged folder's `manifest.json.sigstore.json` is judged as in the
/// archive: verified with the sample's signer, rejected with another one or
/// once the manifest is edited, found but not verified without a signer.
#[test]
fn a_staged_folder_verifies_the_manifests_sigstore_bundle() {
    let sb = Sandbox::new("sigstore_staged_folder");
    let tar = sb.sample();
    let signer = Sandbox::sample_signer(&tar);
    let signer: Vec<&str> = signer.iter().map(String::as_str).collect();
    let dir = sb.path("staged");
    extract(&tar, &dir);
    let r = bundle(&dir, &signer);
    r.code(0);
    r.has("sigstore:verified", "pass", "platform/v1.0.0/manifest.json");
    let r = bundle(&dir, &[]);
    r.has(
        "sigstore:unverified",
        "warn",
        "platform/v1.0.0/manifest.json",
    );
    r.lacks("sigstore:verified");
    let mut other = signer.clone();
    other[1] = "someone@else.example";
    let f = bundle(&dir, &other).has("sigstore:rejected", "fail", "manifest.json");
    assert!(f.message.contains("identity mismatch"), "{}", f.message);
    // An edited manifest no longer matches what was signed.
    let manifest = dir.join("platform/v1.0.0/manifest.json");
    let mut text = std::fs::read(&manifest).unwrap();
    text.extend_from_slice(b"\n");
    std::fs::write(&manifest, text).unwrap();
    let r = bundle(&dir, &signer);
    r.code(1);
    r.has("sigstore:rejected", "fail", "platform/v1.0.0/manifest.json");
}

/// The sample is deterministic, signatures included (ECDSA per RFC 6979,
/// fixed signing times): two runs write byte-identical files, so its
/// digests can be pinned and benchmarks hash the same bytes.
#[test]
fn sample_and_its_signatures_are_deterministic() {
    let sb = Sandbox::new("sigstore_own_sample_deterministic");
    let a = airgap_verify::sample::write_release(&sb.path("a"), 1 << 20, true).unwrap();
    let b = airgap_verify::sample::write_release(&sb.path("b"), 1 << 20, true).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(
        a.iter()
            .any(|p| p.to_string_lossy().ends_with(".sigstore.json")),
        "{a:?}"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.file_name(), y.file_name());
        assert!(
            std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
            "{} differs between two runs",
            x.display()
        );
    }
}
