//! The stable list of finding codes, as data.
//!
//! Guarantees:
//! - a code's string (`bundle:digest-mismatch`) never changes once released;
//!   the unit test `code_list_snapshot` makes any rename a visible diff;
//! - every code has a description and a remediation; `docs/checks.md` is
//!   generated from this table and a test fails when the two differ;
//! - the default status of a code lives here and nowhere else.

/// Outcome of one check. Ordered from least to most severe so that `max()`
/// over a set of findings gives the worst one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Skip,
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pass" => Some(Status::Pass),
            "warn" => Some(Status::Warn),
            "fail" => Some(Status::Fail),
            "skip" => Some(Status::Skip),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the tool knows about one code.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    pub code: Code,
    pub id: &'static str,
    pub default_status: Status,
    /// What was checked and why it matters.
    pub description: &'static str,
    /// How to fix it.
    pub remediation: &'static str,
}

macro_rules! codes {
    ($( $variant:ident => $id:literal, $status:ident, $desc:literal, $fix:literal; )*) => {
        /// A stable finding code. The string form is `family:kebab-name`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $variant, )* }

        /// Every code, in declaration order (grouped by family).
        pub const ALL: &[CodeInfo] = &[
            $( CodeInfo {
                code: Code::$variant,
                id: $id,
                default_status: Status::$status,
                description: $desc,
                remediation: $fix,
            }, )*
        ];

        impl Code {
            pub fn info(self) -> &'static CodeInfo {
                // Declaration order equals discriminant order.
                &ALL[self as usize]
            }
        }
    };
}

impl Code {
    pub fn id(self) -> &'static str {
        self.info().id
    }

    pub fn family(self) -> &'static str {
        let id = self.id();
        &id[..id.find(':').unwrap_or(id.len())]
    }

    pub fn default_status(self) -> Status {
        self.info().default_status
    }

    pub fn from_id(id: &str) -> Option<Code> {
        ALL.iter().find(|c| c.id == id).map(|c| c.code)
    }
}

/// Codes close to `id`, for a "did you mean": the codes whose name (after
/// the family) is `id`, else those within a few edits of `id` (the whole
/// code or its name), nearest first, at most three.
pub fn suggest(id: &str) -> Vec<&'static str> {
    let id = id.trim().to_ascii_lowercase();
    let name_of = |c: &str| c.split_once(':').map(|(_, n)| n).unwrap_or(c).to_string();
    let exact: Vec<&'static str> = ALL
        .iter()
        .filter(|c| name_of(c.id) == id || c.id.replace(':', "-") == id)
        .map(|c| c.id)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let limit = (id.len() / 4).clamp(1, 4);
    let mut near: Vec<(usize, &'static str)> = ALL
        .iter()
        .map(|c| (distance(&id, c.id).min(distance(&id, &name_of(c.id))), c.id))
        .filter(|(d, _)| *d <= limit)
        .collect();
    near.sort();
    near.into_iter().take(3).map(|(_, c)| c).collect()
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The text `airgap-verify explain CODE` prints.
pub fn explain_text(code: Code) -> String {
    let c = code.info();
    format!(
        "{} (default status: {})\n\n{}\n\nRemediation: {}\n",
        c.id, c.default_status, c.description, c.remediation
    )
}

/// docs/checks.md, generated from this table (a test keeps them equal).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Finding codes\n\n\
         Every finding carries one of these stable codes. `airgap-verify explain CODE` prints the same text.\n\
         The default status can be changed per code in the configuration, and `--fail-on warn` makes warnings fail.\n\
         This file is generated by `airgap-verify explain --markdown`; do not edit it by hand.\n",
    );
    let mut family = "";
    for c in ALL {
        let f = c.code.family();
        if f != family {
            family = f;
            out.push_str(&format!("\n## Family `{f}`\n"));
        }
        out.push_str(&format!(
            "\n### {}\n\nDefault status: **{}**\n\n{}\n\n**Remediation:** {}\n",
            c.id, c.default_status, c.description, c.remediation
        ));
    }
    out
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

codes! {
    // ---- outer checksum -------------------------------------------------
    BundleChecksumVerified => "bundle:checksum-verified", Pass,
        "The SHA-256 of the whole archive, computed in the same pass that reads its contents, equals the published checksum (the `.sha256` file beside the archive, `--checksum FILE` or `--sha256 HEX`). This proves the archive is byte-for-byte the file the vendor hashed.",
        "Nothing to do.";
    BundleChecksumMismatch => "bundle:checksum-mismatch", Fail,
        "The SHA-256 of the archive differs from the published checksum. The archive was corrupted in transfer or storage, or it is not the file the vendor published.",
        "Copy the archive again from the trusted source and re-run the check; compare the checksum file with the one published by the vendor.";
    BundleChecksumMissing => "bundle:checksum-missing", Warn,
        "No published checksum was found for the archive: no `PATH.sha256` beside it and neither `--checksum` nor `--sha256` given. Contents were still checked against any manifest inside, but the archive as a whole cannot be tied to what the vendor shipped.",
        "Place the vendor's `.sha256` file beside the archive, or pass `--checksum FILE` or `--sha256 HEX`.";
    BundleChecksumInvalid => "bundle:checksum-invalid", Fail,
        "The checksum file could not be used: it holds no SHA-256 line in `sha256sum` or BSD format, or no line names this archive.",
        "Use the checksum file published with this exact archive, in `sha256sum` format (`<64 hex>  <file name>`).";
    BundleSplitParts => "bundle:split-parts", Pass,
        "The archive is split (`NAME.001`, `NAME.part1` or `NAME.aa`, then the parts after it) and its parts were read as one stream, in order; the evidence lists each part and its size. The whole-archive checksum is `NAME.sha256`.",
        "Nothing to do.";
    BundleSplitPartMissing => "bundle:split-part-missing", Fail,
        "A part of a split archive is missing: a later part exists but this one does not. Reading stopped before the gap, so the archive also reads as truncated.",
        "Copy the missing part from the vendor's media or download; all parts are needed.";
    BundleSplitPartTruncated => "bundle:split-part-truncated", Fail,
        "A part of a split archive that is not the last one differs in size from the first part (split tools write equal parts but the last): it was cut or padded in transfer.",
        "Copy that part again and compare its size with the first part's.";
    BundleSplitPartChecksumVerified => "bundle:split-part-checksum-verified", Pass,
        "A part's own `PART.sha256` (beside it) matches the SHA-256 of that part, computed as it streamed past.",
        "Nothing to do.";
    BundleSplitPartChecksumMismatch => "bundle:split-part-checksum-mismatch", Fail,
        "A part's SHA-256 differs from its own `PART.sha256` (or that file holds no usable line): this part is damaged.",
        "Copy that part again from the vendor's media or download.";

    // ---- container ------------------------------------------------------
    BundleContainerIntact => "bundle:container-intact", Pass,
        "The archive's container (tar, gzip members, zstd frames) was read to its end with every length, checksum and end marker correct.",
        "Nothing to do.";
    BundleUnrecognisedFormat => "bundle:unrecognised-format", Fail,
        "The input is neither a tar archive, a gzip-compressed tar, a zstd-compressed tar nor a directory. The format is detected from the first bytes, never from the file name.",
        "Check that the file is the release archive itself (not an HTML error page, a partial download or an encrypted container).";
    BundleReadError => "bundle:read-error", Fail,
        "Reading the input failed part way through (an I/O error from the disk or file system).",
        "Check the storage device and file system (dmesg), then copy the archive again.";
    BundleTruncated => "bundle:truncated", Fail,
        "The archive ends early: inside a tar header or entry, inside a gzip member or zstd frame, or without the tar end-of-archive marker. The offset says where the data stopped.",
        "The copy is incomplete. Copy the archive again and compare its size with the vendor's.";
    BundleGzipCorrupt => "bundle:gzip-corrupt", Fail,
        "A gzip member has an invalid header or invalid deflate data.",
        "The archive is damaged. Copy it again from the trusted source.";
    BundleGzipCrcMismatch => "bundle:gzip-crc-mismatch", Fail,
        "The CRC-32 stored at the end of a gzip member does not match the data it decompressed to.",
        "The archive is damaged. Copy it again from the trusted source.";
    BundleGzipSizeMismatch => "bundle:gzip-size-mismatch", Fail,
        "The length (ISIZE) stored at the end of a gzip member does not match the decompressed length modulo 2^32.",
        "The archive is damaged. Copy it again from the trusted source.";
    BundleZstdCorrupt => "bundle:zstd-corrupt", Fail,
        "A zstd frame is invalid: bad frame header, corrupt block, checksum error or a content size that does not match the frame header.",
        "The archive is damaged. Copy it again from the trusted source.";
    BundleTrailingData => "bundle:trailing-data", Fail,
        "Non-zero bytes follow the last gzip member or zstd frame. Decompressors disagree about such bytes, so content could hide there.",
        "Obtain a clean copy of the archive; if the vendor ships it this way, report it to the vendor.";
    BundleZeroPadding => "bundle:zero-padding", Warn,
        "Zero bytes follow the last gzip member or zstd frame (typical of tape or block-device copies). Harmless but not what the vendor hashed unless the checksum still matches.",
        "If the checksum matches, nothing to do. Otherwise trim the padding or copy the archive again.";
    BundleTarHeaderChecksum => "bundle:tar-header-checksum", Fail,
        "A tar header's checksum field does not match the header bytes. Tar readers disagree on how to recover, so the rest of the archive cannot be trusted.",
        "The archive is damaged. Copy it again from the trusted source.";
    BundleTarCorrupt => "bundle:tar-corrupt", Fail,
        "A tar header could not be parsed (invalid numeric field, malformed PAX or GNU long-name record), or an extension header (PAX record, GNU long name or long link, GNU sparse map) is larger than 1 MiB. Tar readers hold extension headers in memory, so an oversized one is a memory attack, not a real archive.",
        "The archive is damaged or hand-crafted. Copy it again from the trusted source.";
    BundleDataAfterEnd => "bundle:data-after-end", Fail,
        "Non-zero data follows the tar end-of-archive marker. Some tools ignore it and others read it, so content could be smuggled there.",
        "Obtain a clean copy of the archive; if the vendor ships it this way, report it to the vendor.";
    BundleTarMetadataMalformed => "bundle:tar-metadata-malformed", Fail,
        "A tar extension header breaks its format: a PAX record with a wrong length, no key, a NUL in its key, a NUL or (without `hdrcharset=BINARY`) non-UTF-8 bytes in a name; a GNU long name or long link holding a NUL before more text; a sparse map that is contradictory or does not match the data; a global header that sets `size`; or a link, folder or device that declares data. Extractors disagree on such input: GNU tar and bsdtar refuse it or cut the name, Python's tarfile applies what it could parse, so no reading of the entry can be trusted. The message names the entry and the byte offset.",
        "Do not use this archive; obtain the vendor's original. Real tar writers never produce this.";
    BundleTarReadersDisagree => "bundle:tar-readers-disagree", Fail,
        "GNU tar, bsdtar and Python's tarfile would give this entry different names or link targets (for example a GNU long name after a PAX header, or a PAX global `path`), so what is verified under one name is extracted under another. Each reading was also judged by the safety rules; the `readings` evidence says which extractor uses which name.",
        "Do not use this archive; obtain the vendor's original. Real tar writers never produce entries that extractors read differently.";
    BundlePaxSizeMismatch => "bundle:pax-size-mismatch", Fail,
        "A PAX `size` record gives an entry a size that differs from its tar header. Readers that ignore PAX see different files than readers that honour it (the tar-rs PAX desync advisories).",
        "Do not use this archive; obtain the vendor's original.";

    // ---- resource limits ------------------------------------------------
    BundleExpansionRatioExceeded => "bundle:expansion-ratio-exceeded", Fail,
        "A gzip or zstd stream (the archive itself, a nested archive, an image layer with `--deep`) or the objects of a Git bundle's pack decompressed to more than `--max-expansion-ratio` (default 200) times its compressed size, past the first 16 MiB of output. Real release content stays far below that; a decompression bomb (gigabytes of zeros in a few megabytes) does not. Decompression stopped there, so what follows was not verified.",
        "Do not use this archive; obtain the vendor's original. If the content is genuine (for example a large zero-filled disk image), raise `--max-expansion-ratio`.";
    BundleNestedTooDeep => "bundle:nested-too-deep", Fail,
        "An archive is nested deeper than `--max-depth` (default 3: the release holds a chart that holds a subchart that holds its own). It was hashed but not opened, so its content was not verified. Archives nested without bound are a way to exhaust threads and memory.",
        "Check why the release nests archives this deep; if it is genuine, raise `--max-depth`.";
    BundleNestedTooLarge => "bundle:nested-too-large", Fail,
        "A nested archive holds more than `--max-nested-bytes` (default 32 GiB) of tar data after decompression. Reading stopped there, so the rest of it was not verified.",
        "Do not use this archive unless the size is expected; then raise `--max-nested-bytes`.";
    BundleTooManyEntries => "bundle:too-many-entries", Fail,
        "The release archive has more than `--max-entries` (default 1000000) entries. Reading stopped there, so the rest of it was not verified (its outer checksum was still computed over every byte). Every entry costs a small record in memory (about 200 bytes, for the duplicate, link and manifest checks), and a few tens of megabytes of compressed tar headers make millions of entries: the limit bounds what such a flood can cost.",
        "Do not use this archive unless so many entries are expected (images, charts and content bundles are one entry each, so releases hold thousands); then raise `--max-entries`.";
    BundleNestedTooManyEntries => "bundle:nested-too-many-entries", Fail,
        "A nested archive has more than `--max-nested-entries` (default 100000) entries. Reading stopped there, so the rest of it was not verified: every entry costs a small record in memory, and hundreds of thousands of empty entries are a memory attack.",
        "Do not use this archive unless so many entries are expected; then raise `--max-nested-entries`.";

    // ---- tar safety -----------------------------------------------------
    BundleEntriesSafe => "bundle:entries-safe", Pass,
        "Every tar entry (PAX and GNU long names included) was checked for absolute paths, `..` components, escaping links, special files, setuid/setgid bits, duplicates, non-UTF-8 and overlong names, and none was found.",
        "Nothing to do.";
    BundleAbsolutePath => "bundle:absolute-path", Fail,
        "An entry's path is absolute. Extracting it would write outside the destination folder.",
        "Do not extract this archive; obtain the vendor's original.";
    BundlePathTraversal => "bundle:path-traversal", Fail,
        "An entry's path contains a `..` component. Extracting it could write outside the destination folder.",
        "Do not extract this archive; obtain the vendor's original.";
    BundleLinkEscape => "bundle:link-escape", Fail,
        "A symbolic or hard link points outside the archive root (absolute target, or enough `..` to leave it). A later entry or a later tool could write through it.",
        "Do not extract this archive; obtain the vendor's original.";
    BundlePathThroughSymlink => "bundle:path-through-symlink", Fail,
        "An entry's path goes through a symbolic link that an earlier entry created. Extracting the archive would write wherever that link points.",
        "Do not extract this archive; obtain the vendor's original.";
    BundleSpecialFile => "bundle:special-file", Fail,
        "The archive holds a character device, block device, FIFO or socket. A release archive has no reason to carry one.",
        "Do not extract this archive as root; obtain the vendor's original.";
    BundleSetuid => "bundle:setuid", Fail,
        "A file carries the setuid or setgid bit. Extracted as root it would run with raised privileges.",
        "Confirm with the vendor that the bit is intended; extract with `--no-same-permissions` otherwise.";
    BundleDuplicateEntry => "bundle:duplicate-entry", Fail,
        "The same path appears twice; a later entry silently replaces the earlier one on extraction, so what a reviewer reads first is not what gets installed.",
        "Do not use this archive; obtain the vendor's original.";
    BundleNonUtf8Name => "bundle:non-utf8-name", Fail,
        "An entry's name is not valid UTF-8. Tools display and compare such names differently. The name is shown with invalid bytes escaped.",
        "Obtain the vendor's original; release archives use UTF-8 names.";
    BundleNameTooLong => "bundle:name-too-long", Fail,
        "An entry's name is longer than 4096 bytes (PATH_MAX on Linux). No extractor can create it as given, and such names (the tar format allows megabytes through PAX and GNU records) are a way to exhaust memory. The name is shown shortened to its first 100 bytes, its length and part of its SHA-256.",
        "Do not use this archive; obtain the vendor's original.";
    BundleCaseCollision => "bundle:case-collision", Warn,
        "Two paths differ only by letter case. On a case-insensitive file system one would overwrite the other.",
        "Extract on a case-sensitive file system, or ask the vendor to rename one of the files.";
    BundleUnsupportedEntry => "bundle:unsupported-entry", Warn,
        "An entry has a type this tool does not verify (multi-volume continuation, volume label, GNU dump folder, vendor extension). Its name was judged by the safety rules, but its bytes were neither hashed nor interpreted. (Sparse files are read as files: their holes are hashed as zeros.)",
        "Check that entry by hand, or ask the vendor for an archive without it.";

    // ---- release manifests ----------------------------------------------
    BundleManifestVerified => "bundle:manifest-verified", Pass,
        "Every file listed in a release manifest (`manifest.json` or `SHA256SUMS`) is present with the listed size and SHA-256, and (for `manifest.json`) no unlisted file sits in its folder.",
        "Nothing to do.";
    BundleNoManifest => "bundle:no-manifest", Warn,
        "No release manifest (`manifest.json` or `SHA256SUMS`, up to three folders deep) was found, so individual files could not be checked against the vendor's list.",
        "Ask the vendor for a signed manifest, or create a baseline of a trusted copy with `airgap-verify manifest create`.";
    BundleFolderHoldsArchives => "bundle:folder-holds-archives", Warn,
        "The folder given to `bundle` holds release archives at its top level with their published checksum beside them (`NAME.sha256`, or a `SHA256SUMS` that names them): a download folder, not a staged release. A folder pass reads the archives' content but does not compare them with those checksums. Evidence: `archives`, the archives' names.",
        "Verify each archive itself, which compares it with its checksum: `airgap-verify bundle FOLDER/NAME.tar` (the finding names them).";
    BundleEmpty => "bundle:empty", Fail,
        "The archive or folder holds no file at all, so nothing was verified (reported when nothing else failed: a damaged archive whose pass stopped early says so in its own findings). An empty folder is often a staging mount that is not mounted, or a copy that has not run yet; an empty archive, a failed export.",
        "Check that the release is where the path points (mount the staging volume, finish the copy) and run again on the real archive or folder.";
    BundleContentNotChecked => "bundle:content-not-checked", Skip,
        "The nested archives (container images, Helm charts, content bundles, Git bundles) were not opened (`--no-content`, or `--max-depth 0`): the container, the entries and the manifests were verified, the content of those archives was not, and no text file was scanned for external references (no `refs:*` finding).",
        "Run without `--no-content` to validate every image, chart and bundle inside the release and scan its text for external references.";
    BundleUnauthenticated => "bundle:unauthenticated", Warn,
        "Nothing ties the release to what the vendor shipped: no published checksum matched it, no manifest inside it was verified and no signature of the archive was checked (a Sigstore bundle beside a member signs that member only). The container and its entries were checked for damage and unsafe paths, but a modified release would read the same.",
        "Place the vendor's `.sha256` beside the archive (or pass `--checksum`/`--sha256`), verify its signature with `--pubkey`/`--cosign-key`, verify the archive's Sigstore bundle (`PATH.sigstore.json`) with `--certificate-identity`/`--certificate-oidc-issuer` or `--sigstore-key`, or ask the vendor for a release with a manifest.";
    BundleManifestInvalid => "bundle:manifest-invalid", Fail,
        "A release manifest could not be parsed or breaks the format in docs/bundle-format.md (the message gives line and column).",
        "Obtain the vendor's original manifest; if you wrote it, fix the line named.";
    BundleManifestTooLarge => "bundle:manifest-too-large", Fail,
        "A release manifest is larger than the configured limit, so its list of files was not read.",
        "Raise `--max-manifest-size` if the manifest is genuine.";
    BundleFileMissing => "bundle:file-missing", Fail,
        "A file listed in a release manifest is not in the archive.",
        "The archive is incomplete. Copy it again, or obtain the complete release from the vendor.";
    BundleSizeMismatch => "bundle:size-mismatch", Fail,
        "A file's size differs from the size its manifest lists.",
        "The file was changed or damaged. Obtain the vendor's original.";
    BundleDigestMismatch => "bundle:digest-mismatch", Fail,
        "A file's SHA-256 differs from the digest its manifest lists.",
        "The file was changed or damaged. Obtain the vendor's original.";
    BundleUnlistedFile => "bundle:unlisted-file", Fail,
        "A file sits in a `manifest.json` folder but the manifest does not list it: content was added after the manifest was made.",
        "Remove the file, or re-create the manifest from a trusted copy if the addition is intended.";

    // ---- container images -----------------------------------------------
    ImageValid => "image:valid", Pass,
        "A container image file (`docker save` archive and/or OCI image layout), or an image stored as a folder of the release (an OCI layout, an extracted `docker save`), was validated without loading it: every manifest entry names a config whose SHA-256 matches its name, every layer is present and matches its diff_id (uncompressed layers always, compressed ones with `--deep`), every OCI blob matches its digest and size, and the image references were read.",
        "Nothing to do.";
    ImageNotAnImage => "image:not-an-image", Fail,
        "A file directly in an `images/` folder is an archive but holds neither a `docker save` `manifest.json` nor an OCI layout (`oci-layout` and `index.json`), or a folder holding `oci-layout` has no `index.json` small enough to read, so `docker load` would refuse it.",
        "Obtain the vendor's original image file; check it was not replaced by another archive.";
    ImageManifestInvalid => "image:manifest-invalid", Fail,
        "An image's `manifest.json`, `index.json`, OCI manifest or config could not be parsed, or its structure is inconsistent (for example more layers than diff_ids).",
        "Obtain the vendor's original image file.";
    ImageMissingBlob => "image:missing-blob", Fail,
        "A config, layer, manifest or blob that the image's manifest or index references is not in the image file or image folder.",
        "The image file is incomplete. Obtain the vendor's original.";
    ImageConfigDigestMismatch => "image:config-digest-mismatch", Fail,
        "An image config's SHA-256 differs from the digest in its name. `docker load` would reject the image.",
        "The image was altered. Obtain the vendor's original.";
    ImageDiffIdMismatch => "image:diff-id-mismatch", Fail,
        "A layer's SHA-256 (of its uncompressed tar) differs from the diff_id the image config lists for it. `docker load` would reject the image, and the layer is not what the config vouches for.",
        "The image was altered or damaged. Obtain the vendor's original.";
    ImageBlobDigestMismatch => "image:blob-digest-mismatch", Fail,
        "An OCI blob's SHA-256 differs from the digest it is stored under (`blobs/sha256/<digest>`).",
        "The image was altered or damaged. Obtain the vendor's original.";
    ImageSizeMismatch => "image:size-mismatch", Fail,
        "An OCI blob's size differs from the size its descriptor states.",
        "The image was altered or damaged. Obtain the vendor's original.";
    ImageUnknownMediaType => "image:unknown-media-type", Warn,
        "A descriptor has a media type that is neither an OCI nor a Docker image type, so the blob behind it was not interpreted.",
        "Check with the vendor what the blob is; registries may refuse unknown media types.";
    ImagePathEscape => "image:path-escape", Fail,
        "An image's `manifest.json` names a config or layer path that is absolute or contains `..`: it points outside the image.",
        "Do not load this image; obtain the vendor's original.";
    ImageDescriptorCycle => "image:descriptor-cycle", Fail,
        "An OCI index references itself, directly or through other indexes. Tools that follow it would loop forever.",
        "Do not load this image; obtain the vendor's original.";
    ImageRefMissing => "image:ref-missing", Fail,
        "The release manifest's `images` list names an image reference that the named image file or image folder does not contain (no matching `RepoTags` entry or `org.opencontainers.image.ref.name`).",
        "Check the image file and the manifest's `images` list against the vendor's release notes.";

    // ---- image signatures and attestations --------------------------------
    ImageSigned => "image:signed", Pass,
        "An image (a manifest or index of an OCI layout, also inside a newer `docker save` archive) carries a signature that verifies against the Sigstore policy (`--certificate-identity`/`--certificate-identity-regexp` with `--certificate-oidc-issuer`, or `--sigstore-key`, against `--trusted-root`), offline: a cosign v3 Sigstore bundle attached as an OCI 1.1 referrer (its `subject` is the image manifest), or a cosign `sha256-<digest>.sig` tag whose certificate and transparency-log bundle are carried in its annotations. The evidence names the signer, whether an SBOM is attested and the provenance's builder.",
        "Nothing to do.";
    ImageUnsigned => "image:unsigned", Warn,
        "An image carries no signature that verifies: none is attached (no referrer, no `sha256-<digest>.sig` tag, nothing in a `cosign save` layout), every attached one was rejected or cannot be verified offline, or the image is a `docker save` archive without an OCI layout, which has no manifest digest for a signature to name. With `--require-signed-images` this is a failure.",
        "Obtain the image with its signatures (`cosign save`, `oras copy -r --to-oci-layout`, or `skopeo copy --all` of the `.sig` tag), or ask the vendor to sign it.";
    ImageSignatureUnverified => "image:signature-unverified", Warn,
        "An image carries signatures but no Sigstore signer was given (`--certificate-identity`/`--certificate-identity-regexp` with `--certificate-oidc-issuer`, or `--sigstore-key`), so none was verified: a signature proves nothing until its signer is pinned.",
        "Pass the vendor's signing identity and issuer (or its key) and, in a closed network, its `--trusted-root`.";
    ImageSignatureInvalid => "image:signature-invalid", Fail,
        "A signature attached to an image does not verify against the Sigstore policy: the signature, certificate chain, identity or issuer, transparency-log entry or timestamp is wrong, the bundle does not parse or its blob is missing, or the signature was made over another image.",
        "Do not install this image. Check the Sigstore options against the vendor's published values; otherwise obtain the image and its signatures again.";
    ImageSignatureUnverifiable => "image:signature-unverifiable", Warn,
        "A signature or attestation attached to an image cannot be verified offline within the pass: an older cosign one (`sha256-<digest>.sig` or `.att` tag) carries no transparency-log bundle (`dev.sigstore.cosign/bundle`), so nothing ties it to the trusted root; or a bundle is larger than the pass keeps of an image's JSON (4 MiB each, 16 MiB in all: a very large SBOM). It is reported and not counted as a signature or attestation.",
        "Ask the vendor for cosign v3 Sigstore bundles (OCI 1.1 referrers), signatures made with the transparency log, and SBOMs small enough to ship attached (or verify a large one separately).";
    ImageAttestationInvalid => "image:attestation-invalid", Fail,
        "An attestation attached to an image (an SBOM, SLSA provenance or other in-toto statement in a Sigstore bundle or a cosign `.att` tag) does not verify against the Sigstore policy, does not parse, or its blob is missing.",
        "Do not trust what this attestation claims; obtain the image and its attestations again, or ask the vendor.";
    ImageSubjectMismatch => "image:subject-mismatch", Fail,
        "A signature or attestation attached to an image names another image: the in-toto statement's subject digests (or the cosign signature payload's `docker-manifest-digest`) do not include the digest of the image manifest it is attached to. It may have been copied from another image.",
        "Do not trust it for this image; obtain the image and its attestations from the vendor again.";
    ImageSbomMissing => "image:sbom-missing", Fail,
        "`--require-sbom` was given and an image carries no verified SBOM attestation (an in-toto statement whose predicate type is SPDX, `https://spdx.dev/Document`, or CycloneDX, `https://cyclonedx.org/bom`, whose subject is the image).",
        "Obtain the vendor's SBOM attestation with the image (`cosign attest --type spdxjson` or `cyclonedx`), or drop `--require-sbom`.";
    ImageProvenanceMissing => "image:provenance-missing", Fail,
        "`--require-provenance` was given and an image carries no verified SLSA provenance attestation (predicate type `https://slsa.dev/provenance/v0.2` or `v1`) whose subject is the image.",
        "Obtain the vendor's provenance attestation with the image, or drop `--require-provenance`.";

    // ---- Helm charts ----------------------------------------------------
    ChartValid => "chart:valid", Pass,
        "A Helm chart archive is a valid gzip tar whose `<name>/Chart.yaml` parses and has `apiVersion`, `name` and `version`.",
        "Nothing to do.";
    ChartMissingChartYaml => "chart:missing-chart-yaml", Fail,
        "A chart archive in a `charts/` folder has no `<name>/Chart.yaml`: Helm cannot install it.",
        "Obtain the vendor's original chart.";
    ChartInvalidChartYaml => "chart:invalid-chart-yaml", Fail,
        "A chart's `Chart.yaml` does not parse as YAML or lacks `apiVersion`, `name` or `version`.",
        "Obtain the vendor's original chart.";
    ChartProvenance => "chart:provenance", Pass,
        "A Helm provenance file (`.prov`) sits beside the chart. It was reported, not verified (verify it with `helm verify` and the vendor's key).",
        "Verify it with `helm verify --keyring <vendor key> <chart>`.";

    // ---- security content bundles ---------------------------------------
    ContentBundleValid => "content:bundle-valid", Pass,
        "A `data/<TYPE>/` folder's `latest` file names a bundle (by file name or release id) that exists beside it and is a valid gzip tar.",
        "Nothing to do.";
    ContentLatestMissing => "content:latest-missing", Fail,
        "A `data/<TYPE>/` folder has no `latest` file, so the installer cannot tell which bundle to load.",
        "Obtain the complete `data/` folder from the vendor's release.";
    ContentLatestDangling => "content:latest-dangling", Fail,
        "A `data/<TYPE>/latest` file names a bundle that is not in the folder (neither `<TYPE>-<id>.tar.gz` nor that file name).",
        "Copy the missing bundle, or obtain the complete `data/` folder from the vendor.";
    ContentBundleBroken => "content:bundle-broken", Fail,
        "The bundle that `latest` names is not a valid gzip tar (the container findings for that file say where it breaks).",
        "Obtain the vendor's original bundle.";
    ContentUnreferencedBundle => "content:unreferenced-bundle", Warn,
        "A bundle in a `data/<TYPE>/` folder is not the one `latest` names. It will not be loaded.",
        "Remove stale bundles, or check that `latest` names the intended release.";

    // ---- signatures -------------------------------------------------------
    SignatureValid => "signature:valid", Pass,
        "A detached signature (minisign `.minisig`, or a cosign key-based `.sig`) over the archive or over a manifest inside it verifies with the key given by `--pubkey` or `--cosign-key`. Verified fully offline: no transparency log is consulted.",
        "Nothing to do.";
    SignatureInvalid => "signature:invalid", Fail,
        "A signature does not verify: the signed data was changed (or truncated), the signature file is damaged, or it signs another file.",
        "Do not install this release; obtain the archive and its signature again from the vendor and compare key ids.";
    SignatureWrongKey => "signature:wrong-key", Fail,
        "A signature was made by another key than the one given. It proves nothing about the vendor.",
        "Check that `--pubkey` is the vendor's published key; obtain a release signed by it.";
    SignatureMissing => "signature:missing", Fail,
        "A key was given but no signature was found for the archive (`PATH.minisig`, `PATH.sig`) or for its manifest (`manifest.json.minisig`).",
        "Place the vendor's signature file beside the archive, or drop the key option if the release is not signed.";
    SignatureNoKey => "signature:no-key", Warn,
        "A signature was found but no key was given to check it, so it was not verified.",
        "Pass the vendor's public key with `--pubkey` (minisign) or `--cosign-key` (cosign).";

    // ---- Sigstore bundles -------------------------------------------------
    SigstoreVerified => "sigstore:verified", Pass,
        "A Sigstore bundle (v0.1 to v0.3, a message signature or a DSSE in-toto statement whose subject is the signed file) verifies, fully offline: `PATH.sigstore.json` beside the archive over the archive's SHA-256, or `X.sigstore.json` inside it (or in a staged folder) over member `X`'s SHA-256 (both from the single pass), against the trusted root (`--trusted-root`, else the public-good root embedded in the build): certificate chain to a Fulcio CA valid at signing time, SCTs, transparency-log inclusion proof, checkpoint and signed entry timestamp, RFC 3161 timestamps, the log entry matching the archive, signature and certificate, and the signer's identity and OIDC issuer (or the `--sigstore-key`). The evidence names the signer and the trusted root's SHA-256.",
        "Nothing to do.";
    SigstoreRejected => "sigstore:rejected", Fail,
        "A Sigstore bundle (beside the archive, or `X.sigstore.json` beside member `X` inside it) does not verify; the message gives the first check that failed (signature, certificate chain or validity, SCT, inclusion proof, checkpoint, timestamp, log entry mismatch, identity or issuer, a bundle that does not parse, or a member bundle whose `X` is not in the archive).",
        "Do not install this release. Check `--certificate-identity` and `--certificate-oidc-issuer` (or `--sigstore-key`) and `--trusted-root` against the vendor's published values; otherwise obtain the archive and its bundle again.";
    SigstoreUnverified => "sigstore:unverified", Warn,
        "A Sigstore bundle (`PATH.sigstore.json` beside the archive, or `X.sigstore.json` inside it) was found but no signer was given (`--certificate-identity` with `--certificate-oidc-issuer`, or `--sigstore-key`), so it was not verified: a bundle proves nothing until its signer is pinned.",
        "Pass the vendor's signing identity and issuer (or its key) and, in a closed network, its `--trusted-root`.";
    SigstoreMissing => "sigstore:missing", Fail,
        "A Sigstore signer was given (`--certificate-identity`/`--certificate-oidc-issuer` or `--sigstore-key`) but there is no `PATH.sigstore.json` beside the archive and no `*.sigstore.json` inside it.",
        "Place the vendor's Sigstore bundle beside the archive (`cosign sign-blob --bundle PATH.sigstore.json`), or drop the Sigstore options if the release is not signed that way.";

    // ---- Git bundles ------------------------------------------------------
    GitbundleValid => "gitbundle:valid", Pass,
        "A Git bundle (v2 or v3) has a well-formed header, its pack was streamed through libgit2's indexer (pack checksum and every object verified, connectivity checked), and every ref the header advertises is in the pack. `git bundle verify` does not read the pack and accepts corrupted ones; this check does.",
        "Nothing to do.";
    GitbundleBadHeader => "gitbundle:bad-header", Fail,
        "A Git bundle's header is malformed (bad signature line, bad capability, prerequisite or ref line, no refs); the message names the line.",
        "Obtain the vendor's original bundle; recreate it with `git bundle create`.";
    GitbundleNotSelfContained => "gitbundle:not-self-contained", Fail,
        "A Git bundle has prerequisites (it was made from a range such as `main~1..main`) or a filter, so it cannot be cloned on its own in a network that lacks those objects.",
        "Ask for a bundle of the full history (`git bundle create repo.bundle --all`).";
    GitbundlePackInvalid => "gitbundle:pack-invalid", Fail,
        "A Git bundle's pack is damaged: libgit2's indexer rejected it (bad checksum, corrupt object, truncated pack, missing objects).",
        "Obtain the vendor's original bundle.";
    GitbundleRefMissing => "gitbundle:ref-missing", Fail,
        "A ref advertised in a Git bundle's header points to an object that is not in its pack.",
        "Obtain the vendor's original bundle.";
    GitbundleUnsupported => "gitbundle:unsupported", Warn,
        "A Git bundle uses an object format this build cannot verify (SHA-256 repositories); its pack was read but not checked.",
        "Check the bundle with `git bundle verify` and `git index-pack --strict` on a trusted machine.";
    GitbundleNotChecked => "gitbundle:not-checked", Fail,
        "A Git bundle could not be checked: libgit2 needs a scratch folder for the pack and its index, and none could be created in `$TMPDIR`, `/tmp`, `/var/tmp` or the current directory (the message names each place and why), or it could not be removed afterwards.",
        "Set `TMPDIR` to a writable folder (or run from one) and run again.";

    // ---- external references ----------------------------------------------
    RefsScanned => "refs:scanned", Pass,
        "Every text file of the release (YAML, JSON, Helm values and templates, ArgoCD stacks, scripts, `.env`), including those inside nested charts and content bundles, was scanned for container image references and URLs; the evidence counts files, references and external references, and every external reference by host (`hosts`, the first 1,000 hosts; `hosts_omitted` counts the references to any further ones), including those past the cap on `refs:external` findings. Not reported with `--no-content`, which scans nothing.",
        "Nothing to do.";
    RefsExternal => "refs:external", Warn,
        "A container image reference or URL points outside the perimeter: an implicit Docker Hub image (`nginx:1.25`), a public registry (`docker.io`, `ghcr.io`, `quay.io`, `gcr.io`, `registry.k8s.io`, a vendor registry) or any public host name or address. In an air-gapped installation it will fail, or it reveals a dependency on the internet. Hosts given with `--allow-host`/`--allow-domain`, private addresses and cluster-internal names are inside.",
        "Mirror the image or content into the perimeter and point the reference at the mirror, or declare the host with `--allow-host`/`--allow-domain` if it is inside the perimeter. `--deny-external` makes these failures.";

    // ---- configuration (perimeter.yml, the vendor's config.yml) ------------
    ConfigPlaceholder => "config:placeholder", Fail,
        "A value in the vendor's config.yml is still one of the placeholder defaults of its template (`mail.server.local`, a `*.sekoia.local` or `example.com` name, `smtp-user`/`smtp-password`). The vendor's own configuration check accepts these, and the installation then fails much later, or sends to a host nobody owns.",
        "Replace the placeholder with the real value for this perimeter, then re-run `airgap-verify services`.";
    ConfigOutsidePerimeter => "config:outside-perimeter", Fail,
        "A target written as an IP address in the configuration lies outside every CIDR of `allowed_networks`. An air-gapped installation must not depend on an address outside the perimeter.",
        "Point the setting at the service inside the perimeter, or add its network to `allowed_networks` if it is really inside.";
    ConfigUnresolvedSecret => "config:unresolved-secret", Fail,
        "A secret referenced by the configuration (`password_env`, `password_file`, `${env.VAR}` or `env.VAR`) could not be read, so the probe that needs it ran without credentials or was skipped. The value itself is never printed.",
        "Export the named environment variable or create the named file (readable by the user running airgap-verify), then re-run.";
    ConfigNothingToCheck => "config:nothing-to-check", Warn,
        "The configuration names no service to probe: no DNS server, NTP server, SMTP relay, Git repository, OCI registry or S3 endpoint could be derived from it.",
        "Add `dns`, `ntp`, `smtp`, `git`, `registry` or `s3` sections to perimeter.yml (`airgap-verify init` writes a commented template), or pass the vendor's config.yml with `--sekoia-config`.";
    ConfigCredentialInUrl => "config:credential-in-url", Warn,
        "A URL in the configuration (`git.url`, `registry.url`, `s3.endpoint`, a proxy URL, the vendor's `repo_url` or registry URL) or on the command line carries a password (`https://user:password@host/`) instead of a reference to one. The password is removed from the URL before anything is reported, and is never printed; for Git and the registry it is still used for this run when no `password_env`/`password_file` is set, for S3 and proxies it is ignored. A password written in a URL ends up in shell histories, process lists and copied configuration files.",
        "Remove the password from the URL and give it by reference: `password_env`/`password_file` (Git, registry), `secret_key_env`/`secret_key_file` (S3), or the vendor's `${env.VAR}`.";

    ConfigRemovedKey => "config:removed-key", Fail,
        "The vendor's config.yml sets a key that Sekoia Self-Hosted 1.0.0 removed (`utils.port_forward.keep_alive_interval`, `utils.prometheus.query_window`, `utils.prometheus.default_label_filters`). The vendor's own check (`CheckLocalConfig`) rejects any key it does not document, so the installation does not start. The evidence gives the line.",
        "Delete the key from config.yml.";
    ConfigUnknownKey => "config:unknown-key", Warn,
        "A key of a 1.0.0 config.yml is not among the settings the vendor's 1.0.0 documentation names (its \"Configure the deployment\" page and release notes). The vendor's check rejects unsupported keys; a sizing override may still be supported, which only the vendor's `config help` can tell. The evidence gives the line.",
        "Check the key with the vendor's `config help KEY` (a misspelt key is silently a different one), and remove it if it is not supported.";
    ConfigPlaceholderDefault => "config:placeholder-default", Warn,
        "A setting the vendor's check does not require is left out of the 1.0.0 config.yml, and its default is a placeholder (`global.alternative_hosts` `api.sekoia.local`, Grafana's `root_url` on `admin.sekoia.local`, the email sender `noreply@sekoia.local`, the SMTP relay `mail.server.local` with `smtp-user`/`smtp-password`): the platform will send its mail there, or build links and accept a name nobody owns.",
        "Set the key to the perimeter's value (the vendor's page \"Settings with placeholder defaults\" lists them).";
    ConfigDefaultPerimeter => "config:default-perimeter", Warn,
        "perimeter.yml sets no `allowed_networks` (or only the vendor's config.yml was given), so the perimeter is taken to be the private and local ranges: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918), 100.64.0.0/10 (RFC 6598), 127.0.0.0/8, 169.254.0.0/16, ::1/128, fe80::/10 and fc00::/7. A name the perimeter's DNS resolves to a public address then fails (`dns:outside-perimeter`), and no probe connects to one. The evidence lists the ranges used.",
        "List the perimeter's networks in `allowed_networks` of perimeter.yml to judge against them instead (`[]` lifts every restriction, which is not recommended).";
    ConfigUnresolvedVariable => "config:unresolved-variable", Fail,
        "A value of the vendor's config.yml that is not a secret (a region, an endpoint, a host, a user name) is written as a `${env.VAR}` reference, and the variable is not set or is empty. The vendor's installer reads such references from its environment when it loads the file, so it would fail or use an empty value; nothing that needs the value is probed.",
        "Export the named variable with its real value (and pass it to the installer's container too, as the vendor's deployment guide shows), then re-run.";
    ConfigLegacyEnvSyntax => "config:legacy-env-syntax", Fail,
        "A value of a 1.0.0 config.yml is written `env.VAR`, the syntax of earlier releases. Sekoia Self-Hosted 1.0.0 no longer supports it and takes the text literally, so the installer would use the words `env.VAR` as the value (a password, a user name). The value is not used by any probe.",
        "Write the reference as `${env.VAR}`.";
    ConfigClusterNetworkOverlap => "config:cluster-network-overlap", Fail,
        "An address the configuration names (a service, the vendor's hosts or nodes, a flow's host), or a network of `allowed_networks`, lies in the cluster's pod network 10.42.0.0/16 or service network 10.43.0.0/16. The vendor's 1.0.0 network page says these fixed ranges must not overlap any network the nodes or the platform must reach: traffic from a node to such an address goes into the cluster, never to the service. The finding names the address and the range.",
        "Move the service (or the network) out of 10.42.0.0/16 and 10.43.0.0/16; the cluster ranges are fixed by the vendor.";

    // ---- shared networking ---------------------------------------------------
    NetUnresolved => "net:unresolved", Fail,
        "The target's name did not resolve through the DNS servers configured for the perimeter (the machine's own resolver is never asked: it may point outside). Nodes inside the perimeter will not find the service either.",
        "Add the name to the perimeter's DNS zone, fix the name in the configuration, or write the target as an IP address.";
    NetOutsidePerimeter => "net:outside-perimeter", Fail,
        "The target's name resolved to an address outside `allowed_networks`. Connecting there would leave the perimeter, so the probe does not connect.",
        "Fix the DNS record so it points inside the perimeter, or add the network to `allowed_networks` if it is really inside.";
    NetRefused => "net:refused", Fail,
        "The target actively refused the connection (TCP reset, or ICMP port unreachable for UDP): the host is reachable but nothing listens on the port, or a firewall rejects it.",
        "Start the service on the documented port, or open the port on the host firewall.";
    NetTimeout => "net:timeout", Fail,
        "No answer arrived before the connect deadline: the packets are dropped on the way (a filtering firewall, a blackholed route) or the host is down. A probe never waits longer than its deadline.",
        "Check the route and the firewall rules between this machine and the target; raise `--timeout` only if the link is known to be slow.";
    NetNoReply => "net:no-reply", Fail,
        "The connection was accepted (or the datagram sent) but the service sent nothing back before the I/O deadline: a hung service, a tarpit, or a middlebox that accepts and drops.",
        "Check that the real service, not a proxy or a stale process, listens on that address and port, and look at its logs.";
    NetUnreachable => "net:unreachable", Fail,
        "The operating system reported the network or host unreachable (no route, or ICMP unreachable).",
        "Check the routing table and the interfaces of this machine; the target may be on a network this host cannot reach.";

    // ---- TLS -----------------------------------------------------------------
    TlsVerified => "tls:verified", Pass,
        "The server's certificate chain verifies against the configured CA bundle only (never the system roots unless `--system-roots`), is valid now and names the host. Evidence lists each certificate's subject, issuer, SANs and expiry.",
        "Nothing to do.";
    TlsUnknownIssuer => "tls:unknown-issuer", Fail,
        "The server's certificate does not chain to the configured CA bundle: it is self-signed, issued by another CA, or the server omits an intermediate. Nodes that trust only the perimeter's CA will refuse the connection.",
        "Install a certificate issued by the perimeter's CA (with its intermediates in the served chain), or point `ca_bundle` / `--ca-bundle` at the CA that really issued it.";
    TlsExpired => "tls:expired", Fail,
        "The server's certificate (or one in its chain) is expired or not yet valid.",
        "Renew the certificate and reload the service; check the clocks of the server and of this machine.";
    TlsNameMismatch => "tls:name-mismatch", Fail,
        "The server's certificate does not name the host it was reached by (neither a DNS SAN nor an IP SAN matches).",
        "Re-issue the certificate with the service's name in its subjectAltName, or configure the name the certificate carries.";
    TlsExpiringSoon => "tls:expiring-soon", Warn,
        "The server's certificate verifies but expires within the warning window (30 days by default, `tls_expiry_warning_days`).",
        "Renew the certificate before it expires.";
    TlsHandshakeFailed => "tls:handshake-failed", Fail,
        "The TLS handshake failed for a reason other than the certificate: no common protocol version or cipher, a bad record, or the server closed the connection.",
        "Check the service's TLS configuration (TLS 1.2 or 1.3, a modern cipher suite) and its logs.";
    TlsPlatformCertOk => "tls:platform-cert-ok", Pass,
        "The platform's own certificate (`TRAEFIK_PUBKEY`, or `...traefik.custom_cert.crt`) matches its private key (`TRAEFIK_PRIVKEY`), chains to the configured CA bundle, is valid now and names every host the platform serves: `global.host`, `global.delivery_host` and `global.alternative_hosts`. Traefik serves it on HTTPS and on the syslog and RELP intake ports.",
        "Nothing to do.";
    TlsPlatformCertInvalid => "tls:platform-cert-invalid", Fail,
        "The certificate the platform would serve is set but would be rejected: its key is not the certificate's, it does not chain to the perimeter's CA bundle, it is expired, or it does not name one of `global.host`, `global.delivery_host`, `global.alternative_hosts` (the evidence lists the problems and the names missing). Browsers, API clients and event forwarders would refuse the platform. The private key is never printed.",
        "Issue a certificate from the perimeter's CA that names all three hosts, and export it and its own key as `TRAEFIK_PUBKEY` and `TRAEFIK_PRIVKEY` (PEM) for the installer.";
    TlsPlatformCertMissing => "tls:platform-cert-missing", Warn,
        "Neither `TRAEFIK_PUBKEY` nor `TRAEFIK_PRIVKEY` is set (nor `...traefik.custom_cert`): the vendor's installer leaves Traefik's certificate secret empty and Traefik serves its own self-signed default certificate, which browsers, API clients and every event forwarder reject.",
        "Export the platform certificate and its key, in PEM, as `TRAEFIK_PUBKEY` and `TRAEFIK_PRIVKEY` before running airgap-verify and the installer.";

    // ---- DNS -----------------------------------------------------------------
    DnsAnswer => "dns:answer", Pass,
        "The configured DNS server answered the expected name with exactly the expected addresses, all inside `allowed_networks`. Evidence: transport, rcode, flags, answers and latency.",
        "Nothing to do.";
    DnsWrongAddress => "dns:wrong-address", Fail,
        "The DNS server answered the name, but with addresses other than the expected ones.",
        "Fix the record in the perimeter's zone, or the expected addresses in perimeter.yml.";
    DnsNoAnswer => "dns:no-answer", Fail,
        "The DNS server answered NXDOMAIN, or NOERROR with no address, for a name the platform needs.",
        "Add the record to the perimeter's zone (check its spelling in the configuration).";
    DnsServerError => "dns:server-error", Fail,
        "The DNS server answered a name the platform needs with an error (SERVFAIL, REFUSED, FORMERR, NOTIMP): it does not serve that zone or cannot reach the server that does.",
        "Make the server authoritative for the zone or forward the zone to the server that is; check its access control for this machine's address.";
    DnsOutsidePerimeter => "dns:outside-perimeter", Fail,
        "An address in the answer lies outside `allowed_networks`: nodes would be sent out of the perimeter.",
        "Point the record at the service inside the perimeter.";
    DnsClusterNetworkOverlap => "dns:cluster-network-overlap", Fail,
        "An address in the answer lies in the cluster's pod network 10.42.0.0/16 or service network 10.43.0.0/16: from a node, traffic to it goes into the cluster, never to the service the name stands for.",
        "Move the service out of 10.42.0.0/16 and 10.43.0.0/16, and point the record at its new address.";
    DnsBadReply => "dns:bad-reply", Fail,
        "The reply could not be used: malformed, a different transaction id or question, truncated on TCP, or a UDP reply truncated whose TCP retry failed.",
        "Check what answers on that address and port; a middlebox may be rewriting DNS.";
    DnsNoRecursion => "dns:no-recursion", Pass,
        "A public name was refused (REFUSED, SERVFAIL or NXDOMAIN) by the server, as expected of a resolver with no path to the internet.",
        "Nothing to do.";
    DnsRecursionLeak => "dns:recursion-leak", Warn,
        "The server answered a public name with addresses: it reaches a resolver outside the perimeter, so the perimeter is not air-gapped for DNS. Fails with `--strict-airgap`.",
        "Remove the forwarders and root hints that lead outside, or restrict forwarding to the perimeter's zones.";

    // ---- NTP -----------------------------------------------------------------
    NtpSynchronised => "ntp:synchronised", Pass,
        "The NTP server answered an SNTPv4 request (origin timestamp matching ours) as synchronised, within the stratum limit and with an offset under `max_offset`. Evidence: stratum, leap indicator, offset, round-trip delay, root distance, reference id.",
        "Nothing to do.";
    NtpUnsynchronised => "ntp:unsynchronised", Fail,
        "The server says its clock is not synchronised (leap indicator 3, or stratum 0 or 16). Nodes that follow it drift apart; the platform needs less than 1 s of skew between nodes.",
        "Give the NTP server a reachable time source (a local reference clock or an upstream server inside the perimeter), or configure it to serve its local clock (`local stratum N` in chrony).";
    NtpOffsetTooLarge => "ntp:offset-too-large", Fail,
        "The offset between this machine's clock and the server's exceeds `max_offset` (500 ms by default).",
        "Synchronise this machine with the perimeter's NTP server, or fix the server's time source.";
    NtpStratumTooHigh => "ntp:stratum-too-high", Fail,
        "The server's stratum exceeds `max_stratum`: it is too far from a reference clock to be trusted as the perimeter's source.",
        "Point the server at a source closer to a reference clock, or raise `max_stratum` if this is intended.";
    NtpKissOfDeath => "ntp:kiss-of-death", Fail,
        "The server answered with a kiss-o'-death packet (stratum 0 with a code such as RATE, DENY or RSTR): it refuses to serve this client.",
        "Allow this client in the server's access rules (chrony `allow`, ntpd `restrict`) or lower the polling rate.";
    NtpBadReply => "ntp:bad-reply", Fail,
        "The reply was not a valid answer to our request: too short, wrong mode or version, or an origin timestamp that does not match the request (a spoofed or stale packet).",
        "Check what answers on UDP 123 at that address; a middlebox may be rewriting NTP.";

    // ---- SMTP ----------------------------------------------------------------
    SmtpReady => "smtp:ready", Pass,
        "The relay greeted with 220 and answered EHLO. Evidence: the banner (all lines) and every extension advertised, before and after TLS.",
        "Nothing to do.";
    SmtpBadGreeting => "smtp:bad-greeting", Fail,
        "The server did not greet with 220 (it answered 554 or another code, or something that is not SMTP), or refused EHLO.",
        "Check that the configured host and port point at the mail relay and that it accepts connections from this network.";
    SmtpNoStarttls => "smtp:no-starttls", Fail,
        "STARTTLS is required (`starttls: true`) but the server does not offer it, or refused it, so mail and credentials would cross the network in clear text.",
        "Enable STARTTLS on the relay (postfix: `smtpd_tls_security_level = may` or `encrypt` with a certificate), or use implicit TLS on 465 (`tls: true`).";
    SmtpAuthInClear => "smtp:auth-in-clear", Fail,
        "The server offers AUTH before TLS, so a client may send its password in clear text.",
        "Offer AUTH only after TLS (postfix: `smtpd_tls_auth_only = yes`).";
    SmtpAuthOk => "smtp:auth-ok", Pass,
        "The configured credentials were accepted (AUTH PLAIN or LOGIN, over TLS). The password is never printed.",
        "Nothing to do.";
    SmtpAuthFailed => "smtp:auth-failed", Fail,
        "The server rejected the configured credentials (535 or another refusal).",
        "Check the user name and the secret the configuration references; check the relay's SASL database.";
    SmtpAuthUnavailable => "smtp:auth-unavailable", Fail,
        "Credentials are configured but the server offers no AUTH mechanism this tool and the platform support (PLAIN, LOGIN) on this connection.",
        "Enable SASL authentication on the relay for this port, or remove the credentials if the relay does not need them.";
    SmtpRelayAccepted => "smtp:relay-accepted", Pass,
        "The relay accepted `MAIL FROM` and `RCPT TO` for the configured addresses; the transaction was then reset (`RSET`) so no mail was sent, unless `--send-test-mail` was given.",
        "Nothing to do.";
    SmtpRelayRefused => "smtp:relay-refused", Fail,
        "The relay refused the sender or the recipient (for example `554 Relay access denied`): the platform's notifications would not be delivered.",
        "Allow relaying for the platform's authenticated user or network, or correct the sender and recipient addresses.";
    SmtpTestMailSent => "smtp:test-mail-sent", Pass,
        "A test message was accepted for delivery (`--send-test-mail`). Evidence carries the queue id the server returned.",
        "Nothing to do.";
    SmtpProtocolError => "smtp:protocol-error", Fail,
        "The server answered a command with something that is not a valid SMTP reply, or closed the connection.",
        "Check the relay's logs; a proxy or a different service may be listening on that port.";

    // ---- Git over HTTPS ------------------------------------------------------
    GitRefsListed => "git:refs-listed", Pass,
        "The Git server answered the smart-HTTP ref advertisement of the configured repository over HTTPS, with the perimeter's CA, and the expected branch exists. Evidence: number of refs, the branch's commit, the server's capabilities.",
        "Nothing to do.";
    GitPlainHttp => "git:plain-http", Fail,
        "The repository URL is plain HTTP. The platform's GitOps controller and the push would send credentials and manifests in clear text across the perimeter.",
        "Serve the repository over HTTPS with a certificate from the perimeter's CA and use an `https://` URL.";
    GitRepoMissing => "git:repo-missing", Fail,
        "The server answered, but not with a Git repository at that path (404, or a reply that is not a smart-HTTP advertisement).",
        "Create the repository on the Git server, or fix the path in the configuration (`utils.git.repo_url`, `git.url`).";
    GitBranchMissing => "git:branch-missing", Fail,
        "The repository exists but the expected branch does not.",
        "Push the branch the installer expects (`main` by default), or configure the branch that exists.";
    GitAuthFailed => "git:auth-failed", Fail,
        "The server refused the configured credentials (401), or asked for credentials when none were configured.",
        "Check the user name and the secret the configuration references, and the server's user database.";
    GitPushAllowed => "git:push-allowed", Pass,
        "With the configured credentials, the server offered a push connection (the receive-pack advertisement).",
        "Nothing to do.";
    GitPushRefused => "git:push-refused", Fail,
        "The server refused to open a push connection or to update a ref with the configured credentials (403, `receivepack` disabled, a protected namespace). The installer's push would fail the same way.",
        "Grant the installer's user push access to the repository (and to the `refs/airgap-verify/` namespace for the write probe).";
    GitWriteProbe => "git:write-probe", Pass,
        "With `--write-probe`: a throwaway ref `refs/airgap-verify/probe-<id>` pointing at an existing commit was pushed and deleted again, and the ref list confirms it is gone. No object is written.",
        "Nothing to do.";
    GitLeftover => "git:leftover", Fail,
        "The write probe's throwaway ref could not be deleted; the finding names it so it can be removed by hand.",
        "Delete the ref named in the finding (`git push URL :refs/airgap-verify/probe-<id>`) and allow ref deletion for the installer's user.";
    GitProtocolError => "git:protocol-error", Fail,
        "The server's reply could not be understood as Git smart HTTP (bad pkt-line framing, unexpected status).",
        "Check that the URL points at git-http-backend (or an equivalent smart-HTTP server) and not at a web page or a proxy's error page.";

    // ---- OCI registry --------------------------------------------------------
    RegistryReachable => "registry:reachable", Pass,
        "`GET /v2/` answered as an OCI Distribution registry over HTTPS with the perimeter's CA. Evidence: the authentication scheme it asks for (Basic or Bearer with its realm and service) and the API version header.",
        "Nothing to do.";
    RegistryPlainHttp => "registry:plain-http", Fail,
        "The registry is reached over plain HTTP. The platform's charts and images are pulled over HTTPS only, and credentials would cross the network in clear.",
        "Serve the registry over HTTPS with a certificate from the perimeter's CA, and configure an `https://` URL.";
    RegistryAuthOk => "registry:auth-ok", Pass,
        "The configured credentials were accepted: by the registry itself (Basic), or by its token server and then the registry (Bearer, with the repository scope the push needs).",
        "Nothing to do.";
    RegistryAuthFailed => "registry:auth-failed", Fail,
        "The registry or its token server refused the configured credentials, or asked for credentials when none were configured.",
        "Check the user name and the secret the configuration references; for Bearer auth, check that the token server trusts the same user database.";
    RegistryPushAllowed => "registry:push-allowed", Pass,
        "A blob upload session was opened in the project's namespace with the configured credentials, then cancelled: the push will be accepted. Nothing was written.",
        "Nothing to do.";
    RegistryPushRefused => "registry:push-refused", Fail,
        "The registry refused to open an upload session (or to store a blob or manifest) in the project's namespace: the installer's push would fail.",
        "Grant the installer's user push access to the project (`utils.oci_registry.project`); for Bearer auth, the token server must grant `push` on it.";
    RegistryWriteProbe => "registry:write-probe", Pass,
        "With `--write-probe`: a unique tiny config blob and an image manifest were pushed to the check repository, read back, and deleted.",
        "Nothing to do.";
    RegistryLeftover => "registry:leftover", Warn,
        "Something the probe wrote could not be removed, most often because the registry refuses deletes (405 unless `storage.delete.enabled`, as on many production registries). The finding names each manifest, blob or upload session left behind.",
        "Remove what the finding names (or let the registry's garbage collection do it), or enable deletes for the installer's user; the leftovers are a few hundred bytes in the check repository.";
    RegistryImagePresent => "registry:image-present", Pass,
        "The image is in the registry, with the digest the release expects (or, when no digest is known, present under its tag).",
        "Nothing to do.";
    RegistryImageDifferent => "registry:image-different", Fail,
        "The image's tag exists in the registry but points at a different manifest digest than the release's: the cluster would run something other than what the vendor shipped.",
        "Push the image from the release again (the registry copy is stale or was overwritten), and check who else pushes to that repository.";
    RegistryImageMissing => "registry:image-missing", Fail,
        "The image is not in the registry: the installation would fail to pull it.",
        "Push the release's images to the registry before installing.";
    RegistryProtocolError => "registry:protocol-error", Fail,
        "The reply was not what an OCI Distribution registry sends (`/v2/` missing, an unexpected status, a bad token reply, an upload location on another host).",
        "Check that the URL points at the registry itself and not at a web page or a proxy.";
    RegistryUnavailable => "registry:unavailable", Fail,
        "The registry (or its token server) answered that it cannot serve now: a server error (HTTP 5xx) or a rate limit (HTTP 429), at the ping, the push check, the write probe or an image check; the message names the request. The probe does not retry: a `Retry-After` the server sent is reported (evidence `retry_after`), never waited on, so a throttling registry costs one request, not the run's deadline.",
        "Check the registry's health and logs (storage backend, database, token service); for 429, raise the rate limit for the installer's address or re-run after the time the server asked for.";

    // ---- S3 storage ----------------------------------------------------------
    S3BucketOk => "s3:bucket-ok", Pass,
        "HeadBucket and a one-key listing of the bucket succeeded with the configured static credentials, endpoint, region and addressing style, over TLS with the perimeter's CA. For the 16 event buckets of a 1.0.0 vendor config.yml (`<prefix>self-hosted-events-0` to `-f`) there is one per bucket, and without `--write-probe` the message says that writing was not tried. Evidence: `bucket`, `keys_in_first_page`, `addressing`, `region`.",
        "Nothing to do.";
    S3BucketsListed => "s3:buckets-listed", Pass,
        "No bucket is configured (the vendor's config.yml names none): the credentials listed the account's buckets. Evidence: their names.",
        "Nothing to do; name the platform's bucket(s) in perimeter.yml (`s3.buckets`) to check them individually.";
    S3InvalidAccessKey => "s3:invalid-access-key", Fail,
        "The storage does not know the access key (`InvalidAccessKeyId`).",
        "Check the access key the configuration references; create the user or key on the storage.";
    S3SignatureMismatch => "s3:signature-mismatch", Fail,
        "The storage knows the access key but the request signature does not match (`SignatureDoesNotMatch`): the secret key is wrong (or a proxy rewrites the request).",
        "Check the secret key the configuration references; make sure nothing between this host and the storage rewrites headers or the Host.";
    S3BucketMissing => "s3:bucket-missing", Fail,
        "The bucket does not exist (`NoSuchBucket`).",
        "Create the bucket, or fix its name in the configuration.";
    S3AccessDenied => "s3:access-denied", Fail,
        "The credentials are valid but the storage denies the operation (`AccessDenied`): reading, listing, or writing the probe object. The platform needs read, write, list and delete on its bucket(s); a key that may not list is denied at the first listing, and the message says so.",
        "Grant the platform's user read, list, write and delete on the bucket (a bucket policy or the user's IAM policy).";
    S3WrongRegion => "s3:wrong-region", Fail,
        "The storage answered that the request was signed for another region (`AuthorizationHeaderMalformed`, a 301 with `x-amz-bucket-region`).",
        "Set the region the storage expects (`s3.region`, `global.platform_storage.region`).";
    S3AddressingMismatch => "s3:addressing-mismatch", Fail,
        "The configured addressing style does not work but the other does: virtual-host style (`bucket.endpoint`) needs a DNS name per bucket and a wildcard certificate; path style (`endpoint/bucket`) is what most S3-compatible servers expect.",
        "Set `path_style` to the style the storage supports (path style for MinIO, SeaweedFS, Ceph without wildcard DNS).";
    S3WriteProbe => "s3:write-probe", Pass,
        "A probe object `airgap-verify-probe/<id>` was written, read back byte for byte, and deleted; a listing confirms it is gone.",
        "Nothing to do.";
    S3Leftover => "s3:leftover", Fail,
        "Something the probe wrote (the probe object, or a temporary bucket) could not be removed; the finding names it.",
        "Delete the object or bucket the finding names, and grant the platform's user delete access.";
    S3Benchmark => "s3:benchmark", Pass,
        "With `--s3-benchmark`: the storage meets the vendor's requirements, measured from this host with 8 requests in flight: PUT and GET throughput of at least 50 MiB/s (16 objects of 4 MiB each way, every byte compared), STAT (HeadObject) and DELETE of at least 100 operations/s (200 small objects), request latency p90 of at most 200 ms (requests on small objects) and time to first byte p90 of at most 100 ms (the GETs). Evidence: each figure. Every benchmark object is removed.",
        "Nothing to do.";
    S3BenchmarkSlow => "s3:benchmark-slow", Fail,
        "With `--s3-benchmark`: the storage misses at least one of the vendor's requirements (the finding lists which, with the figure measured), or the benchmark could not finish within 60 s. Measured from this host: a slow link between this host and the storage counts too.",
        "Run the benchmark from a node of the cluster to tell the storage from the network; then give the storage faster disks, more nodes or a faster network, as the vendor's sizing guide says.";
    S3ProtocolError => "s3:protocol-error", Fail,
        "The storage's reply could not be understood as S3 (an unexpected status or body, the object read back differs from what was written).",
        "Check that the endpoint points at the S3 API itself (not a console or a proxy page).";
    S3Unavailable => "s3:unavailable", Fail,
        "The storage answered that it cannot serve now: `SlowDown` or `ServiceUnavailable` (HTTP 503), `InternalError` (HTTP 500), or another 5xx or 429. The probe does not retry (the S3 client's retries are disabled), so a throttling storage costs one request, not the run's deadline; the S3 error code and any `Retry-After` are in the evidence.",
        "Check the storage's health and load (S3 gateways answer SlowDown when their backend is saturated or rebalancing); re-run once it has recovered, or give it more capacity before installing.";

    // ---- egress: the proof of the air gap -------------------------------------
    EgressInside => "egress:inside", Pass,
        "An endpoint the configuration names (a DNS, NTP or SMTP server, the Git, registry or S3 host, a name the platform needs, an address the vendor's file declares) is inside `allowed_networks`, and so is every address the configured DNS returns for it.",
        "Nothing to do.";
    EgressOutside => "egress:outside", Fail,
        "An endpoint the configuration names is an address outside `allowed_networks`, or its name resolves (through the configured DNS) to an address outside: the installation would send traffic out of the perimeter. The evidence lists every address and those outside.",
        "Point the setting at the service inside the perimeter, or fix the DNS record; if that network really is inside, add it to `allowed_networks`.";
    EgressNotResolved => "egress:not-resolved", Skip,
        "An endpoint's name did not resolve through the configured DNS, so nothing can reach it and it cannot lead outside. Its own probe (`net:unresolved`, `dns:no-answer`) says why.",
        "Add the record to the perimeter's DNS; re-run `airgap-verify egress` to judge its address.";
    EgressNoPerimeter => "egress:no-perimeter", Warn,
        "`allowed_networks` is written as an empty list (`[]`): no address can be judged inside or outside, so the air gap cannot be proven (every probe is then allowed to connect anywhere the configuration says). Without the key, the default perimeter applies (`config:default-perimeter`). Fails with `--strict-airgap`, which asks for a proof.",
        "List the perimeter's networks in `allowed_networks` of perimeter.yml.";
    EgressProxyNone => "egress:proxy-none", Pass,
        "No proxy is set: neither `HTTP_PROXY`/`HTTPS_PROXY` (or their lower-case forms) in the environment, nor a proxy in the vendor's config.yml (`modules.platform_configuration.config.proxy.*`, `modules.k3s_install.k3s_*_proxy`, `utils.git.http.proxy`). HTTP clients connect directly, inside the perimeter.",
        "Nothing to do.";
    EgressProxy => "egress:proxy", Warn,
        "A proxy is set, in the environment or in the vendor's config.yml. The finding says which traffic it carries (this host and the installer, the platform's services, k3s/containerd image pulls, Git pushes), which of the perimeter's Git, registry and S3 hosts go through it, and that every destination `no_proxy` does not cover goes through it too: a proxy is a way out of the perimeter. A password in the URL is shown as `***`.",
        "In an air-gapped installation no proxy should be needed: unset it; otherwise make sure the proxy reaches nothing outside and that `no_proxy` covers every service inside.";
    EgressProxyOutside => "egress:proxy-outside", Fail,
        "A proxy is set whose address (or the address its name resolves to through the configured DNS) is outside `allowed_networks`: whatever it carries leaves the perimeter.",
        "Unset the proxy (`HTTP_PROXY`, `HTTPS_PROXY`, the proxy keys of config.yml), or replace it with one inside the perimeter.";
    EgressProxyNotBypassed => "egress:proxy-not-bypassed", Fail,
        "A proxy is set and the `no_proxy` list of the same scope does not cover the Git, registry or S3 host: that traffic goes through the proxy instead of straight to the service inside, and fails or leaves the perimeter. A CIDR in `no_proxy` (`10.0.0.0/8`) never matches a host name, even one that resolves inside it: curl, Go and containerd compare names, not addresses.",
        "Add the host name (or its domain, `.corp.internal`) to the `no_proxy` of that scope: `NO_PROXY`/`no_proxy` in the environment, `modules.platform_configuration.config.proxy.no_proxy` or `modules.k3s_install.k3s_no_proxy` in config.yml; or unset the proxy.";
    EgressNotProbed => "egress:not-probed", Skip,
        "The active egress checks did not run: they try to reach public targets, which the tool does only with `--probe-internet`. The evidence lists the targets they would use.",
        "Run `airgap-verify egress --probe-internet` (or `check --probe-internet`) to prove that nothing outside answers.";
    EgressBlocked => "egress:blocked", Pass,
        "With `--probe-internet`: an attempt to reach the internet failed within its deadline, as it must in an air-gapped perimeter: a configured resolver did not resolve the public names, a TCP connection to a public address was not accepted, or a public NTP server did not answer. The evidence says how it failed.",
        "Nothing to do.";
    EgressDnsAnswered => "egress:dns-answered", Warn,
        "With `--probe-internet`: a configured DNS server (or the system resolver, when none is configured) returned an address for a public name: names outside the perimeter resolve, the first step of any egress. Fails with `--strict-airgap`.",
        "Remove the forwarders and root hints that lead outside from the perimeter's resolvers, or restrict forwarding to the perimeter's zones.";
    EgressTcpConnected => "egress:tcp-connected", Warn,
        "With `--probe-internet`: a TCP connection to a public address (port 443 by default) was accepted: this host reaches the internet. Fails with `--strict-airgap`.",
        "Block outbound traffic at the perimeter's firewall (default route, NAT, egress rules); check that no route leads out of the perimeter.";
    EgressNtpAnswered => "egress:ntp-answered", Warn,
        "With `--probe-internet`: a public NTP server answered an SNTP request: UDP reaches the internet. Fails with `--strict-airgap`.",
        "Block outbound UDP (123 and everything else) at the perimeter's firewall; serve time from an NTP server inside the perimeter.";

    // ---- clean-up of what write probes wrote ---------------------------------
    CleanupRemoved => "cleanup:removed", Pass,
        "A write probe was cut off (it overran its budget, or the run was interrupted by SIGINT or SIGTERM) after it had started writing; what it wrote (a Git ref, a registry manifest or blob, an upload session, an S3 object or temporary bucket) was removed before the report was written. Every write is recorded before it is sent, so even a request cut off in flight is undone.",
        "Nothing to do; the probe's own result is in its other findings (`net:no-reply`, `run:interrupted`).";
    CleanupLeftBehind => "cleanup:left-behind", Fail,
        "A write probe was cut off and what it wrote could not be removed afterwards (the server did not answer within the clean-up deadline, refused the delete, or a second signal cut the clean-up short). The finding names the object exactly.",
        "Remove the object the finding names by hand: `git push URL :REF` for a Git ref; a DELETE of the manifest or blob (or the registry's garbage collection) for the registry; `aws s3 rm` / `aws s3 rb` for S3.";

    // ---- firewall flows (flows, listen) ---------------------------------------
    FlowOpen => "flow:open", Pass,
        "The flow is open: the destination answered (the `airgap-verify listen` responder sent back this run's nonce, which proves the packet reached that host and not a middlebox; or the service accepted the connection or answered the DNS or NTP query).",
        "Nothing to do.";
    FlowClosed => "flow:closed", Fail,
        "The destination refused the flow (a TCP reset or an ICMP unreachable): the packets get through to the host, but nothing listens on the port, or a firewall rejects them. Before installation nothing listens on most of the platform's ports.",
        "Start `airgap-verify listen --role node` (or `lb-backend`) on the destination and test again; if it still is refused, open the port in the host's firewall (nftables, firewalld).";
    FlowFiltered => "flow:filtered", Fail,
        "Nothing came back by the deadline: a firewall on the way drops the packets, or the host is down. For UDP, a flow is open only when an answer comes back (a send that merely succeeds proves nothing), so run the responder on the destination. A closed UDP port is told by the ICMP port unreachable it sends back, and Linux sends about one ICMP error a second to the same peer once a burst of 6 is spent: many closed UDP ports on one host, or runs back to back, can make a closed port look filtered.",
        "Open the flow in every firewall between the two hosts (the perimeter firewall, security groups, the destination's own rules), as the profile's table says (docs/flows.md).";
    FlowBlocked => "flow:blocked", Pass,
        "A flow the profile says must stay closed from outside (Thanos on 10901, the NodePort range) got no answer or was refused.",
        "Nothing to do.";
    FlowNotBlocked => "flow:not-blocked", Fail,
        "A flow the profile says must be blocked at the perimeter answered: the port is reachable from outside the cluster.",
        "Block the port in the perimeter firewall for sources outside the cluster (the vendor's table lists 10901 and 30000-32767).";
    FlowSkipped => "flow:skipped", Skip,
        "The profile has this flow, but no host of its destination role is configured, so it was not tested.",
        "Name the hosts in perimeter.yml `flows:` (load_balancer, orchestration, managers, workers) or in the vendor's inventory (`utils.ansible.inventory`).";
    FlowClockOk => "flow:clock-ok", Pass,
        "The responder's clock is within `max_clock_skew` (1 s by default) of this host's, measured from the challenge's round trip (the uncertainty, half the round trip, is in the evidence).",
        "Nothing to do.";
    FlowClockSkew => "flow:clock-skew", Fail,
        "The responder's clock differs from this host's by more than `max_clock_skew` (1 s by default): the platform's nodes must agree on the time within 1 s (certificates, etcd leases, log timestamps).",
        "Synchronise every node on the perimeter's NTP server (chrony or systemd-timesyncd), then test again.";
    FlowListening => "flow:listening", Pass,
        "`airgap-verify listen` bound this port and answers challenges on it.",
        "Nothing to do; stop the responder (Ctrl-C, or its deadline) before installing.";
    FlowPortTaken => "flow:port-taken", Warn,
        "`airgap-verify listen` could not bind this port: another process holds it (named when /proc tells). Before installation, that process will collide with the platform; after, the flow is tested against it.",
        "Before installing, stop the process named in the finding (or move it to another port); after installing, nothing to do.";

    // ---- host self-checks (host, on every host of the cluster) ----------------
    HostPackagesPresent => "host:packages-present", Pass,
        "`host --role node`: the Debian packages Sekoia Self-Hosted requires on air-gapped nodes (`python3`, `lvm2`, `gettext-base`) are installed, as dpkg's database (`/var/lib/dpkg/status`) records them.",
        "Nothing to do.";
    HostPackageMissing => "host:package-missing", Fail,
        "`host --role node`: a package the installer needs on every node is not installed (or only its configuration files are left). Inside the air gap the installer cannot download it, so the installation stops on this node.",
        "Install the package from the perimeter's Debian mirror or a carried `.deb` (`apt-get install python3 lvm2 gettext-base`), then check again.";
    HostPackagesUnknown => "host:packages-unknown", Warn,
        "`host --role node`: dpkg's database could not be read (not a Debian family system, or no permission), so the required packages (`python3`, `lvm2`, `gettext-base`) were not checked.",
        "Check by hand that the packages are installed (`rpm -q python3 lvm2 gettext` on RHEL), or run the check as root.";
    HostPortsFree => "host:ports-free", Pass,
        "`host`: the ports this host must serve (a node's: every port `listen --role node` binds; the load balancer's: the UI and intake ports) are free. The evidence lists them.",
        "Nothing to do.";
    HostPortHeld => "host:port-held", Pass,
        "`host`: a port this host must serve is held by an expected service (the responder, sshd, K3s and the Kubernetes daemons on a node; haproxy, nginx, envoy, keepalived or traefik on the load balancer): the flow tests reach that service instead of the responder.",
        "Nothing to do.";
    HostPortConflict => "host:port-conflict", Fail,
        "`host`: a port this host must serve is held by a process that is none of the expected services (named, with its pid, when /proc tells). It will collide with the platform, and the flow tests would reach it instead of the responder.",
        "Stop the process the finding names, or move it to another port, then check again.";

    // ---- load balancer behaviour -----------------------------------------------
    LbProxyOk => "lb:proxy-ok", Pass,
        "Through the load balancer, the backends' responders saw the PROXY protocol header the profile expects on this port (v1 on 80/443 in sekoia-0.0.1, none in sekoia-1.0.0; either on the intake ports). Evidence: each backend reached and what it saw.",
        "Nothing to do.";
    LbProxyMismatch => "lb:proxy-mismatch", Fail,
        "A backend received a PROXY header where the profile expects none, or none (or the other version) where it expects one. The ingress would then misread every connection: garbage before the TLS handshake, or the load balancer's address instead of the client's.",
        "Set `send-proxy` (v1) or `send-proxy-v2` on the load balancer's backend lines exactly as the profile's table says (docs/flows.md), and nowhere else.";
    LbRedirectOk => "lb:redirect-ok", Pass,
        "HTTP on port 80 answers with a redirect (301, 302, 303, 307 or 308) to `https://` on the same host.",
        "Nothing to do.";
    LbNoRedirect => "lb:no-redirect", Fail,
        "HTTP on port 80 does not redirect to HTTPS on the same host (no answer, another status, or a redirect elsewhere): users typing the plain address do not reach the interface, or reach it in clear.",
        "Make port 80 answer with a redirect to `https://<same host>/` (the platform's ingress does it; check that the load balancer forwards 80 to the workers' port 80).";
    LbSyslogOk => "lb:syslog-ok", Pass,
        "Syslog over TLS on 10514 completed the handshake with the perimeter's CA and accepted one RFC 5424 line (octet-counted framing, RFC 5425). The line carries the id in the evidence, so it can be found in the platform.",
        "Nothing to do.";
    LbRelpOk => "lb:relp-ok", Pass,
        "RELP on 11514 answered the `open` command and one `syslog` command with `rsp 200`.",
        "Nothing to do.";
    LbIngestFailed => "lb:ingest-failed", Fail,
        "The log intake did not complete: no TLS or RELP answer, a refused command, or the connection closed early. Forwarders would fail the same way.",
        "Check that the load balancer forwards 10514 and 11514 to the workers, that the intake runs there, and (for 10514) that its certificate chains to the perimeter's CA.";

    // ---- the whole cluster (merge) ------------------------------------------------
    ClusterHostsDistinct => "cluster:hosts-distinct", Pass,
        "`merge`: the merged hosts have distinct host names, machine ids and addresses, as their reports recorded them (the machine id is `/var/lib/dbus/machine-id`, else `/etc/machine-id`, as Ansible's `ansible_machine_id`).",
        "Nothing to do.";
    ClusterDuplicateHostname => "cluster:duplicate-hostname", Fail,
        "`merge`: two hosts recorded the same host name. Kubernetes registers nodes by host name: the second node to join replaces the first, or fails to join.",
        "Give every host its own name (`hostnamectl set-hostname NAME`) and make the inventory use it.";
    ClusterDuplicateMachineId => "cluster:duplicate-machine-id", Fail,
        "`merge`: two hosts have the same machine id: they are clones of one VM image. Kubernetes, systemd-networkd (DHCP client ids) and journald tell machines apart by this id.",
        "On each clone, give it a new id: `rm -f /etc/machine-id /var/lib/dbus/machine-id && systemd-machine-id-setup && ln -sf /etc/machine-id /var/lib/dbus/machine-id`, then reboot.";
    ClusterDuplicateAddress => "cluster:duplicate-address", Fail,
        "`merge`: two hosts hold the same address (loopback and link-local ones are not compared). Packets for it reach either host, so flows between them test the wrong machine.",
        "Give each host its own address (static configuration or DHCP reservation) and fix the inventory.";
    ClusterClockOk => "cluster:clock-ok", Pass,
        "`merge`: this host's clock is within `max_clock_skew` (1 s by default) of the median of the cluster's clocks. The offsets come from the responders' clocks measured by every host's `flows` run (`flow:clock-*`), chained from host to host.",
        "Nothing to do.";
    ClusterClockSkew => "cluster:clock-skew", Fail,
        "`merge`: this host's clock is more than `max_clock_skew` (1 s by default) from the median of the cluster's clocks. Comparing with the median names the host that is off, where the pairwise `flow:clock-skew` findings blame every pair that includes it. With two hosts, both are off the median by half their gap.",
        "Synchronise this host on the perimeter's NTP server (chrony or systemd-timesyncd), then test again.";
    // ---- the cluster run (cluster, through Ansible) ------------------------------
    ClusterHostChecked => "cluster:host-checked", Pass,
        "`cluster`: every step of the playbook ran on this host (copy with its SHA-256 checked, `host`, `listen` on a node, `flows`, `services` when configured) and its reports were fetched and merged.",
        "Nothing to do.";
    ClusterHostUnreachable => "cluster:host-unreachable", Fail,
        "`cluster`: Ansible could not reach this host over SSH (no route, refused, timed out, the host key or the login refused); nothing was checked there. Ansible's reason is in the message. The other hosts were still checked and merged.",
        "Check that the host is up, that SSH answers from the orchestration host, and the user and key (`utils.ansible.user`, `utils.ansible.ssh-key`, or the inventory's `ansible_user` and `ansible_ssh_private_key_file`); then run cluster again.";
    ClusterCopyFailed => "cluster:copy-failed", Fail,
        "`cluster`: the binary could not be put on this host: its private folder could not be made, the copy failed (a full or read-only `/tmp`, no `become`), or the copy's SHA-256 differs from the controller's. Nothing ran there.",
        "Free space in `/tmp` (or set `airgap_verify_tmp_root`), check that the SSH user may become root, then run cluster again.";
    ClusterRunFailed => "cluster:run-failed", Fail,
        "`cluster`: a step failed on this host after the copy: a command exited with an error (2: bad input, named in the message), the responder did not answer within its start-up time, or no report could be fetched. The host's other reports, if any, are merged.",
        "Read the message (the failing task and its error), run that command by hand on the host with the same flags, fix the cause, then run cluster again.";
    ClusterSourceMissing => "cluster:source-missing", Skip,
        "`cluster`: the profile has flows from this role (clients: the load balancer's ports, and the ports that must stay blocked from outside), but the cluster's hosts have none of that role, so those flows were not tested and have no cell in the matrix.",
        "Add a host of that role to the inventory (`--inventory`, group `clients`: a machine where users and log sources sit, outside the cluster, reachable over SSH) and run cluster again, or run `flows --role client` there and merge its report (`airgap-verify merge cluster.json client=client.json`).";

    // ---- the run itself ------------------------------------------------------
    RunInterrupted => "run:interrupted", Fail,
        "The run was interrupted (SIGINT or SIGTERM) before this probe finished: its result is unknown. The report is partial, and the exit code is 130 (SIGINT) or 143 (SIGTERM).",
        "Run the command again to completion; if it was stopped because it hung, report the probe named here.";
    RunArchiveNotChecked => "run:archive-not-checked", Skip,
        "`check` ran without `--bundle`: the services, flows and egress were checked, the release archive was not.",
        "Add `--bundle ARCHIVE` to verify the release archive in the same report.";
    RunNothingVerified => "run:nothing-verified", Fail,
        "The run verified nothing: no check ran, and every finding is about the configuration or a skipped part (for example a configuration that names no service, so no probe ran). A report that says nothing cannot say ready.",
        "Give the run something to check: add the perimeter's services to perimeter.yml (`airgap-verify init` writes a template), pass `--sekoia-config`, or `--bundle`.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_for_mistyped_codes() {
        assert_eq!(suggest("unlisted-file"), vec!["bundle:unlisted-file"]);
        assert_eq!(
            suggest("bundle:unlisted-flie"),
            vec!["bundle:unlisted-file"]
        );
        assert_eq!(suggest("BUNDLE:UNLISTED-FILE")[0], "bundle:unlisted-file");
        assert!(suggest("dns:answr").contains(&"dns:answer"));
        assert!(suggest("completely-unrelated-words").is_empty());
        assert!(suggest("x").len() <= 3);
    }

    /// Renaming, removing or re-grading a code must be a visible diff here.
    #[test]
    fn code_list_snapshot() {
        let listed: Vec<String> = ALL
            .iter()
            .map(|c| format!("{} {}", c.id, c.default_status))
            .collect();
        let expected = include_str!("../testdata/codes.txt");
        assert_eq!(
            listed.join("\n").trim(),
            expected.trim(),
            "code list changed: update testdata/codes.txt deliberately"
        );
    }

    #[test]
    fn codes_are_well_formed_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(c.code as usize, i);
            assert!(seen.insert(c.id), "duplicate {}", c.id);
            let (fam, name) = c.id.split_once(':').expect("family:name");
            assert!(!fam.is_empty() && !name.is_empty());
            assert!(name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'));
            assert!(!c.description.is_empty() && !c.remediation.is_empty());
            assert_eq!(Code::from_id(c.id), Some(c.code));
        }
    }
}
