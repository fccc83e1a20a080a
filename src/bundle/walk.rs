//! What happens to every member, whatever the source (tar stream or staged
//! folder): safety rules, hashing, manifest capture.
//!
//! Guarantees:
//! - every byte of every regular file is hashed exactly once, as it streams
//!   past; nothing is written to disk;
//! - memory grows only with the number of entries (one small record each),
//!   never with their size: manifests are the only bytes kept, up to
//!   `max_manifest_size`.

use std::collections::HashMap;
use std::io::Read;

use crossbeam_channel::Sender;
use sha2::{Digest, Sha256};

use super::manifest::{self, FileRecord};
use super::safety::{EntryKind, EntryMeta, SafetyRules};
use crate::finding::{Code, Finding};

/// Limits that keep memory flat on hostile input.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest release manifest loaded into memory.
    pub max_manifest_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_size: 16 << 20,
        }
    }
}

/// A manifest's bytes, captured during the pass.
pub struct Captured {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// State shared by every member of one input.
pub struct WalkContext {
    pub findings: Sender<Finding>,
    pub limits: Limits,
    pub rules: SafetyRules,
    pub files: HashMap<String, FileRecord>,
    pub manifests: Vec<Captured>,
    pub file_bytes: u64,
    /// A manifest was found but rejected (too large), so "no manifest" would
    /// be misleading.
    manifest_seen: bool,
    buf: Vec<u8>,
}

/// Reading a member's data failed; the caller knows whether the archive
/// ended or the device failed.
pub struct DataError(pub std::io::Error);

impl WalkContext {
    pub fn new(findings: Sender<Finding>, limits: Limits) -> Self {
        WalkContext {
            findings,
            limits,
            rules: SafetyRules::default(),
            files: HashMap::new(),
            manifests: Vec::new(),
            file_bytes: 0,
            manifest_seen: false,
            buf: vec![0u8; 256 << 10],
        }
    }

    /// Applies the safety rules to one member, then hashes its data when it
    /// is a regular file. `data` must yield exactly the member's bytes.
    pub fn member(&mut self, meta: &EntryMeta<'_>, data: &mut dyn Read) -> Result<(), DataError> {
        let path = self.rules.check(meta, &self.findings);
        if meta.kind != EntryKind::File {
            return Ok(());
        }
        let capture = manifest::is_candidate(&path);
        let mut captured: Option<Vec<u8>> = capture.then(Vec::new);
        let mut too_large = false;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DataError(e)),
            };
            let chunk = &self.buf[..n];
            hasher.update(chunk);
            size += n as u64;
            if let Some(c) = captured.as_mut() {
                if size > self.limits.max_manifest_size {
                    too_large = true;
                    captured = None;
                } else {
                    c.extend_from_slice(chunk);
                }
            }
        }
        self.file_bytes += size;
        if too_large {
            self.manifest_seen = true;
            let _ = self.findings.send(
                Finding::new(
                    Code::BundleManifestTooLarge,
                    path.clone(),
                    format!(
                        "{path} is {size} bytes, over the {} byte limit for manifests (--max-manifest-size)",
                        self.limits.max_manifest_size
                    ),
                )
                .evidence("size", size)
                .evidence("limit", self.limits.max_manifest_size),
            );
        }
        if let Some(bytes) = captured {
            self.manifests.push(Captured {
                path: path.clone(),
                bytes,
            });
        }
        // A later duplicate replaces the earlier one, as on extraction.
        self.files.insert(
            path,
            FileRecord {
                size,
                sha256: hasher.finalize().into(),
            },
        );
        Ok(())
    }

    /// After the pass: safety summary and manifest verification. Returns the
    /// table of hashed files.
    pub fn finish(self, target: &str, complete: bool) -> HashMap<String, FileRecord> {
        let WalkContext {
            findings,
            rules,
            files,
            manifests,
            manifest_seen,
            ..
        } = self;
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
        let mut parsed = Vec::new();
        for c in manifests {
            let is_json = c.path.rsplit('/').next() == Some(manifest::JSON_NAME);
            let res = if is_json {
                manifest::parse_json(&c.path, &c.bytes)
            } else {
                manifest::parse_sums(&c.path, &c.bytes).map(Some)
            };
            match res {
                Ok(Some(m)) => parsed.push(m),
                Ok(None) => {}
                Err(e) => {
                    manifest_seen = true;
                    let _ = findings.send(Finding::new(
                        Code::BundleManifestInvalid,
                        c.path.clone(),
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
        for m in &parsed {
            manifest::verify(m, &files, &findings);
        }
        files
    }
}
