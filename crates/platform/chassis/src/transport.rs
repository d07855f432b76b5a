//! How one service reaches another. A [`Transport`] is a cloneable tower `Service` from an HTTP
//! request to an HTTP response; typed clients wrap one and never know which kind it is:
//!
//! - [`in_process`]: the callee's router, called directly (no socket, same middleware, same HTTP
//!   semantics), marked as a trusted hop;
//! - [`http`]: a pooled hyper client to a base URL, carrying a service credential.
//!
//! The resilience layers ([`crate::resilience`]: deadline, retry budget, breaker, bulkhead) wrap
//! a `Transport` and so behave the same in every mode. The ones that decide per call share the
//! shape of [`gate`], which lives here because the deadline layer every transport applies is one.

pub mod attempt;
pub mod client;
pub mod deadline;
pub mod faulted;
pub(crate) mod gate;
pub mod http;
pub mod in_process;
pub mod peers;
pub mod read_cache;
pub mod traced;

use axum::body::Body;
use axum::http::{Request, Response};
use tower::util::BoxCloneSyncService;

pub use client::{ClientError, ServiceClient};
pub use peers::Peers;

/// A request/response service to one named peer.
///
/// A transport is always ready: every one in Flotilla refuses work in `call` (an open circuit, a
/// full bulkhead) and never through `poll_ready`, so a layer may call the transport it wraps
/// without first waiting for readiness, and need not clone it for every call (the clone of a
/// stack of boxed layers is one allocation per layer).
pub type Transport = BoxCloneSyncService<Request<Body>, Response<Body>, TransportError>;

/// What calling a [`Transport`] returns.
pub type TransportCall =
    futures::future::BoxFuture<'static, Result<Response<Body>, TransportError>>;

/// Failures below HTTP: the peer could not be reached or did not answer in time, or a resilience
/// layer refused the call before it left.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No instance of the service is known (not registered in-process, no URL configured).
    #[error("service {0} is not available here")]
    NoInstance(String),
    /// Connecting or exchanging bytes failed.
    #[error("could not reach {service}: {source}")]
    Connect {
        /// The peer.
        service: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The peer took longer than the transport's timeout.
    #[error("{0} did not answer in time")]
    Timeout(String),
    /// The circuit breaker in front of the peer is open: it has been failing, and calls are
    /// refused without reaching it until the breaker lets probes through
    /// ([`resilience::breaker`](crate::resilience::breaker)).
    #[error("{0} is failing; calls to it are suspended for a while")]
    CircuitOpen(String),
    /// The bulkhead in front of the peer is full: as many calls as it allows are already in
    /// flight, and this one was refused at once rather than queued
    /// ([`resilience::bulkhead`](crate::resilience::bulkhead)).
    #[error("{0} is busy; too many calls to it are in flight")]
    Overloaded(String),
    /// The deadline of the request being served ran out before the peer answered (or before the
    /// call was made): the caller has given up, so nobody waits for this answer. See
    /// [`crate::resilience::deadline`].
    #[error("the deadline ran out before {0} answered")]
    DeadlineExceeded(String),
}
