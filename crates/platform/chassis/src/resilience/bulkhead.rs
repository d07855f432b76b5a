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
//! taken in `call` with a non-blocking `try_acquire_owned`, so readiness never holds one.

use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};
use utoipa::ToSchema;

use crate::transport::{Transport, TransportError};

/// The cap of one bulkhead (see the README, "Resilience").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(default)]
pub struct BulkheadConfig {
    /// Calls in flight to the upstream at most; more are refused at once.
    pub max_in_flight: u32,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self { max_in_flight: 64 }
    }
}

/// A [`BulkheadConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead setting max_in_flight: must be between 1 and {MAX_CAP}")]
pub struct InvalidBulkheadConfig;

/// Largest cap accepted (tokio's semaphore holds fewer than `usize::MAX >> 3` permits; a cap
/// this large is no cap anyway).
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
    /// The instance, for a bulkhead kept per instance.
    pub instance: Option<String>,
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
    instance: Option<String>,
    max_in_flight: u32,
    slots: Arc<Semaphore>,
    rejected: AtomicU64,
}

impl Bulkhead {
    /// A bulkhead for calls to `service` (or to one `instance` of it).
    pub fn new(
        service: &str,
        instance: Option<&str>,
        config: BulkheadConfig,
    ) -> Result<Arc<Self>, InvalidBulkheadConfig> {
        config.validate()?;
        Ok(Arc::new(Self::empty(service, instance, &config)))
    }

    fn empty(service: &str, instance: Option<&str>, config: &BulkheadConfig) -> Self {
        Self {
            service: service.to_owned(),
            instance: instance.map(str::to_owned),
            max_in_flight: config.max_in_flight,
            slots: Arc::new(Semaphore::new(config.max_in_flight as usize)),
            rejected: AtomicU64::new(0),
        }
    }

    /// The layer that puts this bulkhead in front of a transport.
    pub fn layer(self: &Arc<Self>) -> BulkheadLayer {
        BulkheadLayer {
            bulkhead: Arc::clone(self),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> BulkheadSnapshot {
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX);
        BulkheadSnapshot {
            service: self.service.clone(),
            instance: self.instance.clone(),
            max_in_flight: self.max_in_flight,
            in_flight: self.max_in_flight.saturating_sub(free),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Puts a [`Bulkhead`] in front of a [`Transport`], giving a `Transport`.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Arc<Bulkhead>,
}

/// A layer with a bulkhead of its own for calls to `service` (use [`Bulkheads`] to keep one per
/// upstream or per instance and see their counters).
pub fn layer(
    service: &str,
    config: BulkheadConfig,
) -> Result<BulkheadLayer, InvalidBulkheadConfig> {
    Ok(Bulkhead::new(service, None, config)?.layer())
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
        BoxCloneSyncService::new(Capped {
            bulkhead: Arc::clone(&self.bulkhead),
            inner,
        })
    }
}

#[derive(Clone)]
struct Capped {
    bulkhead: Arc<Bulkhead>,
    inner: Transport,
}

type Answer = Result<Response<Body>, TransportError>;

impl Service<Request<Body>> for Capped {
    type Response = Response<Body>;
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    /// Always ready: the slot is taken in `call`, so readiness never holds one, and the inner
    /// transport is readied inside the call (while holding the slot: the call is in flight).
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Ok(slot) = Arc::clone(&self.bulkhead.slots).try_acquire_owned() else {
            self.bulkhead.rejected.fetch_add(1, Ordering::Relaxed);
            let refused = TransportError::Overloaded(self.bulkhead.service.clone());
            return Box::pin(std::future::ready(Err(refused)));
        };
        let inner = self.inner.clone();
        Box::pin(async move {
            let response = inner.oneshot(request).await?;
            Ok(response.map(|body| {
                Body::new(HeldUntilEnd {
                    body,
                    slot: Some(slot),
                })
            }))
        })
    }
}

/// A response body that keeps its call's slot until it ends, fails or is dropped.
struct HeldUntilEnd {
    body: Body,
    slot: Option<OwnedSemaphorePermit>,
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

/// Bulkheads by service and instance (`None` for one per service).
type ByKey = BTreeMap<(String, Option<String>), Arc<Bulkhead>>;

/// The bulkheads of one process, one per upstream (or per instance), made on first use with
/// the same cap, so the admin endpoint can list them all.
#[derive(Debug)]
pub struct Bulkheads {
    config: BulkheadConfig,
    bulkheads: Mutex<ByKey>,
}

impl Bulkheads {
    /// An empty registry whose bulkheads get `config`.
    pub fn new(config: BulkheadConfig) -> Result<Self, InvalidBulkheadConfig> {
        config.validate()?;
        Ok(Self {
            config,
            bulkheads: Mutex::new(BTreeMap::new()),
        })
    }

    /// The bulkhead for calls to `service`.
    pub fn get(&self, service: &str) -> Arc<Bulkhead> {
        self.entry(service, None)
    }

    /// The bulkhead for calls to one instance of `service` (e.g. its base URL).
    pub fn get_instance(&self, service: &str, instance: &str) -> Arc<Bulkhead> {
        self.entry(service, Some(instance))
    }

    /// Forgets the bulkhead of an instance that is gone.
    pub fn forget_instance(&self, service: &str, instance: &str) {
        self.lock()
            .remove(&(service.to_owned(), Some(instance.to_owned())));
    }

    /// Every bulkhead's counters, ordered by service and instance.
    pub fn snapshot(&self) -> Vec<BulkheadSnapshot> {
        self.lock().values().map(|b| b.snapshot()).collect()
    }

    fn entry(&self, service: &str, instance: Option<&str>) -> Arc<Bulkhead> {
        let key = (service.to_owned(), instance.map(str::to_owned));
        Arc::clone(
            self.lock()
                .entry(key)
                .or_insert_with(|| Arc::new(Bulkhead::empty(service, instance, &self.config))),
        )
    }

    fn lock(&self) -> MutexGuard<'_, ByKey> {
        // Insertions and removals are single statements: a panic elsewhere leaves the map whole.
        self.bulkheads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
