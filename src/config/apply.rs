//! perimeter.yml applied to the plan: each section checked (addresses,
//! URLs, names, durations, paths relative to the file) and its secrets
//! resolved into [`Secret`]s, once.

use std::path::{Path, PathBuf};

use super::*;
pub(super) fn relative_to(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

pub(super) fn apply_file(
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
pub(super) fn percent_decode(s: &str) -> String {
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
pub(super) fn secret_ref(
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
