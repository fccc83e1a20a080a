//! Verifying an already-extracted release folder with the same rules as an
//! archive.
//!
//! Guarantees: symbolic links are never followed (they are judged as entries,
//! like in a tar); entries are visited in sorted order so reports are
//! reproducible; an unreadable file is a finding naming it, not an abort.

use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::safety::{EntryKind, EntryMeta};
use super::walk::{DataError, WalkContext};
use super::{BundleOptions, InputSummary, Progress, Verified};
use crate::error::InputError;
use crate::finding::{Code, Finding, Status};

pub fn verify_dir(
    opts: &BundleOptions,
    manifest_key: Option<std::sync::Arc<super::signature::MinisignKey>>,
    progress: &dyn Progress,
    findings: &Sender<Finding>,
) -> Result<Verified, InputError> {
    let root = &opts.path;
    let target = root.display().to_string();
    // Fail fast (exit 2) if the folder itself cannot be listed.
    fs::read_dir(root).map_err(|e| InputError::unreadable(root, "folder", e))?;
    let started = Instant::now();
    progress.start(0);
    let mut ctx = WalkContext::new(findings.clone(), opts.limits.clone());
    ctx.manifest_key = manifest_key;
    let mut stack: Vec<std::path::PathBuf> = vec![root.clone()];
    let mut read_failed = false;
    let mut entries = 0u64;
    while let Some(dir) = stack.pop() {
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) => {
                read_failed = true;
                let _ = findings.send(Finding::new(
                    Code::BundleReadError,
                    rel(root, &dir),
                    format!("cannot list {}: {e}", dir.display()),
                ));
                continue;
            }
        };
        let mut children: Vec<_> = listing.filter_map(Result::ok).map(|e| e.path()).collect();
        children.sort();
        // Push in reverse so the stack pops in sorted order.
        let mut subdirs = Vec::new();
        for child in children {
            entries += 1;
            let relpath = rel_bytes(root, &child);
            let md = match fs::symlink_metadata(&child) {
                Ok(m) => m,
                Err(e) => {
                    read_failed = true;
                    let _ = findings.send(Finding::new(
                        Code::BundleReadError,
                        rel(root, &child),
                        format!("cannot stat {}: {e}", child.display()),
                    ));
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
            let meta = EntryMeta {
                raw_path: &relpath,
                kind,
                mode: md.permissions().mode(),
                link_target: link.as_deref(),
                size: Some(md.len()),
            };
            if kind == EntryKind::File {
                match File::open(&child) {
                    Ok(mut f) => {
                        let mut counted = Counted {
                            inner: &mut f,
                            progress,
                        };
                        if let Err(DataError(e)) = ctx.member(&meta, &mut counted) {
                            read_failed = true;
                            let _ = findings.send(Finding::new(
                                Code::BundleReadError,
                                rel(root, &child),
                                format!("read error in {}: {e}", child.display()),
                            ));
                        }
                    }
                    Err(e) => {
                        read_failed = true;
                        let _ = findings.send(Finding::new(
                            Code::BundleReadError,
                            rel(root, &child),
                            format!("cannot open {}: {e}", child.display()),
                        ));
                    }
                }
            } else {
                let _ = ctx.member(&meta, &mut std::io::empty());
            }
            if kind == EntryKind::Dir {
                subdirs.push(child);
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
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
    let (files, manifest_signatures, images) = ctx.finish(&target, !read_failed);
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
