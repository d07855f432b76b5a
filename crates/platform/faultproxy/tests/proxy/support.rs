//! Upstreams started by the tests, and timing helpers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use flotilla_faultproxy::{FaultProxy, Proxy};

/// An echo server: answers every byte, closes its side when the client closes its own.
pub async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A server that sends `n` bytes (0, 1, 2, … mod 251) to each client, then closes.
pub async fn blast(n: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = socket.write_all(&pattern(n)).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

/// The bytes [`blast`] sends.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A server that reads each client to its end and reports what it received and when the
/// first and last bytes came.
pub async fn sink() -> (SocketAddr, mpsc::UnboundedReceiver<(Vec<u8>, Duration)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut all = Vec::new();
                let mut buf = vec![0u8; 65536];
                let mut first = None;
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            first.get_or_insert_with(Instant::now);
                            all.extend_from_slice(&buf[..n]);
                        }
                    }
                }
                let span = first.map(|f| f.elapsed()).unwrap_or_default();
                let _ = tx.send((all, span));
            });
        }
    });
    (addr, rx)
}

/// A fault proxy with one proxy named `link` to `upstream`.
pub async fn proxy_to(upstream: SocketAddr) -> Proxy {
    FaultProxy::new()
        .proxy("link", &upstream.to_string())
        .await
        .expect("proxy")
}

/// Sends `msg` and reads the same number of bytes back; the round trip's duration.
pub async fn round_trip(socket: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    socket.write_all(msg).await.expect("write");
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(10), socket.read_exact(&mut back))
        .await
        .expect("answer within 10 s")
        .expect("read");
    assert_eq!(back, msg);
    start.elapsed()
}

/// Reads to the end; the bytes, the number of reads, and how it ended.
pub async fn read_all(socket: &mut TcpStream) -> (Vec<u8>, usize, std::io::Result<()>) {
    let mut all = Vec::new();
    let mut reads = 0;
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) => return (all, reads, Ok(())),
            Ok(n) => {
                reads += 1;
                all.extend_from_slice(&buf[..n]);
            }
            Err(e) => return (all, reads, Err(e)),
        }
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
