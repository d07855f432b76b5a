//! The bus interface both backends implement (in-process now, NATS JetStream in the fleet).
//!
//! `publish` returns `Ok` only once the event is durably taken: by the broker (NATS: the stream
//! acknowledged it), or — for the in-process bus, which has no storage of its own — by every
//! subscribed consumer (handled, already handled, or parked as a dead letter). Until then the
//! outbox row stays unpublished and the relay retries it.

use futures::future::BoxFuture;
use std::sync::Arc;

use super::Event;
use super::consumer::Consumer;

/// Why a publish did not complete; the relay retries later.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A consumer could not take the event now (in-process bus).
    #[error("consumer {consumer} could not take {event_id}: {message}")]
    Consumer {
        /// The consuming service.
        consumer: String,
        /// The event.
        event_id: String,
        /// Why.
        message: String,
    },
    /// The broker is unreachable or did not acknowledge.
    #[error("broker: {0}")]
    Broker(String),
}

/// A message bus.
pub trait Bus: Send + Sync + 'static {
    /// Publishes `event` durably (see the module docs for what "durably" means per backend).
    fn publish<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), BusError>>;

    /// Starts delivering the consumer's event types to `consumer`.
    fn subscribe(&self, consumer: Arc<Consumer>) -> BoxFuture<'_, Result<(), BusError>>;

    /// Waits until every consumer has stopped after shutdown, finishing (and acknowledging) the
    /// event in hand, so a host can close storage after it. Nothing to wait for by default.
    fn stopped(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A bus shared by everything in one process.
pub type SharedBus = Arc<dyn Bus>;
