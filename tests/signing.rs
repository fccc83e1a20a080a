//! Signatures over the archive and over manifests, made with the real
//! `minisign` and `openssl` tools; Git bundles made with the real `git`.

use std::path::Path;
use std::process::Command;

use crate::harness::tarkit::RawTar;
use crate::harness::{bundle, Sandbox};

fn sh(dir: &Path, cmd: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn need(tool: &str, pkg: &str) {
    if Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null"))
        .status()
        .unwrap()
        .success()
    {
        return;
    }
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {pkg} || (apt-get update -qq && apt-get install -y -qq {pkg})"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "{tool} is needed: apt-get install {pkg}");
}

fn keys(sb: &Sandbox) {
    need("minisign", "minisign");
    sh(&sb.dir, "minisign -G -W -p vendor.pub -s vendor.key >/dev/null && minisign -G -W -p other.pub -s other.key >/dev/null");
}

#[test]
fn minisign_over_the_archive() {
    let sb = Sandbox::new("minisign_over_the_archive");
    keys(&sb);
    let tar = sb.sample();
    let t = tar.to_str().unwrap();
    sh(
        &sb.dir,
        &format!("minisign -S -s vendor.key -m {t} -t 'sekoia release 1.0.0' >/dev/null"),
    );
    let vendor = sb.path("vendor.pub");
    let other = sb.path("other.pub");
    let r = bundle(&tar, &["--pubkey", vendor.to_str().unwrap()]);
    r.code(0);
    let f = r.has("signature:valid", "pass", "sekoia-self-hosted-v1.0.0.tar");
    assert_eq!(f.evidence["trusted_comment"], "sekoia release 1.0.0");
    // The key given as a string works too.
    let key_line = std::fs::read_to_string(&vendor)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    bundle(&tar, &["--pubkey", &key_line])
        .code(0)
        .has("signature:valid", "pass", "");
    // Another key.
    let r = bundle(&tar, &["--pubkey", other.to_str().unwrap()]);
    r.code(1);
    let f = r.has("signature:wrong-key", "fail", "");
    assert!(f.message.contains("expected key"), "{}", f.message);
    // No key given: reported, not verified.
    bundle(&tar, &[])
        .code(0)
        .has("signature:no-key", "warn", "");
    // A tampered archive under a valid-looking signature.
    let mut bytes = std::fs::read(&tar).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&tar, bytes).unwrap();
    let r = bundle(&tar, &["--pubkey", vendor.to_str().unwrap()]);
    r.code(1);
    r.has("signature:invalid", "fail", "sekoia-self-hosted-v1.0.0.tar");
    // Key given, signature gone.
    std::fs::remove_file(format!("{t}.minisig")).unwrap();
    bundle(&tar, &["--pubkey", vendor.to_str().unwrap()])
        .code(1)
        .has("signature:missing", "fail", "");
}

#[test]
fn minisign_over_a_manifest_inside_the_archive() {
    let sb = Sandbox::new("minisign_over_a_manifest_inside_the_archive");
    keys(&sb);
    let manifest = format!(
        r#"{{"schema_version":1,"product":"p","version":"1","files":[{{"path":"a.txt","size":1,"sha256":"{}"}}]}}"#,
        airgap_verify::sample::sha256_hex(b"a")
    );
    std::fs::write(sb.path("manifest.json"), &manifest).unwrap();
    sh(
        &sb.dir,
        "minisign -S -s vendor.key -m manifest.json -t 'manifest' >/dev/null",
    );
    let sig = std::fs::read(sb.path("manifest.json.minisig")).unwrap();
    let build = |m: &str| {
        RawTar::new()
            .file("rel/a.txt", b"a")
            .file("rel/manifest.json", m.as_bytes())
            .file("rel/manifest.json.minisig", &sig)
            .finish()
    };
    let p = sb.write("signed.tar", build(&manifest));
    let vendor = sb.path("vendor.pub");
    let r = bundle(&p, &["--pubkey", vendor.to_str().unwrap()]);
    r.code(0);
    r.has("signature:valid", "pass", "rel/manifest.json");
    r.has("bundle:manifest-verified", "pass", "rel/manifest.json");
    let tampered = manifest.replace("\"1\"", "\"2\"");
    let p = sb.write("tampered.tar", build(&tampered));
    bundle(&p, &["--pubkey", vendor.to_str().unwrap()])
        .code(1)
        .has("signature:invalid", "fail", "rel/manifest.json");
}

#[test]
fn cosign_blob_signature_made_with_openssl() {
    let sb = Sandbox::new("cosign_blob_signature_made_with_openssl");
    let tar = sb.sample();
    let t = tar.to_str().unwrap();
    sh(
        &sb.dir,
        &format!(
            "openssl ecparam -name prime256v1 -genkey -noout -out k.pem && openssl ec -in k.pem -pubout -out cosign.pub 2>/dev/null \
             && openssl ecparam -name prime256v1 -genkey -noout -out o.pem && openssl ec -in o.pem -pubout -out other.pub 2>/dev/null \
             && openssl dgst -sha256 -sign k.pem -out sig.der {t} && base64 -w0 sig.der > {t}.sig"
        ),
    );
    let key = sb.path("cosign.pub");
    bundle(&tar, &["--cosign-key", key.to_str().unwrap()])
        .code(0)
        .has("signature:valid", "pass", "");
    bundle(
        &tar,
        &["--cosign-key", sb.path("other.pub").to_str().unwrap()],
    )
    .code(1)
    .has("signature:invalid", "fail", "");
    // A bad key file is a usage error before the pass.
    let r = bundle(&tar, &["--cosign-key", sb.path("k.pem").to_str().unwrap()]);
    r.code(2);
    assert!(r.stderr.contains("--cosign-key"), "{}", r.stderr);
}

fn git_bundle(dir: &Path) -> Vec<u8> {
    let env = "GIT_CONFIG_NOSYSTEM=1 HOME=. GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t GIT_AUTHOR_DATE=2025-01-01T00:00:00Z GIT_COMMITTER_DATE=2025-01-01T00:00:00Z";
    sh(
        dir,
        &format!(
            "mkdir -p repo && cd repo && {env} git init -q -b main && printf 'stack: v1\\n' > app.yaml && {env} git add . && {env} git commit -qm one \
             && printf 'stack: v2\\n' >> app.yaml && {env} git commit -qam two && {env} git bundle create ../stacks.bundle --all 2>/dev/null \
             && {env} git bundle create ../range.bundle main~1..main 2>/dev/null"
        ),
    );
    std::fs::read(dir.join("stacks.bundle")).unwrap()
}

#[test]
fn git_bundles_in_the_release() {
    let sb = Sandbox::new("git_bundles_in_the_release");
    let good = git_bundle(&sb.dir);
    let range = std::fs::read(sb.path("range.bundle")).unwrap();
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 40] ^= 0x55; // inside the pack, before its trailer
    let t = RawTar::new()
        .file("git/stacks.bundle", &good)
        .file("git/range.bundle", &range)
        .file("git/flipped.bundle", &flipped)
        .finish();
    let r = bundle(&sb.write("git.tar", t), &[]);
    r.code(1);
    let f = r.has("gitbundle:valid", "pass", "git/stacks.bundle");
    assert!(f.message.contains("refs/heads/main"), "{}", f.message);
    r.has("gitbundle:not-self-contained", "fail", "git/range.bundle");
    r.has("gitbundle:pack-invalid", "fail", "git/flipped.bundle");
    // That `git bundle verify` says "okay" for such a bundle is asserted
    // by the unit tests of src/bundle/gitbundle.rs.
}
