//! All of shipping's SQL, in plain sight: storing and reading quotes, creating a shipment once
//! per order, cancelling it, listing shipments for operators, and purging old quotes.
//!
//! The correctness rules live in the schema and in single statements, so they hold on SQLite
//! and PostgreSQL alike and under any concurrency: `UNIQUE (order_id)` makes creation idempotent
//! (the loser of a race reads the winner's shipment), and cancelling is one conditional UPDATE.
//! The SQL is portable; the schema is in `migrations/0001_init.sql`.

use flotilla_chassis::clock::rfc3339;
use flotilla_chassis::db::{Migration, is_unique_violation};
use flotilla_chassis::pagination::PageRequest;
use flotilla_chassis::{Currency, Db, Money};
use sqlx::AssertSqlSafe;
use std::collections::HashMap;

use crate::contract::{Address, Shipment, ShipmentLine, ShipmentStatus};
use crate::domain::{self, NewShipment, QuoteInput};

/// The schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration::portable(
    1,
    "quotes and shipments",
    include_str!("../migrations/0001_init.sql"),
)];

/// How many times a shipment insert is retried when its random tracking number is taken.
const TRACKING_ATTEMPTS: u32 = 3;

/// The columns of a shipment, in [`ShipmentRow`]'s order (a macro so `concat!` can build
/// `&'static str` queries from it).
macro_rules! shipment_columns {
    () => {
        "id, order_id, tracking_number, status, name, line1, city, postal_code, country, \
         cost_minor, currency, created_at, updated_at"
    };
}

/// A stored quote, with its times as stored (unix millis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRecord {
    /// The quote id.
    pub id: String,
    /// The destination it was priced for.
    pub country: String,
    /// The price.
    pub amount: Money,
    /// When it stops being honoured.
    pub expires_at: i64,
}

/// What [`ShippingStore::create_shipment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new shipment was stored.
    Created(Shipment),
    /// The order already had this shipment; nothing was written.
    Existing(Shipment),
}

/// A stored value that breaks the rules the writes enforce (someone edited a table by hand).
#[derive(Debug, thiserror::Error)]
#[error("corrupt {column}: {value:?}")]
struct CorruptRow {
    column: &'static str,
    value: String,
}

fn corrupt(column: &'static str, value: impl ToString) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(CorruptRow {
        column,
        value: value.to_string(),
    }))
}

#[derive(sqlx::FromRow)]
struct ShipmentRow {
    id: String,
    order_id: String,
    tracking_number: String,
    status: String,
    name: String,
    line1: String,
    city: String,
    postal_code: String,
    country: String,
    cost_minor: i64,
    currency: String,
    created_at: i64,
    updated_at: i64,
}

impl ShipmentRow {
    fn into_shipment(self, lines: Vec<ShipmentLine>) -> Result<Shipment, sqlx::Error> {
        let status = match self.status.as_str() {
            "created" => ShipmentStatus::Created,
            "cancelled" => ShipmentStatus::Cancelled,
            other => return Err(corrupt("shipments.status", other)),
        };
        let currency = parse_currency("shipments.currency", &self.currency)?;
        Ok(Shipment {
            id: self.id,
            order_id: self.order_id,
            tracking_number: self.tracking_number,
            status,
            address: Address {
                name: self.name,
                line1: self.line1,
                city: self.city,
                postal_code: self.postal_code,
                country: self.country,
            },
            lines,
            cost: Money::new(self.cost_minor, currency),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        })
    }
}

fn parse_currency(column: &'static str, code: &str) -> Result<Currency, sqlx::Error> {
    Currency::parse(code).map_err(|_| corrupt(column, code))
}

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

    /// Stores a quote priced at `amount` for `input`.
    pub async fn insert_quote(
        &self,
        input: &QuoteInput,
        amount: Money,
        now: i64,
        expires_at: i64,
    ) -> Result<QuoteRecord, sqlx::Error> {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO quotes (id, country, postal_code, items, weight_grams, amount_minor,
                                 currency, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(input.country.as_str())
        .bind(&input.postal_code)
        .bind(i64::from(input.items.get()))
        .bind(input.weight.map(|w| i64::from(w.0)))
        .bind(amount.amount_minor)
        .bind(amount.currency.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(self.db.pool())
        .await?;
        Ok(QuoteRecord {
            id,
            country: input.country.as_str().to_owned(),
            amount,
            expires_at,
        })
    }

    /// The quote `id`, expired or not.
    pub async fn quote(&self, id: &str) -> Result<Option<QuoteRecord>, sqlx::Error> {
        let row: Option<(String, String, i64, String, i64)> = sqlx::query_as(
            "SELECT id, country, amount_minor, currency, expires_at FROM quotes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|(id, country, amount_minor, currency, expires_at)| {
            let currency = parse_currency("quotes.currency", &currency)?;
            Ok(QuoteRecord {
                id,
                country,
                amount: Money::new(amount_minor, currency),
                expires_at,
            })
        })
        .transpose()
    }

    /// Deletes the quotes that expired before `before`; returns how many.
    pub async fn purge_quotes(&self, before: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM quotes WHERE expires_at < $1")
            .bind(before)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Creates the shipment of `new.order_id` costing `cost`, unless the order has one already,
    /// which is then returned as it is.
    pub async fn create_shipment(
        &self,
        new: &NewShipment,
        cost: Money,
        now: i64,
    ) -> Result<CreateOutcome, sqlx::Error> {
        let mut attempt = 1;
        loop {
            let id = uuid::Uuid::now_v7().to_string();
            let tracking_number = domain::tracking_number(&mut rand::rng());
            let mut tx = self.db.pool().begin().await?;
            // The insert comes first: on SQLite the transaction then holds the write lock for
            // the lines that follow (no read-then-write upgrade to fail with SQLITE_BUSY).
            let inserted = sqlx::query(
                "INSERT INTO shipments (id, order_id, tracking_number, status, quote_id, name,
                                        line1, city, postal_code, country, cost_minor, currency,
                                        created_at, updated_at)
                 VALUES ($1, $2, $3, 'created', $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
                 ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(&id)
            .bind(&new.order_id)
            .bind(&tracking_number)
            .bind(new.quote_id.as_deref())
            .bind(&new.address.name)
            .bind(&new.address.line1)
            .bind(&new.address.city)
            .bind(&new.address.postal_code)
            .bind(&new.address.country)
            .bind(cost.amount_minor)
            .bind(cost.currency.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique_violation(&e) && attempt < TRACKING_ATTEMPTS => {
                    tracing::warn!("tracking number collision; drawing another");
                    tx.rollback().await?;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(done) if done.rows_affected() == 0 => {
                    tx.rollback().await?;
                    // The conflicting row is committed (an insert waits for the one it
                    // conflicts with), and shipments are never deleted.
                    let existing = self.for_order(&new.order_id).await?;
                    return existing
                        .map(CreateOutcome::Existing)
                        .ok_or(sqlx::Error::RowNotFound);
                }
                Ok(_) => {}
            }
            for (position, line) in new.lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO shipment_lines (shipment_id, position, product_id, quantity)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&id)
                .bind(position as i64)
                .bind(&line.product_id)
                .bind(i64::from(line.quantity))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            return Ok(CreateOutcome::Created(Shipment {
                id,
                order_id: new.order_id.clone(),
                tracking_number,
                status: ShipmentStatus::Created,
                address: new.address.clone(),
                lines: new.lines.clone(),
                cost,
                created_at: rfc3339(now),
                updated_at: rfc3339(now),
            }));
        }
    }

    /// The shipment `id`.
    pub async fn shipment(&self, id: &str) -> Result<Option<Shipment>, sqlx::Error> {
        let row = sqlx::query_as(concat!(
            "SELECT ",
            shipment_columns!(),
            " FROM shipments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        self.one(row).await
    }

    /// The shipment of order `order_id`.
    pub async fn for_order(&self, order_id: &str) -> Result<Option<Shipment>, sqlx::Error> {
        let row = sqlx::query_as(concat!(
            "SELECT ",
            shipment_columns!(),
            " FROM shipments WHERE order_id = $1"
        ))
        .bind(order_id)
        .fetch_optional(self.db.pool())
        .await?;
        self.one(row).await
    }

    /// Cancels shipment `id` (a cancelled one stays as it is); `None` when it does not exist.
    pub async fn cancel(&self, id: &str, now: i64) -> Result<Option<Shipment>, sqlx::Error> {
        sqlx::query(
            "UPDATE shipments SET status = 'cancelled', updated_at = $2
             WHERE id = $1 AND status = 'created'",
        )
        .bind(id)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        self.shipment(id).await
    }

    /// One page of shipments, newest first, of one status or all; and how many there are.
    pub async fn list(
        &self,
        status: Option<ShipmentStatus>,
        page: PageRequest,
    ) -> Result<(Vec<Shipment>, u64), sqlx::Error> {
        // Two spellings rather than `$1 IS NULL OR status = $1`: a parameter only ever compared
        // with NULL has no type PostgreSQL can infer.
        let (total, rows): (i64, Vec<ShipmentRow>) = match status {
            Some(status) => (
                sqlx::query_scalar("SELECT COUNT(*) FROM shipments WHERE status = $1")
                    .bind(status.as_str())
                    .fetch_one(self.db.pool())
                    .await?,
                sqlx::query_as(concat!(
                    "SELECT ",
                    shipment_columns!(),
                    " FROM shipments WHERE status = $1
                     ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(status.as_str())
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(self.db.pool())
                .await?,
            ),
            None => (
                sqlx::query_scalar("SELECT COUNT(*) FROM shipments")
                    .fetch_one(self.db.pool())
                    .await?,
                sqlx::query_as(concat!(
                    "SELECT ",
                    shipment_columns!(),
                    " FROM shipments ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
                ))
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(self.db.pool())
                .await?,
            ),
        };
        let shipments = self.with_lines(rows).await?;
        Ok((shipments, u64::try_from(total).unwrap_or(0)))
    }

    /// `row` with its lines.
    async fn one(&self, row: Option<ShipmentRow>) -> Result<Option<Shipment>, sqlx::Error> {
        Ok(self.with_lines(row.into_iter().collect()).await?.pop())
    }

    /// Attaches their lines to `rows`, reading the lines of all of them in one query.
    async fn with_lines(&self, rows: Vec<ShipmentRow>) -> Result<Vec<Shipment>, sqlx::Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=rows.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT shipment_id, product_id, quantity FROM shipment_lines
             WHERE shipment_id IN ({}) ORDER BY shipment_id, position",
            placeholders.join(", ")
        );
        // Only placeholders are spliced in; every id is bound below.
        let mut query = sqlx::query_as::<_, (String, String, i64)>(AssertSqlSafe(sql));
        for row in &rows {
            query = query.bind(&row.id);
        }
        let mut lines: HashMap<String, Vec<ShipmentLine>> = HashMap::new();
        for (shipment_id, product_id, quantity) in query.fetch_all(self.db.pool()).await? {
            let quantity = u32::try_from(quantity)
                .map_err(|_| corrupt("shipment_lines.quantity", quantity))?;
            lines.entry(shipment_id).or_default().push(ShipmentLine {
                product_id,
                quantity,
            });
        }
        rows.into_iter()
            .map(|row| {
                let own = lines.remove(&row.id).unwrap_or_default();
                row.into_shipment(own)
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
