//! The `Idempotency-Key` request header as an extractor, so a handler states whether it needs
//! one by its signature (`IdempotencyKey` or `Option<IdempotencyKey>`) and a bad key is a 400
//! problem before the handler runs.
//!
//! The inventory's reserve is idempotent by its `reservation_id` whether or not a key is sent;
//! the typed client sends the id as the key too, which marks the call as safe to retry for
//! whatever retry layer sits between caller and service.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use flotilla_chassis::Problem;
use flotilla_chassis::transport::client::IDEMPOTENCY_KEY;

/// Longest key accepted.
pub const MAX_LEN: usize = 200;

/// A non-empty `Idempotency-Key` of at most [`MAX_LEN`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key in `parts`: `Ok(None)` when absent, a 400 problem when unusable.
    fn read(parts: &Parts) -> Result<Option<Self>, Problem> {
        let Some(value) = parts.headers.get(&IDEMPOTENCY_KEY) else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .map_err(|_| Problem::bad_request("Idempotency-Key must be visible ASCII"))?;
        if key.is_empty() || key.len() > MAX_LEN {
            return Err(Problem::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_LEN} characters long"
            )));
        }
        Ok(Some(Self(key.to_owned())))
    }
}

/// A required key: 400 when missing.
impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::read(parts)?
            .ok_or_else(|| Problem::bad_request("this request needs an Idempotency-Key header"))
    }
}

/// An optional key: `None` when missing, still 400 when present but unusable.
impl<S: Send + Sync> OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Self::read(parts)
    }
}
