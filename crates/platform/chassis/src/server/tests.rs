//! The accept loop's drain at shutdown: idle connections close, requests in flight and
//! requests already sent are answered.

use super::*;
use axum::routing::get;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// The drain the hosts rely on: at the stop signal the listener closes, idle keep-alive
/// connections close at once, and a request in flight still gets its answer.
#[tokio::test]
async fn stopping_closes_idle_connections_and_lets_requests_in_flight_finish() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (s, r) = (started.clone(), release.clone());
    let router = Router::new().route("/fast", get(|| async { "ok" })).route(
        "/slow",
        get(move || {
            let (s, r) = (s.clone(), r.clone());
            async move {
                s.notify_one();
                r.notified().await;
                "done"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let server = Server::new(ConnectionLimits::default());
    let serving = tokio::spawn({
        let stop = stop.clone();
        async move { server.serve(listener, router, stop).await }
    });

    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut busy = TcpStream::connect(addr).await.expect("connect");
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    started.notified().await;

    stop.cancel();
    let closed = tokio::time::timeout(Duration::from_secs(2), read_until_closed(&mut idle))
        .await
        .expect("the idle connection closes at the stop");
    assert_eq!(closed, "");
    release.notify_one();
    let answer = tokio::time::timeout(Duration::from_secs(2), read_until_closed(&mut busy))
        .await
        .expect("the request in flight is answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("done"), "{answer}");
    tokio::time::timeout(Duration::from_secs(2), serving)
        .await
        .expect("serve returns once drained")
        .expect("serve task");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

/// SIGTERM under load lost requests: connections still in the accept queue were reset when
/// the listener closed, and one accepted just before the stop was closed before its request
/// was read. Both are answered now, with `Connection: close`.
#[tokio::test]
async fn requests_already_sent_when_the_stop_comes_are_answered() {
    let router = Router::new().route("/fast", get(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Queued in the kernel before anything accepts them, requests already sent.
    let mut queued = Vec::new();
    for _ in 0..3 {
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(b"POST /fast HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n")
            .await
            .expect("send");
        queued.push(client);
    }
    let stop = CancellationToken::new();
    stop.cancel();
    let serving = tokio::spawn({
        let server = Server::new(ConnectionLimits::default());
        async move { server.serve(listener, router, stop).await }
    });
    for mut client in queued {
        let answer = tokio::time::timeout(Duration::from_secs(2), read_until_closed(&mut client))
            .await
            .expect("answered and closed");
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        assert!(
            answer.to_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    tokio::time::timeout(Duration::from_secs(2), serving)
        .await
        .expect("serve returns once drained")
        .expect("serve task");
}

#[tokio::test]
async fn a_request_arriving_just_after_the_stop_is_answered() {
    let router = Router::new().route("/fast", get(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let serving = tokio::spawn({
        let stop = stop.clone();
        let server = Server::new(ConnectionLimits::default());
        async move { server.serve(listener, router, stop).await }
    });
    let mut late = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(50)).await; // accepted, nothing sent yet
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    late.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(2), read_until_closed(&mut late))
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.ends_with("ok"), "{answer}");
    tokio::time::timeout(Duration::from_secs(2), serving)
        .await
        .expect("serve returns once drained")
        .expect("serve task");
}
