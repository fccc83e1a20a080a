//! Compression containers: the gzip member loop and zstd frames.
//!
//! Guarantees:
//! - every gzip member is decoded and its CRC-32 and ISIZE checked, however
//!   many members there are;
//! - bytes after the last member or frame are classified as zero padding
//!   (warn) or trailing data (fail), with the offset of the first such byte;
//! - when the stage below stops reading, decoding continues (discarding the
//!   output) so that CRCs are still verified: the verdict stays complete;
//! - every finding names the byte offset in the compressed file.

use std::io::BufRead;

use crossbeam_channel::Sender;
use flate2::{Crc, Decompress, FlushDecompress, Status as ZStatus};

use super::stream::{is_upstream_abort, ChunkReader, ForwardingSender, Pool, CHUNK_SIZE};
use crate::finding::{Code, Finding};

/// What a decoding stage saw, for the container's evidence.
#[derive(Debug, Default, Clone)]
pub struct ContainerStats {
    /// gzip members or zstd frames decoded.
    pub members: u64,
    pub decompressed_bytes: u64,
    /// True when the stage reported a failing finding.
    pub failed: bool,
}

struct Stage<'a> {
    input: &'a mut ChunkReader,
    out: &'a mut ForwardingSender,
    findings: &'a Sender<Finding>,
    target: &'a str,
    stats: ContainerStats,
}

impl Stage<'_> {
    fn fail(&mut self, code: Code, offset: u64, message: String) {
        self.stats.failed = true;
        let _ = self
            .findings
            .send(Finding::new(code, self.target, message).evidence("offset", offset));
        self.out.abort();
    }

    /// Reads one byte, `Ok(None)` at end of stream.
    fn byte(&mut self) -> std::io::Result<Option<u8>> {
        let buf = self.input.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        let b = buf[0];
        self.input.consume(1);
        Ok(Some(b))
    }

    /// Handles a read error from upstream. Returns after reporting nothing
    /// when the reader already reported it.
    fn upstream_error(&mut self, e: std::io::Error) {
        if is_upstream_abort(&e) {
            self.out.abort();
        } else {
            let at = self.input.offset();
            self.fail(
                Code::BundleReadError,
                at,
                format!("read error at byte {at}: {e}"),
            );
        }
    }

    /// After the last member/frame: EOF, zero padding or trailing data.
    /// `first` is the first byte after the member, already consumed.
    fn classify_tail(&mut self, first: u8, first_offset: u64) {
        if first != 0 {
            self.fail(
                Code::BundleTrailingData,
                first_offset,
                format!("non-zero data after the last compressed member, at byte {first_offset}"),
            );
            return;
        }
        let mut zeros: u64 = 1;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) => return self.upstream_error(e),
            };
            if buf.is_empty() {
                break;
            }
            if let Some(i) = buf.iter().position(|&b| b != 0) {
                let at = self.input.offset() + i as u64;
                self.fail(
                    Code::BundleTrailingData,
                    at,
                    format!("non-zero data at byte {at} after {zeros} bytes of zero padding following the last compressed member"),
                );
                return;
            }
            let n = buf.len();
            zeros += n as u64;
            self.input.consume(n);
        }
        let _ = self.findings.send(
            Finding::new(
                Code::BundleZeroPadding,
                self.target,
                format!("{zeros} zero bytes of padding after the last compressed member, from byte {first_offset}"),
            )
            .evidence("offset", first_offset)
            .evidence("padding_bytes", zeros),
        );
    }
}

/// Decodes a stream of gzip members from `input` into `out`.
pub fn gunzip(
    input: &mut ChunkReader,
    out: &mut ForwardingSender,
    findings: &Sender<Finding>,
    target: &str,
) -> ContainerStats {
    let mut st = Stage {
        input,
        out,
        findings,
        target,
        stats: ContainerStats::default(),
    };
    let pool = Pool::default();
    let mut out_buf: Vec<u8> = pool.take_empty();
    // The first member's magic has not been consumed yet.
    let mut magic_consumed = false;
    loop {
        let member_start = st.input.offset() - if magic_consumed { 2 } else { 0 };
        match gzip_header(&mut st, magic_consumed) {
            Ok(true) => {}
            Ok(false) => return st.stats, // already reported
            Err(e) => {
                st.upstream_error(e);
                return st.stats;
            }
        }
        let mut d = Decompress::new(false);
        let mut crc = Crc::new();
        let mut produced: u64 = 0;
        loop {
            let inbuf = match st.input.fill_buf() {
                Ok(b) => b,
                Err(e) => {
                    st.upstream_error(e);
                    return st.stats;
                }
            };
            if inbuf.is_empty() {
                let at = st.input.offset();
                st.fail(
                    Code::BundleTruncated,
                    at,
                    format!("gzip member starting at byte {member_start} is truncated: the data ends at byte {at} inside the compressed stream"),
                );
                return st.stats;
            }
            let (in0, out0) = (d.total_in(), out_buf.len());
            let res = d.decompress_vec(inbuf, &mut out_buf, FlushDecompress::None);
            let used = (d.total_in() - in0) as usize;
            st.input.consume(used);
            let fresh = &out_buf[out0..];
            crc.update(fresh);
            produced += fresh.len() as u64;
            let progressed = used > 0 || out_buf.len() > out0;
            if out_buf.len() >= CHUNK_SIZE {
                let full = std::mem::replace(&mut out_buf, pool.take_empty());
                st.out.send(pool.chunk(full));
            }
            match res {
                Ok(ZStatus::StreamEnd) => break,
                Ok(_) if progressed => {}
                Ok(_) => {
                    let at = st.input.offset();
                    st.fail(
                        Code::BundleGzipCorrupt,
                        at,
                        format!("gzip member starting at byte {member_start}: the deflate stream makes no progress at byte {at}"),
                    );
                    return st.stats;
                }
                Err(e) => {
                    let at = st.input.offset();
                    st.fail(
                        Code::BundleGzipCorrupt,
                        at,
                        format!("gzip member starting at byte {member_start}: invalid deflate data near byte {at}: {e}"),
                    );
                    return st.stats;
                }
            }
        }
        st.stats.decompressed_bytes += produced;
        // Trailer: CRC-32 then ISIZE, both little-endian.
        let trailer_at = st.input.offset();
        let mut trailer = [0u8; 8];
        for slot in trailer.iter_mut() {
            match st.byte() {
                Ok(Some(b)) => *slot = b,
                Ok(None) => {
                    st.fail(
                        Code::BundleTruncated,
                        trailer_at,
                        format!("gzip member starting at byte {member_start} is truncated: its 8-byte trailer at byte {trailer_at} is incomplete"),
                    );
                    return st.stats;
                }
                Err(e) => {
                    st.upstream_error(e);
                    return st.stats;
                }
            }
        }
        let want_crc = u32::from_le_bytes(trailer[..4].try_into().unwrap());
        let want_len = u32::from_le_bytes(trailer[4..].try_into().unwrap());
        if want_crc != crc.sum() {
            st.fail(
                Code::BundleGzipCrcMismatch,
                trailer_at,
                format!(
                    "gzip member starting at byte {member_start}: CRC-32 {:08x} in the trailer at byte {trailer_at} but the data decompresses to CRC-32 {:08x}",
                    want_crc,
                    crc.sum()
                ),
            );
            return st.stats;
        }
        if want_len != produced as u32 {
            st.fail(
                Code::BundleGzipSizeMismatch,
                trailer_at + 4,
                format!(
                    "gzip member starting at byte {member_start}: ISIZE {want_len} in the trailer but the data decompresses to {produced} bytes (mod 2^32: {})",
                    produced as u32
                ),
            );
            return st.stats;
        }
        st.stats.members += 1;
        // What follows: end, another member, padding or garbage.
        let next_at = st.input.offset();
        match st.byte() {
            Ok(None) => break,
            Ok(Some(0x1f)) => match st.byte() {
                Ok(Some(0x8b)) => {
                    magic_consumed = true;
                    continue;
                }
                Ok(_) => {
                    st.classify_tail(0x1f, next_at);
                    break;
                }
                Err(e) => {
                    st.upstream_error(e);
                    return st.stats;
                }
            },
            Ok(Some(b)) => {
                st.classify_tail(b, next_at);
                break;
            }
            Err(e) => {
                st.upstream_error(e);
                return st.stats;
            }
        }
    }
    if !out_buf.is_empty() {
        st.out.send(pool.chunk(out_buf));
    }
    st.stats
}

/// Parses a gzip member header (RFC 1952). `Ok(false)` when a finding was
/// reported.
fn gzip_header(st: &mut Stage<'_>, magic_consumed: bool) -> std::io::Result<bool> {
    let start = st.input.offset() - if magic_consumed { 2 } else { 0 };
    macro_rules! next {
        () => {
            match st.byte()? {
                Some(b) => b,
                None => {
                    let at = st.input.offset();
                    st.fail(
                        Code::BundleTruncated,
                        at,
                        format!("gzip member header at byte {start} is truncated at byte {at}"),
                    );
                    return Ok(false);
                }
            }
        };
    }
    if !magic_consumed {
        let (a, b) = (next!(), next!());
        if (a, b) != (0x1f, 0x8b) {
            st.fail(
                Code::BundleGzipCorrupt,
                start,
                format!("no gzip magic at byte {start}"),
            );
            return Ok(false);
        }
    }
    let method = next!();
    if method != 8 {
        st.fail(
            Code::BundleGzipCorrupt,
            start + 2,
            format!(
                "gzip member at byte {start}: compression method {method}, only deflate (8) exists"
            ),
        );
        return Ok(false);
    }
    let flags = next!();
    if flags & 0xe0 != 0 {
        st.fail(
            Code::BundleGzipCorrupt,
            start + 3,
            format!("gzip member at byte {start}: reserved flag bits set ({flags:#04x})"),
        );
        return Ok(false);
    }
    for _ in 0..6 {
        next!(); // MTIME, XFL, OS
    }
    if flags & 0x04 != 0 {
        let xlen = next!() as usize | (next!() as usize) << 8;
        for _ in 0..xlen {
            next!();
        }
    }
    for flag in [0x08u8, 0x10] {
        // FNAME, FCOMMENT: zero-terminated. Bounded by the data itself; a
        // hostile name only costs reading, never memory.
        if flags & flag != 0 {
            while next!() != 0 {}
        }
    }
    if flags & 0x02 != 0 {
        next!();
        next!(); // FHCRC
    }
    Ok(true)
}

/// Decodes a stream of zstd frames from `input` into `out`.
pub fn unzstd(
    input: &mut ChunkReader,
    out: &mut ForwardingSender,
    findings: &Sender<Finding>,
    target: &str,
) -> ContainerStats {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let mut st = Stage {
        input,
        out,
        findings,
        target,
        stats: ContainerStats::default(),
    };
    let mut dec = match Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            st.fail(Code::BundleZstdCorrupt, 0, format!("zstd decoder: {e}"));
            return st.stats;
        }
    };
    let pool = Pool::default();
    let mut out_buf: Vec<u8> = pool.take_full();
    let mut out_len = 0usize;
    let mut frame_start = 0u64;
    let mut in_frame = false;
    loop {
        let inbuf = match st.input.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                st.upstream_error(e);
                return st.stats;
            }
        };
        let first_byte = inbuf.first().copied();
        if first_byte.is_none() {
            if in_frame {
                let at = st.input.offset();
                st.fail(
                    Code::BundleTruncated,
                    at,
                    format!("zstd frame starting at byte {frame_start} is truncated at byte {at}"),
                );
                return st.stats;
            }
            break;
        }
        if !in_frame {
            // Between frames: a new frame (or skippable frame) must start
            // here; zeros are padding.
            frame_start = st.input.offset();
            if first_byte == Some(0) {
                st.input.consume(1);
                st.classify_tail(0, frame_start);
                break;
            }
            in_frame = true;
        }
        let inbuf = match st.input.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                st.upstream_error(e);
                return st.stats;
            }
        };
        let mut src = InBuffer::around(inbuf);
        let mut dst = OutBuffer::around(&mut out_buf[out_len..]);
        let res = dec.run(&mut src, &mut dst);
        let used = src.pos();
        let made = dst.pos();
        st.input.consume(used);
        out_len += made;
        if out_len == out_buf.len() {
            let full = std::mem::replace(&mut out_buf, pool.take_full());
            st.out.send(pool.chunk(full));
            out_len = 0;
        }
        st.stats.decompressed_bytes += made as u64;
        match res {
            Ok(0) => {
                st.stats.members += 1;
                in_frame = false;
                let _ = dec.reinit();
            }
            Ok(_) => {}
            Err(err) => {
                let at = st.input.offset();
                let name = err.to_string();
                if st.stats.members > 0 && at == frame_start {
                    st.fail(
                        Code::BundleTrailingData,
                        frame_start,
                        format!("data at byte {frame_start} after the last zstd frame is not a zstd frame ({name})"),
                    );
                } else {
                    st.fail(
                        Code::BundleZstdCorrupt,
                        at,
                        format!(
                            "zstd frame starting at byte {frame_start}: {name} (near byte {at})"
                        ),
                    );
                }
                return st.stats;
            }
        }
    }
    if out_len > 0 {
        out_buf.truncate(out_len);
        st.out.send(pool.chunk(out_buf));
    }
    st.stats
}
