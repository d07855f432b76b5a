//! RED metrics of the requests a router serves: `http_server_request_duration_seconds`, a
//! histogram by `service`, `route` (the route's template, `/products/{id}`, never the path
//! asked: the label's values are as many as the routes), `method` and `status`. Its `_count`
//! is the rate, the `status` label the errors, its buckets the duration.
//!
//! Two middlewares share the work. [`observe`], outermost in the stack, starts the clock and
//! records when the answer leaves, whatever made it (the handler, a timeout, a lapsed
//! deadline, a refused caller); [`name_route`], a route layer, runs once the router has matched
//! and tells `observe` which route it was, through a slot in the request's extensions. A
//! request no route matched is recorded under the stack's fallback name (`unmatched` for a
//! service, `site` for the gateway's pages).
//!
//! Handles are made once per (route, method, status) and kept, so a request costs a map lookup
//! by its route template, a scan of that route's few series and an atomic push: no label
//! strings are built per request (issue 13's gateway budget; docs/benchmarks.md).

use ::metrics::{Histogram, describe_histogram, histogram};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Instant;

/// The histogram's name (OpenTelemetry's `http.server.request.duration`, in Prometheus form).
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";

/// The series of one server (a service, or the gateway).
#[derive(Debug)]
pub struct ServerMetrics {
    service: &'static str,
    routes: RwLock<HashMap<Box<str>, Arc<RouteSeries>>>,
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
        if let Some(series) = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return Arc::clone(series);
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            routes
                .entry(route.into())
                .or_insert_with(|| Arc::new(RouteSeries::new(self.service, route))),
        )
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

    /// The histogram of (`method`, `status`) on this route, made on first use.
    fn histogram(&self, method: &Method, status: StatusCode) -> Histogram {
        let method = method_label(method);
        let status = status.as_u16();
        let find = |series: &[(&'static str, u16, Histogram)]| {
            series
                .iter()
                .find(|(m, s, _)| *s == status && *m == method)
                .map(|(_, _, h)| h.clone())
        };
        if let Some(found) = find(&self.series.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&series) {
            return found;
        }
        let made = histogram!(
            REQUEST_DURATION,
            "service" => self.service,
            "route" => self.route.to_string(),
            "method" => method,
            "status" => status.to_string(),
        );
        series.push((method, status, made.clone()));
        made
    }
}

/// The method as a label: the standard ones by name, any other as `_OTHER` (OpenTelemetry's
/// rule), so a client cannot grow the label's values.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [(&Method, &str); 9] = [
        (&Method::GET, "GET"),
        (&Method::HEAD, "HEAD"),
        (&Method::POST, "POST"),
        (&Method::PUT, "PUT"),
        (&Method::PATCH, "PATCH"),
        (&Method::DELETE, "DELETE"),
        (&Method::OPTIONS, "OPTIONS"),
        (&Method::CONNECT, "CONNECT"),
        (&Method::TRACE, "TRACE"),
    ];
    STANDARD
        .iter()
        .find(|(m, _)| *m == method)
        .map_or("_OTHER", |(_, label)| label)
}

/// Where [`name_route`] leaves the matched route for [`observe`].
#[derive(Clone)]
struct RouteSlot(Arc<OnceLock<Arc<RouteSeries>>>);

/// Middleware, outermost: times the request and records it under the route [`name_route`]
/// found (or the fallback).
pub async fn observe(
    State(metrics): State<Arc<ServerMetrics>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let slot = Arc::new(OnceLock::new());
    req.extensions_mut().insert(RouteSlot(Arc::clone(&slot)));
    let response = next.run(req).await;
    let route = slot.get().unwrap_or(&metrics.fallback);
    route
        .histogram(&method, response.status())
        .record(started.elapsed().as_secs_f64());
    response
}

/// Route layer: tells [`observe`] which route matched.
pub async fn name_route(
    State(metrics): State<Arc<ServerMetrics>>,
    req: Request,
    next: Next,
) -> Response {
    if let (Some(slot), Some(path)) = (
        req.extensions().get::<RouteSlot>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        // Set once: a router nested in another names the innermost route it reached first.
        let _ = slot.0.set(metrics.route(path.as_str()));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let odd = Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_label(&odd), "_OTHER");
    }
}
