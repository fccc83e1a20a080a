//! Verifying an already-extracted release folder with the same rules as an
//! archive.
//!
//! Guarantees: symbolic links are never followed (they are judged as entries,
//! like in a tar); entries are visited in the order `tar --sort=name`
//! archives them (depth-first, names sorted), so reports are reproducible and
//! a manifest beside the folders it lists is read after their files, as in
//! the vendor's archive; an unreadable file is a finding naming it, not an abort.
//! Files that need only their digest are hashed in parallel, one worker per
//! core, at most `LOOKAHEAD` files ahead of the walk; nested archives that
//! need nothing else (images) are read by feeder threads, at most
//! `IN_FLIGHT` at once, each with its validator, and their records are made
//! in the walk's order. The findings and the records are those of a
//! sequential walk, and memory stays flat.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use sha2::{Digest, Sha256};

use super::safety::{entry_path, EntryKind, EntryMeta};
use super::walk::{hash_only, DataError, HashOnly, Hashed, WalkContext};
use super::{BundleOptions, InputSummary, Progress, Verified};
use crate::error::InputError;
use crate::finding::{Code, Finding, Status};

/// An entry of the folder, in the order of the walk.
enum Item {
    /// A folder that cannot be listed, or an entry that cannot be stat'ed
    /// (`entry`: counted as an entry): a read error, reported in order.
    Error {
        target: String,
        message: String,
        entry: bool,
    },
    Entry {
        path: PathBuf,
        relpath: Vec<u8>,
        kind: EntryKind,
        mode: u32,
        size: u64,
        link: Option<Vec<u8>>,
        /// A hashing worker's result, for a file that needs nothing else.
        hashed: Option<Receiver<Result<Hashed, Failed>>>,
    },
}

/// Why a worker could not hash a file.
enum Failed {
    Open(std::io::Error),
    Read(std::io::Error),
}

/// Files hashed ahead of the walk, at most: memory stays flat (one small
/// record and one result slot each), and the workers stay busy while the
/// walk takes a large file or one that must stream (a manifest, a text file
/// to scan, a nested archive).
const LOOKAHEAD: usize = 64;

pub fn verify_dir(
    opts: &BundleOptions,
    sig_plan: &super::signing::SignaturePlan,
    progress: &dyn Progress,
    findings: &Sender<Finding>,
) -> Result<Verified, InputError> {
    let manifest_key = sig_plan.minisign_key.clone();
    let root = &opts.path;
    let target = root.display().to_string();
    // Fail fast (exit 2) if the folder itself cannot be listed.
    fs::read_dir(root).map_err(|e| InputError::unreadable(root, "folder", e))?;
    let started = Instant::now();
    progress.start(0);
    let mut ctx = WalkContext::new(findings.clone(), opts.limits.clone());
    ctx.manifest_key = manifest_key;
    let mut read_failed = false;
    let mut entries = 0u64;
    // One thread lists the folder in order; workers (one per core) hash the
    // files that need only their digest; this thread applies the rules to
    // every entry in the listing's order, with the workers' digests or by
    // streaming the file itself, so findings and records are those of a
    // sequential walk.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
    let (item_tx, item_rx) = crossbeam_channel::bounded::<Item>(LOOKAHEAD);
    let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(LOOKAHEAD);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let job_rx = job_rx.clone();
            s.spawn(move || {
                let mut buf = vec![0u8; super::stream::CHUNK_SIZE];
                for job in job_rx {
                    let _ = job.done.send(hash_file(&job.path, &mut buf, progress));
                }
            });
        }
        drop(job_rx);
        let limits = &opts.limits;
        s.spawn(move || list(root, limits, &item_tx, &job_tx));
        // Files read by feeders (see `WalkContext::defers`), oldest first,
        // settled in that order; `running` of them are still being read.
        // Each feeder says when it is done, so that the next one starts as
        // soon as any has finished, not only the oldest.
        let mut in_flight = std::collections::VecDeque::new();
        let mut running = 0usize;
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
        for item in item_rx {
            match item {
                Item::Error {
                    target,
                    message,
                    entry,
                } => {
                    read_failed = true;
                    entries += u64::from(entry);
                    let _ = findings.send(Finding::new(Code::BundleReadError, target, message));
                }
                Item::Entry {
                    path,
                    relpath,
                    kind,
                    mode,
                    size,
                    link,
                    hashed,
                } => {
                    entries += 1;
                    let meta = EntryMeta {
                        raw_path: &relpath,
                        kind,
                        mode,
                        link_target: link.as_deref(),
                        size: Some(size),
                    };
                    if kind != EntryKind::File {
                        let _ = ctx.member(&meta, &mut std::io::empty());
                        continue;
                    }
                    let hashed = hashed.and_then(|rx| rx.recv().ok());
                    // The walk's own decision, from the path the rules see.
                    let plan = hash_only(&opts.limits, &entry_path(&relpath));
                    let done = match hashed {
                        Some(Err(Failed::Open(e))) => {
                            Err(format!("cannot open {}: {e}", path.display()))
                        }
                        Some(Err(Failed::Read(e))) if plan != HashOnly::No => {
                            ctx.member_hashed(&meta, Err(e)).map_err(|DataError(e)| {
                                format!("read error in {}: {e}", path.display())
                            })
                        }
                        Some(Ok(h))
                            if plan == HashOnly::Yes
                                || matches!(plan, HashOnly::UnlessFirstByte(b) if h.first != Some(b)) =>
                        {
                            ctx.member_hashed(&meta, Ok(h)).map_err(|DataError(e)| {
                                format!("read error in {}: {e}", path.display())
                            })
                        }
                        // A nested archive that needs nothing else: read on a
                        // thread of its own, so that images are validated
                        // side by side; its record is made in order below.
                        _ if hashed.is_none() && ctx.defers(&entry_path(&relpath)) => {
                            match File::open(&path) {
                                Err(e) => Err(format!("cannot open {}: {e}", path.display())),
                                Ok(file) => {
                                    while running >= IN_FLIGHT {
                                        // Blocks only while a feeder is
                                        // running: each one sends once.
                                        let _ = done_rx.recv();
                                        running -= 1;
                                    }
                                    while in_flight.len() >= UNSETTLED
                                        || in_flight.front().is_some_and(
                                            |(_, f): &(_, std::thread::ScopedJoinHandle<'_, _>)| {
                                                f.is_finished()
                                            },
                                        )
                                    {
                                        read_failed |=
                                            settle(&mut ctx, &mut in_flight, root, findings);
                                    }
                                    let deferred = ctx.begin_deferred(&meta);
                                    let done = FeederDone(done_tx.clone());
                                    let feeder = s.spawn(move || {
                                        let _done = done;
                                        let counted = Counted {
                                            inner: &mut { file },
                                            progress,
                                        };
                                        deferred.feed(&mut super::stream::ChunkedRead::new(counted))
                                    });
                                    running += 1;
                                    in_flight.push_back((path.clone(), feeder));
                                    Ok(())
                                }
                            }
                        }
                        // Not hashed ahead, or it needs more than its digest
                        // (an image blob that is JSON): read here.
                        _ => stream_file(&mut ctx, &meta, &path, progress),
                    };
                    if let Err(message) = done {
                        read_failed = true;
                        let _ = findings.send(Finding::new(
                            Code::BundleReadError,
                            rel(root, &path),
                            message,
                        ));
                    }
                }
            }
        }
        while !in_flight.is_empty() {
            read_failed |= settle(&mut ctx, &mut in_flight, root, findings);
        }
    });
    progress.finish();
    archives_with_checksums(root, &target, findings);
    let bytes = ctx.file_bytes;
    let elapsed = started.elapsed().as_millis() as u64;
    let _ = findings.send(
        Finding::new(
            Code::BundleChecksumMissing,
            target.clone(),
            "a folder has no archive checksum; its files are checked against the manifests inside",
        )
        .with_status(Status::Skip),
    );
    if !read_failed {
        let _ = findings.send(
            Finding::new(
                Code::BundleContainerIntact,
                target.clone(),
                format!("folder read completely: {entries} entries, {bytes} bytes"),
            )
            .evidence("format", "directory")
            .evidence("entries", entries)
            .evidence("bytes", bytes)
            .duration_ms(elapsed),
        );
    }
    let key_given = ctx.manifest_key.is_some();
    // `X.sigstore.json` files of the folder, judged as in an archive.
    let sigstore_members: Vec<(String, Vec<u8>)> = ctx
        .captured
        .iter()
        .filter(|c| c.path.ends_with(super::signing::SIGSTORE_SUFFIX))
        .map(|c| (c.path.clone(), c.bytes.clone()))
        .collect();
    let super::walk::Finished {
        files,
        manifest_signatures,
        images,
        supply,
    } = ctx.finish(&target, !read_failed);
    if !read_failed {
        super::signing::sigstore_findings(
            sig_plan,
            None,
            &files,
            &sigstore_members,
            supply.iter().any(|i| !i.attached.is_empty()),
            &target,
            findings,
        );
    }
    super::imagesig::findings(sig_plan, &supply, findings);
    if key_given && manifest_signatures == 0 {
        let _ = findings.send(Finding::new(
            Code::SignatureMissing,
            target.clone(),
            "--pubkey given but no manifest.json.minisig in the folder",
        ));
    }
    Ok(Verified {
        input: InputSummary {
            path: target,
            kind: "directory",
            size: bytes,
            sha256: None,
        },
        files,
        images,
    })
}

/// Files read by feeder threads at once, at most: each has its validator's
/// pipeline in memory (a few MiB), so memory stays flat; two keep two cores
/// busy with images that are validated one chunk at a time.
const IN_FLIGHT: usize = 2;
/// Files whose feeder has started and whose record is not made yet, at
/// most. A feeder that has finished holds only its digest and its
/// validator's last judgement, so a large image does not stop the smaller
/// ones after it from being read while it is: before, the walk waited for
/// the oldest feeder before it started the next one, and with a 64 MiB
/// image followed by a 6 MiB one, a core was left idle for most of the
/// larger one's read.
const UNSETTLED: usize = 4;

/// Sent when a feeder ends, however it ends (dropped on a panic too): the
/// walk counts the feeders still running by these.
struct FeederDone(Sender<()>);

impl Drop for FeederDone {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Waits for the oldest file read by a feeder and makes its record, in the
/// walk's order; a read error is reported naming the file. Whether it
/// failed.
fn settle(
    ctx: &mut WalkContext,
    in_flight: &mut std::collections::VecDeque<(
        PathBuf,
        std::thread::ScopedJoinHandle<'_, super::walk::Fed>,
    )>,
    root: &Path,
    findings: &Sender<Finding>,
) -> bool {
    let Some((path, feeder)) = in_flight.pop_front() else {
        return false;
    };
    let message = match feeder.join() {
        Ok(fed) => match ctx.end_deferred(fed) {
            Ok(()) => return false,
            Err(DataError(e)) => format!("read error in {}: {e}", path.display()),
        },
        Err(_) => format!("read error in {}: its reader stopped", path.display()),
    };
    let _ = findings.send(Finding::new(
        Code::BundleReadError,
        rel(root, &path),
        message,
    ));
    true
}

/// A file for a hashing worker, and where its result goes.
struct Job {
    path: PathBuf,
    done: Sender<Result<Hashed, Failed>>,
}

/// Lists the folder into `items` in the order `tar --sort=name` archives
/// it: depth-first, each folder's entries sorted by name and a folder's
/// contents right after the folder itself. Files that need only their
/// digest go to the workers first.
///
/// Why this order and not "a folder's entries, then its subfolders": a
/// manifest is judged against the files hashed before it, and the ones it
/// lists after it must be remembered by path until the end. In this order a
/// `manifest.json` beside the folders it lists comes after their files,
/// as in the vendor's archive, so a folder costs the memory its archive
/// costs; and the folder's findings come in its archive's order.
fn list(root: &Path, limits: &super::walk::Limits, items: &Sender<Item>, jobs: &Sender<Job>) {
    // One frame per folder on the way down: the names left to visit.
    let mut stack: Vec<std::vec::IntoIter<PathBuf>> = Vec::new();
    let descend = |dir: &Path, stack: &mut Vec<std::vec::IntoIter<PathBuf>>| -> bool {
        match fs::read_dir(dir) {
            Ok(listing) => {
                let mut children: Vec<_> =
                    listing.filter_map(Result::ok).map(|e| e.path()).collect();
                children.sort();
                stack.push(children.into_iter());
                true
            }
            Err(e) => {
                let item = Item::Error {
                    target: rel(root, dir),
                    message: format!("cannot list {}: {e}", dir.display()),
                    entry: false,
                };
                items.send(item).is_ok()
            }
        }
    };
    if !descend(root, &mut stack) {
        return;
    }
    while let Some(frame) = stack.last_mut() {
        let Some(child) = frame.next() else {
            stack.pop();
            continue;
        };
        let relpath = rel_bytes(root, &child);
        let md = match fs::symlink_metadata(&child) {
            Ok(m) => m,
            Err(e) => {
                let item = Item::Error {
                    target: rel(root, &child),
                    message: format!("cannot stat {}: {e}", child.display()),
                    entry: true,
                };
                if items.send(item).is_err() {
                    return;
                }
                continue;
            }
        };
        let ft = md.file_type();
        let kind = if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_char_device() {
            EntryKind::CharDevice
        } else if ft.is_block_device() {
            EntryKind::BlockDevice
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            EntryKind::Socket
        };
        let link = if kind == EntryKind::Symlink {
            fs::read_link(&child)
                .ok()
                .map(|t| t.as_os_str().as_bytes().to_vec())
        } else {
            None
        };
        let hashed = (kind == EntryKind::File
            && hash_only(limits, &entry_path(&relpath)) != HashOnly::No)
            .then(|| {
                let (done, rx) = crossbeam_channel::bounded(1);
                let _ = jobs.send(Job {
                    path: child.clone(),
                    done,
                });
                rx
            });
        let subfolder = (kind == EntryKind::Dir).then(|| child.clone());
        let item = Item::Entry {
            path: child,
            relpath,
            kind,
            mode: md.permissions().mode(),
            size: md.len(),
            link,
            hashed,
        };
        if items.send(item).is_err() {
            return;
        }
        if let Some(dir) = subfolder {
            if !descend(&dir, &mut stack) {
                return;
            }
        }
    }
}

/// A worker's part: the file's SHA-256, size and first byte, read once.
fn hash_file(path: &Path, buf: &mut [u8], progress: &dyn Progress) -> Result<Hashed, Failed> {
    let mut f = File::open(path).map_err(Failed::Open)?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut first = None;
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failed::Read(e)),
        };
        if size == 0 {
            first = Some(buf[0]);
        }
        h.update(&buf[..n]);
        size += n as u64;
        progress.advance(n as u64);
    }
    Ok(Hashed {
        size,
        sha256: h.finalize().into(),
        first,
    })
}

/// Reads a file through the walk (captured, scanned, validated as it
/// streams); `Err` is the read error's message.
fn stream_file(
    ctx: &mut WalkContext,
    meta: &EntryMeta<'_>,
    path: &Path,
    progress: &dyn Progress,
) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let counted = Counted {
        inner: &mut f,
        progress,
    };
    let mut buffered = super::stream::ChunkedRead::new(counted);
    ctx.member(meta, &mut buffered)
        .map_err(|DataError(e)| format!("read error in {}: {e}", path.display()))
}

/// A download folder (archives with their `.sha256` beside them) given
/// where an archive was meant: say which archives to verify instead, since
/// a folder pass does not compare an archive with its checksum.
fn archives_with_checksums(root: &Path, target: &str, findings: &Sender<Finding>) {
    let Ok(listing) = fs::read_dir(root) else {
        return;
    };
    let mut names: Vec<String> = listing
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let archives: Vec<String> = names
        .iter()
        .filter(|n| {
            [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"]
                .iter()
                .any(|ext| n.ends_with(ext))
        })
        .filter(|n| {
            let archive = root.join(n);
            matches!(
                super::checksum::resolve(&super::checksum::ChecksumSource::Auto, &archive),
                Ok(super::checksum::Expected::Digest { .. })
            )
        })
        .cloned()
        .collect();
    if archives.is_empty() {
        return;
    }
    let first = root.join(&archives[0]);
    let _ = findings.send(
        Finding::new(
            Code::BundleFolderHoldsArchives,
            target,
            format!(
                "{target} holds {} release archive(s) with a checksum beside them ({}): this folder pass does not compare them with it; verify each archive, e.g. `airgap-verify bundle {}`",
                archives.len(),
                archives.join(", "),
                first.display()
            ),
        )
        .evidence("archives", archives),
    );
}

struct Counted<'a, R> {
    inner: &'a mut R,
    progress: &'a dyn Progress,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

fn rel_bytes(root: &Path, p: &Path) -> Vec<u8> {
    p.strip_prefix(root)
        .unwrap_or(p)
        .as_os_str()
        .as_bytes()
        .to_vec()
}

fn rel(root: &Path, p: &Path) -> String {
    super::safety::display_name(&rel_bytes(root, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names `list` gives, in its order (folders without a trailing
    /// slash); the jobs it queues are dropped.
    fn listed(root: &Path) -> Vec<String> {
        let (item_tx, item_rx) = crossbeam_channel::unbounded();
        let (job_tx, job_rx) = crossbeam_channel::unbounded();
        list(
            root,
            &super::super::walk::Limits::default(),
            &item_tx,
            &job_tx,
        );
        drop((item_tx, job_rx));
        item_rx
            .into_iter()
            .map(|item| match item {
                Item::Entry { relpath, .. } => String::from_utf8(relpath).unwrap(),
                Item::Error { target, .. } => panic!("unexpected error item for {target}"),
            })
            .collect()
    }

    /// GNU tar is the oracle: the folder is visited in the order
    /// `tar --sort=name` archives it, so a manifest beside the folders it
    /// lists comes after their files, as in the archive. The names are
    /// chosen so that neither "a folder's entries, then its subfolders" nor
    /// a sort of whole paths (`m-x` < `m/`) gives that order.
    #[test]
    fn the_walk_visits_a_folder_in_the_order_tar_sort_name_archives_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["a/m/z", "a/empty", "B", "c.d/e"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "manifest.json",
            "a/0",
            "a/m/file",
            "a/m/z/deep",
            "a/m-x",
            "a/m.y",
            "a/manifest.json",
            "B/upper",
            "c.d/e/f",
            "c.d0",
            "SHA256SUMS",
        ] {
            fs::write(root.join(f), b"x").unwrap();
        }
        // A link to a folder is an entry, never followed.
        std::os::unix::fs::symlink("a/m", root.join("a/link")).unwrap();
        let ours = listed(root);

        let out = std::process::Command::new("tar")
            .args(["--sort=name", "-cf", "-", "-C"])
            .arg(root)
            .arg(".")
            .output()
            .unwrap();
        assert!(out.status.success(), "tar -c failed");
        let mut list = std::process::Command::new("tar")
            .args(["-tf", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(list.stdin.as_mut().unwrap(), &out.stdout).unwrap();
        let names = list.wait_with_output().unwrap();
        assert!(names.status.success(), "tar -t failed");
        let tars: Vec<String> = String::from_utf8(names.stdout)
            .unwrap()
            .lines()
            .filter(|l| *l != "./")
            .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
            .collect();

        assert_eq!(ours.len(), 19, "{ours:?}");
        assert_eq!(ours, tars);
        // The manifest beside `m/` comes after the files under it.
        let at = |n: &str| ours.iter().position(|p| p == n).unwrap();
        assert!(at("a/m/z/deep") < at("a/manifest.json"));
    }
}
