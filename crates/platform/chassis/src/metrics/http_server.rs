//! RED metrics of the requests a router serves: `http_server_request_duration_seconds`, a
//! histogram by `service`, `route` (the route's template, `/products/{id}`, never the path
//! asked: the label's values are as many as the routes), `method` and `status`. Its `_count`
//! is the rate, the `status` label the errors, its buckets the duration.
//!
//! Two layers share the work. [`ObserveLayer`], outermost in the stack, starts the clock and
//! records when the answer leaves, whatever made it (the handler, a timeout, a lapsed
//! deadline, a refused caller); [`NameRouteLayer`], a route layer, runs once the router has matched
//! and tells `Observe` which route it was, through a slot in the request's extensions. A
//! request no route matched is recorded under the stack's fallback name (`unmatched` for a
//! service, `site` for the gateway's pages).
//!
//! Handles are made once per (route, method, status) and kept, so a request costs a map lookup
//! by its route template, a scan of that route's few series and an atomic push: no label
//! strings are built per request (issue 13's gateway budget; docs/benchmarks.md).

use ::metrics::{Histogram, describe_histogram, histogram};
use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Instant;

/// The histogram's name (OpenTelemetry's `http.server.request.duration`, in Prometheus form).
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";

/// The series of one server (a service, or the gateway).
#[derive(Debug)]
pub struct ServerMetrics {
    service: &'static str,
    /// A list, not a map: a router has a few dozen routes at most, and comparing lengths and a
    /// few bytes costs less than hashing the template on every request.
    routes: RwLock<Vec<Arc<RouteSeries>>>,
    fallback: Arc<RouteSeries>,
}

/// The series of one route, one per (method, status) seen.
#[derive(Debug)]
pub struct RouteSeries {
    service: &'static str,
    route: Box<str>,
    series: RwLock<Vec<(&'static str, u16, Histogram)>>,
}

impl ServerMetrics {
    /// The metrics of `service`'s server; requests no route matched go under `fallback`.
    pub fn new(service: &'static str, fallback: &str) -> Arc<Self> {
        describe_histogram!(
            REQUEST_DURATION,
            ::metrics::Unit::Seconds,
            "Duration of HTTP requests served, from arrival to the answer's head, by route \
             template, method and status."
        );
        Arc::new(Self {
            service,
            routes: RwLock::default(),
            fallback: Arc::new(RouteSeries::new(service, fallback)),
        })
    }

    /// The series of `route`, made the first time it is asked for.
    fn route(&self, route: &str) -> Arc<RouteSeries> {
        let find = |routes: &[Arc<RouteSeries>]| {
            routes
                .iter()
                .find(|series| &*series.route == route)
                .map(Arc::clone)
        };
        if let Some(found) = find(&self.routes.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&routes) {
            return found;
        }
        let made = Arc::new(RouteSeries::new(self.service, route));
        routes.push(Arc::clone(&made));
        made
    }
}

impl RouteSeries {
    fn new(service: &'static str, route: &str) -> Self {
        Self {
            service,
            route: route.into(),
            series: RwLock::default(),
        }
    }

    /// Records `seconds` for (`method`, `status`) on this route; the series is made on first
    /// use. The common case holds a read lock for a scan of a few entries and records there.
    fn record(&self, method: &Method, status: StatusCode, seconds: f64) {
        let method = crate::telemetry::span::method_name(method);
        let status = status.as_u16();
        let find = |series: &[(&'static str, u16, Histogram)]| {
            series
                .iter()
                .position(|(m, s, _)| *s == status && *m == method)
        };
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = find(&series) {
                series[at].2.record(seconds);
                return;
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = find(&series) {
            series[at].2.record(seconds);
            return;
        }
        let made = histogram!(
            REQUEST_DURATION,
            "service" => self.service,
            "route" => self.route.to_string(),
            "method" => method,
            "status" => status.to_string(),
        );
        made.record(seconds);
        series.push((method, status, made));
    }
}

/// Where [`NameRoute`] leaves the matched route for [`Observe`].
#[derive(Clone)]
struct RouteSlot(Arc<OnceLock<Arc<RouteSeries>>>);

/// Outermost layer: times the request and records it under the route [`NameRoute`] found
/// (or the fallback). A tower layer rather than `from_fn`, which would clone the whole stack
/// beneath it on every request.
#[derive(Debug, Clone)]
pub struct ObserveLayer(Arc<ServerMetrics>);

impl ObserveLayer {
    /// Records into `metrics`.
    pub fn new(metrics: Arc<ServerMetrics>) -> Self {
        Self(metrics)
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: Arc::clone(&self.0),
        }
    }
}

/// The service [`ObserveLayer`] makes.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<ServerMetrics>,
}

impl<S, B, R> tower::Service<axum::http::Request<B>> for Observe<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = req.method().clone();
        let slot = Arc::new(OnceLock::new());
        req.extensions_mut().insert(RouteSlot(Arc::clone(&slot)));
        ObserveFuture {
            answer: self.inner.call(req),
            started,
            method,
            slot,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`Observe`], recorded when it is ready.
    pub struct ObserveFuture<F> {
        #[pin]
        answer: F,
        started: Instant,
        method: Method,
        slot: Arc<OnceLock<Arc<RouteSeries>>>,
        metrics: Arc<ServerMetrics>,
    }
}

impl<F, R, E> std::future::Future for ObserveFuture<F>
where
    F: std::future::Future<Output = Result<axum::http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.answer.poll(cx));
        if let Ok(response) = &answer {
            let route = this.slot.get().unwrap_or(&this.metrics.fallback);
            route.record(
                this.method,
                response.status(),
                this.started.elapsed().as_secs_f64(),
            );
        }
        std::task::Poll::Ready(answer)
    }
}

/// Route layer: tells [`Observe`] which route matched. A plain tower layer rather than
/// `from_fn`, which would box a future and clone the route's service on every request.
#[derive(Debug, Clone)]
pub struct NameRouteLayer(Arc<ServerMetrics>);

impl NameRouteLayer {
    /// Names routes for `metrics`.
    pub fn new(metrics: Arc<ServerMetrics>) -> Self {
        Self(metrics)
    }
}

impl<S> tower::Layer<S> for NameRouteLayer {
    type Service = NameRoute<S>;

    fn layer(&self, inner: S) -> NameRoute<S> {
        NameRoute {
            inner,
            metrics: Arc::clone(&self.0),
        }
    }
}

/// The service [`NameRouteLayer`] makes: sets the slot, then calls the route.
#[derive(Debug, Clone)]
pub struct NameRoute<S> {
    inner: S,
    metrics: Arc<ServerMetrics>,
}

impl<S, B> tower::Service<axum::http::Request<B>> for NameRoute<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        if let (Some(slot), Some(path)) = (
            req.extensions().get::<RouteSlot>(),
            req.extensions().get::<MatchedPath>(),
        ) {
            // Set once: a router nested in another names the innermost route it reached first.
            let _ = slot.0.set(self.metrics.route(path.as_str()));
        }
        // The server span is named after the route too (`GET /products/{id}`).
        if let Some(path) = req.extensions().get::<MatchedPath>() {
            let (method, route) = (req.method(), path.as_str());
            crate::telemetry::annotate_server_span(|span| {
                span.rename(format!("{method} {route}"));
                span.set("http.route", route.to_owned());
            });
        }
        self.inner.call(req)
    }
}
