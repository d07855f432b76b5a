//! One transport over every live instance of a service: each request goes to one instance,
//! chosen by the power of two choices (two instances at random, the one with fewer requests in
//! flight wins; Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", 2001).
//!
//! Built from tower's pieces, as linkerd does: the watch channel from
//! [`Discovery::watch`](crate::Discovery::watch) is diffed into a
//! `tower::discover` stream of inserts and removals, each instance is an HTTP [`Transport`]
//! wrapped in `load::PendingRequests`, `balance::p2c::Balance` picks among them, and
//! `buffer::Buffer` makes the balancer cloneable (it needs `&mut self` to pick; the buffer's
//! worker task owns it and callers share a queue to it).
//!
//! Two details are ours:
//!
//! - **No instances means an immediate `NoInstance`**, not a wait: tower's balancer would hold a
//!   request until an instance appears, so an empty set is represented by a stand-in endpoint
//!   that fails every request. It is inserted and removed in the same batch of changes that
//!   empties or refills the set, so it never competes with a real instance.
//! - **A removed instance gets no new requests**: changes are applied before every pick, and an
//!   update becomes visible to the balancer as soon as the watch channel is written. Requests
//!   already on their way to it finish normally.
//!
//! Failures are not hidden: a request routed to a dead instance fails with
//! [`TransportError::Connect`] naming that instance in its cause. Retries and outlier ejection
//! are resilience layers, applied around this transport.

use axum::body::Body;
use axum::http::{Request, Response};
use futures::{Stream, StreamExt, stream};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::pin::Pin;
use tokio::sync::watch;
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::Change;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceExt};

use flotilla_chassis::transport::http::HttpPool;
use flotilla_chassis::transport::{Transport, TransportError};

/// Requests that may wait for the balancer's worker at once; more wait for a free slot. The
/// worker only picks an instance and hands the request over, so the queue stays short.
const QUEUE_DEPTH: usize = 1024;

/// A transport that spreads requests to `service` over the base URLs currently in `instances`.
///
/// Must be called within a tokio runtime: the balancer runs in a task of its own, which ends
/// when the last clone of the transport is dropped.
pub fn balanced(
    service: &str,
    instances: watch::Receiver<Vec<String>>,
    pool: &HttpPool,
) -> Transport {
    let membership = Membership {
        service: service.to_owned(),
        pool: pool.clone(),
        members: BTreeSet::new(),
        empty: false,
    };
    let balancer = Balance::new(changes(membership, instances));
    let buffer = Buffer::new(balancer, QUEUE_DEPTH);
    let service = service.to_owned();
    BoxCloneSyncService::new(buffer.map_err(move |error| transport_error(&service, error)))
}

/// The balancer's key for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Endpoint {
    /// An instance, by base URL.
    Instance(String),
    /// The stand-in for "no instance at all", which refuses every request.
    Nowhere,
}

/// An endpoint as the balancer sees it: a transport whose in-flight requests are counted.
type Member = PendingRequests<Transport, CompleteOnResponse>;

type Changes = Pin<Box<dyn Stream<Item = Result<Change<Endpoint, Member>, Infallible>> + Send>>;

/// What the balancer currently holds, to diff each new set of URLs against.
struct Membership {
    service: String,
    pool: HttpPool,
    members: BTreeSet<String>,
    /// Whether the `Nowhere` stand-in is in the balancer.
    empty: bool,
}

impl Membership {
    /// The changes that turn the balancer's endpoints into `urls`.
    fn update(&mut self, urls: &[String]) -> Vec<Change<Endpoint, Member>> {
        let mut changes = Vec::new();
        let mut next = BTreeSet::new();
        for url in urls {
            if self.members.contains(url) {
                next.insert(url.clone());
                continue;
            }
            match self.pool.transport(&self.service, url) {
                Ok(transport) => {
                    changes.push(Change::Insert(
                        Endpoint::Instance(url.clone()),
                        PendingRequests::new(transport, CompleteOnResponse::default()),
                    ));
                    next.insert(url.clone());
                }
                Err(error) => {
                    tracing::warn!(service = %self.service, %error, "ignoring an instance");
                }
            }
        }
        for gone in self.members.difference(&next) {
            changes.push(Change::Remove(Endpoint::Instance(gone.clone())));
        }
        match (self.empty, next.is_empty()) {
            (false, true) => changes.push(Change::Insert(
                Endpoint::Nowhere,
                PendingRequests::new(nowhere(&self.service), CompleteOnResponse::default()),
            )),
            (true, false) => changes.push(Change::Remove(Endpoint::Nowhere)),
            _ => {}
        }
        self.empty = next.is_empty();
        self.members = next;
        changes
    }
}

/// The balancer's discovery stream: one batch of changes for the first value of `instances`
/// and one for each later value. A batch is yielded without a pause, so the balancer applies it
/// whole before its next pick. When the sender is gone the stream ends and the balancer keeps
/// the last set.
fn changes(mut membership: Membership, instances: watch::Receiver<Vec<String>>) -> Changes {
    let batches = stream::unfold((instances, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let urls = rx.borrow_and_update().clone();
        Some((urls, (rx, false)))
    })
    .map(move |urls| stream::iter(membership.update(&urls).into_iter().map(Ok)))
    .flatten()
    .fuse();
    Box::pin(batches)
}

/// The endpoint standing in for an empty set.
fn nowhere(service: &str) -> Transport {
    let service = service.to_owned();
    BoxCloneSyncService::new(tower::service_fn(move |_: Request<Body>| {
        std::future::ready(Err::<Response<Body>, _>(TransportError::NoInstance(
            service.clone(),
        )))
    }))
}

/// Recovers the endpoint's own error from the balancer's boxed one.
fn transport_error(service: &str, error: BoxError) -> TransportError {
    match error.downcast::<TransportError>() {
        Ok(error) => *error,
        // Only the buffer's own failures are left: its worker is gone (the runtime is stopping).
        Err(other) => TransportError::Connect {
            service: service.to_owned(),
            source: other,
        },
    }
}
