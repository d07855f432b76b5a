//! The fault proxy out of file descriptors: creating a proxy is answered 503 with a problem that
//! says so (not a 422 that blames the request), and an accept loop that cannot accept backs off
//! instead of spinning, then serves the waiting client once descriptors are free again.
//!
//! Its own test binary, apart from `tests/proxy`: it lowers the process's file limit, which
//! would starve any test running beside it in the same process.
#![cfg(target_os = "linux")]

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use flotilla_faultproxy::{FaultProxy, Limits};

/// The highest descriptor open now, so that a soft limit of it + 1 leaves no room above it.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(2)
}

fn cpu_time() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    micros(usage.user_time()) + micros(usage.system_time())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_is_a_503_and_accept_backs_off() {
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let echo_addr = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let limits = Limits {
        proxies: 100_000,
        ..Limits::default()
    };
    let fault_proxy = FaultProxy::with_limits(limits);
    let link = fault_proxy
        .proxy("link", &echo_addr.to_string())
        .await
        .expect("proxy");
    let stop = CancellationToken::new();
    let api = flotilla_faultproxy::api::start(fault_proxy.clone(), "127.0.0.1:0", stop.clone())
        .await
        .expect("api");
    let http = reqwest::Client::new();
    let create = |n: usize| {
        http.post(format!("http://{api}/proxies"))
            .json(&json!({"name": format!("p{n}"), "upstream": echo_addr.to_string()}))
            .send()
    };
    // One request opens the client's kept-alive connection while descriptors are plenty.
    assert_eq!(create(0).await.expect("send").status(), 201);
    // The client's socket for the link, made now; it connects once descriptors are gone.
    let waiting = tokio::net::TcpSocket::new_v4().expect("socket");

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, highest_fd() + 1, hard).expect("setrlimit");
    let mut refused = None;
    for n in 1..1000 {
        let res = create(n).await.expect("send on the open connection");
        if res.status() != 201 {
            let status = res.status();
            let retry_after = res.headers().get("retry-after").cloned();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            refused = Some((status, retry_after, body));
            break;
        }
    }
    let (status, retry_after, problem) = refused.expect("a proxy refused before 1000");
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:flotilla:problem:out-of-file-descriptors"
    );
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("out of file descriptors"), "{detail}");
    assert!(retry_after.is_some(), "503 without Retry-After");

    // The link's accept now fails for want of a descriptor, again and again: it must wait
    // between tries, not spin a core.
    let mut client = waiting.connect(link.addr()).await.expect("connect");
    let before = cpu_time();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = cpu_time() - before;
    assert!(
        spent < Duration::from_millis(300),
        "{spent:?} of CPU in 1 s while out of descriptors"
    );

    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("setrlimit");
    client.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut back))
        .await
        .expect("served once descriptors are back")
        .expect("read");
    assert_eq!(&back, b"ping");
    stop.cancel();
}
