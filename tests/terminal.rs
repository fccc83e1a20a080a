//! What a person at a terminal sees: `-q`/`-v` and the default of the human
//! format, the verdict and progress on the terminal whatever the report
//! formats, and several reports from one pass. The terminal is a real
//! pseudo-terminal (`script` from util-linux), not a flag.

use std::path::Path;
use std::process::Command;

use crate::harness::{av, Sandbox, BIN};

/// `airgap-verify ARGS` with standard input, output and error on a
/// pseudo-terminal; returns everything the terminal showed.
fn on_terminal(args: &[&str], cwd: &Path) -> (i32, String) {
    let cmd = std::iter::once(BIN.to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .output()
        .expect("run script(1)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The lines of a human report that show one finding of `status`.
fn lines_of<'a>(text: &'a str, status: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("  {status}  ")))
        .collect()
}

/// The counts of the verdict line (`... N pass, N warn, N fail, N skip`).
fn verdict_counts(text: &str) -> [usize; 4] {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(" pass, ") && l.contains(" skip in "))
        .unwrap_or_else(|| panic!("no verdict line in {text}"));
    let n = |what: &str| -> usize {
        let before = line.split(&format!(" {what}")).next().unwrap();
        before.rsplit([' ', ':']).next().unwrap().parse().unwrap()
    };
    [n("pass,"), n("warn,"), n("fail,"), n("skip ")]
}

const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn default_counts_passes_per_family_and_v_lists_them_q_keeps_failures() {
    let sb = Sandbox::new("terminal::verbosity");
    let tar = sb.sample();
    let tar = tar.to_str().unwrap();
    // A failure (a wrong expected digest) among many passes and warnings.
    let base = ["bundle", tar, "--no-progress", "--sha256", WRONG];

    let v = av(base.iter().chain(&["-v"]));
    v.code(1);
    let [pass, warn, fail, _] = verdict_counts(&v.stdout);
    assert!(pass > 10 && warn > 0 && fail > 0, "{}", v.stdout);
    assert_eq!(lines_of(&v.stdout, "pass").len(), pass, "{}", v.stdout);
    assert_eq!(lines_of(&v.stdout, "WARN").len(), warn);
    assert_eq!(lines_of(&v.stdout, "FAIL").len(), fail);

    let d = av(base);
    d.code(1);
    assert_eq!(verdict_counts(&d.stdout), verdict_counts(&v.stdout));
    // Warnings and failures in full, with their remediation...
    assert_eq!(lines_of(&d.stdout, "WARN").len(), warn, "{}", d.stdout);
    assert_eq!(lines_of(&d.stdout, "FAIL").len(), fail);
    assert!(d.stdout.contains("fix: "), "{}", d.stdout);
    // ...passes as one line per family that counts them all, by code.
    let counted: usize = lines_of(&d.stdout, "pass")
        .iter()
        .map(|l| {
            let n = l.trim_start_matches("  pass  ").split(' ').next().unwrap();
            n.parse::<usize>()
                .unwrap_or_else(|_| panic!("a pass line that is no count: {l}"))
        })
        .sum();
    assert_eq!(counted, pass, "{}", d.stdout);

    let q = av(base.iter().chain(&["-q"]));
    q.code(1);
    assert_eq!(verdict_counts(&q.stdout), verdict_counts(&v.stdout));
    assert!(lines_of(&q.stdout, "pass").is_empty(), "{}", q.stdout);
    assert!(lines_of(&q.stdout, "WARN").is_empty(), "{}", q.stdout);
    assert_eq!(lines_of(&q.stdout, "FAIL").len(), fail, "{}", q.stdout);
    assert!(!q.stdout.contains("input "), "{}", q.stdout);

    // A clean quiet run is the verdict alone.
    let ok = av(["bundle", tar, "--no-progress", "-q"]);
    ok.code(0);
    assert_eq!(ok.stdout.lines().count(), 1, "{}", ok.stdout);
    // -q and -v together is a usage error.
    av(["bundle", tar, "-q", "-v"]).code(2);
}

/// JSON on standard output or only files: a terminal still gets progress
/// and the verdict (on standard error); a pipe gets neither, so machine
/// output stays clean.
#[test]
fn a_terminal_gets_the_verdict_and_progress_whatever_the_formats() {
    let sb = Sandbox::new("terminal::verdict");
    let tar = sb.sample();
    let tar = tar.to_str().unwrap();
    let dir = sb.path("");
    let (code, seen) = on_terminal(
        &[
            "bundle", tar, "--format", "json", "--output", "r.json", "--sha256", WRONG,
        ],
        &dir,
    );
    assert_eq!(code, 1, "{seen}");
    assert!(seen.contains("not ready:"), "{seen}");
    assert!(seen.contains("FAIL  bundle:"), "{seen}");
    // The progress bar drew (bytes read out of the archive's size).
    assert!(seen.contains("MiB") || seen.contains("KiB"), "{seen}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(json["summary"]["fail"].as_u64().map(|n| n > 0), Some(true));

    // Not a terminal: standard error carries no verdict, stdout only JSON.
    let r = av(["bundle", tar, "--format", "json", "--sha256", WRONG]);
    r.code(1);
    assert!(!r.stderr.contains("not ready"), "{}", r.stderr);
    r.json();
}

/// One pass, three reports: human on the terminal, JSON and JUnit files,
/// each complete and saying the same.
#[test]
fn several_reports_from_one_pass() {
    let sb = Sandbox::new("terminal::several");
    let tar = sb.sample();
    let (j, x) = (sb.path("r.json"), sb.path("r.xml"));
    let r = av([
        "bundle".as_ref(),
        tar.as_os_str(),
        "--no-progress".as_ref(),
        "--output".as_ref(),
        format!("json={}", j.display()).as_ref(),
        "--output".as_ref(),
        format!("junit={}", x.display()).as_ref(),
    ]);
    r.code(0);
    let counts = verdict_counts(&r.stdout);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
    assert_eq!(json["summary"]["pass"].as_u64(), Some(counts[0] as u64));
    assert_eq!(json["summary"]["warn"].as_u64(), Some(counts[1] as u64));
    let xml = std::fs::read_to_string(&x).unwrap();
    assert!(
        xml.starts_with("<?xml") && xml.contains("<testsuites"),
        "{xml}"
    );
    let cases = xml.matches("<testcase ").count();
    assert_eq!(cases, counts.iter().sum::<usize>(), "{xml}");
}

/// A hostile member name cannot drive the terminal: control characters in
/// names are shown escaped in the human report (`\x1b`), kept as they are
/// in JSON (where they are escaped by JSON itself).
#[test]
fn control_characters_in_names_never_reach_the_terminal_raw() {
    let sb = Sandbox::new("terminal::control_chars");
    let evil = "/etc/\u{1b}[2J\u{1b}[1;1Hall-good\u{7}";
    let t = crate::harness::tarkit::RawTar::new()
        .file(evil, b"x")
        .finish();
    let tar = sb.write("evil.tar", &t);
    let r = av(["bundle", tar.to_str().unwrap(), "--no-progress", "-v"]);
    r.code(1);
    assert!(!r.stdout.contains('\u{1b}'), "{:?}", r.stdout);
    assert!(!r.stdout.contains('\u{7}'), "{:?}", r.stdout);
    assert!(r.stdout.contains(r"\x1b[2J"), "{}", r.stdout);
    // Colour still works: only our own escapes reach the terminal.
    let r = av([
        "bundle",
        tar.to_str().unwrap(),
        "--no-progress",
        "--color",
        "always",
    ]);
    assert!(!r.stdout.contains("\u{1b}[2J"), "{:?}", r.stdout);
    assert!(r.stdout.contains("\u{1b}[31;1mFAIL"), "{:?}", r.stdout);
    // JSON carries the name exactly.
    let j = crate::harness::bundle(&tar, &[]);
    let found = j
        .findings()
        .into_iter()
        .any(|f| f.target.contains("\u{1b}[2J"));
    assert!(found, "{}", j.stdout);
}
