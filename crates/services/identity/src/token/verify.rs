//! Verifying access tokens, in an order that never trusts what has not been checked yet:
//! shape → header rules (algorithm allow-list, no remote or embedded keys) → key lookup by `kid`
//! in the verifier's own key set → signature → claims (presence, issuer, audience) → lifetime
//! against the caller's clock.
//!
//! The header is parsed here as plain JSON rather than through `jsonwebtoken::Header`, so that
//! tokens that library cannot even represent (`alg: none`, unknown algorithms) get a precise
//! answer, and so that header fields are rejected by name. The signature itself is checked by
//! `jsonwebtoken::crypto::verify` (ring underneath: `flotilla_chassis::jwt_crypto`). `jsonwebtoken::decode` is not used
//! because it reads the system clock for `exp`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::{AccessClaims, TokenError};
use crate::IdentityConfig;

/// The only algorithm accepted, by its header name.
const ALGORITHM: &str = "EdDSA";
/// Header parameters that would let a token choose its own verification key (RFC 8725 §3.10),
/// or demand extensions this verifier does not implement (`crit`, RFC 7515 §4.1.11).
const FORBIDDEN_HEADERS: &[&str] = &["jku", "x5u", "jwk", "x5c", "crit"];
/// Claims every token must carry.
const REQUIRED_CLAIMS: &[&str] = &["sub", "iss", "aud", "exp", "iat"];
/// Longest token considered; a bound on the work a hostile header can cause.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verifies access tokens for one issuer and audience.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    issuer: String,
    audience: String,
    leeway_secs: i64,
    /// The longest `exp - iat` identity issues: a token claiming more was not minted by these
    /// rules (a leaked key, or a clock far ahead), however valid its signature.
    max_lifetime_secs: i64,
}

impl TokenVerifier {
    /// A verifier accepting the issuer and audience of `config`, with its leeway.
    pub fn new(config: &IdentityConfig) -> Self {
        flotilla_chassis::jwt_crypto::install();
        Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_secs: i64::try_from(config.leeway_secs).unwrap_or(i64::MAX),
            max_lifetime_secs: i64::try_from(config.token_ttl_secs).unwrap_or(i64::MAX),
        }
    }

    /// Checks `token` against the public keys in `keys` at time `now_secs` (Unix seconds) and
    /// returns its claims.
    pub fn verify(
        &self,
        token: &str,
        keys: &JwkSet,
        now_secs: i64,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let Some((signed, signature)) = token.rsplit_once('.') else {
            return Err(TokenError::Malformed);
        };
        let Some((header, payload)) = signed.split_once('.') else {
            return Err(TokenError::Malformed);
        };
        if payload.contains('.') {
            return Err(TokenError::Malformed);
        }

        let header = json_object(header)?;
        check_header(&header)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(TokenError::Malformed),
        };
        let jwk = kid
            .as_deref()
            .and_then(|kid| keys.find(kid))
            .ok_or_else(|| TokenError::UnknownKey { kid: kid.clone() })?;
        let key = ed25519_key(jwk)?;

        let valid =
            jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key, Algorithm::EdDSA)
                .map_err(|_| TokenError::Malformed)?;
        if !valid {
            return Err(TokenError::Invalid("the signature does not verify".into()));
        }

        let mut claims = json_object(payload)?;
        self.accept_audience_list(&mut claims)?;
        if let Some(missing) = REQUIRED_CLAIMS.iter().find(|c| !claims.contains_key(**c)) {
            return Err(TokenError::Invalid(format!(
                "the {missing} claim is missing"
            )));
        }
        let claims: AccessClaims = serde_json::from_value(Value::Object(claims))
            .map_err(|e| TokenError::Invalid(format!("the claims do not parse: {e}")))?;
        self.check_claims(&claims, now_secs)?;
        Ok(claims)
    }

    /// The claim rules, on claims whose signature has been checked.
    fn check_claims(&self, claims: &AccessClaims, now_secs: i64) -> Result<(), TokenError> {
        if claims.sub.is_empty() {
            return Err(TokenError::Invalid("the sub claim is empty".into()));
        }
        if claims.iss != self.issuer {
            return Err(TokenError::Invalid("wrong issuer".into()));
        }
        if claims.aud != self.audience {
            return Err(TokenError::Invalid("wrong audience".into()));
        }
        if claims.exp.saturating_sub(claims.iat)
            > self.max_lifetime_secs.saturating_add(self.leeway_secs)
        {
            return Err(TokenError::Invalid(
                "the token's lifetime exceeds the issuer's".into(),
            ));
        }
        // `exp` is the first instant the token is no longer valid (RFC 7519 §4.1.4).
        if now_secs >= claims.exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
        let latest_start = now_secs.saturating_add(self.leeway_secs);
        if claims.nbf.is_some_and(|nbf| nbf > latest_start) || claims.iat > latest_start {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

impl TokenVerifier {
    /// RFC 7519 §4.1.3: `aud` may be an array of audiences; the token is for this verifier when
    /// its audience is among them. Such a list is replaced by that one audience, so the claim
    /// checks below see a single string either way; a list without it, or with anything but
    /// strings, is refused here.
    fn accept_audience_list(&self, claims: &mut Map<String, Value>) -> Result<(), TokenError> {
        let Some(Value::Array(list)) = claims.get("aud") else {
            return Ok(());
        };
        if list.iter().any(|a| !a.is_string()) {
            return Err(TokenError::Invalid("the aud claim does not parse".into()));
        }
        if !list
            .iter()
            .any(|a| a.as_str() == Some(self.audience.as_str()))
        {
            return Err(TokenError::Invalid("wrong audience".into()));
        }
        claims.insert("aud".into(), Value::String(self.audience.clone()));
        Ok(())
    }
}

impl From<&IdentityConfig> for TokenVerifier {
    fn from(config: &IdentityConfig) -> Self {
        Self::new(config)
    }
}

/// Decodes one base64url JWT part holding a JSON object.
fn json_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed),
    }
}

/// The header rules: the allow-listed algorithm only, and no header that picks its own key.
fn check_header(header: &Map<String, Value>) -> Result<(), TokenError> {
    match header.get("alg") {
        Some(Value::String(alg)) if alg == ALGORITHM => {}
        Some(Value::String(alg)) => {
            return Err(TokenError::Invalid(format!(
                "algorithm {} is not accepted",
                flotilla_chassis::input_message::quote(alg)
            )));
        }
        _ => return Err(TokenError::Malformed),
    }
    if let Some(name) = FORBIDDEN_HEADERS.iter().find(|h| header.contains_key(**h)) {
        return Err(TokenError::Invalid(format!(
            "the {name} header is not accepted"
        )));
    }
    Ok(())
}

/// The verification key of `jwk`, provided it is an Ed25519 signing key (a key set may hold
/// other keys; none of them may verify an EdDSA token).
fn ed25519_key(jwk: &Jwk) -> Result<DecodingKey, TokenError> {
    let not_usable = || TokenError::Invalid("the key is not an Ed25519 signing key".into());
    let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
        return Err(not_usable());
    };
    let alg_ok = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::EdDSA));
    let use_ok = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    if params.curve != EllipticCurve::Ed25519 || !alg_ok || !use_ok {
        return Err(not_usable());
    }
    DecodingKey::from_jwk(jwk).map_err(|_| not_usable())
}
