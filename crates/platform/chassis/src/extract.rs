//! Extractors that turn axum's rejections into problem+json, so a malformed body, query or path
//! gets the same kind of answer as any other error. Handlers use these instead of axum's own.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON request body. Syntax errors are 400, a body of the wrong shape 422, a missing
/// `Content-Type: application/json` 415, a body over the limit 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    let status = if exceeded_length_limit(&rejection) {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        rejection.status()
    };
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
        }
        JsonRejection::JsonSyntaxError(_) => Problem::bad_request(detail),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "expected a request with `Content-Type: application/json`",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the request body is larger than this service accepts",
        ),
        _ => Problem::new(status, "bad-request", detail),
    }
}

/// True when reading the body failed because a size limit was hit anywhere below us. axum only
/// recognises its own limit one level down; a body limited twice (gateway, then service, in one
/// process) hides it deeper in the chain.
fn exceeded_length_limit(rejection: &JsonRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A query string, 400 when it does not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|r: QueryRejection| Problem::bad_request(r.body_text()))
    }
}

/// Path parameters, 400 when they do not parse (an id of the wrong form is not "not found").
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r: PathRejection| Problem::bad_request(r.body_text()))
    }
}
