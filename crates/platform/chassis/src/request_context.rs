//! The per-request context that follows a request through a service and into the calls it makes:
//! request id and W3C trace context.
//!
//! The chassis middleware scopes a task-local for the duration of each request, so that a typed
//! client deep inside a handler can copy the ids onto its outgoing request without every function
//! in between passing them along. Caller identity is *not* carried here: it is a security decision
//! and travels explicitly (see [`crate::caller`]).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

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
}

/// The context of the request being served on this task, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The request id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT.try_with(|c| c.request_id.clone()).ok()
}

/// Runs `fut` with `ctx` as the current request context.
pub async fn scope<F: std::future::Future>(ctx: RequestContext, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// Middleware: reads or creates the request id and trace context, scopes them for the handler,
/// and echoes the request id on the response.
pub async fn middleware(mut req: Request, next: Next) -> Response {
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
    let mut response = tracing::Instrument::instrument(scope(ctx, next.run(req)), span).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
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
