//! All of the orders service's SQL, in plain sight: placing an order (order, lines, history,
//! saga and idempotency key in one transaction) and reading orders here; the saga's own
//! queries (leases, progress, the log) in [`sagas`], its admin views in `saga_views`.
//!
//! The SQL is portable (SQLite and PostgreSQL, `$n` placeholders, BIGINT/TEXT columns); the
//! schema and the reasons for its keys are in `migrations/0001_init.sql`.

pub mod operator_actions;
mod rows;
mod saga_views;
pub mod sagas;

use flotilla_chassis::clock::millis;
use flotilla_chassis::db::{CorruptRow, Migration, is_unique_violation, placeholders};
use flotilla_chassis::idempotency_key::IdempotencyKey;
use flotilla_chassis::pagination::{Page, PageRequest};
use flotilla_chassis::{Db, Money};
use sqlx::Row;
use time::OffsetDateTime;

use crate::contract::{Order, OrderStatus, OrdersSummary};
use crate::domain::{CardNumber, PLACED_NOTE, PricedOrder};
use crate::saga::{SagaState, Step};

/// The orders schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration::portable(1, "init", include_str!("../migrations/0001_init.sql")),
    Migration {
        version: 2,
        name: "saga log trigger",
        sql: include_str!("../migrations/0002_saga_log_trigger.sqlite.sql"),
        sqlite: Some(include_str!(
            "../migrations/0002_saga_log_trigger.sqlite.sql"
        )),
        postgres: Some(include_str!(
            "../migrations/0002_saga_log_trigger.postgres.sql"
        )),
    },
    Migration::portable(
        3,
        "saga review",
        include_str!("../migrations/0003_saga_review.sql"),
    ),
];

/// Everything stored when an order is placed.
#[derive(Debug)]
pub struct NewOrder<'a> {
    /// The order as checkout priced it.
    pub priced: &'a PricedOrder,
    /// The card, held until the authorization has an answer.
    pub card: &'a CardNumber,
    /// The checkout's idempotency key.
    pub key: &'a IdempotencyKey,
    /// See [`crate::domain::fingerprint`].
    pub fingerprint: &'a str,
    /// The executor that will run the saga, which holds it from the start.
    pub lease_owner: &'a str,
    /// Until when it holds it.
    pub lease_until: OffsetDateTime,
    pub now: OffsetDateTime,
}

/// The outcome of [`OrdersStore::place`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The order, its saga and the key are stored.
    Created,
    /// A concurrent request with the same key stored its order first; nothing was written.
    Twin(StoredKey),
}

/// What an idempotency key points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The fingerprint of the request that used the key first.
    pub fingerprint: String,
    pub order_id: String,
}

/// Which orders a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFilter<'a> {
    /// Only this user's.
    pub user_id: Option<&'a str>,
    /// Only those with this status.
    pub status: Option<OrderStatus>,
}

/// The orders service's tables.
#[derive(Debug, Clone)]
pub struct OrdersStore {
    db: Db,
}

impl OrdersStore {
    /// A store over `db`, which must already be migrated.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The database, for the platform's tables (the audit trail) beside the orders'.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The order `key` created for `user_id`, if any.
    pub async fn checkout_key(
        &self,
        user_id: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<StoredKey>, sqlx::Error> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT request_hash, order_id FROM checkout_keys WHERE user_id = $1 AND key = $2",
        )
        .bind(user_id)
        .bind(key.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|(fingerprint, order_id)| StoredKey {
            fingerprint,
            order_id,
        }))
    }

    /// Stores a PENDING order with its lines, first history entry, saga (at RESERVE, held by
    /// `lease_owner`) and idempotency key, all or nothing.
    pub async fn place(&self, order: &NewOrder<'_>) -> Result<Placed, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        // The key goes first: of two requests racing with one key, the second waits here for the
        // first to commit and then meets the primary key, before writing anything else.
        let key = sqlx::query(
            "INSERT INTO checkout_keys (user_id, key, request_hash, order_id, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&order.priced.user_id)
        .bind(order.key.as_str())
        .bind(order.fingerprint)
        .bind(order.priced.id.as_str())
        .bind(millis(order.now))
        .execute(&mut *tx)
        .await;
        if let Err(err) = key {
            tx.rollback().await?;
            if !is_unique_violation(&err) {
                return Err(err);
            }
            let twin = self.checkout_key(&order.priced.user_id, order.key).await?;
            return twin.map(Placed::Twin).ok_or(err);
        }
        let priced = order.priced;
        let (address, totals) = (&priced.address, priced.totals);
        sqlx::query(
            "INSERT INTO orders (id, user_id, status, reason, currency, subtotal_minor,
                                 shipping_minor, total_minor, address_name, address_line1,
                                 address_city, address_postal_code, address_country, quote_id,
                                 created_at, updated_at)
             VALUES ($1, $2, 'PENDING', NULL, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(priced.id.as_str())
        .bind(&priced.user_id)
        .bind(totals.total.currency.as_str())
        .bind(totals.subtotal.amount_minor)
        .bind(totals.shipping.amount_minor)
        .bind(totals.total.amount_minor)
        .bind(&address.name)
        .bind(&address.line1)
        .bind(&address.city)
        .bind(&address.postal_code)
        .bind(&address.country)
        .bind(priced.quote_id.as_deref())
        .bind(millis(order.now))
        .execute(&mut *tx)
        .await?;
        // One statement for all the lines: each statement is a round trip to the database.
        let values = (0..priced.lines.len())
            .map(|i| format!("($1, {})", placeholders(2 + 6 * i, 6)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO order_lines (order_id, line_no, product_id, name, unit_price_minor,
                                      quantity, line_total_minor) VALUES {values}"
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(priced.id.as_str());
        for (line_no, line) in (1_i64..).zip(&priced.lines) {
            insert = insert
                .bind(line_no)
                .bind(line.product_id.to_string())
                .bind(&line.name)
                .bind(line.unit_price.amount_minor)
                .bind(i64::from(line.quantity))
                .bind(line.line_total.amount_minor);
        }
        insert.execute(&mut *tx).await?;
        sagas::append_history(
            &mut tx,
            priced.id.as_str(),
            OrderStatus::Pending,
            Some(PLACED_NOTE),
            order.now,
        )
        .await?;
        let start = SagaState::start();
        sqlx::query(
            "INSERT INTO sagas (order_id, status, step, attempts, failure, card_number, payment_id,
                                shipment_id, tracking_number, lease_owner, lease_until,
                                next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, 0, NULL, $4, NULL, NULL, NULL, $5, $6, $7, $7, $7)",
        )
        .bind(priced.id.as_str())
        .bind(start.phase.as_str())
        .bind(Step::Reserve.as_str())
        .bind(order.card.digits())
        .bind(order.lease_owner)
        .bind(millis(order.lease_until))
        .bind(millis(order.now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Placed::Created)
    }

    /// One order, whoever owns it.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, sqlx::Error> {
        let sql = format!("{} WHERE o.id = $1", rows::ORDER_SELECT);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        match row {
            Some(row) => Ok(rows::complete(&self.db, vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    /// One page of the orders `filter` selects, newest first.
    pub async fn orders(
        &self,
        filter: OrderFilter<'_>,
        page: PageRequest,
    ) -> Result<Page<Order>, sqlx::Error> {
        let mut conditions = Vec::new();
        let mut binds: Vec<&str> = Vec::new();
        if let Some(user_id) = filter.user_id {
            binds.push(user_id);
            conditions.push(format!("o.user_id = ${}", binds.len()));
        }
        if let Some(status) = filter.status {
            binds.push(status.as_str());
            conditions.push(format!("o.status = ${}", binds.len()));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) FROM orders o{where_clause}");
        let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
        for value in &binds {
            count = count.bind(*value);
        }
        let total = count.fetch_one(self.db.pool()).await?;
        let n = binds.len();
        let list_sql = format!(
            "{}{where_clause} ORDER BY o.created_at DESC, o.id DESC LIMIT ${} OFFSET ${}",
            rows::ORDER_SELECT,
            n + 1,
            n + 2
        );
        let mut list = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        for value in &binds {
            list = list.bind(*value);
        }
        let found = list
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(self.db.pool())
            .await?;
        Ok(Page {
            items: rows::complete(&self.db, found).await?,
            total: u64::try_from(total).unwrap_or(0),
            page: page.page,
            page_size: page.page_size,
        })
    }

    /// Orders per status and what the confirmed ones brought in.
    pub async fn summary(&self) -> Result<OrdersSummary, sqlx::Error> {
        // SUM of a BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot carry.
        let found = sqlx::query(
            "SELECT status, COUNT(*) AS n, CAST(COALESCE(SUM(total_minor), 0) AS BIGINT) AS total
             FROM orders GROUP BY status",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut summary = OrdersSummary {
            pending: 0,
            confirmed: 0,
            cancelled: 0,
            confirmed_total_minor: 0,
        };
        for row in found {
            let status: String = row.try_get("status")?;
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            match OrderStatus::parse(&status) {
                Some(OrderStatus::Pending) => summary.pending = n,
                Some(OrderStatus::Confirmed) => {
                    summary.confirmed = n;
                    summary.confirmed_total_minor = row.try_get("total")?;
                }
                Some(OrderStatus::Cancelled) => summary.cancelled = n,
                None => {}
            }
        }
        Ok(summary)
    }
}

/// `minor` units of `currency` as stored, or a decode error for a corrupt currency code.
fn money(minor: i64, currency: &str) -> Result<Money, sqlx::Error> {
    let currency = flotilla_chassis::Currency::parse(currency)
        .map_err(|_| CorruptRow::column("orders.currency", currency))?;
    Ok(Money::new(minor, currency))
}
