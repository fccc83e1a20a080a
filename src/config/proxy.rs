//! Proxy settings: the environment's `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`
//! and the proxies of the vendor's `config.yml`, and how `no_proxy` lists
//! match a host.
//!
//! Guarantees:
//! - a proxy URL is only ever kept with its password replaced by `***`
//!   ([`redact_url`]); the password is dropped at parse time, so no finding,
//!   evidence or `--dry-run` line can carry it;
//! - `no_proxy` is matched as curl and Go match it: `*` covers everything, a
//!   name covers itself and its sub-domains (a leading `.` or `*.` is the
//!   same), a `:port` suffix is ignored; an address or CIDR entry covers
//!   address literals only: it never matches a host name, even one that
//!   resolves inside it (the installer's tools do not resolve before
//!   deciding).

use std::net::IpAddr;

/// Which traffic a group of proxy settings steers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScope {
    /// The environment of this process (and of the installer run from it):
    /// every HTTP(S) client (git, helm, skopeo, the S3 client).
    Environment,
    /// `modules.platform_configuration.config.proxy.*`: the platform's own
    /// services (Git, registry and S3 clients included).
    Platform,
    /// `modules.k3s_install.k3s_*_proxy`: k3s and containerd, which pull
    /// the images from the registry.
    K3s,
    /// `utils.git.http.proxy`: the installer's Git pushes only.
    Git,
}

impl ProxyScope {
    pub fn name(self) -> &'static str {
        match self {
            ProxyScope::Environment => "environment",
            ProxyScope::Platform => "platform",
            ProxyScope::K3s => "k3s",
            ProxyScope::Git => "git",
        }
    }

    /// Which of the perimeter's HTTP services use this scope's proxies.
    pub fn carries(self, service: &str) -> bool {
        match self {
            ProxyScope::Environment | ProxyScope::Platform => {
                matches!(service, "git" | "registry" | "s3")
            }
            ProxyScope::K3s => service == "registry",
            ProxyScope::Git => service == "git",
        }
    }
}

/// One proxy setting, password already removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Where it is set: `HTTPS_PROXY` or `config.yml modules.k3s_install.k3s_https_proxy`.
    pub source: String,
    /// The URL schemes it carries (`http`, `https`).
    pub schemes: Vec<&'static str>,
    /// The URL with the password (if any) replaced by `***`.
    pub url: String,
    /// The proxy's host (name or address literal), when the URL names one.
    pub host: Option<String>,
}

/// The proxies of one scope and the `no_proxy` list that applies to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyGroup {
    pub scope: ProxyScope,
    pub proxies: Vec<Proxy>,
    /// Where `no_proxy` is set, if it is.
    pub no_proxy_source: Option<String>,
    pub no_proxy: Vec<String>,
}

impl ProxyGroup {
    pub fn new(scope: ProxyScope) -> ProxyGroup {
        ProxyGroup {
            scope,
            proxies: Vec::new(),
            no_proxy_source: None,
            no_proxy: Vec::new(),
        }
    }

    /// Adds a proxy URL read from `source`; empty values are ignored.
    pub fn add_proxy(&mut self, source: String, schemes: Vec<&'static str>, raw: &str) {
        let raw = raw.trim();
        if raw.is_empty() {
            return;
        }
        self.proxies.push(Proxy {
            source,
            schemes,
            url: redact_url(raw),
            host: proxy_host(raw),
        });
    }

    pub fn set_no_proxy(&mut self, source: String, raw: &str) {
        self.no_proxy_source = Some(source);
        self.no_proxy = split_no_proxy(raw);
    }
}

/// The schemes a setting carries, from its name (`HTTPS_PROXY`,
/// `k3s_http_proxy`, `proxy.https`); a name with neither carries both.
pub fn schemes_of(name: &str) -> Vec<&'static str> {
    let n = name.to_ascii_lowercase();
    if n.contains("https") {
        vec!["https"]
    } else if n.contains("http") {
        vec!["http"]
    } else {
        vec!["http", "https"]
    }
}

/// The proxy settings of the environment, through `get` (so tests need not
/// touch the process environment). Lower-case names win over upper-case, as
/// in curl; both are reported when both are set and differ.
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> ProxyGroup {
    let mut g = ProxyGroup::new(ProxyScope::Environment);
    for (lower, upper) in [("http_proxy", "HTTP_PROXY"), ("https_proxy", "HTTPS_PROXY")] {
        let l = get(lower).filter(|v| !v.trim().is_empty());
        let u = get(upper).filter(|v| !v.trim().is_empty());
        match (l, u) {
            (Some(l), Some(u)) if l.trim() != u.trim() => {
                g.add_proxy(lower.into(), schemes_of(lower), &l);
                g.add_proxy(upper.into(), schemes_of(upper), &u);
            }
            (Some(v), _) => g.add_proxy(lower.into(), schemes_of(lower), &v),
            (None, Some(v)) => g.add_proxy(upper.into(), schemes_of(upper), &v),
            (None, None) => {}
        }
    }
    let np_l = get("no_proxy").filter(|v| !v.trim().is_empty());
    let np_u = get("NO_PROXY").filter(|v| !v.trim().is_empty());
    match (np_l, np_u) {
        (Some(l), Some(u)) if l.trim() != u.trim() => {
            // Tools disagree on which wins; only what both cover is safe.
            let upper = split_no_proxy(&u);
            g.set_no_proxy("no_proxy and NO_PROXY (entries in both)".into(), &l);
            g.no_proxy.retain(|e| upper.contains(e));
        }
        (Some(v), _) => g.set_no_proxy("no_proxy".into(), &v),
        (None, Some(v)) => g.set_no_proxy("NO_PROXY".into(), &v),
        (None, None) => {}
    }
    g
}

pub fn split_no_proxy(raw: &str) -> Vec<String> {
    raw.split([',', ' ', '\t', '\n'])
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect()
}

/// `scheme://user:password@host:port/path` with the password replaced by
/// `***`; a URL without a password is returned as is.
pub fn redact_url(u: &str) -> String {
    let u = u.trim();
    let (prefix, rest) = match u.find("://") {
        Some(i) => u.split_at(i + 3),
        None => ("", u),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => userinfo.to_string(),
            };
            format!("{prefix}{user}@{host}{tail}")
        }
        None => u.to_string(),
    }
}

/// The host of a proxy URL (`http://u:p@proxy.corp:3128/` -> `proxy.corp`).
pub fn proxy_host(u: &str) -> Option<String> {
    super::sekoia::url_host(u.trim())
}

/// How a `no_proxy` list treats one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoProxy {
    /// An entry covers it: the proxy is bypassed.
    Covered(String),
    /// Only an address or CIDR entry contains the host's address, which does
    /// not count for a host name.
    CidrOnly(String),
    NotCovered,
}

/// Whether `entries` makes a client bypass the proxy for `host`, whose
/// addresses (for a name) are `resolved`.
pub fn covers(entries: &[String], host: &str, resolved: &[IpAddr]) -> NoProxy {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    let mut cidr_only = None;
    for raw in entries {
        if raw == "*" {
            return NoProxy::Covered(raw.clone());
        }
        if let Ok(net) = super::file::parse_cidr(raw.trim_start_matches('[').trim_end_matches(']'))
        {
            match host_ip {
                Some(ip) if net.contains(&ip) => return NoProxy::Covered(raw.clone()),
                None if resolved.iter().any(|a| net.contains(a)) => {
                    cidr_only.get_or_insert_with(|| raw.clone());
                }
                _ => {}
            }
            continue;
        }
        // `name:port`: the port is ignored.
        let entry = match raw.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
            _ => raw.as_str(),
        };
        let domain = entry
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.');
        if domain.is_empty() || host_ip.is_some() {
            continue;
        }
        if host == domain || host.ends_with(&format!(".{domain}")) {
            return NoProxy::Covered(raw.clone());
        }
    }
    match cidr_only {
        Some(e) => NoProxy::CidrOnly(e),
        None => NoProxy::NotCovered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("http://user:s3cret@proxy.corp:3128/"),
            "http://user:***@proxy.corp:3128/"
        );
        assert_eq!(
            redact_url("user:p%40ss@proxy.corp:3128"),
            "user:***@proxy.corp:3128"
        );
        assert_eq!(
            redact_url("http://proxy.corp:3128"),
            "http://proxy.corp:3128"
        );
        assert_eq!(redact_url("http://bob@proxy:1"), "http://bob@proxy:1");
        // An `@` in the password: the last one separates the host.
        assert_eq!(
            redact_url("http://u:a@b@proxy:1/x"),
            "http://u:***@proxy:1/x"
        );
        assert_eq!(
            proxy_host("http://u:a@b@Proxy.corp:1/x").as_deref(),
            Some("proxy.corp")
        );
    }

    #[test]
    fn no_proxy_matching() {
        let e = split_no_proxy("localhost, .corp.internal,registry.lab:5000 10.0.0.0/8,*.svc");
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(matches!(
            covers(&e, "git.corp.internal", &[]),
            NoProxy::Covered(_)
        ));
        assert!(matches!(
            covers(&e, "corp.internal", &[]),
            NoProxy::Covered(_)
        ));
        assert!(matches!(
            covers(&e, "registry.lab", &[]),
            NoProxy::Covered(_)
        ));
        assert!(matches!(covers(&e, "a.b.svc", &[]), NoProxy::Covered(_)));
        assert!(matches!(covers(&e, "10.1.2.3", &[]), NoProxy::Covered(_)));
        // A CIDR never matches a name, even one that resolves inside it.
        assert_eq!(
            covers(&e, "s3.other", &[ip]),
            NoProxy::CidrOnly("10.0.0.0/8".into())
        );
        assert_eq!(
            covers(&e, "notcorp.internal.evil", &[]),
            NoProxy::NotCovered
        );
        assert_eq!(covers(&e, "xcorp.internal", &[]), NoProxy::NotCovered);
        assert!(matches!(
            covers(&["*".into()], "x", &[]),
            NoProxy::Covered(_)
        ));
    }

    #[test]
    fn environment_lower_case_first() {
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://a:pw@p1:3128".to_string()),
            "https_proxy" => Some("http://a:pw@p1:3128".to_string()),
            "NO_PROXY" => Some("a.corp,b.corp".to_string()),
            "no_proxy" => Some("b.corp".to_string()),
            _ => None,
        };
        let g = from_env(env);
        assert_eq!(g.proxies.len(), 1);
        assert_eq!(g.proxies[0].source, "https_proxy");
        assert_eq!(g.proxies[0].schemes, vec!["https"]);
        assert_eq!(g.proxies[0].url, "http://a:***@p1:3128");
        assert_eq!(g.no_proxy, vec!["b.corp".to_string()]);
    }
}
