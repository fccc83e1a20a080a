//! The portable release binary (`scripts/build-static.sh`): no NEEDED entry,
//! and it works in an empty chroot that holds only itself and the files a
//! command reads: `--version`, `explain --list`, `bundle` on the sample
//! release, and `services` against the lab, with DNS servers configured and
//! without (then through the chroot's own `/etc/hosts` and
//! `/etc/resolv.conf`, which only the tool itself can have read: there is
//! no libc, no NSS module and no other file in there).
//!
//! `scripts/test.sh` builds the binary first and passes its path in
//! `AIRGAP_STATIC_BIN`; without it the test builds it (a release build).
//! chroot needs root, as the lab does: these tests fail, never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::lab::Lab;
use crate::harness::{Run, Sandbox};

fn static_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("AIRGAP_STATIC_BIN") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("scripts/build-static.sh"))
            .current_dir(root)
            .output()
            .expect("run scripts/build-static.sh");
        assert!(
            out.status.success(),
            "scripts/build-static.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        root.join(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// A root folder holding only the static binary, as `/airgap-verify`.
fn empty_root(sb: &Sandbox) -> PathBuf {
    let root = sb.path("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(static_bin(), root.join("airgap-verify")).unwrap();
    root
}

fn in_chroot(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    in_chroot_as(None, root, args, env)
}

/// [`in_chroot`] as `user` (`UID:GID`, `chroot --userspec`) when given.
fn in_chroot_as(user: Option<&str>, root: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new("chroot");
    if let Some(user) = user {
        cmd.arg(format!("--userspec={user}"));
    }
    cmd.arg(root).arg("/airgap-verify").args(args).env_clear();
    // PATH for finding chroot itself; the chroot holds no other program.
    cmd.env("NO_COLOR", "1")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("run chroot (needs root)"))
}

#[test]
fn static_binary_has_no_needed_entry_and_runs_alone_in_a_chroot() {
    let sb = Sandbox::new("static_binary::alone");
    let out = Command::new("readelf")
        .arg("-d")
        .arg(static_bin())
        .output()
        .expect("run readelf (binutils)");
    assert!(out.status.success(), "readelf -d failed: {out:?}");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(
        !dynamic.contains("(NEEDED)"),
        "the static binary needs shared libraries:\n{dynamic}"
    );
    // Stripped: no symbol table, debug info in the companion file.
    let sections = Command::new("readelf")
        .args(["-S", "-W"])
        .arg(static_bin())
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(!sections.contains(".symtab"), "not stripped:\n{sections}");
    assert!(
        !sections.contains(".debug_info"),
        "debug info left in:\n{sections}"
    );
    assert!(
        sections.contains(".gnu_debuglink"),
        "no debug link:\n{sections}"
    );

    let root = empty_root(&sb);
    let entries: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert_eq!(entries.len(), 1, "the chroot holds only the binary");
    let v = in_chroot(&root, &["--version"], &[]);
    v.code(0);
    assert_eq!(
        v.stdout.trim(),
        concat!("airgap-verify ", env!("CARGO_PKG_VERSION"))
    );

    let list = in_chroot(&root, &["explain", "--list"], &[]);
    list.code(0);
    let codes = std::fs::read_to_string("testdata/codes.txt").unwrap();
    for line in codes.lines() {
        let code = line.split_whitespace().next().unwrap();
        assert!(list.stdout.contains(code), "explain --list lacks {code}");
    }

    // The sample release, placed inside the chroot with its checksum file.
    let tar = sb.sample();
    let rel = root.join("release");
    std::fs::create_dir_all(&rel).unwrap();
    let name = tar.file_name().unwrap().to_str().unwrap().to_string();
    for f in std::fs::read_dir(tar.parent().unwrap()).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, rel.join(f.file_name().unwrap())).unwrap();
        }
    }
    let r = in_chroot(
        &root,
        &[
            "bundle",
            &format!("/release/{name}"),
            "--format",
            "json",
            "--no-progress",
        ],
        &[],
    );
    r.code(0);
    r.has(
        "bundle:checksum-verified",
        "pass",
        &format!("/release/{name}"),
    );
    // The Git bundle inside was checked too, with no /tmp, /var/tmp or
    // TMPDIR: its scratch folder went to the current directory (chroot's
    // `/`), and was removed.
    r.has("gitbundle:valid", "pass", "argo-stacks.bundle");
    assert_no_scratch_left(&root);
    let bundle_args = [
        "bundle",
        &format!("/release/{name}"),
        "--format",
        "json",
        "--no-progress",
    ];

    // As nobody, nothing of the chroot is writable: the Git bundle is not
    // checked, and one finding says why and what to do (no panic, and the
    // run does not pass).
    let nobody = Some("65534:65534");
    let r = in_chroot_as(nobody, &root, &bundle_args, &[]);
    r.code(1);
    let f = r.has("gitbundle:not-checked", "fail", "argo-stacks.bundle");
    for part in [
        "/tmp: No such file or directory",
        "/var/tmp: No such file or directory",
        "/: Permission denied",
        "set TMPDIR to a writable folder",
    ] {
        assert!(f.message.contains(part), "{part} not in: {}", f.message);
    }
    r.lacks("gitbundle:valid");
    // TMPDIR names a writable folder: used first, and emptied.
    let scratch = root.join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::set_permissions(
        &scratch,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let r = in_chroot_as(nobody, &root, &bundle_args, &[("TMPDIR", "/scratch")]);
    r.code(0);
    r.has("gitbundle:valid", "pass", "argo-stacks.bundle");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    std::fs::remove_dir(&scratch).unwrap();
    assert_no_scratch_left(&root);

    // A tampered byte is still caught: the run above did check something.
    let mut bytes = std::fs::read(rel.join(&name)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(rel.join(&name), bytes).unwrap();
    let bad = in_chroot(
        &root,
        &[
            "bundle",
            &format!("/release/{name}"),
            "--format",
            "json",
            "--no-progress",
        ],
        &[],
    );
    bad.code(1);
    bad.has(
        "bundle:checksum-mismatch",
        "fail",
        &format!("/release/{name}"),
    );
}

/// No `gitbundle-*` scratch folder left in the chroot's root.
fn assert_no_scratch_left(root: &Path) {
    let left: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gitbundle-"))
        .collect();
    assert!(left.is_empty(), "scratch left in the chroot: {left:?}");
}

/// `services` from the chroot: NTP and SMTP by name, the registry by URL.
fn services_in(root: &Path, dns: &str) -> Run {
    let lab = Lab::get();
    std::fs::copy(lab.ca(), root.join("ca.pem")).unwrap();
    let yaml = format!(
        "ca_bundle: /ca.pem\nallowed_networks: [127.0.0.0/8]\n{dns}ntp:\n  servers: [{ntp}]\n\
         smtp:\n  - {{host: {smtp}, port: 25}}\nregistry:\n  url: {reg}\n  project: sekoia\n",
        ntp = lab.var("NTP_HOST"),
        smtp = lab.var("SMTP_HOST"),
        reg = lab.var("REGISTRY_URL"),
    );
    std::fs::write(root.join("perimeter.yml"), yaml).unwrap();
    in_chroot(
        root,
        &[
            "services",
            "--config",
            "/perimeter.yml",
            "--format",
            "json",
            "--no-progress",
            "--timeout",
            "2s",
        ],
        &[],
    )
}

fn assert_services_reached(r: &Run, lab: &Lab) {
    let ntp = r.has("ntp:synchronised", "pass", lab.var("NTP_HOST"));
    assert_eq!(
        ntp.evidence["address"],
        format!("{}:123", lab.var("NTP_ADDR"))
    );
    let smtp = format!("{}:25", lab.var("SMTP_HOST"));
    r.has("smtp:ready", "pass", &smtp);
    r.has("tls:verified", "pass", &smtp);
    r.has("registry:reachable", "pass", lab.var("REGISTRY_URL"));
}

#[test]
fn static_binary_probes_the_lab_from_a_chroot_with_and_without_dns_servers() {
    let sb = Sandbox::new("static_binary::services");
    let lab = Lab::get();
    let root = empty_root(&sb);

    // DNS servers configured: the perimeter's DNS answers.
    let dns = format!(
        "dns:\n  servers: [{}]\n  public_names: []\n",
        lab.var("DNS_AUTH_ADDR")
    );
    let r = services_in(&root, &dns);
    assert_services_reached(&r, &lab);

    // None configured and nothing in the chroot's /etc: nothing resolves
    // (the control: no resolver outside the tool answered the run above or
    // the one below).
    let r = services_in(&root, "");
    r.has("net:unresolved", "fail", lab.var("NTP_HOST"));
    r.lacks("ntp:synchronised");

    // None configured: NTP's name from /etc/hosts, the others from the
    // server /etc/resolv.conf names (the lab's authoritative server).
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("hosts"),
        format!(
            "127.0.0.1 localhost\n{} {}\n",
            lab.var("NTP_ADDR"),
            lab.var("NTP_HOST")
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("resolv.conf"),
        format!("# lab\nnameserver {}\n", lab.var("DNS_AUTH_ADDR")),
    )
    .unwrap();
    let r = services_in(&root, "");
    assert_services_reached(&r, &lab);

    // /etc/hosts alone: NTP resolves, SMTP (not listed) does not, since the
    // default server 127.0.0.1:53 is not a lab DNS server.
    std::fs::remove_file(etc.join("resolv.conf")).unwrap();
    let r = services_in(&root, "");
    r.has("ntp:synchronised", "pass", lab.var("NTP_HOST"));
    r.lacks("smtp:ready");

    // The tool read /etc/hosts itself: an nsswitch.conf that keeps glibc
    // away from the file ("hosts: dns") changes nothing, where a lookup
    // through getaddrinfo would now fail for NTP (static glibc has its
    // files and dns sources built in, so only this tells the two apart).
    std::fs::write(etc.join("nsswitch.conf"), "hosts: dns\n").unwrap();
    let r = services_in(&root, "");
    r.has("ntp:synchronised", "pass", lab.var("NTP_HOST"));
}
