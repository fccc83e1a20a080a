//! Configuration: `perimeter.yml`, the vendor's `config.yml`, and the
//! validated plan the probes run from.
//!
//! Guarantees:
//! - [`load`] does every check that needs no network (syntax, types, CIDRs,
//!   durations, the CA bundle parses) before any probe starts, so a bad
//!   configuration fails in milliseconds with exit code 2 and one line that
//!   names the file, line, column and key;
//! - secrets are resolved here, once, into [`Secret`]s that cannot be
//!   printed; a secret that cannot be read is a finding
//!   (`config:unresolved-secret`), not a crash, and never shows its value;
//! - a target written as an address outside `allowed_networks` is reported
//!   (`config:outside-perimeter`) and dropped from the plan: no probe ever
//!   connects outside the perimeter.

pub mod file;
pub mod proxy;
pub mod secret;
pub mod sekoia;
pub mod vendor_env;
pub mod vendor_keys;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::Transport;
pub use secret::{Secret, SecretRef};

use crate::error::InputError;
use crate::finding::{Code, Finding};

pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);
pub const DEFAULT_MAX_OFFSET: Duration = Duration::from_millis(500);
pub const DEFAULT_MAX_STRATUM: u8 = 10;
pub const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 30;
pub const DEFAULT_HELO: &str = "airgap-verify.invalid";
pub const DEFAULT_PUBLIC_NAME: &str = "example.com";
pub const DEFAULT_CHECK_REPO: &str = "airgap-verify-check";
pub const DEFAULT_S3_REGION: &str = "us-east-1";
/// The built-in targets of `--probe-internet` (docs/config.md lists them;
/// `egress.*` in perimeter.yml replaces them).
pub const DEFAULT_INTERNET_NAMES: &[&str] = &["example.com", "www.google.com", "cloudflare.com"];
pub const DEFAULT_INTERNET_ADDRESSES: &[&str] = &["1.1.1.1", "8.8.8.8", "9.9.9.9"];
/// time.cloudflare.com and time.google.com.
pub const DEFAULT_NTP_POOL: &[&str] = &["162.159.200.1", "216.239.35.0"];
pub const DEFAULT_EGRESS_DEADLINE: Duration = Duration::from_secs(2);
/// The cluster's fixed internal networks (the vendor's 1.0.0 network
/// page): no network the nodes or the platform must reach may overlap them.
pub const CLUSTER_NETWORKS: &[(&str, &str)] = &[
    ("10.42.0.0/16", "pod network"),
    ("10.43.0.0/16", "service network"),
];

/// The cluster network `ip` lies in, with its name.
pub fn cluster_network_of(ip: IpAddr) -> Option<(&'static str, &'static str)> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    CLUSTER_NETWORKS.iter().copied().find(|(net, _)| {
        net.parse::<ipnet::IpNet>()
            .expect("built-in CIDR")
            .contains(&ip)
    })
}

/// The perimeter when perimeter.yml has no `allowed_networks`: RFC 1918,
/// RFC 6598 (carrier-grade NAT), loopback, link-local, and IPv6 loopback,
/// link-local and unique local addresses.
pub const DEFAULT_PERIMETER: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
];

/// What the user asked for on the command line.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    pub perimeter: Option<PathBuf>,
    pub sekoia: Option<PathBuf>,
    /// `--ca-bundle`, overrides `ca_bundle`.
    pub ca_bundle: Option<PathBuf>,
    /// `--timeout`, overrides every default deadline.
    pub timeout: Option<Duration>,
    /// `--system-roots`: also trust the machine's CA store.
    pub system_roots: bool,
    /// `--strict-airgap`: a resolver that answers public names fails.
    pub strict_airgap: bool,
    /// `--send-test-mail`: really send one message through each relay.
    pub send_test_mail: bool,
    /// `--write-probe`: write (and remove) throwaway data to prove write access.
    pub write_probe: bool,
    /// `--s3-benchmark`: measure the storage against the vendor's requirements.
    pub s3_benchmark: bool,
    /// Run the static egress checks (`egress`, `check`).
    pub egress: bool,
    /// `--probe-internet`: also try to reach the public targets (implies `egress`).
    pub probe_internet: bool,
    /// Run no service probe (`egress` alone).
    pub no_services: bool,
}

/// The validated plan every probe runs from.
#[derive(Debug, Clone)]
pub struct Perimeter {
    /// The configuration files read, for the report's `inputs`.
    pub sources: Vec<PathBuf>,
    /// perimeter.yml `severity:`: per-code re-grading, before the command
    /// line's `--warn`/`--fail`/`--allow`.
    pub severity: std::collections::BTreeMap<crate::finding::Code, crate::finding::Status>,
    pub ca_bundle: Option<PathBuf>,
    pub system_roots: bool,
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// `allowed_networks` was written in perimeter.yml (`[]` included);
    /// otherwise [`DEFAULT_PERIMETER`] applies.
    pub allowed_networks_set: bool,
    pub deadlines: Deadlines,
    pub expiry_warning_days: u32,
    pub strict_airgap: bool,
    pub send_test_mail: bool,
    pub dns: DnsPlan,
    pub ntp: NtpPlan,
    pub smtp: Vec<SmtpPlan>,
    pub git: Option<GitPlan>,
    pub registry: Option<RegistryPlan>,
    pub s3: Option<S3Plan>,
    /// The cluster's hosts and flow profile (perimeter.yml `flows:` or the
    /// vendor's inventory).
    pub flows: Option<FlowsPlan>,
    pub write_probe: bool,
    pub s3_benchmark: bool,
    /// Findings about the configuration itself (placeholders, targets
    /// outside the perimeter, unreadable secrets).
    pub findings: Vec<Finding>,
    /// Addresses the vendor's file declares that no probe of this run
    /// contacts (nodes, the Kubernetes manager): each must still be inside
    /// `allowed_networks`. (where, address)
    pub declared: Vec<(String, IpAddr)>,
    /// Run the service probes (DNS, NTP, SMTP, Git, registry, S3).
    pub run_services: bool,
    pub egress: EgressPlan,
    /// The platform's certificate (Traefik's), from a 1.0.0 vendor file.
    pub platform_cert: Option<PlatformCertPlan>,
}

/// The certificate the platform will serve, as the vendor's installer
/// reads it (`TRAEFIK_PUBKEY`, `TRAEFIK_PRIVKEY`), and the names it must
/// cover.
#[derive(Debug, Clone)]
pub struct PlatformCertPlan {
    /// `global.host`, `global.delivery_host`, `global.alternative_hosts`.
    pub hosts: Vec<String>,
    /// PEM certificate (and chain), when set.
    pub cert_pem: Option<String>,
    /// PEM private key, when set.
    pub key_pem: Option<Secret>,
}

/// The proof of the air gap (`egress`, and part of `check`).
#[derive(Debug, Clone)]
pub struct EgressPlan {
    /// Run the static checks.
    pub enabled: bool,
    /// Every endpoint the configuration names, as written (before targets
    /// outside the perimeter are dropped from the probes).
    pub endpoints: Vec<Endpoint>,
    /// Proxy settings of the environment and of the vendor's file.
    pub proxies: Vec<proxy::ProxyGroup>,
    /// `--probe-internet`: the only switch that lets the tool contact an
    /// address outside `allowed_networks`, and then only the targets below.
    pub probe_internet: bool,
    pub internet_names: Vec<String>,
    pub internet_addresses: Vec<SocketAddr>,
    pub ntp_pool: Vec<SocketAddr>,
    pub deadline: Duration,
}

impl Default for EgressPlan {
    fn default() -> Self {
        let addrs = |list: &[&str], port: u16| {
            list.iter()
                .map(|a| SocketAddr::new(a.parse().expect("built-in address"), port))
                .collect()
        };
        EgressPlan {
            enabled: false,
            endpoints: Vec::new(),
            proxies: Vec::new(),
            probe_internet: false,
            internet_names: DEFAULT_INTERNET_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            internet_addresses: addrs(DEFAULT_INTERNET_ADDRESSES, 443),
            ntp_pool: addrs(DEFAULT_NTP_POOL, 123),
            deadline: DEFAULT_EGRESS_DEADLINE,
        }
    }
}

/// A service the configuration names, for the static egress check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// `dns server`, `ntp server`, `smtp relay`, `git`, `registry`, `s3`,
    /// `name` (a name the platform needs) or the vendor key of an address.
    pub what: String,
    /// A name or an address literal.
    pub host: String,
    /// How it is written (`https://git.corp/x.git`, `10.0.0.53:53`).
    pub shown: String,
    /// `http` or `https` for the HTTP services (they may go through a proxy).
    pub scheme: Option<&'static str>,
}

/// Deadlines of the three steps of every probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub connect: Duration,
    pub handshake: Duration,
    pub io: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            connect: DEFAULT_DEADLINE,
            handshake: DEFAULT_DEADLINE,
            io: DEFAULT_DEADLINE,
        }
    }
}

/// A host (name or address literal) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// `host`, `host:port`, `address`, `[v6]:port`, `v6`.
    pub fn parse(s: &str, default_port: u16) -> Result<Target, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty host".into());
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Target {
                host: ip.to_string(),
                port: default_port,
            });
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Target {
                host: sa.ip().to_string(),
                port: sa.port(),
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("`{s}`: `{p}` is not a port number"))?,
            ),
            None => (s, default_port),
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(format!("`{s}` is not a host name, address or host:port"));
        }
        Ok(Target {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DnsPlan {
    pub servers: Vec<SocketAddr>,
    pub expect: Vec<ExpectedName>,
    pub public_names: Vec<String>,
    pub transports: Vec<Transport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedName {
    pub name: String,
    /// Empty: any answer inside `allowed_networks`.
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct NtpPlan {
    pub servers: Vec<Target>,
    pub max_offset: Duration,
    pub max_stratum: u8,
}

impl Default for NtpPlan {
    fn default() -> Self {
        NtpPlan {
            servers: Vec::new(),
            max_offset: DEFAULT_MAX_OFFSET,
            max_stratum: DEFAULT_MAX_STRATUM,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpPlan {
    pub target: Target,
    /// Implicit TLS (465).
    pub tls: bool,
    /// STARTTLS required.
    pub starttls: bool,
    pub username: Option<String>,
    /// `None` when no password is configured or it could not be read (then a
    /// `config:unresolved-secret` finding says so).
    pub password: Option<Secret>,
    pub helo: String,
    pub mail_from: Option<String>,
    pub rcpt_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GitPlan {
    /// The repository URL, without credentials.
    pub url: String,
    pub branch: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct RegistryPlan {
    /// Base URL (`https://host[:port]`), no path.
    pub url: String,
    pub project: String,
    pub check_repo: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub images: Vec<ImageRef>,
}

#[derive(Debug, Clone)]
pub struct S3Plan {
    /// `https://host[:port]`, no path.
    pub endpoint: String,
    pub region: String,
    pub path_style: bool,
    pub buckets: Vec<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    /// Whether the write probe runs without `--write-probe`. True for
    /// perimeter.yml and the 0.0.1 file (write access to the one bucket is
    /// the point of that check, as documented); false for the 16 event
    /// buckets a 1.0.0 file implies, which are written only on request.
    pub always_write: bool,
    /// `Some(prefix)` when the buckets are the vendor's event buckets
    /// `<prefix>self-hosted-events-0` to `-f`.
    pub event_prefix: Option<String>,
}

/// An image the registry must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Repository path inside the registry (`sekoia/collector`).
    pub repo: String,
    pub tag: String,
    /// `sha256:<hex>` when the release says which manifest it must be.
    pub digest: Option<String>,
}

impl ImageRef {
    /// `repo:tag` or `repo:tag@sha256:<64 hex>`.
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let hex = d.strip_prefix("sha256:").unwrap_or("");
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("`{s}`: the digest must be sha256:<64 hex digits>"));
                }
                (n, Some(d.to_ascii_lowercase()))
            }
            None => (s, None),
        };
        let (repo, tag) = match name.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (name, "latest"),
        };
        if repo.is_empty()
            || !repo
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
        {
            return Err(format!("`{s}` is not an image reference (repo:tag)"));
        }
        Ok(ImageRef {
            repo: repo.to_string(),
            tag: tag.to_string(),
            digest,
        })
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repo, self.tag)?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `https://host[:port][/...]` or a bare `host[:port]` (meaning HTTPS) to a
/// base URL without path.
pub(crate) fn registry_url(u: &str) -> Result<String, String> {
    let u = u.trim();
    // `https://` alone must stay a scheme with no host, not the host `https:`.
    let u = if u.ends_with("://") {
        u
    } else {
        u.trim_end_matches('/')
    };
    let (scheme, rest) = match u.split_once("://") {
        Some((s @ ("https" | "http"), r)) => (s, r),
        Some((s, _)) => {
            return Err(format!(
                "`{s}://`: a registry is reached over https:// (or http://, to be reported)"
            ))
        }
        None => ("https", u),
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "`{u}` names no host (and must hold no credentials)"
        ));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The cluster's hosts, by role, and the profile their flows follow.
#[derive(Debug, Clone, Default)]
pub struct FlowsPlan {
    /// Profile name; `None` until resolved (then [`crate::profiles::DEFAULT`]).
    pub profile: Option<String>,
    /// Where the profile name came from, for messages.
    pub profile_source: String,
    pub load_balancer: Option<String>,
    pub orchestration: Option<String>,
    pub managers: Vec<String>,
    pub workers: Vec<String>,
    pub kube_api: Option<String>,
    pub max_clock_skew: Duration,
    pub deadline: Option<Duration>,
    /// Ports the load balancer publishes under another number
    /// (profile port -> published port).
    pub lb_ports: std::collections::BTreeMap<u16, u16>,
}

pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(1);

impl FlowsPlan {
    pub fn profile_name(&self) -> &str {
        self.profile.as_deref().unwrap_or(crate::profiles::DEFAULT)
    }
}

impl Perimeter {
    /// The flows section, created on first use.
    pub fn flows_mut(&mut self) -> &mut FlowsPlan {
        self.flows.get_or_insert_with(|| FlowsPlan {
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            ..FlowsPlan::default()
        })
    }

    /// True when `ip` is inside the perimeter (or no networks are set).
    pub fn allows(&self, ip: IpAddr) -> bool {
        allows(&self.allowed_networks, ip)
    }

    /// True when there is nothing to probe.
    pub fn is_empty(&self) -> bool {
        self.dns.servers.is_empty()
            && self.ntp.servers.is_empty()
            && self.smtp.is_empty()
            && self.git.is_none()
            && self.registry.is_none()
            && self.s3.is_none()
    }
}

pub fn allows(nets: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    nets.is_empty() || nets.iter().any(|n| n.contains(&ip))
}

/// Reads and validates the configuration into a plan.
pub fn load(opts: &LoadOptions) -> Result<Perimeter, InputError> {
    if opts.perimeter.is_none() && opts.sekoia.is_none() {
        return Err(InputError::Usage(
            "nothing to check: pass --config perimeter.yml and/or --sekoia-config config.yml (`airgap-verify init` writes a template)".into(),
        ));
    }
    let sekoia = match &opts.sekoia {
        Some(path) => Some((path.as_path(), read_text(path, "Sekoia configuration")?)),
        None => None,
    };
    let perimeter = match &opts.perimeter {
        Some(path) => Some((path.as_path(), read_text(path, "perimeter configuration")?)),
        None => None,
    };
    load_texts(
        opts,
        sekoia.as_ref().map(|(p, t)| (*p, t.as_str())),
        perimeter.as_ref().map(|(p, t)| (*p, t.as_str())),
    )
}

/// [`load`] once the files are read: the vendor's `config.yml` text and the
/// `perimeter.yml` text, each with the path it came from (for messages and
/// relative paths). Separate so the fuzzer can drive it without files.
pub(crate) fn load_texts(
    opts: &LoadOptions,
    sekoia: Option<(&Path, &str)>,
    perimeter: Option<(&Path, &str)>,
) -> Result<Perimeter, InputError> {
    let mut plan = Perimeter {
        severity: Default::default(),
        sources: Vec::new(),
        ca_bundle: None,
        system_roots: opts.system_roots,
        allowed_networks: Vec::new(),
        allowed_networks_set: false,
        deadlines: Deadlines::default(),
        expiry_warning_days: DEFAULT_EXPIRY_WARNING_DAYS,
        strict_airgap: opts.strict_airgap,
        send_test_mail: opts.send_test_mail,
        dns: DnsPlan {
            public_names: vec![DEFAULT_PUBLIC_NAME.into()],
            transports: vec![Transport::Udp, Transport::Tcp],
            ..DnsPlan::default()
        },
        ntp: NtpPlan::default(),
        smtp: Vec::new(),
        git: None,
        registry: None,
        s3: None,
        flows: None,
        write_probe: opts.write_probe,
        s3_benchmark: opts.s3_benchmark,
        findings: Vec::new(),
        declared: Vec::new(),
        run_services: !opts.no_services,
        egress: EgressPlan {
            enabled: opts.egress || opts.probe_internet,
            probe_internet: opts.probe_internet,
            ..EgressPlan::default()
        },
        platform_cert: None,
    };

    // The vendor's file first: perimeter.yml then adds and overrides.
    if let Some((path, text)) = sekoia {
        sekoia::apply(path, text, &mut plan)?;
        plan.sources.push(path.to_path_buf());
    }
    if let Some((path, text)) = perimeter {
        let parsed: file::PerimeterFile = parse_yaml(path, text)?;
        apply_file(path, text, parsed, &mut plan)?;
        plan.sources.push(path.to_path_buf());
    }

    if let Some(ca) = &opts.ca_bundle {
        plan.ca_bundle = Some(ca.clone());
    }
    if let Some(t) = opts.timeout {
        plan.deadlines = Deadlines {
            connect: t,
            handshake: t,
            io: t,
        };
        plan.egress.deadline = t;
    }
    // The environment's proxies come first: they apply to this very run.
    let env = proxy::from_env(|k| std::env::var(k).ok());
    if !env.proxies.is_empty() || env.no_proxy_source.is_some() {
        plan.egress.proxies.insert(0, env);
    }
    if !plan.allowed_networks_set {
        default_perimeter(&mut plan);
    }
    plan.egress.endpoints = endpoints(&plan);
    cluster_overlaps(&mut plan);
    if let Some(ca) = &plan.ca_bundle {
        // Parse it now: a bad bundle is a configuration error, not a TLS
        // failure on every probe.
        crate::trust::load_ca_bundle(ca)?;
    }
    drop_targets_outside(&mut plan);
    if opts.no_services {
        // `egress` alone uses no credential: a secret it cannot read does
        // not matter to it.
        plan.findings
            .retain(|f| f.code != Code::ConfigUnresolvedSecret);
    }
    if plan.is_empty() {
        plan.findings.push(Finding::new(
            Code::ConfigNothingToCheck,
            plan.sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            "the configuration names no DNS server, NTP server, SMTP relay, Git repository, OCI registry or S3 endpoint to probe",
        ));
    }
    Ok(plan)
}

fn read_text(path: &Path, what: &'static str) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|e| InputError::unreadable(path, what, e))
}

/// Parses YAML into `T`, with errors as `file:line:column: key.path: message`.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, InputError> {
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." || key == "?" {
            String::new()
        } else {
            key
        };
        let inner = e.into_inner();
        // serde_norway places errors raised inside a value at the start of
        // the enclosing mapping; find the value itself from the key path.
        let unknown_key = inner.to_string().contains("unknown field");
        let pos = locate(text, &key)
            .map(|(l, value_col, key_col)| (l, if unknown_key { key_col } else { value_col }))
            .or_else(|| inner.location().map(|l| (l.line(), l.column())))
            .map(|(l, c)| format!(":{l}:{c}"))
            .unwrap_or_default();
        let mut msg = inner.to_string();
        // serde_norway appends " at line L column C" and may prefix its own
        // (shorter) key path; our prefix says both.
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        if let Some((prefix, rest)) = msg.split_once(": ") {
            if !prefix.contains(' ') && !key.is_empty() && key.starts_with(prefix) {
                msg = rest.to_string();
            }
        }
        // A tab in the indentation is what YAML's "cannot start any token"
        // most often means; the parser points elsewhere and never says tab.
        if let Some((line, col)) = indentation_tab(text) {
            if msg.contains("cannot start any token") || msg.contains("mapping values") {
                return InputError::Config(format!(
                    "{}:{line}:{col}: a tab character indents this line; YAML indents with spaces only",
                    path.display()
                ));
            }
        }
        // serde reports a repeated key at the start of the enclosing
        // mapping; point at the repetition, and at the first one.
        if let Some(dup) = msg
            .strip_prefix("duplicate field `")
            .and_then(|r| r.strip_suffix('`'))
            .map(str::to_string)
        {
            let parent = key.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
            let parent = if key.ends_with(&dup) { parent } else { key.as_str() };
            if let Some((first, second, col)) = repeated_key(text, parent, &dup) {
                let at = if parent.is_empty() {
                    String::new()
                } else {
                    format!("{parent}: ")
                };
                return InputError::Config(format!(
                    "{}:{second}:{col}: {at}the key `{dup}` appears twice (first on line {first}); keep one",
                    path.display()
                ));
            }
        }
        let msg = plain_types(&msg);
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("{key}: ")
        };
        InputError::Config(format!(
            "{}{pos}: {key}{msg}; see docs/config.md",
            path.display()
        ))
    })
}

/// Line and column (1-based) of the first tab in a line's indentation.
fn indentation_tab(text: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, l)| {
        let lead = l.len() - l.trim_start_matches([' ', '\t']).len();
        l[..lead].find('\t').map(|c| (i + 1, c + 1))
    })
}

/// The first and second lines of `dup:` directly under the mapping at
/// `parent` (the top level when empty), and the second one's column.
fn repeated_key(text: &str, parent: &str, dup: &str) -> Option<(usize, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (start, depth) = if parent.is_empty() {
        (0, 0)
    } else {
        let (line, _, key_col) = locate(text, parent)?;
        // The children sit deeper than the parent's key, on the lines after.
        let child = lines.get(line..)?.iter().find(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })?;
        if indent(child) < key_col {
            return None;
        }
        (line, indent(child))
    };
    let mut hits = Vec::new();
    for (i, l) in lines.iter().enumerate().skip(start) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if i > start && indent(l) < depth {
            break;
        }
        if indent(l) == depth
            && (t.starts_with(&format!("{dup}:")) || t.starts_with(&format!("\"{dup}\":")))
        {
            hits.push((i + 1, depth + 1));
        }
    }
    match hits.as_slice() {
        [(first, _), (second, col), ..] => Some((*first, *second, *col)),
        _ => None,
    }
}

/// serde's messages name Rust types (`expected u16`, `expected struct
/// PerimeterFile`); a user wrote YAML, so say what YAML would fit.
fn plain_types(msg: &str) -> String {
    let mut out = msg.to_string();
    for (rust, plain) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping (key: value lines)"),
        ("expected unit", "expected no value"),
    ] {
        if let Some(i) = out.find(rust) {
            let end = i + rust.len();
            // Whole words only (`u8` must not match `u80`).
            if !out[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                out.replace_range(i..end, plain);
            }
        }
    }
    if let Some(i) = out.find("expected struct ") {
        let rest = &out[i + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let tail = rest[end..].to_string();
        out.replace_range(i.., &format!("expected a mapping (key: value lines){tail}"));
    }
    if let Some(i) = out.find("expected enum ") {
        let rest = &out[i + "expected enum ".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let tail = rest[end..].to_string();
        out.replace_range(i.., &format!("expected one of the documented values{tail}"));
    }
    out
}

/// Line, value column and key column (1-based) of the value at `key`
/// (`a.b[2].c`) in block or flow YAML, found from the text. Best effort: `None` when the layout is
/// too unusual, and the parser's own position is used instead.
pub fn locate(text: &str, key: &str) -> Option<(usize, usize, usize)> {
    if key.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    // (line index, column of the value's first character, indent of its
    // key, column of its key)
    let mut at: Option<(usize, usize, usize, usize)> = None;
    for seg in key.split('.') {
        // `name[3]` is item 3 of the sequence at `name`. A key that merely
        // contains a bracket (`max_offs[:` in a mistyped file) is a name:
        // slicing it as an index once panicked (found by fuzzing).
        let (name, idx) = match seg.strip_suffix(']').and_then(|s| s.rsplit_once('[')) {
            Some((name, n)) => match n.parse::<usize>() {
                Ok(n) => (name, Some(n)),
                Err(_) => (seg, None),
            },
            None => (seg, None),
        };
        if !name.is_empty() {
            let (start, parent) = match at {
                None => (0, None),
                Some((l, _, ind, _)) => (l, Some(ind)),
            };
            let mut found = None;
            for (i, l) in lines.iter().enumerate().skip(start) {
                let ind = indent(l);
                let body = l.trim_start().trim_start_matches("- ");
                let ind_key = l.len() - body.len();
                if i > start
                    && parent.is_some_and(|p| ind <= p)
                    && !l.trim().is_empty()
                    && !l.trim_start().starts_with('#')
                {
                    break;
                }
                // A flow mapping on the parent's line: `ntp: {servers: [a]}`.
                if i == start && parent.is_some() {
                    if let Some(c) = l
                        .find(&format!("{name}:"))
                        .filter(|&c| c > at.map_or(0, |a| a.1).saturating_sub(1))
                    {
                        let v = c + name.len() + 1;
                        let skip = l[v..].len() - l[v..].trim_start().len();
                        found = Some((i, v + skip, ind_key, c));
                        break;
                    }
                    continue;
                }
                if body.starts_with(&format!("{name}:")) && parent.is_none_or(|p| ind_key > p) {
                    let v = ind_key + name.len() + 1;
                    let rest = &l[v..];
                    let skip = rest.len() - rest.trim_start().len();
                    let col = if rest.trim().is_empty() {
                        ind_key
                    } else {
                        v + skip
                    };
                    found = Some((i, col, ind_key, ind_key));
                    break;
                }
            }
            at = Some(found?);
        }
        if let Some(n) = idx {
            let (l, col, ind, _) = at?;
            let line = lines[l];
            if line[col..].starts_with('[') {
                // Flow sequence: the n-th comma-separated element.
                let mut depth = 0;
                let mut item = 0;
                let mut start = col + 1;
                for (off, ch) in line[col..].char_indices() {
                    match ch {
                        '[' | '{' => depth += 1,
                        ']' | '}' => depth -= 1,
                        ',' if depth == 1 => {
                            item += 1;
                            start = col + off + 1;
                        }
                        _ => {}
                    }
                    if item == n {
                        let s = &line[start..];
                        let c = start + (s.len() - s.trim_start().len());
                        at = Some((l, c, ind, c));
                        break;
                    }
                }
                if item != n {
                    return None;
                }
            } else {
                // Block sequence: the n-th `- ` line below the key.
                let mut item = 0;
                let mut hit = None;
                for (i, ln) in lines.iter().enumerate().skip(l + 1) {
                    let t = ln.trim_start();
                    if t.is_empty() || t.starts_with('#') {
                        continue;
                    }
                    if indent(ln) < ind || (indent(ln) == ind && !t.starts_with("- ")) {
                        break;
                    }
                    if t.starts_with("- ") && indent(ln) >= ind {
                        if item == n {
                            hit = Some((i, indent(ln) + 2, indent(ln), indent(ln) + 2));
                            break;
                        }
                        item += 1;
                    }
                }
                at = Some(hit?);
            }
        }
    }
    at.map(|(l, c, _, k)| (l + 1, c + 1, k + 1))
}

fn relative_to(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

fn apply_file(
    path: &Path,
    text: &str,
    f: file::PerimeterFile,
    plan: &mut Perimeter,
) -> Result<(), InputError> {
    let at = |key: &str, msg: String| {
        // `smtp: {..}` is item 0 of a one-item list in the plan.
        let pos = locate(text, key)
            .or_else(|| locate(text, &key.replacen("[0]", "", 1)))
            .map(|(l, c, _)| format!(":{l}:{c}"))
            .unwrap_or_default();
        InputError::Config(format!(
            "{}{pos}: {key}: {msg}; see docs/config.md",
            path.display()
        ))
    };
    if let Some(ca) = f.ca_bundle {
        plan.ca_bundle = Some(relative_to(path, &ca));
    }
    if let Some(nets) = f.allowed_networks {
        plan.allowed_networks = nets.iter().map(|c| c.0).collect();
        plan.allowed_networks_set = true;
    }
    if let Some(e) = f.egress {
        if let Some(names) = e.internet_names {
            plan.egress.internet_names = names
                .iter()
                .map(|n| normalise_name(n).map_err(|m| at("egress.internet_names", m)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(a) = e.internet_addresses {
            plan.egress.internet_addresses = a.iter().map(|a| a.with_default_port(443)).collect();
        }
        if let Some(a) = e.ntp_pool {
            plan.egress.ntp_pool = a.iter().map(|a| a.with_default_port(123)).collect();
        }
        if let Some(d) = e.deadline {
            plan.egress.deadline = d;
        }
    }
    let t = f.timeouts;
    plan.deadlines = Deadlines {
        connect: t.connect.unwrap_or(plan.deadlines.connect),
        handshake: t.handshake.unwrap_or(plan.deadlines.handshake),
        io: t.io.unwrap_or(plan.deadlines.io),
    };
    if let Some(d) = f.tls_expiry_warning_days {
        plan.expiry_warning_days = d;
    }
    for (code, level) in f.severity.unwrap_or_default() {
        let key = format!("severity.{code}");
        let c = crate::finding::parse_code(&code).map_err(|m| at(&key, m))?;
        let st = crate::finding::parse_severity(&level).map_err(|m| at(&key, m))?;
        plan.severity.insert(c, st);
    }
    if let Some(dns) = f.dns {
        if !dns.servers.is_empty() {
            plan.dns.servers = dns.servers.iter().map(|s| s.0).collect();
        }
        // A name listed twice keeps its last entry, in the last entry's
        // place; indexed by name, since a linear search per name made
        // loading 200,000 names take minutes.
        let mut index: std::collections::HashMap<String, usize> = plan
            .dns
            .expect
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        let mut entries: Vec<Option<ExpectedName>> = std::mem::take(&mut plan.dns.expect)
            .into_iter()
            .map(Some)
            .collect();
        for e in dns.expect {
            let name = normalise_name(&e.name).map_err(|m| at("dns.expect.name", m))?;
            if let Some(old) = index.insert(name.clone(), entries.len()) {
                entries[old] = None;
            }
            entries.push(Some(ExpectedName {
                name,
                addresses: e.addresses,
            }));
        }
        plan.dns.expect = entries.into_iter().flatten().collect();
        if let Some(p) = dns.public_names {
            plan.dns.public_names = p
                .iter()
                .map(|n| normalise_name(n).map_err(|m| at("dns.public_names", m)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(t) = dns.transports {
            if t.is_empty() {
                return Err(at(
                    "dns.transports",
                    "is empty: list udp, tcp or both".into(),
                ));
            }
            plan.dns.transports = t;
        }
    }
    if let Some(ntp) = f.ntp {
        if !ntp.servers.is_empty() {
            plan.ntp.servers = ntp
                .servers
                .iter()
                .map(|s| Target::parse(s, 123).map_err(|m| at("ntp.servers", m)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(o) = ntp.max_offset {
            plan.ntp.max_offset = o;
        }
        if let Some(s) = ntp.max_stratum {
            if s == 0 || s > 15 {
                return Err(at(
                    "ntp.max_stratum",
                    format!("{s} is not a stratum (1 to 15)"),
                ));
            }
            plan.ntp.max_stratum = s;
        }
    }
    if let Some(g) = f.git {
        let secret = secret_ref(path, "password", g.password_env, g.password_file)
            .map_err(|m| at("git", m))?;
        let parts = split_userinfo(&g.url);
        let (url, _) = git_url(&parts.url).map_err(|m| at("git.url", m))?;
        let password = resolve_secret(&secret, &format!("{} git", path.display()), plan);
        let password = password_or_url(
            plan,
            secret.is_some(),
            password,
            parts.password,
            (
                format!("{} git.url", path.display()),
                "git.url",
                "password_env or password_file",
            ),
        );
        plan.git = Some(GitPlan {
            url,
            branch: g.branch.unwrap_or_else(|| "main".into()),
            username: g.username.or(parts.user),
            password,
        });
    }
    if let Some(r) = f.registry {
        let secret = secret_ref(path, "password", r.password_env, r.password_file)
            .map_err(|m| at("registry", m))?;
        let parts = split_userinfo(&r.url);
        let url = registry_url(&parts.url).map_err(|m| at("registry.url", m))?;
        let images = r
            .images
            .iter()
            .map(|i| ImageRef::parse(i).map_err(|m| at("registry.images", m)))
            .collect::<Result<_, _>>()?;
        let password = resolve_secret(&secret, &format!("{} registry", path.display()), plan);
        let password = password_or_url(
            plan,
            secret.is_some(),
            password,
            parts.password,
            (
                format!("{} registry.url", path.display()),
                "registry.url",
                "password_env or password_file",
            ),
        );
        plan.registry = Some(RegistryPlan {
            url,
            project: r.project.trim_matches('/').to_string(),
            check_repo: r.check_repo.unwrap_or_else(|| DEFAULT_CHECK_REPO.into()),
            username: r.username.or(parts.user),
            password,
            images,
        });
    }
    if let Some(s3) = f.s3 {
        if s3.access_key.is_some() && s3.access_key_env.is_some() {
            return Err(at(
                "s3",
                "set access_key or access_key_env, not both".into(),
            ));
        }
        let parts = split_userinfo(&s3.endpoint);
        if parts.password.is_some() {
            // An S3 endpoint carries no credentials: the keys are signed,
            // never sent, so whatever was written there is dropped.
            plan.findings.push(credential_in_url(
                format!("{} s3.endpoint", path.display()),
                "s3.endpoint",
                false,
                "access_key and secret_key_env or secret_key_file",
            ));
        }
        let endpoint = registry_url(&parts.url).map_err(|m| at("s3.endpoint", m))?;
        let secret = secret_ref(path, "secret_key", s3.secret_key_env, s3.secret_key_file)
            .map_err(|m| at("s3", m))?;
        let access_key = match s3.access_key_env {
            Some(var) => resolve_secret(
                &Some(SecretRef::Env(var)),
                &format!("{} s3.access_key_env", path.display()),
                plan,
            )
            .map(|s| s.expose().to_string()),
            None => s3.access_key,
        };
        let secret_key = resolve_secret(&secret, &format!("{} s3", path.display()), plan);
        plan.s3 = Some(S3Plan {
            endpoint,
            region: s3.region.unwrap_or_else(|| DEFAULT_S3_REGION.into()),
            path_style: s3.path_style.unwrap_or(true),
            buckets: s3.buckets,
            access_key,
            secret_key,
            always_write: true,
            event_prefix: None,
        });
    }
    if let Some(fl) = f.flows {
        if let Some(p) = &fl.profile {
            crate::profiles::get(p).map_err(|m| at("flows.profile", m))?;
        }
        let check_host = |key: &str, h: &str| -> Result<(), InputError> {
            Target::parse(h, 1).map(|_| ()).map_err(|m| at(key, m))
        };
        for (key, h) in [
            ("flows.load_balancer", &fl.load_balancer),
            ("flows.orchestration", &fl.orchestration),
            ("flows.kube_api", &fl.kube_api),
        ] {
            if let Some(h) = h {
                check_host(key, h)?;
            }
        }
        for (key, list) in [
            ("flows.managers", &fl.managers),
            ("flows.workers", &fl.workers),
        ] {
            for (i, h) in list.iter().enumerate() {
                check_host(&format!("{key}[{i}]"), h)?;
            }
        }
        let flows = plan.flows_mut();
        if let Some(p) = fl.profile {
            flows.profile = Some(p);
            flows.profile_source = format!("{} flows.profile", path.display());
        }
        // perimeter.yml overrides the vendor's inventory where it speaks.
        if fl.load_balancer.is_some() {
            flows.load_balancer = fl.load_balancer;
        }
        if fl.orchestration.is_some() {
            flows.orchestration = fl.orchestration;
        }
        if !fl.managers.is_empty() {
            flows.managers = fl.managers;
        }
        if !fl.workers.is_empty() {
            flows.workers = fl.workers;
        }
        if fl.kube_api.is_some() {
            flows.kube_api = fl.kube_api;
        }
        if let Some(d) = fl.max_clock_skew {
            flows.max_clock_skew = d;
        }
        if fl.deadline.is_some() {
            flows.deadline = fl.deadline;
        }
        flows.lb_ports.extend(fl.lb_ports);
    }
    let smtp = f.smtp.into_vec();
    if !smtp.is_empty() {
        plan.smtp.clear();
        for (i, s) in smtp.into_iter().enumerate() {
            let key = format!("smtp[{i}]");
            let secret = secret_ref(path, "password", s.password_env, s.password_file)
                .map_err(|m| at(&key, m))?;
            let port = s.port.unwrap_or(if s.tls {
                465
            } else if s.username.is_some() {
                587
            } else {
                25
            });
            let target = Target::parse(&s.host, port).map_err(|m| at(&format!("{key}.host"), m))?;
            let target = Target { port, ..target };
            // A value that could end an SMTP command line would let the
            // configuration inject commands: refuse it here, with its key.
            for (field, value) in [
                ("helo", &s.helo),
                ("mail_from", &s.mail_from),
                ("rcpt_to", &s.rcpt_to),
            ] {
                if let Some(v) = value {
                    if v.is_empty()
                        || v.chars()
                            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
                    {
                        return Err(at(
                            &format!("{key}.{field}"),
                            format!("`{}` must be a single word without spaces, control characters or <>", v.escape_debug()),
                        ));
                    }
                }
            }
            let password = resolve_secret(&secret, &format!("{} {key}", path.display()), plan);
            plan.smtp.push(SmtpPlan {
                target,
                tls: s.tls,
                starttls: s.starttls.unwrap_or(!s.tls),
                username: s.username,
                password,
                helo: s.helo.unwrap_or_else(|| DEFAULT_HELO.into()),
                mail_from: s.mail_from,
                rcpt_to: s.rcpt_to,
            });
        }
    }
    Ok(())
}

/// A URL with its user part split off: the URL as it may be reported, the
/// user, and the password as a [`Secret`] (never in the URL again).
pub(crate) struct UrlUserinfo {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// Splits `scheme://user:password@host/...` (or a bare `user:password@host`)
/// before the URL goes anywhere a report, an error or a log line could show
/// it. Why here and not later: every message that names a URL (errors
/// included) is built from what this returns.
pub(crate) fn split_userinfo(u: &str) -> UrlUserinfo {
    let u = u.trim();
    let (prefix, rest) = match u.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), u),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, pw)) => (user, Some(pw)),
                None => (userinfo, None),
            };
            UrlUserinfo {
                url: format!("{prefix}{host}{path}"),
                user: (!user.is_empty()).then(|| percent_decode(user)),
                password: password
                    .filter(|p| !p.is_empty())
                    .map(|p| Secret::from_config(percent_decode(p))),
            }
        }
        None => UrlUserinfo {
            url: u.to_string(),
            user: None,
            password: None,
        },
    }
}

/// `%XX` escapes of a URL's user part (`p%40ss` is `p@ss`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password to use when a URL may carry one: the configured password,
/// or, only when none is configured (`configured` false), the URL's. A
/// password in the URL is always a `config:credential-in-url` warning on
/// `target`, naming `field` and how to give it by reference (`by_ref`).
pub(crate) fn password_or_url(
    plan: &mut Perimeter,
    configured: bool,
    password: Option<Secret>,
    in_url: Option<Secret>,
    (target, field, by_ref): (String, &str, &str),
) -> Option<Secret> {
    let Some(pw) = in_url else {
        return password;
    };
    plan.findings
        .push(credential_in_url(target, field, !configured, by_ref));
    if configured {
        password
    } else {
        Some(pw)
    }
}

/// The warning for a password written in a URL (`config:credential-in-url`).
/// Names the setting, never the value.
pub(crate) fn credential_in_url(target: String, field: &str, used: bool, by_ref: &str) -> Finding {
    Finding::new(
        Code::ConfigCredentialInUrl,
        target,
        format!(
            "{field} holds a password; it was removed from the URL and is never printed, and {}: give it by reference ({by_ref}) instead",
            if used {
                "it is used for this run"
            } else {
                "it is ignored"
            }
        ),
    )
    .evidence("setting", field)
}

/// Checks a repository URL; returns it without any user part, and the user
/// it named. A password must have been split off first ([`split_userinfo`]).
pub(crate) fn git_url(u: &str) -> Result<(String, Option<String>), String> {
    let u = u.trim();
    let (scheme, rest) = u
        .split_once("://")
        .ok_or_else(|| format!("`{u}` is not a URL (write https://host/path/repo.git)"))?;
    if scheme != "https" && scheme != "http" {
        return Err(format!(
            "`{scheme}://`: only https:// (and, to be reported, http://) Git URLs can be probed"
        ));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            if userinfo.contains(':') {
                return Err("the URL holds a password: use password_env or password_file".into());
            }
            (Some(userinfo.to_string()), host)
        }
        None => (None, authority),
    };
    if host.is_empty() || path.is_empty() {
        return Err(format!("`{u}` names no host or no repository path"));
    }
    Ok((
        format!("{scheme}://{host}/{}", path.trim_end_matches('/')),
        user,
    ))
}

/// `x_env` / `x_file` as written: at most one, a file relative to the
/// configuration file.
fn secret_ref(
    config: &Path,
    name: &str,
    env: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<SecretRef>, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err(format!("set {name}_env or {name}_file, not both")),
        (Some(v), None) => Ok(Some(SecretRef::Env(v))),
        (None, Some(p)) => Ok(Some(SecretRef::File(relative_to(config, &p)))),
        (None, None) => Ok(None),
    }
}

/// Reads a secret; a failure becomes a finding that names the reference.
pub(crate) fn resolve_secret(
    r: &Option<SecretRef>,
    target: &str,
    plan: &mut Perimeter,
) -> Option<Secret> {
    let r = r.as_ref()?;
    match r.resolve() {
        Ok(s) => Some(s),
        Err(msg) => {
            plan.findings.push(
                Finding::new(
                    Code::ConfigUnresolvedSecret,
                    target,
                    format!("the password could not be read: {msg}; the probe runs without it"),
                )
                .evidence("reference", r.describe()),
            );
            None
        }
    }
}

pub(crate) fn normalise_name(n: &str) -> Result<String, String> {
    let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
    if n.is_empty()
        || n.len() > 253
        || !n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    {
        return Err(format!("`{n}` is not a DNS name"));
    }
    Ok(n)
}

/// Every endpoint the plan names, before targets outside the perimeter are
/// dropped: the static egress check judges them all.
fn endpoints(plan: &Perimeter) -> Vec<Endpoint> {
    let mut out = Vec::new();
    // A set beside the list: `dns.expect` may hold hundreds of thousands of
    // names, and a linear search per name made loading quadratic.
    let mut seen = std::collections::HashSet::new();
    let mut add = |what: &str, host: String, shown: String, scheme: Option<&'static str>| {
        let e = Endpoint {
            what: what.to_string(),
            host,
            shown,
            scheme,
        };
        if seen.insert(e.clone()) {
            out.push(e);
        }
    };
    for s in &plan.dns.servers {
        add("dns server", s.ip().to_string(), s.to_string(), None);
    }
    for t in &plan.ntp.servers {
        add("ntp server", t.host.clone(), t.to_string(), None);
    }
    for s in &plan.smtp {
        add(
            "smtp relay",
            s.target.host.clone(),
            s.target.to_string(),
            None,
        );
    }
    let scheme = |u: &str| {
        if u.starts_with("http://") {
            Some("http")
        } else {
            Some("https")
        }
    };
    let urls = [
        ("git", plan.git.as_ref().map(|g| g.url.clone())),
        ("registry", plan.registry.as_ref().map(|r| r.url.clone())),
        ("s3", plan.s3.as_ref().map(|s| s.endpoint.clone())),
    ];
    for (what, url) in urls {
        if let Some(url) = url {
            if let Some(host) = sekoia::url_host(&url) {
                add(what, host, url.clone(), scheme(&url));
            }
        }
    }
    for e in &plan.dns.expect {
        add("name", e.name.clone(), e.name.clone(), None);
    }
    for (where_, addr) in &plan.declared {
        add(where_, addr.to_string(), addr.to_string(), None);
    }
    out
}

/// Sets the default perimeter, and says so in the report: an answer or a
/// target outside the private and local ranges is outside an air-gapped
/// network whatever else it is (the archive's reference scan judges
/// addresses the same way).
fn default_perimeter(plan: &mut Perimeter) {
    plan.allowed_networks = DEFAULT_PERIMETER
        .iter()
        .map(|n| n.parse().expect("built-in CIDR"))
        .collect();
    plan.findings.push(
        Finding::new(
            Code::ConfigDefaultPerimeter,
            "allowed_networks",
            format!(
                "allowed_networks is not set: the perimeter is taken to be the private and local ranges ({}); an address outside them fails",
                DEFAULT_PERIMETER.join(", ")
            ),
        )
        .evidence("networks", DEFAULT_PERIMETER.to_vec()),
    );
}

/// Every address the configuration names (services, the vendor's hosts and
/// nodes, the flows' hosts) and every network of `allowed_networks` that
/// lies inside the cluster's pod or service network fails: the nodes would
/// send that traffic into the cluster. (A perimeter such as 10.0.0.0/8 that
/// contains the cluster networks is fine: they are inside it.)
fn cluster_overlaps(plan: &mut Perimeter) {
    let mut named: Vec<(String, IpAddr)> = plan
        .egress
        .endpoints
        .iter()
        .filter_map(|e| Some((format!("{} {}", e.what, e.shown), e.host.parse().ok()?)))
        .collect();
    if let Some(fl) = &plan.flows {
        let roles = [
            (
                "flows.load_balancer",
                fl.load_balancer.iter().collect::<Vec<_>>(),
            ),
            ("flows.orchestration", fl.orchestration.iter().collect()),
            ("flows.managers", fl.managers.iter().collect()),
            ("flows.workers", fl.workers.iter().collect()),
            ("flows.kube_api", fl.kube_api.iter().collect()),
        ];
        for (what, hosts) in roles {
            for h in hosts {
                if let Ok(ip) = h.parse::<IpAddr>() {
                    named.push((format!("{what} {ip}"), ip));
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut findings = Vec::new();
    for (what, ip) in named {
        let Some((net, label)) = cluster_network_of(ip) else {
            continue;
        };
        // The vendor's nodes are also the flows' hosts: name each address once.
        if !seen.insert(ip) {
            continue;
        }
        findings.push(
            Finding::new(
                Code::ConfigClusterNetworkOverlap,
                what.clone(),
                format!("{what}: {ip} lies in the cluster's {label} {net}; the nodes would route it into the cluster, never to it"),
            )
            .evidence("address", ip.to_string())
            .evidence("cluster_network", net),
        );
    }
    for n in &plan.allowed_networks {
        for (net, label) in CLUSTER_NETWORKS {
            let c: ipnet::IpNet = net.parse().expect("built-in CIDR");
            if c.contains(n) {
                findings.push(
                    Finding::new(
                        Code::ConfigClusterNetworkOverlap,
                        format!("allowed_networks {n}"),
                        format!("allowed_networks {n} lies in the cluster's {label} {net}: a network of the perimeter there is unreachable from the nodes"),
                    )
                    .evidence("network", n.to_string())
                    .evidence("cluster_network", *net),
                );
            }
        }
    }
    plan.findings.extend(findings);
}

/// Drops literal-address targets outside `allowed_networks`, with a finding.
fn drop_targets_outside(plan: &mut Perimeter) {
    let nets = plan.allowed_networks.clone();
    let mut findings = Vec::new();
    let mut outside = |what: &str, addr: IpAddr, target: String| {
        if allows(&nets, addr) {
            return true;
        }
        findings.push(
            Finding::new(
                Code::ConfigOutsidePerimeter,
                target,
                format!("{what} {addr} is outside allowed_networks; it is not contacted"),
            )
            .evidence("address", addr.to_string()),
        );
        false
    };
    plan.dns
        .servers
        .retain(|s| outside("DNS server", s.ip(), s.to_string()));
    plan.ntp.servers.retain(|t| {
        t.ip()
            .is_none_or(|ip| outside("NTP server", ip, t.to_string()))
    });
    plan.smtp.retain(|s| {
        s.target
            .ip()
            .is_none_or(|ip| outside("SMTP relay", ip, s.target.to_string()))
    });
    for (where_, addr) in std::mem::take(&mut plan.declared) {
        outside("address", addr, where_);
    }
    plan.findings.extend(findings);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("ntp.Example.org.", 123).unwrap(),
            Target {
                host: "ntp.example.org".into(),
                port: 123
            }
        );
        assert_eq!(Target::parse("10.0.0.1:1123", 123).unwrap().port, 1123);
        assert_eq!(Target::parse("[fd00::1]:5", 123).unwrap().host, "fd00::1");
        assert_eq!(Target::parse("fd00::1", 123).unwrap().port, 123);
        assert!(Target::parse("bad host", 1).is_err());
        assert!(Target::parse("h:99999", 1).is_err());
    }

    #[test]
    fn cluster_networks_are_the_vendors_pod_and_service_ranges() {
        let of = |a: &str| cluster_network_of(a.parse().unwrap()).map(|(n, _)| n);
        assert_eq!(of("10.42.0.1"), Some("10.42.0.0/16"));
        assert_eq!(of("10.43.255.254"), Some("10.43.0.0/16"));
        assert_eq!(of("::ffff:10.43.0.10"), Some("10.43.0.0/16"));
        assert_eq!(of("10.41.255.255"), None);
        assert_eq!(of("10.44.0.0"), None);
        assert_eq!(of("fd00::1"), None);
    }

    #[test]
    fn mapped_v6_is_checked_as_v4() {
        let nets = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(allows(&nets, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!allows(&nets, "8.8.8.8".parse().unwrap()));
        assert!(allows(&[], "8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let text = "dns:\n  servers: [10.0.0.1]\nntp:\n  max_offset: soon\n";
        let e = parse_yaml::<file::PerimeterFile>(Path::new("p.yml"), text).unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("p.yml:4:15: ntp.max_offset: `soon`"), "{m}");
        assert!(m.contains("not a duration"), "{m}");

        let e = parse_yaml::<file::PerimeterFile>(Path::new("p.yml"), "ntp:\n  max_ofset: 1s\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.yml:2:3: ntp.max_ofset: unknown field `max_ofset`"),
            "{e}"
        );
    }

    #[test]
    fn locate_takes_a_key_with_a_stray_bracket_as_a_name() {
        // Fuzzing crash: the unknown key `max_offs[` made locate slice
        // `seg[9..8]`.
        let text = "ntp:\n  servers: [a]\n  max_offs[: 250ms\n";
        assert_eq!(locate(text, "ntp.max_offs["), Some((3, 14, 3)));
        assert_eq!(locate(text, "ntp.x[y]"), None);
        assert_eq!(locate(text, "ntp.servers[0]"), Some((2, 13, 13)));
        let crash = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/fuzz-regressions/config/crash-6bd243390c2730081f582c6f9c4b77c343cc43ab"
        ))
        .expect("regression input");
        let text = std::str::from_utf8(&crash[1..]).expect("utf-8");
        let err =
            parse_yaml::<file::PerimeterFile>(Path::new("p.yml"), text).expect_err("unknown key");
        assert!(err.to_string().contains("max_offs["), "{err}");
    }

    #[test]
    fn locate_finds_block_and_flow_values() {
        let t = "a: 1\nntp:\n  servers: [x, y]\n  max_offset: soon\ndns:\n  expect:\n    - name: a\n    - name: b\n      addresses: [1]\n";
        assert_eq!(locate(t, "ntp.max_offset"), Some((4, 15, 3)));
        assert_eq!(locate(t, "ntp.servers[1]"), Some((3, 16, 16)));
        assert_eq!(locate(t, "dns.expect[1].addresses"), Some((9, 18, 7)));
        assert_eq!(locate(t, "dns.expect[1]"), Some((8, 7, 7)));
        assert_eq!(locate(t, "smtp"), None);
        assert_eq!(
            locate("ntp: {servers: [a], max_offset: x}\n", "ntp.max_offset"),
            Some((1, 33, 21))
        );
    }

    #[test]
    fn template_parses() {
        let f: file::PerimeterFile = parse_yaml(Path::new("t.yml"), file::TEMPLATE).unwrap();
        assert_eq!(f.allowed_networks.map(|n| n.len()), Some(2));
        assert_eq!(f.smtp.into_vec().len(), 1);
        for (section, present) in [
            ("git", f.git.is_some()),
            ("registry", f.registry.is_some()),
            ("s3", f.s3.is_some()),
            ("flows", f.flows.is_some()),
            ("egress", f.egress.is_some()),
            ("dns", f.dns.is_some()),
            ("ntp", f.ntp.is_some()),
        ] {
            assert!(present, "the template has no `{section}` section");
        }
    }

    fn yaml_error(text: &str) -> String {
        match parse_yaml::<file::PerimeterFile>(Path::new("p.yml"), text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{text:?} parsed"),
        }
    }

    #[test]
    fn a_tab_in_the_indentation_is_named_on_its_line() {
        let e = yaml_error("dns:\n  servers: [10.0.0.53]\n\tpublic_names: [example.com]\n");
        assert!(e.starts_with("p.yml:3:1: a tab character"), "{e}");
        assert!(e.contains("spaces only"), "{e}");
        let e = yaml_error("ntp:\n  \tservers: [a]\n");
        assert!(e.starts_with("p.yml:2:3: a tab"), "{e}");
    }

    #[test]
    fn a_repeated_key_is_named_where_it_repeats() {
        let e = yaml_error(
            "dns:\n  servers: [10.0.0.53]\nntp:\n  servers: [a]\ndns:\n  servers: [b]\n",
        );
        assert!(
            e.starts_with("p.yml:5:1: the key `dns` appears twice (first on line 1)"),
            "{e}"
        );
        let e = yaml_error("# c\nntp:\n  servers: [a]\n  max_offset: 1s\n  servers: [b]\n");
        assert!(
            e.starts_with("p.yml:5:3: ntp: the key `servers` appears twice (first on line 3)"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_no_rust_type() {
        for text in [
            "- a\n",
            "smtp:\n  host: a\n  port: 99999\n",
            "ntp:\n  servers: [a]\n  max_stratum: 300\n",
            "tls_expiry_warning_days: -1\n",
            "dns: 5\n",
            "dns:\n  servers: 5\n",
            "flows:\n  lb_ports: {80: 70000}\n",
        ] {
            let e = yaml_error(text);
            for rust in [
                "u8",
                "u16",
                "u32",
                "u64",
                "i64",
                "usize",
                "struct ",
                "enum ",
                "Perimeter",
                "File`",
            ] {
                assert!(!e.contains(rust), "{text:?}: {e}");
            }
            assert!(e.starts_with("p.yml:"), "{e}");
        }
    }

    /// Every key of the JSON Schema (every key the tool reads) appears in
    /// the template, set or commented out, under its section.
    #[test]
    fn template_shows_every_key_of_the_schema() {
        fn keys(
            node: &serde_json::Value,
            defs: &serde_json::Value,
            path: &str,
            out: &mut Vec<String>,
        ) {
            let node = match node.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => &defs[r.rsplit('/').next().unwrap()],
                None => node,
            };
            for k in ["anyOf", "oneOf", "allOf"] {
                for n in node.get(k).and_then(|v| v.as_array()).into_iter().flatten() {
                    keys(n, defs, path, out);
                }
            }
            if let Some(items) = node.get("items").filter(|i| i.is_object()) {
                keys(items, defs, path, out);
            }
            for (k, v) in node
                .get("properties")
                .and_then(|p| p.as_object())
                .into_iter()
                .flatten()
            {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push(p.clone());
                keys(v, defs, &p, out);
            }
        }
        let schema: serde_json::Value = serde_json::from_str(&file::json_schema()).unwrap();
        let defs = schema
            .get("$defs")
            .or(schema.get("definitions"))
            .cloned()
            .unwrap_or_default();
        let mut all = Vec::new();
        keys(&schema, &defs, "", &mut all);
        assert!(all.len() > 60, "{all:?}");
        let t = file::TEMPLATE;
        let mut missing = Vec::new();
        for key in &all {
            let (section, leaf) = key.split_once('.').unwrap_or(("", key));
            let leaf = leaf.rsplit('.').next().unwrap();
            // The section's block: from `section:` (set or commented) to the
            // next top-level line.
            // The section's block: from `section:` to the next top-level key.
            let block: Vec<&str> = if section.is_empty() {
                t.lines().collect()
            } else {
                t.lines()
                    .skip_while(|l| !l.starts_with(&format!("{section}:")))
                    .enumerate()
                    .take_while(|(i, l)| {
                        *i == 0 || !l.starts_with(|c: char| c.is_ascii_alphabetic())
                    })
                    .map(|(_, l)| l)
                    .collect()
            };
            assert!(!block.is_empty(), "no `{section}:` in the template");
            let shown = block.iter().any(|l| {
                let l = l
                    .trim_start()
                    .trim_start_matches('#')
                    .trim_start()
                    .trim_start_matches("- ");
                l.starts_with(&format!("{leaf}:"))
            });
            if !shown {
                missing.push(key.clone());
            }
        }
        assert!(
            missing.is_empty(),
            "keys missing from the template: {missing:?}"
        );
    }
}
