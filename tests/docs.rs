//! Documentation that must match the code: the finding codes and the JSON
//! report specification.

use std::collections::BTreeSet;

use crate::harness::tarkit::RawTar;
use crate::harness::{bundle, Sandbox};

fn repo(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn checks_md_is_generated_from_the_code_table() {
    let doc = repo("docs/checks.md");
    let generated = airgap_verify::codes::markdown();
    if doc != generated {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/checks.md"),
                &generated,
            )
            .unwrap();
        } else {
            panic!("docs/checks.md is out of date: run `UPDATE_DOCS=1 cargo test checks_md` (or `airgap-verify explain --markdown > docs/checks.md`)");
        }
    }
    for c in airgap_verify::codes::ALL {
        assert!(
            doc.contains(&format!("### {}\n", c.id)),
            "docs/checks.md lacks {}",
            c.id
        );
        assert!(
            doc.contains(c.remediation),
            "docs/checks.md lacks the remediation of {}",
            c.id
        );
    }
}

/// Field paths documented in docs/json-report.md: table rows starting with
/// a backticked path, e.g. "| `findings[].code` | string | ... |".
fn documented_fields() -> BTreeSet<String> {
    repo("docs/json-report.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

fn collect(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                // Evidence keys depend on the check, settings on the
                // command; the spec documents each object.
                if p.ends_with("evidence") || p == "policy.settings" || p == "policy.severity" {
                    continue;
                }
                collect(v, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for v in a {
                collect(v, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn json_report_matches_its_specification() {
    let sb = Sandbox::new("json_report_matches_its_specification");
    let t = RawTar::new().file("/abs", b"x").finish();
    // --no-content: a skipped part, so `skipped[]` is filled; a severity
    // override, so a finding carries its `original_status`.
    let r = bundle(
        &sb.write("a.tar", &t),
        &["--no-content", "--warn", "bundle:absolute-path"],
    );
    let v = r.json();
    assert_eq!(v["schema_version"], 1);
    let mut seen = BTreeSet::new();
    collect(&v, "", &mut seen);
    // A merged report of real flows runs (the fixtures tests/merge.rs
    // regenerates) fills the host and matrix fields a bundle leaves empty.
    let merged = crate::harness::av(
        ["merge", "--format", "json"]
            .into_iter()
            .map(String::from)
            .chain(crate::merge::fixture_args()),
    );
    let m = merged.json();
    assert!(!m["matrix"]["problems"].as_array().unwrap().is_empty());
    collect(&m, "", &mut seen);
    let documented = documented_fields();
    let undocumented: Vec<_> = seen.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "fields missing from docs/json-report.md: {undocumented:?}"
    );
    let absent: Vec<_> = documented.difference(&seen).collect();
    assert!(
        absent.is_empty(),
        "documented fields absent from real output: {absent:?}"
    );
    for f in v["findings"].as_array().unwrap() {
        assert!(["pass", "warn", "fail", "skip"].contains(&f["status"].as_str().unwrap()));
        assert!(airgap_verify::codes::Code::from_id(f["code"].as_str().unwrap()).is_some());
    }
}

#[test]
fn flows_md_is_generated_from_the_profiles() {
    let doc = repo("docs/flows.md");
    let want = airgap_verify::profiles::markdown();
    if doc != want {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/flows.md"),
                &want,
            )
            .unwrap();
        } else {
            panic!("docs/flows.md is out of date: run `airgap-verify flows --profiles-markdown > docs/flows.md`");
        }
    }
}

/// Every evidence key the code writes: the string literal after
/// `.evidence(` (or after `evidence.entry(`, for keys added to findings
/// already made), in every source file up to its unit tests.
fn evidence_keys_in_code() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    /// The string literal that opens `rest`, after whitespace.
    fn literal(rest: &str) -> Option<&str> {
        let rest = rest.trim_start().strip_prefix('"')?;
        Some(&rest[..rest.find('"')?])
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut keys = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = without_unit_tests(&text);
        let code = code.as_str();
        for (i, _) in code.match_indices(".evidence(") {
            keys.extend(literal(&code[i + ".evidence(".len()..]).map(str::to_string));
        }
        for (i, _) in code.match_indices(".entry(") {
            if code[..i].trim_end().ends_with("evidence") {
                keys.extend(literal(&code[i + ".entry(".len()..]).map(str::to_string));
            }
        }
    }
    keys
}

/// `text` without its `#[cfg(test)]` items (a test module's braces are
/// counted; its keys are test data, not what the tool writes).
fn without_unit_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(open) = after.find('{') else {
            return out;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Keys listed in the first column of docs/json-report.md's "Evidence
/// keys" table (comma-separated).
fn evidence_keys_documented() -> BTreeSet<String> {
    let doc = repo("docs/json-report.md");
    let section = doc
        .split("\n## Evidence keys\n")
        .nth(1)
        .expect("an Evidence keys section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter(|l| !l.starts_with("key ") && !l.starts_with("---"))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|keys| keys.split(',').map(|k| k.trim().to_string()))
        .collect()
}

#[test]
fn every_evidence_key_is_documented_and_every_documented_key_is_written() {
    let code = evidence_keys_in_code();
    // The collector must see what it is meant to see.
    for k in ["offset", "config_generation", "blob", "omitted"] {
        assert!(code.contains(k), "{k} not collected from the code");
    }
    assert!(code.len() > 150, "only {} keys collected", code.len());
    let documented = evidence_keys_documented();
    let undocumented: Vec<_> = code.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "evidence keys written by the code but missing from docs/json-report.md: {undocumented:?}"
    );
    let unwritten: Vec<_> = documented.difference(&code).collect();
    assert!(
        unwritten.is_empty(),
        "evidence keys in docs/json-report.md that the code never writes: {unwritten:?}"
    );
}
