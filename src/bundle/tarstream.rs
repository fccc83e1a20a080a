//! Walking a tar stream with the `tar` crate, without ever unpacking.
//!
//! Guarantees:
//! - only `Archive::entries` and `Entry::read` are used, never the unpack
//!   functions;
//! - every header error names its byte offset in the (decompressed) tar
//!   stream;
//! - after the end-of-archive marker the rest of the stream is drained and
//!   must be zeros: data hidden after the marker is a failing finding;
//! - an upstream failure (already reported by the decompressor or reader)
//!   never produces a second, misleading finding here;
//! - memory stays bounded whatever the headers claim: the `tar` crate reads
//!   PAX records, GNU long names and long links whole into memory and keeps
//!   a record per GNU sparse segment, so every extension header is inspected
//!   (by [`HeaderGuard`], as its bytes stream past) before the crate reads
//!   it, and one over [`MAX_EXTENSION_BYTES`] stops the walk with a finding;
//! - the entry limit (`--max-entries` for the release,
//!   `--max-nested-entries` inside a nested archive) and, inside a nested
//!   archive, the byte limit (`--max-nested-bytes`) stop the walk with a
//!   finding naming the archive.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::safety::{EntryKind, EntryMeta};
use super::stream::is_upstream_abort;
use super::walk::{DataError, Scope, WalkContext};
use crate::finding::{Code, Finding};

/// Largest extension header (PAX record block, GNU long name or long link,
/// GNU sparse map) read. Real ones are a few hundred bytes; PAX extended
/// attributes can reach tens of kilobytes.
pub const MAX_EXTENSION_BYTES: u64 = 1 << 20;

/// An extension header over [`MAX_EXTENSION_BYTES`], found by the guard.
#[derive(Debug, Clone)]
pub struct OversizedExtension {
    pub offset: u64,
    pub what: &'static str,
    /// Declared bytes (for a sparse map: bytes of map read so far).
    pub size: u64,
}

impl std::fmt::Display for OversizedExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} at byte {} holds {} bytes, over the {} byte limit for extension headers",
            self.what, self.offset, self.size, MAX_EXTENSION_BYTES
        )
    }
}

impl std::error::Error for OversizedExtension {}

/// Watches the headers the `tar` crate is about to read, so that an
/// oversized extension header is refused before the crate buffers it.
///
/// It follows the archive's framing only from a known header position (set
/// by the walk after every entry, from the crate's own offsets) through the
/// chain of extension headers that precede the next entry, whose sizes come
/// from their own headers (PAX `size` never applies to them). It never
/// needs to agree with the crate about anything else: when in doubt it
/// disarms and the crate's own checks apply.
#[derive(Default)]
struct HeaderGuard {
    /// Offset of the next header to inspect.
    expect: Option<u64>,
    block: Vec<u8>,
    /// Inside a GNU sparse map: blocks read so far.
    sparse_blocks: Option<u64>,
    /// Data size of the sparse entry whose map is being read.
    sparse_size: u64,
}

fn is_ustar_or_gnu(h: &[u8]) -> bool {
    &h[257..265] == b"ustar\x0000" || &h[257..265] == b"ustar  \0"
}

/// The header's size field as the crate reads it (octal, or base-256 when
/// the high bit is set); `None` when unparsable (the crate will say so).
fn size_field(h: &[u8]) -> Option<u64> {
    let f = &h[124..136];
    if f[0] & 0x80 != 0 {
        // Base-256: the crate keeps the low 64 bits.
        return Some(f[4..].iter().fold(0u64, |a, &b| (a << 8) | b as u64));
    }
    let text: Vec<u8> = f.iter().copied().take_while(|&b| b != 0).collect();
    let text = std::str::from_utf8(&text).ok()?;
    u64::from_str_radix(text.trim(), 8).ok()
}

impl HeaderGuard {
    fn arm(&mut self, at: u64) {
        self.expect = Some(at);
        self.block.clear();
        self.sparse_blocks = None;
    }

    /// Inspects `bytes`, which sit at offset `start` of the tar stream.
    fn inspect(&mut self, start: u64, bytes: &[u8]) -> Result<(), OversizedExtension> {
        let end = start + bytes.len() as u64;
        while let Some(at) = self.expect {
            let want = at + self.block.len() as u64;
            if want >= end {
                break;
            }
            if want < start {
                // The crate moved past the expected header: out of step, so
                // stand aside rather than guess.
                self.expect = None;
                break;
            }
            let from = (want - start) as usize;
            let take = (512 - self.block.len()).min(bytes.len() - from);
            self.block.extend_from_slice(&bytes[from..from + take]);
            if self.block.len() < 512 {
                break;
            }
            let next = self.judge(at)?;
            self.block.clear();
            self.expect = next;
        }
        Ok(())
    }

    /// Judges the complete header block at `at`; returns where the next one
    /// to inspect is, if it is still part of the same chain.
    fn judge(&mut self, at: u64) -> Result<Option<u64>, OversizedExtension> {
        let h = &self.block[..];
        if let Some(n) = self.sparse_blocks {
            // A GNU sparse map block: 21 segments, then `isextended`.
            let n = n + 1;
            if n * 512 > MAX_EXTENSION_BYTES {
                return Err(OversizedExtension {
                    offset: at,
                    what: "GNU sparse map",
                    size: n * 512,
                });
            }
            if h[504] != 0 {
                self.sparse_blocks = Some(n);
                return Ok(Some(at + 512));
            }
            self.sparse_blocks = None;
            return Ok(Some(at + 512 + self.sparse_size.div_ceil(512) * 512));
        }
        if h.iter().all(|&b| b == 0) || !is_ustar_or_gnu(h) {
            return Ok(None);
        }
        let what = match h[156] {
            b'x' => "PAX extended header",
            b'L' => "GNU long name",
            b'K' => "GNU long link name",
            b'S' => {
                // The crate reads the sparse map that follows a GNU sparse
                // header whose `isextended` flag is set. Either way the guard
                // follows to the header after the entry's data: the crate's
                // own offsets for a sparse entry do not say where that is.
                let Some(size) = size_field(h) else {
                    return Ok(None);
                };
                if h[482] == 0 {
                    return Ok(at.checked_add(512 + size.div_ceil(512) * 512));
                }
                self.sparse_blocks = Some(0);
                self.sparse_size = size;
                return Ok(Some(at + 512));
            }
            _ => return Ok(None),
        };
        let Some(size) = size_field(h) else {
            return Ok(None);
        };
        if size > MAX_EXTENSION_BYTES {
            return Err(OversizedExtension {
                offset: at,
                what,
                size,
            });
        }
        Ok(at.checked_add(512 + size.div_ceil(512) * 512))
    }
}

/// Records a limit hit: the walk fails, stops there, and says why.
fn stop_at_limit(stats: &mut TarStats, findings: &crossbeam_channel::Sender<Finding>, f: Finding) {
    stats.failed = true;
    stats.limited = true;
    let _ = findings.send(f);
}

/// Counts bytes handed to the tar reader, remembers an upstream abort and
/// runs the header guard.
struct Counting<R> {
    inner: R,
    pos: Rc<Cell<u64>>,
    aborted: Rc<Cell<bool>>,
    guard: Rc<std::cell::RefCell<HeaderGuard>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                let start = self.pos.get();
                self.pos.set(start + n as u64);
                // Refusing the read that completes an oversized header keeps
                // its data from ever reaching the crate.
                self.guard
                    .borrow_mut()
                    .inspect(start, &buf[..n])
                    .map_err(io::Error::other)?;
                Ok(n)
            }
            Err(e) => {
                if is_upstream_abort(&e) {
                    self.aborted.set(true);
                }
                Err(e)
            }
        }
    }
}

/// Turns a short read of a member's data into `UnexpectedEof`: the crate's
/// data reader returns 0 at end of stream even when bytes are owed.
struct Exact<'a, R> {
    inner: &'a mut R,
    remaining: u64,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} bytes missing", self.remaining),
            ));
        }
        self.remaining = self.remaining.saturating_sub(n as u64);
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

fn kind_of(t: tar::EntryType) -> Option<EntryKind> {
    use tar::EntryType as T;
    Some(match t {
        T::Regular | T::Continuous => EntryKind::File,
        T::Directory => EntryKind::Dir,
        T::Symlink => EntryKind::Symlink,
        T::Link => EntryKind::Hardlink,
        T::Char => EntryKind::CharDevice,
        T::Block => EntryKind::BlockDevice,
        T::Fifo => EntryKind::Fifo,
        // Global PAX headers carry defaults, not a member.
        T::XGlobalHeader => return None,
        other => EntryKind::Other(other.as_byte()),
    })
}

/// Walks every entry of the tar stream `reader`.
pub fn walk<R: Read>(reader: R, ctx: &mut WalkContext, target: &str) -> TarStats {
    let pos = Rc::new(Cell::new(0u64));
    let aborted = Rc::new(Cell::new(false));
    let guard = Rc::new(std::cell::RefCell::new(HeaderGuard::default()));
    guard.borrow_mut().arm(0);
    let counting = Counting {
        inner: reader,
        pos: pos.clone(),
        aborted: aborted.clone(),
        guard: guard.clone(),
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
    let mut archive = tar::Archive::new(counting);
    let mut stats = TarStats::default();
    // Where the next header is expected: after the last entry's padded data.
    let mut next_header: u64 = 0;
    let findings = ctx.findings.clone();
    let fail = |stats: &mut TarStats, code: Code, offset: u64, msg: String| {
        if aborted.get() {
            stats.upstream_failed = true;
            return;
        }
        stats.failed = true;
        let _ = findings.send(Finding::new(code, target, msg).evidence("offset", offset));
    };
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            fail(
                &mut stats,
                Code::BundleTarCorrupt,
                0,
                format!("cannot read tar stream: {e}"),
            );
            return stats;
        }
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                if let Some(big) = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<OversizedExtension>())
                {
                    let big = big.clone();
                    stats.limited = true;
                    fail(
                        &mut stats,
                        Code::BundleTarCorrupt,
                        big.offset,
                        format!("tar stream: {big}; reading stopped there"),
                    );
                    return stats;
                }
                let at = next_header;
                let msg = e.to_string();
                let (code, text) = classify_header_error(&e, &msg, at);
                fail(&mut stats, code, at, text);
                return stats;
            }
        };
        stats.entries += 1;
        let header_pos = entry.raw_header_position();
        let data_pos = entry.raw_file_position();
        let size = entry.size();
        if entry.header().entry_type().is_gnu_sparse() {
            // `size` is the expanded size, and the data starts after the
            // sparse map: the guard, which followed the map, knows where the
            // next header is. The crate errs on anything it cannot frame.
            let stored = entry.header().entry_size().unwrap_or(0);
            next_header = guard
                .borrow()
                .expect
                .unwrap_or(data_pos + stored.div_ceil(512) * 512);
        } else {
            next_header = data_pos + size.div_ceil(512) * 512;
            // Where the crate will look for the next header.
            guard.borrow_mut().arm(next_header);
        }
        if stats.entries > max_entries {
            stop_at_limit(
                &mut stats,
                &ctx.findings,
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
        if nested && next_header > max_bytes {
            stop_at_limit(
                &mut stats,
                &ctx.findings,
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
        let header = entry.header();
        let header_size = header.entry_size().unwrap_or(0);
        let Some(kind) = kind_of(header.entry_type()) else {
            // Drain the global header's data so offsets stay right.
            if let Err(e) = io::copy(&mut entry, &mut io::sink()) {
                fail(
                    &mut stats,
                    Code::BundleTruncated,
                    pos.get(),
                    format!(
                        "tar stream ends inside a global PAX header at byte {}: {e}",
                        pos.get()
                    ),
                );
                return stats;
            }
            continue;
        };
        let mode = header.mode().unwrap_or(0);
        let path_bytes = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let shown = super::safety::shown_name(&path_bytes);
        // The PAX desync: a `size` record that disagrees with the header.
        // GNU tar writes 0 in the header for sizes the field cannot hold.
        // A GNU sparse entry's size is its expanded size, which differs from
        // the stored size by design.
        let header_can_hold = size < 0o777_7777_7777;
        let is_sparse = header.entry_type().is_gnu_sparse();
        if !is_sparse && size != header_size && (header_size != 0 || header_can_hold) {
            stats.failed = true;
            let _ = ctx.findings.send(
                Finding::new(
                    Code::BundlePaxSizeMismatch,
                    shown.clone(),
                    format!("{shown}: PAX size {size} overrides header size {header_size}"),
                )
                .evidence("offset", header_pos)
                .evidence("pax_size", size)
                .evidence("header_size", header_size),
            );
        }
        let meta = EntryMeta {
            raw_path: &path_bytes,
            kind,
            mode,
            link_target: link.as_deref(),
            size: Some(size),
        };
        let mut exact = Exact {
            inner: &mut entry,
            remaining: if kind == EntryKind::File { size } else { 0 },
        };
        if let Err(DataError(e)) = ctx.member(&meta, &mut exact) {
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
    // The crate stops at the first zero block or at end of stream. Which one
    // tells a complete archive from a truncated one.
    let consumed = pos.get();
    if aborted.get() {
        stats.upstream_failed = true;
        return stats;
    }
    if consumed == next_header {
        // EOF where a header was due; check there is really nothing left.
        fail(
            &mut stats,
            Code::BundleTruncated,
            consumed,
            format!("tar stream ends at byte {consumed} without the end-of-archive marker"),
        );
        return stats;
    }
    // Drain after the marker: only zeros may follow.
    let mut inner = archive.into_inner();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let here = pos.get();
        match inner.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                    let at = here + i as u64;
                    fail(
                        &mut stats,
                        Code::BundleDataAfterEnd,
                        at,
                        format!("non-zero data at byte {at}, after the tar end-of-archive marker at byte {next_header}"),
                    );
                    // Keep draining so the upstream stages finish their checks.
                    let _ = io::copy(&mut inner, &mut io::sink());
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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

fn classify_header_error(e: &io::Error, msg: &str, at: u64) -> (Code, String) {
    if msg.contains("checksum mismatch") {
        (
            Code::BundleTarHeaderChecksum,
            format!("tar header at byte {at} has a bad checksum"),
        )
    } else if e.kind() == io::ErrorKind::UnexpectedEof
        || msg.contains("entire block")
        || msg.contains("unexpected EOF")
        || msg.contains("no future member")
    {
        (
            Code::BundleTruncated,
            format!("tar stream ends inside the header at byte {at} ({msg})"),
        )
    } else {
        (
            Code::BundleTarCorrupt,
            format!("tar header at byte {at} cannot be parsed: {msg}"),
        )
    }
}
