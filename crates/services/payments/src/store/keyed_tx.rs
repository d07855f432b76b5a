//! The write side of the store: the transaction every money movement runs in, with its
//! idempotency key.
//!
//! An answer is always known before it is stored (ids are made by the application, and a
//! transition's answer is the row its conditional UPDATE returns), so the key is inserted once,
//! complete with its answer, in the same transaction as the effect: there is never a key without
//! its answer, nor an answer without its effect. The cost is counted in round trips, since on
//! SQLite each statement, BEGIN and COMMIT is one to the connection's worker thread; the fast
//! paths are BEGIN, three statements, COMMIT (`tests/round_trips.rs` keeps the budgets).
//!
//! The first statement of every transaction is a write. On SQLite it takes the database write
//! lock, so the transaction never holds a read snapshot that a later write would find stale
//! (SQLITE_BUSY) and all it reads afterwards is current. On PostgreSQL the conditional UPDATE
//! locks the row it moves, and a request racing another with the same key waits at the key's
//! INSERT (ON CONFLICT waits for the transaction that wrote the row) for the first to commit,
//! then finds its answer.

use axum::http::StatusCode;
use flotilla_chassis::clock::millis;
use flotilla_chassis::db::{CorruptRow, DbTx};
use flotilla_chassis::{Money, ids};
use time::OffsetDateTime;

use super::{PaymentRow, PaymentsStore, payment_from_row};
use crate::contract::{DeclineCode, LedgerKind, PaymentStatus};
use crate::domain::{PaymentId, PaymentRecord};
use crate::idempotency::{IdempotencyKey, RequestHash, StoredResponse};

/// What a key already held when a request came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// The key was used with the same parameters: its answer, to replay.
    Replay(StoredResponse),
    /// The key was used with different parameters.
    Conflict,
}

impl Prior {
    /// Compares a stored row with the request's fingerprint.
    fn of_row(
        hash: &RequestHash,
        (stored_hash, status, body): (String, i64, String),
    ) -> Result<Self, sqlx::Error> {
        if RequestHash::from_stored(stored_hash) != *hash {
            return Ok(Prior::Conflict);
        }
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| CorruptRow::column("idempotency_keys.status_code", status))?;
        Ok(Prior::Replay(StoredResponse { status, body }))
    }
}

/// A column of a joined payment row that is NOT NULL in its table.
fn present<T>(value: Option<T>, column: &str) -> Result<T, sqlx::Error> {
    value.ok_or_else(|| CorruptRow::because(format!("payments.{column} is NULL")))
}

/// The stored answer of one key.
const SELECT_KEY: &str = "SELECT request_hash, status_code, response_body FROM idempotency_keys
     WHERE key = $1 AND operation = $2";

impl PaymentsStore {
    /// What `key` holds for `operation`, read on its own (one statement, no transaction): for
    /// the answers that are never recorded but must still tell a reused key (409).
    pub async fn prior(
        &self,
        key: &IdempotencyKey,
        operation: LedgerKind,
        hash: &RequestHash,
    ) -> Result<Option<Prior>, sqlx::Error> {
        let stored: Option<(String, i64, String)> = sqlx::query_as(SELECT_KEY)
            .bind(key.as_str())
            .bind(operation.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        stored.map(|row| Prior::of_row(hash, row)).transpose()
    }

    /// Opens the transaction of one money movement.
    pub async fn begin(&self) -> Result<KeyedTx, sqlx::Error> {
        Ok(KeyedTx {
            tx: self.db.pool().begin().await?,
        })
    }
}

/// The open transaction of one money movement. Dropped without [`KeyedTx::commit`], it rolls
/// back and leaves no trace, the key included.
pub struct KeyedTx {
    tx: DbTx,
}

impl KeyedTx {
    /// Stores `response` as the answer of `key` for `operation`; `None` when it was stored (this
    /// transaction now holds the key), or what the key already held, in which case the caller
    /// must roll back whatever it did before.
    pub async fn record_key(
        &mut self,
        key: &IdempotencyKey,
        operation: LedgerKind,
        hash: &RequestHash,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<Option<Prior>, sqlx::Error> {
        // Twice at most: the second round covers a key pruned between our INSERT and our read
        // (PostgreSQL only; on SQLite this transaction holds the write lock throughout).
        for _ in 0..2 {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys
                     (key, operation, request_hash, status_code, response_body, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (key, operation) DO NOTHING",
            )
            .bind(key.as_str())
            .bind(operation.as_str())
            .bind(hash.as_str())
            .bind(i64::from(response.status.as_u16()))
            .bind(&response.body)
            .bind(millis(now))
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(None);
            }
            // The INSERT waited for the transaction that wrote the key to commit, and a key is
            // only ever written complete, so this reads a whole answer.
            let stored: Option<(String, i64, String)> = sqlx::query_as(SELECT_KEY)
                .bind(key.as_str())
                .bind(operation.as_str())
                .fetch_optional(&mut *self.tx)
                .await?;
            if let Some(row) = stored {
                return Prior::of_row(hash, row).map(Some);
            }
        }
        Err(sqlx::Error::RowNotFound)
    }

    /// Inserts a new payment.
    pub async fn insert_payment(&mut self, p: &PaymentRecord) -> Result<(), sqlx::Error> {
        sqlx::query(concat!(
            "INSERT INTO payments (",
            payment_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(p.id.as_str())
        .bind(p.order_id.as_str())
        .bind(p.amount.amount_minor)
        .bind(p.amount.currency.as_str())
        .bind(p.status.as_str())
        .bind(&p.card_last4)
        .bind(&p.card_brand)
        .bind(p.decline_code.map(DeclineCode::as_str))
        .bind(millis(p.created_at))
        .bind(millis(p.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Moves payment `id` from `from` to `to` unless its card ends in `refused_last4`; the
    /// payment as it now is, or `None` (and nothing written) when it was not in `from`, is
    /// unknown, or has that card — which is how a lost race shows.
    pub async fn move_payment(
        &mut self,
        id: &PaymentId,
        from: PaymentStatus,
        to: PaymentStatus,
        refused_last4: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<PaymentRecord>, sqlx::Error> {
        let row: Option<PaymentRow> = sqlx::query_as(concat!(
            "UPDATE payments SET status = $3, updated_at = $4
             WHERE id = $1 AND status = $2 AND card_last4 <> $5
             RETURNING ",
            payment_columns!()
        ))
        .bind(id.as_str())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(millis(now))
        // A stored card always has four digits, so the empty text refuses no card.
        .bind(refused_last4.unwrap_or(""))
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(payment_from_row).transpose()
    }

    /// Payment `id` and what `key` holds for `operation`, in one read (either may be missing).
    pub async fn payment_and_prior(
        &mut self,
        id: &PaymentId,
        key: &IdempotencyKey,
        operation: LedgerKind,
        hash: &RequestHash,
    ) -> Result<(Option<PaymentRecord>, Option<Prior>), sqlx::Error> {
        type Row = (
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<String>,
        );
        // The one-row probe keeps a row coming when neither the payment nor the key exists.
        let row: Row = sqlx::query_as(
            "SELECT p.id, p.order_id, p.amount_minor, p.currency, p.status, p.card_last4,
                    p.card_brand, p.decline_code, p.created_at, p.updated_at,
                    k.request_hash, k.status_code, k.response_body
             FROM (SELECT 1 AS one) AS probe
             LEFT JOIN payments p ON p.id = $1
             LEFT JOIN idempotency_keys k ON k.key = $2 AND k.operation = $3",
        )
        .bind(id.as_str())
        .bind(key.as_str())
        .bind(operation.as_str())
        .fetch_one(&mut *self.tx)
        .await?;
        let (
            id,
            order,
            amount,
            currency,
            status,
            last4,
            brand,
            decline,
            created,
            updated,
            stored_hash,
            stored_status,
            stored_body,
        ) = row;
        let payment = match id {
            None => None,
            Some(id) => Some(payment_from_row((
                id,
                present(order, "order_id")?,
                present(amount, "amount_minor")?,
                present(currency, "currency")?,
                present(status, "status")?,
                present(last4, "card_last4")?,
                present(brand, "card_brand")?,
                decline,
                present(created, "created_at")?,
                present(updated, "updated_at")?,
            ))?),
        };
        let prior = match (stored_hash, stored_status, stored_body) {
            (Some(stored_hash), Some(status), Some(body)) => {
                Some(Prior::of_row(hash, (stored_hash, status, body))?)
            }
            _ => None,
        };
        Ok((payment, prior))
    }

    /// Appends a ledger entry for the full `amount` of payment `id`.
    pub async fn append_ledger(
        &mut self,
        id: &PaymentId,
        kind: LedgerKind,
        amount: Money,
        now: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO ledger (id, payment_id, kind, amount_minor, currency, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(ids::new_id("led"))
        .bind(id.as_str())
        .bind(kind.as_str())
        .bind(amount.amount_minor)
        .bind(amount.currency.as_str())
        .bind(millis(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Rolls everything back, the key included: the operation leaves no trace and a retry with
    /// the same key runs again.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// Commits the effect and the key's answer together.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}
