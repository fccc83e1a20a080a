//! The machine's own name resolution, done by us: `/etc/hosts`, then the
//! name servers of `/etc/resolv.conf` asked with the project's DNS client
//! (`super::dnswire`). Used only when the configuration names no DNS server.
//!
//! Why not getaddrinfo: the release binary is linked statically, and a
//! static glibc cannot load its NSS modules at run time (on a host whose
//! glibc differs, or in a chroot without one, every lookup would fail or
//! load a foreign libc). Reading the two files ourselves keeps the binary
//! free of any run-time library and makes the lookup explainable: the
//! evidence names the file or the server that answered.
//!
//! Guarantees:
//! - only `/etc/hosts` and the `nameserver` lines of `/etc/resolv.conf` are
//!   consulted; no other source (mDNS, LDAP, systemd's D-Bus) is ever asked;
//! - `localhost` resolves to the loopback addresses even without a hosts file;
//! - a missing or unreadable file is the same as an empty one, and a
//!   resolv.conf without a `nameserver` line means 127.0.0.1, as in glibc;
//! - every query has the caller's deadline; servers are asked in file order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::net::NetError;

pub const HOSTS: &str = "/etc/hosts";
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What `/etc/hosts` and `/etc/resolv.conf` say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemResolver {
    /// Address and its names (canonical name first, then aliases).
    hosts: Vec<(IpAddr, Vec<String>)>,
    nameservers: Vec<SocketAddr>,
    search: Vec<String>,
    ndots: usize,
}

impl SystemResolver {
    /// Reads `/etc/hosts` and `/etc/resolv.conf`.
    pub fn load() -> SystemResolver {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        SystemResolver::parse(&read(HOSTS), &read(RESOLV_CONF))
    }

    pub fn parse(hosts: &str, resolv_conf: &str) -> SystemResolver {
        let mut r = SystemResolver {
            hosts: parse_hosts(hosts),
            ndots: 1,
            ..SystemResolver::default()
        };
        for line in resolv_conf.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A scoped IPv6 address (fe80::1%eth0) cannot be parsed
                    // without an interface lookup; it is skipped.
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        r.nameservers.push(SocketAddr::new(ip, 53));
                    }
                }
                // The last of `search` and `domain` wins, as in glibc.
                Some("search") | Some("domain") => {
                    r.search = words.map(|w| w.trim_end_matches('.').to_string()).collect();
                }
                Some("options") => {
                    for o in words {
                        if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                            r.ndots = std::cmp::min(n, 15);
                        }
                    }
                }
                _ => {}
            }
        }
        if r.nameservers.is_empty() {
            r.nameservers
                .push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        r
    }

    /// The servers that are asked, in order.
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// Addresses `/etc/hosts` gives `name` (then the built-in localhost).
    pub fn from_hosts(&self, name: &str) -> Vec<IpAddr> {
        let name = name.trim_end_matches('.');
        let mut out: Vec<IpAddr> = Vec::new();
        for (ip, names) in &self.hosts {
            if names.iter().any(|n| n.eq_ignore_ascii_case(name)) && !out.contains(ip) {
                out.push(*ip);
            }
        }
        if out.is_empty() && name.eq_ignore_ascii_case("localhost") {
            out = vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
        }
        out
    }

    /// The names asked of the servers for `name`, in order: with `search`
    /// domains first when it has fewer dots than `ndots`, as glibc does.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_string()];
        }
        let searched = self.search.iter().map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }

    /// Addresses of `name` and where they came from: `/etc/hosts`, or the
    /// name server that answered.
    pub async fn lookup(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<(Vec<IpAddr>, String), NetError> {
        let local = self.from_hosts(name);
        if !local.is_empty() {
            return Ok((local, HOSTS.to_string()));
        }
        let mut errors = Vec::new();
        for candidate in self.candidates(name) {
            for server in &self.nameservers {
                match super::dnswire::lookup_addresses(*server, &candidate, timeout).await {
                    Ok(addrs) if !addrs.is_empty() => {
                        return Ok((addrs, format!("{server} (from {RESOLV_CONF})")))
                    }
                    Ok(_) => errors.push(format!("{server} {candidate}: no address")),
                    Err(e) => errors.push(format!("{server} {candidate}: {e}")),
                }
            }
        }
        Err(NetError::Unresolved(format!(
            "not in {HOSTS}; {RESOLV_CONF} servers: {}",
            errors.join("; ")
        )))
    }
}

fn parse_hosts(text: &str) -> Vec<(IpAddr, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        // A scoped address (fe80::1%lo) is skipped, as resolving its scope
        // would need an interface lookup.
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        let names: Vec<String> = words.map(|w| w.trim_end_matches('.').to_string()).collect();
        if !names.is_empty() {
            out.push((ip, names));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names_and_aliases() {
        let r = SystemResolver::parse(
            "127.0.0.1 localhost\n# comment 10.0.0.9 hidden\n10.0.0.5 git.lab git # trailing\n\
             bogus line\nfe80::1%lo scoped\n10.0.0.6 GIT.lab\n::1 ip6-localhost\n",
            "",
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            r.from_hosts("git.lab"),
            vec![ip("10.0.0.5"), ip("10.0.0.6")]
        );
        assert_eq!(r.from_hosts("GIT"), vec![ip("10.0.0.5")]);
        assert_eq!(
            r.from_hosts("git.lab."),
            vec![ip("10.0.0.5"), ip("10.0.0.6")]
        );
        assert!(r.from_hosts("hidden").is_empty());
        assert!(r.from_hosts("scoped").is_empty());
        assert_eq!(r.from_hosts("localhost"), vec![ip("127.0.0.1")]);
        // Without a hosts file, localhost is still the loopback.
        let empty = SystemResolver::parse("", "");
        assert_eq!(
            empty.from_hosts("LocalHost"),
            vec![ip("127.0.0.1"), ip("::1")]
        );
    }

    #[test]
    fn resolv_conf_servers_search_and_ndots() {
        let r = SystemResolver::parse(
            "",
            "# generated\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nnameserver ::1 ; x\n\
             domain old.example\nsearch corp.example lab.\noptions rotate ndots:2\n",
        );
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(r.nameservers(), &[sa("10.0.0.53:53"), sa("[::1]:53")]);
        assert_eq!(
            r.candidates("git.x"),
            vec!["git.x.corp.example", "git.x.lab", "git.x"]
        );
        assert_eq!(
            r.candidates("a.b.c"),
            vec!["a.b.c", "a.b.c.corp.example", "a.b.c.lab"]
        );
        assert_eq!(r.candidates("abs.x."), vec!["abs.x"]);
    }

    #[test]
    fn no_nameserver_means_the_local_one() {
        let r = SystemResolver::parse("", "search lab\n");
        assert_eq!(r.nameservers(), &["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(r.candidates("git"), vec!["git.lab", "git"]);
        assert_eq!(r.candidates("git.lab"), vec!["git.lab", "git.lab.lab"]);
    }
}
