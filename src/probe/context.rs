//! What every probe of one run shares: the plan, name resolution (the
//! perimeter's DNS servers, or `/etc/hosts` and `/etc/resolv.conf` when none
//! is configured; once per name per run; answers outside `allowed_networks`
//! refused), the TLS settings and the clean-up ledger.
//!
//! Apart from the DNS *probe* (`dns`), which judges servers: this module only
//! uses them, through the query code in `dnswire`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::net::NetError;
use super::system_resolver::SystemResolver;
use crate::config::{Perimeter, Target};

/// Resolves target names through the perimeter's DNS servers, once per name
/// per run.
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    allowed: Vec<ipnet::IpNet>,
    /// `/etc/hosts` and `/etc/resolv.conf`, read once: used when `servers`
    /// is empty.
    system: SystemResolver,
    cache: Mutex<HashMap<String, Result<Resolved, NetError>>>,
}

/// Addresses of a name and who answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub addrs: Vec<IpAddr>,
    /// `literal`, `/etc/hosts`, the configured DNS server's address, or
    /// `ADDR (from /etc/resolv.conf)`.
    pub via: String,
}

impl Resolver {
    pub fn new(plan: &Perimeter) -> Resolver {
        Resolver {
            servers: plan.dns.servers.clone(),
            timeout: plan.deadlines.connect,
            allowed: plan.allowed_networks.clone(),
            system: if plan.dns.servers.is_empty() {
                SystemResolver::load()
            } else {
                SystemResolver::default()
            },
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Addresses of `host` (an address literal resolves to itself).
    pub async fn resolve(&self, host: &str) -> Result<Resolved, NetError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Resolved {
                addrs: vec![ip],
                via: "literal".into(),
            });
        }
        let mut cache = self.cache.lock().await;
        if let Some(r) = cache.get(host) {
            return r.clone();
        }
        let r = self.lookup(host).await;
        cache.insert(host.to_string(), r.clone());
        r
    }

    async fn lookup(&self, host: &str) -> Result<Resolved, NetError> {
        if self.servers.is_empty() {
            // No perimeter DNS configured: the machine's configuration is all
            // we have.
            let (addrs, via) = self.system_lookup(host, self.timeout).await?;
            return Ok(Resolved { addrs, via });
        }
        let mut errors = Vec::new();
        for server in &self.servers {
            match super::dnswire::lookup_addresses(*server, host, self.timeout).await {
                Ok(addrs) if !addrs.is_empty() => {
                    return Ok(Resolved {
                        addrs,
                        via: server.to_string(),
                    })
                }
                Ok(_) => errors.push(format!("{server}: no address")),
                Err(e) => errors.push(format!("{server}: {e}")),
            }
        }
        Err(NetError::Unresolved(errors.join("; ")))
    }

    /// `host` through `/etc/hosts` and `/etc/resolv.conf`'s servers, each
    /// query within `timeout`, and where the answer came from.
    pub async fn system_lookup(
        &self,
        host: &str,
        timeout: Duration,
    ) -> Result<(Vec<IpAddr>, String), NetError> {
        self.system.lookup(host, timeout).await
    }

    /// The addresses of `host` that are inside the perimeter; the first one
    /// outside is an error when none is inside.
    pub async fn resolve_inside(&self, host: &str) -> Result<Resolved, NetError> {
        let mut r = self.resolve(host).await?;
        let first = r.addrs.first().copied();
        r.addrs.retain(|a| crate::config::allows(&self.allowed, *a));
        match (r.addrs.is_empty(), first) {
            (true, Some(a)) => Err(NetError::OutsidePerimeter(a)),
            (true, None) => Err(NetError::Unresolved("no address".into())),
            _ => Ok(r),
        }
    }
}

/// Opens a TCP connection to `target` (resolved inside the perimeter), trying
/// its addresses in turn within one connect deadline each.
pub async fn connect_tcp(
    resolver: &Resolver,
    target: &Target,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), NetError> {
    let resolved = resolver.resolve_inside(&target.host).await?;
    let mut last = NetError::Unresolved("no address".into());
    for ip in resolved.addrs {
        let sa = SocketAddr::new(ip, target.port);
        match tokio::time::timeout(timeout, TcpStream::connect(sa)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, sa));
            }
            Ok(Err(e)) => last = NetError::from_connect(&e),
            Err(_) => last = NetError::Timeout(timeout),
        }
    }
    Err(last)
}

/// Shared by every probe of one run.
pub struct ProbeContext {
    pub plan: Arc<Perimeter>,
    pub resolver: Resolver,
    pub tls: super::tls::TlsSettings,
    /// What the write probes wrote and have not removed yet.
    pub ledger: super::cleanup::Ledger,
}
