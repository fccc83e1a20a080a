//! `airgap-verify cluster`: every host of the cluster checked through
//! Ansible in one run, and one merged report.
//!
//! The hosts come from an Ansible inventory (`--inventory`, read by
//! `ansible-inventory`), else from the vendor's config.yml
//! (`utils.ansible.inventory.{managers,workers}`, `global.host` for the load
//! balancer) or perimeter.yml `flows:`; the machine this runs on is the
//! orchestration host (a local connection). The playbook in `ansible/`,
//! embedded in this binary, does the work on each host; this module writes
//! its inputs, runs the real `ansible-playbook`, reads back what it fetched,
//! and hands the reports to [`crate::merge`].
//!
//! Guarantees:
//! - everything written for the run (inventory, variables, the playbook, the
//!   SSH key, the fetched reports) goes into one private folder (0700) that
//!   is removed on every exit path, SIGINT and SIGTERM included;
//! - the SSH private key (`utils.ansible.ssh-key`, a `${env.VAR}` holding
//!   the key's content) is written only there, mode 0600, and never
//!   printed: not in the plan, the report or an error;
//! - a host that SSH cannot reach, where the binary could not be copied or
//!   whose run failed is a failing finding naming the host and Ansible's
//!   reason (`cluster:host-unreachable`, `cluster:copy-failed`,
//!   `cluster:run-failed`); the other hosts are still merged;
//! - SIGINT or SIGTERM during the run stops Ansible, then runs the
//!   playbook's clean-up on every host (the responder and every other
//!   process of the run stopped, folders removed) before the partial report
//!   is written (exit 130 or 143);
//! - Ansible's SSH connections keep their control sockets in that folder
//!   (or in a 0700 folder of their own in /tmp when that path is too long
//!   for a socket), and every master is told to exit when each
//!   `ansible-playbook` run ends: no ssh of the run stays on this machine,
//!   and no half-closed session keeps a module waiting on a host;
//! - `--dry-run` ([`describe`]) connects to nothing and runs nothing but
//!   `ansible-inventory` (for `--inventory`), which only parses the file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Perimeter, Secret};
use crate::error::InputError;
use crate::finding::{Code, Finding, Interrupt, Policy};
use crate::report::Report;

/// The playbook, as in `ansible/airgap-verify.yml`.
pub const PLAYBOOK: &str = include_str!("../ansible/airgap-verify.yml");

/// A host's part in the cluster; its inventory group is [`Role::group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Orchestration,
    Lb,
    Manager,
    Worker,
    /// A machine outside the cluster where users and log sources sit: it
    /// plays the client (the load balancer's ports, and the ports that
    /// must stay blocked from outside).
    Client,
}

impl Role {
    pub fn group(self) -> &'static str {
        match self {
            Role::Orchestration => "orchestration",
            Role::Lb => "load_balancer",
            Role::Manager => "managers",
            Role::Worker => "workers",
            Role::Client => "clients",
        }
    }

    /// The role of the flow profile whose flows this host starts.
    fn profile_role(self) -> crate::profiles::Role {
        use crate::profiles::Role as P;
        match self {
            Role::Orchestration => P::Orchestration,
            Role::Lb => P::Lb,
            Role::Manager => P::Manager,
            Role::Worker => P::Worker,
            Role::Client => P::Client,
        }
    }

    /// What the playbook runs there.
    fn runs(self, services: bool) -> String {
        let mut steps = match self {
            Role::Orchestration => vec!["host --role orchestration", "flows --role orchestration"],
            Role::Lb => vec!["host --role lb", "flows --role lb"],
            Role::Client => vec!["flows --role client"],
            Role::Manager | Role::Worker => vec![
                "host --role node",
                "listen --role node (background)",
                "flows --role node",
            ],
        };
        if services && !matches!(self, Role::Lb | Role::Client) {
            steps.push("services");
        }
        steps.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The inventory name (the address, for hosts from config.yml).
    pub name: String,
    /// Where it is reached (`ansible_host`), when known.
    pub address: Option<String>,
    pub role: Role,
}

/// What `cluster` was given.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    pub perimeter: Option<PathBuf>,
    pub sekoia: Option<PathBuf>,
    pub inventory: Option<PathBuf>,
    pub profile: Option<String>,
    /// The binary copied to every host (this one).
    pub binary: PathBuf,
    /// How long a responder may run at most, whatever happens to Ansible.
    pub listen_deadline: Duration,
}

/// A validated cluster run.
pub struct Plan {
    pub hosts: Vec<Host>,
    /// Where the hosts came from, for the plan and the report.
    pub source: String,
    /// The operator's inventory, used as is (the orchestration host is
    /// added by a second, generated one).
    pub inventory: Option<PathBuf>,
    pub ssh_user: Option<String>,
    /// Where the key came from (`config.yml utils.ansible.ssh-key
    /// (${env.VAR})`), never the key.
    pub ssh_key_source: Option<String>,
    ssh_key: Option<Secret>,
    pub profile: String,
    /// perimeter.yml as copied to every host: the operator's, with a
    /// `flows:` section naming the hosts.
    pub perimeter_yaml: String,
    /// The operator's perimeter.yml names services: `services` runs on
    /// every node too.
    pub services: bool,
    /// The configuration, for the policy and the report's inputs.
    pub config: Option<Perimeter>,
    pub binary: PathBuf,
    pub listen_deadline: Duration,
}

fn usage(m: impl Into<String>) -> InputError {
    InputError::Usage(m.into())
}

/// `name` on PATH, or the exit-2 error that says how to install Ansible.
pub fn find_tool(name: &str) -> Result<PathBuf, InputError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
            return Ok(p);
        }
    }
    Err(usage(format!(
        "{name} is not on PATH: install Ansible on this machine (Debian: `apt-get install ansible-core`; elsewhere `python3 -m pip install ansible-core`), then run cluster again"
    )))
}

/// Hosts, SSH settings and the perimeter.yml for the hosts, from the
/// options. Reads files (and runs `ansible-inventory` for `--inventory`),
/// connects to nothing.
pub fn plan(opts: &ClusterOptions) -> Result<Plan, InputError> {
    let config = if opts.perimeter.is_some() || opts.sekoia.is_some() {
        let mut p = crate::config::load(&crate::config::LoadOptions {
            perimeter: opts.perimeter.clone(),
            sekoia: opts.sekoia.clone(),
            ..Default::default()
        })?;
        if let Some(name) = &opts.profile {
            let f = p.flows_mut();
            f.profile = Some(name.clone());
            f.profile_source = "--profile".into();
        }
        Some(p)
    } else {
        None
    };
    let profile = opts
        .profile
        .clone()
        .or_else(|| {
            config
                .as_ref()
                .and_then(|c| c.flows.as_ref())
                .map(|f| f.profile_name().to_string())
        })
        .unwrap_or_else(|| crate::profiles::DEFAULT.to_string());
    crate::profiles::get(&profile).map_err(|m| usage(format!("--profile: {m}")))?;

    let orch_name = crate::report::hostname();
    let orch_address = config
        .as_ref()
        .and_then(|c| c.flows.as_ref())
        .and_then(|f| f.orchestration.clone());
    let (mut hosts, source) = if let Some(inv) = &opts.inventory {
        (read_inventory(inv)?, format!("inventory {}", inv.display()))
    } else {
        let flows = config.as_ref().and_then(|c| c.flows.as_ref()).ok_or_else(|| {
            usage("no cluster hosts: give --inventory FILE (groups managers, workers, load_balancer), or --sekoia-config with utils.ansible.inventory, or a perimeter.yml with a `flows:` section")
        })?;
        let mut hosts = Vec::new();
        let mut seen = BTreeSet::new();
        for (list, role) in [
            (&flows.managers, Role::Manager),
            (&flows.workers, Role::Worker),
        ] {
            for a in list {
                if seen.insert(a.clone()) {
                    hosts.push(Host {
                        name: a.clone(),
                        address: Some(a.clone()),
                        role,
                    });
                }
            }
        }
        if let Some(lb) = &flows.load_balancer {
            if seen.insert(lb.clone()) {
                hosts.push(Host {
                    name: lb.clone(),
                    address: Some(lb.clone()),
                    role: Role::Lb,
                });
            }
        }
        let from = match (&opts.sekoia, &opts.perimeter) {
            (Some(s), _) if !flows.managers.is_empty() || !flows.workers.is_empty() => {
                format!("{} utils.ansible.inventory", s.display())
            }
            (_, Some(p)) => format!("{} flows:", p.display()),
            _ => "the configuration".into(),
        };
        (hosts, from)
    };
    if !hosts
        .iter()
        .any(|h| matches!(h.role, Role::Manager | Role::Worker))
    {
        return Err(usage(format!(
            "{source}: no managers or workers; name the cluster's nodes there"
        )));
    }
    if !hosts.iter().any(|h| h.role == Role::Orchestration) {
        hosts.insert(
            0,
            Host {
                name: orch_name,
                address: orch_address,
                role: Role::Orchestration,
            },
        );
    }

    // SSH: user and key from config.yml utils.ansible (the inventory's own
    // variables, when given, win over both: they are Ansible's).
    let (ssh_user, ssh_key, ssh_key_source) = match &opts.sekoia {
        Some(path) => vendor_ssh(path)?,
        None => (None, None, None),
    };

    let perimeter_yaml = perimeter_for_hosts(opts.perimeter.as_deref(), &hosts, &profile)?;
    let services = config.as_ref().is_some_and(|c| !c.is_empty()) && opts.perimeter.is_some();
    Ok(Plan {
        hosts,
        source,
        inventory: opts.inventory.clone(),
        ssh_user,
        ssh_key_source,
        ssh_key,
        profile,
        perimeter_yaml,
        services,
        config,
        binary: opts.binary.clone(),
        listen_deadline: opts.listen_deadline,
    })
}

type VendorSsh = (Option<String>, Option<Secret>, Option<String>);

/// `utils.ansible.user` and `utils.ansible.ssh-key` of the vendor's file.
fn vendor_ssh(path: &Path) -> Result<VendorSsh, InputError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| InputError::unreadable(path, "config.yml", e))?;
    let root: serde_norway::Value = crate::config::parse_yaml(path, &text)?;
    let get = |key: &str| -> Option<String> {
        let mut v = &root;
        for part in key.split('.') {
            v = v.get(part)?;
        }
        match v {
            serde_norway::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => None,
        }
    };
    let user = get("utils.ansible.user");
    let key = "utils.ansible.ssh-key";
    let Some(raw) = get(key) else {
        return Ok((user, None, None));
    };
    let (secret, source) = match crate::config::sekoia::parse_secret(&raw) {
        crate::config::sekoia::VendorSecret::Ref(r) => {
            let s = r.resolve().map_err(|m| {
                usage(format!(
                    "{} {key}: {m}; export the SSH private key's content in it (the vendor's installer reads the same variable)",
                    path.display()
                ))
            })?;
            (s, format!("{} {key} ({})", path.display(), r.describe()))
        }
        crate::config::sekoia::VendorSecret::Clear(v) => (
            Secret::from_config(v),
            format!("{} {key} (in clear)", path.display()),
        ),
    };
    if !secret.expose().contains("PRIVATE KEY") {
        return Err(usage(format!(
            "{source}: not an SSH private key (no PRIVATE KEY block); it must hold the key's content, not a path"
        )));
    }
    Ok((user, Some(secret), Some(source)))
}

/// The hosts of an Ansible inventory (INI or YAML), by group, as
/// `ansible-inventory --list` reads them.
pub fn read_inventory(path: &Path) -> Result<Vec<Host>, InputError> {
    std::fs::metadata(path).map_err(|e| InputError::unreadable(path, "inventory", e))?;
    let tool = find_tool("ansible-inventory")?;
    let out = std::process::Command::new(tool)
        .arg("-i")
        .arg(path)
        .arg("--list")
        .env("ANSIBLE_NOCOLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| usage(format!("ansible-inventory: {e}")))?;
    let bad = |m: String| usage(format!("{}: {m}", path.display()));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(bad(format!(
            "ansible-inventory cannot read it: {}",
            err.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no reason given")
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| bad(format!("ansible-inventory's output is not JSON: {e}")))?;
    // Ansible warns on stderr (and lists nothing) for a file it cannot parse.
    let err = String::from_utf8_lossy(&out.stderr);
    if let Some(w) = err.lines().find(|l| l.contains("Unable to parse")) {
        return Err(bad(w.trim().to_string()));
    }
    hosts_of_inventory(&v).map_err(bad)
}

/// The hosts of `ansible-inventory --list`'s JSON.
pub fn hosts_of_inventory(v: &serde_json::Value) -> Result<Vec<Host>, String> {
    fn members(v: &serde_json::Value, group: &str, depth: usize, out: &mut Vec<String>) {
        let Some(g) = v.get(group) else { return };
        for h in g["hosts"].as_array().into_iter().flatten() {
            if let Some(h) = h.as_str() {
                if !out.iter().any(|x| x == h) {
                    out.push(h.to_string());
                }
            }
        }
        if depth < 8 {
            for c in g["children"].as_array().into_iter().flatten() {
                if let Some(c) = c.as_str() {
                    members(v, c, depth + 1, out);
                }
            }
        }
    }
    let mut hosts: Vec<Host> = Vec::new();
    for role in [
        Role::Orchestration,
        Role::Manager,
        Role::Worker,
        Role::Lb,
        Role::Client,
    ] {
        let mut names = Vec::new();
        members(v, role.group(), 0, &mut names);
        for n in names {
            if hosts.iter().any(|h| h.name == n) {
                continue; // a manager listed as a worker too stays a manager
            }
            let address = v["_meta"]["hostvars"][&n]["ansible_host"]
                .as_str()
                .map(str::to_string)
                .or_else(|| Some(n.clone()));
            hosts.push(Host {
                name: n,
                address,
                role,
            });
        }
    }
    if hosts.is_empty() {
        return Err(
            "no host in the groups managers, workers, load_balancer, orchestration or clients"
                .into(),
        );
    }
    Ok(hosts)
}

/// perimeter.yml for the hosts: the operator's file (if any), with its
/// `flows:` naming the cluster's hosts by address.
fn perimeter_for_hosts(
    perimeter: Option<&Path>,
    hosts: &[Host],
    profile: &str,
) -> Result<String, InputError> {
    use serde_norway::{Mapping, Value};
    let mut root = match perimeter {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| InputError::unreadable(p, "configuration", e))?;
            let v: Value = crate::config::parse_yaml(p, &text)?;
            match v {
                Value::Mapping(m) => m,
                Value::Null => Mapping::new(),
                _ => return Err(usage(format!("{}: not a YAML mapping", p.display()))),
            }
        }
        None => Mapping::new(),
    };
    let mut flows = match root.remove("flows") {
        Some(Value::Mapping(m)) => m,
        _ => Mapping::new(),
    };
    let addrs = |role: Role| -> Vec<Value> {
        hosts
            .iter()
            .filter(|h| h.role == role)
            .filter_map(|h| h.address.clone())
            .map(Value::String)
            .collect()
    };
    flows.insert("profile".into(), Value::String(profile.to_string()));
    flows.insert("managers".into(), Value::Sequence(addrs(Role::Manager)));
    flows.insert("workers".into(), Value::Sequence(addrs(Role::Worker)));
    for (key, role) in [
        ("load_balancer", Role::Lb),
        ("orchestration", Role::Orchestration),
    ] {
        match addrs(role).into_iter().next() {
            Some(a) => {
                flows.insert(key.into(), a);
            }
            None => {
                flows.remove(key);
            }
        }
    }
    root.insert("flows".into(), Value::Mapping(flows));
    serde_norway::to_string(&Value::Mapping(root))
        .map_err(|e| usage(format!("writing perimeter.yml for the hosts: {e}")))
}

/// The profile's flows that no host of the plan starts, by source role
/// (`client` when the inventory has no `clients`, `lb` without a load
/// balancer): they are not tested, and the report says so.
fn missing_sources(plan: &Plan) -> Vec<(crate::profiles::Role, Vec<String>)> {
    let Ok(profile) = crate::profiles::get(&plan.profile) else {
        return Vec::new();
    };
    let mut out: Vec<(crate::profiles::Role, Vec<String>)> = Vec::new();
    for f in &profile.flows {
        if plan
            .hosts
            .iter()
            .any(|h| f.starts_at(h.role.profile_role()))
        {
            continue;
        }
        let Some(&role) = f.from.first() else {
            continue;
        };
        match out.iter_mut().find(|(r, _)| *r == role) {
            Some((_, ids)) => ids.push(f.id.clone()),
            None => out.push((role, vec![f.id.clone()])),
        }
    }
    out
}

/// The inventory group whose hosts play the profile's `role`.
fn group_of(role: crate::profiles::Role) -> &'static str {
    use crate::profiles::Role as P;
    match role {
        P::Client => Role::Client.group(),
        P::Lb => Role::Lb.group(),
        P::Orchestration => Role::Orchestration.group(),
        P::Manager => Role::Manager.group(),
        // A flow from every node needs a worker at least (a manager would
        // do too, but the cluster always has one of either).
        P::Worker | P::Node | P::Service(_) => Role::Worker.group(),
    }
}

fn source_missing_finding(role: crate::profiles::Role, ids: &[String]) -> Finding {
    let group = group_of(role);
    Finding::new(
        Code::ClusterSourceMissing,
        format!("flows from {}", role.name()),
        format!(
            "no host of the cluster plays the {} role (inventory group `{group}`), so these flows were not tested: {}",
            role.name(),
            ids.join(", ")
        ),
    )
    .evidence("role", role.name())
    .evidence("flows", ids.to_vec())
}

/// What `cluster --dry-run` prints: hosts, roles, what runs where.
pub fn describe(plan: &Plan) -> Vec<String> {
    let mut out = vec![format!(
        "cluster  {} host(s) from {}, profile {}; Ansible's ansible-playbook runs the embedded playbook (ansible/airgap-verify.yml)",
        plan.hosts.len(),
        plan.source,
        plan.profile
    )];
    for h in &plan.hosts {
        let how = if h.role == Role::Orchestration {
            "this machine (local)".to_string()
        } else {
            format!("ssh {}", h.address.as_deref().unwrap_or(&h.name))
        };
        out.push(format!(
            "host     {:<16} {:<14} {:<26} {}",
            h.name,
            h.role.group(),
            how,
            h.role.runs(plan.services)
        ));
    }
    for (role, ids) in missing_sources(plan) {
        out.push(format!(
            "skipped  flows from {} (no host in the inventory group `{}`): {}",
            role.name(),
            group_of(role),
            ids.join(", ")
        ));
    }
    out.push(format!(
        "ssh      user {}, key {}",
        plan.ssh_user
            .as_deref()
            .unwrap_or("(Ansible's default or the inventory's)"),
        plan.ssh_key_source
            .as_deref()
            .unwrap_or("(Ansible's default or the inventory's)")
    ));
    out.push(format!(
        "copy     {} to a private folder on each host (SHA-256 checked), with perimeter.yml naming the hosts; removed afterwards",
        plan.binary.display()
    ));
    out.push(format!(
        "listen   responders stop after the flows, at the latest after {}",
        humantime::format_duration(plan.listen_deadline)
    ));
    out.push("merge    the fetched JSON reports into one report of the cluster".into());
    out
}

/// The private folder of a run: created 0700, removed on drop and on a
/// signal (through [`crate::scratch`]).
struct RunDir {
    path: PathBuf,
    _registered: crate::scratch::Registered,
}

impl RunDir {
    fn create() -> Result<RunDir, InputError> {
        use std::os::unix::fs::DirBuilderExt;
        let mut tried = Vec::new();
        for parent in crate::scratch::parent_candidates() {
            let path = parent.join(format!("airgap-verify-cluster.{}", random_hex(8)));
            match crate::scratch::create(&path, |p| {
                std::fs::DirBuilder::new().mode(0o700).create(p)
            }) {
                Ok(((), registered)) => {
                    return Ok(RunDir {
                        path,
                        _registered: registered,
                    });
                }
                Err(e) => tried.push(format!("{}: {e}", parent.display())),
            }
        }
        Err(usage(format!(
            "no place for the cluster run's private folder ({})",
            tried.join("; ")
        )))
    }

    fn write(&self, name: &str, text: &str, mode: u32) -> Result<PathBuf, InputError> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.path.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&p)
            .map_err(|e| InputError::Unwritable {
                path: p.clone(),
                what: "cluster run file",
                err: e,
            })?;
        f.write_all(text.as_bytes())
            .map_err(|e| InputError::Unwritable {
                path: p.clone(),
                what: "cluster run file",
                err: e,
            })?;
        Ok(p)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where this run's SSH connections keep their control sockets
/// (`ANSIBLE_SSH_CONTROL_PATH_DIR`), so that they end with each
/// `ansible-playbook` run ([`ControlDir::close_masters`]) instead of
/// lingering for ControlPersist's 60 s on this machine, or for good: a
/// master whose session an interrupt left half-closed is never idle, and
/// that session keeps the host's module blocked on a full pipe.
struct ControlDir {
    path: PathBuf,
    /// Set for a folder of its own (outside the run's folder), which is
    /// removed with this.
    own: Option<crate::scratch::Registered>,
}

/// Ansible names a socket `DIR/` and 10 hex digits, and ssh binds it first
/// as that path plus `.` and up to 16 hex digits; a socket path has at most
/// 107 bytes.
const CONTROL_DIR_MAX: usize = 107 - 1 - 10 - 17;

impl ControlDir {
    /// `RUN/cp`, or when that path is too long for a socket, a folder of its
    /// own in /tmp; `None` (Ansible's default place, sockets not closed) if
    /// neither can be made.
    fn create(run: &Path) -> Option<ControlDir> {
        use std::os::unix::fs::DirBuilderExt;
        let inside = run.join("cp");
        if inside.as_os_str().len() <= CONTROL_DIR_MAX {
            return std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&inside)
                .ok()
                .map(|()| ControlDir {
                    path: inside,
                    own: None,
                });
        }
        let own = PathBuf::from(format!("/tmp/airgap-verify-cp.{}", random_hex(8)));
        let ((), registered) =
            crate::scratch::create(&own, |p| std::fs::DirBuilder::new().mode(0o700).create(p))
                .ok()?;
        Some(ControlDir {
            path: own,
            own: Some(registered),
        })
    }

    /// Asks every master with a socket here to exit (`ssh -O exit`), and
    /// waits until it has (5 s, then SIGKILL): its connection closes, and
    /// the host's sshd closes what still ran in it.
    fn close_masters(&self) {
        let ssh = std::env::var_os("ANSIBLE_SSH_EXECUTABLE")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "ssh".into());
        for e in std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
        {
            let mut control = std::ffi::OsString::from("ControlPath=");
            control.push(e.path());
            let ask = |op: &str| -> Option<String> {
                let mut child = std::process::Command::new(&ssh)
                    .arg("-o")
                    .arg(&control)
                    .args(["-O", op, "airgap-verify-cluster"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .ok()?;
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) {
                    if std::time::Instant::now() >= deadline {
                        let _ = child.kill();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let out = child.wait_with_output().ok()?;
                Some(String::from_utf8_lossy(&out.stderr).into_owned())
            };
            // "Master running (pid=N)"
            let pid = ask("check").and_then(|t| {
                let rest = &t[t.find("(pid=")? + 5..];
                rest[..rest.find(')')?].parse::<u32>().ok()
            });
            ask("exit");
            let Some(pid) = pid else { continue };
            let gone = || {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')))
                    .unwrap_or(true)
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !gone() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            // Still the master (not a PID reused meanwhile): its title.
            let master = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"ssh: "));
            if !gone() && master {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

impl Drop for ControlDir {
    fn drop(&mut self) {
        self.close_masters();
        if self.own.is_some() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("the system's random source");
    hex::encode(b)
}

/// The generated inventory: every host of the plan (or, with the
/// operator's inventory, only the orchestration host it lacks).
fn inventory_text(plan: &Plan, key: Option<&Path>, run_dir: &Path) -> String {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for h in &plan.hosts {
        let line = if h.role == Role::Orchestration {
            // This machine: its folder of the run goes into the run's own
            // private folder, so everything made here leaves with it.
            format!(
                "{} ansible_connection=local airgap_verify_tmp_root={}",
                h.name,
                run_dir.display()
            )
        } else if plan.inventory.is_some() {
            continue; // the operator's inventory has it
        } else {
            format!(
                "{} ansible_host={}",
                h.name,
                h.address.as_deref().unwrap_or(&h.name)
            )
        };
        groups.entry(h.role.group()).or_default().push(line);
    }
    let mut out = String::from("# written by airgap-verify cluster for one run\n");
    for (g, lines) in groups {
        out.push_str(&format!("[{g}]\n{}\n\n", lines.join("\n")));
    }
    if plan.inventory.is_none() {
        out.push_str("[all:vars]\n");
        if let Some(u) = &plan.ssh_user {
            out.push_str(&format!("ansible_user={u}\n"));
        }
        if let Some(k) = key {
            out.push_str(&format!("ansible_ssh_private_key_file={}\n", k.display()));
        }
    }
    out
}

/// How one host's part of the run ended, from Ansible's output.
#[derive(Debug, Default, Clone)]
struct Outcome {
    unreachable: bool,
    failed: bool,
    message: Option<String>,
}

/// The hosts' outcomes from Ansible's default output: the `PLAY RECAP`
/// counts and each `fatal: [HOST]: ... => {json}` line's message.
fn outcomes(log: &str) -> BTreeMap<String, Outcome> {
    let mut out: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut in_recap = false;
    for line in log.lines() {
        if line.starts_with("PLAY RECAP") {
            in_recap = true;
            continue;
        }
        if in_recap {
            let Some((host, counts)) = line.split_once(" : ") else {
                continue;
            };
            let num = |k: &str| -> u64 {
                counts
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
                    .unwrap_or(0)
            };
            let o = out.entry(host.trim().to_string()).or_default();
            o.unreachable |= num("unreachable") > 0;
            o.failed |= num("failed") > 0;
            continue;
        }
        let Some(rest) = line.strip_prefix("fatal: [") else {
            continue;
        };
        let Some((host, rest)) = rest.split_once("]: ") else {
            continue;
        };
        let unreachable = rest.starts_with("UNREACHABLE!");
        let msg = rest
            .split_once("=> ")
            .and_then(|(_, j)| serde_json::from_str::<serde_json::Value>(j).ok())
            .and_then(|v| v["msg"].as_str().map(str::to_string));
        // A delegated task names "host -> localhost": the host is first.
        let host = host.split(" -> ").next().unwrap_or(host).to_string();
        let o = out.entry(host).or_default();
        o.unreachable |= unreachable;
        if o.message.is_none() || unreachable {
            o.message = msg;
        }
    }
    out
}

/// The result of one `ansible-playbook` run.
struct Played {
    log: String,
    interrupted: Option<Interrupt>,
}

/// Runs ansible-playbook in its own process group; SIGINT or SIGTERM to
/// this process is passed to that group, and the run is reported as
/// interrupted. Its SSH connections (control sockets in `control`) are
/// closed when it ends.
fn play(
    args: &[String],
    log_path: &Path,
    watch: bool,
    control: Option<&ControlDir>,
) -> Result<Played, InputError> {
    use std::os::unix::process::CommandExt;
    let tool = find_tool("ansible-playbook")?;
    let log = std::fs::File::create(log_path).map_err(|e| InputError::Unwritable {
        path: log_path.into(),
        what: "Ansible's log",
        err: e,
    })?;
    let log2 = log.try_clone().map_err(|e| InputError::Unwritable {
        path: log_path.into(),
        what: "Ansible's log",
        err: e,
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| usage(format!("cannot start the runtime: {e}")))?;
    let mut cmd = std::process::Command::new(tool);
    cmd.args(args)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_STDOUT_CALLBACK", "default")
        // One SSH round trip per task instead of four (put, chmod, run,
        // remove): most of Ansible's own time on each host. The operator's
        // setting wins.
        .env(
            "ANSIBLE_PIPELINING",
            std::env::var_os("ANSIBLE_PIPELINING").unwrap_or_else(|| "True".into()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    if let Some(c) = control {
        cmd.env("ANSIBLE_SSH_CONTROL_PATH_DIR", &c.path);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| usage(format!("cannot run ansible-playbook: {e}")))?;
    let pid = child.id();
    let interrupted = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut int, mut term) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) if watch => (Some(i), Some(t)),
            _ => (None, None),
        };
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if !matches!(child.try_wait(), Ok(None)) {
                        return None;
                    }
                }
                _ = recv(&mut int) => return Some(Interrupt::Sigint),
                _ = recv(&mut term) => return Some(Interrupt::Sigterm),
            }
        }
    });
    if let Some(sig) = interrupted {
        // Ansible stops its workers on SIGINT; the whole group gets it, so
        // an ssh still connecting stops too. SIGKILL after 10 s.
        let name = if sig == Interrupt::Sigint {
            "-INT"
        } else {
            "-TERM"
        };
        let group = format!("-{pid}");
        let _ = std::process::Command::new("kill")
            .args([name, "--", &group])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &group])
                .status();
        }
    }
    let _ = child.wait();
    if let Some(c) = control {
        c.close_masters();
    }
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    Ok(Played { log, interrupted })
}

/// Runs the plan and merges what the hosts reported.
/// `local` are reports made on this machine for the same report (the
/// release archive's), by host name.
pub fn run(
    plan: &Plan,
    policy: &Policy,
    local: Vec<(String, Report)>,
) -> Result<Report, InputError> {
    let started = std::time::Instant::now();
    find_tool("ansible-playbook")?;
    let dir = RunDir::create()?;
    let run_id = random_hex(12);
    let key = match &plan.ssh_key {
        Some(k) => {
            let mut text = k.expose().replace("\r\n", "\n");
            if !text.ends_with('\n') {
                text.push('\n'); // OpenSSH refuses a key without its last newline
            }
            Some(dir.write("ssh-key", &text, 0o600)?)
        }
        None => None,
    };
    let playbook = dir.write("airgap-verify.yml", PLAYBOOK, 0o600)?;
    let perimeter = dir.write("perimeter.yml", &plan.perimeter_yaml, 0o600)?;
    let generated = dir.write(
        "inventory.ini",
        &inventory_text(plan, key.as_deref(), &dir.path),
        0o600,
    )?;
    let fetch = dir.path.join("reports");
    std::fs::create_dir(&fetch).map_err(|e| InputError::Unwritable {
        path: fetch.clone(),
        what: "reports folder",
        err: e,
    })?;
    let vars = serde_json::json!({
        "airgap_verify_binary": plan.binary,
        "airgap_verify_config": perimeter,
        "airgap_verify_fetch_dir": fetch,
        "airgap_verify_run_id": run_id,
        "airgap_verify_services": plan.services,
        "airgap_verify_profile": plan.profile,
        "airgap_verify_listen_deadline": plan.listen_deadline.as_secs().max(10),
    });
    let vars = dir.write("vars.json", &vars.to_string(), 0o600)?;
    let mut args: Vec<String> = Vec::new();
    if let Some(inv) = &plan.inventory {
        args.extend(["-i".into(), inv.display().to_string()]);
    }
    args.extend(["-i".into(), generated.display().to_string()]);
    args.extend([
        "--forks".into(),
        plan.hosts.len().clamp(5, 50).to_string(),
        "-e".into(),
        format!("@{}", vars.display()),
    ]);
    if let (Some(k), Some(_)) = (&key, &plan.inventory) {
        // The operator's inventory variables win over the command line.
        args.extend(["--private-key".into(), k.display().to_string()]);
    }
    if let (Some(u), Some(_)) = (&plan.ssh_user, &plan.inventory) {
        args.extend(["--user".into(), u.clone()]);
    }
    let mut run_args = args.clone();
    run_args.push(playbook.display().to_string());
    let _own = crate::scratch::ProbesHandleSignals::claim();
    let control = ControlDir::create(&dir.path);
    let played = play(
        &run_args,
        &dir.path.join("ansible.log"),
        true,
        control.as_ref(),
    )?;

    let mut extra = Vec::new();
    if let Some(sig) = played.interrupted {
        // Stop the responders and remove the folders Ansible could not.
        let mut cleanup = args.clone();
        cleanup.extend([
            "-e".into(),
            "airgap_verify_action=cleanup".into(),
            playbook.display().to_string(),
        ]);
        let done = play(
            &cleanup,
            &dir.path.join("cleanup.log"),
            false,
            control.as_ref(),
        )?;
        let left = outcomes(&done.log);
        let failed: Vec<&String> = left
            .iter()
            .filter(|(_, o)| o.failed || o.unreachable)
            .map(|(h, _)| h)
            .collect();
        extra.push(
            Finding::new(
                Code::RunInterrupted,
                "cluster",
                format!(
                    "the cluster run was interrupted by {}; Ansible was stopped and the clean-up ran on every host{}",
                    sig.name(),
                    if failed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (it failed on {}: remove /tmp/airgap-verify.{run_id}.* there by hand)",
                            failed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    }
                ),
            )
            .evidence("run_id", run_id.clone()),
        );
    }

    // What each host produced.
    let outcome = outcomes(&played.log);
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut failures: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for e in std::fs::read_dir(&fetch).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let Some((host, kind)) = stem.rsplit_once('.') else {
            continue;
        };
        if kind == "failed" {
            if let Ok(v) = std::fs::read_to_string(e.path())
                .map_err(|_| ())
                .and_then(|t| serde_json::from_str(&t).map_err(|_| ()))
            {
                failures.insert(host.to_string(), v);
            }
        } else {
            files.entry(host.to_string()).or_default().push(e.path());
        }
    }
    let mut inputs: Vec<crate::finding::InputSummary> =
        local.iter().flat_map(|(_, r)| r.inputs.clone()).collect();
    let mut reports = local;
    for h in &plan.hosts {
        let o = outcome.get(&h.name).cloned().unwrap_or_default();
        let failure = failures.get(&h.name);
        let target = format!("host {}", h.name);
        let with_host = |f: Finding| {
            let mut f = f.evidence("role", h.role.group());
            f.host = Some(h.name.clone());
            f
        };
        if o.unreachable {
            extra.push(with_host(Finding::new(
                Code::ClusterHostUnreachable,
                target.clone(),
                format!(
                    "{} cannot be reached over SSH: {}",
                    h.name,
                    o.message.as_deref().unwrap_or("Ansible gave no reason")
                ),
            )));
        } else if let Some(f) = failure {
            let task = f["task"].as_str().unwrap_or("?");
            let msg = f["message"].as_str().unwrap_or("failed");
            let code = if task.starts_with("copy:") {
                Code::ClusterCopyFailed
            } else {
                Code::ClusterRunFailed
            };
            extra.push(with_host(
                Finding::new(code, target.clone(), format!("{}: {task}: {msg}", h.name))
                    .evidence("task", task),
            ));
        } else if o.failed {
            extra.push(with_host(Finding::new(
                Code::ClusterRunFailed,
                target.clone(),
                format!(
                    "{}: {}",
                    h.name,
                    o.message.as_deref().unwrap_or("Ansible reported a failure")
                ),
            )));
        } else if played.interrupted.is_none() && !files.contains_key(&h.name) {
            extra.push(with_host(Finding::new(
                Code::ClusterRunFailed,
                target.clone(),
                format!("{}: Ansible fetched no report from this host", h.name),
            )));
        }
        for path in files.get(&h.name).into_iter().flatten() {
            let (report, mut input) = crate::merge::read(path)?;
            input.path = format!(
                "{}:{}",
                h.name,
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            inputs.push(input);
            reports.push((h.name.clone(), report));
        }
        if files.contains_key(&h.name) && failure.is_none() && !o.failed && !o.unreachable {
            extra.push(with_host(
                Finding::new(
                    Code::ClusterHostChecked,
                    target,
                    format!(
                        "{}: every step ran, {} report(s) fetched ({})",
                        h.name,
                        files[&h.name].len(),
                        h.role.runs(plan.services)
                    ),
                )
                .evidence("reports", files[&h.name].len()),
            ));
        }
    }
    for (role, ids) in missing_sources(plan) {
        extra.push(source_missing_finding(role, &ids));
    }
    let mut merged = crate::merge::merge(reports, extra);
    inputs.append(&mut merged.inputs);
    merged.inputs = inputs;
    merged.command = "cluster".into();
    merged.duration_ms = started.elapsed().as_millis() as u64;
    if played.interrupted.is_some() {
        merged.interrupted = played.interrupted;
    }
    merged.judge(policy);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_from_ansible_output() {
        let log = r#"
TASK [copy: the private folder] ***
fatal: [ghost]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect to the host via ssh: ssh: connect to host 10.0.255.29 port 22: No route to host", "unreachable": true}
fatal: [node2 -> localhost]: FAILED! => {"changed": false, "msg": "boom"}

PLAY RECAP *********************************************************************
ghost                      : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
node1                      : ok=14   changed=7    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
node2                      : ok=3    changed=1    unreachable=0    failed=1    skipped=0    rescued=1    ignored=0
"#;
        let o = outcomes(log);
        assert!(o["ghost"].unreachable);
        assert!(o["ghost"]
            .message
            .as_deref()
            .unwrap()
            .contains("No route to host"));
        assert!(!o["node1"].failed && !o["node1"].unreachable);
        assert!(o["node2"].failed);
        assert_eq!(o["node2"].message.as_deref(), Some("boom"));
    }

    #[test]
    fn inventory_groups_and_children() {
        let v = serde_json::json!({
            "_meta": {"hostvars": {"m1": {"ansible_host": "10.0.0.1"}, "w1": {}}},
            "all": {"children": ["ungrouped", "managers", "workers", "load_balancer"]},
            "managers": {"hosts": ["m1"]},
            "workers": {"children": ["rack1"]},
            "rack1": {"hosts": ["w1", "m1"]},
            "load_balancer": {"hosts": ["lb"]},
            "clients": {"hosts": ["c1"]}
        });
        let h = hosts_of_inventory(&v).unwrap();
        let by = |n: &str| h.iter().find(|x| x.name == n).unwrap().clone();
        assert_eq!(by("m1").role, Role::Manager);
        assert_eq!(by("m1").address.as_deref(), Some("10.0.0.1"));
        assert_eq!(by("w1").role, Role::Worker);
        assert_eq!(by("w1").address.as_deref(), Some("w1"));
        assert_eq!(by("lb").role, Role::Lb);
        assert_eq!(by("c1").role, Role::Client);
        assert_eq!(h.len(), 4);
        assert!(hosts_of_inventory(&serde_json::json!({"all": {}})).is_err());
    }

    #[test]
    fn the_hosts_perimeter_names_every_host() {
        let hosts = vec![
            Host {
                name: "o".into(),
                address: Some("10.0.0.9".into()),
                role: Role::Orchestration,
            },
            Host {
                name: "a".into(),
                address: Some("10.0.0.1".into()),
                role: Role::Manager,
            },
            Host {
                name: "b".into(),
                address: Some("10.0.0.2".into()),
                role: Role::Worker,
            },
            Host {
                name: "l".into(),
                address: Some("10.0.0.3".into()),
                role: Role::Lb,
            },
        ];
        let y = perimeter_for_hosts(None, &hosts, "sekoia-1.0.0").unwrap();
        let v: serde_norway::Value = serde_norway::from_str(&y).unwrap();
        assert_eq!(v["flows"]["managers"][0].as_str(), Some("10.0.0.1"));
        assert_eq!(v["flows"]["workers"][0].as_str(), Some("10.0.0.2"));
        assert_eq!(v["flows"]["load_balancer"].as_str(), Some("10.0.0.3"));
        assert_eq!(v["flows"]["orchestration"].as_str(), Some("10.0.0.9"));
        assert_eq!(v["flows"]["profile"].as_str(), Some("sekoia-1.0.0"));
    }
}
