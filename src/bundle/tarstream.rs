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
//!   never produces a second, misleading finding here.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::safety::{EntryKind, EntryMeta};
use super::stream::is_upstream_abort;
use super::walk::{DataError, WalkContext};
use crate::finding::{Code, Finding};

/// Counts bytes handed to the tar reader and remembers an upstream abort.
struct Counting<R> {
    inner: R,
    pos: Rc<Cell<u64>>,
    aborted: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.pos.set(self.pos.get() + n as u64);
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
    let counting = Counting {
        inner: reader,
        pos: pos.clone(),
        aborted: aborted.clone(),
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
        next_header = data_pos + size.div_ceil(512) * 512;
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
        let shown = super::safety::display_name(&path_bytes);
        // The PAX desync: a `size` record that disagrees with the header.
        // GNU tar writes 0 in the header for sizes the field cannot hold.
        let header_can_hold = size < 0o777_7777_7777;
        if size != header_size && (header_size != 0 || header_can_hold) {
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
