//! The inventory service: stock levels and reservations with an expiry. Stock can never go
//! negative and is never oversold.
//!
//! `available` is what can still be reserved: a reservation moves units out of it, releasing
//! the reservation (on request or when it expires) puts them back, committing it keeps them out
//! for good. The checkout saga in orders reserves, then commits or releases; every one of those
//! calls is idempotent, so the saga may retry any step. Other services use only [`contract`]
//! and [`client`].

pub mod client;
pub mod contract;

mod api;
mod domain;
mod error;
mod expiry;
mod store;

use std::time::Duration;

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::{Db, Service, ServiceContext, ServiceSpec, StartError};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::domain::{MAX_STOCK, MAX_TTL_SECS, ReservationLimits, StockAmount};
use crate::store::InventoryStore;

/// The service's name: its configuration section, database name and gateway prefix.
pub const NAME: &str = "inventory";

/// How hosts start the inventory.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: true,
};

/// The `[inventory]` configuration section.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct InventoryConfig {
    /// Products given stock on first start, when the stock table is empty: `p0000001` to
    /// `p{seed_products:07}`, the catalog's deterministic ids (default 1000).
    pub seed_products: u64,
    /// Units each seeded product starts with (default 100).
    pub initial_stock: i64,
    /// How long a reservation is held when the request does not say (default 900 s).
    pub reservation_ttl_secs: u64,
    /// How often the expiry task looks for expired reservations (default 1000 ms).
    pub expiry_interval_ms: u64,
    /// Most lines per reservation (default 50).
    pub max_lines: u32,
    /// Most units per reservation line (default 1000).
    pub max_quantity_per_line: i64,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            seed_products: 1000,
            initial_stock: 100,
            reservation_ttl_secs: 900,
            expiry_interval_ms: 1000,
            max_lines: 50,
            max_quantity_per_line: 1000,
        }
    }
}

impl InventoryConfig {
    /// Refuses settings that are typos rather than policies (a reservation that can hold
    /// nothing, a task that would spin) and returns the initial stock level.
    fn check(&self) -> Result<StockAmount, StartError> {
        let fail = |msg: String| Err(StartError::Other(format!("[inventory] {msg}")));
        // The highest number the catalog's ids (`p` and seven digits) can express.
        let max_seed = ProductId::MAX_NUMBER;
        if self.seed_products > u64::from(max_seed) {
            return fail(format!("seed_products must be at most {max_seed}"));
        }
        if !(1..=MAX_TTL_SECS).contains(&self.reservation_ttl_secs) {
            return fail(format!(
                "reservation_ttl_secs must be between 1 and {MAX_TTL_SECS}"
            ));
        }
        if self.expiry_interval_ms == 0 || self.max_lines == 0 || self.max_quantity_per_line < 1 {
            return fail(
                "expiry_interval_ms, max_lines and max_quantity_per_line must be at least 1"
                    .to_owned(),
            );
        }
        StockAmount::parse(self.initial_stock)
            .or_else(|_| fail(format!("initial_stock must be between 0 and {MAX_STOCK}")))
    }
}

/// Starts the inventory: checks its configuration, migrates and seeds its database, and returns
/// its routes and the expiry task.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let config: InventoryConfig = ctx.config()?;
    let initial_stock = config.check()?;
    let db = ctx.db()?;
    db.migrate(store::MIGRATIONS).await?;
    let store = InventoryStore::new(db.clone());
    let seeded = store
        .seed_if_empty(config.seed_products, initial_stock, ctx.clock.now())
        .await?;
    if seeded > 0 {
        tracing::info!(seeded, "inventory seeded");
    }
    let state = api::InventoryState {
        store: store.clone(),
        clock: ctx.clock.clone(),
        limits: ReservationLimits {
            max_lines: config.max_lines,
            max_quantity_per_line: config.max_quantity_per_line,
        },
        default_ttl_secs: config.reservation_ttl_secs,
    };
    let mut service = Service::new(NAME, api::routes(state), Some(db));
    service.tasks.push(Box::pin(expiry::run(
        store,
        ctx.clock.clone(),
        Duration::from_millis(config.expiry_interval_ms),
        ctx.shutdown.clone(),
    )));
    Ok(service)
}

/// Runs one pass of the expiry task on `db` (already migrated) as of `now`: releases every held
/// reservation whose expiry has passed and returns how many it released. The same pass
/// `POST /admin/expire` runs, for tools and tests that hold the database.
pub async fn release_expired(db: &Db, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
    InventoryStore::new(db.clone()).release_expired(now).await
}
