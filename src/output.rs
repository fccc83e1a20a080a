//! Report files (`--output`).
//!
//! Guarantees:
//! - an output never names an input: the same file (by device and inode,
//!   so a symlink or another spelling of the path is caught), or a path
//!   inside a folder being verified, is a usage error before anything runs;
//! - an output is created before the run, so a folder that does not exist
//!   or cannot be written fails in milliseconds, not after an hour's pass;
//! - the report is written to a temporary file in the same folder and
//!   renamed over the destination only when complete: the destination holds
//!   the previous file or the whole report, never a part of one, and the
//!   temporary file is removed on every other exit path (error, drop, or a
//!   signal, through [`crate::scratch`]).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::InputError;

/// A report file being written: a temporary file beside the destination.
pub struct OutputFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    _scratch: crate::scratch::Registered,
}

impl OutputFile {
    /// Creates the temporary file beside `path` now; `path` itself is not
    /// touched until [`OutputFile::commit`].
    pub fn create(path: &Path) -> Result<OutputFile, InputError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unwritable = |e: io::Error| InputError::unwritable(path, "output file", e);
        let name = path.file_name().ok_or_else(|| {
            InputError::Usage(format!(
                "--output {}: name a file, not a folder",
                path.display()
            ))
        })?;
        if path.is_dir() {
            return Err(InputError::Usage(format!(
                "--output {}: is a folder; name a file",
                path.display()
            )));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        loop {
            let mut temp_name = std::ffi::OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(
                ".airgap-verify-{}-{}.tmp",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let temp = dir.join(temp_name);
            // Created and registered as one step, so a signal cannot leave
            // it behind; a file of that name already there is not ours and
            // is never registered (so never removed).
            let made = crate::scratch::create(&temp, |temp| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(temp)
            });
            match made {
                Ok((file, scratch)) => {
                    return Ok(OutputFile {
                        path: path.to_path_buf(),
                        temp,
                        file: Some(file),
                        _scratch: scratch,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(unwritable(e)),
            }
        }
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the whole report and renames it over the destination.
    pub fn commit(
        mut self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), InputError> {
        let unwritable = |e: io::Error| InputError::unwritable(&self.path, "output file", e);
        let file = self.file.take().expect("an output file is committed once");
        let mut out = io::BufWriter::new(file);
        write(&mut out).map_err(unwritable)?;
        let file = out.into_inner().map_err(|e| unwritable(e.into_error()))?;
        file.sync_all().map_err(unwritable)?;
        drop(file);
        std::fs::rename(&self.temp, &self.path).map_err(unwritable)?;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        // Not committed (or the rename failed): the temporary file goes.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// One input of a run, as `--output` must not name it.
#[derive(Debug, Clone)]
pub struct Input {
    /// How the user knows it (`archive`, `checksum file`, `configuration`).
    pub what: &'static str,
    pub path: PathBuf,
}

impl Input {
    pub fn new(what: &'static str, path: impl Into<PathBuf>) -> Input {
        Input {
            what,
            path: path.into(),
        }
    }
}

/// A usage error when an output is one of the inputs (the same file, by
/// device and inode), lies inside an input folder, or is named twice.
pub fn refuse_inputs(outputs: &[&Path], inputs: &[Input]) -> Result<(), InputError> {
    for (i, out) in outputs.iter().enumerate() {
        if outputs[..i].iter().any(|o| same_file(o, out)) {
            return Err(InputError::Usage(format!(
                "--output {}: named twice; give each report its own file",
                out.display()
            )));
        }
        for input in inputs {
            if same_file(out, &input.path) {
                return Err(InputError::Usage(format!(
                    "--output {} is the {} {}: the report would replace it; write the report elsewhere",
                    out.display(),
                    input.what,
                    input.path.display()
                )));
            }
            if input.path.is_dir() && inside(out, &input.path) {
                return Err(InputError::Usage(format!(
                    "--output {} is inside the folder being verified ({}): the report would add a file to it; write the report elsewhere",
                    out.display(),
                    input.path.display()
                )));
            }
        }
    }
    Ok(())
}

/// The same file: by device and inode when both exist, else by canonical
/// path (an output that does not exist yet may still name the spot of an
/// input given through another spelling).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => match (canonical_spot(a), canonical_spot(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// `path` with its folder made canonical (the file itself may not exist).
fn canonical_spot(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(name))
}

fn inside(path: &Path, dir: &Path) -> bool {
    match (canonical_spot(path), dir.canonicalize()) {
        (Some(p), Ok(d)) => p.starts_with(&d),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_output_leaves_nothing_and_a_committed_one_is_whole() {
        let dir = std::env::temp_dir().join(format!("agv-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("r.json");
        std::fs::write(&dest, "old").unwrap();
        let o = OutputFile::create(&dest).unwrap();
        drop(o);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old");
        let o = OutputFile::create(&dest).unwrap();
        o.commit(|w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
