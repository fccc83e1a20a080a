//! The OCI registry probe against the lab's Distribution registries: Basic
//! auth with deletes enabled, Bearer tokens with deletes refused, and plain
//! HTTP.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::lab::{services_env, Lab, Timed};
use crate::harness::Sandbox;

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

/// Tags of the check repository, read from the registry's storage.
fn probe_tags(data_dir: &str) -> Vec<String> {
    let dir = PathBuf::from(data_dir)
        .join("docker/registry/v2/repositories/sekoia/airgap-verify-check/_manifests/tags");
    let mut tags: Vec<String> = std::fs::read_dir(&dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    tags.retain(|t| t.starts_with("airgap-verify-probe-"));
    tags.sort();
    tags
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
    let before = probe_tags(lab.var("REGISTRY_DATA_DIR"));
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
    // Nothing was left behind.
    assert_eq!(probe_tags(lab.var("REGISTRY_DATA_DIR")), before);
}

#[test]
fn registry_basic_faults_wrong_password_and_rogue_ca() {
    let sb = Sandbox::new("registry::basic_faults");
    let lab = Lab::get();
    let url = lab.var("REGISTRY_URL");
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
    // No credentials at all: the registry asks for them.
    let r = run(&sb, &yaml(&lab, url, None, &[]), "", &[]);
    let f = r
        .within(ONE)
        .code(1)
        .has("registry:auth-failed", "fail", url);
    assert!(f.message.contains("none are configured"), "{}", f.message);
    // A CA that did not issue the certificate: stop before any request.
    let r = run(
        &sb,
        &y,
        lab.var("REGISTRY_PASSWORD"),
        &["--ca-bundle", lab.var("ROGUE_CA_PEM")],
    );
    r.within(ONE).code(1).has("tls:unknown-issuer", "fail", url);
    r.run.lacks("registry:reachable");
}

#[test]
fn registry_bearer_tokens_scopes_and_refused_deletes() {
    let sb = Sandbox::new("registry::bearer");
    let lab = Lab::get();
    let url = lab.var("REGISTRY_TOKEN_URL");
    let data = lab.var("REGISTRY_TOKEN_DATA_DIR");
    let before = probe_tags(data);
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
    let after = probe_tags(data);
    let new: Vec<_> = after.iter().filter(|t| !before.contains(t)).collect();
    assert_eq!(new.len(), 1, "exactly one probe tag left: {new:?}");
    let named = f.evidence["left_behind"].to_string();
    assert!(
        named.contains(new[0].as_str()),
        "the leftover names the tag {}: {named}",
        new[0]
    );
    // Remove it so the lab does not accumulate probe tags.
    let tag_dir = PathBuf::from(data)
        .join("docker/registry/v2/repositories/sekoia/airgap-verify-check/_manifests/tags")
        .join(new[0]);
    std::fs::remove_dir_all(tag_dir).unwrap();

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

    // A wrong password is refused by the token server.
    let y = yaml(&lab, url, Some(lab.var("REGISTRY_USER")), &[]);
    let r = run(&sb, &y, "wrong-password", &[]);
    let f = r
        .within(ONE)
        .code(1)
        .has("registry:auth-failed", "fail", url);
    assert_eq!(f.evidence["realm"], lab.var("REGISTRY_TOKEN_REALM"));
}

#[test]
fn registry_over_plain_http_is_reported() {
    let sb = Sandbox::new("registry::plain_http");
    let lab = Lab::get();
    let url = lab.var("REGISTRY_HTTP_URL");
    let r = run(&sb, &yaml(&lab, url, None, &[]), "", &[]);
    let r = r.within(ONE);
    r.code(1).has("registry:plain-http", "fail", url);
    r.has("registry:reachable", "pass", url);
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
