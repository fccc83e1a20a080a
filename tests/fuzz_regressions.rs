//! Every input a fuzz target crashed on (issue #7), replayed through the same
//! entry point: `testdata/fuzz-regressions/<target>/<name>`. A panic here is
//! a regression of a fixed fuzzing crash.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz-regressions")
}

/// Runs `f` on every file under `testdata/fuzz-regressions/<target>/`.
fn replay(target: &str, f: impl Fn(&[u8]) -> usize) -> usize {
    let dir = root().join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("dir entry").path()).collect();
    paths.sort();
    for p in &paths {
        let bytes = std::fs::read(p).expect("regression input");
        let started = std::time::Instant::now();
        std::hint::black_box(f(&bytes));
        // Timeouts found by the fuzzer must stay fast (generous for debug builds).
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{} took {:?}",
            p.display(),
            started.elapsed()
        );
    }
    paths.len()
}

#[test]
fn every_fuzz_regression_input_is_handled() {
    use airgap_verify::fuzzing as fz;
    let scratch = tempfile::tempdir().expect("scratch");
    let mut n = 0;
    n += replay("archive", fz::archive);
    n += replay("tar", fz::tar);
    n += replay("manifest", fz::manifest);
    n += replay("git_bundle", |b| fz::git_bundle(b, scratch.path()));
    n += replay("ntp", fz::ntp);
    n += replay("dns", fz::dns);
    n += replay("smtp", fz::smtp);
    n += replay("config", fz::config);
    // Every folder under testdata/fuzz-regressions/ is a target replayed above.
    for e in std::fs::read_dir(root()).expect("testdata/fuzz-regressions") {
        let e = e.expect("dir entry");
        if e.path().is_dir() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(
                [
                    "archive",
                    "tar",
                    "manifest",
                    "git_bundle",
                    "ntp",
                    "dns",
                    "smtp",
                    "config"
                ]
                .contains(&name.as_str()),
                "testdata/fuzz-regressions/{name} is not replayed"
            );
        }
    }
    let _ = n;
}
