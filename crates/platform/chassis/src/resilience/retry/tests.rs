//! The retry policy against RELIABILITY.md F11, on paused time with scripted upstreams: which
//! requests are repeated, on which failures, how often, after which delays, and how far the
//! budget lets retries add to the load.

use super::*;
use axum::http::header;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use tower::ServiceExt;

/// What the scripted upstream does with one attempt.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Status(u16),
    Refused,
    Reset,
    Timeout,
}

fn failure(outcome: Outcome) -> Result<Response<Body>, TransportError> {
    let io = |kind| TransportError::Connect {
        service: "up".into(),
        source: Box::new(std::io::Error::from(kind)),
    };
    match outcome {
        Outcome::Status(code) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::from_u16(code).expect("test status");
            Ok(response)
        }
        Outcome::Refused => Err(io(std::io::ErrorKind::ConnectionRefused)),
        Outcome::Reset => Err(io(std::io::ErrorKind::ConnectionReset)),
        Outcome::Timeout => Err(TransportError::Timeout("up".into())),
    }
}

/// An upstream answering every attempt with `script(n)` (n counts attempts from 0), recording
/// each attempt's time, `RetryAttempt` number and body.
#[derive(Clone, Default)]
struct Upstream {
    attempts: Arc<Mutex<Vec<(Instant, u32, Bytes)>>>,
}

impl Upstream {
    fn transport(&self, script: impl Fn(u32) -> Outcome + Send + Sync + 'static) -> Transport {
        let attempts = self.attempts.clone();
        let script = Arc::new(script);
        let count = Arc::new(AtomicU32::new(0));
        BoxCloneSyncService::new(tower::service_fn(move |req: Request<Body>| {
            let attempts = attempts.clone();
            let script = script.clone();
            let n = count.fetch_add(1, Ordering::SeqCst);
            // Read as the attempt is handed over, as a balancer does.
            let retry = RetryAttempt::current().map_or(99, |a| a.number());
            async move {
                let body = req.into_body().collect().await.expect("body").to_bytes();
                attempts
                    .lock()
                    .expect("lock")
                    .push((Instant::now(), retry, body));
                failure(script(n))
            }
        }))
    }

    fn count(&self) -> usize {
        self.attempts.lock().expect("lock").len()
    }
}

fn request(method: Method, key: bool) -> Request<Body> {
    let mut req = Request::new(Body::from(r#"{"sku":"p1"}"#));
    *req.method_mut() = method;
    *req.uri_mut() = "/things".parse().expect("uri");
    if key {
        req.headers_mut()
            .insert(IDEMPOTENCY_KEY.clone(), "k-1".parse().expect("key"));
    }
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("ct"),
    );
    req
}

fn retrying(upstream: Transport) -> Transport {
    layer("up", &RetryConfig::default())
        .expect("default config")
        .layer(upstream)
}

async fn attempts_for(method: Method, key: bool, outcome: Outcome) -> usize {
    let upstream = Upstream::default();
    let transport = retrying(upstream.transport(move |_| outcome));
    let _ = transport.oneshot(request(method, key)).await;
    upstream.count()
}

const RETRYABLE: [Outcome; 6] = [
    Outcome::Status(502),
    Outcome::Status(503),
    Outcome::Status(504),
    Outcome::Refused,
    Outcome::Reset,
    Outcome::Timeout,
];

#[tokio::test(start_paused = true)]
async fn a_post_without_an_idempotency_key_is_sent_exactly_once_even_on_503() {
    for outcome in [
        Outcome::Status(502),
        Outcome::Status(503),
        Outcome::Status(504),
        Outcome::Reset,
        Outcome::Timeout,
        Outcome::Status(500),
    ] {
        let n = attempts_for(Method::POST, false, outcome).await;
        assert_eq!(n, 1, "{outcome:?}");
    }
    // PATCH has no idempotency promise either.
    assert_eq!(
        attempts_for(Method::PATCH, false, Outcome::Status(503)).await,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_never_reached_the_upstream_so_even_a_post_is_retried() {
    assert_eq!(attempts_for(Method::POST, false, Outcome::Refused).await, 3);
}

#[tokio::test(start_paused = true)]
async fn safe_requests_are_retried_at_most_twice_and_only_on_retryable_failures() {
    let safe = [
        (Method::GET, false),
        (Method::HEAD, false),
        (Method::PUT, false),
        (Method::DELETE, false),
        (Method::OPTIONS, false),
        (Method::POST, true),
    ];
    for (method, key) in safe {
        for outcome in RETRYABLE {
            let n = attempts_for(method.clone(), key, outcome).await;
            assert_eq!(
                n, 3,
                "{method} key={key} {outcome:?}: 1 attempt + 2 retries"
            );
        }
        for code in [200, 201, 204, 400, 401, 404, 409, 422, 429, 500, 501] {
            let n = attempts_for(method.clone(), key, Outcome::Status(code)).await;
            assert_eq!(n, 1, "{method} key={key} {code}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_stops_at_the_first_success_and_replays_the_same_body_marked_with_its_attempt() {
    let upstream = Upstream::default();
    let transport = retrying(upstream.transport(|n| match n {
        0 => Outcome::Status(503),
        _ => Outcome::Status(201),
    }));
    let response = transport
        .oneshot(request(Method::POST, true))
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::CREATED);
    let attempts = upstream.attempts.lock().expect("lock").clone();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts.iter().map(|a| a.1).collect::<Vec<_>>(), vec![0, 1]);
    for (_, _, body) in &attempts {
        assert_eq!(body.as_ref(), br#"{"sku":"p1"}"#);
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_too_large_to_buffer_is_sent_once() {
    let upstream = Upstream::default();
    let transport = retrying(upstream.transport(|_| Outcome::Status(503)));
    let mut req = request(Method::PUT, false);
    *req.body_mut() = Body::from(vec![b'x'; 64 * 1024 + 1]);
    let _ = transport.oneshot(req).await;
    assert_eq!(upstream.count(), 1);
}

#[test]
fn backoffs_are_full_jitter_within_zero_and_the_capped_exponential() {
    let config = RetryConfig::default();
    let ceilings: Vec<u64> = (0..5)
        .map(|n| config.backoff_ceiling(n).as_millis() as u64)
        .collect();
    assert_eq!(ceilings, vec![25, 50, 100, 200, 250]);
    for retry in 0..5 {
        let ceiling = config.backoff_ceiling(retry);
        let draws: Vec<Duration> = (0..2_000).map(|_| config.backoff(retry)).collect();
        assert!(draws.iter().all(|d| *d <= ceiling), "retry {retry}");
        // Uniform over the range: both ends are reached, not a fixed or half-jittered delay.
        assert!(draws.iter().any(|d| *d < ceiling / 10), "retry {retry}");
        assert!(draws.iter().any(|d| *d > ceiling * 9 / 10), "retry {retry}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_delays_between_attempts_stay_within_the_jitter_bounds() {
    let config = RetryConfig::default();
    for _ in 0..50 {
        let upstream = Upstream::default();
        let transport = retrying(upstream.transport(|_| Outcome::Status(503)));
        let _ = transport.oneshot(request(Method::GET, false)).await;
        let attempts = upstream.attempts.lock().expect("lock").clone();
        assert_eq!(attempts.len(), 3);
        for (retry, pair) in attempts.windows(2).enumerate() {
            let gap = pair[1].0 - pair[0].0;
            assert!(gap <= config.backoff_ceiling(retry as u32), "{gap:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_retry_is_attempted_that_cannot_finish_before_the_deadline() {
    let upstream = Upstream::default();
    let slow = upstream.transport(|_| Outcome::Status(503));
    let slow = BoxCloneSyncService::new(tower::service_fn(move |req| {
        let slow = slow.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            slow.oneshot(req).await
        }
    }));
    let transport = retrying(slow);
    let deadline = Instant::now() + Duration::from_millis(60);
    let response = request_context::with_deadline(
        Some(deadline),
        transport.oneshot(request(Method::GET, false)),
    )
    .await
    .expect("answer");
    // 40 ms spent, 20 ms left: another 40 ms attempt cannot fit.
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.count(), 1);
}

/// Sends `per_sec` requests a second for `secs` seconds of paused time, each answered by
/// `script`, and returns (requests, upstream attempts, seconds from the first request to the
/// last answer).
async fn load(
    per_sec: u32,
    secs: u32,
    script: impl Fn(u32) -> Outcome + Send + Sync + 'static,
) -> (u32, usize, f64) {
    let upstream = Upstream::default();
    let transport = retrying(upstream.transport(script));
    let mut tasks = tokio::task::JoinSet::new();
    let gap = Duration::from_secs(1) / per_sec;
    let requests = per_sec * secs;
    let start = Instant::now();
    for _ in 0..requests {
        let transport = transport.clone();
        tasks.spawn(async move { transport.oneshot(request(Method::GET, false)).await });
        tokio::time::sleep(gap).await;
    }
    while tasks.join_next().await.is_some() {}
    (requests, upstream.count(), start.elapsed().as_secs_f64())
}

#[tokio::test(start_paused = true)]
async fn at_half_the_attempts_failing_the_budget_keeps_attempts_within_twenty_percent_plus_the_floor()
 {
    let (per_sec, secs) = (50, 20);
    let (requests, attempts, elapsed) = load(per_sec, secs, |n| {
        if n % 2 == 0 {
            Outcome::Status(503)
        } else {
            Outcome::Status(200)
        }
    })
    .await;
    // F11: total attempts ≤ 1.2 × requests + 10 per second of the run (TpsBudget frees spent
    // retries a whole slot, ttl/10 = 1 s, at a time: a started second counts).
    let bound = 1.2 * f64::from(requests) + 10.0 * elapsed.ceil();
    eprintln!(
        "50 % failing: {requests} requests in {elapsed:.2} s, {attempts} attempts, bound {bound}"
    );
    assert!(attempts as f64 <= bound, "{attempts} > {bound}");
    assert!(attempts > requests as usize, "failures were retried");
}

#[tokio::test(start_paused = true)]
async fn a_retry_storm_is_held_to_the_budget_when_every_attempt_fails() {
    let budget = BudgetConfig::default();
    let (per_sec, secs) = (100, 10);
    let (requests, attempts, elapsed) = load(per_sec, secs, |_| Outcome::Status(503)).await;
    // The floor is min_per_sec for every second of the run (a started second counts: TpsBudget
    // frees spent retries one ttl/10 slot at a time), the first ttl window's worth available
    // from the start (Finagle's reserve).
    let floor = f64::from(budget.min_per_sec) * elapsed.ceil().max(budget.ttl_secs as f64);
    let bound = (1.0 + f64::from(budget.percent)) * f64::from(requests) + floor;
    eprintln!(
        "every attempt failing: {requests} requests in {elapsed:.2} s, {attempts} attempts, bound {bound}"
    );
    assert!(attempts as f64 <= bound, "{attempts} > {bound}");
    // Without a budget it would have been 3 × requests.
    assert!(attempts > requests as usize);
}

#[test]
fn configs_are_checked_before_tower_could_panic_on_them() {
    assert_eq!(RetryConfig::default().validate(), Ok(()));
    let mut bad = RetryConfig::default();
    bad.budget.ttl_secs = 0;
    assert!(layer("up", &bad).is_err());
    let mut bad = RetryConfig::default();
    bad.budget.percent = f32::NAN;
    assert!(bad.validate().is_err());
    let bad = RetryConfig {
        cap_ms: 10,
        ..RetryConfig::default()
    };
    assert!(bad.validate().is_err());
}
