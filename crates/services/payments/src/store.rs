//! All of the payments service's SQL, in plain sight: here the reads the API serves, the
//! ledger's totals and the pruning of old keys; in [`keyed_tx`] the one transaction every money
//! movement runs in.
//!
//! State changes are conditional UPDATEs whose row counts say who won, so the rules hold under
//! concurrency on both backends. The SQL is portable (SQLite and PostgreSQL); the schema is in
//! `migrations/0001_init.sql`.

use flotilla_chassis::clock::{at_millis, millis};
use flotilla_chassis::db::{CorruptRow, Migration};
use flotilla_chassis::pagination::PageRequest;
use flotilla_chassis::{Currency, Db, Money};
use time::OffsetDateTime;

use crate::contract::{DeclineCode, LedgerEntry, LedgerKind, PaymentStatus, PaymentSummary};
use crate::domain::{OrderId, PaymentId, PaymentRecord};

/// The service's schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration::portable(
    1,
    "init",
    include_str!("../migrations/0001_init.sql"),
)];

/// The columns of a payment, in the order [`PaymentRow`] reads them.
macro_rules! payment_columns {
    () => {
        "id, order_id, amount_minor, currency, status, card_last4, card_brand, decline_code, \
         created_at, updated_at"
    };
}

mod keyed_tx;

pub use keyed_tx::{KeyedTx, Prior};

type PaymentRow = (
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
);

fn payment_from_row(row: PaymentRow) -> Result<PaymentRecord, sqlx::Error> {
    let (id, order_id, amount_minor, currency, status, last4, brand, decline, created, updated) =
        row;
    Ok(PaymentRecord {
        id: PaymentId::parse(&id).ok_or_else(|| CorruptRow::column("payments.id", &id))?,
        order_id: OrderId::parse(&order_id)
            .map_err(|_| CorruptRow::column("payments.order_id", &order_id))?,
        amount: Money::new(
            amount_minor,
            Currency::parse(&currency)
                .map_err(|_| CorruptRow::column("payments.currency", &currency))?,
        ),
        status: PaymentStatus::parse(&status)
            .ok_or_else(|| CorruptRow::column("payments.status", &status))?,
        card_last4: last4,
        card_brand: brand,
        decline_code: match decline {
            None => None,
            Some(code) => Some(
                DeclineCode::parse(&code)
                    .ok_or_else(|| CorruptRow::column("payments.decline_code", &code))?,
            ),
        },
        created_at: at_millis(created),
        updated_at: at_millis(updated),
    })
}

/// The service's tables.
#[derive(Debug, Clone)]
pub struct PaymentsStore {
    db: Db,
}

impl PaymentsStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// One payment.
    pub async fn payment(&self, id: &PaymentId) -> Result<Option<PaymentRecord>, sqlx::Error> {
        let row: Option<PaymentRow> = sqlx::query_as(concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(payment_from_row).transpose()
    }

    /// The payments of an order, oldest first.
    pub async fn for_order(&self, order_id: &OrderId) -> Result<Vec<PaymentRecord>, sqlx::Error> {
        let rows: Vec<PaymentRow> = sqlx::query_as(concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE order_id = $1 ORDER BY created_at, id"
        ))
        .bind(order_id.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter().map(payment_from_row).collect()
    }

    /// One page of payments, newest first, optionally of one status; with the total count.
    pub async fn list(
        &self,
        status: Option<PaymentStatus>,
        page: PageRequest,
    ) -> Result<(Vec<PaymentRecord>, u64), sqlx::Error> {
        let pool = self.db.pool();
        let (rows, total): (Vec<PaymentRow>, i64) = match status {
            None => (
                sqlx::query_as(concat!(
                    "SELECT ",
                    payment_columns!(),
                    " FROM payments ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
                ))
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(pool)
                .await?,
                sqlx::query_scalar("SELECT COUNT(*) FROM payments")
                    .fetch_one(pool)
                    .await?,
            ),
            Some(status) => (
                sqlx::query_as(concat!(
                    "SELECT ",
                    payment_columns!(),
                    " FROM payments WHERE status = $1
                      ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(status.as_str())
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(pool)
                .await?,
                sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE status = $1")
                    .bind(status.as_str())
                    .fetch_one(pool)
                    .await?,
            ),
        };
        let items = rows
            .into_iter()
            .map(payment_from_row)
            .collect::<Result<_, _>>()?;
        Ok((items, u64::try_from(total).unwrap_or(0)))
    }

    /// The ledger entries of one payment, in the order they were made.
    pub async fn ledger(&self, id: &PaymentId) -> Result<Vec<LedgerEntry>, sqlx::Error> {
        let rows: Vec<(String, String, String, i64, String, i64)> = sqlx::query_as(
            "SELECT id, payment_id, kind, amount_minor, currency, at FROM ledger
             WHERE payment_id = $1 ORDER BY at, id",
        )
        .bind(id.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|(id, payment_id, kind, amount_minor, currency, at)| {
                Ok(LedgerEntry {
                    id,
                    payment_id,
                    kind: LedgerKind::parse(&kind)
                        .ok_or_else(|| CorruptRow::column("ledger.kind", &kind))?,
                    amount: Money::new(
                        amount_minor,
                        Currency::parse(&currency)
                            .map_err(|_| CorruptRow::column("ledger.currency", &currency))?,
                    ),
                    at: at_millis(at),
                })
            })
            .collect()
    }

    /// The ledger's totals and the payment counts in `currency`.
    pub async fn summary(&self, currency: Currency) -> Result<PaymentSummary, sqlx::Error> {
        let pool = self.db.pool();
        // CAST: PostgreSQL's SUM(BIGINT) is NUMERIC, which the `Any` driver cannot carry.
        let totals: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, CAST(SUM(amount_minor) AS BIGINT) FROM ledger
             WHERE currency = $1 GROUP BY kind",
        )
        .bind(currency.as_str())
        .fetch_all(pool)
        .await?;
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM payments WHERE currency = $1 GROUP BY status",
        )
        .bind(currency.as_str())
        .fetch_all(pool)
        .await?;
        let total = |kind: LedgerKind| {
            totals
                .iter()
                .find(|(k, _)| k == kind.as_str())
                .map_or(0, |(_, sum)| *sum)
        };
        let count_by_status = PaymentStatus::ALL
            .into_iter()
            .map(|status| {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == status.as_str())
                    .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0));
                (status.as_str().to_owned(), n)
            })
            .collect();
        Ok(PaymentSummary {
            authorized_total: total(LedgerKind::Authorize),
            captured_total: total(LedgerKind::Capture),
            refunded_total: total(LedgerKind::Refund),
            voided_total: total(LedgerKind::Void),
            count_by_status,
            currency: currency.as_str().to_owned(),
        })
    }

    /// Deletes the keys (and stored answers) created before `cutoff`; returns how many.
    pub async fn prune_keys(&self, cutoff: OffsetDateTime) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(millis(cutoff))
            .execute(self.db.pool())
            .await?;
        Ok(deleted.rows_affected())
    }
}
