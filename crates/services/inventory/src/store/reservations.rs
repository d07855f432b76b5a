//! Reservations changing state: reserve (all lines or none), commit, release, and the expiry
//! pass. Each is one transaction that starts with its conditional write, so the row it changes
//! is locked before anything is read.

use sqlx::AnyConnection;

use super::{CorruptRow, InventoryStore, ReserveOutcome, Transition, corrupt, load};
use crate::contract::{RELEASED_EXPIRED, RELEASED_ON_REQUEST, ReservationStatus};
use crate::domain::{Lines, ReservationId, ReservationRecord};

/// Expired reservations the expiry pass picks up per query.
const EXPIRY_BATCH: i64 = 100;

impl InventoryStore {
    /// Holds every line's units under `id` until `expires_at`, or none of them.
    pub async fn reserve(
        &self,
        id: &ReservationId,
        lines: &Lines,
        now: i64,
        expires_at: i64,
    ) -> Result<ReserveOutcome, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        // The reservation row first: it takes the write lock, and its primary key makes a
        // second reserve with the same id a no-op (which waits for the first to finish).
        let inserted = sqlx::query(
            "INSERT INTO reservations (id, status, created_at, expires_at, updated_at)
             VALUES ($1, 'held', $2, $3, $2)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            // Reservations are never deleted, so the row that blocked the insert is there.
            let existing = self
                .reservation(id)
                .await?
                .ok_or_else(|| corrupt(CorruptRow::Vanished(id.as_str().to_owned())))?;
            return Ok(if existing.lines == *lines {
                ReserveOutcome::Replayed(existing)
            } else {
                ReserveOutcome::Conflict
            });
        }
        // Lines in product order, so concurrent reservations lock stock rows in one order.
        let mut short = Vec::new();
        for line in lines.iter() {
            let taken = sqlx::query(
                "UPDATE stock SET available = available - $1, updated_at = $2
                 WHERE product_id = $3 AND available >= $1",
            )
            .bind(line.quantity)
            .bind(now)
            .bind(line.product_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if taken != 1 {
                short.push(line.product_id.clone());
            }
        }
        if !short.is_empty() {
            // Rolling back also frees the id: a later reserve with it may succeed.
            tx.rollback().await?;
            return Ok(ReserveOutcome::OutOfStock(short));
        }
        for line in lines.iter() {
            sqlx::query(
                "INSERT INTO reservation_lines (reservation_id, product_id, quantity)
                 VALUES ($1, $2, $3)",
            )
            .bind(id.as_str())
            .bind(line.product_id.as_str())
            .bind(line.quantity)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ReserveOutcome::Created(ReservationRecord {
            id: id.clone(),
            status: ReservationStatus::Held,
            lines: lines.clone(),
            created_at: now,
            expires_at,
            released_reason: None,
        }))
    }

    /// Moves `id` from held to committed, unless it expired by `now`: then it is released
    /// (reason "expired") in the same transaction and the answer is [`Transition::Blocked`].
    pub async fn commit(&self, id: &ReservationId, now: i64) -> Result<Transition, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let committed = sqlx::query(
            "UPDATE reservations SET status = 'committed', updated_at = $2
             WHERE id = $1 AND status = 'held' AND expires_at > $2",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if committed == 0 {
            // Held past its expiry, but the expiry task has not got to it yet: it is expired all
            // the same, and releasing it here means the units return exactly once whichever of
            // us and the task is first.
            release_held(&mut tx, id.as_str(), RELEASED_EXPIRED, now, now).await?;
        }
        let current = load(&mut tx, id.as_str()).await?;
        tx.commit().await?;
        settle(current, ReservationStatus::Committed)
    }

    /// Moves `id` from held to released and returns its units to stock.
    pub async fn release(&self, id: &ReservationId, now: i64) -> Result<Transition, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        release_held(&mut tx, id.as_str(), RELEASED_ON_REQUEST, now, i64::MAX).await?;
        let current = load(&mut tx, id.as_str()).await?;
        tx.commit().await?;
        settle(current, ReservationStatus::Released)
    }

    /// Releases every reservation still held at `now` whose expiry has passed, a batch at a
    /// time, each in its own short transaction. Returns how many this call released (one that a
    /// concurrent commit or release got to first is not counted).
    pub async fn release_expired(&self, now: i64) -> Result<u64, sqlx::Error> {
        let mut released = 0;
        loop {
            // A plain read: the write transactions below re-check every condition.
            let due: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM reservations WHERE status = 'held' AND expires_at <= $1
                 ORDER BY expires_at, id LIMIT $2",
            )
            .bind(now)
            .bind(EXPIRY_BATCH)
            .fetch_all(self.db.pool())
            .await?;
            // Every id read is either released below or was settled by someone else, so no
            // id comes back and the loop ends.
            for id in &due {
                let mut tx = self.db.pool().begin().await?;
                if release_held(&mut tx, id, RELEASED_EXPIRED, now, now).await? {
                    released += 1;
                }
                tx.commit().await?;
            }
            if due.len() < EXPIRY_BATCH as usize {
                return Ok(released);
            }
        }
    }
}

/// Moves `id` from held to released with `reason` if it is held and expires at or before
/// `expired_by` (`i64::MAX`: whenever it expires), and returns its units to stock. True when
/// this call released it. The conditional UPDATE is what makes a concurrent release, commit or
/// expiry unable to return the units a second time.
async fn release_held(
    conn: &mut AnyConnection,
    id: &str,
    reason: &str,
    now: i64,
    expired_by: i64,
) -> Result<bool, sqlx::Error> {
    let released = sqlx::query(
        "UPDATE reservations SET status = 'released', released_reason = $2, updated_at = $3
         WHERE id = $1 AND status = 'held' AND expires_at <= $4",
    )
    .bind(id)
    .bind(reason)
    .bind(now)
    .bind(expired_by)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if released == 0 {
        return Ok(false);
    }
    let mut lines: Vec<(String, i64)> = sqlx::query_as(
        "SELECT product_id, quantity FROM reservation_lines WHERE reservation_id = $1",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    // Sorted here, byte-wise like a reserve's lines, rather than by the database's collation:
    // every transaction must lock stock rows in the same order for none to deadlock.
    lines.sort();
    for (product_id, quantity) in lines {
        // An upsert, so that units held for a product whose stock row was deleted by hand
        // still come back instead of making the release fail forever.
        sqlx::query(
            "INSERT INTO stock (product_id, available, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (product_id)
             DO UPDATE SET available = stock.available + excluded.available,
                           updated_at = excluded.updated_at",
        )
        .bind(product_id)
        .bind(quantity)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

/// Reads where a reservation ended up after a commit or release and says what that means for
/// a caller that wanted it in `wanted`.
fn settle(
    current: Option<ReservationRecord>,
    wanted: ReservationStatus,
) -> Result<Transition, sqlx::Error> {
    match current {
        None => Ok(Transition::NotFound),
        Some(r) if r.status == wanted => Ok(Transition::Reached(r)),
        // The conditional updates found no held row, yet one is there now: on PostgreSQL, the
        // reserve that creates it committed between our statements. When this call ran the
        // reservation did not exist yet (and if it is never settled, it expires).
        Some(r) if r.status == ReservationStatus::Held => Ok(Transition::NotFound),
        Some(r) => Ok(Transition::Blocked(r)),
    }
}
