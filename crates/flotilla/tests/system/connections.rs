//! No connection holds a file descriptor for ever (RELIABILITY.md B5, B8): slow headers, idle
//! keep-alive and silent connections are closed by their timeouts, a stalled body is answered
//! 408, and connections over the cap are refused cleanly while health checks keep answering.
//! Real `flotilla run` processes with short configured limits, so each figure is asserted in
//! seconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Process, spawn_app_with};

/// A `flotilla run` shop with `envs`, optionally under a lowered open-file limit.
fn shop(envs: &[(&str, &str)], nofile: Option<u64>) -> (Process, tempfile::TempDir, SocketAddr) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().to_str().expect("path").to_owned();
    let mut all = vec![
        ("FLOTILLA_CATALOG__SEED_PRODUCTS", "10"),
        ("FLOTILLA_INVENTORY__SEED_PRODUCTS", "10"),
    ];
    all.extend_from_slice(envs);
    let process =
        Process::start_with_file_limit(nofile, &["run", "--port", "0", "--data-dir", &data], &all);
    let addr = process.url("gateway")["http://".len()..]
        .parse()
        .expect("gateway address");
    (process, dir, addr)
}

/// The process's open sockets. Files are left out: SQLite opens its pools' connections (and
/// their WAL files) lazily, as background tasks first need them, which would move the baseline.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|entry| {
                    std::fs::read_link(entry.path())
                        .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The 99th percentile of `n` sequential `GET /healthz` on one keep-alive client.
async fn healthz_p99(http: &reqwest::Client, addr: SocketAddr, n: usize) -> Duration {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let status = http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("healthz answers")
            .status();
        assert_eq!(status, 200);
        took.push(started.elapsed());
    }
    took.sort();
    took[(n * 99 / 100).min(n - 1)]
}

/// Reads until the server closes; what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A slowloris client: one byte of a request header every `every`, never finishing. Returns
/// how long after its first byte the server closed the connection.
async fn slowloris(addr: SocketAddr, every: Duration) -> Duration {
    const HEADER: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa";
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let mut buf = [0u8; 512];
    for byte in HEADER.chunks(1) {
        if stream.write_all(byte).await.is_err() {
            return started.elapsed();
        }
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => panic!("the server answered a request whose headers never ended"),
            },
            _ = tokio::time::sleep(every) => {}
        }
    }
    panic!("the server kept a slow connection open for the whole header");
}

/// B5: 300 connections each sending one header byte every 250 ms are all closed within the
/// header timeout (1 s here) + 1 s, while normal requests keep answering; descriptors recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_after_the_header_timeout_and_requests_keep_answering() {
    let header_timeout = Duration::from_secs(1);
    let (shop, _dir, addr) = shop(
        &[("FLOTILLA_CONNECTIONS__HEADER_READ_TIMEOUT", "1000")],
        None,
    );
    let http = reqwest::Client::new();
    let baseline = healthz_p99(&http, addr, 200).await;
    let fds_before = open_fds(shop.pid());

    let slow: Vec<_> = (0..300)
        .map(|_| tokio::spawn(slowloris(addr, Duration::from_millis(250))))
        .collect();
    eventually(
        "the server accepted the slow connections",
        Duration::from_secs(5),
        || open_fds(shop.pid()) >= fds_before + 250,
    )
    .await;
    let during = healthz_p99(&http, addr, 200).await;
    let mut longest = Duration::ZERO;
    for lived in futures::future::join_all(slow).await {
        let lived = lived.expect("slow client");
        assert!(
            lived >= header_timeout - Duration::from_millis(100),
            "closed before the header timeout: {lived:?}"
        );
        longest = longest.max(lived);
    }
    eprintln!(
        "B5: longest slow connection {longest:?}; healthz p99 {baseline:?} before, {during:?} under 300 slow connections"
    );
    assert!(
        longest <= header_timeout + Duration::from_secs(1),
        "a slow connection lived {longest:?}"
    );
    // p99 ≤ 1.5 × baseline, with 10 ms of room for a shared CI machine's scheduling noise.
    assert!(
        during <= baseline * 3 / 2 + Duration::from_millis(10),
        "healthz p99 {during:?} under slowloris against {baseline:?} before"
    );
    eventually("descriptors recovered", Duration::from_secs(3), || {
        open_fds(shop.pid()) <= fds_before + 2
    })
    .await;
}

/// A request whose body stops arriving is answered 408 after the body timeout (before: 504
/// after the 10 s request timeout), and its connection is closed: problem+json with its request
/// id for the API, the storefront's HTML error page for a page (before: problem+json without
/// a request id for both).
#[tokio::test]
async fn a_stalled_request_body_is_answered_408() {
    let app = spawn_app_with(serde_json::json!({"connections": {"body_read_timeout": 500}})).await;
    let addr = &app.base["http://".len()..];
    let stalled = |head: &'static [u8]| async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        stream.write_all(head).await.expect("send");
        let answer = until_closed(&mut stream).await;
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(2),
            "answered after {took:?}"
        );
        answer
    };

    let answer = stalled(
        b"POST /api/identity/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\":",
    )
    .await;
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.contains("urn:flotilla:problem:request-timeout"),
        "{answer}"
    );
    assert!(answer.contains("\"request_id\":\""), "{answer}");

    let answer = stalled(
        b"POST /login HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nemail=ada",
    )
    .await;
    assert!(answer.contains("content-type: text/html"), "{answer}");
    assert!(answer.contains("took too long"), "{answer}");
    assert!(answer.contains("Log in"), "the shop's own header: {answer}");
}

/// A page whose deadline has run out gets the storefront's HTML error page, whichever process
/// refuses it; the API keeps problem+json (before: 504 problem+json for both, from the edge).
#[tokio::test]
async fn a_lapsed_deadline_is_an_html_page_for_a_page_and_a_problem_for_the_api() {
    let app = spawn_app_with(serde_json::json!({})).await;
    let page = app
        .http
        .get(format!("{}/", app.base))
        .header("x-flotilla-deadline-ms", "0")
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), reqwest::StatusCode::GATEWAY_TIMEOUT);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert!(page.headers().contains_key("content-security-policy"));
    let html = page.text().await.expect("body");
    assert!(html.contains("right back"), "{html}");

    let api = app
        .http
        .get(format!("{}/api/catalog/products", app.base))
        .header("x-flotilla-deadline-ms", "0")
        .send()
        .await
        .expect("api");
    assert_eq!(api.status(), reqwest::StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(api.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = api.json().await.expect("problem");
    assert_eq!(problem["type"], "urn:flotilla:problem:deadline-exceeded");
    assert!(problem["request_id"].is_string(), "{problem}");
}

/// B8, under a lowered file limit: idle keep-alive and silent connections fill the cap, yet a
/// health check still gets in (the connection idle longest makes room) and the idle ones close
/// by their timeout; when every connection is busy the excess gets a clean 503 problem; the
/// busy ones (stalled bodies) get 408 and the process keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_cleanly_and_idle_ones_are_closed() {
    const CAP: usize = 60;
    let (shop, _dir, addr) = shop(
        &[
            ("FLOTILLA_CONNECTIONS__MAX", "60"),
            ("FLOTILLA_CONNECTIONS__IDLE_TIMEOUT", "1500"),
            ("FLOTILLA_CONNECTIONS__BODY_READ_TIMEOUT", "1500"),
        ],
        Some(512),
    );
    let fds_before = open_fds(shop.pid());

    // Half silent, half idle after one keep-alive request: the cap is full.
    let opened = Instant::now();
    let mut idle = Vec::new();
    for i in 0..CAP {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        if i % 2 == 0 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("send");
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.expect("answer");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        }
        idle.push(stream);
    }
    eventually("the cap is full", Duration::from_secs(5), || {
        open_fds(shop.pid()) >= fds_before + CAP
    })
    .await;
    let fresh = reqwest::Client::new();
    let status = fresh
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("healthz gets in with the cap full of idle connections")
        .status();
    assert_eq!(status, 200);
    drop(fresh);
    let closing: Vec<_> = idle
        .into_iter()
        .map(|mut s| tokio::spawn(async move { until_closed(&mut s).await }))
        .collect();
    for closed in futures::future::join_all(closing).await {
        closed.expect("reader");
    }
    let idle_lived = opened.elapsed();
    assert!(
        idle_lived <= Duration::from_millis(1500) + Duration::from_secs(1),
        "idle connections lived {idle_lived:?}"
    );

    // Every connection busy: each request waits for a body that never comes.
    let mut busy = Vec::new();
    for _ in 0..CAP {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(
                b"POST /api/identity/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\nExpect: 100-continue\r\n\r\n",
            )
            .await
            .expect("send");
        // `100 Continue` comes once the handler reads the body: the request is in flight.
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.expect("100 continue");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 100"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        stream
            .write_all(b"{\"email\":")
            .await
            .expect("part of a body");
        busy.push(stream);
    }
    let mut excess = TcpStream::connect(addr).await.expect("connect");
    excess
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let refusal = until_closed(&mut excess).await;
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    assert!(
        refusal.contains("urn:flotilla:problem:too-many-connections"),
        "{refusal}"
    );
    for mut stream in busy {
        let answer = until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let status = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz after the storm")
        .status();
    assert_eq!(status, 200);
    eventually("descriptors recovered", Duration::from_secs(3), || {
        open_fds(shop.pid()) <= fds_before + 2
    })
    .await;
}
