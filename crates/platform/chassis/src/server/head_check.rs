//! The connection as hyper reads it: every byte goes through [`Framing`] first, and a request it
//! refuses never reaches hyper. From the refused request on, hyper reads the end of the stream
//! (once the requests before it have been answered), so it finishes and closes quietly; the
//! accept loop then writes the refusal as problem+json itself ([`super::linger`]). hyper's own
//! shutdown of the connection is held back for that, and when hyper lets go of the connection
//! it is handed back to the accept loop (through a one-shot channel, from `Drop`), which is
//! what lets it close gently: the answer first, then the client's remaining bytes read and
//! discarded, so that the client sees the answer instead of a reset.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};

use super::framing::{Framing, Refusal};
use super::phase::Phase;

/// A connection hyper no longer holds, with the request refused on it, if any.
pub(super) struct Returned<IO> {
    pub(super) io: IO,
    pub(super) refusal: Option<Refusal>,
}

/// `IO` read through a [`Framing`].
pub(super) struct HeadCheck<IO> {
    io: Option<IO>,
    framing: Framing,
    refusal: Option<Refusal>,
    /// Requests that passed before the refused one: hyper must have taken them all.
    before_refusal: u64,
    /// The connection's phase: a refusal waits until its earlier requests are answered.
    phase: watch::Receiver<Phase>,
    answered: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    back: Option<oneshot::Sender<Returned<IO>>>,
}

impl<IO> HeadCheck<IO> {
    /// `io` checked by `framing`; handed back on `back` when dropped.
    pub(super) fn new(
        io: IO,
        framing: Framing,
        phase: watch::Receiver<Phase>,
        back: oneshot::Sender<Returned<IO>>,
    ) -> Self {
        Self {
            io: Some(io),
            framing,
            refusal: None,
            before_refusal: 0,
            phase,
            answered: None,
            back: Some(back),
        }
    }

    /// After a refusal: pending until the requests before it have been taken and answered,
    /// then the end of the stream (hyper, seeing the end, would drop a request still unread).
    fn poll_refused(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let before = self.before_refusal;
        let done = move |p: &Phase| p.started >= before && p.busy == 0;
        if done(&self.phase.borrow()) {
            return Poll::Ready(Ok(()));
        }
        let mut phase = self.phase.clone();
        let answered = self.answered.get_or_insert_with(|| {
            Box::pin(async move {
                let _ = phase.wait_for(done).await;
            })
        });
        answered.as_mut().poll(cx).map(Ok)
    }
}

fn gone() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::NotConnected)
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadCheck<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.refusal.is_some() {
            return this.poll_refused(cx);
        }
        let Some(io) = this.io.as_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let before = buf.filled().len();
        std::task::ready!(Pin::new(io).poll_read(cx, buf))?;
        let Some((at, refusal)) = this.framing.feed(&buf.filled()[before..]) else {
            return Poll::Ready(Ok(()));
        };
        tracing::debug!(status = %refusal.status, detail = %refusal.detail, "request refused before hyper");
        buf.set_filled(before + at);
        this.refusal = Some(refusal);
        this.before_refusal = this.framing.heads();
        if at > 0 {
            // The end of the request before it goes to hyper now; the end of the stream next.
            return Poll::Ready(Ok(()));
        }
        this.poll_refused(cx)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HeadCheck<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.refusal.is_some() {
            // The refusal is still to be written: the accept loop shuts down after it.
            return Poll::Ready(Ok(()));
        }
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Err(gone())),
        }
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(gone())),
        }
    }
    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }
}

impl<IO> Drop for HeadCheck<IO> {
    fn drop(&mut self) {
        if let (Some(io), Some(back)) = (self.io.take(), self.back.take()) {
            let _ = back.send(Returned {
                io,
                refusal: self.refusal.take(),
            });
        }
    }
}
