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

// ---- signed with our own test Sigstore instance (sigstore::sign) --------

use airgap_verify::sigstore::sign::{SignOptions, Statement, Subject, Tamper, TestInstance};

const ID: &str = "release@vendor.test";
const ISSUER: &str = "https://oidc.vendor.test";
const BUILDER: &str = "https://ci.vendor.test/builder@v1";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";

fn instance() -> TestInstance {
    TestInstance::new("tests/image_signatures.rs")
}

fn opts() -> SignOptions {
    SignOptions::new(ID, ISSUER)
}

fn digest_bytes(digest: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_of(digest), &mut out).unwrap();
    out
}

/// A cosign v3 image signature: a DSSE statement of predicate type
/// `https://sigstore.dev/cosign/sign/v1` whose subject is the manifest.
fn signature(i: &TestInstance, digest: &str, o: &SignOptions) -> Attachment {
    attestation(i, digest, SIGN, serde_json::json!({}), o)
}

fn attestation(
    i: &TestInstance,
    digest: &str,
    predicate_type: &str,
    predicate: serde_json::Value,
    o: &SignOptions,
) -> Attachment {
    let s = Statement {
        subjects: vec![Subject {
            name: "registry.example/x".into(),
            sha256: digest_bytes(digest),
        }],
        predicate_type: predicate_type.into(),
        predicate,
    };
    referrer(i.attest(&s, o).into_bytes(), predicate_type)
}

fn sbom(i: &TestInstance, digest: &str, o: &SignOptions) -> Attachment {
    attestation(
        i,
        digest,
        SPDX,
        serde_json::json!({"spdxVersion": "SPDX-2.3", "name": "x"}),
        o,
    )
}

fn provenance(i: &TestInstance, digest: &str, o: &SignOptions) -> Attachment {
    attestation(
        i,
        digest,
        SLSA,
        serde_json::json!({
            "buildDefinition": {"buildType": "https://vendor.test/build/v1"},
            "runDetails": {"builder": {"id": BUILDER}},
        }),
        o,
    )
}

/// Everything a release's image should carry, each made with `o`.
fn everything(i: &TestInstance, digest: &str, o: &SignOptions) -> Vec<Attachment> {
    vec![
        signature(i, digest, o),
        sbom(i, digest, o),
        provenance(i, digest, o),
    ]
}

/// The trusted root in the sandbox and the policy flags.
fn policy(sb: &Sandbox, i: &TestInstance) -> Vec<String> {
    let root = sb.write("trusted_root.json", i.trusted_root_json());
    vec![
        "--trusted-root".into(),
        root.display().to_string(),
        "--certificate-identity".into(),
        ID.into(),
        "--certificate-oidc-issuer".into(),
        ISSUER.into(),
    ]
}

const ALL_REQUIRED: [&str; 3] = [
    "--require-signed-images",
    "--require-sbom",
    "--require-provenance",
];

fn run(
    sb: &Sandbox,
    name: &str,
    release: Vec<u8>,
    pol: &[String],
    extra: &[&str],
) -> crate::harness::Run {
    let mut args: Vec<&str> = pol.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    bundle(&sb.write(name, release), &args)
}

const REF2: &str = "registry.example/y:v2.0.0";

/// A signed release: an OCI image file and a newer `docker save` archive
/// (compressed), and an image stored as a folder, each signed with an SBOM
/// and provenance, passes with the three --require-* flags, in a tar and in
/// a tar.gz; the reports name the signer, the SBOM and the builder.
#[test]
fn a_signed_release_passes_with_every_requirement() {
    let sb = Sandbox::new("image_sig_all_good");
    let i = instance();
    let pol = policy(&sb, &i);
    let (l1, l2, l3) = ([layer(11)], [layer(12)], [layer(13)]);
    let (d1, d2, d3) = (
        oci_manifest_digest(&l1),
        oci_manifest_digest(&l2),
        oci_manifest_digest(&l3),
    );
    const REF3: &str = "registry.example/z:v3.0.0";
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "images/x.tar.gz".into(),
            gzip(&oci_image_with(REF, &l1, &everything(&i, &d1, &opts()))),
        ),
        (
            "images/y.tar.gz".into(),
            gzip(&docker_oci_image(REF2, &l2, &everything(&i, &d2, &opts()))),
        ),
    ];
    for (p, b) in sample::oci_files(REF3, &l3, &everything(&i, &d3, &opts())) {
        files.push((format!("images/z/{p}"), b));
    }
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let tar = release_with(&refs);
    for (name, release) in [("r.tar", tar.clone()), ("r.tar.gz", gzip(&tar))] {
        let r = run(&sb, name, release, &pol, &ALL_REQUIRED);
        r.code(0)
            .lacks("image:unsigned")
            .lacks("image:sbom-missing")
            .lacks("image:provenance-missing")
            .lacks("image:signature-invalid")
            .lacks("image:attestation-invalid")
            .lacks("sigstore:missing");
        for (target, reference, digest) in [
            ("images/x.tar.gz", REF, &d1),
            ("images/y.tar.gz", REF2, &d2),
            ("images/z", REF3, &d3),
        ] {
            let f = r.has("image:signed", "pass", target);
            assert_eq!(f.evidence["image"], reference, "{name} {target}");
            assert_eq!(f.evidence["manifest_digest"], *digest, "{name} {target}");
            assert_eq!(f.evidence["signed_by"], ID, "{name} {target}");
            assert_eq!(f.evidence["issuer"], ISSUER, "{name} {target}");
            assert_eq!(f.evidence["sbom"], "SPDX", "{name} {target}");
            assert_eq!(f.evidence["provenance_builder"], BUILDER, "{name} {target}");
        }
    }
    // Piped in on standard input, which cannot be read twice: the checks
    // need no second read of the archive.
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["bundle", "-", "--format", "json", "--no-progress"])
        .args(&pol)
        .args(ALL_REQUIRED)
        .stdin(std::fs::File::open(sb.path("r.tar.gz")).unwrap())
        .output()
        .unwrap();
    let piped = crate::harness::Run::from(out);
    piped.code(0).lacks("image:unsigned");
    for target in ["images/x.tar.gz", "images/y.tar.gz", "images/z"] {
        assert_eq!(
            piped.has("image:signed", "pass", target).evidence["signed_by"],
            ID
        );
    }
    // The human and HTML reports list each image's signer, SBOM, builder.
    let rel = sb.path("r.tar.gz");
    let mut args: Vec<std::ffi::OsString> = vec!["bundle".into(), rel.into_os_string()];
    args.extend(pol.iter().map(Into::into));
    args.push("--no-progress".into());
    let html = sb.path("report.html");
    args.push("--output".into());
    args.push(format!("html={}", html.display()).into());
    let human = crate::harness::av(args);
    human.code(0);
    let line = format!("images/x.tar.gz  {REF}: signed by {ID}; SBOM: SPDX; provenance: {BUILDER}");
    assert!(human.stdout.contains(&line), "{}", human.stdout);
    let page = std::fs::read_to_string(&html).unwrap();
    let section = page
        .split("<section id=\"images\">")
        .nth(1)
        .expect("an Images section");
    for want in [REF, REF2, REF3, &format!("signed by {ID}"), BUILDER, "SPDX"] {
        assert!(section.contains(want), "{want} not in {section}");
    }
}

/// One image signed, one not: the unsigned one warns (exit 0); with
/// --require-signed-images it fails, naming it.
#[test]
fn an_unsigned_image_fails_with_require_signed_images() {
    let sb = Sandbox::new("image_sig_unsigned_required");
    let i = instance();
    let pol = policy(&sb, &i);
    let l1 = [layer(21)];
    let d1 = oci_manifest_digest(&l1);
    let release = release_with(&[
        (
            "images/x.tar.gz",
            gzip(&oci_image_with(REF, &l1, &[signature(&i, &d1, &opts())])),
        ),
        ("images/y.tar.gz", gzip(&oci_image(REF2, &[layer(22)]))),
    ]);
    let r = run(&sb, "r.tar", release.clone(), &pol, &[]);
    r.code(0);
    assert_eq!(
        r.has("image:signed", "pass", "images/x.tar.gz").evidence["image"],
        REF
    );
    let f = r.has("image:unsigned", "warn", "images/y.tar.gz");
    assert_eq!(f.evidence["image"], REF2);
    // --dry-run says what will be required, without reading the archive.
    let mut args: Vec<std::ffi::OsString> = vec!["bundle".into(), sb.path("r.tar").into()];
    args.extend(pol.iter().map(Into::into));
    args.extend(["--require-signed-images".into(), "--dry-run".into()]);
    let dry = crate::harness::av(args);
    dry.code(0);
    assert!(
        dry.stdout.contains("bundle image signatures:")
            && dry
                .stdout
                .contains("verified with the Sigstore signer given")
            && dry.stdout.contains("every image must carry a signature"),
        "{}",
        dry.stdout
    );
    let r = run(&sb, "r.tar", release, &pol, &["--require-signed-images"]);
    r.code(1);
    let f = r.has("image:unsigned", "fail", "images/y.tar.gz");
    assert_eq!(f.evidence["image"], REF2);
    assert_eq!(f.evidence["required"], "--require-signed-images");
    r.has("image:signed", "pass", "images/x.tar.gz");
}

/// A signature by another identity, by another issuer, by another key than
/// its certificate's, or with a broken inclusion proof: rejected, naming the
/// image; the image then counts as unsigned.
#[test]
fn a_wrong_or_tampered_signature_is_rejected() {
    let sb = Sandbox::new("image_sig_wrong_signer");
    let i = instance();
    let pol = policy(&sb, &i);
    let layers = [layer(31)];
    let d = oci_manifest_digest(&layers);
    for (tamper, reason) in [
        (Tamper::WrongIdentity, "identity mismatch"),
        (Tamper::WrongIssuer, "issuer mismatch"),
        (Tamper::OtherKey, "signature invalid"),
        (Tamper::InclusionProofBroken, "invalid inclusion proof"),
    ] {
        let att = signature(&i, &d, &opts().tampered(tamper));
        // Packed as an image file, and as a newer docker save archive.
        for img in [
            oci_image_with(REF, &layers, std::slice::from_ref(&att)),
            docker_oci_image(REF, &layers, std::slice::from_ref(&att)),
        ] {
            let r = run(&sb, "r.tar", release_of(img), &pol, &[]);
            r.code(1);
            let f = r.has("image:signature-invalid", "fail", "images/x.tar.gz");
            assert_eq!(f.evidence["image"], REF, "{}", tamper.name());
            assert!(
                f.message.contains(reason),
                "{}: {}",
                tamper.name(),
                f.message
            );
            assert_eq!(f.evidence["expected_identity"], ID);
            let u = r.has("image:unsigned", "warn", "images/x.tar.gz");
            assert!(
                u.message.contains("none of its 1 attached signature"),
                "{}",
                u.message
            );
        }
    }
}

/// An SBOM attestation whose subject is another image: refused as a subject
/// mismatch (before its signature is looked at), so --require-sbom fails.
#[test]
fn an_attestation_of_another_image_does_not_count() {
    let sb = Sandbox::new("image_sig_attestation_subject");
    let i = instance();
    let pol = policy(&sb, &i);
    let layers = [layer(41)];
    let d = oci_manifest_digest(&layers);
    let img = oci_image_with(
        REF,
        &layers,
        &[
            signature(&i, &d, &opts()),
            sbom(&i, &d, &opts().tampered(Tamper::SubjectMismatch)),
            provenance(&i, &d, &opts()),
        ],
    );
    let r = run(&sb, "r.tar", release_of(img), &pol, &ALL_REQUIRED);
    r.code(1);
    let f = r.has("image:subject-mismatch", "fail", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert_eq!(f.evidence["expected_digest"], d);
    assert!(f.message.contains(SPDX), "{}", f.message);
    let m = r.has("image:sbom-missing", "fail", "images/x.tar.gz");
    assert_eq!(m.evidence["image"], REF);
    r.lacks("image:provenance-missing").lacks("image:unsigned");
}

/// No SBOM: --require-sbom fails; no provenance: --require-provenance
/// fails; each names the image, and only its own flag makes it fail.
#[test]
fn a_missing_sbom_or_provenance_fails_when_required() {
    let sb = Sandbox::new("image_sig_sbom_provenance_missing");
    let i = instance();
    let pol = policy(&sb, &i);
    let layers = [layer(51)];
    let d = oci_manifest_digest(&layers);
    // Signed, with provenance, no SBOM (a CycloneDX one elsewhere does not count).
    let no_sbom = oci_image_with(
        REF,
        &layers,
        &[signature(&i, &d, &opts()), provenance(&i, &d, &opts())],
    );
    let r = run(&sb, "a.tar", release_of(no_sbom.clone()), &pol, &[]);
    r.code(0).lacks("image:sbom-missing");
    assert_eq!(
        r.has("image:signed", "pass", "images/x.tar.gz").evidence["sbom"],
        "none"
    );
    let r = run(&sb, "a.tar", release_of(no_sbom), &pol, &["--require-sbom"]);
    r.code(1);
    let f = r.has("image:sbom-missing", "fail", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert_eq!(f.evidence["required"], "--require-sbom");
    // Signed, with a CycloneDX SBOM, no provenance.
    let cdx = attestation(
        &i,
        &d,
        CYCLONEDX,
        serde_json::json!({"bomFormat": "CycloneDX"}),
        &opts(),
    );
    let no_prov = oci_image_with(REF, &layers, &[signature(&i, &d, &opts()), cdx]);
    let r = run(
        &sb,
        "b.tar",
        release_of(no_prov.clone()),
        &pol,
        &["--require-sbom"],
    );
    r.code(0).lacks("image:provenance-missing");
    assert_eq!(
        r.has("image:signed", "pass", "images/x.tar.gz").evidence["sbom"],
        "CycloneDX"
    );
    let r = run(
        &sb,
        "b.tar",
        release_of(no_prov),
        &pol,
        &["--require-provenance"],
    );
    r.code(1);
    let f = r.has("image:provenance-missing", "fail", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    r.lacks("image:sbom-missing");
}

/// An SBOM attestation larger than the pass keeps of an image's JSON (4 MiB
/// per file) is not read twice to verify it: reported as unverifiable
/// (warn), and not enough for --require-sbom.
#[test]
fn an_attestation_too_large_to_keep_is_reported_not_verified() {
    let sb = Sandbox::new("image_sig_too_large");
    let i = instance();
    let pol = policy(&sb, &i);
    let layers = [layer(81)];
    let d = oci_manifest_digest(&layers);
    let packages: Vec<serde_json::Value> = (0..40_000)
        .map(|n| serde_json::json!({"SPDXID": format!("SPDXRef-Package-{n}"), "name": format!("package-{n}"), "versionInfo": "1.0.0"}))
        .collect();
    let big = attestation(
        &i,
        &d,
        SPDX,
        serde_json::json!({"spdxVersion": "SPDX-2.3", "packages": packages}),
        &opts(),
    );
    if let Attachment::Referrer { bundle, .. } = &big {
        assert!(bundle.len() > 4 << 20, "{} bytes", bundle.len());
    }
    let img = oci_image_with(REF, &layers, &[signature(&i, &d, &opts()), big]);
    let r = run(&sb, "r.tar", release_of(img), &pol, &["--require-sbom"]);
    r.code(1);
    let f = r.has("image:signature-unverifiable", "warn", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert!(
        f.message.contains("larger than the pass keeps"),
        "{}",
        f.message
    );
    r.has("image:sbom-missing", "fail", "images/x.tar.gz");
    assert_eq!(
        r.has("image:signed", "pass", "images/x.tar.gz").evidence["signed_by"],
        ID
    );
}

/// A tampered attestation (signed by another key than its certificate's)
/// is rejected and does not count for --require-provenance.
#[test]
fn a_tampered_attestation_is_rejected() {
    let sb = Sandbox::new("image_sig_attestation_tampered");
    let i = instance();
    let pol = policy(&sb, &i);
    let layers = [layer(61)];
    let d = oci_manifest_digest(&layers);
    let img = oci_image_with(
        REF,
        &layers,
        &[
            signature(&i, &d, &opts()),
            provenance(&i, &d, &opts().tampered(Tamper::OtherKey)),
        ],
    );
    let r = run(
        &sb,
        "r.tar",
        release_of(img),
        &pol,
        &["--require-provenance"],
    );
    r.code(1);
    let f = r.has("image:attestation-invalid", "fail", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert_eq!(f.evidence["predicate_type"], SLSA);
    assert!(f.message.contains("signature invalid"), "{}", f.message);
    r.has("image:provenance-missing", "fail", "images/x.tar.gz");
}

/// cosign's older tag scheme, made of our instance's bundle parts as cosign
/// stores them in annotations: a `.sig` (simple-signing payload) and an
/// `.att` (DSSE envelope) verify with the same policy; the same `.sig` with
/// another identity's certificate is rejected.
#[test]
fn the_older_tag_scheme_is_verified_with_the_same_policy() {
    let sb = Sandbox::new("image_sig_legacy_tags");
    let i = instance();
    let pol = policy(&sb, &i);
    let layers = [layer(71)];
    let d = oci_manifest_digest(&layers);
    let legacy = |o: &SignOptions| -> Vec<Attachment> {
        let payload = serde_json::to_vec(&serde_json::json!({
            "critical": {
                "identity": { "docker-reference": "registry.example/x" },
                "image": { "docker-manifest-digest": d },
                "type": "cosign container image signature",
            },
            "optional": null,
        }))
        .unwrap();
        let digest: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            &payload,
        ))
        .into();
        let b: serde_json::Value = serde_json::from_str(&i.sign_digest(&digest, o)).unwrap();
        let sig_layer = TagLayer {
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            data: payload,
            annotations: cosign_annotations(
                &b,
                b["messageSignature"]["signature"].as_str().unwrap(),
            ),
        };
        let s = Statement {
            subjects: vec![Subject {
                name: "registry.example/x".into(),
                sha256: digest_bytes(&d),
            }],
            predicate_type: SLSA.into(),
            predicate: serde_json::json!({"runDetails": {"builder": {"id": BUILDER}}}),
        };
        let a: serde_json::Value = serde_json::from_str(&i.attest(&s, o)).unwrap();
        let att_layer = TagLayer {
            media_type: "application/vnd.dsse.envelope.v1+json".into(),
            data: serde_json::to_vec(&a["dsseEnvelope"]).unwrap(),
            annotations: cosign_annotations(&a, ""),
        };
        vec![
            Attachment::Tag {
                suffix: "sig".into(),
                layers: vec![sig_layer],
            },
            Attachment::Tag {
                suffix: "att".into(),
                layers: vec![att_layer],
            },
        ]
    };
    let r = run(
        &sb,
        "r.tar",
        release_of(oci_image_with(REF, &layers, &legacy(&opts()))),
        &pol,
        &["--require-signed-images", "--require-provenance"],
    );
    r.code(0).lacks("image:signature-unverifiable");
    let f = r.has("image:signed", "pass", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert_eq!(f.evidence["signed_by"], ID);
    assert_eq!(f.evidence["provenance_builder"], BUILDER);
    let r = run(
        &sb,
        "r.tar",
        release_of(oci_image_with(
            REF,
            &layers,
            &legacy(&opts().tampered(Tamper::WrongIdentity)),
        )),
        &pol,
        &[],
    );
    r.code(1);
    let f = r.has("image:signature-invalid", "fail", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert!(f.message.contains("identity mismatch"), "{}", f.message);
}

/// The annotations cosign writes on a tag-scheme layer, from a bundle of
/// our instance: signature, PEM certificate, and the log's bundle (signed
/// entry timestamp and entry).
fn cosign_annotations(
    bundle: &serde_json::Value,
    signature: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let vm = &bundle["verificationMaterial"];
    let der = STANDARD
        .decode(vm["certificate"]["rawBytes"].as_str().unwrap())
        .unwrap();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD
            .encode(der)
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let e = &vm["tlogEntries"][0];
    let log_id = hex::encode(
        STANDARD
            .decode(e["logId"]["keyId"].as_str().unwrap())
            .unwrap(),
    );
    let rekor = serde_json::json!({
        "SignedEntryTimestamp": e["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": e["canonicalizedBody"],
            "integratedTime": e["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
            "logIndex": e["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
            "logID": log_id,
        },
    });
    serde_json::from_value(serde_json::json!({
        "dev.cosignproject.cosign/signature": signature,
        "dev.sigstore.cosign/certificate": pem,
        "dev.sigstore.cosign/bundle": rekor.to_string(),
    }))
    .unwrap()
}

/// `cosign save` (and Hauler) mark the signature manifest with `kind:
/// dev.cosignproject.cosign/sigs` instead of a `sha256-<hex>.sig` name: it
/// is attached to the layout's image all the same. And a staged folder
/// (the release extracted) gets the same checks as the archive.
#[test]
fn a_cosign_save_layout_and_a_staged_folder_are_verified() {
    let sb = Sandbox::new("image_sig_cosign_save");
    let i = instance();
    let pol = policy(&sb, &i);
    let layers = [layer(91)];
    let d = oci_manifest_digest(&layers);
    let payload = serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": "registry.example/x" },
            "image": { "docker-manifest-digest": d },
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .unwrap();
    let digest: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(&payload).into()
    };
    let b: serde_json::Value = serde_json::from_str(&i.sign_digest(&digest, &opts())).unwrap();
    let tag = Attachment::Tag {
        suffix: "sig".into(),
        layers: vec![TagLayer {
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            data: payload,
            annotations: cosign_annotations(
                &b,
                b["messageSignature"]["signature"].as_str().unwrap(),
            ),
        }],
    };
    let mut files = sample::oci_files(REF, &layers, &[tag]);
    // As cosign save writes index.json: kinds, no tag name on the signature.
    let (_, index) = files.iter_mut().find(|(p, _)| p == "index.json").unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(index).unwrap();
    v["manifests"][0]["annotations"]["kind"] = "dev.cosignproject.cosign/image".into();
    v["manifests"][1]["annotations"] =
        serde_json::json!({ "kind": "dev.cosignproject.cosign/sigs" });
    *index = serde_json::to_vec(&v).unwrap();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let r = run(
        &sb,
        "r.tar",
        release_of(tar_of(&refs)),
        &pol,
        &["--require-signed-images"],
    );
    r.code(0).lacks("image:unknown-media-type");
    let f = r.has("image:signed", "pass", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    assert_eq!(f.evidence["signed_by"], ID);
    // The same image stored as a folder of a staged release.
    let staged = sb.path("staged");
    for (p, b) in &files {
        let path = staged.join("images/x").join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }
    let mut args: Vec<&str> = pol.iter().map(String::as_str).collect();
    args.push("--require-signed-images");
    let r = bundle(&staged, &args);
    r.code(0);
    let f = r.has("image:signed", "pass", "images/x");
    assert_eq!(f.evidence["image"], REF);
}
