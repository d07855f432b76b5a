//! The gateway's listener against hostile clients, in a one-process host over raw sockets
//! (RELIABILITY.md B2, B4): ambiguous requests are refused with problem+json and what they
//! smuggle never reaches a service; over-long heads get problem+json 414/431; and an early 413
//! reaches a client that sends its whole body before reading.

use crate::support::{TestApp, spawn_app};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Sends `bytes` on a fresh connection and reads until the gateway closes it.
async fn exchange(app: &TestApp, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr(app)).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the gateway closes the connection")
        .expect("read, not reset");
    String::from_utf8_lossy(&got).into_owned()
}

/// The one answer in `raw`: its status and problem body.
fn problem(raw: &str) -> (u16, Value) {
    assert_eq!(raw.matches("HTTP/1.1 ").count(), 1, "one answer: {raw}");
    let status = raw[9..12].parse().expect("status");
    let lower = raw.to_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{raw}"
    );
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, serde_json::from_str(body).expect("a problem body"))
}

/// A signup as raw HTTP/1.1 for `email`, whole.
fn signup(email: &str) -> String {
    let body = json!({"email": email, "password": "password-123", "name": "Smuggled"}).to_string();
    format!(
        "POST /api/identity/signup HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// True when `email` has no account yet (a signup of it is still accepted).
async fn unused(app: &TestApp, email: &str) -> bool {
    let res = app
        .http
        .post(format!("{}/api/identity/signup", app.base))
        .json(&json!({"email": email, "password": "password-123", "name": "Real"}))
        .send()
        .await
        .expect("signup");
    res.status() == 201
}

/// A request built around the one it smuggles.
type Carrier = Box<dyn Fn(&str) -> String>;

#[tokio::test]
async fn ambiguous_requests_are_refused_and_what_they_smuggle_never_reaches_a_service() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Carrier)> = vec![
        // CL.TE: a front end reading the length forwards it all; one reading chunks sees a
        // second request.
        (
            "both Content-Length and Transfer-Encoding",
            Box::new(|smuggled: &str| {
                format!(
                    "POST /api/cart/items HTTP/1.1\r\nHost: shop\r\nContent-Length: {}\r\n\
                     Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
                    5 + smuggled.len()
                )
            }),
        ),
        // TE.CL, and the order reversed.
        (
            "both Content-Length and Transfer-Encoding",
            Box::new(|smuggled: &str| {
                let chunk = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
                format!(
                    "POST /api/cart/items HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\
                     Content-Length: 3\r\n\r\n{chunk}"
                )
            }),
        ),
        (
            "only one Content-Length",
            Box::new(|smuggled: &str| {
                format!(
                    "POST /api/cart/items HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\n\
                     Content-Length: {}\r\n\r\n{smuggled}",
                    smuggled.len()
                )
            }),
        ),
        (
            "only one Host",
            Box::new(|smuggled: &str| {
                format!(
                    "GET /api/catalog/products HTTP/1.1\r\nHost: shop\r\nHost: admin\r\n\r\n{smuggled}"
                )
            }),
        ),
        (
            "only one Authorization",
            Box::new(|smuggled: &str| {
                format!(
                    "GET /api/cart HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer a\r\n\
                     Authorization: Bearer b\r\n\r\n{smuggled}"
                )
            }),
        ),
        (
            "control character",
            Box::new(|smuggled: &str| {
                format!(
                    "GET /api/catalog/products HTTP/1.1\r\nHost: shop\r\nX-Note: a\rb\r\n\r\n{smuggled}"
                )
            }),
        ),
    ];
    for (says, request) in cases {
        let email = format!("s{}@example.com", rand::random::<u64>());
        let raw = exchange(&app, request(&signup(&email)).as_bytes()).await;
        let (status, body) = problem(&raw);
        assert_eq!(status, 400, "{raw}");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(says),
            "{raw}"
        );
        assert!(
            unused(&app, &email).await,
            "the smuggled signup ran: {says}"
        );
    }
}

#[tokio::test]
async fn heads_over_the_limits_get_problem_bodies_at_the_gateway() {
    let app = spawn_app().await;
    let long = format!(
        "GET /api/catalog/products?q={} HTTP/1.1\r\nHost: shop\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(problem(&exchange(&app, long.as_bytes()).await).0, 414);
    let big = format!(
        "GET /api/catalog/products HTTP/1.1\r\nHost: shop\r\nCookie: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    assert_eq!(problem(&exchange(&app, big.as_bytes()).await).0, 431);
    let many = format!(
        "GET /api/catalog/products HTTP/1.1\r\nHost: shop\r\n{}\r\n",
        "x-a: b\r\n".repeat(100)
    );
    assert_eq!(problem(&exchange(&app, many.as_bytes()).await).0, 431);
    let (status, body) = problem(&exchange(&app, b"GET / HTTP/2.5\r\nHost: shop\r\n\r\n").await);
    assert_eq!(status, 400, "{body}");
}

/// Python's urllib sends a whole body before it reads the answer: a 3 MB signup got a reset
/// or a broken pipe instead of the 413. The client here waits until the answer has arrived
/// before it sends the body, so that the gateway is surely done with the request.
#[tokio::test]
async fn an_early_413_reaches_a_client_that_sends_its_whole_body_first() {
    let app = spawn_app().await;
    let body = vec![b' '; 3 * 1024 * 1024];
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let head = format!(
        "POST /api/identity/signup HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut first = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first))
        .await
        .expect("answered in time")
        .expect("peek");
    stream
        .write_all(&body)
        .await
        .expect("the whole body is taken, not refused");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .expect("the answer is read, not reset");
    let raw = String::from_utf8_lossy(&got);
    assert_eq!(problem(&raw).0, 413, "{raw}");
}
