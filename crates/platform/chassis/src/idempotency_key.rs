//! The `Idempotency-Key` request header as an extractor, so a handler states by its signature
//! whether it needs one (`IdempotencyKey`) or merely accepts one (`Option<IdempotencyKey>`), and
//! a missing or unusable key is a 400 problem before the handler runs.
//!
//! The semantics follow Stripe's (<https://docs.stripe.com/api/idempotent_requests>): the same
//! key with the same parameters replays the first answer; with other parameters it is a 409.
//! Storing answers is the service's business; this type only vouches for the key's shape.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};

use crate::problem::Problem;
use crate::transport::client::IDEMPOTENCY_KEY;

/// Longest key accepted (Stripe allows 255; 200 leaves room in any index).
pub const MAX_KEY_CHARS: usize = 200;

/// A valid key: 1 to [`MAX_KEY_CHARS`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a header value.
    pub fn parse(value: &HeaderValue) -> Result<Self, Problem> {
        let text = value
            .to_str()
            .map_err(|_| key_problem("the Idempotency-Key header must be visible ASCII"))?;
        if text.is_empty()
            || text.len() > MAX_KEY_CHARS
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(key_problem(&format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY_CHARS} visible ASCII characters"
            )));
        }
        Ok(Self(text.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn read(parts: &Parts) -> Result<Option<Self>, Problem> {
        parts
            .headers
            .get(&IDEMPOTENCY_KEY)
            .map(Self::parse)
            .transpose()
    }
}

fn key_problem(detail: &str) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-idempotency-key", detail)
}

/// A required key: 400 when missing.
impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::read(parts)?
            .ok_or_else(|| key_problem("this request needs an Idempotency-Key header"))
    }
}

/// An optional key: `None` when missing, still 400 when present but unusable.
impl<S: Send + Sync> OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Self::read(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_the_limit() {
        let ok =
            |s: &str| IdempotencyKey::parse(&HeaderValue::from_str(s).expect("header")).is_ok();
        assert!(ok("order-1:authorize"));
        assert!(ok(&"k".repeat(MAX_KEY_CHARS)));
        assert!(!ok(&"k".repeat(MAX_KEY_CHARS + 1)));
        assert!(!ok(""));
        assert!(!ok("has space"));
    }
}
