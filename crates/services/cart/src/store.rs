//! All of the cart's SQL, in plain sight: reading a user's lines, setting a line's quantity
//! under the `max_lines` rule, removing a line, emptying a cart, and taking ordered products out
//! of a cart when an order is confirmed.
//!
//! Every query is keyed by the user id, so nothing here can reach another user's cart. The SQL is
//! portable (SQLite and PostgreSQL); the schema is in `migrations/0001_init.sql`.

use std::collections::BTreeMap;

use flotilla_chassis::Db;
use flotilla_chassis::db::Migration;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::domain::{ProductId, ProductIdError, Quantity, StoredLine};

/// The cart's schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration::portable(
    1,
    "init",
    include_str!("../migrations/0001_init.sql"),
)];

/// Most products one statement of [`CartStore::take_ordered`] names (two bound values each: far
/// below either backend's limit on bound parameters).
const PRODUCTS_PER_STATEMENT: usize = 500;

/// The outcome of [`CartStore::set_quantity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The line now holds the quantity asked for.
    Stored,
    /// The product is not in the cart and the cart already holds `max_lines` lines: nothing was
    /// written.
    CartFull,
}

/// A stored row that breaks the rules the writes enforce (someone edited the table by hand).
#[derive(Debug, thiserror::Error)]
enum CorruptRow {
    #[error("cart_items.product_id: {0}")]
    ProductId(#[from] ProductIdError),
    #[error("cart_items.quantity {0} is out of range")]
    Quantity(i64),
}

/// The cart's tables.
#[derive(Debug, Clone)]
pub struct CartStore {
    db: Db,
}

impl CartStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The lines of `user_id`'s cart, oldest first (ties broken by product id, so the order is
    /// stable).
    pub async fn lines(&self, user_id: &str) -> Result<Vec<StoredLine>, sqlx::Error> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT product_id, quantity FROM cart_items
             WHERE user_id = $1
             ORDER BY added_at, product_id",
        )
        .bind(user_id)
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|(product_id, quantity)| {
                let product_id = ProductId::parse(&product_id)
                    .map_err(|e| sqlx::Error::Decode(Box::new(CorruptRow::from(e))))?;
                let quantity = Quantity::from_stored(quantity)
                    .ok_or_else(|| sqlx::Error::Decode(Box::new(CorruptRow::Quantity(quantity))))?;
                Ok(StoredLine {
                    product_id,
                    quantity,
                })
            })
            .collect()
    }

    /// Sets the quantity of `product_id` in `user_id`'s cart, adding the line if needed, unless
    /// that would make the cart hold more than `max_lines` lines. Changing the quantity of a line
    /// already there is always allowed (even if `max_lines` was lowered since it was added).
    pub async fn set_quantity(
        &self,
        user_id: &str,
        product_id: &ProductId,
        quantity: Quantity,
        max_lines: u32,
        now_millis: i64,
    ) -> Result<SetOutcome, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        // Write first: taking the cart's lock before reading means the count below cannot be
        // overtaken by a concurrent add (and on SQLite, a transaction that writes first waits
        // for the lock instead of failing on a stale read snapshot).
        sqlx::query(
            "INSERT INTO carts (user_id, updated_at) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(now_millis)
        .execute(&mut *tx)
        .await?;
        // One statement adds or updates the line, unless it is new and the cart is full (then
        // it writes nothing). The lock taken above keeps the count true until the commit.
        let stored = sqlx::query(
            "INSERT INTO cart_items (user_id, product_id, quantity, added_at, updated_at)
             SELECT $1, $2, $3, $4, $4
             WHERE EXISTS (SELECT 1 FROM cart_items WHERE user_id = $1 AND product_id = $2)
                OR (SELECT COUNT(*) FROM cart_items WHERE user_id = $1) < $5
             ON CONFLICT (user_id, product_id)
             DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(product_id.as_str())
        .bind(i64::from(quantity.get()))
        .bind(now_millis)
        .bind(i64::from(max_lines))
        .execute(&mut *tx)
        .await?;
        if stored.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(SetOutcome::CartFull);
        }
        tx.commit().await?;
        Ok(SetOutcome::Stored)
    }

    /// Removes `product_id` from `user_id`'s cart; removing an absent line does nothing.
    pub async fn remove(&self, user_id: &str, product_id: &ProductId) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND product_id = $2")
            .bind(user_id)
            .bind(product_id.as_str())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Empties `user_id`'s cart.
    pub async fn clear(&self, user_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM cart_items WHERE user_id = $1")
            .bind(user_id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Takes the lock on `user_id`'s cart row inside `conn`, as [`CartStore::set_quantity`]
    /// does first, so that changes to one cart are serialised in one lock order (cart row, then
    /// its lines) and cannot deadlock on PostgreSQL. A user who never had a cart has no row and
    /// nothing to lock (and nothing to take out).
    pub async fn lock_cart(
        conn: &mut AnyConnection,
        user_id: &str,
        now_millis: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE carts SET updated_at = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(now_millis)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Takes the ordered quantities out of `user_id`'s cart inside the caller's transaction
    /// `conn`: each line shrinks by the quantity ordered of its product, or goes when it would
    /// hold nothing. Lines of other products, and any quantity beyond what was ordered, stay. A
    /// product listed more than once is taken out by the sum of its quantities.
    ///
    /// Two statements for any number of products, and one when every ordered line goes (the
    /// usual case: the cart held what was ordered). Each changes several lines in whatever order
    /// the database visits them, which is safe because the caller holds the cart's row
    /// ([`CartStore::lock_cart`]) and every transaction that changes several lines of a cart
    /// takes it first.
    pub async fn take_ordered(
        conn: &mut AnyConnection,
        user_id: &str,
        ordered: &[(ProductId, Quantity)],
        now_millis: i64,
    ) -> Result<(), sqlx::Error> {
        let mut by_product: BTreeMap<&str, i64> = BTreeMap::new();
        for (product_id, quantity) in ordered {
            *by_product.entry(product_id.as_str()).or_default() += i64::from(quantity.get());
        }
        let all: Vec<(&str, i64)> = by_product.into_iter().collect();
        for chunk in all.chunks(PRODUCTS_PER_STATEMENT) {
            // Delete before shrinking: the other order would first shrink a line and then
            // delete it when what is left happens to be no more than the quantity ordered.
            // Only placeholders are spliced in; every value is bound below.
            let doomed = (0..chunk.len())
                .map(|i| {
                    format!(
                        "(product_id = ${} AND quantity <= ${})",
                        2 * i + 2,
                        2 * i + 3
                    )
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            let mut delete = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
                "DELETE FROM cart_items WHERE user_id = $1 AND ({doomed}) RETURNING product_id"
            )))
            .bind(user_id);
            for (product_id, quantity) in chunk {
                delete = delete.bind(*product_id).bind(*quantity);
            }
            let gone = delete.fetch_all(&mut *conn).await?;
            let left: Vec<&(&str, i64)> = chunk
                .iter()
                .filter(|(product_id, _)| !gone.iter().any(|g| g == product_id))
                .collect();
            if left.is_empty() {
                continue;
            }
            // `column1`/`column2` are the names both backends give the columns of a VALUES list.
            let rows = (0..left.len())
                .map(|i| format!("(${}, ${})", 2 * i + 3, 2 * i + 4))
                .collect::<Vec<_>>()
                .join(", ");
            let mut shrink = sqlx::query(AssertSqlSafe(format!(
                "UPDATE cart_items SET quantity = cart_items.quantity - o.column2, updated_at = $2
                 FROM (VALUES {rows}) AS o
                 WHERE cart_items.user_id = $1 AND cart_items.product_id = o.column1
                   AND cart_items.quantity > o.column2"
            )))
            .bind(user_id)
            .bind(now_millis);
            for (product_id, quantity) in left {
                shrink = shrink.bind(*product_id).bind(*quantity);
            }
            shrink.execute(&mut *conn).await?;
        }
        Ok(())
    }
}
