//! `airgap-verify bundle`: every rule of the archive verifier, each with an
//! archive that triggers it, asserting the code and the member it names.

use crate::harness::tarkit::{self, Member, RawTar};
use crate::harness::{av, bundle, extract, Sandbox};

fn sha256_hex(data: &[u8]) -> String {
    airgap_verify::sample::sha256_hex(data)
}

// ---- the good sample ----------------------------------------------------

#[test]
fn good_sample_tar_passes() {
    let sb = Sandbox::new("good_sample_tar_passes");
    let tar = sb.sample();
    let r = bundle(&tar, &[]);
    r.code(0).clean();
    r.has(
        "bundle:checksum-verified",
        "pass",
        "sekoia-self-hosted-v1.0.0.tar",
    );
    r.has("bundle:container-intact", "pass", "");
    r.has("bundle:entries-safe", "pass", "");
    let m = r.has(
        "bundle:manifest-verified",
        "pass",
        "platform/v1.0.0/manifest.json",
    );
    assert!(m.evidence["files"].as_u64().unwrap() > 10);
    let j = r.json();
    let input = &j["inputs"][0];
    assert_eq!(input["kind"], "tar");
    assert_eq!(
        input["sha256"].as_str().unwrap(),
        sha256_hex(&std::fs::read(&tar).unwrap())
    );
}

#[test]
fn good_sample_gz_passes_and_zstd_too() {
    let sb = Sandbox::new("good_sample_gz_passes_and_zstd_too");
    let gz = sb.sample_gz();
    let r = bundle(&gz, &[]);
    r.code(0).clean();
    r.has("bundle:checksum-verified", "pass", ".tar.gz");
    r.has("bundle:manifest-verified", "pass", "manifest.json");
    assert_eq!(r.json()["inputs"][0]["kind"], "tar+gzip");

    let plain = std::fs::read(sb.path("release/sekoia-self-hosted-v1.0.0.tar")).unwrap();
    let zst = sb.write("x.tar.zst", tarkit::zstd(&plain));
    let r = bundle(&zst, &[]);
    r.code(0);
    r.has("bundle:manifest-verified", "pass", "manifest.json");
    r.has("bundle:checksum-missing", "warn", "x.tar.zst");
    assert_eq!(r.json()["inputs"][0]["kind"], "tar+zstd");
}

#[test]
fn format_is_detected_by_magic_not_extension() {
    let sb = Sandbox::new("format_is_detected_by_magic_not_extension");
    let gz = sb.sample_gz();
    let renamed = sb.path("looks-plain.tar");
    std::fs::copy(&gz, &renamed).unwrap();
    let r = bundle(&renamed, &[]);
    r.code(0);
    assert_eq!(r.json()["inputs"][0]["kind"], "tar+gzip");
}

// ---- outer checksum -----------------------------------------------------

#[test]
fn checksum_mismatch_fails() {
    let sb = Sandbox::new("checksum_mismatch_fails");
    let tar = sb.sample();
    let side = sb.path("release/sekoia-self-hosted-v1.0.0.tar.sha256");
    std::fs::write(
        &side,
        format!("{}  sekoia-self-hosted-v1.0.0.tar\n", "0".repeat(64)),
    )
    .unwrap();
    let r = bundle(&tar, &[]);
    r.code(1);
    let f = r.has(
        "bundle:checksum-mismatch",
        "fail",
        "sekoia-self-hosted-v1.0.0.tar",
    );
    assert_eq!(f.evidence["expected_sha256"], "0".repeat(64));
}

#[test]
fn checksum_missing_warns_and_fail_on_warn_fails() {
    let sb = Sandbox::new("checksum_missing_warns_and_fail_on_warn_fails");
    let tar = sb.sample();
    std::fs::remove_file(sb.path("release/sekoia-self-hosted-v1.0.0.tar.sha256")).unwrap();
    bundle(&tar, &[])
        .code(0)
        .has("bundle:checksum-missing", "warn", "");
    bundle(&tar, &["--fail-on", "warn"])
        .code(1)
        .has("bundle:checksum-missing", "fail", "");
}

#[test]
fn checksum_from_flag_and_file() {
    let sb = Sandbox::new("checksum_from_flag_and_file");
    let tar = sb.sample();
    let digest = sha256_hex(&std::fs::read(&tar).unwrap());
    bundle(&tar, &["--sha256", &digest.to_uppercase()])
        .code(0)
        .has("bundle:checksum-verified", "pass", "");
    let other = sb.write(
        "sums/BSD.txt",
        format!("SHA256 (sekoia-self-hosted-v1.0.0.tar) = {digest}\n"),
    );
    bundle(&tar, &["--checksum", other.to_str().unwrap()])
        .code(0)
        .has("bundle:checksum-verified", "pass", "");
    let wrong = "f".repeat(64);
    bundle(&tar, &["--sha256", &wrong])
        .code(1)
        .has("bundle:checksum-mismatch", "fail", "");
    // A checksum file that names other archives only is unusable.
    let unrelated = sb.write("sums/other", format!("{digest}  a.tar\n{digest}  b.tar\n"));
    bundle(&tar, &["--checksum", unrelated.to_str().unwrap()])
        .code(1)
        .has("bundle:checksum-invalid", "fail", "");
}

#[test]
fn bad_checksum_arguments_are_usage_errors() {
    let sb = Sandbox::new("bad_checksum_arguments_are_usage_errors");
    let tar = sb.sample();
    let r = bundle(&tar, &["--sha256", "xyz"]);
    r.code(2);
    assert!(r.stderr.contains("--sha256"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    let r = bundle(&tar, &["--checksum", "/nonexistent/file.sha256"]);
    r.code(2);
    assert!(
        r.stderr.contains("/nonexistent/file.sha256"),
        "{}",
        r.stderr
    );
}

// ---- container integrity ------------------------------------------------

#[test]
fn truncated_tar_inside_an_entry() {
    let sb = Sandbox::new("truncated_tar_inside_an_entry");
    let tar = sb.sample();
    let bytes = std::fs::read(&tar).unwrap();
    let cut = sb.write("cut.tar", &bytes[..bytes.len() / 2 + 100]);
    let r = bundle(&cut, &[]);
    r.code(1);
    let f = r.has("bundle:truncated", "fail", "cut.tar");
    assert!(f.message.contains("ends inside"), "{}", f.message);
    assert!(f.evidence["offset"].as_u64().unwrap() > 0);
    r.lacks("bundle:container-intact");
}

#[test]
fn truncated_tar_without_end_marker() {
    let sb = Sandbox::new("truncated_tar_without_end_marker");
    let t = RawTar::new().file("a.txt", b"hello").unfinished();
    let p = sb.write("noend.tar", &t);
    let r = bundle(&p, &[]);
    r.code(1);
    let f = r.has("bundle:truncated", "fail", "noend.tar");
    assert_eq!(f.evidence["offset"], 1024);
    assert!(f.message.contains("end-of-archive"), "{}", f.message);
}

#[test]
fn gzip_crc_and_length_errors() {
    let sb = Sandbox::new("gzip_crc_and_length_errors");
    let t = RawTar::new().file("a.txt", b"hello world").finish();
    let gz = tarkit::gzip(&t);
    let n = gz.len();
    let mut bad_crc = gz.clone();
    bad_crc[n - 8] ^= 0xff;
    let r = bundle(&sb.write("crc.tar.gz", &bad_crc), &[]);
    r.code(1);
    let f = r.has("bundle:gzip-crc-mismatch", "fail", "crc.tar.gz");
    assert_eq!(f.evidence["offset"].as_u64().unwrap(), (n - 8) as u64);
    let mut bad_len = gz.clone();
    bad_len[n - 1] ^= 0x01;
    let r = bundle(&sb.write("isize.tar.gz", &bad_len), &[]);
    r.code(1);
    r.has("bundle:gzip-size-mismatch", "fail", "isize.tar.gz");
}

#[test]
fn truncated_gzip() {
    let sb = Sandbox::new("truncated_gzip");
    let gz = std::fs::read(sb.sample_gz()).unwrap();
    let r = bundle(&sb.write("cut.tar.gz", &gz[..gz.len() - 1000]), &[]);
    r.code(1);
    r.has("bundle:truncated", "fail", "cut.tar.gz");
    // Reported once, by the stage that saw it: the tar walker stays quiet.
    assert_eq!(
        r.findings()
            .iter()
            .filter(|f| f.code == "bundle:truncated")
            .count(),
        1
    );
}

#[test]
fn corrupt_deflate_data() {
    let sb = Sandbox::new("corrupt_deflate_data");
    let t = RawTar::new().file("a.txt", &vec![b'a'; 100_000]).finish();
    let mut gz = tarkit::gzip(&t);
    for b in &mut gz[12..40] {
        *b = 0xff;
    }
    let r = bundle(&sb.write("bad.tar.gz", &gz), &[]);
    r.code(1);
    r.has("bundle:gzip-corrupt", "fail", "bad.tar.gz");
}

#[test]
fn several_gzip_members_are_all_read() {
    let sb = Sandbox::new("several_gzip_members_are_all_read");
    let t = RawTar::new()
        .file("a.txt", b"first")
        .file("b.txt", b"second")
        .finish();
    let (head, tail) = t.split_at(1024);
    let mut gz = tarkit::gzip(head);
    gz.extend(tarkit::gzip(tail));
    let r = bundle(&sb.write("multi.tar.gz", &gz), &[]);
    r.code(0);
    let f = r.has("bundle:container-intact", "pass", "multi.tar.gz");
    assert_eq!(f.evidence["members"], 2);
    assert_eq!(f.evidence["entries"], 2);
}

#[test]
fn data_after_last_gzip_member_fails_and_zero_padding_warns() {
    let sb = Sandbox::new("data_after_last_gzip_member_fails_and_zero_padding_warns");
    let t = RawTar::new().file("a.txt", b"x").finish();
    let gz = tarkit::gzip(&t);
    let mut garbage = gz.clone();
    garbage.extend_from_slice(b"\0\0\0EVIL");
    let r = bundle(&sb.write("garbage.tar.gz", &garbage), &[]);
    r.code(1);
    let f = r.has("bundle:trailing-data", "fail", "garbage.tar.gz");
    assert_eq!(
        f.evidence["offset"].as_u64().unwrap(),
        (gz.len() + 3) as u64
    );
    let mut padded = gz.clone();
    padded.extend_from_slice(&[0u8; 4096]);
    let r = bundle(&sb.write("padded.tar.gz", &padded), &[]);
    r.code(0);
    let f = r.has("bundle:zero-padding", "warn", "padded.tar.gz");
    assert_eq!(f.evidence["padding_bytes"], 4096);
    assert_eq!(f.evidence["offset"].as_u64().unwrap(), gz.len() as u64);
}

#[test]
fn zstd_frames_corruption_and_trailing_data() {
    let sb = Sandbox::new("zstd_frames_corruption_and_trailing_data");
    let t = RawTar::new()
        .file("a.txt", &vec![7u8; 300_000])
        .file("b.txt", b"b")
        .finish();
    let (head, tail) = t.split_at(512 * 100);
    let mut two = tarkit::zstd(head);
    two.extend(tarkit::zstd(tail));
    let r = bundle(&sb.write("two.tar.zst", &two), &[]);
    r.code(0);
    assert_eq!(
        r.has("bundle:container-intact", "pass", "").evidence["members"],
        2
    );
    let one = tarkit::zstd(&t);
    let mut corrupt = one.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x55;
    corrupt[mid + 1] ^= 0x55;
    let r = bundle(&sb.write("corrupt.tar.zst", &corrupt), &[]);
    r.code(1);
    assert!(
        r.findings().iter().any(|f| f.code == "bundle:zstd-corrupt"),
        "{}",
        r.stdout
    );
    let mut trailing = one.clone();
    trailing.extend_from_slice(b"NOTZSTD!");
    let r = bundle(&sb.write("trailing.tar.zst", &trailing), &[]);
    r.code(1);
    r.has("bundle:trailing-data", "fail", "trailing.tar.zst");
    let r = bundle(&sb.write("cut.tar.zst", &one[..one.len() - 5]), &[]);
    r.code(1);
    r.has("bundle:truncated", "fail", "cut.tar.zst");
}

#[test]
fn tar_header_checksum_error_names_offset() {
    let sb = Sandbox::new("tar_header_checksum_error_names_offset");
    let mut t = RawTar::new()
        .file("a.txt", b"hello")
        .file("b.txt", b"world")
        .finish();
    // Second header starts at 1024; corrupt its name without fixing the sum.
    t[1024] = b'X';
    let r = bundle(&sb.write("badsum.tar", &t), &[]);
    r.code(1);
    let f = r.has("bundle:tar-header-checksum", "fail", "badsum.tar");
    assert_eq!(f.evidence["offset"], 1024);
}

#[test]
fn data_after_tar_end_marker() {
    let sb = Sandbox::new("data_after_tar_end_marker");
    let mut t = RawTar::new().file("a.txt", b"hello").finish();
    t.extend_from_slice(&[0u8; 512]);
    t.extend_from_slice(&RawTar::new().file("hidden.sh", b"rm -rf /").finish());
    let r = bundle(&sb.write("smuggled.tar", &t), &[]);
    r.code(1);
    let f = r.has("bundle:data-after-end", "fail", "smuggled.tar");
    assert_eq!(f.evidence["offset"], 1024 + 1024 + 512);
    // Plain zero padding to a record size is normal.
    let mut padded = RawTar::new().file("a.txt", b"hello").finish();
    padded.resize(10240, 0);
    bundle(&sb.write("record.tar", &padded), &[])
        .code(0)
        .lacks("bundle:data-after-end");
}

#[test]
fn unrecognised_format_fails_but_is_still_hashed() {
    let sb = Sandbox::new("unrecognised_format_fails_but_is_still_hashed");
    let p = sb.write("page.tar", b"<html><body>404 Not Found</body></html>\n");
    let r = bundle(&p, &[]);
    r.code(1);
    r.has("bundle:unrecognised-format", "fail", "page.tar");
    assert!(r.json()["inputs"][0]["sha256"].is_string());
    let empty = sb.write("empty.tar", b"");
    bundle(&empty, &[])
        .code(1)
        .has("bundle:unrecognised-format", "fail", "empty.tar");
}

// ---- tar safety ---------------------------------------------------------

fn one_bad_entry(sb: &Sandbox, name: &str, t: Vec<u8>) -> crate::harness::Run {
    let p = sb.write(name, &t);
    let r = bundle(&p, &[]);
    r.code(1);
    r.lacks("bundle:entries-safe");
    r
}

#[test]
fn absolute_and_dotdot_paths() {
    let sb = Sandbox::new("absolute_and_dotdot_paths");
    let r = one_bad_entry(
        &sb,
        "abs.tar",
        RawTar::new().file("/etc/cron.d/x", b"x").finish(),
    );
    r.has("bundle:absolute-path", "fail", "/etc/cron.d/x");
    let r = one_bad_entry(
        &sb,
        "dotdot.tar",
        RawTar::new().file("a/../../x", b"x").finish(),
    );
    r.has("bundle:path-traversal", "fail", "a/../../x");
}

#[test]
fn traversal_hidden_in_pax_path_and_gnu_long_name() {
    let sb = Sandbox::new("traversal_hidden_in_pax_path_and_gnu_long_name");
    let t = RawTar::new()
        .pax(&[("path", b"../../etc/passwd")])
        .file("innocent.txt", b"x")
        .finish();
    let r = one_bad_entry(&sb, "pax.tar", t);
    r.has("bundle:path-traversal", "fail", "../../etc/passwd");
    let long = format!("{}/../../../../x", "d/".repeat(60));
    let t = RawTar::new().file(&long, b"x").finish();
    let r = one_bad_entry(&sb, "gnu.tar", t);
    r.has("bundle:path-traversal", "fail", "../../../../x");
}

#[test]
fn pax_size_override_is_reported() {
    let sb = Sandbox::new("pax_size_override_is_reported");
    // The header says 5 bytes, PAX says 512: readers that ignore PAX see a
    // different archive.
    let mut t = RawTar::new();
    t.pax(&[("size", b"512")]);
    let h = tarkit::header(b"a.txt", b'0', 0o644, 5, b"");
    t.raw(&h).raw(&[b'A'; 512]);
    let bytes = t.finish();
    let r = bundle(&sb.write("paxsize.tar", &bytes), &[]);
    r.code(1);
    let f = r.has("bundle:pax-size-mismatch", "fail", "a.txt");
    assert_eq!(f.evidence["pax_size"], 512);
    assert_eq!(f.evidence["header_size"], 5);
}

#[test]
fn link_escapes() {
    let sb = Sandbox::new("link_escapes");
    let r = one_bad_entry(
        &sb,
        "sym.tar",
        RawTar::new().symlink("a/b/link", "../../../etc").finish(),
    );
    r.has("bundle:link-escape", "fail", "a/b/link");
    let r = one_bad_entry(
        &sb,
        "symabs.tar",
        RawTar::new().symlink("link", "/etc/shadow").finish(),
    );
    r.has("bundle:link-escape", "fail", "link");
    let r = one_bad_entry(
        &sb,
        "hard.tar",
        RawTar::new().hardlink("h", "../outside").finish(),
    );
    r.has("bundle:link-escape", "fail", "h");
    // Inside links are fine.
    let ok = RawTar::new()
        .file("a/real", b"x")
        .symlink("a/b/link", "../real")
        .hardlink("c", "a/real")
        .finish();
    bundle(&sb.write("ok.tar", &ok), &[])
        .code(0)
        .lacks("bundle:link-escape");
}

#[test]
fn write_through_symlink() {
    let sb = Sandbox::new("write_through_symlink");
    let t = RawTar::new()
        .symlink("conf", "etc-inside")
        .file("conf/app.yaml", b"x")
        .finish();
    let r = one_bad_entry(&sb, "through.tar", t);
    r.has("bundle:path-through-symlink", "fail", "conf/app.yaml");
}

#[test]
fn special_files_and_setuid() {
    let sb = Sandbox::new("special_files_and_setuid");
    for (kind, name) in [(b'3', "dev/tty"), (b'4', "dev/sda"), (b'6', "fifo")] {
        let t = RawTar::new()
            .entry(name.as_bytes(), kind, 0o644, b"", b"")
            .finish();
        let r = one_bad_entry(&sb, &format!("special-{}.tar", kind as char), t);
        r.has("bundle:special-file", "fail", name);
    }
    let t = RawTar::new()
        .entry(b"bin/su", b'0', 0o4755, b"x", b"")
        .finish();
    let f = one_bad_entry(&sb, "suid.tar", t).has("bundle:setuid", "fail", "bin/su");
    assert!(f.message.contains("setuid"));
    let t = RawTar::new()
        .entry(b"bin/sg", b'0', 0o2755, b"x", b"")
        .finish();
    let f = one_bad_entry(&sb, "sgid.tar", t).has("bundle:setuid", "fail", "bin/sg");
    assert!(f.message.contains("setgid"));
}

#[test]
fn duplicate_paths_and_case_collisions() {
    let sb = Sandbox::new("duplicate_paths_and_case_collisions");
    let t = RawTar::new()
        .file("a/config.yml", b"reviewed")
        .file("./a/config.yml", b"installed")
        .finish();
    one_bad_entry(&sb, "dup.tar", t).has("bundle:duplicate-entry", "fail", "a/config.yml");
    let t = RawTar::new()
        .file("a/Config.yml", b"1")
        .file("a/config.yml", b"2")
        .finish();
    let r = bundle(&sb.write("case.tar", &t), &[]);
    r.code(0);
    r.has("bundle:case-collision", "warn", "a/config.yml");
    // A folder listed twice is harmless.
    let t = RawTar::new().dir("a/").dir("a/").file("a/x", b"x").finish();
    bundle(&sb.write("dirs.tar", &t), &[])
        .code(0)
        .lacks("bundle:duplicate-entry");
}

#[test]
fn non_utf8_names_are_reported_not_fatal() {
    let sb = Sandbox::new("non_utf8_names_are_reported_not_fatal");
    let t = RawTar::new()
        .entry(b"bad-\xff\xfe.txt", b'0', 0o644, b"x", b"")
        .file("next.txt", b"still read")
        .finish();
    let r = one_bad_entry(&sb, "latin1.tar", t);
    r.has("bundle:non-utf8-name", "fail", "bad-\\xff\\xfe.txt");
    assert_eq!(
        r.has("bundle:non-utf8-name", "fail", "").evidence,
        serde_json::json!({})
    );
}

// ---- release manifests --------------------------------------------------

fn sums_tar(files: &[(&str, &[u8])], sums: &str) -> Vec<u8> {
    let mut t = RawTar::new();
    t.file("rel/SHA256SUMS", sums.as_bytes());
    for (p, d) in files {
        t.file(&format!("rel/{p}"), d);
    }
    t.finish()
}

#[test]
fn sha256sums_all_three_line_formats() {
    let sb = Sandbox::new("sha256sums_all_three_line_formats");
    let sums = format!(
        "# comment\n{}  a.txt\n{} *b.bin\nSHA256 (c d.txt) = {}\n",
        sha256_hex(b"a"),
        sha256_hex(b"b"),
        sha256_hex(b"c")
    );
    let t = sums_tar(
        &[("a.txt", b"a"), ("b.bin", b"b"), ("c d.txt", b"c")],
        &sums,
    );
    let r = bundle(&sb.write("sums.tar", &t), &[]);
    r.code(0);
    let f = r.has("bundle:manifest-verified", "pass", "rel/SHA256SUMS");
    assert_eq!(f.evidence["files"], 3);
    let t = sums_tar(
        &[("a.txt", b"A"), ("b.bin", b"b"), ("c d.txt", b"c")],
        &sums,
    );
    let r = bundle(&sb.write("bad.tar", &t), &[]);
    r.code(1);
    r.has("bundle:digest-mismatch", "fail", "rel/a.txt");
    let bad = "this is not a checksum line\n";
    let r = bundle(&sb.write("malformed.tar", sums_tar(&[], bad)), &[]);
    r.code(1);
    let f = r.has("bundle:manifest-invalid", "fail", "rel/SHA256SUMS");
    assert!(f.message.contains("line 1"), "{}", f.message);
}

fn sample_members(sb: &Sandbox) -> (std::path::PathBuf, Vec<Member>) {
    let tar = sb.sample();
    std::fs::remove_file(sb.path("release/sekoia-self-hosted-v1.0.0.tar.sha256")).unwrap();
    let members = tarkit::read_members(&std::fs::read(&tar).unwrap());
    (tar, members)
}

fn write_variant(sb: &Sandbox, name: &str, members: &[Member]) -> std::path::PathBuf {
    sb.write(name, tarkit::write_members(members))
}

#[test]
fn manifest_missing_file() {
    let sb = Sandbox::new("manifest_missing_file");
    let (_, mut m) = sample_members(&sb);
    let gone = m
        .iter()
        .position(|x| x.path.ends_with("charts/api-0-1.0.0.tgz"))
        .expect("chart in sample");
    let removed = m.remove(gone);
    let r = bundle(&write_variant(&sb, "v.tar", &m), &[]);
    r.code(1);
    r.has("bundle:file-missing", "fail", &removed.path);
}

#[test]
fn manifest_size_and_digest_mismatch() {
    let sb = Sandbox::new("manifest_size_and_digest_mismatch");
    let (_, mut m) = sample_members(&sb);
    let img = m
        .iter_mut()
        .find(|x| x.path.ends_with("images/ingest-0.tar.gz"))
        .unwrap();
    img.data.push(0);
    let grown = img.path.clone();
    let yaml = m.iter_mut().find(|x| x.path.ends_with(".yaml")).unwrap();
    yaml.data[0] ^= 0x20; // same size, different bytes
    let flipped = yaml.path.clone();
    let r = bundle(&write_variant(&sb, "v.tar", &m), &[]);
    r.code(1);
    let f = r.has("bundle:size-mismatch", "fail", &grown);
    assert_eq!(
        f.evidence["actual_size"].as_u64().unwrap(),
        f.evidence["expected_size"].as_u64().unwrap() + 1
    );
    r.has("bundle:digest-mismatch", "fail", &flipped);
}

#[test]
fn manifest_unlisted_file() {
    let sb = Sandbox::new("manifest_unlisted_file");
    let (_, mut m) = sample_members(&sb);
    m.push(Member::file(
        "platform/v1.0.0/images/extra.tar.gz",
        b"added later",
    ));
    // Outside the manifest's folder nothing is required.
    m.push(Member::file("notes/README.txt", b"free"));
    let r = bundle(&write_variant(&sb, "v.tar", &m), &[]);
    r.code(1);
    r.has(
        "bundle:unlisted-file",
        "fail",
        "platform/v1.0.0/images/extra.tar.gz",
    );
    assert!(!r
        .findings()
        .iter()
        .any(|f| f.target.contains("notes/README.txt")));
}

#[test]
fn manifest_before_its_files_and_malformed() {
    let sb = Sandbox::new("manifest_before_its_files_and_malformed");
    let (_, mut m) = sample_members(&sb);
    let i = m
        .iter()
        .position(|x| x.path.ends_with("v1.0.0/manifest.json"))
        .unwrap();
    let manifest = m.remove(i);
    m.insert(0, manifest.clone());
    bundle(&write_variant(&sb, "first.tar", &m), &[])
        .code(0)
        .has("bundle:manifest-verified", "pass", "manifest.json");
    let mut text = String::from_utf8(manifest.data.clone()).unwrap();
    text = text.replacen("\"files\": [", "\"files\": [,", 1);
    m[0].data = text.into_bytes();
    let r = bundle(&write_variant(&sb, "malformed.tar", &m), &[]);
    r.code(1);
    let f = r.has(
        "bundle:manifest-invalid",
        "fail",
        "platform/v1.0.0/manifest.json",
    );
    assert!(
        f.message.contains("line ") && f.message.contains("column "),
        "{}",
        f.message
    );
    r.lacks("bundle:no-manifest");
}

/// A manifest is read when its member ends (its text then freed), but
/// judged on the archive as a whole: files before it, files after it, a
/// listed file replaced by a later duplicate entry, and one never seen.
#[test]
fn manifest_is_judged_on_the_final_contents() {
    let sb = Sandbox::new("manifest_is_judged_on_the_final_contents");
    let entry = |p: &str, d: &[u8]| {
        format!(
            r#"{{"path":"{p}","size":{},"sha256":"{}"}}"#,
            d.len(),
            sha256_hex(d)
        )
    };
    let doc = |entries: &[String]| {
        format!(
            r#"{{"schema_version":1,"product":"p","version":"1","files":[{}]}}"#,
            entries.join(",")
        )
    };
    let listed = doc(&[
        entry("before.txt", b"before"),
        entry("after.txt", b"after"),
        entry("swapped.txt", b"reviewed"),
        entry("never.txt", b"never"),
    ]);
    let t = RawTar::new()
        .file("rel/before.txt", b"before")
        .file("rel/swapped.txt", b"reviewed")
        .file("rel/manifest.json", listed.as_bytes())
        .file("rel/after.txt", b"after")
        .file("rel/swapped.txt", b"tampered")
        .file("rel/extra.txt", b"extra")
        .finish();
    let r = bundle(&sb.write("mixed.tar", &t), &[]);
    r.code(1);
    r.has("bundle:duplicate-entry", "fail", "rel/swapped.txt");
    let f = r.has("bundle:digest-mismatch", "fail", "rel/swapped.txt");
    assert_eq!(f.evidence["actual_sha256"], sha256_hex(b"tampered"));
    r.has("bundle:file-missing", "fail", "rel/never.txt");
    r.has("bundle:unlisted-file", "fail", "rel/extra.txt");
    let mismatched: Vec<_> = r
        .findings()
        .iter()
        .filter(|f| f.code == "bundle:digest-mismatch" || f.code == "bundle:file-missing")
        .map(|f| f.target.clone())
        .collect();
    assert_eq!(mismatched.len(), 2, "{mismatched:?}");
    r.lacks("bundle:manifest-verified");

    // All present and intact, in any order around the manifest: verified.
    let good = doc(&[entry("before.txt", b"before"), entry("after.txt", b"after")]);
    let t = RawTar::new()
        .file("rel/before.txt", b"before")
        .file("rel/manifest.json", good.as_bytes())
        .file("rel/after.txt", b"after")
        .finish();
    let r = bundle(&sb.write("good.tar", &t), &[]);
    r.code(0);
    let f = r.has("bundle:manifest-verified", "pass", "rel/manifest.json");
    assert_eq!(f.evidence["files"], 2);

    // Listed twice, once before and once after the files: malformed, and
    // nothing else is reported from it, not even the mismatch before the
    // error.
    let twice = doc(&[
        entry("before.txt", b"tampered"),
        entry("after.txt", b"after"),
        entry("after.txt", b"after"),
    ]);
    let t = RawTar::new()
        .file("rel/before.txt", b"before")
        .file("rel/manifest.json", twice.as_bytes())
        .file("rel/after.txt", b"after")
        .finish();
    let r = bundle(&sb.write("twice.tar", &t), &[]);
    r.code(1);
    let f = r.has("bundle:manifest-invalid", "fail", "rel/manifest.json");
    assert!(
        f.message
            .contains("files[2]: after.txt is listed more than once"),
        "{}",
        f.message
    );
    r.lacks("bundle:digest-mismatch")
        .lacks("bundle:unlisted-file");
}

#[test]
fn manifest_limits_and_escaping_paths() {
    let sb = Sandbox::new("manifest_limits_and_escaping_paths");
    let doc = format!(
        r#"{{"schema_version":1,"product":"p","version":"1","files":[{{"path":"../../etc/passwd","size":1,"sha256":"{}"}}]}}"#,
        "0".repeat(64)
    );
    let t = RawTar::new()
        .file("rel/manifest.json", doc.as_bytes())
        .finish();
    let r = bundle(&sb.write("escape.tar", &t), &[]);
    r.code(1);
    let f = r.has("bundle:manifest-invalid", "fail", "rel/manifest.json");
    assert!(f.message.contains("files[0]"), "{}", f.message);
    let r = bundle(&sb.write("escape.tar", &t), &["--max-manifest-size", "10"]);
    r.code(1);
    r.has("bundle:manifest-too-large", "fail", "rel/manifest.json");
}

#[test]
fn no_manifest_warns() {
    let sb = Sandbox::new("no_manifest_warns");
    let t = RawTar::new().file("a.txt", b"x").finish();
    bundle(&sb.write("bare.tar", &t), &[])
        .code(0)
        .has("bundle:no-manifest", "warn", "bare.tar");
}

// ---- staged folders -----------------------------------------------------

#[test]
fn staged_folder_same_rules() {
    let sb = Sandbox::new("staged_folder_same_rules");
    let tar = sb.sample();
    let dir = sb.path("staged");
    extract(&tar, &dir);
    let r = bundle(&dir, &[]);
    r.code(0);
    r.has(
        "bundle:manifest-verified",
        "pass",
        "platform/v1.0.0/manifest.json",
    );
    assert_eq!(r.json()["inputs"][0]["kind"], "directory");
    let yaml = walk_find(&dir.join("platform/v1.0.0/argo-stacks"), ".yaml");
    let mut data = std::fs::read(&yaml).unwrap();
    data[0] ^= 0x20;
    std::fs::write(&yaml, data).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", dir.join("data/escape")).unwrap();
    let r = bundle(&dir, &[]);
    r.code(1);
    r.has("bundle:digest-mismatch", "fail", "argo-stacks");
    r.has("bundle:link-escape", "fail", "data/escape");
}

/// A staged folder's images are read side by side (feeder threads, see
/// `dirwalk`): every damaged image is still judged, and the folder's
/// verdicts on what it holds are those of the archive of the same tree,
/// which GNU tar writes and the archive pass reads in one stream (the
/// oracle).
#[test]
fn staged_folder_images_read_side_by_side_get_the_archives_verdicts() {
    let sb = Sandbox::new("staged_folder_images_side_by_side");
    let tar = sb.sample();
    let dir = sb.path("staged");
    extract(&tar, &dir);
    let images = dir.join("platform/v1.0.0/images");
    let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    // Three damages on three images in a row, so that several are in
    // flight when each is judged: a byte flipped in the middle, the file
    // cut to a third, bytes appended.
    let mut d = std::fs::read(&names[0]).unwrap();
    let mid = d.len() / 2;
    d[mid] ^= 0xff;
    std::fs::write(&names[0], d).unwrap();
    let d = std::fs::read(&names[1]).unwrap();
    std::fs::write(&names[1], &d[..d.len() / 3]).unwrap();
    let mut d = std::fs::read(&names[2]).unwrap();
    d.extend_from_slice(b"trailing bytes");
    std::fs::write(&names[2], d).unwrap();

    let folder = bundle(&dir, &[]);
    folder.code(1);
    let mut top: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    let again = sb.path("again.tar");
    let st = std::process::Command::new("tar")
        .args(["--sort=name", "-cf"])
        .arg(&again)
        .arg("-C")
        .arg(&dir)
        .args(&top)
        .status()
        .unwrap();
    assert!(st.success());
    let archive = bundle(&again, &[]);
    archive.code(1);
    // What each says about the release's files (not about the input
    // itself, a folder in one case and a .tar in the other).
    let about = |r: &crate::harness::Run| {
        r.findings()
            .into_iter()
            .filter(|f| top.iter().any(|t| f.target.starts_with(&format!("{t}/"))))
            .map(|f| (f.code, f.status, f.target))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (in_folder, in_archive) = (about(&folder), about(&archive));
    assert_eq!(in_folder, in_archive);
    for damaged in &names[..3] {
        let name = damaged.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            in_folder
                .iter()
                .any(|(_, status, target)| status == "fail" && target.contains(&name)),
            "no failure names {name}: {in_folder:#?}"
        );
    }
    // The intact images pass, in both.
    let intact = names[3].file_name().unwrap().to_string_lossy().into_owned();
    folder.has("image:valid", "pass", &intact);
}

fn walk_find(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            return walk_find(&p, suffix);
        }
        if p.to_string_lossy().ends_with(suffix) {
            return p;
        }
    }
    panic!("no {suffix} under {}", dir.display());
}

// ---- manifest create ----------------------------------------------------

#[test]
fn manifest_create_baselines_a_trusted_copy() {
    let sb = Sandbox::new("manifest_create_baselines_a_trusted_copy");
    let tar = sb.sample();
    let out = sb.path("baseline.json");
    av([
        "manifest",
        "create",
        tar.to_str().unwrap(),
        "--root",
        "platform/v1.0.0",
        "--output",
        out.to_str().unwrap(),
    ])
    .code(0);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 1);
    let files = doc["files"].as_array().unwrap();
    assert!(files.iter().all(|f| f["path"] != "manifest.json"));
    // The baseline verifies the staged copy; after tampering it does not.
    let dir = sb.path("staged");
    extract(&tar, &dir);
    std::fs::copy(&out, dir.join("platform/v1.0.0/manifest.json")).unwrap();
    bundle(&dir, &[])
        .code(0)
        .has("bundle:manifest-verified", "pass", "");
    std::fs::write(dir.join("platform/v1.0.0/new-file.yaml"), "x: 1\n").unwrap();
    bundle(&dir, &[])
        .code(1)
        .has("bundle:unlisted-file", "fail", "new-file.yaml");
    // A damaged copy gets no baseline.
    let bad = RawTar::new().file("../x", b"x").finish();
    let r = av([
        "manifest",
        "create",
        sb.write("bad.tar", bad).to_str().unwrap(),
    ]);
    r.code(1);
    assert!(r.stderr.contains("no manifest written"), "{}", r.stderr);
}

// ---- resource limits ------------------------------------------------------

fn hostile(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/hostile")
        .join(name)
}

/// Each limit of the archive pass is a flag on `bundle` and `check`; the
/// corpus (tests/hostile.rs) runs them at their defaults or lower, this
/// checks that raising, lowering and disabling them changes the verdict.
#[test]
fn limit_flags_change_the_verdict() {
    let sb = Sandbox::new("limit_flags_change_the_verdict");
    let deep = hostile("nested-too-deep.tar");
    // Depth: a.tar!b.tar!c.tar!d.tar.gz is one level too deep by default.
    bundle(&deep, &["--max-depth", "4"])
        .code(0)
        .lacks("bundle:nested-too-deep");
    bundle(&deep, &["--max-depth", "1"]).code(1).has(
        "bundle:nested-too-deep",
        "fail",
        "a.tar!b.tar",
    );
    // --no-content opens nothing, which is a choice, not a limit hit.
    bundle(&deep, &["--no-content"])
        .code(0)
        .lacks("bundle:nested-too-deep");
    // Ratio: 0 disables it; the run-length zstd frame then decodes to its
    // end (a 128 MiB entry, no end marker).
    let zbomb = hostile("bomb-zstd-window.tar.zst");
    let r = bundle(&zbomb, &["--max-expansion-ratio", "0"]);
    r.code(1).lacks("bundle:expansion-ratio-exceeded");
    r.has("bundle:truncated", "fail", "bomb-zstd-window.tar.zst");
    // Entries and bytes per nested archive, with units.
    let many = hostile("nested-too-many-entries.tar");
    bundle(&many, &["--max-nested-entries", "20"])
        .code(0)
        .lacks("bundle:nested-too-many-entries");
    bundle(
        &hostile("nested-too-large.tar"),
        &["--max-nested-bytes", "1MiB"],
    )
    .code(0)
    .lacks("bundle:nested-too-large");
    // The same flags on `check`.
    let cfg = sb.write("perimeter.yml", "allowed_networks: [10.0.0.0/8]\n");
    let r = av([
        "check".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--bundle".as_ref(),
        deep.as_os_str(),
        "--max-depth".as_ref(),
        "1".as_ref(),
        "--max-expansion-ratio".as_ref(),
        "100".as_ref(),
        "--max-nested-bytes".as_ref(),
        "1GiB".as_ref(),
        "--max-nested-entries".as_ref(),
        "10".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--no-progress".as_ref(),
    ] as [&std::ffi::OsStr; 16]);
    r.code(1)
        .has("bundle:nested-too-deep", "fail", "a.tar!b.tar");
}

/// A nested gzip stream is decoded on the thread that reads it (see
/// `nested`), a release's own on a thread of its own: each broken gzip of
/// the hostile corpus, nested as an image and as any archive, gets the
/// finding, the offset and the message it gets as a release, whether the
/// release is a `.tar` (read ahead), a `.tar.gz` or a folder.
#[test]
fn a_nested_gzip_is_judged_as_a_release_is() {
    let sb = Sandbox::new("a_nested_gzip_is_judged_as_a_release_is");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hostile");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("gzip-") && n.ends_with(".tar.gz"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "{cases:?}");
    // The nested decoder judges the container; what the walk of the
    // decoded tar says, and the image rules, may differ between a release
    // and an image, so only container codes are compared.
    let container = |code: &str| {
        code.starts_with("bundle:gzip")
            || [
                "bundle:truncated",
                "bundle:trailing-data",
                "bundle:zero-padding",
            ]
            .contains(&code)
    };
    for case in &cases {
        let gz = std::fs::read(dir.join(case)).unwrap();
        let alone = bundle(
            &sb.write(&format!("alone/{case}"), &gz),
            &["--fail-on", "warn"],
        );
        let want: Vec<_> = alone
            .findings()
            .into_iter()
            .filter(|f| container(&f.code) && f.status != "pass")
            .collect();
        assert_eq!(want.len(), 1, "{case}: {want:?}");
        let want = &want[0];
        // GNU gzip's verdict on the same bytes, as an oracle: where it
        // refuses the stream (exit 1), the pass fails it at the gzip layer;
        // where it decodes it (exit 0, or 2 for a warning), the finding is
        // about what follows the compressed data or about the tar inside.
        let gnu = std::process::Command::new("gzip")
            .arg("-t")
            .arg(dir.join(case))
            .output()
            .expect("GNU gzip (Debian's gzip package)");
        let gnu_said = String::from_utf8_lossy(&gnu.stderr);
        let gzip_layer = want.code.starts_with("bundle:gzip")
            || (want.code == "bundle:truncated" && want.message.contains("gzip"));
        assert_eq!(
            gnu.status.code() == Some(1),
            gzip_layer && want.status == "fail",
            "{case}: GNU gzip exit {:?} ({gnu_said}), the pass: {want:?}",
            gnu.status.code()
        );
        for member in ["images/app.tar.gz", "data/blob.tar.gz"] {
            let outer = RawTar::new()
                .file("README.md", b"a release\n")
                .file(member, &gz)
                .file("z-last.txt", b"after the nested archive\n")
                .finish();
            let name = format!(
                "{}-{}",
                case.trim_end_matches(".tar.gz"),
                member.replace('/', "-")
            );
            let tar = sb.write(&format!("{name}/release.tar"), &outer);
            let tgz = sb.write(&format!("{name}/release.tar.gz"), tarkit::gzip(&outer));
            let folder = sb.path(&format!("{name}/folder"));
            std::fs::create_dir_all(&folder).unwrap();
            extract(&tar, &folder);
            for input in [&tar, &tgz, &folder] {
                let r = bundle(input, &["--fail-on", "warn"]);
                let got: Vec<_> = r
                    .findings()
                    .into_iter()
                    .filter(|f| f.code == want.code && f.target.contains(member))
                    .collect();
                assert_eq!(got.len(), 1, "{case} as {member} in {input:?}: {got:?}");
                let got = &got[0];
                assert_eq!(got.status, want.status, "{case} in {input:?}");
                assert_eq!(
                    got.evidence["offset"], want.evidence["offset"],
                    "{case} in {input:?}"
                );
                let tail = |m: &str| m.rsplit(&*want.target).next().unwrap().to_string();
                assert!(
                    got.message.ends_with(&tail(&want.message)),
                    "{case} in {input:?}: {:?} against {:?}",
                    got.message,
                    want.message
                );
                // The rest of the release is read: the member after it too.
                r.has("bundle:container-intact", "pass", "");
                assert!(
                    !r.findings().iter().any(|f| f.code == "bundle:read-error"),
                    "{case} in {input:?}"
                );
            }
        }
    }
}

/// A plain tar's digest is taken on the tar thread, paired with the
/// members', or on a thread of its own, as this CPU's cost of a pair decides
/// (`AIRGAP_VERIFY_PAIR_DIGESTS` forces either): both places give the same
/// digest, the same verdicts on a good archive, a wrong checksum and a
/// truncated one, with content and without.
#[test]
fn the_archive_digest_is_the_same_wherever_it_is_taken() {
    let sb = Sandbox::new("the_archive_digest_is_the_same_wherever_it_is_taken");
    let tar = sb.sample();
    let bytes = std::fs::read(&tar).unwrap();
    let truncated = sb.path("cut.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2 + 100]).unwrap();
    let wrong = sb.path("wrong.sha256");
    std::fs::write(&wrong, format!("{}  cut.tar\n", "0".repeat(64))).unwrap();
    let run = |path: &std::path::Path, pair: &str, extra: &[&str]| {
        crate::harness::bundle_env(path, extra, &[("AIRGAP_VERIFY_PAIR_DIGESTS", pair)])
    };
    // Findings without the timings, which differ from run to run.
    let verdicts = |r: &crate::harness::Run| {
        let mut v: Vec<String> = r.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| !f["code"].as_str().unwrap().contains("duration"))
            .map(|f| format!("{} {} {}", f["code"], f["status"], f["target"]))
            .collect();
        v.sort();
        v
    };
    for extra in [&["--no-content"][..], &[]] {
        let mut seen = Vec::new();
        for pair in ["1", "0"] {
            let good = run(&tar, pair, extra);
            good.code(0);
            good.has(
                "bundle:checksum-verified",
                "pass",
                "sekoia-self-hosted-v1.0.0.tar",
            );
            assert_eq!(
                good.json()["inputs"][0]["sha256"].as_str().unwrap(),
                sha256sum(&tar),
                "pair {pair} {extra:?}"
            );
            let mut cut_args = vec!["--checksum", wrong.to_str().unwrap()];
            cut_args.extend_from_slice(extra);
            let cut = run(&truncated, pair, &cut_args);
            cut.code(1);
            cut.has("bundle:checksum-mismatch", "fail", "cut.tar");
            seen.push((verdicts(&good), verdicts(&cut)));
        }
        assert_eq!(seen[0], seen[1], "{extra:?}");
    }
}

/// The SHA-256 of a file by coreutils' `sha256sum`: an oracle that is not
/// this crate's code (`sample::sha256_hex` hashes with the crate's own).
fn sha256sum(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils)");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}
