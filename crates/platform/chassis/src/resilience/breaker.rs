//! The circuit breaker: stop calling an upstream that is failing, fail fast instead, and find
//! out with a few probes when it has recovered (Resilience4j's `CircuitBreaker` with a
//! count-based window, plus Polly's consecutive-failure trigger).
//!
//! - **Closed**: every call goes through and its outcome is recorded in a sliding window of the
//!   last `window` calls. Once at least `min_calls` are recorded and the failure rate reaches
//!   `failure_rate_percent`, or `consecutive_failures` calls in a row failed, the breaker opens.
//! - **Open**: for `open_wait_ms`, every call fails at once with
//!   [`TransportError::CircuitOpen`] and the upstream is not called.
//! - **Half-open**: from the first call at or after the end of the wait, exactly
//!   `half_open_probes` calls are let through (one more at the same time is rejected). A probe
//!   that has not answered within `probe_timeout_ms` is cut and counts as a failure. All probes
//!   succeeding closes the breaker with an empty window; any probe failing re-opens it with a
//!   fresh wait. A probe the caller abandons gives its slot back.
//!
//! What counts as a failure is [`BreakerConfig::failure_statuses`] (500, 502, 503, 504 by
//! default) and the transport errors that say the upstream is unwell (connect failures and
//! timeouts), and a call cut by the request's deadline when that deadline had given it at least
//! `slow_call_ms` (a silent upstream must open the breaker even when callers' deadlines, not the
//! upstream timeout, are what cut its calls; a client sending a deadline of a few milliseconds
//! must not be able to open it for everyone). A call whose deadline has already passed is
//! refused with `DeadlineExceeded` without being admitted or recorded. A 4xx is the caller's
//! mistake, not the upstream's failure; `NoInstance` and a full bulkhead (`Overloaded`) are not
//! the upstream's doing either; nor is a 504 `deadline-exceeded` problem (marked with
//! `x-flotilla-deadline-exceeded`) that arrives before the request's deadline, which says a
//! shorter deadline ran out further down, where that hop's own breaker counts it (one at the
//! deadline is counted as the deadline's cut would be).
//!
//! Calls to the upstream's control plane (its probes, contract documents and `/admin/` routes,
//! [`crate::control_plane`]) are let through in every state and not recorded: the breaker
//! guards the upstream's work, not the tools that observe and repair it.
//!
//! One breaker guards one upstream, for one calling service ([`super::stack`] keeps them); the
//! instances behind a balanced upstream are guarded one by one by the balancer's outlier
//! ejection (`flotilla_discovery::outlier`), which is Envoy's per-host circuit breaking. A call admitted in one state that
//! ends in another (a slow call that was admitted while closed answering after the breaker
//! opened) is not recorded: only the calls of the current state decide its next one, as in
//! Resilience4j.
//!
//! Why not tower-resilience 0.13's `circuitbreaker` (shared/CRATES.md row 16): its clock is
//! `std::time::Instant`, so the open wait cannot be driven by tokio's paused time in tests; it
//! trips either on a failure rate or on consecutive failures, not both; its count-based window
//! is evaluated only once the whole window is full, not at the minimum number of calls; and it
//! has no probe timeout, so a hung probe holds the breaker half-open for ever. This layer is
//! a few hundred lines with no dependency beyond tokio and tower.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tower::Layer;
use utoipa::ToSchema;

use crate::control_plane;
use crate::transport::gate::{self, Admission, Answer, Gate};
use crate::transport::{Transport, TransportError};

mod config;

pub use config::{BreakerConfig, InvalidBreakerConfig};

/// The state a call would meet now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through and are recorded.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few probe calls go through.
    HalfOpen,
}

/// One breaker's state and counters, as the admin endpoint shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BreakerSnapshot {
    /// The upstream service.
    pub service: String,
    /// The state a call would meet now.
    pub state: BreakerState,
    /// Calls in the sliding window (recorded while closed; kept while open, emptied on closing).
    pub calls_in_window: u32,
    /// Failed calls among them.
    pub failures_in_window: u32,
    /// Failures in a row while closed.
    pub consecutive_failures: u32,
    /// Probe calls let through since the breaker went half-open.
    pub probes_admitted: u32,
    /// Calls failed fast since the breaker was made.
    pub rejected: u64,
    /// Times the breaker opened since it was made.
    pub times_opened: u64,
    /// While open: milliseconds until probes are let through.
    pub half_open_in_ms: Option<u64>,
}

/// One circuit breaker, shared by every clone of the transports it wraps.
#[derive(Debug)]
pub struct Breaker {
    service: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped at every change of state, so an outcome from an earlier state is not recorded.
    generation: u64,
    /// The window's outcomes, oldest first; `true` is a failure.
    outcomes: VecDeque<bool>,
    failures: u32,
    consecutive: u32,
    rejected: u64,
    times_opened: u64,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

impl Breaker {
    /// A closed breaker for calls to `service`.
    pub fn new(service: &str, config: BreakerConfig) -> Result<Arc<Self>, InvalidBreakerConfig> {
        config.validate()?;
        Ok(Arc::new(Self {
            service: service.to_owned(),
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                generation: 0,
                outcomes: VecDeque::with_capacity(config.window as usize),
                failures: 0,
                consecutive: 0,
                rejected: 0,
                times_opened: 0,
            }),
            config,
        }))
    }

    /// The layer that puts this breaker in front of a transport.
    pub fn layer(self: &Arc<Self>) -> BreakerLayer {
        BreakerLayer {
            breaker: Arc::clone(self),
        }
    }

    /// The state and counters now.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = Instant::now();
        let mut inner = self.lock();
        self.refresh(&mut inner, now);
        let (state, probes_admitted, half_open_in_ms) = match inner.phase {
            Phase::Closed => (BreakerState::Closed, 0, None),
            Phase::Open { until } => {
                let left = until.saturating_duration_since(now);
                (BreakerState::Open, 0, Some(ceil_ms(left)))
            }
            Phase::HalfOpen { admitted, .. } => (BreakerState::HalfOpen, admitted, None),
        };
        BreakerSnapshot {
            service: self.service.clone(),
            state,
            calls_in_window: inner.outcomes.len() as u32,
            failures_in_window: inner.failures,
            consecutive_failures: inner.consecutive,
            probes_admitted,
            rejected: inner.rejected,
            times_opened: inner.times_opened,
            half_open_in_ms,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is consistent after every statement that changes it, so a panic elsewhere
        // while the lock was held leaves nothing half-done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An open breaker whose wait is over is half-open.
    fn refresh(&self, inner: &mut Inner, now: Instant) {
        if let Phase::Open { until } = inner.phase
            && now >= until
        {
            inner.phase = Phase::HalfOpen {
                admitted: 0,
                succeeded: 0,
            };
            inner.generation += 1;
        }
    }

    /// Lets a call through at `now` (with the permit that records its outcome) or refuses it.
    fn try_admit(self: &Arc<Self>, now: Instant) -> Option<Permit> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        self.refresh(inner, now);
        let probe = match &mut inner.phase {
            Phase::Closed => false,
            Phase::HalfOpen { admitted, .. } if *admitted < self.config.half_open_probes => {
                *admitted += 1;
                true
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => {
                inner.rejected += 1;
                return None;
            }
        };
        Some(Permit {
            breaker: Arc::clone(self),
            generation: inner.generation,
            probe,
            settled: false,
            budget: None,
            admitted_at: now,
        })
    }

    /// Whether `result` is the upstream's failure (`Some(true)`), its success (`Some(false)`),
    /// or says nothing about it (`None`: not recorded), for a call the request's deadline gave
    /// `budget` (`None`: no deadline) that took `elapsed`.
    fn verdict(
        &self,
        result: &Result<Response<Body>, TransportError>,
        budget: Option<Duration>,
        elapsed: Duration,
    ) -> Option<bool> {
        // A call cut by the request's deadline: the upstream's failure when the deadline gave
        // it a fair chance (`slow_call_ms`), not when the client asked for a few milliseconds.
        let cut_by_the_deadline = || {
            budget
                .is_none_or(|b| b >= Duration::from_millis(self.config.slow_call_ms))
                .then_some(true)
        };
        match result {
            // A 504 saying a deadline ran out. At our own deadline, it is the request's
            // deadline running out in the upstream, as our own cut would have said. Before it,
            // a shorter deadline ran out further down (the upstream's own step timeout on a
            // slow dependency of its own): that hop's breaker counts it, this one does not
            // hold it against the upstream.
            Ok(response)
                if response.status() == StatusCode::GATEWAY_TIMEOUT
                    && response
                        .headers()
                        .contains_key(crate::deadline::DEADLINE_EXCEEDED_MARK) =>
            {
                // The header carries whole milliseconds, so the upstream's clock may run out
                // a little before ours.
                let at_our_deadline = budget.is_some_and(|b| elapsed + DEADLINE_ROUNDING >= b);
                if at_our_deadline {
                    cut_by_the_deadline()
                } else {
                    None
                }
            }
            // A 503 reporting a dependency's failure: that hop's breaker counts it, and every
            // instance of this upstream would answer the same.
            Ok(response)
                if response.status() == StatusCode::SERVICE_UNAVAILABLE
                    && response
                        .headers()
                        .contains_key(crate::problem::DEPENDENCY_FAILED_MARK) =>
            {
                None
            }
            Ok(response) => Some(
                self.config
                    .failure_statuses
                    .contains(&response.status().as_u16()),
            ),
            Err(TransportError::Connect { .. } | TransportError::Timeout(_)) => Some(true),
            Err(TransportError::DeadlineExceeded(_)) => cut_by_the_deadline(),
            // No instance known, our own bulkhead full, another breaker open: not the
            // upstream's doing, either way.
            Err(_) => None,
        }
    }

    fn record(&self, generation: u64, failed: bool) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.generation != generation {
            return;
        }
        match &mut inner.phase {
            Phase::Closed => {
                if inner.outcomes.len() == self.config.window as usize
                    && inner.outcomes.pop_front() == Some(true)
                {
                    inner.failures -= 1;
                }
                inner.outcomes.push_back(failed);
                if failed {
                    inner.failures += 1;
                    inner.consecutive += 1;
                } else {
                    inner.consecutive = 0;
                }
                let calls = inner.outcomes.len() as u64;
                let rate_reached = calls >= u64::from(self.config.min_calls)
                    && u64::from(inner.failures) * 100
                        >= u64::from(self.config.failure_rate_percent) * calls;
                if rate_reached || inner.consecutive >= self.config.consecutive_failures {
                    self.open(inner, Instant::now());
                }
            }
            Phase::HalfOpen { succeeded, .. } => {
                if failed {
                    self.open(inner, Instant::now());
                } else {
                    *succeeded += 1;
                    if *succeeded >= self.config.half_open_probes {
                        inner.phase = Phase::Closed;
                        inner.generation += 1;
                        inner.outcomes.clear();
                        inner.failures = 0;
                        inner.consecutive = 0;
                    }
                }
            }
            Phase::Open { .. } => {}
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.phase = Phase::Open {
            until: now + Duration::from_millis(self.config.open_wait_ms),
        };
        inner.generation += 1;
        inner.times_opened += 1;
        tracing::warn!(service = %self.service, "circuit breaker opened");
    }

    /// A probe abandoned before its outcome was known frees its slot for another.
    fn release_probe(&self, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if let Phase::HalfOpen { admitted, .. } = &mut inner.phase {
            *admitted = admitted.saturating_sub(1);
        }
    }
}

/// How much earlier than ours an upstream's copy of the request's deadline may run out: the
/// header carries whole milliseconds.
const DEADLINE_ROUNDING: Duration = Duration::from_millis(2);

fn ceil_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// One admitted call; records its outcome once, or gives back a probe slot when dropped unused.
pub(crate) struct Permit {
    breaker: Arc<Breaker>,
    generation: u64,
    probe: bool,
    settled: bool,
    /// The time the request's deadline left the call when it was admitted.
    budget: Option<Duration>,
    /// When it was admitted (a probe's timeout runs from then).
    admitted_at: Instant,
}

impl Permit {
    fn settle(mut self, failed: bool) {
        self.settled = true;
        self.breaker.record(self.generation, failed);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.release_probe(self.generation);
        }
    }
}

/// Puts a [`Breaker`] in front of a [`Transport`], giving a `Transport`.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    breaker: Arc<Breaker>,
}

/// A layer with a breaker of its own for calls to `service`.
pub fn layer(service: &str, config: BreakerConfig) -> Result<BreakerLayer, InvalidBreakerConfig> {
    Ok(Breaker::new(service, config)?.layer())
}

impl BreakerLayer {
    /// The breaker this layer applies.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }
}

impl Layer<Transport> for BreakerLayer {
    type Service = Transport;

    fn layer(&self, inner: Transport) -> Transport {
        gate::guard(Arc::clone(&self.breaker), inner)
    }
}

/// The pass of a call through the breaker: a permit that records its outcome, or `None` for a
/// call to the upstream's control plane, let through whatever the state and never recorded.
impl Gate for Arc<Breaker> {
    type Pass = Option<Permit>;

    /// A call to the upstream's probes, contract or admin routes
    /// ([`crate::control_plane`]) goes through even while the breaker is open: they are how an
    /// operator sees and repairs the upstream (an open breaker once refused the very fault API
    /// that would have closed it), and how its health is checked.
    fn admit(
        &self,
        request: &mut Request<Body>,
        at: &Admission,
    ) -> Result<Option<Permit>, TransportError> {
        if at.deadline.is_some_and(|d| d <= at.now) {
            return Err(TransportError::DeadlineExceeded(self.service.clone()));
        }
        if control_plane::is_control_plane(request.uri().path()) {
            return Ok(None);
        }
        let mut permit = self
            .try_admit(at.now)
            .ok_or_else(|| TransportError::CircuitOpen(self.service.clone()))?;
        permit.budget = at.deadline.map(|d| d - at.now);
        Ok(Some(permit))
    }

    /// A probe is cut after `probe_timeout_ms`, so that a hung one cannot hold the breaker
    /// half-open.
    fn cut_at(&self, permit: &Option<Permit>) -> Option<Instant> {
        let permit = permit.as_ref()?;
        permit
            .probe
            .then(|| permit.admitted_at + Duration::from_millis(self.config.probe_timeout_ms))
    }

    fn cut_error(&self, _: &Option<Permit>) -> TransportError {
        TransportError::Timeout(self.service.clone())
    }

    /// A call that says nothing about the upstream is not recorded; a probe's slot is given
    /// back when its permit drops.
    fn settle(&self, permit: Option<Permit>, answer: Answer) -> Answer {
        if let Some(permit) = permit
            && let Some(failed) = self.verdict(&answer, permit.budget, permit.admitted_at.elapsed())
        {
            permit.settle(failed);
        }
        answer
    }
}
