//! Idempotency keys: the `Idempotency-Key` header every money movement requires, the
//! fingerprint of a request that tells a retry from a reuse of the key, and the stored answer
//! that a retry gets back byte for byte.
//!
//! The pattern is Stripe's (<https://docs.stripe.com/api/idempotent_requests>): the first request
//! with a key runs and its answer — success, decline or refusal alike — is saved with the key;
//! a later request with the same key and the same parameters gets that answer again without
//! running (a problem document keeps the request id of the first attempt, which is the one the
//! logs explain); the same key with other parameters is a 409. Answers that say "try again" (the
//! retryable 503) are never saved, so a retry really does try again.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_chassis::problem::PROBLEM_JSON;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Set on an answer that was replayed from a stored one, so a caller (and a test) can tell.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub use flotilla_chassis::idempotency_key::IdempotencyKey;

/// A SHA-256 fingerprint of the parameters of a request, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHash(String);

impl RequestHash {
    /// Fingerprints `fields`, serialised as one JSON array so that no two different lists of
    /// strings can produce the same input.
    pub fn of(fields: &[&str]) -> Self {
        // A list of strings always serialises; the empty fallback only avoids a panic path.
        let canonical = serde_json::to_vec(fields).unwrap_or_default();
        let digest = Sha256::digest(&canonical);
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Wraps a stored fingerprint.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An answer as it is stored with its key: status and exact body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body, exactly as first sent.
    pub body: String,
}

impl StoredResponse {
    /// `value` as JSON with `status`.
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self {
            status,
            body: serde_json::to_string(value)?,
        })
    }
}

/// A stored answer on its way out: the first time, or a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub response: StoredResponse,
    /// True when it was read back from the key rather than produced now.
    pub replayed: bool,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let content_type = if self.response.status.is_success() {
            "application/json"
        } else {
            PROBLEM_JSON
        };
        let mut response = (self.response.status, self.response.body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if self.replayed {
            headers.insert(
                IDEMPOTENT_REPLAYED.clone(),
                HeaderValue::from_static("true"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_200_characters() {
        let ok = HeaderValue::from_static("order-1:capture");
        assert_eq!(
            IdempotencyKey::parse(&ok).map(|k| k.as_str().to_owned()),
            Ok("order-1:capture".to_owned())
        );
        let longest = HeaderValue::from_str(&"k".repeat(200)).expect("header");
        assert!(IdempotencyKey::parse(&longest).is_ok());
        let too_long = HeaderValue::from_str(&"k".repeat(201)).expect("header");
        assert_eq!(
            IdempotencyKey::parse(&too_long).map_err(|p| p.status),
            Err(400)
        );
        let spaced = HeaderValue::from_static("a b");
        assert!(IdempotencyKey::parse(&spaced).is_err());
        assert!(IdempotencyKey::parse(&HeaderValue::from_static("")).is_err());
    }

    #[test]
    fn the_fingerprint_separates_fields() {
        assert_eq!(RequestHash::of(&["a", "b"]), RequestHash::of(&["a", "b"]));
        assert_ne!(RequestHash::of(&["ab", ""]), RequestHash::of(&["a", "b"]));
        assert_ne!(RequestHash::of(&["a\",\"b"]), RequestHash::of(&["a", "b"]));
        assert_eq!(RequestHash::of(&["x"]).as_str().len(), 64);
    }
}
