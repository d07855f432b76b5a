//! RFC 9457 problem details: the one shape every error leaving a Flotilla service takes.
//!
//! Services define their own error enums and convert them into [`Problem`]; nothing else in the
//! code base writes an error body by hand. The `type` URI is stable (`urn:flotilla:problem:<slug>`)
//! so that clients can branch on it without parsing prose.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The extension member naming the dependency whose failure a 503 reports
/// ([`Problem::dependency_unavailable`]).
pub const FAILED_DEPENDENCY: &str = "failed_dependency";

/// The header on a 503 that reports a dependency's failure rather than the answering
/// service's own ([`Problem::dependency_unavailable`]).
pub const DEPENDENCY_FAILED_MARK: &str = "x-flotilla-dependency-failed";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem, e.g. `urn:flotilla:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this particular request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request id, so a user can quote it and an operator can find the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Field-level validation errors, when the problem is invalid input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members (RFC 9457 §3.2) that one kind of problem defines, e.g. payments'
    /// `decline_code`: written at the top level of the document, and kept when a client reads
    /// one, so that a caller can branch on them without parsing `detail`.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Seconds after which a retry may succeed, sent as the `Retry-After` header (RFC 9110
    /// §10.2.3) with a 503 for a dependency that is down for now.
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

/// One invalid field in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's name (a JSON pointer-ish path such as `quantity` or `address.city`).
    pub field: String,
    /// Why it was rejected.
    pub message: String,
}

impl Problem {
    /// A problem of the given status with a slug that becomes `urn:flotilla:problem:<slug>`.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:flotilla:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            request_id: crate::request_context::current_request_id(),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// This problem with a `Retry-After` of `seconds` (see [`Problem::retry_after`]).
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// This problem with the extension member `name` (see [`Problem::extensions`]).
    pub fn with_extension(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    /// 400: the request is malformed (unparseable JSON, bad query string).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 422: the request parsed but a field is invalid.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            format!("{field}: {message}"),
        );
        p.errors.push(FieldError {
            field: field.to_owned(),
            message,
        });
        p
    }

    /// 422 with one entry per invalid field (the detail lists them all).
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail);
        p.errors = errors;
        p
    }

    /// The slug of the `type` (`not-found` for `urn:flotilla:problem:not-found`).
    pub fn slug(&self) -> &str {
        self.kind
            .strip_prefix("urn:flotilla:problem:")
            .unwrap_or(&self.kind)
    }

    /// 404: the named thing does not exist (or the caller may not know it does).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: valid credentials, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 503: a dependency is unavailable; the request may succeed later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// 503 because `dependency`, another service this one called, failed: named in the
    /// extension member `failed_dependency` and marked on the response with
    /// [`DEPENDENCY_FAILED_MARK`], so that a caller's circuit breaker and outlier detection do
    /// not hold against this service what its dependency did (every instance of it would
    /// answer the same; a slow shipping once opened the gateway's breaker for orders and
    /// ejected healthy orders instances).
    pub fn dependency_unavailable(dependency: &str, detail: impl Into<String>) -> Self {
        Self::unavailable(detail).with_extension(FAILED_DEPENDENCY, dependency)
    }

    /// 500: a bug or an unexpected failure. The detail is deliberately generic: internals
    /// (SQL, stack traces) are logged, never sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an unexpected error occurred; quote the request id when reporting it",
        )
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = self.retry_after;
        let deadline_ran_out = status == StatusCode::GATEWAY_TIMEOUT
            && self.slug() == crate::deadline::DEADLINE_EXCEEDED;
        let dependency_failed = status == StatusCode::SERVICE_UNAVAILABLE
            && self.extensions.contains_key(FAILED_DEPENDENCY);
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if deadline_ran_out {
            headers.insert(
                crate::deadline::DEADLINE_EXCEEDED_MARK,
                HeaderValue::from_static("1"),
            );
        }
        if dependency_failed {
            headers.insert(DEPENDENCY_FAILED_MARK, HeaderValue::from_static("1"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Errors from the storage layer become a 500 (logged with their cause) unless a service maps a
/// specific constraint violation to something more useful first. A database that cannot serve
/// now (unreachable, restarting, every connection busy) is a 503 with `Retry-After`, answered
/// as soon as the pool knows (see [`crate::db::is_unavailable`]).
impl From<sqlx::Error> for Problem {
    fn from(err: sqlx::Error) -> Self {
        storage_problem(&err)
    }
}

/// The problem for a storage error, logged once: what `From<sqlx::Error>` answers, for a
/// service that maps its own storage errors.
pub fn storage_problem(err: &sqlx::Error) -> Problem {
    match err {
        sqlx::Error::PoolTimedOut => {
            tracing::warn!(error = %err, "storage busy");
            Problem::unavailable("storage is busy; retry shortly").with_retry_after(1)
        }
        e if crate::db::is_unavailable(e) => {
            tracing::warn!(error = %err, "storage unavailable");
            Problem::unavailable("storage is unavailable; retry shortly").with_retry_after(1)
        }
        _ => {
            tracing::error!(error = %err, "storage error");
            Problem::internal()
        }
    }
}
