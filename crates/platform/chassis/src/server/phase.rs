//! A connection's phase (idle, reading a request's headers, busy with requests) as seen from
//! its socket reads and its requests in flight, and the clock that closes it when it overstays.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::ConnectionLimits;

/// Where a connection is: requests in flight, and since when it has been idle or reading a
/// request's headers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Phase {
    pub(super) busy: usize,
    /// Requests hyper has handed to the service since the connection opened.
    pub(super) started: u64,
    reading_head: bool,
    pub(super) since: Instant,
}

impl Phase {
    pub(super) fn idle() -> Self {
        Self {
            busy: 0,
            started: 0,
            reading_head: false,
            since: Instant::now(),
        }
    }
}

/// Resolves when the connection has overstayed: idle too long, or its headers too slow.
pub(super) async fn expiry(
    rx: &mut watch::Receiver<Phase>,
    limits: &ConnectionLimits,
) -> &'static str {
    loop {
        let phase = *rx.borrow_and_update();
        let deadline = match phase {
            Phase { busy: 1.., .. } => None,
            Phase {
                reading_head: true,
                since,
                ..
            } => Some((since + limits.header_read_timeout, "headers too slow")),
            Phase { since, .. } => Some((since + limits.idle_timeout, "idle too long")),
        };
        match deadline {
            None => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            Some((at, why)) => tokio::select! {
                _ = tokio::time::sleep_until(at) => return why,
                changed = rx.changed() => if changed.is_err() {
                    std::future::pending::<()>().await;
                },
            },
        }
    }
}

/// Marks the connection idle again (after a TLS handshake: its first request is still to come).
pub(super) fn idle_again(phase: &watch::Sender<Phase>) {
    phase.send_modify(|p| {
        p.reading_head = false;
        p.since = Instant::now();
    });
}

/// The socket, noting when bytes arrive on an idle connection (a request has begun).
pub(super) struct Watch {
    pub(super) inner: TcpStream,
    pub(super) phase: Arc<watch::Sender<Phase>>,
}

impl AsyncRead for Watch {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.phase.send_if_modified(|p| {
                if p.busy == 0 && !p.reading_head {
                    p.reading_head = true;
                    p.since = Instant::now();
                    true
                } else {
                    false
                }
            });
        }
        result
    }
}

impl AsyncWrite for Watch {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// One request in flight: the connection is busy from its headers until its response has been
/// written (the guard travels in the response body).
pub(super) struct InFlight(Arc<watch::Sender<Phase>>);

impl InFlight {
    pub(super) fn start(phase: Arc<watch::Sender<Phase>>) -> Self {
        phase.send_modify(|p| {
            p.busy += 1;
            p.started += 1;
            p.reading_head = false;
        });
        Self(phase)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|p| {
            p.busy = p.busy.saturating_sub(1);
            if p.busy == 0 {
                p.since = Instant::now();
            }
        });
    }
}
