//! The gateway's routing table and router: `/api/<service>/...` to that service with its
//! policy, everything else to the storefront.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use flotilla_chassis::Role;
use flotilla_chassis::caller::Caller;
use flotilla_chassis::extract::Query;
use flotilla_chassis::layers::{self, ErrorPage, Limits};
use flotilla_chassis::metrics::Metrics;
use flotilla_chassis::problem::Problem;
use flotilla_chassis::request_context;
use flotilla_chassis::resilience::collector::SheddingCollector;
use flotilla_chassis::resilience::shedding::{self, Shedding, SheddingConfig};
use flotilla_chassis::service_credential::{SERVICE_TOKEN, ServiceCredentials};
use flotilla_chassis::telemetry::otlp;
use flotilla_chassis::transport::{ServiceClient, Transport};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admin_surface::{is_admin_path, is_ops_path};
use crate::auth::{AuthError, Authenticator};
use crate::deadlines::{Route, RouteDeadlines};
use crate::exposure::{Access, Exposure};
use crate::proxy;
use crate::rate_limit::{Class, RateLimiter};
use crate::traces;

/// The gateway's name in answers and logs.
const GATEWAY: &str = "gateway";

/// `[gateway]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// Minimum seconds between two fetches of identity's keys triggered by unknown key ids.
    pub jwks_refresh_secs: u64,
    /// `[gateway.deadline]`: the deadline each request gets at the edge.
    pub deadline: RouteDeadlines,
    /// `[gateway.shedding]`: how many requests the gateway serves at once.
    pub shedding: SheddingConfig,
    /// Mark the web shop's cookies `Secure` (only sent over HTTPS): on when the shop is served
    /// over TLS, whether by the gateway or a proxy in front of it.
    pub secure_cookies: bool,
    /// `[gateway.cors]`: which other origins' scripts may call the API.
    pub cors: CorsConfig,
    /// A listener of its own for the OTLP receiver (`POST /api/gateway/otlp/v1/traces` and
    /// nothing else), on the gateway's address: the fleet's spans reach the gateway there, so
    /// a NetworkPolicy can let every pod in to that port and keep the public listener to the
    /// Ingress controller. None (the default): the receiver is only on the public listener.
    pub otlp_port: Option<u16>,
    /// Pass a request carrying another Flotilla process's credential for the service it names
    /// straight through, past the exposure check and the user's token (the default): how a
    /// process in mixed mode reaches a service that `flotilla run` announced behind this
    /// gateway. Off (the Kubernetes manifests: every service has its own address there), such a
    /// request is treated like any client's, so reaching the gateway is not a way around a
    /// service's NetworkPolicy.
    pub fleet_passthrough: bool,
    // `[gateway.rate_limit]` is read on its own, key by key over its defaults
    // ([`RateLimitConfig`], `flotilla_chassis::config::section_over_defaults`).
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            jwks_refresh_secs: 10,
            deadline: RouteDeadlines::default(),
            shedding: SheddingConfig::default(),
            secure_cookies: false,
            cors: CorsConfig::default(),
            otlp_port: None,
            fleet_passthrough: true,
        }
    }
}

/// `[gateway.cors]`: cross-origin calls to `/api/...` from the listed origins' scripts (bearer
/// tokens in a header; no cookies are sent cross-origin). Empty, the default: no CORS headers,
/// so browsers keep other sites' scripts from reading any answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed, exactly as browsers send them (`https://shop.example.com`), or `*`.
    pub allowed_origins: Vec<String>,
    /// Seconds a browser may keep a preflight's answer (at most 86400; 0: the browser's default).
    pub max_age_secs: u64,
}

impl CorsConfig {
    /// The layer for the API, or `None` when no origin is allowed.
    pub fn layer(&self) -> Result<Option<tower_http::cors::CorsLayer>, String> {
        use axum::http::{HeaderName, HeaderValue, Method, header};
        use tower_http::cors::{AllowOrigin, CorsLayer};
        if self.allowed_origins.is_empty() {
            return Ok(None);
        }
        if self.max_age_secs > 86_400 {
            return Err("[gateway.cors] max_age_secs must be at most 86400".into());
        }
        let origin = if self.allowed_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            let mut origins = Vec::new();
            for origin in &self.allowed_origins {
                let well_formed = ["https://", "http://"].iter().any(|scheme| {
                    origin.strip_prefix(scheme).is_some_and(|host| {
                        !host.is_empty() && !host.contains(['/', ' ', '?', '#', '*'])
                    })
                });
                let value = HeaderValue::from_str(origin).ok().filter(|_| well_formed);
                origins.push(value.ok_or_else(|| {
                    format!(
                        "[gateway.cors] allowed_origins: {origin:?} is not an origin \
                         (scheme://host[:port], no path)"
                    )
                })?);
            }
            AllowOrigin::list(origins)
        };
        let layer = CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-flotilla-deadline-ms"),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(std::time::Duration::from_secs(self.max_age_secs));
        Ok(Some(layer))
    }
}

/// Who may call a service's routes, decided at the edge before the request travels further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutePolicy {
    /// Anyone; a token, if presented, must be valid and identifies the caller.
    Public,
    /// Only authenticated users; anonymous requests get 401 here.
    Authenticated,
}

struct Upstream {
    transport: Transport,
    policy: RoutePolicy,
    /// The service's public operations, read from its `/openapi.json` on first use.
    exposure: OnceCell<Arc<Exposure>>,
}

impl Upstream {
    /// The exposure, fetching the service's contract the first time (and again after a failure).
    async fn exposure(&self, service: &str) -> Result<Arc<Exposure>, Problem> {
        self.exposure
            .get_or_try_init(|| async {
                let client = ServiceClient::new("gateway", self.transport.clone());
                let doc: serde_json::Value =
                    client.get("/openapi.json", None).await.map_err(|err| {
                        tracing::warn!(service, error = %err, "cannot read the service's contract");
                        Problem::unavailable(format!("{service} is unavailable right now"))
                    })?;
                Exposure::from_openapi(&doc).map(Arc::new).map_err(|err| {
                    tracing::error!(service, error = %err, "the service's contract is unusable");
                    Problem::unavailable(format!("{service} is unavailable right now"))
                })
            })
            .await
            .cloned()
    }
}

/// The gateway's routing table.
pub struct Gateway {
    upstreams: HashMap<String, Upstream>,
    storefront: Option<Transport>,
    /// How the storefront's pages look when the gateway itself refuses one (a lapsed deadline,
    /// a late body): the storefront's own error page, so a browser never sees problem+json.
    site_error_page: Option<ErrorPage>,
    auth: Arc<Authenticator>,
    credentials: Arc<ServiceCredentials>,
    deadlines: RouteDeadlines,
    shedding: Arc<Shedding>,
    rate_limit: Arc<RateLimiter>,
    secure_cookies: bool,
    cors: Option<tower_http::cors::CorsLayer>,
    /// The gateway's own resilience report (its calls to each service), when the host gave one.
    report: Option<ResilienceReport>,
    /// The process's metrics, served to admins at `/api/gateway/admin/metrics`.
    metrics: Option<Metrics>,
    /// Whether credentialed calls of other Flotilla processes pass straight through
    /// ([`GatewayConfig::fleet_passthrough`]).
    fleet_passthrough: bool,
    /// Cancelled when the process starts shutting down: `/readyz` answers 503 from then on.
    draining: Option<CancellationToken>,
}

/// The gateway's two routers: the public one, and the OTLP receiver alone, for a listener of
/// its own ([`GatewayConfig::otlp_port`]).
pub struct GatewayRouters {
    /// Everything: the API, the site, the gateway's probes and admin routes.
    pub public: Router,
    /// `POST /api/gateway/otlp/v1/traces` only, the receiver's path on the public listener too
    /// (the one path a Flotilla process sends its credential to).
    pub otlp: Router,
}

/// Makes the gateway's resilience report (the chassis's `resilience::admin::build` over the
/// gateway's own stack) as JSON.
pub type ResilienceReport = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

impl Gateway {
    /// A gateway with no routes yet. `credentials` recognises other Flotilla processes (mixed
    /// mode), whose credentials name the user they act for.
    pub fn new(auth: Authenticator, credentials: Arc<ServiceCredentials>) -> Self {
        Self {
            upstreams: HashMap::new(),
            storefront: None,
            site_error_page: None,
            auth: Arc::new(auth),
            credentials,
            deadlines: RouteDeadlines::default(),
            shedding: Shedding::new(GATEWAY, SheddingConfig::default(), is_gateway_probe)
                .expect("the default shedding settings are valid"),
            rate_limit: RateLimiter::off(),
            secure_cookies: false,
            cors: None,
            report: None,
            metrics: None,
            fleet_passthrough: true,
            draining: None,
        }
    }

    /// Passes credentialed calls of other Flotilla processes straight through when `on` (the
    /// default); treats them like any client's otherwise ([`GatewayConfig::fleet_passthrough`]).
    pub fn fleet_passthrough(mut self, on: bool) -> Self {
        self.fleet_passthrough = on;
        self
    }

    /// Answers `/readyz` with 503 once `shutdown` is cancelled, so that a load balancer stops
    /// sending new requests to a draining gateway.
    pub fn draining_on(mut self, shutdown: CancellationToken) -> Self {
        self.draining = Some(shutdown);
        self
    }

    /// Serves `metrics` (the whole process's, `?service=<name>` for one service's) at
    /// `GET /api/gateway/admin/metrics` to admins, and records the gateway's load shedding in
    /// them. The public listener never serves `/metrics` itself (README, "Metrics").
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Serves `report` at `GET /api/gateway/admin/resilience` (admin role), as each service
    /// serves its own at `/api/<service>/admin/resilience`.
    pub fn resilience_report(mut self, report: ResilienceReport) -> Self {
        self.report = Some(report);
        self
    }

    /// Marks the cookies the web shop sets `Secure` when `on`.
    pub fn secure_cookies(mut self, on: bool) -> Self {
        self.secure_cookies = on;
        self
    }

    /// Lets the origins of `config` call the API from their scripts.
    pub fn cors(mut self, config: &CorsConfig) -> Result<Self, String> {
        self.cors = config.layer()?;
        Ok(self)
    }

    /// Limits requests per client address and per user with `limiter` (none are limited
    /// otherwise).
    pub fn rate_limit(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.rate_limit = limiter;
        self
    }

    /// Serves at most `config.max_in_flight` requests at once, refusing the excess with 503
    /// `overloaded` (probes excepted: the gateway's own and each service's through it).
    pub fn shedding(
        mut self,
        config: SheddingConfig,
    ) -> Result<Self, shedding::InvalidSheddingConfig> {
        self.shedding = Shedding::new(GATEWAY, config, is_gateway_probe)?;
        Ok(self)
    }

    /// Gives requests the deadlines of `deadlines` instead of the defaults.
    pub fn deadlines(mut self, deadlines: RouteDeadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Routes `/api/<service>/...` to `transport` under `policy`.
    pub fn route(mut self, service: &str, transport: Transport, policy: RoutePolicy) -> Self {
        self.upstreams.insert(
            service.to_owned(),
            Upstream {
                transport,
                policy,
                exposure: OnceCell::new(),
            },
        );
        self
    }

    /// Routes every non-API path to the storefront.
    pub fn storefront(mut self, transport: Transport) -> Self {
        self.storefront = Some(transport);
        self
    }

    /// Renders the errors the gateway itself answers for a page with `page` (the storefront's
    /// [`ErrorPage`]) instead of problem+json.
    pub fn site_error_page(mut self, page: ErrorPage) -> Self {
        self.site_error_page = Some(page);
        self
    }

    /// The gateway's router behind the edge middleware. The site (every non-API path) is left
    /// to the storefront's own body limit and timeout, which answer HTML pages a browser can
    /// show rather than the problem+json the edge answers API callers with.
    pub fn into_router(self, limits: Limits) -> Router {
        self.into_routers(limits).public
    }

    /// [`Gateway::into_router`], with the OTLP receiver's router for a listener of its own.
    pub fn into_routers(self, limits: Limits) -> GatewayRouters {
        let shedding = Arc::clone(&self.shedding);
        if let Some(metrics) = &self.metrics {
            metrics.add_collector(SheddingCollector::new(GATEWAY, Arc::clone(&shedding)));
        }
        let site_error_page = self.site_error_page.clone();
        let cors = self.cors.clone();
        let gateway = Arc::new(self);
        let api_routes = Router::new()
            .route("/api/gateway/admin/resilience", get(gateway_resilience))
            .route("/api/gateway/admin/traces", get(gateway_traces))
            .route("/api/gateway/admin/traces/{trace_id}", get(gateway_trace))
            .route(
                "/api/gateway/otlp/v1/traces",
                axum::routing::post(gateway_otlp_traces),
            )
            .route("/api/gateway/admin/metrics", get(gateway_metrics))
            .route("/api", any(api))
            .route("/api/", any(api))
            .route("/api/{*rest}", any(api))
            .with_state(gateway.clone());
        // The console reads through the API handling itself (flotilla-console's module docs).
        let console = flotilla_console::router(api_transport(api_routes.clone()));
        let mut router = api_routes;
        if let Some(cors) = cors {
            // Preflights are answered here, before limits, tokens or the exposure check.
            router = router.layer(cors);
        }
        let otlp = Router::new()
            .route(
                otlp::GATEWAY_RECEIVER,
                axum::routing::post(gateway_otlp_traces),
            )
            .with_state(gateway.clone())
            .layer(RequestBodyLimitLayer::new(limits.body_bytes))
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                limits.request_timeout,
            ));
        let router = router.merge(
            Router::new()
                .route("/healthz", get(healthz))
                // Its own readiness, not the storefront's: a storefront outage must not take
                // every gateway replica (and with them `/api/*`) out of the load balancer.
                .route("/readyz", get(readyz))
                // Not the storefront's: its `/metrics` (every service router has one) is not public.
                .route("/metrics", any(no_public_metrics))
                .with_state(gateway.clone()),
        );
        let pages = Router::new()
            .fallback(site)
            .with_state(Site { gateway, console });
        let public = layers::edge(
            GATEWAY,
            router,
            pages,
            limits,
            &shedding,
            site_error_page,
            is_site_path,
        );
        GatewayRouters { public, otlp }
    }

    /// The user `req`'s bearer token names, if it has one; a bad token is refused.
    async fn caller(&self, headers: &axum::http::HeaderMap) -> Result<Option<Caller>, Response> {
        match Authenticator::bearer(headers) {
            Err(err) => Err(unauthorized(&err)),
            Ok(None) => Ok(None),
            Ok(Some(token)) => self
                .auth
                .verify(token)
                .await
                .map(Some)
                .map_err(|err| unauthorized(&err)),
        }
    }

    /// `Ok` for an administrator's request; the refusal to answer otherwise.
    pub(crate) async fn admin(&self, headers: &axum::http::HeaderMap) -> Result<(), Response> {
        match self.caller(headers).await? {
            None => Err(unauthorized(&AuthError::Missing)),
            Some(caller) if caller.role != Role::Admin => Err(admin_only()),
            Some(_) => Ok(()),
        }
    }

    /// Takes a token from the bucket of `req`'s client address for `class`.
    fn limit_client(
        &self,
        class: Class,
        req: &Request,
    ) -> impl Future<Output = Result<(), Response>> + Send + '_ {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        let ip = self.rate_limit.client_ip(peer, req.headers());
        self.rate_limit.check_ip(class, ip)
    }

    /// The user a call from another Flotilla process acts for, when the request carries a valid
    /// credential minted for `service` (the process reached `service` through this gateway).
    fn fleet_call(&self, req: &Request, service: &str) -> Option<Option<Caller>> {
        if !self.fleet_passthrough {
            return None;
        }
        let token = req.headers().get(&SERVICE_TOKEN)?.to_str().ok()?;
        self.credentials
            .verify(token, service)
            .ok()
            .map(|verified| verified.caller)
    }
}

/// The gateway's liveness, with its load: the cap on requests in flight, how many are in
/// flight now, and how many were refused since it started (README, "Resilience").
async fn healthz(State(gw): State<Arc<Gateway>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "status": "ok",
        "service": GATEWAY,
        "load": gw.shedding.snapshot(),
        "rate_limit": gw.rate_limit.snapshot(),
    }))
}

/// The gateway's readiness: its own, not any upstream's. Ready while it serves; 503 once it is
/// shutting down. It needs nothing from another service to route: identity's keys are fetched
/// when a token needs them (a token is then refused with 503 while identity is down, anonymous
/// requests still pass), and each upstream's outage is answered per route.
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let draining = gw
        .draining
        .as_ref()
        .is_some_and(CancellationToken::is_cancelled);
    let status = if draining {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    let body = serde_json::json!({
        "status": if draining { "not ready" } else { "ready" },
        "service": GATEWAY,
        "checks": { "shutdown": if draining { "draining" } else { "no" } },
    });
    (status, axum::Json(body)).into_response()
}

/// `GET /api/gateway/admin/resilience`: the policy, breaker, bulkhead and retry counters of
/// every service the gateway calls (admin role).
async fn gateway_resilience(
    State(gw): State<Arc<Gateway>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(refused) = gw.admin(&headers).await {
        return refused;
    }
    match &gw.report {
        Some(report) => axum::Json(report()).into_response(),
        None => Problem::not_found("this gateway keeps no resilience report").into_response(),
    }
}

/// `GET /api/gateway/admin/traces`: the recent traces (admin role).
async fn gateway_traces(
    State(gw): State<Arc<Gateway>>,
    headers: axum::http::HeaderMap,
    query: Result<Query<traces::ListQuery>, Problem>,
) -> Response {
    if let Err(refused) = gw.admin(&headers).await {
        return refused;
    }
    match query {
        Ok(Query(query)) => traces::list(&query),
        Err(refused) => refused.into_response(),
    }
}

/// `GET /api/gateway/admin/traces/{trace_id}`: one trace's spans (admin role).
async fn gateway_trace(
    State(gw): State<Arc<Gateway>>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(trace_id): axum::extract::Path<String>,
) -> Response {
    if let Err(refused) = gw.admin(&headers).await {
        return refused;
    }
    traces::one(&trace_id)
}

/// `POST /api/gateway/otlp/v1/traces`: another process's spans, in OTLP JSON, kept with this
/// process's own (an administrator's token, or another Flotilla process's credential).
async fn gateway_otlp_traces(
    State(gw): State<Arc<Gateway>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let from_fleet = headers
        .get(&SERVICE_TOKEN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|token| gw.credentials.verify(token, GATEWAY).is_ok());
    if !from_fleet && let Err(refused) = gw.admin(&headers).await {
        return refused;
    }
    traces::receive(&headers, &body)
}

/// `GET /api/gateway/admin/metrics[?service=<name>]`: the process's metrics in Prometheus text
/// (admin role), for an operator or the ops console without access to the metrics listener.
async fn gateway_metrics(
    State(gw): State<Arc<Gateway>>,
    headers: axum::http::HeaderMap,
    Query(params): Query<MetricsParams>,
) -> Response {
    if let Err(refused) = gw.admin(&headers).await {
        return refused;
    }
    match &gw.metrics {
        Some(metrics) => {
            flotilla_chassis::metrics::exposition(metrics.render(params.service.as_deref()).await)
        }
        None => Problem::not_found("this gateway keeps no metrics").into_response(),
    }
}

/// `?service=<name>`.
#[derive(Debug, Deserialize)]
struct MetricsParams {
    service: Option<String>,
}

/// `/metrics` on the public listener: not here. Scrapes go to the metrics listener (or, with
/// an admin's token, `/api/gateway/admin/metrics`).
async fn no_public_metrics() -> Response {
    Problem::not_found("metrics are not served on the public listener").into_response()
}

/// True for the paths the storefront serves: all but the gateway's own and the API.
fn is_site_path(path: &str) -> bool {
    !matches!(path, "/healthz" | "/readyz" | "/metrics" | "/api") && !path.starts_with("/api/")
}

/// Runs `handle` under the deadline of `route`: the one the client asked for (bounded), or the
/// route's default. Running out answers a bare 504, rendered for the route like any refusal
/// of the edge (problem+json for the API, the storefront's page for a page), and cancels
/// whatever was under way.
async fn within_deadline(
    gw: &Gateway,
    route: Route<'_>,
    handle: impl Future<Output = Response>,
) -> Response {
    let deadline =
        gw.deadlines
            .effective(route, request_context::current_deadline(), Instant::now());
    let bounded = tokio::time::timeout_at(deadline, handle);
    request_context::with_deadline(Some(deadline), bounded)
        .await
        .unwrap_or_else(|_| layers::deadline_exceeded())
}

/// `/api/<service>/<rest>` → `<service>` sees `/<rest>`.
async fn api(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some((service, rest)) = split_api_path(&path) else {
        return Problem::not_found("no such API; routes are /api/<service>/...").into_response();
    };
    let route = Route::Api {
        service,
        probe: is_probe(rest),
    };
    within_deadline(&gw, route, api_within_deadline(&gw, service, rest, req)).await
}

async fn api_within_deadline(gw: &Gateway, service: &str, rest: &str, req: Request) -> Response {
    let Some(upstream) = gw.upstreams.get(service) else {
        return Problem::not_found(format!(
            "no service named {}",
            flotilla_chassis::input_message::quote(service)
        ))
        .into_response();
    };
    // Every service router has `/metrics` (its scrape on its own listener), which a route
    // template such as orders' `/{id}` would otherwise let through the exposure check.
    if is_metrics_path(rest) {
        return Problem::not_found("metrics are not served on the public listener").into_response();
    }
    let target = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    if let Some(caller) = gw.fleet_call(&req, service) {
        return proxy::forward(&upstream.transport, service, req, &target, caller).await;
    }
    let class = (!is_probe(rest)).then(|| Class::of(req.method(), req.uri().path()));
    if let Some(class) = class
        && let Err(refused) = gw.limit_client(class, &req).await
    {
        return refused;
    }
    // The admin surface needs an admin at the edge, whatever the spelling of its path.
    let admin_surface = is_admin_path(rest);
    let mut verified = None;
    if admin_surface {
        let caller = match gw.caller(req.headers()).await {
            Ok(caller) => caller,
            Err(refused) => return refused,
        };
        match &caller {
            None => return unauthorized(&AuthError::Missing),
            Some(c) if c.role != Role::Admin => return admin_only(),
            Some(_) => verified = Some(caller),
        }
    }
    match upstream
        .exposure(service)
        .await
        .map(|e| e.access(req.method(), rest))
    {
        Ok(Access::Allowed) => {}
        Ok(Access::NotFound) => {
            // The path is the request's own text: quoted, escaped and cut like every echo.
            let detail = format!(
                "no public route {} {} on {service}",
                req.method(),
                flotilla_chassis::input_message::quote(rest)
            );
            return Problem::not_found(detail).into_response();
        }
        Ok(Access::MethodNotAllowed(methods)) => return method_not_allowed(req.method(), &methods),
        Err(problem) => return problem.into_response(),
    }
    let caller = match verified {
        Some(caller) => caller,
        None => match gw.caller(req.headers()).await {
            Ok(caller) => caller,
            Err(refused) => return refused,
        },
    };
    if caller.is_none() && upstream.policy == RoutePolicy::Authenticated && !is_probe(rest) {
        return unauthorized(&AuthError::Missing);
    }
    if let (Some(class), Some(caller)) = (class, &caller)
        && let Err(refused) = gw.rate_limit.check_user(class, &caller.user_id).await
    {
        return refused;
    }
    proxy::forward(&upstream.transport, service, req, &target, caller).await
}

/// What the site's paths are served with: the gateway, and the ops console it mounts at `/ops`.
#[derive(Clone)]
struct Site {
    gateway: Arc<Gateway>,
    console: Router,
}

/// The gateway's API handling (`api_routes`) as a [`Transport`], for the console: a request
/// sent through it is answered exactly as one arriving at `/api/...` (token, admin surface,
/// exposure, per-user rate limit), without a socket or the edge layers a second time.
fn api_transport(api_routes: Router) -> Transport {
    Transport::new(ServiceExt::<Request>::map_err(
        api_routes,
        |never: std::convert::Infallible| -> flotilla_chassis::transport::TransportError {
            match never {}
        },
    ))
}

/// Everything else → the storefront, with the session cookie (or a bearer token) as identity;
/// `/ops` → the ops console, for administrators only. An invalid or expired cookie makes the
/// visitor anonymous rather than locking them out.
async fn site(State(site): State<Site>, req: Request) -> Response {
    let gw = &site.gateway;
    within_deadline(
        gw,
        Route::Site,
        site_within_deadline(gw, &site.console, req),
    )
    .await
}

async fn site_within_deadline(gw: &Gateway, console: &Router, req: Request) -> Response {
    let class =
        (!is_gateway_probe(req.uri().path())).then(|| Class::of(req.method(), req.uri().path()));
    if let Some(class) = class
        && let Err(refused) = gw.limit_client(class, &req).await
    {
        return refused;
    }
    let token = match Authenticator::bearer(req.headers()) {
        Ok(Some(token)) => Some(token),
        _ => Authenticator::session_cookie(req.headers()),
    };
    let (token, caller): (Option<String>, Option<Caller>) = match token {
        Some(token) => match gw.auth.verify(token).await {
            Ok(caller) => (Some(token.to_owned()), Some(caller)),
            Err(_) => (None, None),
        },
        None => (None, None),
    };
    if let (Some(class), Some(caller)) = (class, &caller)
        && let Err(refused) = gw.rate_limit.check_user(class, &caller.user_id).await
    {
        return refused;
    }
    if is_ops_path(req.uri().path()) {
        return ops(console, req, token, caller).await;
    }
    let Some(storefront) = &gw.storefront else {
        return Problem::not_found("no storefront runs here; the API is under /api/<service>/")
            .into_response();
    };
    // The site's admin pages (`/admin/resilience`) are guarded like the API's.
    if is_admin_path(req.uri().path()) && caller.as_ref().is_none_or(|c| c.role != Role::Admin) {
        return flotilla_chassis::layers::bare(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "this page is for administrators",
        );
    }
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    // Served over TLS here, or behind a TLS proxy by configuration.
    let secure_cookies = gw.secure_cookies
        || req
            .extensions()
            .get::<flotilla_chassis::server::ArrivedOverTls>()
            .is_some();
    let mut response = proxy::forward(storefront, "storefront", req, &target, caller).await;
    if secure_cookies {
        secure(response.headers_mut());
    }
    response
}

/// `/ops` (however spelled): an anonymous visitor is sent to the shop's login page, coming back
/// here afterwards; anyone but an administrator gets the 403 page; an administrator's request
/// goes to the console with their session (`OpsSession`), which it acts under.
async fn ops(
    console: &Router,
    mut req: Request,
    token: Option<String>,
    caller: Option<Caller>,
) -> Response {
    let (Some(token), Some(caller)) = (token, caller) else {
        let path = req.uri().path();
        // Back to where the visitor was going when that is the console's own spelling.
        let next = if path == "/ops" || path.starts_with("/ops/") {
            req.uri().path_and_query().map_or(path, |p| p.as_str())
        } else {
            "/ops"
        };
        let next: String = url_query_value(next);
        return axum::response::Redirect::to(&format!("/login?next={next}")).into_response();
    };
    if caller.role != Role::Admin {
        return flotilla_chassis::layers::bare(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "the ops console is for administrators",
        );
    }
    Caller::strip_headers(req.headers_mut());
    req.extensions_mut()
        .insert(flotilla_console::OpsSession::new(token, caller.user_id));
    match console.clone().oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// `text` percent-encoded as a query value.
fn url_query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Adds `Secure` to every `Set-Cookie` in `headers` that lacks it.
fn secure(headers: &mut axum::http::HeaderMap) {
    let cookies: Vec<_> = headers
        .get_all(axum::http::header::SET_COOKIE)
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap_or_default();
            let has = text
                .split(';')
                .any(|attr| attr.trim().eq_ignore_ascii_case("secure"));
            if has || text.is_empty() {
                v.clone()
            } else {
                format!("{text}; Secure")
                    .parse()
                    .unwrap_or_else(|_| v.clone())
            }
        })
        .collect();
    headers.remove(axum::http::header::SET_COOKIE);
    for cookie in cookies {
        headers.append(axum::http::header::SET_COOKIE, cookie);
    }
}

/// 405 with the `Allow` header listing the path's public methods.
fn method_not_allowed(method: &axum::http::Method, allowed: &[axum::http::Method]) -> Response {
    let allow = allowed
        .iter()
        .map(axum::http::Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let detail = format!("{method} is not allowed here; this path allows {allow}");
    let mut response = Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        detail,
    )
    .into_response();
    if let Ok(v) = allow.parse() {
        response.headers_mut().insert(axum::http::header::ALLOW, v);
    }
    response
}

/// 403 for a caller who is not an admin on the admin surface.
fn admin_only() -> Response {
    Problem::forbidden("this route is for administrators").into_response()
}

fn unauthorized(err: &AuthError) -> Response {
    let status = match err {
        AuthError::KeysUnavailable => {
            return Problem::unavailable("cannot verify tokens right now: identity is unavailable")
                .into_response();
        }
        // A refused token's own reasons (its `kid`, its claims) are for logs, not for the client.
        AuthError::Invalid(token) => {
            tracing::debug!(error = %token, "token refused");
            Problem::from(token.clone())
        }
        _ => Problem::unauthorized(err.to_string()),
    };
    let mut response = status.into_response();
    if let Ok(v) = "Bearer error=\"invalid_token\"".parse() {
        response
            .headers_mut()
            .insert(axum::http::header::WWW_AUTHENTICATE, v);
    }
    response
}

/// True for the path of a service router's own `/metrics` (axum matches it exactly).
fn is_metrics_path(rest: &str) -> bool {
    rest == "/metrics"
}

/// Probes and the contract are public on every service, so monitors need no token.
fn is_probe(rest: &str) -> bool {
    matches!(rest, "/healthz" | "/readyz" | "/openapi.json")
}

/// The health probes load shedding never refuses: the gateway's own (`/healthz`, `/readyz`)
/// and each service's through it, `/api/<service>/{healthz,readyz}`.
fn is_gateway_probe(path: &str) -> bool {
    shedding::is_probe(path)
        || split_api_path(path).is_some_and(|(_, rest)| shedding::is_probe(rest))
}

/// Splits `/api/<service>/<rest>` into (`service`, `/<rest>`); `rest` is `/` when absent.
fn split_api_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/api/")?;
    let (service, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    (!service.is_empty()).then_some((service, rest))
}

#[cfg(test)]
mod tests {
    use super::{CorsConfig, is_gateway_probe, split_api_path};

    #[test]
    fn cors_origins_must_be_origins() {
        let with = |origins: &[&str]| CorsConfig {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            max_age_secs: 0,
        };
        assert!(
            with(&[]).layer().expect("valid").is_none(),
            "closed by default"
        );
        for good in [
            &["https://shop.example"][..],
            &["http://localhost:3000", "*"],
        ] {
            assert!(with(good).layer().expect("valid").is_some(), "{good:?}");
        }
        for bad in [
            "shop.example",
            "https://shop.example/",
            "https://shop.example/path",
            "https://",
            "https://*.example",
            "ftp://shop.example",
        ] {
            assert!(with(&[bad]).layer().is_err(), "{bad}");
        }
    }

    #[test]
    fn probes_are_the_gateways_and_each_services() {
        for probe in [
            "/healthz",
            "/readyz",
            "/api/catalog/healthz",
            "/api/orders/readyz",
        ] {
            assert!(is_gateway_probe(probe), "{probe}");
        }
        for other in [
            "/",
            "/api/catalog/products",
            "/api/catalog/openapi.json",
            "/api/catalog/x/healthz",
            "/products/healthz",
        ] {
            assert!(!is_gateway_probe(other), "{other}");
        }
    }

    #[test]
    fn splits_api_paths() {
        assert_eq!(
            split_api_path("/api/catalog/products/p1"),
            Some(("catalog", "/products/p1"))
        );
        assert_eq!(split_api_path("/api/cart"), Some(("cart", "/")));
        assert_eq!(split_api_path("/api/cart/"), Some(("cart", "/")));
        assert_eq!(split_api_path("/api/"), None);
        assert_eq!(split_api_path("/apix/cart"), None);
    }
}
