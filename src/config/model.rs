//! The validated perimeter: the types every probe runs from (one plan per
//! service, targets, deadlines, image references, the cluster's hosts),
//! their defaults, and the perimeter's networks. Built only by
//! [`super::load`]; nothing here reads a file or resolves a secret.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::file::Transport;
use super::proxy;
use super::secret::Secret;
use crate::finding::Finding;

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
