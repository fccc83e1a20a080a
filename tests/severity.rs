//! Per-code severity (issue 17, item 3): `--warn`, `--fail`, `--allow` and
//! perimeter.yml `severity:` re-grade problems, both ways, and the report
//! keeps what the check said.

use crate::harness::lab::Lab;
use crate::harness::{av, bundle, Sandbox};

#[test]
fn the_command_line_re_grades_a_code_both_ways() {
    let sb = Sandbox::new("severity::cli");
    let tar = sb.sample();
    // The sample names the vendor's registry: warnings, exit 0.
    let r = bundle(&tar, &[]);
    r.code(0);
    let warned = r.has("refs:external", "warn", "values.yaml");
    assert!(r.json()["policy"]["severity"]
        .as_object()
        .unwrap()
        .is_empty());
    // Warning -> failure: exit 1, the original status kept.
    let r = bundle(&tar, &["--fail", "refs:external"]);
    r.code(1);
    let f = r.has("refs:external", "fail", &warned.target);
    let raw = r.json();
    let one = raw["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["code"] == "refs:external")
        .unwrap()
        .clone();
    assert_eq!(one["original_status"], "warn", "{one}");
    assert_eq!(raw["policy"]["severity"]["refs:external"], "fail");
    assert_eq!(f.status, "fail");
    // A finding the policy did not touch carries no original status.
    let untouched = raw["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["code"] == "bundle:checksum-verified")
        .unwrap();
    assert!(untouched.get("original_status").is_none(), "{untouched}");

    // Failure -> warning: a wrong digest fails, `--warn` makes it exit 0.
    let wrong = "0".repeat(64);
    bundle(&tar, &["--sha256", &wrong]).code(1);
    let r = bundle(
        &tar,
        &["--sha256", &wrong, "--warn", "bundle:checksum-mismatch"],
    );
    r.code(0);
    r.has("bundle:checksum-mismatch", "warn", tar.to_str().unwrap());
    // --allow: the problem passes.
    let r = bundle(
        &tar,
        &["--sha256", &wrong, "--allow", "bundle:checksum-mismatch"],
    );
    r.code(0);
    r.has("bundle:checksum-mismatch", "pass", tar.to_str().unwrap());
    // A pass is never turned into a problem.
    let r = bundle(&tar, &["--fail", "bundle:checksum-verified"]);
    r.code(0);
    r.has("bundle:checksum-verified", "pass", tar.to_str().unwrap());
    // --fail-on warn applies after the per-code severity.
    // (The sample's Sigstore bundles are verified, or they would warn; its
    // images are not signed, a warning allowed here.)
    let signer = Sandbox::sample_signer(&tar);
    let mut args = vec![
        "--fail-on",
        "warn",
        "--allow",
        "refs:external",
        "--allow",
        "image:unsigned",
    ];
    args.extend(signer.iter().map(String::as_str));
    bundle(&tar, &args).code(0);
    bundle(&tar, &["--fail-on", "warn"]).code(1);
}

#[test]
fn unknown_codes_and_contradictions_are_usage_errors() {
    let sb = Sandbox::new("severity::usage");
    let tar = sb.sample();
    let r = bundle(&tar, &["--fail", "refs:externl"]);
    r.code(2);
    assert!(
        r.stderr.contains("did you mean `refs:external`"),
        "{}",
        r.stderr
    );
    let r = bundle(
        &tar,
        &["--fail", "refs:external", "--allow", "refs:external"],
    );
    r.code(2);
    assert!(r.stderr.contains("keep one"), "{}", r.stderr);
    // In perimeter.yml: the file, the key and the nearest code.
    let p = sb.write(
        "perimeter.yml",
        "dns:\n  servers: [127.0.0.10]\nseverity:\n  tls:expiring-son: allow\n",
    );
    let r = av(["services", "--dry-run", "--config", p.to_str().unwrap()]);
    r.code(2);
    assert!(
        r.stderr.contains("perimeter.yml:4:")
            && r.stderr.contains("severity.tls:expiring-son")
            && r.stderr.contains("`tls:expiring-soon`"),
        "{}",
        r.stderr
    );
    let p = sb.write(
        "perimeter.yml",
        "dns:\n  servers: [127.0.0.10]\nseverity:\n  tls:expiring-soon: maybe\n",
    );
    let r = av(["services", "--dry-run", "--config", p.to_str().unwrap()]);
    r.code(2);
    assert!(r.stderr.contains("not a severity"), "{}", r.stderr);
}

/// perimeter.yml re-grades a probe's failure; the command line wins over it.
#[test]
fn perimeter_yml_severity_and_the_command_line_over_it() {
    let sb = Sandbox::new("severity::perimeter");
    let lab = Lab::get();
    let yml = |severity: &str| {
        sb.write(
            "perimeter.yml",
            format!(
                "dns:\n  servers: [{}]\n  public_names: []\n  expect:\n    - name: git.perimeter.test\n{severity}",
                lab.var("BLACKHOLE_ADDR")
            ),
        )
    };
    let run = |p: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "services",
            "--config",
            p.to_str().unwrap(),
            "--timeout",
            "300ms",
            "--format",
            "json",
            "--no-progress",
        ];
        args.extend(extra);
        av(args)
    };
    let p = yml("");
    run(&p, &[])
        .code(1)
        .has("net:timeout", "fail", lab.var("BLACKHOLE_ADDR"));
    let p = yml("severity:\n  net:timeout: warn\n  config:default-perimeter: allow\n");
    let r = run(&p, &[]);
    r.code(0);
    r.has("net:timeout", "warn", lab.var("BLACKHOLE_ADDR"));
    r.has("config:default-perimeter", "pass", "");
    assert_eq!(r.json()["policy"]["severity"]["net:timeout"], "warn");
    // The command line wins.
    let r = run(&p, &["--fail", "net:timeout"]);
    r.code(1);
    r.has("net:timeout", "fail", lab.var("BLACKHOLE_ADDR"));
}
