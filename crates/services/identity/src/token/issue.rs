//! Issuing access tokens: the claims identity puts in a token, signed with its active key.

use flotilla_chassis::Role;

use super::{AccessClaims, SigningError, SigningKey};
use crate::IdentityConfig;

/// Mints access tokens for one issuer and audience with one lifetime.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    key: SigningKey,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl TokenIssuer {
    /// An issuer signing with `key`, with the issuer, audience and lifetime of `config`.
    pub fn new(key: SigningKey, config: &IdentityConfig) -> Self {
        Self {
            key,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl_secs: i64::try_from(config.token_ttl_secs).unwrap_or(i64::MAX),
        }
    }

    /// The key tokens are signed with.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The lifetime of issued tokens, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        u64::try_from(self.ttl_secs).unwrap_or(0)
    }

    /// The claims of a token for `user_id` with `role`, issued at `now_secs` (Unix seconds).
    pub fn claims(&self, user_id: &str, role: Role, now_secs: i64) -> AccessClaims {
        AccessClaims {
            sub: user_id.to_owned(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now_secs.saturating_add(self.ttl_secs),
            iat: now_secs,
            nbf: Some(now_secs),
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// A signed token for `user_id` with `role`, issued at `now_secs`.
    pub fn issue(&self, user_id: &str, role: Role, now_secs: i64) -> Result<String, SigningError> {
        self.key.sign(&self.claims(user_id, role, now_secs))
    }
}
