//! The bulkhead on paused time: the cap holds under a burst, the excess is refused at once, and
//! a slot comes back however a call ends (answered and read, failed, or dropped by its caller).

use crate::upstream::{Behaviour, Upstream, request};
use axum::body::Body;
use axum::http::Response;
use flotilla_chassis::resilience::bulkhead::{Bulkhead, BulkheadConfig};
use flotilla_chassis::transport::{Transport, TransportError};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

fn capped(upstream: &Arc<Upstream>, max_in_flight: u32) -> (Transport, Arc<Bulkhead>) {
    let bulkhead =
        Bulkhead::new("shipping", BulkheadConfig { max_in_flight }).expect("a valid config");
    (bulkhead.layer().layer(upstream.transport()), bulkhead)
}

fn in_flight(bulkhead: &Bulkhead) -> u32 {
    bulkhead.snapshot().in_flight
}

/// Starts a call in a task of its own; the slot is taken when the task first runs.
fn spawn_call(
    transport: &Transport,
) -> tokio::task::JoinHandle<Result<Response<Body>, TransportError>> {
    tokio::spawn(transport.clone().oneshot(request()))
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_100_gets_the_cap_and_the_rest_is_refused_at_once() {
    let upstream = Upstream::new(Behaviour::Slow(Duration::from_millis(100)));
    let (transport, bulkhead) = capped(&upstream, 10);
    let start = Instant::now();
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let transport = transport.clone();
            tokio::spawn(async move {
                let answer = transport.oneshot(request()).await;
                let took = start.elapsed();
                // Read the body, as a client would, so the slot is released at its end.
                let answer = match answer {
                    Ok(response) => Ok(response.into_body().collect().await.map(|_| ())),
                    Err(error) => Err(error),
                };
                (answer, took)
            })
        })
        .collect();

    let mut admitted = 0;
    let mut refused = 0;
    for call in calls {
        match call.await.expect("a call task") {
            (Ok(body), took) => {
                body.expect("a body");
                assert_eq!(took, Duration::from_millis(100));
                admitted += 1;
            }
            (Err(TransportError::Overloaded(s)), took) => {
                assert_eq!(s, "shipping");
                assert!(
                    took < Duration::from_millis(1),
                    "refused at once, took {took:?}"
                );
                refused += 1;
            }
            (Err(other), _) => panic!("unexpected {other}"),
        }
    }
    assert_eq!((admitted, refused), (10, 90));
    assert_eq!(upstream.most_in_flight(), 10, "never above the cap");
    assert_eq!(
        upstream.calls(),
        10,
        "refused calls never reach the upstream"
    );
    let snapshot = bulkhead.snapshot();
    assert_eq!((snapshot.in_flight, snapshot.rejected), (0, 90));

    // Every slot came back: the next burst gets the full cap again.
    let again: Vec<_> = (0..10).map(|_| spawn_call(&transport)).collect();
    for call in again {
        assert!(call.await.expect("a call task").is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn a_slot_is_held_until_the_body_is_read_or_dropped() {
    let upstream = Upstream::new(Behaviour::Status(200));
    let (transport, bulkhead) = capped(&upstream, 1);
    let response = transport
        .clone()
        .oneshot(request())
        .await
        .expect("answered");
    assert_eq!(in_flight(&bulkhead), 1, "the body is still to be read");
    assert!(matches!(
        transport.clone().oneshot(request()).await,
        Err(TransportError::Overloaded(_))
    ));
    let body = response.into_body().collect().await.expect("a body");
    assert_eq!(body.to_bytes(), "answer");
    assert_eq!(in_flight(&bulkhead), 0, "released at the end of the body");

    let unread = transport
        .clone()
        .oneshot(request())
        .await
        .expect("answered");
    assert_eq!(in_flight(&bulkhead), 1);
    drop(unread);
    assert_eq!(in_flight(&bulkhead), 0, "released when the body is dropped");
}

#[tokio::test(start_paused = true)]
async fn a_slot_is_released_on_error_and_when_the_caller_drops_the_call() {
    let upstream = Upstream::new(Behaviour::Refuse);
    let (transport, bulkhead) = capped(&upstream, 1);
    assert!(matches!(
        transport.clone().oneshot(request()).await,
        Err(TransportError::Connect { .. })
    ));
    assert_eq!(in_flight(&bulkhead), 0, "released on error");

    upstream.set(Behaviour::Hang);
    let hung = spawn_call(&transport);
    while upstream.calls() < 2 {
        tokio::task::yield_now().await;
    }
    assert_eq!(in_flight(&bulkhead), 1);
    assert!(matches!(
        transport.clone().oneshot(request()).await,
        Err(TransportError::Overloaded(_))
    ));
    hung.abort();
    assert!(hung.await.is_err(), "aborted");
    assert_eq!(in_flight(&bulkhead), 0, "released when the caller gave up");
    assert_eq!(upstream.in_flight(), 0);

    upstream.set(Behaviour::Status(200));
    assert!(transport.clone().oneshot(request()).await.is_ok());
    assert_eq!(bulkhead.snapshot().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn readied_clones_hold_no_slot() {
    // tower's ConcurrencyLimit takes its permit in poll_ready, so each readied clone would
    // hold one of these: here readiness is free and the slot is taken by the call.
    let upstream = Upstream::new(Behaviour::Status(200));
    let (transport, bulkhead) = capped(&upstream, 2);
    let mut readied = Vec::new();
    for _ in 0..5 {
        let mut clone = transport.clone();
        clone.ready().await.expect("always ready");
        readied.push(clone);
    }
    assert_eq!(in_flight(&bulkhead), 0);
    let answer = transport
        .clone()
        .oneshot(request())
        .await
        .expect("answered");
    assert_eq!(in_flight(&bulkhead), 1);
    drop(answer);
    drop(readied);
}

#[test]
fn the_config_is_checked_and_the_snapshot_is_what_the_admin_endpoint_shows() {
    assert!(Bulkhead::new("shipping", BulkheadConfig { max_in_flight: 0 }).is_err());
    assert!(
        Bulkhead::new(
            "shipping",
            BulkheadConfig {
                max_in_flight: 1_000_001
            }
        )
        .is_err()
    );
    assert_eq!(BulkheadConfig::default().max_in_flight, 1024);
    let bulkhead = Bulkhead::new("shipping", BulkheadConfig::default()).expect("a valid config");
    let json = serde_json::to_value(bulkhead.snapshot()).expect("serialisable");
    assert_eq!(
        json,
        serde_json::json!({
            "service": "shipping", "max_in_flight": 1024, "in_flight": 0, "rejected": 0
        })
    );
}
