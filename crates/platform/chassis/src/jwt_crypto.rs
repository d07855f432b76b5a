//! The cryptography behind every JSON Web Token in Flotilla, on `ring`.
//!
//! jsonwebtoken signs and verifies through a process-wide `CryptoProvider`; it ships two,
//! aws-lc-rs (a C library whose build was the largest single step of a first `cargo build`,
//! issue 10) and RustCrypto (which brings the `rsa` crate and its unfixed RUSTSEC-2023-0071).
//! Flotilla uses exactly two algorithms — HS256 for service credentials
//! ([`crate::service_credential`]) and EdDSA (Ed25519) for user tokens (identity) — so this
//! module is that provider for those two on `ring`, which the rest of the tree (rustls through
//! async-nats) already builds. Every other algorithm is refused as `InvalidAlgorithm`, which is
//! what a verifier must do with a token whose `alg` it did not choose anyway.
//!
//! The cryptography itself is ring's: HMAC verification is constant-time (`ring::hmac::verify`),
//! Ed25519 is `ring::signature`. [`install`] must run before the first token is signed or
//! checked; the chassis calls it wherever keys are made, so a service never has to.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use ring::{digest, hmac};

/// Installs the provider for this process; later calls (and a provider installed first by
/// someone else) are fine.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed: it was this one (the Once guards
        // ours), or a test's own, which it chose on purpose.
        let _ = PROVIDER.install_default();
    });
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        ed_pub_components_from_private_key: ed_public_key,
        compute_digest: digest_of,
        ..KeyUtils::new_unimplemented()
    },
};

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    match (algorithm, key.family()) {
        (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(hmac::Key::new(
            hmac::HMAC_SHA256,
            key.as_bytes(),
        )))),
        (Algorithm::EdDSA, AlgorithmFamily::Ed) => Ok(Box::new(EdDsaSigner(
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.as_bytes())
                .map_err(|_| ErrorKind::InvalidEddsaKey)?,
        ))),
        (Algorithm::HS256 | Algorithm::EdDSA, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    match (algorithm, key.family()) {
        (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(hmac::Key::new(
            hmac::HMAC_SHA256,
            key.try_get_as_bytes()?,
        )))),
        (Algorithm::EdDSA, AlgorithmFamily::Ed) => {
            Ok(Box::new(EdDsaVerifier(key.try_get_as_bytes()?.to_vec())))
        }
        (Algorithm::HS256 | Algorithm::EdDSA, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// The public half of an Ed25519 private key (PKCS#8 DER), for a JWK's `x`.
fn ed_public_key(private_key: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    match curve {
        EllipticCurve::Ed25519 => Ok(Ed25519KeyPair::from_pkcs8_maybe_unchecked(private_key)
            .map_err(|_| ErrorKind::InvalidEddsaKey)?
            .public_key()
            .as_ref()
            .to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// A JWK thumbprint's hash (RFC 7638).
fn digest_of(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}

struct Hs256(hmac::Key);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        Ok(hmac::sign(&self.0, message).as_ref().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        hmac::verify(&self.0, message, tag).map_err(|_| SignatureError::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

struct EdDsaSigner(Ed25519KeyPair);

impl Signer<Vec<u8>> for EdDsaSigner {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        Ok(self.0.sign(message).as_ref().to_vec())
    }
}

impl JwtSigner for EdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

/// The raw 32-byte public key.
struct EdDsaVerifier(Vec<u8>);

impl Verifier<Vec<u8>> for EdDsaVerifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), SignatureError> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for EdDsaVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation, decode, encode};
    use ring::rand::SystemRandom;
    use serde_json::{Value, json};

    fn claims() -> Value {
        json!({"sub": "u1", "exp": jsonwebtoken::get_current_timestamp() + 60})
    }

    #[test]
    fn hs256_round_trips_and_refuses_another_secret_or_a_changed_token() {
        install();
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"one secret"),
        )
        .expect("signed");
        let validation = Validation::new(Algorithm::HS256);
        let good = DecodingKey::from_secret(b"one secret");
        assert!(decode::<Value>(&token, &good, &validation).is_ok());
        let other = DecodingKey::from_secret(b"another secret");
        assert!(decode::<Value>(&token, &other, &validation).is_err());
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(decode::<Value>(&tampered, &good, &validation).is_err());
    }

    #[test]
    fn eddsa_round_trips_and_refuses_another_key() {
        install();
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
        let token = encode(
            &Header::new(Algorithm::EdDSA),
            &claims(),
            &EncodingKey::from_ed_der(pkcs8.as_ref()),
        )
        .expect("signed");
        let validation = Validation::new(Algorithm::EdDSA);
        let public = DecodingKey::from_ed_der(pair.public_key().as_ref());
        assert!(decode::<Value>(&token, &public, &validation).is_ok());
        let stranger = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let stranger = Ed25519KeyPair::from_pkcs8(stranger.as_ref()).expect("pair");
        let wrong = DecodingKey::from_ed_der(stranger.public_key().as_ref());
        assert!(decode::<Value>(&token, &wrong, &validation).is_err());
        assert_eq!(
            ed_public_key(pkcs8.as_ref(), &EllipticCurve::Ed25519).expect("x"),
            pair.public_key().as_ref()
        );
    }

    #[test]
    fn other_algorithms_and_mismatched_keys_are_refused_not_panicked_on() {
        install();
        for algorithm in [Algorithm::RS256, Algorithm::ES256, Algorithm::HS512] {
            let signed = encode(
                &Header::new(algorithm),
                &claims(),
                &EncodingKey::from_secret(b"k"),
            );
            assert!(signed.is_err(), "{algorithm:?} must be refused");
        }
        // An HMAC key offered for EdDSA.
        let signed = encode(
            &Header::new(Algorithm::EdDSA),
            &claims(),
            &EncodingKey::from_secret(b"k"),
        );
        assert!(signed.is_err());
    }

    #[test]
    fn thumbprint_digests_match_the_standard_sha_256() {
        let hex: String = digest_of(b"abc", ThumbprintHash::SHA256)
            .expect("digest")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
