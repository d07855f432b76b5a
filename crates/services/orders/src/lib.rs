//! The orders service: order records and the checkout saga that makes each order real across
//! inventory, payments and shipping.
//!
//! `POST /` stores a PENDING order and its saga in one transaction, then runs the saga:
//! reserve stock, authorize payment, create the shipment, capture payment, commit the stock,
//! confirm — or, when a step is refused, undo what was done in reverse order and cancel. Every
//! step outcome is persisted before the next step starts and every peer call is idempotent, so
//! a saga interrupted anywhere (a crash, a timeout, a lost lease) is resumed from its last
//! persisted step by the recovery loop with no step taking effect twice: no lost order, no
//! double charge, no oversold stock, and every order ends CONFIRMED or CANCELLED. The outcome
//! is published as `order.confirmed` / `order.cancelled` through the outbox, in the same
//! transaction as the status change. Other services use only [`contract`] and [`client`].

pub mod client;
pub mod contract;
#[doc(hidden)]
pub mod testing;

mod api;
mod checkout;
mod config;
mod domain;
mod error;
mod executor;
mod metrics;
mod saga;
mod store;

use flotilla_cart::client::CartClient;
use flotilla_catalog::client::CatalogClient;
use flotilla_chassis::{Service, ServiceContext, ServiceSpec, StartError};
use flotilla_inventory::client::InventoryClient;
use flotilla_payments::client::PaymentsClient;
use flotilla_shipping::client::ShippingClient;
use std::time::Duration;

pub use crate::config::OrdersConfig;

use crate::checkout::Checkout;
use crate::executor::steps::SagaPeers;
use crate::executor::{Executor, Timing};
use crate::store::OrdersStore;

/// The service's name: its configuration section, database name and gateway prefix.
pub const NAME: &str = "orders";

/// How hosts start orders.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: true,
};

/// How much longer than the stock reservation the cart's claim lasts. An order can only be
/// confirmed while its reservation holds (COMMIT is refused once it expired), so a claim that
/// outlives the reservation by a margin for the last steps outlives every order that could
/// still be confirmed: no second checkout of the cart slips in under a slow first one.
const CLAIM_MARGIN_SECS: u64 = 300;

/// What an orders instance is made of; shared by [`service`] and the test driver.
struct Parts {
    store: OrdersStore,
    checkout: Checkout,
    executor: Executor,
    config: OrdersConfig,
}

/// Checks the configuration, migrates the database and wires the pieces.
async fn assemble(ctx: &ServiceContext) -> Result<Parts, StartError> {
    let config: OrdersConfig = ctx.config()?;
    config.check()?;
    let db = ctx.db()?;
    db.migrate(store::MIGRATIONS).await?;
    let store = OrdersStore::new(db);
    let step_timeout = Duration::from_millis(config.step_timeout_ms);
    let lease = Duration::from_millis(config.lease_ms);
    let peers = SagaPeers {
        inventory: InventoryClient::new(ctx.peers.transport(flotilla_inventory::NAME)),
        payments: PaymentsClient::new(ctx.peers.transport(flotilla_payments::NAME)),
        shipping: ShippingClient::new(ctx.peers.transport(flotilla_shipping::NAME)),
        reservation_ttl_secs: config.reservation_ttl_secs,
    };
    let timing = Timing {
        step_timeout,
        step_attempts: config.step_attempts,
        retry_base: Duration::from_millis(config.retry_base_ms),
        lease,
    };
    let metrics = metrics::OrderMetrics::new(ctx.name);
    let executor = Executor::new(
        store.clone(),
        peers,
        ctx.outbox()?,
        ctx.clock.clone(),
        ctx.shutdown.clone(),
        timing,
        metrics.clone(),
    );
    let checkout = Checkout {
        store: store.clone(),
        cart: CartClient::new(ctx.peers.transport(flotilla_cart::NAME)),
        catalog: CatalogClient::new(ctx.peers.transport(flotilla_catalog::NAME)),
        shipping: ShippingClient::new(ctx.peers.transport(flotilla_shipping::NAME)),
        peers: ctx.peers.clone(),
        executor: executor.clone(),
        clock: ctx.clock.clone(),
        call_timeout: step_timeout,
        max_lines: config.max_lines,
        claim_ttl: Duration::from_secs(
            config
                .reservation_ttl_secs
                .saturating_add(CLAIM_MARGIN_SECS),
        ),
        respond_within: Duration::from_millis(config.respond_within_ms),
        metrics,
    };
    Ok(Parts {
        store,
        checkout,
        executor,
        config,
    })
}

/// Starts orders: checks its configuration, migrates its database, returns its routes and the
/// saga recovery loop.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let parts = assemble(&ctx).await?;
    let interval = Duration::from_millis(parts.config.recovery_interval_ms);
    let state = api::OrdersState {
        checkout: parts.checkout,
        store: parts.store,
        executor: parts.executor.clone(),
    };
    let mut service = Service::new(NAME, api::routes(state), Some(ctx.db()?));
    service.tasks.push(Box::pin(executor::recovery::run(
        parts.executor,
        interval,
        ctx.shutdown.clone(),
    )));
    Ok(service)
}
