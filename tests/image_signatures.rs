//! Signatures and attestations of the images of a release (issue 19 item
//! 2): cosign v3 referrers and cosign's older tag scheme in OCI layouts,
//! image files and `docker save` archives with an OCI part, also
//! compressed. Each way it breaks asserts its code and the image reference.

use airgap_verify::sample::{
    self, docker_image, docker_oci_image, gzip, oci_image, oci_image_with, oci_manifest_digest,
    tar_of, Attachment, TagLayer,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::harness::tarkit::RawTar;
use crate::harness::{bundle, Sandbox};

const REF: &str = "registry.example/x:v1.0.0";
const SIGN: &str = "https://sigstore.dev/cosign/sign/v1";
const SPDX: &str = "https://spdx.dev/Document";
const SLSA: &str = "https://slsa.dev/provenance/v1";

fn layer(seed: u8) -> Vec<u8> {
    tar_of(&[("app/bin", &vec![seed; 3000]), ("etc/conf", b"k: v\n")])
}

fn release_with(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut t = RawTar::new();
    for (p, d) in files {
        t.file(p, d);
    }
    t.finish()
}

/// A release holding one image file, `images/x.tar.gz`.
fn release_of(image_tar: Vec<u8>) -> Vec<u8> {
    release_with(&[("images/x.tar.gz", gzip(&image_tar))])
}

fn statement(subject_hex: &str, predicate_type: &str, predicate: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": "registry.example/x", "digest": { "sha256": subject_hex } }],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap()
}

/// A Sigstore bundle holding a DSSE envelope of `statement`, with no valid
/// signature: enough for the checks made before verification.
fn unsigned_dsse_bundle(statement: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": { "certificate": { "rawBytes": "AAAA" }, "tlogEntries": [] },
        "dsseEnvelope": {
            "payload": STANDARD.encode(statement),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{ "sig": "AAAA" }],
        },
    }))
    .unwrap()
}

fn referrer(bundle: Vec<u8>, predicate_type: &str) -> Attachment {
    Attachment::Referrer {
        bundle,
        predicate_type: Some(predicate_type.to_string()),
        listed: false,
    }
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

#[test]
fn an_unsigned_image_warns_and_the_require_flags_need_a_signer() {
    let sb = Sandbox::new("image_sig_unsigned_warns");
    let rel = sb.write("r.tar", release_of(oci_image(REF, &[layer(1)])));
    let r = bundle(&rel, &[]);
    r.code(0);
    let f = r.has("image:unsigned", "warn", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert_eq!(
        f.evidence["manifest_digest"],
        oci_manifest_digest(&[layer(1)])
    );
    assert!(
        f.message.contains("no signature is attached"),
        "{}",
        f.message
    );
    assert_eq!(f.evidence["sbom"], "none");
    // Without a signer nothing could be verified: exit 2, before the pass.
    for flag in [
        "--require-signed-images",
        "--require-sbom",
        "--require-provenance",
    ] {
        let r = bundle(&rel, &[flag]);
        r.code(2);
        assert!(
            r.stderr.contains(flag) && r.stderr.contains("--certificate-identity"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn a_docker_save_archive_without_an_oci_layout_is_unsigned() {
    let sb = Sandbox::new("image_sig_docker_legacy");
    let rel = sb.write("r.tar", release_of(docker_image(REF, &[layer(1)])));
    let r = bundle(&rel, &[]);
    r.code(0);
    let f = r.has("image:unsigned", "warn", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert!(f.message.contains("no manifest digest"), "{}", f.message);
}

/// Referrers and tags are attachments, not images: no unknown media type,
/// no config without diff_ids, no `sha256-<hex>.sig` among the references.
/// Without a signer they are reported unverified.
#[test]
fn attached_artifacts_are_not_judged_as_images() {
    let sb = Sandbox::new("image_sig_attachments_not_images");
    let layers = [layer(1)];
    let digest = oci_manifest_digest(&layers);
    let sig = unsigned_dsse_bundle(&statement(hex_of(&digest), SIGN, serde_json::json!({})));
    let sbom = unsigned_dsse_bundle(&statement(
        hex_of(&digest),
        SPDX,
        serde_json::json!({"spdxVersion": "SPDX-2.3"}),
    ));
    let legacy_payload = serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": "registry.example/x" },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .unwrap();
    let tag = Attachment::Tag {
        suffix: "sig".into(),
        layers: vec![TagLayer {
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            data: legacy_payload,
            annotations: serde_json::from_value(
                serde_json::json!({"dev.cosignproject.cosign/signature": "AAAA"}),
            )
            .unwrap(),
        }],
    };
    let img = oci_image_with(
        REF,
        &layers,
        &[
            Attachment::Referrer {
                bundle: sig,
                predicate_type: Some(SIGN.into()),
                listed: true,
            },
            referrer(sbom, SPDX),
            tag,
        ],
    );
    let r = bundle(&sb.write("r.tar", release_of(img)), &[]);
    r.code(0)
        .lacks("image:unknown-media-type")
        .lacks("image:manifest-invalid")
        .lacks("image:unsigned");
    let v = r.has("image:valid", "pass", "images/x.tar.gz");
    assert_eq!(v.evidence["refs"], serde_json::json!([REF]));
    let f = r.has("image:signature-unverified", "warn", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert_eq!(f.evidence["signatures"], 1, "{}", f.message);
    assert_eq!(f.evidence["sbom"], "SPDX (unverified)");
    // The older .sig has no log bundle: reported as such, not counted.
    let u = r.has("image:signature-unverifiable", "warn", "images/x.tar.gz");
    assert_eq!(u.evidence["image"], REF);
    assert!(
        u.message.contains("dev.sigstore.cosign/bundle"),
        "{}",
        u.message
    );
}

/// An attestation whose statement names another image is refused, in an
/// OCI layout and in a newer `docker save` archive; a signature payload of
/// the older scheme naming another digest likewise.
#[test]
fn an_attestation_naming_another_image_is_a_subject_mismatch() {
    let sb = Sandbox::new("image_sig_subject_mismatch");
    let layers = [layer(2)];
    let other = oci_manifest_digest(&[layer(3)]);
    let att = unsigned_dsse_bundle(&statement(
        hex_of(&other),
        SLSA,
        serde_json::json!({"runDetails": {"builder": {"id": "https://ci.example/b"}}}),
    ));
    for (name, img) in [
        (
            "oci.tar",
            oci_image_with(REF, &layers, &[referrer(att.clone(), SLSA)]),
        ),
        (
            "docker.tar",
            docker_oci_image(REF, &layers, &[referrer(att.clone(), SLSA)]),
        ),
    ] {
        let r = bundle(&sb.write(name, release_of(img)), &[]);
        r.code(1);
        let f = r.has("image:subject-mismatch", "fail", "images/x.tar.gz");
        assert_eq!(f.evidence["image"], REF, "{name}");
        assert_eq!(
            f.evidence["expected_digest"],
            oci_manifest_digest(&layers),
            "{name}"
        );
        assert!(f.message.contains(&other), "{name}: {}", f.message);
        // Not counted as provenance.
        let s = r.has("image:unsigned", "warn", "images/x.tar.gz");
        assert_eq!(s.evidence["provenance_builder"], "none", "{name}");
    }
}

/// An image stored as a folder of the release gets the same discovery.
#[test]
fn a_folder_image_carries_its_attachments() {
    let sb = Sandbox::new("image_sig_folder");
    let layers = [layer(4)];
    let other = oci_manifest_digest(&[layer(5)]);
    let att = unsigned_dsse_bundle(&statement(hex_of(&other), SPDX, serde_json::json!({})));
    let files = sample::oci_files(REF, &layers, &[referrer(att, SPDX)]);
    let files: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(p, b)| (format!("images/api/{p}"), b))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let r = bundle(&sb.write("r.tar", release_with(&refs)), &[]);
    r.code(1);
    let f = r.has("image:subject-mismatch", "fail", "images/api");
    assert_eq!(f.evidence["image"], REF);
}

/// The human report lists each image: who signed it, its SBOM, its
/// provenance's builder.
#[test]
fn the_human_report_lists_each_image() {
    let sb = Sandbox::new("image_sig_human");
    let rel = sb.write("r.tar", release_of(oci_image(REF, &[layer(1)])));
    let out = crate::harness::av([
        "bundle".into(),
        rel.clone().into_os_string(),
        "--no-progress".into(),
    ]);
    out.code(0);
    assert!(
        out.stdout.contains(&format!(
            "images/x.tar.gz  {REF}: not signed; SBOM: none; provenance: none"
        )),
        "{}",
        out.stdout
    );
}
