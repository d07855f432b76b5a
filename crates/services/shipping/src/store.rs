//! All of shipping's SQL, in plain sight: quotes in [`quotes`] (storing, reading, purging old
//! ones) and shipments in [`shipments`] (creating one once per order, cancelling it, listing them
//! for operators), both methods of the one [`ShippingStore`].
//!
//! The correctness rules live in the schema and in single statements, so they hold on SQLite
//! and PostgreSQL alike and under any concurrency: `UNIQUE (order_id)` makes creation idempotent
//! (the loser of a race reads the winner's shipment), and cancelling is one conditional UPDATE.
//! The SQL is portable; the schema is in `migrations/0001_init.sql`. Times are BIGINT
//! milliseconds in the tables and [`time::OffsetDateTime`] everywhere else.

mod quotes;
mod shipments;

pub use quotes::QuoteRecord;
pub use shipments::CreateOutcome;

use flotilla_chassis::db::{CorruptRow, Migration};
use flotilla_chassis::{Currency, Db};

/// The schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration::portable(
    1,
    "quotes and shipments",
    include_str!("../migrations/0001_init.sql"),
)];

/// Shipping's tables.
#[derive(Debug, Clone)]
pub struct ShippingStore {
    db: Db,
}

impl ShippingStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// The currency stored in `column`, which only ever holds codes the service wrote.
fn parse_currency(column: &str, code: &str) -> Result<Currency, sqlx::Error> {
    Currency::parse(code).map_err(|_| CorruptRow::column(column, code))
}

#[cfg(test)]
pub(crate) mod tests;
