//! Safety rules applied to every entry of an archive or a staged tree.
//!
//! Guarantees:
//! - rules run on the name the entry *really* has (PAX `path` and GNU long
//!   names resolved by the reader), and on the raw bytes, so a non-UTF-8 name
//!   is reported, never a crash;
//! - links are judged lexically, from the entry's own folder for symlinks and
//!   from the archive root for hard links, exactly as an extractor would;
//! - the rules never touch the file system;
//! - time is linear in the length of each name (prefixes are looked up by
//!   a rolling hash, never one string each), and a name longer than
//!   [`MAX_NAME_BYTES`] is reported and kept only shortened, so hostile
//!   names cost neither quadratic time nor their size in memory.

use std::collections::{HashMap, HashSet};

use crossbeam_channel::Sender;

use crate::finding::{Code, Finding};

/// The kinds of entry the rules distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    /// Any other tar type flag (sparse, volume label, vendor extension).
    Other(u8),
}

/// What the rules need to know about one entry.
#[derive(Debug)]
pub struct EntryMeta<'a> {
    pub raw_path: &'a [u8],
    pub kind: EntryKind,
    pub mode: u32,
    pub link_target: Option<&'a [u8]>,
    /// Declared data size, when the source states it before the data.
    pub size: Option<u64>,
}

/// Turns raw name bytes into a printable name, escaping invalid UTF-8 as
/// `\xNN` so it can be shown and compared.
pub fn display_name(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::new();
            for chunk in raw.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

/// Longest entry name kept and shown whole: `PATH_MAX` on Linux. No
/// extractor can create a longer path in one piece.
pub const MAX_NAME_BYTES: usize = 4096;

/// [`display_name`], except that a name over [`MAX_NAME_BYTES`] becomes its
/// first 100 bytes, its length and 128 bits of its SHA-256: two different
/// long names stay different, and a finding never carries a megabyte name.
pub fn shown_name(raw: &[u8]) -> String {
    if raw.len() <= MAX_NAME_BYTES {
        return display_name(raw);
    }
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(raw);
    format!(
        "{}…[{} bytes, sha256:{}]",
        display_name(&raw[..100]),
        raw.len(),
        hex::encode(&d[..16])
    )
}

/// A keyed polynomial hash of a path that yields the hash of every prefix
/// in one pass: two lanes modulo the Mersenne prime 2^61-1, with bases
/// drawn at random per run so that crafted names cannot collide on
/// purpose. Looking prefixes up as strings would cost time quadratic in the
/// name's length (hours for a 1 MB name of half a million components).
#[derive(Clone, Copy)]
struct PrefixHash {
    bases: [u64; 2],
}

const MERSENNE61: u64 = (1 << 61) - 1;

fn mulmod61(a: u64, b: u64) -> u64 {
    let r = a as u128 * b as u128;
    let s = (r as u64 & MERSENNE61) + (r >> 61) as u64;
    let s = (s & MERSENNE61) + (s >> 61);
    if s >= MERSENNE61 {
        s - MERSENNE61
    } else {
        s
    }
}

impl Default for PrefixHash {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let lane = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(salt);
            2 + h.finish() % (MERSENNE61 - 3)
        };
        PrefixHash {
            bases: [lane(1), lane(2)],
        }
    }
}

impl PrefixHash {
    fn push(&self, h: (u64, u64), byte: u8) -> (u64, u64) {
        let add = |acc: u64, base: u64| {
            let v = mulmod61(acc, base) + byte as u64 + 1;
            if v >= MERSENNE61 {
                v - MERSENNE61
            } else {
                v
            }
        };
        (add(h.0, self.bases[0]), add(h.1, self.bases[1]))
    }

    fn of(&self, s: &str) -> (u64, u64) {
        s.bytes().fold((0, 0), |h, b| self.push(h, b))
    }
}

/// The path [`SafetyRules::check`] returns for an entry named `raw` (in a
/// release, without prefix): normalised, or shown shortened when too long.
pub fn entry_path(raw: &[u8]) -> String {
    if raw.len() > MAX_NAME_BYTES {
        shown_name(raw)
    } else {
        normalise(&display_name(raw))
    }
}

/// Normalises an archive path: drops `./` prefixes, empty and `.`
/// components and trailing slashes. Keeps `..` so rules can see it.
pub fn normalise(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// A path's identity: 128 bits of its SHA-256. Keeping a digest instead of
/// the string keeps memory per entry small and fixed (hostile archives have
/// hundreds of thousands of entries), and a cryptographic digest cannot be
/// steered into collisions by crafted names.
pub(crate) type PathKey = [u8; 16];

pub(crate) fn key(path: &str) -> PathKey {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(path.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// How many case collisions are reported with the earlier name; past that
/// only the entry itself is named (finding the earlier name costs a lookup).
const NAMED_CASE_COLLISIONS: usize = 100;

/// State carried across entries.
#[derive(Default)]
pub struct SafetyRules {
    seen: HashMap<PathKey, EntryKind>,
    /// Lower-cased path -> the first path with capitals spelled like that,
    /// by key. All-lowercase paths are their own lower-cased form, so `seen`
    /// already finds them: the common all-lowercase archive costs nothing
    /// here (a quarter of the memory per entry).
    lower: HashMap<PathKey, PathKey>,
    /// Names of the first entries, to name the other side of a collision.
    recent_names: HashMap<PathKey, Box<str>>,
    /// Rolling hashes of the paths earlier entries made symlinks.
    symlinks: HashSet<(u64, u64)>,
    /// Length of the longest of them: no longer prefix can be one.
    longest_symlink: usize,
    hasher: PrefixHash,
    case_collisions: usize,
    /// Prepended to entry names in findings (`outer.tar.gz!` when nested).
    prefix: String,
    pub problems: usize,
    pub entries: u64,
}

impl SafetyRules {
    pub fn with_prefix(prefix: String) -> Self {
        SafetyRules {
            prefix,
            ..Default::default()
        }
    }

    /// Checks one entry and returns its normalised path (empty for the root
    /// entry `./`; shortened by [`shown_name`] when over [`MAX_NAME_BYTES`]).
    /// Identity (duplicates, case collisions) is judged on the shortened
    /// form, which keeps 128 bits of the whole name's digest.
    pub fn check(&mut self, e: &EntryMeta<'_>, findings: &Sender<Finding>) -> String {
        self.entries += 1;
        // `full` is judged, `shown` (shortened when too long) is printed.
        let long = e.raw_path.len() > MAX_NAME_BYTES;
        let full = display_name(e.raw_path);
        let shown = if long {
            shown_name(e.raw_path)
        } else {
            full.clone()
        };
        let target = format!("{}{}", self.prefix, shown);
        let path = normalise(&full);
        let placement = self.placement(&full, &path, &shown, e);
        let mut report = |code: Code, msg: String| {
            self.problems += 1;
            let _ = findings.send(Finding::new(code, target.clone(), msg));
        };
        if long {
            report(
                Code::BundleNameTooLong,
                format!(
                    "entry name is {} bytes, longer than {MAX_NAME_BYTES} (PATH_MAX): no extractor can create it; shown shortened",
                    e.raw_path.len()
                ),
            );
        }
        if std::str::from_utf8(e.raw_path).is_err() {
            report(
                Code::BundleNonUtf8Name,
                format!("entry name is not valid UTF-8: {shown}"),
            );
        }
        for (code, msg) in placement {
            report(code, msg);
        }
        drop(full);
        match e.kind {
            EntryKind::Symlink | EntryKind::Hardlink => {
                if e.kind == EntryKind::Symlink {
                    self.symlinks.insert(self.hasher.of(&path));
                    self.longest_symlink = self.longest_symlink.max(path.len());
                }
            }
            EntryKind::CharDevice
            | EntryKind::BlockDevice
            | EntryKind::Fifo
            | EntryKind::Socket => {
                let what = match e.kind {
                    EntryKind::CharDevice => "character device",
                    EntryKind::BlockDevice => "block device",
                    EntryKind::Fifo => "FIFO",
                    _ => "socket",
                };
                report(Code::BundleSpecialFile, format!("{shown} is a {what}"));
            }
            EntryKind::Other(t) => {
                let _ = findings.send(Finding::new(
                    Code::BundleUnsupportedEntry,
                    target.clone(),
                    format!(
                        "{shown} has tar type {:?}, which is not verified",
                        t as char
                    ),
                ));
            }
            EntryKind::File => {
                // Tar has no type flag for sockets, but the mode field has
                // room for the file-type bits (`st_mode`), and an extractor
                // that trusts them over the type flag (or mknod with the raw
                // mode) creates the special file. A regular-file flag with
                // special-file bits is a disguised special file.
                let what = match e.mode & 0o170000 {
                    0o140000 => Some("socket"),
                    0o020000 => Some("character device"),
                    0o060000 => Some("block device"),
                    0o010000 => Some("FIFO"),
                    _ => None,
                };
                if let Some(what) = what {
                    report(
                        Code::BundleSpecialFile,
                        format!(
                            "{shown} is typed a regular file but its mode {:o} marks it a {what}",
                            e.mode
                        ),
                    );
                }
            }
            EntryKind::Dir => {}
        }
        if e.kind != EntryKind::Dir && e.mode & 0o6000 != 0 {
            let bits = match e.mode & 0o6000 {
                0o4000 => "setuid",
                0o2000 => "setgid",
                _ => "setuid and setgid",
            };
            report(
                Code::BundleSetuid,
                format!("{shown} has the {bits} bit (mode {:o})", e.mode & 0o7777),
            );
        }
        // From here on a long name is only ever seen shortened: it is what
        // the caller records, so memory does not grow with name lengths.
        let path = if long { shown.clone() } else { path };
        if !path.is_empty() {
            let k = key(&path);
            if let Some(prev) = self.seen.get(&k) {
                // A directory listed twice changes nothing on extraction.
                if !(*prev == EntryKind::Dir && e.kind == EntryKind::Dir) {
                    report(
                        Code::BundleDuplicateEntry,
                        format!("{path} appears more than once; the later entry replaces the earlier one on extraction"),
                    );
                }
            } else {
                self.seen.insert(k, e.kind);
                let lowered = path.to_lowercase();
                let has_upper = lowered != path;
                let lk = if has_upper { key(&lowered) } else { k };
                // The first path spelled like this one up to case: one with
                // capitals from `lower`, an all-lowercase one from `seen`.
                let first = match self.lower.get(&lk) {
                    Some(f) => Some(*f),
                    None if has_upper && self.seen.contains_key(&lk) => Some(lk),
                    None => None,
                };
                match first.as_ref() {
                    Some(first) if *first != k => {
                        self.case_collisions += 1;
                        let other = self
                            .recent_names
                            .get(first)
                            .map(|n| format!(" and {n}"))
                            .unwrap_or_else(|| " and an earlier entry".into());
                        let _ = findings.send(Finding::new(
                            Code::BundleCaseCollision,
                            target.clone(),
                            format!("{path}{other} differ only by case"),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        if has_upper {
                            self.lower.insert(lk, k);
                        }
                        // Only names that can still be asked for are kept.
                        if self.recent_names.len() < 4096
                            && self.case_collisions < NAMED_CASE_COLLISIONS
                        {
                            self.recent_names.insert(k, path.clone().into_boxed_str());
                        }
                    }
                }
            }
        }
        path
    }
}

impl SafetyRules {
    /// The rules that decide where an entry lands: an absolute path, a
    /// `..` component, a prefix an earlier entry made a symlink, a link
    /// whose target leaves the root. `full` is the name as read, `path` its
    /// normalised form, `shown` what messages print.
    fn placement(
        &self,
        full: &str,
        path: &str,
        shown: &str,
        e: &EntryMeta<'_>,
    ) -> Vec<(Code, String)> {
        let mut out = Vec::new();
        if full.starts_with('/') {
            out.push((
                Code::BundleAbsolutePath,
                format!("absolute path {shown} would be written outside the destination"),
            ));
        }
        if path.split('/').any(|c| c == "..") {
            out.push((
                Code::BundlePathTraversal,
                format!("path {shown} contains a `..` component"),
            ));
        }
        // A prefix of this path that an earlier entry made a symlink.
        if !self.symlinks.is_empty() {
            let mut h = (0, 0);
            for (i, b) in path.bytes().enumerate().take(self.longest_symlink + 1) {
                if b == b'/' && self.symlinks.contains(&h) {
                    let prefix = shown_name(&path.as_bytes()[..i]);
                    out.push((
                        Code::BundlePathThroughSymlink,
                        format!("{shown} is written through the symlink {prefix} created by an earlier entry"),
                    ));
                    break;
                }
                h = self.hasher.push(h, b);
            }
        }
        if matches!(e.kind, EntryKind::Symlink | EntryKind::Hardlink) {
            let link = e.link_target.unwrap_or_default();
            let target = display_name(link);
            let base = if e.kind == EntryKind::Symlink {
                parent(path)
            } else {
                ""
            };
            if target.is_empty() {
                out.push((
                    Code::BundleLinkEscape,
                    format!("link {shown} has an empty target"),
                ));
            } else if target.starts_with('/') || escapes(base, &target) {
                let kind = if e.kind == EntryKind::Symlink {
                    "symlink"
                } else {
                    "hard link"
                };
                out.push((
                    Code::BundleLinkEscape,
                    format!(
                        "{kind} {shown} -> {} points outside the archive root",
                        shown_name(link)
                    ),
                ));
            }
        }
        out
    }

    /// Judges another extractor's reading of an entry already checked
    /// under its primary name (`primary`): where it would land (absolute
    /// path, `..`, symlinked prefix, link escape). Identity rules
    /// (duplicates, case) stay with the primary name, so nothing is
    /// recorded. Findings name the entry by its primary name and say which
    /// extractors (`readers`) read it this way.
    pub fn check_reading(
        &mut self,
        primary: &str,
        readers: &str,
        e: &EntryMeta<'_>,
        findings: &Sender<Finding>,
    ) {
        let full = display_name(e.raw_path);
        let shown = shown_name(e.raw_path);
        let path = normalise(&full);
        let target = format!("{}{}", self.prefix, primary);
        for (code, msg) in self.placement(&full, &path, &shown, e) {
            self.problems += 1;
            let _ = findings.send(
                Finding::new(code, target.clone(), format!("as {readers} read it: {msg}"))
                    .evidence("read_by", readers),
            );
        }
    }
}

fn parent(path: &str) -> &str {
    path.rfind('/').map(|i| &path[..i]).unwrap_or("")
}

/// Whether `target`, resolved lexically from folder `base`, leaves the root.
fn escapes(base: &str, target: &str) -> bool {
    let mut depth: i64 = base.split('/').filter(|c| !c.is_empty()).count() as i64;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_escape() {
        assert!(!escapes("a/b", "../c"));
        assert!(!escapes("a/b", "../../c"));
        assert!(escapes("a/b", "../../../c"));
        assert!(escapes("", ".."));
        assert!(!escapes("", "a/../b"));
        assert!(escapes("a", "b/../../../x"));
    }

    #[test]
    fn normalises_paths() {
        assert_eq!(normalise("./a//b/./c/"), "a/b/c");
        assert_eq!(normalise("./"), "");
        assert_eq!(normalise("a/../b"), "a/../b");
    }

    #[test]
    fn long_names_are_shortened_but_stay_distinct() {
        let a = vec![b'a'; MAX_NAME_BYTES + 1];
        let mut b = a.clone();
        b[MAX_NAME_BYTES] = b'b';
        let (sa, sb) = (shown_name(&a), shown_name(&b));
        assert!(
            sa.len() < 200 && sa.contains("[4097 bytes, sha256:"),
            "{sa}"
        );
        assert_ne!(sa, sb);
        assert_eq!(shown_name(b"short"), "short");
    }

    #[test]
    fn writes_through_any_symlinked_prefix() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut rules = SafetyRules::default();
        let entry = |p: &'static [u8], kind| EntryMeta {
            raw_path: p,
            kind,
            mode: 0o644,
            link_target: Some(b"inside"),
            size: Some(0),
        };
        rules.check(&entry(b"a/b", EntryKind::Symlink), &tx);
        rules.check(&entry(b"a/bc/d", EntryKind::File), &tx);
        rules.check(&entry(b"a/b", EntryKind::Dir), &tx);
        rules.check(&entry(b"./a/b/c/d", EntryKind::File), &tx);
        drop(tx);
        let through: Vec<String> = rx
            .iter()
            .filter(|f| f.code == Code::BundlePathThroughSymlink)
            .map(|f| f.target)
            .collect();
        assert_eq!(through, ["./a/b/c/d"]);
    }

    #[test]
    fn case_collisions_in_any_order() {
        for names in [
            ["a/Config.yml", "a/config.yml", "a/CONFIG.yml"],
            ["a/config.yml", "a/Config.yml", "a/CONFIG.yml"],
            ["a/CONFIG.yml", "a/Config.yml", "a/config.yml"],
        ] {
            let (tx, rx) = crossbeam_channel::unbounded();
            let mut rules = SafetyRules::default();
            for n in names {
                let e = EntryMeta {
                    raw_path: n.as_bytes(),
                    kind: EntryKind::File,
                    mode: 0o644,
                    link_target: None,
                    size: Some(0),
                };
                rules.check(&e, &tx);
            }
            drop(tx);
            let got: Vec<String> = rx
                .iter()
                .map(|f| format!("{} {}", f.code, f.message))
                .collect();
            let want: Vec<String> = names[1..]
                .iter()
                .map(|n| {
                    format!(
                        "bundle:case-collision {n} and {} differ only by case",
                        names[0]
                    )
                })
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn escapes_invalid_utf8() {
        assert_eq!(display_name(b"a\xffb"), "a\\xffb");
    }
}
