//! RELIABILITY.md F9: the circuit breaker's state machine, step by step on paused time, against
//! an upstream that counts the calls reaching it.

use crate::upstream::{Behaviour, Upstream, request};
use axum::http::StatusCode;
use flotilla_chassis::resilience::breaker::{
    Breaker, BreakerConfig, BreakerSnapshot, BreakerState,
};
use flotilla_chassis::transport::{Transport, TransportError};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

const WAIT: Duration = Duration::from_millis(5_000);
const PROBE_TIMEOUT: Duration = Duration::from_millis(2_000);
const MS: Duration = Duration::from_millis(1);

fn config() -> BreakerConfig {
    BreakerConfig {
        window: 10,
        min_calls: 10,
        failure_rate_percent: 50,
        // Out of reach unless a test lowers it, so the rate alone decides.
        consecutive_failures: 1_000,
        open_wait_ms: WAIT.as_millis() as u64,
        half_open_probes: 3,
        probe_timeout_ms: PROBE_TIMEOUT.as_millis() as u64,
        ..BreakerConfig::default()
    }
}

fn guarded(upstream: &Arc<Upstream>, config: BreakerConfig) -> (Transport, Arc<Breaker>) {
    let breaker = Breaker::new("shipping", config).expect("a valid config");
    (breaker.layer().layer(upstream.transport()), breaker)
}

/// One call; `Ok(status)` if the upstream answered, the error otherwise.
async fn call(transport: &Transport) -> Result<StatusCode, TransportError> {
    transport
        .clone()
        .oneshot(request())
        .await
        .map(|r| r.status())
}

async fn calls(transport: &Transport, n: usize) {
    for _ in 0..n {
        let _ = call(transport).await;
    }
}

fn state(breaker: &Breaker) -> BreakerState {
    breaker.snapshot().state
}

/// Opens the breaker with `min_calls` failures, and checks it did.
async fn trip(transport: &Transport, upstream: &Upstream, breaker: &Breaker) {
    upstream.set(Behaviour::Status(503));
    calls(transport, 10).await;
    assert_eq!(state(breaker), BreakerState::Open);
}

/// Lets a call start (the breaker admits it in `call`) without waiting for its answer.
async fn start(
    transport: &Transport,
) -> tokio::task::JoinHandle<Result<StatusCode, TransportError>> {
    let mut transport = transport.clone();
    transport.ready().await.expect("always ready");
    let answer = transport.call(request());
    tokio::spawn(async move { answer.await.map(|r| r.status()) })
}

async fn until_upstream_has(upstream: &Upstream, calls: usize) {
    for _ in 0..100 {
        if upstream.calls() >= calls {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("upstream saw {} calls, expected {calls}", upstream.calls());
}

#[tokio::test(start_paused = true)]
async fn stays_closed_below_the_minimum_number_of_calls_and_opens_at_it() {
    let upstream = Upstream::new(Behaviour::Status(500));
    let (transport, breaker) = guarded(&upstream, config());
    for n in 1..10 {
        assert_eq!(
            call(&transport).await.ok(),
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, BreakerState::Closed, "after {n} failures");
        assert_eq!(snapshot.failures_in_window, n);
    }
    assert_eq!(
        call(&transport).await.ok(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(
        breaker.snapshot(),
        BreakerSnapshot {
            service: "shipping".into(),
            state: BreakerState::Open,
            calls_in_window: 10,
            failures_in_window: 10,
            consecutive_failures: 10,
            probes_admitted: 0,
            rejected: 0,
            times_opened: 1,
            half_open_in_ms: Some(5_000),
        }
    );
    assert_eq!(upstream.calls(), 10);
}

#[tokio::test(start_paused = true)]
async fn opens_exactly_when_the_failure_rate_reaches_the_threshold() {
    let upstream = Upstream::new(Behaviour::Status(200));
    let (transport, breaker) = guarded(&upstream, config());
    // S F S F S F S F S S: 4 failures in 10 calls, 40 %.
    for status in [200, 502, 200, 504, 200, 503, 200, 500, 200, 200] {
        upstream.set(Behaviour::Status(status));
        call(&transport).await.expect("an answer");
    }
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(
        (snapshot.calls_in_window, snapshot.failures_in_window),
        (10, 4)
    );
    // One more failure pushes the oldest success out of the window: 5 in 10, 50 %.
    upstream.set(Behaviour::Refuse);
    assert!(matches!(
        call(&transport).await,
        Err(TransportError::Connect { .. })
    ));
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert_eq!(
        (snapshot.calls_in_window, snapshot.failures_in_window),
        (10, 5)
    );
    assert_eq!(snapshot.consecutive_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn opens_exactly_at_the_consecutive_failures_even_below_the_minimum() {
    let upstream = Upstream::new(Behaviour::Status(503));
    let config = BreakerConfig {
        consecutive_failures: 5,
        ..config()
    };
    let (transport, breaker) = guarded(&upstream, config);
    calls(&transport, 4).await;
    upstream.set(Behaviour::Status(200));
    calls(&transport, 1).await;
    assert_eq!(
        breaker.snapshot().consecutive_failures,
        0,
        "a success resets"
    );
    upstream.set(Behaviour::Status(503));
    calls(&transport, 4).await;
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.consecutive_failures, 4);
    calls(&transport, 1).await;
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert_eq!(snapshot.consecutive_failures, 5);
    assert_eq!(snapshot.calls_in_window, 10);
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_not_failures() {
    let upstream = Upstream::new(Behaviour::Status(404));
    let (transport, breaker) = guarded(&upstream, config());
    calls(&transport, 30).await;
    upstream.set(Behaviour::Status(422));
    calls(&transport, 30).await;
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(
        (snapshot.failures_in_window, snapshot.consecutive_failures),
        (0, 0)
    );
    assert_eq!(upstream.calls(), 60);
}

#[tokio::test(start_paused = true)]
async fn fails_fast_while_open_and_half_opens_exactly_at_the_wait() {
    let upstream = Upstream::new(Behaviour::Status(200));
    let (transport, breaker) = guarded(&upstream, config());
    trip(&transport, &upstream, &breaker).await;
    let opened = Instant::now();
    let reached = upstream.calls();

    for _ in 0..100 {
        assert!(matches!(
            call(&transport).await,
            Err(TransportError::CircuitOpen(s)) if s == "shipping"
        ));
    }
    assert_eq!(upstream.calls(), reached, "no upstream call while open");
    assert_eq!(Instant::now(), opened, "refusals take no time");

    tokio::time::advance(WAIT - MS).await;
    assert_eq!(breaker.snapshot().half_open_in_ms, Some(1));
    assert!(matches!(
        call(&transport).await,
        Err(TransportError::CircuitOpen(_))
    ));
    assert_eq!(upstream.calls(), reached, "still open a millisecond before");

    tokio::time::advance(MS).await;
    assert_eq!(state(&breaker), BreakerState::HalfOpen);
    upstream.set(Behaviour::Status(200));
    assert_eq!(call(&transport).await.ok(), Some(StatusCode::OK));
    assert_eq!(
        upstream.calls(),
        reached + 1,
        "the probe reached the upstream"
    );
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.rejected, 101);
    assert_eq!(snapshot.probes_admitted, 1);
    assert_eq!(snapshot.times_opened, 1);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_k_probes_and_hung_ones_time_out_and_reopen() {
    let upstream = Upstream::new(Behaviour::Status(200));
    let (transport, breaker) = guarded(&upstream, config());
    trip(&transport, &upstream, &breaker).await;
    let reached = upstream.calls();
    tokio::time::advance(WAIT).await;

    upstream.set(Behaviour::Hang);
    let mut probes = Vec::new();
    for _ in 0..3 {
        probes.push(start(&transport).await);
    }
    until_upstream_has(&upstream, reached + 3).await;
    assert!(
        matches!(call(&transport).await, Err(TransportError::CircuitOpen(_))),
        "the 4th concurrent call is refused"
    );
    assert_eq!(upstream.calls(), reached + 3);
    assert_eq!(breaker.snapshot().probes_admitted, 3);

    let started = Instant::now();
    tokio::time::advance(PROBE_TIMEOUT - MS).await;
    tokio::task::yield_now().await;
    assert!(probes.iter().all(|p| !p.is_finished()), "not cut early");
    assert_eq!(state(&breaker), BreakerState::HalfOpen);
    for probe in probes {
        assert!(matches!(
            probe.await.expect("the probe task"),
            Err(TransportError::Timeout(s)) if s == "shipping"
        ));
    }
    assert_eq!(Instant::now() - started, PROBE_TIMEOUT);
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert_eq!(snapshot.half_open_in_ms, Some(5_000), "a fresh wait");
    assert_eq!(snapshot.times_opened, 2);
    assert_eq!(upstream.in_flight(), 0, "the hung calls were dropped");
}

#[tokio::test(start_paused = true)]
async fn all_probes_succeeding_close_with_an_empty_window() {
    let upstream = Upstream::new(Behaviour::Status(200));
    let (transport, breaker) = guarded(&upstream, config());
    trip(&transport, &upstream, &breaker).await;
    tokio::time::advance(WAIT).await;

    upstream.set(Behaviour::Status(200));
    for n in 1..3 {
        assert_eq!(call(&transport).await.ok(), Some(StatusCode::OK));
        assert_eq!(state(&breaker), BreakerState::HalfOpen, "after {n} probes");
    }
    assert_eq!(call(&transport).await.ok(), Some(StatusCode::OK));
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(
        (
            snapshot.calls_in_window,
            snapshot.failures_in_window,
            snapshot.consecutive_failures
        ),
        (0, 0, 0)
    );
    // Closed again: calls flow and are recorded afresh.
    calls(&transport, 20).await;
    assert_eq!(breaker.snapshot().calls_in_window, 10);
    assert_eq!(state(&breaker), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_with_a_fresh_wait() {
    let upstream = Upstream::new(Behaviour::Status(200));
    let (transport, breaker) = guarded(&upstream, config());
    trip(&transport, &upstream, &breaker).await;
    tokio::time::advance(WAIT).await;

    assert_eq!(
        call(&transport).await.ok(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    let failed_at = Instant::now();
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert_eq!(snapshot.times_opened, 2);
    assert_eq!(snapshot.half_open_in_ms, Some(5_000));

    let reached = upstream.calls();
    tokio::time::advance(WAIT - MS).await;
    assert!(call(&transport).await.is_err());
    assert_eq!(upstream.calls(), reached);
    tokio::time::advance(MS).await;
    assert_eq!(Instant::now() - failed_at, WAIT);
    assert_eq!(state(&breaker), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_probe_gives_its_slot_back() {
    let upstream = Upstream::new(Behaviour::Status(200));
    let config = BreakerConfig {
        half_open_probes: 1,
        ..config()
    };
    let (transport, breaker) = guarded(&upstream, config);
    trip(&transport, &upstream, &breaker).await;
    tokio::time::advance(WAIT).await;

    upstream.set(Behaviour::Hang);
    let reached = upstream.calls();
    let probe = start(&transport).await;
    until_upstream_has(&upstream, reached + 1).await;
    assert!(
        call(&transport).await.is_err(),
        "the only probe slot is taken"
    );
    probe.abort();
    assert!(probe.await.is_err(), "aborted");
    assert_eq!(breaker.snapshot().probes_admitted, 0);

    upstream.set(Behaviour::Status(200));
    assert_eq!(call(&transport).await.ok(), Some(StatusCode::OK));
    assert_eq!(state(&breaker), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_call_admitted_while_closed_that_ends_after_opening_is_not_recorded() {
    let upstream = Upstream::new(Behaviour::Slow(Duration::from_secs(1)));
    let (transport, breaker) = guarded(&upstream, config());
    let slow = start(&transport).await;
    until_upstream_has(&upstream, 1).await;
    trip(&transport, &upstream, &breaker).await;
    assert_eq!(
        slow.await.expect("the slow call").ok(),
        Some(StatusCode::OK)
    );
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert_eq!(
        (snapshot.calls_in_window, snapshot.failures_in_window),
        (10, 10)
    );
}

#[test]
fn the_config_has_documented_defaults_and_rejects_what_cannot_work() {
    let defaults = BreakerConfig::default();
    assert_eq!(defaults.window, 20);
    assert_eq!(defaults.min_calls, 10);
    assert_eq!(defaults.failure_rate_percent, 50);
    assert_eq!(defaults.consecutive_failures, 5);
    assert_eq!(defaults.open_wait_ms, 5_000);
    assert_eq!(defaults.failure_statuses, [500, 502, 503, 504]);
    assert!(defaults.validate().is_ok());

    let partial: BreakerConfig =
        serde_json::from_str(r#"{"open_wait_ms": 30000}"#).expect("a partial config");
    assert_eq!(partial.open_wait_ms, 30_000);
    assert_eq!(partial.window, 20);

    let broken = [
        (
            "window",
            BreakerConfig {
                window: 0,
                ..defaults.clone()
            },
        ),
        (
            "min_calls",
            BreakerConfig {
                min_calls: 0,
                ..defaults.clone()
            },
        ),
        (
            "min_calls",
            BreakerConfig {
                min_calls: 21,
                ..defaults.clone()
            },
        ),
        (
            "failure_rate_percent",
            BreakerConfig {
                failure_rate_percent: 0,
                ..defaults.clone()
            },
        ),
        (
            "failure_rate_percent",
            BreakerConfig {
                failure_rate_percent: 101,
                ..defaults.clone()
            },
        ),
        (
            "consecutive_failures",
            BreakerConfig {
                consecutive_failures: 0,
                ..defaults.clone()
            },
        ),
        (
            "open_wait_ms",
            BreakerConfig {
                open_wait_ms: 0,
                ..defaults.clone()
            },
        ),
        (
            "half_open_probes",
            BreakerConfig {
                half_open_probes: 0,
                ..defaults.clone()
            },
        ),
        (
            "probe_timeout_ms",
            BreakerConfig {
                probe_timeout_ms: 0,
                ..defaults.clone()
            },
        ),
        (
            "failure_statuses",
            BreakerConfig {
                failure_statuses: vec![404],
                ..defaults.clone()
            },
        ),
    ];
    for (field, config) in broken {
        let refused = config.validate().expect_err(field);
        assert_eq!(refused.field, field);
        assert!(Breaker::new("shipping", config.clone()).is_err());
    }
}

/// The outside tester's second run: with shipping slow, orders answered its checkouts 503
/// "shipping is failing", and the gateway's breaker for orders opened on them, refusing every
/// orders route. A 503 reporting a dependency's failure (`Problem::dependency_unavailable`,
/// marked `x-flotilla-dependency-failed`) is not the upstream's failure; its own 503 is.
#[tokio::test(start_paused = true)]
async fn a_503_reporting_a_dependencys_failure_is_not_the_upstreams() {
    let answer = |problem: fn() -> flotilla_chassis::problem::Problem| -> Transport {
        tower::util::BoxCloneSyncService::new(tower::service_fn(
            move |_: axum::http::Request<axum::body::Body>| async move {
                Ok::<_, TransportError>(axum::response::IntoResponse::into_response(problem()))
            },
        ))
    };
    let config = BreakerConfig {
        consecutive_failures: 3,
        ..config()
    };
    let breaker = Breaker::new("orders", config.clone()).expect("a valid config");
    let transport = breaker.layer().layer(answer(|| {
        flotilla_chassis::problem::Problem::dependency_unavailable(
            "shipping",
            "shipping is failing; retry shortly",
        )
    }));
    for _ in 0..20 {
        assert_eq!(
            call(&transport).await.ok(),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
    }
    assert_eq!(state(&breaker), BreakerState::Closed);
    assert_eq!(breaker.snapshot().calls_in_window, 0);

    let breaker = Breaker::new("orders", config).expect("a valid config");
    let transport = breaker.layer().layer(answer(|| {
        flotilla_chassis::problem::Problem::unavailable("the database is unavailable")
    }));
    calls(&transport, 3).await;
    assert_eq!(state(&breaker), BreakerState::Open, "its own 503 counts");
}

/// The outside tester's M1: with shipping slow, checkouts answered 504 `deadline-exceeded`
/// from orders, and the gateway's breaker for orders opened on them, refusing every orders
/// route. A 504 that says a deadline ran out further down is not held against the upstream that
/// answered it; any other 504 is.
#[tokio::test(start_paused = true)]
async fn a_504_saying_a_deadline_ran_out_downstream_is_not_the_upstreams_failure() {
    let answer = |slug: &'static str| -> Transport {
        tower::util::BoxCloneSyncService::new(tower::service_fn(
            move |_: axum::http::Request<axum::body::Body>| async move {
                Ok::<_, TransportError>(axum::response::IntoResponse::into_response(
                    flotilla_chassis::problem::Problem::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        slug,
                        "the request's deadline ran out while waiting for shipping",
                    ),
                ))
            },
        ))
    };
    let config = BreakerConfig {
        consecutive_failures: 3,
        ..config()
    };
    let breaker = Breaker::new("orders", config.clone()).expect("a valid config");
    let transport = breaker.layer().layer(answer("deadline-exceeded"));
    for _ in 0..20 {
        assert_eq!(
            call(&transport).await.ok(),
            Some(StatusCode::GATEWAY_TIMEOUT)
        );
    }
    assert_eq!(state(&breaker), BreakerState::Closed);
    assert_eq!(breaker.snapshot().calls_in_window, 0);

    let breaker = Breaker::new("orders", config.clone()).expect("a valid config");
    let transport = breaker.layer().layer(answer("upstream-timeout"));
    calls(&transport, 3).await;
    assert_eq!(state(&breaker), BreakerState::Open, "another 504 counts");

    // The upstream answering so at the request's own deadline (its handler was cut by it) is
    // the deadline's cut, and counts like one.
    let breaker = Breaker::new("shipping", config).expect("a valid config");
    let at_the_deadline: Transport = tower::util::BoxCloneSyncService::new(tower::service_fn(
        |_: axum::http::Request<axum::body::Body>| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, TransportError>(axum::response::IntoResponse::into_response(
                flotilla_chassis::problem::Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "deadline-exceeded",
                    "the request's deadline ran out before it could be answered",
                ),
            ))
        },
    ));
    let transport = breaker.layer().layer(at_the_deadline);
    for _ in 0..3 {
        let deadline = Instant::now() + Duration::from_millis(300);
        let answer =
            flotilla_chassis::request_context::with_deadline(Some(deadline), call(&transport))
                .await;
        assert_eq!(answer.ok(), Some(StatusCode::GATEWAY_TIMEOUT));
    }
    assert_eq!(state(&breaker), BreakerState::Open, "cut by the deadline");
}
