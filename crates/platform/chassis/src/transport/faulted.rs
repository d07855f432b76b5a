//! Faults on the client side (see [`crate::faults`]): a tower layer around the `Transport` to one peer, so that a fault on an
//! upstream delays this service's calls to it, answers them with an error status or fails them
//! as a reset connection ([`TransportError::Connect`]), without the peer seeing the call.
//! `Peers` puts it around every transport it hands a service, whatever the transport (in
//! process, HTTP, balanced), so the callers' code and their resilience layers meet the fault
//! exactly as they would meet the real thing.

use axum::body::Body;
use axum::http::{Request, Response};
use futures::future::BoxFuture;
use std::task::{Context, Poll};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};

use super::{Transport, TransportError};
use crate::abort::InjectedReset;
use crate::faults::inject::failure_response;
use crate::faults::{Failure, Faults, Injection};
use crate::resilience::retry::RetryAttempt;

/// Layer: the faults of one service on its calls to `upstream`.
#[derive(Clone)]
pub struct FaultLayer {
    faults: Faults,
    upstream: String,
}

impl FaultLayer {
    /// `faults` applied to calls to `upstream`.
    pub fn new(faults: Faults, upstream: &str) -> Self {
        Self {
            faults,
            upstream: upstream.to_owned(),
        }
    }

    /// `transport` with the faults applied, as a transport again.
    pub fn wrap(&self, transport: Transport) -> Transport {
        BoxCloneSyncService::new(self.layer(transport))
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Faulty<S>;

    fn layer(&self, inner: S) -> Faulty<S> {
        Faulty {
            inner,
            faults: self.faults.clone(),
            upstream: self.upstream.clone(),
        }
    }
}

/// A transport whose calls may be faulted.
#[derive(Clone)]
pub struct Faulty<S> {
    inner: S,
    faults: Faults,
    upstream: String,
}

impl<S> Service<Request<Body>> for Faulty<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = TransportError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = TransportError;
    type Future = BoxFuture<'static, Result<Response<Body>, TransportError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let injection = self
            .faults
            .on_call(&self.upstream, req.method(), req.uri().path());
        let Some(Injection { delay, failure }) = injection else {
            return Box::pin(self.inner.call(req));
        };
        // The instance made ready by `poll_ready` is used after the delay; a fresh clone stays
        // behind for the next call (tower's usual swap).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let upstream = self.upstream.clone();
        // Handed on after this `call` returned: the retry layer's attempt goes along.
        let attempt = RetryAttempt::current();
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match failure {
                None => {
                    let mut ready = ready;
                    std::future::poll_fn(|cx| ready.poll_ready(cx)).await?;
                    RetryAttempt::scope(attempt, || ready.call(req)).await
                }
                Some((Failure::Abort, fault_id)) => Err(TransportError::Connect {
                    service: upstream,
                    source: Box::new(InjectedReset { fault_id }),
                }),
                Some((status, fault_id)) => Ok(failure_response(status, &fault_id)),
            }
        })
    }
}
