//! The smaller promises of the command line (issue 16): the digest form the
//! tool prints is accepted back, standard input is an archive source, an
//! empty file says so, a release folder's SHA256SUMS is found, a download
//! folder gets a hint, sizes take any case, and `explain` suggests.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{av, bundle, Run, Sandbox, BIN};

fn sha256_of(p: &std::path::Path) -> String {
    airgap_verify::sample::sha256_hex(&std::fs::read(p).unwrap())
}

/// `bundle ARGS` with `input` on standard input (a pipe).
fn piped(input: &[u8], args: &[&str]) -> Run {
    let mut child = Command::new(BIN)
        .arg("bundle")
        .args(args)
        .args(["--format", "json", "--no-progress"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run::from(out)
}

#[test]
fn the_sha256_prefix_the_tool_prints_is_accepted() {
    let sb = Sandbox::new("promises::sha256_prefix");
    let tar = sb.sample();
    std::fs::remove_file(sb.path("release/sekoia-self-hosted-v1.0.0.tar.sha256")).ok();
    let hex = sha256_of(&tar);
    let r = bundle(&tar, &["--sha256", &format!("sha256:{hex}")]);
    r.code(0);
    r.has("bundle:checksum-verified", "pass", tar.to_str().unwrap());
    let upper = format!("SHA256:{}", hex.to_uppercase());
    bundle(&tar, &["--sha256", &upper]).code(0);
    let wrong = format!("sha256:{}", "0".repeat(64));
    bundle(&tar, &["--sha256", &wrong]).code(1).has(
        "bundle:checksum-mismatch",
        "fail",
        tar.to_str().unwrap(),
    );
    let r = bundle(&tar, &["--sha256", "sha256:abc"]);
    r.code(2);
    assert!(r.stderr.contains("--sha256"), "{}", r.stderr);
}

#[test]
fn an_archive_on_standard_input() {
    let sb = Sandbox::new("promises::stdin");
    let tar = sb.sample();
    let bytes = std::fs::read(&tar).unwrap();
    let hex = sha256_of(&tar);
    let r = piped(&bytes, &["-", "--sha256", &hex]);
    r.code(0);
    r.has("bundle:checksum-verified", "pass", "-");
    let input = &r.json()["inputs"][0];
    assert_eq!(input["path"], "-");
    assert_eq!(input["size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(input["sha256"], hex.as_str());
    // Without a digest it is read all the same, and says nothing ties it
    // to the vendor's checksum.
    let r = piped(&bytes, &["-"]);
    r.code(0);
    r.has("bundle:checksum-missing", "warn", "-");
    // /dev/stdin on a pipe: its size is what was read, not 0.
    let r = piped(&bytes, &["/dev/stdin"]);
    assert_eq!(
        r.json()["inputs"][0]["size"].as_u64(),
        Some(bytes.len() as u64)
    );
    // A corrupted stream on standard input fails as a file would.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    piped(&bad, &["-", "--sha256", &hex])
        .code(1)
        .has("bundle:checksum-mismatch", "fail", "-");
}

#[test]
fn an_empty_file_says_it_is_empty() {
    let sb = Sandbox::new("promises::empty");
    let p = sb.write("release.tar", b"");
    let r = bundle(&p, &[]);
    r.code(1);
    let f = r.has("bundle:unrecognised-format", "fail", p.to_str().unwrap());
    assert!(f.message.contains("empty (0 bytes)"), "{}", f.message);
    assert!(!f.message.contains("first bytes: )"), "{}", f.message);
}

/// `sha256sum * > SHA256SUMS` is how many vendors publish a release folder.
#[test]
fn a_sha256sums_beside_the_archive_is_used_when_it_names_it() {
    let sb = Sandbox::new("promises::sha256sums");
    let tar = sb.sample();
    std::fs::remove_file(sb.path("release/sekoia-self-hosted-v1.0.0.tar.sha256")).unwrap();
    let hex = sha256_of(&tar);
    let sums = sb.path("release/SHA256SUMS");
    std::fs::write(
        &sums,
        format!(
            "{}  other-release.tar\n{hex}  sekoia-self-hosted-v1.0.0.tar\n",
            "1".repeat(64)
        ),
    )
    .unwrap();
    let r = bundle(&tar, &[]);
    r.code(0);
    let f = r.has("bundle:checksum-verified", "pass", tar.to_str().unwrap());
    assert!(
        f.evidence["origin"]
            .as_str()
            .unwrap()
            .ends_with("SHA256SUMS"),
        "{:?}",
        f.evidence
    );
    // A wrong line for it is a mismatch, not silence.
    std::fs::write(
        &sums,
        format!("{}  sekoia-self-hosted-v1.0.0.tar\n", "2".repeat(64)),
    )
    .unwrap();
    bundle(&tar, &[])
        .code(1)
        .has("bundle:checksum-mismatch", "fail", tar.to_str().unwrap());
    // A list about other files is not this archive's checksum.
    std::fs::write(&sums, format!("{hex}  other-release.tar\n")).unwrap();
    bundle(&tar, &[])
        .code(0)
        .has("bundle:checksum-missing", "warn", tar.to_str().unwrap());
    // --output may not name it either: it is an input of the run.
    let r = av([
        "bundle".as_ref(),
        tar.as_os_str(),
        "--output".as_ref(),
        sums.as_os_str(),
    ]);
    r.code(2);
    assert_eq!(
        std::fs::read_to_string(&sums).unwrap(),
        format!("{hex}  other-release.tar\n")
    );
}

#[test]
fn a_download_folder_points_at_its_archives() {
    let sb = Sandbox::new("promises::download_folder");
    let tar = sb.sample();
    let dir = tar.parent().unwrap();
    let r = bundle(dir, &[]);
    let f = r.has(
        "bundle:folder-holds-archives",
        "warn",
        dir.to_str().unwrap(),
    );
    assert!(
        f.message
            .contains(&format!("airgap-verify bundle {}", tar.display())),
        "{}",
        f.message
    );
    assert_eq!(f.evidence["archives"][0], "sekoia-self-hosted-v1.0.0.tar");
    // A staged release (the archive unpacked) gets no such hint.
    let staged = sb.path("staged");
    crate::harness::extract(&tar, &staged);
    bundle(&staged, &[]).lacks("bundle:folder-holds-archives");
}

#[test]
fn size_units_in_any_case_on_the_command_line() {
    let sb = Sandbox::new("promises::size_units");
    let tar = sb.sample();
    bundle(&tar, &["--max-manifest-size", "16mib"]).code(0);
    bundle(&tar, &["--max-manifest-size", "16MIB"]).code(0);
    let r = bundle(&tar, &["--max-manifest-size", "16 parsecs"]);
    r.code(2);
    assert!(r.stderr.contains("MiB"), "{}", r.stderr);
}

#[test]
fn explain_suggests_the_code_meant() {
    let r = av(["explain", "unlisted-file"]);
    r.code(2);
    assert!(
        r.stderr.contains("did you mean `bundle:unlisted-file`"),
        "{}",
        r.stderr
    );
    let r = av(["explain", "s3:bucket-mising"]);
    assert!(r.stderr.contains("`s3:bucket-missing`"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// `check --bundle` honours the archive flags of `bundle` (it took only
/// three of them before).
#[test]
fn check_takes_the_archive_flags_of_bundle() {
    let sb = Sandbox::new("promises::check_archive_flags");
    let lab = crate::harness::lab::Lab::get();
    let tar = sb.sample();
    let p = sb.write(
        "perimeter.yml",
        format!(
            "dns:\n  servers: [{}]\n  public_names: []\n",
            lab.var("DNS_AUTH_ADDR")
        ),
    );
    let wrong = "0".repeat(64);
    let base = [
        "check",
        "--config",
        p.to_str().unwrap(),
        "--bundle",
        tar.to_str().unwrap(),
        "--format",
        "json",
        "--no-progress",
        "--timeout",
        "2s",
    ];
    let d = av(base
        .iter()
        .chain(&["--sha256", &wrong, "--no-content", "--dry-run"]));
    d.code(0);
    assert!(
        d.stdout.contains(&format!("sha256:{wrong} from --sha256")),
        "{}",
        d.stdout
    );
    let r = av(base
        .iter()
        .chain(&["--sha256", &wrong, "--no-content", "--deny-external"]));
    r.code(1);
    r.has("bundle:checksum-mismatch", "fail", tar.to_str().unwrap());
    r.has("bundle:content-not-checked", "skip", tar.to_str().unwrap());
    assert_eq!(r.json()["policy"]["settings"]["content"], false);
}
