//! Secrets by reference.
//!
//! Guarantees:
//! - a configuration never holds a secret value, only where to read it from
//!   (`password_env`, `password_file`, the vendor's `${env.VAR}`/`env.VAR`);
//! - a resolved [`Secret`] has no `Display`, no `Serialize`, and its `Debug`
//!   prints `<redacted>`, so no renderer or log line can print the value by
//!   accident; only [`Secret::expose`] hands the bytes to a protocol.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a secret comes from, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file whose first line is the secret.
    File(PathBuf),
}

impl SecretRef {
    /// Human description of the reference (never of the value).
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(v) => format!("environment variable {v}"),
            SecretRef::File(p) => format!("file {}", p.display()),
        }
    }

    /// Reads the value. The error names the reference, never a value.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable {var} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable {var} is not valid UTF-8"))
                }
            },
            SecretRef::File(path) => read_secret_file(path),
        }
    }
}

fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    // The first line, without its newline: `echo pw > file` must work.
    let value = text.lines().next().unwrap_or("").to_string();
    if value.is_empty() {
        return Err(format!("secret file {} is empty", path.display()));
    }
    Ok(Secret(value))
}

/// A secret value. See the module guarantees.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one protocol call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret the vendor's config.yml holds in clear.
    pub(crate) fn from_config(v: String) -> Secret {
        Secret(v)
    }

    #[cfg(test)]
    pub fn for_test(v: &str) -> Secret {
        Secret(v.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::for_test("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert!(!format!("{:?}", Some(s)).contains("hunter2"));
    }

    #[test]
    fn file_secret_is_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        assert_eq!(SecretRef::File(p).resolve().unwrap().expose(), "s3cret");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let e = SecretRef::Env("AIRGAP_VERIFY_SURELY_UNSET_VAR".into())
            .resolve()
            .unwrap_err();
        assert!(e.contains("AIRGAP_VERIFY_SURELY_UNSET_VAR"), "{e}");
    }
}
