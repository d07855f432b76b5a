//! The client side of tracing: every call to another service is a client span, and the
//! callee's server span is its child because the call carries the client span's context in
//! `traceparent` (written here, over whatever the request held: a client's own header, relayed
//! by the gateway, names a span the gateway's trace does not have).

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response};
use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{Transport, TransportCall, TransportError};
use crate::request_context::{self, TRACEPARENT};
use crate::telemetry::{Span, SpanKind, span};

/// `transport` to `upstream`, traced as calls of `caller`.
pub fn traced(caller: &str, upstream: &str, transport: Transport) -> Transport {
    Transport::new(Traced {
        caller: Arc::from(caller),
        upstream: Arc::from(upstream),
        inner: transport,
    })
}

#[derive(Clone)]
struct Traced {
    caller: Arc<str>,
    upstream: Arc<str>,
    inner: Transport,
}

impl tower::Service<Request<Body>> for Traced {
    type Response = Response<Body>;
    type Error = TransportError;
    type Future = TransportCall;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Always ready (see `Transport`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> TransportCall {
        // Outside any request (a background task), the callee starts its own trace.
        let Some(context) = request_context::current_trace() else {
            req.headers_mut().remove(&TRACEPARENT);
            return self.inner.call(req);
        };
        let call = context.child();
        if let Ok(value) = HeaderValue::from_str(&call.to_header()) {
            req.headers_mut().insert(TRACEPARENT.clone(), value);
        }
        let mut span = Span::start(
            SpanKind::Client,
            span::method_name(req.method()),
            Cow::Owned(self.caller.to_string()),
            call,
            Some(context.span_id),
        );
        if !span.is_recording() {
            return self.inner.call(req);
        }
        span.set("http.request.method", span::method_name(req.method()));
        span.set("server.address", self.upstream.to_string());
        span.set("url.path", req.uri().path().to_owned());
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            match &result {
                Ok(response) => {
                    let status = response.status();
                    span.set("http.response.status_code", status.as_u16());
                    // OpenTelemetry: a client span fails on 4xx and 5xx alike.
                    if status.is_client_error() || status.is_server_error() {
                        span.fail(status.to_string());
                    }
                }
                Err(err) => {
                    span.set("error.type", error_type(err));
                    span.fail(err.to_string());
                }
            }
            result
        })
    }
}

/// The low-cardinality name of a failed call (`error.type`).
fn error_type(err: &TransportError) -> &'static str {
    match err {
        TransportError::NoInstance(_) => "no_instance",
        TransportError::Connect { .. } => "connect",
        TransportError::Timeout(_) => "timeout",
        TransportError::CircuitOpen(_) => "circuit_open",
        TransportError::Overloaded(_) => "overloaded",
        TransportError::DeadlineExceeded(_) => "deadline_exceeded",
    }
}
