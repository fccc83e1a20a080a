//! Walking a tar stream, without ever unpacking, with the header format
//! read by this project's own reader ([`super::tarheader`]) so that every
//! entry is judged under each name the real extractors would give it.
//!
//! Guarantees:
//! - only headers and data are read; nothing is ever written;
//! - every header error names its byte offset in the (decompressed) tar
//!   stream, and malformed metadata (PAX records, GNU long names cut by a
//!   NUL, sparse maps, data on a type that has none) is a failing finding
//!   naming the entry it applies to, never skipped;
//! - each entry is judged under GNU tar's, bsdtar's and Python's reading of
//!   its name and link ([`tarheader::Readings`]); where they differ,
//!   `bundle:tar-readers-disagree` fails and every reading is judged by the
//!   safety rules;
//! - a sparse file is a file: its data is handed on expanded, holes as
//!   zeros, so its digest is the one `sha256sum` gives the extracted file;
//! - after the end-of-archive marker the rest of the stream is drained and
//!   must be zeros: data hidden after the marker is a failing finding;
//! - an upstream failure (already reported by the decompressor or reader)
//!   never produces a second, misleading finding here;
//! - memory stays bounded whatever the headers claim: an extension header
//!   (PAX records, GNU long name or link, sparse map) over
//!   [`MAX_EXTENSION_BYTES`], or more than [`MAX_EXTENSION_CHAIN`] of them
//!   before one entry, stops the walk with a finding before it is read;
//! - the entry limit (`--max-entries` for the release,
//!   `--max-nested-entries` inside a nested archive) and, inside a nested
//!   archive, the byte limit (`--max-nested-bytes`) stop the walk with a
//!   finding naming the archive.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use super::safety::{EntryKind, EntryMeta};
use super::stream::is_upstream_abort;
use super::tarheader::{
    self as th, Extension, Header, PaxRecord, PaxSparse, Reader, Readings, SparseMap, BLOCK,
};
use super::walk::{DataError, Scope, WalkContext};
use crate::finding::{Code, Finding};

/// Largest extension header (PAX record block, GNU long name or long link,
/// GNU sparse map) read. Real ones are a few hundred bytes; PAX extended
/// attributes can reach tens of kilobytes.
pub const MAX_EXTENSION_BYTES: u64 = 1 << 20;

/// Most extension headers before one entry. Writers put at most three (a
/// PAX header, a long name, a long link); a chain of thousands is an attack
/// on memory or on readers that keep them all.
pub const MAX_EXTENSION_CHAIN: usize = 16;

/// Counts bytes handed to the walk and remembers an upstream abort.
struct Counting<R> {
    inner: R,
    pos: Rc<Cell<u64>>,
    aborted: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.pos.set(self.pos.get() + n as u64);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if is_upstream_abort(&e) {
                        self.aborted.set(true);
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// Members' data is taken from the source's own buffer (`fill_buf`), so a
/// chunk is hashed where it arrived, not copied first.
impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // Retried without holding the buffer; the second call returns what
        // the first one filled.
        loop {
            match self.inner.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if is_upstream_abort(&e) {
                        self.aborted.set(true);
                    }
                    return Err(e);
                }
            }
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.pos.set(self.pos.get() + amt as u64);
        self.inner.consume(amt);
    }
}

/// Reads into `buf` until it is full or the stream ends; returns the count.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Skips `n` bytes; returns how many were there.
fn skip<R: Read>(r: &mut R, n: u64) -> io::Result<u64> {
    io::copy(&mut r.take(n), &mut io::sink())
}

fn padding(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64 - size
}

/// A member's stored data: exactly `remaining` bytes, and `UnexpectedEof`
/// when the stream ends before them.
struct Data<'a, R> {
    inner: &'a mut R,
    remaining: u64,
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} bytes missing", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Data<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let remaining = self.remaining;
        if remaining == 0 {
            return Ok(&[]);
        }
        let buf = self.inner.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{remaining} bytes missing"),
            ));
        }
        let n = buf.len().min(remaining.min(usize::MAX as u64) as usize);
        Ok(&buf[..n])
    }

    fn consume(&mut self, amt: usize) {
        self.remaining -= amt as u64;
        self.inner.consume(amt);
    }
}

/// A sparse file's logical contents from its stored segments: zeros in the
/// holes and after the last segment, up to the file's size.
struct Expand<'a, R> {
    stored: R,
    map: &'a SparseMap,
    next: usize,
    pos: u64,
}

impl<R: Read> Read for Expand<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.map.real_size {
            return Ok(0);
        }
        while let Some(s) = self.map.segments.get(self.next) {
            if self.pos >= s.offset + s.len {
                self.next += 1;
                continue;
            }
            if self.pos < s.offset {
                let n = buf.len().min((s.offset - self.pos) as usize);
                buf[..n].fill(0);
                self.pos += n as u64;
                return Ok(n);
            }
            let want = buf.len().min((s.offset + s.len - self.pos) as usize);
            let n = self.stored.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "sparse data ends early",
                ));
            }
            self.pos += n as u64;
            return Ok(n);
        }
        let n = buf.len().min((self.map.real_size - self.pos) as usize);
        buf[..n].fill(0);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Outcome of the walk, for the container's evidence.
#[derive(Debug, Default)]
pub struct TarStats {
    pub entries: u64,
    pub tar_bytes: u64,
    /// A failing container-level finding was reported here.
    pub failed: bool,
    /// The upstream stage aborted; its own finding explains why.
    pub upstream_failed: bool,
    /// Stopped at a resource limit.
    pub limited: bool,
}

/// The entry kind of a type flag, as the extractors treat it: `0`, NUL and
/// `7` (contiguous) are files, as are GNU sparse files; NUL with a name
/// ending in `/` is a folder (the v7 convention GNU tar and Python follow).
fn kind_of(t: u8, path: &[u8]) -> EntryKind {
    match t {
        0 if path.ends_with(b"/") => EntryKind::Dir,
        b'0' | 0 | b'7' | b'S' => EntryKind::File,
        b'1' => EntryKind::Hardlink,
        b'2' => EntryKind::Symlink,
        b'3' => EntryKind::CharDevice,
        b'4' => EntryKind::BlockDevice,
        b'5' => EntryKind::Dir,
        b'6' => EntryKind::Fifo,
        other => EntryKind::Other(other),
    }
}

/// A problem with an extension header, reported on the entry it applies to.
struct Pending {
    offset: u64,
    why: String,
}

/// Walks every entry of the tar stream `reader`.
pub fn walk<R: BufRead>(reader: R, ctx: &mut WalkContext, target: &str) -> TarStats {
    let pos = Rc::new(Cell::new(0u64));
    let aborted = Rc::new(Cell::new(false));
    let mut src = Counting {
        inner: reader,
        pos: pos.clone(),
        aborted: aborted.clone(),
    };
    let nested = matches!(ctx.scope, Scope::Nested { .. });
    let max_bytes = ctx.limits.max_nested_bytes;
    // Every entry costs a record in memory: nested archives and the release
    // have their own bound (and code, and flag to raise it).
    let (max_entries, too_many, flag, what) = if nested {
        (
            ctx.limits.max_nested_entries,
            Code::BundleNestedTooManyEntries,
            "--max-nested-entries",
            target.to_string(),
        )
    } else {
        (
            ctx.limits.max_entries,
            Code::BundleTooManyEntries,
            "--max-entries",
            "the archive".to_string(),
        )
    };
    let mut stats = TarStats::default();
    let findings = ctx.findings.clone();
    let fail = |stats: &mut TarStats, code: Code, offset: u64, msg: String| {
        if aborted.get() {
            stats.upstream_failed = true;
            return;
        }
        stats.failed = true;
        let _ = findings.send(Finding::new(code, target, msg).evidence("offset", offset));
    };
    let read_fail = |stats: &mut TarStats, e: &io::Error, at: u64, what: &str| {
        let code = if e.kind() == io::ErrorKind::UnexpectedEof {
            Code::BundleTruncated
        } else {
            Code::BundleReadError
        };
        fail(
            stats,
            code,
            at,
            format!("tar stream {what} at byte {at}: {e}"),
        );
    };
    // Reads `buf` whole; a stream that ends first, or fails, is reported
    // (inside `what`) and the walk stops.
    let need = |src: &mut Counting<R>, stats: &mut TarStats, buf: &mut [u8], what: &str| -> bool {
        match fill(src, buf) {
            Ok(n) if n == buf.len() => true,
            Ok(_) => {
                let at = pos.get();
                fail(
                    stats,
                    Code::BundleTruncated,
                    at,
                    format!("tar stream ends inside {what} at byte {at}"),
                );
                false
            }
            Err(e) => {
                read_fail(
                    stats,
                    &e,
                    pos.get(),
                    &format!("cannot be read inside {what}"),
                );
                false
            }
        }
    };
    // Extension headers since the last entry, in stream order; PAX global
    // records in force; problems to report on the next entry.
    let mut exts: Vec<Extension> = Vec::new();
    let mut globals = th::Globals::default();
    let mut pending: Vec<Pending> = Vec::new();
    // Names only a lenient parse of a malformed PAX header finds.
    let mut salvaged: Vec<PaxRecord> = Vec::new();
    let mut h: Header = [0; BLOCK];
    let end_marker = loop {
        let header_pos = pos.get();
        let n = match fill(&mut src, &mut h) {
            Ok(n) => n,
            Err(e) => {
                read_fail(&mut stats, &e, header_pos, "cannot be read");
                return stats;
            }
        };
        if n == 0 {
            fail(
                &mut stats,
                Code::BundleTruncated,
                header_pos,
                format!("tar stream ends at byte {header_pos} without the end-of-archive marker"),
            );
            return stats;
        }
        if n < BLOCK {
            fail(
                &mut stats,
                Code::BundleTruncated,
                header_pos,
                format!("tar stream ends inside the header at byte {header_pos}"),
            );
            return stats;
        }
        if th::is_zero(&h) {
            break header_pos;
        }
        if !th::checksum_ok(&h) {
            fail(
                &mut stats,
                Code::BundleTarHeaderChecksum,
                header_pos,
                format!("tar header at byte {header_pos} has a bad checksum"),
            );
            return stats;
        }
        let t = h[156];
        let Some(hsize) = th::numeric(&h[124..136]) else {
            fail(
                &mut stats,
                Code::BundleTarCorrupt,
                header_pos,
                format!("tar header at byte {header_pos} cannot be parsed: its size field is not a number"),
            );
            return stats;
        };
        if matches!(t, b'x' | b'X' | b'g' | b'L' | b'K') {
            let what = match t {
                b'x' => "PAX extended header",
                b'X' => "Solaris extended header",
                b'g' => "PAX global header",
                b'L' => "GNU long name",
                _ => "GNU long link name",
            };
            if hsize > MAX_EXTENSION_BYTES || exts.len() >= MAX_EXTENSION_CHAIN {
                stats.limited = true;
                let why = if hsize > MAX_EXTENSION_BYTES {
                    format!("the {what} at byte {header_pos} holds {hsize} bytes, over the {MAX_EXTENSION_BYTES} byte limit for extension headers")
                } else {
                    format!("more than {MAX_EXTENSION_CHAIN} extension headers precede one entry (the {what} at byte {header_pos})")
                };
                fail(
                    &mut stats,
                    Code::BundleTarCorrupt,
                    header_pos,
                    format!("tar stream: {why}; reading stopped there"),
                );
                return stats;
            }
            // The data and its padding, read whole.
            let mut data = vec![0u8; (hsize + padding(hsize)) as usize];
            let inside = format!("the {what} that starts at byte {header_pos}");
            if !need(&mut src, &mut stats, &mut data, &inside) {
                return stats;
            }
            data.truncate(hsize as usize);
            let data_at = header_pos + BLOCK as u64;
            match t {
                b'L' | b'K' => {
                    let cut = th::nul_cut(&data).len();
                    if data[cut..].iter().any(|&b| b != 0) {
                        pending.push(Pending {
                            offset: data_at + cut as u64,
                            why: format!(
                                "the {what} at byte {header_pos} holds a NUL byte after {:?}, followed by more text: readers cut the name at the NUL",
                                super::safety::shown_name(&data[..cut])
                            ),
                        });
                    }
                    exts.push(if t == b'L' {
                        Extension::LongName(data)
                    } else {
                        Extension::LongLink(data)
                    });
                }
                _ => {
                    let records = match th::parse_pax(&data) {
                        Ok(r) => r,
                        Err(e) => {
                            pending.push(Pending {
                                offset: data_at + e.at as u64,
                                why: format!(
                                    "the {what} at byte {header_pos} is malformed: {}",
                                    e.why
                                ),
                            });
                            // The names a lenient reader (Python's) may still
                            // take from the broken records: judged too.
                            for r in th::parse_pax_lenient(&data) {
                                if matches!(
                                    r.key.as_slice(),
                                    b"path" | b"linkpath" | b"GNU.sparse.name"
                                ) && !e.parsed.contains(&r)
                                {
                                    salvaged.push(r);
                                }
                            }
                            e.parsed
                        }
                    };
                    if t == b'g' {
                        if th::pax_get(&records, "size").is_some() {
                            pending.push(Pending {
                                offset: header_pos,
                                why: format!("the {what} at byte {header_pos} sets `size` for every entry after it: readers frame the entries differently"),
                            });
                        }
                        globals.add(&records);
                    } else {
                        exts.push(Extension::Pax(records));
                    }
                }
            }
            continue;
        }

        // An entry.
        stats.entries += 1;
        if stats.entries > max_entries {
            stats.failed = true;
            stats.limited = true;
            let _ = ctx.findings.send(
                Finding::new(
                    too_many,
                    target,
                    format!("{what} has more than {max_entries} entries ({flag}); reading stopped at the entry at byte {header_pos}, the rest was not verified"),
                )
                .evidence("offset", header_pos)
                .evidence("limit", max_entries),
            );
            return stats;
        }
        let mut readings = Readings::of(&h, &exts, &globals);
        if !matches!(t, b'1' | b'2') {
            readings = readings.without_links();
        }
        let primary = readings.primary();
        let shown = super::safety::shown_name(&primary.path);
        let here = format!("{}{}", ctx.prefix, shown);
        let local: Vec<PaxRecord> = exts
            .iter()
            .filter_map(|e| match e {
                Extension::Pax(r) => Some(r.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        exts.clear();

        // The stored size: a local PAX `size` overrides the header.
        let mut size = hsize;
        if let Some(v) = th::pax_get(&local, "size") {
            match std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(s) => size = s,
                None => pending.push(Pending {
                    offset: header_pos,
                    why: format!(
                        "its PAX size record {:?} is not a number",
                        String::from_utf8_lossy(v)
                    ),
                }),
            }
        }
        let data_pos = header_pos + BLOCK as u64;
        // The PAX desync: a `size` record that disagrees with the header.
        // GNU tar writes 0 in the header for sizes the field cannot hold.
        let header_can_hold = size < 0o777_7777_7777;
        if t != b'S' && size != hsize && (hsize != 0 || header_can_hold) {
            stats.failed = true;
            let _ = ctx.findings.send(
                Finding::new(
                    Code::BundlePaxSizeMismatch,
                    here.clone(),
                    format!("{shown}: PAX size {size} overrides header size {hsize}"),
                )
                .evidence("offset", header_pos)
                .evidence("pax_size", size)
                .evidence("header_size", hsize),
            );
        }
        let kind = kind_of(t, &primary.path);

        // Sparse files: the map, from the old GNU header and its extension
        // blocks, from PAX records (0.0, 0.1) or from the data (1.0).
        let mut map_bytes = 0u64;
        let mut sparse: Option<SparseMap> = None;
        let pax_sparse = th::pax_sparse(&local);
        if let Err(why) = &pax_sparse {
            pending.push(Pending {
                offset: header_pos,
                why: why.clone(),
            });
        }
        if t == b'S' {
            let mut segments = Vec::new();
            let mut bad = th::gnu_sparse_entries(&h[386..482], &mut segments).err();
            let mut extended = h[482] != 0;
            let mut blocks = 0u64;
            let mut blk: Header = [0; BLOCK];
            while extended {
                blocks += 1;
                if blocks * BLOCK as u64 > MAX_EXTENSION_BYTES {
                    stats.limited = true;
                    fail(
                        &mut stats,
                        Code::BundleTarCorrupt,
                        header_pos,
                        format!("tar stream: the GNU sparse map of the entry at byte {header_pos} is over the {MAX_EXTENSION_BYTES} byte limit for extension headers; reading stopped there"),
                    );
                    return stats;
                }
                let inside = format!("the GNU sparse map of the entry at byte {header_pos}");
                if !need(&mut src, &mut stats, &mut blk, &inside) {
                    return stats;
                }
                if let Err(e) = th::gnu_sparse_entries(&blk[..504], &mut segments) {
                    bad.get_or_insert(e.to_string());
                }
                extended = blk[504] != 0;
            }
            let real_size = th::numeric(&h[483..495]);
            if real_size.is_none() {
                bad.get_or_insert("unreadable real size".into());
            }
            if matches!(pax_sparse, Ok(Some(_))) {
                bad.get_or_insert(
                    "both a GNU sparse header and PAX sparse records describe it".into(),
                );
            }
            match bad {
                Some(why) => pending.push(Pending {
                    offset: header_pos,
                    why: format!("its GNU sparse map is malformed: {why}"),
                }),
                None => {
                    sparse = Some(SparseMap {
                        segments,
                        real_size: real_size.unwrap_or(0),
                    })
                }
            }
        } else if let Ok(Some((format, map))) = pax_sparse {
            if kind != EntryKind::File {
                pending.push(Pending {
                    offset: header_pos,
                    why: "PAX sparse records on an entry that is not a regular file".into(),
                });
            } else if format == PaxSparse::V10 {
                let real = th::pax_get(&local, "GNU.sparse.realsize")
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
                let mut head = Vec::new();
                let parsed = loop {
                    if head.len() as u64 >= size.min(MAX_EXTENSION_BYTES) {
                        break Err(
                            "the GNU sparse 1.0 map does not end inside the entry's data"
                                .to_string(),
                        );
                    }
                    let mut blk = [0u8; BLOCK];
                    let want = (size - head.len() as u64).min(BLOCK as u64) as usize;
                    let inside = format!("{shown}, whose entry starts at byte {header_pos}");
                    if !need(&mut src, &mut stats, &mut blk[..want], &inside) {
                        return stats;
                    }
                    head.extend_from_slice(&blk[..want]);
                    match th::sparse_10_map(&head, real.unwrap_or(0)) {
                        Ok(Some(m)) => break Ok(m),
                        Ok(None) => {}
                        Err(e) => break Err(e),
                    }
                };
                map_bytes = head.len() as u64;
                match (parsed, real) {
                    (Ok((m, used)), Some(_)) if used as u64 <= size => {
                        // Whatever of the map's blocks was read past the map
                        // belongs to the data only when the map ended short.
                        if used < head.len() {
                            pending.push(Pending {
                                offset: data_pos,
                                why: "its GNU sparse 1.0 map is not padded to a block".into(),
                            });
                        } else {
                            sparse = Some(m);
                        }
                    }
                    (Err(why), _) => pending.push(Pending {
                        offset: data_pos,
                        why: format!("its GNU sparse 1.0 map is malformed: {why}"),
                    }),
                    _ => pending.push(Pending {
                        offset: header_pos,
                        why: "its GNU sparse 1.0 records lack a readable GNU.sparse.realsize"
                            .into(),
                    }),
                }
            } else {
                sparse = map;
            }
        }
        let stored = size - map_bytes;
        if let Some(m) = &sparse {
            if let Err(why) = m.validate(stored) {
                pending.push(Pending {
                    offset: header_pos,
                    why: format!("its sparse map does not match its data: {why}"),
                });
                sparse = None;
            }
        }
        // A sparse file expands like a compressed stream: a few blocks can
        // declare an exabyte of holes. The same ratio limit applies.
        if let Some(m) = &sparse {
            let stored_in = size + BLOCK as u64;
            let limit = ctx.limits.max_expansion_ratio;
            if super::container::ratio_exceeded(m.real_size, stored_in, limit) {
                let ratio = m.real_size / stored_in;
                stats.failed = true;
                let _ = ctx.findings.send(
                    Finding::new(
                        Code::BundleExpansionRatioExceeded,
                        here.clone(),
                        format!(
                            "{shown}: a sparse file of {} bytes stored in {stored_in} (ratio {ratio}:1, limit {limit}:1, --max-expansion-ratio); its holes were not expanded, so only its stored data was hashed",
                            m.real_size
                        ),
                    )
                    .evidence("offset", header_pos)
                    .evidence("decompressed_bytes", m.real_size)
                    .evidence("ratio", ratio)
                    .evidence("limit", limit),
                );
                sparse = None;
            }
        }
        // Which entries carry data, as GNU tar, bsdtar and Python frame them
        // (scripts/tardiff.py checks it): files and unknown types do; hard
        // links and folders never do, whatever their size says, in all
        // three. On symlinks, devices, FIFOs and volume labels they part
        // ways (GNU tar skips the declared size, bsdtar and Python do not),
        // so such a size is reported and the walk reads on as bsdtar and
        // Python do, judging what they would take for the next headers.
        let carries_data = matches!(kind, EntryKind::File | EntryKind::Other(_)) && t != b'V';
        if size > 0 && matches!(t, b'2' | b'3' | b'4' | b'6' | b'V') {
            pending.push(Pending {
                offset: header_pos,
                why: format!(
                    "a {} entry declares {size} bytes of data: GNU tar skips them, bsdtar and Python's tarfile read them as the next header",
                    type_name(t)
                ),
            });
        }
        let (size, stored) = if carries_data { (size, stored) } else { (0, 0) };

        let next_header = data_pos + size + padding(size);
        if nested && next_header > max_bytes {
            stats.failed = true;
            stats.limited = true;
            let _ = ctx.findings.send(
                Finding::new(
                    Code::BundleNestedTooLarge,
                    target,
                    format!("{target} holds more than {max_bytes} bytes of tar data (--max-nested-bytes): the entry at byte {header_pos} ends at byte {next_header}; reading stopped there, the rest was not verified"),
                )
                .evidence("offset", header_pos)
                .evidence("limit", max_bytes),
            );
            return stats;
        }

        for p in pending.drain(..) {
            stats.failed = true;
            let _ = ctx.findings.send(
                Finding::new(
                    Code::BundleTarMetadataMalformed,
                    here.clone(),
                    format!("{shown} (entry at byte {header_pos}): {}", p.why),
                )
                .evidence("offset", p.offset),
            );
        }
        if !readings.agree() {
            stats.failed = true;
            let _ = ctx
                .findings
                .send(disagreement(&here, &readings, header_pos));
        }
        let lenient: Vec<th::Reading> = salvaged
            .drain(..)
            .map(|rec| {
                let mut r = primary.clone();
                let value = th::nul_cut(&rec.value).to_vec();
                if rec.key == b"linkpath" {
                    r.link = value;
                } else {
                    r.path = value;
                }
                r
            })
            .collect();
        for r in &lenient {
            let meta = EntryMeta {
                raw_path: &r.path,
                kind: kind_of(t, &r.path),
                mode: 0,
                link_target: Some(&r.link),
                size: None,
            };
            ctx.rules.check_reading(
                &shown,
                "a lenient reader (a malformed PAX record)",
                &meta,
                &ctx.findings,
            );
        }
        for (who, r) in readings.others() {
            let label = who
                .iter()
                .map(|w| w.label())
                .collect::<Vec<_>>()
                .join(" and ");
            let other_kind = kind_of(t, &r.path);
            let meta = EntryMeta {
                raw_path: &r.path,
                kind: other_kind,
                mode: 0,
                link_target: Some(&r.link),
                size: None,
            };
            ctx.rules
                .check_reading(&shown, &label, &meta, &ctx.findings);
        }

        let mode = th::numeric(&h[100..108]).unwrap_or(0) as u32;
        let meta = EntryMeta {
            raw_path: &primary.path,
            kind,
            mode,
            link_target: matches!(kind, EntryKind::Symlink | EntryKind::Hardlink)
                .then_some(primary.link.as_slice()),
            size: Some(sparse.as_ref().map_or(stored, |m| m.real_size)),
        };
        let mut data = Data {
            inner: &mut src,
            remaining: stored,
        };
        let outcome = if kind != EntryKind::File {
            ctx.member(&meta, &mut io::empty())
        } else if let Some(map) = &sparse {
            let expanded = Expand {
                stored: &mut data,
                map,
                next: 0,
                pos: 0,
            };
            ctx.member(&meta, &mut io::BufReader::new(expanded))
        } else {
            ctx.member_in_stream(&meta, &mut data)
        };
        // What the member left unread (the data of a link, a folder or an
        // unknown type) and the padding.
        let rest = data.remaining + padding(size);
        let skipped = outcome
            .map_err(|DataError(e)| e)
            .and_then(|()| skip(&mut src, rest));
        match skipped {
            Ok(n) if n == rest => {}
            Ok(_) => {
                let at = pos.get();
                fail(
                    &mut stats,
                    Code::BundleTruncated,
                    at,
                    format!("tar stream ends inside {shown} at byte {at}: the entry starts at byte {header_pos} and declares {size} bytes"),
                );
                return stats;
            }
            Err(e) => {
                let at = pos.get();
                fail(
                    &mut stats,
                    if e.kind() == io::ErrorKind::UnexpectedEof { Code::BundleTruncated } else { Code::BundleReadError },
                    at,
                    format!("tar stream ends inside {shown} at byte {at}: the entry starts at byte {header_pos} and declares {size} bytes"),
                );
                return stats;
            }
        }
    };
    if aborted.get() {
        stats.upstream_failed = true;
        return stats;
    }
    // Extension headers with no entry after them.
    for p in pending.drain(..) {
        stats.failed = true;
        let _ = ctx.findings.send(
            Finding::new(
                Code::BundleTarMetadataMalformed,
                target,
                format!(
                    "{} (before the end-of-archive marker at byte {end_marker})",
                    p.why
                ),
            )
            .evidence("offset", p.offset),
        );
    }
    // Drain after the marker: only zeros may follow.
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let here = pos.get();
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                    let at = here + i as u64;
                    fail(
                        &mut stats,
                        Code::BundleDataAfterEnd,
                        at,
                        format!("non-zero data at byte {at}, after the tar end-of-archive marker at byte {end_marker}"),
                    );
                    // Keep draining so the upstream stages finish their checks.
                    let _ = io::copy(&mut src, &mut io::sink());
                    break;
                }
            }
            Err(e) => {
                fail(
                    &mut stats,
                    Code::BundleReadError,
                    here,
                    format!("read error after the end-of-archive marker: {e}"),
                );
                break;
            }
        }
    }
    stats.tar_bytes = pos.get();
    stats
}

fn type_name(t: u8) -> &'static str {
    match t {
        b'2' => "symlink",
        b'3' => "character device",
        b'4' => "block device",
        b'6' => "FIFO",
        _ => "volume label",
    }
}

/// `bundle:tar-readers-disagree`: which reader gives the entry which name.
fn disagreement(here: &str, readings: &Readings, offset: u64) -> Finding {
    let name = |r: &th::Reading| super::safety::shown_name(&r.path);
    let link = |r: &th::Reading| super::safety::shown_name(&r.link);
    let links_differ = readings
        .by
        .iter()
        .any(|r| r.link != readings.primary().link);
    let paths_differ = readings
        .by
        .iter()
        .any(|r| r.path != readings.primary().path);
    let mut parts = Vec::new();
    for (who, r) in
        std::iter::once((vec![Reader::GnuTar], readings.primary())).chain(readings.others())
    {
        let who = who
            .iter()
            .map(|w| w.label())
            .collect::<Vec<_>>()
            .join(" and ");
        let mut s = who;
        if paths_differ {
            s.push_str(&format!(" name it {}", name(r)));
        }
        if links_differ {
            s.push_str(&format!(
                "{} link it to {}",
                if paths_differ { " and" } else { "" },
                link(r)
            ));
        }
        parts.push(s);
    }
    let mut f = Finding::new(
        Code::BundleTarReadersDisagree,
        here.to_string(),
        format!(
            "extractors read this entry (at byte {offset}) differently: {}",
            parts.join("; ")
        ),
    )
    .evidence("offset", offset);
    let mut by = serde_json::Map::new();
    for (i, reader) in Reader::ALL.iter().enumerate() {
        let r = &readings.by[i];
        let mut v = serde_json::Map::new();
        v.insert("path".into(), name(r).into());
        if !r.link.is_empty() {
            v.insert("link".into(), link(r).into());
        }
        by.insert(reader.key().into(), v.into());
    }
    f = f.evidence("readings", serde_json::Value::Object(by));
    f
}
