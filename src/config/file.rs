//! `perimeter.yml` as written by the user: the serde types, their JSON
//! Schema, and the template `airgap-verify init` writes.
//!
//! Guarantees:
//! - unknown keys are errors (a misspelt `max_ofset` must not silently fall
//!   back to a default);
//! - every value is checked while it is parsed (addresses, CIDRs, durations,
//!   ports), so each error carries the file, line and column of the value;
//! - the types hold secret *references* only (see [`super::secret`]).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// perimeter.yml: the services inside the closed network that airgap-verify
/// probes, and the rules they must meet.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "airgap-verify perimeter configuration")]
pub struct PerimeterFile {
    /// PEM file with the CA certificate(s) that issued the perimeter's
    /// server certificates. TLS trusts these and nothing else. A relative
    /// path is relative to this file. `--ca-bundle` overrides it.
    pub ca_bundle: Option<PathBuf>,
    /// CIDRs inside the perimeter. Every target and every DNS answer must
    /// fall inside one of them; a target outside is reported and never
    /// contacted. Absent: the private and local ranges (RFC 1918, RFC 6598,
    /// loopback, link-local, ULA). `[]`: no restriction (not recommended).
    #[schemars(with = "Option<Vec<CidrText>>")]
    pub allowed_networks: Option<Vec<Cidr>>,
    /// Default deadlines of every probe step. `--timeout` overrides all three.
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    /// A verified certificate that expires within this many days is a
    /// warning (`tls:expiring-soon`). Default 30.
    pub tls_expiry_warning_days: Option<u32>,
    /// DNS servers of the perimeter and the answers they must give.
    pub dns: Option<DnsFile>,
    /// NTP servers of the perimeter.
    pub ntp: Option<NtpFile>,
    /// SMTP relay(s): one mapping, or a list of them.
    #[serde(default)]
    pub smtp: OneOrMany<SmtpFile>,
    /// The Git repository the installer pushes its stacks to.
    pub git: Option<GitFile>,
    /// The OCI registry the installer pushes the release's images to.
    pub registry: Option<RegistryFile>,
    /// The S3-compatible storage of the platform.
    pub s3: Option<S3File>,
    /// The hosts of the cluster, for `airgap-verify flows` and `listen`.
    pub flows: Option<FlowsFile>,
    /// The proof of the air gap (`airgap-verify egress`, and `check`): the
    /// public targets the active checks of `--probe-internet` try to reach.
    pub egress: Option<EgressFile>,
    /// Per-code severity, as cargo-deny does it: `{refs:external: fail,
    /// tls:expiring-soon: allow}`. Values: `fail`, `warn`, `allow` (pass).
    /// Only problems are re-graded (a pass stays a pass); `--warn`,
    /// `--fail` and `--allow` on the command line win over this map.
    pub severity: Option<std::collections::BTreeMap<String, String>>,
}

/// The cluster's hosts and the flow profile their firewall must follow.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowsFile {
    /// Flow profile (`sekoia-0.0.1`, `sekoia-1.0.0`; see docs/flows.md).
    /// Default: from the vendor's config.yml `version`, else sekoia-1.0.0.
    pub profile: Option<String>,
    /// The load balancer's address or name (what clients connect to).
    pub load_balancer: Option<String>,
    /// The host that runs the installer.
    pub orchestration: Option<String>,
    /// Kubernetes manager (control-plane) nodes.
    #[serde(default)]
    pub managers: Vec<String>,
    /// Kubernetes worker nodes (the load balancer's backends).
    #[serde(default)]
    pub workers: Vec<String>,
    /// The Kubernetes API address, when it is not a manager's own
    /// (`global.kube_manager_host`): also tested on 6443.
    pub kube_api: Option<String>,
    /// Largest clock difference allowed between this host and a node's
    /// responder. Default 1s.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub max_clock_skew: Option<Duration>,
    /// Deadline of each flow (connect and challenge). Default: the connect
    /// deadline.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub deadline: Option<Duration>,
    /// When the load balancer publishes a profile port under another
    /// number: `{80: 8080, 443: 8443}`.
    #[serde(default)]
    pub lb_ports: std::collections::BTreeMap<u16, u16>,
}

/// The public targets of `--probe-internet`. Nothing here is contacted
/// without that flag; each list replaces its built-in default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressFile {
    /// Public names asked of every configured DNS server; an address in the
    /// answer is `egress:dns-answered`. Default: `[example.com,
    /// www.google.com, cloudflare.com]`. `[]` disables this check.
    pub internet_names: Option<Vec<String>>,
    /// Public addresses whose TCP port 443 (or `address:port`) must not
    /// accept a connection. Default: `[1.1.1.1, 8.8.8.8, 9.9.9.9]`. `[]`
    /// disables this check.
    #[schemars(with = "Option<Vec<String>>")]
    pub internet_addresses: Option<Vec<PublicAddr>>,
    /// Public NTP server addresses (`address` or `address:port`, port 123)
    /// that must not answer an SNTP request. Default: `[162.159.200.1,
    /// 216.239.35.0]` (time.cloudflare.com, time.google.com). `[]` disables
    /// this check.
    #[schemars(with = "Option<Vec<String>>")]
    pub ntp_pool: Option<Vec<PublicAddr>>,
    /// Deadline of each active check. Default 2s; `--timeout` overrides it.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub deadline: Option<Duration>,
}

/// An address with an optional port (`1.1.1.1`, `1.1.1.1:8443`,
/// `[2606:4700::1111]:443`), written as an address: a name would have to be
/// resolved, and resolving public names is itself one of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicAddr {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl PublicAddr {
    pub fn with_default_port(self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(port))
    }
}

impl<'de> Deserialize<'de> for PublicAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_public_addr(&s).map_err(serde::de::Error::custom)
    }
}

pub fn parse_public_addr(s: &str) -> Result<PublicAddr, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(PublicAddr { ip, port: None });
    }
    s.parse::<SocketAddr>()
        .map(|sa| PublicAddr {
            ip: sa.ip(),
            port: Some(sa.port()),
        })
        .map_err(|_| {
            format!("`{s}` is not an IP address: write the public target as an address (1.1.1.1 or 1.1.1.1:443), not a name")
        })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    /// `https://s3.corp[:port]`.
    pub endpoint: String,
    /// Signing region. Default `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket`), what most S3-compatible
    /// servers expect. Default true.
    pub path_style: Option<bool>,
    /// Buckets to check. Empty: list the account's buckets and run the write
    /// probe in a temporary bucket that is created and removed.
    #[serde(default)]
    pub buckets: Vec<String>,
    /// The access key id (not a secret on its own), or...
    pub access_key: Option<String>,
    /// ...the environment variable holding it.
    pub access_key_env: Option<String>,
    /// Environment variable holding the secret key.
    pub secret_key_env: Option<String>,
    /// File whose first line is the secret key.
    pub secret_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// `https://registry.corp` (or `host[:port]`, meaning HTTPS).
    pub url: String,
    /// Namespace the release's images are pushed under (`sekoia`).
    pub project: String,
    /// Repository inside the project used by the push and write probes.
    /// Default `airgap-verify-check`.
    pub check_repo: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Images that must be in the registry: `repo:tag`, or
    /// `repo:tag@sha256:<digest>` to also require that exact manifest.
    #[serde(default)]
    pub images: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitFile {
    /// HTTPS URL of the repository (`https://git.corp/sekoia/stacks.git`).
    pub url: String,
    /// Branch that must exist. Default `main`.
    pub branch: Option<String>,
    /// User for push access (HTTP Basic).
    pub username: Option<String>,
    /// Environment variable holding the password or token.
    pub password_env: Option<String>,
    /// File whose first line is the password or token.
    pub password_file: Option<PathBuf>,
}

/// Deadlines, as durations (`500ms`, `3s`, `1m`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    /// TCP connect (and, for UDP probes, the wait for the reply). Default 3s.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub connect: Option<Duration>,
    /// TLS handshake. Default 3s.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub handshake: Option<Duration>,
    /// Each read or write once connected. Default 3s.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub io: Option<Duration>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsFile {
    /// Servers to query, as IP addresses (`10.0.0.53`) or `address:port`.
    /// Names of every other target are resolved through the first of them
    /// that answers; the machine's resolver is used only when this list is empty.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub servers: Vec<DnsServer>,
    /// Names the platform needs and the addresses they must resolve to.
    #[serde(default)]
    pub expect: Vec<ExpectFile>,
    /// Public names that an air-gapped resolver must NOT resolve.
    /// Default: `[example.com]`. An empty list disables the check.
    pub public_names: Option<Vec<String>>,
    /// Transports to query each server over. Default: both.
    pub transports: Option<Vec<Transport>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFile {
    /// A fully qualified name.
    pub name: String,
    /// The exact set of IPv4/IPv6 addresses expected. Omit to accept any
    /// answer inside `allowed_networks`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NtpFile {
    /// Servers, as `host`, `address` or `host:port` (port 123 by default).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Largest acceptable offset between this machine and a server.
    /// Default 500ms (the platform needs less than 1 s between nodes).
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub max_offset: Option<Duration>,
    /// Largest acceptable stratum. Default 10.
    #[schemars(range(min = 1, max = 15))]
    pub max_stratum: Option<u8>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    /// Name or address of the relay.
    pub host: String,
    /// Port. Default: 465 with `tls: true`, else 587 when a user is set,
    /// else 25.
    pub port: Option<u16>,
    /// Implicit TLS from the first byte (port 465).
    #[serde(default)]
    pub tls: bool,
    /// STARTTLS is required. Default: true unless `tls` is set.
    pub starttls: Option<bool>,
    /// SASL user for AUTH PLAIN/LOGIN.
    pub username: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File whose first line is the password (relative to this file).
    pub password_file: Option<PathBuf>,
    /// Name sent with EHLO. Default `airgap-verify.invalid`.
    pub helo: Option<String>,
    /// Sender for the MAIL FROM / RCPT TO check (then RSET: nothing is sent
    /// unless `--send-test-mail`).
    pub mail_from: Option<String>,
    /// Recipient for the MAIL FROM / RCPT TO check.
    pub rcpt_to: Option<String>,
}

/// `key: {..}` or `key: [{..}, {..}]`. Not `#[serde(untagged)]`: that
/// replaces every inner error (with its key and line) by "did not match any
/// variant".
#[derive(Debug)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping or a list of mappings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(OneOrMany::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(a))
                    .map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = g.subschema_for::<T>();
        let many = g.subschema_for::<Vec<T>>();
        schemars::json_schema!({ "anyOf": [one, many] })
    }
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A CIDR (`10.0.0.0/8`); a bare address means a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

/// An IPv4 address with an optional prefix length 0 to 32.
pub const IPV4_CIDR_PATTERN: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(/([0-9]|[12][0-9]|3[0-2]))?$";
/// An IPv6 address (hex groups and colons, possibly an IPv4 tail) with an
/// optional prefix length 0 to 128. Looser than the parser about the
/// address itself, exact about the prefix.
pub const IPV6_CIDR_PATTERN: &str = r"^[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){1,7}(:[0-9.]{7,15})?(/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))?$";

/// How a [`Cidr`] is written, for the JSON Schema: an editor that validates
/// with it rejects what the tool rejects (`10.0.0.0/33`, `300.1.1.1`).
pub struct CidrText;

impl JsonSchema for CidrText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A CIDR (10.0.0.0/8, fd00::/8) or a single address.",
            "anyOf": [
                { "pattern": IPV4_CIDR_PATTERN },
                { "pattern": IPV6_CIDR_PATTERN }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_cidr(&s).map(Cidr).map_err(serde::de::Error::custom)
    }
}

pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
        format!("`{s}` is not a CIDR (write it as 10.0.0.0/8, 192.168.1.10 or fd00::/8)")
    })
}

/// A DNS server: an IP address with an optional port (53 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsServer(pub SocketAddr);

impl<'de> Deserialize<'de> for DnsServer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_dns_server(&s)
            .map(DnsServer)
            .map_err(serde::de::Error::custom)
    }
}

pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("`{s}` is not an IP address: DNS servers are written as addresses (10.0.0.53 or 10.0.0.53:5353), since their names could only be resolved by themselves")
    })
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `500ms`, `3s`, `1m30s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 && secs < 86_400.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("`{s}` is zero: a deadline must be positive")),
        Err(_) => Err(format!(
            "`{s}` is not a duration (write 500ms, 3s or 1m30s)"
        )),
    }
}

/// The JSON Schema of perimeter.yml, pretty-printed (docs/perimeter.schema.json).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PerimeterFile);
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    s.push('\n');
    s
}

/// The commented template `airgap-verify init` writes.
pub const TEMPLATE: &str = include_str!("template.yml");

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> serde_json::Value {
        serde_json::from_str(&json_schema()).unwrap()
    }

    /// The schema's CIDR patterns and the tool's parser agree, both ways.
    #[test]
    fn the_schema_rejects_the_cidrs_the_tool_rejects() {
        let s = schema();
        let items = &s["properties"]["allowed_networks"]["items"];
        let def = match items["$ref"].as_str() {
            Some(r) => s["$defs"][r.rsplit('/').next().unwrap()].clone(),
            None => items.clone(),
        };
        let patterns: Vec<regex::Regex> = def["anyOf"]
            .as_array()
            .expect("anyOf patterns")
            .iter()
            .map(|p| regex::Regex::new(p["pattern"].as_str().unwrap()).unwrap())
            .collect();
        let schema_ok = |v: &str| patterns.iter().any(|p| p.is_match(v));
        for v in [
            "10.0.0.0/8",
            "10.0.0.0/32",
            "192.168.1.10",
            "0.0.0.0/0",
            "255.255.255.255",
            "fd00::/8",
            "::1",
            "::/0",
            "2001:db8::/128",
            "::ffff:10.0.0.1/128",
            "10.0.0.0/33",
            "10.0.0.0/",
            "300.1.1.1",
            "10.0.0",
            "10.0.0.0/8/8",
            "fd00::/129",
            "corp.internal",
            "",
            "10.0.0.0/-1",
        ] {
            assert_eq!(
                parse_cidr(v).is_ok(),
                schema_ok(v),
                "{v:?}: tool {} but schema {}",
                parse_cidr(v).is_ok(),
                schema_ok(v)
            );
        }
    }

    #[test]
    fn the_schema_bounds_the_stratum_as_the_tool_does() {
        let s = schema();
        let st = &s["$defs"]["NtpFile"]["properties"]["max_stratum"];
        assert_eq!(st["minimum"], 1, "{st}");
        assert_eq!(st["maximum"], 15, "{st}");
    }
}
