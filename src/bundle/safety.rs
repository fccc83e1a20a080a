//! Safety rules applied to every entry of an archive or a staged tree.
//!
//! Guarantees:
//! - rules run on the name the entry *really* has (PAX `path` and GNU long
//!   names resolved by the reader), and on the raw bytes, so a non-UTF-8 name
//!   is reported, never a crash;
//! - links are judged lexically, from the entry's own folder for symlinks and
//!   from the archive root for hard links, exactly as an extractor would;
//! - the rules never touch the file system.

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
type PathKey = [u8; 16];

fn key(path: &str) -> PathKey {
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
    /// Lower-cased path -> the first path seen with that spelling, by key.
    lower: HashMap<PathKey, PathKey>,
    /// Names of the first entries, to name the other side of a collision.
    recent_names: HashMap<PathKey, Box<str>>,
    symlinks: HashSet<String>,
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
    /// entry `./`).
    pub fn check(&mut self, e: &EntryMeta<'_>, findings: &Sender<Finding>) -> String {
        self.entries += 1;
        let shown = display_name(e.raw_path);
        let target = format!("{}{}", self.prefix, shown);
        let mut report = |code: Code, msg: String| {
            self.problems += 1;
            let _ = findings.send(Finding::new(code, target.clone(), msg));
        };
        if std::str::from_utf8(e.raw_path).is_err() {
            report(
                Code::BundleNonUtf8Name,
                format!("entry name is not valid UTF-8: {shown}"),
            );
        }
        if shown.starts_with('/') {
            report(
                Code::BundleAbsolutePath,
                format!("absolute path {shown} would be written outside the destination"),
            );
        }
        let path = normalise(&shown);
        if path.split('/').any(|c| c == "..") {
            report(
                Code::BundlePathTraversal,
                format!("path {shown} contains a `..` component"),
            );
        }
        // A prefix of this path that an earlier entry made a symlink.
        for (i, ch) in path.char_indices() {
            if ch == '/' {
                let prefix = &path[..i];
                if self.symlinks.contains(prefix) {
                    report(
                        Code::BundlePathThroughSymlink,
                        format!("{shown} is written through the symlink {prefix} created by an earlier entry"),
                    );
                    break;
                }
            }
        }
        match e.kind {
            EntryKind::Symlink | EntryKind::Hardlink => {
                let target = display_name(e.link_target.unwrap_or_default());
                let base = if e.kind == EntryKind::Symlink {
                    parent(&path)
                } else {
                    ""
                };
                if target.is_empty() {
                    report(
                        Code::BundleLinkEscape,
                        format!("link {shown} has an empty target"),
                    );
                } else if target.starts_with('/') || escapes(base, &target) {
                    let kind = if e.kind == EntryKind::Symlink {
                        "symlink"
                    } else {
                        "hard link"
                    };
                    report(
                        Code::BundleLinkEscape,
                        format!("{kind} {shown} -> {target} points outside the archive root"),
                    );
                }
                if e.kind == EntryKind::Symlink {
                    self.symlinks.insert(path.clone());
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
                let lk = key(&path.to_lowercase());
                match self.lower.get(&lk) {
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
                        self.lower.insert(lk, k);
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
    fn escapes_invalid_utf8() {
        assert_eq!(display_name(b"a\xffb"), "a\\xffb");
    }
}
