//! The network-namespace lab (`scripts/netlab.sh up`), as tests see it:
//! hosts as namespaces on 10.0.255.0/24, nft tables as their firewalls,
//! haproxy in front of node1 and node2, rsyslog with RELP and TLS.
//!
//! Like the service lab, a missing netlab fails the test with the command
//! that brings it up. The namespaces, firewalls and the load balancer's mode
//! are shared: [`NetLab::exclusive`] serialises the tests that touch them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Run, Sandbox, BIN};

pub struct NetLab {
    env: HashMap<String, String>,
}

static SHARED: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl NetLab {
    pub fn get() -> NetLab {
        // A development copy of the lab (scripts/netlab.sh's
        // AIRGAP_NETLAB_DIR, with its own namespace prefix) is used as is.
        let dir = std::env::var("AIRGAP_NETLAB_DIR")
            .ok()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/var/tmp/airgap-netlab".into());
        let path = &format!("{dir}/netlab.env");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("the network lab is not up ({path}: {e}); run `sudo bash scripts/netlab.sh up` (scripts/test.sh does it)")
        });
        let env = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NetLab { env }
    }

    /// One netlab test at a time; the firewalls are reset on entry and exit.
    pub fn exclusive(&self) -> Exclusive {
        let g = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        fw_reset();
        Exclusive { _g: g }
    }

    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .unwrap_or_else(|| panic!("netlab.env has no {k}; rerun scripts/netlab.sh up"))
    }

    pub fn ns(&self, host: &str) -> &str {
        self.var(&format!("NS_{}", host.to_uppercase()))
    }

    pub fn addr(&self, host: &str) -> &str {
        self.var(&format!("ADDR_{}", host.to_uppercase()))
    }

    /// Adds one nft rule to `host`'s input chain, e.g. `udp dport 8472 drop`.
    pub fn fw(&self, host: &str, rule: &str) {
        let mut args = vec![
            "netns",
            "exec",
            self.ns(host),
            "nft",
            "add",
            "rule",
            "inet",
            "agvfw",
            "input",
        ];
        args.extend(rule.split(' '));
        let out = Command::new("ip").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "nft {rule}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The perimeter in front of the nodes (`scripts/netlab.sh
    /// fw-perimeter`): from the client, the ports the profile keeps blocked
    /// are dropped. Reset with the other rules.
    pub fn fw_perimeter(&self) {
        let out = Command::new("bash")
            .args([
                &format!("{}/scripts/netlab.sh", env!("CARGO_MANIFEST_DIR")),
                "fw-perimeter",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fw-perimeter: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn lb_mode(&self, mode: &str) {
        let out = Command::new("bash")
            .args([
                &format!("{}/scripts/netlab.sh", env!("CARGO_MANIFEST_DIR")),
                "lb-mode",
                mode,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lb-mode {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `airgap-verify listen` in `host`'s namespace and waits until it
    /// is ready.
    pub fn responder(&self, host: &str, role: &str, extra: &[&str]) -> Responder {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns(host),
                BIN,
                "listen",
                "--role",
                role,
            ])
            .args(["--name", host, "--format", "json"])
            .args(if extra.contains(&"--deadline") {
                &[][..]
            } else {
                &["--deadline", "60s"][..]
            })
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the responder");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let started = Instant::now();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listen: ready") => break,
                Some(Ok(_)) => {}
                _ => panic!("the responder on {host} exited before it was ready"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "responder on {host} not ready"
            );
        }
        Responder { child: Some(child) }
    }

    /// Runs `flows` as `role` in `host`'s namespace with `yaml`.
    pub fn flows(
        &self,
        sb: &Sandbox,
        host: &str,
        role: &str,
        yaml: &str,
        extra: &[&str],
    ) -> (Run, Duration) {
        let cfg = sb.write(&format!("flows-{host}.yml"), yaml);
        let started = Instant::now();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns(host),
                BIN,
                "flows",
                "--role",
                role,
                "--config",
            ])
            .arg(&cfg)
            .args(["--format", "json", "--no-progress"])
            .args(extra)
            .output()
            .unwrap();
        (Run::from(out), started.elapsed())
    }
}

impl NetLab {
    /// Runs `check --role ROLE` in `host`'s namespace with `yaml` and
    /// `extra`, as `flows` above.
    pub fn check(&self, sb: &Sandbox, host: &str, role: &str, yaml: &str, extra: &[&str]) -> Run {
        let cfg = sb.write(&format!("check-{host}.yml"), yaml);
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns(host), BIN, "check", "--role", role])
            .arg("--config")
            .arg(&cfg)
            .args(["--format", "json", "--no-progress"])
            .args(extra)
            .output()
            .unwrap();
        Run::from(out)
    }
}

pub struct Exclusive {
    _g: std::sync::MutexGuard<'static, ()>,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        fw_reset();
    }
}

fn fw_reset() {
    let _ = Command::new("bash")
        .args([
            &format!("{}/scripts/netlab.sh", env!("CARGO_MANIFEST_DIR")),
            "fw-reset",
        ])
        .output();
}

/// A running responder; stopped (SIGTERM) when dropped.
pub struct Responder {
    child: Option<Child>,
}

impl Responder {
    /// Stops it and returns what it printed.
    pub fn stop(mut self) -> Run {
        let child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        Run::from(child.wait_with_output().unwrap())
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The binary as `cluster` copies it to every host: without its debug
/// information (400 MB in a debug build), once per test process.
pub fn cluster_binary() -> &'static std::path::Path {
    static BIN_COPY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN_COPY.get_or_init(|| {
        // One copy per test process (another may be copying its own); the
        // copies of processes that are gone are removed.
        let root = std::env::temp_dir().join("airgap-verify-tests");
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("cluster-bin-") {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = root.join(format!("cluster-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("airgap-verify");
        let out = Command::new("strip")
            .args(["--strip-debug", "-o"])
            .arg(&p)
            .arg(BIN)
            .output()
            .expect("strip (binutils)");
        assert!(
            out.status.success(),
            "strip: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        p
    })
}

impl NetLab {
    /// The hosts that run sshd (orch, lb, the nodes).
    pub fn ssh_hosts(&self) -> Vec<String> {
        self.var("SSH_HOSTS")
            .split(',')
            .map(str::to_string)
            .collect()
    }

    pub fn nodes(&self) -> Vec<String> {
        self.var("NETLAB_NODES")
            .split(',')
            .map(str::to_string)
            .collect()
    }

    /// Runs `script` with `sh` on `host` over the lab's SSH, from the
    /// orchestration host, as the playbook's modules run there.
    pub fn ssh(&self, host: &str, script: &str) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", self.ns("orch"), "ssh", "-i"])
            .arg(self.var("SSH_KEY"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.var("SSH_KNOWN_HOSTS")
            ))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .arg(format!("{}@{}", self.var("SSH_USER"), self.addr(host)))
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Starts `cluster ARGS` on the orchestration host (its namespace), with
    /// `env` added; stdout and stderr piped.
    pub fn cluster_command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns("orch")])
            .arg(cluster_binary())
            .arg("cluster")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn cluster(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::from(self.cluster_command(args, env).output().unwrap())
    }

    /// What a run may have left on the hosts: files in each host's /tmp
    /// and Ansible's remote temporary folder, and airgap-verify processes
    /// in the hosts' namespaces. (This machine's part of a run lives in
    /// cluster's private folder under $TMPDIR: the tests give each run a
    /// TMPDIR of its own and check that it is empty afterwards.)
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in self.ssh_hosts() {
            let dir = self
                .var(&format!("HOSTDIR_{}", h.to_uppercase()))
                .to_string();
            for sub in ["tmp", "root/.ansible/tmp", "root/.ansible_async"] {
                for e in std::fs::read_dir(format!("{dir}/{sub}"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    out.push(format!("{h}: {sub}/{}", e.file_name().to_string_lossy()));
                }
            }
            let pids = Command::new("ip")
                .args(["netns", "pids", self.ns(&h)])
                .output()
                .unwrap();
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                // A process of a run: it names the binary or a run's folder,
                // or (an Ansible module the run started) has a run's TMPDIR
                // in its environment.
                let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let in_run = env
                    .split(|b| *b == 0)
                    .any(|v| v.starts_with(b"TMPDIR=/tmp/airgap-verify."));
                if (cmd.contains("airgap-verify") && !cmd.contains(" cluster")) || in_run {
                    out.push(format!("{h}: process {pid}: {cmd}"));
                }
            }
        }
        out
    }

    /// The pids of the responders running in `host`'s namespace.
    pub fn responders(&self, host: &str) -> Vec<String> {
        let pids = Command::new("ip")
            .args(["netns", "pids", self.ns(host)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&pids.stdout)
            .split_whitespace()
            .filter(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                cmd.contains("airgap-verify") && cmd.contains(" listen ")
            })
            .map(str::to_string)
            .collect()
    }
}
