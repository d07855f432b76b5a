//! Authentication at the edge: turns a bearer token or session cookie into a verified
//! [`Caller`], using identity's token rules ([`TokenVerifier`]) and its published keys.
//!
//! A token that verified is remembered until it expires (at most [`VERIFIED_TOKENS`] of them,
//! the least recently used forgotten first), keyed by the whole token: a client sends the same
//! token on every request, and an Ed25519 signature check per request more than halved the
//! gateway's throughput (docs/benchmarks.md). Every check a token passed depends only on the
//! token and the clock — its signature, issuer, audience, lifetime and `nbf` — so until its
//! `exp` the same token would pass again; past it, the full check runs (and refuses it).

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

/// Tokens remembered as verified, at most.
pub const VERIFIED_TOKENS: usize = 10_000;

/// Verifies tokens against identity's keys.
pub struct Authenticator {
    verifier: TokenVerifier,
    keys: KeyCache,
    clock: SharedClock,
    /// Token → the caller it names and its `exp` (seconds).
    verified: quick_cache::sync::Cache<Box<str>, (Caller, i64)>,
}

impl Authenticator {
    /// An authenticator with identity's rules, key cache and a clock.
    pub fn new(verifier: TokenVerifier, keys: KeyCache, clock: SharedClock) -> Self {
        Self {
            verifier,
            keys,
            clock,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
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
        if let Some((caller, exp)) = self.verified.get(token)
            && now < exp
        {
            return Ok(caller);
        }
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
        let caller = Caller {
            user_id: claims.sub,
            role: claims.role,
        };
        self.verified
            .insert(token.into(), (caller.clone(), claims.exp));
        Ok(caller)
    }
}
