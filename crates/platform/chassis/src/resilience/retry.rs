//! Retries with Envoy's and Linkerd's semantics: a failed call is repeated only when repeating
//! is safe and likely to help, never past the request's deadline, and never beyond a retry
//! budget, so that retries cannot multiply the load on an upstream that is already failing.
//!
//! - **Safe to repeat**: `GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`, or a `POST` carrying an
//!   `Idempotency-Key` (the callee replays its first answer); any request that provably never
//!   reached the upstream (the connection was refused or could not be made).
//! - **Worth repeating**: a connect error, a connection reset or broken exchange, a per-call
//!   timeout, or a `502`, `503` or `504` answer. Never a `500` (the upstream ran and failed; it
//!   would fail again), never a `4xx`, never the request's deadline running out.
//! - **How often**: at most `max_retries` (2) times, after a full-jitter exponential backoff —
//!   a delay drawn uniformly from `[0, min(cap, base·2^n)]` before retry `n` (0-based; AWS
//!   Architecture Blog, "Exponential Backoff and Jitter", 2015) — and only when the backoff plus
//!   the time the failed attempt took still fits before the deadline.
//! - **Per try**: an attempt of a read (`GET`, `HEAD`, `OPTIONS`, or a `POST` query its client
//!   marked `ReadOnly`) is cut after `try_timeout_ms` (2 000; Envoy's `per_try_timeout`), or,
//!   while a retry is left, after a third of the time left before the deadline if sooner,
//!   so that an instance that has stopped answering (frozen, or its host partitioned) costs a
//!   read one try, not its whole deadline: the cut is a timeout, repeated on another instance. A
//!   write is never cut by it (only by its deadline and the upstream's timeout), even one safe
//!   to repeat: a slow write is usually doing its work, and cutting it would have the upstream
//!   do the work, then answer the repeat "in progress" or do it again (a checkout under load
//!   cut after 2 s ran into its own idempotency key until its deadline).
//! - **Budget**: per upstream, Finagle's `RetryBudget` with the semantics of tower's
//!   `TpsBudget` (every request deposits, a retry withdraws; defaults ttl 10 s, 10 retries/s
//!   floor, 20 % extra), written without a lock (`retry/budget.rs` says why). Over any `ttl`
//!   window, retries ≤ `percent` × requests + `min_per_sec` × `ttl`.
//! - **Bodies** must be replayed, so a request body is buffered when its size is known and at
//!   most `max_body_bytes` (64 KiB: `ServiceClient`'s JSON bodies always are); a larger or
//!   streamed body is sent once, never retried.
//!
//! Each attempt of a call whose body can be replayed is handed to the transport beneath with a
//! [`RetryAttempt`] in scope ([`RetryAttempt::current`]): its number (0 for the first) and the
//! call's [`TriedInstances`], which a balancing transport reads and writes as it is called, so
//! that a retry goes to another instance than the ones already tried, when there is one. In
//! scope around the hand-over (the transport's `Service::call`, where every Flotilla transport
//! picks its instance) rather than carried as a request extension: an extension cost a map, two
//! allocations and a hash on every call, and can never reach a callee this way. A layer that
//! hands a request on later than it got it (an injected delay) carries the attempt over with
//! [`RetryAttempt::scope`].
//!
//! The first attempt is started in `Service::call`, in the caller's task, when the request has
//! no body to read first (a `GET`): the transport wrapped is then called by reference, and
//! cloned only for a retry.

use axum::body::{Body, HttpBody};
use axum::http::request::Parts;
use axum::http::{Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};
use utoipa::ToSchema;

use crate::request_context;
use crate::transport::client::{IDEMPOTENCY_KEY, ReadOnly};
use crate::transport::gate::Admission;
use crate::transport::{Transport, TransportError};

/// What a call ends with.
type Answer = Result<Response<Body>, TransportError>;

mod budget;

use budget::Budget;

// The attempt handed to the transport lives with the transport, which reads it (the balancer,
// the faulted transport): this layer only makes it.
pub use crate::transport::attempt::{RetryAttempt, TriedInstances};

/// The retry policy for one upstream. Every field has a default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt (2; at most 10).
    pub max_retries: u32,
    /// Backoff base in ms: retry `n` waits up to `base·2^n` (25).
    pub base_ms: u64,
    /// Longest backoff in ms (250).
    pub cap_ms: u64,
    /// Largest request body buffered for replay, in bytes (65 536); larger bodies are sent once.
    pub max_body_bytes: usize,
    /// Longest wait for one attempt of a read (`GET`, `HEAD`, `OPTIONS`), in ms, after which it
    /// is repeated (2 000; 0: none, attempts are then bounded only by the deadline and the
    /// upstream's timeout). Writes are never cut by it.
    pub try_timeout_ms: u64,
    /// The retry budget.
    pub budget: BudgetConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_ms: 25,
            cap_ms: 250,
            max_body_bytes: 64 * 1024,
            try_timeout_ms: 2_000,
            budget: BudgetConfig::default(),
        }
    }
}

/// Finagle's retry budget, with the bounds tower's `TpsBudget` takes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// How long a request's deposit counts, in seconds (10; 1 to 60).
    pub ttl_secs: u64,
    /// Retries allowed per second whatever the traffic, so a quiet client can still retry (10).
    pub min_per_sec: u32,
    /// Retries allowed as a share of requests, on top of the floor (0.2, i.e. 20 %; 0 to 1000).
    pub percent: f32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 10,
            min_per_sec: 10,
            percent: 0.2,
        }
    }
}

/// A retry policy that cannot work (the budget's bounds are Finagle's and tower's `TpsBudget`'s).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid retry policy: {0}")]
pub struct InvalidRetryConfig(pub &'static str);

impl RetryConfig {
    /// Checks the policy.
    pub fn validate(&self) -> Result<(), InvalidRetryConfig> {
        let invalid = |why| Err(InvalidRetryConfig(why));
        if self.max_retries > 10 {
            return invalid("max_retries must be at most 10");
        }
        if self.base_ms == 0 || self.cap_ms < self.base_ms {
            return invalid("base_ms must be positive and cap_ms at least base_ms");
        }
        if u128::from(self.try_timeout_ms) > crate::deadline::MAX_INCOMING.as_millis() {
            return invalid("try_timeout_ms must be at most 300000 (0 for none)");
        }
        if !(1..=60).contains(&self.budget.ttl_secs) {
            return invalid("budget.ttl_secs must be between 1 and 60");
        }
        if !(self.budget.percent.is_finite() && (0.0..=1000.0).contains(&self.budget.percent)) {
            return invalid("budget.percent must be between 0 and 1000");
        }
        if self.budget.min_per_sec >= i32::MAX as u32 {
            return invalid("budget.min_per_sec is too large");
        }
        Ok(())
    }

    /// The longest backoff before retry `retry` (0-based): `min(cap, base·2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let ms = self
            .base_ms
            .saturating_mul(1u64.checked_shl(retry).unwrap_or(u64::MAX))
            .min(self.cap_ms);
        Duration::from_millis(ms)
    }

    /// A backoff before retry `retry`, drawn uniformly from `[0, backoff_ceiling(retry)]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.backoff_ceiling(retry).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::random_range(0..=ceiling))
    }
}

/// Retries calls to `service` under `config`, with a budget of its own: make one layer per
/// upstream (every transport it wraps shares the budget).
pub fn layer(service: &str, config: &RetryConfig) -> Result<RetryLayer, InvalidRetryConfig> {
    config.validate()?;
    let budget = Budget::new(
        Duration::from_secs(config.budget.ttl_secs),
        config.budget.min_per_sec,
        config.budget.percent,
    );
    Ok(RetryLayer {
        policy: Arc::new(Policy {
            service: service.to_owned(),
            config: config.clone(),
            budget,
            counters: Counters::default(),
        }),
    })
}

/// The layer [`layer`] makes.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Arc<Policy>,
}

impl RetryLayer {
    /// What this layer has done so far.
    pub fn stats(&self) -> RetryStats {
        let c = &self.policy.counters;
        RetryStats {
            calls: c.calls.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            refused_by_budget: c.refused_by_budget.load(Ordering::Relaxed),
        }
    }
}

/// The counters of one retry layer, as the admin endpoint shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetryStats {
    /// Calls made through the layer (first attempts).
    pub calls: u64,
    /// Retries sent.
    pub retries: u64,
    /// Retries that were worth making but that the budget refused.
    pub refused_by_budget: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    retries: AtomicU64,
    refused_by_budget: AtomicU64,
}

#[derive(Debug)]
struct Policy {
    service: String,
    config: RetryConfig,
    budget: Budget,
    counters: Counters,
}

impl Layer<Transport> for RetryLayer {
    type Service = Transport;

    fn layer(&self, inner: Transport) -> Transport {
        let policy = self.policy.clone();
        // The first attempt calls `inner` by reference (always ready, see `Transport`); a
        // retry calls a clone of it, made from this one when the call is first retried.
        let for_retries = Arc::new(inner.clone());
        let mut inner = inner;
        BoxCloneSyncService::new(tower::service_fn(move |req: Request<Body>| {
            let started = policy.start(
                |attempt, at: &Admission| policy.cut(at, inner.call(attempt)),
                req,
                Admission::now(),
            );
            let mut retries = Retries::new(Arc::clone(&for_retries));
            let cuts = Arc::clone(&policy);
            Arc::clone(&policy).finish(
                started,
                |call| call,
                move |attempt, at: &Admission| cuts.cut(at, retries.transport().call(attempt)),
            )
        }))
    }
}

/// The transport a call's retries go through: a clone of the one its first attempt was given
/// by reference, made on the first retry (most calls make none).
pub(crate) struct Retries {
    shared: Arc<Transport>,
    clone: Option<Transport>,
}

impl Retries {
    /// Retries through a clone of `shared`.
    pub(crate) fn new(shared: Arc<Transport>) -> Self {
        Self {
            shared,
            clone: None,
        }
    }

    /// The transport to call.
    pub(crate) fn transport(&mut self) -> &mut Transport {
        self.clone
            .get_or_insert_with(|| Transport::clone(&self.shared))
    }
}

impl RetryLayer {
    /// Starts the call `req` under this layer's policy, admitted `at`: its first attempt is
    /// made by `first`, now, when the request has no body to read first (a `GET`);
    /// [`Self::finish`] makes the rest. (Two steps, so that the call's future does not hold
    /// `first`, which may borrow what the caller's `Service::call` holds.) Every attempt's
    /// [`Admission`] carries its per-try cut-off when the call may be repeated: the gate
    /// beneath (the stack's per-attempt deadline) enforces it.
    pub(crate) fn start<F, E>(&self, first: F, req: Request<Body>, at: Admission) -> Started<E>
    where
        F: FnOnce(Request<Body>, &Admission) -> E,
    {
        self.policy.start(first, req, at)
    }

    /// The rest of a call [`Self::start`] started: the call's future waits for the first
    /// attempt by `wait`, and makes every later one by `again` (the stack passes its
    /// per-attempt gate, so that retry and gate run as one future). Attempts are given their
    /// [`Admission`], read once for the budget, the retry's timing and the gate.
    pub(crate) fn finish<W, G, E, A, B>(
        &self,
        started: Started<E>,
        wait: W,
        again: G,
    ) -> impl Future<Output = Answer> + Send + use<W, G, E, A, B>
    where
        W: FnOnce(E) -> A + Send + 'static,
        G: FnMut(Request<Body>, &Admission) -> B + Send + 'static,
        E: Send + 'static,
        A: Future<Output = Answer> + Send + 'static,
        B: Future<Output = Answer> + Send + 'static,
    {
        Arc::clone(&self.policy).finish(started, wait, again)
    }
}

/// Whether an outcome may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// An answer to keep (success, 4xx, 500, ...) or a failure no retry can help.
    Final,
    /// Worth a retry if the request is safe to repeat.
    IfSafe,
    /// The request never reached the upstream: any request may be sent again.
    NeverSent,
}

fn classify(result: &Result<Response<Body>, TransportError>) -> Verdict {
    match result {
        Ok(response) => match response.status() {
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Verdict::IfSafe,
            _ => Verdict::Final,
        },
        Err(TransportError::Connect { source, .. }) if never_sent(source.as_ref()) => {
            Verdict::NeverSent
        }
        Err(TransportError::Connect { .. } | TransportError::Timeout(_)) => Verdict::IfSafe,
        Err(_) => Verdict::Final,
    }
}

/// True when the cause chain shows no connection was made, so no byte of the request left.
fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(hyper) = error.downcast_ref::<hyper_util::client::legacy::Error>()
            && hyper.is_connect()
        {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The shortest share of a deadline an attempt is cut at to leave the rest to a retry.
const MIN_SHARE: Duration = Duration::from_millis(100);

/// True for reads: requests that change nothing, whose attempts the per-try timeout may cut —
/// `GET`, `HEAD`, `OPTIONS`, and a query its client marked [`ReadOnly`].
fn is_read(req: &Parts) -> bool {
    matches!(req.method, Method::GET | Method::HEAD | Method::OPTIONS)
        || req.extensions.get::<ReadOnly>().is_some()
}

/// True for requests the upstream may see twice without harm.
fn safe_to_repeat(req: &Parts) -> bool {
    match req.method {
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS => true,
        Method::POST => {
            req.headers.contains_key(&IDEMPOTENCY_KEY) || req.extensions.get::<ReadOnly>().is_some()
        }
        _ => false,
    }
}

/// A call as `Service::call` started it: `E` is its first attempt as made then (what the
/// future waits for is made from it inside the call's future, so that no future is moved).
pub(crate) struct Started<E> {
    start: Start<E>,
    /// The first attempt's admission (or the call's, when its body is still to be read).
    at: Admission,
    /// Whether the request is safe to repeat (see [`safe_to_repeat`]).
    safe: bool,
    /// Whether it is a read, whose attempts the per-try timeout cuts (see [`is_read`]).
    read: bool,
}

/// How a call starts.
enum Start<E> {
    /// A body that cannot be replayed (streamed, or too large): sent once, as it comes.
    Once(E),
    /// The first attempt, already made (the request had no body); the head, for a retry, and
    /// the call's instances.
    Sent(E, Parts, TriedInstances),
    /// A body to read before the first attempt, and the head.
    Read(Body, Parts),
}

impl Policy {
    fn start<F, E>(&self, first: F, req: Request<Body>, mut at: Admission) -> Started<E>
    where
        F: FnOnce(Request<Body>, &Admission) -> E,
    {
        self.budget.deposit(at.now);
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = req.into_parts();
        let safe = safe_to_repeat(&parts);
        let read = is_read(&parts);
        // Only a body of known length within the limit is kept for a retry: a streamed one
        // (chunked, or a client's upload still arriving) goes through once, as it comes.
        let limit = self.config.max_body_bytes as u64;
        let start = if body.size_hint().exact().is_none_or(|n| n > limit) {
            Start::Once(first(Request::from_parts(parts, body), &at))
        } else if body.is_end_stream() {
            // Nothing to read (a GET): no collecting, a static empty body to replay, and the
            // first attempt made now.
            let tried = TriedInstances::default();
            let request = attempt_request(&parts, &Bytes::new());
            at.try_cut = self.try_cut(read, 0, &at);
            let first = in_scope(0, &tried, || first(request, &at));
            Start::Sent(first, parts, tried)
        } else {
            Start::Read(body, parts)
        };
        Started {
            start,
            at,
            safe,
            read,
        }
    }

    /// When attempt `attempt` (0 for the first) admitted at `at` is cut for another, if the
    /// call is a read that may be repeated: after `try_timeout_ms`, and, while a retry is
    /// left, after a third of the time left before the deadline when that is sooner — so that
    /// a call with a short deadline (a saga step's 2 s) whose first attempt hangs still has
    /// time to be repeated elsewhere (an outside tester saw checkouts fail when one catalog
    /// replica froze: their lookups were cut at their deadline, with nothing left for a
    /// retry). A third, not a half: a retry is made only when what is left exceeds what the
    /// failed attempt took plus the backoff. Not below [`MIN_SHARE`]: a deadline that short is
    /// left whole to one attempt.
    fn try_cut(&self, read: bool, attempt: u32, at: &Admission) -> Option<Instant> {
        if !read || self.config.max_retries == 0 || self.config.try_timeout_ms == 0 {
            return None;
        }
        let cut = at.now + Duration::from_millis(self.config.try_timeout_ms);
        let share = at
            .deadline
            .filter(|_| attempt < self.config.max_retries)
            .map(|deadline| deadline.saturating_duration_since(at.now) / 3)
            .filter(|share| *share >= MIN_SHARE);
        Some(share.map_or(cut, |share| cut.min(at.now + share)))
    }

    /// `call` cut at `at`'s per-try cut-off, for the layer used on its own (the stack's
    /// per-attempt deadline enforces the cut-off itself, with the attempt's one timer).
    fn cut(
        self: &Arc<Self>,
        at: &Admission,
        call: crate::transport::TransportCall,
    ) -> crate::transport::TransportCall {
        match at.try_cut {
            None => call,
            Some(cut) => {
                let policy = Arc::clone(self);
                Box::pin(async move {
                    tokio::time::timeout_at(cut, call)
                        .await
                        .unwrap_or_else(|_| Err(TransportError::Timeout(policy.service.clone())))
                })
            }
        }
    }

    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` would hold a copy of each argument (see the block's comment)"
    )]
    fn finish<W, G, E, A, B>(
        self: Arc<Self>,
        Started {
            start,
            at,
            safe,
            read,
        }: Started<E>,
        wait: W,
        mut again: G,
    ) -> impl Future<Output = Answer> + use<W, G, E, A, B>
    where
        W: FnOnce(E) -> A,
        G: FnMut(Request<Body>, &Admission) -> B,
        A: Future<Output = Answer>,
        B: Future<Output = Answer>,
    {
        // A block rather than an `async fn`: it holds the arguments where they are, an
        // `async fn` would hold a copy of each besides (rust-lang/rust#62958), and every call
        // allocates this future. The head stays where it is, read by reference.
        async move {
            let (mut result, parts, bytes, tried, mut started) = match start {
                Start::Once(first) => return wait(first).await,
                Start::Sent(first, ref parts, tried) => {
                    (wait(first).await, parts, Bytes::new(), tried, at.now)
                }
                Start::Read(body, ref parts) => {
                    // Boxed, as the backoff's timer below: what only some calls wait for would
                    // otherwise make every call's future larger (see `stack`).
                    let bytes = match Box::pin(body.collect()).await {
                        Ok(collected) => collected.to_bytes(),
                        // The caller's body failed, not the upstream: answered as the upstream
                        // would have.
                        Err(e) => return Ok(crate::extract::unreadable_body(&e).into_response()),
                    };
                    let tried = TriedInstances::default();
                    let mut at = Admission::now();
                    at.try_cut = self.try_cut(read, 0, &at);
                    let request = attempt_request(parts, &bytes);
                    let attempt = in_scope(0, &tried, || again(request, &at));
                    (attempt.await, parts, bytes, tried, at.now)
                }
            };
            let mut retry = 0;
            loop {
                let repeatable = match classify(&result) {
                    Verdict::Final => false,
                    Verdict::IfSafe => safe,
                    Verdict::NeverSent => true,
                };
                if !repeatable || retry >= self.config.max_retries {
                    return result;
                }
                let delay = self.config.backoff(retry);
                let now = Instant::now();
                if let Some(deadline) = request_context::current_deadline()
                    && now + delay + now.saturating_duration_since(started) >= deadline
                {
                    tracing::debug!(service = %self.service, "no time left for a retry");
                    return result;
                }
                if !self.budget.withdraw(now) {
                    self.counters
                        .refused_by_budget
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(service = %self.service, "retry budget spent");
                    return result;
                }
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(service = %self.service, retry, ?delay, "retrying");
                drop(result);
                Box::pin(tokio::time::sleep(delay)).await;
                retry += 1;
                let mut at = Admission::now();
                at.try_cut = self.try_cut(read, retry, &at);
                started = at.now;
                let request = attempt_request(parts, &bytes);
                result = in_scope(retry, &tried, || again(request, &at)).await;
            }
        }
    }
}

/// An attempt of a call: a copy of its head, and its body.
fn attempt_request(parts: &Parts, bytes: &Bytes) -> Request<Body> {
    Request::from_parts(parts.clone(), Body::from(bytes.clone()))
}

/// Makes attempt `number` by `make`, with its [`RetryAttempt`] in scope.
fn in_scope<R>(number: u32, tried: &TriedInstances, make: impl FnOnce() -> R) -> R {
    RetryAttempt::scope(Some(RetryAttempt::new(number, tried.clone())), make)
}

#[cfg(test)]
mod tests;
