//! Extractors that turn axum's rejections into problem+json, so a malformed body, query or path
//! gets the same kind of answer as any other error. Handlers use these instead of axum's own.
//! axum's texts name Rust types (`expected struct SetQuantity`, ``to a `u32` ``) and echo input
//! whole; the details here are rewritten for people by [`crate::input_message`].

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::input_message::{describe, field_of, quote};
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
        // axum checks the content type and the size limit and validates the syntax without
        // building a tree (a raw value is the text itself); the text is then read into `T` in
        // one pass. A key given twice is refused by `T`'s own deserializer.
        match axum::Json::<Box<serde_json::value::RawValue>>::from_request(req, state).await {
            Ok(axum::Json(raw)) if nesting_depth(raw.get()) > MAX_JSON_DEPTH => Err(too_deep()),
            Ok(axum::Json(raw)) => read_typed(raw.get()).map(Json),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

/// A JSON request body read whatever its `Content-Type` says, or without one, as Toxiproxy reads
/// its API's bodies (`curl -d '{…}'` sends `application/x-www-form-urlencoded`): for a tool's
/// control API, where every body is JSON and a refusal for the header alone only gets in the
/// way. Services' APIs use [`Json`], which insists on the header (415). A body that is not JSON
/// is still refused: 400 for bad syntax (or nesting past [`MAX_JSON_DEPTH`]), 422 for the wrong
/// shape, 413 over the size limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyJson<T>(pub T);

impl<T, S> FromRequest<S> for AnyJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                unreadable_body(&rejection as &(dyn std::error::Error + 'static))
            })?;
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_slice(&bytes).map_err(|err| {
                let message = err.to_string();
                if message.contains("recursion limit") {
                    return too_deep();
                }
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m);
                Problem::bad_request(format!(
                    "the request body is not valid JSON: {}",
                    describe(".", message)
                ))
            })?;
        if nesting_depth(raw.get()) > MAX_JSON_DEPTH {
            return Err(too_deep());
        }
        read_typed(raw.get()).map(AnyJson)
    }
}

/// Deepest nesting of arrays and objects a JSON body may have. No request of ours nests past
/// 4; serde_json alone would stop at 128 with "recursion limit exceeded", as a syntax error
/// naming no limit, and every level below that costs stack in every deserializer that reads
/// the body (and in `integral_floats_to_integers`, which recurses too).
pub const MAX_JSON_DEPTH: usize = 64;

fn too_deep() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "json-too-deep",
        format!("the request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"),
    )
}

/// How deep `json` (valid JSON) nests arrays and objects: brackets outside strings.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Reads valid JSON `text` into `T`, or says in words what is wrong with it (422).
pub(crate) fn read_typed<T: DeserializeOwned>(text: &str) -> Result<T, Problem> {
    let mut direct = serde_json::Deserializer::from_str(text);
    let err = match serde_path_to_error::deserialize(&mut direct) {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    let path = err.path().to_string();
    let message = err.into_inner().to_string();
    // The cold path: a body such as `{"quantity": 3.0}` is refused by an integer field but
    // means 3 to JSON Schema; read it again through a tree with such numbers made integers.
    if !message.starts_with("duplicate field")
        && let Ok(mut tree) = serde_json::from_str::<serde_json::Value>(text)
        && integral_floats_to_integers(&mut tree)
    {
        return serde_path_to_error::deserialize(tree).map_err(|err| {
            let path = err.path().to_string();
            data_problem(&path, &err.into_inner().to_string())
        });
    }
    Err(data_problem_at(&path, &message))
}

/// [`data_problem`] for a message from reading text, whose position serde appends: the path
/// already says where, and a body's line and column add nothing to it.
fn data_problem_at(path: &str, message: &str) -> Problem {
    let message = match message.rsplit_once(" at line ") {
        Some((message, at))
            if at
                .chars()
                .all(|c| c.is_ascii_digit() || " column".contains(c)) =>
        {
            message
        }
        _ => message,
    };
    data_problem(path, message)
}

/// JSON has one number type: `3.0` is the integer 3 to JSON Schema (and so to the published
/// documents and the clients that follow them), but serde would refuse it for an integer field.
/// Such numbers become integers before the body is read into its type.
/// Returns whether any number changed.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                // The casts saturate, so the round trip tells whether f fits.
                if f >= 0.0 && (f as u64) as f64 == f && f < u64::MAX as f64 {
                    *value = Value::from(f as u64);
                    return true;
                } else if f < 0.0 && (f as i64) as f64 == f && f > i64::MIN as f64 {
                    *value = Value::from(f as i64);
                    return true;
                }
            }
            false
        }
        // Every element is visited (no short circuit), so all of them are converted.
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            integral_floats_to_integers(item) | changed
        }),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, item| {
            integral_floats_to_integers(item) | changed
        }),
        _ => false,
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    let status = if exceeded_length_limit(&rejection as &(dyn std::error::Error + 'static)) {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        rejection.status()
    };
    match rejection {
        JsonRejection::JsonDataError(err) => {
            let text = err.body_text();
            let (path, message) = split_path(&text);
            data_problem(path, message)
        }
        JsonRejection::JsonSyntaxError(err) if err.body_text().contains("recursion limit") => {
            too_deep()
        }
        JsonRejection::JsonSyntaxError(err) => {
            let text = err.body_text();
            let (path, message) = split_path(&text);
            Problem::bad_request(format!(
                "the request body is not valid JSON: {}",
                describe(path, message)
            ))
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "expected a request with `Content-Type: application/json`",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
        _ => Problem::new(status, "bad-request", "the request body could not be read"),
    }
}

fn body_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "the request body is larger than this service accepts",
    )
}

/// The answer to a request whose body could not be read by a layer that buffers it before the
/// handler: 413 when a size limit cut it, 400 otherwise (the client stopped sending).
pub(crate) fn unreadable_body(err: &(dyn std::error::Error + 'static)) -> Problem {
    if exceeded_length_limit(err) {
        body_too_large()
    } else {
        Problem::bad_request("the request body could not be read")
    }
}

/// A body of the wrong shape (422): the field it names and serde's message in words, with no
/// Rust type names. `path` is serde's path to the value (`lines[0].quantity`, `.` for the root).
fn data_problem(path: &str, message: &str) -> Problem {
    let detail = describe(path, message);
    match field_of(path, message) {
        field if field.is_empty() => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
        }
        field => Problem::invalid(&field, describe(".", message)),
    }
}

/// axum's rejection text (`Failed to … type: lines[0].quantity: invalid type: …`) as the path
/// of the value (`.` when it has none) and serde's message.
fn split_path(body_text: &str) -> (&str, &str) {
    let text = body_text.split_once("type: ").map_or(body_text, |(_, t)| t);
    let text = text.strip_prefix("query string: ").unwrap_or(text);
    match text.split_once(": ") {
        // A path is field names, indices and dots; serde's messages have spaces before a colon.
        Some((path, message))
            if !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_-.[]?".contains(c)) =>
        {
            (path, message)
        }
        _ => (".", text),
    }
}

/// True when reading the body failed because a size limit was hit anywhere below us. axum only
/// recognises its own limit one level down; a body limited twice (gateway, then service, in one
/// process) hides it deeper in the chain.
fn exceeded_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
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
            .map_err(|r: QueryRejection| {
                let text = r.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                let (path, message) = split_path(text);
                Problem::bad_request(format!(
                    "the query string is not valid: {}",
                    describe(path, message)
                ))
            })
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
            .map_err(path_problem)
    }
}

/// A path that does not parse: the parameter and its value (bounded) in words, with no type
/// names; a mismatch between a route and its extractor is the program's fault (500).
fn path_problem(rejection: PathRejection) -> Problem {
    let PathRejection::FailedToDeserializePathParams(err) = rejection else {
        return Problem::internal();
    };
    let detail = match err.kind() {
        ErrorKind::ParseErrorAtKey { key, value, .. } => {
            format!("`{key}` in the path: {} is not valid here", quote(value))
        }
        ErrorKind::ParseErrorAtIndex { value, .. } | ErrorKind::ParseError { value, .. } => {
            format!("{} in the path is not valid here", quote(value))
        }
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => format!(
            "`{key}` in the path: {} is not valid here ({})",
            quote(value),
            describe(".", message)
        ),
        ErrorKind::InvalidUtf8InPathParam { key } => {
            format!("`{key}` in the path is not valid UTF-8")
        }
        ErrorKind::Message(message) => format!("the path is not valid: {}", describe(".", message)),
        _ => return Problem::internal(),
    };
    Problem::bad_request(detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[derive(Debug, serde::Deserialize)]
    struct Quote {
        items: u32,
        weight: Option<i64>,
        ratio: f64,
    }

    async fn read(body: &str) -> Result<Json<Quote>, Problem> {
        let req = Request::builder()
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        Json::<Quote>::from_request(req, &()).await
    }

    #[tokio::test]
    async fn bodies_nested_past_the_limit_are_refused_before_the_handler() {
        let nested = |depth: usize| {
            format!(
                r#"{{"items": 1, "ratio": 1, "x": {}"\"[{{"{}}}"#,
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        assert_eq!(nesting_depth(&nested(MAX_JSON_DEPTH)), MAX_JSON_DEPTH);
        read(&nested(MAX_JSON_DEPTH)).await.expect("at the limit");
        for depth in [MAX_JSON_DEPTH + 1, 200, 10_000] {
            let problem = read(&nested(depth)).await.expect_err("too deep");
            assert_eq!(problem.status_code(), StatusCode::BAD_REQUEST);
            assert_eq!(problem.slug(), "json-too-deep", "{problem:?}");
            assert!(
                problem.detail.as_deref().is_some_and(|d| d.contains("64")),
                "{problem:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_whole_number_written_with_a_fraction_is_an_integer() {
        let Json(q) = read(r#"{"items": 3.0, "weight": -2.0, "ratio": 1.0}"#)
            .await
            .expect("JSON Schema's integers");
        assert_eq!((q.items, q.weight, q.ratio), (3, Some(-2), 1.0));
        let problem = read(r#"{"items": 3.5, "ratio": 1}"#)
            .await
            .expect_err("not an integer");
        assert_eq!(problem.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("items")),
            "{problem:?}"
        );
        let problem = read(r#"{"items": 1e30, "ratio": 1}"#)
            .await
            .expect_err("out of range");
        assert_eq!(problem.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
