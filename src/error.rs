//! Errors that stop a run before any verdict: usage, unreadable input,
//! invalid configuration. All of them map to exit code 2.
//!
//! Each message is one line that names the file, field or entry and says
//! what to do; it never contains a secret value.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {what} {}: {err}", path.display())]
    Unreadable {
        path: PathBuf,
        what: &'static str,
        err: std::io::Error,
    },
    #[error("cannot write {what} {}: {err}", path.display())]
    Unwritable {
        path: PathBuf,
        what: &'static str,
        err: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(String),
}

impl InputError {
    pub fn unreadable(path: impl Into<PathBuf>, what: &'static str, err: std::io::Error) -> Self {
        InputError::Unreadable {
            path: path.into(),
            what,
            err,
        }
    }

    pub fn unwritable(path: impl Into<PathBuf>, what: &'static str, err: std::io::Error) -> Self {
        InputError::Unwritable {
            path: path.into(),
            what,
            err,
        }
    }
}
