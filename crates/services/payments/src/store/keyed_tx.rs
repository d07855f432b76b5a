//! The write side of the store: the keyed transaction every money movement runs in.
//!
//! [`PaymentStore::claim`] opens it by writing the idempotency key, which takes the lock first
//! (SQLite's database write lock, a PostgreSQL row lock on the key): a concurrent request with
//! the same key waits for the first to commit and then finds its answer, and a SQLite
//! transaction never holds a read snapshot that a later write would find stale (SQLITE_BUSY).

use axum::http::StatusCode;
use flotilla_chassis::{Money, ids};
use flotilla_chassis::db::DbTx;

use super::{PaymentRow, PaymentStore, corrupt, payment_from_row};
use crate::contract::{DeclineCode, LedgerKind, PaymentStatus};
use crate::domain::{PaymentId, PaymentRecord};
use crate::idempotency::{IdempotencyKey, RequestHash, StoredResponse};

/// What [`PaymentStore::claim`] found for a key.
pub enum KeyClaim {
    /// The key is new: this transaction holds it and must end with [`KeyedTx::record`] (or be
    /// dropped, which rolls back and leaves no trace of the key).
    Fresh(KeyedTx),
    /// The key was used before with the same parameters: its answer.
    Replay(StoredResponse),
    /// The key was used before with different parameters.
    Conflict,
}

impl PaymentStore {
    /// Opens the transaction of one money movement by writing its key, or finds the key's
    /// earlier answer.
    pub async fn claim(
        &self,
        key: &IdempotencyKey,
        operation: LedgerKind,
        hash: &RequestHash,
        now_millis: i64,
    ) -> Result<KeyClaim, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        // Twice at most: the second round covers a key pruned between our insert and our read.
        for _ in 0..2 {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys
                     (key, operation, request_hash, status_code, response_body, created_at)
                 VALUES ($1, $2, $3, 0, '', $4)
                 ON CONFLICT (key, operation) DO NOTHING",
            )
            .bind(key.as_str())
            .bind(operation.as_str())
            .bind(hash.as_str())
            .bind(now_millis)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(KeyClaim::Fresh(KeyedTx {
                    tx,
                    key: key.as_str().to_owned(),
                    operation,
                }));
            }
            let stored: Option<(String, i64, String)> = sqlx::query_as(
                "SELECT request_hash, status_code, response_body FROM idempotency_keys
                 WHERE key = $1 AND operation = $2",
            )
            .bind(key.as_str())
            .bind(operation.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((stored_hash, status, body)) = stored else {
                continue;
            };
            tx.rollback().await?;
            if RequestHash::from_stored(stored_hash) != *hash {
                return Ok(KeyClaim::Conflict);
            }
            // The insert above waited for the key's first transaction to commit, so the answer
            // is always complete; a status that is not one we store means a corrupt row.
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| corrupt(format!("idempotency_keys.status_code {status}")))?;
            return Ok(KeyClaim::Replay(StoredResponse { status, body }));
        }
        Err(sqlx::Error::RowNotFound)
    }
}

/// The open transaction of one money movement, holding its idempotency key.
pub struct KeyedTx {
    tx: DbTx,
    key: String,
    operation: LedgerKind,
}

impl KeyedTx {
    /// One payment, read inside the transaction.
    pub async fn payment(&mut self, id: &PaymentId) -> Result<Option<PaymentRecord>, sqlx::Error> {
        let row: Option<PaymentRow> = sqlx::query_as(concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(payment_from_row).transpose()
    }

    /// Inserts a new payment.
    pub async fn insert_payment(&mut self, p: &PaymentRecord) -> Result<(), sqlx::Error> {
        sqlx::query(concat!(
            "INSERT INTO payments (",
            payment_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(p.id.as_str())
        .bind(&p.order_id)
        .bind(p.amount.amount_minor)
        .bind(p.amount.currency.as_str())
        .bind(p.status.as_str())
        .bind(&p.card_last4)
        .bind(&p.card_brand)
        .bind(p.decline_code.map(DeclineCode::as_str))
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Moves payment `id` from `from` to `to`; false (and nothing written) when it was not in
    /// `from`, which is how a lost race shows.
    pub async fn transition(
        &mut self,
        id: &PaymentId,
        from: PaymentStatus,
        to: PaymentStatus,
        now_millis: i64,
    ) -> Result<bool, sqlx::Error> {
        let moved = sqlx::query(
            "UPDATE payments SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
        )
        .bind(id.as_str())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(now_millis)
        .execute(&mut *self.tx)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    /// Appends a ledger entry for the full `amount` of payment `id`.
    pub async fn append_ledger(
        &mut self,
        id: &PaymentId,
        kind: LedgerKind,
        amount: Money,
        now_millis: i64,
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
        .bind(now_millis)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Rolls everything back, the key included: the operation leaves no trace and a retry with
    /// the same key runs again.
    pub async fn abandon(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// Stores `response` as the key's answer and commits everything.
    pub async fn record(mut self, response: &StoredResponse) -> Result<(), sqlx::Error> {
        // The key row was inserted by this transaction, so this UPDATE finds it.
        sqlx::query(
            "UPDATE idempotency_keys SET status_code = $3, response_body = $4
             WHERE key = $1 AND operation = $2",
        )
        .bind(&self.key)
        .bind(self.operation.as_str())
        .bind(i64::from(response.status.as_u16()))
        .bind(&response.body)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }
}
