//! The published checksum of the whole archive.
//!
//! Guarantees: resolution happens before the pass starts, so an unreadable
//! `--checksum` file or a malformed `--sha256` fails in milliseconds (exit 2);
//! a checksum file found automatically but unusable becomes a finding.

use std::path::{Path, PathBuf};

use super::manifest::parse_sums_line;
use crate::error::InputError;

/// Where the expected digest comes from.
#[derive(Debug, Clone, Default)]
pub enum ChecksumSource {
    /// `PATH.sha256` beside the archive, when it exists.
    #[default]
    Auto,
    File(PathBuf),
    Hex(String),
}

/// The outcome of resolving a [`ChecksumSource`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    None,
    Digest { hex: String, origin: String },
    Invalid { origin: String, reason: String },
}

pub fn resolve(source: &ChecksumSource, archive: &Path) -> Result<Expected, InputError> {
    match source {
        ChecksumSource::Hex(h) => {
            let h = h.trim().to_ascii_lowercase();
            // `sha256:<hex>` is how this tool (and OCI, cosign) print digests.
            let h = h.strip_prefix("sha256:").unwrap_or(&h).to_string();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(InputError::Usage(format!(
                    "--sha256: expected 64 hexadecimal digits (optionally after `sha256:`), got {} characters",
                    h.len()
                )));
            }
            Ok(Expected::Digest {
                hex: h,
                origin: "--sha256".into(),
            })
        }
        ChecksumSource::File(p) => {
            let text = std::fs::read(p).map_err(|e| InputError::Unreadable {
                path: p.clone(),
                what: "checksum file",
                err: e,
            })?;
            Ok(from_text(&text, archive, &p.display().to_string()))
        }
        ChecksumSource::Auto => {
            let [side, sums @ ..] = beside(archive);
            match std::fs::read(&side) {
                Ok(text) => return Ok(from_text(&text, archive, &side.display().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(InputError::Unreadable {
                        path: side,
                        what: "checksum file",
                        err: e,
                    })
                }
            }
            // A folder's SHA256SUMS counts only when it names the archive:
            // a download folder's list may well be about other files.
            if archive.is_dir() {
                return Ok(Expected::None);
            }
            for sums in sums {
                let Ok(text) = std::fs::read(&sums) else {
                    continue;
                };
                if names(&text, archive) {
                    return Ok(from_text(&text, archive, &sums.display().to_string()));
                }
            }
            Ok(Expected::None)
        }
    }
}

/// Where a checksum for `archive` is looked for when none is given:
/// `ARCHIVE.sha256` first, then the folder's list (`SHA256SUMS`, as
/// `sha256sum` writes it for a whole release folder).
pub fn beside(archive: &Path) -> [PathBuf; 4] {
    let mut side = archive.as_os_str().to_owned();
    side.push(".sha256");
    let dir = archive
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    [
        PathBuf::from(side),
        dir.join("SHA256SUMS"),
        dir.join("SHA256SUMS.txt"),
        dir.join("sha256sums.txt"),
    ]
}

/// Whether a checksum list has a line for `archive` by name.
fn names(text: &[u8], archive: &Path) -> bool {
    let Some(base) = archive.file_name().map(|n| n.to_string_lossy().to_string()) else {
        return false;
    };
    String::from_utf8_lossy(text).lines().any(|l| {
        parse_sums_line(l.trim()).is_some_and(|(_, n)| n.rsplit('/').next() == Some(base.as_str()))
    })
}

/// Picks the line naming the archive (or the only line) from a checksum file.
pub fn from_text(text: &[u8], archive: &Path, origin: &str) -> Expected {
    let invalid = |reason: String| Expected::Invalid {
        origin: origin.to_string(),
        reason,
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return invalid("not UTF-8 text".into());
    };
    let base = archive
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut candidates = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // A bare digest with no name is accepted too.
        let (h, name) = match parse_sums_line(line) {
            Some((h, n)) => (h, Some(n)),
            None => (line, None),
        };
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return invalid(format!(
                "line {line:?} does not start with a SHA-256 digest"
            ));
        }
        candidates.push((h.to_ascii_lowercase(), name.map(str::to_string)));
    }
    let named: Vec<_> = candidates
        .iter()
        .filter(|(_, n)| {
            n.as_deref()
                .map(|n| n.rsplit('/').next() == Some(base.as_str()))
                .unwrap_or(false)
        })
        .collect();
    let pick = match (named.as_slice(), candidates.as_slice()) {
        ([one], _) => (*one).clone(),
        ([], [only]) => only.clone(),
        ([], []) => return invalid("no checksum line".into()),
        ([], _) => return invalid(format!("no line names {base}")),
        (_, _) => return invalid(format!("several lines name {base}")),
    };
    Expected::Digest {
        hex: pick.0,
        origin: origin.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_named_line() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!("{a}  other.tar\n{b}  x.tar\n");
        assert_eq!(
            from_text(text.as_bytes(), Path::new("/d/x.tar"), "f"),
            Expected::Digest {
                hex: b,
                origin: "f".into()
            }
        );
    }

    #[test]
    fn single_unnamed_digest() {
        let a = "A".repeat(64);
        assert!(matches!(
            from_text(a.as_bytes(), Path::new("x.tar"), "f"),
            Expected::Digest { .. }
        ));
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(
            from_text(b"<html>", Path::new("x.tar"), "f"),
            Expected::Invalid { .. }
        ));
    }
}
