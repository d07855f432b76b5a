//! What the gateway answers on its own, whatever its upstreams do: its readiness (`/readyz`,
//! not the storefront's), the OTLP receiver's router for a listener of its own, and credentialed
//! calls of other Flotilla processes, passed through or not by configuration.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use flotilla_chassis::clock::{SharedClock, SystemClock};
use flotilla_chassis::service_credential::{SERVICE_TOKEN, ServiceCredentials};
use flotilla_chassis::transport::{Transport, TransportError};
use flotilla_gateway::{Authenticator, Gateway, GatewayRouters, KeyCache, RoutePolicy};
use flotilla_identity::IdentityConfig;
use flotilla_identity::client::IdentityClient;
use flotilla_identity::token::TokenVerifier;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

const SECRET: [u8; 32] = [7; 32];

/// An upstream that cannot be reached, like a storefront whose every pod is down.
fn down(service: &'static str) -> Transport {
    BoxCloneSyncService::new(tower::service_fn(move |_: Request<Body>| async move {
        Err::<axum::http::Response<Body>, _>(TransportError::NoInstance(service.to_owned()))
    }))
}

/// catalog: one public route in its contract, and `/internal`, which is not.
fn catalog() -> Transport {
    let doc = serde_json::json!({"openapi": "3.1.0", "info": {"title": "catalog", "version": "1"},
        "paths": {"/products": {"get": {"responses": {"200": {"description": "products"}}}}}});
    let router = Router::new()
        .route("/products", get(|| async { "[]" }))
        .route("/internal", get(|| async { "internal" }))
        .route("/openapi.json", get(move || async move { axum::Json(doc) }));
    BoxCloneSyncService::new(ServiceExt::<Request<Body>>::map_err(
        router,
        |never: std::convert::Infallible| -> TransportError { match never {} },
    ))
}

fn gateway() -> Gateway {
    let clock: SharedClock = Arc::new(SystemClock);
    let auth = Authenticator::new(
        TokenVerifier::new(&IdentityConfig::default()),
        KeyCache::new(
            IdentityClient::new(down("identity")),
            Duration::from_secs(10),
        ),
        clock,
    );
    let credentials = Arc::new(ServiceCredentials::new(&SECRET, "gateway"));
    Gateway::new(auth, credentials)
        .storefront(down("storefront"))
        .route("catalog", catalog(), RoutePolicy::Public)
}

async fn status(router: &Router, req: Request<Body>) -> StatusCode {
    router
        .clone()
        .oneshot(req)
        .await
        .expect("infallible")
        .status()
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn readyz_is_the_gateways_own_and_ready_with_the_storefront_down() {
    let shutdown = CancellationToken::new();
    let router = gateway()
        .draining_on(shutdown.clone())
        .into_router(Default::default());
    // The storefront is down: its pages fail, the gateway stays ready and keeps the API up.
    assert!(status(&router, get_req("/")).await.is_server_error());
    assert_eq!(status(&router, get_req("/readyz")).await, StatusCode::OK);
    assert_eq!(
        status(&router, get_req("/api/catalog/products")).await,
        StatusCode::OK
    );
    let body = router
        .clone()
        .oneshot(get_req("/readyz"))
        .await
        .expect("infallible")
        .into_body();
    let body: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(body, 1 << 16).await.expect("body"))
            .expect("json");
    assert_eq!(body["service"], "gateway", "{body}");
    // Shutting down: out of the load balancer, while it still serves what arrives.
    shutdown.cancel();
    assert_eq!(
        status(&router, get_req("/readyz")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(status(&router, get_req("/healthz")).await, StatusCode::OK);
}

#[tokio::test]
async fn the_otlp_router_takes_the_fleets_spans_only_and_nothing_else() {
    let GatewayRouters { otlp, .. } = gateway().into_routers(Default::default());
    let post = |token: Option<String>| {
        let mut req =
            Request::post("/api/gateway/otlp/v1/traces").header("content-type", "application/json");
        if let Some(token) = token {
            req = req.header(SERVICE_TOKEN.clone(), token);
        }
        req.body(Body::from(r#"{"resourceSpans": []}"#))
            .expect("request")
    };
    let fleet = ServiceCredentials::new(&SECRET, "catalog");
    assert_eq!(
        status(&otlp, post(Some(fleet.token("gateway", None)))).await,
        StatusCode::OK
    );
    assert_eq!(status(&otlp, post(None)).await, StatusCode::UNAUTHORIZED);
    let stranger = ServiceCredentials::new(&[9; 32], "catalog");
    assert_eq!(
        status(&otlp, post(Some(stranger.token("gateway", None)))).await,
        StatusCode::UNAUTHORIZED
    );
    // Nothing but the receiver on that listener: no API, no site, no admin routes.
    for path in ["/api/catalog/products", "/", "/api/gateway/admin/traces"] {
        assert_eq!(status(&otlp, get_req(path)).await, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_fleet_credential_passes_through_only_when_passthrough_is_on() {
    let fleet = ServiceCredentials::new(&SECRET, "orders");
    let internal = || {
        Request::get("/api/catalog/internal")
            .header(SERVICE_TOKEN.clone(), fleet.token("catalog", None))
            .body(Body::empty())
            .expect("request")
    };
    let on = gateway().into_router(Default::default());
    assert_eq!(status(&on, internal()).await, StatusCode::OK);
    let off = gateway()
        .fleet_passthrough(false)
        .into_router(Default::default());
    // Treated like any client's request: only the published contract is reachable.
    assert_eq!(status(&off, internal()).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(&off, get_req("/api/catalog/products")).await,
        StatusCode::OK
    );
}
