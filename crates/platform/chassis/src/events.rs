//! Events between services: the transactional outbox, its relay, the bus, and idempotent
//! consumers with an inbox and dead letters.
//!
//! The contract, the same for every bus backend:
//! - **Publishing** is an insert into the service's own `outbox` table inside the business
//!   transaction ([`Outbox::append`]): the event exists if and only if the state change does.
//! - A **relay** ([`relay`]) moves outbox rows to the [`Bus`] and marks them published only once
//!   the bus has durably accepted them; a crash in between publishes them again (at least once).
//! - A **consumer** ([`Consumer`]) handles an event and records its id in its own `inbox` table
//!   in one transaction, so a redelivered event has no second effect. A delivery that fails is
//!   retried with backoff; after `max_deliveries` failures the event is parked in the consumer's
//!   `dead_letters` table, visible and replayable through the admin routes ([`admin`]).
//! - An event no redelivery can fix is parked at its **first** delivery: an envelope that does not
//!   decode, a version the consumer does not know, a payload that does not decode, and an event
//!   whose `source` is not the service that owns its type (each type has one publisher, named in
//!   the [`Subscription`]; anything else is a forgery or a bug). A dead letter is replayable,
//!   so an event of a newer version parked by an older replica is replayed after the upgrade.
//!
//! Every event carries id, type, version, source, time, trace context and a JSON payload.

pub mod admin;
mod bus;
pub mod collector;
mod consumer;
mod discard;
mod in_process;
mod outbox;
mod published;
pub mod relay;
mod schema;

pub use bus::{Bus, BusError, SharedBus};
pub use consumer::{Consumer, ConsumerStats, EventHandler, HandlerError, Outcome, Subscription};
pub use in_process::InProcessBus;
pub use outbox::{NewEvent, Outbox};
pub use published::{PublishedEvent, payload_schema};
pub use relay::RelaySettings;
pub use schema::migrate;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An event as it travels: a CloudEvents-like envelope around a JSON payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Unique id (a UUIDv7, so ids sort by creation time); consumers de-duplicate on it.
    pub id: String,
    /// What happened, e.g. `order.confirmed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Version of the payload schema for this type.
    pub version: u32,
    /// The publishing service.
    pub source: String,
    /// When it happened (RFC 3339).
    pub time: String,
    /// W3C trace context of the request that caused it, so a trace continues across the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The event's data.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl Event {
    /// Decodes the payload as `T`, refusing versions this consumer does not understand and
    /// payloads that do not decode, both permanently: redelivering the same bytes to the same
    /// code changes nothing, and the parked event can be replayed once a replica that knows
    /// the version runs.
    pub fn decode<T: DeserializeOwned>(&self, supported_version: u32) -> Result<T, HandlerError> {
        if self.version != supported_version {
            return Err(HandlerError::permanent(format!(
                "{} version {} is not supported (expected {supported_version})",
                self.event_type, self.version
            )));
        }
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            HandlerError::permanent(format!("undecodable {} payload: {e}", self.event_type))
        })
    }
}
