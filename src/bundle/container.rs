//! Compression containers: the gzip member loop and zstd frames.
//!
//! Guarantees:
//! - every gzip member is decoded and its CRC-32 and ISIZE checked, however
//!   many members there are;
//! - bytes after the last member or frame are classified as zero padding
//!   (warn) or trailing data (fail), with the offset of the first such byte;
//! - when the stage below stops reading, decoding continues (discarding the
//!   output) so that CRCs are still verified: the verdict stays complete;
//! - every finding names the byte offset in the compressed file;
//! - a zstd frame may use a window of up to 128 MiB (zstd's own default
//!   limit, which the decoder holds in memory); a frame that asks for more
//!   is refused as corrupt, never allocated;
//! - a stream whose output outgrows its input by more than the expansion
//!   ratio limit (past [`RATIO_FLOOR`] bytes of output) is stopped and
//!   reported: a decompression bomb costs a few megabytes of work, not its
//!   gigabytes of zeros. This holds even when nothing reads the output any
//!   more, since decoding for the CRC alone would still take that long.

use std::io::BufRead;

use crossbeam_channel::Sender;
use flate2::{Crc, Decompress, FlushDecompress, Status as ZStatus};

use super::stream::{is_upstream_abort, ChunkReader, ForwardingSender, Pool, CHUNK_SIZE};
use crate::finding::{Code, Finding};

/// Default of `--max-expansion-ratio`. Release content (images are already
/// compressed, text compresses 5 to 20 times) stays far below it; deflate's
/// best case is about 1032:1 and a zero-filled bomb reaches it.
pub const DEFAULT_MAX_EXPANSION_RATIO: u64 = 200;
/// The expansion ratio is judged only past this many decompressed bytes, so
/// that a small, very compressible archive is never flagged. It also bounds
/// what a bomb costs in memory: a zstd decoder keeps up to a window (zstd's
/// limit: 128 MiB) of output, and a frame of run-length blocks that
/// declares a large window fills it as fast as it can decode; stopped at
/// 16 MiB, it stays far below the 64 MiB the hostile corpus allows.
pub const RATIO_FLOOR: u64 = 16 << 20;

/// What a decoding stage saw, for the container's evidence.
#[derive(Debug, Default, Clone)]
pub struct ContainerStats {
    /// gzip members or zstd frames decoded.
    pub members: u64,
    pub decompressed_bytes: u64,
    /// True when the stage reported a failing finding.
    pub failed: bool,
    /// Decoding stopped at a resource limit (the finding says which).
    pub limited: bool,
}

/// Largest zstd window accepted (2^27 = 128 MiB, zstd's own default limit,
/// what `zstd --long` and `--ultra -22` use). The decoder holds a window of
/// output in memory; a frame that declares a larger one is refused.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Whether `out` bytes decoded from `consumed` compressed bytes exceed
/// `max_ratio` (0: no limit). Small outputs are never judged.
pub fn ratio_exceeded(out: u64, consumed: u64, max_ratio: u64) -> bool {
    max_ratio > 0 && out > RATIO_FLOOR && out > consumed.saturating_mul(max_ratio)
}

/// The finding for a stream stopped by [`ratio_exceeded`].
pub fn ratio_finding(target: &str, out: u64, consumed: u64, max_ratio: u64) -> Finding {
    let ratio = out / consumed.max(1);
    Finding::new(
        Code::BundleExpansionRatioExceeded,
        target,
        format!(
            "{target}: {out} bytes decompressed from the first {consumed} compressed bytes (ratio {ratio}:1, limit {max_ratio}:1, --max-expansion-ratio); decompression stopped, the rest was not verified"
        ),
    )
    .evidence("offset", consumed)
    .evidence("decompressed_bytes", out)
    .evidence("ratio", ratio)
    .evidence("limit", max_ratio)
}

struct Stage<'a> {
    input: &'a mut ChunkReader,
    out: &'a mut ForwardingSender,
    findings: &'a Sender<Finding>,
    target: &'a str,
    stats: ContainerStats,
    max_ratio: u64,
}

impl Stage<'_> {
    fn fail(&mut self, code: Code, offset: u64, message: String) {
        self.stats.failed = true;
        let _ = self
            .findings
            .send(Finding::new(code, self.target, message).evidence("offset", offset));
        self.out.abort();
    }

    /// Stops a decompression bomb: reports and returns false when `out`
    /// bytes of output are too many for the input consumed so far.
    fn ratio_ok(&mut self, out: u64) -> bool {
        let consumed = self.input.offset();
        if !ratio_exceeded(out, consumed, self.max_ratio) {
            return true;
        }
        self.stats.failed = true;
        self.stats.limited = true;
        let _ = self
            .findings
            .send(ratio_finding(self.target, out, consumed, self.max_ratio));
        self.out.abort();
        false
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

/// Decodes a stream of gzip members from `input` into `out`, stopping when
/// the output exceeds `max_ratio` times the input (0: no limit): a
/// [`Gunzip`] fed from the channel.
pub fn gunzip(
    input: &mut ChunkReader,
    out: &mut ForwardingSender,
    findings: &Sender<Finding>,
    target: &str,
    max_ratio: u64,
) -> ContainerStats {
    let mut g = Gunzip::new(findings.clone(), target, max_ratio);
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                g.upstream_error(e, out);
                return g.stats;
            }
        };
        if buf.is_empty() {
            return g.finish(out);
        }
        let n = buf.len();
        let more = g.push(buf, out);
        input.consume(n);
        if !more {
            // Decoding ended on a finding: the rest is not read here (the
            // caller drains it).
            return g.finish(out);
        }
    }
}

/// Where a gzip member header is (RFC 1952, 2.3): the byte expected next.
#[derive(Debug, Clone, Copy)]
enum Hdr {
    /// ID1 and ID2; `true` once ID1 was seen.
    Magic(bool),
    Method,
    Flags,
    /// MTIME, XFL and OS: this many still to come.
    Fixed(u8),
    /// XLEN; the low byte once seen.
    XLen(Option<u8>),
    /// FEXTRA: this many bytes still to come.
    Extra(usize),
    Name,
    Comment,
    /// FHCRC: this many bytes still to come.
    Hcrc(u8),
}

#[derive(Debug, Clone, Copy)]
enum Gz {
    Header(Hdr),
    Deflate,
    /// CRC-32 and ISIZE, little-endian; `n` of the 8 bytes seen.
    Trailer {
        bytes: [u8; 8],
        n: usize,
        at: u64,
    },
    /// After a member's trailer: end, another member, padding or garbage.
    Between,
    /// 0x1f after a member (at `at`): another member if 0x8b follows.
    NextMagic {
        at: u64,
    },
    /// Zero bytes after the last member, from `from`.
    Padding {
        from: u64,
    },
    /// Decoding ended on a finding; what follows is not read.
    Done,
}

/// A gzip stream (any number of members) decoded as its bytes are handed
/// in, so the thread that reads a nested image can decode it too instead of
/// handing its bytes to another thread first. [`gunzip`] is the same
/// decoder fed from a channel: both keep every guarantee of this module,
/// with findings that do not depend on how the bytes were cut.
pub struct Gunzip {
    findings: Sender<Finding>,
    target: String,
    max_ratio: u64,
    pool: Pool,
    out_buf: Vec<u8>,
    stats: ContainerStats,
    /// Compressed bytes consumed: the offset of the next one.
    offset: u64,
    state: Gz,
    member_start: u64,
    flags: u8,
    /// CRC-32 of the member's header so far, for FHCRC (RFC 1952: its two
    /// low bytes), and the first byte of that field once seen.
    hdr_crc: Crc,
    hcrc_low: u8,
    d: Decompress,
    crc: Crc,
    /// Bytes the current member decompressed to so far.
    produced: u64,
}

impl Gunzip {
    pub fn new(findings: Sender<Finding>, target: &str, max_ratio: u64) -> Gunzip {
        let pool = Pool::default();
        let out_buf = pool.take_empty();
        Gunzip {
            findings,
            target: target.to_string(),
            max_ratio,
            pool,
            out_buf,
            stats: ContainerStats::default(),
            offset: 0,
            state: Gz::Header(Hdr::Magic(false)),
            member_start: 0,
            flags: 0,
            hdr_crc: Crc::new(),
            hcrc_low: 0,
            d: Decompress::new(false),
            crc: Crc::new(),
            produced: 0,
        }
    }

    fn fail(&mut self, out: &mut ForwardingSender, code: Code, offset: u64, message: String) {
        self.stats.failed = true;
        self.state = Gz::Done;
        let _ = self
            .findings
            .send(Finding::new(code, &self.target, message).evidence("offset", offset));
        out.abort();
    }

    /// Handles a read error from upstream: nothing more to report when the
    /// reader already reported it.
    pub fn upstream_error(&mut self, e: std::io::Error, out: &mut ForwardingSender) {
        if is_upstream_abort(&e) {
            self.state = Gz::Done;
            out.abort();
        } else {
            let at = self.offset;
            self.fail(
                out,
                Code::BundleReadError,
                at,
                format!("read error at byte {at}: {e}"),
            );
        }
    }

    /// Decodes `input`, the stream's next bytes. `false` once decoding
    /// ended on a finding: later bytes are not needed.
    pub fn push(&mut self, mut input: &[u8], out: &mut ForwardingSender) -> bool {
        while !input.is_empty() {
            let used = match self.state {
                Gz::Done => return false,
                Gz::Deflate => self.inflate(input, out),
                Gz::Padding { from } => match input.iter().position(|&b| b != 0) {
                    None => input.len(),
                    Some(i) => {
                        let at = self.offset + i as u64;
                        let zeros = at - from;
                        self.fail(
                            out,
                            Code::BundleTrailingData,
                            at,
                            format!("non-zero data at byte {at} after {zeros} bytes of zero padding following the last compressed member"),
                        );
                        i + 1
                    }
                },
                _ => {
                    self.byte(input[0], out);
                    1
                }
            };
            self.offset += used as u64;
            input = &input[used..];
        }
        !matches!(self.state, Gz::Done)
    }

    /// The stream ended: what was left unfinished is reported, and the last
    /// output sent on.
    pub fn finish(mut self, out: &mut ForwardingSender) -> ContainerStats {
        let at = self.offset;
        let start = self.member_start;
        match self.state {
            Gz::Done | Gz::Between => {}
            Gz::Header(_) => self.fail(
                out,
                Code::BundleTruncated,
                at,
                format!("gzip member header at byte {start} is truncated at byte {at}"),
            ),
            Gz::Deflate => self.fail(
                out,
                Code::BundleTruncated,
                at,
                format!("gzip member starting at byte {start} is truncated: the data ends at byte {at} inside the compressed stream"),
            ),
            Gz::Trailer { at: trailer_at, .. } => self.fail(
                out,
                Code::BundleTruncated,
                trailer_at,
                format!("gzip member starting at byte {start} is truncated: its 8-byte trailer at byte {trailer_at} is incomplete"),
            ),
            Gz::NextMagic { at: first } => self.trailing(out, first),
            Gz::Padding { from } => {
                let zeros = at - from;
                let _ = self.findings.send(
                    Finding::new(
                        Code::BundleZeroPadding,
                        &self.target,
                        format!("{zeros} zero bytes of padding after the last compressed member, from byte {from}"),
                    )
                    .evidence("offset", from)
                    .evidence("padding_bytes", zeros),
                );
            }
        }
        if !self.stats.failed && !self.out_buf.is_empty() {
            let rest = std::mem::take(&mut self.out_buf);
            out.send(self.pool.chunk(rest));
        }
        self.stats
    }

    fn trailing(&mut self, out: &mut ForwardingSender, at: u64) {
        self.fail(
            out,
            Code::BundleTrailingData,
            at,
            format!("non-zero data after the last compressed member, at byte {at}"),
        );
    }

    /// One byte of a header, a trailer or what follows a member.
    fn byte(&mut self, b: u8, out: &mut ForwardingSender) {
        let at = self.offset;
        let start = self.member_start;
        match self.state {
            Gz::Header(h) => self.header_byte(h, b, out),
            Gz::Trailer {
                mut bytes,
                n,
                at: trailer_at,
            } => {
                bytes[n] = b;
                if n + 1 < 8 {
                    self.state = Gz::Trailer {
                        bytes,
                        n: n + 1,
                        at: trailer_at,
                    };
                    return;
                }
                let want_crc = u32::from_le_bytes(bytes[..4].try_into().unwrap());
                let want_len = u32::from_le_bytes(bytes[4..].try_into().unwrap());
                if want_crc != self.crc.sum() {
                    let got = self.crc.sum();
                    self.fail(
                        out,
                        Code::BundleGzipCrcMismatch,
                        trailer_at,
                        format!("gzip member starting at byte {start}: CRC-32 {want_crc:08x} in the trailer at byte {trailer_at} but the data decompresses to CRC-32 {got:08x}"),
                    );
                } else if want_len != self.produced as u32 {
                    let produced = self.produced;
                    self.fail(
                        out,
                        Code::BundleGzipSizeMismatch,
                        trailer_at + 4,
                        format!(
                            "gzip member starting at byte {start}: ISIZE {want_len} in the trailer but the data decompresses to {produced} bytes (mod 2^32: {})",
                            produced as u32
                        ),
                    );
                } else {
                    self.stats.members += 1;
                    self.state = Gz::Between;
                }
            }
            Gz::Between => match b {
                0x1f => self.state = Gz::NextMagic { at },
                0 => self.state = Gz::Padding { from: at },
                _ => self.trailing(out, at),
            },
            Gz::NextMagic { at: first } => {
                if b == 0x8b {
                    self.member_start = first;
                    self.hdr_crc = Crc::new();
                    self.hdr_crc.update(&[0x1f, 0x8b]);
                    self.state = Gz::Header(Hdr::Method);
                } else {
                    self.trailing(out, first);
                }
            }
            Gz::Deflate | Gz::Padding { .. } | Gz::Done => {
                unreachable!("handled by push")
            }
        }
    }

    fn header_byte(&mut self, h: Hdr, b: u8, out: &mut ForwardingSender) {
        let start = self.member_start;
        if !matches!(h, Hdr::Hcrc(_)) {
            self.hdr_crc.update(&[b]);
        }
        let next = match h {
            Hdr::Magic(false) if b == 0x1f => Hdr::Magic(true),
            Hdr::Magic(true) if b == 0x8b => Hdr::Method,
            Hdr::Magic(_) => {
                return self.fail(
                    out,
                    Code::BundleGzipCorrupt,
                    start,
                    format!("no gzip magic at byte {start}"),
                );
            }
            Hdr::Method if b != 8 => {
                return self.fail(
                    out,
                    Code::BundleGzipCorrupt,
                    start + 2,
                    format!("gzip member at byte {start}: compression method {b}, only deflate (8) exists"),
                );
            }
            Hdr::Method => Hdr::Flags,
            Hdr::Flags if b & 0xe0 != 0 => {
                return self.fail(
                    out,
                    Code::BundleGzipCorrupt,
                    start + 3,
                    format!("gzip member at byte {start}: reserved flag bits set ({b:#04x})"),
                );
            }
            Hdr::Flags => {
                self.flags = b;
                Hdr::Fixed(6)
            }
            Hdr::Fixed(n) if n > 1 => Hdr::Fixed(n - 1),
            Hdr::Fixed(_) if self.flags & 0x04 != 0 => Hdr::XLen(None),
            Hdr::XLen(None) => Hdr::XLen(Some(b)),
            Hdr::XLen(Some(lo)) => Hdr::Extra(lo as usize | (b as usize) << 8),
            Hdr::Extra(n) if n > 1 => Hdr::Extra(n - 1),
            // FNAME, FCOMMENT: zero-terminated. Bounded by the data itself;
            // a hostile name only costs reading, never memory.
            Hdr::Name if b != 0 => Hdr::Name,
            Hdr::Comment if b != 0 => Hdr::Comment,
            Hdr::Hcrc(2) => {
                self.hcrc_low = b;
                Hdr::Hcrc(1)
            }
            // GNU gzip and zlib refuse a header whose checksum is wrong
            // (Python's gzip module and libarchive skip it): the header is
            // not as it was written.
            Hdr::Hcrc(_) => {
                let stored = u16::from_le_bytes([self.hcrc_low, b]);
                let computed = self.hdr_crc.sum() as u16;
                if stored != computed {
                    let at = self.offset - 1;
                    return self.fail(
                        out,
                        Code::BundleGzipCorrupt,
                        at,
                        format!("gzip member at byte {start}: header checksum (FHCRC) {stored:#06x} at byte {at}, but its header's bytes give {computed:#06x}"),
                    );
                }
                return self.start_member();
            }
            Hdr::Fixed(_) | Hdr::Extra(_) => return self.after(Hdr::Extra(0)),
            Hdr::Name => return self.after(Hdr::Name),
            Hdr::Comment => return self.after(Hdr::Comment),
        };
        self.state = Gz::Header(next);
        // An empty FEXTRA (XLEN 0) is complete as soon as XLEN is read.
        if let Gz::Header(Hdr::Extra(0)) = self.state {
            self.after(Hdr::Extra(0));
        }
    }

    /// The header's field `done` is complete: the next optional field the
    /// flags announce, or the compressed data.
    fn after(&mut self, done: Hdr) {
        let order = [
            (Hdr::Extra(0), 0x04u8),
            (Hdr::Name, 0x08),
            (Hdr::Comment, 0x10),
            (Hdr::Hcrc(2), 0x02),
        ];
        let from = match done {
            Hdr::Extra(_) => 1,
            Hdr::Name => 2,
            Hdr::Comment => 3,
            _ => 4,
        };
        match order[from..].iter().find(|(_, f)| self.flags & f != 0) {
            Some((field, _)) => self.state = Gz::Header(*field),
            None => self.start_member(),
        }
    }

    fn start_member(&mut self) {
        self.d = Decompress::new(false);
        self.crc = Crc::new();
        self.produced = 0;
        self.state = Gz::Deflate;
    }

    /// Inflates from `input`; returns the bytes it used.
    fn inflate(&mut self, input: &[u8], out: &mut ForwardingSender) -> usize {
        let start = self.member_start;
        let (in0, out0) = (self.d.total_in(), self.out_buf.len());
        let res = self
            .d
            .decompress_vec(input, &mut self.out_buf, FlushDecompress::None);
        let used = (self.d.total_in() - in0) as usize;
        let fresh = &self.out_buf[out0..];
        self.crc.update(fresh);
        self.produced += fresh.len() as u64;
        let progressed = used > 0 || self.out_buf.len() > out0;
        if self.out_buf.len() >= CHUNK_SIZE {
            let full = std::mem::replace(&mut self.out_buf, self.pool.take_empty());
            out.send(self.pool.chunk(full));
            let made = self.stats.decompressed_bytes + self.produced;
            let consumed = self.offset + used as u64;
            if ratio_exceeded(made, consumed, self.max_ratio) {
                self.stats.failed = true;
                self.stats.limited = true;
                self.state = Gz::Done;
                let _ =
                    self.findings
                        .send(ratio_finding(&self.target, made, consumed, self.max_ratio));
                out.abort();
                return used;
            }
        }
        let at = self.offset + used as u64;
        match res {
            Ok(ZStatus::StreamEnd) => {
                self.stats.decompressed_bytes += self.produced;
                self.state = Gz::Trailer {
                    bytes: [0; 8],
                    n: 0,
                    at,
                };
            }
            Ok(_) if progressed => {}
            Ok(_) => self.fail(
                out,
                Code::BundleGzipCorrupt,
                at,
                format!("gzip member starting at byte {start}: the deflate stream makes no progress at byte {at}"),
            ),
            Err(e) => self.fail(
                out,
                Code::BundleGzipCorrupt,
                at,
                format!("gzip member starting at byte {start}: invalid deflate data near byte {at}: {e}"),
            ),
        }
        used
    }
}

/// Decodes a stream of zstd frames from `input` into `out`, stopping when
/// the output exceeds `max_ratio` times the input (0: no limit).
pub fn unzstd(
    input: &mut ChunkReader,
    out: &mut ForwardingSender,
    findings: &Sender<Finding>,
    target: &str,
    max_ratio: u64,
) -> ContainerStats {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let mut st = Stage {
        input,
        out,
        findings,
        target,
        stats: ContainerStats::default(),
        max_ratio,
    };
    let mut dec = match Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            st.fail(Code::BundleZstdCorrupt, 0, format!("zstd decoder: {e}"));
            return st.stats;
        }
    };
    // Pinned rather than left to the library's default: the window is memory.
    let _ = dec.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(
        ZSTD_WINDOW_LOG_MAX,
    ));
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
        if !st.ratio_ok(st.stats.decompressed_bytes) {
            return st.stats;
        }
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;
    use crate::bundle::stream::{channel, Msg};

    /// Deterministic test data: xorshift64*.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Incompressible, text-like (long matches), all zeros, or a mix.
    fn payload(kind: usize, len: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let words: [&[u8]; 8] = [
            b"apiVersion: v1\n",
            b"kind: Deployment ",
            b"image: registry.local/sekoia/",
            b"sha256:",
            b"0123456789abcdef",
            b"  - name: ",
            b"\n",
            b"metadata:\n  labels:\n",
        ];
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            match kind {
                0 => v.extend_from_slice(&rng.next().to_le_bytes()),
                1 => v.extend_from_slice(words[rng.below(words.len())]),
                2 => v.push(0),
                _ => {
                    let run = 1 + rng.below(3000);
                    let k = rng.below(3);
                    let part = payload(k, run, rng.next());
                    v.extend_from_slice(&part);
                }
            }
        }
        v.truncate(len);
        v
    }

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    struct Run {
        out: Vec<u8>,
        aborted: bool,
        stats: ContainerStats,
        findings: Vec<Finding>,
    }

    impl Run {
        fn only(&self, code: Code) -> &Finding {
            assert_eq!(self.findings.len(), 1, "{:#?}", self.findings);
            assert_eq!(self.findings[0].code, code, "{:#?}", self.findings);
            &self.findings[0]
        }
        fn offset(&self, code: Code) -> u64 {
            self.only(code).evidence["offset"].as_u64().unwrap()
        }
    }

    /// The real stage: `data` arrives in chunks of `piece` bytes.
    fn run_gunzip(data: &[u8], piece: usize) -> Run {
        run_gunzip_limited(data, piece, 0)
    }

    fn run_gunzip_limited(data: &[u8], piece: usize, max_ratio: u64) -> Run {
        let (in_tx, in_rx) = channel();
        let (out_tx, out_rx) = channel();
        let (f_tx, f_rx) = crossbeam_channel::unbounded();
        std::thread::scope(|s| {
            s.spawn(move || {
                let pool = Pool::default();
                for p in data.chunks(piece) {
                    if in_tx.send(Msg::Data(pool.chunk(p.to_vec()))).is_err() {
                        return;
                    }
                }
            });
            let collector = s.spawn(move || {
                let (mut out, mut aborted) = (Vec::new(), false);
                for m in out_rx {
                    match m {
                        Msg::Data(c) => {
                            assert!(c.len() <= CHUNK_SIZE);
                            out.extend_from_slice(&c)
                        }
                        Msg::Abort => aborted = true,
                        Msg::Part(_) => {
                            unreachable!("only whole chunks here")
                        }
                    }
                }
                (out, aborted)
            });
            let mut input = ChunkReader::new(in_rx);
            let mut fwd = ForwardingSender::new(out_tx);
            let stats = gunzip(&mut input, &mut fwd, &f_tx, "t.tar.gz", max_ratio);
            drop(fwd);
            let _ = std::io::copy(&mut input, &mut std::io::sink());
            let (out, aborted) = collector.join().unwrap();
            drop(f_tx);
            Run {
                out,
                aborted,
                stats,
                findings: f_rx.iter().collect(),
            }
        })
    }

    const PIECES: [usize; 6] = [1, 7, 64, 4093, 65_537, CHUNK_SIZE];

    /// A gzip member written by hand (RFC 1952): `flags` chooses the
    /// optional fields (FEXTRA with `extra` bytes, FNAME, FCOMMENT, FHCRC).
    /// Also gives the header's length.
    fn gzip_with_fields(data: &[u8], flags: u8, extra: usize) -> (Vec<u8>, usize) {
        let mut v = vec![0x1f, 0x8b, 8, flags, 1, 2, 3, 4, 0, 3];
        if flags & 0x04 != 0 {
            v.extend_from_slice(&(extra as u16).to_le_bytes());
            v.extend((0..extra).map(|i| i as u8 | 1));
        }
        if flags & 0x08 != 0 {
            v.extend_from_slice(b"layer.tar\0");
        }
        if flags & 0x10 != 0 {
            v.extend_from_slice(b"a comment\0");
        }
        if flags & 0x02 != 0 {
            // The two low bytes of the CRC-32 of the header before it.
            let mut crc = Crc::new();
            crc.update(&v);
            v.extend_from_slice(&(crc.sum() as u16).to_le_bytes());
        }
        let header_len = v.len();
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(6));
        e.write_all(data).unwrap();
        v.extend(e.finish().unwrap());
        let mut crc = Crc::new();
        crc.update(data);
        v.extend_from_slice(&crc.sum().to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        (v, header_len)
    }

    /// What GNU gzip, the format's reference decoder, makes of `gz`: its
    /// output, or its complaint (exit status and message). An oracle written
    /// by others for the headers built by hand here.
    fn gnu_gunzip(gz: &[u8]) -> Result<Vec<u8>, String> {
        use std::process::{Command, Stdio};
        let mut child = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("GNU gzip (Debian's gzip package)");
        let mut stdin = child.stdin.take().unwrap();
        let input = gz.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        match out.status.code() {
            Some(0) => Ok(out.stdout),
            code => Err(format!(
                "exit {code:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// Every combination of the header's optional fields decodes, whatever
    /// the cut, as GNU gzip decodes it; a stream cut inside any of them is
    /// a truncated header reported at the byte where the data ends, where
    /// GNU gzip finds an unexpected end of file.
    #[test]
    fn optional_header_fields_decode_and_truncate_at_every_piece_size() {
        let data = payload(3, 20_000, 77);
        for flags in 0..32u8 {
            let flags = flags & 0x1e;
            for extra in [0, 1, 300] {
                let (gz, header_len) = gzip_with_fields(&data, flags, extra);
                assert!(
                    gnu_gunzip(&gz) == Ok(data.clone()),
                    "GNU gzip refuses the header {flags:#x} {extra}: {:?}",
                    gnu_gunzip(&gz).err()
                );
                for piece in PIECES {
                    let r = run_gunzip(&gz, piece);
                    assert!(
                        r.findings.is_empty(),
                        "{flags:#x} {extra}: {:?}",
                        r.findings
                    );
                    assert_eq!(r.out, data, "{flags:#x} {extra} {piece}");
                    assert_eq!(r.stats.members, 1);
                }
                for cut in [3, 4, 9, header_len - 1] {
                    let gnu = gnu_gunzip(&gz[..cut]).unwrap_err();
                    assert!(gnu.contains("unexpected end of file"), "{cut}: {gnu}");
                    let r = run_gunzip(&gz[..cut], 7);
                    let f = r.only(Code::BundleTruncated);
                    assert_eq!(f.evidence["offset"], cut as u64, "{flags:#x} {extra} {cut}");
                    assert!(f.message.contains("header at byte 0"), "{}", f.message);
                }
            }
        }
    }

    /// A header whose checksum (FHCRC) does not match its bytes is corrupt,
    /// as GNU gzip and zlib judge it, at the field's byte, whatever the
    /// other optional fields and however the bytes arrive; the member's
    /// data is not decoded.
    #[test]
    fn a_wrong_header_checksum_is_corrupt() {
        let data = payload(1, 5000, 9);
        for flags in [0x02u8, 0x06, 0x0a, 0x12, 0x1e] {
            let (mut gz, header_len) = gzip_with_fields(&data, flags, 5);
            // FHCRC is the header's last field.
            let field = header_len - 2;
            assert_eq!(gnu_gunzip(&gz), Ok(data.clone()), "{flags:#x}");
            gz[field] ^= 0x5a;
            let gnu = gnu_gunzip(&gz).unwrap_err();
            assert!(gnu.contains("header checksum"), "{flags:#x}: {gnu}");
            for piece in PIECES {
                let r = run_gunzip(&gz, piece);
                let f = r.only(Code::BundleGzipCorrupt);
                assert_eq!(f.evidence["offset"], field as u64, "{flags:#x} {piece}");
                assert!(
                    f.message.contains("header checksum (FHCRC)"),
                    "{}",
                    f.message
                );
                assert!(r.out.is_empty(), "{flags:#x} {piece}: data decoded");
            }
            // The same member after an intact one: its checksum covers its
            // own header only, from its magic on.
            let first = gzip(&payload(2, 3000, 4), 6);
            let mut two = first.clone();
            two.extend_from_slice(&gzip_with_fields(&data, flags, 5).0);
            assert_eq!(
                gnu_gunzip(&two).map(|o| o.len()),
                Ok(3000 + data.len()),
                "{flags:#x}"
            );
            for piece in PIECES {
                let r = run_gunzip(&two, piece);
                assert!(
                    r.findings.is_empty(),
                    "{flags:#x} {piece}: {:?}",
                    r.findings
                );
                assert_eq!(r.out.len(), 3000 + data.len(), "{flags:#x} {piece}");
            }
            two[first.len() + field] ^= 0x5a;
            let gnu = gnu_gunzip(&two).unwrap_err();
            assert!(gnu.contains("header checksum"), "{flags:#x}: {gnu}");
            for piece in PIECES {
                let r = run_gunzip(&two, piece);
                let f = r.only(Code::BundleGzipCorrupt);
                let at = (first.len() + field) as u64;
                assert_eq!(f.evidence["offset"], at, "{flags:#x} {piece}");
            }
        }
    }

    /// Zero padding followed by garbage names the garbage's byte and the
    /// exact count of zeros before it, however the bytes arrive.
    #[test]
    fn padding_then_garbage_counts_every_zero() {
        let gz = gzip(&payload(1, 5000, 3), 6);
        let n = gz.len() as u64;
        let mut v = gz.clone();
        v.extend_from_slice(&[0u8; 1000]);
        v.push(b'X');
        for piece in PIECES {
            let r = run_gunzip(&v, piece);
            let f = r.only(Code::BundleTrailingData);
            assert_eq!(f.evidence["offset"], n + 1000);
            assert!(
                f.message.contains("after 1000 bytes of zero padding"),
                "{piece}: {}",
                f.message
            );
        }
    }

    #[test]
    fn gzip_members_decode_at_every_piece_size() {
        let mut seed = 100;
        for (kind, len) in [
            (0, 0usize),
            (1, 1),
            (0, 70_000),
            (1, 300_000),
            (2, 200_000),
            (3, 150_001),
        ] {
            for level in [1, 6, 9] {
                seed += 1;
                let data = payload(kind, len, seed);
                let gz = gzip(&data, level);
                for piece in PIECES {
                    let r = run_gunzip(&gz, piece);
                    assert!(r.findings.is_empty(), "{:#?}", r.findings);
                    assert!(
                        r.out == data,
                        "kind {kind} len {len} level {level} piece {piece}"
                    );
                    assert!(!r.aborted);
                    assert_eq!(r.stats.members, 1);
                    assert_eq!(r.stats.decompressed_bytes, len as u64);
                    assert!(!r.stats.failed);
                }
            }
        }
    }

    #[test]
    fn multi_member_stream_at_every_piece_size() {
        let parts: Vec<Vec<u8>> = [
            (0, 0usize),
            (1, 1),
            (0, 70_000),
            (1, 5_000),
            (2, 0),
            (2, 200_000),
            (3, 66_000),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(kind, len))| payload(kind, len, 500 + i as u64))
        .collect();
        let mut gz = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            gz.extend(gzip(p, [0, 1, 6, 9][i % 4]));
        }
        let all = parts.concat();
        for piece in PIECES {
            let r = run_gunzip(&gz, piece);
            assert!(r.findings.is_empty(), "piece {piece}: {:#?}", r.findings);
            assert!(r.out == all, "piece {piece}");
            assert_eq!(r.stats.members, parts.len() as u64);
            assert_eq!(r.stats.decompressed_bytes, all.len() as u64);
        }
        // Every cut inside the last member's trailer is a truncation at the
        // trailer's first byte, and every cut inside the stream is a
        // truncation at the cut: the bytes the decoder read ahead are accounted.
        let first = gzip(&payload(3, 5000, 8), 6);
        let mut two = first.clone();
        two.extend(gzip(&payload(1, 3000, 9), 6));
        let trailer_at = (two.len() - 8) as u64;
        for cut in first.len() + 10..two.len() {
            for piece in [1, 7, CHUNK_SIZE] {
                let r = run_gunzip(&two[..cut], piece);
                let f = r.only(Code::BundleTruncated);
                let at = f.evidence["offset"].as_u64().unwrap();
                if cut as u64 >= trailer_at {
                    assert_eq!(at, trailer_at, "cut {cut} piece {piece}: {}", f.message);
                    assert!(f.message.contains("8-byte trailer"), "{}", f.message);
                } else {
                    assert_eq!(at, cut as u64, "cut {cut} piece {piece}: {}", f.message);
                    assert!(f.message.contains("inside the compressed stream"));
                }
                assert!(r.aborted);
                assert_eq!(r.stats.members, 1);
            }
        }
    }

    #[test]
    fn trailer_next_member_padding_and_garbage_offsets_are_exact() {
        for (i, (kind, len)) in [(0, 0usize), (1, 10), (0, 1000), (1, 100_000), (3, 70_000)]
            .into_iter()
            .enumerate()
        {
            for level in [0, 1, 9] {
                let gz = gzip(&payload(kind, len, 900 + i as u64), level);
                let n = gz.len() as u64;
                for piece in PIECES {
                    let mut garbage = gz.clone();
                    garbage.extend_from_slice(b"\0\0\0EVIL");
                    let r = run_gunzip(&garbage, piece);
                    assert_eq!(r.offset(Code::BundleTrailingData), n + 3);
                    assert_eq!(r.stats.members, 1);

                    let mut padded = gz.clone();
                    padded.extend_from_slice(&[0u8; 4096]);
                    let r = run_gunzip(&padded, piece);
                    let f = r.only(Code::BundleZeroPadding);
                    assert_eq!(f.evidence["offset"].as_u64().unwrap(), n);
                    assert_eq!(f.evidence["padding_bytes"], 4096);

                    // A lone 0x1f after the member is trailing data too.
                    let mut magic = gz.clone();
                    magic.extend_from_slice(&[0x1f, 0x00]);
                    let r = run_gunzip(&magic, piece);
                    assert_eq!(r.offset(Code::BundleTrailingData), n);

                    let mut bad_crc = gz.clone();
                    bad_crc[gz.len() - 8] ^= 0xff;
                    let r = run_gunzip(&bad_crc, piece);
                    assert_eq!(r.offset(Code::BundleGzipCrcMismatch), n - 8);

                    let mut bad_len = gz.clone();
                    bad_len[gz.len() - 1] ^= 0x01;
                    let r = run_gunzip(&bad_len, piece);
                    assert_eq!(r.offset(Code::BundleGzipSizeMismatch), n - 4);

                    // A second member's header is parsed from the right byte.
                    let mut twice = gz.clone();
                    twice.extend_from_slice(&gz);
                    twice[gz.len() + 2] = 7; // compression method
                    let r = run_gunzip(&twice, piece);
                    assert_eq!(r.offset(Code::BundleGzipCorrupt), n + 2);
                    assert_eq!(r.stats.members, 1);
                }
            }
        }
    }

    #[test]
    fn expansion_ratio_stops_a_bomb_past_the_floor() {
        let zeros = gzip(&vec![0u8; 24 << 20], 9);
        let r = run_gunzip_limited(&zeros, CHUNK_SIZE, 200);
        let f = r.only(Code::BundleExpansionRatioExceeded);
        let out = f.evidence["decompressed_bytes"].as_u64().unwrap();
        assert!(out > RATIO_FLOOR && out < RATIO_FLOOR + (1 << 20), "{out}");
        assert!(r.aborted && r.stats.limited && r.stats.failed);
        // Disabled, or under the limit: decoded to the end.
        for ratio in [0, 2000] {
            let r = run_gunzip_limited(&zeros, CHUNK_SIZE, ratio);
            assert!(r.findings.is_empty(), "{:#?}", r.findings);
            assert_eq!(r.out.len(), 24 << 20);
        }
        // Below the floor, any ratio passes.
        let small = gzip(&vec![0u8; 8 << 20], 9);
        assert!(run_gunzip_limited(&small, CHUNK_SIZE, 2)
            .findings
            .is_empty());
    }

    #[test]
    fn corrupt_deflate_data_is_reported() {
        let data = vec![b'a'; 100_000];
        let mut gz = gzip(&data, 6);
        for b in &mut gz[12..40] {
            *b = 0xff;
        }
        for piece in [1, 7, CHUNK_SIZE] {
            let r = run_gunzip(&gz, piece);
            let f = r.only(Code::BundleGzipCorrupt);
            assert!(
                f.message.contains("invalid deflate data near byte"),
                "{}",
                f.message
            );
            assert!(r.aborted);
        }
        // A block of the reserved type 3 right after the 10-byte header.
        let mut reserved = gzip(b"x", 6);
        reserved[10] = 0b111; // BFINAL=1, BTYPE=11
        let r = run_gunzip(&reserved, CHUNK_SIZE);
        let f = r.only(Code::BundleGzipCorrupt);
        assert!(f.message.contains("invalid block type"), "{}", f.message);
        // A distance before the start of the output.
        let mut far = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        // Fixed Huffman block: length 3 (code 257) at distance 1 with no
        // output yet, then end of block.
        let mut w = BitWriter::default();
        w.bits(1, 1); // BFINAL
        w.bits(1, 2); // BTYPE=01
        w.code(0b0000001, 7); // 257: length 3
        w.code(0b00000, 5); // distance code 0: distance 1
        w.code(0, 7); // 256: end of block
        far.extend_from_slice(&w.finish());
        far.extend_from_slice(&[0; 8]);
        let r = run_gunzip(&far, CHUNK_SIZE);
        let f = r.only(Code::BundleGzipCorrupt);
        assert!(f.message.contains("too far back"), "{}", f.message);
    }

    /// Deflate bit packing, for hand-made streams.
    #[derive(Default)]
    struct BitWriter {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }

    impl BitWriter {
        /// `value`'s low `count` bits, least significant first.
        fn bits(&mut self, value: u32, count: u32) {
            for i in 0..count {
                self.acc |= ((value >> i) & 1) << self.n;
                self.n += 1;
                if self.n == 8 {
                    self.out.push(self.acc as u8);
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            for i in (0..len).rev() {
                self.bits((code >> i) & 1, 1);
            }
        }
        fn finish(mut self) -> Vec<u8> {
            if self.n > 0 {
                self.out.push(self.acc as u8);
            }
            self.out
        }
    }
}
