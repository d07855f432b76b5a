//! Service credentials: how one Flotilla process proves to another that it is part of the fleet,
//! and on whose behalf it calls.
//!
//! A short-lived HS256 token signed with the cluster secret travels in `x-flotilla-service-token`
//! on every HTTP hop between services (never on the in-process transport, which is trusted by
//! construction). Each token is bound to one callee (`aud` is the target service's name) and
//! carries the end user it acts for (`uid`, `role`) inside the signed claims, so a token taken
//! from one call opens neither another service nor another user's data: the receiving side
//! derives the caller from these claims only, never from bare headers. Tokens live
//! [`LIFETIME`]; the minting side caches one per (callee, user) and renews it before it expires,
//! and the verifying side remembers the tokens it has checked until they expire, which keeps both
//! ends of the hot path to a map lookup (`mint_and_verify_cost` below prints the figures). There
//! is no `jti` replay cache: a cached token is by design reused for many calls within its life,
//! and the binding to callee and user is what limits a replay.

use axum::http::HeaderValue;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::caller::{Caller, Role};

/// The header carrying the credential.
pub static SERVICE_TOKEN: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-flotilla-service-token");

/// How long a credential is valid: a call needs seconds, the renewal margin the rest.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// A cached token is replaced once it has less than this left, so none expires in flight.
const RENEW_BEFORE: Duration = Duration::from_secs(20);
/// Clock skew tolerated between two hosts of one fleet.
const LEEWAY_SECS: u64 = 5;
/// Cached tokens kept before expired ones are swept (one per callee and active user).
const CACHE_CAP: usize = 10_000;

/// Why a credential was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidCredential {
    /// Bad signature, expired, malformed or missing claims.
    #[error("invalid service credential: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// Minted for another service.
    #[error("the service credential is for another service")]
    WrongAudience,
    /// Claims a longer life than any Flotilla process mints, or a user without a valid role.
    #[error("the service credential's claims are not ones Flotilla mints")]
    BadClaims,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The calling process (e.g. `flotilla-serve:gateway`).
    sub: String,
    /// The callee: the one service that accepts this token.
    aud: String,
    iat: u64,
    exp: u64,
    /// The end user the call acts for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    /// That user's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
}

/// What a verified credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The calling process.
    pub process: String,
    /// The end user the call acts for, from the signed claims.
    pub caller: Option<Caller>,
}

type CacheKey = (String, Option<(String, Role)>);

/// A token whose signature and claims have been checked.
#[derive(Debug, Clone)]
struct Checked {
    verified: Verified,
    /// The service it was minted for.
    aud: String,
    /// The second from which it is refused (`exp` + leeway).
    until: u64,
}

/// Mints and verifies service credentials with one shared secret.
pub struct ServiceCredentials {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// (token, expiry) per (callee, user); a plain mutex because it is held for a map lookup
    /// and never across an await. Kept as a header value, which an HTTP call clones (a
    /// reference count) instead of copying and checking the token's bytes on every call.
    cache: Mutex<HashMap<CacheKey, (HeaderValue, SystemTime)>>,
    /// Tokens already verified, with what they said and their `exp` (+ leeway): the same bytes
    /// verify the same way until then, so the signature is checked once per token, not per call.
    verified: Mutex<HashMap<String, Checked>>,
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
        crate::jwt_crypto::install();
        let mut validation = Validation::new(Algorithm::HS256);
        // The audience is compared by `verify` against the callee it is given.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "aud", "sub", "iat"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            cache: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            caller: caller.into(),
        }
    }

    /// A valid token for a call to `callee` acting for `user`, minted anew only when the cached
    /// one is close to expiry.
    pub fn token(&self, callee: &str, user: Option<&Caller>) -> String {
        self.token_header(callee, user)
            .to_str()
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// [`Self::token`] as the value of a [`SERVICE_TOKEN`] header.
    pub fn token_header(&self, callee: &str, user: Option<&Caller>) -> HeaderValue {
        let now = SystemTime::now();
        let key: CacheKey = (callee.to_owned(), user.map(|u| (u.user_id.clone(), u.role)));
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((token, expires)) = cache.get(&key)
            && *expires > now + RENEW_BEFORE
        {
            return token.clone();
        }
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims {
            sub: self.caller.clone(),
            aud: callee.to_owned(),
            iat,
            exp: iat + LIFETIME.as_secs(),
            uid: user.map(|u| u.user_id.clone()),
            role: user.map(|u| u.role),
        };
        // HS256 encoding with a byte secret cannot fail, and a JWT is base64url and dots, a
        // valid header value; an empty token would simply be refused.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .ok()
            .and_then(|token| HeaderValue::from_str(&token).ok())
            .unwrap_or_else(|| HeaderValue::from_static(""));
        if cache.len() >= CACHE_CAP {
            cache.retain(|_, (_, expires)| *expires > now + RENEW_BEFORE);
            if cache.len() >= CACHE_CAP {
                cache.clear();
            }
        }
        cache.insert(key, (token.clone(), now + LIFETIME));
        token
    }

    /// Verifies a token presented to service `callee`: signature, lifetime, and that it was
    /// minted for `callee`. Returns the calling process and the user it acts for.
    pub fn verify(&self, token: &str, callee: &str) -> Result<Verified, InvalidCredential> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let checked = match self.remembered(token, now) {
            Some(hit) => hit,
            None => {
                let checked = self.check(token)?;
                self.remember(token, &checked, now);
                checked
            }
        };
        if checked.aud != callee {
            return Err(InvalidCredential::WrongAudience);
        }
        Ok(checked.verified)
    }

    /// A token verified earlier that has not expired since.
    fn remembered(&self, token: &str, now: u64) -> Option<Checked> {
        let cache = self
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.get(token).filter(|c| c.until > now).cloned()
    }

    fn remember(&self, token: &str, checked: &Checked, now: u64) {
        let mut cache = self
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_CAP {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= CACHE_CAP {
                cache.clear();
            }
        }
        cache.insert(token.to_owned(), checked.clone());
    }

    /// The full check: signature, expiry, lifetime, user claims.
    fn check(&self, token: &str) -> Result<Checked, InvalidCredential> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        if claims.exp.saturating_sub(claims.iat) > LIFETIME.as_secs() + LEEWAY_SECS {
            return Err(InvalidCredential::BadClaims);
        }
        let caller = match (claims.uid, claims.role) {
            (None, None) => None,
            (Some(user_id), Some(role)) if !user_id.is_empty() && user_id.len() <= 128 => {
                Some(Caller { user_id, role })
            }
            _ => return Err(InvalidCredential::BadClaims),
        };
        Ok(Checked {
            verified: Verified {
                process: claims.sub,
                caller,
            },
            aud: claims.aud,
            until: claims.exp.saturating_add(LEEWAY_SECS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"secret-a-0123456789abcdef0123456789";

    fn alice() -> Caller {
        Caller {
            user_id: "alice".into(),
            role: Role::Customer,
        }
    }

    fn raw(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("encode")
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    }

    #[test]
    fn verifies_own_tokens_and_rejects_foreign_ones() {
        let a = ServiceCredentials::new(SECRET, "gateway");
        let b = ServiceCredentials::new(b"secret-b-0123456789abcdef0123456789", "gateway");
        let token = a.token("cart", None);
        let verified = a.verify(&token, "cart").expect("valid");
        assert_eq!(verified.process, "gateway");
        assert_eq!(verified.caller, None);
        assert_eq!(a.token("cart", None), token, "cached");
        assert!(b.verify(&token, "cart").is_err());
        assert!(a.verify("garbage", "cart").is_err());
    }

    #[test]
    fn a_token_opens_only_its_callee() {
        let creds = ServiceCredentials::new(SECRET, "gateway");
        let token = creds.token("cart", Some(&alice()));
        for other in ["inventory", "payments", "orders", "flotilla-internal", ""] {
            assert!(
                matches!(
                    creds.verify(&token, other),
                    Err(InvalidCredential::WrongAudience)
                ),
                "{other}"
            );
        }
        assert_eq!(
            creds.verify(&token, "cart").expect("valid").caller,
            Some(alice())
        );
    }

    #[test]
    fn the_user_is_part_of_the_signed_claims_and_of_the_cache_key() {
        let creds = ServiceCredentials::new(SECRET, "gateway");
        let admin = Caller {
            user_id: "alice".into(),
            role: Role::Admin,
        };
        let as_customer = creds.token("cart", Some(&alice()));
        let as_admin = creds.token("cart", Some(&admin));
        let anonymous = creds.token("cart", None);
        assert_ne!(as_customer, as_admin);
        assert_ne!(as_customer, anonymous);
        assert_eq!(
            creds.verify(&as_admin, "cart").expect("valid").caller,
            Some(admin)
        );
        // A tampered payload (role raised to admin) no longer verifies.
        let mut parts: Vec<&str> = as_customer.split('.').collect();
        let forged_payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::json!({"sub": "gateway", "aud": "cart", "iat": now(), "exp": now() + 60,
                               "uid": "alice", "role": "admin"})
            .to_string(),
        );
        parts[1] = &forged_payload;
        assert!(creds.verify(&parts.join("."), "cart").is_err());
    }

    #[test]
    fn expired_long_lived_and_half_user_tokens_are_refused() {
        let creds = ServiceCredentials::new(SECRET, "gateway");
        let t = now();
        let expired =
            raw(&serde_json::json!({"sub": "x", "aud": "cart", "iat": t - 120, "exp": t - 60}));
        assert!(creds.verify(&expired, "cart").is_err());
        let long = raw(&serde_json::json!({"sub": "x", "aud": "cart", "iat": t, "exp": t + 300}));
        assert!(matches!(
            creds.verify(&long, "cart"),
            Err(InvalidCredential::BadClaims)
        ));
        let no_iat = raw(&serde_json::json!({"sub": "x", "aud": "cart", "exp": t + 30}));
        assert!(creds.verify(&no_iat, "cart").is_err());
        let role_only = raw(
            &serde_json::json!({"sub": "x", "aud": "cart", "iat": t, "exp": t + 30, "role": "admin"}),
        );
        assert!(matches!(
            creds.verify(&role_only, "cart"),
            Err(InvalidCredential::BadClaims)
        ));
        let ok = raw(&serde_json::json!({"sub": "x", "aud": "cart", "iat": t, "exp": t + 60}));
        assert!(creds.verify(&ok, "cart").is_ok());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let creds = ServiceCredentials::new(SECRET, "gateway");
        for n in 0..CACHE_CAP + 10 {
            let user = Caller {
                user_id: format!("u{n}"),
                role: Role::Customer,
            };
            creds.token("cart", Some(&user));
        }
        let len = creds.cache.lock().expect("lock").len();
        assert!(len <= CACHE_CAP, "{len}");
    }

    /// The per-request cost on the hot path: a cached mint plus a verify. Run with
    /// `--nocapture` to read the figures; the bound only catches an order-of-magnitude slip.
    #[test]
    fn mint_and_verify_cost() {
        let creds = ServiceCredentials::new(SECRET, "gateway");
        let users: Vec<Caller> = (0..100)
            .map(|n| Caller {
                user_id: format!("user-{n}"),
                role: Role::Customer,
            })
            .collect();
        let rounds = 20_000;
        let start = std::time::Instant::now();
        for n in 0..rounds {
            let token = creds.token("cart", Some(&users[n % users.len()]));
            std::hint::black_box(token);
        }
        let mint = start.elapsed() / rounds as u32;
        let tokens: Vec<String> = users.iter().map(|u| creds.token("cart", Some(u))).collect();
        let start = std::time::Instant::now();
        for token in &tokens {
            // A fresh verifier each time: the full signature and claims check.
            let verifier = ServiceCredentials::new(SECRET, "cart");
            std::hint::black_box(verifier.verify(token, "cart").is_ok());
        }
        let full_verify = start.elapsed() / tokens.len() as u32;
        let start = std::time::Instant::now();
        for n in 0..rounds {
            std::hint::black_box(creds.verify(&tokens[n % tokens.len()], "cart").is_ok());
        }
        let verify = start.elapsed() / rounds as u32;
        let fresh = ServiceCredentials::new(SECRET, "gateway");
        let start = std::time::Instant::now();
        for n in 0..2_000 {
            let user = Caller {
                user_id: format!("fresh-{n}"),
                role: Role::Customer,
            };
            std::hint::black_box(fresh.token("cart", Some(&user)));
        }
        let uncached = start.elapsed() / 2_000;
        println!(
            "service credential: cached mint {mint:?}/op, uncached mint {uncached:?}/op, \
             full verify {full_verify:?}/op, remembered verify {verify:?}/op"
        );
        assert!(verify < Duration::from_millis(1) && mint < Duration::from_millis(1));
    }
}
