//! The identity service's errors, and the one place they become problem+json.
//!
//! Internal failures (storage, hashing, signing) are logged with their cause and answered with
//! a generic 500/503: a client learns that something broke and which request id to quote, never
//! SQL or key material.

use axum::response::{IntoResponse, Response};
use flotilla_chassis::Problem;
use flotilla_chassis::problem::FieldError;

use crate::password::PasswordError;
use crate::store::InsertUserError;
use crate::token::SigningError;

/// What can go wrong serving an identity request.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The request parsed but fields are invalid (422, one entry per field).
    #[error("invalid fields: {0:?}")]
    Invalid(Vec<FieldError>),
    /// Sign-up with an email that has an account (409).
    #[error("the email address is already registered")]
    EmailTaken,
    /// Login failed. One variant for unknown user and wrong password, so the two cannot be
    /// told apart by their answer (401).
    #[error("wrong email or password")]
    BadCredentials,
    /// Too many failed logins on the account lately (429); try again after this many seconds.
    #[error("too many failed logins")]
    Throttled(u32),
    /// The caller's account no longer exists (404).
    #[error("the account does not exist")]
    UserNotFound,
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
    /// Password hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Token signing failed.
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl From<InsertUserError> for IdentityError {
    fn from(err: InsertUserError) -> Self {
        match err {
            InsertUserError::EmailTaken => IdentityError::EmailTaken,
            InsertUserError::Storage(e) => IdentityError::Storage(e),
        }
    }
}

impl From<IdentityError> for Problem {
    fn from(err: IdentityError) -> Self {
        match err {
            IdentityError::Invalid(errors) => Problem::invalid_fields(errors),
            IdentityError::EmailTaken => {
                Problem::conflict("an account with this email address already exists")
            }
            IdentityError::BadCredentials => {
                Problem::unauthorized("the email address or password is incorrect")
            }
            IdentityError::Throttled(secs) => Problem::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "login-throttled",
                format!(
                    "too many failed logins for this email address; try again in {secs} seconds"
                ),
            )
            .with_retry_after(secs),
            IdentityError::UserNotFound => Problem::not_found("the account no longer exists"),
            IdentityError::Storage(e) => Problem::from(e),
            IdentityError::Password(PasswordError::Closed) => {
                Problem::unavailable("the service is shutting down")
            }
            IdentityError::Password(e) => {
                tracing::error!(error = %e, "password hashing failed");
                Problem::internal()
            }
            IdentityError::Signing(e) => {
                tracing::error!(error = %e, "token signing failed");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for IdentityError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
