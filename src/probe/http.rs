//! HTTP(S) for the probes of HTTP services (Git, OCI registry, S3).
//!
//! Guarantees:
//! - the host is resolved through the perimeter's DNS and must be inside
//!   `allowed_networks`; the HTTP client is pinned to that address, so it
//!   never asks the machine's resolver;
//! - for `https://`, a TLS handshake with [`super::tls`] runs first and its
//!   findings (chain, expiry, issuer) are returned; a TLS failure stops the
//!   probe before any request, so no credential is ever sent to a server
//!   that failed verification;
//! - the client trusts only the same CA, ignores proxy variables, follows no
//!   redirect, and has the run's connect and I/O deadlines.

use std::net::SocketAddr;
use std::time::Duration;

use super::context::connect_tcp;
use super::context::ProbeContext;
use super::net::NetError;
use crate::config::Target;
use crate::finding::Finding;

/// A prepared HTTP endpoint: the client, the base URL, and the TLS findings.
#[derive(Clone)]
pub struct Endpoint {
    pub client: reqwest::Client,
    pub base: reqwest::Url,
    pub addr: SocketAddr,
    pub tls: Vec<Finding>,
}

/// Prepares `url`; on failure returns the findings that say why.
pub async fn endpoint(
    ctx: &ProbeContext,
    url: &str,
    target: &str,
) -> Result<Endpoint, Vec<Finding>> {
    let base = reqwest::Url::parse(url).map_err(|e| {
        vec![NetError::Unresolved(format!("`{url}` is not a URL: {e}")).finding(target, "URL")]
    })?;
    let host = base
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let https = base.scheme() == "https";
    let port = base
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let deadlines = ctx.plan.deadlines;
    let t = Target {
        host: host.clone(),
        port,
    };
    let (stream, addr) = connect_tcp(&ctx.resolver, &t, deadlines.connect)
        .await
        .map_err(|e| vec![e.finding(target, "server")])?;
    let mut tls = Vec::new();
    if https {
        let (_stream, findings) = ctx
            .tls
            .handshake(stream, &host, target, deadlines.handshake)
            .await?;
        tls = findings;
    } else {
        drop(stream);
    }
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(ctx.tls.verifying_config())
        .resolve(&host, addr)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(deadlines.connect)
        .read_timeout(deadlines.io)
        .timeout(deadlines.connect + deadlines.handshake + deadlines.io * 2)
        .user_agent(concat!("airgap-verify/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| vec![NetError::Io(e.to_string()).finding(target, "HTTP client")])?;
    Ok(Endpoint {
        client,
        base,
        addr,
        tls,
    })
}

/// Maps a request error to a network finding.
pub fn request_error(e: &reqwest::Error, target: &str, what: &str, io: Duration) -> Finding {
    let err = if e.is_timeout() {
        NetError::NoReply(io)
    } else if e.is_connect() {
        NetError::Refused
    } else {
        NetError::Io(e.to_string())
    };
    err.finding(target, what)
}
