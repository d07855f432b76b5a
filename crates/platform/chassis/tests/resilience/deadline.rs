//! Deadline propagation through a chain of chassis services A → B → C, in-process and over
//! HTTP: C hangs, A's client gets 504 at its deadline, and B's call to C is cancelled at the
//! same moment (C sees its request dropped). Real time: the HTTP chain runs on real sockets.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use flotilla_chassis::layers::{self, Limits};
use flotilla_chassis::problem::Problem;
use flotilla_chassis::request_context;
use flotilla_chassis::resilience::deadline::DEADLINE_HEADER;
use flotilla_chassis::service_credential::ServiceCredentials;
use flotilla_chassis::transport::http::{HttpPool, HttpSettings};
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::transport::{ServiceClient, Transport};
use flotilla_chassis::trust::TrustPolicy;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;

/// What C observed.
#[derive(Default)]
struct Seen {
    /// The deadline header C's request carried.
    header: Mutex<Option<String>>,
    /// When C's handler was dropped.
    dropped: Mutex<Option<Instant>>,
    /// Handlers that started.
    started: AtomicU32,
}

/// Records the moment C's handler future is dropped.
struct OnDrop(Arc<Seen>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        *self.0.dropped.lock().expect("lock") = Some(Instant::now());
    }
}

fn service(name: &'static str, router: Router) -> Router {
    let trust = TrustPolicy {
        credentials: None,
        require_credential: false,
    };
    layers::standard(router, Limits::default(), trust, name, None, None)
}

/// C: `/hang` never answers; `/echo` says what deadline it was given.
fn c(seen: Arc<Seen>) -> Router {
    let hang = seen.clone();
    let router = Router::new()
        .route(
            "/hang",
            get(move |req: Request<Body>| {
                let hang = hang.clone();
                async move {
                    hang.started.fetch_add(1, Ordering::SeqCst);
                    *hang.header.lock().expect("lock") = req
                        .headers()
                        .get(&DEADLINE_HEADER)
                        .map(|v| v.to_str().expect("ascii").to_owned());
                    let _guard = OnDrop(hang);
                    std::future::pending::<()>().await;
                    "never"
                }
            }),
        )
        .route(
            "/echo",
            get(move |req: Request<Body>| {
                let seen = seen.clone();
                async move {
                    seen.started.fetch_add(1, Ordering::SeqCst);
                    let header = req
                        .headers()
                        .get(&DEADLINE_HEADER)
                        .map(|v| v.to_str().expect("ascii").to_owned());
                    axum::Json(serde_json::json!({
                        "header": header,
                        "has_deadline": request_context::current_deadline().is_some(),
                    }))
                }
            }),
        );
    service("c", router)
}

/// A or B: `/call/{path}` calls `next`'s `/{path}` and answers what it answered.
fn relay(name: &'static str, next: ServiceClient) -> Router {
    let router = Router::new().route(
        "/call/{*path}",
        get(
            move |axum::extract::Path(path): axum::extract::Path<String>| {
                let next = next.clone();
                async move {
                    next.get::<serde_json::Value>(&format!("/{path}"), None)
                        .await
                        .map(axum::Json)
                        .map_err(Problem::from)
                }
            },
        ),
    );
    service(name, router)
}

fn asking(path: &str, deadline_ms: Option<u64>) -> Request<Body> {
    let mut req = Request::get(path).body(Body::empty()).expect("request");
    if let Some(ms) = deadline_ms {
        req.headers_mut()
            .insert(DEADLINE_HEADER.clone(), ms.to_string().parse().expect("ms"));
    }
    req
}

/// A's router with B and C behind it in this process.
fn in_process_chain(seen: Arc<Seen>) -> Router {
    let registry = InProcessRegistry::default();
    registry.register("c", c(seen));
    registry.register(
        "b",
        relay("b", ServiceClient::new("c", registry.transport("c"))),
    );
    relay("a", ServiceClient::new("b", registry.transport("b")))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A's URL, with B and C each on its own socket.
async fn http_chain(seen: Arc<Seen>) -> String {
    let credentials = Arc::new(ServiceCredentials::new(b"deadline-test-secret", "test"));
    let pool = HttpPool::new(credentials, HttpSettings::default());
    let c_url = serve(c(seen)).await;
    let to_c: Transport = pool.transport("c", &c_url).expect("c url");
    let b_url = serve(relay("b", ServiceClient::new("c", to_c))).await;
    let to_b: Transport = pool.transport("b", &b_url).expect("b url");
    serve(relay("a", ServiceClient::new("b", to_b))).await
}

/// Sends `req` to A over HTTP as an outside client would (no deadline layer of its own).
async fn over_http(a_url: &str, req: Request<Body>) -> (StatusCode, String, serde_json::Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("{a_url}{}", parts.uri).parse().expect("uri");
    let response = client
        .request(Request::from_parts(parts, body))
        .await
        .expect("A answers");
    read(response.map(Body::new)).await
}

async fn read(response: axum::http::Response<Body>) -> (StatusCode, String, serde_json::Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, content_type, json)
}

const DEADLINE: Duration = Duration::from_millis(1000);

/// Checks the outcome of a call to `/call/call/hang` that started at `start`.
fn assert_cut_at_the_deadline(
    start: Instant,
    answered: Instant,
    (status, content_type, problem): (StatusCode, String, serde_json::Value),
    seen: &Seen,
) {
    let tolerance = DEADLINE / 10;
    let took = answered - start;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("deadline-exceeded")),
        "{problem}"
    );
    assert!(
        took.abs_diff(DEADLINE) <= tolerance,
        "answered after {took:?}"
    );
    assert_eq!(seen.started.load(Ordering::SeqCst), 1, "C was called once");
    let header: u64 = seen
        .header
        .lock()
        .expect("lock")
        .as_deref()
        .expect("C got a deadline")
        .parse()
        .expect("ms");
    assert!(
        header <= DEADLINE.as_millis() as u64 && header + 100 >= DEADLINE.as_millis() as u64,
        "C was given {header} ms"
    );
    let dropped = seen
        .dropped
        .lock()
        .expect("lock")
        .expect("C's request was dropped");
    let cancelled = dropped - start;
    assert!(
        cancelled.abs_diff(DEADLINE) <= tolerance,
        "C's request dropped after {cancelled:?}"
    );
}

/// Waits (bounded) until C has seen its request dropped.
async fn until_dropped(seen: &Seen) {
    let give_up = Instant::now() + Duration::from_secs(5);
    while seen.dropped.lock().expect("lock").is_none() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn in_process_a_hanging_third_hop_is_cut_at_the_first_hops_deadline() {
    let seen = Arc::new(Seen::default());
    let a = in_process_chain(seen.clone());
    let start = Instant::now();
    let response = a
        .oneshot(asking("/call/call/hang", Some(DEADLINE.as_millis() as u64)))
        .await
        .expect("infallible");
    let answered = Instant::now();
    let outcome = read(response).await;
    until_dropped(&seen).await;
    assert_cut_at_the_deadline(start, answered, outcome, &seen);
}

#[tokio::test]
async fn over_http_a_hanging_third_hop_is_cut_at_the_first_hops_deadline() {
    let seen = Arc::new(Seen::default());
    let a_url = http_chain(seen.clone()).await;
    let start = Instant::now();
    let outcome = over_http(
        &a_url,
        asking("/call/call/hang", Some(DEADLINE.as_millis() as u64)),
    )
    .await;
    let answered = Instant::now();
    until_dropped(&seen).await;
    assert_cut_at_the_deadline(start, answered, outcome, &seen);
}

#[tokio::test]
async fn an_expired_deadline_is_answered_504_without_running_the_handler() {
    let seen = Arc::new(Seen::default());
    let c = c(seen.clone());
    let response = c
        .clone()
        .oneshot(asking("/echo", Some(0)))
        .await
        .expect("infallible");
    let (status, content_type, problem) = read(response).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("deadline-exceeded"))
    );
    assert_eq!(
        seen.started.load(Ordering::SeqCst),
        0,
        "the handler did not run"
    );

    let a_url = http_chain(seen.clone()).await;
    let (status, _, _) = over_http(&a_url, asking("/call/call/echo", Some(0))).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        seen.started.load(Ordering::SeqCst),
        0,
        "nobody downstream ran"
    );
}

#[tokio::test]
async fn the_remaining_time_travels_on_and_without_a_header_the_upstream_timeout_applies() {
    for http in [false, true] {
        let seen = Arc::new(Seen::default());
        let a = in_process_chain(seen.clone());
        let a_url = http_chain(seen.clone()).await;
        let call = |deadline| {
            let a = a.clone();
            let a_url = a_url.clone();
            async move {
                let req = asking("/call/call/echo", deadline);
                if http {
                    over_http(&a_url, req).await
                } else {
                    read(a.oneshot(req).await.expect("infallible")).await
                }
            }
        };
        let (status, _, echo) = call(Some(2_000)).await;
        assert_eq!(status, StatusCode::OK, "{echo}");
        let ms: u64 = echo["header"]
            .as_str()
            .expect("header")
            .parse()
            .expect("ms");
        assert!(
            (1_800..=2_000).contains(&ms),
            "http={http}: C was given {ms}"
        );
        assert_eq!(echo["has_deadline"], true);

        // No deadline from the client: A has none, and its calls are bounded by the
        // transport's own timeout (10 s by default), which they carry on.
        let (status, _, echo) = call(None).await;
        assert_eq!(status, StatusCode::OK, "{echo}");
        let ms: u64 = echo["header"]
            .as_str()
            .expect("header")
            .parse()
            .expect("ms");
        assert!(
            (9_800..=10_000).contains(&ms),
            "http={http}: C was given {ms}"
        );
    }
}
