//! The payments service: a simulated card provider that authorizes, captures, voids and refunds,
//! with an append-only ledger of every money movement.
//!
//! Every movement carries an idempotency key and runs as one transaction that records its answer
//! with the key, so the orders saga can retry any call after a timeout or a crash and get the
//! same answer with the effect applied once: at most one capture and one refund per payment,
//! whatever the retries and races. Only Stripe's test cards are accepted, and of a card only its
//! brand and last four digits are kept. Other services use only [`contract`] and [`client`].

pub mod client;
pub mod contract;

mod api;
mod domain;
mod error;
mod idempotency;
mod key_retention;
mod operations;
mod store;

use flotilla_chassis::{Service, ServiceContext, ServiceSpec, StartError};
use serde::Deserialize;
use std::time::Duration;

/// The service's name: its configuration section, database name and gateway prefix.
pub const NAME: &str = "payments";

/// How hosts start payments.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: true,
};

/// The `[payments]` configuration section.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct PaymentsConfig {
    /// Largest amount one authorization may hold, in minor units (422 above it).
    pub max_amount_minor: i64,
    /// How long an idempotency key and its answer are kept, in hours.
    pub idempotency_retention_hours: u64,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            max_amount_minor: 100_000_000,
            idempotency_retention_hours: 24,
        }
    }
}

/// Starts payments: checks its configuration, migrates its database, returns its routes and the
/// task that forgets old idempotency keys.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let config: PaymentsConfig = ctx.config()?;
    if config.max_amount_minor <= 0 {
        return Err(StartError::Other(
            "[payments] max_amount_minor must be at least 1".to_owned(),
        ));
    }
    // A retention of zero would forget a key before its retry arrives: a double charge waiting
    // to happen, so it is refused rather than obeyed.
    if config.idempotency_retention_hours == 0 {
        return Err(StartError::Other(
            "[payments] idempotency_retention_hours must be at least 1".to_owned(),
        ));
    }
    let retention = Duration::from_secs(config.idempotency_retention_hours.saturating_mul(3600));
    let db = ctx.db()?;
    db.migrate(store::MIGRATIONS).await?;
    let store = store::PaymentsStore::new(db.clone());
    let state = api::PaymentsState {
        store: store.clone(),
        clock: ctx.clock.clone(),
        config,
    };
    let mut service = Service::new(NAME, api::routes(state), Some(db));
    service.tasks.push(Box::pin(key_retention::prune_keys(
        store,
        ctx.clock.clone(),
        retention,
        key_retention::PRUNE_EVERY,
        ctx.shutdown.clone(),
    )));
    Ok(service)
}
