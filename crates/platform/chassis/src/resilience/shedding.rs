//! Load shedding at a server's front door: at most `max_in_flight` requests are served at once;
//! one more is answered at once with `503` problem+json (`urn:flotilla:problem:overloaded`) and
//! `Retry-After`, never queued. The gateway runs it in front of everything it serves (RELIABILITY.md
//! L3), and any service can put it in front of its router the same way.
//!
//! Why shed rather than queue: a saturated server that accepts more work than it can finish
//! only makes every request slower (Little's law: at a fixed throughput, latency grows with the
//! number in flight) and its memory grows with the queue, until clients time out on requests
//! that were going to be answered anyway. Refusing the excess at the door, in microseconds and
//! before any work (authentication, routing, upstream calls), keeps the admitted requests at
//! the latency the server has at its capacity, bounds memory, and tells the refused clients
//! when to come back. This is Envoy's overload manager and its `max_requests` circuit breaker:
//! <https://www.envoyproxy.io/docs/envoy/latest/configuration/operations/overload_manager/overload_manager>.
//!
//! Why a fixed limit and not an adaptive one (Netflix's concurrency-limits, Envoy's
//! `adaptive_concurrency` filter): an adaptive limit infers capacity from latency (gradient or
//! Vegas over a measured minimum RTT), which needs periodic windows where the limit is pinned
//! low to re-measure that minimum (Envoy's filter sheds traffic in each of them), converges over
//! many samples, and reads every latency change as a capacity change — a slow dependency or a
//! noisy neighbour on a shared machine moves it as much as real overload. A fixed cap is exact,
//! costs one atomic operation, behaves the same on every run (so the tests here can state
//! figures), and is sized once from a measured capacity: `max_in_flight ≈ throughput at the
//! target latency × that latency`. An adaptive limit can later replace [`Shedding::admit`]
//! without changing the layer, the answer or the counters.
//!
//! Health probes (`/healthz`, `/readyz`, or what the server's own predicate names) are never
//! shed: an orchestrator that saw a busy instance fail its probes would restart it or take it
//! out of rotation, moving its load onto the others and making the overload worse.
//!
//! A request holds its slot until its response body has been sent to the end (or failed, or
//! been dropped), as a bulkhead's call does ([`super::bulkhead`]): a streamed body still holds
//! the upstream call and its buffers. Like the bulkhead, and with the bulkhead's counter of
//! slots (one atomic, [`super::bulkhead`]), the slot is taken in `call` without blocking, not in
//! `poll_ready` as tower's `ConcurrencyLimit` does, so
//! readiness never waits and never holds a slot; tower's `LoadShed` over `ConcurrencyLimit` would
//! also answer an error, not a response the client can act on.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service};
use utoipa::ToSchema;

use super::bulkhead::{HeldUntilEnd, Slot, Slots};
use crate::problem::Problem;

/// The problem slug of a refused request: `urn:flotilla:problem:overloaded`.
pub const OVERLOADED: &str = "overloaded";

/// How much a server serves at once (see the README, "Resilience").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SheddingConfig {
    /// Requests served at once at most; one more is refused at once with 503.
    pub max_in_flight: u32,
    /// Seconds a refused client is told to wait (`Retry-After`).
    pub retry_after_secs: u32,
}

impl Default for SheddingConfig {
    /// 1024 in flight (Envoy's default `max_requests`): with no measured capacity this only
    /// bounds memory, with room for the fleet's own bursts (500 concurrent checkouts, L2);
    /// an operator who has measured the capacity lowers it to keep the latency. `Retry-After: 1`,
    /// as the bulkhead and the breaker answer.
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            retry_after_secs: 1,
        }
    }
}

/// A [`SheddingConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSheddingConfig {
    /// The cap is 0 or absurdly large.
    #[error("shedding setting max_in_flight: must be between 1 and {MAX_CAP}")]
    MaxInFlight,
    /// The advice to wait is 0 or over an hour.
    #[error("shedding setting retry_after_secs: must be between 1 and {MAX_RETRY_AFTER}")]
    RetryAfter,
}

/// Largest cap accepted (the bulkhead's: a cap this large is no cap anyway).
const MAX_CAP: u32 = 1_000_000;
/// Longest `Retry-After` accepted: a client told to come back in more than an hour has been
/// told to go away.
const MAX_RETRY_AFTER: u32 = 3600;
/// While requests are being shed, one warning per this long, not one per refusal: an overload
/// must not also flood the logs.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl SheddingConfig {
    /// Checks both settings.
    pub fn validate(&self) -> Result<(), InvalidSheddingConfig> {
        if self.max_in_flight == 0 || self.max_in_flight > MAX_CAP {
            return Err(InvalidSheddingConfig::MaxInFlight);
        }
        if self.retry_after_secs == 0 || self.retry_after_secs > MAX_RETRY_AFTER {
            return Err(InvalidSheddingConfig::RetryAfter);
        }
        Ok(())
    }
}

/// The counters an operator reads (the gateway shows them in its `/healthz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SheddingSnapshot {
    /// The cap.
    pub max_in_flight: u32,
    /// Requests holding a slot now.
    pub in_flight: u32,
    /// Requests refused since the server started.
    pub shed: u64,
}

/// `/healthz` and `/readyz`: the probes a server answers at its root.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// One server's admission: its slots and counters, shared by every clone of its layer.
#[derive(Debug)]
pub struct Shedding {
    server: &'static str,
    config: SheddingConfig,
    slots: Arc<Slots>,
    shed: AtomicU64,
    exempt: fn(&str) -> bool,
    started: Instant,
    /// Milliseconds after `started` of the last warning, `u64::MAX` before the first.
    warned_at_ms: AtomicU64,
}

impl Shedding {
    /// Admission for `server` (named in refusals and logs), exempting the paths `exempt`
    /// accepts (its probes: [`is_probe`] for a service).
    pub fn new(
        server: &'static str,
        config: SheddingConfig,
        exempt: fn(&str) -> bool,
    ) -> Result<Arc<Self>, InvalidSheddingConfig> {
        config.validate()?;
        Ok(Arc::new(Self {
            server,
            slots: Slots::new(config.max_in_flight),
            config,
            shed: AtomicU64::new(0),
            exempt,
            started: Instant::now(),
            warned_at_ms: AtomicU64::new(u64::MAX),
        }))
    }

    /// The layer that puts this admission in front of a router.
    pub fn layer(self: &Arc<Self>) -> SheddingLayer {
        SheddingLayer {
            shedding: Arc::clone(self),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &SheddingConfig {
        &self.config
    }

    /// The counters now.
    pub fn snapshot(&self) -> SheddingSnapshot {
        SheddingSnapshot {
            max_in_flight: self.config.max_in_flight,
            in_flight: self.slots.taken(),
            shed: self.shed.load(Ordering::Relaxed),
        }
    }

    /// A slot for one request, or `None` when every slot is taken (the refusal is counted).
    pub fn admit(&self) -> Option<Slot> {
        match self.slots.try_take() {
            Some(slot) => Some(slot),
            None => {
                let shed = self.shed.fetch_add(1, Ordering::Relaxed) + 1;
                self.warn_now_and_then(shed);
                None
            }
        }
    }

    /// The answer to a refused request.
    fn refusal(&self) -> Response<Body> {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            OVERLOADED,
            format!(
                "the {} is serving as many requests as it can; try again in {} s",
                self.server, self.config.retry_after_secs
            ),
        )
        .with_retry_after(self.config.retry_after_secs)
        .into_response()
    }

    /// Logs the overload at most once per [`WARN_EVERY`].
    fn warn_now_and_then(&self, shed: u64) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.warned_at_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .warned_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                server = self.server,
                max_in_flight = self.config.max_in_flight,
                shed_total = shed,
                "at capacity: refusing requests with 503 overloaded"
            );
        }
    }
}

/// Puts a [`Shedding`] in front of a service (an axum router: `router.layer(shedding.layer())`).
#[derive(Debug, Clone)]
pub struct SheddingLayer {
    shedding: Arc<Shedding>,
}

impl<S> Layer<S> for SheddingLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            shedding: Arc::clone(&self.shedding),
            inner,
        }
    }
}

/// A service behind a [`Shedding`].
#[derive(Debug, Clone)]
pub struct Shed<S> {
    shedding: Arc<Shedding>,
    inner: S,
}

impl<S, B> Service<Request<B>> for Shed<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    /// The inner service's readiness. A router's reserves nothing, so a refused request may
    /// leave it unused; a service whose readiness holds capacity (tower's `ConcurrencyLimit`)
    /// does not belong under this layer.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if (self.shedding.exempt)(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let Some(slot) = self.shedding.admit() else {
            return Box::pin(std::future::ready(Ok(self.shedding.refusal())));
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Body::new(HeldUntilEnd::new(body, slot))))
        })
    }
}

#[cfg(test)]
mod tests;
