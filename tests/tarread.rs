//! The tar reading against the real tools: releases packed by GNU tar's
//! sparse modes, header checksum forms old writers use, zstd streams from
//! pzstd, and the differential harness (scripts/tardiff.py) that compares
//! every entry with GNU tar, bsdtar and Python's tarfile.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::harness::tarkit::RawTar;
use crate::harness::{bundle, Sandbox, BIN};

/// Writes a 3 MiB file with three short runs of data and holes between
/// them, as a disk image or a preallocated database file looks.
fn sparse_file(path: &std::path::Path) -> Vec<u8> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(3 << 20).unwrap();
    for (at, data) in [
        (0u64, &b"HEAD"[..]),
        ((1 << 20) + 7, b"MIDDLE"),
        ((3 << 20) - 4, b"TAIL"),
    ] {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(data).unwrap();
    }
    drop(f);
    std::fs::read(path).unwrap()
}

#[test]
fn sparse_files_packed_by_gnu_tar_match_their_manifest_in_every_format() {
    let sb = Sandbox::new("sparse_files_packed_by_gnu_tar");
    let rel = sb.path("src/rel");
    std::fs::create_dir_all(&rel).unwrap();
    let content = sparse_file(&rel.join("disk.img"));
    // What `sha256sum` of the extracted file gives: holes read as zeros.
    let digest = hex::encode(Sha256::digest(&content));
    std::fs::write(rel.join("SHA256SUMS"), format!("{digest}  disk.img\n")).unwrap();
    for (label, args) in [
        ("gnu", &["--format=gnu"][..]),
        ("oldgnu", &["--format=oldgnu"]),
        ("pax-1.0", &["--format=pax"]),
        ("pax-0.1", &["--format=pax", "--sparse-version=0.1"]),
        ("pax-0.0", &["--format=pax", "--sparse-version=0.0"]),
    ] {
        let out = sb.path(&format!("{label}.tar"));
        let st = Command::new("tar")
            .arg("-S")
            .args(args)
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(sb.path("src"))
            .arg("rel")
            .status()
            .expect("GNU tar (scripts/test.sh installs it)");
        assert!(st.success(), "{label}: tar failed");
        // The archive really stores the file sparse: a fraction of 3 MiB.
        let size = std::fs::metadata(&out).unwrap().len();
        assert!(size < 64 << 10, "{label}: {size} bytes, not sparse");
        let r = bundle(&out, &[]);
        r.has("bundle:manifest-verified", "pass", "rel/SHA256SUMS");
        r.has("bundle:entries-safe", "pass", &out.display().to_string());
        for code in [
            "bundle:unsupported-entry",
            "bundle:size-mismatch",
            "bundle:digest-mismatch",
            "bundle:missing-file",
            "bundle:unlisted-file",
            "bundle:tar-metadata-malformed",
            "bundle:tar-readers-disagree",
        ] {
            r.lacks(code);
        }
    }
}

#[test]
fn a_sparse_file_whose_content_differs_fails_its_digest() {
    // The holes are hashed as zeros: a manifest made from different content
    // must not match (the test of the expansion itself).
    let sb = Sandbox::new("sparse_content_differs");
    let rel = sb.path("src/rel");
    std::fs::create_dir_all(&rel).unwrap();
    let mut content = sparse_file(&rel.join("disk.img"));
    content[2 << 20] = 1;
    let digest = hex::encode(Sha256::digest(&content));
    std::fs::write(rel.join("SHA256SUMS"), format!("{digest}  disk.img\n")).unwrap();
    let out = sb.path("r.tar");
    let st = Command::new("tar")
        .args(["-S", "--format=gnu", "-cf"])
        .arg(&out)
        .arg("-C")
        .arg(sb.path("src"))
        .arg("rel")
        .status()
        .unwrap();
    assert!(st.success());
    bundle(&out, &[])
        .code(1)
        .has("bundle:digest-mismatch", "fail", "rel/disk.img");
}

/// A one-file tar whose first header's checksum field is rewritten by `f`.
fn with_first_checksum(name: &[u8], f: impl Fn(&mut [u8; 512])) -> Vec<u8> {
    let mut t = RawTar::new();
    t.entry(name, b'0', 0o644, b"hello\n", b"");
    let mut bytes = t.finish();
    let mut h: [u8; 512] = bytes[..512].try_into().unwrap();
    f(&mut h);
    bytes[..512].copy_from_slice(&h);
    bytes
}

#[test]
fn first_header_checksums_in_every_form_posix_allows_are_recognised() {
    let sb = Sandbox::new("first_header_checksum_forms");
    let unsigned = |h: &[u8; 512]| -> u32 {
        h.iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u32
                }
            })
            .sum()
    };
    let signed = |h: &[u8; 512]| -> i32 {
        h.iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as i8 as i32
                }
            })
            .sum()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // v7 and old writers: leading spaces, then NUL and space.
        (
            "space-padded",
            with_first_checksum(b"a.txt", |h| {
                let s = unsigned(h);
                h[148..156].copy_from_slice(format!("{s:6o}\0 ").as_bytes());
            }),
        ),
        // Space-terminated, no NUL.
        (
            "space-terminated",
            with_first_checksum(b"a.txt", |h| {
                let s = unsigned(h);
                h[148..156].copy_from_slice(format!("{s:07o} ").as_bytes());
            }),
        ),
        // The signed sum (Sun tar), which differs once a byte is over 127.
        (
            "signed",
            with_first_checksum("caf\u{e9}-\u{fc}.txt".as_bytes(), |h| {
                let s = signed(h);
                assert_ne!(s as u32, unsigned(h));
                h[148..156].copy_from_slice(format!("{s:06o}\0 ").as_bytes());
            }),
        ),
    ];
    for (label, bytes) in cases {
        let p = sb.write(&format!("{label}.tar"), &bytes);
        let r = bundle(&p, &[]);
        r.lacks("bundle:unrecognised-format")
            .lacks("bundle:tar-header-checksum");
        let intact = r.has("bundle:container-intact", "pass", &p.display().to_string());
        assert_eq!(intact.evidence["format"], "tar", "{label}");
    }
    // And a wrong checksum is still refused.
    let bad = with_first_checksum(b"a.txt", |h| {
        let s = unsigned(h) + 1;
        h[148..156].copy_from_slice(format!("{s:06o}\0 ").as_bytes());
    });
    let p = sb.write("bad.tar", bad);
    bundle(&p, &[]).code(1).has(
        "bundle:unrecognised-format",
        "fail",
        &p.display().to_string(),
    );
}

#[test]
fn zstd_streams_that_start_with_a_skippable_frame_are_read() {
    let sb = Sandbox::new("zstd_skippable_first");
    let mut t = RawTar::new();
    t.file("a.txt", b"hello\n");
    let tar = t.finish();
    // A skippable frame (magic 0x184D2A5E) holding 8 bytes, then the data.
    let mut z = Vec::new();
    z.extend_from_slice(&0x184D_2A5Eu32.to_le_bytes());
    z.extend_from_slice(&8u32.to_le_bytes());
    z.extend_from_slice(b"metadata");
    z.extend_from_slice(&zstd::stream::encode_all(&tar[..], 3).unwrap());
    let p = sb.write("a.tar.zst", &z);
    let r = bundle(&p, &[]);
    let intact = r.has("bundle:container-intact", "pass", &p.display().to_string());
    assert_eq!(intact.evidence["format"], "tar+zstd");
    assert_eq!(intact.evidence["entries"], 1);

    // pzstd (Debian's zstd package) writes a skippable frame before each
    // frame to record its size.
    let plain = sb.write("b.tar", &tar);
    let st = Command::new("pzstd")
        .args(["-q", "-f", "-p", "2"])
        .arg(&plain)
        .status()
        .expect("pzstd (Debian zstd, installed by scripts/test.sh)");
    assert!(st.success());
    let zst = sb.path("b.tar.zst");
    let head = std::fs::read(&zst).unwrap();
    assert_eq!(
        &head[1..4],
        &[0x2a, 0x4d, 0x18],
        "pzstd wrote no skippable frame"
    );
    let r = bundle(&zst, &[]);
    let intact = r.has(
        "bundle:container-intact",
        "pass",
        &zst.display().to_string(),
    );
    assert_eq!(intact.evidence["format"], "tar+zstd");
}

#[test]
fn no_extractor_escapes_the_root_where_the_verdict_is_ready() {
    // scripts/tardiff.py: 2,000 generated archives, the inputs fuzzing found
    // (fuzz/corpus/tar) and the Go and CPython tar test corpora, each listed
    // by GNU tar, bsdtar and Python's tarfile, and verified by this binary.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tardiff.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--bin", BIN, "--count", "2000", "--seed", "14", "--corpus"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/tar"))
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tardiff failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("tardiff: 2000 generated archives") && stdout.contains(" 0 failures"),
        "{stdout}"
    );
    // The peer corpora are installed (scripts/test.sh) and were all read.
    let peers: usize = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("tardiff: ")?
                .split(" peer corpus files")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(peers >= 40, "peer corpora missing: {stdout}");
}
