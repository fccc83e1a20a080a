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
    table_named("layers")
}

/// The rows of the table between `<!-- NAME -->` and `<!-- /NAME -->`:
/// for each row, the `ticked` names of each cell.
fn rows(name: &str) -> Vec<Vec<Vec<String>>> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let start = doc
        .find(&format!("<!-- {name} -->"))
        .unwrap_or_else(|| panic!("the {name} table's start marker"));
    let end = doc
        .find(&format!("<!-- /{name} -->"))
        .unwrap_or_else(|| panic!("the {name} table's end marker"));
    doc[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            line.split('|')
                .map(|cell| {
                    cell.split('`')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_string)
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// A module table: | module | job | may use |.
fn table_named(name: &str) -> BTreeMap<String, BTreeSet<String>> {
    rows(name)
        .into_iter()
        .map(|cells| (cells[1][0].clone(), cells[3].iter().cloned().collect()))
        .collect()
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

/// A table is a set of layers only if it has no cycle: each module can be
/// placed after every module it may use.
fn assert_acyclic(name: &str, table: &BTreeMap<String, BTreeSet<String>>) {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while placed.len() < table.len() {
        let ready: Vec<&str> = table
            .iter()
            .filter(|(m, may)| {
                !placed.contains(m.as_str())
                    && may.iter().all(|u| u == *m || placed.contains(u.as_str()))
            })
            .map(|(m, _)| m.as_str())
            .collect();
        assert!(
            !ready.is_empty(),
            "docs/architecture.md's {name} table has a cycle among {:?}",
            table
                .keys()
                .filter(|m| !placed.contains(m.as_str()))
                .collect::<Vec<_>>()
        );
        placed.extend(ready);
    }
}

#[test]
fn the_tables_are_layers_without_cycles() {
    assert_acyclic("layers", &table());
    assert_acyclic("layers probe", &table_named("layers probe"));
    let mut cyclic = table_named("layers probe");
    cyclic.get_mut("net").unwrap().insert("flows".into());
    let caught = std::panic::catch_unwind(|| assert_acyclic("made-up", &cyclic));
    assert!(caught.is_err(), "a cycle must be caught");
}

/// Sibling paths (`super::NAME`, `crate::PARENT::NAME`, and each member of
/// `use super::{a, b::c}`, across lines) outside the file's test module and
/// comments, with their line numbers.
fn sibling_paths(text: &str, parent: &str) -> Vec<(usize, String)> {
    let mut code = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        code.push_str(match line.find("//") {
            Some(c) => &line[..c],
            None => line,
        });
        code.push('\n');
    }
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let path =
        regex::Regex::new(&format!(r"(?:super|crate::{parent})::([a-z_][a-z0-9_]*)")).unwrap();
    let group = regex::Regex::new(&format!(r"(?:super|crate::{parent})::\{{([^}}]*)\}}")).unwrap();
    let mut out = Vec::new();
    for m in path.captures_iter(&code) {
        out.push((line_of(m.get(1).unwrap().start()), m[1].to_string()));
    }
    let item = regex::Regex::new(r",\s*([a-z_][a-z0-9_]*)").unwrap();
    // A nested `a::{x, y}` names `a` only: blank what follows `a::{`,
    // keeping every offset (and newline) in place.
    let nested = regex::Regex::new(r"::\{[^{}]*").unwrap();
    for m in group.captures_iter(&code) {
        let inner = m.get(1).unwrap();
        let flat = nested.replace_all(inner.as_str(), |c: &regex::Captures| {
            c[0].chars()
                .map(|ch| if ch == '\n' { '\n' } else { ' ' })
                .collect::<String>()
        });
        for i in item.captures_iter(&format!(",{flat}")) {
            let name = i.get(1).unwrap();
            if name.as_str() != "self" {
                // The offset in the group, less the comma put in front.
                out.push((
                    line_of(inner.start() + name.start() - 1),
                    name.as_str().to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_probe_module_imports_one_above_it() {
    let table = table_named("layers probe");
    let dir = root().join("src/probe");
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    for p in files {
        let rel = p.strip_prefix(&dir).unwrap();
        // `net.rs` is module `net`; every file of `smtp/` is module `smtp`.
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let name = first.trim_end_matches(".rs").to_string();
        if name == "mod" {
            continue;
        }
        seen.insert(name.clone());
        let Some(may) = table.get(&name) else {
            violations.push(format!(
                "src/probe/{} has no row in the probe table",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&p).unwrap();
        // Inside `smtp/`, `super::` is `smtp` itself when the file is a
        // submodule: only paths to the probe's other modules count.
        let nested = rel.components().count() > 1;
        for (line, used) in sibling_paths(&text, "probe") {
            if nested && !text.contains(&format!("crate::probe::{used}")) {
                continue;
            }
            if used != name && table.contains_key(&used) && !may.contains(&used) {
                violations.push(format!(
                    "src/probe/{}:{line}: `{name}` uses `{used}`, which its row does not allow",
                    rel.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    for m in table.keys() {
        assert!(
            seen.contains(m),
            "the probe table names `{m}`, which is no file"
        );
    }
    // The checker sees a back-edge in a made-up file.
    let found = sibling_paths(
        "use super::flows::run;\nlet x = crate::probe::lb::plan; // super::tls\nuse super::{net, s3::client,\n    smtp::{a, b}};\n#[cfg(test)]\nuse super::spec;\n",
        "probe",
    );
    let names: Vec<(usize, &str)> = found.iter().map(|(l, n)| (*l, n.as_str())).collect();
    assert_eq!(
        names,
        [(1, "flows"), (2, "lb"), (3, "net"), (3, "s3"), (4, "smtp")]
    );
}

/// `<!-- layers bundle -->`: layer -> (its modules, the layers it may use).
fn layer_table(name: &str) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    rows(name)
        .into_iter()
        .map(|cells| {
            let set = |i: usize| cells[i].iter().cloned().collect::<BTreeSet<String>>();
            (cells[1][0].clone(), (set(2), set(3)))
        })
        .collect()
}

/// Inside `src/bundle/`, a module may use its own layer and the layers its
/// row allows: the rules never import the engine that calls them.
#[test]
fn no_bundle_module_imports_a_layer_above_it() {
    let layers = layer_table("layers bundle");
    let may: BTreeMap<String, BTreeSet<String>> = layers
        .iter()
        .map(|(l, (_, may))| (l.clone(), may.clone()))
        .collect();
    assert_acyclic("layers bundle", &may);
    let layer_of: BTreeMap<&str, &str> = layers
        .iter()
        .flat_map(|(l, (mods, _))| mods.iter().map(move |m| (m.as_str(), l.as_str())))
        .collect();
    let dir = root().join("src/bundle");
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    for p in files {
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if name == "mod" {
            continue;
        }
        seen.insert(name.clone());
        let Some(layer) = layer_of.get(name.as_str()) else {
            violations.push(format!(
                "src/bundle/{name}.rs is in no layer of the bundle table"
            ));
            continue;
        };
        let text = std::fs::read_to_string(&p).unwrap();
        for (line, used) in sibling_paths(&text, "bundle") {
            let Some(used_layer) = layer_of.get(used.as_str()) else {
                continue; // an item of mod.rs, or not a module
            };
            if used_layer != layer && !may[*layer].contains(*used_layer) {
                violations.push(format!(
                    "src/bundle/{name}.rs:{line}: `{name}` ({layer}) uses `{used}` ({used_layer})"
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    for m in layer_of.keys() {
        assert!(
            seen.contains(*m),
            "the bundle table names `{m}`, which is no file"
        );
    }
    // The check sees a rule that imports the engine.
    let found = sibling_paths("use super::walk::WalkContext;\n", "bundle");
    assert_eq!(found, [(1, "walk".to_string())]);
    assert!(!may["rules"].contains("engine"));
}
