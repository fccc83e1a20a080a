//! `sigstore verify-bundle`, the Sigstore conformance CLI protocol, on the
//! suite's offline verification cases (testdata/sigstore-conformance, or
//! the folder in AIRGAP_SIGSTORE_CONFORMANCE), plus the protocol's edges.

use std::path::{Path, PathBuf};

use crate::harness::{av, Run, Sandbox};

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

pub(crate) fn suite() -> PathBuf {
    match std::env::var_os("AIRGAP_SIGSTORE_CONFORMANCE") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sigstore-conformance"),
    }
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The command line the suite's README prescribes for one case folder.
fn case_args(case: &Path) -> Vec<String> {
    let root = suite();
    let mut args: Vec<String> = vec!["sigstore".into(), "verify-bundle".into()];
    args.push("--bundle".into());
    args.push(case.join("bundle.sigstore.json").display().to_string());
    if case.join("key.pub").exists() {
        args.push("--key".into());
        args.push(case.join("key.pub").display().to_string());
    } else {
        args.push("--certificate-identity".into());
        args.push(read_trimmed(&case.join("identity")).unwrap_or(DEFAULT_IDENTITY.into()));
        args.push("--certificate-oidc-issuer".into());
        args.push(read_trimmed(&case.join("issuer")).unwrap_or(DEFAULT_ISSUER.into()));
    }
    let trusted_root = if case.join("trusted_root.json").exists() {
        case.join("trusted_root.json")
    } else {
        root.join("public-good-trusted_root.json")
    };
    args.push("--trusted-root".into());
    args.push(trusted_root.display().to_string());
    let artifact = if case.join("artifact").exists() {
        case.join("artifact")
    } else {
        root.join("a.txt")
    };
    args.push(artifact.display().to_string());
    args
}

/// What a rejection must look like: non-zero, one reason line, no panic.
pub(crate) fn clear_rejection(r: &Run) -> Result<(), String> {
    if r.code == 0 {
        return Err(format!("verified (exit 0): {}", r.stdout.trim()));
    }
    if r.stderr.contains("panicked") {
        return Err(format!("panicked: {}", r.stderr));
    }
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 || !lines[0].starts_with("airgap-verify: ") {
        return Err(format!(
            "exit {} without one reason line: {:?}",
            r.code, r.stderr
        ));
    }
    Ok(())
}

#[test]
fn conformance_cases() {
    let dir = suite().join("bundle-verify");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("bundle.sigstore.json").exists())
        .collect();
    cases.sort();
    if std::env::var_os("AIRGAP_SIGSTORE_CONFORMANCE").is_none() {
        // The shipped set: an emptied or half-copied folder must not pass.
        assert_eq!(cases.len(), 47, "cases in {}", dir.display());
    }
    let (mut accepted, mut rejected, mut wrong) = (0, 0, Vec::new());
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let r = av(case_args(case));
        if name.ends_with("_fail") {
            match clear_rejection(&r) {
                Ok(()) => rejected += 1,
                Err(e) => wrong.push(format!("{name}: must be rejected: {e}")),
            }
        } else if r.code == 0 && r.stdout.starts_with("OK: ") && r.stderr.is_empty() {
            accepted += 1;
        } else {
            wrong.push(format!(
                "{name}: must verify: exit {}: {}{}",
                r.code, r.stdout, r.stderr
            ));
        }
    }
    eprintln!(
        "sigstore conformance: {} of {} cases pass ({accepted} verified, {rejected} rejected)",
        accepted + rejected,
        cases.len()
    );
    assert!(
        wrong.is_empty(),
        "{} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn happy(case: &str) -> PathBuf {
    suite().join("bundle-verify").join(case)
}

fn args_with(case: &str, edit: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
    let mut a = case_args(&happy(case));
    edit(&mut a);
    a
}

/// The success line names the signer and the trust material's SHA-256.
#[test]
fn verified_names_identity_and_trust_root_digest() {
    let r = av(case_args(&happy("happy-path-v0.3")));
    r.code(0);
    let root = std::fs::read(suite().join("public-good-trusted_root.json")).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&root))
    };
    assert!(r.stdout.contains(DEFAULT_IDENTITY), "{}", r.stdout);
    assert!(r.stdout.contains(DEFAULT_ISSUER), "{}", r.stdout);
    assert!(r.stdout.contains(&digest), "{}", r.stdout);
}

/// Each policy input changed alone turns the same good bundle into a rejection.
#[test]
fn policy_and_artifact_mismatches_are_rejected() {
    let sb = Sandbox::new("sigstore_policy_mismatches");
    let other = sb.write("other.txt", b"not the signed file\n");
    let wrong_identity = args_with("happy-path-v0.3", |a| {
        let i = a
            .iter()
            .position(|x| x == "--certificate-identity")
            .unwrap();
        a[i + 1] =
            "https://github.com/someone-else/repo/.github/workflows/x.yml@refs/heads/main".into();
    });
    let wrong_issuer = args_with("happy-path-v0.3", |a| {
        let i = a
            .iter()
            .position(|x| x == "--certificate-oidc-issuer")
            .unwrap();
        a[i + 1] = "https://accounts.google.com".into();
    });
    let wrong_artifact = args_with("happy-path-v0.3", |a| {
        *a.last_mut().unwrap() = other.display().to_string();
    });
    let wrong_digest = args_with("happy-path-v0.3", |a| {
        *a.last_mut().unwrap() = format!("sha256:{}", "ab".repeat(32));
    });
    for (what, args, reason) in [
        ("identity", wrong_identity, "identity"),
        ("issuer", wrong_issuer, "issuer"),
        ("artifact", wrong_artifact, "mismatch"),
        ("digest", wrong_digest, "mismatch"),
    ] {
        let r = av(&args);
        assert_eq!(r.code, 1, "{what}: {}{}", r.stdout, r.stderr);
        clear_rejection(&r).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(r.stderr.contains(reason), "{what}: {}", r.stderr);
    }
}

/// FILE_OR_DIGEST: the artifact's sha256 verifies like the file, for a
/// message signature and for a DSSE envelope (subject digest).
#[test]
fn digest_form_verifies_like_the_file() {
    for case in [
        "happy-path-v0.3",
        "happy-path-intoto-in-dsse-v3",
        "managed-key-happy-path",
    ] {
        let file = PathBuf::from(case_args(&happy(case)).last().unwrap());
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(std::fs::read(&file).unwrap()))
        };
        let r = av(args_with(case, |a| {
            *a.last_mut().unwrap() = format!("sha256:{digest}")
        }));
        r.code(0);
    }
}

/// Without --trusted-root the embedded public-good root is used; it holds
/// the keys the public-good cases were signed with, and says so.
#[test]
fn embedded_public_good_root() {
    let r = av(args_with("happy-path-v0.1", |a| {
        let i = a.iter().position(|x| x == "--trusted-root").unwrap();
        a.drain(i..i + 2);
    }));
    r.code(0);
    assert!(r.stdout.contains("embedded public-good"), "{}", r.stdout);
}

/// The operator's input errors are exit 2 with a line naming the file.
#[test]
fn unusable_input_is_exit_2() {
    let sb = Sandbox::new("sigstore_unusable_input");
    let bad_root = sb.write("root.json", b"{\"mediaType\": 7}");
    let bad_key = sb.write("key.pub", b"not a key");
    let missing = sb.path("missing.sigstore.json");
    for (what, args, names) in [
        (
            "missing bundle",
            args_with("happy-path-v0.3", |a| a[3] = missing.display().to_string()),
            missing.display().to_string(),
        ),
        (
            "bad trusted root",
            args_with("happy-path-v0.3", |a| {
                let i = a.iter().position(|x| x == "--trusted-root").unwrap();
                a[i + 1] = bad_root.display().to_string();
            }),
            bad_root.display().to_string(),
        ),
        (
            "bad key",
            args_with("managed-key-happy-path", |a| {
                let i = a.iter().position(|x| x == "--key").unwrap();
                a[i + 1] = bad_key.display().to_string();
            }),
            bad_key.display().to_string(),
        ),
        (
            "bad digest",
            args_with("happy-path-v0.3", |a| {
                *a.last_mut().unwrap() = "sha256:xyz".into()
            }),
            "sha256:xyz".into(),
        ),
    ] {
        let r = av(&args);
        assert_eq!(r.code, 2, "{what}: {}{}", r.stdout, r.stderr);
        clear_rejection(&r).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(r.stderr.contains(&names), "{what}: {}", r.stderr);
    }
}

/// connect(2) calls recorded by `strace -f` while `cmd` runs.
pub(crate) fn connects(sb: &Sandbox, name: &str, cmd: &str, args: &[String]) -> (Run, Vec<String>) {
    let trace = sb.path(&format!("{name}.trace"));
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=connect", "-o"])
        .arg(&trace)
        .arg(cmd)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("strace (scripts/test.sh installs it)");
    let text = std::fs::read_to_string(&trace).unwrap();
    let calls = text
        .lines()
        .filter(|l| l.contains("connect("))
        .map(str::to_string)
        .collect();
    (Run::from(out), calls)
}

/// No network: every case, accepted or rejected (including the bundles
/// without an inclusion proof, which an online client would look up), runs
/// without a single connect(2) of any kind.
#[test]
fn verification_makes_no_connection() {
    let sb = Sandbox::new("sigstore_no_connection");
    // The detector works: a loopback connect is recorded.
    let (_, probe) = connects(
        &sb,
        "probe",
        "python3",
        &[
            "-c".into(),
            "import socket; socket.socket().connect_ex(('127.0.0.1', 9))".into(),
        ],
    );
    assert!(
        !probe.is_empty(),
        "strace recorded no connect for a known one"
    );
    let dir = suite().join("bundle-verify");
    let mut n = 0;
    for case in std::fs::read_dir(&dir).unwrap() {
        let case = case.unwrap().path();
        if !case.join("bundle.sigstore.json").exists() {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let (r, calls) = connects(&sb, &name, crate::harness::BIN, &case_args(&case));
        assert_eq!(
            r.code == 0,
            !name.ends_with("_fail"),
            "{name}: {}{}",
            r.stdout,
            r.stderr
        );
        assert!(calls.is_empty(), "{name} connected: {calls:?}");
        n += 1;
    }
    assert!(n >= 47, "{n} cases");
    // And `bundle` with PATH.sigstore.json beside the archive.
    let archive = sb.write("release.bin", std::fs::read(suite().join("a.txt")).unwrap());
    std::fs::copy(
        happy("happy-path-v0.3").join("bundle.sigstore.json"),
        sb.path("release.bin.sigstore.json"),
    )
    .unwrap();
    let args: Vec<String> = vec![
        "bundle".into(),
        archive.display().to_string(),
        "--format".into(),
        "json".into(),
        "--no-progress".into(),
        "--certificate-identity".into(),
        DEFAULT_IDENTITY.into(),
        "--certificate-oidc-issuer".into(),
        DEFAULT_ISSUER.into(),
    ];
    let (r, calls) = connects(&sb, "bundle", crate::harness::BIN, &args);
    r.has("sigstore:verified", "pass", "release.bin");
    assert!(calls.is_empty(), "bundle connected: {calls:?}");
}

/// `bundle PATH` verifies `PATH.sigstore.json` over the archive's SHA-256
/// from its single pass. The signed file here is the suite's `a.txt` (no
/// tar, so the run fails on the format; the Sigstore finding is what counts).
#[test]
fn bundle_verifies_sigstore_json_beside_the_archive() {
    use crate::harness::bundle;
    let sb = Sandbox::new("sigstore_beside_archive");
    let data = std::fs::read(suite().join("a.txt")).unwrap();
    let archive = sb.write("release.bin", &data);
    let a = archive.to_str().unwrap();
    let root = suite().join("public-good-trusted_root.json");
    let root_s = root.to_str().unwrap().to_string();
    let root_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&root).unwrap()))
    };
    let put = |case: &str| {
        std::fs::copy(
            happy(case).join("bundle.sigstore.json"),
            sb.path("release.bin.sigstore.json"),
        )
        .unwrap();
    };
    let keyless = |identity: &str| -> Vec<String> {
        vec![
            "--certificate-identity".into(),
            identity.into(),
            "--certificate-oidc-issuer".into(),
            DEFAULT_ISSUER.into(),
            "--trusted-root".into(),
            root_s.clone(),
        ]
    };
    let run = |extra: &[String]| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        bundle(&archive, &extra)
    };

    // A message signature and a DSSE statement over the file both verify,
    // with the signer and the trust material's digest in the evidence.
    for case in ["happy-path-v0.3", "happy-path-intoto-in-dsse-v3"] {
        put(case);
        let r = run(&keyless(DEFAULT_IDENTITY));
        r.code(1);
        let f = r.has("sigstore:verified", "pass", a);
        assert_eq!(f.evidence["identity"], DEFAULT_IDENTITY, "{case}");
        assert_eq!(f.evidence["issuer"], DEFAULT_ISSUER, "{case}");
        assert_eq!(
            f.evidence["trusted_root_sha256"],
            root_sha.as_str(),
            "{case}"
        );
        r.lacks("sigstore:rejected");
    }

    // A managed key.
    put("managed-key-happy-path");
    let key = happy("managed-key-happy-path").join("key.pub");
    let r = run(&[
        "--sigstore-key".into(),
        key.display().to_string(),
        "--trusted-root".into(),
        root_s.clone(),
    ]);
    let f = r.has("sigstore:verified", "pass", a);
    assert!(f.evidence["key_sha256"].is_string(), "{:?}", f.evidence);

    // Another signer.
    put("happy-path-v0.3");
    let r = run(&keyless(
        "https://github.com/someone-else/x/.github/workflows/x.yml@refs/heads/main",
    ));
    let f = r.has("sigstore:rejected", "fail", a);
    assert!(f.message.contains("identity"), "{}", f.message);
    r.lacks("sigstore:verified");

    // No signer given: found, not verified.
    let r = run(&[]);
    r.has("sigstore:unverified", "warn", a);
    r.lacks("sigstore:verified");

    // The archive changed after signing.
    let mut changed = data.clone();
    changed.push(b'\n');
    std::fs::write(&archive, &changed).unwrap();
    let r = run(&keyless(DEFAULT_IDENTITY));
    let f = r.has("sigstore:rejected", "fail", a);
    assert!(f.message.contains("mismatch"), "{}", f.message);
    std::fs::write(&archive, &data).unwrap();

    // A signer given but no bundle.
    std::fs::remove_file(sb.path("release.bin.sigstore.json")).unwrap();
    let r = run(&keyless(DEFAULT_IDENTITY));
    r.has("sigstore:missing", "fail", a);

    // A malformed trusted root stops the run before the pass (exit 2).
    let bad = sb.write("root.json", b"[]");
    let r = run(&[
        "--certificate-identity".into(),
        DEFAULT_IDENTITY.into(),
        "--certificate-oidc-issuer".into(),
        DEFAULT_ISSUER.into(),
        "--trusted-root".into(),
        bad.display().to_string(),
    ]);
    r.code(2);
    assert!(r.stderr.contains("root.json"), "{}", r.stderr);
}

/// --certificate-identity-regexp matches the whole verified SAN: a pattern
/// for the workflow verifies, a pattern matching only part of it (or
/// another repository) is rejected, an invalid pattern is exit 2.
#[test]
fn identity_regexp_matches_the_whole_san() {
    let with_regexp = |pattern: &str| {
        av(args_with("happy-path-v0.3", |a| {
            let i = a
                .iter()
                .position(|x| x == "--certificate-identity")
                .unwrap();
            a[i] = "--certificate-identity-regexp".into();
            a[i + 1] = pattern.into();
        }))
    };
    let r = with_regexp(
        r"https://github\.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/\.github/workflows/.*@refs/heads/main",
    );
    r.code(0);
    assert!(r.stdout.contains(DEFAULT_IDENTITY), "{}", r.stdout);
    // Unanchored, this would match: the pattern is a part of the SAN.
    let r = with_regexp("extremely-dangerous-public-oidc-beacon");
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("does not match the regular expression"),
        "{}",
        r.stderr
    );
    let r = with_regexp(r"https://github\.com/someone-else/.*");
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let r = with_regexp("(unclosed");
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("--certificate-identity-regexp"),
        "{}",
        r.stderr
    );
    // The issuer is still matched exactly.
    let r = av(args_with("happy-path-v0.3", |a| {
        let i = a
            .iter()
            .position(|x| x == "--certificate-identity")
            .unwrap();
        a[i] = "--certificate-identity-regexp".into();
        a[i + 1] = ".*".into();
        let j = a
            .iter()
            .position(|x| x == "--certificate-oidc-issuer")
            .unwrap();
        a[j + 1] = "https://accounts.google.com".into();
    }));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("issuer"), "{}", r.stderr);
    // And in `bundle`, beside the archive.
    let sb = Sandbox::new("sigstore_identity_regexp_bundle");
    let archive = sb.write("release.bin", std::fs::read(suite().join("a.txt")).unwrap());
    std::fs::copy(
        happy("happy-path-v0.3").join("bundle.sigstore.json"),
        sb.path("release.bin.sigstore.json"),
    )
    .unwrap();
    let root = suite().join("public-good-trusted_root.json");
    let r = crate::harness::bundle(
        &archive,
        &[
            "--certificate-identity-regexp",
            r"https://github\.com/sigstore-conformance/.*",
            "--certificate-oidc-issuer",
            DEFAULT_ISSUER,
            "--trusted-root",
            root.to_str().unwrap(),
        ],
    );
    let f = r.has("sigstore:verified", "pass", "release.bin");
    assert_eq!(
        f.evidence["expected_identity_regexp"],
        r"https://github\.com/sigstore-conformance/.*"
    );
}

/// `X.sigstore.json` inside the archive signs member `X`: verified over
/// `X`'s SHA-256 from the walk (the member is not read again).
#[test]
fn bundle_verifies_sigstore_json_beside_a_member() {
    use crate::harness::tarkit::{write_members, Member};
    let sb = Sandbox::new("sigstore_beside_member");
    let signed = std::fs::read(suite().join("a.txt")).unwrap();
    let sig = std::fs::read(happy("happy-path-v0.3").join("bundle.sigstore.json")).unwrap();
    let root = suite().join("public-good-trusted_root.json");
    let policy = [
        "--certificate-identity",
        DEFAULT_IDENTITY,
        "--certificate-oidc-issuer",
        DEFAULT_ISSUER,
        "--trusted-root",
        root.to_str().unwrap(),
    ];
    let tar = |members: &[Member]| {
        let p = sb.path("release.tar");
        std::fs::write(&p, write_members(members)).unwrap();
        p
    };

    let good = tar(&[
        Member::file("tools/a.txt", &signed),
        Member::file("tools/a.txt.sigstore.json", &sig),
    ]);
    let r = crate::harness::bundle(&good, &policy);
    let f = r.has("sigstore:verified", "pass", "tools/a.txt");
    assert_eq!(f.evidence["bundle"], "tools/a.txt.sigstore.json");
    assert_eq!(f.evidence["identity"], DEFAULT_IDENTITY);
    // Signed members are enough: no bundle beside the archive is required.
    r.lacks("sigstore:missing").lacks("sigstore:rejected");

    // Without a signer: found, not verified.
    let r = crate::harness::bundle(&good, &[]);
    r.has("sigstore:unverified", "warn", "tools/a.txt");

    // The member changed after signing.
    let mut changed = signed.clone();
    changed.extend_from_slice(b"tampered\n");
    let bad = tar(&[
        Member::file("tools/a.txt", &changed),
        Member::file("tools/a.txt.sigstore.json", &sig),
    ]);
    let r = crate::harness::bundle(&bad, &policy);
    let f = r.has("sigstore:rejected", "fail", "tools/a.txt");
    assert!(f.message.contains("mismatch"), "{}", f.message);
    r.code(1);

    // A bundle for a file the archive does not hold.
    let orphan = tar(&[
        Member::file("tools/b.txt", &signed),
        Member::file("tools/a.txt.sigstore.json", &sig),
    ]);
    let r = crate::harness::bundle(&orphan, &policy);
    let f = r.has("sigstore:rejected", "fail", "tools/a.txt");
    assert!(
        f.message.contains("not a file in the archive"),
        "{}",
        f.message
    );
}
