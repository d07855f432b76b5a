//! The per-request context that follows a request through a service and into the calls it makes:
//! request id, W3C trace context and deadline.
//!
//! The chassis middleware scopes a task-local for the duration of each request, so that a typed
//! client deep inside a handler can copy the ids onto its outgoing request without every function
//! in between passing them along. Caller identity is *not* carried here: it is a security decision
//! and travels explicitly (see [`crate::caller`]).

use axum::http::HeaderName;
use tokio::time::Instant;

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

/// The trace context of the request being served on this task, if any.
pub fn current_trace() -> Option<TraceParent> {
    CURRENT.try_with(|c| c.trace).ok()
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

/// A request id we accept from outside: short, printable, no separators that could confuse logs.
pub(crate) fn is_valid_request_id(id: &str) -> bool {
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
