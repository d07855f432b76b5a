//! The breaker in front of a real HTTP transport (`HttpPool::transport`) to a local axum server
//! that fails: it opens at the threshold, then calls fail fast without touching the server, and
//! a service client turns the refusal into a 503 with `Retry-After`.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use flotilla_chassis::Problem;
use flotilla_chassis::resilience::breaker::{Breaker, BreakerConfig, BreakerState};
use flotilla_chassis::service_credential::ServiceCredentials;
use flotilla_chassis::transport::http::{HttpPool, HttpSettings};
use flotilla_chassis::transport::{ClientError, ServiceClient, TransportError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tower::{Layer, ServiceExt};

fn pool() -> HttpPool {
    let credentials = ServiceCredentials::new(b"resilience-tests-shared-secret-32", "tests");
    HttpPool::new(Arc::new(credentials), HttpSettings::default())
}

/// A server whose every answer is a 503, counting the requests it gets.
async fn failing_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = Router::new().route(
        "/quotes",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { StatusCode::SERVICE_UNAVAILABLE }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a port");
    let url = format!("http://{}", listener.local_addr().expect("bound address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

fn get_quotes() -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get("/quotes")
        .body(axum::body::Body::empty())
        .expect("a request")
}

#[tokio::test]
async fn a_failing_server_opens_the_breaker_and_calls_then_fail_fast() {
    let (url, hits) = failing_server().await;
    let transport = pool().transport("shipping", &url).expect("a valid url");
    let breaker = Breaker::new("shipping", BreakerConfig::default()).expect("defaults");
    let guarded = breaker.layer().layer(transport);

    for _ in 0..5 {
        let answer = guarded
            .clone()
            .oneshot(get_quotes())
            .await
            .expect("answered");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 5);
    assert_eq!(
        breaker.snapshot().state,
        BreakerState::Open,
        "5 failures in a row"
    );

    let started = Instant::now();
    for _ in 0..100 {
        assert!(matches!(
            guarded.clone().oneshot(get_quotes()).await,
            Err(TransportError::CircuitOpen(_))
        ));
    }
    let took = started.elapsed();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        5,
        "the server saw none of them"
    );
    assert!(
        took < Duration::from_millis(50),
        "100 refusals took {took:?}"
    );
    assert_eq!(breaker.snapshot().rejected, 100);

    let client = ServiceClient::new("shipping", guarded);
    let refused = client
        .get::<serde_json::Value>("/quotes", None)
        .await
        .expect_err("refused");
    assert!(matches!(
        refused,
        ClientError::Transport(TransportError::CircuitOpen(_))
    ));
    let problem = Problem::from(refused);
    assert_eq!(problem.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem.retry_after, Some(1));
}

#[tokio::test]
async fn refused_connections_count_as_failures() {
    // A port that was just free: connecting to it is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let url = format!("http://{}", listener.local_addr().expect("bound address"));
    drop(listener);
    let transport = pool().transport("shipping", &url).expect("a valid url");
    let breaker = Breaker::new("shipping", BreakerConfig::default()).expect("defaults");
    let guarded = breaker.layer().layer(transport);
    for _ in 0..5 {
        assert!(matches!(
            guarded.clone().oneshot(get_quotes()).await,
            Err(TransportError::Connect { .. })
        ));
    }
    assert_eq!(breaker.snapshot().state, BreakerState::Open);
    assert!(matches!(
        guarded.clone().oneshot(get_quotes()).await,
        Err(TransportError::CircuitOpen(_))
    ));
}
