//! Each toxic measured on real TCP, on each stream, at toxicity 1 and 0.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use flotilla_faultproxy::{Stream, Toxic, ToxicKind};

use crate::support::{blast, echo, ms, pattern, proxy_to, read_all, round_trip, sink};

const BOTH: [Stream; 2] = [Stream::Upstream, Stream::Downstream];

#[tokio::test]
async fn latency_delays_each_round_trip_on_either_stream() {
    for stream in BOTH {
        let proxy = proxy_to(echo().await).await;
        proxy
            .add_toxic(
                Toxic::new(ToxicKind::Latency {
                    latency: 200,
                    jitter: 0,
                })
                .on(stream),
            )
            .await
            .expect("toxic");
        let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
        for _ in 0..3 {
            let rtt = round_trip(&mut socket, b"ping").await;
            assert!(rtt >= ms(200) && rtt < ms(450), "{stream:?}: {rtt:?}");
        }
    }
}

#[tokio::test]
async fn jitter_spreads_the_latency_within_its_bounds() {
    let proxy = proxy_to(echo().await).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::Latency {
            latency: 200,
            jitter: 100,
        }))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut seen = Vec::new();
    for _ in 0..12 {
        let rtt = round_trip(&mut socket, b"ping").await;
        assert!(rtt >= ms(100) && rtt < ms(400), "{rtt:?}");
        seen.push(rtt);
    }
    let spread = *seen.iter().max().expect("some") - *seen.iter().min().expect("some");
    assert!(
        spread >= ms(30),
        "jitter 100 ms but every delay within 30 ms: {seen:?}"
    );
}

#[tokio::test]
async fn toxicity_zero_never_acts_and_one_always_does() {
    let proxy = proxy_to(echo().await).await;
    proxy
        .add_toxic(
            Toxic::new(ToxicKind::Latency {
                latency: 300,
                jitter: 0,
            })
            .with_toxicity(0.0),
        )
        .await
        .expect("toxic");
    for _ in 0..10 {
        let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
        let rtt = round_trip(&mut socket, b"ping").await;
        assert!(rtt < ms(150), "toxicity 0 acted: {rtt:?}");
    }
    proxy
        .update_toxic(
            Toxic::new(ToxicKind::Latency {
                latency: 300,
                jitter: 0,
            })
            .with_toxicity(1.0),
        )
        .await
        .expect("update");
    for _ in 0..3 {
        let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
        let rtt = round_trip(&mut socket, b"ping").await;
        assert!(rtt >= ms(300), "toxicity 1 did not act: {rtt:?}");
    }
}

#[tokio::test]
async fn toxicity_is_drawn_per_connection() {
    let proxy = proxy_to(echo().await).await;
    proxy
        .add_toxic(
            Toxic::new(ToxicKind::Latency {
                latency: 300,
                jitter: 0,
            })
            .with_toxicity(0.5),
        )
        .await
        .expect("toxic");
    let addr = proxy.addr();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            tokio::spawn(async move {
                let mut socket = TcpStream::connect(addr).await.expect("connect");
                let first = round_trip(&mut socket, b"a").await >= ms(300);
                // The draw holds for the connection's life.
                let second = round_trip(&mut socket, b"b").await >= ms(300);
                assert_eq!(first, second, "the draw changed within a connection");
                first
            })
        })
        .collect();
    let mut slowed = 0;
    for task in tasks {
        slowed += usize::from(task.await.expect("task"));
    }
    // Binomial(40, 0.5): outside 8..=32 has a probability below 1e-4.
    assert!((8..=32).contains(&slowed), "{slowed} of 40 slowed");
}

#[tokio::test]
async fn bandwidth_holds_the_rate_downstream() {
    let proxy = proxy_to(blast(100_000).await).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::Bandwidth { rate: 50 }))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let start = Instant::now();
    let (data, _, end) = read_all(&mut socket).await;
    let took = start.elapsed();
    end.expect("clean end");
    assert_eq!(data, pattern(100_000));
    // 100,000 bytes at 50 KB/s: 2 s, ±20 %.
    assert!(took >= ms(1600) && took <= ms(2400), "{took:?}");
}

#[tokio::test]
async fn bandwidth_holds_the_rate_upstream() {
    let (addr, mut received) = sink().await;
    let proxy = proxy_to(addr).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::Bandwidth { rate: 50 }).on(Stream::Upstream))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let start = Instant::now();
    socket.write_all(&pattern(100_000)).await.expect("write");
    socket.shutdown().await.expect("shutdown");
    let (data, _) = received.recv().await.expect("received");
    let took = start.elapsed();
    assert_eq!(data, pattern(100_000));
    assert!(took >= ms(1600) && took <= ms(2400), "{took:?}");
}

#[tokio::test]
async fn slow_close_delays_the_close_on_either_stream() {
    for stream in BOTH {
        let proxy = proxy_to(echo().await).await;
        proxy
            .add_toxic(Toxic::new(ToxicKind::SlowClose { delay: 500 }).on(stream))
            .await
            .expect("toxic");
        let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
        round_trip(&mut socket, b"ping").await;
        let start = Instant::now();
        socket.shutdown().await.expect("shutdown");
        let (rest, _, end) = read_all(&mut socket).await;
        end.expect("clean end");
        assert!(rest.is_empty());
        let took = start.elapsed();
        assert!(took >= ms(500) && took < ms(1000), "{stream:?}: {took:?}");
    }
}

#[tokio::test]
async fn timeout_stops_the_data_and_closes_after_the_timeout() {
    for stream in BOTH {
        let proxy = proxy_to(echo().await).await;
        proxy
            .add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 300 }).on(stream))
            .await
            .expect("toxic");
        let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
        let start = Instant::now();
        socket.write_all(b"ping").await.expect("write");
        let (data, _, _) = read_all(&mut socket).await;
        let took = start.elapsed();
        assert!(data.is_empty(), "{stream:?}: data passed: {data:?}");
        assert!(took >= ms(300) && took < ms(800), "{stream:?}: {took:?}");
    }
}

#[tokio::test]
async fn timeout_zero_is_a_black_hole_until_removed() {
    let proxy = proxy_to(echo().await).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 0 }))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    socket.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    let waited = tokio::time::timeout(Duration::from_millis(1500), socket.read(&mut buf)).await;
    assert!(waited.is_err(), "a black hole answered: {waited:?}");
    // Toxiproxy closes what its timeout held when the toxic goes; new connections flow.
    proxy
        .remove_toxic("timeout_downstream")
        .await
        .expect("remove");
    let (_, _, _) = tokio::time::timeout(Duration::from_secs(2), read_all(&mut socket))
        .await
        .expect("closed after the toxic went");
    let mut fresh = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert!(round_trip(&mut fresh, b"ping").await < ms(200));
}

#[tokio::test]
async fn reset_peer_resets_the_client_on_either_stream() {
    for stream in BOTH {
        let proxy = proxy_to(echo().await).await;
        proxy
            .add_toxic(Toxic::new(ToxicKind::ResetPeer { timeout: 100 }).on(stream))
            .await
            .expect("toxic");
        let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
        let start = Instant::now();
        socket.write_all(b"ping").await.expect("write");
        let (data, _, end) = read_all(&mut socket).await;
        let took = start.elapsed();
        assert!(data.is_empty(), "{stream:?}: data passed");
        let err = end.expect_err("reset, not a clean end");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset,
            "{stream:?}: {err}"
        );
        assert!(took >= ms(100) && took < ms(600), "{stream:?}: {took:?}");
    }
}

/// A server that answers and closes at once (`blast`) must not let its FIN past a timeout:
/// the client sees nothing, no end either, until the toxic's timer closes the connection.
#[tokio::test]
async fn timeout_holds_the_end_when_the_server_answers_and_closes() {
    let proxy = proxy_to(blast(4).await).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 700 }))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let early = tokio::time::timeout(ms(400), socket.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the server's close passed a timeout: {early:?}"
    );
    let (data, _, _) = tokio::time::timeout(Duration::from_secs(5), read_all(&mut socket))
        .await
        .expect("closed after the timeout");
    let took = start.elapsed();
    assert!(data.is_empty(), "data passed: {data:?}");
    assert!(took >= ms(700) && took < ms(1500), "{took:?}");
}

/// The same with timeout 0: a black hole until the toxic is removed, whoever closes first;
/// and on the upstream stream, the client's FIN does not reach the server either.
#[tokio::test]
async fn timeout_zero_holds_the_end_on_either_stream_until_removed() {
    let proxy = proxy_to(blast(4).await).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 0 }))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut buf = [0u8; 16];
    let held = tokio::time::timeout(ms(800), socket.read(&mut buf)).await;
    assert!(
        held.is_err(),
        "the server's close passed a black hole: {held:?}"
    );
    proxy
        .remove_toxic("timeout_downstream")
        .await
        .expect("remove");
    let (data, _, _) = tokio::time::timeout(Duration::from_secs(2), read_all(&mut socket))
        .await
        .expect("closed once the toxic went");
    assert!(data.is_empty(), "data passed: {data:?}");

    let (addr, mut received) = sink().await;
    let proxy = proxy_to(addr).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 0 }).on(Stream::Upstream))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    socket.write_all(b"ping").await.expect("write");
    socket.shutdown().await.expect("shutdown");
    let seen = tokio::time::timeout(ms(800), received.recv()).await;
    assert!(
        seen.is_err(),
        "the client's close passed a black hole: {seen:?}"
    );
}

/// reset_peer resets even when the server closes first: its FIN arms the reset like data
/// does, and the client sees the reset after the timeout, never a clean end.
#[tokio::test]
async fn reset_peer_resets_even_when_the_server_closes_first() {
    let proxy = proxy_to(blast(4).await).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::ResetPeer { timeout: 300 }))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let start = Instant::now();
    let (data, _, end) = tokio::time::timeout(Duration::from_secs(5), read_all(&mut socket))
        .await
        .expect("an end within 5 s");
    let took = start.elapsed();
    assert!(data.is_empty(), "data passed: {data:?}");
    let err = end.expect_err("reset, not a clean end");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(took >= ms(300) && took < ms(1000), "{took:?}");
}

#[tokio::test]
async fn slicer_delivers_the_data_intact_in_many_reads() {
    let proxy = proxy_to(blast(2_000).await).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::Slicer {
            average_size: 20,
            size_variation: 10,
            delay: 2_000,
        }))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let (data, reads, end) = read_all(&mut socket).await;
    end.expect("clean end");
    assert_eq!(data, pattern(2_000));
    // About 100 slices 2 ms apart; the client may find two in one read now and then.
    assert!(reads >= 30, "{reads} reads");
}

#[tokio::test]
async fn slicer_slices_upstream_too() {
    let (addr, mut received) = sink().await;
    let proxy = proxy_to(addr).await;
    proxy
        .add_toxic(
            Toxic::new(ToxicKind::Slicer {
                average_size: 100,
                size_variation: 0,
                delay: 10_000,
            })
            .on(Stream::Upstream),
        )
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    socket.write_all(&pattern(1_000)).await.expect("write");
    socket.shutdown().await.expect("shutdown");
    let (data, span) = received.recv().await.expect("received");
    assert_eq!(data, pattern(1_000));
    // Ten slices 10 ms apart: the last comes at least 90 ms after the first.
    assert!(span >= ms(85), "{span:?}");
}

#[tokio::test]
async fn limit_data_closes_after_the_limit_downstream() {
    let proxy = proxy_to(blast(10_000).await).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::LimitData { bytes: 1_000 }))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    let (data, _, _) = read_all(&mut socket).await;
    assert_eq!(data, pattern(1_000));
}

#[tokio::test]
async fn limit_data_closes_after_the_limit_upstream() {
    let (addr, mut received) = sink().await;
    let proxy = proxy_to(addr).await;
    proxy
        .add_toxic(Toxic::new(ToxicKind::LimitData { bytes: 1_000 }).on(Stream::Upstream))
        .await
        .expect("toxic");
    let mut socket = TcpStream::connect(proxy.addr()).await.expect("connect");
    // The proxy may close before everything is written.
    let _ = socket.write_all(&pattern(10_000)).await;
    let (data, _) = received.recv().await.expect("received");
    assert_eq!(data, pattern(1_000));
}
