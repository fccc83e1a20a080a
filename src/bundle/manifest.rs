//! Release manifests: our `manifest.json` (docs/bundle-format.md) and
//! `SHA256SUMS` files, parsed and checked against what the pass hashed.
//!
//! Guarantees:
//! - a manifest is judged only after the whole pass, so it may come before or
//!   after the files it lists;
//! - every listed path is confined to the manifest's folder: a path that
//!   escapes it is a malformed manifest, never a lookup outside;
//! - parse errors carry the manifest's member path and a line and column.

use std::collections::HashSet;

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use super::safety::{key as path_key, normalise, PathKey};
pub use super::table::{FileRecord, FileTable};
use crate::finding::{Code, Finding};

/// File names recognised as release manifests.
pub const JSON_NAME: &str = "manifest.json";
pub const SUMS_NAMES: &[&str] = &["SHA256SUMS", "SHA256SUMS.txt", "sha256sums.txt"];
/// Deepest folder a manifest may sit in (`a/b/c/manifest.json` is depth 3).
pub const MAX_DEPTH: usize = 3;

/// Whether a member path names a `manifest.json` (rather than a
/// `SHA256SUMS` file).
pub fn is_json(path: &str) -> bool {
    path.rsplit('/').next() == Some(JSON_NAME)
}

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

/// Receives each file a manifest lists, as the parser reads it: the
/// entries never need to exist as a list (see [`compile`]).
trait ListedSink {
    /// `rel` is confined and normalised, relative to the manifest's folder.
    /// Returns false when the same path was listed before.
    fn listed(&mut self, rel: String, size: Option<u64>, sha256: [u8; 32]) -> bool;
}

/// Builds the list, for [`parse_json`] and [`parse_sums`].
struct Collect {
    folder: String,
    files: Vec<Listed>,
    /// Digests, not strings: the listed paths are already kept once.
    seen: HashSet<PathKey>,
}

impl Collect {
    fn new(folder: &str, capacity: usize) -> Self {
        Collect {
            folder: folder.to_string(),
            files: Vec::with_capacity(capacity),
            seen: HashSet::with_capacity(capacity),
        }
    }
}

impl ListedSink for Collect {
    fn listed(&mut self, rel: String, size: Option<u64>, sha256: [u8; 32]) -> bool {
        if !self.seen.insert(path_key(&rel)) {
            return false;
        }
        let path = if self.folder.is_empty() {
            rel
        } else {
            join(&self.folder, &rel)
        };
        self.files.push(Listed { path, size, sha256 });
        true
    }
}

/// The top level of `manifest.json`, schema version 1 (the fields of
/// [`ManifestDoc`]), read with its `files` array handed entry by entry to a
/// sink. Unknown fields are ignored, as serde's derive does.
struct DocSeed<'s, S>(&'s mut S);

struct DocHead {
    schema_version: u32,
    images: Vec<ManifestImage>,
    /// The document is a top-level array: a docker-archive `manifest.json`.
    docker: bool,
}

impl<'de, S: ListedSink> serde::de::DeserializeSeed<'de> for DocSeed<'_, S> {
    type Value = DocHead;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<DocHead, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: ListedSink> serde::de::Visitor<'de> for DocSeed<'_, S> {
    type Value = DocHead;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a manifest object")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<DocHead, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(DocHead {
            schema_version: 0,
            images: Vec::new(),
            docker: true,
        })
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DocHead, A::Error> {
        use serde::de::Error;
        let (mut schema, mut product, mut version, mut files, mut images) =
            (None, false, false, false, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let dup = |seen: bool, name: &'static str| match seen {
                true => Err(A::Error::duplicate_field(name)),
                false => Ok(()),
            };
            match key.as_ref() {
                "schema_version" => {
                    dup(schema.is_some(), "schema_version")?;
                    schema = Some(map.next_value::<u32>()?);
                }
                "product" => {
                    dup(product, "product")?;
                    map.next_value::<String>()?;
                    product = true;
                }
                "version" => {
                    dup(version, "version")?;
                    map.next_value::<String>()?;
                    version = true;
                }
                "files" => {
                    dup(files, "files")?;
                    map.next_value_seed(FilesSeed(&mut *self.0))?;
                    files = true;
                }
                "images" => {
                    dup(images.is_some(), "images")?;
                    images = Some(map.next_value::<Vec<ManifestImage>>()?);
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let schema_version = schema.ok_or_else(|| A::Error::missing_field("schema_version"))?;
        for (present, name) in [(product, "product"), (version, "version"), (files, "files")] {
            if !present {
                return Err(A::Error::missing_field(name));
            }
        }
        Ok(DocHead {
            schema_version,
            images: images.unwrap_or_default(),
            docker: false,
        })
    }
}

/// `files[]` handed to the sink entry by entry: paths confined and
/// normalised (still relative to the manifest's folder), digests decoded,
/// duplicates refused. A rule broken is a deserialisation error, which
/// serde_json places at a line and column.
struct FilesSeed<'s, S>(&'s mut S);

impl<'de, S: ListedSink> serde::de::DeserializeSeed<'de> for FilesSeed<'_, S> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: ListedSink> serde::de::Visitor<'de> for FilesSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of files")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let mut i = 0usize;
        while let Some(f) = seq.next_element::<ManifestFile>()? {
            confined(&f.path).map_err(|e| A::Error::custom(format!("files[{i}]: {e}")))?;
            let sha256 = parse_hex_digest(&f.sha256)
                .map_err(|e| A::Error::custom(format!("files[{i}] ({}): {e}", f.path)))?;
            if !self.0.listed(normalise(&f.path), Some(f.size), sha256) {
                return Err(A::Error::custom(format!(
                    "files[{i}]: {} is listed more than once",
                    f.path
                )));
            }
            i += 1;
        }
        Ok(())
    }
}

/// Whether `bytes` is a JSON array: a docker-archive `manifest.json`, which
/// is not a release manifest.
fn is_docker_manifest(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Reads `manifest.json` into `sink`; returns its images, or `None` for a
/// docker-archive `manifest.json` (a top-level array).
fn read_json<'de, R: serde_json::de::Read<'de>, S: ListedSink>(
    path: &str,
    mut de: serde_json::Deserializer<R>,
    sink: &mut S,
) -> Result<Option<Vec<ManifestImage>>, Malformed> {
    use serde::de::DeserializeSeed;
    let head = DocSeed(sink)
        .deserialize(&mut de)
        .and_then(|h| de.end().map(|()| h))
        .map_err(|e| Malformed {
            message: format!(
                "{path}: line {}, column {}: {}",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            ),
        })?;
    if head.docker {
        return Ok(None);
    }
    if head.schema_version != 1 {
        return Err(Malformed {
            message: format!(
                "{path}: schema_version {} is not supported (this tool reads version 1)",
                head.schema_version
            ),
        });
    }
    for (i, img) in head.images.iter().enumerate() {
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
    Ok(Some(head.images))
}

/// Parses `manifest.json` into a list. `Ok(None)` when the JSON is a
/// docker-archive `manifest.json` (a top-level array), which is not a
/// release manifest. The pass itself uses [`compile`], which keeps no list
/// of what it has already hashed.
pub fn parse_json(path: &str, bytes: Vec<u8>) -> Result<Option<ReleaseManifest>, Malformed> {
    if is_docker_manifest(&bytes) {
        return Ok(None);
    }
    // Every file entry has one "sha256" key and takes at least 96 bytes
    // (the 64-digit digest and the key names): a count in one pass over
    // bytes that are in cache, bounded by the size, instead of a vector
    // that doubles as it grows. Extra "sha256" strings only make it larger.
    let hint = count_occurrences(&bytes, b"\"sha256\"").min(bytes.len() / 96 + 1);
    let folder = folder_of(path);
    let mut sink = Collect::new(&folder, hint);
    let de = serde_json::Deserializer::from_slice(&bytes);
    let Some(images) = read_json(path, de, &mut sink)? else {
        return Ok(None);
    };
    Ok(Some(ReleaseManifest {
        path: path.to_string(),
        folder,
        exhaustive: true,
        files: sink.files,
        images,
    }))
}

fn count_occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// serde_json appends " at line L column C"; we print our own position.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map(|i| &msg[..i]).unwrap_or(msg)
}

/// Reads a `SHA256SUMS` file into `sink` as its text streams by, a line at
/// a time: GNU (`hex  path`, `hex *path`) and BSD (`SHA256 (path) = hex`)
/// lines; blank lines and `#` comments are skipped. The pass never holds
/// the whole file (a 200,000-file release lists 20 MiB). The verdict is
/// the text's as a whole: a file that is not UTF-8 is reported as such,
/// with the offset of its first invalid byte, even when a line before it
/// is malformed; otherwise the first malformed line is reported.
fn read_sums_from<S: ListedSink>(
    path: &str,
    mut reader: impl std::io::BufRead,
    sink: &mut S,
) -> Result<(), Malformed> {
    let mut line = Vec::new();
    let (mut offset, mut line_no) = (0usize, 0usize);
    let mut first_bad: Option<Malformed> = None;
    loop {
        line.clear();
        let n = match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Malformed {
                    message: format!("{path}: could not be read ({e})"),
                })
            }
        };
        line_no += 1;
        // '\n' is never inside a UTF-8 sequence: line by line, the first
        // error is the one the whole text would give.
        let text = std::str::from_utf8(&line).map_err(|e| Malformed {
            message: format!("{path}: not UTF-8 text ({})", utf8_error_at(offset, e)),
        })?;
        offset += n;
        if first_bad.is_some() {
            continue;
        }
        // As `str::lines` and then every '\r' before the line's end.
        let text = text.strip_suffix('\n').unwrap_or(text);
        if let Err(m) = sums_line(path, line_no, text.trim_end_matches('\r'), sink) {
            first_bad = Some(m);
        }
    }
    first_bad.map_or(Ok(()), Err)
}

/// One line of a `SHA256SUMS` file, without its line ending.
fn sums_line<S: ListedSink>(
    path: &str,
    line_no: usize,
    line: &str,
    sink: &mut S,
) -> Result<(), Malformed> {
    let bad = |m: String| Malformed {
        message: format!("{path}: line {line_no}, column 1: {m}"),
    };
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(());
    }
    let (hex_part, rel) = parse_sums_line(line)
        .ok_or_else(|| bad("expected `<sha256>  <path>` or `SHA256 (<path>) = <sha256>`".into()))?;
    let digest = parse_hex_digest(hex_part).map_err(bad)?;
    confined(rel).map_err(bad)?;
    if !sink.listed(normalise(rel), None, digest) {
        return Err(bad(format!("{rel} is listed more than once")));
    }
    Ok(())
}

/// A UTF-8 error found in a piece of text that starts `offset` bytes in,
/// worded as the standard library words one over the whole text.
fn utf8_error_at(offset: usize, e: std::str::Utf8Error) -> String {
    let at = offset + e.valid_up_to();
    match e.error_len() {
        Some(n) => format!("invalid utf-8 sequence of {n} bytes from index {at}"),
        None => format!("incomplete utf-8 byte sequence from index {at}"),
    }
}

/// Parses a `SHA256SUMS` file into a list (the pass uses [`compile`]).
pub fn parse_sums(path: &str, bytes: &[u8]) -> Result<ReleaseManifest, Malformed> {
    let folder = folder_of(path);
    // One allocation, no doubling slack: a 16 MiB file lists 200,000 paths.
    let mut sink = Collect::new(&folder, bytecount_lines(bytes));
    read_sums_from(path, bytes, &mut sink)?;
    Ok(ReleaseManifest {
        path: path.to_string(),
        folder,
        exhaustive: false,
        files: sink.files,
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

/// One listed file: 48 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Its place in the file table: the slot of its record, which a later
    /// duplicate entry updates in place, or a place reserved for it when
    /// it was not hashed yet. [`HAS_SIZE`] says whether `size` was listed.
    at: u32,
    size: u64,
    sha256: [u8; 32],
}

/// The bit of [`Entry::at`] set when the manifest gives the file's size.
const HAS_SIZE: u32 = 1 << 31;

impl Entry {
    fn slot(&self) -> usize {
        (self.at & !HAS_SIZE) as usize
    }

    fn size(&self) -> Option<u64> {
        (self.at & HAS_SIZE != 0).then_some(self.size)
    }
}

/// A manifest read as soon as its member ends, kept in compact form until
/// the pass is over and checked then ([`verify`]).
///
/// Why: a manifest's text is the largest thing the pass would hold per file
/// (about 170 bytes an entry). Once read, each listed file is kept as its
/// place in the file table, its size and its digest (48 bytes): a file not
/// hashed yet reserves its place there, so that its path is stored once,
/// not once for the listing and again when it is hashed (a `SHA256SUMS` at
/// the top of a release lists every file first). The text is then freed,
/// unless a signature must still be checked.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Member path of the manifest itself.
    pub path: String,
    /// Folder the listed paths are relative to ("" for the root).
    pub folder: String,
    /// `manifest.json` also forbids unlisted files in its folder.
    pub exhaustive: bool,
    pub images: Vec<ManifestImage>,
    entries: Vec<Entry>,
}

/// Builds a [`Listing`] against the files hashed so far, reserving the
/// places of those not hashed yet.
struct Compile<'a> {
    table: &'a mut FileTable,
    folder: &'a str,
    entries: Vec<Entry>,
    /// One bit per table place: listed already.
    slots: Vec<u64>,
}

impl ListedSink for Compile<'_> {
    fn listed(&mut self, rel: String, size: Option<u64>, sha256: [u8; 32]) -> bool {
        let path = if self.folder.is_empty() {
            rel
        } else {
            join(self.folder, &rel)
        };
        // Past two billion places the entry is refused: the entry limits
        // stop an archive long before.
        let Some(n) = self.table.reserve(&path).filter(|&n| n < HAS_SIZE as usize) else {
            return false;
        };
        let (word, bit) = (n / 64, 1u64 << (n % 64));
        if word >= self.slots.len() {
            self.slots.resize(word + 1, 0);
        }
        if self.slots[word] & bit != 0 {
            return false;
        }
        self.slots[word] |= bit;
        let flag = if size.is_some() { HAS_SIZE } else { 0 };
        self.entries.push(Entry {
            at: n as u32 | flag,
            size: size.unwrap_or(0),
            sha256,
        });
        true
    }
}

/// Reads one manifest (`manifest.json` or a `SHA256SUMS` file, by its
/// name) when its member ends, resolving what it lists against the files
/// hashed so far; [`verify`] judges it after the pass. `Ok(None)` for a
/// docker-archive `manifest.json`, which is not a release manifest.
pub fn compile(
    path: &str,
    bytes: &[u8],
    table: &mut FileTable,
) -> Result<Option<Listing>, Malformed> {
    if is_json(path) {
        let hint = count_occurrences(bytes, b"\"sha256\"").min(bytes.len() / 96 + 1);
        return compile_json_with(
            path,
            serde_json::Deserializer::from_slice(bytes),
            hint,
            table,
        );
    }
    let folder = folder_of(path);
    let mut sink = Compile::new(&folder, bytecount_lines(bytes), table);
    read_sums_from(path, bytes, &mut sink)?;
    Ok(Some(sink.into_listing(path, &folder, false, Vec::new())))
}

/// [`compile`] for a manifest read as it streams, so that its text is
/// never held whole: the pass feeds it the member's data. `size` is the
/// member's size, when known, to allocate the entries once (an upper
/// bound: capacity that is never written is never resident).
pub fn compile_stream(
    path: &str,
    reader: impl std::io::Read,
    size: Option<u64>,
    table: &mut FileTable,
) -> Result<Option<Listing>, Malformed> {
    if is_json(path) {
        return compile_json(path, reader, size, table);
    }
    // The shortest line is 64 hex digits, a space, a one-byte name and a
    // line feed.
    let hint = size.map_or(0, |s| (s / 67 + 1) as usize);
    let folder = folder_of(path);
    let mut sink = Compile::new(&folder, hint, table);
    let reader = std::io::BufReader::with_capacity(64 << 10, reader);
    read_sums_from(path, reader, &mut sink)?;
    Ok(Some(sink.into_listing(path, &folder, false, Vec::new())))
}

/// [`compile_stream`] for a `manifest.json`.
pub fn compile_json(
    path: &str,
    reader: impl std::io::Read,
    size: Option<u64>,
    table: &mut FileTable,
) -> Result<Option<Listing>, Malformed> {
    let hint = size.map_or(0, |s| (s / 96 + 1) as usize);
    let reader = std::io::BufReader::with_capacity(64 << 10, reader);
    compile_json_with(
        path,
        serde_json::Deserializer::from_reader(reader),
        hint,
        table,
    )
}

fn compile_json_with<'de, R: serde_json::de::Read<'de>>(
    path: &str,
    de: serde_json::Deserializer<R>,
    capacity: usize,
    table: &mut FileTable,
) -> Result<Option<Listing>, Malformed> {
    let folder = folder_of(path);
    let mut sink = Compile::new(&folder, capacity, table);
    let Some(images) = read_json(path, de, &mut sink)? else {
        return Ok(None);
    };
    Ok(Some(sink.into_listing(path, &folder, true, images)))
}

impl<'a> Compile<'a> {
    fn new(folder: &'a str, capacity: usize, table: &'a mut FileTable) -> Self {
        Compile {
            slots: vec![0; table.places().div_ceil(64)],
            table,
            folder,
            entries: Vec::with_capacity(capacity),
        }
    }

    fn into_listing(
        self,
        path: &str,
        folder: &str,
        exhaustive: bool,
        images: Vec<ManifestImage>,
    ) -> Listing {
        Listing {
            path: path.to_string(),
            folder: folder.to_string(),
            exhaustive,
            images,
            entries: self.entries,
        }
    }
}

/// Checks a manifest against the files hashed during the whole pass: every
/// listed file present with its size and digest (as last written, when an
/// entry was duplicated), and for `manifest.json` nothing unlisted in its
/// folder.
pub fn verify(m: &Listing, table: &FileTable, findings: &Sender<Finding>) {
    let mut problems = 0usize;
    let mut bytes = 0u64;
    let mut send = |f: Finding| {
        problems += 1;
        let _ = findings.send(f.evidence("manifest", m.path.clone()));
    };
    let mut listed = vec![0u64; table.places().div_ceil(64)];
    for e in &m.entries {
        let n = e.slot();
        let Some((path, rec)) = table.at(n) else {
            // A place still reserved: the file was never hashed.
            let Some(path) = table.path_at(n) else {
                continue;
            };
            send(Finding::new(
                Code::BundleFileMissing,
                path,
                format!("{path} is listed in {} but is not in the archive", m.path),
            ));
            continue;
        };
        listed[n / 64] |= 1 << (n % 64);
        bytes += rec.size;
        match e.size() {
            Some(size) if size != rec.size => send(
                Finding::new(
                    Code::BundleSizeMismatch,
                    path,
                    format!(
                        "{path} is {} bytes, {} lists {size} bytes",
                        rec.size, m.path
                    ),
                )
                .evidence("expected_size", size)
                .evidence("actual_size", rec.size),
            ),
            _ if rec.sha256 != e.sha256 => send(
                Finding::new(
                    Code::BundleDigestMismatch,
                    path,
                    format!(
                        "{path} has sha256:{}, {} lists sha256:{}",
                        hex::encode(rec.sha256),
                        m.path,
                        hex::encode(e.sha256)
                    ),
                )
                .evidence("expected_sha256", hex::encode(e.sha256))
                .evidence("actual_sha256", hex::encode(rec.sha256)),
            ),
            _ => {}
        }
    }
    if m.exhaustive {
        let prefix = if m.folder.is_empty() {
            String::new()
        } else {
            format!("{}/", m.folder)
        };
        let mut unlisted: Vec<&str> = table
            .numbered()
            .filter(|(n, _, _)| listed[n / 64] & (1 << (n % 64)) == 0)
            .map(|(_, p, _)| p)
            .filter(|p| p.starts_with(&prefix) && !is_own_companion(&m.path, p))
            .collect();
        unlisted.sort_unstable();
        for p in unlisted {
            send(Finding::new(
                Code::BundleUnlistedFile,
                p,
                format!(
                    "{p} is inside the folder of {} but not listed in it",
                    m.path
                ),
            ));
        }
    }
    if problems == 0 {
        let n = m.entries.len();
        let _ = findings.send(
            Finding::new(
                Code::BundleManifestVerified,
                m.path.clone(),
                format!("{}: {n} files verified ({bytes} bytes)", m.path),
            )
            .evidence("files", n)
            .evidence("bytes", bytes)
            .evidence("manifest", m.path.clone()),
        );
    }
}

/// The manifest itself and its detached signatures (a Sigstore bundle
/// among them) are not listed in it.
fn is_own_companion(manifest: &str, path: &str) -> bool {
    path == manifest
        || path.strip_prefix(manifest).is_some_and(|ext| {
            matches!(
                ext,
                ".minisig" | ".sig" | ".asc" | ".sha256" | ".sigstore.json"
            )
        })
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
    }

    /// Up to `n` bytes per read; one byte per read is what a member split
    /// across tar blocks and chunks can look like to a streaming parser.
    struct Pieces<'a>(&'a [u8], usize);

    impl std::io::Read for Pieces<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// A table holding one hashed file, `rel/a`.
    fn one_file() -> FileTable {
        [(
            "rel/a",
            FileRecord {
                size: 1,
                sha256: [0xab; 32],
            },
        )]
        .into_iter()
        .collect()
    }

    #[test]
    fn streamed_and_whole_manifests_read_alike() {
        let table = one_file();
        let doc = format!(
            r#"{{"schema_version":1,"product":"p","version":"1","images":[{{"ref":"r:1","path":"i.tar"}}],
              "files":[{{"path":"a","size":1,"sha256":"{}"}},{{"path":"./b","size":2,"sha256":"{}"}}]}}"#,
            "ab".repeat(32),
            "cd".repeat(32)
        );
        let (mut t1, mut t2) = (table.clone(), table.clone());
        let whole = compile("rel/manifest.json", doc.as_bytes(), &mut t1)
            .unwrap()
            .unwrap();
        let streamed = compile_json(
            "rel/manifest.json",
            Pieces(doc.as_bytes(), 1),
            Some(doc.len() as u64),
            &mut t2,
        )
        .unwrap()
        .unwrap();
        for (l, t) in [(&whole, &t1), (&streamed, &t2)] {
            assert_eq!(l.entries.len(), 2);
            assert_eq!((l.entries[0].slot(), l.entries[0].size()), (0, Some(1)));
            assert_eq!((l.entries[1].slot(), l.entries[1].size()), (1, Some(2)));
            // The file not hashed yet has a place, reserved: not a file.
            assert_eq!(t.path_at(1), Some("rel/b"));
            assert_eq!((t.at(1), t.len(), t.places()), (None, 1, 2));
            assert_eq!(l.images[0].reference, "r:1");
            assert!(l.exhaustive);
        }
        // A docker-archive manifest.json is not a release manifest, streamed
        // or not; broken JSON is malformed at its line and column.
        let docker = br#" [{"Config":"c.json","Layers":[]}]"#;
        let mut table = table;
        assert!(
            compile_json("manifest.json", Pieces(docker, 1), None, &mut table)
                .unwrap()
                .is_none()
        );
        let e = compile_json(
            "m/manifest.json",
            Pieces(b"{\n  \"files\": [,\n", 1),
            None,
            &mut table,
        )
        .unwrap_err();
        assert!(
            e.message.starts_with("m/manifest.json: line 2, column 13"),
            "{}",
            e.message
        );
        // A listed path given twice is refused, present or not.
        for dup in ["a", "b"] {
            let doc = format!(
                r#"{{"schema_version":1,"product":"p","version":"1","files":[{{"path":"{dup}","size":1,"sha256":"{h}"}},{{"path":"{dup}","size":1,"sha256":"{h}"}}]}}"#,
                h = "ab".repeat(32)
            );
            let e = compile_json(
                "rel/manifest.json",
                Pieces(doc.as_bytes(), 1),
                None,
                &mut table,
            )
            .unwrap_err();
            assert!(e.message.contains("listed more than once"), "{}", e.message);
        }
    }

    /// A `SHA256SUMS` read as it streams gives what its whole text gives,
    /// read as the standard library reads text: `str::from_utf8` over all
    /// of it (its error, with the offset, wins over any malformed line),
    /// then `str::lines`. At every piece size, down to one byte.
    #[test]
    fn streamed_sums_read_as_the_whole_text() {
        let table = one_file();
        // The listing and every place of the table after it, reserved or
        // recorded: each run on its own copy of the table.
        let shown = |l: Listing, t: &FileTable| {
            let places: Vec<_> = (0..t.places()).map(|n| (t.path_at(n), t.at(n))).collect();
            format!("{l:?} {places:?}")
        };
        let reference = |path: &str, bytes: &[u8]| -> Result<String, String> {
            let text =
                std::str::from_utf8(bytes).map_err(|e| format!("{path}: not UTF-8 text ({e})"))?;
            let folder = folder_of(path);
            let mut t = table.clone();
            let mut sink = Compile::new(&folder, 0, &mut t);
            for (n, line) in text.lines().enumerate() {
                sums_line(path, n + 1, line.trim_end_matches('\r'), &mut sink)
                    .map_err(|m| m.message)?;
            }
            let l = sink.into_listing(path, &folder, false, Vec::new());
            Ok(shown(l, &t))
        };
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let cases: Vec<Vec<u8>> = vec![
            format!("{a}  a\n{b} *b/c\n").into(),
            // No final line feed; CRLF; a lone CR inside a name; CRs before LF.
            format!("{a}  a\r\n{b}  b\rx\r\r\n{b}  d").into(),
            format!("# comment\n\n   \n{a}\ta\nSHA256 (b c) = {b}\n").into(),
            format!("{a}  a\n{a}  ./a\n").into(),
            format!("{a}  ../x\n").into(),
            format!("nonsense\n{a}  a\n").into(),
            format!("{}  a\n", &a[..63]).into(),
            // Not UTF-8: mid-line, after a malformed line, cut at the end,
            // cut before a line feed, in the first byte.
            [format!("{a}  a\n{b}  b").as_bytes(), b"\xff\n"].concat(),
            [
                b"nonsense\n".as_slice(),
                format!("{a}  a").as_bytes(),
                b"\xc3\x28\n",
            ]
            .concat(),
            [format!("{a}  a\n{b}  ").as_bytes(), b"\xe2\x82"].concat(),
            [format!("{a}  ").as_bytes(), b"\xe2\x82\n"].concat(),
            [format!("{a}  x").as_bytes(), b"\xe2\x82\n"].concat(),
            b"\x80".to_vec(),
            Vec::new(),
        ];
        for case in &cases {
            let want = reference("rel/SHA256SUMS", case);
            for piece in [1, 2, 3, 7, 64, 1 << 16] {
                let mut t = table.clone();
                let got = compile_stream(
                    "rel/SHA256SUMS",
                    Pieces(case, piece),
                    Some(case.len() as u64),
                    &mut t,
                )
                .map(|l| shown(l.expect("a SHA256SUMS is always a listing"), &t))
                .map_err(|m| m.message);
                assert_eq!(
                    got,
                    want,
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(case)
                );
            }
            let mut t = table.clone();
            let whole = compile("rel/SHA256SUMS", case, &mut t)
                .map(|l| shown(l.unwrap(), &t))
                .map_err(|m| m.message);
            assert_eq!(whole, want, "{:?} whole", String::from_utf8_lossy(case));
        }
        // The cases cover each outcome: read, malformed, not UTF-8.
        let outcomes: Vec<_> = cases
            .iter()
            .map(|c| reference("rel/SHA256SUMS", c))
            .collect();
        assert!(outcomes
            .iter()
            .any(|o| o.as_ref().is_ok_and(|l| l.contains("rel/b/c"))));
        assert!(outcomes
            .iter()
            .any(|o| o.as_ref().is_err_and(|e| e.contains("line 2, column 1"))));
        assert!(outcomes
            .iter()
            .any(|o| o.as_ref().is_err_and(|e| e.contains("incomplete utf-8"))));
        assert!(outcomes.iter().any(|o| o
            .as_ref()
            .is_err_and(|e| e.contains("invalid utf-8 sequence of 1 bytes from index"))));
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
