//! All of the cart's SQL, in plain sight: reading a user's lines and version, setting a line's
//! quantity under the `max_lines` rule, removing a line, emptying a cart, claiming a cart for
//! one checkout and releasing it, and taking ordered products out of a cart when an order is
//! confirmed.
//!
//! Every query is keyed by the user id, so nothing here can reach another user's cart. Every
//! change to a cart's lines bumps its version in the same transaction, which is what a checkout
//! claim is conditional on. The SQL is portable (SQLite and PostgreSQL); the schema is in
//! `migrations/`.

use std::collections::BTreeMap;

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Db;
use flotilla_chassis::clock::millis;
use flotilla_chassis::db::{CorruptRow, DbTx, Migration};
use sqlx::{AnyConnection, AssertSqlSafe};
use time::OffsetDateTime;

use crate::domain::{Quantity, StoredLine};

/// The cart's schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration::portable(1, "init", include_str!("../migrations/0001_init.sql")),
    Migration::portable(
        2,
        "checkout claim",
        include_str!("../migrations/0002_checkout_claim.sql"),
    ),
];

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

/// The outcome of [`CartStore::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The order holds the cart (now, or already: a repeat of the same order's claim).
    Claimed,
    /// Another order's claim is still running: nothing was written.
    HeldByAnother,
    /// The cart is no longer at the version the order read (or has no lines at all): nothing
    /// was written.
    Changed,
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

    /// The version of `user_id`'s cart: 0 for a cart never written to.
    ///
    /// Read *before* the lines when both are shown: a change that lands in between then makes
    /// the version older than the lines, so a claim at that version fails (the safe way round),
    /// and never claims lines that were not read.
    pub async fn version(&self, user_id: &str) -> Result<i64, sqlx::Error> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM carts WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(version.unwrap_or(0))
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
                // Only parsed values are written: anything else was edited by hand.
                let product_id = ProductId::parse(&product_id)
                    .ok_or_else(|| CorruptRow::column("cart_items.product_id", &product_id))?;
                let quantity = Quantity::from_stored(quantity)
                    .ok_or_else(|| CorruptRow::column("cart_items.quantity", quantity))?;
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
        product_id: ProductId,
        quantity: Quantity,
        max_lines: u32,
        now: OffsetDateTime,
    ) -> Result<SetOutcome, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        // Write first: taking the cart's lock before reading means the count below cannot be
        // overtaken by a concurrent add (and on SQLite, a transaction that writes first waits
        // for the lock instead of failing on a stale read snapshot).
        sqlx::query(
            "INSERT INTO carts (user_id, updated_at, version) VALUES ($1, $2, 1)
             ON CONFLICT (user_id)
             DO UPDATE SET updated_at = excluded.updated_at, version = carts.version + 1",
        )
        .bind(user_id)
        .bind(millis(now))
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
        .bind(product_id.to_string())
        .bind(i64::from(quantity.get()))
        .bind(millis(now))
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
    pub async fn remove(
        &self,
        user_id: &str,
        product_id: ProductId,
        now: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        Self::lock_cart(&mut tx, user_id, now).await?;
        let gone = sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND product_id = $2")
            .bind(user_id)
            .bind(product_id.to_string())
            .execute(&mut *tx)
            .await?;
        Self::commit_if_changed(tx, gone.rows_affected()).await
    }

    /// Empties `user_id`'s cart.
    pub async fn clear(&self, user_id: &str, now: OffsetDateTime) -> Result<(), sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        Self::lock_cart(&mut tx, user_id, now).await?;
        let gone = sqlx::query("DELETE FROM cart_items WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        Self::commit_if_changed(tx, gone.rows_affected()).await
    }

    /// Commits a change to a cart's lines, or rolls it back (version bump included) when it
    /// changed no line: the version counts changes, and removing nothing is none.
    async fn commit_if_changed(tx: DbTx, lines_changed: u64) -> Result<(), sqlx::Error> {
        if lines_changed == 0 {
            tx.rollback().await
        } else {
            tx.commit().await
        }
    }

    /// Claims `user_id`'s cart for the checkout of `order_id` until `expires_at`, if the cart
    /// is still at `version` and no other order's claim is running at `now`. One conditional
    /// update: of many checkouts racing for one cart, the first to write wins and the others
    /// find the claim taken (PostgreSQL re-checks the condition on the row the winner
    /// committed; SQLite runs one writer at a time). A repeat for the same order (a retried
    /// request, a twin with the same idempotency key) succeeds whatever the version is now, and
    /// extends the claim: the order is the same one.
    pub async fn claim(
        &self,
        user_id: &str,
        order_id: &str,
        version: i64,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<ClaimOutcome, sqlx::Error> {
        let claimed = sqlx::query(
            "UPDATE carts SET claim_order_id = $2, claim_expires_at = $4
             WHERE user_id = $1
               AND (claim_order_id = $2
                    OR (version = $3
                        AND (claim_order_id IS NULL OR claim_expires_at <= $5)))",
        )
        .bind(user_id)
        .bind(order_id)
        .bind(version)
        .bind(millis(expires_at))
        .bind(millis(now))
        .execute(self.db.pool())
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(ClaimOutcome::Claimed);
        }
        // Only to say why; the decision was made above.
        let current: Option<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT version, claim_order_id, claim_expires_at FROM carts WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(match current {
            Some((stored, Some(_), Some(until))) if stored == version && until > millis(now) => {
                ClaimOutcome::HeldByAnother
            }
            _ => ClaimOutcome::Changed,
        })
    }

    /// Ends `order_id`'s claim on `user_id`'s cart, inside `conn`; a claim another order holds
    /// now (this one expired and was taken over) is left alone, and releasing twice is harmless.
    pub async fn release(
        conn: &mut AnyConnection,
        user_id: &str,
        order_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE carts SET claim_order_id = NULL, claim_expires_at = NULL
             WHERE user_id = $1 AND claim_order_id = $2",
        )
        .bind(user_id)
        .bind(order_id)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// [`CartStore::release`] on its own connection.
    pub async fn release_now(&self, user_id: &str, order_id: &str) -> Result<(), sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        Self::release(&mut conn, user_id, order_id).await
    }

    /// Takes the lock on `user_id`'s cart row inside `conn`, as [`CartStore::set_quantity`]
    /// does first, so that changes to one cart are serialised in one lock order (cart row, then
    /// its lines) and cannot deadlock on PostgreSQL, and bumps the cart's version: the caller is
    /// about to change its lines. A user who never had a cart has no row and nothing to lock
    /// (and nothing to take out).
    pub async fn lock_cart(
        conn: &mut AnyConnection,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE carts SET updated_at = $2, version = version + 1 WHERE user_id = $1")
            .bind(user_id)
            .bind(millis(now))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Takes confirmed order `order_id`'s lines out of `user_id`'s cart and ends its claim,
    /// inside the caller's transaction `conn` — unless they were taken out before (see
    /// `taken_orders`): false then, and nothing changed.
    pub async fn take_out_order(
        conn: &mut AnyConnection,
        user_id: &str,
        order_id: &str,
        ordered: &[(ProductId, Quantity)],
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let first = sqlx::query(
            "INSERT INTO taken_orders (order_id, user_id, taken_at) VALUES ($1, $2, $3)
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(user_id)
        .bind(millis(now))
        .execute(&mut *conn)
        .await?;
        if first.rows_affected() == 0 {
            return Ok(false);
        }
        Self::lock_cart(conn, user_id, now).await?;
        Self::take_ordered(conn, user_id, ordered, now).await?;
        // The claim ends with the lines it covered gone and the version moved on, all in one
        // transaction: no checkout can claim those lines again.
        Self::release(conn, user_id, order_id).await?;
        Ok(true)
    }

    /// [`CartStore::take_out_order`] in a transaction of its own.
    pub async fn take_out_order_now(
        &self,
        user_id: &str,
        order_id: &str,
        ordered: &[(ProductId, Quantity)],
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let taken = Self::take_out_order(&mut tx, user_id, order_id, ordered, now).await?;
        tx.commit().await?;
        Ok(taken)
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
        now: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        let mut by_product: BTreeMap<String, i64> = BTreeMap::new();
        for (product_id, quantity) in ordered {
            *by_product.entry(product_id.to_string()).or_default() += i64::from(quantity.get());
        }
        let all: Vec<(String, i64)> = by_product.into_iter().collect();
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
                delete = delete.bind(product_id.as_str()).bind(*quantity);
            }
            let gone = delete.fetch_all(&mut *conn).await?;
            let left: Vec<&(String, i64)> = chunk
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
            .bind(millis(now));
            for (product_id, quantity) in left {
                shrink = shrink.bind(product_id.as_str()).bind(*quantity);
            }
            shrink.execute(&mut *conn).await?;
        }
        Ok(())
    }
}
