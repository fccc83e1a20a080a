//! The hostile-archive corpus (testdata/hostile/): every case is run through
//! `airgap-verify bundle` as its own process, which must exit 1 without a
//! panic, report exactly the failing findings the case lists (code and
//! member), and stay within time and memory bounds measured on the child
//! itself (wall clock, and the peak RSS of the child's own address space).
//!
//! `testdata/hostile/generate.py` writes the corpus; the small cases are
//! committed and must be byte-for-byte what it writes, the big ones (bombs,
//! 100 MB headers and manifests, 200,000 entries) are written here, into a
//! scratch folder, on every run.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Run, Sandbox, BIN};

/// Peak RSS allowed to any case.
const MAX_RSS_KIB: u64 = 64 << 10;
/// Wall time allowed to a decompression bomb (issue #7 acceptance).
const MAX_BOMB_TIME: Duration = Duration::from_secs(10);
/// Wall time allowed to any other case (the debug binary hashes 100 MB or
/// 200,000 entries in a few seconds on a loaded machine).
const MAX_TIME: Duration = Duration::from_secs(60);
/// A case still running after this is killed and fails.
const WATCHDOG: Duration = Duration::from_secs(120);

struct Case {
    name: String,
    big: bool,
    args: Vec<String>,
    /// (code, target); target `-` is the archive itself, `*` any number
    /// (at least one) of findings of that code.
    expect: BTreeSet<(String, String)>,
}

fn parse_cases(text: &str) -> Vec<Case> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(" | ").collect();
            assert_eq!(f.len(), 4, "malformed cases.txt line: {l}");
            let args = match f[2].trim() {
                "-" => Vec::new(),
                a => a.split_whitespace().map(str::to_string).collect(),
            };
            let expect = f[3]
                .split(" ; ")
                .map(|e| {
                    let (code, target) = e.trim().split_once(' ').expect("CODE TARGET");
                    (code.to_string(), target.to_string())
                })
                .collect();
            Case {
                name: f[0].trim().to_string(),
                big: f[1].trim() == "big",
                args,
                expect,
            }
        })
        .collect()
}

struct Measured {
    run: Run,
    wall: Duration,
    rss_kib: u64,
    /// `rss_kib` is the child's own `VmHWM`, not `wait4`'s upper bound.
    sampled: bool,
    signal: Option<i32>,
}

/// Runs the binary, samples its peak RSS while it runs, and reaps it with
/// `wait4` (to get the exit status without racing the sampler).
///
/// Why not `wait4`'s `ru_maxrss`: Linux carries the high-water mark of the
/// address space a process had before `execve` into the new image's rusage,
/// and `Command::spawn` uses `vfork`/`posix_spawn`, so before `execve` the
/// child *is* the test process's address space. A test binary that has grown
/// to 370 MB running other tests in parallel makes every child "use" 370 MB
/// (seen in CI). `VmHWM` in `/proc/PID/status` is the high-water mark of the
/// child's own, post-exec address space; it is monotonic, so sampling it every
/// 2 ms misses only growth in the last 2 ms before exit. `ru_maxrss` is still
/// an upper bound, and is used when the child exits before the first sample
/// (the caller measures again when that bound is over the limit).
fn run_measured(args: &[OsString]) -> Measured {
    let started = Instant::now();
    // Reaped below with wait4, not Child::wait, so that the sampler can keep
    // reading /proc/PID until the moment the child exits.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run airgap-verify");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::spawn(move || {
        let status = format!("/proc/{pid}/status");
        let mut peak: Option<u64> = None;
        loop {
            if let Some(kib) = own_hwm_kib(&status) {
                peak = Some(peak.map_or(kib, |p| p.max(kib)));
            }
            match done_rx.recv_timeout(Duration::from_millis(2)) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return peak,
            }
            if started.elapsed() > WATCHDOG {
                // SAFETY: plain syscall on the child we spawned and have not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    });
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = started.elapsed();
    let _ = done_tx.send(());
    let sampled = sampler.join().unwrap();
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
    let (code, signal) = if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), None)
    } else {
        (-1, Some(libc::WTERMSIG(status)))
    };
    Measured {
        run: Run {
            code,
            stdout,
            stderr,
        },
        wall,
        rss_kib: sampled.unwrap_or(ru.ru_maxrss as u64),
        sampled: sampled.is_some(),
        signal,
    }
}

/// `VmHWM` of the process behind `status`, once it runs our binary: before
/// its `execve` the child still shares the test process's memory (the name
/// is the test's), and after its exit a zombie has no `Vm` lines.
fn own_hwm_kib(status: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let mut lines = text.lines();
    let name = lines.next()?.strip_prefix("Name:")?.trim();
    if name != "airgap-verify" {
        return None;
    }
    lines
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Writes the corpus into `dir` with the committed generator.
fn generate(dir: &Path) {
    let st = Command::new("python3")
        .arg(repo("testdata/hostile/generate.py"))
        .arg(dir)
        .arg("--big")
        .status()
        .expect("python3 is needed to generate the hostile corpus");
    assert!(st.success(), "generate.py failed: {st}");
}

/// The committed small cases and cases.txt are what the generator writes.
fn committed_corpus_is_current(fresh: &Path, cases: &[Case]) {
    let committed = repo("testdata/hostile");
    let mut names: Vec<String> = cases
        .iter()
        .filter(|c| !c.big)
        .map(|c| c.name.clone())
        .collect();
    names.push("cases.txt".into());
    for name in &names {
        let want = std::fs::read(fresh.join(name)).unwrap();
        let have = std::fs::read(committed.join(name))
            .unwrap_or_else(|e| panic!("testdata/hostile/{name}: {e}"));
        assert!(
            want == have,
            "testdata/hostile/{name} differs from what generate.py writes: run `python3 testdata/hostile/generate.py testdata/hostile`"
        );
    }
    for e in std::fs::read_dir(&committed).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(
            n == "generate.py" || n == "README.md" || names.contains(&n),
            "testdata/hostile/{n} is not a case generate.py writes (stale?)"
        );
    }
}

#[test]
fn corpus() {
    let sb = Sandbox::new("hostile_corpus");
    let dir = sb.path("corpus");
    generate(&dir);
    let cases = parse_cases(&std::fs::read_to_string(dir.join("cases.txt")).unwrap());
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    committed_corpus_is_current(&dir, &cases);

    let fail_by_default: BTreeSet<&str> = airgap_verify::codes::ALL
        .iter()
        .filter(|c| c.default_status == airgap_verify::finding::Status::Fail)
        .map(|c| c.id)
        .collect();
    let mut problems = Vec::new();
    let mut table = Vec::new();
    for c in &cases {
        let path = dir.join(&c.name);
        let shown = path.display().to_string();
        let mut args: Vec<OsString> = vec!["bundle".into(), path.clone().into()];
        args.extend(["--format", "json", "--no-progress"].iter().map(Into::into));
        args.extend(c.args.iter().map(Into::into));
        // A case that ends within a few milliseconds may exit before the
        // sampler (starved on a loaded machine) reads it once; then only
        // wait4's upper bound is known, which includes the test process's
        // own size. Over the limit that proves nothing: measure again.
        let mut m = run_measured(&args);
        for _ in 0..5 {
            if m.sampled || m.rss_kib <= MAX_RSS_KIB {
                break;
            }
            m = run_measured(&args);
        }
        let bomb = c.name.starts_with("bomb-");
        table.push(format!(
            "{:32} {:>7} ms {:>7} KiB{}",
            c.name,
            m.wall.as_millis(),
            m.rss_kib,
            if bomb { "  (bomb)" } else { "" }
        ));
        let mut bad = |what: String| problems.push(format!("{}: {what}", c.name));
        if let Some(sig) = m.signal {
            bad(format!("killed by signal {sig} after {:?}", m.wall));
            continue;
        }
        if m.run.stderr.contains("panicked") {
            bad(format!("panic: {}", m.run.stderr));
        }
        if m.run.code != 1 {
            bad(format!(
                "exit {} (want 1); stderr: {}",
                m.run.code, m.run.stderr
            ));
        }
        if m.rss_kib > MAX_RSS_KIB {
            bad(format!("peak RSS {} KiB over {MAX_RSS_KIB} KiB", m.rss_kib));
        }
        let limit = if bomb { MAX_BOMB_TIME } else { MAX_TIME };
        if m.wall > limit {
            bad(format!("took {:?}, over {limit:?}", m.wall));
        }
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&m.run.stdout) else {
            bad(format!("stdout is not JSON: {}", m.run.stdout));
            continue;
        };
        let any_target: BTreeSet<&str> = c
            .expect
            .iter()
            .filter(|(_, t)| t == "*")
            .map(|(code, _)| code.as_str())
            .collect();
        let expect: BTreeSet<(String, String)> = c
            .expect
            .iter()
            .map(|(code, t)| match t.as_str() {
                "-" => (code.clone(), shown.clone()),
                "*" => (code.clone(), "*".into()),
                _ => (code.clone(), t.clone()),
            })
            .collect();
        // Every failing finding of a code that fails by default, plus the
        // expected ones (a warning made to fail by --fail-on warn): the
        // case's finding, exactly, and no collateral noise.
        let got: BTreeSet<(String, String)> = json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] == "fail")
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    f["target"].as_str().unwrap().to_string(),
                )
            })
            .filter(|k| fail_by_default.contains(k.0.as_str()) || expect.contains(k))
            .map(|(code, t)| {
                let t = if any_target.contains(code.as_str()) {
                    "*".into()
                } else {
                    t
                };
                (code, t)
            })
            .collect();
        if got != expect {
            bad(format!("failing findings {got:?}, want {expect:?}"));
        }
    }
    println!("{}", table.join("\n"));
    assert!(
        problems.is_empty(),
        "{} of {} cases failed:\n{}\n\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n"),
        table.join("\n")
    );
}
