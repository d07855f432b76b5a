//! Reservations changing state: reserve (all lines or none), commit, release, and the expiry
//! pass. Each change of more than one row is one transaction that starts with its conditional
//! write, so the row it changes is locked before anything is read.
//!
//! Every statement is a round trip to the database (on SQLite, to the connection's worker
//! thread), so the paths a checkout takes are kept to the fewest statements that still enforce
//! every rule: a line's units are taken or returned by one statement for all lines, a write
//! returns the row it wrote (`RETURNING`) instead of reading it again, answers are built from
//! what was written, and a change that is one statement runs without `BEGIN`/`COMMIT`.

use std::collections::BTreeMap;

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::clock::millis;
use flotilla_chassis::db::{Backend, CorruptRow};
use sqlx::{AnyConnection, AssertSqlSafe};
use time::OffsetDateTime;

use super::reads::{ReservationRow, lines_of, load};
use super::{InventoryStore, ReserveOutcome, Transition};
use crate::contract::{RELEASED_EXPIRED, RELEASED_ON_REQUEST, ReservationStatus};
use crate::domain::{Line, Lines, ReservationId, ReservationRecord};

/// Expired reservations the expiry pass picks up per query.
const EXPIRY_BATCH: i64 = 100;

/// Most rows one multi-row statement writes (each binds two or three values: far below either
/// backend's limit on bound parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// The columns of `reservations` that [`ReservationRow`] holds.
const RETURNING_RESERVATION: &str = "RETURNING id, status, created_at, expires_at, released_reason";

impl InventoryStore {
    /// Holds every line's units under `id` until `expires_at`, or none of them.
    ///
    /// Statements: BEGIN, the reservation row, the stock of every line, the lines, COMMIT (on
    /// PostgreSQL, a reservation of several products takes their stock one statement each: see
    /// [`take_stock`]).
    pub async fn reserve(
        &self,
        id: &ReservationId,
        lines: &Lines,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
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
        .bind(millis(now))
        .bind(millis(expires_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Reservations are never deleted, so the row that blocked the insert is there (and
            // committed: the insert waited for it). Read on this connection, then let go.
            let existing = load(&mut tx, id.as_str()).await?;
            tx.rollback().await?;
            let existing = existing.ok_or_else(|| {
                CorruptRow::because(format!(
                    "reservation {} vanished while being read",
                    id.as_str()
                ))
            })?;
            return Ok(if existing.lines == *lines {
                ReserveOutcome::Replayed(existing)
            } else {
                ReserveOutcome::Conflict
            });
        }
        let short = take_stock(&mut tx, self.db.backend(), lines, now).await?;
        if !short.is_empty() {
            // Rolling back also frees the id: a later reserve with it may succeed.
            tx.rollback().await?;
            return Ok(ReserveOutcome::OutOfStock(short));
        }
        insert_lines(&mut tx, id.as_str(), lines).await?;
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
    /// (reason "expired") and the answer is [`Transition::Blocked`].
    ///
    /// Statements when it was held and unexpired: the conditional update (alone it is the whole
    /// change, so no transaction) and the read of its lines for the answer; when it was settled
    /// before, the update and one read.
    pub async fn commit(
        &self,
        id: &ReservationId,
        now: OffsetDateTime,
    ) -> Result<Transition, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        let committed: Option<ReservationRow> = sqlx::query_as(AssertSqlSafe(format!(
            "UPDATE reservations SET status = 'committed', updated_at = $2
             WHERE id = $1 AND status = 'held' AND expires_at > $2
             {RETURNING_RESERVATION}"
        )))
        .bind(id.as_str())
        .bind(millis(now))
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = committed {
            // A reservation's lines are written with it and never change: no transaction is
            // needed to read them consistently with the row.
            let record = with_lines(&mut conn, row).await?;
            return Ok(Transition::Reached(record));
        }
        // Not committed now: committed or released before (a retried commit), unknown, or held
        // past its expiry. Only the last needs a write, so look first.
        let current = load(&mut conn, id.as_str()).await?;
        drop(conn);
        if !current
            .as_ref()
            .is_some_and(|r| r.status == ReservationStatus::Held && r.expires_at <= now)
        {
            return settle(current, ReservationStatus::Committed);
        }
        // Held past its expiry, but the expiry task has not got to it yet: it is expired all
        // the same, and releasing it here means the units return exactly once whichever of us
        // and the task is first (the release re-checks every condition).
        let mut tx = self.db.pool().begin().await?;
        let current =
            match release_held(&mut tx, id.as_str(), RELEASED_EXPIRED, now, Some(now)).await? {
                Some(released) => Some(released),
                None => load(&mut tx, id.as_str()).await?,
            };
        tx.commit().await?;
        settle(current, ReservationStatus::Committed)
    }

    /// Moves `id` from held to released and returns its units to stock.
    ///
    /// Statements when it was held: BEGIN, the conditional update, the read of its lines, the
    /// return of their units, COMMIT.
    pub async fn release(
        &self,
        id: &ReservationId,
        now: OffsetDateTime,
    ) -> Result<Transition, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let current =
            match release_held(&mut tx, id.as_str(), RELEASED_ON_REQUEST, now, None).await? {
                Some(released) => Some(released),
                None => load(&mut tx, id.as_str()).await?,
            };
        tx.commit().await?;
        settle(current, ReservationStatus::Released)
    }

    /// Releases every reservation still held at `now` whose expiry has passed, a batch at a
    /// time, each batch in one short transaction. Returns how many this call released (one that
    /// a concurrent commit or release got to first is not counted).
    ///
    /// Statements: one read when nothing is due; per batch, that read and BEGIN, the conditional
    /// update of the batch, the read of its lines, the return of their units, COMMIT.
    pub async fn release_expired(&self, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
        let mut released = 0;
        loop {
            // A plain read, so that a pass with nothing to do takes no lock: the write below
            // re-checks every condition.
            let due: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM reservations WHERE status = 'held' AND expires_at <= $1
                 ORDER BY expires_at, id LIMIT $2",
            )
            .bind(millis(now))
            .bind(EXPIRY_BATCH)
            .fetch_all(self.db.pool())
            .await?;
            if !due.is_empty() {
                let mut tx = self.db.pool().begin().await?;
                released += release_batch(&mut tx, &due, now).await?;
                tx.commit().await?;
            }
            // Every id read is either released above or was settled by someone else, so no
            // id comes back and the loop ends.
            if due.len() < EXPIRY_BATCH as usize {
                return Ok(released);
            }
        }
    }
}

/// Takes every line's units from stock inside `conn`; returns the products that lack them (or
/// have no stock row), in which case the caller rolls back.
///
/// Each line is a conditional update (`available >= quantity`), so stock never goes below zero
/// whatever runs concurrently. On SQLite all lines are one statement: the database lock
/// serialises writers, so the order in which rows are changed does not matter. On PostgreSQL
/// row locks are taken in the order rows are changed, and a single statement changes them in
/// whatever order its plan visits them; a reservation of several products therefore takes them
/// one statement each, in product order, so that two reservations can never wait on each
/// other's rows.
async fn take_stock(
    conn: &mut AnyConnection,
    backend: Backend,
    lines: &Lines,
    now: OffsetDateTime,
) -> Result<Vec<ProductId>, sqlx::Error> {
    let all: Vec<&Line> = lines.iter().collect();
    let mut short = Vec::new();
    // One line, or PostgreSQL (row locks taken in product order, so two reservations cannot
    // deadlock): one conditional update per line.
    if all.len() == 1 || backend == Backend::Postgres {
        for line in &all {
            let taken = sqlx::query(
                "UPDATE stock SET available = available - $1, updated_at = $2
                 WHERE product_id = $3 AND available >= $1",
            )
            .bind(line.quantity)
            .bind(millis(now))
            .bind(line.product_id.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if taken != 1 {
                short.push(line.product_id);
            }
        }
        return Ok(short);
    }
    for chunk in all.chunks(ROWS_PER_STATEMENT) {
        // Only placeholders are spliced in; every value is bound below. `column1`/`column2`
        // are the names both backends give the columns of a VALUES list.
        let sql = format!(
            "UPDATE stock SET available = stock.available - w.column2, updated_at = $1
             FROM (VALUES {}) AS w
             WHERE stock.product_id = w.column1 AND stock.available >= w.column2
             RETURNING stock.product_id",
            values(chunk.len(), 2, 2)
        );
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(millis(now));
        for line in chunk {
            query = query.bind(line.product_id.to_string()).bind(line.quantity);
        }
        let taken = query.fetch_all(&mut *conn).await?;
        short.extend(
            chunk
                .iter()
                .filter(|line| !taken.iter().any(|p| *p == line.product_id.to_string()))
                .map(|line| line.product_id),
        );
    }
    Ok(short)
}

/// Writes the lines of reservation `id`, one statement for all of them.
async fn insert_lines(
    conn: &mut AnyConnection,
    id: &str,
    lines: &Lines,
) -> Result<(), sqlx::Error> {
    let all: Vec<&Line> = lines.iter().collect();
    for chunk in all.chunks(ROWS_PER_STATEMENT) {
        // `($1, $2, $3), ($1, $4, $5), ...`: the reservation id is bound once.
        let rows = (0..chunk.len())
            .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO reservation_lines (reservation_id, product_id, quantity) VALUES {rows}"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(id);
        for line in chunk {
            query = query.bind(line.product_id.to_string()).bind(line.quantity);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `n` rows of `width` placeholders each, numbered from `$first`: `($2, $3), ($4, $5)`.
fn values(n: usize, width: usize, first: usize) -> String {
    (0..n)
        .map(|row| {
            let cells = (0..width)
                .map(|col| format!("${}", first + row * width + col))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({cells})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Moves `id` from held to released with `reason` if it is held and expires at or before
/// `expired_by` (`None`: whenever it expires), and returns its units to stock. The
/// reservation as released when this call released it, `None` when it did not. The conditional
/// UPDATE is what makes a concurrent release, commit or expiry unable to return the units a
/// second time.
async fn release_held(
    conn: &mut AnyConnection,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
    expired_by: Option<OffsetDateTime>,
) -> Result<Option<ReservationRecord>, sqlx::Error> {
    let released: Option<ReservationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE reservations SET status = 'released', released_reason = $2, updated_at = $3
         WHERE id = $1 AND status = 'held' AND expires_at <= $4
         {RETURNING_RESERVATION}"
    )))
    .bind(id)
    .bind(reason)
    .bind(millis(now))
    .bind(expired_by.map_or(i64::MAX, millis))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = released else {
        return Ok(None);
    };
    let record = with_lines(&mut *conn, row).await?;
    return_units(
        conn,
        record
            .lines
            .iter()
            .map(|line| (line.product_id, line.quantity)),
        now,
    )
    .await?;
    Ok(Some(record))
}

/// Releases the reservations among `ids` that are still held and expired by `now`, and returns
/// their units to stock; returns how many it released.
async fn release_batch(
    conn: &mut AnyConnection,
    ids: &[String],
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    // Only placeholders are spliced in; every id is bound below.
    let sql = format!(
        "UPDATE reservations SET status = 'released', released_reason = $1, updated_at = $2
         WHERE id IN ({}) AND status = 'held' AND expires_at <= $2
         {RETURNING_RESERVATION}",
        (0..ids.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut query = sqlx::query_as::<_, ReservationRow>(AssertSqlSafe(sql))
        .bind(RELEASED_EXPIRED)
        .bind(millis(now));
    for id in ids {
        query = query.bind(id);
    }
    let released = query.fetch_all(&mut *conn).await?;
    if released.is_empty() {
        return Ok(0);
    }
    let lines = lines_of(&mut *conn, &released).await?;
    return_units(
        conn,
        lines.into_values().flatten().map(|line| {
            let Line {
                product_id,
                quantity,
            } = line;
            (product_id, quantity)
        }),
        now,
    )
    .await?;
    Ok(released.len() as u64)
}

/// Puts `units` (product, quantity; a product may repeat) back into stock, one statement for
/// all products.
///
/// An upsert, so that units held for a product whose stock row was deleted by hand still come
/// back instead of making the release fail forever. Rows are written in product order (sorted
/// here, like a reserve's lines, rather than by the database's collation): a
/// multi-row INSERT writes its rows in the order listed, so every transaction locks stock rows
/// in the same order and none can deadlock another on PostgreSQL.
async fn return_units(
    conn: &mut AnyConnection,
    units: impl IntoIterator<Item = (ProductId, i64)>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let mut by_product: BTreeMap<ProductId, i64> = BTreeMap::new();
    for (product_id, quantity) in units {
        let total = by_product.entry(product_id).or_default();
        *total = total.saturating_add(quantity);
    }
    let all: Vec<(ProductId, i64)> = by_product.into_iter().collect();
    for chunk in all.chunks(ROWS_PER_STATEMENT) {
        // Only placeholders are spliced in; every value is bound below.
        let rows = (0..chunk.len())
            .map(|i| format!("(${}, ${}, $1)", 2 * i + 2, 2 * i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO stock (product_id, available, updated_at) VALUES {rows}
             ON CONFLICT (product_id)
             DO UPDATE SET available = stock.available + excluded.available,
                           updated_at = excluded.updated_at"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(millis(now));
        for (product_id, quantity) in chunk {
            query = query.bind(product_id.to_string()).bind(*quantity);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `row` with its lines, read on `conn`.
async fn with_lines(
    conn: &mut AnyConnection,
    row: ReservationRow,
) -> Result<ReservationRecord, sqlx::Error> {
    let mut lines = lines_of(&mut *conn, std::slice::from_ref(&row)).await?;
    let own = lines.remove(&row.id).unwrap_or_default();
    row.into_record(own)
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

#[cfg(test)]
mod tests {
    use flotilla_testkit::test_db;

    use super::*;
    use crate::contract::ReservationLine;
    use crate::domain::ReservationLimits;

    /// SQLite's one-statement take runs on either backend (PostgreSQL, when
    /// `FLOTILLA_TEST_DATABASE_URL` is set), so it stays portable SQL even though only SQLite
    /// uses it for several lines; PostgreSQL's statement per line gives the same answers.
    #[tokio::test]
    async fn taking_several_lines_reports_exactly_the_short_products() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let (db, _guard) = test_db("inventory").await;
            db.migrate(crate::store::MIGRATIONS).await.expect("migrate");
            sqlx::raw_sql(
                "INSERT INTO stock (product_id, available, updated_at)
                 VALUES ('p0000001', 5, 0), ('p0000002', 1, 0), ('p0000003', 9, 0)",
            )
            .execute(db.pool())
            .await
            .expect("stock");
            let lines = |wanted: &[(&str, i64)]| {
                let lines: Vec<ReservationLine> = wanted
                    .iter()
                    .map(|(product_id, quantity)| ReservationLine {
                        product_id: product_id.parse().expect("a product id"),
                        quantity: *quantity,
                    })
                    .collect();
                Lines::parse(
                    &lines,
                    ReservationLimits {
                        max_lines: 10,
                        max_quantity_per_line: 100,
                    },
                )
                .expect("valid lines")
            };
            let mut tx = db.pool().begin().await.expect("begin");
            let short = take_stock(
                &mut tx,
                backend,
                &lines(&[
                    ("p0000003", 2),
                    ("p0000001", 2),
                    ("p0000002", 3),
                    ("p0000009", 1),
                ]),
                flotilla_chassis::clock::at_millis(7),
            )
            .await
            .expect("take");
            tx.commit().await.expect("commit");
            let short: Vec<String> = short.iter().map(ProductId::to_string).collect();
            assert_eq!(short, ["p0000002", "p0000009"], "{backend:?}");
            let stock: Vec<(String, i64)> =
                sqlx::query_as("SELECT product_id, available FROM stock ORDER BY product_id")
                    .fetch_all(db.pool())
                    .await
                    .expect("read");
            let expected =
                [("p0000001", 3), ("p0000002", 1), ("p0000003", 7)].map(|(p, n)| (p.to_owned(), n));
            assert_eq!(stock, expected, "{backend:?}");
        }
    }
}
