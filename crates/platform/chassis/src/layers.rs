//! The standard middleware stack every service router (and the gateway) runs behind.
//!
//! Outermost first: request context (id + trace) → panic catcher → caller trust → injected
//! faults, when the service has a fault registry → problem rewriting → the service's own error
//! page, if it has one → timeout → body size limit → the routes. Each piece is an off-the-shelf
//! tower-http layer where one exists; the ones written here are the problem rewriter, the trust
//! check and fault injection (`crate::faults::inject`). The gateway's stack ([`edge`]) also
//! sheds load (`crate::resilience::shedding`).

use axum::Router;
use axum::extract::{OptionalFromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::caller::Caller;
use crate::deadline::{self, Incoming};
use crate::faults::Faults;
use crate::problem::Problem;
use crate::request_context::{
    REQUEST_ID, RequestContext, TRACEPARENT, is_valid_request_id, scope, with_deadline,
};
use crate::resilience::shedding::Shedding;
use crate::trace_context::TraceParent;
use crate::trust::{ServiceTrust, TrustPolicy, establish_trust};

/// Limits applied to every request a service serves. All are documented in the README.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest request body accepted, in bytes (413 above it, before the handler runs).
    pub body_bytes: usize,
    /// Longest a handler may take before the caller gets a 503.
    #[serde(with = "millis")]
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// How a service answers errors that have no body of their own (404 from the router, 413 from
/// the body limit, 503 from the timeout), given the status and the caller. Services default to
/// problem+json; the storefront, whose callers are browsers, answers an HTML page.
pub type ErrorPage = Arc<dyn Fn(StatusCode, Option<&Caller>) -> Response + Send + Sync>;

/// Wraps `router` in the standard stack; `error_page`, when given, renders bare errors instead
/// of problem+json; `faults`, when given, are injected into the requests they target.
pub fn standard(
    router: Router,
    limits: Limits,
    trust: TrustPolicy,
    service: &'static str,
    error_page: Option<ErrorPage>,
    faults: Option<Faults>,
) -> Router {
    let trust = ServiceTrust {
        policy: trust,
        service,
    };
    let mut router = router
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ));
    if let Some(page) = error_page {
        router = router.layer(middleware::from_fn_with_state(page, page_for_bare_errors));
    }
    router = router.layer(middleware::from_fn(problem_for_bare_errors));
    if let Some(faults) = faults {
        // Inside the trust check (the fault's own admin routes are exempt in `Faults` itself)
        // and outside the timeout, so that an injected delay is the delay asked for.
        router = router.layer(middleware::from_fn_with_state(
            faults,
            crate::faults::inject::middleware,
        ));
    }
    router
        .layer(middleware::from_fn_with_state(trust, establish_trust))
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .layer(middleware::from_fn(request_context))
}

/// The shared part of [`standard`] for routers that are not services (the gateway): no trust
/// check, since the gateway is where trust starts. `pages`, the fallback for every path
/// `router` does not serve, skips the body limit and the timeout: the web pages behind it
/// apply their own and answer them with HTML pages.
///
/// `shedding` admits requests right inside the request context (so a refusal carries its
/// request id) and before anything else works on them: a refused request costs no
/// authentication, routing or upstream call, and the pages are under the same cap.
pub fn edge(router: Router, pages: Router, limits: Limits, shedding: &Arc<Shedding>) -> Router {
    router
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.request_timeout,
        ))
        // Added after the limits, so they do not wrap it.
        .fallback_service(pages)
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .layer(shedding.layer())
        .layer(middleware::from_fn(request_context))
}

/// A panic in a handler becomes a 500 problem; the process keeps serving.
fn panic_to_problem(err: Box<dyn Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = msg, "handler panicked");
    Problem::internal().into_response()
}

/// True for an error response with no body of its own (none, or a layer's plain text).
fn is_bare_error(response: &Response) -> bool {
    let status = response.status();
    let bare = match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(ct) => ct.as_bytes().starts_with(b"text/plain"),
    };
    bare && (status.is_client_error() || status.is_server_error())
}

/// `response`'s headers (but its length and type) copied onto `rendered`, where it has none.
fn keep_headers(response: &Response, mut rendered: Response) -> Response {
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            rendered.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    rendered
}

/// Bare errors rendered by the service's own [`ErrorPage`], for the caller the request came from.
async fn page_for_bare_errors(State(page): State<ErrorPage>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let caller = <Caller as OptionalFromRequestParts<()>>::from_request_parts(&mut parts, &())
        .await
        .ok()
        .flatten();
    let response = next.run(Request::from_parts(parts, body)).await;
    if !is_bare_error(&response) {
        return response;
    }
    let mut rendered = page(response.status(), caller.as_ref());
    *rendered.status_mut() = response.status();
    keep_headers(&response, rendered)
}

/// Error responses produced by layers and the router itself (404 for an unknown route, 405,
/// 413 from the body limit, 503 from the timeout) have empty or plain-text bodies; give them a
/// problem body. Errors a handler rendered on purpose (JSON, HTML pages) are left alone.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !is_bare_error(&response) {
        return response;
    }
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method-not-allowed", "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload-too-large",
            "the request body is larger than this service accepts",
        ),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => (
            "timeout",
            "the request took longer than the configured timeout",
        ),
        _ => ("error", "request failed"),
    };
    keep_headers(
        &response,
        Problem::new(status, slug, detail).into_response(),
    )
}

/// Middleware: reads or creates the request id and trace context, reads the deadline, scopes
/// them for the handler, and echoes the request id on the response. A request whose deadline has
/// passed (on arrival, or while the handler runs) is answered 504 problem+json; the handler does
/// not run, or is cancelled.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let trace = req
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
        .map(|parent| parent.child())
        .unwrap_or_else(TraceParent::root);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
        trace_id = %trace.trace_id_hex(),
    );
    let ctx = RequestContext {
        request_id: request_id.clone(),
        trace,
    };
    let deadline = deadline::incoming(req.headers(), arrived);
    let handled = scope(ctx, async move {
        match deadline {
            Incoming::Absent => with_deadline(None, next.run(req)).await,
            Incoming::Expired => deadline_exceeded(),
            Incoming::At(at) if at <= Instant::now() => deadline_exceeded(),
            Incoming::At(at) => {
                let run = with_deadline(Some(at), next.run(req));
                tokio::time::timeout_at(at, run)
                    .await
                    .unwrap_or_else(|_| deadline_exceeded())
            }
        }
    });
    let mut response = tracing::Instrument::instrument(handled, span).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// The answer to a request whose deadline ran out here.
fn deadline_exceeded() -> Response {
    tracing::debug!("deadline exceeded before an answer was ready");
    Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        deadline::DEADLINE_EXCEEDED,
        "the request's deadline ran out before it could be answered",
    )
    .into_response()
}
