//! The command-line contract: exit codes, one-line errors, report formats.

use crate::harness::tarkit::RawTar;
use crate::harness::{av, bundle, Sandbox};

#[test]
fn usage_errors_exit_2() {
    av(["bundle"]).code(2);
    av(["bundle", "x", "--format", "yaml"]).code(2);
    av(["no-such-command"]).code(2);
    av(["--version"]).code(0);
}

#[test]
fn unreadable_input_is_one_clean_line_and_exit_2() {
    let r = av(["bundle", "/nonexistent/release.tar"]);
    r.code(2);
    assert_eq!(r.stdout, "");
    let line = r.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("/nonexistent/release.tar"), "{line}");
    assert!(line.contains("No such file"), "{line}");
}

#[test]
fn garbage_inputs_never_panic() {
    let sb = Sandbox::new("garbage_inputs_never_panic");
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let good = RawTar::new()
        .file("a/b.txt", b"hello")
        .file("c", &[1u8; 3000])
        .finish();
    let gz = crate::harness::tarkit::gzip(&good);
    for i in 0..40 {
        let base = if i % 2 == 0 { &good } else { &gz };
        let mut bytes = base.clone();
        // Flip a few bytes, sometimes cut.
        for _ in 0..(1 + rnd() % 8) {
            let at = (rnd() % bytes.len() as u64) as usize;
            bytes[at] = rnd() as u8;
        }
        if i % 3 == 0 {
            let keep = (rnd() % bytes.len() as u64) as usize;
            bytes.truncate(keep);
        }
        let p = sb.write(&format!("g{i}.bin"), &bytes);
        let r = bundle(&p, &[]);
        assert!(
            r.code == 0 || r.code == 1,
            "case {i}: exit {} {}",
            r.code,
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "case {i}: {}", r.stderr);
        r.json();
    }
}

#[test]
fn explain_prints_description_and_remediation() {
    let r = av(["explain", "bundle:digest-mismatch"]);
    r.code(0);
    assert!(r
        .stdout
        .contains("bundle:digest-mismatch (default status: fail)"));
    assert!(r.stdout.contains("Remediation:"));
    let r = av(["explain", "bundle:nope"]);
    r.code(2);
    assert!(r.stderr.contains("explain --list"), "{}", r.stderr);
    let r = av(["explain", "--list"]);
    r.code(0);
    assert_eq!(r.stdout.lines().count(), airgap_verify::codes::ALL.len());
}

#[test]
fn human_report_groups_and_summarises() {
    let sb = Sandbox::new("human_report_groups_and_summarises");
    let t = RawTar::new().file("/abs", b"x").finish();
    let p = sb.write("h.tar", &t);
    let r = av(["bundle", p.to_str().unwrap()]);
    r.code(1);
    assert!(!r.stdout.contains('\x1b'), "NO_COLOR must disable colour");
    assert!(r.stdout.contains("\nbundle\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("FAIL  bundle:absolute-path"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("fix: "), "{}", r.stdout);
    let last = r.stdout.trim_end().lines().last().unwrap();
    assert!(last.starts_with("FAIL not ready: "), "{last}");
    let r = av(["bundle", p.to_str().unwrap(), "--color", "always"]);
    assert!(r.stdout.contains("\x1b[31;1mFAIL"), "{}", r.stdout);
}

#[test]
fn output_file_and_junit() {
    let sb = Sandbox::new("output_file_and_junit");
    let t = RawTar::new().file("a", b"x").file("a", b"y").finish();
    let p = sb.write("j.tar", &t);
    let out = sb.path("report.xml");
    let r = av([
        "bundle",
        p.to_str().unwrap(),
        "--format",
        "junit",
        "--output",
        out.to_str().unwrap(),
    ]);
    r.code(1);
    assert_eq!(r.stdout, "");
    let xml = std::fs::read_to_string(&out).unwrap();
    assert!(xml.starts_with("<?xml"));
    let families: std::collections::BTreeSet<String> = bundle(&p, &[])
        .findings()
        .iter()
        .map(|f| f.code.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(xml.matches("<testsuite ").count(), families.len());
    assert!(xml.contains(r#"<testsuite name="bundle""#));
    assert!(
        xml.contains(r#"<failure type="bundle:duplicate-entry""#),
        "{xml}"
    );
    assert_eq!(
        xml.matches("<testcase ").count(),
        xml.matches("</testcase>").count()
    );
    // tests= counts every finding; failures= counts the failing ones.
    let json = bundle(&p, &[]).json();
    let n = json["findings"].as_array().unwrap().len();
    assert!(xml.contains(&format!(r#"tests="{n}""#)), "{xml}");
    assert!(
        xml.contains(&format!(r#"failures="{}""#, json["summary"]["fail"])),
        "{xml}"
    );
}

#[test]
fn broken_pipe_is_not_an_error() {
    let sb = Sandbox::new("broken_pipe_is_not_an_error");
    let mut t = RawTar::new();
    for i in 0..3000 {
        t.file(&format!("/abs/{i}"), b"");
    }
    let p = sb.write("many.tar", t.finish());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} bundle {} --format json | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
            crate::harness::BIN,
            p.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The SARIF 2.1.0 schema's required properties, checked on real output.
#[test]
fn sarif_output_has_the_required_fields() {
    let sb = Sandbox::new("sarif_output_has_the_required_fields");
    let t = RawTar::new()
        .file("a dir/x", b"1")
        .file("a dir/x", b"2")
        .finish();
    let p = sb.write("s.tar", &t);
    let r = av(["bundle", p.to_str().unwrap(), "--format", "sarif"]);
    r.code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "airgap-verify");
    let rules = driver["rules"].as_array().unwrap();
    for rule in rules {
        assert!(rule["id"].is_string());
    }
    let results = runs[0]["results"].as_array().unwrap();
    let json = bundle(&p, &[]).json();
    assert_eq!(results.len(), json["findings"].as_array().unwrap().len());
    for res in results {
        // result: message.text is required; ruleId must name a rule.
        assert!(res["message"]["text"].is_string());
        let id = res["ruleId"].as_str().unwrap();
        let idx = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], id);
        assert!(["error", "warning", "note", "none"].contains(&res["level"].as_str().unwrap()));
        assert!(["pass", "fail", "notApplicable"].contains(&res["kind"].as_str().unwrap()));
        let uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(!uri.contains(' '), "{uri}");
    }
    let dup = results
        .iter()
        .find(|r| r["ruleId"] == "bundle:duplicate-entry")
        .expect("duplicate result");
    assert_eq!(dup["level"], "error");
    assert_eq!(
        dup["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "a%20dir/x"
    );
    assert_eq!(
        runs[0]["artifacts"][0]["hashes"]["sha-256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

/// 200,000 expected names load in linear time: the dry run prints its plan
/// well within a minute (a linear search per name took minutes, with
/// `--dry-run` too). A hang guard, not a benchmark: the margin is large.
#[test]
fn a_huge_dns_expect_list_loads_without_quadratic_time() {
    let sb = crate::harness::Sandbox::new("cli::huge_expect");
    let mut yaml = String::from("dns:\n  servers: [10.0.0.53]\n  expect:\n");
    for i in 0..200_000 {
        yaml.push_str(&format!("    - name: host{i}.corp.internal\n"));
    }
    // The same name twice keeps one entry (the last).
    yaml.push_str("    - name: HOST7.corp.internal.\n      addresses: [10.0.0.7]\n");
    let p = sb.write("perimeter.yml", yaml);
    let started = std::time::Instant::now();
    let mut child = std::process::Command::new(crate::harness::BIN)
        .args(["services", "--dry-run", "--config"])
        .arg(&p)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("loading 200,000 names took over {deadline:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("200000 expected name(s)"), "{text}");
}
