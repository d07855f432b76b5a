//! The bulkhead: at most `max_in_flight` calls to one upstream at a time; one more is refused at
//! once with [`TransportError::Overloaded`], never queued (Hystrix's semaphore isolation). A slow
//! dependency then ties up a bounded share of the caller (its tasks, sockets, memory) and the
//! caller's other work keeps its latency (RELIABILITY.md L4).
//!
//! A call holds its slot until the response body has been read to its end, has failed, or has
//! been dropped, not only until the response head: while the body streams, the upstream's
//! connection and the caller's buffers are still in use, and a dependency that sends its head
//! at once and then trickles the body must be capped too. An error or a caller that drops the
//! call's future gives the slot back at once.
//!
//! Why not tower's `LoadShed` over `ConcurrencyLimit`: `ConcurrencyLimit` takes its permit in
//! `poll_ready` and keeps it in that clone of the service until `call`, so every readied but
//! unused clone (a balancer's ready set, a caller that readies and then waits on something else)
//! holds a slot out of the cap; its permit is given back with the response head, not the body;
//! and `LoadShed` returns tower's boxed `Overloaded`, not a [`TransportError`]. Here the slot is
//! taken in `call`, without blocking, so readiness never holds one.
//!
//! Why a counter of our own ([`Slots`]) rather than tokio's `Semaphore`: nothing ever waits
//! for a slot here (a full bulkhead refuses), so a semaphore's waiter queue is dead weight, and
//! its release takes the queue's lock on every call. A slot is one compare-and-swap on one
//! atomic to take and one atomic subtraction to give back; the cap is exact (a slot is taken
//! only when the count read is below it, so concurrent calls can neither pass the cap nor be
//! refused for a slot that is free).

use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tower::Layer;
use utoipa::ToSchema;

use crate::control_plane;
use crate::transport::gate::{self, Admission, Answer, Gate};
use crate::transport::{Transport, TransportError};

/// The cap of one bulkhead (see the README, "Resilience").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls in flight to the upstream at most; more are refused at once.
    pub max_in_flight: u32,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
        }
    }
}

/// A [`BulkheadConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead setting max_in_flight: must be between 1 and {MAX_CAP}")]
pub struct InvalidBulkheadConfig;

/// Largest cap accepted (a cap this large is no cap anyway).
const MAX_CAP: u32 = 1_000_000;

impl BulkheadConfig {
    /// Checks the cap.
    pub fn validate(&self) -> Result<(), InvalidBulkheadConfig> {
        if self.max_in_flight == 0 || self.max_in_flight > MAX_CAP {
            return Err(InvalidBulkheadConfig);
        }
        Ok(())
    }
}

/// One bulkhead's counters, as the admin endpoint shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BulkheadSnapshot {
    /// The upstream service.
    pub service: String,
    /// The cap.
    pub max_in_flight: u32,
    /// Calls holding a slot now.
    pub in_flight: u32,
    /// Calls refused since the bulkhead was made.
    pub rejected: u64,
}

/// One bulkhead, shared by every clone of the transports it wraps.
#[derive(Debug)]
pub struct Bulkhead {
    service: String,
    max_in_flight: u32,
    slots: Arc<Slots>,
    rejected: AtomicU64,
}

/// At most `cap` slots taken at once, counted with one atomic (see the module's doc): the
/// bulkhead's and the server's load shedding's ([`super::shedding`]).
#[derive(Debug)]
pub(crate) struct Slots {
    taken: AtomicU32,
    cap: u32,
}

impl Slots {
    /// `cap` slots, all free.
    pub(crate) fn new(cap: u32) -> Arc<Self> {
        Arc::new(Self {
            taken: AtomicU32::new(0),
            cap,
        })
    }

    /// A free slot, held until the [`Slot`] drops; `None` when all `cap` are taken.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            if taken >= self.cap {
                return None;
            }
            // The count is the only thing guarded: no memory is handed over with a slot, so
            // relaxed ordering is enough.
            match self.taken.compare_exchange_weak(
                taken,
                taken + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Slot(Arc::clone(self))),
                Err(now) => taken = now,
            }
        }
    }

    /// Slots taken now.
    pub(crate) fn taken(&self) -> u32 {
        self.taken.load(Ordering::Relaxed)
    }
}

/// One slot of a bulkhead or of a server's load shedding, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Bulkhead {
    /// A bulkhead for calls to `service`.
    pub fn new(service: &str, config: BulkheadConfig) -> Result<Arc<Self>, InvalidBulkheadConfig> {
        config.validate()?;
        Ok(Arc::new(Self {
            service: service.to_owned(),
            max_in_flight: config.max_in_flight,
            slots: Slots::new(config.max_in_flight),
            rejected: AtomicU64::new(0),
        }))
    }

    /// The layer that puts this bulkhead in front of a transport.
    pub fn layer(self: &Arc<Self>) -> BulkheadLayer {
        BulkheadLayer {
            bulkhead: Arc::clone(self),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> BulkheadSnapshot {
        BulkheadSnapshot {
            service: self.service.clone(),
            max_in_flight: self.max_in_flight,
            in_flight: self.slots.taken(),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Puts a [`Bulkhead`] in front of a [`Transport`], giving a `Transport`.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Arc<Bulkhead>,
}

/// A layer with a bulkhead of its own for calls to `service`.
pub fn layer(
    service: &str,
    config: BulkheadConfig,
) -> Result<BulkheadLayer, InvalidBulkheadConfig> {
    Ok(Bulkhead::new(service, config)?.layer())
}

impl BulkheadLayer {
    /// The bulkhead this layer applies.
    pub fn bulkhead(&self) -> &Arc<Bulkhead> {
        &self.bulkhead
    }
}

impl Layer<Transport> for BulkheadLayer {
    type Service = Transport;

    fn layer(&self, inner: Transport) -> Transport {
        gate::guard(Arc::clone(&self.bulkhead), inner)
    }
}

/// The pass of a call through the bulkhead: its slot, or `None` for a call to the upstream's
/// control plane, which takes none.
impl Gate for Arc<Bulkhead> {
    type Pass = Option<Slot>;

    /// A call to the upstream's probes, contract or admin routes ([`crate::control_plane`])
    /// neither takes a slot nor is refused: a bulkhead full of slow business calls must not
    /// keep the operator from the upstream's fault API or its health.
    fn admit(
        &self,
        request: &mut Request<Body>,
        _: &Admission,
    ) -> Result<Option<Slot>, TransportError> {
        if control_plane::is_control_plane(request.uri().path()) {
            return Ok(None);
        }
        let slot = self.slots.try_take().ok_or_else(|| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            TransportError::Overloaded(self.service.clone())
        })?;
        Ok(Some(slot))
    }

    /// Never asked: a bulkhead sets no cut-off (its calls are cut by the deadline's).
    fn cut_error(&self, _: &Option<Slot>) -> TransportError {
        TransportError::Timeout(self.service.clone())
    }

    /// The slot is held until the response body ends (see the module's doc).
    fn settle(&self, slot: Option<Slot>, answer: Answer) -> Answer {
        let Some(slot) = slot else { return answer };
        let response = answer?;
        Ok(response.map(|body| Body::new(HeldUntilEnd::new(body, slot))))
    }
}

/// A response body that keeps its call's slot until it ends, fails or is dropped (the gateway's
/// load shedding holds its slots the same way).
pub(crate) struct HeldUntilEnd {
    body: Body,
    slot: Option<Slot>,
}

impl HeldUntilEnd {
    /// `body`, holding `slot` until it ends.
    pub(crate) fn new(body: Body, slot: Slot) -> Self {
        Self {
            body,
            slot: Some(slot),
        }
    }
}

impl HttpBody for HeldUntilEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.body.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            self.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
