//! The stack as services get it: `[resilience]` read with per-upstream overrides merged key by
//! key, one stack per caller and upstream shared by every client built on it, the layers in
//! their order (a hung call cut by the per-attempt timeout counts against the breaker once,
//! however many attempts it made; a client's own tiny deadline does not; one bad instance of
//! two, whose failures the retries route around, does not open the breaker; a hung attempt of
//! a read is cut after the per-try timeout and repeated), and a retry storm held to the budget.

use crate::upstream::{Behaviour, Upstream, request};
use axum::http::StatusCode;
use figment::Figment;
use figment::providers::{Format, Toml};
use flotilla_chassis::request_context;
use flotilla_chassis::resilience::breaker::{BreakerConfig, BreakerState};
use flotilla_chassis::resilience::stack::{Policies, Resilience, UpstreamPolicy};
use flotilla_chassis::transport::{Transport, TransportError};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;

fn policies(toml: &str) -> Result<Policies, String> {
    Policies::load(&Figment::from(Toml::string(toml))).map_err(|e| e.to_string())
}

async fn call(transport: &Transport) -> Result<StatusCode, TransportError> {
    transport
        .clone()
        .oneshot(request())
        .await
        .map(|r| r.status())
}

#[test]
fn per_upstream_overrides_are_merged_key_by_key_over_the_common_policy() {
    let loaded = policies(
        r#"
        [resilience.breaker]
        open_wait_ms = 1000
        [resilience.deadline]
        timeout_ms = 3000
        [resilience.upstreams.shipping.bulkhead]
        max_in_flight = 4
        [resilience.upstreams.shipping.breaker]
        min_calls = 5
        "#,
    )
    .expect("a valid section");
    let shipping = loaded.for_upstream("shipping");
    assert_eq!(shipping.bulkhead.max_in_flight, 4);
    assert_eq!(shipping.breaker.min_calls, 5);
    // Inherited from [resilience], not reset to the built-in default by the override.
    assert_eq!(shipping.breaker.open_wait_ms, 1000);
    assert_eq!(shipping.deadline.timeout_ms, 3000);
    let catalog = loaded.for_upstream("catalog");
    assert_eq!(catalog.bulkhead.max_in_flight, 1024);
    assert_eq!(catalog.breaker.open_wait_ms, 1000);
    assert_eq!(catalog.breaker.min_calls, 10);
    assert_eq!(loaded.named().collect::<Vec<_>>(), ["shipping"]);

    let absent = policies("").expect("defaults");
    assert_eq!(absent.for_upstream("cart"), &UpstreamPolicy::default());
}

#[test]
fn a_policy_that_cannot_work_is_refused_naming_its_section() {
    let zero_cap = policies("[resilience.upstreams.shipping.bulkhead]\nmax_in_flight = 0\n")
        .expect_err("a zero cap");
    assert!(
        zero_cap.contains("[resilience.upstreams.shipping]"),
        "{zero_cap}"
    );
    assert!(zero_cap.contains("max_in_flight"), "{zero_cap}");
    let typo = policies("[resilience.breaker]\nopen_wait = 5\n").expect_err("an unknown key");
    assert!(typo.contains("open_wait"), "{typo}");
    let budget = policies("[resilience.retry.budget]\npercent = -1.0\n").expect_err("a budget");
    assert!(budget.contains("percent"), "{budget}");
    let not_a_table = policies("[resilience]\nupstreams = 3\n").expect_err("a number");
    assert!(not_a_table.contains("upstreams"), "{not_a_table}");
}

fn breaking_after(consecutive: u32) -> UpstreamPolicy {
    UpstreamPolicy {
        breaker: BreakerConfig {
            consecutive_failures: consecutive,
            ..BreakerConfig::default()
        },
        ..UpstreamPolicy::default()
    }
}

#[tokio::test(start_paused = true)]
async fn every_client_of_one_upstream_shares_the_callers_breaker_but_not_another_callers() {
    let policies = Arc::new(Policies::uniform(breaking_after(3)));
    let cart = Resilience::new("cart", policies.clone());
    let orders = Resilience::new("orders", policies);
    let upstream = Upstream::new(Behaviour::Status(503));
    let first = cart.wrap("catalog", upstream.transport());
    let second = cart.wrap("catalog", upstream.transport());
    let other_caller = orders.wrap("catalog", upstream.transport());
    for _ in 0..3 {
        // GETs, retried within the budget: every attempt fails.
        let _ = call(&first).await;
    }
    assert!(cart.is_refusing("catalog"));
    assert!(matches!(
        call(&second).await,
        Err(TransportError::CircuitOpen(_))
    ));
    assert!(!orders.is_refusing("catalog"));
    assert_eq!(
        call(&other_caller).await.ok(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    let views = cart.snapshot();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].upstream, "catalog");
    assert_eq!(views[0].breaker.state, BreakerState::Open);
    assert!(views[0].retries.calls >= 3);
}

#[tokio::test(start_paused = true)]
async fn a_hung_upstream_is_cut_per_attempt_and_opens_the_breaker() {
    let policy = UpstreamPolicy {
        deadline: flotilla_chassis::resilience::deadline::DeadlineConfig {
            timeout_ms: 500,
            margin_ms: 0,
        },
        ..breaking_after(3)
    };
    let resilience = Resilience::new("orders", Arc::new(Policies::uniform(policy)));
    let upstream = Upstream::new(Behaviour::Hang);
    let transport = resilience.wrap("inventory", upstream.transport());
    for n in 1..=3 {
        assert!(!resilience.is_refusing("inventory"), "before call {n}");
        let started = Instant::now();
        let answer = call(&transport).await;
        assert!(
            matches!(answer, Err(TransportError::Timeout(_))),
            "{answer:?}"
        );
        // Three attempts of 500 ms (first plus two retries) and their backoffs (at most
        // 250 ms): one failed call for the breaker, not three.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1_500), "{took:?}");
        assert!(took <= Duration::from_millis(1_800), "{took:?}");
        assert_eq!(upstream.calls(), 3 * n);
        assert_eq!(upstream.in_flight(), 0, "cut attempts are dropped");
    }
    assert!(resilience.is_refusing("inventory"));
    assert_eq!(resilience.snapshot()[0].breaker.consecutive_failures, 3);
    assert_eq!(resilience.snapshot()[0].breaker.times_opened, 1);
}

/// Two instances behind one upstream, the first of each pair of attempts going to the bad one,
/// as a balancer that has not ejected it yet would send them: `bad` answers or hangs, the other
/// answers 200 at once.
fn one_bad_of_two(bad: &Arc<Upstream>, good: &Arc<Upstream>) -> Transport {
    let (bad, good) = (bad.transport(), good.transport());
    let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tower::util::BoxCloneSyncService::new(tower::service_fn(
        move |req: axum::http::Request<axum::body::Body>| {
            let next = turn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let instance = if next.is_multiple_of(2) { &bad } else { &good };
            instance.clone().oneshot(req)
        },
    ))
}

/// The outside tester's M1: one failing instance of two opened the circuit to the whole
/// upstream before outlier ejection could take the instance out, since the breaker counted
/// every attempt (half of them failed) though every call succeeded on its retry.
#[tokio::test(start_paused = true)]
async fn one_bad_instance_of_two_does_not_open_the_breaker_when_retries_route_around_it() {
    let resilience = Resilience::new(
        "gateway",
        Arc::new(Policies::uniform(UpstreamPolicy::default())),
    );
    let (bad, good) = (
        Upstream::new(Behaviour::Status(503)),
        Upstream::new(Behaviour::Status(200)),
    );
    let transport = resilience.wrap("catalog", one_bad_of_two(&bad, &good));
    for _ in 0..60 {
        assert_eq!(call(&transport).await.ok(), Some(StatusCode::OK));
    }
    assert_eq!((bad.calls(), good.calls()), (60, 60));
    let view = &resilience.snapshot()[0];
    assert_eq!(view.breaker.state, BreakerState::Closed, "{view:?}");
    assert_eq!(view.breaker.failures_in_window, 0, "{view:?}");
    // Every instance failing is the upstream failing: the breaker opens.
    good.set(Behaviour::Status(503));
    for _ in 0..BreakerConfig::default().consecutive_failures {
        let _ = call(&transport).await;
    }
    assert!(resilience.is_refusing("catalog"));
}

/// The outside tester's M2: a frozen instance held a read for the whole transport timeout (10 s,
/// the gateway's deadline too), leaving no time to retry it elsewhere. An attempt of a read is
/// cut after `try_timeout_ms` and repeated on the other instance; a write is not cut by it.
#[tokio::test(start_paused = true)]
async fn a_hung_attempt_of_a_read_is_cut_after_the_try_timeout_and_repeated_elsewhere() {
    let resilience = Resilience::new(
        "gateway",
        Arc::new(Policies::uniform(UpstreamPolicy::default())),
    );
    let (frozen, good) = (
        Upstream::new(Behaviour::Hang),
        Upstream::new(Behaviour::Status(200)),
    );
    let transport = resilience.wrap("catalog", one_bad_of_two(&frozen, &good));
    let deadline = Some(Instant::now() + Duration::from_secs(10));
    let started = Instant::now();
    let answer = request_context::with_deadline(deadline, call(&transport)).await;
    assert_eq!(answer.ok(), Some(StatusCode::OK));
    let took = started.elapsed();
    // 2 s (the default try timeout) and one backoff of at most 25 ms.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took <= Duration::from_millis(2_030), "{took:?}");
    assert_eq!(frozen.in_flight(), 0, "the cut attempt is dropped");

    // A write is never cut by it, even one safe to repeat (a POST with an idempotency key):
    // it waits for its deadline (here 3 s), since a slow write is usually doing its work.
    for key in [None, Some("k-1")] {
        let mut post = axum::http::Request::post("/orders");
        if let Some(key) = key {
            post = post.header("idempotency-key", key);
        }
        let post = post.body(axum::body::Body::empty()).expect("a request");
        if frozen.calls() > good.calls() {
            let _ = call(&transport).await; // so that the POST goes to the frozen one
        }
        let deadline = Some(Instant::now() + Duration::from_secs(3));
        let started = Instant::now();
        let answer =
            request_context::with_deadline(deadline, transport.clone().oneshot(post)).await;
        assert!(
            matches!(answer, Err(TransportError::DeadlineExceeded(_))),
            "{key:?}: {answer:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(3), "{key:?}");
    }

    // Off (0): an attempt waits for its deadline.
    let policy = UpstreamPolicy {
        retry: flotilla_chassis::resilience::retry::RetryConfig {
            try_timeout_ms: 0,
            ..Default::default()
        },
        ..UpstreamPolicy::default()
    };
    let resilience = Resilience::new("gateway", Arc::new(Policies::uniform(policy)));
    let transport = resilience.wrap("catalog", one_bad_of_two(&frozen, &good));
    let deadline = Some(Instant::now() + Duration::from_secs(5));
    let answer = request_context::with_deadline(deadline, call(&transport)).await;
    assert!(
        matches!(answer, Err(TransportError::DeadlineExceeded(_))),
        "{answer:?}"
    );
}

/// The outside tester's H1: a checkout's lookups have a saga step's 2 s as their deadline, and
/// one frozen catalog replica of two failed them all — the per-try cut (2 s) was the deadline,
/// leaving nothing for a retry, and the failures opened orders' breaker for the whole catalog.
/// While a retry is left, an attempt of a read is cut after a third of the time left, so the
/// retry elsewhere answers in time; a `POST` query marked `ReadOnly` (the catalog's lookup) is
/// a read, while an unmarked `POST` still waits for its deadline.
#[tokio::test(start_paused = true)]
async fn a_read_with_a_short_deadline_keeps_time_for_a_retry_elsewhere() {
    use flotilla_chassis::transport::client::ReadOnly;
    let resilience = Resilience::new(
        "orders",
        Arc::new(Policies::uniform(UpstreamPolicy::default())),
    );
    let (frozen, good) = (
        Upstream::new(Behaviour::Hang),
        Upstream::new(Behaviour::Status(200)),
    );
    let transport = resilience.wrap("catalog", one_bad_of_two(&frozen, &good));
    let lookup = || {
        let mut post = axum::http::Request::post("/products/lookup")
            .body(axum::body::Body::from("{}"))
            .expect("a request");
        post.extensions_mut().insert(ReadOnly);
        post
    };
    for (name, req) in [("GET", request()), ("POST query", lookup())] {
        if frozen.calls() > good.calls() {
            let _ = call(&transport).await; // so that the first attempt goes to the frozen one
        }
        let deadline = Some(Instant::now() + Duration::from_secs(2));
        let started = Instant::now();
        let answer = request_context::with_deadline(deadline, transport.clone().oneshot(req))
            .await
            .map(|r| r.status());
        assert_eq!(answer.ok(), Some(StatusCode::OK), "{name}");
        let took = started.elapsed();
        // A third of 2 s, and one backoff of at most 25 ms.
        assert!(took >= Duration::from_millis(666), "{name}: {took:?}");
        assert!(took <= Duration::from_millis(700), "{name}: {took:?}");
    }
    // An unmarked POST is not a read: held to its deadline.
    if frozen.calls() > good.calls() {
        let _ = call(&transport).await;
    }
    let post = axum::http::Request::post("/products/lookup")
        .body(axum::body::Body::from("{}"))
        .expect("a request");
    let deadline = Some(Instant::now() + Duration::from_secs(2));
    let answer = request_context::with_deadline(deadline, transport.clone().oneshot(post)).await;
    assert!(
        matches!(answer, Err(TransportError::DeadlineExceeded(_))),
        "{answer:?}"
    );
    assert!(!resilience.is_refusing("catalog"));
}

#[tokio::test(start_paused = true)]
async fn a_callers_own_short_deadline_never_opens_the_breaker() {
    let resilience = Resilience::new("gateway", Arc::new(Policies::uniform(breaking_after(2))));
    let upstream = Upstream::new(Behaviour::Hang);
    let transport = resilience.wrap("catalog", upstream.transport());
    for _ in 0..10 {
        let deadline = Some(Instant::now() + Duration::from_millis(5));
        let answer = request_context::with_deadline(deadline, call(&transport)).await;
        assert!(
            matches!(answer, Err(TransportError::DeadlineExceeded(_))),
            "{answer:?}"
        );
    }
    assert!(!resilience.is_refusing("catalog"));
    // An expired deadline is refused before the breaker records anything.
    let past = Some(Instant::now());
    let answer = request_context::with_deadline(past, call(&transport)).await;
    assert!(matches!(answer, Err(TransportError::DeadlineExceeded(_))));
    assert_eq!(resilience.snapshot()[0].breaker.calls_in_window, 0);

    // A deadline long enough to be the upstream's fault does count.
    for _ in 0..2 {
        let deadline = Some(Instant::now() + Duration::from_millis(1_500));
        let _ = request_context::with_deadline(deadline, call(&transport)).await;
    }
    assert!(resilience.is_refusing("catalog"));
}

#[tokio::test(start_paused = true)]
async fn a_retry_storm_stays_within_the_budget() {
    // The breaker is kept closed, so that only the budget stands between the callers and the
    // failing upstream.
    let policy = UpstreamPolicy {
        breaker: BreakerConfig {
            consecutive_failures: u32::MAX,
            failure_rate_percent: 100,
            min_calls: 20,
            failure_statuses: vec![500],
            ..BreakerConfig::default()
        },
        ..UpstreamPolicy::default()
    };
    let resilience = Resilience::new("storefront", Arc::new(Policies::uniform(policy)));
    let upstream = Upstream::new(Behaviour::Status(503));
    let transport = resilience.wrap("catalog", upstream.transport());
    // 200 requests a second for 10 s (the budget's ttl), 20 at a time.
    let requests = 2_000;
    let started = Instant::now();
    for _ in 0..requests / 20 {
        let batch: Vec<_> = (0..20).map(|_| call(&transport)).collect();
        for answer in futures::future::join_all(batch).await {
            assert_eq!(answer.ok(), Some(StatusCode::SERVICE_UNAVAILABLE));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = upstream.calls();
    // The floor is Finagle's: 10 a second averaged over the budget's 10 s ttl, that is 100
    // retries per ttl begun (the reserve's withdrawals expire with their window); backoffs
    // stretch this run past one ttl.
    let elapsed = started.elapsed().as_secs_f64();
    let ttls = (elapsed / 10.0).ceil();
    let bound = requests as f64 * 1.2 + 100.0 * ttls;
    assert!(
        (attempts as f64) <= bound,
        "{attempts} attempts for {requests} requests (bound {bound} over {elapsed:.1} s)"
    );
    let retries = resilience.snapshot()[0].retries;
    assert!(
        retries.refused_by_budget > 0,
        "the budget was reached: {retries:?}"
    );
    assert_eq!(attempts as u64, requests as u64 + retries.retries);
}

/// `GET path`, through `transport`.
async fn call_path(transport: &Transport, path: &str) -> Result<StatusCode, TransportError> {
    let request = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .expect("a request");
    transport.clone().oneshot(request).await.map(|r| r.status())
}

/// The tools an operator repairs an upstream with are never refused by the caller's breaker
/// or bulkhead, and their answers never open the breaker (the outside tester's H1: a fault on
/// one route opened the gateway's breaker, which then refused the very `DELETE /admin/faults`
/// that would have removed it).
#[tokio::test(start_paused = true)]
async fn the_upstreams_admin_routes_probes_and_contract_pass_an_open_breaker_and_a_full_bulkhead() {
    const CONTROL_PLANE: [&str; 6] = [
        "/admin/faults",
        "/admin/resilience",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/openapi.internal.json",
    ];
    let policy = UpstreamPolicy {
        bulkhead: flotilla_chassis::resilience::bulkhead::BulkheadConfig { max_in_flight: 1 },
        ..breaking_after(3)
    };
    let resilience = Resilience::new("gateway", Arc::new(Policies::uniform(policy)));
    let upstream = Upstream::new(Behaviour::Status(503));
    let transport = resilience.wrap("catalog", upstream.transport());

    // Failing control-plane calls do not count against the upstream...
    for _ in 0..10 {
        for path in CONTROL_PLANE {
            assert_eq!(
                call_path(&transport, path).await.ok(),
                Some(StatusCode::SERVICE_UNAVAILABLE)
            );
        }
    }
    assert!(!resilience.is_refusing("catalog"));
    let view = &resilience.snapshot()[0];
    assert_eq!(view.breaker.calls_in_window, 0, "{:?}", view.breaker);

    // ... and pass it once its business calls have opened the breaker (three failures; the
    // control-plane calls' retries may have spent the retry budget, so up to three calls).
    for _ in 0..3 {
        if !resilience.is_refusing("catalog") {
            let _ = call(&transport).await;
        }
    }
    assert!(resilience.is_refusing("catalog"));
    assert!(matches!(
        call(&transport).await,
        Err(TransportError::CircuitOpen(_))
    ));
    upstream.set(Behaviour::Status(200));
    let before = upstream.calls();
    for path in CONTROL_PLANE {
        assert_eq!(call_path(&transport, path).await.ok(), Some(StatusCode::OK));
    }
    assert_eq!(upstream.calls(), before + CONTROL_PLANE.len());
    assert!(resilience.is_refusing("catalog"), "still open for the rest");

    // A spelling that is not the control plane's is an ordinary call.
    assert!(matches!(
        call_path(&transport, "/administrator").await,
        Err(TransportError::CircuitOpen(_))
    ));

    // A bulkhead full of a hung business call still lets the operator through.
    tokio::time::advance(Duration::from_secs(60)).await;
    upstream.set(Behaviour::Hang);
    let hung = tokio::spawn({
        let transport = transport.clone();
        async move { call(&transport).await }
    });
    while upstream.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        call(&transport).await,
        Err(TransportError::Overloaded(_))
    ));
    upstream.set(Behaviour::Status(200));
    assert_eq!(
        call_path(&transport, "/admin/faults").await.ok(),
        Some(StatusCode::OK)
    );
    hung.abort();
}
