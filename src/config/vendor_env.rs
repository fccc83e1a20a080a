//! The `${env.VAR}` references of the vendor's `config.yml`, resolved when
//! the file is loaded, as the vendor's tool does ("references such as
//! `${env.STORAGE_S3_REGION}` read values from environment variables when the
//! SHC loads the file").
//!
//! Guarantees:
//! - every string value of the file is resolved, whatever its key: a region,
//!   an endpoint or a user name written as `${env.VAR}` reaches the probes as
//!   the variable's value, never as the literal reference;
//! - a reference to a variable that is unset (or empty) never reaches a
//!   probe: the value is dropped and a failing finding names the key and the
//!   variable (`config:unresolved-secret` for a secret key,
//!   `config:unresolved-variable` for any other);
//! - a secret key keeps its reference, so it is read into a
//!   [`super::Secret`] by the code that uses it, and no value of a secret key
//!   is ever put in a finding;
//! - in a 1.0.0 file the former bare `env.VAR` syntax, which the vendor no
//!   longer supports, is a failing finding (`config:legacy-env-syntax`) and
//!   the value is dropped; in a 0.0.1 file it is left for the secret reader,
//!   as before.

use serde_norway::Value;

use super::secret::SecretRef;
use super::Perimeter;
use crate::finding::{Code, Finding};

/// One piece of a string value: text, or a `${env.VAR}` reference.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn is_var_name(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits `s` into text and `${env.VAR}` references. A `${...}` that is not
/// an `env.` reference is kept as text.
fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${env.") {
        let after = &rest[start + "${env.".len()..];
        match after.find('}') {
            Some(end) if is_var_name(&after[..end]) => {
                if start > 0 {
                    out.push(Piece::Text(&rest[..start]));
                }
                out.push(Piece::Var(&after[..end]));
                rest = &after[end + 1..];
            }
            _ => {
                // Not a reference: keep `${env.` as text and look further.
                let upto = start + "${env.".len();
                out.push(Piece::Text(&rest[..upto]));
                rest = &rest[upto..];
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// The variable of a bare `env.VAR` value (the 0.0.1 syntax).
pub(crate) fn bare_env_var(s: &str) -> Option<&str> {
    let var = s.trim().strip_prefix("env.")?;
    is_var_name(var).then_some(var)
}

/// What the walk needs to know about the file.
pub(crate) struct Resolve<'a> {
    pub file: &'a str,
    /// The bare `env.VAR` syntax is refused (a 1.0.0 file).
    pub refuse_bare: bool,
    /// Reads a variable; `std::env::var` outside tests.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

/// Resolves every reference in `root`, in place (see the module guarantees).
pub(crate) fn resolve(root: &mut Value, how: &Resolve<'_>, plan: &mut Perimeter) {
    walk(root, "", how, plan);
}

fn walk(v: &mut Value, key: &str, how: &Resolve<'_>, plan: &mut Perimeter) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m.iter_mut() {
                let k = super::sekoia::text(k).unwrap_or_default();
                let path = if key.is_empty() {
                    k
                } else {
                    format!("{key}.{k}")
                };
                walk(child, &path, how, plan);
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter_mut().enumerate() {
                walk(child, &format!("{key}[{i}]"), how, plan);
            }
        }
        Value::Tagged(t) => walk(&mut t.value, key, how, plan),
        Value::String(s) => {
            if let Some(replacement) = resolve_string(s, key, how, plan) {
                *v = replacement;
            }
        }
        _ => {}
    }
}

/// The new value of the string `s` at `key`, or `None` to keep it.
fn resolve_string(s: &str, key: &str, how: &Resolve<'_>, plan: &mut Perimeter) -> Option<Value> {
    let target = format!("{} {key}", how.file);
    let secret = super::sekoia::is_secret_key(key);
    if let Some(var) = bare_env_var(s) {
        if !how.refuse_bare {
            return None;
        }
        plan.findings.push(
            Finding::new(
                Code::ConfigLegacyEnvSyntax,
                target,
                format!(
                    "`{key}` is written `env.{var}`, a syntax Sekoia Self-Hosted 1.0.0 no longer supports: the installer would take it literally; write `${{env.{var}}}`"
                ),
            )
            .evidence("key", key)
            .evidence("variable", var),
        );
        return Some(Value::Null);
    }
    let parts = pieces(s);
    if !parts.iter().any(|p| matches!(p, Piece::Var(_))) {
        return None;
    }
    let mut out = String::new();
    let mut unset = Vec::new();
    for p in &parts {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(var) => match (how.lookup)(var).filter(|v| !v.is_empty()) {
                Some(val) => out.push_str(&val),
                None => unset.push(*var),
            },
        }
    }
    if unset.is_empty() {
        // A secret keeps its reference when it is one: the code that uses
        // it reads it into a Secret. A secret with text around the
        // reference is used resolved (it is still only read as a secret).
        if secret && parts.len() == 1 {
            return None;
        }
        return Some(Value::String(out));
    }
    for var in unset {
        let finding = if secret {
            let r = SecretRef::Env(var.to_string());
            Finding::new(
                Code::ConfigUnresolvedSecret,
                target.clone(),
                format!(
                    "the secret `{key}` could not be read: environment variable {var} is not set (or empty); it is not used"
                ),
            )
            .evidence("reference", r.describe())
        } else {
            Finding::new(
                Code::ConfigUnresolvedVariable,
                target.clone(),
                format!(
                    "`{key}` reads environment variable {var}, which is not set (or empty); the installer would fail on it, and nothing that needs it is probed"
                ),
            )
            .evidence("variable", var)
        };
        plan.findings.push(finding.evidence("key", key));
    }
    Some(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_anywhere_in_a_value() {
        assert_eq!(pieces("${env.A}"), [Piece::Var("A")]);
        assert_eq!(
            pieces("https://${env.HOST}:9000/${env.P_2}"),
            [
                Piece::Text("https://"),
                Piece::Var("HOST"),
                Piece::Text(":9000/"),
                Piece::Var("P_2")
            ]
        );
        // Not references: kept as they are.
        assert_eq!(
            pieces("${env.}x"),
            [Piece::Text("${env."), Piece::Text("}x")]
        );
        assert_eq!(pieces("${HOME}"), [Piece::Text("${HOME}")]);
        assert_eq!(
            pieces("${env.A B}"),
            [Piece::Text("${env."), Piece::Text("A B}")]
        );
        assert_eq!(bare_env_var(" env.SMTP_PW "), Some("SMTP_PW"));
        assert_eq!(bare_env_var("env.a.b"), None);
        assert_eq!(bare_env_var("environment"), None);
    }
}
