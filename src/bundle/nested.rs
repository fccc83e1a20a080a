//! Archives inside the release (container images, Helm charts, content
//! bundles, any other tar) validated while their bytes stream past.
//!
//! Guarantees:
//! - the outer walk hands each chunk of a nested member to that member's own
//!   validator thread through a bounded channel: the member is never written
//!   to disk nor held whole in memory, and the outer pass reads it once;
//! - a nested archive gets the same container and safety rules as the
//!   release (codes are shared; targets read `outer!inner`), then the rules
//!   of its kind (image, chart);
//! - nesting depth is bounded (`Limits::max_depth`), so an archive of
//!   archives cannot multiply threads or memory; an archive past the limit
//!   is reported (`bundle:nested-too-deep`), never silently skipped;
//! - every decompression (nested archives and `--deep` layers) is held to
//!   the expansion ratio limit, and a nested archive to the entry and byte
//!   limits; a validator stopped by a limit judges nothing about the kind of
//!   archive (a prefix of an image is not a broken image).

pub use super::member::{is_image_blob, NestedOutcome};
use std::io::BufRead;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::carry::Carrier;
use super::container::{ContainerStats, Gunzip};
use super::readahead::{self, DecodingHere};
use super::sha256::Sha256;
use super::stream::{self, ChunkReader, ForwardingSender, Piece, Pool, CHUNK_SIZE};
use super::walk::{Limits, Scope, WalkContext};
use super::{detect, Format};
use crate::finding::{Code, Finding};

/// What a nested archive is, from its place in the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedKind {
    /// `images/*.tar.gz|*.tgz|*.tar` (directly in an `images` folder): a
    /// `docker save` archive or OCI layout.
    Image,
    /// `charts/*.tgz`: a Helm chart.
    Chart,
    /// `data/<TYPE>/<TYPE>-<id>.tar.gz`: a security content bundle.
    ContentBundle,
    /// Any other `.tar`, `.tar.gz`, `.tgz` or `.tar.zst`.
    Archive,
    /// A compressed image layer, decompressed only with `--deep` to compute
    /// its diff_id.
    Layer,
    /// `*.bundle`: a Git bundle.
    GitBundle,
}

fn is_tarball(name: &str) -> bool {
    [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Classifies a member of the release. `deep`: image layers stored in a
/// folder are decompressed to check their diff_ids (`--deep`).
pub fn classify(path: &str, deep: bool) -> Option<NestedKind> {
    if is_image_blob(path) {
        // Only a compressed layer has a digest to compute; a `.tar` layer's
        // digest as stored is its diff_id.
        let compressed = !path.ends_with(".tar");
        return (deep && compressed).then_some(NestedKind::Layer);
    }
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    if name.ends_with(".bundle") {
        return Some(NestedKind::GitBundle);
    }
    if !is_tarball(name) {
        return None;
    }
    let in_dir = |d: &str| lower.starts_with(&format!("{d}/")) || lower.contains(&format!("/{d}/"));
    // An image file sits directly in an `images` folder (the documented
    // place): a tarball deeper down is part of something else, such as an
    // image stored as a folder (`images/api-0/<hex>/layer.tar`).
    let parent = lower.rsplit('/').nth(1);
    if parent == Some("images") {
        return Some(NestedKind::Image);
    }
    if in_dir("charts") && (name.ends_with(".tgz") || name.ends_with(".tar.gz")) {
        return Some(NestedKind::Chart);
    }
    if super::content::is_bundle_path(path) {
        return Some(NestedKind::ContentBundle);
    }
    Some(NestedKind::Archive)
}

/// Classifies a member of a nested archive.
pub fn classify_inner(outer: NestedKind, path: &str, deep: bool) -> Option<NestedKind> {
    match outer {
        // Layers are the only archives inside an image worth opening, and
        // only when asked: it costs a second decompression of every layer.
        NestedKind::Image if deep => {
            let is_layer = path.ends_with("/layer.tar") || path.starts_with("blobs/");
            is_layer.then_some(NestedKind::Layer)
        }
        // Tarballs inside other archives (a chart's subcharts, an archive of
        // archives) get the container and safety rules too, up to the depth
        // limit: content that is never opened is content never checked.
        NestedKind::Archive | NestedKind::Chart | NestedKind::ContentBundle => {
            let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
            is_tarball(&name).then_some(NestedKind::Archive)
        }
        _ => None,
    }
}

/// Whether a file inside a nested archive of `kind` must be kept for its
/// rules. Blobs are kept only when they look like JSON (decided by the
/// caller from the first byte), so layers are never buffered.
pub fn wants_capture(kind: NestedKind, path: &str) -> bool {
    match kind {
        NestedKind::Image => {
            matches!(
                path,
                "manifest.json" | "index.json" | "oci-layout" | "repositories"
            ) || (!path.contains('/') && path.ends_with(".json"))
                || path.starts_with("blobs/")
        }
        NestedKind::Chart => {
            let mut parts = path.split('/');
            matches!(
                (parts.next(), parts.next(), parts.next()),
                (Some(_), Some("Chart.yaml"), None)
            )
        }
        _ => false,
    }
}

/// A running validator for one nested member.
///
/// A gzip-compressed archive (an image, a chart) is decompressed on the
/// thread that feeds the job, as its bytes arrive, and the validator's
/// thread receives the tar: two threads per nested archive instead of three
/// (reader, decoder, validator), so on two cores none waits for another to
/// be scheduled, and the decoder reads each chunk while it is still in the
/// cache of the core that read it. While it decodes, a read-ahead feeding
/// this thread lets it read for itself (see `readahead`). On the 1 GiB
/// sample, full content (9 interleaved runs, medians, same binary): 0.91 s,
/// against 1.02 s with a decoder thread of its own (`openssl dgst`:
/// 0.83 s). Git bundles, `--deep` layers and zstd keep the decoder on the
/// validator's side.
pub struct NestedJob {
    kind: NestedKind,
    max_ratio: u64,
    findings: Sender<Finding>,
    target: String,
    tx: ForwardingSender,
    pool: Pool,
    pending: Vec<u8>,
    handle: Option<JoinHandle<Option<NestedOutcome>>>,
    /// The member's stored-byte digests, when they are carried (see
    /// `carry`), and the bytes fed since; the validator's thread learns of
    /// them through `carried` before its first byte.
    carrier: Option<(Arc<Carrier>, u64)>,
    carried: Arc<OnceLock<Arc<Carrier>>>,
    /// A whole first chunk was sent: later bytes may be shared.
    started: bool,
    /// Whether the first bytes were looked at (see `decide`).
    decided: bool,
    /// The gzip decoder on this thread, until its stream ends, and the
    /// mark that tells a read-ahead feeding this thread (see `readahead`).
    inline: Option<(Gunzip, DecodingHere)>,
    /// Tells the validator its input comes decoded; set before its first
    /// message.
    decoded_here: Arc<AtomicBool>,
    /// The decoder's verdict on the container, for the validator; dropped
    /// unsent when the member is abandoned.
    container: Option<Sender<ContainerStats>>,
}

/// Bytes below this are copied: sharing a chunk costs a message.
const MIN_SHARED: usize = 4096;

/// A member's stored-byte digests, back from a job that carried them:
/// `None` when they could not be completed.
pub type Carried = Option<(Sha256, Option<Sha256>)>;

impl NestedJob {
    pub fn spawn(
        kind: NestedKind,
        depth: u32,
        target: String,
        findings: Sender<Finding>,
        limits: Limits,
    ) -> NestedJob {
        let (tx, rx) = stream::channel();
        let carried: Arc<OnceLock<Arc<Carrier>>> = Arc::default();
        let decoded_here: Arc<AtomicBool> = Arc::default();
        let (container_tx, container_rx) = crossbeam_channel::bounded(1);
        let upstream = Upstream {
            carried: carried.clone(),
            decoded_here: decoded_here.clone(),
            container: container_rx,
        };
        let (job_findings, job_target) = (findings.clone(), target.clone());
        let max_ratio = limits.max_expansion_ratio;
        let handle = std::thread::Builder::new()
            .name(format!("nested-{depth}"))
            .spawn(move || run(kind, depth, rx, &upstream, findings, &target, limits))
            .ok();
        let pool = Pool::default();
        let pending = pool.take_empty();
        NestedJob {
            kind,
            max_ratio,
            findings: job_findings,
            target: job_target,
            tx: ForwardingSender::new(tx),
            pool,
            pending,
            handle,
            carrier: None,
            carried,
            started: false,
            decided: false,
            inline: None,
            decoded_here,
            container: Some(container_tx),
        }
    }

    /// At the first bytes: a gzip-compressed archive is decoded here (see
    /// [`NestedJob`]). The first bytes are a whole chunk, or the whole
    /// member, as the validator's own detection would see them.
    fn decide(&mut self, first: &[u8]) {
        self.decided = true;
        let here = !matches!(self.kind, NestedKind::GitBundle | NestedKind::Layer)
            && detect(&first[..first.len().min(512)]) == Format::Gzip;
        if here {
            if let Some((carrier, _)) = self.carrier.as_ref().filter(|(c, _)| c.is_eager()) {
                // Rather than leave a core idle while the validator is
                // behind, hash its carried bytes here (see `Carrier::new`).
                // In a folder's feeders it only moved work from an
                // interleaved pass to a separate one: measured on the 1 GiB
                // sample folder, 1.02 s against 0.77 s.
                let carrier = carrier.clone();
                self.tx.while_full(move || carrier.share_front());
            }
            let gz = Gunzip::new(self.findings.clone(), &self.target, self.max_ratio);
            self.inline = Some((gz, DecodingHere::start()));
            self.decoded_here.store(true, Ordering::Release);
        }
    }

    /// The decoder's stream ended (or the decoder stopped on a finding):
    /// its last output and its verdict go to the validator.
    fn end_decoding(&mut self) {
        if let Some((gz, _here)) = self.inline.take() {
            let stats = gz.finish(&mut self.tx);
            if let Some(c) = self.container.take() {
                let _ = c.send(stats);
            }
        }
    }

    /// Carries the member's digest (and the archive's, when the member is
    /// read from the archive's stream) with the bytes fed from now on: the
    /// validator's thread hashes them alongside the content, and this
    /// thread when that one falls behind (see `carry`). Before the first
    /// byte only; `false`, with both left where they were, otherwise.
    pub fn carry(&mut self, member: &mut Sha256, archive: &mut Option<Sha256>) -> bool {
        if self.carrier.is_some() || self.started || !self.pending.is_empty() {
            return false;
        }
        let eager = readahead::walks_read_ahead();
        let carrier = Carrier::new(std::mem::take(member), archive.take(), eager);
        // Set before the first byte is sent, so the validator sees it.
        let _ = self.carried.set(carrier.clone());
        self.carrier = Some((carrier, 0));
        true
    }

    /// The archive's digest back before the member ends (see
    /// [`Carrier::recall_archive`]).
    pub fn recall_archive(&mut self) -> Option<Sha256> {
        self.send_pending();
        let (carrier, _) = self.carrier.as_ref()?;
        carrier.recall_archive()
    }

    fn send(&mut self, piece: Piece) {
        if !self.decided {
            self.decide(&piece);
        }
        if let Some((carrier, _)) = &self.carrier {
            carrier.push(piece.clone());
        }
        if self.decoded_here.load(Ordering::Relaxed) {
            let more = match self.inline.as_mut() {
                Some((gz, _)) => gz.push(&piece, &mut self.tx),
                None => return, // decoding already ended
            };
            if !more {
                self.end_decoding();
            }
        } else {
            self.tx.send_piece(piece);
        }
    }

    fn send_pending(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::replace(&mut self.pending, self.pool.take_empty());
            let chunk = self.pool.chunk(rest);
            self.send(chunk.into());
        }
    }

    /// Hands `bytes` on towards the validator: shared with the chunk they
    /// were read from when they are one this thread received (the outer
    /// walk's own input, see [`stream::shared_piece`]), copied otherwise.
    /// The first chunk is always a whole one, so format detection sees a
    /// whole first block.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if let Some((_, sent)) = self.carrier.as_mut() {
            *sent += bytes.len() as u64;
        }
        while !bytes.is_empty() {
            if self.started && bytes.len() >= MIN_SHARED {
                if let Some(piece) = stream::shared_piece(bytes) {
                    self.send_pending();
                    self.send(piece);
                    return;
                }
            }
            let room = CHUNK_SIZE - self.pending.len();
            let n = room.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.pending.len() == CHUNK_SIZE {
                self.send_pending();
                self.started = true;
            }
        }
    }

    /// The member ended: its last bytes go to the validator, and the
    /// carried digests come back complete (`None` if none were carried),
    /// the rest of the queue hashed here; the validator may still be
    /// judging ([`NestedJob::join`]).
    pub fn end_input(&mut self) -> Option<Carried> {
        self.send_pending();
        self.end_decoding();
        self.tx.close();
        self.carrier.take().map(|(c, sent)| c.finish(sent))
    }

    /// Whether the validator has finished (`join` returns at once).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// The validator's outcome, once its input has ended.
    pub fn join(mut self) -> Option<NestedOutcome> {
        // Unsent, the validator judges nothing: the input did not end.
        self.container = None;
        self.tx.close();
        self.handle.take().and_then(|h| h.join().ok()).flatten()
    }

    /// The member was cut short; the validator stops without findings. The
    /// carried digests come back with what was fed.
    pub fn abandon(mut self) -> (Option<NestedOutcome>, Option<Carried>) {
        if self.carrier.is_some() {
            self.send_pending();
        }
        self.inline = None;
        self.container = None;
        self.tx.abort();
        drop(self.tx);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let carried = self.carrier.take().map(|(c, sent)| c.finish(sent));
        (None, carried)
    }
}

/// What the validator's thread learns from the thread that feeds it.
struct Upstream {
    /// The member's carried digests (see `carry`), set before the first
    /// byte.
    carried: Arc<OnceLock<Arc<Carrier>>>,
    /// The input comes decoded (see [`NestedJob`]); set before the first
    /// message.
    decoded_here: Arc<AtomicBool>,
    /// The decoder's verdict, once its stream ended.
    container: crossbeam_channel::Receiver<ContainerStats>,
}

fn run(
    kind: NestedKind,
    depth: u32,
    rx: stream::MsgReceiver,
    upstream: &Upstream,
    findings: Sender<Finding>,
    target: &str,
    limits: Limits,
) -> Option<NestedOutcome> {
    let mut input = ChunkReader::new(rx);
    if kind == NestedKind::GitBundle {
        return super::gitcheck::run(&mut input, &findings, target, limits.max_expansion_ratio);
    }
    let first = input.fill_buf().map(|b| b[..b.len().min(512)].to_vec());
    // Both were set, if at all, before the first message.
    let decoded_here = upstream.decoded_here.load(Ordering::Acquire);
    if let Some(c) = upstream.carried.get() {
        c.hash_content_here();
    }
    let head = match first {
        Ok(head) => head,
        // The decoder stopped at once: the walk below reports it as such.
        Err(_) if decoded_here => Vec::new(),
        Err(_) => return None, // abandoned
    };
    let format = if decoded_here {
        Format::Tar
    } else {
        detect(&head)
    };
    if kind == NestedKind::Layer {
        return Some(layer_digest(format, input, &limits, &findings, target));
    }
    if format == Format::Unknown {
        let _ = std::io::copy(&mut input, &mut std::io::sink());
        if input.aborted() {
            return None;
        }
        let _ = findings.send(
            Finding::new(
                Code::BundleUnrecognisedFormat,
                target,
                if head.is_empty() {
                    format!("{target} is named like an archive but is empty (0 bytes)")
                } else {
                    format!(
                        "{target} is named like an archive but is not a tar, tar.gz or tar.zst (first bytes: {})",
                        hex::encode(&head[..head.len().min(8)])
                    )
                },
            )
            .evidence("first_bytes", hex::encode(&head[..head.len().min(8)])),
        );
        return Some(NestedOutcome::default());
    }
    let mut ctx = WalkContext::scoped(
        findings.clone(),
        limits,
        Scope::Nested { kind, depth },
        format!("{target}!"),
    );
    let mut stats = super::stream_walk(format, input, &mut ctx, target);
    if decoded_here {
        // The container's verdict, as `stream_walk` gives it when it
        // decodes: a decoder that stopped on a finding is not an abandoned
        // member. Nothing sent: the member was abandoned.
        let container = upstream.container.recv().ok()?;
        stats.intact &= !container.failed;
        stats.limited |= container.limited;
        stats.upstream_aborted &= !container.failed;
        stats.members = container.members;
    }
    if stats.upstream_aborted {
        return None;
    }
    let intact = stats.intact && ctx.rules.problems == 0;
    let mut outcome = NestedOutcome {
        intact,
        scan: std::mem::take(&mut ctx.scan),
        limited: stats.limited,
        ..Default::default()
    };
    if stats.limited {
        // Only a prefix was read: judging it as an image or a chart would
        // report files "missing" that were simply not reached.
        return Some(outcome);
    }
    match kind {
        NestedKind::Image => super::image::check(target, &ctx.walked(), intact, &mut outcome),
        NestedKind::Chart => super::chart::check(target, &ctx.walked(), intact),
        _ => {}
    }
    Some(outcome)
}

/// `--deep`: the SHA-256 of a layer's decompressed bytes, within the
/// expansion ratio and nested byte limits.
fn layer_digest(
    format: Format,
    mut input: ChunkReader,
    limits: &Limits,
    findings: &Sender<Finding>,
    target: &str,
) -> NestedOutcome {
    let consumed = std::cell::Cell::new(0u64);
    let digest = {
        let counted = CountedBuf {
            inner: &mut input,
            consumed: &consumed,
        };
        match format {
            Format::Gzip => sha256_of(
                flate2::bufread::MultiGzDecoder::new(counted),
                &consumed,
                limits,
                findings,
                target,
            ),
            Format::Zstd => match zstd::stream::read::Decoder::with_buffer(counted) {
                Ok(mut d) => {
                    let _ = d.window_log_max(super::container::ZSTD_WINDOW_LOG_MAX);
                    sha256_of(d, &consumed, limits, findings, target)
                }
                Err(_) => Err(false),
            },
            // Uncompressed: its digest is already the diff_id.
            _ => Err(false),
        }
    };
    let _ = std::io::copy(&mut input, &mut std::io::sink());
    NestedOutcome {
        intact: digest.is_ok(),
        limited: digest == Err(true),
        uncompressed_sha256: digest.ok(),
        ..Default::default()
    }
}

/// Counts the compressed bytes a decoder consumes, for the ratio limit.
struct CountedBuf<'a> {
    inner: &'a mut ChunkReader,
    consumed: &'a std::cell::Cell<u64>,
}

impl std::io::Read for CountedBuf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

impl BufRead for CountedBuf<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.consumed.set(self.consumed.get() + amt as u64);
        self.inner.consume(amt)
    }
}

/// SHA-256 of everything `r` yields. `Err(true)` when a limit stopped it
/// (and was reported), `Err(false)` when the data is broken.
fn sha256_of(
    mut r: impl std::io::Read,
    consumed: &std::cell::Cell<u64>,
    limits: &Limits,
    findings: &Sender<Finding>,
    target: &str,
) -> Result<[u8; 32], bool> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut out: u64 = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finalize()),
            Ok(n) => {
                super::carry::hash_content(&mut h, &buf[..n]);
                out += n as u64;
                let ratio = limits.max_expansion_ratio;
                if super::container::ratio_exceeded(out, consumed.get(), ratio) {
                    let f = super::container::ratio_finding(target, out, consumed.get(), ratio);
                    let _ = findings.send(f);
                    return Err(true);
                }
                if out > limits.max_nested_bytes {
                    let _ = findings.send(
                        Finding::new(
                            Code::BundleNestedTooLarge,
                            target,
                            format!(
                                "{target} decompresses to more than {} bytes (--max-nested-bytes); decompression stopped, the rest was not verified",
                                limits.max_nested_bytes
                            ),
                        )
                        .evidence("limit", limits.max_nested_bytes),
                    );
                    return Err(true);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(false),
        }
    }
}
