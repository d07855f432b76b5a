//! The shape the circuit breaker and the bulkhead share: a layer that decides in `call`, not in
//! `poll_ready`, whether a request may go on, refuses it at once with a [`TransportError`] when
//! it may not, and otherwise runs it holding what admission handed out (a breaker's permit that
//! records the outcome, a bulkhead's slot).
//!
//! Deciding in `call` is the point: a layer that waited for readiness, or took its permit in
//! `poll_ready` as tower's `ConcurrencyLimit` does, would hold capacity in every readied but
//! unused clone and would make a refused call wait for the inner transport's readiness. Here
//! the gate is always ready, and so is every transport (see [`Transport`]): an admitted call is
//! handed to the inner transport at once, without cloning it.

use axum::body::Body;
use axum::http::{Request, Response};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;
use tower::util::BoxCloneSyncService;

use crate::transport::{Transport, TransportCall, TransportError};

/// What a call through a gate ends with.
pub(crate) type Answer = Result<Response<Body>, TransportError>;

/// A decision taken per call before it reaches the upstream.
pub(crate) trait Gate: Send + Sync + 'static {
    /// What an admitted call holds until it ends.
    type Pass: Send + 'static;

    /// Lets the call through, or says why not.
    fn admit(self: &Arc<Self>) -> Result<Self::Pass, TransportError>;

    /// Runs an admitted call (`call`: the inner transport's future for it).
    fn run(pass: Self::Pass, call: TransportCall) -> BoxFuture<'static, Answer>;
}

/// `inner` behind `gate`, as a transport again.
pub(crate) fn guard<G: Gate>(gate: &Arc<G>, inner: Transport) -> Transport {
    BoxCloneSyncService::new(Guarded {
        gate: Arc::clone(gate),
        inner,
    })
}

struct Guarded<G> {
    gate: Arc<G>,
    inner: Transport,
}

impl<G> Clone for Guarded<G> {
    fn clone(&self) -> Self {
        Self {
            gate: Arc::clone(&self.gate),
            inner: self.inner.clone(),
        }
    }
}

impl<G: Gate> Service<Request<Body>> for Guarded<G> {
    type Response = Response<Body>;
    type Error = TransportError;
    type Future = BoxFuture<'static, Answer>;

    /// Always ready: a refusal must come at once (see the module's doc).
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match self.gate.admit() {
            Ok(pass) => G::run(pass, self.inner.call(request)),
            Err(refused) => Box::pin(std::future::ready(Err(refused))),
        }
    }
}
