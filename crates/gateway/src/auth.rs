//! Authentication at the edge: turns a bearer token or session cookie into a verified
//! [`Caller`], using identity's token rules ([`TokenVerifier`]) and its published keys.

use axum::http::{HeaderMap, header};
use flotilla_chassis::Caller;
use flotilla_chassis::clock::SharedClock;
use flotilla_identity::token::{TokenError, TokenVerifier};

use crate::keys::KeyCache;

/// The cookie the storefront sets at log-in.
pub const SESSION_COOKIE: &str = "flotilla_token";

/// Why a presented credential was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential was presented where one is required.
    #[error("a bearer token is required")]
    Missing,
    /// The `Authorization` header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    BadScheme,
    /// The token failed verification.
    #[error("invalid token: {0}")]
    Invalid(#[from] TokenError),
    /// Identity's keys could not be fetched, so no token can be checked.
    #[error("signing keys are unavailable")]
    KeysUnavailable,
}

/// Verifies tokens against identity's keys.
pub struct Authenticator {
    verifier: TokenVerifier,
    keys: KeyCache,
    clock: SharedClock,
}

impl Authenticator {
    /// An authenticator with identity's rules, key cache and a clock.
    pub fn new(verifier: TokenVerifier, keys: KeyCache, clock: SharedClock) -> Self {
        Self {
            verifier,
            keys,
            clock,
        }
    }

    /// The bearer token in `headers`, if any: `Ok(None)` when there is no Authorization header.
    pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| AuthError::BadScheme)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::BadScheme)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::BadScheme);
        }
        Ok(Some(token.trim()))
    }

    /// The session cookie's token, if any.
    pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, value)| value)
            .filter(|v| !v.is_empty())
    }

    /// Verifies `token`; refreshes the key set once if the token names an unknown key.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let now = self.clock.now_secs();
        let keys = self
            .keys
            .current()
            .await
            .ok_or(AuthError::KeysUnavailable)?;
        let claims = match self.verifier.verify(token, &keys, now) {
            Err(TokenError::UnknownKey { .. }) => {
                let keys = self
                    .keys
                    .refresh()
                    .await
                    .ok_or(AuthError::KeysUnavailable)?;
                self.verifier.verify(token, &keys, now)?
            }
            other => other?,
        };
        Ok(Caller {
            user_id: claims.sub,
            role: claims.role,
        })
    }
}
