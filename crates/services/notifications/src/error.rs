//! The notifications service's errors, and the one place they become problem+json.
//!
//! The service is read-only over HTTP, so little can go wrong: a filter that cannot be an id
//! (400, the caller can fix it) or a failing database (logged, answered as a generic 500).

use axum::response::{IntoResponse, Response};
use flotilla_chassis::Problem;

use crate::domain::IdError;

/// What can go wrong serving a notifications request.
#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    /// A filter that cannot be an id (400).
    #[error("{field} {reason}")]
    Filter {
        /// The query parameter.
        field: &'static str,
        /// What is wrong with it.
        reason: IdError,
    },
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<NotificationsError> for Problem {
    fn from(err: NotificationsError) -> Self {
        match err {
            NotificationsError::Filter { .. } => Problem::bad_request(err.to_string()),
            NotificationsError::Storage(e) => e.into(),
        }
    }
}

impl IntoResponse for NotificationsError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
