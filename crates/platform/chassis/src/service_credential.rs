//! Service credentials: how one Flotilla process proves to another that it is part of the fleet.
//!
//! A short-lived HS256 token signed with the cluster secret travels in `x-flotilla-service-token`
//! on every HTTP hop between services (never on the in-process transport, which is trusted by
//! construction). A receiving service only believes the caller-identity headers of a request that
//! carries a valid one. Tokens are cached by the minting side and renewed before they expire.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header carrying the credential.
pub static SERVICE_TOKEN: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-flotilla-service-token");

const AUDIENCE: &str = "flotilla-internal";
const LIFETIME: Duration = Duration::from_secs(300);
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// Why a credential was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid service credential: {0}")]
pub struct InvalidCredential(#[from] jsonwebtoken::errors::Error);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Mints and verifies service credentials with one shared secret.
pub struct ServiceCredentials {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// (token, expiry) of the last minted token; a plain mutex because it is held for a few
    /// instructions and never across an await.
    cache: Mutex<Option<(String, SystemTime)>>,
    caller: String,
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCredentials")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl ServiceCredentials {
    /// Credentials for a process named `caller` (used as the token's subject).
    pub fn new(secret: &[u8], caller: impl Into<String>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            cache: Mutex::new(None),
            caller: caller.into(),
        }
    }

    /// A valid token, minted anew only when the cached one is close to expiry.
    pub fn token(&self) -> String {
        let now = SystemTime::now();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((token, expires)) = cache.as_ref()
            && *expires > now + RENEW_BEFORE
        {
            return token.clone();
        }
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims {
            sub: self.caller.clone(),
            aud: AUDIENCE.to_owned(),
            iat,
            exp: iat + LIFETIME.as_secs(),
        };
        // HS256 encoding with a byte secret cannot fail; an empty token would simply be refused.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default();
        *cache = Some((token.clone(), now + LIFETIME));
        token
    }

    /// Verifies a token and returns the calling process's name.
    pub fn verify(&self, token: &str) -> Result<String, InvalidCredential> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        Ok(data.claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_own_tokens_and_rejects_foreign_ones() {
        let a = ServiceCredentials::new(b"secret-a-0123456789abcdef0123456789", "gateway");
        let b = ServiceCredentials::new(b"secret-b-0123456789abcdef0123456789", "gateway");
        let token = a.token();
        assert_eq!(a.verify(&token).expect("valid"), "gateway");
        assert_eq!(a.token(), token, "cached");
        assert!(b.verify(&token).is_err());
        assert!(a.verify("garbage").is_err());
    }
}
