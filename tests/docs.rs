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
                if p.ends_with("evidence") || p == "policy.settings" {
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
    // --no-content: a skipped part, so `skipped[]` is filled.
    let r = bundle(&sb.write("a.tar", &t), &["--no-content"]);
    let v = r.json();
    assert_eq!(v["schema_version"], 1);
    let mut seen = BTreeSet::new();
    collect(&v, "", &mut seen);
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
