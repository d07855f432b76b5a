//! Access tokens: what they claim, how identity signs them and how the gateway verifies them.
//!
//! A token is a JWT signed with Ed25519 (`alg: EdDSA`) under a key whose public half is published
//! in the JWKS and named by the token's `kid` header. Signing lives in [`SigningKey`] and
//! [`TokenIssuer`] (used by the service, and by tests that need to mint tokens); verification
//! lives in [`TokenVerifier`] (used by the gateway). Verification takes the current time as an
//! argument instead of reading the system clock, so clock-skew behaviour is testable and the
//! same under simulation.
//!
//! The rules follow RFC 8725 (JWT best current practices): one allow-listed algorithm, keys only
//! from the verifier's own key set (never from `jku`, `x5u` or an embedded `jwk`), and explicit
//! checks of issuer, audience and lifetime.

mod issue;
mod signing;
mod verify;

#[cfg(test)]
mod tests;

use flotilla_chassis::{Problem, Role};
use serde::{Deserialize, Serialize};

pub use issue::TokenIssuer;
pub use signing::{SigningError, SigningKey, public_jwk};
pub use verify::TokenVerifier;

/// The claims of a Flotilla access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The user's role when the token was issued.
    pub role: Role,
    /// Who issued the token.
    pub iss: String,
    /// Who the token is for.
    pub aud: String,
    /// Expiry, in Unix seconds: the token is invalid from this second on (plus leeway).
    pub exp: i64,
    /// Issue time, in Unix seconds.
    pub iat: i64,
    /// Not valid before, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// A unique token id (for logs now, for a deny-list if one is ever needed).
    pub jti: String,
}

/// Why a token was refused. Every variant means 401 to the client; the variants exist for the
/// gateway's logic and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header and payload.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The token names a key the given key set does not hold (or names none). The gateway
    /// should refresh its JWKS once and retry: the issuer may have rotated its keys.
    #[error("the token was signed with a key the issuer does not publish")]
    UnknownKey {
        /// The `kid` header, if there was one.
        kid: Option<String>,
    },
    /// The token is well formed but must not be accepted: disallowed algorithm or header, bad
    /// signature, missing or wrong claims.
    #[error("the token is invalid: {0}")]
    Invalid(String),
    /// The token's `exp` is past, beyond the leeway.
    #[error("the token has expired")]
    Expired,
    /// The token's `nbf` or `iat` is in the future, beyond the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// The answer a client gets for a refused token: always 401, with no more detail than it needs
/// (whether to log in again), since the rest would only help an attacker.
impl From<TokenError> for Problem {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Expired => Problem::unauthorized("the access token has expired"),
            _ => Problem::unauthorized("the access token is not valid"),
        }
    }
}
