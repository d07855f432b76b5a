//! Discarding a dead letter: the operator decides an event will never be handled (a test
//! event, an order that no longer exists) and says why.
//!
//! The event is recorded in the inbox as settled in the same transaction that removes it from
//! the dead letters and writes the audit row (with the event kept in its detail, so a discard
//! can be read back and, if need be, re-published by hand). A later redelivery of the same id
//! is then a duplicate, not a first delivery: a discarded event is never handled behind the
//! operator's back. The inbox row is written before the dead letter is removed, the order a
//! replay takes its locks in, so a discard racing a replay on PostgreSQL waits instead of
//! deadlocking: whichever commits first wins and the other finds nothing to act on.

use sqlx::Row;
use time::OffsetDateTime;

use super::Event;
use crate::audit::{self, NewAudit};
use crate::db::Db;

/// How a discard ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Discarded {
    /// Removed, marked settled, audited.
    Done,
    /// There is no such dead letter (never parked, replayed or discarded already).
    NotParked,
}

/// Discards the dead letter `entry.subject`, writing `entry` (completed with the event) to the
/// audit trail in the same transaction.
pub async fn discard(
    db: &Db,
    entry: NewAudit<'_>,
    now: OffsetDateTime,
) -> Result<Discarded, sqlx::Error> {
    let event_id = entry.subject;
    let mut tx = db.pool().begin().await?;
    let row = sqlx::query("SELECT event, event_type FROM dead_letters WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(Discarded::NotParked);
    };
    let text: String = row.try_get("event")?;
    let event_type: String = row.try_get("event_type")?;
    // An unreadable event still has its id and type; its source is then unknown.
    let source = serde_json::from_str::<Event>(&text)
        .map(|e| e.source)
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO inbox (event_id, event_type, source, handled_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(&event_type)
    .bind(&source)
    .bind(crate::clock::millis(now))
    .execute(&mut *tx)
    .await?;
    let removed = sqlx::query("DELETE FROM dead_letters WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
    if removed.rows_affected() != 1 {
        // A replay took it meanwhile.
        tx.rollback().await?;
        return Ok(Discarded::NotParked);
    }
    sqlx::query("DELETE FROM inbox_attempts WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, &entry.with_detail(&text), now).await?;
    tx.commit().await?;
    Ok(Discarded::Done)
}
