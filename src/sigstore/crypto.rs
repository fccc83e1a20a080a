//! The cryptography under `sigstore-verify`, on the project's one provider.
//!
//! `sigstore-verify` defaults to aws-lc-rs, which `deny.toml` bans (one
//! crypto provider in the tree: ring). Built without its default features it
//! asks for a [`CryptoProvider`]; this one answers with ring for hashing and
//! for every signature over a message, and with the RustCrypto `p256`/`p384`
//! crates for ECDSA over a precomputed digest (ring verifies messages only,
//! and `sigstore-verify` hashes an artifact once, as it streams, then checks
//! the signature over that digest).
//!
//! Guarantees:
//! - installed once per process, before any verification ([`install`]);
//! - verification only: this provider cannot generate keys or sign;
//! - what it cannot check is an error (`UnsupportedAlgorithm`), never a pass:
//!   RSA signatures over a precomputed digest (ring has no such API), and
//!   ML-DSA, are rejected with a reason naming the scheme.

use sigstore_verify::crypto::{CryptoProvider, Error, HashContext, Result, SigningScheme};
use sigstore_verify::types::HashAlgorithm;

#[derive(Debug)]
struct RingProvider;

static PROVIDER: RingProvider = RingProvider;

/// Installs the provider for this process. Idempotent: a second call (or a
/// provider installed earlier) leaves the first in place, which is this one,
/// since nothing else in the program installs one.
pub fn install() {
    let _ = sigstore_verify::crypto::install_default_provider(&PROVIDER);
}

struct RingHash(ring::digest::Context);

impl HashContext for RingHash {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data)
    }

    fn finalize(self: Box<Self>) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

/// ring's algorithm for a scheme; its key format is what the provider
/// receives (SEC1 point for ECDSA, raw key for Ed25519, PKCS#1 for RSA).
fn ring_algorithm(
    scheme: SigningScheme,
) -> Result<&'static dyn ring::signature::VerificationAlgorithm> {
    use ring::signature as s;
    Ok(match scheme {
        SigningScheme::EcdsaP256Sha256 => &s::ECDSA_P256_SHA256_ASN1,
        SigningScheme::EcdsaP256Sha384 => &s::ECDSA_P256_SHA384_ASN1,
        SigningScheme::EcdsaP384Sha256 => &s::ECDSA_P384_SHA256_ASN1,
        SigningScheme::EcdsaP384Sha384 => &s::ECDSA_P384_SHA384_ASN1,
        SigningScheme::Ed25519 => &s::ED25519,
        SigningScheme::RsaPssSha256 => &s::RSA_PSS_2048_8192_SHA256,
        SigningScheme::RsaPssSha384 => &s::RSA_PSS_2048_8192_SHA384,
        SigningScheme::RsaPssSha512 => &s::RSA_PSS_2048_8192_SHA512,
        SigningScheme::RsaPkcs1Sha256 => &s::RSA_PKCS1_2048_8192_SHA256,
        SigningScheme::RsaPkcs1Sha384 => &s::RSA_PKCS1_2048_8192_SHA384,
        SigningScheme::RsaPkcs1Sha512 => &s::RSA_PKCS1_2048_8192_SHA512,
        other => {
            return Err(Error::UnsupportedAlgorithm(format!(
                "{} signatures are not supported by this build",
                other.name()
            )))
        }
    })
}

impl CryptoProvider for RingProvider {
    fn hash(&self, algorithm: HashAlgorithm) -> Result<Box<dyn HashContext>> {
        let alg = match algorithm {
            HashAlgorithm::Sha2256 => &ring::digest::SHA256,
            HashAlgorithm::Sha2384 => &ring::digest::SHA384,
            HashAlgorithm::Sha2512 => &ring::digest::SHA512,
            other => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "cannot compute {other} digests"
                )))
            }
        };
        Ok(Box::new(RingHash(ring::digest::Context::new(alg))))
    }

    fn verify_raw(
        &self,
        scheme: SigningScheme,
        key: &[u8],
        data: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        ring::signature::UnparsedPublicKey::new(ring_algorithm(scheme)?, key)
            .verify(data, signature)
            .map_err(|_| Error::Verification(format!("{} signature invalid", scheme.name())))
    }

    fn verify_prehashed(
        &self,
        scheme: SigningScheme,
        key: &[u8],
        digest: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let invalid = || Error::Verification(format!("{} signature invalid", scheme.name()));
        match scheme {
            SigningScheme::EcdsaP256Sha256 | SigningScheme::EcdsaP256Sha384 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|_| invalid())?;
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| invalid())?;
                key.verify_prehash(digest, &sig).map_err(|_| invalid())
            }
            SigningScheme::EcdsaP384Sha256 | SigningScheme::EcdsaP384Sha384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|_| invalid())?;
                let sig = p384::ecdsa::Signature::from_der(signature).map_err(|_| invalid())?;
                key.verify_prehash(digest, &sig).map_err(|_| invalid())
            }
            other => Err(Error::UnsupportedAlgorithm(format!(
                "{} signatures over a digest are not supported by this build (ring verifies \
                 messages only)",
                other.name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;

    /// The prehashed path accepts a good signature and rejects a flipped
    /// digest: a provider that always said yes would pass the conformance
    /// happy paths, not this.
    #[test]
    fn prehashed_p256_accepts_good_rejects_bad() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let vk = sk.verifying_key().to_sec1_point(false);
        let digest = ring::digest::digest(&ring::digest::SHA256, b"release");
        let sig: p256::ecdsa::Signature = sk.sign_prehash(digest.as_ref()).unwrap();
        let der = sig.to_der();
        let p = RingProvider;
        p.verify_prehashed(
            SigningScheme::EcdsaP256Sha256,
            vk.as_bytes(),
            digest.as_ref(),
            der.as_bytes(),
        )
        .unwrap();
        // ring's message path agrees with the digest path on the same signature.
        p.verify_raw(
            SigningScheme::EcdsaP256Sha256,
            vk.as_bytes(),
            b"release",
            der.as_bytes(),
        )
        .unwrap();
        let mut bad = digest.as_ref().to_vec();
        bad[0] ^= 1;
        assert!(p
            .verify_prehashed(
                SigningScheme::EcdsaP256Sha256,
                vk.as_bytes(),
                &bad,
                der.as_bytes()
            )
            .is_err());
        assert!(p
            .verify_raw(
                SigningScheme::EcdsaP256Sha256,
                vk.as_bytes(),
                b"releasf",
                der.as_bytes()
            )
            .is_err());
    }

    #[test]
    fn unsupported_schemes_are_errors() {
        let p = RingProvider;
        assert!(matches!(
            p.verify_prehashed(SigningScheme::RsaPkcs1Sha256, b"k", &[0; 32], b"s"),
            Err(Error::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            p.verify_raw(SigningScheme::MlDsa65, b"k", b"m", b"s"),
            Err(Error::UnsupportedAlgorithm(_))
        ));
    }
}
