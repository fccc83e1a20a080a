//! Offline verification of a release archive or staged folder in one
//! streaming pass.
//!
//! Guarantees:
//! - each byte of the input is read from disk once; the outer SHA-256 and the
//!   per-member hashes are computed from that single read, on separate
//!   threads, so a plain tar costs about one hash of the file in wall time;
//! - nothing is extracted and no temporary file is written;
//! - memory is bounded by the pipeline's channel depths plus one small record
//!   per entry, independent of the archive's size;
//! - the format is detected from magic bytes, never from the file name;
//! - inputs that cannot be opened, and explicit checksum arguments that are
//!   unusable, are [`InputError`]s (exit 2) raised before the pass starts;
//!   everything found during the pass is a finding.

pub mod carry;
pub mod chart;
pub mod checksum;
pub mod container;
pub mod content;
pub mod create;
pub mod dirwalk;
pub mod gitbundle;
mod gitcheck;
pub mod image;
pub mod imagesig;
pub mod manifest;
pub mod member;
pub mod nested;
pub mod readahead;
pub mod refscan;
pub mod safety;
pub mod sha256;
pub mod signature;
pub mod signing;
pub mod split;
pub mod stream;
pub mod table;
pub mod tarheader;
pub mod tarstream;
pub mod walk;

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::Sender;
use sha256::Sha256;

use crate::error::InputError;
use crate::finding::{Code, Finding};
use checksum::{ChecksumSource, Expected};
use stream::{ChunkReader, ForwardingSender};

pub use table::{FileRecord, FileTable};
pub use walk::Limits;

/// What to verify and how.
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    pub path: PathBuf,
    pub checksum: ChecksumSource,
    pub limits: Limits,
    pub signatures: signing::SignatureOptions,
}

/// Receives byte counts as the pass advances (a progress bar, or nothing).
pub trait Progress: Send + Sync {
    fn start(&self, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

pub use crate::finding::InputSummary;

/// The container format, from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    Gzip,
    Zstd,
    Unknown,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::Gzip => "tar+gzip",
            Format::Zstd => "tar+zstd",
            Format::Unknown => "unknown",
        }
    }
}

/// Detects the container format from the first bytes of the input.
pub fn detect(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Format::Gzip;
    }
    // A zstd frame, or a skippable frame (magic 0x184D2A50 to 0x184D2A5F,
    // little-endian), which pzstd writes first to record its frame sizes.
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18])
    {
        return Format::Zstd;
    }
    if head.len() >= 512 {
        let h = &head[..512];
        if h.iter().all(|&b| b == 0) {
            // An empty tar is two zero blocks.
            return Format::Tar;
        }
        if tarheader::checksum_ok(h) {
            return Format::Tar;
        }
    }
    Format::Unknown
}

/// The result of a pass besides its findings.
#[derive(Debug)]
pub struct Verified {
    pub input: InputSummary,
    /// Every regular file hashed, by normalised member path.
    pub files: FileTable,
    /// The references (`RepoTags`, OCI ref names) of every intact image of
    /// the release, in member order: what `check` looks up in the registry.
    pub images: Vec<String>,
}

/// `-`: the archive comes on standard input.
pub fn is_stdin(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// What a pass over `opts` would do, for `--dry-run`: the keys and the
/// checksum are loaded and checked (their errors are the pass's), but the
/// archive is only looked up (`stat`), never opened or read.
pub fn describe(opts: &BundleOptions) -> Result<Vec<String>, InputError> {
    let path = &opts.path;
    if is_stdin(path) {
        return Ok(vec![
            "bundle -: the archive read once from standard input (format detected from its first bytes); no checksum unless --sha256 or --checksum".into(),
        ]);
    }
    let meta = std::fs::metadata(path).map_err(|e| InputError::unreadable(path, "input", e))?;
    let mut out = Vec::new();
    let sig_plan = if meta.is_dir() {
        out.push(format!(
            "bundle {}: staged folder, every file under it read once",
            path.display()
        ));
        signing::plan(&opts.signatures, None)?
    } else {
        out.push(format!(
            "bundle {}: archive of {} bytes, read once from start to end (format detected from its first bytes)",
            path.display(),
            meta.len()
        ));
        out.push(match checksum::resolve(&opts.checksum, path)? {
            Expected::None => format!(
                "bundle checksum: none ({}.sha256 does not exist): the archive's SHA-256 is computed but compared with nothing",
                path.display()
            ),
            Expected::Digest { hex, origin } => {
                format!("bundle checksum: sha256:{hex} from {origin}")
            }
            Expected::Invalid { origin, reason } => {
                format!("bundle checksum: {origin} is unusable ({reason}): the pass will fail on it")
            }
        });
        signing::plan(&opts.signatures, Some(path))?
    };
    let sig = |present: bool| if present { "present" } else { "absent" };
    out.push(format!(
        "bundle signatures: minisign {}, cosign {}{}",
        if sig_plan.minisign_key.is_some() {
            "key loaded"
        } else {
            "no key (--pubkey)"
        },
        if sig_plan.cosign_key.is_some() {
            "key loaded"
        } else {
            "no key (--cosign-key)"
        },
        if meta.is_dir() {
            String::new()
        } else {
            format!(
                "; {} {}, {} {}",
                sig_plan.archive_minisig_path,
                sig(sig_plan.archive_minisig.is_some()),
                sig_plan.archive_cosig_path,
                sig(sig_plan.archive_cosig.is_some())
            )
        }
    ));
    if let Some(p) = &sig_plan.sigstore {
        out.push(imagesig::describe(p, opts.limits.max_depth > 0));
    }
    let l = &opts.limits;
    out.push(if l.max_depth == 0 {
        "bundle content: not checked (--no-content): nested archives (images, charts, content bundles) are not opened, text files are not scanned for external references".into()
    } else {
        format!(
            "bundle content: nested archives opened to depth {}{}; limits: {} entries, {} bytes and {} entries per nested archive, expansion ratio {}, manifests {} bytes",
            l.max_depth,
            if l.deep { ", image layers decompressed (--deep)" } else { "" },
            l.max_entries,
            l.max_nested_bytes,
            l.max_nested_entries,
            l.max_expansion_ratio,
            l.max_manifest_size
        )
    });
    Ok(out)
}

/// Verifies one archive or folder, sending every finding to `findings`.
pub fn verify(
    opts: &BundleOptions,
    progress: &dyn Progress,
    findings: &Sender<Finding>,
) -> Result<Verified, InputError> {
    // `-` is standard input: an archive piped in (from a tape, a decryption
    // tool, ssh). It is read as the file /dev/stdin, shown as `-`, and has
    // no checksum or signature beside it.
    let stdin = is_stdin(&opts.path);
    if stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(InputError::Usage(
            "bundle -: standard input is a terminal; pipe the archive in (`cat release.tar | airgap-verify bundle -`)".into(),
        ));
    }
    let path = if stdin {
        &PathBuf::from("/dev/stdin")
    } else {
        &opts.path
    };
    let meta = std::fs::metadata(path).map_err(|e| InputError::unreadable(path, "input", e))?;
    if meta.is_dir() {
        let plan = signing::plan(&opts.signatures, None)?;
        return dirwalk::verify_dir(opts, &plan, progress, findings);
    }
    // A split archive's whole checksum is NAME.sha256, without the part suffix.
    let split = split::detect(path);
    let checksum_of = split.as_ref().map_or(path.as_path(), |s| s.base.as_path());
    let expected = match (&opts.checksum, stdin) {
        (checksum::ChecksumSource::Auto, true) => Expected::None,
        _ => checksum::resolve(&opts.checksum, checksum_of)?,
    };
    let sig_plan = signing::plan(&opts.signatures, (!stdin).then_some(path.as_path()))?;
    let part_checksums = split
        .as_ref()
        .map(split::SplitSet::part_checksums)
        .unwrap_or_default();
    let mut file = match &split {
        None => {
            Source::File(File::open(path).map_err(|e| InputError::unreadable(path, "archive", e))?)
        }
        Some(set) => Source::Split(
            split::SplitReader::open(set, !part_checksums.is_empty())
                .map_err(|e| InputError::unreadable(path, "archive", e))?,
        ),
    };
    // A pipe or a device has no length up front: its size is what was read.
    let regular = meta.is_file();
    let size = split.as_ref().map_or(meta.len(), split::SplitSet::total);
    let target = if stdin {
        "-".to_string()
    } else {
        path.display().to_string()
    };
    let started = Instant::now();

    let pool = stream::Pool::default();
    let mut first = pool.take_full();
    let n =
        read_full(&mut file, &mut first).map_err(|e| InputError::unreadable(path, "archive", e))?;
    first.truncate(n);
    let format = detect(&first);
    progress.start(size);

    // A plain tar's digest is taken on the tar thread, in the same pass as
    // its members' (see `sha256`), where that pays; a compressed archive's
    // on a thread of its own, in parallel with the decompression.
    let on_tar_thread = archive_digest_on_tar_thread(format, opts.limits.max_depth > 0);
    // With the digest on the tar thread and no signature to check over the
    // bytes, nothing but the walk needs them: there is no hashing thread,
    // and the file is read ahead on this thread (see `readahead`).
    let read_ahead = on_tar_thread && !signing::ArchiveVerifiers::new(&sig_plan).needs_bytes();
    let (pass, file) = if read_ahead {
        let (reader, input) = readahead::read_ahead(file, first, findings.clone(), &target);
        std::thread::scope(|s| {
            let decoder = {
                let findings = findings.clone();
                let target = target.clone();
                let limits = opts.limits.clone();
                let key = sig_plan.minisign_key.clone();
                s.spawn(move || {
                    decode(format, input, findings, &target, limits, key, on_tar_thread)
                })
            };
            let ended = reader.run(progress);
            let decoded = decoder.join().unwrap_or_default();
            // What the hashing thread gives when it is sent no bytes.
            let digest = ended
                .read_ok
                .then(|| (None, signing::ArchiveVerifiers::new(&sig_plan).finish()));
            let pass = (digest, decoded, ended.read_ok, ended.bytes_read);
            (pass, ended.file)
        })
    } else {
        read_and_share(
            file,
            first,
            format,
            on_tar_thread,
            &sig_plan,
            opts,
            &target,
            progress,
            findings,
        )
    };
    let (digest, decoded, read_ok, bytes_read) = pass;
    progress.finish();
    let elapsed = started.elapsed().as_millis() as u64;
    let (digest, verdicts) = match digest {
        Some((d, v)) => (d.or(decoded.archive_sha256), Some(v)),
        None => (None, None),
    };
    let sha256 = if read_ok {
        digest.map(hex::encode)
    } else {
        None
    };
    if let Some(set) = &split {
        let digests = match &file {
            Source::Split(r) => r.digests.as_slice(),
            Source::File(_) => &[],
        };
        split_findings(set, &part_checksums, digests, &target, findings);
    }
    if let (true, Some(v)) = (read_ok, verdicts) {
        signing::archive_findings(&sig_plan, v, decoded.manifest_signatures, &target, findings);
    }
    if let (true, Some(d)) = (read_ok, digest) {
        signing::sigstore_findings(
            &sig_plan,
            Some(d),
            &decoded.files,
            &decoded.sigstore_members,
            decoded.supply.iter().any(|i| !i.attached.is_empty()),
            &target,
            findings,
        );
    }
    // Image signatures and attestations: from the small JSON blobs the pass
    // captured, verified with the same policy.
    imagesig::findings(&sig_plan, &decoded.supply, findings);

    if read_ok && decoded.intact {
        let _ = findings.send(
            Finding::new(
                Code::BundleContainerIntact,
                target.clone(),
                format!(
                    "{} read to the end: {} bytes, {} entries",
                    format.name(),
                    bytes_read,
                    decoded.entries
                ),
            )
            .evidence("format", format.name())
            .evidence("bytes", bytes_read)
            .evidence("members", decoded.members)
            .evidence("tar_bytes", decoded.tar_bytes)
            .evidence("entries", decoded.entries)
            .duration_ms(elapsed),
        );
    }
    checksum_finding(&expected, sha256.as_deref(), &target, elapsed, findings);
    Ok(Verified {
        input: InputSummary {
            path: target,
            kind: format.name(),
            size: if regular || split.is_some() {
                size
            } else {
                bytes_read
            },
            sha256,
        },
        files: decoded.files,
        images: decoded.images,
    })
}

fn checksum_finding(
    expected: &Expected,
    actual: Option<&str>,
    target: &str,
    elapsed: u64,
    findings: &Sender<Finding>,
) {
    let f = match (expected, actual) {
        (Expected::None, _) => Finding::new(
            Code::BundleChecksumMissing,
            target,
            "no published checksum: no .sha256 file beside the archive and no --checksum or --sha256",
        ),
        (Expected::Invalid { origin, reason }, _) => Finding::new(
            Code::BundleChecksumInvalid,
            target,
            format!("checksum file {origin} cannot be used: {reason}"),
        ),
        (Expected::Digest { .. }, None) => return, // read error already reported
        (Expected::Digest { hex, origin }, Some(actual)) if hex == actual => Finding::new(
            Code::BundleChecksumVerified,
            target,
            format!("sha256:{actual} matches {origin}"),
        )
        .evidence("sha256", actual)
        .evidence("origin", origin.as_str()),
        (Expected::Digest { hex, origin }, Some(actual)) => Finding::new(
            Code::BundleChecksumMismatch,
            target,
            format!("archive is sha256:{actual}, {origin} says sha256:{hex}"),
        )
        .evidence("expected_sha256", hex.as_str())
        .evidence("actual_sha256", actual)
        .evidence("origin", origin.as_str()),
    };
    let _ = findings.send(f.duration_ms(elapsed));
}

#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) intact: bool,
    pub(crate) members: u64,
    pub(crate) tar_bytes: u64,
    pub(crate) entries: u64,
    pub(crate) files: FileTable,
    pub(crate) manifest_signatures: usize,
    pub(crate) images: Vec<String>,
    /// `X.sigstore.json` members of the release: path and bytes.
    pub(crate) sigstore_members: Vec<(String, Vec<u8>)>,
    /// The release's images and what is attached to them.
    pub(crate) supply: Vec<imagesig::ImageSupply>,
    /// The archive's SHA-256, when the tar thread took it.
    pub(crate) archive_sha256: Option<[u8; 32]>,
}

/// Whether the release's digest is taken on the tar thread, paired with its
/// members' (one SHA-256 pass where there were two): for a plain tar,
/// unless it is read for its integrity alone (`--no-content`) on a CPU
/// where a pair costs nearly two digests ([`sha256::pairing_pays`]).
///
/// Where a pair costs about one digest (AMD EPYC: 1.08), the paired pass on
/// one core beat the two digests on two even with `--no-content` (text
/// shape, 1 GiB, 2 cores: 0.65 s against 0.78 s wall, 1.17 against 1.43
/// CPU seconds). Where it costs 1.46 (an Intel Xeon, 1 GiB, 5 interleaved
/// runs, `openssl dgst` 0.91 s), `--no-content` took 1.15 s paired and
/// 0.96 s with the digest on a thread of its own, on the sample and on the
/// text shape alike; but the sample's full-content pass took 1.60 s paired
/// and 1.79 s apart, the nested images' work wanting the second core: with
/// content, the digest stays paired.
fn archive_digest_on_tar_thread(format: Format, content: bool) -> bool {
    format == Format::Tar && (content || sha256::pairing_pays())
}

/// The decoding side of the release pass: container, tar walk, then the
/// release-level rules.
pub(crate) fn decode(
    format: Format,
    mut input: ChunkReader,
    findings: Sender<Finding>,
    target: &str,
    limits: Limits,
    manifest_key: Option<std::sync::Arc<signature::MinisignKey>>,
    archive_digest: bool,
) -> Decoded {
    let mut ctx = walk::WalkContext::new(findings.clone(), limits);
    ctx.manifest_key = manifest_key;
    if archive_digest && format == Format::Tar {
        ctx.archive_digest = Some(Default::default());
    }
    if format == Format::Unknown {
        let head: Vec<u8> = std::io::BufRead::fill_buf(&mut input)
            .map(|b| b[..b.len().min(8)].to_vec())
            .unwrap_or_default();
        let _ = findings.send(
            Finding::new(
                Code::BundleUnrecognisedFormat,
                target,
                if head.is_empty() {
                    "the archive is empty (0 bytes): an interrupted copy or download, or a file truncated on the way".to_string()
                } else {
                    format!(
                        "not a tar, tar.gz or tar.zst archive (first bytes: {})",
                        hex::encode(&head)
                    )
                },
            )
            .evidence("first_bytes", hex::encode(&head)),
        );
        // Drain so the reader and the outer hash can finish.
        let _ = std::io::copy(&mut input, &mut std::io::sink());
        return Decoded::default();
    }
    let stats = stream_walk(format, input, &mut ctx, target);
    let archive_sha256 = ctx
        .archive_digest
        .take()
        .map(sha256::ArchiveDigest::finalize);
    if archive_sha256 == Some(None) {
        let _ = findings.send(Finding::new(
            Code::BundleReadError,
            target,
            "the archive's SHA-256 could not be completed (an internal error of this pass, not a fault of the archive): compare it with `sha256sum` and report this",
        ));
    }
    let archive_sha256 = archive_sha256.flatten();
    let sigstore_members = ctx
        .captured
        .iter()
        .filter(|c| c.path.ends_with(signing::SIGSTORE_SUFFIX))
        .map(|c| (c.path.clone(), c.bytes.clone()))
        .collect();
    let walk::Finished {
        files,
        manifest_signatures,
        images,
        supply,
    } = ctx.finish(target, stats.intact);
    Decoded {
        archive_sha256,
        images,
        supply,
        sigstore_members,
        manifest_signatures,
        intact: stats.intact,
        members: stats.members,
        tar_bytes: stats.tar_bytes,
        entries: stats.entries,
        files,
    }
}

/// What [`stream_walk`] saw.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// No failing container or tar finding.
    pub intact: bool,
    /// The producer of `input` aborted (its own finding explains why).
    pub upstream_aborted: bool,
    pub members: u64,
    pub tar_bytes: u64,
    pub entries: u64,
    /// Reading stopped at a resource limit (a finding says which): what was
    /// seen is a prefix of the archive, not grounds for judging its kind.
    pub limited: bool,
}

/// Decompresses (on its own thread) and walks one tar stream into `ctx`.
/// Shared by the release and every nested archive. The input is drained to
/// its end whatever happens, so upstream stages always finish their checks.
pub fn stream_walk(
    format: Format,
    mut input: ChunkReader,
    ctx: &mut walk::WalkContext,
    target: &str,
) -> StreamStats {
    let findings = ctx.findings.clone();
    let max_ratio = ctx.limits.max_expansion_ratio;
    let (container_failed, container_limited, members, stats) = match format {
        Format::Unknown => return StreamStats::default(),
        Format::Tar => {
            let stats = match ctx.archive_digest.clone() {
                // The release's digest is taken here, from every byte the
                // walk and the drain take (see `sha256`).
                Some(d) => {
                    let mut r = d.reader(&mut input);
                    let stats = tarstream::walk(&mut r, ctx, target);
                    let _ = std::io::copy(&mut r, &mut std::io::sink());
                    stats
                }
                None => {
                    let stats = tarstream::walk(&mut input, ctx, target);
                    let _ = std::io::copy(&mut input, &mut std::io::sink());
                    stats
                }
            };
            (false, false, 0, stats)
        }
        Format::Gzip | Format::Zstd => {
            let (tx, tar_rx) = stream::channel();
            std::thread::scope(|s| {
                let inflater = s.spawn(move || {
                    let mut out = ForwardingSender::new(tx);
                    let st = if format == Format::Gzip {
                        container::gunzip(&mut input, &mut out, &findings, target, max_ratio)
                    } else {
                        container::unzstd(&mut input, &mut out, &findings, target, max_ratio)
                    };
                    let _ = std::io::copy(&mut input, &mut std::io::sink());
                    (st, input.aborted())
                });
                let mut tar_in = ChunkReader::new(tar_rx);
                let stats = tarstream::walk(&mut tar_in, ctx, target);
                drop(tar_in);
                let (st, aborted) = inflater.join().unwrap_or_default();
                let mut stats = stats;
                stats.upstream_failed |= aborted;
                (st.failed, st.limited, st.members, stats)
            })
        }
    };
    ctx.harvest(0);
    StreamStats {
        limited: container_limited || stats.limited,
        intact: !container_failed && !stats.failed && !stats.upstream_failed,
        upstream_aborted: stats.upstream_failed && !container_failed && !stats.failed,
        members,
        tar_bytes: stats.tar_bytes,
        entries: stats.entries,
    }
}

/// What one pass over the archive's bytes gives: the hashing thread's
/// digest and verdicts, the walk's result, whether every read succeeded,
/// and the bytes read.
type Pass = (
    Option<(Option<[u8; 32]>, signing::ArchiveVerdicts)>,
    Decoded,
    bool,
    u64,
);

/// The pass when the hashing thread needs the bytes too (a compressed
/// archive's digest, or a signature over the archive): this thread reads,
/// and each chunk is shared by the hasher and the walk.
#[allow(clippy::too_many_arguments)]
fn read_and_share(
    mut file: Source,
    first: Vec<u8>,
    format: Format,
    on_tar_thread: bool,
    sig_plan: &signing::SignaturePlan,
    opts: &BundleOptions,
    target: &str,
    progress: &dyn Progress,
    findings: &Sender<Finding>,
) -> (Pass, Source) {
    let pool = stream::Pool::default();
    let (hash_tx, hash_rx) = stream::channel();
    let (dec_tx, dec_rx) = stream::channel();
    let pass = std::thread::scope(|s| {
        let sig_plan = &sig_plan;
        let hasher = s.spawn(move || {
            // Signature verifiers ride on the same bytes as the checksum.
            let mut verifiers = signing::ArchiveVerifiers::new(sig_plan);
            let mut h = (!on_tar_thread).then(Sha256::new);
            let mut r = ChunkReader::new(hash_rx);
            loop {
                match std::io::BufRead::fill_buf(&mut r) {
                    Ok([]) => return Some((h.map(Sha256::finalize), verifiers.finish())),
                    Ok(b) => {
                        let n = b.len();
                        if let Some(h) = h.as_mut() {
                            h.update(b);
                        }
                        verifiers.update(b);
                        std::io::BufRead::consume(&mut r, n);
                    }
                    Err(_) => return None,
                }
            }
        });
        let decoder = {
            let findings = findings.clone();
            let limits = opts.limits.clone();
            let key = sig_plan.minisign_key.clone();
            s.spawn(move || {
                decode(
                    format,
                    ChunkReader::new(dec_rx),
                    findings,
                    target,
                    limits,
                    key,
                    on_tar_thread,
                )
            })
        };

        // This thread reads: one read per chunk, shared by hasher and decoder.
        let mut to_hash = ForwardingSender::new(hash_tx);
        let mut to_decode = ForwardingSender::new(dec_tx);
        let mut chunk = first;
        let mut offset = 0u64;
        let mut read_ok = true;
        loop {
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            progress.advance(n as u64);
            offset += n as u64;
            let c = pool.chunk(chunk);
            to_hash.send(c.clone());
            to_decode.send(c);
            chunk = pool.take_full();
            match read_full(&mut file, &mut chunk) {
                Ok(n) => chunk.truncate(n),
                Err(e) => {
                    read_ok = false;
                    let _ = findings.send(read_error(target, offset, &e));
                    to_hash.abort();
                    to_decode.abort();
                    break;
                }
            }
        }
        drop(to_hash);
        drop(to_decode);
        let digest = hasher.join().unwrap_or(None);
        let decoded = decoder.join().unwrap_or_default();
        (digest, decoded, read_ok, offset)
    });
    (pass, file)
}

/// The finding for a read of the archive that failed at `offset`.
fn read_error(target: &str, offset: u64, e: &std::io::Error) -> Finding {
    Finding::new(
        Code::BundleReadError,
        target,
        format!("read error at byte {offset}: {e}"),
    )
    .evidence("offset", offset)
}

/// Reads until `buf` is full or the file ends.
/// The archive as read: one file, or the parts of a split archive.
enum Source {
    File(File),
    Split(split::SplitReader),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::File(f) => f.read(buf),
            Source::Split(r) => r.read(buf),
        }
    }
}

/// What the parts of a split archive say: the set, gaps, uneven parts, and
/// each part's own checksum when it has one.
fn split_findings(
    set: &split::SplitSet,
    part_checksums: &[(usize, PathBuf)],
    digests: &[[u8; 32]],
    target: &str,
    findings: &Sender<Finding>,
) {
    let send = |f: Finding| {
        let _ = findings.send(f);
    };
    let parts: Vec<serde_json::Value> = set
        .parts
        .iter()
        .map(|p| serde_json::json!({"path": p.path.display().to_string(), "size": p.size}))
        .collect();
    send(
        Finding::new(
            Code::BundleSplitParts,
            target,
            format!(
                "split archive: {} parts read as one stream ({} bytes), {} to {}",
                set.parts.len(),
                set.total(),
                set.parts[0].path.display(),
                set.parts[set.parts.len() - 1].path.display()
            ),
        )
        .evidence("parts", parts)
        .evidence("base", set.base.display().to_string()),
    );
    if let Some((missing, later)) = &set.gap {
        send(
            Finding::new(
                Code::BundleSplitPartMissing,
                missing.display().to_string(),
                format!(
                    "{} is missing but {} exists: the parts after the gap were not read",
                    missing.display(),
                    later.display()
                ),
            )
            .evidence("later_part", later.display().to_string()),
        );
    }
    let first = set.parts[0].size;
    for p in set.uneven() {
        send(
            Finding::new(
                Code::BundleSplitPartTruncated,
                p.path.display().to_string(),
                format!(
                    "{} is {} bytes but the first part is {first}: only the last part may differ",
                    p.path.display(),
                    p.size
                ),
            )
            .evidence("size", p.size)
            .evidence("first_part_size", first),
        );
    }
    for (i, sum_path) in part_checksums {
        let part = &set.parts[*i];
        let part_target = part.path.display().to_string();
        let origin = sum_path.display().to_string();
        let expected = match std::fs::read(sum_path) {
            Ok(text) => checksum::from_text(&text, &part.path, &origin),
            Err(e) => Expected::Invalid {
                origin: origin.clone(),
                reason: format!("cannot read it: {e}"),
            },
        };
        let actual = digests.get(*i).map(hex::encode);
        let f = match (expected, actual) {
            // The part was not read to its end (a read error, or a gap
            // stopped the pass): nothing to compare.
            (_, None) => continue,
            (Expected::Digest { hex, .. }, Some(a)) if hex == a => Finding::new(
                Code::BundleSplitPartChecksumVerified,
                part_target,
                format!("sha256:{a} matches {origin}"),
            )
            .evidence("sha256", a),
            (Expected::Digest { hex, .. }, Some(a)) => Finding::new(
                Code::BundleSplitPartChecksumMismatch,
                part_target,
                format!("part is sha256:{a}, {origin} says sha256:{hex}"),
            )
            .evidence("expected_sha256", hex)
            .evidence("actual_sha256", a),
            (Expected::Invalid { reason, .. }, Some(_)) => Finding::new(
                Code::BundleSplitPartChecksumMismatch,
                part_target,
                format!("{origin}: {reason}"),
            ),
            (Expected::None, Some(_)) => continue,
        };
        send(f.evidence("origin", origin));
    }
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
