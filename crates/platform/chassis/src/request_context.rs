//! The per-request context that follows a request through a service and into the calls it makes:
//! request id, W3C trace context and deadline.
//!
//! The chassis middleware scopes a task-local for the duration of each request, so that a typed
//! client deep inside a handler can copy the ids onto its outgoing request without every function
//! in between passing them along. Caller identity is *not* carried here: it is a security decision
//! and travels explicitly (see [`crate::caller`]).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::problem::Problem;
use crate::resilience::deadline::{self, Incoming};

use crate::trace_context::TraceParent;

/// The request id header, set by the gateway and propagated to every hop.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What is known about the request being served.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id (from `x-request-id`, or generated here).
    pub request_id: String,
    /// The trace context of this hop: the incoming trace id with a fresh span id.
    pub trace: TraceParent,
}

tokio::task_local! {
    static CURRENT: RequestContext;
    // Kept apart from `RequestContext` so that contexts made elsewhere (an event delivery) have
    // no deadline by construction; `None` hides an outer request's deadline from an in-process
    // callee that was sent none.
    static DEADLINE: Option<Instant>;
}

/// The context of the request being served on this task, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The request id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT.try_with(|c| c.request_id.clone()).ok()
}

/// The deadline of the request being served on this task, if it has one (see
/// [`crate::resilience::deadline`]).
pub fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok().flatten()
}

/// Runs `fut` with `deadline` as the current deadline, e.g. the gateway's default for a route.
/// Calls made inside carry and honour it.
pub async fn with_deadline<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> F::Output {
    DEADLINE.scope(deadline, fut).await
}

/// Runs `fut` with `ctx` as the current request context.
pub async fn scope<F: std::future::Future>(ctx: RequestContext, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// Middleware: reads or creates the request id and trace context, reads the deadline, scopes
/// them for the handler, and echoes the request id on the response. A request whose deadline has
/// passed (on arrival, or while the handler runs) is answered 504 problem+json; the handler does
/// not run, or is cancelled.
pub async fn middleware(mut req: Request, next: Next) -> Response {
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

/// A request id we accept from outside: short, printable, no separators that could confuse logs.
fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        assert!(is_valid_request_id("0190b2c4-7e1a-7c3e-9f00-0123456789ab"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("a b"));
        assert!(!is_valid_request_id(&"x".repeat(129)));
    }
}
