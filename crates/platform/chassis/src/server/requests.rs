//! The router as hyper sees it: each request marks its connection busy until its response is
//! written, and its body fails with [`BodyTimeout`] once it is late (the router's stack answers
//! that 408 in its own format: `crate::layers`'s late bodies), which also closes the connection. A response
//! marked with an injected abort (`faults::AbortConnection`) is an error instead, on which
//! hyper closes the connection without writing a byte of it.

use crate::layers::BodyTimeout;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::{Service, ServiceExt};

use super::phase::{InFlight, Phase};
use crate::faults::inject::InjectedReset;

/// The router, with requests' bodies timed and the connection's phase kept.
#[derive(Clone)]
pub(super) struct Requests {
    pub(super) router: Router,
    /// The client's address, given to each request as axum's `ConnectInfo` (the gateway's
    /// per-address rate limits read it).
    pub(super) peer: Option<std::net::SocketAddr>,
    pub(super) phase: Arc<watch::Sender<Phase>>,
    pub(super) body_read_timeout: Duration,
    /// Cancelled when the listener stops: responses then carry `Connection: close`.
    pub(super) closing: tokio_util::sync::CancellationToken,
    /// Set when a request was answered before its body was read to the end: the client may
    /// still be sending it, so the connection is closed gently (`super::linger`).
    pub(super) unread_body: Arc<AtomicBool>,
    /// The connection is TLS: requests carry [`super::ArrivedOverTls`].
    pub(super) tls: bool,
}

impl Service<Request<Incoming>> for Requests {
    type Response = Response<Body>;
    type Error = InjectedReset;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, InjectedReset>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(self.phase.clone());
        if self.tls {
            req.extensions_mut().insert(super::ArrivedOverTls);
        }
        if let Some(detail) = ambiguous(req.headers()) {
            // HTTP/1 heads are refused before hyper (`framing`); this is HTTP/2's check, and a
            // second line of defence. The connection is not reused.
            let mut response = crate::problem::Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                "ambiguous-request",
                detail,
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Box::pin(async move {
                Ok(response.map(|body| {
                    Body::new(Guarded {
                        inner: body,
                        _guard: guard,
                    })
                }))
            });
        }
        let late = Arc::new(AtomicBool::new(false));
        let read_all = Arc::new(AtomicBool::new(hyper::body::Body::is_end_stream(
            req.body(),
        )));
        let deadline = Instant::now() + self.body_read_timeout;
        let mut req = req.map(|body| {
            Body::new(TimedBody {
                inner: body,
                deadline,
                sleep: None,
                late: late.clone(),
                read_all: read_all.clone(),
            })
        });
        if let Some(peer) = self.peer {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let unread_body = self.unread_body.clone();
        let router = self.router.clone();
        let closing = self.closing.clone();
        let http1 = req.version() < axum::http::Version::HTTP_2;
        Box::pin(async move {
            let Ok(mut response) = router.oneshot(req).await;
            if !read_all.load(Ordering::Relaxed) {
                unread_body.store(true, Ordering::Relaxed);
            }
            if let Some(reset) = crate::abort::abort_of(&response) {
                return Err(reset);
            }
            // The rest of a late body may still come: this connection cannot carry another
            // request. Shutting down: tell an HTTP/1 client this is the connection's last answer
            // (HTTP/2 has GOAWAY for that), so it sends its next request elsewhere.
            if late.load(Ordering::Relaxed) || (http1 && closing.is_cancelled()) {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| {
                Body::new(Guarded {
                    inner: body,
                    _guard: guard,
                })
            }))
        })
    }
}

/// Why a request whose headers two parsers could read differently is refused (RELIABILITY.md
/// B4), or `None`.
fn ambiguous(headers: &HeaderMap) -> Option<&'static str> {
    let twice = |name| headers.get_all(name).iter().nth(1).is_some();
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        Some("a request may not have both Content-Length and Transfer-Encoding")
    } else if twice(header::CONTENT_LENGTH) {
        Some("a request may have only one Content-Length")
    } else if twice(header::HOST) {
        Some("a request may have only one Host")
    } else if twice(header::AUTHORIZATION) {
        Some("a request may have only one Authorization")
    } else {
        None
    }
}

/// A request body that fails once its deadline passes with data still to come.
struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    late: Arc<AtomicBool>,
    /// Set once the body has been read to its end.
    read_all: Arc<AtomicBool>,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() || self.inner.is_end_stream() {
                self.read_all.store(true, Ordering::Relaxed);
            }
            return Poll::Ready(frame.map(|f| f.map_err(axum::Error::new)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.late.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body holding its request's [`InFlight`] guard until it has been written.
struct Guarded {
    inner: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
