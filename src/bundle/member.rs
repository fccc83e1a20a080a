//! What the rules see of an archive once its walk has ended: the findings
//! channel, the files hashed, the small files captured and what each nested
//! validator reported, and nothing of the engine that produced them. The
//! rules (charts, images, content bundles, Git bundles) are judged from this
//! narrow view, so they never import the engine (`walk`, `nested`,
//! `tarstream`), which calls them.

use std::collections::HashMap;

use crossbeam_channel::Sender;

use super::table::FileTable;
use crate::finding::Finding;

/// A small file's bytes, captured during the pass.
pub struct Captured {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// An archive as its rules see it once its walk has ended.
pub struct Walked<'a> {
    pub findings: &'a Sender<Finding>,
    pub files: &'a FileTable,
    pub captured: &'a [Captured],
    /// What each nested validator reported, by member path.
    pub nested: &'a HashMap<String, NestedOutcome>,
}

/// What a nested validator tells the release-level rules.
#[derive(Debug, Clone, Default)]
pub struct NestedOutcome {
    /// The container and every entry were read without a failing finding.
    pub intact: bool,
    /// Image references found inside (RepoTags, OCI ref names).
    pub refs: Vec<String>,
    /// SHA-256 of a layer's decompressed bytes (`Layer` only).
    pub uncompressed_sha256: Option<[u8; 32]>,
    /// External-reference scan totals inside this archive.
    pub scan: super::refscan::ScanStats,
    /// Validation stopped at a resource limit, already reported.
    pub limited: bool,
    /// The images found (image files and folders) with their signatures
    /// and attestations, verified after the pass.
    pub supply: Vec<super::imagesig::ImageSupply>,
}

/// A 64-digit lower-case hex name: what image tools name content by.
fn is_digest_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A blob of an image stored as a folder, named by its digest as only image
/// tools name files: `blobs/sha256/<hex>` (OCI layout, newer `docker
/// save`), `<hex>/layer.tar` (older `docker save`), `<hex>.tar` (skopeo's
/// docker-archive). Such a file is a layer or an image's JSON, judged by
/// the image's rules ([`super::image::check_folders`]), never opened as an
/// archive of its own: a layer holds what a root file system holds
/// (absolute symlinks, setuid programs), which the release's safety rules
/// would wrongly fail.
pub fn is_image_blob(path: &str) -> bool {
    let mut rev = path.rsplit('/');
    let name = rev.next().unwrap_or(path);
    let parent = rev.next();
    if let Some(hex) = name.strip_suffix(".tar") {
        return is_digest_name(hex);
    }
    if name == "layer.tar" {
        return parent.is_some_and(is_digest_name);
    }
    is_digest_name(name) && parent == Some("sha256") && rev.next() == Some("blobs")
}
