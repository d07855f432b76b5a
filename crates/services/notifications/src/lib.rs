//! The notifications service: tells customers what happened to their orders, and keeps every
//! message it sends so customers and operators can read them.
//!
//! It reacts to events only (`order.confirmed`, `order.cancelled`); nothing calls it to send.
//! Sending is simulated: a message is recorded in the service's own table instead of being
//! emailed, in the same transaction that records the event in the inbox, so each event yields
//! exactly one message however often the bus delivers it. Customers read their own messages;
//! admins read anyone's. Other services use only [`contract`] and [`client`].

pub mod client;
pub mod contract;

mod api;
mod domain;
mod error;
mod events;
mod store;

use flotilla_chassis::events::Subscription;
use flotilla_chassis::{Service, ServiceContext, ServiceSpec, StartError};
use serde::Deserialize;
use std::sync::Arc;

use crate::domain::SenderAddress;
use crate::events::{NoticeHandler, OrderCancelledV1, OrderConfirmedV1, SimulatedMailer};

/// The service's name: its configuration section, database name and gateway prefix.
pub const NAME: &str = "notifications";

/// How hosts start the notifications service.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: true,
};

/// The `[notifications]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NotificationsConfig {
    /// The address messages come from, shown in every body so the customer knows where to write.
    pub sender: String,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            sender: "shop@flotilla.example".to_owned(),
        }
    }
}

/// Starts the service: checks its configuration, migrates its database and returns its routes
/// and its subscriptions to the order events.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let config: NotificationsConfig = ctx.config()?;
    let sender = SenderAddress::parse(&config.sender)
        .map_err(|e| StartError::Other(format!("[notifications] sender {e}")))?;
    let db = ctx.db()?;
    db.migrate(store::MIGRATIONS).await?;
    let state = api::NotificationsState {
        store: store::NotificationsStore::new(db.clone()),
    };
    let mailer = Arc::new(SimulatedMailer::new(sender, ctx.clock.clone()));
    let mut service = Service::new(NAME, api::routes(state), Some(db));
    service.subscriptions.push(Subscription {
        source: "orders",
        event_type: events::ORDER_CONFIRMED,
        handler: Arc::new(NoticeHandler::<OrderConfirmedV1>::new(mailer.clone())),
    });
    service.subscriptions.push(Subscription {
        source: "orders",
        event_type: events::ORDER_CANCELLED,
        handler: Arc::new(NoticeHandler::<OrderCancelledV1>::new(mailer)),
    });
    Ok(service)
}
