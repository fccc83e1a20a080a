//! Split archives: `release.tar.001`, `.002`… (also `.part1`, `.part2`…
//! and `split`'s `.aa`, `.ab`…) read as one stream, part after part.
//!
//! Operators split archives to fit removable media; the parts are only
//! useful together, and a missing or cut part must be named, not discovered
//! as an anonymous truncation of the tar.
//!
//! Guarantees:
//! - a split set is recognised only from its first part's name (`.001`,
//!   `.000`, `.part1`, `.aa`); the following parts are the consecutive names
//!   that exist, read in order, never reopened or read twice;
//! - a gap in the numbering (a later part exists but one before it does not)
//!   is reported with the missing name, and reading stops at the gap;
//! - every part but the last must be as long as the first (what `split -b`,
//!   `split -n` and chunking tools write): a shorter one is reported as
//!   truncated with both sizes;
//! - a `PART.sha256` beside a part is checked against that part's own
//!   SHA-256, computed as the part streams past (only when such files
//!   exist); the whole-archive checksum is `BASE.sha256` (the name without
//!   the part suffix).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// How many names past the last existing part are looked at for a gap.
const GAP_LOOKAHEAD: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `.001` (or `.000`), as many digits as the first part has.
    Numeric { width: usize, start: u64 },
    /// `.part1`.
    Part,
    /// `.aa`, `.ab`, … (two letters, as `split` writes by default).
    Letters,
}

/// One part on disk.
#[derive(Debug, Clone)]
pub struct Part {
    pub path: PathBuf,
    pub size: u64,
}

/// A recognised split set.
#[derive(Debug, Clone)]
pub struct SplitSet {
    /// The name without the part suffix (`release.tar`).
    pub base: PathBuf,
    /// The consecutive parts that exist, first one included.
    pub parts: Vec<Part>,
    /// A name missing before a later existing part: (missing, the later one).
    pub gap: Option<(PathBuf, PathBuf)>,
}

fn name_of(base: &Path, scheme: Scheme, i: u64) -> Option<PathBuf> {
    let suffix = match scheme {
        Scheme::Numeric { width, start } => format!(".{:0width$}", start + i),
        Scheme::Part => format!(".part{}", i + 1),
        Scheme::Letters => {
            if i >= 26 * 26 {
                return None;
            }
            let a = (b'a' + (i / 26) as u8) as char;
            let b = (b'a' + (i % 26) as u8) as char;
            format!(".{a}{b}")
        }
    };
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    Some(PathBuf::from(s))
}

/// The scheme and base name when `path` names a first part.
fn first_part(path: &Path) -> Option<(PathBuf, Scheme)> {
    let name = path.file_name()?.to_str()?;
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    let scheme = if ext.len() >= 2 && ext.bytes().all(|b| b.is_ascii_digit()) {
        let start: u64 = ext.parse().ok()?;
        (start <= 1).then_some(Scheme::Numeric {
            width: ext.len(),
            start,
        })?
    } else if ext == "part1" {
        Scheme::Part
    } else if ext == "aa" {
        Scheme::Letters
    } else {
        return None;
    };
    Some((path.with_file_name(stem), scheme))
}

/// Recognises `path` as the first part of a split set whose second part
/// exists. A lone `release.tar.001` is an ordinary file.
pub fn detect(path: &Path) -> Option<SplitSet> {
    let (base, scheme) = first_part(path)?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    };
    let mut parts = vec![Part {
        path: path.to_path_buf(),
        size: size(path)?,
    }];
    let mut i = 1;
    while let Some(next) = name_of(&base, scheme, i) {
        match size(&next) {
            Some(s) => parts.push(Part {
                path: next,
                size: s,
            }),
            None => break,
        }
        i += 1;
    }
    if parts.len() < 2 {
        return None;
    }
    let missing = name_of(&base, scheme, i);
    let gap = missing.and_then(|missing| {
        (1..=GAP_LOOKAHEAD as u64)
            .filter_map(|k| name_of(&base, scheme, i + k))
            .find(|later| later.exists())
            .map(|later| (missing, later))
    });
    Some(SplitSet { base, parts, gap })
}

impl SplitSet {
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// Parts other than the last that are shorter (or longer) than the first.
    pub fn uneven(&self) -> Vec<&Part> {
        let first = self.parts[0].size;
        let n = self.parts.len();
        self.parts[..n - 1]
            .iter()
            .filter(|p| p.size != first)
            .collect()
    }

    /// `PART.sha256` files that exist beside the parts.
    pub fn part_checksums(&self) -> Vec<(usize, PathBuf)> {
        self.parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let mut s = p.path.as_os_str().to_owned();
                s.push(".sha256");
                let c = PathBuf::from(s);
                c.exists().then_some((i, c))
            })
            .collect()
    }
}

/// Reads the parts as one stream, hashing each part when asked.
pub struct SplitReader {
    parts: Vec<PathBuf>,
    next: usize,
    current: Option<File>,
    hash_parts: bool,
    hasher: Sha256,
    /// SHA-256 of each part read to its end.
    pub digests: Vec<[u8; 32]>,
}

impl SplitReader {
    pub fn open(set: &SplitSet, hash_parts: bool) -> std::io::Result<SplitReader> {
        let mut r = SplitReader {
            parts: set.parts.iter().map(|p| p.path.clone()).collect(),
            next: 0,
            current: None,
            hash_parts,
            hasher: Sha256::new(),
            digests: Vec::new(),
        };
        // The first part opens now, so an unreadable archive is an input error.
        r.advance()?;
        Ok(r)
    }

    fn advance(&mut self) -> std::io::Result<()> {
        self.current = match self.parts.get(self.next) {
            Some(p) => Some(File::open(p)?),
            None => None,
        };
        self.next += 1;
        Ok(())
    }
}

impl Read for SplitReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(f) = &mut self.current else {
                return Ok(0);
            };
            let n = f.read(buf)?;
            if n > 0 {
                if self.hash_parts {
                    self.hasher.update(&buf[..n]);
                }
                return Ok(n);
            }
            if self.hash_parts {
                let h = std::mem::take(&mut self.hasher);
                self.digests.push(h.finalize().into());
            }
            self.advance()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("airgap-split-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn schemes_and_gaps() {
        let d = dir("schemes");
        for n in [
            "r.tar.001",
            "r.tar.002",
            "r.tar.004",
            "s.tar.aa",
            "s.tar.ab",
            "t.tar.part1",
            "t.tar.part2",
            "u.tar.001",
        ] {
            std::fs::write(d.join(n), b"0123").unwrap();
        }
        let r = detect(&d.join("r.tar.001")).unwrap();
        assert_eq!(r.base, d.join("r.tar"));
        assert_eq!(r.parts.len(), 2);
        assert_eq!(r.gap, Some((d.join("r.tar.003"), d.join("r.tar.004"))));
        let s = detect(&d.join("s.tar.aa")).unwrap();
        assert_eq!(s.parts.len(), 2);
        assert!(s.gap.is_none());
        assert_eq!(detect(&d.join("t.tar.part1")).unwrap().parts.len(), 2);
        // One part alone, a later part, or an ordinary name: not a split set.
        assert!(detect(&d.join("u.tar.001")).is_none());
        assert!(detect(&d.join("r.tar.002")).is_none());
        assert!(detect(&d.join("r.tar")).is_none());
    }

    #[test]
    fn reads_parts_in_order_and_hashes_each() {
        let d = dir("read");
        std::fs::write(d.join("a.bin.aa"), b"hello ").unwrap();
        std::fs::write(d.join("a.bin.ab"), b"world").unwrap();
        let set = detect(&d.join("a.bin.aa")).unwrap();
        assert_eq!(set.uneven().len(), 0, "only the last may be shorter");
        let mut r = SplitReader::open(&set, true).unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"hello world");
        assert_eq!(r.digests.len(), 2);
        assert_eq!(r.digests[1], <[u8; 32]>::from(Sha256::digest(b"world")));
        std::fs::write(d.join("a.bin.ac"), b"!").unwrap();
        let set = detect(&d.join("a.bin.aa")).unwrap();
        assert_eq!(
            set.uneven().len(),
            1,
            "the middle part is shorter than the first"
        );
    }
}
