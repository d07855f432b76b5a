//! The server side: a middleware of the standard stack that delays, fails or aborts the
//! requests a fault targets, before the service's own handler sees them.
//!
//! An abort cannot be a response, yet a tower `Service` can only return one; so the response is
//! marked with [`AbortConnection`], and each transport honours the mark the way a dropped
//! connection would look to it: the accept loop (`server::requests`) closes the connection
//! without writing anything, and the in-process transport fails the call as a reset
//! connection. Should a response so marked reach a caller some other way, its body is a 502
//! problem that says what happened.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Failure, Faults, Injection};
use crate::problem::Problem;

pub use crate::abort::{AbortConnection, InjectedReset, abort_of};

/// Middleware: the faults of `faults` that fire on this request.
pub async fn middleware(State(faults): State<Faults>, req: Request, next: Next) -> Response {
    let Some(Injection { delay, failure }) = faults.on_served(req.method(), req.uri().path())
    else {
        return next.run(req).await;
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match failure {
        None => next.run(req).await,
        Some((failure, fault_id)) => failure_response(failure, &fault_id),
    }
}

/// What a firing fault answers in place of the service (server side) or the upstream (client
/// side).
pub fn failure_response(failure: Failure, fault_id: &str) -> Response {
    match failure {
        Failure::Status(status) => {
            let mut response = Problem::new(
                status,
                "fault-injected",
                format!(
                    "fault {fault_id} injected this {} (chaos testing)",
                    status.as_u16()
                ),
            )
            .with_extension("fault_id", fault_id)
            .into_response();
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                // As a real refusal of either kind would say.
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
        }
        Failure::Abort => {
            let mut response = Problem::new(
                StatusCode::BAD_GATEWAY,
                "fault-injected",
                format!("fault {fault_id} aborted this connection (chaos testing)"),
            )
            .with_extension("fault_id", fault_id)
            .into_response();
            response.extensions_mut().insert(AbortConnection {
                fault_id: fault_id.to_owned(),
            });
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
