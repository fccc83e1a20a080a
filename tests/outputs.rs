//! `--output` never destroys an input and never throws a run away: naming
//! any input is a usage error (by inode, so another spelling or a symlink
//! is caught), the file is created before the pass, and it is replaced
//! only by a complete report. Every input is compared byte for byte after
//! each refused run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::lab::Lab;
use crate::harness::{av, Sandbox, BIN};

fn sha(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

/// Every file under `dir`, with its digest.
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let h = sha(&p);
                out.push((p, h));
            }
        }
    }
    out.sort();
    out
}

/// `args` is refused with exit 2 and a message naming `what`; nothing
/// under the sandbox changed.
fn refused(sb: &Sandbox, args: &[&str], what: &str) {
    let before = snapshot(&sb.dir);
    let r = av(args);
    r.code(2);
    assert!(
        r.stderr.contains(what) && r.stderr.lines().count() == 1,
        "{args:?}: want one line naming `{what}`, got:\n{}",
        r.stderr
    );
    assert_eq!(snapshot(&sb.dir), before, "{args:?} changed a file");
}

#[test]
fn output_naming_an_input_is_a_usage_error_and_every_input_stays_intact() {
    let sb = Sandbox::new("outputs::inputs");
    let tar = sb.sample();
    let t = tar.display().to_string();
    let sum = format!("{t}.sha256");
    let rel = sb.dir.join("release");
    // Another spelling, and a symlink, of the archive.
    let spelled = format!(
        "{}/../release/{}",
        rel.display(),
        tar.file_name().unwrap().to_str().unwrap()
    );
    let link = sb.path("link.tar");
    std::os::unix::fs::symlink(&tar, &link).unwrap();
    let link = link.display().to_string();
    let key = sb.write("vendor.pub", "untrusted comment: not a key\n");
    let key = key.display().to_string();
    let cosign = sb.write("cosign.pub", "not a key\n");
    let cosign = cosign.display().to_string();
    let sumfile = sb.write("SUMS", std::fs::read(&sum).unwrap());
    let sumfile = sumfile.display().to_string();
    for (args, what) in [
        (
            vec!["bundle", &t, "--format", "json", "--output", &t],
            "is the archive",
        ),
        (vec!["bundle", &t, "--output", &sum], "is the checksum file"),
        (vec!["bundle", &t, "--output", &spelled], "is the archive"),
        (vec!["bundle", &t, "--output", &link], "is the archive"),
        (vec!["bundle", &link, "--output", &t], "is the archive"),
        (
            vec!["bundle", &t, "--checksum", &sumfile, "--output", &sumfile],
            "is the checksum file",
        ),
        (
            vec!["bundle", &t, "--pubkey", &key, "--output", &key],
            "is the --pubkey file",
        ),
        (
            vec!["bundle", &t, "--cosign-key", &cosign, "--output", &cosign],
            "is the --cosign-key file",
        ),
        (
            vec!["bundle", &t, "--output", &format!("json={t}")],
            "is the archive",
        ),
        (
            vec![
                "bundle",
                &t,
                "--output",
                "json=a.json",
                "--output",
                "junit=a.json",
            ],
            "named twice",
        ),
        (
            vec!["bundle", &t, "--dry-run", "--output", &t],
            "is the archive",
        ),
        (
            vec!["manifest", "create", &t, "--output", &t],
            "is the archive",
        ),
    ] {
        refused(&sb, &args, what);
    }
    // A staged folder: no report inside it.
    let inside = rel.join("report.json").display().to_string();
    let r = rel.display().to_string();
    refused(
        &sb,
        &["bundle", &r, "--output", &inside],
        "inside the folder being verified",
    );

    // The configuration, its CA bundle, and check's archive.
    let lab = Lab::get();
    let cfg = sb.write(
        "perimeter.yml",
        lab.config("ntp: {servers: [127.0.0.20]}\n"),
    );
    let c = cfg.display().to_string();
    let ca = lab.ca();
    let ca_copy = sb
        .write("ca.pem", std::fs::read(&ca).unwrap())
        .display()
        .to_string();
    for (args, what) in [
        (
            vec!["services", "--config", &c, "--output", &c],
            "is the configuration",
        ),
        (
            vec![
                "services",
                "--config",
                &c,
                "--ca-bundle",
                &ca_copy,
                "--output",
                &ca_copy,
            ],
            "is the CA bundle",
        ),
        (
            vec!["egress", "--config", &c, "--output", &c],
            "is the configuration",
        ),
        (
            vec!["check", "--config", &c, "--output", &c],
            "is the configuration",
        ),
        (
            vec!["check", "--config", &c, "--bundle", &t, "--output", &sum],
            "is the checksum file",
        ),
        (
            vec![
                "check",
                "--config",
                &c,
                "--bundle",
                &t,
                "--dry-run",
                "--output",
                &t,
            ],
            "is the archive",
        ),
    ] {
        refused(&sb, &args, what);
    }
}

/// An output that cannot be written fails before the pass (the archive is
/// never opened), says "cannot write", and exits 2.
#[test]
fn unwritable_output_fails_before_the_pass() {
    let sb = Sandbox::new("outputs::unwritable");
    let tar = sb.sample();
    let t = tar.display().to_string();
    let log = sb.path("trace");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-y", "-e", "trace=openat,read", "-o"])
        .arg(&log)
        .arg(BIN)
        .args([
            "bundle",
            &t,
            "--format",
            "json",
            "--output",
            "/nonexistent/dir/r.json",
        ])
        .output()
        .expect("strace");
    let r = crate::harness::Run::from(out);
    r.code(2);
    assert!(
        r.stderr
            .contains("cannot write output file /nonexistent/dir/r.json"),
        "{}",
        r.stderr
    );
    let trace = std::fs::read_to_string(&log).unwrap();
    let touched: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains(&format!("<{t}>")))
        .collect();
    assert!(touched.is_empty(), "the archive was read: {touched:#?}");
    // And a folder as output.
    let r = av(["bundle", &t, "--output", sb.dir.to_str().unwrap()]);
    r.code(2);
    assert!(r.stderr.contains("name a file"), "{}", r.stderr);
}

/// The report is written beside the destination and renamed: during the
/// pass the destination still holds the previous report; an interrupted
/// pass leaves it and no temporary file; a complete one replaces it.
#[test]
fn output_is_replaced_only_by_a_complete_report() {
    let sb = Sandbox::new("outputs::atomic");
    let tar = sb.sample();
    let fifo = sb.path("slow.tar");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let dest = sb.path("out/r.json");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(&dest, "previous report\n").unwrap();
    let temps = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n != "r.json")
            .collect()
    };
    for signal in ["INT", "TERM"] {
        let child = crate::harness::bundle_command(&fifo)
            .arg("--output")
            .arg(&dest)
            .spawn()
            .unwrap();
        // The pass blocks on the FIFO with half the archive fed.
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let body = std::fs::read(&tar).unwrap();
        w.write_all(&body[..body.len() / 2]).unwrap();
        let started = Instant::now();
        while temps(dest.parent().unwrap()).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no temporary file created before the pass"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "previous report\n");
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = child.wait_with_output().unwrap();
        drop(w);
        assert_eq!(
            out.status.code(),
            Some(if signal == "INT" { 130 } else { 143 }),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "previous report\n");
        assert_eq!(
            temps(dest.parent().unwrap()),
            Vec::<String>::new(),
            "left behind after SIG{signal}"
        );
    }
    // A complete run replaces it, and leaves nothing else.
    let r = av([
        "bundle",
        tar.to_str().unwrap(),
        "--format",
        "json",
        "--output",
        dest.to_str().unwrap(),
    ]);
    r.code(0);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&dest).unwrap()).unwrap();
    assert_eq!(v["command"], "bundle");
    assert_eq!(temps(dest.parent().unwrap()), Vec::<String>::new());
}
