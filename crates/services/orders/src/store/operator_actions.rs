//! The SQL of an operator's action on a saga (see [`crate::saga::operator`]): reading what the
//! decision is made from, and applying it with one update that is conditional on exactly that
//! state and on no executor holding the saga — with the audit row in the same transaction.
//!
//! The condition is what makes an action and the executor exclusive: the executor writes only
//! while it holds the lease (`lease_owner` is its token and `lease_until` in the future), and
//! the action writes only while nobody does and the saga is still where the operator saw it.
//! An action that resumes the saga takes the lease in the same update, for the executor it
//! starts, so no recovery pass can claim the saga in between.

use flotilla_chassis::audit::{self, NewAudit};
use flotilla_chassis::clock::{at_millis, millis};
use sqlx::Row;
use time::OffsetDateTime;

use super::OrdersStore;
use crate::saga::SagaState;

/// What an operator's decision is made from.
#[derive(Debug, Clone)]
pub struct SagaControl {
    pub state: SagaState,
    /// Until when an executor holds the saga (in the past when nobody does).
    pub lease_until: OffsetDateTime,
    /// Whether an operator set it aside for review.
    pub under_review: bool,
}

/// An operator's decision, to apply.
#[derive(Debug)]
pub struct OperatorChange<'a> {
    pub order_id: &'a str,
    /// The state it was decided from (and `under_review` with it).
    pub from: &'a SagaControl,
    /// The state it leads to.
    pub to: &'a SagaState,
    /// Set aside for review with this note (None: not, or no longer, set aside).
    pub review_note: Option<&'a str>,
    /// The executor that resumes the saga and its lease (None: nobody runs it now).
    pub lease: Option<(&'a str, OffsetDateTime)>,
    pub now: OffsetDateTime,
    /// The audit row written with the change.
    pub audit: NewAudit<'a>,
}

impl OrdersStore {
    /// The state of `order_id`'s saga, its lease and its review flag.
    pub async fn saga_control(&self, order_id: &str) -> Result<Option<SagaControl>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT status, step, attempts, failure, lease_until, review_at FROM sagas
             WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let review_at: Option<i64> = row.try_get("review_at")?;
        Ok(Some(SagaControl {
            state: super::sagas::state_of(&row)?,
            lease_until: at_millis(row.try_get("lease_until")?),
            under_review: review_at.is_some(),
        }))
    }

    /// Applies `change` and writes its audit row, in one transaction; false (nothing written)
    /// when the saga is no longer in the state it was decided from, or an executor holds it.
    pub async fn apply_operator(&self, change: &OperatorChange<'_>) -> Result<bool, sqlx::Error> {
        let now = millis(change.now);
        let (owner, lease_until) = match change.lease {
            Some((owner, until)) => (Some(owner), millis(until)),
            None => (None, 0),
        };
        let review_at = change.review_note.map(|_| now);
        let review_by = change.review_note.map(|_| change.audit.actor);
        let from = &change.from.state;
        let mut tx = self.db.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE sagas SET status = $2, step = $3, attempts = $4, failure = $5,
                              next_attempt_at = $6, updated_at = $6, lease_owner = $7,
                              lease_until = $8, review_note = $9, review_by = $10,
                              review_at = $11
             WHERE order_id = $1 AND status = $12 AND step = $13 AND attempts = $14
               AND lease_until < $6
               AND CASE WHEN review_at IS NULL THEN 0 ELSE 1 END = $15",
        )
        .bind(change.order_id)
        .bind(change.to.phase.as_str())
        .bind(change.to.step.as_str())
        .bind(i64::from(change.to.attempts))
        .bind(change.to.failure.as_deref())
        .bind(now)
        .bind(owner)
        .bind(lease_until)
        .bind(change.review_note)
        .bind(review_by)
        .bind(review_at)
        .bind(from.phase.as_str())
        .bind(from.step.as_str())
        .bind(i64::from(from.attempts))
        .bind(i64::from(change.from.under_review))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        audit::record(&mut tx, &change.audit, change.now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
