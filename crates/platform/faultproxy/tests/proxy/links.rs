//! Toxics changed on live connections, and proxies disabled, enabled and deleted.

use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use flotilla_faultproxy::{Toxic, ToxicKind};

use crate::support::{echo, ms, proxy_to, read_all, round_trip};

fn latency(ms: u64) -> Toxic {
    Toxic::new(ToxicKind::Latency {
        latency: ms,
        jitter: 0,
    })
}

#[tokio::test]
async fn a_toxic_added_then_removed_acts_on_a_live_connection() {
    let proxy = proxy_to(echo().await).await;
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert!(round_trip(&mut socket, b"before").await < ms(150));
    proxy.add_toxic(latency(300)).await.expect("add");
    let slowed = round_trip(&mut socket, b"during").await;
    assert!(slowed >= ms(300), "{slowed:?}");
    proxy
        .remove_toxic("latency_downstream")
        .await
        .expect("remove");
    assert!(round_trip(&mut socket, b"after").await < ms(150));
}

#[tokio::test]
async fn removing_a_latency_releases_the_chunk_it_holds() {
    let proxy = proxy_to(echo().await).await;
    proxy.add_toxic(latency(10_000)).await.expect("add");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let start = Instant::now();
    let answer = tokio::spawn(async move {
        round_trip(&mut socket, b"held").await;
    });
    tokio::time::sleep(ms(300)).await;
    proxy
        .remove_toxic("latency_downstream")
        .await
        .expect("remove");
    answer.await.expect("answered");
    let took = start.elapsed();
    assert!(
        took < ms(1500),
        "held {took:?} for a 10 s latency removed at 300 ms"
    );
}

#[tokio::test]
async fn an_update_applies_to_the_data_after_it() {
    let proxy = proxy_to(echo().await).await;
    proxy.add_toxic(latency(100)).await.expect("add");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let rtt = round_trip(&mut socket, b"one").await;
    assert!(rtt >= ms(100) && rtt < ms(300), "{rtt:?}");
    proxy.update_toxic(latency(400)).await.expect("update");
    let rtt = round_trip(&mut socket, b"two").await;
    assert!(rtt >= ms(400) && rtt < ms(700), "{rtt:?}");
}

#[tokio::test]
async fn disabling_closes_connections_and_refuses_new_ones_until_enabled() {
    let proxy = proxy_to(echo().await).await;
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut socket, b"ping").await;
    proxy.set_enabled(false).await.expect("disable");
    let (_, _, _) = tokio::time::timeout(Duration::from_secs(2), read_all(&mut socket))
        .await
        .expect("the connection closed");
    let refused = TcpStream::connect(proxy.addr()).await;
    assert!(refused.is_err(), "a disabled proxy accepted a connection");
    proxy.set_enabled(true).await.expect("enable");
    let mut again = TcpStream::connect(proxy.addr())
        .await
        .expect("same address again");
    round_trip(&mut again, b"ping").await;
}

#[tokio::test]
async fn a_half_closed_connection_still_answers() {
    let proxy = proxy_to(echo().await).await;
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    socket.write_all(b"last words").await.expect("write");
    socket.shutdown().await.expect("shutdown");
    let (data, _, end) = read_all(&mut socket).await;
    end.expect("clean end");
    assert_eq!(data, b"last words");
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client() {
    // A port that was free a moment ago: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let proxy = proxy_to(free).await;
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let (data, _, _) = tokio::time::timeout(Duration::from_secs(2), read_all(&mut socket))
        .await
        .expect("closed");
    assert!(data.is_empty());
}

#[tokio::test]
async fn deleting_the_proxy_closes_its_connections() {
    let proxy = proxy_to(echo().await).await;
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut socket, b"ping").await;
    proxy.fault_proxy().delete("link").await.expect("delete");
    let (_, _, _) = tokio::time::timeout(Duration::from_secs(2), read_all(&mut socket))
        .await
        .expect("closed");
    assert!(TcpStream::connect(proxy.addr()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn toxics_run_on_tokio_time_so_a_paused_test_skips_the_wait() {
    let proxy = proxy_to(echo().await).await;
    proxy.add_toxic(latency(60_000)).await.expect("add");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let wall = Instant::now();
    let start = tokio::time::Instant::now();
    socket.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut socket, &mut back)
        .await
        .expect("answer");
    assert!(start.elapsed() >= Duration::from_secs(60));
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "{:?}",
        wall.elapsed()
    );
}
