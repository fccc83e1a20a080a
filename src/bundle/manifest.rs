//! Release manifests: our `manifest.json` (docs/bundle-format.md) and
//! `SHA256SUMS` files, parsed and checked against what the pass hashed.
//!
//! Guarantees:
//! - a manifest is judged only after the whole pass, so it may come before or
//!   after the files it lists;
//! - every listed path is confined to the manifest's folder: a path that
//!   escapes it is a malformed manifest, never a lookup outside;
//! - parse errors carry the manifest's member path and a line and column.

use std::collections::{HashMap, HashSet};

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use super::safety::{key as path_key, normalise, PathKey};
use crate::finding::{Code, Finding};

/// File names recognised as release manifests.
pub const JSON_NAME: &str = "manifest.json";
pub const SUMS_NAMES: &[&str] = &["SHA256SUMS", "SHA256SUMS.txt", "sha256sums.txt"];
/// Deepest folder a manifest may sit in (`a/b/c/manifest.json` is depth 3).
pub const MAX_DEPTH: usize = 3;

/// Whether a normalised member path names a manifest we should capture.
pub fn is_candidate(path: &str) -> bool {
    let (depth, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (dir.split('/').count(), name),
        None => (0, path),
    };
    depth <= MAX_DEPTH && (name == JSON_NAME || SUMS_NAMES.contains(&name))
}

/// The on-disk form of `manifest.json`, schema version 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestDoc {
    pub schema_version: u32,
    pub product: String,
    pub version: String,
    pub files: Vec<ManifestFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ManifestImage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestImage {
    #[serde(rename = "ref")]
    pub reference: String,
    pub path: String,
}

/// One file a manifest vouches for, with its path resolved from the archive
/// root.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: String,
    pub size: Option<u64>,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct ReleaseManifest {
    /// Member path of the manifest itself.
    pub path: String,
    /// Folder the listed paths are relative to ("" for the root).
    pub folder: String,
    /// `manifest.json` also forbids unlisted files in its folder.
    pub exhaustive: bool,
    pub files: Vec<Listed>,
    pub images: Vec<ManifestImage>,
}

/// A manifest rejected as malformed; `message` names the place.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub message: String,
}

fn folder_of(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_default()
}

fn join(folder: &str, rel: &str) -> String {
    if folder.is_empty() {
        normalise(rel)
    } else {
        normalise(&format!("{folder}/{rel}"))
    }
}

/// Checks that a listed path stays inside the manifest's folder.
fn confined(rel: &str) -> Result<(), String> {
    if rel.is_empty() {
        return Err("empty path".into());
    }
    if rel.starts_with('/') {
        return Err(format!("absolute path {rel:?}"));
    }
    if rel.split('/').any(|c| c == "..") {
        return Err(format!("path {rel:?} escapes the manifest's folder"));
    }
    if normalise(rel).is_empty() {
        return Err(format!("path {rel:?} names the folder itself"));
    }
    Ok(())
}

fn parse_hex_digest(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 {
        return Err(format!(
            "sha256 {s:?} has {} characters, expected 64 hex digits",
            s.len()
        ));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| format!("sha256 {s:?} is not hexadecimal"))?;
    Ok(out)
}

/// `manifest.json` as read for verification: the same document as
/// [`ManifestDoc`], but each `files` entry is checked and converted as serde
/// reads it ([`ListedFiles`]), so the entries never exist twice in memory.
#[derive(Deserialize)]
struct ManifestIn {
    schema_version: u32,
    #[allow(dead_code)]
    product: String,
    #[allow(dead_code)]
    version: String,
    files: ListedFiles,
    #[serde(default)]
    images: Vec<ManifestImage>,
}

/// `files[]` converted entry by entry: paths confined and normalised (still
/// relative to the manifest's folder), digests decoded, duplicates refused.
/// A rule broken is a deserialisation error, which serde_json places at a
/// line and column.
struct ListedFiles(Vec<Listed>);

impl<'de> Deserialize<'de> for ListedFiles {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ListedFiles;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of files")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ListedFiles, A::Error> {
                use serde::de::Error;
                // JSON gives no length: parse_json counts the entries first,
                // so the vector is allocated once, without doubling slack.
                let hint = seq.size_hint().unwrap_or_else(|| FILES_HINT.get());
                let mut out = Vec::with_capacity(hint);
                let mut seen: HashSet<PathKey> = HashSet::new();
                let mut i = 0usize;
                while let Some(f) = seq.next_element::<ManifestFile>()? {
                    confined(&f.path).map_err(|e| A::Error::custom(format!("files[{i}]: {e}")))?;
                    let sha256 = parse_hex_digest(&f.sha256)
                        .map_err(|e| A::Error::custom(format!("files[{i}] ({}): {e}", f.path)))?;
                    let rel = normalise(&f.path);
                    if !seen.insert(path_key(&rel)) {
                        return Err(A::Error::custom(format!(
                            "files[{i}]: {} is listed more than once",
                            f.path
                        )));
                    }
                    out.push(Listed {
                        path: rel,
                        size: Some(f.size),
                        sha256,
                    });
                    i += 1;
                }
                Ok(ListedFiles(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Parses `manifest.json`. `Ok(None)` when the JSON is a docker-archive
/// `manifest.json` (a top-level array), which is not a release manifest.
///
/// Peak memory is about twice the manifest's size (a 16 MiB manifest lists
/// about 150,000 files): entries are converted as they are read, and the
/// text is dropped before paths are joined to the manifest's folder.
pub fn parse_json(path: &str, bytes: Vec<u8>) -> Result<Option<ReleaseManifest>, Malformed> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Ok(None);
    }
    // Every file entry has one "sha256" key and takes at least 96 bytes
    // (the 64-digit digest and the key names): a count in one pass over
    // bytes that are in cache, bounded by the size, instead of a vector
    // that doubles as it grows. Extra "sha256" strings only make it larger.
    FILES_HINT.set(count_occurrences(&bytes, b"\"sha256\"").min(bytes.len() / 96 + 1));
    let doc: Result<ManifestIn, _> = serde_json::from_slice(&bytes);
    FILES_HINT.set(0);
    drop(bytes);
    let doc = doc.map_err(|e| Malformed {
        message: format!(
            "{path}: line {}, column {}: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ),
    })?;
    if doc.schema_version != 1 {
        return Err(Malformed {
            message: format!(
                "{path}: schema_version {} is not supported (this tool reads version 1)",
                doc.schema_version
            ),
        });
    }
    for (i, img) in doc.images.iter().enumerate() {
        if let Err(e) = confined(&img.path) {
            return Err(Malformed {
                message: format!("{path}: images[{i}]: {e}"),
            });
        }
        if img.reference.trim().is_empty() {
            return Err(Malformed {
                message: format!("{path}: images[{i}]: empty ref"),
            });
        }
    }
    let folder = folder_of(path);
    let mut files = doc.files.0;
    if !folder.is_empty() {
        for l in &mut files {
            l.path = join(&folder, &l.path);
        }
    }
    Ok(Some(ReleaseManifest {
        path: path.to_string(),
        folder,
        exhaustive: true,
        files,
        images: doc.images,
    }))
}

thread_local! {
    /// How many file entries the manifest being parsed holds, at most (see
    /// [`parse_json`]); 0 outside a parse.
    static FILES_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count_occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// serde_json appends " at line L column C"; we print our own position.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map(|i| &msg[..i]).unwrap_or(msg)
}

/// Parses a `SHA256SUMS` file: GNU (`hex  path`, `hex *path`) and BSD
/// (`SHA256 (path) = hex`) lines; blank lines and `#` comments are skipped.
pub fn parse_sums(path: &str, bytes: &[u8]) -> Result<ReleaseManifest, Malformed> {
    let folder = folder_of(path);
    let text = std::str::from_utf8(bytes).map_err(|e| Malformed {
        message: format!("{path}: not UTF-8 text ({e})"),
    })?;
    // One allocation, no doubling slack: a 16 MiB file lists 200,000 paths.
    let mut files = Vec::with_capacity(bytecount_lines(bytes));
    // Digests, not strings: the listed paths are already kept once.
    let mut seen: HashSet<PathKey> = HashSet::with_capacity(files.capacity());
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let bad = |m: String| Malformed {
            message: format!("{path}: line {line_no}, column 1: {m}"),
        };
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (hex_part, rel) = parse_sums_line(line).ok_or_else(|| {
            bad("expected `<sha256>  <path>` or `SHA256 (<path>) = <sha256>`".into())
        })?;
        let digest = parse_hex_digest(hex_part).map_err(bad)?;
        confined(rel).map_err(bad)?;
        if !seen.insert(path_key(&normalise(rel))) {
            return Err(bad(format!("{rel} is listed more than once")));
        }
        files.push(Listed {
            path: join(&folder, rel),
            size: None,
            sha256: digest,
        });
    }
    Ok(ReleaseManifest {
        path: path.to_string(),
        folder,
        exhaustive: false,
        files,
        images: Vec::new(),
    })
}

fn bytecount_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Splits one checksum line into (hex, path). Shared with the outer
/// `.sha256` file reader.
pub fn parse_sums_line(line: &str) -> Option<(&str, &str)> {
    if let Some(rest) = line.strip_prefix("SHA256 (") {
        let (p, h) = rest.rsplit_once(") = ")?;
        return Some((h.trim(), p));
    }
    let (h, rest) = line.split_once([' ', '\t'])?;
    // GNU: two spaces (text) or " *" (binary) before the name; be lenient
    // about a single space.
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let rest = rest.strip_prefix('*').unwrap_or(rest);
    if h.is_empty() || rest.is_empty() {
        return None;
    }
    Some((h, rest))
}

/// What the pass learnt about one regular file.
#[derive(Debug, Clone, Copy)]
pub struct FileRecord {
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Checks one manifest against the files hashed during the pass.
pub fn verify(
    m: &ReleaseManifest,
    table: &HashMap<String, FileRecord>,
    findings: &Sender<Finding>,
) {
    let mut problems = 0usize;
    let mut bytes = 0u64;
    let send = |f: Finding| {
        let _ = findings.send(f.evidence("manifest", m.path.clone()));
    };
    for l in &m.files {
        match table.get(&l.path) {
            None => {
                problems += 1;
                send(Finding::new(
                    Code::BundleFileMissing,
                    l.path.clone(),
                    format!(
                        "{} is listed in {} but is not in the archive",
                        l.path, m.path
                    ),
                ));
            }
            Some(rec) => {
                bytes += rec.size;
                if let Some(size) = l.size {
                    if size != rec.size {
                        problems += 1;
                        send(
                            Finding::new(
                                Code::BundleSizeMismatch,
                                l.path.clone(),
                                format!(
                                    "{} is {} bytes, {} lists {} bytes",
                                    l.path, rec.size, m.path, size
                                ),
                            )
                            .evidence("expected_size", size)
                            .evidence("actual_size", rec.size),
                        );
                        continue;
                    }
                }
                if rec.sha256 != l.sha256 {
                    problems += 1;
                    send(
                        Finding::new(
                            Code::BundleDigestMismatch,
                            l.path.clone(),
                            format!(
                                "{} has sha256:{}, {} lists sha256:{}",
                                l.path,
                                hex::encode(rec.sha256),
                                m.path,
                                hex::encode(l.sha256)
                            ),
                        )
                        .evidence("expected_sha256", hex::encode(l.sha256))
                        .evidence("actual_sha256", hex::encode(rec.sha256)),
                    );
                }
            }
        }
    }
    if m.exhaustive {
        let listed: HashSet<&str> = m.files.iter().map(|l| l.path.as_str()).collect();
        let prefix = if m.folder.is_empty() {
            String::new()
        } else {
            format!("{}/", m.folder)
        };
        let mut unlisted: Vec<&String> = table
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .filter(|p| !listed.contains(p.as_str()))
            .filter(|p| !is_own_companion(&m.path, p))
            .collect();
        unlisted.sort();
        for p in unlisted {
            problems += 1;
            send(Finding::new(
                Code::BundleUnlistedFile,
                p.clone(),
                format!(
                    "{p} is inside the folder of {} but not listed in it",
                    m.path
                ),
            ));
        }
    }
    if problems == 0 {
        send(
            Finding::new(
                Code::BundleManifestVerified,
                m.path.clone(),
                format!(
                    "{}: {} files verified ({} bytes)",
                    m.path,
                    m.files.len(),
                    bytes
                ),
            )
            .evidence("files", m.files.len())
            .evidence("bytes", bytes),
        );
    }
}

/// The manifest itself and its detached signatures are not listed in it.
fn is_own_companion(manifest: &str, path: &str) -> bool {
    path == manifest
        || path
            .strip_prefix(manifest)
            .is_some_and(|ext| matches!(ext, ".minisig" | ".sig" | ".asc" | ".sha256"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates() {
        assert!(is_candidate("manifest.json"));
        assert!(is_candidate("a/b/c/manifest.json"));
        assert!(!is_candidate("a/b/c/d/manifest.json"));
        assert!(is_candidate("platform/v1/SHA256SUMS"));
        assert!(!is_candidate("platform/v1/other.json"));
    }

    #[test]
    fn sums_lines() {
        let h = "a".repeat(64);
        assert_eq!(
            parse_sums_line(&format!("{h}  x/y")),
            Some((h.as_str(), "x/y"))
        );
        assert_eq!(
            parse_sums_line(&format!("{h} *x/y")),
            Some((h.as_str(), "x/y"))
        );
        assert_eq!(
            parse_sums_line(&format!("SHA256 (x y) = {h}")),
            Some((h.as_str(), "x y"))
        );
        assert_eq!(parse_sums_line("garbage"), None);
    }

    #[test]
    fn json_errors_have_line_and_column() {
        let e = parse_json(
            "m/manifest.json",
            b"{\n  \"schema_version\": 1,\n  oops\n}".to_vec(),
        )
        .unwrap_err();
        assert!(
            e.message.starts_with("m/manifest.json: line 3, column 3"),
            "{}",
            e.message
        );
    }

    #[test]
    fn escaping_paths_are_malformed() {
        let doc = format!(
            r#"{{"schema_version":1,"product":"p","version":"1","files":[{{"path":"../x","size":1,"sha256":"{}"}}]}}"#,
            "0".repeat(64)
        );
        let e = parse_json("manifest.json", doc.into_bytes()).unwrap_err();
        assert!(e.message.contains("escapes"), "{}", e.message);
    }

    #[test]
    fn listed_files_are_allocated_once() {
        let n = 5000;
        let files: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"path":"f/{i}","size":1,"sha256":"{}"}}"#,
                    "ab".repeat(32)
                )
            })
            .collect();
        let doc = format!(
            r#"{{"schema_version":1,"product":"p","version":"1","files":[{}]}}"#,
            files.join(",")
        );
        let m = parse_json("rel/manifest.json", doc.into_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(m.files.len(), n);
        // Counted up front: no doubling slack (8192 slots for 5000 files).
        assert_eq!(m.files.capacity(), n);
        assert_eq!(m.files[4999].path, "rel/f/4999");
        // The hint does not outlive the parse.
        assert_eq!(FILES_HINT.get(), 0);
    }

    #[test]
    fn docker_manifest_is_ignored() {
        assert!(
            parse_json("manifest.json", b" [{\"Config\":\"x\"}]".to_vec())
                .unwrap()
                .is_none()
        );
    }
}
