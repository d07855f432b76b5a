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
        "a".repeat(40_000)
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

/// A body nested past the JSON depth limit is refused by the service behind the gateway,
/// naming the limit, and the signup is not made.
#[tokio::test]
async fn json_nested_past_the_limit_is_refused_naming_it() {
    let app = spawn_app().await;
    let email = format!("d{}@example.com", rand::random::<u64>());
    for depth in [65, 129, 5000] {
        let body = format!(
            r#"{{"email": "{email}", "password": "password-123", "name": "Deep", "x": {}1{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        );
        let res = app
            .http
            .post(format!("{}/api/identity/signup", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("signup");
        assert_eq!(res.status(), 400);
        let problem: Value = res.json().await.expect("problem");
        assert_eq!(
            problem["type"], "urn:flotilla:problem:json-too-deep",
            "{problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("64")
        );
    }
    assert!(unused(&app, &email).await, "the handler ran");
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

/// HTTP/2 with prior knowledge (h2c) on the plain listener: hyper's auto builder tells it
/// from HTTP/1 by its preface, and the framing check stands aside for it.
#[tokio::test]
async fn the_gateway_speaks_http2_without_tls() {
    let app = spawn_app().await;
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let res = h2c
        .get(format!("{}/api/catalog/products", app.base))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    // An ambiguous HTTP/2 request is refused too (on its header map).
    let res = h2c
        .get(format!("{}/api/catalog/products", app.base))
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .send()
        .await
        .expect("h2c request");
    assert_eq!(res.status(), 400);
}

/// A certificate for `localhost` made for the test, written as PEM files in `dir`; the
/// configuration naming them.
fn certificate(dir: &std::path::Path) -> (rcgen::Certificate, Value) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    (made.cert, json!({"cert_path": cert, "key_path": key}))
}

/// One request over a fresh TLS connection to `app` that trusts only `cert` and offers
/// `alpn`: the version spoken and the answer's status.
async fn over_tls(
    app: &TestApp,
    cert: &rcgen::Certificate,
    alpn: &[u8],
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> (hyper::Version, u16) {
    let (version, status, _) = over_tls_headers(app, cert, alpn, request).await;
    (version, status)
}

/// [`over_tls`], with the answer's headers.
async fn over_tls_headers(
    app: &TestApp,
    cert: &rcgen::Certificate,
    alpn: &[u8],
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> (hyper::Version, u16, hyper::HeaderMap) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr(app)).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake with the test certificate");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    let io = TokioIo::new(tls);
    let response = if alpn == b"h2" {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2");
        tokio::spawn(conn);
        sender.send_request(request).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.expect("h1");
        tokio::spawn(conn);
        sender.send_request(request).await
    }
    .expect("answered");
    (
        response.version(),
        response.status().as_u16(),
        response.headers().clone(),
    )
}

fn get(uri: &str) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    hyper::Request::get(uri)
        .header("host", "localhost")
        .body(Default::default())
        .expect("request")
}

#[tokio::test]
async fn the_gateway_serves_tls_over_http1_and_http2() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, tls) = certificate(dir.path());
    let app = crate::support::spawn_app_with(json!({ "tls": tls })).await;
    for (alpn, version) in [
        (&b"http/1.1"[..], hyper::Version::HTTP_11),
        (b"h2", hyper::Version::HTTP_2),
    ] {
        // HTTP/2 requests name their authority in the URI.
        let target = if version == hyper::Version::HTTP_2 {
            "https://localhost/api/catalog/products"
        } else {
            "/api/catalog/products"
        };
        assert_eq!(
            over_tls(&app, &cert, alpn, get(target)).await,
            (version, 200)
        );
        let oversized = hyper::Request::post(target.replace("catalog/products", "identity/signup"))
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(vec![b' '; 100 * 1024].into())
            .expect("request");
        assert_eq!(over_tls(&app, &cert, alpn, oversized).await, (version, 413));
    }
    // The web shop's session cookie, set over TLS, is Secure.
    let signup = hyper::Request::post("/signup")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            format!(
                "name=Tia&email=tls-{}%40example.com&password=a+long+enough+password",
                rand::random::<u32>()
            )
            .into_bytes()
            .into(),
        )
        .expect("request");
    let (_, status, headers) = over_tls_headers(&app, &cert, b"http/1.1", signup).await;
    assert_eq!(status, 303);
    let cookie = headers["set-cookie"].to_str().expect("ascii");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    // Plain HTTP on the TLS port is not served.
    assert!(
        app.http
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err()
    );
}

/// A TLS handshake that never completes is closed by the header timeout, like a slow head.
#[tokio::test]
async fn an_unfinished_tls_handshake_is_closed_by_the_header_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let (_cert, tls) = certificate(dir.path());
    let app = crate::support::spawn_app_with(json!({
        "tls": tls,
        "connections": {"header_read_timeout": 500},
    }))
    .await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    // The first bytes of a ClientHello record, and nothing more.
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("send");
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
        .await
        .expect("closed by the server");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
