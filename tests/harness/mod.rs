//! A small fluent harness: a temp folder named after the test, the built
//! binary, and assertions on status, JSON findings and stderr.

#![allow(dead_code)]

pub mod lab;
pub mod netlab;
pub mod slowlink;
pub mod tarkit;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_airgap-verify");

/// A scratch folder for one test, removed when the test passes.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new(test: &str) -> Sandbox {
        let dir = std::env::temp_dir()
            .join("airgap-verify-tests")
            .join(test.replace("::", "-"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, data).unwrap();
        p
    }

    /// The good Sekoia-shaped sample release; returns the `.tar` path.
    pub fn sample(&self) -> PathBuf {
        let written =
            airgap_verify::sample::write_release(&self.path("release"), 4 << 20, false).unwrap();
        written[0].clone()
    }

    /// The options that verify the sample's Sigstore bundles (beside the
    /// archive `tar` and beside its manifest) against the sample's own
    /// trusted root, written beside it.
    pub fn sample_signer(tar: &Path) -> Vec<String> {
        use airgap_verify::sample::{SIGNER_IDENTITY, SIGNER_ISSUER, TRUSTED_ROOT};
        let root = tar
            .parent()
            .expect("the sample's folder")
            .join(TRUSTED_ROOT);
        vec![
            "--certificate-identity".into(),
            SIGNER_IDENTITY.into(),
            "--certificate-oidc-issuer".into(),
            SIGNER_ISSUER.into(),
            "--trusted-root".into(),
            root.display().to_string(),
        ]
    }

    pub fn sample_gz(&self) -> PathBuf {
        let written =
            airgap_verify::sample::write_release(&self.path("release"), 4 << 20, true).unwrap();
        written
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .expect("the sample writes a .tar.gz")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs the binary with `args`.
/// Polls `left` every 50 ms for up to 2 s until it returns nothing, and
/// returns its last answer (empty when it settled). Tests that check a
/// server for leftovers use it: other tests probe the same lab servers at
/// the same time, and their own writes live for a few milliseconds, while
/// a leftover is still there 2 s later.
pub fn settled<T>(mut left: impl FnMut() -> Vec<T>) -> Vec<T> {
    let started = std::time::Instant::now();
    loop {
        let now = left();
        if now.is_empty() || started.elapsed() > std::time::Duration::from_secs(2) {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn av<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    av_env(args, &[])
}

/// [`av`] with `env` added to the environment.
pub fn av_env<I, S>(args: I, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run airgap-verify");
    Run::from(out)
}

/// `bundle PATH --format json --no-progress` with both outputs piped, to be
/// started in the background (a pass fed through a FIFO and interrupted).
pub fn bundle_command(path: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("bundle")
        .arg(path)
        .args(["--format", "json", "--no-progress"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

/// `bundle PATH --format json` plus extra args.
/// Extracts `tar` into `into` with GNU tar (a staged folder, as an
/// operator makes it).
pub fn extract(tar: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(tar)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn bundle(path: &Path, extra: &[&str]) -> Run {
    bundle_env(path, extra, &[])
}

/// [`bundle`] with `env` added to the environment.
pub fn bundle_env(path: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args: Vec<std::ffi::OsString> = vec!["bundle".into(), path.into()];
    args.extend(["--format", "json", "--no-progress"].iter().map(Into::into));
    args.extend(extra.iter().map(Into::into));
    av_env(args, env)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct F {
    pub code: String,
    pub status: String,
    pub target: String,
    pub message: String,
    pub evidence: Value,
}

impl Run {
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "panic on stderr: {}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn findings(&self) -> Vec<F> {
        self.json()["findings"]
            .as_array()
            .expect("findings array")
            .iter()
            .map(|f| F {
                code: f["code"].as_str().unwrap().to_string(),
                status: f["status"].as_str().unwrap().to_string(),
                target: f["target"].as_str().unwrap().to_string(),
                message: f["message"].as_str().unwrap().to_string(),
                evidence: f["evidence"].clone(),
            })
            .collect()
    }

    /// Asserts a finding with this code and status whose target contains
    /// `target`; returns it.
    pub fn has(&self, code: &str, status: &str, target: &str) -> F {
        let all = self.findings();
        all.iter()
            .find(|f| f.code == code && f.status == status && f.target.contains(target))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no {status} finding {code} for {target:?}; got:\n{}",
                    all.iter()
                        .map(|f| format!("  {} {} {} — {}", f.status, f.code, f.target, f.message))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })
    }

    pub fn lacks(&self, code: &str) -> &Self {
        let all = self.findings();
        assert!(
            !all.iter().any(|f| f.code == code),
            "unexpected {code}: {:?}",
            all.iter().filter(|f| f.code == code).collect::<Vec<_>>()
        );
        self
    }

    /// No finding fails.
    pub fn clean(&self) -> &Self {
        let bad: Vec<_> = self
            .findings()
            .into_iter()
            .filter(|f| f.status == "fail")
            .collect();
        assert!(bad.is_empty(), "failing findings: {bad:#?}");
        self
    }
}
