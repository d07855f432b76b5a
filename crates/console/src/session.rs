//! Who is using the console: the administrator the gateway verified, handed over in the
//! request's extensions (in-process, so nothing on the network can set it).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;

/// The administrator a console request acts for. The gateway puts it into the request's
/// extensions after verifying the session and the admin role; the console sends `token` as a
/// bearer token on every API call it makes for the request, so the API checks it again.
#[derive(Clone)]
pub struct OpsSession {
    token: String,
    user_id: String,
}

impl OpsSession {
    /// The session of the administrator `user_id`, whose verified access token is `token`.
    pub fn new(token: impl Into<String>, user_id: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            user_id: user_id.into(),
        }
    }

    /// The access token, for the `authorization` header of the console's API calls.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The administrator's user id (shown in the header).
    pub(crate) fn user_id(&self) -> &str {
        &self.user_id
    }
}

// Never print a token, not even in a debug log.
impl std::fmt::Debug for OpsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsSession")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OpsSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Only the gateway's guard puts a session here; without one, nobody was checked.
        parts
            .extensions
            .get::<OpsSession>()
            .cloned()
            .ok_or_else(not_an_admin)
    }
}

/// The answer to a request that reached the console without an administrator's session (the
/// gateway's guard keeps them out; this is the console's own refusal if one ever got by).
fn not_an_admin() -> Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::FORBIDDEN,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Forbidden</title><p>The ops console is for administrators.",
    )
        .into_response()
}
