//! Byte-slice entry points for the fuzz targets in `fuzz/fuzz_targets/`.
//!
//! Each wrapper drives the same code the tool runs on real input and returns
//! a small count so the optimiser cannot drop the work. None of them may
//! panic on any input: a panic here is a bug in the library.

use std::path::Path;
use std::time::Duration;

use crate::bundle::{self, stream, walk};
use crate::finding::Finding;

/// Drains a findings channel, returning how many findings were sent.
fn drain(rx: crossbeam_channel::Receiver<Finding>) -> usize {
    rx.try_iter().count()
}

/// Limits for fuzzing: the defaults, with the in-memory captures capped low
/// so that one input cannot make an iteration slow.
fn limits() -> walk::Limits {
    walk::Limits {
        max_manifest_size: 1 << 20,
        max_nested_capture: 1 << 20,
        ..walk::Limits::default()
    }
}

/// The release pass on an in-memory archive: format detection from the
/// first bytes, the gzip member loop or zstd frames, the tar walk with its
/// safety rules, nested archives and the release-level rules (manifests,
/// content bundles). Everything [`bundle::verify`] does except reading the
/// file, the outer hash and signatures.
pub fn archive(data: &[u8]) -> usize {
    // The channel holds CHANNEL_DEPTH chunks: queue the whole input before
    // decoding, so no feeder thread is needed.
    let data = &data[..data
        .len()
        .min(stream::CHUNK_SIZE * (stream::CHANNEL_DEPTH - 1))];
    let format = bundle::detect(&data[..data.len().min(stream::CHUNK_SIZE)]);
    let (tx, rx) = stream::channel();
    let pool = stream::Pool::default();
    for piece in data.chunks(stream::CHUNK_SIZE) {
        let _ = tx.send(stream::Msg::Data(pool.chunk(piece.to_vec())));
    }
    drop(tx);
    let (ftx, frx) = crossbeam_channel::unbounded();
    let input = stream::ChunkReader::new(rx);
    let decoded = bundle::decode(format, input, ftx, "fuzz.tar", limits(), None, true);
    decoded.files.len() + decoded.entries as usize + drain(frx)
}

/// The tar walk alone (entries, safety rules, hashing, captures, nested
/// archives) then the release-level rules, on an uncompressed tar stream.
pub fn tar(data: &[u8]) -> usize {
    let (ftx, frx) = crossbeam_channel::unbounded();
    let mut ctx = walk::WalkContext::new(ftx, limits());
    let stats = bundle::tarstream::walk(data, &mut ctx, "fuzz.tar");
    let files = ctx.finish("fuzz.tar", !stats.failed).files;
    files.len() + drain(frx)
}

/// `manifest.json`, `SHA256SUMS` and the outer `.sha256` file readers. The
/// first byte picks the parser so one corpus covers the three.
pub fn manifest(data: &[u8]) -> usize {
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    match sel % 4 {
        0 => match bundle::manifest::parse_json("release/manifest.json", rest.to_vec()) {
            Ok(Some(m)) => m.files.len() + 1,
            Ok(None) => 1,
            Err(e) => e.message.len(),
        },
        1 => match bundle::manifest::parse_sums("release/SHA256SUMS", rest) {
            Ok(m) => m.files.len(),
            Err(e) => e.message.len(),
        },
        2 => {
            let text = String::from_utf8_lossy(rest);
            text.lines()
                .filter_map(bundle::manifest::parse_sums_line)
                .count()
        }
        _ => match bundle::checksum::from_text(rest, Path::new("/x/release.tar.gz"), "fuzz") {
            bundle::checksum::Expected::Digest { hex, .. } => hex.len(),
            _ => 0,
        },
    }
}

/// A Git bundle read from memory, with libgit2's pack and index in a
/// scratch folder under `scratch` (created if missing).
pub fn git_bundle(data: &[u8], scratch: &Path) -> usize {
    let _ = std::fs::create_dir_all(scratch);
    let mut r = data;
    match bundle::gitbundle::validate(&mut r, scratch) {
        Ok(report) => report.problems.len() + report.refs.len(),
        Err(_) => 0,
    }
}

/// An SNTP reply. The first 8 bytes are the request's transmit timestamp
/// (so the fuzzer can make the origin check pass); the rest is the packet.
pub fn ntp(data: &[u8]) -> usize {
    if data.len() < 8 {
        return 0;
    }
    let sent = u64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
    match crate::probe::ntp::parse_reply(&data[8..], sent) {
        Ok(r) => {
            let (offset, delay) = crate::probe::ntp::offset_and_delay(&r, sent, sent ^ r.transmit);
            r.reference().len()
                + r.kiss_code().map_or(0, |k| k.len())
                + (offset + delay).is_nan() as usize
        }
        Err(e) => e.len(),
    }
}

/// A DNS reply to an `A` query for `example.com` with id 0x1234 (or the
/// reply's own id when the first byte is odd, so the deeper checks run).
pub fn dns(data: &[u8]) -> usize {
    use hickory_proto::rr::RecordType;
    let Some((&sel, reply)) = data.split_first() else {
        return 0;
    };
    let id = if sel & 1 == 1 && reply.len() >= 2 {
        u16::from_be_bytes([reply[0], reply[1]])
    } else {
        0x1234
    };
    let rtype = if sel & 2 == 0 {
        RecordType::A
    } else {
        RecordType::AAAA
    };
    match crate::probe::dnswire::decode_reply(reply, id, "example.com", rtype) {
        Ok(msg) => {
            let r = crate::probe::dnswire::summarise(&msg, Duration::from_millis(1), false);
            r.addrs.len() + r.cnames.len() + crate::probe::dnswire::rcode_name(r.rcode).len()
        }
        Err(e) => e.len(),
    }
}

/// SMTP replies: the input is split after each LF into reply lines, each
/// parsed and pushed through the multi-line accumulator, as `read_reply`
/// does; complete replies go through the EHLO and queue-id readers.
pub fn smtp(data: &[u8]) -> usize {
    use crate::probe::smtp;
    let mut asm = smtp::ReplyAssembler::default();
    let mut n = 0;
    for line in data.split_inclusive(|&b| b == b'\n') {
        let parsed = match smtp::parse_reply_line(line) {
            Ok(l) => l,
            Err(e) => {
                n += e.len();
                asm = smtp::ReplyAssembler::default();
                continue;
            }
        };
        match asm.push(parsed) {
            Ok(Some(reply)) => {
                let exts = smtp::extensions(&reply);
                n += exts.len();
                n += smtp::has_extension(&exts, "STARTTLS") as usize;
                n += smtp::auth_mechanisms(&exts).map_or(0, |m| m.len());
                n += smtp::queue_id(&reply).map_or(0, |q| q.len());
                n += reply.summary().len() + reply.display_lines().len();
                n += reply.is_positive() as usize;
            }
            Ok(None) => {}
            Err(e) => {
                n += e.len();
                asm = smtp::ReplyAssembler::default();
            }
        }
    }
    n
}

/// The configuration loader on in-memory text: the first byte picks
/// `perimeter.yml`, the vendor's `config.yml`, or both (split at the first
/// NUL byte). Paths point into a folder that does not exist so relative
/// `*_file` references resolve to nothing.
pub fn config(data: &[u8]) -> usize {
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return 0;
    };
    let sekoia_path = Path::new("/nonexistent-airgap-fuzz/config.yml");
    let perimeter_path = Path::new("/nonexistent-airgap-fuzz/perimeter.yml");
    let (sekoia, perimeter) = match sel % 3 {
        0 => (None, Some((perimeter_path, text))),
        1 => (Some((sekoia_path, text)), None),
        _ => {
            let (a, b) = text.split_once('\0').unwrap_or((text, ""));
            (Some((sekoia_path, a)), Some((perimeter_path, b)))
        }
    };
    let opts = crate::config::LoadOptions::default();
    match crate::config::load_texts(&opts, sekoia, perimeter) {
        Ok(plan) => plan.findings.len() + plan.smtp.len() + plan.declared.len(),
        Err(e) => e.to_string().len(),
    }
}
