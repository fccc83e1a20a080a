//! TLS for every probe: trust only the perimeter's CA, and say exactly what
//! the server presented.
//!
//! Guarantees:
//! - the only trust anchors are the configured CA bundle (`ca_bundle`,
//!   `--ca-bundle`); the machine's store is added only with `--system-roots`.
//!   Why: the nodes that will talk to these services trust the perimeter's
//!   CA, so a certificate that only a public root vouches for would pass here
//!   and fail there;
//! - every TLS finding, pass or fail, carries the chain the server presented
//!   (subject, issuer, SANs, expiry), captured before verification so a
//!   failure shows what was wrong;
//! - verification failures map to stable codes (unknown issuer, expired,
//!   name mismatch); a valid certificate that expires within the warning
//!   window adds `tls:expiring-soon`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

use crate::config::Perimeter;
use crate::error::InputError;
use crate::finding::{Code, Finding};

/// Debian's bundle of the machine's trusted roots (`--system-roots`).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub use crate::trust::load_ca_bundle;

/// Trust settings shared by every probe of a run.
#[derive(Clone)]
pub struct TlsSettings {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    expiry_warning_days: u32,
    /// How trust was configured, for evidence.
    trust: String,
}

impl TlsSettings {
    pub fn new(plan: &Perimeter) -> Result<TlsSettings, InputError> {
        let mut roots = RootCertStore::empty();
        let mut trust = Vec::new();
        if let Some(ca) = &plan.ca_bundle {
            for c in load_ca_bundle(ca)? {
                roots.add(c).map_err(|e| {
                    InputError::Config(format!(
                        "{}: a certificate cannot be used as a trust anchor ({e})",
                        ca.display()
                    ))
                })?;
            }
            trust.push(format!("ca_bundle {}", ca.display()));
        }
        if plan.system_roots {
            let path = PathBuf::from(SYSTEM_BUNDLE);
            let (added, _) = roots.add_parsable_certificates(load_ca_bundle(&path)?);
            trust.push(format!("{added} system roots from {SYSTEM_BUNDLE}"));
        }
        if trust.is_empty() {
            trust.push("none: no ca_bundle configured".into());
        }
        Ok(TlsSettings {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            expiry_warning_days: plan.expiry_warning_days,
            trust: trust.join(", "),
        })
    }

    /// How trust is configured (`ca_bundle PATH`, ...), for messages.
    pub fn trust(&self) -> &str {
        &self.trust
    }

    pub fn expiry_warning_days(&self) -> u32 {
        self.expiry_warning_days
    }

    /// Verifies `chain` (leaf first) for `host` against the trust anchors,
    /// as a client connecting now would; the error is the code and reason a
    /// handshake would give.
    pub fn verify_chain(
        &self,
        chain: &[CertificateDer<'static>],
        host: &str,
    ) -> Result<(), (Code, String)> {
        let Some((leaf, rest)) = chain.split_first() else {
            return Err((Code::TlsUnknownIssuer, "no certificate".into()));
        };
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| {
            (
                Code::TlsUnknownIssuer,
                format!("no trust anchor to verify against ({e}); set ca_bundle"),
            )
        })?;
        let name = ServerName::try_from(host.to_string()).map_err(|_| {
            (
                Code::TlsNameMismatch,
                format!("`{host}` cannot be used as a TLS server name"),
            )
        })?;
        verifier
            .verify_server_cert(leaf, rest, &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| classify_rustls(&e))
    }

    /// Whether `key` is the private key of the leaf of `chain`.
    pub fn keys_match(
        &self,
        chain: &[CertificateDer<'static>],
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<(), String> {
        let signing = self
            .provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| e.to_string())?;
        rustls::sign::CertifiedKey::new(chain.to_vec(), signing)
            .keys_match()
            .map_err(|e| e.to_string())
    }

    fn client_config(
        &self,
        seen: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    ) -> Arc<rustls::ClientConfig> {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            self.provider.clone(),
        )
        .build();
        let verifier = Arc::new(Capturing {
            inner: inner.ok(),
            provider: self.provider.clone(),
            seen,
        });
        let cfg = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Arc::new(cfg)
    }

    /// A verifying client configuration with the same trust, for HTTP
    /// clients. Probes run [`TlsSettings::handshake`] first, so the chain is
    /// reported from there; this one only has to refuse what that refused.
    pub fn verifying_config(&self) -> rustls::ClientConfig {
        let cfg = self.client_config(Arc::new(Mutex::new(Vec::new())));
        (*cfg).clone()
    }

    /// Runs a TLS handshake over `io` for `host`. On success, returns the
    /// stream and the `tls:*` findings (verified, maybe expiring soon); on
    /// failure, the findings that say why.
    pub async fn handshake<S>(
        &self,
        io: S,
        host: &str,
        target: &str,
        timeout: Duration,
    ) -> Result<(TlsStream<S>, Vec<Finding>), Vec<Finding>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connector = tokio_rustls::TlsConnector::from(self.client_config(seen.clone()));
        let name = match ServerName::try_from(host.to_string()) {
            Ok(n) => n,
            Err(_) => {
                return Err(vec![Finding::new(
                    Code::TlsHandshakeFailed,
                    target,
                    format!("`{host}` cannot be used as a TLS server name"),
                )])
            }
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(timeout, connector.connect(name, io)).await;
        let chain = seen.lock().map(|c| c.clone()).unwrap_or_default();
        let chain_info: Vec<CertInfo> = chain.iter().filter_map(|c| CertInfo::parse(c)).collect();
        let with_chain = |f: Finding| {
            f.evidence("chain", chain_json(&chain_info))
                .evidence("trust", self.trust.clone())
                .evidence("server_name", host)
                .duration_ms(started.elapsed().as_millis() as u64)
        };
        match result {
            Err(_) => Err(vec![super::net::NetError::NoReply(timeout)
                .finding(target, "TLS handshake")
                .evidence("step", "tls-handshake")]),
            Ok(Err(e)) => {
                let (code, mut why) = classify(&e);
                if code == Code::TlsUnknownIssuer {
                    why.push_str(&missing_issuer(&chain_info));
                }
                Err(vec![with_chain(Finding::new(
                    code,
                    target,
                    format!("TLS handshake with {host} failed: {why}"),
                ))])
            }
            Ok(Ok(stream)) => {
                let (_, conn) = stream.get_ref();
                let version = conn
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                let mut out = vec![with_chain(
                    Finding::new(
                        Code::TlsVerified,
                        target,
                        format!("certificate for {host} verified against {}", self.trust),
                    )
                    .evidence("protocol", version),
                )];
                if let Some(leaf) = chain_info.first() {
                    let days = leaf.days_left();
                    if days < i64::from(self.expiry_warning_days) {
                        out.push(with_chain(
                            Finding::new(
                                Code::TlsExpiringSoon,
                                target,
                                format!(
                                    "certificate for {host} expires in {days} days ({}), within the {}-day warning window",
                                    leaf.not_after, self.expiry_warning_days
                                ),
                            )
                            .evidence("days_left", days),
                        ));
                    }
                }
                Ok((stream, out))
            }
        }
    }
}

/// For an unknown issuer: who issued the last certificate the server sent.
/// When that one is not self-signed, the server most likely omits an
/// intermediate (an incomplete chain), the commonest cause on internal PKIs;
/// naming it tells the operator which certificate to add to the served chain.
fn missing_issuer(chain: &[CertInfo]) -> String {
    match chain.last() {
        Some(last) if last.issuer != last.subject => format!(
            "; the chain sent ends with `{}`, issued by `{}`, which the server did not send and the CA bundle does not hold (a missing intermediate?)",
            last.subject, last.issuer
        ),
        Some(last) => format!("; the chain sent ends with the self-signed `{}`", last.subject),
        None => String::new(),
    }
}

/// Maps a handshake error to a code and a one-line reason.
fn classify(e: &std::io::Error) -> (Code, String) {
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return (Code::TlsHandshakeFailed, e.to_string());
    };
    classify_rustls(err)
}

/// Maps a rustls error (of a handshake or a verification) to a code and a
/// one-line reason.
fn classify_rustls(err: &rustls::Error) -> (Code, String) {
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnhandledCriticalExtension => (
                Code::TlsUnknownIssuer,
                "the certificate does not chain to the configured CA bundle".into(),
            ),
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => (
                Code::TlsExpired,
                format!("the certificate is outside its validity period ({c:?})"),
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                (
                    Code::TlsNameMismatch,
                    "the certificate does not name this host".into(),
                )
            }
            other => (
                Code::TlsUnknownIssuer,
                format!("certificate rejected: {other:?}"),
            ),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => (
            Code::TlsHandshakeFailed,
            format!("the server does not speak TLS on this port ({err})"),
        ),
        other => (Code::TlsHandshakeFailed, other.to_string()),
    }
}

/// Delegates to webpki, after recording what the server presented.
#[derive(Debug)]
struct Capturing {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Arc<Mutex<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(end_entity.clone().into_owned());
            seen.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        }
        match &self.inner {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            // An empty root store: nothing can be trusted.
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a report says about one certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_after: String,
    pub not_after_unix: i64,
}

impl CertInfo {
    pub fn parse(der: &CertificateDer<'_>) -> Option<CertInfo> {
        use x509_parser::prelude::*;
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for n in &ext.value.general_names {
                match n {
                    GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                    GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b)
                                .ok()
                                .map(|a| std::net::IpAddr::from(a).to_string()),
                            16 => <[u8; 16]>::try_from(*b)
                                .ok()
                                .map(|a| std::net::IpAddr::from(a).to_string()),
                            _ => None,
                        };
                        sans.push(format!("IP:{}", ip.unwrap_or_else(|| hex::encode(b))));
                    }
                    other => sans.push(format!("{other}")),
                }
            }
        }
        let not_after_unix = cert.validity().not_after.timestamp();
        let not_after = u64::try_from(not_after_unix)
            .ok()
            .map(|s| crate::timefmt::rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)))
            .unwrap_or_else(|| not_after_unix.to_string());
        Some(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sans,
            not_after,
            not_after_unix,
        })
    }

    pub fn days_left(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        (self.not_after_unix - now).div_euclid(86_400)
    }
}

pub(crate) fn chain_json(chain: &[CertInfo]) -> serde_json::Value {
    chain
        .iter()
        .map(|c| {
            serde_json::json!({
                "subject": c.subject,
                "issuer": c.issuer,
                "sans": c.sans,
                "not_after": c.not_after,
            })
        })
        .collect()
}
