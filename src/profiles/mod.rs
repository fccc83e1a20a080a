//! Flow matrices as data: one YAML file per profile, compiled into the
//! binary.
//!
//! Guarantees:
//! - the binary, `airgap-verify flows --list-profiles` and `docs/flows.md`
//!   all come from the same YAML files (a test fails when the doc differs);
//! - every profile parses and every flow is well formed (a unit test loads
//!   them all): a role, protocol or expectation the code does not know is a
//!   build-time test failure, never a runtime surprise.

use serde::Deserialize;

/// The profiles shipped in the binary: (name, YAML).
pub const BUILTIN: &[(&str, &str)] = &[
    ("sekoia-0.0.1", include_str!("sekoia-0.0.1.yml")),
    ("sekoia-1.0.0", include_str!("sekoia-1.0.0.yml")),
];

/// The profile used when neither `--profile`, `flows.profile` nor the
/// vendor's config.yml names one.
pub const DEFAULT: &str = "sekoia-1.0.0";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub title: String,
    pub flows: Vec<Flow>,
}

impl Profile {
    /// The PROXY expectation of the load balancer's flows for `port`.
    pub fn proxy_expectation(&self, port: u16) -> Option<ProxyExpect> {
        self.backend_flow(port).and_then(|f| f.proxy)
    }

    /// The load balancer's flow to its backends that carries `port`.
    pub fn backend_flow(&self, port: u16) -> Option<&Flow> {
        self.flows
            .iter()
            .find(|f| f.from.contains(&Role::Lb) && f.ports.contains(&port))
    }
}

/// Where a flow starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Log sources, forwarders and users, outside the cluster.
    Client,
    /// The load balancer in front of the workers.
    Lb,
    /// The host that runs the installer.
    Orchestration,
    /// Every Kubernetes node (managers and workers).
    Node,
    Manager,
    Worker,
    /// One of the perimeter's services, as configured in perimeter.yml.
    Service(ServiceKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    Dns,
    Ntp,
    Smtp,
    Git,
    Registry,
    S3,
}

impl Role {
    pub fn name(self) -> String {
        match self {
            Role::Client => "client".into(),
            Role::Lb => "lb".into(),
            Role::Orchestration => "orchestration".into(),
            Role::Node => "node".into(),
            Role::Manager => "manager".into(),
            Role::Worker => "worker".into(),
            Role::Service(k) => format!("service:{}", k.name()),
        }
    }

    /// Whether a host of role `self` is one of `other` (a manager is a node).
    pub fn is(self, other: Role) -> bool {
        self == other
            || (other == Role::Node && matches!(self, Role::Manager | Role::Worker))
            || (matches!(other, Role::Manager | Role::Worker) && self == Role::Node)
    }
}

impl ServiceKind {
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Dns => "dns",
            ServiceKind::Ntp => "ntp",
            ServiceKind::Smtp => "smtp",
            ServiceKind::Git => "git",
            ServiceKind::Registry => "registry",
            ServiceKind::S3 => "s3",
        }
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "client" => Role::Client,
            "lb" => Role::Lb,
            "orchestration" => Role::Orchestration,
            "node" => Role::Node,
            "manager" => Role::Manager,
            "worker" => Role::Worker,
            "service:dns" => Role::Service(ServiceKind::Dns),
            "service:ntp" => Role::Service(ServiceKind::Ntp),
            "service:smtp" => Role::Service(ServiceKind::Smtp),
            "service:git" => Role::Service(ServiceKind::Git),
            "service:registry" => Role::Service(ServiceKind::Registry),
            "service:s3" => Role::Service(ServiceKind::S3),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown role `{other}` (client, lb, orchestration, node, manager, worker, service:KIND)"
                )))
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// What the firewall must do with the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Open,
    Blocked,
}

impl Expect {
    pub fn name(self) -> &'static str {
        match self {
            Expect::Open => "open",
            Expect::Blocked => "blocked",
        }
    }
}

/// The PROXY protocol header the load balancer must (not) add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyExpect {
    /// A PROXY v1 (text) header.
    V1,
    /// A PROXY v2 (binary) header.
    V2,
    /// No header: the backend sees the client's bytes first.
    None,
    /// Either is accepted.
    Any,
}

/// The service check that follows a successful connect to the load
/// balancer, once the platform answers there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceCheck {
    HttpRedirect,
    Tls,
    SyslogTls,
    Relp,
}

impl ServiceCheck {
    pub fn name(self) -> &'static str {
        match self {
            ServiceCheck::HttpRedirect => "http-redirect",
            ServiceCheck::Tls => "tls",
            ServiceCheck::SyslogTls => "syslog-tls",
            ServiceCheck::Relp => "relp",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub id: String,
    pub from: Vec<Role>,
    pub to: Role,
    pub proto: Proto,
    #[serde(default)]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub expect: Expect,
    pub proxy: Option<ProxyExpect>,
    pub check: Option<ServiceCheck>,
    /// The vendor's wording: "Flow: Usage".
    pub purpose: String,
    /// The vendor's table the flow comes from (a heading of docs/flows.md).
    pub section: Option<String>,
}

impl Flow {
    /// The ports joined by `sep`, or `-` for a flow without ports (ICMP).
    pub fn ports_text(&self, sep: &str) -> String {
        if self.ports.is_empty() {
            return "-".into();
        }
        self.ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// Whether a host of `role` starts this flow.
    pub fn starts_at(&self, role: Role) -> bool {
        self.from.iter().any(|&r| role.is(r) || r.is(role))
    }
}

/// A profile by name.
pub fn get(name: &str) -> Result<Profile, String> {
    let (_, yaml) = BUILTIN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        format!(
            "unknown flow profile `{name}` (known: {})",
            BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    parse(yaml)
}

pub fn parse(yaml: &str) -> Result<Profile, String> {
    let p: Profile = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
    for f in &p.flows {
        if f.proto != Proto::Icmp && f.ports.is_empty() {
            return Err(format!("flow {}: no ports", f.id));
        }
        if f.from.is_empty() {
            return Err(format!("flow {}: no source role", f.id));
        }
    }
    Ok(p)
}

/// The profile for a vendor release version (`1.0.0` -> `sekoia-1.0.0`):
/// the newest profile not newer than the release.
pub fn for_sekoia_version(version: &str) -> &'static str {
    let v = parse_version(version);
    let mut best = "sekoia-0.0.1";
    for (name, _) in BUILTIN {
        if let Some(pv) = name.strip_prefix("sekoia-") {
            if parse_version(pv) <= v && parse_version(pv) >= parse_version(&best[7..]) {
                best = name;
            }
        }
    }
    best
}

pub(crate) fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut it = v
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// docs/flows.md, generated from the built-in profiles.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Flow profiles\n\n\
         The network flows `airgap-verify flows` tests, per profile. This file is generated by\n\
         `airgap-verify flows --profiles-markdown` from the YAML compiled into the binary\n\
         (`src/profiles/`); do not edit it by hand.\n\n\
         Roles: `client` (log sources, forwarders, users), `lb` (the load balancer), `orchestration`\n\
         (the host that runs the installer), `node` (every Kubernetes node), `manager` and `worker`\n\
         (the inventory's groups), `service:KIND` (the perimeter's services from perimeter.yml, tested\n\
         on their configured ports). `expect: blocked` flows must get no answer. `proxy` is the PROXY\n\
         protocol header the load balancer adds on its way to the workers (`any`: either is accepted).\n\n\
         The `sekoia-1.0.0` profile follows the vendor's page \"Network requirements\" of 1.0.0 row by\n\
         row, under the page's table headings, with the page's words (\"Flow: Usage\") in the first\n\
         column. Its rows that no host here can test (the Kubernetes API load balancer, release storage\n\
         on the internet, the Debian mirror, the conditional flows) are listed in the profile's YAML.\n\
         A blocked flow is answered by the nodes' responder (`airgap-verify listen`), so an answer seen\n\
         from a client proves the firewall lets it through.\n",
    );
    for (name, _) in BUILTIN {
        let p = get(name).expect("built-in profiles parse (unit test)");
        out.push_str(&format!("\n## `{}`: {}\n", p.name, p.title));
        let mut section = None;
        for (i, f) in p.flows.iter().enumerate() {
            // A new table at each of the vendor's tables.
            if i == 0 || f.section != section {
                section = f.section.clone();
                if let Some(s) = &section {
                    out.push_str(&format!("\n### {s}\n"));
                }
                out.push_str(
                    "\n| flow: usage | from | to | proto | ports | expect | proxy | check | id |\n",
                );
                out.push_str("|---|---|---|---|---|---|---|---|---|\n");
            }
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                f.purpose.replace('|', "\\|"),
                f.from
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                f.to.name(),
                f.proto.name(),
                f.ports_text(", "),
                f.expect.name(),
                match f.proxy {
                    Some(ProxyExpect::V1) => "v1",
                    Some(ProxyExpect::V2) => "v2",
                    Some(ProxyExpect::None) => "none",
                    Some(ProxyExpect::Any) => "any",
                    None => "-",
                },
                f.check.map(|c| c.name()).unwrap_or("-"),
                f.id,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses() {
        for (name, _) in BUILTIN {
            let p = get(name).unwrap();
            assert_eq!(&p.name, name);
            assert!(p.flows.len() >= 15, "{name}: {} flows", p.flows.len());
            let mut ids: Vec<_> = p.flows.iter().map(|f| &f.id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), p.flows.len(), "{name}: duplicate flow id");
        }
        assert!(get(DEFAULT).is_ok());
    }

    #[test]
    fn profiles_differ_where_the_vendor_says() {
        let old = get("sekoia-0.0.1").unwrap();
        let new = get("sekoia-1.0.0").unwrap();
        let web = |p: &Profile| {
            p.flows
                .iter()
                .find(|f| f.id == "lb-workers-web")
                .unwrap()
                .proxy
        };
        assert_eq!(web(&old), Some(ProxyExpect::V1));
        assert_eq!(web(&new), Some(ProxyExpect::None));
        assert!(new.flows.iter().any(|f| f.proto == Proto::Icmp));
        assert!(new
            .flows
            .iter()
            .any(|f| f.ports.contains(&10901) && f.expect == Expect::Blocked));
        assert!(!old.flows.iter().any(|f| f.ports.contains(&10250)));
    }

    /// The 1.0.0 page: the cluster ports between all nodes, whatever their
    /// role, and the perimeter's blocked ports, TCP and UDP.
    #[test]
    fn the_1_0_0_profile_follows_the_vendors_table() {
        let p = get("sekoia-1.0.0").unwrap();
        let all_to_all = |port: u16| {
            p.flows.iter().any(|f| {
                f.from == [Role::Node]
                    && f.to == Role::Node
                    && f.proto == Proto::Tcp
                    && f.ports.contains(&port)
            })
        };
        for port in [
            6443, 2379, 2380, 10250, 4240, 4250, 10514, 11514, 9100, 9962, 9963, 9965,
        ] {
            assert!(all_to_all(port), "{port} between all nodes");
        }
        for proto in [Proto::Tcp, Proto::Udp] {
            let blocked: Vec<u16> = p
                .flows
                .iter()
                .filter(|f| f.proto == proto && f.expect == Expect::Blocked)
                .flat_map(|f| f.ports.clone())
                .collect();
            for port in [30011, 30176, 30177, 30000, 31000, 32767] {
                assert!(blocked.contains(&port), "{port}/{} blocked", proto.name());
            }
            assert!(blocked
                .iter()
                .all(|p| (30000..=32767).contains(p) || *p == 10901));
        }
        assert!(p.flows.iter().all(|f| f.section.is_some()));
        // SMTP and S3 are used by the nodes only.
        for id in ["out-smtp", "out-s3"] {
            let f = p.flows.iter().find(|f| f.id == id).unwrap();
            assert_eq!(f.from, [Role::Node], "{id}");
        }
    }

    #[test]
    fn versions_pick_the_newest_profile_not_newer_than_the_release() {
        assert_eq!(for_sekoia_version("1.0.0"), "sekoia-1.0.0");
        assert_eq!(for_sekoia_version("1.2.3"), "sekoia-1.0.0");
        assert_eq!(for_sekoia_version("0.0.1"), "sekoia-0.0.1");
        assert_eq!(for_sekoia_version("0.9.0"), "sekoia-0.0.1");
    }

    #[test]
    fn bad_profiles_are_refused() {
        assert!(parse("name: x\ntitle: t\nflows: [{id: a, from: [moon], to: lb, proto: tcp, ports: [1], purpose: p}]").is_err());
        assert!(parse(
            "name: x\ntitle: t\nflows: [{id: a, from: [client], to: lb, proto: tcp, purpose: p}]"
        )
        .is_err());
    }
}
