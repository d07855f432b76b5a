//! The published contract of the identity service: the JSON its routes accept and return.
//!
//! These types are shared with [`crate::client::IdentityClient`] and described in the service's
//! OpenAPI document. Requests stay plain strings here: the service parses them into its domain
//! types and answers 422 with one error per invalid field. Types that carry a secret (a password,
//! an access token) print it as `[redacted]` in `Debug`, so a stray `?req` in a log line cannot
//! leak it.

use flotilla_chassis::Role;
use flotilla_chassis::events::PublishedEvent;
use flotilla_chassis::openapi::{CONTROL, WHITE_SPACE, trimmed_pattern, trimmed_text};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The version of this contract (the OpenAPI documents and [`PUBLISHED_EVENTS`]), compared with
/// the last released snapshot under `contracts/identity/` by `flotilla contracts check`: a change
/// that breaks a caller or consumer (a removed operation or field, a narrowed type, a new
/// required input...) fails CI unless this is raised. Additive changes keep it.
pub const CONTRACT_VERSION: u32 = 1;

/// The events identity publishes (none): part of the contract above.
pub const PUBLISHED_EVENTS: &[PublishedEvent] = &[];

/// `POST /signup`: create a customer account. Unknown fields are ignored; in particular a `role`
/// field has no effect (sign-up always creates customers).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct SignupRequest {
    /// The login address; compared trimmed and lower-cased.
    #[schema(schema_with = email_schema, example = "ada@example.com")]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(
        min_length = 8,
        max_length = 128,
        example = "correct horse battery staple"
    )]
    pub password: String,
    /// The name shown to the user, 1 to 100 characters after trimming.
    #[schema(schema_with = name_schema, example = "Ada Lovelace")]
    pub name: String,
}

/// The sign-up rules of `domain::Email::parse` as a schema: at most 254 characters, one `@`
/// with something before it and a dotted domain after it, no spaces or control characters.
fn email_schema() -> utoipa::openapi::Object {
    let not = format!("{WHITE_SPACE}{CONTROL}");
    let mut schema = trimmed_pattern(
        &format!("[^@{not}]+@(?:[^@.{not}]+\\.)+[^@.{not}]+"),
        "The login address, at most 254 characters; compared trimmed and lower-cased.",
    );
    schema.max_length = Some(flotilla_chassis::text::MAX_EMAIL_CHARS);
    schema
}

/// The sign-up rules of `domain::Name::parse`.
fn name_schema() -> utoipa::openapi::Object {
    trimmed_text(
        100,
        "The name shown to the user, 1 to 100 characters after trimming, no control characters.",
    )
}

impl std::fmt::Debug for SignupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignupRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .field("name", &self.name)
            .finish()
    }
}

/// `POST /login`: exchange an email and password for an access token.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The login address.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// The password.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// A successful login (the shape of an OAuth 2.0 token response, RFC 6749 §5.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// A signed JWT (EdDSA) to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// A user account as the API shows it (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// The user id (the `sub` claim of the user's tokens).
    #[schema(example = "0190b2c4-7e1a-7c3e-9f00-0123456789ab")]
    pub id: String,
    /// The normalised login address.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// The display name.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// `customer` or `admin`.
    pub role: Role,
    /// When the account was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(example = "2026-11-26T21:14:00Z")]
    pub created_at: OffsetDateTime,
}

/// The documented shape of `GET /.well-known/jwks.json` (RFC 7517). The route returns a
/// [`jsonwebtoken::jwk::JwkSet`]; this type only describes it in the OpenAPI document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JwksDocument {
    /// The keys that may have signed a currently valid token.
    pub keys: Vec<PublicJwk>,
}

/// One public key of a [`JwksDocument`]: an Ed25519 key for EdDSA signatures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublicJwk {
    /// Key type: `OKP`.
    #[schema(example = "OKP")]
    pub kty: String,
    /// Curve: `Ed25519`.
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// Key id, matched against a token's `kid` header (an RFC 7638 thumbprint).
    pub kid: String,
    /// Algorithm: `EdDSA`.
    #[schema(example = "EdDSA")]
    pub alg: String,
    /// Use: `sig`.
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub key_use: String,
}
