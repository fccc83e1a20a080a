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

/// One row of the lab's service table, `scripts/lab/services.tsv` (its header
/// says what each column means), as `scripts/lab.sh` and `check.py` read it.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub name: String,
    /// The lab process serving it; `None` for the blackhole (nft, no process).
    pub process: Option<String>,
    /// The address variable (a lab.env key) and its address, declared on this
    /// row or an earlier one.
    pub addr: Option<(String, String)>,
    /// Whether this row declares the address (`VAR=ADDR`) rather than reuses it.
    pub declares: bool,
    pub names: Vec<String>,
    pub listens: Vec<Listen>,
    pub checks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub proto: String,
    pub port: u16,
    /// The lab.env key that holds this port, if any.
    pub key: Option<String>,
}

impl ServiceRow {
    /// A lab process of its own (a pid record and a `lab.sh status` line).
    pub fn is_process(&self) -> bool {
        self.process.as_deref() == Some(self.name.as_str())
    }
}

pub fn service_table_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/lab/services.tsv")
}

/// The rows of `scripts/lab/services.tsv`, in order. Panics naming the line
/// when a row is malformed.
pub fn service_table() -> Vec<ServiceRow> {
    let path = service_table_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let none = |s: &str| -> Option<String> { (s != "-").then(|| s.to_string()) };
    let mut declared: HashMap<String, String> = HashMap::new();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // nine columns, the last one the rest of the line
        let mut cols = Vec::new();
        let mut rest = trimmed;
        while cols.len() < 8 {
            let Some((col, tail)) = rest.split_once(char::is_whitespace) else {
                break;
            };
            cols.push(col);
            rest = tail.trim_start();
        }
        assert!(
            cols.len() == 8 && !rest.is_empty(),
            "{}:{}: want 9 columns: {line}",
            path.display(),
            i + 1
        );
        let addr_col = cols[2];
        let (addr, declares) = match addr_col.split_once('=') {
            Some((var, a)) => {
                declared.insert(var.to_string(), a.to_string());
                (Some((var.to_string(), a.to_string())), true)
            }
            None if addr_col == "-" => (None, false),
            None => {
                let a = declared.get(addr_col).unwrap_or_else(|| {
                    panic!(
                        "{}:{}: address {addr_col} is not declared above",
                        path.display(),
                        i + 1
                    )
                });
                (Some((addr_col.to_string(), a.clone())), false)
            }
        };
        let listens = cols[4]
            .split(',')
            .filter(|l| *l != "-")
            .map(|l| {
                let (spec, key) = match l.split_once('=') {
                    Some((s, k)) => (s, Some(k.to_string())),
                    None => (l, None),
                };
                let (proto, port) = spec
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{}:{}: listen entry {l}", path.display(), i + 1));
                Listen {
                    proto: proto.to_string(),
                    port: port
                        .parse()
                        .unwrap_or_else(|_| panic!("{}:{}: port in {l}", path.display(), i + 1)),
                    key,
                }
            })
            .collect();
        rows.push(ServiceRow {
            name: cols[0].to_string(),
            process: none(cols[1]),
            addr,
            declares,
            names: cols[3]
                .split(',')
                .filter(|n| *n != "-")
                .map(str::to_string)
                .collect(),
            listens,
            checks: cols[7]
                .split(',')
                .filter(|c| *c != "-")
                .map(str::to_string)
                .collect(),
        });
    }
    rows
}
