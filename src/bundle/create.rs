//! `manifest create`: a `manifest.json` baseline of a trusted copy.
//!
//! Guarantees: the manifest is built from the same single pass and the same
//! safety rules as `bundle`; a copy with failing findings gets no manifest
//! (baselining a damaged copy would bless it); paths are sorted, so the same
//! input always gives the same bytes.

use super::manifest::{self, ManifestDoc, ManifestFile};
use super::safety::normalise;
use super::table::FileTable;

/// Builds the manifest for the files under `root` (a folder inside the
/// input, "" for all of it). Existing manifests of that folder and their
/// signatures are left out: they cannot list themselves.
pub fn build(files: &FileTable, root: &str, product: &str, version: &str) -> ManifestDoc {
    let root = normalise(root);
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    let own = format!("{prefix}{}", manifest::JSON_NAME);
    let mut listed: Vec<ManifestFile> = files
        .iter()
        .filter_map(|(p, rec)| {
            let rel = p.strip_prefix(&prefix)?;
            if p == own || p.strip_prefix(&own).is_some_and(|ext| ext.starts_with('.')) {
                return None;
            }
            Some(ManifestFile {
                path: rel.to_string(),
                size: rec.size,
                sha256: hex::encode(rec.sha256),
            })
        })
        .collect();
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    ManifestDoc {
        schema_version: 1,
        product: product.to_string(),
        version: version.to_string(),
        files: listed,
        images: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::table::FileRecord;

    #[test]
    fn lists_only_the_folder_and_skips_itself() {
        let rec = FileRecord {
            size: 1,
            sha256: [0; 32],
        };
        let mut files = FileTable::new();
        for p in [
            "p/v1/a",
            "p/v1/b/c",
            "p/v1/manifest.json",
            "p/v1/manifest.json.minisig",
            "other",
        ] {
            files.insert(p, rec);
        }
        let doc = build(&files, "./p/v1/", "x", "1");
        let paths: Vec<_> = doc.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "b/c"]);
    }
}
