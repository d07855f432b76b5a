//! What the gateway's own code costs per proxied request, without sockets: `N` product GETs
//! through `Gateway::into_router` (the edge stack, routing, the exposure check, the proxy, the
//! caller's resilience stack) to an in-process upstream that answers 1 KB of JSON. Run under
//! callgrind twice, with two counts, so that start-up drops out (docs/benchmarks.md, "Metrics
//! on the gateway's hot path"):
//!
//! ```sh
//! cargo bench -p flotilla-gateway --bench edge --no-run   # prints the binary
//! FLOTILLA_BENCH_REQUESTS=2000  valgrind --tool=callgrind target/release/deps/edge-<hash>
//! FLOTILLA_BENCH_REQUESTS=20000 valgrind --tool=callgrind target/release/deps/edge-<hash>
//! ```
//! (instructions of the second run − the first) ÷ 18,000 = instructions per request.

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use flotilla_chassis::clock::{SharedClock, SystemClock};
use flotilla_chassis::resilience::stack::{Policies, Resilience, UpstreamPolicy};
use flotilla_chassis::service_credential::ServiceCredentials;
use flotilla_chassis::transport::{Transport, TransportError};
use flotilla_gateway::{Authenticator, Gateway, KeyCache, RoutePolicy};
use flotilla_identity::IdentityConfig;
use flotilla_identity::client::IdentityClient;
use flotilla_identity::token::TokenVerifier;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

fn upstream() -> Transport {
    let product = format!(
        r#"{{"id":"p0000001","name":"Benchmark product","description":"{}","price":{{"amount_minor":1999,"currency":"EUR"}}}}"#,
        "x".repeat(880)
    );
    let doc = serde_json::json!({"openapi": "3.1.0", "info": {"title": "catalog", "version": "1"},
        "paths": {"/products/{id}": {"get": {"responses": {"200": {"description": "a product"}}}}}});
    let router = Router::new()
        .route(
            "/products/{id}",
            get(move || {
                let product = product.clone();
                async move { ([("content-type", "application/json")], product) }
            }),
        )
        .route("/openapi.json", get(move || async move { axum::Json(doc) }));
    BoxCloneSyncService::new(ServiceExt::<Request<Body>>::map_err(
        router,
        |never: std::convert::Infallible| -> TransportError { match never {} },
    ))
}

fn main() {
    let requests: u64 = std::env::var("FLOTILLA_BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let metrics = flotilla_chassis::metrics::Metrics::new();
        let clock: SharedClock = Arc::new(SystemClock);
        let resilience = Resilience::new(
            "gateway",
            Arc::new(Policies::uniform(UpstreamPolicy::default())),
        );
        let identity = IdentityClient::new(upstream());
        let auth = Authenticator::new(
            TokenVerifier::new(&IdentityConfig::default()),
            KeyCache::new(identity, Duration::from_secs(10)),
            clock,
        );
        let credentials = Arc::new(ServiceCredentials::new(&[7; 32], "bench"));
        let gateway = Gateway::new(auth, credentials)
            .metrics(metrics.clone())
            .route(
                "catalog",
                resilience.wrap("catalog", upstream()),
                RoutePolicy::Public,
            );
        let mut router = gateway.into_router(Default::default());
        let started = Instant::now();
        for _ in 0..requests {
            let req = Request::get("/api/catalog/products/p0000001")
                .body(Body::empty())
                .expect("request");
            let response = router
                .as_service()
                .ready()
                .await
                .expect("ready")
                .call(req)
                .await
                .expect("infallible");
            assert_eq!(response.status(), 200);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            assert!(body.len() > 900);
        }
        let took = started.elapsed();
        println!(
            "{requests} requests in {took:?}: {:.1} µs each",
            took.as_secs_f64() * 1e6 / requests as f64
        );
        let _ = metrics.render(None).await;
    });
}
