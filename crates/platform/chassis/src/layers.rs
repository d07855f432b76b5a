//! The standard middleware stack every service router (and the gateway) runs behind.
//!
//! Outermost first: RED metrics (`crate::metrics::http_server`) → request context (id + trace + deadline) → panic catcher → caller trust →
//! bare-error rendering (the service's own error page if it has one, problem+json otherwise) →
//! the deadline → injected faults, when the service has a fault registry → late bodies →
//! timeout → body size limit → the routes. Every refusal inside the renderer is answered bare
//! and rendered there, once ([`bare_errors`]). Each piece is an off-the-shelf tower-http layer
//! where one exists; the ones written here are the renderer, the deadline, late bodies, the
//! trust check and fault injection (`crate::faults::inject`). The gateway's stack ([`edge`])
//! also sheds load (`crate::resilience::shedding`).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::caller::Caller;
use crate::deadline::{self, Incoming};
use crate::faults::Faults;
use crate::metrics::http_server::{self, ServerMetrics};
use crate::problem::Problem;
use crate::request_context::{
    REQUEST_ID, RequestContext, TRACEPARENT, current_deadline, is_valid_request_id, scope,
    with_deadline,
};
use crate::resilience::shedding::Shedding;
use crate::telemetry::{self, Span, SpanKind, span};
use crate::trace_context::TraceParent;
use crate::trust::{ServiceTrust, TrustPolicy, establish_trust};

mod bare_errors;
mod late_body;
pub use late_body::BodyTimeout;

use bare_errors::Renderer;
pub use bare_errors::{BareError, bare};

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

/// How a service answers errors that have no body of their own (404 from the router, 408 for a
/// late body, 413 from the body limit, 503 from the timeout, 504 for a lapsed deadline), given
/// the status and the caller. Services default to problem+json; the storefront, whose callers
/// are browsers, answers an HTML page.
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
    let red = ServerMetrics::new(service, "unmatched");
    let router = router.route_layer(http_server::NameRouteLayer::new(Arc::clone(&red)));
    // Innermost first. Built as one service over the router and put back in a router once
    // (`wrapped`): `Router::layer` per layer would box each one and clone the whole chain below
    // it on every call, which cost the gateway ~60 boxed clones and ~170 allocations a request.
    let inner = ServiceBuilder::new()
        .layer(middleware::from_fn(late_body::answer_late_bodies))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .service(router);
    // Outside the timeout, so that an injected delay is the delay asked for; inside the
    // deadline, which bounds it like any work (the fault's own admin routes are exempt in
    // `Faults` itself).
    let faulted =
        tower::util::option_layer(faults.map(|faults| {
            middleware::from_fn_with_state(faults, crate::faults::inject::middleware)
        }))
        .layer(inner);
    let stack = ServiceBuilder::new()
        .layer(nosniff())
        .layer(http_server::ObserveLayer::new(red))
        .layer(middleware::from_fn_with_state(service, request_context))
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .layer(middleware::from_fn_with_state(trust, establish_trust))
        // Inside the trust check, which tells it the caller (a page's header shows it).
        .layer(middleware::from_fn_with_state(
            Renderer::pages(error_page),
            bare_errors::render,
        ))
        .layer(middleware::from_fn(enforce_deadline))
        .service(faulted);
    wrapped(stack)
}

/// `service` as a router (what hosts and transports take), boxed once.
fn wrapped<S>(service: S) -> Router
where
    S: tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse + 'static,
    S::Future: Send + 'static,
{
    Router::new().fallback_service(service)
}

/// `X-Content-Type-Options: nosniff` on every answer that has none: a browser must not read a
/// JSON body or a picture as HTML or script because of what it looks like.
fn nosniff() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

/// The shared part of [`standard`] for routers that are not services (the gateway): no trust
/// check, since the gateway is where trust starts. `pages`, the fallback for every path
/// `router` does not serve, skips the body limit and the timeout: the web pages behind it
/// apply their own and answer them with HTML pages. The bare errors the edge itself makes for
/// a page (a lapsed deadline, a late body) get `site_page` where `is_page` says the path is a
/// page, so that a browser sees the same HTML the pages' own service would have answered.
///
/// `shedding` admits requests right inside the request context (so a refusal carries its
/// request id) and before anything else works on them: a refused request costs no
/// authentication, routing or upstream call, and the pages are under the same cap.
///
/// Requests are recorded as `server`'s (`crate::metrics::http_server`), the pages under the
/// route `site`.
pub fn edge(
    server: &'static str,
    router: Router,
    pages: Router,
    limits: Limits,
    shedding: &Arc<Shedding>,
    site_page: Option<ErrorPage>,
    is_page: fn(&str) -> bool,
) -> Router {
    let renderer = Renderer {
        page: site_page,
        is_page,
    };
    let red = ServerMetrics::new(server, "site");
    // The routes' own limits, on the routes only (`pages` is added after them).
    let routes = router
        .route_layer(http_server::NameRouteLayer::new(Arc::clone(&red)))
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.request_timeout,
        ))
        .fallback_service(pages);
    // The rest as one service over the whole router, boxed once (see [`standard`]).
    let stack = ServiceBuilder::new()
        .layer(nosniff())
        .layer(http_server::ObserveLayer::new(red))
        .layer(middleware::from_fn_with_state("gateway", request_context))
        .layer(shedding.layer())
        .map_response(IntoResponse::into_response)
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .layer(middleware::from_fn_with_state(
            renderer,
            bare_errors::render,
        ))
        .layer(middleware::from_fn(enforce_deadline))
        .layer(middleware::from_fn(late_body::answer_late_bodies))
        .service(routes);
    wrapped(stack)
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

/// Middleware: reads or creates the request id and trace context, reads the deadline, scopes
/// them for the handler, records the hop's server span (`service`'s), and echoes the request
/// id on the response. A deadline of `0` is one that ran out as the request arrived;
/// [`enforce_deadline`], further in, refuses it.
pub async fn request_context(
    State(service): State<&'static str>,
    mut req: Request,
    next: Next,
) -> Response {
    let arrived = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let parent = req
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let trace = parent.map_or_else(telemetry::new_root, |parent| parent.child());
    let mut server_span = Span::start(
        SpanKind::Server,
        span::method_name(req.method()),
        service,
        trace,
        parent.map(|p| p.span_id),
    );
    if server_span.is_recording() {
        server_span.set("http.request.method", span::method_name(req.method()));
        server_span.set("url.path", req.uri().path().to_owned());
        server_span.set("flotilla.request_id", request_id.clone());
    }
    // The client's own id is forwarded as it came; a new one is made into a header once.
    let id_header = match req.headers().get(&REQUEST_ID) {
        Some(sent) if sent.as_bytes() == request_id.as_bytes() => Some(sent.clone()),
        _ => HeaderValue::from_str(&request_id).ok().inspect(|value| {
            req.headers_mut().insert(REQUEST_ID.clone(), value.clone());
        }),
    };
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
        trace_id = %trace.trace_id_hex(),
        span_id = %trace.span_id_hex(),
    );
    let ctx = RequestContext {
        request_id: request_id.clone(),
        trace,
    };
    let deadline = match deadline::incoming(req.headers(), arrived) {
        Incoming::Absent => None,
        Incoming::Expired => Some(arrived),
        Incoming::At(at) => Some(at),
    };
    let handled = async move {
        let response = next.run(req).await;
        let status = response.status();
        telemetry::annotate_server_span(|span| {
            span.set("http.response.status_code", status.as_u16());
            // OpenTelemetry: a server span fails on 5xx only (a 4xx is the client's).
            if status.is_server_error() {
                span.fail(status.to_string());
            }
        });
        response
    };
    let handled = scope(ctx, with_deadline(deadline, handled));
    let handled = telemetry::in_server_span(server_span, handled);
    let mut response = tracing::Instrument::instrument(handled, span).await;
    if let Some(value) = id_header {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// Middleware: a request whose deadline has passed (on arrival, or while it is handled) is
/// answered a bare 504 (`deadline-exceeded`); the handler does not run, or is cancelled.
async fn enforce_deadline(req: Request, next: Next) -> Response {
    match current_deadline() {
        None => next.run(req).await,
        Some(at) if at <= Instant::now() => deadline_exceeded(),
        Some(at) => tokio::time::timeout_at(at, next.run(req))
            .await
            .unwrap_or_else(|_| deadline_exceeded()),
    }
}

/// The answer to a request whose deadline ran out here: bare, so that it is rendered for the
/// caller like any other refusal of the stack ([`bare_errors`]).
pub fn deadline_exceeded() -> Response {
    tracing::debug!("deadline exceeded before an answer was ready");
    bare(
        StatusCode::GATEWAY_TIMEOUT,
        deadline::DEADLINE_EXCEEDED,
        "the request's deadline ran out before it could be answered",
    )
}

/// Content-Security-Policy of the server-rendered pages (the storefront, the ops console): they
/// carry no script, so none may run; styles, pictures and form targets all live on the page's
/// own origin.
pub const PAGE_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every server-rendered page carries, with its `Cache-Control` (pages that show
/// a user's data are never kept by a shared cache).
pub const fn page_security_headers(
    cache_control: &'static str,
) -> [(axum::http::HeaderName, &'static str); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            PAGE_CONTENT_SECURITY_POLICY,
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, cache_control),
    ]
}
