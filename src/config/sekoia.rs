//! The vendor's own `config.yml` (Sekoia Self-Hosted), read directly.
//!
//! Both documented generations are understood:
//! - **1.0.0**: `global.{host,delivery_host,kube_manager_host,forward_dns}`,
//!   `global.platform_storage.*`, `utils.git.repo_url`, `utils.oci_registry.*`,
//!   `modules.platform_configuration.config.email.smtp.*` (with `tls` and
//!   `starttls` as the strings `"True"`/`"False"`), secrets as `${env.VAR}`;
//! - **0.0.1**: `modules.helm_install.forward_dns`, `utils.oci_registry.url`,
//!   `modules.k3s_install.registry_url`, secrets as `env.VAR`.
//!
//! Guarantees:
//! - every target the probes of this release use is derived from the file;
//! - the placeholder defaults of the vendor's template, which its own check
//!   accepts, are failing findings (`config:placeholder`) naming the key;
//!   the value is quoted only when the key is not a secret;
//! - a secret written in clear in the file is used but never printed.

use std::path::Path;

use serde_norway::Value;

use super::{normalise_name, resolve_secret, ExpectedName, Perimeter, SecretRef, SmtpPlan, Target};
use crate::error::InputError;
use crate::finding::{Code, Finding};

/// Which generation of the file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    V1_0_0,
    V0_0_1,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::V1_0_0 => "1.0.0",
            Generation::V0_0_1 => "0.0.1",
        }
    }
}

/// Looks up `a.b.c`.
pub(crate) fn get<'a>(root: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(root, |v, k| v.as_mapping()?.get(k))
}

/// A scalar as text (`port: 587` and `port: "587"` are the same).
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn get_text(root: &Value, dotted: &str) -> Option<String> {
    get(root, dotted).and_then(text)
}

/// The vendor's booleans: `"True"`/`"False"` strings, or YAML booleans.
fn flag(root: &Value, dotted: &str, file: &Path) -> Result<Option<bool>, InputError> {
    let Some(v) = get(root, dotted) else {
        return Ok(None);
    };
    match text(v).as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("true") | Some("yes") => Ok(Some(true)),
        Some("false") | Some("no") => Ok(Some(false)),
        _ => Err(InputError::Config(format!(
            "{}: {dotted}: expected \"True\" or \"False\"; see docs/config.md",
            file.display()
        ))),
    }
}

/// Where a 1.0.0 file sets the event buckets' prefix, and its default.
pub const BUCKET_PREFIX_KEY: &str =
    "modules.platform_configuration.config.storage-manager.s3_bucket_prefix";
pub const DEFAULT_BUCKET_PREFIX: &str = "exalog-";

/// The 16 event buckets of a 1.0.0 platform, `<prefix>self-hosted-events-0`
/// to `-f` (deployment prerequisites, "Storage"). The names must be ones S3
/// accepts (3 to 63 lowercase letters, digits, dots and hyphens, starting
/// with a letter or digit), or no bucket could ever be created.
pub fn event_buckets(prefix: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = (0..16)
        .map(|i| format!("{prefix}self-hosted-events-{i:x}"))
        .collect();
    let first = &names[0];
    let valid = first.len() <= 63
        && first
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && first.as_bytes()[0].is_ascii_alphanumeric()
        && !first.contains("..");
    if !valid {
        return Err(format!(
            "the prefix `{prefix}` gives bucket names such as `{first}`, which S3 refuses (lowercase letters, digits, dots and hyphens only, starting with a letter or digit, at most 63 characters)"
        ));
    }
    Ok(names)
}

/// A secret as the vendor writes it: `${env.VAR}` (1.0.0), `env.VAR`
/// (0.0.1), or the value in clear.
pub enum VendorSecret {
    Ref(SecretRef),
    Clear(String),
}

pub fn parse_secret(s: &str) -> VendorSecret {
    let t = s.trim();
    let inner = t
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(t);
    if let Some(var) = inner.strip_prefix("env.") {
        if !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return VendorSecret::Ref(SecretRef::Env(var.to_string()));
        }
    }
    VendorSecret::Clear(s.to_string())
}

/// The secret at `key`, resolved: a reference is read (a failure becomes a
/// finding), a value in clear is used as is.
fn vendor_secret(
    root: &Value,
    key: &str,
    file: &str,
    plan: &mut Perimeter,
) -> Option<super::Secret> {
    match parse_secret(&get_text(root, key)?) {
        VendorSecret::Ref(r) => resolve_secret(&Some(r), &format!("{file} {key}"), plan),
        VendorSecret::Clear(v) => Some(super::Secret::from_config(v)),
    }
}

/// Applies the vendor's file to the plan.
pub fn apply(path: &Path, text_in: &str, plan: &mut Perimeter) -> Result<(), InputError> {
    let mut root: Value = super::parse_yaml(path, text_in)?;
    if !root.is_mapping() {
        return Err(InputError::Config(format!(
            "{}: not a Sekoia config.yml (expected a mapping with `global`, `utils` or `modules`); see docs/config.md",
            path.display()
        )));
    }
    let generation = if get(&root, "global").is_some() {
        Generation::V1_0_0
    } else if get(&root, "modules").is_some() || get(&root, "utils").is_some() {
        Generation::V0_0_1
    } else {
        return Err(InputError::Config(format!(
            "{}: not a Sekoia config.yml: none of `global`, `utils`, `modules` is present; see docs/config.md",
            path.display()
        )));
    };
    let file = path.display().to_string();
    // The release the file declares: `version` (0.0.1), or
    // `global.version.platform.version` (1.0.0, `v1.0.0`).
    let version =
        get_text(&root, "version").or_else(|| get_text(&root, "global.version.platform.version"));
    // The bare `env.VAR` syntax is refused by 1.0.0; a `global` file that
    // declares an older release keeps it.
    let refuse_bare = generation == Generation::V1_0_0
        && version
            .as_deref()
            .is_none_or(|v| crate::profiles::parse_version(v) >= (1, 0, 0));
    super::vendor_env::resolve(
        &mut root,
        &super::vendor_env::Resolve {
            file: &file,
            refuse_bare,
            lookup: &|var| std::env::var(var).ok(),
        },
        plan,
    );
    let root = root;
    scan_placeholders(&root, &file, "", plan);
    if refuse_bare {
        super::vendor_keys::check(&root, text_in, &file, plan);
        platform_cert(&root, &file, plan);
    }

    // DNS: the forwarders the platform is told to use.
    let fwd_key = match generation {
        Generation::V1_0_0 => "global.forward_dns",
        Generation::V0_0_1 => "modules.helm_install.forward_dns",
    };
    if let Some(v) = get(&root, fwd_key).or_else(|| get(&root, "global.forward_dns")) {
        let items: Vec<String> = match v {
            Value::Sequence(s) => s.iter().filter_map(text).collect(),
            other => text(other)
                .map(|t| {
                    t.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        };
        for item in items {
            let sa = super::file::parse_dns_server(&item).map_err(|m| {
                InputError::Config(format!("{file}: {fwd_key}: {m}; see docs/config.md"))
            })?;
            if !plan.dns.servers.contains(&sa) {
                plan.dns.servers.push(sa);
            }
        }
    }

    // Every host name the platform will use must resolve inside the
    // perimeter; every address it declares must be inside it. Placeholders
    // are reported above and not probed: nothing answers to them.
    let mut names = Vec::new();
    let mut host_of = |key: &str, host: String, plan: &mut Perimeter| {
        if placeholder_reason(&host).is_some() {
            return;
        }
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => plan.declared.push((format!("{file} {key}"), ip)),
            Err(_) => names.push(host),
        }
    };
    for key in [
        "global.host",
        "global.delivery_host",
        "global.alternative_hosts",
        "global.kube_manager_host",
        "utils.oci_registry.host",
    ] {
        if let Some(h) = get_text(&root, key) {
            host_of(key, h, plan);
        }
    }
    for key in [
        "utils.git.repo_url",
        "global.platform_storage.endpoint",
        "utils.oci_registry.url",
        "modules.k3s_install.registry_url",
        "modules.quickwit.s3.endpoint",
    ] {
        if let Some(h) = get_text(&root, key).and_then(|u| url_host(&u)) {
            host_of(key, h, plan);
        }
    }
    for key in [
        "utils.ansible.inventory.managers",
        "utils.ansible.inventory.workers",
    ] {
        if let Some(Value::Sequence(items)) = get(&root, key) {
            for (i, h) in items.iter().filter_map(text).enumerate() {
                host_of(&format!("{key}[{i}]"), h, plan);
            }
        }
    }

    // The cluster's inventory and release, for the flows. Placeholders are
    // reported above and left out.
    let usable = |h: &String| placeholder_reason(h).is_none();
    let list = |key: &str| -> Vec<String> {
        match get(&root, key) {
            Some(Value::Sequence(items)) => items.iter().filter_map(text).filter(usable).collect(),
            _ => Vec::new(),
        }
    };
    let managers = list("utils.ansible.inventory.managers");
    let workers = list("utils.ansible.inventory.workers");
    let kube_api = get_text(&root, "global.kube_manager_host").filter(usable);
    let lb = get_text(&root, "global.host").filter(usable);
    if !managers.is_empty() || !workers.is_empty() || version.is_some() {
        let flows = plan.flows_mut();
        flows.managers = managers;
        flows.workers = workers;
        flows.kube_api = kube_api;
        // The UI's name resolves to the load balancer.
        flows.load_balancer = lb;
        if let Some(v) = version {
            flows.profile = Some(crate::profiles::for_sekoia_version(&v).to_string());
            flows.profile_source = format!("{file} version {v}");
        }
    }

    // SMTP.
    let smtp_key = "modules.platform_configuration.config.email.smtp";
    if let Some(host) = get_text(&root, &format!("{smtp_key}.host")) {
        let tls = flag(&root, &format!("{smtp_key}.tls"), path)?.unwrap_or(false);
        let starttls = flag(&root, &format!("{smtp_key}.starttls"), path)?.unwrap_or(!tls);
        let username = get_text(&root, &format!("{smtp_key}.user"));
        let port = match get_text(&root, &format!("{smtp_key}.port")) {
            Some(p) => p.parse::<u16>().map_err(|_| {
                InputError::Config(format!(
                    "{file}: {smtp_key}.port: `{p}` is not a port number; see docs/config.md"
                ))
            })?,
            None if tls => 465,
            None if username.is_some() => 587,
            None => 25,
        };
        let target = Target::parse(&host, port).map_err(|m| {
            InputError::Config(format!("{file}: {smtp_key}.host: {m}; see docs/config.md"))
        })?;
        let placeholder = placeholder_reason(&target.host).is_some();
        let password = vendor_secret(&root, &format!("{smtp_key}.password"), &file, plan);
        // A placeholder relay is reported above; probing it is pointless.
        if !placeholder {
            host_of_smtp(&target, &mut names);
            plan.smtp.push(SmtpPlan {
                target: Target { port, ..target },
                tls,
                starttls,
                username,
                password,
                helo: super::DEFAULT_HELO.into(),
                mail_from: None,
                rcpt_to: None,
            });
        }
    }

    // Git: utils.git.repo_url, with http.username / http.password when set.
    if let Some(url) = get_text(&root, "utils.git.repo_url") {
        if placeholder_reason(&url).is_none() {
            let parts = super::split_userinfo(&url);
            let (url, _) = super::git_url(&parts.url).map_err(|m| {
                InputError::Config(format!(
                    "{file}: utils.git.repo_url: {m}; see docs/config.md"
                ))
            })?;
            let password = vendor_secret(&root, "utils.git.http.password", &file, plan);
            let password = super::password_or_url(
                plan,
                password.is_some(),
                password,
                parts.password,
                (
                    format!("{file} utils.git.repo_url"),
                    "utils.git.repo_url",
                    "utils.git.http.password: ${env.VAR}",
                ),
            );
            plan.git = Some(super::GitPlan {
                url,
                branch: get_text(&root, "utils.git.branch").unwrap_or_else(|| "main".into()),
                username: get_text(&root, "utils.git.http.username").or(parts.user),
                password,
            });
        }
    }

    // Registry: `host` + `project` (1.0.0), `url` + `check_repo` (0.0.1).
    let reg_url = get_text(&root, "utils.oci_registry.host")
        .or_else(|| get_text(&root, "utils.oci_registry.url"));
    if let Some(raw) = reg_url.filter(|u| placeholder_reason(u).is_none()) {
        let parts = super::split_userinfo(&raw);
        let raw = parts.url;
        let url = super::registry_url(&raw).map_err(|m| {
            InputError::Config(format!(
                "{file}: utils.oci_registry: {m}; see docs/config.md"
            ))
        })?;
        // 0.0.1 writes the project as the URL's path.
        let path_project = raw
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&raw)
            .split_once('/')
            .map(|(_, p)| p.trim_matches('/').to_string())
            .filter(|p| !p.is_empty());
        let project = get_text(&root, "utils.oci_registry.project")
            .or(path_project)
            .unwrap_or_default();
        let password = vendor_secret(&root, "utils.oci_registry.password", &file, plan);
        let password = super::password_or_url(
            plan,
            password.is_some(),
            password,
            parts.password,
            (
                format!("{file} utils.oci_registry"),
                "utils.oci_registry",
                "utils.oci_registry.password: ${env.VAR}",
            ),
        );
        plan.registry = Some(super::RegistryPlan {
            url,
            project,
            check_repo: get_text(&root, "utils.oci_registry.check_repo")
                .unwrap_or_else(|| super::DEFAULT_CHECK_REPO.into()),
            username: get_text(&root, "utils.oci_registry.username").or(parts.user),
            password,
            images: Vec::new(),
        });
    }

    // S3: global.platform_storage (1.0.0) or the quickwit settings (0.0.1).
    for base in ["global.platform_storage", "modules.quickwit.s3"] {
        let Some(ep) = get_text(&root, &format!("{base}.endpoint")) else {
            continue;
        };
        if placeholder_reason(&ep).is_some() || plan.s3.is_some() {
            continue;
        }
        let parts = super::split_userinfo(&ep);
        if parts.password.is_some() {
            plan.findings.push(super::credential_in_url(
                format!("{file} {base}.endpoint"),
                &format!("{base}.endpoint"),
                false,
                &format!("{base}.secret_key: ${{env.VAR}}"),
            ));
        }
        let endpoint = super::registry_url(&parts.url).map_err(|m| {
            InputError::Config(format!("{file}: {base}.endpoint: {m}; see docs/config.md"))
        })?;
        let key = |name: &str, plan: &mut Perimeter| {
            vendor_secret(&root, &format!("{base}.{name}"), &file, plan)
        };
        let access_key = key("access_key", plan).map(|s| s.expose().to_string());
        let secret_key = key("secret_key", plan);
        // 1.0.0: the 16 event buckets the platform writes to, named from
        // the storage manager's prefix, with the addressing the file sets
        // (path style unless `force_path_style_access` says otherwise).
        // 0.0.1: the one bucket the file names.
        let (buckets, path_style, event_prefix) = if base == "global.platform_storage" {
            let prefix =
                get_text(&root, BUCKET_PREFIX_KEY).unwrap_or_else(|| DEFAULT_BUCKET_PREFIX.into());
            let buckets = event_buckets(&prefix).map_err(|m| {
                InputError::Config(format!(
                    "{file}: {BUCKET_PREFIX_KEY}: {m}; see docs/config.md"
                ))
            })?;
            let path_style =
                flag(&root, &format!("{base}.force_path_style_access"), path)?.unwrap_or(true);
            (buckets, path_style, Some(prefix))
        } else {
            let one = get_text(&root, &format!("{base}.bucket"));
            (one.into_iter().collect(), true, None)
        };
        plan.s3 = Some(super::S3Plan {
            endpoint,
            region: get_text(&root, &format!("{base}.region"))
                .unwrap_or_else(|| super::DEFAULT_S3_REGION.into()),
            path_style,
            buckets,
            access_key,
            secret_key,
            always_write: event_prefix.is_none(),
            event_prefix,
        });
    }

    vendor_proxies(&root, &file, plan);

    for n in names {
        if n.parse::<std::net::IpAddr>().is_ok() {
            continue;
        }
        if let Ok(name) = normalise_name(&n) {
            if !plan.dns.expect.iter().any(|e| e.name == name) {
                plan.dns.expect.push(ExpectedName {
                    name,
                    addresses: Vec::new(),
                });
            }
        }
    }
    plan.findings.iter_mut().for_each(|f| {
        f.evidence
            .entry("config_generation".into())
            .or_insert_with(|| generation.as_str().into());
    });
    Ok(())
}

/// The platform's certificate: `...traefik.custom_cert.{crt,key}` when the
/// file sets them (often as `${env.TRAEFIK_PUBKEY}`), else the variables
/// `TRAEFIK_PUBKEY` and `TRAEFIK_PRIVKEY` the installer reads; it must cover
/// the names the platform serves.
fn platform_cert(root: &Value, file: &str, plan: &mut Perimeter) {
    let hosts: Vec<String> = [
        "global.host",
        "global.delivery_host",
        "global.alternative_hosts",
    ]
    .iter()
    .filter_map(|k| get_text(root, k))
    .filter(|h| placeholder_reason(h).is_none())
    .collect();
    if hosts.is_empty() {
        return;
    }
    let base = "modules.platform_configuration.config.traefik.custom_cert";
    let cert_pem = get_text(root, &format!("{base}.crt"))
        .or_else(|| std::env::var("TRAEFIK_PUBKEY").ok())
        .filter(|v| !v.trim().is_empty());
    let key_pem = match get_text(root, &format!("{base}.key")) {
        Some(k) => match parse_secret(&k) {
            VendorSecret::Ref(r) => resolve_secret(&Some(r), &format!("{file} {base}.key"), plan),
            VendorSecret::Clear(v) => Some(super::Secret::from_config(v)),
        },
        None => SecretRef::Env("TRAEFIK_PRIVKEY".into()).resolve().ok(),
    };
    plan.platform_cert = Some(super::PlatformCertPlan {
        hosts,
        cert_pem,
        key_pem,
    });
}

/// The proxies the vendor's file sets: the platform's
/// (`modules.platform_configuration.config.proxy.*`), k3s's
/// (`modules.k3s_install.k3s_*_proxy`) and Git's (`utils.git.http.proxy`).
/// Key names vary between releases, so every key of those places is read: a
/// key holding `no_proxy` is the bypass list, any other is a proxy URL.
fn vendor_proxies(root: &Value, file: &str, plan: &mut Perimeter) {
    use super::proxy::{schemes_of, ProxyGroup, ProxyScope};
    // `${env.VAR}` values were resolved when the file was loaded; a 0.0.1
    // file's bare `env.VAR` is read here (the reference is kept when the
    // variable is unset).
    let value = |v: &Value| -> Option<String> {
        let t = match v {
            Value::Sequence(items) => items.iter().filter_map(text).collect::<Vec<_>>().join(","),
            other => text(other)?,
        };
        match parse_secret(&t) {
            VendorSecret::Ref(SecretRef::Env(var)) => Some(std::env::var(&var).unwrap_or(t)),
            _ => Some(t),
        }
        .filter(|t| !t.trim().is_empty())
    };
    let mut groups = Vec::new();

    let base = "modules.platform_configuration.config.proxy";
    let mut g = ProxyGroup::new(ProxyScope::Platform);
    match get(root, base) {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let (Some(k), Some(val)) = (text(k), value(v)) else {
                    continue;
                };
                let source = format!("{file} {base}.{k}");
                if k.to_ascii_lowercase().contains("no_proxy") {
                    g.set_no_proxy(source, &val);
                } else {
                    g.add_proxy(source, schemes_of(&k), &val);
                }
            }
        }
        Some(other) => {
            if let Some(val) = value(other) {
                g.add_proxy(format!("{file} {base}"), schemes_of(""), &val);
            }
        }
        None => {}
    }
    groups.push(g);

    let mut g = ProxyGroup::new(ProxyScope::K3s);
    if let Some(Value::Mapping(m)) = get(root, "modules.k3s_install") {
        for (k, v) in m {
            let Some(k) = text(k) else { continue };
            let lk = k.to_ascii_lowercase();
            if !(lk.starts_with("k3s_") && lk.ends_with("_proxy")) {
                continue;
            }
            let Some(val) = value(v) else { continue };
            let source = format!("{file} modules.k3s_install.{k}");
            if lk == "k3s_no_proxy" {
                g.set_no_proxy(source, &val);
            } else {
                g.add_proxy(source, schemes_of(&lk["k3s_".len()..]), &val);
            }
        }
    }
    groups.push(g);

    let mut g = ProxyGroup::new(ProxyScope::Git);
    if let Some(val) = get(root, "utils.git.http.proxy").and_then(value) {
        g.add_proxy(format!("{file} utils.git.http.proxy"), schemes_of(""), &val);
    }
    groups.push(g);

    plan.egress.proxies.extend(
        groups
            .into_iter()
            .filter(|g| !g.proxies.is_empty() || g.no_proxy_source.is_some()),
    );
}

fn host_of_smtp(t: &Target, names: &mut Vec<String>) {
    if t.ip().is_none() {
        names.push(t.host.clone());
    }
}

/// The host of `https://user@host:port/path`, or of a bare `host:port/path`.
pub(crate) fn url_host(u: &str) -> Option<String> {
    let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Keys whose values are secrets: read only into a [`super::Secret`] and
/// never quoted in a finding. (`utils.ansible.ssh-key` is the nodes' SSH
/// private key.)
pub(crate) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "access_key",
        "private",
        "privkey",
        "ssh-key",
        "ssh_key",
        "custom_cert.key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// The template defaults the vendor's own check lets through.
pub fn placeholder_reason(value: &str) -> Option<&'static str> {
    let v = value.trim().to_ascii_lowercase();
    let host = url_host(&v).unwrap_or_else(|| v.clone());
    if host == "mail.server.local" {
        return Some("the template's mail relay `mail.server.local`");
    }
    if host == "sekoia.local" || host.ends_with(".sekoia.local") {
        return Some("a `*.sekoia.local` template name");
    }
    if host == "example.com" || host.ends_with(".example.com") {
        return Some("an `example.com` template name");
    }
    if v == "smtp-user" {
        return Some("the template's SMTP user `smtp-user`");
    }
    if v == "smtp-password" {
        return Some("the template's SMTP password");
    }
    None
}

fn scan_placeholders(v: &Value, file: &str, key: &str, plan: &mut Perimeter) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let k = text(k).unwrap_or_default();
                let path = if key.is_empty() {
                    k
                } else {
                    format!("{key}.{k}")
                };
                scan_placeholders(child, file, &path, plan);
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                scan_placeholders(child, file, &format!("{key}[{i}]"), plan);
            }
        }
        Value::Tagged(t) => scan_placeholders(&t.value, file, key, plan),
        other => {
            let Some(t) = text(other) else { return };
            let Some(reason) = placeholder_reason(&t) else {
                return;
            };
            let mut f = Finding::new(
                Code::ConfigPlaceholder,
                format!("{file} {key}"),
                format!("`{key}` is still {reason}; the vendor's check accepts it but nothing in the perimeter answers to it"),
            )
            .evidence("key", key);
            if !is_secret_key(key) {
                // A proxy URL may carry user:password@.
                f = f.evidence("value", super::proxy::redact_url(&t));
            }
            plan.findings.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_both_generations() {
        assert!(
            matches!(parse_secret("${env.SMTP_PW}"), VendorSecret::Ref(SecretRef::Env(v)) if v == "SMTP_PW")
        );
        assert!(
            matches!(parse_secret("env.S3_KEY"), VendorSecret::Ref(SecretRef::Env(v)) if v == "S3_KEY")
        );
        assert!(matches!(
            parse_secret("plain words"),
            VendorSecret::Clear(_)
        ));
        assert!(matches!(parse_secret("${env.}"), VendorSecret::Clear(_)));
    }

    #[test]
    fn event_buckets_follow_the_prefix() {
        let b = event_buckets(DEFAULT_BUCKET_PREFIX).unwrap();
        assert_eq!(b.len(), 16);
        assert_eq!(b[0], "exalog-self-hosted-events-0");
        assert_eq!(b[10], "exalog-self-hosted-events-a");
        assert_eq!(b[15], "exalog-self-hosted-events-f");
        assert_eq!(
            event_buckets("").unwrap().first().map(String::as_str),
            Some("self-hosted-events-0")
        );
        for bad in ["Exalog-", "-x", "a_b-", "a..", &"x".repeat(44)] {
            assert!(event_buckets(bad).is_err(), "{bad}");
        }
        // 63 characters in all is the longest name S3 accepts.
        assert!(event_buckets(&"x".repeat(43)).is_ok());
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://git.corp:8443/org/repo.git").as_deref(),
            Some("git.corp")
        );
        assert_eq!(url_host("https://u:p@S3.corp").as_deref(), Some("s3.corp"));
        assert_eq!(
            url_host("registry.corp:5000/sekoia").as_deref(),
            Some("registry.corp")
        );
        assert_eq!(
            url_host("https://[fd00::1]:443/").as_deref(),
            Some("fd00::1")
        );
    }

    #[test]
    fn vendor_proxies_in_three_scopes() {
        let text = "global: {host: soc.corp}\nutils:\n  git: {http: {proxy: 'http://g:pw1@gp.corp:1'}}\nmodules:\n  platform_configuration: {config: {proxy: {https_proxy: 'http://p:pw2@pp.corp:2', no_proxy: [a.corp, .b.corp]}}}\n  k3s_install: {k3s_http_proxy: 'http://kp.corp:3', k3s_no_proxy: '10.0.0.0/8', registry_url: r.corp}\n";
        let mut plan = crate::config::load(&crate::config::LoadOptions {
            perimeter: None,
            sekoia: Some({
                let p = std::env::temp_dir()
                    .join(format!("agv-vendor-proxies-{}.yml", std::process::id()));
                std::fs::write(&p, text).unwrap();
                p
            }),
            ..Default::default()
        })
        .unwrap();
        let _ = std::fs::remove_file(&plan.sources[0]);
        // The environment of the test run is not part of this check.
        plan.egress
            .proxies
            .retain(|g| g.scope != super::super::proxy::ProxyScope::Environment);
        let scopes: Vec<_> = plan.egress.proxies.iter().map(|g| g.scope.name()).collect();
        assert_eq!(scopes, ["platform", "k3s", "git"]);
        let platform = &plan.egress.proxies[0];
        assert_eq!(platform.proxies[0].url, "http://p:***@pp.corp:2");
        assert_eq!(platform.proxies[0].schemes, ["https"]);
        assert_eq!(platform.no_proxy, ["a.corp", ".b.corp"]);
        let k3s = &plan.egress.proxies[1];
        assert_eq!(
            (k3s.proxies.len(), k3s.proxies[0].schemes.clone()),
            (1, vec!["http"])
        );
        assert_eq!(k3s.no_proxy, ["10.0.0.0/8"]);
        assert_eq!(
            plan.egress.proxies[2].proxies[0].url,
            "http://g:***@gp.corp:1"
        );
        assert!(!format!("{:?}", plan.egress).contains("pw"));
    }

    /// A password in the vendor's Git or registry URL: a warning each time;
    /// used only when the matching password setting is absent.
    #[test]
    fn passwords_in_vendor_urls() {
        let text = "utils:\n  git: {repo_url: 'https://u:urlpw1@git.corp/s/stacks.git'}\n  oci_registry: {host: 'https://r:urlpw2@registry.corp', project: sekoia, username: r, password: setpw}\n";
        let p =
            std::env::temp_dir().join(format!("agv-vendor-url-secrets-{}.yml", std::process::id()));
        std::fs::write(&p, text).unwrap();
        let plan = crate::config::load(&crate::config::LoadOptions {
            perimeter: None,
            sekoia: Some(p.clone()),
            ..Default::default()
        })
        .unwrap();
        let _ = std::fs::remove_file(&p);
        let warned: Vec<_> = plan
            .findings
            .iter()
            .filter(|f| f.code == Code::ConfigCredentialInUrl)
            .map(|f| {
                (
                    f.target.rsplit(' ').next().unwrap().to_string(),
                    f.message.clone(),
                )
            })
            .collect();
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(warned
            .iter()
            .any(|(t, m)| t == "utils.git.repo_url" && m.contains("used for this run")));
        assert!(warned
            .iter()
            .any(|(t, m)| t == "utils.oci_registry" && m.contains("ignored")));
        let git = plan.git.as_ref().unwrap();
        assert_eq!(git.password.as_ref().map(|s| s.expose()), Some("urlpw1"));
        assert_eq!(git.url, "https://git.corp/s/stacks.git");
        let reg = plan.registry.as_ref().unwrap();
        assert_eq!(reg.password.as_ref().map(|s| s.expose()), Some("setpw"));
        for f in &plan.findings {
            assert!(!format!("{f:?}").contains("urlpw"), "{f:?}");
        }
    }

    #[test]
    fn placeholders() {
        assert!(placeholder_reason("mail.server.local").is_some());
        assert!(placeholder_reason("https://git.sekoia.local/repo.git").is_some());
        assert!(placeholder_reason("registry.example.com").is_some());
        assert!(placeholder_reason("smtp-password").is_some());
        assert!(placeholder_reason("mail.corp.internal").is_none());
        assert!(placeholder_reason("notexample.com").is_none());
    }
}
