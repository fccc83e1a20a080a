//! The layers of docs/architecture.md, enforced: every `crate::MODULE` path
//! in a file under `src/` must name the file's own top-level module or one
//! its row of the table allows. A new back-edge fails here until the table
//! (and the reason) is written down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// module -> the modules it may use, from the table between the markers.
fn table() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let start = doc
        .find("<!-- layers -->")
        .expect("the layers table's start marker");
    let end = doc
        .find("<!-- /layers -->")
        .expect("the layers table's end marker");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut out = BTreeMap::new();
    for line in doc[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | module | job | may use |
        let module = ticked(cells[1]).remove(0);
        let may = ticked(cells[3]).into_iter().collect();
        out.insert(module, may);
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `crate::name` paths outside comments, with their line numbers.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let re = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*)").unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = match line.find("//") {
            Some(c) => &line[..c],
            None => line,
        };
        for m in re.captures_iter(code) {
            out.push((i + 1, m[1].to_string()));
        }
    }
    out
}

#[test]
fn no_module_imports_a_layer_it_may_not_use() {
    let table = table();
    assert!(table.len() >= 15, "{table:?}");
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules_seen = BTreeSet::new();
    let mut violations = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        modules_seen.insert(module.clone());
        let Some(may) = table.get(&module) else {
            violations.push(format!(
                "src/{}: module `{module}` is not in docs/architecture.md's table",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (line, used) in crate_paths(&text) {
            if used != module && !may.contains(&used) {
                violations.push(format!(
                    "src/{}:{line}: `{module}` uses `{used}`, which its row does not allow",
                    rel.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // Every row names a module that exists, and every allowed one too.
    for (m, may) in &table {
        assert!(
            modules_seen.contains(m),
            "the table names `{m}`, which is not a module"
        );
        for u in may {
            assert!(
                table.contains_key(u),
                "`{m}` may use `{u}`, which has no row"
            );
        }
    }
}

/// The checker itself can fail: a back-edge in a made-up file is caught.
#[test]
fn the_layer_check_sees_a_back_edge() {
    let found = crate_paths(
        "use crate::probe::tls;\n// crate::run in a comment\nlet x = crate::report::Report;\n",
    );
    let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["probe", "report"]);
    let table = table();
    assert!(!table["config"].contains("probe"));
    assert!(!table["report"].contains("bundle"));
    assert!(!table["bundle"].contains("probe"));
}
