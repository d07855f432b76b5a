//! The one accept loop every Flotilla listener runs (`run`'s gateway, each `serve` listener, the
//! test kit's), so that no connection can hold a file descriptor for ever.
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no cap on open connections:
//! 19,950 idle sockets once used up a process's 20,000 descriptors and every service stopped
//! answering. Here each connection is watched through what it does: bytes read while idle start
//! the *header* clock (a request must arrive whole within `header_read_timeout`, which closes
//! slowloris connections); a connection with no request in flight is closed after
//! `idle_timeout`; a request body that has not arrived `body_read_timeout` after its headers is
//! answered 408. A per-process semaphore caps open connections: when it is full, the connection
//! that has been idle longest is closed to make room, and when every connection is busy the
//! newcomer gets a 503 problem and is closed. Shutdown stops accepting (and takes the
//! connections still queued in the kernel), serves requests that arrive within
//! [`DRAIN_GRACE`] with `Connection: close`, then closes idle connections and lets in-flight
//! requests finish: a request a client has sent is answered, not reset.
//!
//! API: [`Server::new`] with the [`ConnectionLimits`] (one per process: the cap is shared by its
//! listeners), then [`Server::serve`] with a bound listener, a router and a stop token. This is
//! the seam where TLS or a simulated network would plug in.

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::problem::Problem;

mod framing;
mod head_check;
#[cfg(test)]
mod hostile_clients;
mod linger;
mod phase;
mod requests;
mod tls;

pub use crate::layers::BodyTimeout;
use framing::{Framing, HeadLimits};
use head_check::{HeadCheck, Returned};
pub use linger::{LINGER_BYTES, LINGER_TIME};
use phase::{Phase, Watch, expiry};
use requests::Requests;
pub use tls::{ArrivedOverTls, TlsError, TlsSettings};
pub use tokio_rustls::TlsAcceptor;

/// Connection limits of every listener in a process (`[connections]` in the configuration).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct ConnectionLimits {
    /// Longest a request's headers may take to arrive, from its first byte (ms).
    #[serde(with = "crate::layers::millis")]
    pub header_read_timeout: Duration,
    /// Longest a connection may stay open with no request in flight (ms): between keep-alive
    /// requests, or before a silent client sends anything.
    #[serde(with = "crate::layers::millis")]
    pub idle_timeout: Duration,
    /// Longest a request body may take to arrive, from the end of its headers (ms); a request
    /// whose body is late is answered 408.
    #[serde(with = "crate::layers::millis")]
    pub body_read_timeout: Duration,
    /// Most connections open at once across the process's listeners.
    pub max: usize,
    /// Longest request target an HTTP/1 request may have (bytes); 414 above it.
    pub max_uri_bytes: usize,
    /// Largest HTTP/1 request head, request line and headers (bytes); 431 above it (and above
    /// 100 header fields, hyper's own cap).
    pub max_head_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            // Above the HTTP pool's 30 s, so that callers drop idle connections before we do.
            idle_timeout: Duration::from_secs(60),
            // Below the 10 s request timeout, so a stalled body gets its own answer (408).
            body_read_timeout: Duration::from_secs(5),
            max: 10_000,
            // Above the longest paths the tests echo back (20 KB), below hyper's own 64 KiB so
            // that the refusal is ours (problem+json); nginx stops at 8 KiB.
            max_uri_bytes: 32 * 1024,
            // Far above a browser's head with every cookie set, far below hyper's 400 KiB.
            max_head_bytes: 64 * 1024,
        }
    }
}

/// Serves routers on listeners under one set of [`ConnectionLimits`]. Clones share the cap.
#[derive(Clone)]
pub struct Server {
    limits: ConnectionLimits,
    open: Arc<Semaphore>,
    /// Every open connection, by id: the cap closes the one idle longest to make room.
    open_connections: Arc<Mutex<HashMap<u64, Watched>>>,
    next_id: Arc<AtomicU64>,
    /// Refusals being written: bounded, so that refusing cannot use up descriptors either.
    refusing: Arc<Semaphore>,
}

/// What the cap needs to know of an open connection.
struct Watched {
    phase: watch::Receiver<Phase>,
    evict: CancellationToken,
}

impl Server {
    /// A server enforcing `limits`.
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            open: Arc::new(Semaphore::new(limits.max.max(1))),
            open_connections: Arc::default(),
            next_id: Arc::default(),
            refusing: Arc::new(Semaphore::new(32)),
        }
    }

    /// The limits this server enforces.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Accepts connections on `listener` and serves `router` on them until `stop` is
    /// cancelled; then stops accepting, closes idle connections and returns once the requests
    /// in flight have been answered. Dropping the future closes every connection at once.
    pub async fn serve(&self, listener: TcpListener, router: Router, stop: CancellationToken) {
        self.serve_with(listener, router, stop, None).await;
    }

    /// [`Server::serve`], with TLS when `tls` is given (HTTP/2 or HTTP/1.1 by ALPN); requests
    /// then carry the [`ArrivedOverTls`] extension.
    pub async fn serve_with(
        &self,
        listener: TcpListener,
        router: Router,
        stop: CancellationToken,
        tls: Option<TlsAcceptor>,
    ) {
        let mut connections = JoinSet::new();
        let closing = CancellationToken::new();
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of descriptors (EMFILE) or similar: the pending connection stays in
                    // the backlog; try again shortly instead of spinning.
                    tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(permit) = self.admit().await else {
                self.refuse(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let router = router.clone();
            let closing = closing.clone();
            let tls = tls.clone();
            connections.spawn(async move {
                server.connection(stream, router, closing, tls).await;
                drop(permit);
            });
        }
        closing.cancel();
        // Connections the kernel has completed but we had not accepted yet carry requests
        // already sent: closing the listener would reset them unanswered. They are taken and
        // served like the others (each answered with `Connection: close`).
        for stream in backlog(listener) {
            let server = self.clone();
            let router = router.clone();
            let closing = closing.clone();
            let tls = tls.clone();
            connections.spawn(async move { server.connection(stream, router, closing, tls).await });
        }
        while connections.join_next().await.is_some() {}
    }

    /// A permit for one more connection: free, or made by closing the connection idle longest.
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.open.clone().try_acquire_owned() {
            return Some(permit);
        }
        let victim = {
            let open = self
                .open_connections
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            open.values()
                .filter(|w| w.phase.borrow().busy == 0)
                .min_by_key(|w| w.phase.borrow().since)
                .map(|w| w.evict.clone())
        };
        victim?.cancel();
        tokio::time::timeout(Duration::from_secs(1), self.open.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Answers 503 (a problem, `Connection: close`) to a connection over the cap.
    fn refuse(&self, mut stream: TcpStream) {
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            return; // dropping closes it
        };
        tracing::warn!(
            max = self.limits.max,
            "connection refused: too many open connections"
        );
        tokio::spawn(async move {
            let problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-connections",
                "this instance has as many open connections as it accepts; try again shortly",
            );
            let answer = linger::raw_answer(&problem, "retry-after: 1\r\n");
            let refusal = async {
                stream.write_all(&answer).await?;
                stream.shutdown().await?;
                // Read what the client sent until it closes, so our close is a FIN the client
                // reads after the answer, not a reset that destroys it.
                let mut sink = [0u8; 1024];
                while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
                Ok::<_, std::io::Error>(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), refusal).await;
            drop(permit);
        });
    }

    /// Serves one connection until it ends, expires, is evicted or the listener stops; then,
    /// unless it overstayed or was evicted, closes it gently ([`linger`]), writing first the
    /// refusal of a request [`framing`] turned away.
    async fn connection(
        &self,
        stream: TcpStream,
        router: Router,
        closing: CancellationToken,
        tls: Option<TlsAcceptor>,
    ) {
        let (phase_tx, phase_rx) = watch::channel(Phase::idle());
        let phase = Arc::new(phase_tx);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evict = CancellationToken::new();
        self.open_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Watched {
                    phase: phase_rx.clone(),
                    evict: evict.clone(),
                },
            );
        let peer = stream.peer_addr().ok();
        let watched = Watch {
            inner: stream,
            phase: phase.clone(),
        };
        let limits = HeadLimits {
            uri_bytes: self.limits.max_uri_bytes,
            head_bytes: self.limits.max_head_bytes,
        };
        let connection = Connection {
            router,
            peer,
            phase,
            phase_rx,
            closing,
            evict,
        };
        match tls {
            None => {
                self.run(watched, Framing::new(limits), false, connection)
                    .await
            }
            Some(acceptor) => {
                // On the header clock: the first byte of the handshake started it.
                let mut rx = connection.phase_rx.clone();
                let accepted = tokio::select! {
                    accepted = acceptor.accept(watched) => accepted.ok(),
                    _ = connection.evict.cancelled() => None,
                    why = expiry(&mut rx, &self.limits) => {
                        tracing::debug!(why, "TLS handshake unfinished; connection closed");
                        None
                    }
                };
                if let Some(stream) = accepted {
                    phase::idle_again(&connection.phase);
                    let framing = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        Framing::blind(limits)
                    } else {
                        Framing::new(limits)
                    };
                    self.run(stream, framing, true, connection).await;
                }
            }
        }
        self.open_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Serves `io` (the socket, or TLS over it) through hyper, then closes it, gently when the
    /// client may still be sending.
    async fn run<IO>(&self, io: IO, framing: Framing, tls: bool, connection: Connection)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            router,
            peer,
            phase,
            phase_rx,
            closing,
            evict,
        } = connection;
        let (back, mut returned) = oneshot::channel();
        let io = TokioIo::new(HeadCheck::new(io, framing, phase_rx.clone(), back));
        let unread_body = Arc::new(AtomicBool::new(false));
        let service = TowerToHyperService::new(Requests {
            router,
            peer,
            phase,
            body_read_timeout: self.limits.body_read_timeout,
            closing: closing.clone(),
            unread_body: unread_body.clone(),
            tls,
        });
        let ended = self.drive(io, service, phase_rx, &closing, &evict).await;
        // hyper has let go of the connection (dropping it handed it back), unless an upgrade
        // took it elsewhere. It is closed gently when the client may still be sending: after a
        // refusal, an answer given before the body was read, or hyper's own error answer.
        if let Ok(Returned { io, refusal }) = returned.try_recv()
            && (refusal.is_some()
                || ended == Ended::Failed
                || (ended == Ended::Closed && unread_body.load(Ordering::Relaxed)))
        {
            tokio::select! {
                () = linger::linger(io, refusal) => {}
                _ = evict.cancelled() => {}
            }
        }
    }

    /// Runs hyper on `io` until the connection ends, overstays or is evicted.
    async fn drive<IO>(
        &self,
        io: TokioIo<IO>,
        service: TowerToHyperService<Requests>,
        mut rx: watch::Receiver<Phase>,
        closing: &CancellationToken,
        evict: &CancellationToken,
    ) -> Ended
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The header clock is ours (it starts at a request's first byte, not when the
        // connection goes idle), so hyper's own is off.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        let grace = tokio::time::sleep(Duration::MAX);
        tokio::pin!(grace);
        let mut graceful = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    return match result {
                        Ok(()) => Ended::Closed,
                        Err(e) => {
                            tracing::debug!(error = %e, "connection ended with an error");
                            Ended::Failed
                        }
                    };
                }
                // Not closed at once: a request may be on the wire (a connection just
                // accepted has one coming for sure). For DRAIN_GRACE every request is still
                // served, answered with `Connection: close`; then the connection is shut down
                // gracefully (closed when idle, after its requests in flight otherwise).
                _ = closing.cancelled(), if !draining => {
                    draining = true;
                    grace.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
                }
                () = grace.as_mut(), if draining && !graceful => {
                    graceful = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = evict.cancelled() => {
                    tracing::debug!("idle connection closed to make room for a new one");
                    return Ended::Cut;
                }
                why = expiry(&mut rx, &self.limits) => {
                    tracing::debug!(why, "connection closed");
                    return Ended::Cut;
                }
            }
        }
    }
}

/// What serving one connection needs besides its socket.
struct Connection {
    router: Router,
    /// The client's address (for `ConnectInfo`).
    peer: Option<std::net::SocketAddr>,
    phase: Arc<watch::Sender<Phase>>,
    phase_rx: watch::Receiver<Phase>,
    closing: CancellationToken,
    evict: CancellationToken,
}

/// How a connection's hyper ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// hyper closed it (the client closed, or an answer said `Connection: close`).
    Closed,
    /// hyper failed on it (it may have answered a malformed request itself).
    Failed,
    /// Overstayed or evicted: closed at once.
    Cut,
}

/// How long a connection is still served after the stop signal, for requests already on their
/// way; each is answered with `Connection: close`.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// The connections waiting in `listener`'s accept queue, taken without waiting; the listener is
/// closed afterwards.
fn backlog(listener: TcpListener) -> Vec<TcpStream> {
    let Ok(listener) = listener.into_std() else {
        return Vec::new();
    };
    let mut waiting = Vec::new();
    // The std listener is non-blocking (tokio set it so): accept ends with WouldBlock.
    while let Ok((stream, _)) = listener.accept() {
        let stream = stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream));
        if let Ok(stream) = stream {
            let _ = stream.set_nodelay(true);
            waiting.push(stream);
        }
    }
    waiting
}

/// Pending connections a listener queues before the kernel drops new ones (std binds with 128,
/// which a burst of a few hundred connections overflowed: their SYNs were retried after 1 s).
pub const BACKLOG: i32 = 1024;

/// A listening socket on `addr` with a [`BACKLOG`]-deep queue (`SO_REUSEADDR` set, as std does).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

#[cfg(test)]
mod tests;
