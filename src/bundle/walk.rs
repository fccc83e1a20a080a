//! What happens to every member, whatever the source (tar stream or staged
//! folder): safety rules, hashing, small-file capture, and hand-off of nested
//! archives (images, charts, content bundles) to their validators.
//!
//! Guarantees:
//! - every byte of every regular file is hashed exactly once, as it streams
//!   past; the release's content is never extracted to disk. The one
//!   exception is a Git bundle (`gitbundle.rs`): libgit2 indexes its pack in
//!   a scratch folder `gitbundle-<pid>-<n>` under the temporary directory,
//!   which is removed when the check ends, on every exit path and on
//!   SIGINT/SIGTERM (`crate::scratch`; tests/scratch.rs interrupts one);
//! - a nested archive is validated while its bytes stream past, on its own
//!   thread, from a copy of each chunk: never extracted, never buffered whole;
//! - the release's text files are scanned for external references on one
//!   scan thread, in member order, from a copy of their bytes through a
//!   bounded channel: the same findings as a scan on the walk's own thread;
//! - memory grows only with the number of entries (one small record each),
//!   never with their size nor the length of their names (a name over
//!   `PATH_MAX` is kept shortened): the only bytes kept are small files that
//!   rules must parse (manifests, image configs, `latest`, `Chart.yaml`),
//!   each under a size limit, and never buffered when the header already
//!   declares more;
//! - the number of entries is bounded too, in the release
//!   ([`Limits::max_entries`]) and in each nested archive
//!   ([`Limits::max_nested_entries`]), and nested archives past
//!   [`Limits::max_depth`] are reported, not opened; every limit hit is a
//!   failing finding, never a silent stop.

pub use super::container::{DEFAULT_MAX_EXPANSION_RATIO, RATIO_FLOOR};
pub use super::member::Captured;
use std::collections::HashMap;
use std::io::{BufRead, Read};

use super::sha256::{ArchiveDigest, Sha256};
use crossbeam_channel::Sender;

use super::manifest::{self, FileRecord};
use super::nested::{self, NestedJob, NestedKind, NestedOutcome};
use super::safety::{EntryKind, EntryMeta, SafetyRules};
use super::table::FileTable;
use crate::finding::{Code, Finding};

/// Limits that keep memory and time flat on hostile input. Each one that is
/// hit is a failing finding naming the member and the flag that raises it:
/// a limit never silently shortens the verification.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest release manifest read (it is parsed as it streams).
    pub max_manifest_size: u64,
    /// Largest small file (image config, index, Chart.yaml) kept for parsing
    /// inside a nested archive.
    pub max_nested_capture: u64,
    /// Deepest nesting of archives validated (the release is depth 0). 0
    /// means nested archives are not opened at all (`--no-content`), which
    /// is a choice, not a limit hit.
    pub max_depth: u32,
    /// Most tar bytes (after decompression) read from one nested archive.
    pub max_nested_bytes: u64,
    /// Most entries read from one nested archive: memory grows by one small
    /// record per entry, so this bounds it.
    pub max_nested_entries: u64,
    /// Most entries read from the release archive itself, for the same
    /// reason: a few tens of megabytes of compressed tar headers are
    /// millions of entries.
    pub max_entries: u64,
    /// Largest ratio of decompressed to compressed bytes, at any level,
    /// judged once more than [`RATIO_FLOOR`] bytes came out: a decompression
    /// bomb is stopped after a few megabytes of input instead of gigabytes
    /// of output.
    pub max_expansion_ratio: u64,
    /// Decompress image layers and check them against the config's diff_ids.
    pub deep: bool,
    /// What counts as inside the perimeter for the external-reference scan.
    pub perimeter: std::sync::Arc<super::refscan::Perimeter>,
}

/// Default of `--max-depth`: a Helm umbrella chart's subcharts' own
/// subcharts (`charts/a.tgz!a/charts/b.tgz!b/charts/c.tgz`) are depth 3;
/// each level costs a thread and its channels.
pub const DEFAULT_MAX_DEPTH: u32 = 3;
/// Nested validators left finishing while the walk goes on: one, so that a
/// member's validator finishes while the next member starts (two pipelines'
/// buffers at most, a few MiB).
const MAX_PENDING_JOBS: usize = 1;

/// Default of `--max-nested-bytes`: 32 GiB, well above the largest image a
/// release ships.
pub const DEFAULT_MAX_NESTED_BYTES: u64 = 32 << 30;
/// Default of `--max-nested-entries`.
pub const DEFAULT_MAX_NESTED_ENTRIES: u64 = 100_000;
/// Default of `--max-entries`: releases hold thousands of entries (images,
/// charts and content bundles are one entry each); a million records take
/// about 200 MiB, the most a hostile header flood can make the pass use.
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_size: 16 << 20,
            max_nested_capture: 4 << 20,
            max_depth: DEFAULT_MAX_DEPTH,
            max_nested_bytes: DEFAULT_MAX_NESTED_BYTES,
            max_nested_entries: DEFAULT_MAX_NESTED_ENTRIES,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_expansion_ratio: DEFAULT_MAX_EXPANSION_RATIO,
            deep: false,
            perimeter: Default::default(),
        }
    }
}

/// What all captured files of one archive may take together: twice the
/// manifest limit in the release (a few manifests, their signatures and
/// `latest` files), four times the per-file limit in a nested archive (an
/// image's index, manifests and configs are kilobytes each).
fn capture_budget(limits: &Limits, scope: &Scope) -> u64 {
    match scope {
        Scope::Release => limits.max_manifest_size.saturating_mul(2),
        Scope::Nested { .. } => limits.max_nested_capture.saturating_mul(4),
    }
}

/// How many bytes of this file to keep, if any (before the budget).
fn capture_limit(limits: &Limits, scope: &Scope, path: &str) -> Option<u64> {
    match scope {
        Scope::Release => {
            if manifest::is_candidate(path) {
                Some(limits.max_manifest_size)
            } else if super::content::is_latest_file(path) {
                Some(4096)
            } else if path
                .strip_suffix(".minisig")
                .is_some_and(manifest::is_candidate)
            {
                Some(64 << 10)
            } else if path.ends_with(super::signing::SIGSTORE_SUFFIX) {
                // A Sigstore bundle is a few KiB; verified after the pass.
                Some(1 << 20)
            } else {
                None
            }
        }
        Scope::Nested { kind, .. } => {
            nested::wants_capture(*kind, path).then_some(limits.max_nested_capture)
        }
    }
}

/// Whether a file is scanned for external references as it streams: text
/// files, except inside images (their layers are not opened) and with
/// `--no-content` (depth 0): the scan reads what the text says, which is
/// content; that pass checks integrity only.
fn scans_text(limits: &Limits, scope: &Scope, path: &str) -> bool {
    limits.max_depth > 0
        && !matches!(
            scope,
            Scope::Nested {
                kind: NestedKind::Image | NestedKind::Layer | NestedKind::GitBundle,
                ..
            }
        )
        && super::refscan::is_text_file(path)
        // nor in an image stored as a folder: its JSON named by digest is
        // image metadata, as inside an image file.
        && !(matches!(scope, Scope::Release)
            && matches!(super::image::folder_capture(path), Some(None))
            && path.ends_with(".json")
            && !path.ends_with("index.json"))
}

/// Whether a release file needs nothing but its digest and size, so that
/// they may be computed elsewhere (a folder's files are hashed in parallel,
/// see `dirwalk`): no capture, no nested validator, no scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashOnly {
    No,
    Yes,
    /// An image blob, kept only when its data starts with this byte: a
    /// digest suffices when it does not.
    UnlessFirstByte(u8),
}

/// [`HashOnly`] for the release file at `path` (as [`super::safety::entry_path`]
/// spells it): the decisions [`WalkContext::member`] takes, from the path
/// and the limits alone.
pub fn hash_only(limits: &Limits, path: &str) -> HashOnly {
    let scope = Scope::Release;
    // A `manifest.json` is parsed as it streams wherever it is.
    let captured = capture_limit(limits, &scope, path).is_some() || manifest::is_json(path);
    let nested = limits.max_depth > 0 && nested::classify(path, limits.deep).is_some();
    if captured || nested || scans_text(limits, &scope, path) {
        return HashOnly::No;
    }
    match super::image::folder_capture(path) {
        None => HashOnly::Yes,
        Some(Some(b)) => HashOnly::UnlessFirstByte(b),
        Some(None) => HashOnly::No,
    }
}

/// A file's digest and size, computed by whoever read it.
#[derive(Debug, Clone, Copy)]
pub struct Hashed {
    pub size: u64,
    pub sha256: [u8; 32],
    /// Its first byte (`None` when empty).
    pub first: Option<u8>,
}

/// A release manifest read during the pass, judged at its end.
struct PendingManifest {
    path: String,
    listing: Result<Option<manifest::Listing>, manifest::Malformed>,
    /// The text, kept only when a `--pubkey` must still check its
    /// signature (which may come later in the archive).
    signed_text: Option<Vec<u8>>,
}

/// Where the walk is: the release itself, or inside a nested archive.
#[derive(Debug, Clone)]
pub enum Scope {
    Release,
    Nested { kind: NestedKind, depth: u32 },
}

/// What [`WalkContext::finish`] hands back.
pub struct Finished {
    pub files: FileTable,
    pub manifest_signatures: usize,
    pub images: Vec<String>,
    pub supply: Vec<super::imagesig::ImageSupply>,
}

/// State shared by every member of one input.
pub struct WalkContext {
    pub findings: Sender<Finding>,
    pub limits: Limits,
    pub scope: Scope,
    /// Prepended to member paths in targets (`outer.tar.gz!`), empty for the
    /// release itself.
    pub prefix: String,
    pub rules: SafetyRules,
    pub files: FileTable,
    pub captured: Vec<Captured>,
    /// Release manifests, read as their members ended.
    manifests: Vec<PendingManifest>,
    /// What each nested validator reported, by member path.
    pub nested: HashMap<String, NestedOutcome>,
    /// Nested validators whose member ended and whose bytes are all hashed,
    /// still judging the last of their content: the walk goes on meanwhile
    /// (at most [`MAX_PENDING_JOBS`] wait), and [`WalkContext::harvest`]
    /// collects what they report, before anything reads `nested`.
    pending_jobs: std::collections::VecDeque<(String, NestedJob)>,
    /// External-reference scan totals (this archive and its nested ones).
    pub scan: super::refscan::ScanStats,
    pub file_bytes: u64,
    /// `--pubkey`, to check `manifest.json.minisig` files.
    pub manifest_key: Option<std::sync::Arc<super::signature::MinisignKey>>,
    /// A plain `.tar` release's own digest, when the tar thread takes it
    /// (see [`super::sha256`]): members read by
    /// [`WalkContext::member_in_stream`] are hashed into it in the same pass.
    pub archive_digest: Option<ArchiveDigest>,
    /// A manifest was found but rejected (too large), so "no manifest" would
    /// be misleading.
    manifest_seen: bool,
    /// The release's reference scan, on a thread of its own once a text
    /// file comes (see [`ScanThread`]); `None` before, and always inside a
    /// nested archive, whose validator thread scans its text itself.
    scan_thread: Option<ScanThread>,
    /// Bytes that captured files may still take. Each file has its own
    /// limit, but an archive can hold any number of them (a hundred 16 MiB
    /// manifests, an image of a thousand JSON blobs): this bounds their sum.
    capture_budget: u64,
    /// The same for the small files of images stored as folders (release
    /// only), apart so that they never crowd out a release manifest.
    image_budget: u64,
}

/// A member's data on its way through the walk, read once: hashed,
/// counted, fed to the nested job and the reference scanner, and captured
/// up to a limit. A streamed manifest's parser reads through it too; the
/// rest is taken straight from the source's buffer ([`Tee::drain`]), never
/// copied into one of ours first.
struct Tee<'a> {
    data: &'a mut dyn BufRead,
    sink: TeeSink<'a>,
    /// The member's read error, kept whole for the caller (a reader of the
    /// tee only sees a stand-in).
    error: Option<std::io::Error>,
}

/// Where a member's bytes go, apart from their source so that a slice of
/// the source's buffer can be handed over while the source is borrowed.
struct TeeSink<'a> {
    hasher: &'a mut Sha256,
    /// The archive's digest, to pair with when the data is the archive's
    /// own stream.
    archive: Option<&'a ArchiveDigest>,
    scanner: Option<&'a mut Scan>,
    job: Option<&'a mut NestedJob>,
    /// The job carries the member's digest (and, while `lent`, the
    /// archive's): the bytes are hashed on its thread (see `carry`).
    carried: bool,
    lent: bool,
    size: u64,
    /// Past this many bytes the member is too large: the capture is
    /// dropped (`over`). `None`: nothing to judge.
    limit: Option<u64>,
    capture: Option<Vec<u8>>,
    /// What the capture reserves once its first bytes are kept (the
    /// member's declared size, within the limit): not before, since most
    /// members that may be captured are dropped at their first byte (an
    /// image's layers), and a buffer of megabytes taken and freed for each
    /// of them costs memory the pass never uses (see `member_from`).
    reserve: usize,
    /// Keep the capture only if the data starts with this byte (`{` for a
    /// JSON object, `[` for a `docker save` manifest).
    first_byte: Option<u8>,
    /// Once over the limit, fail the read, so that a parser stops.
    stop_when_over: bool,
    over: bool,
}

impl TeeSink<'_> {
    /// `in_stream`: `chunk` is what the source's `fill_buf` returned, not
    /// yet consumed (the archive's digest may take it in the same pass).
    fn take(&mut self, chunk: &[u8], in_stream: bool) {
        if self.size == 0 && self.first_byte.is_some() && chunk.first() != self.first_byte.as_ref()
        {
            self.capture = None;
            // A streamed manifest keeps its limit: its parser must stop there.
            if !self.stop_when_over {
                self.limit = None;
            }
        }
        match (self.carried, self.archive) {
            (true, Some(a)) if self.lent => {
                if !(in_stream && a.promise(chunk)) {
                    // Not the stream's own buffer: the archive's digest
                    // comes back here, with every byte fed so far, and the
                    // reader hashes this chunk when it is taken.
                    let back = self.job.as_mut().and_then(|j| j.recall_archive());
                    a.give_back(back);
                    self.lent = false;
                }
            }
            (true, _) => {}
            (false, Some(a)) if in_stream => a.pair(self.hasher, chunk),
            // Inside a nested archive, alongside the bytes this thread
            // carries for the archive around it.
            (false, _) => super::carry::hash_content(self.hasher, chunk),
        }
        self.size += chunk.len() as u64;
        if let Some(j) = self.job.as_mut() {
            j.feed(chunk);
        }
        if let Some(s) = self.scanner.as_mut() {
            s.feed(chunk);
        }
        if self.limit.is_some_and(|l| self.size > l) {
            self.over = true;
            self.capture = None;
            self.limit = None;
        }
        if let Some(c) = self.capture.as_mut() {
            if c.capacity() == 0 {
                c.reserve_exact(self.reserve);
            }
            c.extend_from_slice(chunk);
        }
    }
}

impl Tee<'_> {
    /// Takes everything left of the member, to its end or its first error.
    fn drain(&mut self) {
        if self.error.is_some() {
            return;
        }
        loop {
            match self.data.fill_buf() {
                Ok([]) => return,
                Ok(chunk) => {
                    let n = chunk.len();
                    self.sink.take(chunk, true);
                    self.data.consume(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let stand_in = || std::io::Error::other("the member could not be read");
        if self.error.is_some() {
            return Err(stand_in());
        }
        let n = loop {
            match self.data.read(out) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.error = Some(e);
                    return Err(stand_in());
                }
            }
        };
        self.sink.take(&out[..n], false);
        if self.sink.over && self.sink.stop_when_over {
            return Err(std::io::Error::other("over the manifest size limit"));
        }
        Ok(n)
    }
}

/// A release file whose bytes go to its validator from another thread
/// (see [`WalkContext::defers`]).
pub struct Deferred {
    path: String,
    /// The validator, and whether it carries the member's digest.
    job: Option<(NestedJob, bool)>,
    hasher: Sha256,
}

/// How a [`Deferred`] file's feeding ended.
enum Ended {
    /// Read to its end: the validator left to finish, and the digest it
    /// carried (`None`: not carried).
    Whole(Option<Box<NestedJob>>, Option<super::nested::Carried>),
    /// A read error: the validator was stopped; what it had judged.
    Failed(std::io::Error, Option<super::nested::NestedOutcome>),
}

/// A [`Deferred`] file, fed: for [`WalkContext::end_deferred`].
pub struct Fed {
    path: String,
    hasher: Sha256,
    size: u64,
    ended: Ended,
}

/// A member whose carried digest did not come back whole.
fn digest_incomplete() -> DataError {
    DataError(std::io::Error::other(
        "its SHA-256 could not be completed (an internal error of this pass, not a fault of the archive)",
    ))
}

impl Deferred {
    /// Feeds the file's bytes to its validator, hashing them (alongside
    /// the validator's content, when carried), to the end or the first
    /// read error. Runs on any thread.
    pub fn feed(self, data: &mut dyn BufRead) -> Fed {
        let Deferred {
            path,
            mut job,
            mut hasher,
        } = self;
        let (mut size, mut error) = (0u64, None);
        loop {
            match data.fill_buf() {
                Ok([]) => break,
                Ok(chunk) => {
                    let n = chunk.len();
                    match job.as_mut() {
                        Some((j, carried)) => {
                            if !*carried {
                                hasher.update(chunk);
                            }
                            j.feed(chunk);
                        }
                        None => hasher.update(chunk),
                    }
                    size += n as u64;
                    data.consume(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let ended = match (error, job.map(|(j, _)| j)) {
            (None, Some(mut j)) => {
                let back = j.end_input();
                Ended::Whole(Some(Box::new(j)), back)
            }
            (None, None) => Ended::Whole(None, None),
            (Some(e), Some(j)) => {
                // The digest of a member that could not be read is not
                // needed: it gets no record.
                let (outcome, _) = j.abandon();
                Ended::Failed(e, outcome)
            }
            (Some(e), None) => Ended::Failed(e, None),
        };
        Fed {
            path,
            hasher,
            size,
            ended,
        }
    }
}

/// One text file's reference scan, done here or on the scan thread.
enum Scan {
    // Boxed: a scanner is several times the size of a feed.
    Inline(Box<super::refscan::LineScanner>),
    Thread(ScanFeed),
}

impl Scan {
    fn feed(&mut self, bytes: &[u8]) {
        match self {
            Scan::Inline(s) => s.feed(bytes),
            Scan::Thread(f) => f.feed(bytes),
        }
    }

    /// The file ended: its totals (on the thread: counted there, and
    /// returned by [`ScanThread::finish`]). A scan dropped without this,
    /// for a file cut short, reports nothing, wherever it runs.
    fn finish(self, findings: &Sender<Finding>) -> super::refscan::ScanStats {
        match self {
            Scan::Inline(s) => s.finish(findings),
            Scan::Thread(f) => {
                f.finish();
                Default::default()
            }
        }
    }
}

enum ScanMsg {
    Start(String),
    Data(super::stream::Chunk),
    End,
    /// The file was cut short: forget it, as an inline scan is dropped.
    Abandon,
}

/// The release's reference scan on a thread of its own, fed through a
/// bounded channel: scanning text costs the release's tar thread (the
/// critical path of the pass) one copy of each text file's bytes instead
/// of the scan. Files are scanned one after the other, in member order,
/// with the same scanner as inline, so findings and totals are the same.
struct ScanThread {
    tx: Sender<ScanMsg>,
    pool: super::stream::Pool,
    handle: std::thread::JoinHandle<super::refscan::ScanStats>,
}

impl ScanThread {
    /// `None` when the thread cannot be started: the scan then runs inline.
    fn spawn(limits: &Limits, findings: &Sender<Finding>) -> Option<ScanThread> {
        let (tx, rx) = crossbeam_channel::bounded::<ScanMsg>(super::stream::CHANNEL_DEPTH);
        let perimeter = limits.perimeter.clone();
        let findings = findings.clone();
        let handle = std::thread::Builder::new()
            .name("refscan".into())
            .spawn(move || {
                let mut total = super::refscan::ScanStats::default();
                let mut current = None;
                for msg in rx {
                    match msg {
                        ScanMsg::Start(location) => {
                            current = Some(super::refscan::LineScanner::new(
                                location,
                                perimeter.clone(),
                            ));
                        }
                        ScanMsg::Data(c) => {
                            if let Some(s) = current.as_mut() {
                                s.feed(&c);
                            }
                        }
                        ScanMsg::End => {
                            if let Some(s) = current.take() {
                                total += s.finish(&findings);
                            }
                        }
                        ScanMsg::Abandon => current = None,
                    }
                }
                total
            })
            .ok()?;
        Some(ScanThread {
            tx,
            pool: super::stream::Pool::default(),
            handle,
        })
    }

    fn file(&self, location: String) -> ScanFeed {
        let _ = self.tx.send(ScanMsg::Start(location));
        ScanFeed {
            tx: self.tx.clone(),
            pool: self.pool.clone(),
            pending: Vec::new(),
            done: false,
        }
    }

    /// Waits for the last file's scan; the totals of every file.
    fn finish(self) -> super::refscan::ScanStats {
        drop(self.tx);
        self.handle.join().unwrap_or_default()
    }
}

/// One file's bytes on their way to the scan thread, in chunks of
/// [`super::stream::CHUNK_SIZE`] from the pool.
struct ScanFeed {
    tx: Sender<ScanMsg>,
    pool: super::stream::Pool,
    pending: Vec<u8>,
    done: bool,
}

impl ScanFeed {
    fn feed(&mut self, mut bytes: &[u8]) {
        use super::stream::CHUNK_SIZE;
        while !bytes.is_empty() {
            if self.pending.capacity() == 0 {
                self.pending = self.pool.take_empty();
            }
            let n = (CHUNK_SIZE - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.pending.len() == CHUNK_SIZE {
                self.send_pending();
            }
        }
    }

    fn send_pending(&mut self) {
        let full = std::mem::take(&mut self.pending);
        let _ = self.tx.send(ScanMsg::Data(self.pool.chunk(full)));
    }

    fn finish(mut self) {
        if !self.pending.is_empty() {
            self.send_pending();
        }
        let _ = self.tx.send(ScanMsg::End);
        self.done = true;
    }
}

impl Drop for ScanFeed {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.tx.send(ScanMsg::Abandon);
        }
    }
}

/// Reading a member's data failed; the caller knows whether the archive
/// ended or the device failed.
pub struct DataError(pub std::io::Error);

impl WalkContext {
    /// What the rules see of this archive once its walk has ended.
    pub fn walked(&self) -> super::member::Walked<'_> {
        super::member::Walked {
            findings: &self.findings,
            files: &self.files,
            captured: &self.captured,
            nested: &self.nested,
        }
    }

    pub fn new(findings: Sender<Finding>, limits: Limits) -> Self {
        Self::scoped(findings, limits, Scope::Release, String::new())
    }

    pub fn scoped(findings: Sender<Finding>, limits: Limits, scope: Scope, prefix: String) -> Self {
        let capture_budget = capture_budget(&limits, &scope);
        WalkContext {
            capture_budget,
            image_budget: limits.max_nested_capture.saturating_mul(4),
            findings,
            limits,
            scope,
            rules: SafetyRules::with_prefix(prefix.clone()),
            prefix,
            files: FileTable::new(),
            captured: Vec::new(),
            manifests: Vec::new(),
            nested: HashMap::new(),
            pending_jobs: Default::default(),
            scan: Default::default(),
            file_bytes: 0,
            manifest_key: None,
            archive_digest: None,
            manifest_seen: false,
            scan_thread: None,
        }
    }

    /// Collects what finished nested validators reported, waiting for the
    /// oldest until at most `keep` are left running.
    pub fn harvest(&mut self, keep: usize) {
        while let Some((_, job)) = self.pending_jobs.front() {
            if self.pending_jobs.len() <= keep && !job.is_finished() {
                break;
            }
            let (path, job) = self.pending_jobs.pop_front().expect("front present");
            if let Some(mut o) = job.join() {
                self.scan += std::mem::take(&mut o.scan);
                self.nested.insert(path, o);
            }
        }
    }

    fn capture_limit(&self, path: &str) -> Option<u64> {
        capture_limit(&self.limits, &self.scope, path)
    }

    /// The scan of one text file: handed to the release's scan thread
    /// (started with the first one), or done here inside a nested archive
    /// or when no thread could be started.
    fn scan_for(&mut self, location: String) -> Scan {
        if matches!(self.scope, Scope::Release) && self.scan_thread.is_none() {
            self.scan_thread = ScanThread::spawn(&self.limits, &self.findings);
        }
        match &self.scan_thread {
            Some(t) => Scan::Thread(t.file(location)),
            None => Scan::Inline(Box::new(super::refscan::LineScanner::new(
                location,
                self.limits.perimeter.clone(),
            ))),
        }
    }

    /// Which validator, if any, takes this member's bytes. An archive past
    /// the depth limit is reported and only hashed.
    fn nested_kind(&self, path: &str) -> Option<(NestedKind, u32)> {
        let depth = match &self.scope {
            Scope::Release => 1,
            Scope::Nested { depth, .. } => depth + 1,
        };
        // `--no-content` (depth 0) is a choice, not a limit: say nothing.
        if self.limits.max_depth == 0 {
            return None;
        }
        let kind = match &self.scope {
            Scope::Release => nested::classify(path, self.limits.deep),
            Scope::Nested { kind, .. } => nested::classify_inner(*kind, path, self.limits.deep),
        }?;
        if depth > self.limits.max_depth {
            let target = format!("{}{}", self.prefix, path);
            let _ = self.findings.send(
                Finding::new(
                    Code::BundleNestedTooDeep,
                    target.clone(),
                    format!(
                        "{target} is an archive at nesting depth {depth}, deeper than {} (--max-depth): it was hashed but not opened",
                        self.limits.max_depth
                    ),
                )
                .evidence("depth", depth)
                .evidence("limit", self.limits.max_depth),
            );
            return None;
        }
        Some((kind, depth))
    }

    /// Whether a release file at `path` (as the rules see it) needs only
    /// its digest and its nested validator: nothing captured, scanned or
    /// parsed here. A folder reads such a file on another thread
    /// ([`WalkContext::begin_deferred`]) so that several images are
    /// validated at once; an archive's members come in one stream and
    /// cannot be.
    pub fn defers(&self, path: &str) -> bool {
        matches!(self.scope, Scope::Release)
            && self.limits.max_depth >= 1
            && nested::classify(path, self.limits.deep).is_some()
            && self.capture_limit(path).is_none()
            && super::image::folder_capture(path).is_none()
            && !scans_text(&self.limits, &self.scope, path)
            && !manifest::is_candidate(path)
    }

    /// The first half of [`WalkContext::member`] for a file [`defers`]
    /// accepts: the rules, and its validator started with the member's
    /// digest carried. The returned [`Deferred`] is fed on any thread; the
    /// record is made by [`WalkContext::end_deferred`], in the walk's
    /// order.
    ///
    /// [`defers`]: WalkContext::defers
    pub fn begin_deferred(&mut self, meta: &EntryMeta<'_>) -> Deferred {
        let path = self.rules.check(meta, &self.findings);
        let mut hasher = Sha256::new();
        let job = self.nested_kind(&path).map(|(kind, depth)| {
            let mut job = NestedJob::spawn(
                kind,
                depth,
                format!("{}{}", self.prefix, path),
                self.findings.clone(),
                self.limits.clone(),
            );
            let carried = job.carry(&mut hasher, &mut None);
            (job, carried)
        });
        Deferred { path, job, hasher }
    }

    /// The second half of [`WalkContext::member`] for a [`Deferred`] file:
    /// its validator set aside to finish, its record made; `Err` is its
    /// read error, reported by the caller, and then it has no record, as
    /// in [`WalkContext::member`].
    pub fn end_deferred(&mut self, fed: Fed) -> Result<(), DataError> {
        let Fed {
            path,
            mut hasher,
            size,
            ended,
        } = fed;
        match ended {
            Ended::Whole(job, back) => {
                if let Some(j) = job {
                    self.pending_jobs.push_back((path.clone(), *j));
                    self.harvest(MAX_PENDING_JOBS);
                }
                match back {
                    Some(Some((member, _))) => hasher = member,
                    Some(None) => return Err(digest_incomplete()),
                    None => {}
                }
            }
            Ended::Failed(e, outcome) => {
                if let Some(mut o) = outcome {
                    self.scan += std::mem::take(&mut o.scan);
                    self.nested.insert(path, o);
                }
                return Err(DataError(e));
            }
        }
        self.record(&path, size, hasher.finalize());
        Ok(())
    }

    /// A regular file's record: counted, and in the table (a later
    /// duplicate replaces the earlier one, as on extraction).
    fn record(&mut self, path: &str, size: u64, sha256: [u8; 32]) {
        self.file_bytes += size;
        self.files.insert(path, FileRecord { size, sha256 });
    }

    /// [`WalkContext::member`] for a release file whose data was already
    /// read and hashed elsewhere, and for which [`hash_only`] said that is
    /// all it needs (the caller checks [`Hashed::first`] against
    /// [`HashOnly::UnlessFirstByte`]): the same rules, the same record.
    pub fn member_hashed(
        &mut self,
        meta: &EntryMeta<'_>,
        hashed: Result<Hashed, std::io::Error>,
    ) -> Result<(), DataError> {
        let path = self.rules.check(meta, &self.findings);
        if meta.kind != EntryKind::File {
            return Ok(());
        }
        let h = hashed.map_err(DataError)?;
        self.record(&path, h.size, h.sha256);
        Ok(())
    }

    /// Applies the safety rules to one member, then hashes its data when it
    /// is a regular file. `data` must yield exactly the member's bytes.
    pub fn member(
        &mut self,
        meta: &EntryMeta<'_>,
        data: &mut dyn BufRead,
    ) -> Result<(), DataError> {
        self.member_from(meta, data, false)
    }

    /// [`WalkContext::member`] for data that is the archive's own stream
    /// (a tar member's stored bytes, read through the reader that takes
    /// [`WalkContext::archive_digest`]): its digest and the archive's are
    /// computed in one pass.
    pub fn member_in_stream(
        &mut self,
        meta: &EntryMeta<'_>,
        data: &mut dyn BufRead,
    ) -> Result<(), DataError> {
        self.member_from(meta, data, true)
    }

    fn member_from(
        &mut self,
        meta: &EntryMeta<'_>,
        data: &mut dyn BufRead,
        in_stream: bool,
    ) -> Result<(), DataError> {
        let path = self.rules.check(meta, &self.findings);
        if meta.kind != EntryKind::File {
            return Ok(());
        }
        let file_limit = self.capture_limit(&path);
        // A file that may be part of an image stored as a folder: kept for
        // the image rules, from its own budget.
        let image_file = match self.scope {
            Scope::Release => super::image::folder_capture(&path),
            Scope::Nested { .. } => None,
        };
        let (file_limit, image_budget) = match (file_limit, image_file) {
            (None, Some(_)) => (Some(self.limits.max_nested_capture), true),
            (l, _) => (l, false),
        };
        let budget = if image_budget {
            self.image_budget
        } else {
            self.capture_budget
        };
        let limit = file_limit.map(|l| l.min(budget));
        // A file whose header already says it is over the limit is never
        // buffered at all; one within it is buffered in one allocation,
        // made when its first bytes are kept (`TeeSink::reserve`).
        let declared_too_large = matches!((limit, meta.size), (Some(l), Some(s)) if s > l);
        let mut captured: Option<Vec<u8>> = match limit {
            Some(_) if declared_too_large => None,
            Some(_) => Some(Vec::new()),
            None => None,
        };
        let reserve = match (limit, meta.size) {
            (Some(l), Some(s)) => s.min(l) as usize,
            _ => 0,
        };
        let mut too_large = declared_too_large;
        let mut job: Option<NestedJob> = self.nested_kind(&path).map(|(kind, depth)| {
            NestedJob::spawn(
                kind,
                depth,
                format!("{}{}", self.prefix, path),
                self.findings.clone(),
                self.limits.clone(),
            )
        });
        let scan_text = scans_text(&self.limits, &self.scope, &path);
        let mut scanner = scan_text.then(|| self.scan_for(format!("{}{}", self.prefix, path)));
        // Blobs of an image are kept only when they look like JSON
        // (manifests, configs); layers are never buffered.
        let mut first_byte = match self.scope {
            Scope::Nested { .. } if path.starts_with("blobs/") => Some(b'{'),
            Scope::Nested { .. } => None,
            Scope::Release if image_budget => image_file.flatten(),
            Scope::Release => None,
        };
        let mut hasher = Sha256::new();
        // A release's manifest (manifest.json, SHA256SUMS) is parsed as its
        // data streams by (manifest::Listing): its text, the largest
        // per-file cost of the pass, is never held whole unless a
        // signature needs it.
        let streamed = matches!(self.scope, Scope::Release)
            && captured.is_some()
            && job.is_none()
            && manifest::is_candidate(&path);
        let signed = manifest::is_json(&path) && self.manifest_key.is_some();
        if streamed && !signed {
            // Its text is kept only if it is a `docker save` manifest (an
            // array): an image stored as a folder needs it.
            if image_file == Some(Some(b'[')) {
                first_byte = Some(b'[');
            } else {
                captured = None;
            }
        }
        // A nested archive's validator hashes its stored bytes too,
        // alongside its content, in one interleaved pass (see `carry`).
        let archive_digest = self.archive_digest.clone().filter(|_| in_stream);
        let archive = archive_digest.as_ref();
        let (mut carried, mut lent) = (false, false);
        if let Some(j) = job.as_mut() {
            let mut lend = archive.and_then(ArchiveDigest::lend);
            // An archive digest that cannot be lent stays here, paired.
            if archive.is_none() || lend.is_some() {
                if j.carry(&mut hasher, &mut lend) {
                    (carried, lent) = (true, archive.is_some());
                } else if let (Some(a), Some(back)) = (archive, lend) {
                    a.give_back(Some(back));
                }
            }
        }
        let mut tee = Tee {
            data: &mut *data,
            sink: TeeSink {
                hasher: &mut hasher,
                archive,
                scanner: scanner.as_mut(),
                job: job.as_mut(),
                carried,
                lent,
                size: 0,
                limit: (streamed || captured.is_some()).then(|| limit.unwrap_or(0)),
                capture: captured,
                reserve,
                first_byte,
                stop_when_over: streamed,
                over: false,
            },
            error: None,
        };
        let listing =
            streamed.then(|| manifest::compile_stream(&path, &mut tee, meta.size, &mut self.files));
        // Everything (or what the parser left: after an error, trailing
        // bytes) is read, hashed and scanned to the member's end.
        tee.sink.stop_when_over = false;
        tee.drain();
        let (size, over, error) = (tee.sink.size, tee.sink.over, tee.error.take());
        lent = tee.sink.lent;
        let mut captured = tee.sink.capture.take();
        too_large |= over;
        let mut streamed_listing = None;
        if streamed && !over {
            captured = Some(captured.unwrap_or_default());
            streamed_listing = listing;
        }
        let mut result = match error {
            Some(e) => Err(DataError(e)),
            None => Ok(()),
        };
        if let Some(mut j) = job {
            // A member cut short must not be judged as a broken image: the
            // truncation is reported once, by the stream that saw it.
            let back = if result.is_ok() {
                // Every byte is fed and its digests are complete: the walk
                // goes on while the validator judges the rest of the
                // content (the pipeline's last few MiB).
                let back = j.end_input();
                self.pending_jobs.push_back((path.clone(), j));
                self.harvest(MAX_PENDING_JOBS);
                back
            } else {
                let (outcome, back) = j.abandon();
                if let Some(mut o) = outcome {
                    self.scan += std::mem::take(&mut o.scan);
                    self.nested.insert(path.clone(), o);
                }
                back
            };
            match back {
                Some(Some((member, archive_back))) => {
                    hasher = member;
                    if lent {
                        if let Some(a) = archive {
                            a.give_back(archive_back);
                        }
                    }
                }
                Some(None) => {
                    if let (true, Some(a)) = (lent, archive) {
                        a.give_back(None);
                    }
                    if result.is_ok() {
                        result = Err(digest_incomplete());
                    }
                }
                None => {}
            }
        }
        result?;
        if let Some(s) = scanner {
            self.scan += s.finish(&self.findings);
        }
        if too_large && matches!(self.scope, Scope::Release) && manifest::is_candidate(&path) {
            self.manifest_seen = true;
            let max = self.limits.max_manifest_size;
            let (why, limit) = if size > max {
                (
                    format!("over the {max} byte limit for manifests (--max-manifest-size)"),
                    max,
                )
            } else {
                let total = capture_budget(&self.limits, &self.scope);
                (
                    format!("more than the manifests before it left of the {total} bytes all manifests may take together (twice --max-manifest-size)"),
                    total,
                )
            };
            let _ = self.findings.send(
                Finding::new(
                    Code::BundleManifestTooLarge,
                    path.clone(),
                    format!("{path} is {size} bytes, {why}"),
                )
                .evidence("size", size)
                .evidence("limit", limit),
            );
        }
        if let Some(bytes) = captured {
            // A manifest is charged its whole size, streamed or not: the
            // budget keeps its meaning ("all manifests together").
            let charged = if streamed_listing.is_some() {
                size
            } else {
                bytes.len() as u64
            };
            if image_budget {
                self.image_budget = self.image_budget.saturating_sub(charged);
            } else {
                self.capture_budget = self.capture_budget.saturating_sub(charged);
            }
            if matches!(self.scope, Scope::Release) && manifest::is_candidate(&path) {
                // Read now, against the files hashed so far, so that its
                // text can go (see manifest::Listing); judged in `finish`.
                let listing = match streamed_listing {
                    Some(l) => l,
                    None => manifest::compile(&path, &bytes, &mut self.files),
                };
                // Not a release manifest but a `docker save` one: kept for
                // the image rules of its folder.
                if matches!(listing, Ok(None)) && bytes.first() == Some(&b'[') {
                    self.image_budget = self.image_budget.saturating_sub(bytes.len() as u64);
                    self.captured.push(Captured {
                        path: path.clone(),
                        bytes: bytes.clone(),
                    });
                }
                let signed_text =
                    (manifest::is_json(&path) && self.manifest_key.is_some()).then_some(bytes);
                self.manifests.push(PendingManifest {
                    path: path.clone(),
                    listing,
                    signed_text,
                });
            } else {
                self.captured.push(Captured {
                    path: path.clone(),
                    bytes,
                });
            }
        }
        self.record(&path, size, hasher.finalize());
        Ok(())
    }

    /// After the pass over the release: safety summary, manifests and
    /// content bundles. Returns the table of hashed files and the number of
    /// manifest signatures found.
    /// The release-level rules, once the walk is done: returns the file
    /// table, how many manifest signatures were seen, the references of
    /// every intact image (as data: the findings that show them may be
    /// capped, the registry check must see them all), and every image with
    /// the signatures and attestations attached to it (verified by the
    /// caller, which holds the Sigstore policy).
    pub fn finish(mut self, target: &str, complete: bool) -> Finished {
        self.harvest(0);
        if let Some(t) = self.scan_thread.take() {
            self.scan += t.finish();
        }
        let WalkContext {
            findings,
            rules,
            files,
            captured,
            manifests,
            nested,
            manifest_seen,
            limits,
            manifest_key,
            scan,
            ..
        } = self;
        // `--no-content` scans nothing: no count of nothing scanned.
        if limits.max_depth > 0 && (complete || scan.files > 0) {
            let _ = findings.send(
                Finding::new(
                    Code::RefsScanned,
                    target,
                    format!(
                        "{} text files scanned: {} references, {} outside the perimeter",
                        scan.files, scan.references, scan.external
                    ),
                )
                .evidence("files", scan.files)
                .evidence("references", scan.references)
                .evidence("external", scan.external)
                .evidence("hosts", scan.hosts.to_json())
                .evidence("hosts_omitted", scan.hosts.omitted()),
            );
        }
        let mut manifest_seen = manifest_seen;
        if rules.problems == 0 && complete {
            let _ = findings.send(
                Finding::new(
                    Code::BundleEntriesSafe,
                    target,
                    format!("{} entries checked, none unsafe", rules.entries),
                )
                .evidence("entries", rules.entries),
            );
        }
        // The safety rules' per-entry maps are done with: freed before the
        // manifests are parsed, the peak of the pass for a release of many
        // files (both scale with the number of entries).
        drop(rules);
        let mut parsed = Vec::new();
        let mut latest = Vec::new();
        let sigs: HashMap<String, Vec<u8>> = captured
            .iter()
            .filter(|c| c.path.ends_with(".minisig"))
            .map(|c| (c.path.clone(), c.bytes.clone()))
            .collect();
        let mut image_files = Vec::new();
        for c in captured {
            if super::content::is_latest_file(&c.path) {
                latest.push(c);
            } else if super::image::folder_capture(&c.path).is_some() {
                image_files.push(c);
            }
        }
        for m in manifests {
            if manifest::is_json(&m.path) {
                // Without a key the text is not needed (and not kept): the
                // signature is only reported.
                super::signing::manifest_findings(
                    manifest_key.as_deref(),
                    &m.path,
                    m.signed_text.as_deref().unwrap_or_default(),
                    sigs.get(&format!("{}.minisig", m.path)).map(Vec::as_slice),
                    &findings,
                );
            }
            match m.listing {
                Ok(Some(l)) => {
                    manifest::verify(&l, &files, &findings);
                    parsed.push(l);
                }
                Ok(None) => {}
                Err(e) => {
                    manifest_seen = true;
                    let _ = findings.send(Finding::new(
                        Code::BundleManifestInvalid,
                        m.path.clone(),
                        e.message,
                    ));
                }
            }
        }
        if parsed.is_empty() && !manifest_seen {
            let _ = findings.send(Finding::new(
                Code::BundleNoManifest,
                target,
                "no manifest.json or SHA256SUMS found up to three folders deep; files were hashed but not checked against a list",
            ));
        }
        let mut nested = nested;
        if complete {
            super::image::check_folders(&files, &image_files, &mut nested, &parsed, &findings);
        }
        drop(image_files);
        for m in &parsed {
            super::image::check_manifest_images(m, &nested, &findings);
        }
        super::content::check(&files, &latest, &nested, limits.max_depth > 0, &findings);
        super::chart::provenance(&files, &findings);
        let mut images: Vec<(&String, &NestedOutcome)> =
            nested.iter().filter(|(_, o)| o.intact).collect();
        images.sort_by(|a, b| a.0.cmp(b.0));
        let images = images
            .into_iter()
            .flat_map(|(_, o)| o.refs.iter().cloned())
            .collect();
        let mut supply: Vec<(&String, &mut NestedOutcome)> = nested.iter_mut().collect();
        supply.sort_by(|a, b| a.0.cmp(b.0));
        let supply = supply
            .into_iter()
            .flat_map(|(_, o)| std::mem::take(&mut o.supply))
            .collect();
        Finished {
            files,
            manifest_signatures: sigs.len(),
            images,
            supply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The release's text goes to the scan thread: a whole file's external
    /// reference is reported and counted, one in a file cut short is not
    /// (as when the scan ran on the tar thread).
    #[test]
    fn the_scan_thread_reports_whole_files_only() {
        let text = b"url: https://evil.example.com/x\nimage: ghcr.io/a/b:1\n";
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [("a/values.yaml", &text[..]), ("b/other.txt", b"x\n")] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let run = |data: &[u8]| {
            let (tx, rx) = crossbeam_channel::unbounded();
            let mut ctx = WalkContext::new(tx, Limits::default());
            let stats = super::super::tarstream::walk(data, &mut ctx, "t.tar");
            assert!(
                ctx.scan_thread.is_some(),
                "the text went to the scan thread"
            );
            let _ = ctx.finish("t.tar", !stats.failed);
            rx.try_iter().collect::<Vec<Finding>>()
        };
        let codes = |fs: &[Finding], code: Code| fs.iter().filter(|f| f.code == code).count();
        let whole = run(&tar);
        assert_eq!(codes(&whole, Code::RefsExternal), 2, "{whole:#?}");
        let scanned = whole.iter().find(|f| f.code == Code::RefsScanned).unwrap();
        assert_eq!(scanned.evidence["files"], 2);
        assert_eq!(scanned.evidence["external"], 2);
        // Cut inside the text file's data (its header is the first block).
        let cut = run(&tar[..512 + 20]);
        assert_eq!(codes(&cut, Code::RefsExternal), 0, "{cut:#?}");
        assert_eq!(codes(&cut, Code::BundleTruncated), 1, "{cut:#?}");
    }
}
