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
