//! Content validators inside the single pass: images, charts, content
//! bundles. Each breakage asserts the code and the file and reference named.

use airgap_verify::sample::{self, docker_image, gzip, helm_chart, oci_image, sha256_hex, tar_of};

use crate::harness::tarkit::{self, Member, RawTar};
use crate::harness::{bundle, Sandbox};

const REF: &str = "registry.example/x:v1.0.0";

fn layer(seed: u8) -> Vec<u8> {
    tar_of(&[("app/bin", &vec![seed; 5000]), ("etc/conf", b"k: v\n")])
}

fn release_with(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut t = RawTar::new();
    for (p, d) in files {
        t.file(p, d);
    }
    t.finish()
}

/// Rewrites the members of an uncompressed image tar.
fn edit_image(image: &[u8], f: impl FnOnce(&mut Vec<Member>)) -> Vec<u8> {
    let mut m = tarkit::read_members(image);
    f(&mut m);
    tarkit::write_members(&m)
}

fn run_image(sb: &Sandbox, name: &str, image_tar: Vec<u8>, extra: &[&str]) -> crate::harness::Run {
    let rel = release_with(&[("images/x.tar.gz", gzip(&image_tar))]);
    bundle(&sb.write(name, rel), extra)
}

#[test]
fn docker_archive_valid() {
    let sb = Sandbox::new("docker_archive_valid");
    let r = run_image(&sb, "ok.tar", docker_image(REF, &[layer(1), layer(2)]), &[]);
    r.code(0);
    let f = r.has("image:valid", "pass", "images/x.tar.gz");
    assert_eq!(f.evidence["layers"], 2);
    assert_eq!(f.evidence["refs"][0], REF);
}

#[test]
fn docker_archive_tampered_layer_is_a_diff_id_mismatch() {
    let sb = Sandbox::new("docker_archive_tampered_layer_is_a_diff_id_mismatch");
    let img = edit_image(&docker_image(REF, &[layer(1), layer(2)]), |m| {
        let l = m
            .iter_mut()
            .filter(|e| e.path.ends_with("/layer.tar"))
            .nth(1)
            .unwrap();
        let n = l.data.len();
        l.data[n / 3] ^= 1;
    });
    let r = run_image(&sb, "t.tar", img, &[]);
    r.code(1);
    let f = r.has("image:diff-id-mismatch", "fail", "images/x.tar.gz");
    assert!(
        f.message
            .starts_with(&format!("images/x.tar.gz ({REF}): layer 2 sha256:")),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("does not match diff_id sha256:"),
        "{}",
        f.message
    );
    assert_eq!(f.evidence["image"], REF);
    r.lacks("image:valid");
}

#[test]
fn docker_archive_missing_layer_and_bad_config_name() {
    let sb = Sandbox::new("docker_archive_missing_layer_and_bad_config_name");
    let img = edit_image(&docker_image(REF, &[layer(1), layer(2)]), |m| {
        let i = m
            .iter()
            .position(|e| e.path.ends_with("/layer.tar"))
            .unwrap();
        m.remove(i);
    });
    let r = run_image(&sb, "missing.tar", img, &[]);
    r.code(1);
    let f = r.has("image:missing-blob", "fail", "images/x.tar.gz");
    assert!(f.message.contains("layer 1"), "{}", f.message);

    let img = edit_image(&docker_image(REF, &[layer(1)]), |m| {
        let c = m
            .iter_mut()
            .find(|e| e.path.ends_with(".json") && e.path != "manifest.json")
            .unwrap();
        // Same diff_ids, different bytes: the name no longer matches.
        c.data.push(b' ');
    });
    let r = run_image(&sb, "config.tar", img, &[]);
    r.code(1);
    r.has("image:config-digest-mismatch", "fail", "images/x.tar.gz");
}

#[test]
fn docker_manifest_pointing_outside_the_image() {
    let sb = Sandbox::new("docker_manifest_pointing_outside_the_image");
    let img = edit_image(&docker_image(REF, &[layer(1)]), |m| {
        let man = m.iter_mut().find(|e| e.path == "manifest.json").unwrap();
        let text = String::from_utf8(man.data.clone()).unwrap();
        let layer_path = text
            .split("\"Layers\":[\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        man.data = text.replace(&layer_path, "../../etc/shadow").into_bytes();
    });
    let r = run_image(&sb, "escape.tar", img, &[]);
    r.code(1);
    let f = r.has("image:path-escape", "fail", "images/x.tar.gz");
    assert!(f.message.contains("../../etc/shadow"), "{}", f.message);
}

#[test]
fn not_an_image() {
    let sb = Sandbox::new("not_an_image");
    let r = run_image(&sb, "notimg.tar", tar_of(&[("README", b"hello")]), &[]);
    r.code(1);
    r.has("image:not-an-image", "fail", "images/x.tar.gz");
}

#[test]
fn oci_layout_valid_and_deep() {
    let sb = Sandbox::new("oci_layout_valid_and_deep");
    let img = oci_image(REF, &[layer(1), layer(2)]);
    run_image(&sb, "oci.tar", img.clone(), &[]).code(0).has(
        "image:valid",
        "pass",
        "images/x.tar.gz",
    );
    run_image(&sb, "oci.tar", img, &["--deep"]).code(0).has(
        "image:valid",
        "pass",
        "images/x.tar.gz",
    );
}

/// The (gzip-compressed) layer blob of an OCI layout.
fn is_layer_blob(e: &Member) -> bool {
    e.path.starts_with("blobs/") && e.data.starts_with(&[0x1f, 0x8b])
}

/// Replaces one blob's bytes while keeping its name (digest) and the
/// descriptors unchanged.
fn oci_replace_layer(img: &[u8], f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    edit_image(img, |m| {
        let big = m.iter_mut().find(|e| is_layer_blob(e)).unwrap();
        f(&mut big.data);
    })
}

#[test]
fn oci_blob_digest_size_and_missing() {
    let sb = Sandbox::new("oci_blob_digest_size_and_missing");
    let img = oci_image(REF, &[layer(1)]);
    let r = run_image(
        &sb,
        "digest.tar",
        oci_replace_layer(&img, |d| d[20] ^= 1),
        &[],
    );
    r.code(1);
    r.has("image:blob-digest-mismatch", "fail", "images/x.tar.gz");
    let r = run_image(&sb, "size.tar", oci_replace_layer(&img, |d| d.push(0)), &[]);
    r.code(1);
    let f = r.has("image:size-mismatch", "fail", "images/x.tar.gz");
    assert_eq!(f.evidence["image"], REF);
    let missing = edit_image(&img, |m| {
        let i = m
            .iter()
            .enumerate()
            .find(|(_, e)| is_layer_blob(e))
            .unwrap()
            .0;
        m.remove(i);
    });
    let r = run_image(&sb, "missing.tar", missing, &[]);
    r.code(1);
    r.has("image:missing-blob", "fail", "images/x.tar.gz");
}

#[test]
fn oci_wrong_diff_id_found_only_with_deep() {
    let sb = Sandbox::new("oci_wrong_diff_id_found_only_with_deep");
    // Build an image whose config vouches for a different layer.
    let good = oci_image(REF, &[layer(1)]);
    let other = oci_image(REF, &[layer(9)]);
    let other_layer = tarkit::read_members(&other)
        .into_iter()
        .find(is_layer_blob)
        .unwrap();
    // Swap in the other layer blob under its own digest and point the
    // manifest at it: digests and sizes are consistent, the diff_id is not.
    let mut members = tarkit::read_members(&good);
    let old = members.iter().find(|e| is_layer_blob(e)).unwrap().clone();
    let old_digest = old.path.trim_start_matches("blobs/sha256/").to_string();
    let new_digest = other_layer
        .path
        .trim_start_matches("blobs/sha256/")
        .to_string();
    members.retain(|e| e.path != old.path);
    members.push(other_layer.clone());
    // Rewrite the manifest blob and, since its digest changes, the index.
    let manifest_i = members
        .iter()
        .position(|e| {
            e.path.starts_with("blobs/")
                && String::from_utf8_lossy(&e.data).contains("image.manifest.v1")
        })
        .unwrap();
    let old_manifest = members[manifest_i].clone();
    let text = String::from_utf8(old_manifest.data.clone())
        .unwrap()
        .replace(&old_digest, &new_digest)
        .replace(
            &format!("\"size\":{}", old.data.len()),
            &format!("\"size\":{}", other_layer.data.len()),
        );
    let new_manifest_digest = sha256_hex(text.as_bytes());
    members[manifest_i] = Member::file(
        &format!("blobs/sha256/{new_manifest_digest}"),
        text.as_bytes(),
    );
    let old_manifest_digest = old_manifest
        .path
        .trim_start_matches("blobs/sha256/")
        .to_string();
    let index = members.iter_mut().find(|e| e.path == "index.json").unwrap();
    index.data = String::from_utf8(index.data.clone())
        .unwrap()
        .replace(&old_manifest_digest, &new_manifest_digest)
        .replace(
            &format!("\"size\":{}", old_manifest.data.len()),
            &format!("\"size\":{}", text.len()),
        )
        .into_bytes();
    let img = tarkit::write_members(&members);
    run_image(&sb, "shallow.tar", img.clone(), &[]).code(0);
    let r = run_image(&sb, "deep.tar", img, &["--deep"]);
    r.code(1);
    let f = r.has("image:diff-id-mismatch", "fail", "images/x.tar.gz");
    assert!(f.message.contains("(decompressed)"), "{}", f.message);
}

#[test]
fn oci_index_that_references_itself() {
    let sb = Sandbox::new("oci_index_that_references_itself");
    // A nested index stored as blob D that lists D itself. No content can
    // hash to its own digest, so the blob check fires too; what matters is
    // that following the index stops on the cycle instead of looping.
    let placeholder = "0".repeat(64);
    let body = |d: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:{d}","size":SIZE}}]}}"#
        )
    };
    let d = sha256_hex(body(&placeholder).as_bytes());
    let template = body(&d);
    let size = template.len() - "SIZE".len();
    let size = size + size.to_string().len();
    let looped = template.replace("SIZE", &size.to_string());
    assert_eq!(looped.len(), size);
    let top = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:{d}","size":{size}}}]}}"#
    );
    let img = tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        (&format!("blobs/sha256/{d}"), looped.as_bytes()),
        ("index.json", top.as_bytes()),
    ]);
    let r = run_image(&sb, "cycle.tar", img, &[]);
    r.code(1);
    r.has("image:blob-digest-mismatch", "fail", "images/x.tar.gz");
    r.has("image:descriptor-cycle", "fail", "images/x.tar.gz");
}

#[test]
fn manifest_images_list_must_match_refs() {
    let sb = Sandbox::new("manifest_images_list_must_match_refs");
    let img = gzip(&docker_image(REF, &[layer(1)]));
    let doc = serde_json::json!({
        "schema_version": 1, "product": "p", "version": "1",
        "files": [{"path": "images/x.tar.gz", "size": img.len(), "sha256": sha256_hex(&img)}],
        "images": [{"ref": "registry.example/other:v2", "path": "images/x.tar.gz"}],
    });
    let rel = release_with(&[
        ("rel/images/x.tar.gz", img),
        ("rel/manifest.json", serde_json::to_vec(&doc).unwrap()),
    ]);
    let r = bundle(&sb.write("refs.tar", rel), &[]);
    r.code(1);
    let f = r.has("image:ref-missing", "fail", "rel/images/x.tar.gz");
    assert!(
        f.message.contains("registry.example/other:v2"),
        "{}",
        f.message
    );
    assert!(f.message.contains(REF), "{}", f.message);
}

#[test]
fn charts_valid_missing_and_invalid() {
    let sb = Sandbox::new("charts_valid_missing_and_invalid");
    let good = helm_chart("web", "1.2.3", REF);
    let no_chart = gzip(&tar_of(&[("web/values.yaml", b"a: 1\n")]));
    let bad_yaml = gzip(&tar_of(&[(
        "web/Chart.yaml",
        b"apiVersion: v2\nname: web\n",
    )]));
    let rel = release_with(&[
        ("charts/web-1.2.3.tgz", good),
        (
            "charts/web-1.2.3.tgz.prov",
            b"-----BEGIN PGP SIGNED MESSAGE-----\n".to_vec(),
        ),
        ("charts/empty-1.0.0.tgz", no_chart),
        ("charts/bad-1.0.0.tgz", bad_yaml),
    ]);
    let r = bundle(&sb.write("charts.tar", rel), &[]);
    r.code(1);
    let f = r.has("chart:valid", "pass", "charts/web-1.2.3.tgz");
    assert_eq!(f.evidence["version"], "1.2.3");
    r.has("chart:missing-chart-yaml", "fail", "charts/empty-1.0.0.tgz");
    let f = r.has(
        "chart:invalid-chart-yaml",
        "fail",
        "charts/bad-1.0.0.tgz!web/Chart.yaml",
    );
    assert!(f.message.contains("version"), "{}", f.message);
    r.has("chart:provenance", "pass", "charts/web-1.2.3.tgz.prov");
}

#[test]
fn content_bundles_latest_rules() {
    let sb = Sandbox::new("content_bundles_latest_rules");
    let mut rng = sample::Rng::new(1);
    let b1 = sample::content_bundle("rules", "2025.1", &mut rng, 3);
    let b2 = sample::content_bundle("rules", "2025.2", &mut rng, 3);
    let good = release_with(&[
        ("data/rules/rules-2025.1.tar.gz", b1.clone()),
        ("data/rules/rules-2025.2.tar.gz", b2.clone()),
        ("data/rules/latest", b"2025.2\n".to_vec()),
        ("data/formats/formats-7.tar.gz", b1.clone()),
        ("data/formats/latest", b"formats-7.tar.gz".to_vec()),
    ]);
    let r = bundle(&sb.write("good.tar", good), &[]);
    r.code(0);
    r.has(
        "content:bundle-valid",
        "pass",
        "data/rules/rules-2025.2.tar.gz",
    );
    r.has(
        "content:bundle-valid",
        "pass",
        "data/formats/formats-7.tar.gz",
    );
    r.has(
        "content:unreferenced-bundle",
        "warn",
        "data/rules/rules-2025.1.tar.gz",
    );

    let dangling = release_with(&[
        ("data/rules/rules-2025.1.tar.gz", b1.clone()),
        ("data/rules/latest", b"2025.9\n".to_vec()),
        ("data/other/other-1.tar.gz", b1.clone()),
    ]);
    let r = bundle(&sb.write("dangling.tar", dangling), &[]);
    r.code(1);
    let f = r.has("content:latest-dangling", "fail", "data/rules/latest");
    assert!(f.message.contains("2025.9"), "{}", f.message);
    r.has("content:latest-missing", "fail", "data/other/latest");

    let mut broken = b2.clone();
    let n = broken.len();
    broken[n - 6] ^= 0xff; // ISIZE byte
    let r = bundle(
        &sb.write(
            "broken.tar",
            release_with(&[
                ("data/rules/rules-2025.2.tar.gz", broken),
                ("data/rules/latest", b"2025.2".to_vec()),
            ]),
        ),
        &[],
    );
    r.code(1);
    r.has(
        "content:bundle-broken",
        "fail",
        "data/rules/rules-2025.2.tar.gz",
    );
    r.has(
        "bundle:gzip-crc-mismatch",
        "fail",
        "data/rules/rules-2025.2.tar.gz",
    );
}

#[test]
fn nested_safety_rules_name_the_nested_path() {
    let sb = Sandbox::new("nested_safety_rules_name_the_nested_path");
    let evil = gzip(&RawTar::new().file("../../escape", b"x").finish());
    let r = bundle(
        &sb.write("n.tar", release_with(&[("misc/tools.tar.gz", evil)])),
        &[],
    );
    r.code(1);
    r.has(
        "bundle:path-traversal",
        "fail",
        "misc/tools.tar.gz!../../escape",
    );
}

#[test]
fn sample_release_has_every_content_kind() {
    let sb = Sandbox::new("sample_release_has_every_content_kind");
    let r = bundle(&sb.sample(), &["--deep"]);
    r.code(0).clean();
    r.has("image:valid", "pass", "collector-oci.tar.gz");
    r.has("image:valid", "pass", "ingest-0.tar.gz");
    r.has("chart:valid", "pass", "charts/");
    for t in sample::CONTENT_TYPES {
        r.has("content:bundle-valid", "pass", &format!("data/{t}/"));
    }
    r.has("gitbundle:valid", "pass", "git/argo-stacks.bundle");
    // The vendor registry in the charts is outside the perimeter unless
    // declared; declared, nothing external is left.
    r.has("refs:external", "warn", "values.yaml:3");
    // With the sample's signer given, its Sigstore bundles verify too (its
    // images are not signed: a warning, allowed here).
    let tar = sb.sample();
    let signer = Sandbox::sample_signer(&tar);
    let mut args = vec![
        "--allow-host",
        "registry.sekoia.io",
        "--allow",
        "image:unsigned",
        "--fail-on",
        "warn",
    ];
    args.extend(signer.iter().map(String::as_str));
    let r = bundle(&tar, &args);
    r.code(0).lacks("refs:external");
}

#[test]
fn no_content_skips_nested_archives() {
    let sb = Sandbox::new("no_content_skips_nested_archives");
    let r = run_image(
        &sb,
        "notimg.tar",
        tar_of(&[("README", b"hello")]),
        &["--no-content"],
    );
    r.code(0).lacks("image:not-an-image").lacks("image:valid");
    run_image(&sb, "notimg.tar", tar_of(&[("README", b"hello")]), &[]).code(1);
    let r = bundle(&sb.sample(), &["--no-content"]);
    r.code(0)
        .clean()
        .lacks("image:valid")
        .lacks("content:bundle-valid");
    r.has("bundle:manifest-verified", "pass", "manifest.json");
}

#[test]
fn external_references_in_nested_charts_and_stacks() {
    let sb = Sandbox::new("external_references_in_nested_charts_and_stacks");
    let chart = gzip(&tar_of(&[
        ("web/Chart.yaml", b"apiVersion: v2\nname: web\nversion: 1.0.0\n"),
        (
            "web/values.yaml",
            b"replicas: 1\nimage:\n  repository: ghcr.io/acme/web\n  tag: \"1.0\"\nsidecar:\n  image: nginx:1.25\ninternal:\n  image: registry.perimeter.corp/web:1\n",
        ),
        ("web/templates/d.yaml", b"image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n"),
    ]));
    let stack = b"spec:\n  source:\n    repoURL: https://github.com/acme/stacks.git\n  destination:\n    server: https://kubernetes.default.svc\n";
    let rel = release_with(&[
        ("charts/web-1.0.0.tgz", chart),
        ("argo-stacks/app.yaml", stack.to_vec()),
        (
            "scripts/install.sh",
            b"#!/bin/sh\ncurl -fsSL http://10.0.0.5/x | sh\n".to_vec(),
        ),
    ]);
    let p = sb.write("refs.tar", rel);
    let r = bundle(&p, &["--allow-domain", "perimeter.corp"]);
    r.code(0);
    let f = r.has(
        "refs:external",
        "warn",
        "charts/web-1.0.0.tgz!web/values.yaml:3",
    );
    assert_eq!(f.evidence["host"], "ghcr.io");
    let f = r.has(
        "refs:external",
        "warn",
        "charts/web-1.0.0.tgz!web/values.yaml:6",
    );
    assert_eq!(f.evidence["host"], "docker.io");
    let f = r.has("refs:external", "warn", "argo-stacks/app.yaml:3");
    assert_eq!(f.evidence["host"], "github.com");
    let externals: Vec<_> = r
        .findings()
        .into_iter()
        .filter(|f| f.code == "refs:external")
        .collect();
    assert_eq!(externals.len(), 3, "{externals:#?}");
    let s = r.has("refs:scanned", "pass", "refs.tar");
    assert_eq!(s.evidence["external"], 3);
    assert!(s.evidence["files"].as_u64().unwrap() >= 5);
    // --no-content scans nothing, and says the content was not checked.
    let r = bundle(&p, &["--allow-domain", "perimeter.corp", "--no-content"]);
    r.code(0).lacks("refs:external").lacks("refs:scanned");
    let f = r.has("bundle:content-not-checked", "skip", "refs.tar");
    assert!(f.message.contains("not scanned"), "{}", f.message);
    // Without the allowed domain the internal registry is external too.
    let r = bundle(&p, &[]);
    assert_eq!(
        r.findings()
            .iter()
            .filter(|f| f.code == "refs:external")
            .count(),
        4
    );
    // --deny-external fails the run; --allow-host lets a host in.
    bundle(&p, &["--allow-domain", "perimeter.corp", "--deny-external"])
        .code(1)
        .has("refs:external", "fail", "argo-stacks/app.yaml:3");
    let r = crate::harness::av([
        "bundle",
        p.to_str().unwrap(),
        "--allow-domain",
        "perimeter.corp",
        "--allow-host",
        "github.com",
    ]);
    r.code(0);
    assert!(r.stdout.contains("external hosts"), "{}", r.stdout);
    assert!(r.stdout.contains("ghcr.io"), "{}", r.stdout);
    assert!(!r.stdout.contains("github.com  "), "{}", r.stdout);
}

/// A release with more external references than a report keeps as
/// findings: `refs:scanned` still counts every one by host, and the human
/// report's table of hosts lists a host that only appears past the cap,
/// in a nested chart as in a release member.
#[test]
fn every_external_host_is_counted_past_the_findings_cap() {
    let sb = Sandbox::new("every_external_host_is_counted_past_the_findings_cap");
    let mut sbom = String::new();
    for i in 0..3000 {
        sbom.push_str(&format!("  \"url\": \"https://github.com/acme/lib{i}\",\n"));
    }
    sbom.push_str("  \"url\": \"https://late.example.org/x\",\n");
    let mut values = String::new();
    for i in 0..1200 {
        values.push_str(&format!("image{i}: x\nrepository: quay.io/acme/c{i}\n"));
    }
    values.push_str("  image: registry.last.io/acme/z:1\n");
    let chart = gzip(&tar_of(&[
        (
            "web/Chart.yaml",
            b"apiVersion: v2\nname: web\nversion: 1.0.0\n",
        ),
        ("web/values.yaml", values.as_bytes()),
    ]));
    let rel = release_with(&[
        ("sbom/platform.json", sbom.into_bytes()),
        ("charts/web-1.0.0.tgz", chart),
    ]);
    let p = sb.write("crowded.tar", rel);
    let r = bundle(&p, &[]);
    r.code(0);
    let kept = r
        .findings()
        .iter()
        .filter(|f| f.code == "refs:external")
        .count();
    assert!(kept <= 1001, "{kept} refs:external findings");
    let s = r.has("refs:scanned", "pass", "crowded.tar");
    assert_eq!(s.evidence["external"], 4202);
    assert_eq!(s.evidence["hosts"]["github.com"], 3000);
    assert_eq!(s.evidence["hosts"]["late.example.org"], 1);
    assert_eq!(s.evidence["hosts"]["quay.io"], 1200);
    assert_eq!(s.evidence["hosts"]["registry.last.io"], 1);
    assert_eq!(s.evidence["hosts"].as_object().unwrap().len(), 4);
    assert_eq!(s.evidence["hosts_omitted"], 0);
    // None of the last two is among the findings kept: only the counts
    // can show them.
    assert!(!r
        .findings()
        .iter()
        .any(|f| f.code == "refs:external" && f.evidence["host"] == "late.example.org"));
    let html = sb.path("report.html");
    let human = crate::harness::av([
        "bundle".into(),
        p.clone().into_os_string(),
        "--output".into(),
        std::ffi::OsString::from(format!("html={}", html.display())),
    ]);
    human.code(0);
    // The HTML report, filed as evidence, holds the same table.
    let page = std::fs::read_to_string(&html).unwrap();
    let section = page
        .split("<section id=\"external-hosts\">")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap_or_else(|| panic!("no External hosts section in the HTML report"));
    for (host, n) in [
        ("github.com", 3000),
        ("quay.io", 1200),
        ("late.example.org", 1),
        ("registry.last.io", 1),
    ] {
        let row = format!("<td class=\"mono\">{host}</td><td>{n}</td>");
        assert!(section.contains(&row), "{row} not in {section}");
    }
    let table = human
        .stdout
        .split("external hosts")
        .nth(1)
        .unwrap_or_else(|| panic!("no table of hosts: {}", human.stdout));
    for row in [
        "github.com         3000",
        "quay.io            1200",
        "late.example.org      1",
        "registry.last.io      1",
    ] {
        assert!(table.contains(row), "{row:?} not in {table}");
    }
}

/// Newer Docker writes an OCI layout into the `docker save` tar: both are
/// validated, and a fault in either is found.
#[test]
fn docker_save_with_oci_layout_checks_both() {
    let sb = Sandbox::new("docker_save_with_oci_layout_checks_both");
    let mut members = tarkit::read_members(&docker_image(REF, &[layer(1)]));
    members.extend(tarkit::read_members(&oci_image(REF, &[layer(1)])));
    let both = tarkit::write_members(&members);
    let r = run_image(&sb, "both.tar", both.clone(), &[]);
    r.code(0);
    let f = r.has("image:valid", "pass", "images/x.tar.gz");
    assert_eq!(f.evidence["layout"], "docker save + OCI layout");
    // Break only the OCI side: its layer blob no longer matches its name.
    let broken = oci_replace_layer(&both, |d| d[20] ^= 1);
    let r = run_image(&sb, "broken.tar", broken, &[]);
    r.code(1);
    r.has("image:blob-digest-mismatch", "fail", "images/x.tar.gz");
    r.lacks("image:valid");
}
