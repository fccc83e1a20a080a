//! The platform's own certificate (Traefik's), read as the vendor's
//! installer reads it: from `TRAEFIK_PUBKEY` and `TRAEFIK_PRIVKEY`.
//!
//! Guarantees:
//! - nothing is contacted: the certificate is checked where it is, before
//!   the installation, as forwarders and browsers will check it afterwards;
//! - when both are set: the key matches the certificate, the chain leads to
//!   the configured CA bundle, it is valid for every name the platform
//!   serves (`global.host`, `global.delivery_host`, `global.alternative_hosts`)
//!   and is not expired (expiring within the warning window is a warning);
//! - when neither is set: a warning says that Traefik then serves its own
//!   self-signed certificate, which every forwarder rejects;
//! - the private key is read as a secret and never printed.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::tls::{CertInfo, TlsSettings};
use crate::config::{PlatformCertPlan, Secret};
use crate::finding::{Code, Finding};

const TARGET: &str = "TRAEFIK_PUBKEY";

/// Checks the platform certificate of `plan` against `tls`'s trust anchors.
pub fn check(plan: &PlatformCertPlan, tls: &TlsSettings) -> Vec<Finding> {
    let names = plan.hosts.join(", ");
    let (cert, key) = match (&plan.cert_pem, &plan.key_pem) {
        (None, None) => {
            return vec![Finding::new(
                Code::TlsPlatformCertMissing,
                TARGET,
                format!(
                    "TRAEFIK_PUBKEY and TRAEFIK_PRIVKEY are not set: Traefik will serve its own self-signed certificate for {names}, which browsers, API clients and every event forwarder (syslog and RELP over TLS) reject"
                ),
            )
            .evidence("hosts", plan.hosts.clone())];
        }
        (Some(c), Some(k)) => (c, k),
        (c, _) => {
            let missing = if c.is_none() {
                "TRAEFIK_PUBKEY"
            } else {
                "TRAEFIK_PRIVKEY"
            };
            return vec![invalid(
                plan,
                vec![format!(
                    "{missing} is not set: the installer needs the certificate and its key"
                )],
            )];
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first() else {
        return vec![invalid(
            plan,
            vec!["TRAEFIK_PUBKEY holds no PEM certificate".into()],
        )];
    };
    let info = CertInfo::parse(leaf);
    let mut problems = Vec::new();
    match key_der(key) {
        None => problems.push("TRAEFIK_PRIVKEY holds no PEM private key".to_string()),
        Some(k) => {
            if let Err(why) = tls.keys_match(&chain, k) {
                problems.push(format!(
                    "the key in TRAEFIK_PRIVKEY is not the certificate's ({why})"
                ));
            }
        }
    }
    let mut missing = Vec::new();
    for host in &plan.hosts {
        match tls.verify_chain(&chain, host) {
            Ok(()) => {}
            Err((Code::TlsNameMismatch, _)) => missing.push(host.clone()),
            Err((_, why)) => {
                if !problems.contains(&why) {
                    problems.push(why);
                }
            }
        }
    }
    if !missing.is_empty() {
        problems.push(format!(
            "the certificate is not valid for {} (it names {})",
            missing.join(", "),
            info.as_ref()
                .map(|i| i.sans.join(", "))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "no name".into())
        ));
    }
    let mut out = Vec::new();
    if problems.is_empty() {
        let mut f = Finding::new(
            Code::TlsPlatformCertOk,
            TARGET,
            format!(
                "the platform certificate matches its key, chains to {} and is valid for {names}",
                tls.trust()
            ),
        )
        .evidence("hosts", plan.hosts.clone());
        if let Some(i) = &info {
            f = f.evidence("chain", super::tls::chain_json(std::slice::from_ref(i)));
        }
        out.push(f);
        if let Some(i) = &info {
            let days = i.days_left();
            if days < i64::from(tls.expiry_warning_days()) {
                out.push(
                    Finding::new(
                        Code::TlsExpiringSoon,
                        TARGET,
                        format!(
                            "the platform certificate expires in {days} days ({}), within the {}-day warning window",
                            i.not_after,
                            tls.expiry_warning_days()
                        ),
                    )
                    .evidence("days_left", days),
                );
            }
        }
    } else {
        let mut f = invalid(plan, problems);
        if !missing.is_empty() {
            f = f.evidence("missing_hosts", missing);
        }
        if let Some(i) = &info {
            f = f.evidence("chain", super::tls::chain_json(std::slice::from_ref(i)));
        }
        out.push(f);
    }
    out
}

fn invalid(plan: &PlatformCertPlan, problems: Vec<String>) -> Finding {
    Finding::new(
        Code::TlsPlatformCertInvalid,
        TARGET,
        format!(
            "the platform certificate will be rejected: {}",
            problems.join("; ")
        ),
    )
    .evidence("hosts", plan.hosts.clone())
    .evidence("problems", problems)
}

fn key_der(key: &Secret) -> Option<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).ok()
}
