//! The shape the layers that decide per call share (the deadline every transport applies, and
//! the resilience stack's circuit breaker and bulkhead, [`crate::resilience`]): a gate decides in `call`, not in `poll_ready`, whether a request may
//! go on, refuses it at once with a [`TransportError`] when it may not, and otherwise runs it
//! holding what admission handed out (a breaker's permit that records the outcome, a
//! bulkhead's slot, a deadline's cut-off), then settles the answer with it.
//!
//! Deciding in `call` is the point: a layer that waited for readiness, or took its permit in
//! `poll_ready` as tower's `ConcurrencyLimit` does, would hold capacity in every readied but
//! unused clone and would make a refused call wait for the inner transport's readiness. Here
//! the gate is always ready, and so is every transport (see [`Transport`]): an admitted call is
//! handed to the inner transport at once, without cloning it.
//!
//! Gates compose: a pair of gates is a gate, the first outside the second, so the stack's
//! breaker, bulkhead and per-attempt deadline (`resilience::stack`) run as one gate, with one
//! future, one reading of the clock and of the request's deadline, and one timer per attempt
//! (the earliest of the cut-offs), instead of a boxed future and a timer per layer. A pair
//! behaves as the two layers nested would: the outer admits first, the inner settles first,
//! and of two cut-offs at the same instant the inner one's error wins (as the inner timer,
//! polled first, would).

use axum::body::Body;
use axum::http::{Request, Response};
use tokio::time::Instant;
use tower::Service;
use tower::util::BoxCloneSyncService;

use super::{Transport, TransportCall, TransportError};
use crate::request_context;

/// What a call through a gate ends with.
pub(crate) type Answer = Result<Response<Body>, TransportError>;

/// When a call is asked to go through, read once for every gate it meets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    /// Now.
    pub(crate) now: Instant,
    /// The request's deadline, if it has one.
    pub(crate) deadline: Option<Instant>,
    /// When this attempt is cut to make room for another (the retry layer's per-try timeout,
    /// set only for an attempt of a call it may repeat): the attempt ends with
    /// [`TransportError::Timeout`], which the retry layer repeats.
    pub(crate) try_cut: Option<Instant>,
}

impl Admission {
    /// The clock and the current request's deadline, now.
    pub(crate) fn now() -> Self {
        Self {
            now: Instant::now(),
            deadline: request_context::current_deadline(),
            try_cut: None,
        }
    }
}

/// A decision taken per call before it reaches the upstream. Cloning a gate is cheap (it is
/// made of `Arc`s): the future of an admitted call holds a clone.
pub(crate) trait Gate: Clone + Send + Sync + 'static {
    /// What an admitted call holds until it ends.
    type Pass: Send + 'static;

    /// Lets the call through (possibly marking `request`, e.g. with its deadline header), or
    /// says why not.
    fn admit(
        &self,
        request: &mut Request<Body>,
        at: &Admission,
    ) -> Result<Self::Pass, TransportError>;

    /// Hands the admitted request to the inner transport (`call`, made now): a gate may scope
    /// something around it for the layers beneath to read as they admit it.
    fn call_inner(
        &self,
        _pass: &Self::Pass,
        call: impl FnOnce() -> TransportCall,
    ) -> TransportCall {
        call()
    }

    /// When the admitted call must be cut, if this gate cuts it.
    fn cut_at(&self, _pass: &Self::Pass) -> Option<Instant> {
        None
    }

    /// The error of a call cut at [`Self::cut_at`].
    fn cut_error(&self, pass: &Self::Pass) -> TransportError;

    /// What the call ends with, given its answer: records it, holds on to the response body...
    fn settle(&self, pass: Self::Pass, answer: Answer) -> Answer;
}

impl<A: Gate, B: Gate> Gate for (A, B) {
    type Pass = (A::Pass, B::Pass);

    fn admit(
        &self,
        request: &mut Request<Body>,
        at: &Admission,
    ) -> Result<Self::Pass, TransportError> {
        let outer = self.0.admit(request, at)?;
        // A refusal by the inner gate drops the outer pass, as the inner layer's refusal
        // would (a breaker's probe slot is given back).
        let inner = self.1.admit(request, at)?;
        Ok((outer, inner))
    }

    fn call_inner(
        &self,
        (outer, inner): &Self::Pass,
        call: impl FnOnce() -> TransportCall,
    ) -> TransportCall {
        self.0.call_inner(outer, || self.1.call_inner(inner, call))
    }

    fn cut_at(&self, (outer, inner): &Self::Pass) -> Option<Instant> {
        match (self.0.cut_at(outer), self.1.cut_at(inner)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn cut_error(&self, (outer, inner): &Self::Pass) -> TransportError {
        match (self.0.cut_at(outer), self.1.cut_at(inner)) {
            (Some(a), Some(b)) if a < b => self.0.cut_error(outer),
            (Some(_), None) => self.0.cut_error(outer),
            _ => self.1.cut_error(inner),
        }
    }

    fn settle(&self, (outer, inner): Self::Pass, answer: Answer) -> Answer {
        self.0.settle(outer, self.1.settle(inner, answer))
    }
}

/// Asks `gate` to admit `request` and, if it does, hands the request to `inner` now, in the
/// caller's task (always ready, see [`Transport`]); [`finish`] then waits for the answer.
pub(crate) fn enter<G: Gate>(
    gate: &G,
    inner: &mut Transport,
    request: Request<Body>,
) -> Result<(G::Pass, TransportCall), TransportError> {
    enter_with(gate, request, |request| inner.call(request))
}

/// Like [`enter`], at `at` (a reading of the clock and the deadline the caller already made).
pub(crate) fn enter_at<G: Gate>(
    gate: &G,
    inner: &mut Transport,
    request: Request<Body>,
    at: &Admission,
) -> Result<(G::Pass, TransportCall), TransportError> {
    enter_with_at(gate, request, at, |request| inner.call(request))
}

/// Like [`enter`], handing an admitted request to `call` (an endpoint called by reference).
pub(crate) fn enter_with<G: Gate>(
    gate: &G,
    request: Request<Body>,
    call: impl FnOnce(Request<Body>) -> TransportCall,
) -> Result<(G::Pass, TransportCall), TransportError> {
    enter_with_at(gate, request, &Admission::now(), call)
}

fn enter_with_at<G: Gate>(
    gate: &G,
    mut request: Request<Body>,
    at: &Admission,
    call: impl FnOnce(Request<Body>) -> TransportCall,
) -> Result<(G::Pass, TransportCall), TransportError> {
    let pass = gate.admit(&mut request, at)?;
    let call = gate.call_inner(&pass, || call(request));
    Ok((pass, call))
}

/// Waits for a call [`enter`] let through, cut at the gate's cut-off, and settles its answer
/// (the future holds a clone of the gate).
pub(crate) async fn finish<G: Gate>(
    gate: G,
    entered: Result<(G::Pass, TransportCall), TransportError>,
) -> Answer {
    let (pass, call) = entered?;
    let answer = match gate.cut_at(&pass) {
        Some(at) => match tokio::time::timeout_at(at, call).await {
            Ok(answer) => answer,
            Err(_) => Err(gate.cut_error(&pass)),
        },
        None => call.await,
    };
    gate.settle(pass, answer)
}

/// `inner` behind `gate`, as a transport again (always ready: a refusal must come at once).
pub(crate) fn guard<G: Gate>(gate: G, mut inner: Transport) -> Transport {
    // A closure rather than a `Service` with a boxed future of its own: the transport boxes
    // the future once.
    BoxCloneSyncService::new(tower::service_fn(move |request: Request<Body>| {
        let entered = enter(&gate, &mut inner, request);
        finish(gate.clone(), entered)
    }))
}
