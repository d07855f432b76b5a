//! Stock levels: seeding the catalog's products on first start, reading a level, and an admin
//! setting one. None of these touch reservations.

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::clock::millis;
use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::InventoryStore;
use crate::domain::StockAmount;

/// Stock rows per seeding statement (one bound id each; the level and time are shared).
const SEED_ROWS_PER_STATEMENT: u64 = 500;
/// Seeding statements per transaction: few commits, short write locks.
const SEED_STATEMENTS_PER_TRANSACTION: u64 = 4;

impl InventoryStore {
    /// On an empty stock table, creates `p0000001`..`p{count:07}` with `initial` units each;
    /// otherwise does nothing. Returns the rows inserted (a second instance seeding at the same
    /// moment skips the rows the first wrote).
    pub async fn seed_if_empty(
        &self,
        count: u64,
        initial: StockAmount,
        now: OffsetDateTime,
    ) -> Result<u64, sqlx::Error> {
        let existing: Option<String> = sqlx::query_scalar("SELECT product_id FROM stock LIMIT 1")
            .fetch_optional(self.db.pool())
            .await?;
        if existing.is_some() {
            return Ok(0);
        }
        let per_transaction = SEED_ROWS_PER_STATEMENT * SEED_STATEMENTS_PER_TRANSACTION;
        let mut inserted = 0;
        let mut first = 1;
        while first <= count {
            let last = count.min(first + per_transaction - 1);
            let mut tx = self.db.pool().begin().await?;
            let mut start = first;
            while start <= last {
                let end = last.min(start + SEED_ROWS_PER_STATEMENT - 1);
                // `count` was checked against the largest seven-digit number at start-up.
                let products: Vec<ProductId> =
                    (start..=end).filter_map(ProductId::from_number).collect();
                // Only placeholders are spliced in; every value is bound below.
                let values = (0..products.len())
                    .map(|i| format!("(${}, $1, $2)", i + 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO stock (product_id, available, updated_at) VALUES {values} \
                     ON CONFLICT (product_id) DO NOTHING"
                );
                let mut query = sqlx::query(AssertSqlSafe(sql))
                    .bind(initial.get())
                    .bind(millis(now));
                for product in &products {
                    query = query.bind(product.to_string());
                }
                inserted += query.execute(&mut *tx).await?.rows_affected();
                start = end + 1;
            }
            tx.commit().await?;
            first = last + 1;
        }
        Ok(inserted)
    }

    /// Units of `product` that can still be reserved; `None` when it has no stock row.
    pub async fn available(&self, product: ProductId) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT available FROM stock WHERE product_id = $1")
            .bind(product.to_string())
            .fetch_optional(self.db.pool())
            .await
    }

    /// Sets the reservable units of `product`, creating its row if needed. Reservations are not
    /// touched: units they hold stay held, and return on top of `amount` if released.
    pub async fn set_available(
        &self,
        product: ProductId,
        amount: StockAmount,
        now: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO stock (product_id, available, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (product_id)
             DO UPDATE SET available = excluded.available, updated_at = excluded.updated_at",
        )
        .bind(product.to_string())
        .bind(amount.get())
        .bind(millis(now))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}
