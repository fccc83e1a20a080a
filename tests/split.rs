//! Split archives (`.001`, `.part1`, `.aa`): the sample release cut into
//! parts as `split -b` would, verified as one stream; a missing, a cut and
//! a damaged part are each named.

use std::path::{Path, PathBuf};

use crate::harness::{bundle, Sandbox};

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Cuts `data` into `n` parts named `dir/base{suffix(i)}`, equal but the
/// last, and writes `base.sha256` for the whole. Returns the part paths.
fn cut(dir: &Path, base: &str, data: &[u8], n: usize, suffix: fn(usize) -> String) -> Vec<PathBuf> {
    let size = data.len().div_ceil(n);
    let parts: Vec<PathBuf> = data
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let p = dir.join(format!("{base}{}", suffix(i)));
            std::fs::write(&p, chunk).unwrap();
            p
        })
        .collect();
    assert_eq!(parts.len(), n);
    std::fs::write(
        dir.join(format!("{base}.sha256")),
        format!("{}  {base}\n", sha256_hex(data)),
    )
    .unwrap();
    parts
}

#[test]
fn split_parts_read_as_one_stream() {
    let sb = Sandbox::new("split_one_stream");
    let data = std::fs::read(sb.sample()).unwrap();
    let dir = sb.path("media");
    std::fs::create_dir_all(&dir).unwrap();
    for (base, suffix) in [
        (
            "numeric.tar",
            (|i| format!(".{:03}", i + 1)) as fn(usize) -> String,
        ),
        ("part.tar", |i| format!(".part{}", i + 1)),
        ("letters.tar", |i| format!(".a{}", (b'a' + i as u8) as char)),
    ] {
        let parts = cut(&dir, base, &data, 3, suffix);
        let r = bundle(&parts[0], &[]);
        r.code(0);
        let f = r.has("bundle:split-parts", "pass", base);
        assert_eq!(f.evidence["parts"].as_array().unwrap().len(), 3, "{base}");
        r.has("bundle:checksum-verified", "pass", base);
        r.has("bundle:container-intact", "pass", base);
    }
}

#[test]
fn split_part_missing_cut_or_damaged_is_named() {
    let sb = Sandbox::new("split_part_faults");
    let data = std::fs::read(sb.sample()).unwrap();
    let dir = sb.path("media");
    std::fs::create_dir_all(&dir).unwrap();
    let parts = cut(&dir, "release.tar", &data, 4, |i| format!(".{:03}", i + 1));
    // Each part's own checksum, as a vendor may publish them.
    for p in &parts {
        let name = p.file_name().unwrap().to_str().unwrap();
        std::fs::write(
            dir.join(format!("{name}.sha256")),
            format!("{}  {name}\n", sha256_hex(&std::fs::read(p).unwrap())),
        )
        .unwrap();
    }
    let r = bundle(&parts[0], &[]);
    r.code(0);
    for p in &parts {
        r.has(
            "bundle:split-part-checksum-verified",
            "pass",
            p.to_str().unwrap(),
        );
    }

    // A damaged part: its own checksum and the whole one say so.
    let good = std::fs::read(&parts[1]).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 0xff;
    std::fs::write(&parts[1], &bad).unwrap();
    let r = bundle(&parts[0], &[]);
    r.code(1);
    r.has(
        "bundle:split-part-checksum-mismatch",
        "fail",
        parts[1].to_str().unwrap(),
    );
    r.has("bundle:checksum-mismatch", "fail", "release.tar");
    std::fs::write(&parts[1], &good).unwrap();

    // A cut part (not the last).
    std::fs::write(&parts[2], &std::fs::read(&parts[2]).unwrap()[..1000]).unwrap();
    let r = bundle(&parts[0], &[]);
    r.code(1);
    let f = r.has(
        "bundle:split-part-truncated",
        "fail",
        parts[2].to_str().unwrap(),
    );
    assert_eq!(f.evidence["size"], 1000);

    // A missing part: named, with the part that follows the gap.
    std::fs::remove_file(&parts[2]).unwrap();
    let r = bundle(&parts[0], &[]);
    r.code(1);
    let f = r.has(
        "bundle:split-part-missing",
        "fail",
        parts[2].to_str().unwrap(),
    );
    assert_eq!(f.evidence["later_part"], parts[3].to_str().unwrap());
}
