//! No vacuous verdicts: a run that verified nothing is not ready, a part
//! the user would assume was checked and was not is a `skip` finding with
//! its reason, and the JSON report carries when, where, with which options
//! and under which policy it was made.

use crate::harness::lab::Lab;
use crate::harness::tarkit::RawTar;
use crate::harness::{av, bundle, Sandbox};

#[test]
fn an_empty_folder_or_archive_is_not_ready() {
    let sb = Sandbox::new("verdicts::empty");
    std::fs::create_dir_all(sb.path("staging/sub")).unwrap();
    let r = bundle(&sb.path("staging"), &[]);
    r.code(1);
    let f = r.has("bundle:empty", "fail", "staging");
    assert!(f.message.contains("mounted"), "{}", f.message);
    let r = bundle(&sb.write("empty.tar", vec![0u8; 1024]), &[]);
    r.code(1);
    r.has("bundle:empty", "fail", "empty.tar");
    // One file is enough not to be empty.
    let t = RawTar::new().file("a", b"x").finish();
    bundle(&sb.write("one.tar", &t), &[]).lacks("bundle:empty");
}

#[test]
fn a_configuration_with_nothing_to_probe_is_not_ready() {
    let r = av(["services", "--config", "/dev/null", "--format", "json"]);
    r.code(1);
    r.has("run:nothing-verified", "fail", "services");
    r.has("config:nothing-to-check", "warn", "/dev/null");
}

#[test]
fn skipped_parts_are_findings_with_their_reason() {
    let sb = Sandbox::new("verdicts::skipped");
    let tar = sb.sample();
    let r = bundle(&tar, &["--no-content"]);
    r.code(0);
    let f = r.has("bundle:content-not-checked", "skip", tar.to_str().unwrap());
    assert!(f.message.contains("--no-content"), "{}", f.message);
    let v = r.json();
    assert_eq!(v["policy"]["settings"]["content"], false, "{v:#}");
    assert!(
        v["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "bundle:content-not-checked"
                && s["reason"].as_str().unwrap().contains("not verified")),
        "{:#}",
        v["skipped"]
    );
    // Without --no-content the content is checked and nothing says otherwise.
    let full = bundle(&tar, &[]);
    full.lacks("bundle:content-not-checked");
    assert_eq!(full.json()["policy"]["settings"]["content"], true);

    // `check` without --bundle says the archive was not verified.
    let lab = Lab::get();
    let cfg = sb.write(
        "perimeter.yml",
        lab.config(&format!("ntp: {{servers: [{}]}}\n", lab.var("NTP_ADDR"))),
    );
    let r = av([
        "check",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
        "--timeout",
        "2s",
    ]);
    r.code(0);
    r.has("run:archive-not-checked", "skip", "check");
    assert!(r.json()["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["code"] == "run:archive-not-checked"));
}

#[test]
fn an_archive_nothing_vouches_for_says_so() {
    let sb = Sandbox::new("verdicts::unauthenticated");
    let t = RawTar::new().file("platform/a.txt", b"hello\n").finish();
    let p = sb.write("bare.tar", &t);
    let r = bundle(&p, &[]);
    r.code(0);
    r.has("bundle:unauthenticated", "warn", "bare.tar");
    // The sample release carries its .sha256 and manifests.
    bundle(&sb.sample(), &[])
        .code(0)
        .lacks("bundle:unauthenticated");
    // A matching --sha256 alone vouches for it.
    use sha2::Digest;
    let hex = hex::encode(sha2::Sha256::digest(&t));
    bundle(&p, &["--sha256", &hex])
        .code(0)
        .lacks("bundle:unauthenticated");
}

#[test]
fn strict_airgap_fails_an_air_gap_that_cannot_be_proven() {
    let sb = Sandbox::new("verdicts::strict");
    let cfg = sb.write("perimeter.yml", "allowed_networks: []\n");
    let c = cfg.to_str().unwrap();
    let r = av(["egress", "--config", c, "--format", "json"]);
    r.code(0);
    r.has("egress:no-perimeter", "warn", "allowed_networks");
    let r = av([
        "egress",
        "--config",
        c,
        "--format",
        "json",
        "--strict-airgap",
    ]);
    r.code(1);
    r.has("egress:no-perimeter", "fail", "allowed_networks");
    assert_eq!(r.json()["policy"]["settings"]["strict_airgap"], true);
}

#[test]
fn the_json_report_says_when_where_and_how_it_was_made() {
    let sb = Sandbox::new("verdicts::context");
    let tar = sb.sample();
    let t = tar.to_str().unwrap();
    let before = std::time::SystemTime::now();
    let args = [
        "bundle",
        t,
        "--format",
        "json",
        "--fail-on",
        "warn",
        "--max-depth",
        "2",
    ];
    let r = av(args);
    // The sample's charts name the vendor's registry: warnings, failing here.
    r.code(1);
    let v = r.json();
    let started = humantime::parse_rfc3339(v["started_at"].as_str().unwrap()).unwrap();
    let early = before - std::time::Duration::from_secs(2);
    assert!(
        started >= early && started <= std::time::SystemTime::now(),
        "{}",
        v["started_at"]
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(v["host"], host.trim());
    assert_eq!(v["arguments"], serde_json::json!(args));
    assert_eq!(v["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["policy"]["fail_on"], "warn");
    let s = &v["policy"]["settings"];
    assert_eq!(s["max_depth"], 2);
    assert_eq!(s["max_entries"], 1_000_000);
    assert_eq!(
        s["checksum"],
        "beside the archive (ARCHIVE.sha256, or a SHA256SUMS that names it)"
    );
}

/// First contact names every service: the help texts and the message of a
/// configuration with nothing to probe; no nonexistent subcommand is announced.
#[test]
fn help_and_messages_name_every_service() {
    let services = ["DNS", "NTP", "SMTP", "Git", "registry", "S3"];
    for args in [vec!["--help"], vec!["services", "--help"]] {
        let r = av(&args);
        r.code(0);
        for s in services {
            assert!(
                r.stdout.contains(s),
                "{args:?} does not name {s}:\n{}",
                r.stdout
            );
        }
    }
    let r = av(["manifest", "--help"]);
    r.code(0);
    assert!(!r.stdout.contains("inspect"), "{}", r.stdout);
    let r = av(["services", "--config", "/dev/null", "--format", "json"]);
    let f = r.has("config:nothing-to-check", "warn", "/dev/null");
    for s in ["Git", "registry", "S3"] {
        assert!(f.message.contains(s), "{}", f.message);
    }
}
