//! The layer on tokio's paused clock: refusals at once, admitted requests served, probes never
//! refused, slots held until the body ends, logs rate-limited, settings checked.

use super::*;
use axum::http::header;
use http_body_util::BodyExt;
use std::convert::Infallible;
use tower::ServiceExt;

/// A test server as a cloneable service.
type Server = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// A server that takes 100 ms per request, behind shedding with a cap of `cap`.
fn server(cap: u32) -> (Arc<Shedding>, Server) {
    let shedding = Shedding::new(
        "test server",
        SheddingConfig {
            max_in_flight: cap,
            retry_after_secs: 2,
        },
        is_probe,
    )
    .expect("valid");
    let slow = tower::service_fn(|_: Request<Body>| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, Infallible>(Response::new(Body::from("done")))
    });
    (
        Arc::clone(&shedding),
        Server::new(shedding.layer().layer(slow)),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

#[tokio::test(start_paused = true)]
async fn a_burst_over_the_cap_is_refused_at_once_and_the_admitted_complete() {
    let (shedding, svc) = server(16);
    let started = Instant::now();
    let calls: Vec<_> = (0..48)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let response = svc.oneshot(get("/products")).await.expect("infallible");
                let status = response.status();
                let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
                let kind = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .cloned()
                    .map(|v| v.to_str().unwrap_or_default().to_owned());
                let body = response.into_body().collect().await.expect("body");
                (
                    status,
                    retry_after,
                    kind,
                    body.to_bytes(),
                    started.elapsed(),
                )
            })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for call in calls {
        let (status, retry_after, kind, body, took) = call.await.expect("task");
        if status == StatusCode::OK {
            admitted += 1;
            assert_eq!(
                took,
                Duration::from_millis(100),
                "an admitted one is served"
            );
        } else {
            refused += 1;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                took < Duration::from_millis(1),
                "refused at once, took {took:?}"
            );
            assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"2"[..]));
            assert_eq!(kind.as_deref(), Some("application/problem+json"));
            let problem: Problem = serde_json::from_slice(&body).expect("problem");
            assert_eq!(problem.kind, "urn:flotilla:problem:overloaded");
            assert_eq!(problem.status, 503);
        }
    }
    assert_eq!((admitted, refused), (16, 32));
    assert_eq!(
        shedding.snapshot(),
        SheddingSnapshot {
            max_in_flight: 16,
            in_flight: 0,
            shed: 32
        }
    );
    // Capacity is back once the admitted ones are done.
    let response = svc.oneshot(get("/products")).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn probes_are_never_shed() {
    let (shedding, svc) = server(2);
    let busy: Vec<_> = (0..2)
        .map(|_| tokio::spawn(svc.clone().oneshot(get("/products"))))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(shedding.snapshot().in_flight, 2);
    let refused = svc.clone().oneshot(get("/products")).await.expect("call");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    for probe in ["/healthz", "/readyz", "/readyz?verbose=1"] {
        let answered = svc.clone().oneshot(get(probe)).await.expect("call");
        assert_eq!(answered.status(), StatusCode::OK, "{probe} was shed");
    }
    assert_eq!(shedding.snapshot().shed, 1, "probes are not counted either");
    for call in busy {
        assert_eq!(call.await.expect("task").expect("call").status(), 200);
    }
}

#[tokio::test(start_paused = true)]
async fn a_slot_is_held_until_the_body_ends_and_given_back_when_dropped() {
    let (shedding, svc) = server(1);
    let response = svc.clone().oneshot(get("/a")).await.expect("call");
    assert_eq!(
        shedding.snapshot().in_flight,
        1,
        "the head alone keeps the slot"
    );
    let refused = svc.clone().oneshot(get("/b")).await.expect("call");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    response.into_body().collect().await.expect("body");
    assert_eq!(shedding.snapshot().in_flight, 0, "the body's end frees it");

    // A request whose client goes away (its future dropped) frees its slot too.
    let abandoned = tokio::spawn(svc.clone().oneshot(get("/c")));
    tokio::task::yield_now().await;
    assert_eq!(shedding.snapshot().in_flight, 1);
    abandoned.abort();
    let _ = abandoned.await;
    assert_eq!(shedding.snapshot().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn an_overload_is_logged_once_per_ten_seconds_not_once_per_refusal() {
    let (shedding, svc) = server(1);
    let warned = || shedding.warned_at_ms.load(Ordering::Relaxed);
    let _busy = tokio::spawn(svc.clone().oneshot(get("/a")));
    tokio::task::yield_now().await;
    assert_eq!(warned(), u64::MAX, "nothing refused, nothing logged");
    svc.clone().oneshot(get("/b")).await.expect("call");
    assert_eq!(warned(), 0, "the first refusal is logged");
    // The busy request's response, kept unread in its task's output, holds the slot.
    tokio::time::advance(Duration::from_millis(9_999)).await;
    svc.clone().oneshot(get("/b")).await.expect("call");
    assert_eq!(warned(), 0, "not again within 10 s");
    tokio::time::advance(Duration::from_millis(1)).await;
    svc.clone().oneshot(get("/b")).await.expect("call");
    assert_eq!(warned(), 10_000, "again after 10 s");
    assert_eq!(shedding.snapshot().shed, 3);
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let config = |max_in_flight, retry_after_secs| SheddingConfig {
        max_in_flight,
        retry_after_secs,
    };
    assert_eq!(SheddingConfig::default().validate(), Ok(()));
    assert_eq!(
        config(0, 1).validate(),
        Err(InvalidSheddingConfig::MaxInFlight)
    );
    assert_eq!(
        config(MAX_CAP + 1, 1).validate(),
        Err(InvalidSheddingConfig::MaxInFlight)
    );
    assert_eq!(
        config(16, 0).validate(),
        Err(InvalidSheddingConfig::RetryAfter)
    );
    assert_eq!(
        config(16, 3601).validate(),
        Err(InvalidSheddingConfig::RetryAfter)
    );
    assert!(Shedding::new("x", config(0, 1), is_probe).is_err());
    let unknown = serde_json::from_value::<SheddingConfig>(serde_json::json!({"max": 3}));
    assert!(unknown.is_err(), "unknown keys are refused");
}
