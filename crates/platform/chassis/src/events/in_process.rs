//! The in-process bus: publishing delivers the event straight to every subscribed consumer in
//! this process and succeeds when all of them have taken it (handled it, seen it before, or
//! parked it). Nothing is held in memory between the outbox and the consumers' inboxes, so a
//! crash at any point loses nothing: the outbox row is still unpublished and is relayed again.

use futures::future::BoxFuture;
use std::sync::{Arc, RwLock};

use super::Event;
use super::bus::{Bus, BusError};
use super::consumer::Consumer;

/// Consumers registered in this process.
#[derive(Default)]
pub struct InProcessBus {
    // A std lock: taken briefly to snapshot the list, never across an await.
    consumers: RwLock<Vec<Arc<Consumer>>>,
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Bus for InProcessBus {
    fn publish<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let targets: Vec<Arc<Consumer>> = {
                let consumers = self.consumers.read().unwrap_or_else(|p| p.into_inner());
                consumers
                    .iter()
                    .filter(|c| c.handles(&event.event_type))
                    .cloned()
                    .collect()
            };
            for consumer in targets {
                consumer
                    .deliver_in_trace(event)
                    .await
                    .map_err(|err| BusError::Consumer {
                        consumer: consumer.service().to_owned(),
                        event_id: event.id.clone(),
                        message: err.to_string(),
                    })?;
            }
            Ok(())
        })
    }

    fn subscribe(&self, consumer: Arc<Consumer>) -> BoxFuture<'_, Result<(), BusError>> {
        let mut consumers = self.consumers.write().unwrap_or_else(|p| p.into_inner());
        consumers.retain(|c| c.service() != consumer.service());
        consumers.push(consumer);
        Box::pin(async { Ok(()) })
    }
}
