//! The OCI registry probe against the lab's Distribution registries: Basic
//! auth with deletes enabled, Bearer tokens with deletes refused, and plain
//! HTTP.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::lab::{services_env, Lab, Timed};
use crate::harness::{settled, Sandbox};

const ONE: Duration = Duration::from_secs(1);

fn yaml(lab: &Lab, url: &str, user: Option<&str>, images: &[String]) -> String {
    let creds = user
        .map(|u| format!("  username: {u}\n  password_env: LAB_REGISTRY_PASSWORD\n"))
        .unwrap_or_default();
    let images = if images.is_empty() {
        String::new()
    } else {
        format!("  images: [{}]\n", images.join(", "))
    };
    lab.config(&format!(
        "dns: {{servers: [{}], public_names: []}}\nregistry:\n  url: {url}\n  project: sekoia\n{creds}{images}",
        lab.var("DNS_AUTH_ADDR")
    ))
}

fn run(sb: &Sandbox, yaml: &str, password: &str, extra: &[&str]) -> Timed {
    services_env(
        sb,
        yaml,
        "1s",
        extra,
        &[("LAB_REGISTRY_PASSWORD", password)],
    )
}

/// What a probe could leave in the project's repositories of a registry's
/// storage, one line each: probe tags, manifest revisions, blob links, and
/// upload sessions still open. A session's folder holds `startedat` until
/// the upload is completed or cancelled; after a cancel Distribution 2.8
/// writes its 108-byte hash state back into the emptied folder
/// (distribution/distribution#4524), which is no session: a GET on it
/// answers 404, and the registry's upload purger removes it.
fn residue(data_dir: &str) -> BTreeSet<String> {
    let project = PathBuf::from(data_dir).join("docker/registry/v2/repositories/sekoia");
    let names = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for repo in names(project.clone()) {
        let r = project.join(&repo);
        for tag in names(r.join("_manifests/tags")) {
            if tag.starts_with("airgap-verify-probe-") {
                out.insert(format!("{repo} tag {tag}"));
            }
        }
        for (what, dir) in [
            ("manifest", "_manifests/revisions/sha256"),
            ("blob", "_layers/sha256"),
        ] {
            for hex in names(r.join(dir)) {
                if r.join(dir).join(&hex).join("link").exists() {
                    out.insert(format!("{repo} {what} {hex}"));
                }
            }
        }
        for id in names(r.join("_uploads")) {
            let u = r.join("_uploads").join(&id);
            if u.join("startedat").exists() || u.join("data").exists() {
                out.insert(format!("{repo} upload {id}"));
            }
        }
    }
    out
}

/// Asserts the registry's storage holds nothing that `before` did not (see
/// `harness::settled`).
fn assert_nothing_left(data_dir: &str, before: &BTreeSet<String>) {
    let left = settled(|| residue(data_dir).difference(before).cloned().collect());
    assert!(left.is_empty(), "left behind in {data_dir}: {left:?}");
}

#[test]
fn registry_basic_auth_push_write_probe_images_and_cleanup() {
    let sb = Sandbox::new("registry::basic");
    let lab = Lab::get();
    let url = lab.var("REGISTRY_URL");
    let seeded = format!(
        "{}@{}",
        lab.var("REGISTRY_SEEDED_IMAGE"),
        lab.var("REGISTRY_SEEDED_DIGEST")
    );
    let different = format!(
        "{}@sha256:{}",
        lab.var("REGISTRY_SEEDED_IMAGE"),
        "0".repeat(64)
    );
    let missing = format!("{}:9.9.9", lab.var("REGISTRY_SEEDED_REPO"));
    let before = residue(lab.var("REGISTRY_DATA_DIR"));
    let y = yaml(
        &lab,
        url,
        Some(lab.var("REGISTRY_USER")),
        &[seeded.clone(), different, missing.clone()],
    );
    let t = run(&sb, &y, lab.var("REGISTRY_PASSWORD"), &["--write-probe"]);
    let r = t.within(ONE);
    r.code(1);
    let f = r.has("registry:reachable", "pass", url);
    assert_eq!(f.evidence["auth_scheme"], "basic");
    assert_eq!(f.evidence["api_version"], "registry/2.0");
    r.has("tls:verified", "pass", url);
    r.has("registry:auth-ok", "pass", url);
    r.has("registry:push-allowed", "pass", url);
    r.has("registry:write-probe", "pass", url);
    r.lacks("registry:leftover");
    let f = r.has(
        "registry:image-present",
        "pass",
        lab.var("REGISTRY_SEEDED_IMAGE"),
    );
    assert_eq!(f.evidence["digest"], lab.var("REGISTRY_SEEDED_DIGEST"));
    let f = r.has(
        "registry:image-different",
        "fail",
        lab.var("REGISTRY_SEEDED_IMAGE"),
    );
    assert_eq!(f.evidence["digest"], lab.var("REGISTRY_SEEDED_DIGEST"));
    r.has("registry:image-missing", "fail", &missing);
    // Nothing was left behind: no tag, manifest, blob or upload session.
    assert_nothing_left(lab.var("REGISTRY_DATA_DIR"), &before);
}

#[test]
fn registry_basic_faults_wrong_password_and_rogue_ca() {
    let sb = Sandbox::new("registry::basic_faults");
    let lab = Lab::get();
    let url = lab.var("REGISTRY_URL");
    let data = lab.var("REGISTRY_DATA_DIR");
    let before = residue(data);
    let y = yaml(&lab, url, Some(lab.var("REGISTRY_USER")), &[]);
    let r = run(&sb, &y, "wrong-password", &["--write-probe"]);
    let f = r
        .within(ONE)
        .code(1)
        .has("registry:auth-failed", "fail", url);
    assert_eq!(f.evidence["http_status"], 401);
    r.run
        .lacks("registry:push-allowed")
        .lacks("registry:write-probe");
    assert_nothing_left(data, &before);
    // No credentials at all: the registry asks for them.
    let r = run(&sb, &yaml(&lab, url, None, &[]), "", &["--write-probe"]);
    let f = r
        .within(ONE)
        .code(1)
        .has("registry:auth-failed", "fail", url);
    assert!(f.message.contains("none are configured"), "{}", f.message);
    assert_nothing_left(data, &before);
    // A CA that did not issue the certificate: stop before any request.
    let r = run(
        &sb,
        &y,
        lab.var("REGISTRY_PASSWORD"),
        &["--ca-bundle", lab.var("ROGUE_CA_PEM"), "--write-probe"],
    );
    r.within(ONE).code(1).has("tls:unknown-issuer", "fail", url);
    r.run.lacks("registry:reachable");
    assert_nothing_left(data, &before);
}

#[test]
fn registry_bearer_tokens_scopes_and_refused_deletes() {
    let sb = Sandbox::new("registry::bearer");
    let lab = Lab::get();
    let url = lab.var("REGISTRY_TOKEN_URL");
    let data = lab.var("REGISTRY_TOKEN_DATA_DIR");
    let before = residue(data);
    let seeded = lab.var("REGISTRY_SEEDED_IMAGE").to_string();

    // The pusher gets a push token; the registry refuses deletes, and the
    // probe names exactly what it left.
    let y = yaml(
        &lab,
        url,
        Some(lab.var("REGISTRY_USER")),
        std::slice::from_ref(&seeded),
    );
    let t = run(&sb, &y, lab.var("REGISTRY_PASSWORD"), &["--write-probe"]);
    let r = t.within(ONE);
    r.code(0);
    let f = r.has("registry:reachable", "pass", url);
    assert_eq!(f.evidence["auth_scheme"], "bearer");
    assert_eq!(f.evidence["realm"], lab.var("REGISTRY_TOKEN_REALM"));
    r.has("registry:auth-ok", "pass", url);
    r.has("registry:push-allowed", "pass", url);
    r.has("registry:write-probe", "pass", url);
    r.has("registry:image-present", "pass", &seeded);
    let f = r.has("registry:leftover", "warn", url);
    assert_eq!(f.evidence["deletes_refused"], true);
    // What is left is exactly what the finding names: the tag, the manifest
    // and the config blob (the upload sessions are gone).
    settled(|| {
        residue(data)
            .difference(&before)
            .filter(|l| l.contains(" upload "))
            .cloned()
            .collect()
    });
    let new: BTreeSet<String> = residue(data).difference(&before).cloned().collect();
    let kinds: Vec<_> = new.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(kinds, ["blob", "manifest", "tag"], "left: {new:?}");
    let named = f.evidence["left_behind"].to_string();
    for l in &new {
        let id = l.rsplit(' ').next().unwrap();
        assert!(named.contains(id), "the leftover names {l}: {named}");
    }
    // Remove them so the lab does not accumulate probe leftovers.
    let repo = PathBuf::from(data).join("docker/registry/v2/repositories");
    for l in &new {
        let mut it = l.split(' ');
        let (name, kind, id) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let dir = match kind {
            "tag" => "_manifests/tags",
            "manifest" => "_manifests/revisions/sha256",
            _ => "_layers/sha256",
        };
        std::fs::remove_dir_all(repo.join("sekoia").join(name).join(dir).join(id)).unwrap();
    }

    // The reader's token carries pull only: the push is refused.
    let y = yaml(&lab, url, Some(lab.var("REGISTRY_READER_USER")), &[seeded]);
    let r = run(&sb, &y, lab.var("READER_PASSWORD"), &["--write-probe"]);
    let r2 = r.within(ONE);
    r2.code(1).has("registry:push-refused", "fail", url);
    r2.has(
        "registry:image-present",
        "pass",
        lab.var("REGISTRY_SEEDED_IMAGE"),
    );
    r2.lacks("registry:write-probe");
    assert_nothing_left(data, &before);

    // A wrong password is refused by the token server.
    let y = yaml(&lab, url, Some(lab.var("REGISTRY_USER")), &[]);
    let r = run(&sb, &y, "wrong-password", &[]);
    let f = r
        .within(ONE)
        .code(1)
        .has("registry:auth-failed", "fail", url);
    assert_eq!(f.evidence["realm"], lab.var("REGISTRY_TOKEN_REALM"));
    assert_nothing_left(data, &before);
}

#[test]
fn registry_over_plain_http_is_reported() {
    let sb = Sandbox::new("registry::plain_http");
    let lab = Lab::get();
    let url = lab.var("REGISTRY_HTTP_URL");
    let data = lab.var("REGISTRY_HTTP_DATA_DIR");
    let before = residue(data);
    // The push check still runs (its upload session is cancelled); the
    // write probe is not asked for, as this registry refuses deletes.
    let r = run(&sb, &yaml(&lab, url, None, &[]), "", &[]);
    let r = r.within(ONE);
    r.code(1).has("registry:plain-http", "fail", url);
    r.has("registry:push-allowed", "pass", url);
    r.has("registry:reachable", "pass", url);
    assert_nothing_left(data, &before);
}

/// `check`: the archive pass and the probes in one report; the release's
/// images are looked up in the registry.
#[test]
fn check_runs_the_archive_and_the_probes_in_one_report() {
    let sb = Sandbox::new("registry::check");
    let lab = Lab::get();
    let release = sb.sample();
    let y = format!(
        "{}ntp: {{servers: [{}]}}\n",
        yaml(
            &lab,
            lab.var("REGISTRY_URL"),
            Some(lab.var("REGISTRY_USER")),
            &[]
        ),
        lab.var("NTP_HOST")
    );
    let cfg = sb.write("perimeter.yml", y);
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["check", "--bundle"])
        .arg(&release)
        .arg("--config")
        .arg(&cfg)
        .args([
            "--allow-host",
            "registry.sekoia.io",
            "--format",
            "json",
            "--timeout",
            "1s",
        ])
        .env("LAB_REGISTRY_PASSWORD", lab.var("REGISTRY_PASSWORD"))
        .output()
        .unwrap();
    let r = crate::harness::Run::from(out);
    r.code(1);
    let v = r.json();
    assert_eq!(v["command"], "check");
    let kinds: Vec<_> = v["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["tar", "config"]);
    r.has("bundle:checksum-verified", "pass", "sekoia-self-hosted");
    r.has("ntp:synchronised", "pass", lab.var("NTP_HOST"));
    r.has("registry:push-allowed", "pass", lab.var("REGISTRY_URL"));
    // The sample's images are not in the lab registry: each is named.
    let missing: Vec<_> = r
        .findings()
        .into_iter()
        .filter(|f| f.code == "registry:image-missing")
        .collect();
    assert!(missing.len() >= 10, "{missing:?}");
    assert!(
        missing
            .iter()
            .any(|f| f.target.ends_with("sekoia/collector-oci:v1.0.0")),
        "{missing:?}"
    );
    // Only the registry's findings fail: the archive itself is intact.
    assert!(r
        .findings()
        .iter()
        .filter(|f| f.status == "fail")
        .all(|f| f.code == "registry:image-missing"));
}

/// More images than the finding cap (1000 per code): every one is still
/// looked up, the last included. Before, the lookup list was read back from
/// the `image:valid` findings, which the cap cuts.
#[test]
fn every_image_is_looked_up_even_past_the_finding_cap() {
    let sb = Sandbox::new("registry::past_the_cap");
    let lab = Lab::get();
    let n = airgap_verify::finding::MAX_FINDINGS_PER_CODE + 5;
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    for i in 0..n {
        let img = airgap_verify::sample::docker_image(
            &format!("registry.perimeter.test/sekoia/absent-{i:04}:1.0.0"),
            &[format!("layer {i}\n").into_bytes()],
        );
        add(&format!("release/images/img-{i:04}.tar"), &img);
    }
    // Last in member order: the one a cap would drop first.
    let seeded = lab.var("REGISTRY_SEEDED_IMAGE").to_string();
    let img = airgap_verify::sample::docker_image(
        &format!("registry.perimeter.test/{seeded}"),
        &[b"last\n".to_vec()],
    );
    add("release/images/zzz-seeded.tar", &img);
    let tar = sb.write("many-images.tar", b.into_inner().unwrap());
    let cfg = sb.write(
        "perimeter.yml",
        yaml(
            &lab,
            lab.var("REGISTRY_URL"),
            Some(lab.var("REGISTRY_USER")),
            &[],
        ),
    );
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["check", "--bundle"])
        .arg(&tar)
        .arg("--config")
        .arg(&cfg)
        .args(["--format", "json", "--timeout", "2s", "--no-progress"])
        .env("LAB_REGISTRY_PASSWORD", lab.var("REGISTRY_PASSWORD"))
        .output()
        .unwrap();
    let r = crate::harness::Run::from(out);
    // The image:valid findings were capped...
    let valid = r.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "image:valid")
        .count();
    assert!(valid <= airgap_verify::finding::MAX_FINDINGS_PER_CODE + 1);
    // ...the lookups were not: the seeded image, last of all, is present.
    r.has("registry:image-present", "pass", &seeded);
    // Every other image is missing, and each one counts: the probes'
    // findings go through the same sink and cap as the archive's, so the
    // first 1000 are listed and one more finding counts the rest.
    let missing: u64 = r.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "registry:image-missing")
        .map(|f| f["evidence"]["omitted"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(missing, n as u64, "{}", r.stderr);
}
