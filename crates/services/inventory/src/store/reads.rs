//! Reading reservations back: one by id, a page of them, and the summary of what is held and
//! sold. Rows are parsed into domain types here; a row that cannot be parsed is corruption.

use std::collections::HashMap;

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::clock::at_millis;
use flotilla_chassis::db::CorruptRow;
use flotilla_chassis::pagination::PageRequest;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow, Row};

use super::InventoryStore;
use crate::contract::{InventorySummary, ReservationStatus};
use crate::domain::{Line, Lines, ReservationId, ReservationRecord};

impl InventoryStore {
    /// The reservation `id`, if there is one.
    pub async fn reservation(
        &self,
        id: &ReservationId,
    ) -> Result<Option<ReservationRecord>, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        load(&mut conn, id.as_str()).await
    }

    /// One page of reservations, newest first, optionally only those in `status`; and how many
    /// there are in all.
    pub async fn list(
        &self,
        status: Option<ReservationStatus>,
        page: PageRequest,
    ) -> Result<(Vec<ReservationRecord>, u64), sqlx::Error> {
        let filter = if status.is_some() {
            "WHERE status = $1"
        } else {
            ""
        };
        let mut count = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM reservations {filter}"
        )));
        let (limit, offset) = if status.is_some() { (2, 3) } else { (1, 2) };
        let mut rows = sqlx::query_as::<_, ReservationRow>(AssertSqlSafe(format!(
            "SELECT id, status, created_at, expires_at, released_reason FROM reservations
             {filter} ORDER BY created_at DESC, id LIMIT ${limit} OFFSET ${offset}"
        )));
        if let Some(status) = status {
            count = count.bind(status.as_str());
            rows = rows.bind(status.as_str());
        }
        let total = count.fetch_one(self.db.pool()).await?;
        let rows = rows
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(self.db.pool())
            .await?;
        let mut lines = lines_of(self.db.pool(), &rows).await?;
        let page = rows
            .into_iter()
            .map(|row| {
                let lines = lines.remove(&row.id).unwrap_or_default();
                row.into_record(lines)
            })
            .collect::<Result<_, _>>()?;
        Ok((page, u64::try_from(total).unwrap_or(0)))
    }

    /// Reservation counts by status and the units held and sold, read in one statement so the
    /// figures are consistent with each other.
    pub async fn summary(&self) -> Result<InventorySummary, sqlx::Error> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT r.status, COUNT(DISTINCT r.id), CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT)
             FROM reservations r LEFT JOIN reservation_lines l ON l.reservation_id = r.id
             GROUP BY r.status",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut summary = InventorySummary {
            held: 0,
            committed: 0,
            released: 0,
            units_held: 0,
            units_committed: 0,
        };
        for (status, count, units) in rows {
            let count = u64::try_from(count).unwrap_or(0);
            match ReservationStatus::parse(&status) {
                Some(ReservationStatus::Held) => {
                    summary.held = count;
                    summary.units_held = units;
                }
                Some(ReservationStatus::Committed) => {
                    summary.committed = count;
                    summary.units_committed = units;
                }
                Some(ReservationStatus::Released) => summary.released = count,
                None => return Err(CorruptRow::column("reservations.status", status)),
            }
        }
        Ok(summary)
    }
}

/// A `reservations` row as stored.
#[derive(Debug)]
pub(super) struct ReservationRow {
    pub(super) id: String,
    status: String,
    created_at: i64,
    expires_at: i64,
    released_reason: Option<String>,
}

// By hand, not derived: sqlx's derive macro would compile its drivers a second time (issue 10).
impl FromRow<'_, AnyRow> for ReservationRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            released_reason: row.try_get("released_reason")?,
        })
    }
}

impl ReservationRow {
    pub(super) fn into_record(self, lines: Vec<Line>) -> Result<ReservationRecord, sqlx::Error> {
        let status = ReservationStatus::parse(&self.status)
            .ok_or_else(|| CorruptRow::column("reservations.status", &self.status))?;
        let id = ReservationId::parse(&self.id)
            .map_err(|_| CorruptRow::column("reservations.id", &self.id))?;
        Ok(ReservationRecord {
            id,
            status,
            lines: Lines::from_stored(lines),
            created_at: at_millis(self.created_at),
            expires_at: at_millis(self.expires_at),
            released_reason: self.released_reason,
        })
    }
}

/// The reservation `id` with its lines, read on `conn` (inside a transaction, if it is one) with
/// one statement: a row per line, each carrying the reservation's columns.
pub(super) async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ReservationRecord>, sqlx::Error> {
    struct Joined {
        reservation: ReservationRow,
        product_id: Option<String>,
        quantity: Option<i64>,
    }
    impl FromRow<'_, AnyRow> for Joined {
        fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
            Ok(Self {
                reservation: ReservationRow::from_row(row)?,
                product_id: row.try_get("product_id")?,
                quantity: row.try_get("quantity")?,
            })
        }
    }
    let rows: Vec<Joined> = sqlx::query_as(
        "SELECT r.id, r.status, r.created_at, r.expires_at, r.released_reason,
                l.product_id, l.quantity
         FROM reservations r LEFT JOIN reservation_lines l ON l.reservation_id = r.id
         WHERE r.id = $1",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut lines = Vec::with_capacity(rows.len());
    let mut reservation = None;
    for row in rows {
        if let (Some(product_id), Some(quantity)) = (row.product_id, row.quantity) {
            let product_id = stored_product(&product_id)?;
            lines.push(Line {
                product_id,
                quantity,
            });
        }
        reservation.get_or_insert(row.reservation);
    }
    reservation.map(|r| r.into_record(lines)).transpose()
}

/// The lines of the reservations in `rows`, by reservation id.
pub(super) async fn lines_of<'c, E>(
    executor: E,
    rows: &[ReservationRow],
) -> Result<HashMap<String, Vec<Line>>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let mut by_reservation: HashMap<String, Vec<Line>> = HashMap::new();
    if rows.is_empty() {
        return Ok(by_reservation);
    }
    // Only placeholders are spliced in; the ids are bound.
    let placeholders = (1..=rows.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut query = sqlx::query_as::<_, (String, String, i64)>(AssertSqlSafe(format!(
        "SELECT reservation_id, product_id, quantity FROM reservation_lines
         WHERE reservation_id IN ({placeholders})"
    )));
    for row in rows {
        query = query.bind(row.id.clone());
    }
    for (reservation_id, product_id, quantity) in query.fetch_all(executor).await? {
        let product_id = stored_product(&product_id)?;
        by_reservation
            .entry(reservation_id)
            .or_default()
            .push(Line {
                product_id,
                quantity,
            });
    }
    Ok(by_reservation)
}

/// A product id read back from `reservation_lines`, where only parsed ids are written.
fn stored_product(raw: &str) -> Result<ProductId, sqlx::Error> {
    raw.parse()
        .map_err(|_| CorruptRow::column("reservation_lines.product_id", raw))
}
