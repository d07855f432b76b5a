//! A request body that stopped arriving ([`BodyTimeout`], raised by the server's body timer) is
//! answered a bare 408, whatever the handler made of its unreadable body (a 400, a 413, a
//! dependency's error): the router's own renderer then gives it the router's look — an HTML page
//! on the storefront, problem+json with its request id elsewhere. Noticed by watching the body's
//! errors rather than by a flag from the server, so that it also works one hop further in: an
//! in-process service reading a body the gateway's server timed sees the same error.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use super::bare_errors::bare;

/// The error a late request body ends with (the server's body timer raises it; the router's
/// stack answers it 408). Defined here, below the server, so that the server depends on the
/// layers and not the other way round.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// The problem slug of a late body.
pub const REQUEST_TIMEOUT: &str = "request-timeout";

/// Middleware: a request whose body was late is answered a bare 408, unless the answer already
/// is one (rendered further in, by the service that read the body).
pub async fn answer_late_bodies(req: Request, next: Next) -> Response {
    let late = Arc::new(AtomicBool::new(false));
    let watched = late.clone();
    let req = req.map(move |inner| {
        Body::new(Watched {
            inner,
            late: watched,
        })
    });
    let response = next.run(req).await;
    if late.load(Ordering::Relaxed) && response.status() != StatusCode::REQUEST_TIMEOUT {
        return bare(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        );
    }
    response
}

/// True when `error` is, or was caused by, a [`BodyTimeout`].
fn is_late(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<BodyTimeout>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// A request body that notes when it fails for being late.
struct Watched {
    inner: Body,
    late: Arc<AtomicBool>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(error))) = &polled
            && is_late(error)
        {
            self.late.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_body_is_recognised_through_the_errors_that_wrap_it() {
        let direct = axum::Error::new(BodyTimeout);
        assert!(is_late(&direct));
        let wrapped = axum::Error::new(axum::Error::new(BodyTimeout));
        assert!(is_late(&wrapped));
        let other = axum::Error::new(std::io::Error::other("reset"));
        assert!(!is_late(&other));
    }
}
