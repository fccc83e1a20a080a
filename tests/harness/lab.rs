//! The loopback lab of real servers (`scripts/lab.sh up`), as tests see it.
//!
//! Lab-backed tests fail, never skip, when the lab is down: a skipped probe
//! test would pass whether or not the probe works. `scripts/test.sh` brings
//! the lab up before `cargo test`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Run, Sandbox, BIN};

pub struct Lab {
    pub dir: PathBuf,
    env: HashMap<String, String>,
}

impl Lab {
    pub fn get() -> Lab {
        let dir = PathBuf::from(
            std::env::var("AIRGAP_LAB_DIR").unwrap_or_else(|_| "/var/tmp/airgap-lab".into()),
        );
        let text = std::fs::read_to_string(dir.join("lab.env")).unwrap_or_else(|e| {
            panic!(
                "the test lab is not up ({}: {e}); run `sudo scripts/lab.sh up` (scripts/test.sh does it)",
                dir.join("lab.env").display()
            )
        });
        let env = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Lab { dir, env }
    }

    pub fn var(&self, k: &str) -> &str {
        self.env.get(k).unwrap_or_else(|| {
            panic!("lab.env has no {k}; is the lab up to date? (scripts/lab.sh up)")
        })
    }

    pub fn ca(&self) -> String {
        self.var("CA_PEM").to_string()
    }

    /// A perimeter.yml trusting the lab CA, inside 127.0.0.0/8, resolving
    /// names through the lab's authoritative server, plus `rest`.
    pub fn config(&self, rest: &str) -> String {
        format!(
            "ca_bundle: {}\nallowed_networks: [127.0.0.0/8]\n{rest}",
            self.ca()
        )
    }
}

/// What one `services` run returned, and how long it took.
pub struct Timed {
    pub run: Run,
    pub elapsed: Duration,
}

/// Runs `services --config <yaml> --format json` with `--timeout timeout`
/// and the lab's SMTP password in the environment, plus `extra`.
pub fn services(sb: &Sandbox, yaml: &str, timeout: &str, extra: &[&str]) -> Timed {
    services_env(sb, yaml, timeout, extra, &[])
}

pub fn services_env(
    sb: &Sandbox,
    yaml: &str,
    timeout: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Timed {
    let lab = Lab::get();
    let cfg = sb.write("perimeter.yml", yaml);
    let mut cmd = Command::new(BIN);
    cmd.arg("services")
        .arg("--config")
        .arg(&cfg)
        .args(["--format", "json", "--no-progress", "--timeout", timeout])
        .args(extra)
        .env("NO_COLOR", "1")
        .env("SMTP_PASSWORD", lab.var("SMTP_PASSWORD"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run airgap-verify");
    Timed {
        run: Run::from(out),
        elapsed: started.elapsed(),
    }
}

impl Timed {
    /// The run ended within `deadline` plus one second (the acceptance bound).
    pub fn within(&self, deadline: Duration) -> &Run {
        assert!(
            self.elapsed <= deadline + Duration::from_secs(1),
            "took {:?}, more than the deadline {:?} plus 1 s\n{}",
            self.elapsed,
            deadline,
            self.run.stdout
        );
        &self.run
    }
}
