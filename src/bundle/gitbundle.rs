//! Validation of Git bundles, format v2 and v3, as `git bundle create` writes
//! them: a text header (signature, v3 capabilities, prerequisites, refs, a
//! blank line) followed by a pack.
//!
//! Guarantees:
//! - the input is read once, front to back, and always to its end (unless
//!   reading fails), so a caller hashing the same stream sees every byte;
//! - memory does not grow with the size of the pack: the header is capped at
//!   64 KiB a line and 16 MiB in all, and the pack is handed to libgit2 in
//!   256 KiB chunks; libgit2 keeps the pack on disk and holds one small record
//!   per object, as `git index-pack` does;
//! - the pack is checked as `git index-pack` checks it: trailing checksum,
//!   every object inflated and hashed, every delta resolved and, when the
//!   header claims a complete history, every object a commit, tree or tag
//!   points to present in the pack; then every ref the header advertises must
//!   name an object of the pack;
//! - libgit2's indexer needs a folder because it writes the pack to disk as it
//!   arrives and resolves deltas by reading their bases back from that file (a
//!   stream cannot be rewound) before writing the `.idx`; it gets a fresh
//!   folder inside the first of the candidate parents where one can be
//!   created ([`crate::scratch::parent_candidates`] for a release), which is
//!   removed before [`validate`] returns, on every path (a guard's `Drop`
//!   covers early returns, errors and panics; [`crate::scratch`] covers SIGINT and SIGTERM, which skip `Drop`);
//! - libgit2 inflates every object in memory, so a pack object of zeros that
//!   deflate shrank a thousand times (a gigabyte from a megabyte) would cost
//!   its inflated size in memory and seconds of time: the pack is parsed
//!   and inflated here first, as it streams, and once its objects outgrow it
//!   by more than the expansion ratio limit (past 16 MiB) nothing more is
//!   handed to libgit2 ([`GitBundleProblem::ExpansionRatio`]);
//! - everything about the content is a [`GitBundleProblem`] in the report;
//!   `Err` only means that the input could not be read or that the scratch
//!   folder could not be created or removed (then [`is_scratch_error`]).
//!
//! Why not `git bundle verify`: it reads the header only and checks that the
//! prerequisites exist in the current repository. It never reads the pack, so
//! it says "okay" for a bundle whose pack is truncated or has a flipped byte
//! (the tests below show it), and it needs a repository to run in.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the chunks handed to the indexer (and of the read buffer).
const CHUNK: usize = 256 * 1024;
/// Longest header line accepted, without its newline. A ref name is far
/// shorter; this only stops a pack mistaken for a header from filling memory.
const MAX_LINE: usize = 64 * 1024;
/// Largest header accepted, newlines included (about 150 000 refs).
const MAX_HEADER: usize = 16 * 1024 * 1024;

/// What a bundle holds and what is wrong with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitBundleReport {
    /// 2 or 3; 0 when the first line is not a bundle signature.
    pub version: u8,
    /// Advertised refs in header order: (ref name, lowercase hex object id).
    pub refs: Vec<(String, String)>,
    /// Lowercase hex ids of the commits the bundle needs but does not carry.
    pub prerequisites: Vec<String>,
    /// v3 capability lines without their `@`, e.g. `object-format=sha1`
    /// (also the ones reported as bad).
    pub capabilities: Vec<String>,
    /// Objects the indexer received from the pack (all of them when the pack
    /// is valid; those read before the failure otherwise).
    pub objects: u64,
    /// Bytes after the header, i.e. the pack as stored in the bundle; 0 when
    /// the header could not be read to its end.
    pub pack_bytes: u64,
    /// Empty when the bundle is self-contained, intact and consistent.
    pub problems: Vec<GitBundleProblem>,
}

/// One thing wrong with a bundle. `Display` gives a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitBundleProblem {
    /// A header line (1-based) is malformed, or the header is cut short or
    /// too large; when the header's end cannot be found the pack is not read.
    #[error("header line {line}: {reason}")]
    BadHeader { line: usize, reason: String },
    /// The header ends without advertising any ref.
    #[error("the bundle advertises no refs")]
    NoRefs,
    /// The header lists prerequisite commits: the bundle only applies on top
    /// of a repository that already has them.
    #[error(
        "not self-contained: needs {} commit(s) it does not carry: {}",
        .prerequisites.len(),
        abbreviated(.prerequisites)
    )]
    NotSelfContained { prerequisites: Vec<String> },
    /// A v3 `@filter=` capability: objects left out by the filter are
    /// missing, so the history cannot be checked out offline.
    #[error("header line {line}: made with --filter={filter}, objects it left out are missing")]
    Filtered { line: usize, filter: String },
    /// The header's `@object-format` is one this build of libgit2 cannot
    /// index (it reads SHA-1 packs only); the pack was read but not checked.
    #[error("header line {line}: object format {format} cannot be checked by this build, pack not verified")]
    UnsupportedObjectFormat { line: usize, format: String },
    /// libgit2 rejected the pack; `reason` is its message.
    #[error("pack is invalid: {reason}")]
    PackInvalid { reason: String },
    /// The pack's checksum is right, but some of its objects are deltas
    /// against prerequisite objects: without the repository the bundle
    /// applies to they cannot be resolved, so neither they nor the refs were
    /// checked. Only reported alongside [`GitBundleProblem::NotSelfContained`].
    #[error("pack is thin: checksum intact, but deltas against prerequisites and the refs were not checked ({reason})")]
    ThinPack { reason: String },
    /// An advertised ref names an object that is not in the pack.
    #[error("ref {name} points to {oid}, which is not in the pack")]
    RefMissing { name: String, oid: String },
    /// The pack's objects inflate to more than the expansion ratio limit
    /// allows: a decompression bomb. The pack was not indexed further.
    #[error("the pack's objects inflate to {inflated} bytes from the first {consumed} bytes of pack (ratio {}:1, limit {limit}:1, --max-expansion-ratio); the pack was not checked further", .inflated / (.consumed).max(&1))]
    ExpansionRatio {
        inflated: u64,
        consumed: u64,
        limit: u64,
    },
}

/// Reads a bundle from `reader` and checks it, using a fresh folder inside
/// `scratch_dir` for libgit2's pack and index (removed before returning).
///
/// `Err` is returned only when `reader` fails, or when the scratch folder
/// cannot be created or removed (or its path is not UTF-8, which libgit2's
/// alternate-ODB call requires); every property of the content is reported
/// in [`GitBundleReport::problems`].
pub fn validate(reader: &mut dyn Read, scratch_dir: &Path) -> Result<GitBundleReport, io::Error> {
    validate_with(
        reader,
        std::slice::from_ref(&scratch_dir.to_path_buf()),
        super::container::DEFAULT_MAX_EXPANSION_RATIO,
    )
}

/// [`validate`] with an expansion ratio limit for the pack's objects (0: no
/// limit), and the scratch folder in the first of `scratch_parents` where
/// it can be created (the others are tried in turn when one is missing,
/// not writable or not UTF-8; when none works, the error names each one
/// and why, and [`is_scratch_error`] holds for it).
pub fn validate_with(
    reader: &mut dyn Read,
    scratch_parents: &[PathBuf],
    max_ratio: u64,
) -> Result<GitBundleReport, io::Error> {
    let mut input = BufReader::with_capacity(CHUNK, reader);
    let mut report = GitBundleReport::default();
    let Some(header) = read_header(&mut input, &mut report)? else {
        // Keep reading so a caller hashing the stream still sees it all.
        drain(&mut input)?;
        return Ok(report);
    };
    if report.refs.is_empty() {
        report.problems.push(GitBundleProblem::NoRefs);
    }
    if !report.prerequisites.is_empty() {
        report.problems.push(GitBundleProblem::NotSelfContained {
            prerequisites: report.prerequisites.clone(),
        });
    }
    if let Some((line, filter)) = &header.filter {
        report.problems.push(GitBundleProblem::Filtered {
            line: *line,
            filter: filter.clone(),
        });
    }
    if let HashFormat::Sha256 { line } = header.format {
        report.pack_bytes = drain(&mut input)?;
        report
            .problems
            .push(GitBundleProblem::UnsupportedObjectFormat {
                line,
                format: "sha256".into(),
            });
        return Ok(report);
    }

    let scratch = ScratchDir::create(scratch_parents)?;
    // Connectivity is only demanded of a bundle that claims a complete
    // history: a range bundle's oldest commits point at prerequisites, and a
    // filtered bundle's trees point at blobs the filter left out.
    let verify = report.prerequisites.is_empty() && header.filter.is_none();
    let indexed = index_pack(&mut input, &scratch.pack_dir(), verify, max_ratio)?;
    report.objects = indexed.objects;
    report.pack_bytes = indexed.pack_bytes;
    if let Some(bomb) = indexed.bomb {
        report.problems.push(bomb);
        scratch.remove()?;
        return Ok(report);
    }
    match indexed.outcome {
        Ok(()) => match missing_refs(&scratch.objects_dir(), &report.refs) {
            Ok(missing) => report.problems.extend(missing),
            Err(e) => report.problems.push(GitBundleProblem::PackInvalid {
                reason: format!("indexed, but the pack cannot be opened: {}", e.message()),
            }),
        },
        Err(reason) => {
            // libgit2 checks the pack's trailing checksum before resolving
            // deltas, so this message means the bytes are intact and only
            // bases outside the pack are missing: expected of a bundle with
            // prerequisites (git writes them with `--thin`), damage otherwise.
            if !report.prerequisites.is_empty() && reason.starts_with(THIN_PACK_MESSAGE) {
                report.problems.push(GitBundleProblem::ThinPack { reason });
            } else {
                report
                    .problems
                    .push(GitBundleProblem::PackInvalid { reason });
            }
        }
    }
    scratch.remove()?;
    Ok(report)
}

/// What libgit2 (1.9) says when a pack has deltas whose bases are not in it
/// and no object database was given to find them.
const THIN_PACK_MESSAGE: &str = "cannot fix a thin pack without an ODB";

/// The header facts the pack check depends on.
struct HeaderInfo {
    format: HashFormat,
    /// Line and filter spec of an `@filter=` capability.
    filter: Option<(usize, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashFormat {
    Sha1,
    Sha256 { line: usize },
}

impl HashFormat {
    fn hex_len(self) -> usize {
        match self {
            HashFormat::Sha1 => 40,
            HashFormat::Sha256 { .. } => 64,
        }
    }
}

/// How reading one header line ended.
enum LineEnd {
    Newline,
    /// The input ended; the line holds whatever came before.
    Eof,
    TooLong,
}

/// Reads the header, filling `report` and recording its problems. Returns
/// `None` when the pack's start cannot be found (bad signature, header cut
/// short or too large).
fn read_header(
    input: &mut impl BufRead,
    report: &mut GitBundleReport,
) -> io::Result<Option<HeaderInfo>> {
    let mut line = Vec::new();
    let bad = |line: usize, reason: String| GitBundleProblem::BadHeader { line, reason };

    let end = next_line(input, &mut line)?;
    report.version = match (&end, line.as_slice()) {
        (LineEnd::Newline, b"# v2 git bundle") => 2,
        (LineEnd::Newline, b"# v3 git bundle") => 3,
        (LineEnd::Eof, []) => {
            report.problems.push(bad(1, "the input is empty".into()));
            return Ok(None);
        }
        _ => {
            let start = &line[..line.len().min(40)];
            report.problems.push(bad(
                1,
                format!(
                    "not a git bundle: expected \"# v2 git bundle\" or \"# v3 git bundle\", found {:?}",
                    String::from_utf8_lossy(start)
                ),
            ));
            return Ok(None);
        }
    };

    let mut info = HeaderInfo {
        format: HashFormat::Sha1,
        filter: None,
    };
    let mut total = line.len() + 1;
    let mut seen_oid_line = false;
    let mut ref_lines: HashMap<String, usize> = HashMap::new();
    for n in 2.. {
        match next_line(input, &mut line)? {
            LineEnd::Newline => {}
            LineEnd::Eof => {
                report.problems.push(bad(
                    n,
                    "the input ends inside the header (no blank line before the pack)".into(),
                ));
                return Ok(None);
            }
            LineEnd::TooLong => {
                report
                    .problems
                    .push(bad(n, format!("line longer than {} KiB", MAX_LINE / 1024)));
                return Ok(None);
            }
        }
        total += line.len() + 1;
        if total > MAX_HEADER {
            report.problems.push(bad(
                n,
                format!("header larger than {} MiB", MAX_HEADER / (1024 * 1024)),
            ));
            return Ok(None);
        }
        if line.is_empty() {
            return Ok(Some(info));
        }
        let parsed = match line[0] {
            b'@' => {
                let text = String::from_utf8_lossy(&line[1..]).into_owned();
                report.capabilities.push(text.clone());
                if report.version != 3 {
                    Err("capability line in a v2 bundle (only v3 has capabilities)".to_string())
                } else if seen_oid_line {
                    // The format says capabilities come first; one arriving
                    // later would change how the lines above should be read.
                    Err("capability after prerequisite or ref lines".to_string())
                } else {
                    parse_capability(&text, n, &mut info)
                }
            }
            b'-' => {
                seen_oid_line = true;
                parse_oid(&line[1..], info.format.hex_len()).and_then(|(oid, rest)| {
                    // Anything after a space is the commit's subject.
                    if rest.is_empty() || rest[0] == b' ' {
                        report.prerequisites.push(oid);
                        Ok(())
                    } else {
                        Err("expected a space after the prerequisite's object id".into())
                    }
                })
            }
            _ => {
                seen_oid_line = true;
                parse_oid(&line, info.format.hex_len())
                    .and_then(|(oid, rest)| parse_ref(oid, rest, n, &mut ref_lines))
                    .map(|r| report.refs.push(r))
            }
        };
        if let Err(reason) = parsed {
            report.problems.push(bad(n, reason));
        }
    }
    unreachable!("the header loop only ends by returning")
}

fn parse_capability(text: &str, line: usize, info: &mut HeaderInfo) -> Result<(), String> {
    match text.split_once('=') {
        Some(("object-format", "sha1")) => info.format = HashFormat::Sha1,
        Some(("object-format", "sha256")) => info.format = HashFormat::Sha256 { line },
        Some(("object-format", other)) => return Err(format!("unknown object format {other:?}")),
        Some(("filter", "")) => return Err("empty filter".into()),
        Some(("filter", spec)) => info.filter = Some((line, spec.to_string())),
        _ => return Err(format!("unknown capability {text:?}")),
    }
    Ok(())
}

/// Splits a leading lowercase-or-uppercase hex object id of `hex_len` digits
/// off `bytes`, returning it in lowercase.
fn parse_oid(bytes: &[u8], hex_len: usize) -> Result<(String, &[u8]), String> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits != hex_len {
        return Err(format!(
            "expected a {hex_len}-digit hex object id, found {digits} hex digits"
        ));
    }
    let oid = String::from_utf8_lossy(&bytes[..hex_len]).to_ascii_lowercase();
    Ok((oid, &bytes[hex_len..]))
}

fn parse_ref(
    oid: String,
    rest: &[u8],
    line: usize,
    seen: &mut HashMap<String, usize>,
) -> Result<(String, String), String> {
    let Some(name) = rest.strip_prefix(b" ") else {
        return Err("expected a space and a ref name after the object id".into());
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return Err(format!(
            "ref name {:?} is not UTF-8",
            String::from_utf8_lossy(name)
        ));
    };
    // git would refuse to create such a ref when unbundling; saying so here
    // names the line instead of failing later on the target machine.
    if !git2::Reference::is_valid_name(name) {
        return Err(format!("{name:?} is not a valid ref name"));
    }
    if let Some(first) = seen.insert(name.to_string(), line) {
        return Err(format!("ref {name} is already listed on line {first}"));
    }
    Ok((name.to_string(), oid))
}

/// Reads one line (without its newline) into `line`, at most [`MAX_LINE`]
/// bytes of it.
fn next_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<LineEnd> {
    line.clear();
    loop {
        let buf = fill(input)?;
        if buf.is_empty() {
            return Ok(LineEnd::Eof);
        }
        let (take, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Ok(LineEnd::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(take + usize::from(found));
        if found {
            return Ok(LineEnd::Newline);
        }
    }
}

/// `fill_buf`, retried when interrupted by a signal.
fn fill(input: &mut impl BufRead) -> io::Result<&[u8]> {
    loop {
        match input.fill_buf() {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    input.fill_buf()
}

/// Reads the rest of the input, returning how many bytes that was.
fn drain(input: &mut impl BufRead) -> io::Result<u64> {
    io::copy(input, &mut io::sink())
}

/// What indexing the pack gave.
struct Indexed {
    objects: u64,
    pack_bytes: u64,
    /// libgit2's message when the pack was rejected.
    outcome: Result<(), String>,
    /// The pack guard stopped the indexer.
    bomb: Option<GitBundleProblem>,
}

/// Follows a pack as it streams (header, then each object's header, delta
/// base and zlib stream) and inflates every object into a scratch buffer,
/// counting, so that a pack that inflates out of all proportion is stopped
/// before libgit2 inflates it in memory. It only ever stops on the ratio:
/// anything it cannot parse, it leaves to libgit2 to report.
struct PackGuard {
    state: PackState,
    max_ratio: u64,
    /// Pack bytes seen so far.
    consumed: u64,
    /// Bytes all objects so far inflated to.
    inflated: u64,
    objects_left: u32,
    head: Vec<u8>,
    inflate: flate2::Decompress,
    scratch: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PackState {
    /// The 12-byte pack header.
    Header,
    /// An object's type-and-size header; `first` is true before its first byte.
    ObjectHeader {
        first: bool,
    },
    /// An OFS_DELTA's base offset.
    OfsBase,
    /// A REF_DELTA's base id: bytes left.
    RefBase(u8),
    Zlib,
    /// All objects read, or the guard stood aside.
    Done,
}

impl PackGuard {
    fn new(max_ratio: u64) -> PackGuard {
        PackGuard {
            state: PackState::Header,
            max_ratio,
            consumed: 0,
            inflated: 0,
            objects_left: 0,
            head: Vec::new(),
            inflate: flate2::Decompress::new(true),
            scratch: vec![0u8; 64 << 10],
        }
    }

    /// Follows `bytes`; `Some` when the pack must not be indexed further.
    fn feed(&mut self, mut bytes: &[u8]) -> Option<GitBundleProblem> {
        while !bytes.is_empty() {
            match self.state {
                PackState::Done => return None,
                PackState::Header => {
                    let take = (12 - self.head.len()).min(bytes.len());
                    self.head.extend_from_slice(&bytes[..take]);
                    self.advance(&mut bytes, take);
                    if self.head.len() == 12 {
                        if &self.head[..4] != b"PACK" {
                            self.state = PackState::Done;
                            continue;
                        }
                        self.objects_left =
                            u32::from_be_bytes(self.head[8..12].try_into().unwrap());
                        self.next_object();
                    }
                }
                PackState::ObjectHeader { first } => {
                    let c = bytes[0];
                    self.advance(&mut bytes, 1);
                    if first {
                        self.head.clear();
                        self.head.push((c >> 4) & 7);
                    }
                    if c & 0x80 == 0 {
                        self.state = match self.head[0] {
                            6 => PackState::OfsBase,
                            7 => PackState::RefBase(20),
                            _ => PackState::Zlib,
                        };
                        self.inflate.reset(true);
                    } else {
                        self.state = PackState::ObjectHeader { first: false };
                    }
                }
                PackState::OfsBase => {
                    let c = bytes[0];
                    self.advance(&mut bytes, 1);
                    if c & 0x80 == 0 {
                        self.state = PackState::Zlib;
                    }
                }
                PackState::RefBase(left) => {
                    let take = (left as usize).min(bytes.len());
                    self.advance(&mut bytes, take);
                    let left = left - take as u8;
                    self.state = if left == 0 {
                        PackState::Zlib
                    } else {
                        PackState::RefBase(left)
                    };
                }
                PackState::Zlib => {
                    let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
                    let res = self.inflate.decompress(
                        bytes,
                        &mut self.scratch,
                        flate2::FlushDecompress::None,
                    );
                    let used = (self.inflate.total_in() - in0) as usize;
                    let made = self.inflate.total_out() - out0;
                    self.advance(&mut bytes, used);
                    self.inflated += made;
                    if super::container::ratio_exceeded(
                        self.inflated,
                        self.consumed,
                        self.max_ratio,
                    ) {
                        self.state = PackState::Done;
                        return Some(GitBundleProblem::ExpansionRatio {
                            inflated: self.inflated,
                            consumed: self.consumed,
                            limit: self.max_ratio,
                        });
                    }
                    match res {
                        Ok(flate2::Status::StreamEnd) => self.next_object(),
                        Ok(_) if used > 0 || made > 0 => {}
                        // No progress or broken data: libgit2 will say.
                        _ => self.state = PackState::Done,
                    }
                }
            }
        }
        None
    }

    fn advance(&mut self, bytes: &mut &[u8], n: usize) {
        *bytes = &bytes[n..];
        self.consumed += n as u64;
    }

    fn next_object(&mut self) {
        if self.objects_left == 0 {
            self.state = PackState::Done;
        } else {
            self.objects_left -= 1;
            self.state = PackState::ObjectHeader { first: true };
        }
    }
}

/// Streams the rest of `input` into a libgit2 indexer writing into `dir`.
/// After the indexer fails, the input is still read to its end (and
/// counted) but no longer fed to it.
fn index_pack(
    input: &mut impl BufRead,
    dir: &Path,
    verify: bool,
    max_ratio: u64,
) -> io::Result<Indexed> {
    let received = Cell::new(0u64);
    let mut pack_bytes = 0u64;
    let mut guard = PackGuard::new(max_ratio);
    let mut bomb = None;
    // No object database: a bundle is checked on its own, so a delta whose
    // base is outside the pack must fail rather than be fixed from elsewhere.
    let mut indexer = match git2::Indexer::new(None, dir, 0, verify) {
        Ok(indexer) => Some(indexer),
        Err(e) => {
            let pack_bytes = drain(input)?;
            return Ok(Indexed {
                objects: 0,
                pack_bytes,
                outcome: Err(e.message().to_string()),
                bomb: None,
            });
        }
    };
    if let Some(indexer) = indexer.as_mut() {
        indexer.progress(|p| {
            received.set(p.received_objects() as u64);
            true
        });
    }
    let mut failure = None;
    loop {
        let buf = fill(input)?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        if indexer.is_some() && bomb.is_none() {
            // The guard sees each chunk before libgit2 does.
            bomb = guard.feed(buf);
            if bomb.is_some() {
                indexer = None;
            }
        }
        if let Some(ix) = indexer.as_mut() {
            if let Err(e) = ix.write_all(buf) {
                failure = Some(libgit2_error(e));
                indexer = None;
            }
        }
        input.consume(n);
        pack_bytes += n as u64;
    }
    let outcome = match (indexer, failure) {
        (Some(ix), None) => ix.commit().map(drop).map_err(|e| e.message().to_string()),
        (_, Some(e)) => Err(e),
        // Stopped by the guard, whose problem is reported instead.
        (None, None) => Err(String::new()),
    };
    Ok(Indexed {
        objects: received.get(),
        pack_bytes,
        outcome,
        bomb,
    })
}

/// libgit2's message inside an error from the indexer's `io::Write` (its
/// `Display` would append the error class and code).
fn libgit2_error(e: io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<git2::Error>())
    {
        Some(inner) => inner.message().to_string(),
        None => e.to_string(),
    }
}

/// The advertised refs whose objects are not in the indexed pack.
fn missing_refs(
    objects_dir: &Path,
    refs: &[(String, String)],
) -> Result<Vec<GitBundleProblem>, git2::Error> {
    // An object database with no backend but the scratch folder, so only the
    // bundle's own objects can answer (never the user's repository).
    let odb = git2::Odb::new()?;
    let dir = objects_dir
        .to_str()
        .ok_or_else(|| git2::Error::from_str("scratch path is not UTF-8"))?;
    odb.add_disk_alternate(dir)?;
    let mut missing = Vec::new();
    for (name, oid) in refs {
        let present = git2::Oid::from_str(oid).is_ok_and(|id| odb.exists(id));
        if !present {
            missing.push(GitBundleProblem::RefMissing {
                name: name.clone(),
                oid: oid.clone(),
            });
        }
    }
    Ok(missing)
}

/// Why the scratch folder could not be created or removed; carried inside
/// the `io::Error` so a caller can tell it from a failing input.
#[derive(Debug)]
struct ScratchError(String);

impl std::fmt::Display for ScratchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScratchError {}

fn scratch_error(kind: io::ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, ScratchError(message))
}

/// Whether an error of [`validate`] is about the scratch folder (none could
/// be created, or it could not be removed), not about the input.
pub fn is_scratch_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<ScratchError>())
}

/// A fresh folder for libgit2's pack and index, removed when dropped, and
/// on SIGINT or SIGTERM through [`crate::scratch`] (a signal skips `Drop`).
struct ScratchDir {
    path: PathBuf,
    armed: bool,
    _registered: crate::scratch::Registered,
}

impl ScratchDir {
    /// Creates `<parent>/gitbundle-<pid>-<n>/objects/pack` in the first of
    /// `parents` where that works. The name is new (`create_dir` fails on an
    /// existing folder), so a leftover from a crashed run is never reused or
    /// deleted.
    fn create(parents: &[PathBuf]) -> io::Result<ScratchDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut tried = Vec::new();
        let mut last_kind = io::ErrorKind::NotFound;
        'parents: for parent in parents {
            if parent.to_str().is_none() {
                // libgit2's alternate-ODB call takes the path as a string.
                tried.push(format!("{} (not UTF-8)", parent.display()));
                last_kind = io::ErrorKind::InvalidInput;
                continue;
            }
            loop {
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let path = parent.join(format!("gitbundle-{}-{n}", std::process::id()));
                // The folder and its two levels are made and registered as
                // one step: a signal meanwhile waits, then removes all of it
                // (a folder made after the removal would outlive the run).
                // An error inside a folder that is ours is returned inside
                // (the folder is removed when `dir` drops).
                let made = crate::scratch::create(&path, |path| {
                    fs::create_dir(path)?;
                    let pack = path.join("objects").join("pack");
                    Ok(fs::create_dir(path.join("objects"))
                        .and_then(|()| fs::create_dir(&pack))
                        .map_err(|e| {
                            scratch_error(
                                e.kind(),
                                format!("cannot create scratch folder {}: {e}", pack.display()),
                            )
                        }))
                });
                match made {
                    Ok((inner, registered)) => {
                        let dir = ScratchDir {
                            _registered: registered,
                            path,
                            armed: true,
                        };
                        inner?;
                        return Ok(dir);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        tried.push(format!("{}: {e}", parent.display()));
                        last_kind = e.kind();
                        continue 'parents;
                    }
                }
            }
        }
        Err(scratch_error(
            last_kind,
            format!(
                "no folder to create the scratch folder in (tried {}); set TMPDIR to a writable folder",
                if tried.is_empty() {
                    "none".to_string()
                } else {
                    tried.join(", ")
                }
            ),
        ))
    }

    fn objects_dir(&self) -> PathBuf {
        self.path.join("objects")
    }

    fn pack_dir(&self) -> PathBuf {
        self.path.join("objects").join("pack")
    }

    /// Removes the folder, reporting failure (the `Drop` path cannot).
    fn remove(mut self) -> io::Result<()> {
        self.armed = false;
        fs::remove_dir_all(&self.path).map_err(|e| {
            scratch_error(
                e.kind(),
                format!("cannot remove scratch folder {}: {e}", self.path.display()),
            )
        })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The first three ids, then how many more.
fn abbreviated(oids: &[String]) -> String {
    let mut text = oids.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if oids.len() > 3 {
        text.push_str(&format!(" and {} more", oids.len() - 3));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A repository made with the real `git`: three commits on `main`
    /// (files large enough for git to store deltas) and `dev` at `main~1`.
    /// git runs with no system or user config and a fixed identity and
    /// clock, so it does not depend on this machine and ids are stable.
    struct Fixture {
        root: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture::with_init_args(&[])
        }

        fn with_init_args(init_args: &[&str]) -> Fixture {
            let root = tempfile::tempdir().unwrap();
            fs::create_dir(root.path().join("home")).unwrap();
            fs::create_dir(root.path().join("scratch")).unwrap();
            let f = Fixture { root };
            let mut init = vec!["init", "-q", "-b", "main"];
            init.extend_from_slice(init_args);
            init.push("repo");
            f.git_in(f.root.path(), &init);
            for i in 1..=3 {
                // One file grows, so later versions are stored as deltas;
                // another is new in each commit.
                let text: String = (1..=i * 2000).map(|n| format!("line {n}\n")).collect();
                fs::write(f.repo().join("notes.txt"), &text).unwrap();
                fs::write(f.repo().join(format!("f{i}.txt")), format!("file {i}\n")).unwrap();
                f.git(&["add", "."]);
                f.git(&["commit", "-q", "-m", &format!("commit {i}")]);
            }
            f.git(&["branch", "dev", "main~1"]);
            f
        }

        fn repo(&self) -> PathBuf {
            self.root.path().join("repo")
        }

        fn scratch(&self) -> PathBuf {
            self.root.path().join("scratch")
        }

        fn command(&self, dir: &Path, args: &[&str]) -> Command {
            let home = self.root.path().join("home");
            let mut cmd = Command::new("git");
            cmd.args(args)
                .current_dir(dir)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", &home)
                .env("GIT_AUTHOR_NAME", "Release Bot")
                .env("GIT_AUTHOR_EMAIL", "release@example.invalid")
                .env("GIT_COMMITTER_NAME", "Release Bot")
                .env("GIT_COMMITTER_EMAIL", "release@example.invalid")
                .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
                .env_remove("GIT_DIR")
                .env_remove("GIT_WORK_TREE")
                .env_remove("GIT_INDEX_FILE")
                .env_remove("GIT_OBJECT_DIRECTORY");
            cmd
        }

        fn git_in(&self, dir: &Path, args: &[&str]) -> String {
            let out = self.command(dir, args).output().expect("git is installed");
            assert!(
                out.status.success(),
                "git {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }

        fn git(&self, args: &[&str]) -> String {
            self.git_in(&self.repo(), args)
        }

        fn oid(&self, rev: &str) -> String {
            self.git(&["rev-parse", rev]).trim().to_string()
        }

        /// Runs `git bundle create <file> <args>` and returns the file's bytes.
        fn bundle(&self, create_args: &[&str], rev_args: &[&str]) -> Vec<u8> {
            let file = self.root.path().join("out.bundle");
            let file_arg = file.to_str().unwrap();
            let mut args = vec!["bundle", "create", "-q"];
            args.extend_from_slice(create_args);
            args.push(file_arg);
            args.extend_from_slice(rev_args);
            self.git(&args);
            fs::read(&file).unwrap()
        }

        fn validate(&self, bytes: &[u8]) -> GitBundleReport {
            let report = validate(&mut &bytes[..], &self.scratch()).unwrap();
            self.assert_scratch_empty();
            report
        }

        fn assert_scratch_empty(&self) {
            let left: Vec<_> = fs::read_dir(self.scratch()).unwrap().collect();
            assert!(left.is_empty(), "scratch folder not emptied: {left:?}");
        }
    }

    /// Offset of the pack: just after the blank line ending the header.
    fn pack_start(bundle: &[u8]) -> usize {
        bundle.windows(2).position(|w| w == b"\n\n").unwrap() + 2
    }

    fn scratch_only() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let scratch = root.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        (root, scratch)
    }

    fn validate_text(text: &[u8]) -> GitBundleReport {
        let (_root, scratch) = scratch_only();
        let report = validate(&mut &text[..], &scratch).unwrap();
        assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
        report
    }

    fn bad(line: usize, reason: &str) -> GitBundleProblem {
        GitBundleProblem::BadHeader {
            line,
            reason: reason.into(),
        }
    }

    #[test]
    fn complete_v2_bundle_has_no_problems() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["--all"]);
        let report = f.validate(&bytes);
        assert_eq!(report.problems, vec![]);
        assert_eq!(report.version, 2);
        assert_eq!(
            report.refs,
            vec![
                ("refs/heads/dev".to_string(), f.oid("dev")),
                ("refs/heads/main".to_string(), f.oid("main")),
                ("HEAD".to_string(), f.oid("HEAD")),
            ]
        );
        assert!(report.prerequisites.is_empty());
        assert!(report.capabilities.is_empty());
        let objects = f.git(&["rev-list", "--objects", "--all"]).lines().count() as u64;
        assert_eq!(report.objects, objects);
        assert_eq!(report.pack_bytes, (bytes.len() - pack_start(&bytes)) as u64);
    }

    #[test]
    fn complete_v3_bundle_has_no_problems() {
        let f = Fixture::new();
        let bytes = f.bundle(&["--version=3"], &["--all"]);
        assert!(bytes.starts_with(b"# v3 git bundle\n@object-format=sha1\n"));
        let report = f.validate(&bytes);
        assert_eq!(report.problems, vec![]);
        assert_eq!(report.version, 3);
        assert_eq!(report.capabilities, vec!["object-format=sha1".to_string()]);
        assert_eq!(report.refs.len(), 3);
    }

    #[test]
    fn range_bundle_is_not_self_contained() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["main~1..main"]);
        let report = f.validate(&bytes);
        let prerequisite = f.oid("main~1");
        assert_eq!(report.prerequisites, vec![prerequisite.clone()]);
        // `notes.txt` at `main` is stored as a delta against its version at
        // `main~1`, which the bundle does not carry.
        assert_eq!(
            report.problems,
            vec![
                GitBundleProblem::NotSelfContained {
                    prerequisites: vec![prerequisite]
                },
                GitBundleProblem::ThinPack {
                    reason: THIN_PACK_MESSAGE.into()
                },
            ]
        );
    }

    #[test]
    fn flipped_byte_in_pack_is_pack_invalid() {
        let f = Fixture::new();
        let mut bytes = f.bundle(&[], &["--all"]);
        let start = pack_start(&bytes);
        let middle = start + (bytes.len() - start) / 2;
        bytes[middle] ^= 0x01;

        // `git bundle verify` does not read the pack: it calls this bundle
        // okay, which is why this module indexes the pack itself.
        let file = f.root.path().join("flipped.bundle");
        fs::write(&file, &bytes).unwrap();
        let out = f
            .command(&f.repo(), &["bundle", "verify", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("is okay"));

        // libgit2 1.9 with git 2.47's pack says "error reading from the zlib
        // stream"; where the byte lands (zlib data, object header, trailer)
        // decides the message, so only the variant is pinned.
        let report = f.validate(&bytes);
        assert_eq!(report.refs.len(), 3);
        assert!(
            matches!(&report.problems[..], [GitBundleProblem::PackInvalid { .. }]),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn truncated_bundle_is_pack_invalid() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["--all"]);
        let start = pack_start(&bytes);
        let cut = &bytes[..start + (bytes.len() - start) / 2];
        let report = f.validate(cut);
        assert_eq!(report.pack_bytes, (cut.len() - start) as u64);
        // libgit2 1.9 says "missing trailer at the end of the pack" for this
        // cut; a cut elsewhere can read as a trailer mismatch instead.
        let truncation = [
            "missing trailer at the end of the pack",
            "unexpected data at the end of the pack",
            "packfile trailer mismatch",
        ];
        assert!(
            matches!(&report.problems[..], [GitBundleProblem::PackInvalid { reason }] if truncation.contains(&reason.as_str())),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn ref_whose_object_is_not_in_the_pack_is_ref_missing() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["--all"]);
        let dev = f.oid("dev");
        let forged = "1234567890abcdef1234567890abcdef12345678";
        let start = pack_start(&bytes);
        let header = String::from_utf8(bytes[..start].to_vec()).unwrap();
        let mut edited = header.replace(&dev, forged).into_bytes();
        edited.extend_from_slice(&bytes[start..]);
        let report = f.validate(&edited);
        assert_eq!(
            report.problems,
            vec![GitBundleProblem::RefMissing {
                name: "refs/heads/dev".into(),
                oid: forged.into()
            }]
        );
    }

    /// A bundle whose pack holds one blob of `n` zeros (its ref is made up).
    fn zero_blob_bundle(n: usize) -> Vec<u8> {
        use sha1_smol::Sha1;
        let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        let (mut size, mut c) = (n >> 4, 0x30 | (n & 15) as u8);
        while size > 0 {
            pack.push(c | 0x80);
            c = (size & 0x7f) as u8;
            size >>= 7;
        }
        pack.push(c);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; n]).unwrap();
        pack.extend(z.finish().unwrap());
        let digest = Sha1::from(&pack).digest().bytes();
        pack.extend_from_slice(&digest);
        let mut bundle =
            format!("# v2 git bundle\n{} refs/heads/main\n\n", "1".repeat(40)).into_bytes();
        bundle.extend(pack);
        bundle
    }

    #[test]
    fn pack_that_inflates_out_of_proportion_is_stopped() {
        let (_keep, scratch) = scratch_only();
        let bomb = zero_blob_bundle(32 << 20);
        let report = validate_with(&mut &bomb[..], std::slice::from_ref(&scratch), 200).unwrap();
        assert!(
            matches!(
                report.problems[..],
                [GitBundleProblem::ExpansionRatio { limit: 200, .. }]
            ),
            "{:?}",
            report.problems
        );
        // Still read to its end.
        assert_eq!(report.pack_bytes as usize, bomb.len() - pack_start(&bomb));
        // Without the limit it is indexed: a blob, whose made-up ref is missing.
        let report = validate_with(&mut &bomb[..], std::slice::from_ref(&scratch), 0).unwrap();
        assert!(
            matches!(report.problems[..], [GitBundleProblem::RefMissing { .. }]),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn garbage_file_is_bad_header_on_line_1() {
        let report = validate_text(b"hello, this is not a bundle\nat all\n");
        assert_eq!(report.version, 0);
        assert_eq!(
            report.problems,
            vec![bad(
                1,
                "not a git bundle: expected \"# v2 git bundle\" or \"# v3 git bundle\", found \"hello, this is not a bundle\""
            )]
        );
        assert_eq!(report.pack_bytes, 0);
        assert_eq!(
            validate_text(b"").problems,
            vec![bad(1, "the input is empty")]
        );
    }

    #[test]
    fn header_without_pack_names_the_bad_line_and_the_cut() {
        let text = b"# v2 git bundle\n\
            1234567890abcdef1234567890abcdef12345678 refs/heads/main\n\
            not-an-oid refs/heads/dev\n";
        let report = validate_text(text);
        assert_eq!(
            report.refs,
            vec![(
                "refs/heads/main".to_string(),
                "1234567890abcdef1234567890abcdef12345678".to_string()
            )]
        );
        assert_eq!(
            report.problems,
            vec![
                bad(3, "expected a 40-digit hex object id, found 0 hex digits"),
                bad(
                    4,
                    "the input ends inside the header (no blank line before the pack)"
                ),
            ]
        );
    }

    #[test]
    fn header_then_no_pack_is_pack_invalid() {
        let report =
            validate_text(b"# v2 git bundle\n1234567890abcdef1234567890abcdef12345678 HEAD\n\n");
        assert_eq!(report.pack_bytes, 0);
        assert_eq!(
            report.problems,
            vec![GitBundleProblem::PackInvalid {
                reason: "incomplete pack header".into()
            }]
        );
    }

    #[test]
    fn malformed_header_lines_name_their_line() {
        let oid = "1234567890abcdef1234567890abcdef12345678";
        let text = format!(
            "# v3 git bundle\n\
             @object-format=sha1\n\
             @colour=blue\n\
             -{oid} a prerequisite\n\
             @filter=blob:none\n\
             {oid}refs/heads/a\n\
             {oid} refs/heads/a..b\n\
             {oid} refs/heads/main\n\
             {oid} refs/heads/main\n\
             {oid}0 refs/heads/long\n\
             -{oid}x\n\
             \n"
        );
        let report = validate_text(text.as_bytes());
        let problems: Vec<_> = report
            .problems
            .iter()
            .filter(|p| matches!(p, GitBundleProblem::BadHeader { .. }))
            .cloned()
            .collect();
        assert_eq!(
            problems,
            vec![
                bad(3, "unknown capability \"colour=blue\""),
                bad(5, "capability after prerequisite or ref lines"),
                bad(6, "expected a space and a ref name after the object id"),
                bad(7, "\"refs/heads/a..b\" is not a valid ref name"),
                bad(9, "ref refs/heads/main is already listed on line 8"),
                bad(10, "expected a 40-digit hex object id, found 41 hex digits"),
                bad(11, "expected a space after the prerequisite's object id"),
            ]
        );
        assert_eq!(report.prerequisites, vec![oid.to_string()]);
        assert_eq!(report.refs.len(), 1);
    }

    #[test]
    fn capability_in_v2_bundle_is_bad_header() {
        let report = validate_text(b"# v2 git bundle\n@object-format=sha1\n\n");
        assert_eq!(
            report.problems[0],
            bad(
                2,
                "capability line in a v2 bundle (only v3 has capabilities)"
            )
        );
    }

    #[test]
    fn oversized_header_line_stops_the_read() {
        let mut text = b"# v2 git bundle\n".to_vec();
        text.extend(std::iter::repeat_n(b'a', MAX_LINE + 1));
        text.extend_from_slice(b"\n\nPACK");
        let report = validate_text(&text);
        assert_eq!(report.problems, vec![bad(2, "line longer than 64 KiB")]);
        assert_eq!(report.pack_bytes, 0);
    }

    #[test]
    fn filtered_bundle_is_reported() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["--filter=blob:none", "--all"]);
        let report = f.validate(&bytes);
        assert_eq!(report.version, 3);
        assert_eq!(
            report.problems,
            vec![GitBundleProblem::Filtered {
                line: 3,
                filter: "blob:none".into()
            }]
        );
    }

    #[test]
    fn bundle_claiming_complete_history_without_its_blobs_is_pack_invalid() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["--filter=blob:none", "--all"]);
        let text = String::from_utf8_lossy(&bytes[..pack_start(&bytes)]).into_owned();
        let unfiltered = text.replace("@filter=blob:none\n", "");
        let mut edited = unfiltered.into_bytes();
        edited.extend_from_slice(&bytes[pack_start(&bytes)..]);
        let report = f.validate(&edited);
        let blobs = f
            .git(&["rev-list", "--objects", "--all"])
            .lines()
            .filter(|l| l.ends_with(".txt"))
            .count();
        assert_eq!(
            report.problems,
            vec![GitBundleProblem::PackInvalid {
                reason: format!("packfile is missing {blobs} objects")
            }]
        );
    }

    #[test]
    fn sha256_bundle_is_read_but_not_checked() {
        let f = Fixture::with_init_args(&["--object-format=sha256"]);
        let bytes = f.bundle(&[], &["--all"]);
        let report = f.validate(&bytes);
        assert_eq!(report.version, 3);
        assert_eq!(report.refs[0], ("refs/heads/dev".to_string(), f.oid("dev")));
        assert_eq!(report.pack_bytes, (bytes.len() - pack_start(&bytes)) as u64);
        assert_eq!(
            report.problems,
            vec![GitBundleProblem::UnsupportedObjectFormat {
                line: 2,
                format: "sha256".into()
            }]
        );
    }

    /// Yields `data`, then fails.
    struct FailingReader<'a> {
        data: &'a [u8],
    }

    impl Read for FailingReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.data.len()).min(1000);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_error_mid_pack_is_err_and_scratch_is_removed() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["--all"]);
        let half = &bytes[..pack_start(&bytes) + 2000];
        let err = validate(&mut FailingReader { data: half }, &f.scratch()).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        f.assert_scratch_empty();
    }

    #[test]
    fn scratch_folder_goes_to_the_first_parent_where_it_can_be_created() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["--all"]);
        let root = f.root.path();
        let file = root.join("a-file");
        fs::write(&file, "x").unwrap();
        // Missing, a file, then the usable one: the bundle is checked there,
        // and nothing is left in any of them.
        let parents = [root.join("missing"), file.clone(), f.scratch()];
        let report = validate_with(&mut &bytes[..], &parents, 0).unwrap();
        assert_eq!(report.problems, vec![]);
        assert!(report.objects > 0);
        f.assert_scratch_empty();
        assert!(!root.join("missing").exists());
    }

    #[test]
    fn no_usable_scratch_parent_is_a_scratch_error_naming_each_one() {
        let f = Fixture::new();
        let bytes = f.bundle(&[], &["--all"]);
        let root = f.root.path();
        let file = root.join("a-file");
        fs::write(&file, "x").unwrap();
        let missing = root.join("missing");
        let err = validate_with(&mut &bytes[..], &[missing.clone(), file.clone()], 0).unwrap_err();
        assert!(is_scratch_error(&err), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{}: No such file or directory", missing.display()))
                && msg.contains(&format!("{}: Not a directory", file.display()))
                && msg.ends_with("set TMPDIR to a writable folder"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        // A failing input is not a scratch error.
        let half = &bytes[..pack_start(&bytes) + 2000];
        let err = validate(&mut FailingReader { data: half }, &f.scratch()).unwrap_err();
        assert!(!is_scratch_error(&err), "{err:?}");
    }

    #[test]
    fn messages_are_one_line_and_name_what_they_are_about() {
        let oids: Vec<String> = (0..5).map(|i| format!("{i:040}")).collect();
        let cases = [
            (bad(7, "x"), "header line 7: x"),
            (
                GitBundleProblem::RefMissing {
                    name: "refs/heads/dev".into(),
                    oid: oids[0].clone(),
                },
                "ref refs/heads/dev points to 0000000000000000000000000000000000000000, which is not in the pack",
            ),
            (
                GitBundleProblem::NotSelfContained {
                    prerequisites: oids.clone(),
                },
                "not self-contained: needs 5 commit(s) it does not carry: \
                 0000000000000000000000000000000000000000, \
                 0000000000000000000000000000000000000001, \
                 0000000000000000000000000000000000000002 and 2 more",
            ),
        ];
        for (problem, message) in cases {
            assert_eq!(problem.to_string(), message);
        }
    }
}
