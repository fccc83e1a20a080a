//! Images stored as folders inside a release: an OCI image layout and an
//! extracted `docker save`, made by skopeo (installed by scripts/lab.sh) from
//! the image the lab's registry is seeded with, and judged like packed
//! images, in a staged folder and in a tar of it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::lab::Lab;
use crate::harness::{bundle, Run, Sandbox, BIN};

const PLATFORM: &str = "platform/v1.0.0";
const REFERENCE: &str = "registry.sekoia.io/sekoia/collector:1.0.0";

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (installed by scripts/lab.sh)")
}

fn skopeo_ok(args: &[&str]) {
    let out = skopeo(args);
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab's seeded image (`sekoia/collector:1.0.0`, the OCI layout the
/// lab pushed), as skopeo reads it.
fn seeded(lab: &Lab) -> String {
    format!("oci:{}:1.0.0", lab.var("REGISTRY_SEEDED_LAYOUT"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            files_under(&p, out);
        } else if md.is_file() {
            out.push(p);
        }
    }
}

/// `platform/v1.0.0/manifest.json` listing every file of the folder, and
/// the image folder under `images[]`.
fn write_manifest(root: &Path, image_folder: &str) {
    use sha2::Digest;
    let platform = root.join(PLATFORM);
    let mut paths = Vec::new();
    files_under(&platform, &mut paths);
    paths.sort();
    let files: Vec<serde_json::Value> = paths
        .iter()
        .map(|p| {
            let data = std::fs::read(p).unwrap();
            serde_json::json!({
                "path": p.strip_prefix(&platform).unwrap().to_str().unwrap(),
                "size": data.len(),
                "sha256": hex::encode(sha2::Sha256::digest(&data)),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "schema_version": 1,
        "product": "sekoia-self-hosted",
        "version": "1.0.0",
        "files": files,
        "images": [{ "ref": REFERENCE, "path": image_folder }],
    });
    std::fs::write(
        platform.join("manifest.json"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
}

/// Everything under `dir`, writable (skopeo writes read-only files).
fn writable(dir: &Path) {
    let st = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A tar of the staged folder, as GNU tar writes it.
fn tar_of(sb: &Sandbox, root: &Path, name: &str) -> PathBuf {
    let out = sb.path(name);
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&out)
        .arg("-C")
        .arg(root)
        .arg("platform")
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// A release whose image is an OCI layout folder, tagged `1.0.0` only (as
/// `skopeo copy ... oci:DIR:1.0.0` and the lab write it): its full
/// reference comes from the release manifest.
fn oci_release(sb: &Sandbox, lab: &Lab) -> PathBuf {
    let root = sb.path("staged");
    let layout = root.join(PLATFORM).join("images/collector");
    std::fs::create_dir_all(layout.parent().unwrap()).unwrap();
    skopeo_ok(&[
        "copy",
        "-q",
        &seeded(lab),
        &format!("oci:{}:1.0.0", layout.display()),
    ]);
    writable(&root);
    // The oracle: skopeo reads the layout back.
    skopeo_ok(&["inspect", &format!("oci:{}:1.0.0", layout.display())]);
    write_manifest(&root, "images/collector");
    root
}

/// A release whose image is a `docker save` archive extracted into
/// `images/api-0/` (skopeo's docker-archive: `<diff_id>.tar` layers,
/// `<id>/layer.tar` symlinks, `<config>.json`, `manifest.json`,
/// `repositories`), plus one in the older layout with `<id>/layer.tar`
/// files (the sample's docker_image) in `images/api-1/`.
fn docker_release(sb: &Sandbox, lab: &Lab) -> PathBuf {
    let root = sb.path("staged");
    let images = root.join(PLATFORM).join("images");
    let api0 = images.join("api-0");
    std::fs::create_dir_all(&api0).unwrap();
    let archive = sb.path("api-0.tar");
    skopeo_ok(&[
        "copy",
        "-q",
        &seeded(lab),
        &format!("docker-archive:{}:{REFERENCE}", archive.display()),
    ]);
    crate::harness::extract(&archive, &api0);
    let old = airgap_verify::sample::docker_image(
        "registry.sekoia.io/sekoia/api-1:1.0.0",
        &[airgap_verify::sample::tar_of(&[(
            "app/bin",
            b"#!/bin/sh\n",
        )])],
    );
    let api1 = images.join("api-1");
    std::fs::create_dir_all(&api1).unwrap();
    std::fs::write(sb.path("api-1.tar"), &old).unwrap();
    crate::harness::extract(&sb.path("api-1.tar"), &api1);
    writable(&root);
    write_manifest(&root, "images/api-0");
    root
}

/// Flips one byte in the middle of `path`.
fn corrupt(path: &Path) {
    let mut data = std::fs::read(path).unwrap();
    let i = data.len() / 2;
    data[i] ^= 0x55;
    std::fs::write(path, data).unwrap();
}

fn both(sb: &Sandbox, root: &Path, name: &str) -> [(String, Run); 2] {
    let tar = tar_of(sb, root, name);
    [
        ("folder".into(), bundle(root, &[])),
        ("tar".into(), bundle(&tar, &[])),
    ]
}

#[test]
fn oci_layout_folder_intact_passes_and_check_looks_its_image_up() {
    let sb = Sandbox::new("oci_layout_folder_intact_passes");
    let lab = Lab::get();
    let root = oci_release(&sb, &lab);
    for (how, r) in both(&sb, &root, "oci.tar") {
        r.code(0);
        r.clean();
        let f = r.has("image:valid", "pass", "platform/v1.0.0/images/collector");
        assert_eq!(f.evidence["layout"], "OCI layout", "{how}");
        assert_eq!(f.evidence["refs"], serde_json::json!([REFERENCE]), "{how}");
        r.has("bundle:manifest-verified", "pass", "manifest.json");
        r.lacks("image:ref-missing");
    }
    // check: the folder's image is looked up in the lab registry, which
    // holds it.
    let cfg = sb.write(
        "perimeter.yml",
        lab.config(&format!(
            "registry:\n  url: {}\n  project: sekoia\n  username: {}\n  password_env: LAB_REGISTRY_PASSWORD\n",
            lab.var("REGISTRY_URL"),
            lab.var("REGISTRY_USER")
        )),
    );
    let out = Command::new(BIN)
        .arg("check")
        .arg("--bundle")
        .arg(&root)
        .arg("--config")
        .arg(&cfg)
        .args(["--format", "json", "--timeout", "2s", "--no-progress"])
        .args(["--allow-host", "registry.sekoia.io"])
        .env("LAB_REGISTRY_PASSWORD", lab.var("REGISTRY_PASSWORD"))
        .output()
        .unwrap();
    let r = Run::from(out);
    let present = r.has(
        "registry:image-present",
        "pass",
        lab.var("REGISTRY_SEEDED_IMAGE"),
    );
    assert_eq!(
        present.evidence["digest"],
        lab.var("REGISTRY_SEEDED_DIGEST")
    );
    r.lacks("registry:image-missing");
}

#[test]
fn oci_layout_folder_with_a_corrupted_blob_fails_naming_it() {
    let sb = Sandbox::new("oci_layout_folder_with_a_corrupted_blob");
    let lab = Lab::get();
    let root = oci_release(&sb, &lab);
    let layout = root.join(PLATFORM).join("images/collector");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&manifest_digest[7..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap()[7..].to_string();
    let blob = format!("blobs/sha256/{layer}");
    corrupt(&layout.join(&blob));
    // A manifest made after the damage: only the image's own digests can
    // tell.
    write_manifest(&root, "images/collector");
    // The oracle: skopeo refuses to copy it.
    let copied = skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:1.0.0", layout.display()),
        &format!("oci:{}:1.0.0", sb.path("copy").display()),
    ]);
    assert!(!copied.status.success(), "skopeo copied a corrupted layout");
    for (how, r) in both(&sb, &root, "oci.tar") {
        r.code(1);
        let f = r.has(
            "image:blob-digest-mismatch",
            "fail",
            "platform/v1.0.0/images/collector",
        );
        assert_eq!(f.evidence["blob"], blob.as_str(), "{how}");
        assert!(f.message.contains(&blob), "{how}: {}", f.message);
        r.lacks("image:valid");
    }
}

#[test]
fn docker_save_folder_intact_passes() {
    let sb = Sandbox::new("docker_save_folder_intact_passes");
    let lab = Lab::get();
    let root = docker_release(&sb, &lab);
    for (how, r) in both(&sb, &root, "docker.tar") {
        r.code(0);
        r.clean();
        r.lacks("image:not-an-image");
        for folder in ["images/api-0", "images/api-1"] {
            let f = r.has("image:valid", "pass", folder);
            assert_eq!(f.evidence["layout"], "docker save", "{how}");
            assert_eq!(f.evidence["layers"], 1, "{how}");
        }
        let f = r.has("image:valid", "pass", "images/api-0");
        assert_eq!(
            f.evidence["refs"],
            serde_json::json!([REFERENCE]),
            "{how}: skopeo writes the reference as given"
        );
    }
}

#[test]
fn docker_save_folder_with_a_corrupted_layer_fails() {
    let sb = Sandbox::new("docker_save_folder_with_a_corrupted_layer");
    let lab = Lab::get();
    let root = docker_release(&sb, &lab);
    let api0 = root.join(PLATFORM).join("images/api-0");
    let docker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(api0.join("manifest.json")).unwrap()).unwrap();
    let layer = docker[0]["Layers"][0].as_str().unwrap().to_string();
    corrupt(&api0.join(&layer));
    write_manifest(&root, "images/api-0");
    for (how, r) in both(&sb, &root, "docker.tar") {
        r.code(1);
        let f = r.has(
            "image:diff-id-mismatch",
            "fail",
            "platform/v1.0.0/images/api-0",
        );
        assert_eq!(f.evidence["layer"], layer.as_str(), "{how}");
        r.has("image:valid", "pass", "images/api-1");
        r.lacks("image:not-an-image");
    }
}

/// An OCI layout folder with one gzip layer whose config's diff_id is
/// `diff_id_of`'s digest: every blob matches its name and size, so only
/// decompressing the layer (`--deep`) tells a wrong diff_id.
fn write_gzip_layout(dir: &Path, layer: &[u8], diff_id_of: &[u8]) {
    use airgap_verify::sample::{gzip, sha256_hex};
    let gz = gzip(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(diff_id_of))] },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": format!("sha256:{}", sha256_hex(&config)), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                     "digest": format!("sha256:{}", sha256_hex(&gz)), "size": gz.len() }],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": format!("sha256:{}", sha256_hex(&manifest)), "size": manifest.len(),
                        "annotations": { "org.opencontainers.image.ref.name": REFERENCE } }],
    }))
    .unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for b in [&config, &manifest, &gz] {
        std::fs::write(blobs.join(sha256_hex(b)), b).unwrap();
    }
    std::fs::write(dir.join("index.json"), index).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

#[test]
fn deep_decompresses_the_layers_of_an_oci_layout_folder() {
    let sb = Sandbox::new("deep_decompresses_the_layers_of_an_oci_layout_folder");
    let layer = airgap_verify::sample::tar_of(&[("usr/bin/x", b"the layer")]);
    let other = airgap_verify::sample::tar_of(&[("usr/bin/x", b"another layer")]);
    let good = sb.path("good");
    write_gzip_layout(&good.join("oci"), &layer, &layer);
    let bad = sb.path("bad");
    write_gzip_layout(&bad.join("oci"), &layer, &other);
    // Without --deep a compressed layer's diff_id is not checked.
    for root in [&good, &bad] {
        let r = bundle(root, &[]);
        r.code(0);
        r.has("image:valid", "pass", "oci");
    }
    let r = bundle(&good, &["--deep"]);
    r.code(0);
    r.has("image:valid", "pass", "oci");
    let r = bundle(&bad, &["--deep"]);
    r.code(1);
    let f = r.has("image:diff-id-mismatch", "fail", "oci");
    assert!(f.message.contains("decompressed"), "{}", f.message);
    assert_eq!(
        f.evidence["layer"],
        format!(
            "blobs/sha256/{}",
            airgap_verify::sample::sha256_hex(&airgap_verify::sample::gzip(&layer))
        )
    );
}
