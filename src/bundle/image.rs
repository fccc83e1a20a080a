//! Container images, checked as `docker load` would check them, without a
//! Docker engine: `docker save` archives and OCI image layouts (both may be
//! in one file, as newer Docker writes them), packed in an image file or
//! stored as a folder of the release.
//!
//! Guarantees:
//! - a folder image (a folder holding `oci-layout`, or a `manifest.json`
//!   that is a `docker save` array) gets exactly the rules of a packed one,
//!   from the digests and small files the release walk collected;
//! - judged from the digests and small JSON files collected while the image
//!   streamed past: layers are hashed, never buffered;
//! - every finding names the image file and, when known, the image
//!   reference: `images/x.tar.gz (registry.example/x:v1): layer 2 ...`;
//! - OCI descriptors are followed from `index.json` with a visited set, so an
//!   index that references itself is reported, never followed forever;
//! - paths from `manifest.json` are confined to the image: one that escapes
//!   is reported and never looked up.

use std::collections::{HashMap, HashSet};

use crossbeam_channel::Sender;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::manifest::{FileRecord, Listing};
use super::member::NestedOutcome;
use super::member::{Captured, Walked};
use super::table::FileTable;
use crate::finding::{Code, Finding};

/// One `docker save` manifest entry.
#[derive(Debug, serde::Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

struct ImageCheck<'a> {
    target: &'a str,
    /// Where the image's files are in `files` and `nested`: empty for an
    /// image file, `folder/` for an image stored as a folder.
    root: &'a str,
    /// References the release manifest gives this image, to complete an
    /// OCI ref name that is only a tag (`1.0.0`, as `skopeo copy
    /// oci:DIR:1.0.0` writes it).
    named: &'a [String],
    files: &'a FileTable,
    captured: HashMap<&'a str, &'a [u8]>,
    nested: &'a HashMap<String, NestedOutcome>,
    findings: &'a Sender<Finding>,
    problems: usize,
    layers: usize,
    refs: Vec<String>,
    /// The entries of `index.json`, for the signatures' discovery.
    entries: Vec<super::imagesig::IndexEntry>,
    /// The first reference of each `docker save` entry.
    docker_refs: Vec<Option<String>>,
}

fn short(d: &[u8; 32]) -> String {
    format!("sha256:{}", &hex::encode(d)[..12])
}

impl<'a> ImageCheck<'a> {
    fn file(&self, rel: &str) -> Option<FileRecord> {
        self.files.get(&format!("{}{rel}", self.root)).copied()
    }

    fn nested_of(&self, rel: &str) -> Option<&'a NestedOutcome> {
        self.nested.get(&format!("{}{rel}", self.root))
    }

    /// An OCI ref name that is only a tag, completed from the release
    /// manifest when it names this image with that tag.
    fn resolve(&self, name: String) -> String {
        if name.contains(['/', ':', '@']) {
            return name;
        }
        self.named
            .iter()
            .find(|r| r.rsplit_once(':').is_some_and(|(_, t)| t == name))
            .cloned()
            .unwrap_or(name)
    }

    fn label(&self, reference: Option<&str>) -> String {
        match reference {
            Some(r) => format!("{} ({r})", self.target),
            None => self.target.to_string(),
        }
    }

    fn report(&mut self, code: Code, reference: Option<&str>, what: String) -> Finding {
        if code.default_status() == crate::finding::Status::Fail {
            self.problems += 1;
        }
        let f = Finding::new(
            code,
            self.target,
            format!("{}: {what}", self.label(reference)),
        );
        match reference {
            Some(r) => f.evidence("image", r),
            None => f,
        }
    }

    fn send(&self, f: Finding) {
        let _ = self.findings.send(f);
    }

    /// A path from `manifest.json`, confined to the image.
    fn confined(&mut self, p: &str, reference: Option<&str>) -> Option<String> {
        if p.starts_with('/') || p.split('/').any(|c| c == "..") || p.is_empty() {
            let f = self.report(
                Code::ImagePathEscape,
                reference,
                format!("manifest.json names {p:?}, which points outside the image"),
            );
            self.send(f);
            return None;
        }
        Some(super::safety::normalise(p))
    }

    fn docker(&mut self, bytes: &[u8]) {
        let entries: Vec<DockerEntry> = match serde_json::from_slice(bytes) {
            Ok(e) => e,
            Err(e) => {
                let f = self.report(
                    Code::ImageManifestInvalid,
                    None,
                    format!(
                        "manifest.json: line {}, column {}: {e}",
                        e.line(),
                        e.column()
                    ),
                );
                return self.send(f);
            }
        };
        for entry in entries {
            let tags = entry.repo_tags.clone().unwrap_or_default();
            let reference = tags.first().cloned();
            let r = reference.as_deref();
            self.docker_refs.push(reference.clone());
            self.refs.extend(tags);
            let Some(config_path) = self.confined(&entry.config, r) else {
                continue;
            };
            let Some(config_rec) = self.file(&config_path) else {
                let f = self.report(
                    Code::ImageMissingBlob,
                    r,
                    format!("config {config_path} named by manifest.json is not in the image"),
                );
                self.send(f);
                continue;
            };
            if let Some(named) = digest_in_name(&config_path) {
                if named != config_rec.sha256 {
                    let f = self
                        .report(
                            Code::ImageConfigDigestMismatch,
                            r,
                            format!(
                                "config {config_path} has {}, its name says {}",
                                short(&config_rec.sha256),
                                short(&named)
                            ),
                        )
                        .evidence("expected_sha256", hex::encode(named))
                        .evidence("actual_sha256", hex::encode(config_rec.sha256));
                    self.send(f);
                }
            }
            let Some(config_bytes) = self.captured.get(config_path.as_str()).copied() else {
                let f = self.report(
                    Code::ImageManifestInvalid,
                    r,
                    format!("config {config_path} is too large or not JSON"),
                );
                self.send(f);
                continue;
            };
            let diff_ids = match diff_ids_of(config_bytes) {
                Ok(d) => d,
                Err(e) => {
                    let f = self.report(
                        Code::ImageManifestInvalid,
                        r,
                        format!("config {config_path}: {e}"),
                    );
                    self.send(f);
                    continue;
                }
            };
            if diff_ids.len() != entry.layers.len() {
                let f = self.report(
                    Code::ImageManifestInvalid,
                    r,
                    format!(
                        "manifest.json lists {} layers but config {config_path} has {} diff_ids",
                        entry.layers.len(),
                        diff_ids.len()
                    ),
                );
                self.send(f);
            }
            let layers = entry.layers.clone();
            for (i, layer) in layers.iter().enumerate() {
                let Some(layer_path) = self.confined(layer, r) else {
                    continue;
                };
                self.layers += 1;
                let Some(rec) = self.file(&layer_path) else {
                    let f = self.report(
                        Code::ImageMissingBlob,
                        r,
                        format!(
                            "layer {} ({layer_path}) named by manifest.json is not in the image",
                            i + 1
                        ),
                    );
                    self.send(f);
                    continue;
                };
                if let Some(want) = diff_ids.get(i) {
                    self.diff_id(i, &layer_path, &rec, want, r);
                }
            }
        }
    }

    /// A layer as stored must hash to its diff_id, unless it is compressed,
    /// in which case only its decompressed digest (from `--deep`) can.
    fn diff_id(
        &mut self,
        i: usize,
        path: &str,
        rec: &FileRecord,
        want: &[u8; 32],
        r: Option<&str>,
    ) {
        if rec.sha256 == *want {
            return;
        }
        if self.nested_of(path).is_some_and(|o| o.limited) {
            // Decompression stopped at a limit and said so: the layer is
            // unverified, not known to be wrong.
            self.problems += 1;
            return;
        }
        let (actual, how) = match self.nested_of(path).and_then(|o| o.uncompressed_sha256) {
            Some(d) => (d, "decompressed"),
            None => (rec.sha256, "as stored"),
        };
        if actual == *want {
            return;
        }
        let f = self
            .report(
                Code::ImageDiffIdMismatch,
                r,
                format!(
                    "layer {} {} ({how}) does not match diff_id {}",
                    i + 1,
                    short(&actual),
                    short(want)
                ),
            )
            .evidence("layer", path)
            .evidence("expected_sha256", hex::encode(want))
            .evidence("actual_sha256", hex::encode(actual));
        self.send(f);
    }

    fn oci(&mut self, index_bytes: &[u8]) {
        // Every blob must hash to the digest it is stored under.
        let root = self.root;
        let mut blobs: Vec<(&str, &FileRecord)> = self
            .files
            .iter()
            .filter_map(|(p, rec)| Some((p.strip_prefix(root)?, rec)))
            .filter(|(p, _)| p.starts_with("blobs/sha256/"))
            .collect();
        blobs.sort_by(|a, b| a.0.cmp(b.0));
        for (p, rec) in blobs {
            if let Some(named) = digest_in_name(p) {
                if named != rec.sha256 {
                    let f = self
                        .report(
                            Code::ImageBlobDigestMismatch,
                            None,
                            format!("blob {p} has {}", short(&rec.sha256)),
                        )
                        .evidence("blob", p)
                        .evidence("actual_sha256", hex::encode(rec.sha256));
                    self.send(f);
                }
            }
        }
        let index: ImageIndex = match serde_json::from_slice(index_bytes) {
            Ok(i) => i,
            Err(e) => {
                let f = self.report(
                    Code::ImageManifestInvalid,
                    None,
                    format!("index.json: line {}, column {}: {e}", e.line(), e.column()),
                );
                return self.send(f);
            }
        };
        let mut visiting = HashSet::new();
        self.walk_index(&index, "index.json", &mut visiting, None);
    }

    /// The layout's images with what is attached to them (from the
    /// captured JSON blobs only).
    fn supply(&self) -> Vec<super::imagesig::ImageSupply> {
        let blobs: HashMap<&str, &[u8]> = self
            .captured
            .iter()
            .filter(|(p, _)| p.starts_with("blobs/sha256/"))
            .map(|(p, b)| (*p, *b))
            .collect();
        let present = |p: &str| self.file(p).is_some();
        super::imagesig::discover(self.target, &self.entries, &blobs, &present)
    }

    fn walk_index(
        &mut self,
        index: &ImageIndex,
        at: &str,
        visiting: &mut HashSet<String>,
        inherited: Option<String>,
    ) {
        for d in index.manifests() {
            let ref_name = d
                .annotations()
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.ref.name").cloned());
            let reference = ref_name
                .clone()
                .map(|n| self.resolve(n))
                .or_else(|| inherited.clone());
            // A signature, attestation or SBOM attached to an image is not
            // an image: its tag is no image reference, its layers are no
            // file systems.
            let named_attachment = super::imagesig::is_attachment(
                ref_name.as_deref(),
                d.annotations().as_ref(),
                d.artifact_type().is_some(),
                None,
            );
            if let Some(r) = reference.as_ref().filter(|_| !named_attachment) {
                if !self.refs.contains(r) {
                    self.refs.push(r.clone());
                }
            }
            let r = reference.as_deref();
            let bytes = self.blob(d.digest().as_ref(), d.size(), r, at);
            let attachment =
                named_attachment || super::imagesig::is_attachment(None, None, false, bytes);
            if at == "index.json" {
                self.entries.push(super::imagesig::IndexEntry {
                    digest: d.digest().to_string(),
                    reference: reference.clone(),
                    ref_name: ref_name.clone(),
                    annotations: d.annotations().clone(),
                    attachment,
                });
            }
            let Some(bytes) = bytes else {
                continue;
            };
            if attachment {
                continue;
            }
            match d.media_type() {
                MediaType::ImageIndex => {
                    let key = d.digest().to_string();
                    if !visiting.insert(key.clone()) {
                        let f = self.report(
                            Code::ImageDescriptorCycle,
                            r,
                            format!("{at} references index {key}, which is already being followed"),
                        );
                        self.send(f);
                        continue;
                    }
                    match serde_json::from_slice::<ImageIndex>(bytes) {
                        Ok(inner) => self.walk_index(&inner, &key, visiting, reference.clone()),
                        Err(e) => {
                            let f = self.report(
                                Code::ImageManifestInvalid,
                                r,
                                format!("index {key}: {e}"),
                            );
                            self.send(f);
                        }
                    }
                    visiting.remove(&key);
                }
                MediaType::ImageManifest => self.walk_manifest(bytes, d.digest().as_ref(), r),
                MediaType::Other(t)
                    if t.starts_with("application/vnd.docker.distribution.manifest.v2") =>
                {
                    self.walk_manifest(bytes, d.digest().as_ref(), r)
                }
                MediaType::Other(t)
                    if t.starts_with("application/vnd.docker.distribution.manifest.list.v2") =>
                {
                    if let Ok(inner) = serde_json::from_slice::<ImageIndex>(bytes) {
                        let key = d.digest().to_string();
                        if visiting.insert(key.clone()) {
                            self.walk_index(&inner, &key, visiting, reference.clone());
                            visiting.remove(&key);
                        }
                    }
                }
                other => {
                    let f = self.report(
                        Code::ImageUnknownMediaType,
                        r,
                        format!("{at} references {} with media type {other}", d.digest()),
                    );
                    self.send(f);
                }
            }
        }
    }

    fn walk_manifest(&mut self, bytes: &[u8], at: &str, r: Option<&str>) {
        let m: ImageManifest = match serde_json::from_slice(bytes) {
            Ok(m) => m,
            Err(e) => {
                let f = self.report(Code::ImageManifestInvalid, r, format!("manifest {at}: {e}"));
                return self.send(f);
            }
        };
        let config = m.config();
        let diff_ids = self
            .blob(config.digest().as_ref(), config.size(), r, at)
            .map(diff_ids_of);
        for (i, layer) in m.layers().iter().enumerate() {
            self.layers += 1;
            if !known_layer_type(layer.media_type()) {
                let f = self.report(
                    Code::ImageUnknownMediaType,
                    r,
                    format!("layer {} has media type {}", i + 1, layer.media_type()),
                );
                self.send(f);
            }
            let digest = layer.digest().as_ref().to_string();
            if self.blob_present(&digest, layer.size(), r, at) {
                if let Some(Ok(ids)) = &diff_ids {
                    let found = blob_path(&digest).and_then(|p| self.file(&p).map(|rec| (p, rec)));
                    if let (Some(want), Some((path, rec))) = (ids.get(i), found) {
                        let uncompressed = matches!(layer.media_type(), MediaType::ImageLayer)
                            || matches!(layer.media_type(), MediaType::Other(t) if t.ends_with(".tar"));
                        if uncompressed || self.nested_of(&path).is_some() {
                            self.diff_id(i, &path, &rec, want, r);
                        }
                    }
                }
            }
        }
        if let Some(Err(e)) = diff_ids {
            let f = self.report(
                Code::ImageManifestInvalid,
                r,
                format!("config of {at}: {e}"),
            );
            self.send(f);
        }
    }

    /// Checks that a blob exists with the stated size; returns its captured
    /// JSON bytes when it has them.
    fn blob(&mut self, digest: &str, size: u64, r: Option<&str>, at: &str) -> Option<&'a [u8]> {
        if !self.blob_present(digest, size, r, at) {
            return None;
        }
        let path = blob_path(digest)?;
        match self.captured.get(path.as_str()).copied() {
            Some(b) => Some(b),
            None => {
                let f = self.report(
                    Code::ImageManifestInvalid,
                    r,
                    format!(
                        "{path} (referenced by {at}) is not a JSON document small enough to read"
                    ),
                );
                self.send(f);
                None
            }
        }
    }

    fn blob_present(&mut self, digest: &str, size: u64, r: Option<&str>, at: &str) -> bool {
        let Some(path) = blob_path(digest) else {
            let f = self.report(
                Code::ImageManifestInvalid,
                r,
                format!("{at}: unsupported digest {digest}"),
            );
            self.send(f);
            return false;
        };
        let Some(rec) = self.file(&path) else {
            let f = self.report(
                Code::ImageMissingBlob,
                r,
                format!("{path} referenced by {at} is not in the image"),
            );
            self.send(f);
            return false;
        };
        if rec.size != size {
            let f = self
                .report(
                    Code::ImageSizeMismatch,
                    r,
                    format!("{path} is {} bytes, {at} says {size}", rec.size),
                )
                .evidence("expected_size", size)
                .evidence("actual_size", rec.size);
            self.send(f);
            return false;
        }
        true
    }
}

fn known_layer_type(t: &MediaType) -> bool {
    match t {
        MediaType::ImageLayer
        | MediaType::ImageLayerGzip
        | MediaType::ImageLayerZstd
        | MediaType::ImageLayerNonDistributable
        | MediaType::ImageLayerNonDistributableGzip
        | MediaType::ImageLayerNonDistributableZstd => true,
        MediaType::Other(s) => s.starts_with("application/vnd.docker.image.rootfs."),
        _ => false,
    }
}

fn blob_path(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("blobs/sha256/{}", hex.to_ascii_lowercase()))
}

/// The SHA-256 a path is named after: `<hex>.json`, `blobs/sha256/<hex>` or
/// `<hex>/layer.tar`.
fn digest_in_name(path: &str) -> Option<[u8; 32]> {
    let name = path.rsplit('/').next()?;
    let hex = name.strip_suffix(".json").unwrap_or(name);
    let mut out = [0u8; 32];
    (hex.len() == 64 && hex::decode_to_slice(hex, &mut out).is_ok()).then_some(out)
}

fn diff_ids_of(config: &[u8]) -> Result<Vec<[u8; 32]>, String> {
    let c: ImageConfiguration = serde_json::from_slice(config)
        .map_err(|e| format!("line {}, column {}: {e}", e.line(), e.column()))?;
    c.rootfs()
        .diff_ids()
        .iter()
        .map(|d| {
            let hex = d
                .strip_prefix("sha256:")
                .ok_or_else(|| format!("diff_id {d} is not a sha256 digest"))?;
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex, &mut out)
                .map_err(|_| format!("diff_id {d} is not hexadecimal"))?;
            Ok(out)
        })
        .collect()
}

/// Judges one image file after its nested walk.
pub fn check(target: &str, ctx: &Walked, intact: bool, outcome: &mut NestedOutcome) {
    let captured = ctx
        .captured
        .iter()
        .map(|c| (c.path.as_str(), c.bytes.as_slice()))
        .collect();
    let found = judge(
        ImageCheck {
            target,
            root: "",
            named: &[],
            files: ctx.files,
            captured,
            nested: ctx.nested,
            findings: ctx.findings,
            problems: 0,
            layers: 0,
            refs: Vec::new(),
            entries: Vec::new(),
            docker_refs: Vec::new(),
        },
        intact,
        false,
    );
    outcome.refs = found.refs;
    outcome.supply = found.supply;
    outcome.intact &= found.intact;
}

/// Images stored as folders of the release, judged after the pass: every
/// folder holding `oci-layout`, or a `manifest.json` that is a `docker
/// save` array (a JSON array, never a release manifest). Each one's outcome
/// is recorded under the folder's path in `nested`, so the release
/// manifest's `images[]` may name the folder. `intact`: the release was
/// read to its end (a truncated release's folders are not judged: their
/// missing files were simply not reached).
pub fn check_folders(
    files: &FileTable,
    captured: &[Captured],
    nested: &mut HashMap<String, NestedOutcome>,
    manifests: &[Listing],
    findings: &Sender<Finding>,
) {
    let mut roots: Vec<String> = Vec::new();
    let mut add = |root: &str| {
        if !roots.iter().any(|r| r == root) {
            roots.push(root.to_string());
        }
    };
    for p in files.keys() {
        if p == "oci-layout" || p.ends_with("/oci-layout") {
            add(&p[..p.len() - "oci-layout".len()]);
        }
    }
    for c in captured {
        if (c.path == "manifest.json" || c.path.ends_with("/manifest.json"))
            && c.bytes.first() == Some(&b'[')
        {
            add(&c.path[..c.path.len() - "manifest.json".len()]);
        }
    }
    roots.sort();
    let mut outcomes = Vec::new();
    for root in &roots {
        let folder = root.trim_end_matches('/');
        // What the release manifests say is in this folder.
        let named: Vec<String> = manifests
            .iter()
            .flat_map(|m| m.images.iter().map(move |i| (m, i)))
            .filter(|(m, i)| manifest_image_path(m, &i.path) == folder)
            .map(|(_, i)| i.reference.clone())
            .collect();
        let target = if folder.is_empty() { "." } else { folder };
        let captured_here = captured
            .iter()
            .filter_map(|c| Some((c.path.strip_prefix(root.as_str())?, c.bytes.as_slice())))
            .collect();
        let found = judge(
            ImageCheck {
                target,
                root,
                named: &named,
                files,
                captured: captured_here,
                nested: &*nested,
                findings,
                problems: 0,
                layers: 0,
                refs: Vec::new(),
                entries: Vec::new(),
                docker_refs: Vec::new(),
            },
            true,
            true,
        );
        outcomes.push((folder.to_string(), found));
    }
    for (folder, found) in outcomes {
        nested.insert(folder, found);
    }
}

/// The image rules, for an image file (`root` empty) or folder.
fn judge(mut c: ImageCheck<'_>, intact: bool, folder: bool) -> NestedOutcome {
    let mut outcome = NestedOutcome {
        intact,
        ..Default::default()
    };
    let docker = c.captured.get("manifest.json").copied();
    let oci = c
        .file("oci-layout")
        .is_some()
        .then(|| c.captured.get("index.json").copied())
        .flatten();
    if docker.is_none() && oci.is_none() {
        if intact {
            let what = if folder {
                "oci-layout without an index.json small enough to read"
            } else {
                "neither a docker save manifest.json nor an OCI layout (oci-layout and index.json)"
            };
            let f = c.report(Code::ImageNotAnImage, None, what.into());
            c.send(f);
        }
        outcome.intact = false;
        return outcome;
    }
    if let Some(b) = docker {
        c.docker(b);
    }
    if let Some(b) = oci {
        c.oci(b);
        outcome.supply = c.supply();
    } else {
        // A `docker save` archive without an OCI layout: its images have
        // no manifest digest, so nothing can be attached to them.
        outcome.supply = c
            .docker_refs
            .iter()
            .map(|r| super::imagesig::ImageSupply {
                target: c.target.to_string(),
                reference: r.clone(),
                digest: None,
                attached: Vec::new(),
            })
            .collect();
    }
    outcome.refs = c.refs.clone();
    if c.problems > 0 {
        outcome.intact = false;
    } else if intact {
        let refs = c.refs.join(", ");
        let layout = match (docker.is_some(), oci.is_some()) {
            (true, true) => "docker save + OCI layout",
            (true, false) => "docker save",
            _ => "OCI layout",
        };
        let stored = if folder { " stored as a folder" } else { "" };
        c.send(
            Finding::new(
                Code::ImageValid,
                c.target,
                format!(
                    "{}: {layout}{stored}, {} layers verified ({refs})",
                    c.target, c.layers
                ),
            )
            .evidence("layout", layout)
            .evidence("layers", c.layers)
            .evidence("refs", c.refs.clone()),
        );
    }
    outcome
}

/// A path of a release manifest's `images[]`, from the release root.
fn manifest_image_path(m: &Listing, path: &str) -> String {
    let p = if m.folder.is_empty() {
        super::safety::normalise(path)
    } else {
        super::safety::normalise(&format!("{}/{}", m.folder, path))
    };
    p.trim_end_matches('/').to_string()
}

/// The release manifest's `images: [{ref, path}]`: each reference must be in
/// the named image file.
pub fn check_manifest_images(
    m: &Listing,
    nested: &HashMap<String, NestedOutcome>,
    findings: &Sender<Finding>,
) {
    for img in &m.images {
        let path = manifest_image_path(m, &img.path);
        // Missing files are reported by the manifest check, broken images by
        // their own findings: a missing reference would only repeat them.
        let Some(o) = nested.get(&path).filter(|o| o.intact) else {
            continue;
        };
        if !o.refs.iter().any(|r| r == &img.reference) {
            let _ = findings.send(
                Finding::new(
                    Code::ImageRefMissing,
                    path.clone(),
                    format!(
                        "{path} ({}): {} lists this reference, the image file holds {}",
                        img.reference,
                        m.path,
                        if o.refs.is_empty() {
                            "none".to_string()
                        } else {
                            o.refs.join(", ")
                        }
                    ),
                )
                .evidence("image", img.reference.clone())
                .evidence("manifest", m.path.clone()),
            );
        }
    }
}

/// Whether a file of the release may belong to an image stored as a
/// folder and must be kept for [`check_folders`]: `Some(None)` keep it,
/// `Some(Some(b))` keep it only if its first byte is `b` (a `docker save`
/// `manifest.json` is an array; a blob is kept only when it is JSON, so
/// layers are never buffered).
pub fn folder_capture(path: &str) -> Option<Option<u8>> {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name {
        "oci-layout" | "index.json" | "repositories" => Some(None),
        "manifest.json" => Some(Some(b'[')),
        _ if super::member::is_image_blob(path) => (!name.ends_with(".tar")).then_some(Some(b'{')),
        _ => name
            .strip_suffix(".json")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(None),
    }
}
