//! The saga's SQL: leases (claim, renew, hand back), loading what an executor needs, recording
//! each step outcome with its log entry, the final transactions (order status, history, outbox
//! event, saga done — all or nothing), and what the recovery loop finds due.
//!
//! Every write of an executor is conditional on `lease_owner` being its token, so an executor
//! that lost its lease (it stalled, another took over) can no longer change anything.

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Money;
use flotilla_chassis::clock::millis;
use flotilla_chassis::db::CorruptRow;
use flotilla_chassis::events::{NewEvent, Outbox};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use super::{NewOrder, OrdersStore, money, rows};
use crate::contract::{Address, OrderStatus};
use crate::domain::CardNumber;
use crate::saga::{Logged, OrderEnding, PeerRefs, Phase, SagaState, Step, Transition};

/// What an executor needs to run an order's saga.
#[derive(Debug, Clone)]
pub struct SagaRecord {
    pub order_id: String,
    pub user_id: String,
    pub state: SagaState,
    /// The card, until the authorization has a definitive answer.
    pub card: Option<CardNumber>,
    /// The payment and shipment the peers made so far.
    pub refs: PeerRefs,
    /// The order's lines: product and quantity.
    pub lines: Vec<(ProductId, u32)>,
    /// What the card is charged.
    pub total: Money,
    pub address: Address,
    /// The shipping quote to honour.
    pub quote_id: Option<String>,
    /// When the order was placed and its saga began (the saga's duration runs from here).
    pub started_at: OffsetDateTime,
}

impl SagaRecord {
    /// The saga [`OrdersStore::place`] stores with `order`, as a fresh read would return it.
    pub fn placed(order: &NewOrder<'_>) -> Self {
        let priced = order.priced;
        Self {
            order_id: priced.id.as_str().to_owned(),
            user_id: priced.user_id.clone(),
            state: SagaState::start(),
            card: Some(order.card.clone()),
            refs: PeerRefs::default(),
            lines: priced
                .lines
                .iter()
                .map(|line| (line.product_id, line.quantity))
                .collect(),
            total: priced.totals.total,
            address: priced.address.clone(),
            quote_id: priced.quote_id.clone(),
            started_at: order.now,
        }
    }
}

/// One step outcome to record.
#[derive(Debug)]
pub struct Progress<'a> {
    pub order_id: &'a str,
    pub owner: &'a str,
    pub ran: Step,
    pub transition: &'a Transition,
    /// What happened, for the log.
    pub detail: &'a str,
    /// The payment or shipment the step made or found.
    pub refs: &'a PeerRefs,
    pub now: OffsetDateTime,
    /// The renewed lease.
    pub lease_until: OffsetDateTime,
    /// When the step may run again (for a retry).
    pub next_attempt_at: OffsetDateTime,
}

impl OrdersStore {
    /// Takes `order_id`'s saga for `owner` until `lease_until`, if no one holds it at `now`, it
    /// is not done and no operator set it aside for review.
    pub async fn claim(
        &self,
        order_id: &str,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let claimed = sqlx::query(
            "UPDATE sagas SET lease_owner = $2, lease_until = $3
             WHERE order_id = $1 AND lease_until < $4 AND status <> 'done'
               AND review_at IS NULL",
        )
        .bind(order_id)
        .bind(owner)
        .bind(millis(lease_until))
        .bind(millis(now))
        .execute(self.db.pool())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Extends `owner`'s lease to `lease_until`; false when it lost it (or the saga is done).
    pub async fn renew(
        &self,
        order_id: &str,
        owner: &str,
        lease_until: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let renewed = sqlx::query(
            "UPDATE sagas SET lease_until = $3
             WHERE order_id = $1 AND lease_owner = $2 AND status <> 'done'",
        )
        .bind(order_id)
        .bind(owner)
        .bind(millis(lease_until))
        .execute(self.db.pool())
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives `owner`'s lease back, so that the recovery loop resumes the saga at
    /// `next_attempt_at` (a long backoff is not worth holding a lease for).
    pub async fn hand_back(
        &self,
        order_id: &str,
        owner: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sagas SET lease_owner = NULL, lease_until = 0, next_attempt_at = $3
             WHERE order_id = $1 AND lease_owner = $2",
        )
        .bind(order_id)
        .bind(owner)
        .bind(millis(next_attempt_at))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Unfinished sagas nobody holds at `now` and due to run, oldest due first (not those set
    /// aside for review: an operator decides what happens to them).
    pub async fn due(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT order_id FROM sagas
             WHERE status IN ('running', 'compensating') AND lease_until < $1
               AND next_attempt_at <= $1 AND review_at IS NULL
             ORDER BY next_attempt_at, order_id LIMIT $2",
        )
        .bind(millis(now))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await
    }

    /// The saga of `order_id` with the order data its steps need.
    pub async fn saga(&self, order_id: &str) -> Result<Option<SagaRecord>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT s.status, s.step, s.attempts, s.failure, s.card_number, s.payment_id,
                    s.shipment_id, s.tracking_number, o.user_id, o.currency, o.total_minor,
                    o.address_name, o.address_line1, o.address_city, o.address_postal_code,
                    o.address_country, o.quote_id, s.created_at
             FROM sagas s JOIN orders o ON o.id = s.order_id WHERE s.order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let lines: Vec<(String, i64)> = sqlx::query_as(
            "SELECT product_id, quantity FROM order_lines WHERE order_id = $1 ORDER BY line_no",
        )
        .bind(order_id)
        .fetch_all(self.db.pool())
        .await?;
        let lines = lines
            .into_iter()
            .map(|(id, n)| {
                let id = ProductId::parse(&id)
                    .ok_or_else(|| CorruptRow::column("order_lines.product_id", &id))?;
                let n =
                    u32::try_from(n).map_err(|_| CorruptRow::column("order_lines.quantity", n))?;
                Ok((id, n))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let card: Option<String> = row.try_get("card_number")?;
        let card = match card {
            Some(digits) => Some(
                CardNumber::parse(&digits)
                    .ok_or_else(|| CorruptRow::because("sagas.card_number is not a card number"))?,
            ),
            None => None,
        };
        let currency: String = row.try_get("currency")?;
        Ok(Some(SagaRecord {
            order_id: order_id.to_owned(),
            user_id: row.try_get("user_id")?,
            state: state_of(&row)?,
            card,
            refs: PeerRefs {
                payment_id: row.try_get("payment_id")?,
                shipment_id: row.try_get("shipment_id")?,
                tracking_number: row.try_get("tracking_number")?,
            },
            lines,
            total: money(row.try_get("total_minor")?, &currency)?,
            address: rows::address(&row)?,
            quote_id: row.try_get("quote_id")?,
            started_at: flotilla_chassis::clock::at_millis(row.try_get("created_at")?),
        }))
    }

    /// Records a step outcome, what it learnt and the state that follows, with its log entry
    /// (appended by the `saga_log_append` trigger), in one statement; false (nothing written)
    /// when `owner` no longer holds the saga. The lease is renewed with it.
    pub async fn record(&self, p: &Progress<'_>) -> Result<bool, sqlx::Error> {
        let to = &p.transition.state;
        let updated = sqlx::query(
            "UPDATE sagas SET status = $3, step = $4, attempts = $5, failure = $6,
                              lease_until = $7, next_attempt_at = $8, updated_at = $9,
                              payment_id = COALESCE($10, payment_id),
                              shipment_id = COALESCE($11, shipment_id),
                              tracking_number = COALESCE($12, tracking_number),
                              card_number = CASE WHEN $13 = 1 THEN NULL ELSE card_number END,
                              log_seq = log_seq + 1, log_step = $14, log_action = $15,
                              log_outcome = $16, log_detail = $17
             WHERE order_id = $1 AND lease_owner = $2 AND status <> 'done'",
        )
        .bind(p.order_id)
        .bind(p.owner)
        .bind(to.phase.as_str())
        .bind(to.step.as_str())
        .bind(i64::from(to.attempts))
        .bind(to.failure.as_deref())
        .bind(millis(p.lease_until))
        .bind(millis(p.next_attempt_at))
        .bind(millis(p.now))
        .bind(p.refs.payment_id.as_deref())
        .bind(p.refs.shipment_id.as_deref())
        .bind(p.refs.tracking_number.as_deref())
        .bind(i64::from(p.transition.forget_card))
        .bind(p.ran.as_str())
        .bind(p.ran.action())
        .bind(p.transition.logged.as_str())
        .bind(p.detail)
        .execute(self.db.pool())
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Finishes the saga: saga done, order CONFIRMED or CANCELLED with its history entry, the
    /// step's log entry and `event` in the outbox, all in one transaction (the event exists if
    /// and only if the order changed). False when `owner` no longer holds the saga.
    pub async fn finish(
        &self,
        p: &Progress<'_>,
        ending: &OrderEnding,
        event: NewEvent,
        outbox: &Outbox,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let to = &p.transition.state;
        let updated = sqlx::query(
            "UPDATE sagas SET status = 'done', step = $3, attempts = 0, failure = $4,
                              card_number = NULL, lease_owner = NULL, lease_until = 0,
                              next_attempt_at = $5, updated_at = $5,
                              log_seq = log_seq + 1, log_step = $6, log_action = $7,
                              log_outcome = $8, log_detail = $9
             WHERE order_id = $1 AND lease_owner = $2 AND status <> 'done'",
        )
        .bind(p.order_id)
        .bind(p.owner)
        .bind(to.step.as_str())
        .bind(to.failure.as_deref())
        .bind(millis(p.now))
        .bind(p.ran.as_str())
        .bind(p.ran.action())
        .bind(Logged::Ok.as_str())
        .bind(p.detail)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE orders SET status = $2, reason = $3, updated_at = $4
             WHERE id = $1 AND status = 'PENDING'",
        )
        .bind(p.order_id)
        .bind(ending.status.as_str())
        .bind(ending.reason.as_deref())
        .bind(millis(p.now))
        .execute(&mut *tx)
        .await?;
        append_history(
            &mut tx,
            p.order_id,
            ending.status,
            Some(&ending.note),
            p.now,
        )
        .await?;
        outbox.append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }
}

pub(super) fn state_of(row: &AnyRow) -> Result<SagaState, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let step: String = row.try_get("step")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(SagaState {
        phase: Phase::parse(&status).ok_or_else(|| CorruptRow::column("sagas.status", &status))?,
        step: Step::parse(&step).ok_or_else(|| CorruptRow::column("sagas.step", &step))?,
        attempts: u32::try_from(attempts)
            .map_err(|_| CorruptRow::column("sagas.attempts", attempts))?,
        failure: row.try_get("failure")?,
    })
}

/// Appends a status change to an order's history.
pub async fn append_history(
    tx: &mut AnyConnection,
    order_id: &str,
    status: OrderStatus,
    note: Option<&str>,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_history (order_id, seq, status, note, at)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4
         FROM order_history WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(status.as_str())
    .bind(note)
    .bind(millis(at))
    .execute(tx)
    .await?;
    Ok(())
}
