//! The cart service: each user's cart, priced from the catalog whenever it is read.
//!
//! The cart stores only which products a user wants and how many; names and prices come from
//! the catalog on every read (one lookup for all lines), so the cart never shows a stale price
//! and a product withdrawn from the catalog shows up as unavailable rather than disappearing.
//! Every route acts on the caller's own cart. Checkout claims the cart at the version it priced
//! (once per cart content, whatever the number of concurrent checkouts); when the order is
//! confirmed its products leave the buyer's cart and the claim ends, when it is cancelled only
//! the claim ends (the `events` module). Other services use only [`contract`] and [`client`].

pub mod client;
pub mod contract;

mod api;
mod domain;
mod error;
mod events;
mod pricing;
mod store;

use flotilla_catalog::client::CatalogClient;
use flotilla_chassis::events::Subscription;
use flotilla_chassis::{Service, ServiceContext, ServiceSpec, StartError};
use serde::Deserialize;
use std::sync::Arc;

/// The service's name: its configuration section, database name and gateway prefix.
pub const NAME: &str = "cart";

/// How hosts start the cart.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: true,
};

/// The `[cart]` configuration section.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct CartConfig {
    /// Most different products one cart may hold; adding one more is a 409.
    pub max_lines: u32,
    /// Most of one product a line may hold; asking for more is a 422.
    pub max_quantity: u32,
}

impl Default for CartConfig {
    fn default() -> Self {
        Self {
            max_lines: 50,
            max_quantity: 99,
        }
    }
}

/// Starts the cart: checks its configuration, migrates its database and returns its routes and
/// its subscriptions to `order.confirmed` and `order.cancelled`.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let config: CartConfig = ctx.config()?;
    // A cart that can hold nothing is a typo in the configuration, not a policy.
    if config.max_lines == 0 || config.max_quantity == 0 {
        return Err(StartError::Other(
            "[cart] max_lines and max_quantity must be at least 1".to_owned(),
        ));
    }
    let db = ctx.db()?;
    db.migrate(store::MIGRATIONS).await?;
    let state = api::CartState {
        store: store::CartStore::new(db.clone()),
        pricer: pricing::Pricer::new(CatalogClient::cached(&ctx.peers)),
        clock: ctx.clock.clone(),
        config,
    };
    let mut service = Service::new(NAME, api::routes(state), Some(db));
    service.subscriptions.push(Subscription {
        source: "orders",
        event_type: events::ORDER_CONFIRMED,
        handler: Arc::new(events::OrderConfirmedHandler::new(ctx.clock.clone())),
    });
    service.subscriptions.push(Subscription {
        source: "orders",
        event_type: events::ORDER_CANCELLED,
        handler: Arc::new(events::OrderCancelledHandler),
    });
    Ok(service)
}
