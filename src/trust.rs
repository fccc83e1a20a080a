//! Trust anchors: the perimeter's CA bundle, read once and checked.
//!
//! Guarantees:
//! - a bundle that cannot be read, is not PEM, or holds no certificate is a
//!   configuration error naming the file and what to point at instead;
//! - nothing here touches the network: `config` checks the bundle while the
//!   plan is validated, `probe::tls` builds its root store from it.
//!
//! Below both `config` and `probe` (docs/architecture.md): the plan and the
//! probes read trust the same way without one importing the other.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::error::InputError;

/// Reads a PEM bundle; an unreadable file or one with no certificate is a
/// configuration error.
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, InputError> {
    let bytes = std::fs::read(path).map_err(|e| InputError::unreadable(path, "CA bundle", e))?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        let c = c.map_err(|e| {
            InputError::Config(format!(
                "{}: not a valid PEM certificate bundle ({e}); point ca_bundle or --ca-bundle at the perimeter CA's PEM file",
                path.display()
            ))
        })?;
        certs.push(c);
    }
    if certs.is_empty() {
        return Err(InputError::Config(format!(
            "{}: holds no PEM certificate; point ca_bundle or --ca-bundle at the perimeter CA's PEM file",
            path.display()
        )));
    }
    Ok(certs)
}
