//! `--dry-run` keeps its promise: the plan is printed, and nothing is
//! contacted, no archive is opened and nothing is written. Every run is
//! recorded with strace: its sockets and connections, every file it opens
//! (with the mode) and every read, by path (`-y`).
//!
//! The configuration points every service, flow and public egress target at
//! loopback addresses, so even a broken dry run never leaves the machine.

use std::path::Path;
use std::process::Command;

use crate::harness::lab::Lab;
use crate::harness::{Run, Sandbox, BIN};

/// Every section: services, flows and egress targets, all on loopback
/// (127.0.0.0/9 is the perimeter; 127.200.0.0/16 plays the internet).
fn perimeter(ca: &str) -> String {
    format!(
        "ca_bundle: {ca}
allowed_networks: [127.0.0.0/9]
dns:
  servers: [127.0.0.10]
  expect: [{{name: git.perimeter.test}}]
ntp:
  servers: [127.0.0.20]
smtp:
  host: 127.0.0.30
  port: 587
  mail_from: platform@perimeter.test
  rcpt_to: soc@perimeter.test
git:
  url: https://127.0.0.40/sekoia/stacks.git
registry:
  url: https://127.0.0.41
  project: sekoia
s3:
  endpoint: https://127.0.0.42
  access_key: AKIA
  secret_key_env: DRY_S3_SECRET
  buckets: [sekoia-data]
flows:
  load_balancer: 127.0.0.60
  orchestration: 127.0.0.61
  managers: [127.0.0.62]
  workers: [127.0.0.63]
egress:
  internet_names: [example.com]
  internet_addresses: [127.200.0.1]
  ntp_pool: [127.200.0.2]
"
    )
}

/// What strace saw of one run.
struct Trace {
    run: Run,
    lines: Vec<String>,
}

impl Trace {
    fn calls(&self, name: &str) -> Vec<&String> {
        // `-f` prefixes each line with the thread id.
        self.lines
            .iter()
            .filter(|l| {
                let call = l.split_once(' ').map_or(l.as_str(), |(_, rest)| rest);
                call.trim_start().starts_with(&format!("{name}("))
            })
            .collect()
    }

    /// Nothing contacted, `archive` neither opened nor read, nothing written.
    fn assert_untouched(&self, what: &str, archive: &Path) {
        let connects = self.calls("connect");
        assert!(
            connects.is_empty(),
            "{what}: {} connect(2): {connects:#?}",
            connects.len()
        );
        let inet: Vec<_> = self
            .calls("socket")
            .into_iter()
            .filter(|l| l.contains("AF_INET"))
            .collect();
        assert!(inet.is_empty(), "{what}: network sockets: {inet:#?}");
        for send in ["sendto", "sendmsg", "sendmmsg"] {
            let s = self.calls(send);
            assert!(s.is_empty(), "{what}: {send}: {s:#?}");
        }
        let a = archive.display().to_string();
        let opened: Vec<_> = ["open", "openat", "openat2"]
            .iter()
            .flat_map(|c| self.calls(c))
            .filter(|l| l.contains(&format!("\"{a}\"")))
            .collect();
        assert!(
            opened.is_empty(),
            "{what}: the archive was opened: {opened:#?}"
        );
        let reads: Vec<_> = ["read", "pread64", "readv", "preadv", "mmap"]
            .iter()
            .flat_map(|c| self.calls(c))
            .filter(|l| l.contains(&format!("<{a}>")))
            .collect();
        assert!(
            reads.is_empty(),
            "{what}: {} read(s) of the archive",
            reads.len()
        );
        let written: Vec<_> = ["open", "openat", "openat2"]
            .iter()
            .flat_map(|c| self.calls(c))
            .filter(|l| {
                ["O_WRONLY", "O_RDWR", "O_CREAT"]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .chain(
                [
                    "creat",
                    "mkdir",
                    "mkdirat",
                    "rename",
                    "renameat",
                    "renameat2",
                    "unlink",
                    "unlinkat",
                    "rmdir",
                ]
                .iter()
                .flat_map(|c| self.calls(c)),
            )
            .collect();
        assert!(written.is_empty(), "{what}: writes: {written:#?}");
    }
}

fn traced(sb: &Sandbox, name: &str, args: &[&str]) -> Trace {
    let log = sb.path(&format!("{name}.strace"));
    let out = Command::new("strace")
        .args(["-f", "-qq", "-y", "-s", "256", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=socket,connect,sendto,sendmsg,sendmmsg,open,openat,openat2,creat,read,pread64,readv,preadv,mmap,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir",
        ])
        .arg(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env("DRY_S3_SECRET", "not-a-real-secret")
        .env("SMTP_PASSWORD", "not-a-real-password")
        .output()
        .expect("strace (scripts/test.sh installs it)");
    let run = Run::from(out);
    let text = std::fs::read_to_string(&log).expect("strace log");
    let _ = std::fs::remove_file(&log);
    Trace {
        run,
        lines: text.lines().map(str::to_string).collect(),
    }
}

/// Every subset of `flags`.
fn subsets<'a>(flags: &[&'a str]) -> Vec<Vec<&'a str>> {
    (0..1u32 << flags.len())
        .map(|m| {
            flags
                .iter()
                .enumerate()
                .filter(|(i, _)| m & (1 << i) != 0)
                .map(|(_, f)| *f)
                .collect()
        })
        .collect()
}

/// `check --dry-run` with every combination of the flags that make a real
/// run write, send mail, contact public addresses or read the archive: no
/// connection, no read of the archive, no file written (not even
/// `--output`), and the plan names what each flag would do.
#[test]
fn check_dry_run_contacts_nothing_reads_no_archive_and_writes_nothing() {
    let sb = Sandbox::new("dryrun::check");
    let lab = Lab::get();
    let cfg = sb.write("perimeter.yml", perimeter(&lab.ca()));
    let archive = sb.sample();
    let out = sb.path("report.json");
    let (cfg_s, archive_s, out_s) = (
        cfg.display().to_string(),
        archive.display().to_string(),
        out.display().to_string(),
    );
    let flags = [
        "--send-test-mail",
        "--probe-internet",
        "--write-probe",
        "--s3-benchmark",
        "--bundle",
    ];
    let mut runs = 0;
    for set in subsets(&flags) {
        let mut args = vec!["check", "--dry-run", "--config", &cfg_s];
        for f in &set {
            args.push(f);
            if *f == "--bundle" {
                args.push(&archive_s);
            }
        }
        args.extend(["--format", "json", "--output", &out_s]);
        let what = args.join(" ");
        let t = traced(&sb, &format!("check-{runs}"), &args);
        t.run.code(0);
        t.assert_untouched(&what, &archive);
        assert!(!out.exists(), "{what}: --output was written");
        let plan = &t.run.stdout;
        for (flag, line) in [
            ("--send-test-mail", "sends one test message"),
            ("--probe-internet", "egress --probe-internet"),
            ("--write-probe", "branch main, write probe"),
            ("--s3-benchmark", "s3 benchmark"),
            ("--bundle", "bundle content: nested archives opened"),
        ] {
            assert_eq!(
                plan.contains(line),
                set.contains(&flag),
                "{what}: the plan {} `{line}`:\n{plan}",
                if set.contains(&flag) { "lacks" } else { "has" }
            );
        }
        if !set.contains(&"--bundle") {
            assert!(plan.contains("no archive is verified"), "{what}:\n{plan}");
        }
        for service in [
            "dns ",
            "ntp ",
            "smtp ",
            "git ",
            "registry ",
            "s3 ",
            "flows as orchestration",
        ] {
            assert!(
                plan.contains(service),
                "{what}: no `{service}` in the plan:\n{plan}"
            );
        }
        runs += 1;
    }
    assert_eq!(runs, 32);
}

/// The other commands' dry runs, with each flag that makes a real run act:
/// the same three promises.
#[test]
fn every_command_dry_run_contacts_nothing_and_writes_nothing() {
    let sb = Sandbox::new("dryrun::every_command");
    let lab = Lab::get();
    let cfg = sb.write("perimeter.yml", perimeter(&lab.ca()));
    let archive = sb.sample();
    let (cfg_s, archive_s) = (cfg.display().to_string(), archive.display().to_string());
    let mut cases: Vec<Vec<&str>> = Vec::new();
    for set in subsets(&[
        "--send-test-mail",
        "--write-probe",
        "--s3-benchmark",
        "--strict-airgap",
    ]) {
        let mut a = vec!["services", "--dry-run", "--config", &cfg_s];
        a.extend(set);
        cases.push(a);
    }
    for set in subsets(&["--probe-internet", "--strict-airgap"]) {
        let mut a = vec!["egress", "--dry-run", "--config", &cfg_s];
        a.extend(set);
        cases.push(a);
    }
    for role in ["orchestration", "node", "client"] {
        cases.push(vec![
            "flows",
            "--dry-run",
            "--config",
            &cfg_s,
            "--role",
            role,
        ]);
    }
    for set in subsets(&["--deep", "--deny-external"]) {
        let mut a = vec!["bundle", "--dry-run", &archive_s];
        a.extend(set);
        cases.push(a);
    }
    cases.push(vec!["bundle", "--dry-run", &archive_s, "--no-content"]);
    for (i, args) in cases.iter().enumerate() {
        let what = args.join(" ");
        let t = traced(&sb, &format!("case-{i}"), args);
        t.run.code(0);
        t.assert_untouched(&what, &archive);
        assert!(!t.run.stdout.trim().is_empty(), "{what}: no plan printed");
    }
}

/// `bundle --dry-run` still checks what it can without the archive's body:
/// an unusable `--sha256` is the usual usage error (exit 2).
#[test]
fn bundle_dry_run_checks_its_arguments() {
    let sb = Sandbox::new("dryrun::bundle_args");
    let archive = sb.sample();
    let a = archive.display().to_string();
    crate::harness::av(["bundle", &a, "--dry-run", "--sha256", "abc"]).code(2);
    let r = crate::harness::av(["bundle", &a, "--dry-run", "--no-content"]);
    r.code(0);
    assert!(
        r.stdout.contains("not checked (--no-content)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(".tar.sha256"), "{}", r.stdout);
}
