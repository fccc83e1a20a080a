//! A Sekoia-shaped sample release, built from bytes, for the demo, the tests
//! and the benchmark.
//!
//! Guarantees:
//! - deterministic: the same size gives byte-identical archives (fixed
//!   mtimes, owners and a seeded generator), so tests can pin digests;
//! - realistic shape: `platform/v1.0.0/` with a `manifest.json`, docker-archive
//!   images (`docker save` layout: `manifest.json`, a config named by its
//!   SHA-256 whose `rootfs.diff_ids` match the layers, `repositories`), Helm
//!   charts, ArgoCD stacks, and `data/<TYPE>/` content bundles with `latest`;
//! - large sizes are mostly incompressible image layers of 1 to 200 MiB plus
//!   thousands of small YAML and JSON files, as in a real release;
//! - signed with Sigstore bundles by a test instance of our own
//!   ([`crate::sigstore::sign`], seed [`SIGSTORE_SEED`]): `PATH.sigstore.json`
//!   beside each archive, `manifest.json.sigstore.json` beside the manifest
//!   inside it, all signed as [`SIGNER_IDENTITY`] from [`SIGNER_ISSUER`], and
//!   the instance's trusted root written beside the release as
//!   [`TRUSTED_ROOT`]; its OCI image (`collector-oci`) carries a signature,
//!   an SPDX SBOM and SLSA provenance as cosign v3 referrers, by the same
//!   signer (its `docker save` images cannot be signed: no manifest digest). That root is test trust material: it proves the sample
//!   is the sample, nothing more.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use crate::bundle::manifest::{ManifestDoc, ManifestFile, ManifestImage};

pub const PRODUCT: &str = "sekoia-self-hosted";
pub const VERSION: &str = "v1.0.0";
pub const CONTENT_TYPES: &[&str] = &["detection-rules", "intake-formats", "playbook-library"];
const MTIME: u64 = 1_735_689_600; // 2025-01-01T00:00:00Z

/// Seed of the test Sigstore instance that signs the sample.
pub const SIGSTORE_SEED: &str = "airgap-verify sample release";
/// Who signs the sample (the certificate's SAN) and the OIDC issuer its
/// certificate names: reserved `.example` names, not a real vendor's.
pub const SIGNER_IDENTITY: &str = "release@sekoia.example";
pub const SIGNER_ISSUER: &str = "https://oidc.sekoia.example";
/// The trusted root of that instance, written beside the release.
pub const TRUSTED_ROOT: &str = "sample-trusted_root.json";

/// xorshift64*: fast, seeded, good enough to defeat compression.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(kind);
    h
}

/// A tar made of the given files, in order, deterministic.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = header(data.len() as u64, 0o644, tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).expect("in-memory tar");
    }
    b.into_inner().expect("in-memory tar")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    // Fixed header (no name, mtime 0) keeps the output deterministic.
    let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(data).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

/// A docker-archive image (`docker save` layout), uncompressed.
pub fn docker_image(reference: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/app"] },
        "created": "2025-01-01T00:00:00Z",
        "history": layers.iter().map(|_| serde_json::json!({"created": "2025-01-01T00:00:00Z", "created_by": "COPY . /"})).collect::<Vec<_>>(),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config_bytes = serde_json::to_vec(&config).expect("json");
    let config_name = format!("{}.json", sha256_hex(&config_bytes));
    let layer_dirs: Vec<String> = layers
        .iter()
        .map(|l| format!("{}/layer.tar", sha256_hex(l)))
        .collect();
    let (repo, tag) = split_ref(reference);
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [reference],
        "Layers": layer_dirs,
    }]);
    let top = layer_dirs
        .last()
        .map(|d| d.trim_end_matches("/layer.tar").to_string())
        .unwrap_or_default();
    let repositories = serde_json::json!({ repo: { tag: top } });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("json");
    let repos_bytes = serde_json::to_vec(&repositories).expect("json");
    let mut files: Vec<(&str, &[u8])> = Vec::new();
    files.push((&config_name, &config_bytes));
    for (dir, l) in layer_dirs.iter().zip(layers) {
        files.push((dir, l));
    }
    files.push(("manifest.json", &manifest_bytes));
    files.push(("repositories", &repos_bytes));
    tar_of(&files)
}

/// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) with
/// gzip-compressed layers, uncompressed tar of the layout.
pub fn oci_image(reference: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    oci_image_with(reference, layers, &[])
}

/// The config, manifest and compressed layers of [`oci_image`].
fn oci_parts(layers: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let gz: Vec<Vec<u8>> = layers.iter().map(|l| gzip(l)).collect();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .expect("json");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&config)),
            "size": config.len(),
        },
        "layers": gz.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{}", sha256_hex(l)),
            "size": l.len(),
        })).collect::<Vec<_>>(),
    }))
    .expect("json");
    (config, manifest, gz)
}

/// The digest (`sha256:<hex>`) of the manifest [`oci_image`] writes for
/// these layers: what a signature or attestation of that image names.
pub fn oci_manifest_digest(layers: &[Vec<u8>]) -> String {
    format!("sha256:{}", sha256_hex(&oci_parts(layers).1))
}

/// Something attached to an image of an OCI layout ([`oci_image_with`]).
#[derive(Debug, Clone)]
pub enum Attachment {
    /// An OCI 1.1 referrer, as cosign v3 writes it: a manifest of artifact
    /// type `application/vnd.dev.sigstore.bundle.v0.3+json` whose `subject`
    /// is the image manifest and whose one layer is the Sigstore bundle.
    /// `listed`: also an entry of `index.json` (as `oras copy -r` writes a
    /// layout); otherwise only among the blobs.
    Referrer {
        bundle: Vec<u8>,
        /// `dev.sigstore.bundle.predicateType`, when the bundle holds a
        /// DSSE statement.
        predicate_type: Option<String>,
        listed: bool,
    },
    /// cosign's older tag scheme: a manifest named `sha256-<hex>.<suffix>`
    /// in `index.json` (`sig`, `att`, `sbom`) with these layers.
    Tag {
        suffix: String,
        layers: Vec<TagLayer>,
    },
}

/// A layer of a cosign tag-scheme manifest.
#[derive(Debug, Clone)]
pub struct TagLayer {
    pub media_type: String,
    pub data: Vec<u8>,
    pub annotations: serde_json::Map<String, serde_json::Value>,
}

/// The files of an OCI image layout of `reference` with `attached`.
pub fn oci_files(
    reference: &str,
    layers: &[Vec<u8>],
    attached: &[Attachment],
) -> Vec<(String, Vec<u8>)> {
    let (config, manifest, gz) = oci_parts(layers);
    let image = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", sha256_hex(&manifest)),
        "size": manifest.len(),
    });
    let mut entries = vec![{
        let mut e = image.clone();
        e["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": reference });
        e
    }];
    let mut blobs: Vec<(String, Vec<u8>)> = vec![
        (format!("blobs/sha256/{}", sha256_hex(&config)), config),
        (
            format!("blobs/sha256/{}", sha256_hex(&manifest)),
            manifest.clone(),
        ),
    ];
    for l in gz {
        blobs.push((format!("blobs/sha256/{}", sha256_hex(&l)), l));
    }
    let empty = b"{}".to_vec();
    let empty_desc = serde_json::json!({
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": format!("sha256:{}", sha256_hex(&empty)),
        "size": 2,
    });
    let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
    for a in attached {
        match a {
            Attachment::Referrer {
                bundle,
                predicate_type,
                listed,
            } => {
                let mut annotations = serde_json::json!({
                    "dev.sigstore.bundle.content": if predicate_type.is_some() { "dsse-envelope" } else { "message-signature" },
                });
                if let Some(t) = predicate_type {
                    annotations["dev.sigstore.bundle.predicateType"] = t.clone().into();
                }
                let m = serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "artifactType": bundle_type,
                    "config": empty_desc,
                    "layers": [{
                        "mediaType": bundle_type,
                        "digest": format!("sha256:{}", sha256_hex(bundle)),
                        "size": bundle.len(),
                        "annotations": { "org.opencontainers.image.title": format!("sha256-{}.sigstore.json", sha256_hex(bundle)) },
                    }],
                    "subject": image,
                    "annotations": annotations,
                }))
                .expect("json");
                if *listed {
                    entries.push(serde_json::json!({
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "artifactType": bundle_type,
                        "digest": format!("sha256:{}", sha256_hex(&m)),
                        "size": m.len(),
                    }));
                }
                blobs.push((
                    format!("blobs/sha256/{}", sha256_hex(bundle)),
                    bundle.clone(),
                ));
                blobs.push((format!("blobs/sha256/{}", sha256_hex(&m)), m));
                blobs.push((
                    format!("blobs/sha256/{}", sha256_hex(&empty)),
                    empty.clone(),
                ));
            }
            Attachment::Tag { suffix, layers } => {
                // cosign's signature image config: no file system.
                let config = serde_json::to_vec(&serde_json::json!({
                    "architecture": "", "os": "", "config": {},
                    "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| format!("sha256:{}", sha256_hex(&l.data))).collect::<Vec<_>>() },
                }))
                .expect("json");
                let m = serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": format!("sha256:{}", sha256_hex(&config)),
                        "size": config.len(),
                    },
                    "layers": layers.iter().map(|l| serde_json::json!({
                        "mediaType": l.media_type,
                        "digest": format!("sha256:{}", sha256_hex(&l.data)),
                        "size": l.data.len(),
                        "annotations": l.annotations,
                    })).collect::<Vec<_>>(),
                }))
                .expect("json");
                entries.push(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", sha256_hex(&m)),
                    "size": m.len(),
                    "annotations": { "org.opencontainers.image.ref.name": format!("sha256-{}.{suffix}", sha256_hex(&manifest)) },
                }));
                for l in layers {
                    blobs.push((
                        format!("blobs/sha256/{}", sha256_hex(&l.data)),
                        l.data.clone(),
                    ));
                }
                blobs.push((format!("blobs/sha256/{}", sha256_hex(&config)), config));
                blobs.push((format!("blobs/sha256/{}", sha256_hex(&m)), m));
            }
        }
    }
    // A blob is stored once, as in a real layout.
    let mut seen = std::collections::HashSet::new();
    blobs.retain(|(p, _)| seen.insert(p.clone()));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .expect("json");
    let mut files = vec![(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    files.extend(blobs);
    files.push(("index.json".to_string(), index));
    files
}

/// [`oci_image`] with signatures, attestations or SBOMs attached.
pub fn oci_image_with(reference: &str, layers: &[Vec<u8>], attached: &[Attachment]) -> Vec<u8> {
    let files = oci_files(reference, layers, attached);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    tar_of(&refs)
}

/// A `docker save` archive as Docker 25 and later write it: the
/// `manifest.json` of [`docker_image`] and the OCI layout of
/// [`oci_image_with`] in one tar (the signatures live in the OCI part).
pub fn docker_oci_image(reference: &str, layers: &[Vec<u8>], attached: &[Attachment]) -> Vec<u8> {
    let docker = docker_image(reference, layers);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(docker.as_slice());
    for e in archive.entries().expect("in-memory tar") {
        let mut e = e.expect("in-memory tar");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        io::Read::read_to_end(&mut e, &mut data).expect("in-memory tar");
        files.push((path, data));
    }
    files.extend(oci_files(reference, layers, attached));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    tar_of(&refs)
}

/// A self-contained Git bundle (v2) of a small repository of ArgoCD stacks,
/// built with libgit2 (fixed author and dates, so the object ids are stable).
/// libgit2 needs a repository on disk: a scratch folder is made under the
/// system temporary folder and removed before returning.
pub fn git_bundle(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!(
        "airgap-verify-sample-git-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let result = (|| -> Result<Vec<u8>, git2::Error> {
        let repo = git2::Repository::init_bare(&dir)?;
        let sig = git2::Signature::new(
            "Sekoia release",
            "release@sekoia.invalid",
            &git2::Time::new(MTIME as i64, 0),
        )?;
        let mut tb = repo.treebuilder(None)?;
        for (name, data) in files {
            let blob = repo.blob(data)?;
            tb.insert(name, blob, 0o100644)?;
        }
        let tree = repo.find_tree(tb.write()?)?;
        let commit = repo.commit(
            Some("refs/heads/main"),
            &sig,
            &sig,
            "stacks v1.0.0",
            &tree,
            &[],
        )?;
        let mut pb = repo.packbuilder()?;
        pb.insert_commit(commit)?;
        let mut pack = git2::Buf::new();
        pb.write_buf(&mut pack)?;
        let mut out = format!("# v2 git bundle\n{commit} refs/heads/main\n\n").into_bytes();
        out.extend_from_slice(&pack);
        Ok(out)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| io::Error::other(format!("building the sample Git bundle: {e}")))
}

/// Splits `host/repo:tag` into (`host/repo`, `tag`).
pub fn split_ref(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}

/// A Helm chart `.tgz` whose values reference `image`.
pub fn helm_chart(name: &str, version: &str, image: &str) -> Vec<u8> {
    let (repo, tag) = split_ref(image);
    let chart = format!(
        "apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{version}\"\ndescription: {name} for Sekoia Self-Hosted\ntype: application\n"
    );
    let values = format!(
        "replicaCount: 2\nimage:\n  repository: {repo}\n  tag: \"{tag}\"\n  pullPolicy: IfNotPresent\nresources:\n  requests:\n    cpu: 100m\n    memory: 128Mi\n"
    );
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{{{ .Release.Name }}}}-{name}\nspec:\n  replicas: {{{{ .Values.replicaCount }}}}\n  template:\n    spec:\n      containers:\n        - name: {name}\n          image: \"{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}\"\n"
    );
    gzip(&tar_of(&[
        (&format!("{name}/Chart.yaml"), chart.as_bytes()),
        (&format!("{name}/values.yaml"), values.as_bytes()),
        (
            &format!("{name}/templates/deployment.yaml"),
            deployment.as_bytes(),
        ),
    ]))
}

/// A security content bundle `.tar.gz`.
pub fn content_bundle(kind: &str, id: &str, rng: &mut Rng, items: usize) -> Vec<u8> {
    let mut docs = Vec::new();
    for i in 0..items {
        let uuid = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        docs.push((
            format!("{kind}-{id}/{i:04}.yml"),
            format!("uuid: {uuid}\nname: {kind} item {i}\nversion: {id}\nenabled: true\n")
                .into_bytes(),
        ));
    }
    let refs: Vec<(&str, &[u8])> = docs
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    gzip(&tar_of(&refs))
}

/// Writes entries into the outer release tar and records the manifest.
struct ReleaseWriter {
    tar: tar::Builder<BufWriter<File>>,
    listed: Vec<ManifestFile>,
    prefix: String,
}

impl ReleaseWriter {
    fn dir(&mut self, path: &str) -> io::Result<()> {
        let mut h = header(0, 0o755, tar::EntryType::Directory);
        self.tar.append_data(&mut h, path, io::empty())
    }

    fn file(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut h = header(data.len() as u64, 0o644, tar::EntryType::Regular);
        self.tar.append_data(&mut h, path, data)?;
        if let Some(rel) = path.strip_prefix(&self.prefix) {
            self.listed.push(ManifestFile {
                path: rel.to_string(),
                size: data.len() as u64,
                sha256: sha256_hex(data),
            });
        }
        Ok(())
    }
}

/// The cosign v3 referrers of a signed image: its signature (a statement
/// of predicate type `https://sigstore.dev/cosign/sign/v1`), an SPDX SBOM
/// and SLSA provenance, each a DSSE bundle whose subject is the image
/// manifest of `layers` ([`oci_image_with`]).
pub fn image_attestations(
    signer: &crate::sigstore::sign::TestInstance,
    signed_as: &crate::sigstore::sign::SignOptions,
    reference: &str,
    layers: &[Vec<u8>],
) -> Vec<Attachment> {
    use crate::sigstore::sign::{Statement, Subject};
    let (repo, _) = split_ref(reference);
    let mut digest = [0u8; 32];
    hex::decode_to_slice(
        oci_manifest_digest(layers).trim_start_matches("sha256:"),
        &mut digest,
    )
    .expect("a sha256: digest");
    let name = repo.rsplit('/').next().unwrap_or(repo);
    [
        ("https://sigstore.dev/cosign/sign/v1", serde_json::json!({})),
        (
            "https://spdx.dev/Document",
            serde_json::json!({
                "spdxVersion": "SPDX-2.3",
                "dataLicense": "CC0-1.0",
                "SPDXID": "SPDXRef-DOCUMENT",
                "name": name,
                "packages": [{"SPDXID": "SPDXRef-Package", "name": name, "versionInfo": VERSION}],
            }),
        ),
        (
            "https://slsa.dev/provenance/v1",
            serde_json::json!({
                "buildDefinition": {"buildType": "https://ci.sekoia.example/build/v1"},
                "runDetails": {"builder": {"id": "https://ci.sekoia.example/builder@v1"}},
            }),
        ),
    ]
    .into_iter()
    .map(|(predicate_type, predicate)| {
        let statement = Statement {
            subjects: vec![Subject {
                name: repo.to_string(),
                sha256: digest,
            }],
            predicate_type: predicate_type.to_string(),
            predicate,
        };
        Attachment::Referrer {
            bundle: signer.attest(&statement, signed_as).into_bytes(),
            predicate_type: Some(predicate_type.to_string()),
            listed: false,
        }
    })
    .collect()
}

/// Names used inside the sample, for tests that derive broken variants.
pub fn platform_dir() -> String {
    format!("platform/{VERSION}")
}

pub fn tar_name() -> String {
    format!("{PRODUCT}-{VERSION}.tar")
}

/// Writes `PRODUCT-VERSION.tar` and its `.tar.sha256` into `dir` (and the
/// `.tar.gz` pair when `gzip` is set). Returns the paths written.
pub fn write_release(dir: &Path, size: u64, with_gzip: bool) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let tar_path = dir.join(tar_name());
    let mut rng = Rng::new(size ^ 0x5e_c01a);
    let platform = platform_dir();
    let signer = crate::sigstore::sign::TestInstance::new(SIGSTORE_SEED);
    let signed_as = crate::sigstore::sign::SignOptions::new(SIGNER_IDENTITY, SIGNER_ISSUER);
    let mut w = ReleaseWriter {
        tar: tar::Builder::new(BufWriter::with_capacity(1 << 20, File::create(&tar_path)?)),
        listed: Vec::new(),
        prefix: format!("{platform}/"),
    };
    w.dir("platform/")?;
    w.dir(&format!("{platform}/"))?;
    w.dir(&format!("{platform}/images/"))?;

    // Thousands of small YAML and JSON files for large releases (about
    // 1.5 KiB each in the tar with header and padding); images fill the rest
    // so the archive reaches at least `size`.
    let small_files = if size >= 256 << 20 {
        (size / (256 << 10)) as usize
    } else {
        12
    };
    let image_budget = size.saturating_sub(small_files as u64 * 1536 + (128 << 10));
    let services = [
        "ingest",
        "api",
        "frontend",
        "worker",
        "scheduler",
        "storage",
        "search",
        "notifier",
    ];
    let mut images = Vec::new();
    let mut spent: u64 = 0;
    let mut i = 0usize;
    while spent < image_budget || i < 3 {
        let name = format!("{}-{}", services[i % services.len()], i / services.len());
        let reference = format!("registry.sekoia.io/sekoia/{name}:{VERSION}");
        let remaining = image_budget.saturating_sub(spent);
        // Layers of 1 to 200 MiB for large releases; small ones for the demo.
        let big = if size >= 256 << 20 {
            let want = (1u64 << 20) + rng.below(199 << 20);
            want.min(remaining.max(1 << 20))
        } else {
            (remaining / 3).clamp(16 << 10, 1 << 20)
        };
        let base = tar_of(&[
            ("etc/os-release", b"ID=distroless\nVERSION_ID=12\n"),
            (
                "app/config.yaml",
                format!("service: {name}\nlog_level: info\n").as_bytes(),
            ),
        ]);
        // About 90% incompressible (binaries) and 10% text, as in real images.
        let payload = rng.bytes((big - big / 10) as usize);
        let text = text_blob(&mut rng, (big / 10) as usize);
        let app = tar_of(&[
            (&format!("app/{name}.bin"), &payload),
            (&format!("app/{name}.txt"), &text),
        ]);
        drop(payload);
        // gzip's default level, as `docker save | gzip` and Go's image
        // tooling use: incompressible data is kept in stored blocks. (zlib-rs's
        // level 1 codes it with fixed Huffman codes instead, 5% larger than
        // the input, which no image tool produces.)
        let image = gzip(&docker_image(&reference, &[base, app]));
        let path = format!("{platform}/images/{name}.tar.gz");
        spent += image.len() as u64;
        w.file(&path, &image)?;
        images.push(ManifestImage {
            reference,
            path: format!("images/{name}.tar.gz"),
        });
        i += 1;
    }

    // Newer tooling ships OCI layouts: one image in that form, signed by
    // the vendor with an SBOM and SLSA provenance attached as cosign v3
    // referrers.
    {
        let name = "collector-oci";
        let reference = format!("registry.sekoia.io/sekoia/{name}:{VERSION}");
        let layer = tar_of(&[("usr/bin/collector", &rng.bytes(32 << 10))]);
        let layers = [layer];
        let attached = image_attestations(&signer, &signed_as, &reference, &layers);
        let image = gzip(&oci_image_with(&reference, &layers, &attached));
        w.file(&format!("{platform}/images/{name}.tar.gz"), &image)?;
        images.push(ManifestImage {
            reference,
            path: format!("images/{name}.tar.gz"),
        });
    }

    w.dir(&format!("{platform}/charts/"))?;
    for img in images.iter().take(4) {
        let (repo, _) = split_ref(&img.reference);
        let name = repo.rsplit('/').next().unwrap_or("chart");
        let chart = helm_chart(name, "1.0.0", &img.reference);
        w.file(&format!("{platform}/charts/{name}-1.0.0.tgz"), &chart)?;
    }

    // Thousands of small YAML and JSON files for large releases.
    w.dir(&format!("{platform}/argo-stacks/"))?;
    for k in 0..small_files {
        let app = services[k % services.len()];
        if k % 3 == 2 {
            let doc = serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AppProject",
                "metadata": {"name": format!("{app}-{k}")},
                "spec": {"sourceRepos": ["https://git.perimeter.internal/sekoia/stacks.git"],
                          "destinations": [{"namespace": app, "server": "https://kubernetes.default.svc"}],
                          "salt": format!("{:016x}", rng.next_u64())}
            });
            let body = serde_json::to_vec_pretty(&doc).expect("json");
            w.file(
                &format!("{platform}/argo-stacks/{app}/project-{k}.json"),
                &body,
            )?;
        } else {
            let body = format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app}-{k}\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://git.perimeter.internal/sekoia/stacks.git\n    targetRevision: main\n    path: stacks/{app}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {app}\n  syncPolicy:\n    automated: {{}}\n# {:016x}\n",
                rng.next_u64()
            );
            w.file(
                &format!("{platform}/argo-stacks/{app}/app-{k}.yaml"),
                body.as_bytes(),
            )?;
        }
    }

    // ArgoCD stacks also ship as a Git bundle, pushed to the local Git server.
    w.dir(&format!("{platform}/git/"))?;
    let stacks = git_bundle(&[
        ("README.md", b"# Sekoia Self-Hosted ArgoCD stacks\n"),
        (
            "stacks.yaml",
            b"apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: sekoia\n",
        ),
    ])?;
    w.file(&format!("{platform}/git/argo-stacks.bundle"), &stacks)?;

    // The manifest comes last: it lists everything before it.
    let doc = ManifestDoc {
        schema_version: 1,
        product: PRODUCT.into(),
        version: VERSION.trim_start_matches('v').into(),
        files: std::mem::take(&mut w.listed),
        images,
    };
    let manifest = serde_json::to_vec_pretty(&doc).expect("json");
    w.prefix = String::from("\u{0}"); // stop recording
    w.file(&format!("{platform}/manifest.json"), &manifest)?;
    // The vendor's Sigstore bundle over the manifest, beside it: a verified
    // manifest vouches for every file it lists.
    let manifest_bundle = signer.sign_digest(&Sha256::digest(&manifest).into(), &signed_as);
    w.file(
        &format!("{platform}/manifest.json.sigstore.json"),
        manifest_bundle.as_bytes(),
    )?;

    w.dir("data/")?;
    for (n, kind) in CONTENT_TYPES.iter().enumerate() {
        w.dir(&format!("data/{kind}/"))?;
        let id = format!("2025.{:02}.{}", n + 1, 7 + n);
        let bundle = content_bundle(kind, &id, &mut rng, 20);
        w.file(&format!("data/{kind}/{kind}-{id}.tar.gz"), &bundle)?;
        // Alternate the two documented `latest` forms: file name and id.
        let latest = if n % 2 == 0 {
            format!("{kind}-{id}.tar.gz\n")
        } else {
            format!("{id}\n")
        };
        w.file(&format!("data/{kind}/latest"), latest.as_bytes())?;
    }

    let mut out = w.tar.into_inner()?;
    out.flush()?;
    drop(out);
    let mut written = vec![tar_path.clone()];
    written.extend(write_side_files(&tar_path, &signer, &signed_as)?);
    if with_gzip {
        let gz_path = dir.join(format!("{}.gz", tar_name()));
        {
            let mut input = File::open(&tar_path)?;
            let mut enc = GzEncoder::new(
                BufWriter::with_capacity(1 << 20, File::create(&gz_path)?),
                Compression::new(6),
            );
            io::copy(&mut input, &mut enc)?;
            enc.finish()?.flush()?;
        }
        written.push(gz_path.clone());
        written.extend(write_side_files(&gz_path, &signer, &signed_as)?);
    }
    let root = dir.join(TRUSTED_ROOT);
    std::fs::write(&root, signer.trusted_root_json())?;
    written.push(root);
    Ok(written)
}

/// `PATH.sha256` and `PATH.sigstore.json` beside an archive, from one read.
fn write_side_files(
    path: &Path,
    signer: &crate::sigstore::sign::TestInstance,
    signed_as: &crate::sigstore::sign::SignOptions,
) -> io::Result<Vec<PathBuf>> {
    let digest = file_sha256(path)?;
    let sha_file = write_sha256_line(path, &digest)?;
    let bundle = side_path(path, ".sigstore.json");
    std::fs::write(&bundle, signer.sign_digest(&digest, signed_as))?;
    Ok(vec![sha_file, bundle])
}

fn file_sha256(path: &Path) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut f = File::open(path)?;
    io::copy(&mut f, &mut h)?;
    Ok(h.finalize().into())
}

/// `PATH` followed by `suffix`.
fn side_path(path: &Path, suffix: &str) -> PathBuf {
    let mut side = path.as_os_str().to_owned();
    side.push(suffix);
    PathBuf::from(side)
}

/// Compressible text: log-like lines with varying numbers.
fn text_blob(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 128);
    let words = [
        "info", "debug", "request", "served", "cache", "miss", "hit", "user",
    ];
    while out.len() < n {
        let line = format!(
            "{} {} {} id={} took={}ms\n",
            words[rng.below(8) as usize],
            words[rng.below(8) as usize],
            words[rng.below(8) as usize],
            rng.below(100_000),
            rng.below(1000)
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(n);
    out
}

/// Writes `FILE.sha256` in `sha256sum` format, as the vendor ships it.
pub fn write_sha256_file(path: &Path) -> io::Result<PathBuf> {
    write_sha256_line(path, &file_sha256(path)?)
}

fn write_sha256_line(path: &Path, digest: &[u8; 32]) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let side = side_path(path, ".sha256");
    std::fs::write(&side, format!("{}  {name}\n", hex::encode(digest)))?;
    Ok(side)
}
