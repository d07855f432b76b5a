//! Shipments: created once per order in one transaction with their lines (honouring a quote
//! the insert itself reads), cancelled with one conditional UPDATE, and read back with their
//! lines by id, by order, or a page at a time.

use flotilla_chassis::Money;
use flotilla_chassis::clock::{at_millis, millis};
use flotilla_chassis::db::{CorruptRow, is_unique_violation};
use flotilla_chassis::pagination::PageRequest;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow, Row};
use std::collections::HashMap;
use time::OffsetDateTime;

use super::{ShippingStore, parse_currency};
use crate::contract::{Address, Shipment, ShipmentLine, ShipmentStatus};
use crate::domain::{self, NewShipment, OrderId, ShipmentId};

/// How many times a shipment insert is retried when its random tracking number is taken.
const TRACKING_ATTEMPTS: u32 = 3;

/// Most lines one statement writes (three bound values each: far below either backend's limit
/// on bound parameters).
const LINES_PER_STATEMENT: usize = 500;

/// The columns of a shipment, in [`ShipmentRow`]'s order (a macro so `concat!` can build
/// `&'static str` queries from it).
macro_rules! shipment_columns {
    () => {
        "id, order_id, tracking_number, status, name, line1, city, postal_code, country, \
         cost_minor, currency, created_at, updated_at"
    };
}

/// `FROM quotes q WHERE ...`: the quote a shipment being inserted honours, in the binds of
/// [`ShippingStore::create_shipment`]'s insert (`$4` quote id, `$11` currency, `$12` now, `$13`
/// country). A macro so `concat!` can build the insert from it.
macro_rules! honoured_quote {
    () => {
        "FROM quotes q WHERE q.id = $4 AND q.expires_at > $12 AND q.country = $13
           AND q.currency = $11"
    };
}

/// What [`ShippingStore::create_shipment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new shipment was stored.
    Created(Shipment),
    /// The order already had this shipment; nothing was written.
    Existing(Shipment),
}

struct ShipmentRow {
    id: String,
    order_id: String,
    tracking_number: String,
    status: String,
    name: String,
    line1: String,
    city: String,
    postal_code: String,
    country: String,
    cost_minor: i64,
    currency: String,
    created_at: i64,
    updated_at: i64,
}

// By hand, not derived: sqlx's derive macro would compile its drivers a second time (issue 10).
impl FromRow<'_, AnyRow> for ShipmentRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            tracking_number: row.try_get("tracking_number")?,
            status: row.try_get("status")?,
            name: row.try_get("name")?,
            line1: row.try_get("line1")?,
            city: row.try_get("city")?,
            postal_code: row.try_get("postal_code")?,
            country: row.try_get("country")?,
            cost_minor: row.try_get("cost_minor")?,
            currency: row.try_get("currency")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl ShipmentRow {
    fn into_shipment(self, lines: Vec<ShipmentLine>) -> Result<Shipment, sqlx::Error> {
        let status = match self.status.as_str() {
            "created" => ShipmentStatus::Created,
            "cancelled" => ShipmentStatus::Cancelled,
            other => return Err(CorruptRow::column("shipments.status", other)),
        };
        let currency = parse_currency("shipments.currency", &self.currency)?;
        Ok(Shipment {
            id: self.id,
            order_id: self.order_id,
            tracking_number: self.tracking_number,
            status,
            address: Address {
                name: self.name,
                line1: self.line1,
                city: self.city,
                postal_code: self.postal_code,
                country: self.country,
            },
            lines,
            cost: Money::new(self.cost_minor, currency),
            created_at: at_millis(self.created_at),
            updated_at: at_millis(self.updated_at),
        })
    }
}

impl ShippingStore {
    /// Creates the shipment of `new.order_id`, unless the order has one already, which is then
    /// returned as it is.
    ///
    /// It costs what its quote says when `new.quote_id` names a quote for its country, in
    /// `otherwise`'s currency, that has not expired by `now`; else `otherwise`. The quote is
    /// read by the insert itself (no statement of its own), and the answer is built from what
    /// was written. Statements: BEGIN, the shipment, its lines, COMMIT.
    pub async fn create_shipment(
        &self,
        new: &NewShipment,
        otherwise: Money,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, sqlx::Error> {
        let mut attempt = 1;
        loop {
            let id = ShipmentId::generate();
            let tracking_number = domain::tracking_number(&mut rand::rng());
            let mut tx = self.db.pool().begin().await?;
            // The insert comes first: on SQLite the transaction then holds the write lock for
            // the lines that follow (no read-then-write upgrade to fail with SQLITE_BUSY).
            // `WHERE true` keeps SQLite from reading `ON CONFLICT` as part of the SELECT.
            let inserted: Result<Option<(i64, i64)>, sqlx::Error> = sqlx::query_as(concat!(
                "INSERT INTO shipments (id, order_id, tracking_number, status, quote_id, name,
                                        line1, city, postal_code, country, cost_minor, currency,
                                        created_at, updated_at)
                 SELECT $1, $2, $3, 'created', $4, $5, $6, $7, $8, $9,
                        COALESCE((SELECT q.amount_minor ",
                honoured_quote!(),
                "), $10), $11, $12, $12
                 WHERE true
                 ON CONFLICT (order_id) DO NOTHING
                 RETURNING cost_minor, CAST((SELECT COUNT(*) ",
                honoured_quote!(),
                ") AS BIGINT)"
            ))
            .bind(id.as_str())
            .bind(new.order_id.as_str())
            .bind(&tracking_number)
            .bind(new.quote_id.as_ref().map(|q| q.as_str()))
            .bind(&new.address.name)
            .bind(&new.address.line1)
            .bind(&new.address.city)
            .bind(&new.address.postal_code)
            .bind(&new.address.country)
            .bind(otherwise.amount_minor)
            .bind(otherwise.currency.as_str())
            .bind(millis(now))
            .bind(new.country.as_str())
            .fetch_optional(&mut *tx)
            .await;
            let (cost_minor, quoted) = match inserted {
                Err(e) if is_unique_violation(&e) && attempt < TRACKING_ATTEMPTS => {
                    tracing::warn!("tracking number collision; drawing another");
                    tx.rollback().await?;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(None) => {
                    // The conflicting row is committed (an insert waits for the one it
                    // conflicts with), and shipments are never deleted.
                    let existing = self.for_order_on(&mut tx, &new.order_id).await?;
                    tx.rollback().await?;
                    return existing
                        .map(CreateOutcome::Existing)
                        .ok_or(sqlx::Error::RowNotFound);
                }
                Ok(Some(written)) => written,
            };
            if new.quote_id.is_some() && quoted == 0 {
                tracing::info!(quote_id = ?new.quote_id, "quote unknown, expired or elsewhere; priced now");
            }
            insert_lines(&mut tx, id.as_str(), &new.lines).await?;
            tx.commit().await?;
            return Ok(CreateOutcome::Created(Shipment {
                id: id.to_string(),
                order_id: new.order_id.to_string(),
                tracking_number,
                status: ShipmentStatus::Created,
                address: new.address.clone(),
                lines: new.lines.clone(),
                cost: Money::new(cost_minor, otherwise.currency),
                created_at: now,
                updated_at: now,
            }));
        }
    }

    /// The shipment `id`.
    pub async fn shipment(&self, id: &ShipmentId) -> Result<Option<Shipment>, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        one_with_lines(&mut conn, "s.id", id.as_str()).await
    }

    /// The shipment of order `order_id`.
    pub async fn for_order(&self, order_id: &OrderId) -> Result<Option<Shipment>, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        self.for_order_on(&mut conn, order_id).await
    }

    /// [`ShippingStore::for_order`] on `conn`.
    async fn for_order_on(
        &self,
        conn: &mut AnyConnection,
        order_id: &OrderId,
    ) -> Result<Option<Shipment>, sqlx::Error> {
        one_with_lines(conn, "s.order_id", order_id.as_str()).await
    }

    /// Cancels shipment `id` (a cancelled one stays as it is); `None` when it does not exist.
    /// Statements: the conditional update, which returns the shipment it cancelled, and the
    /// read of its lines (or, when it was not cancelled now, of the shipment with its lines).
    pub async fn cancel(
        &self,
        id: &ShipmentId,
        now: OffsetDateTime,
    ) -> Result<Option<Shipment>, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        let cancelled: Option<ShipmentRow> = sqlx::query_as(concat!(
            "UPDATE shipments SET status = 'cancelled', updated_at = $2
             WHERE id = $1 AND status = 'created'
             RETURNING ",
            shipment_columns!()
        ))
        .bind(id.as_str())
        .bind(millis(now))
        .fetch_optional(&mut *conn)
        .await?;
        match cancelled {
            Some(row) => {
                let lines = lines_of(&mut *conn, std::slice::from_ref(&row)).await?;
                Ok(attach(vec![row], lines)?.pop())
            }
            None => one_with_lines(&mut conn, "s.id", id.as_str()).await,
        }
    }

    /// One page of shipments, newest first, of one status or all; and how many there are.
    pub async fn list(
        &self,
        status: Option<ShipmentStatus>,
        page: PageRequest,
    ) -> Result<(Vec<Shipment>, u64), sqlx::Error> {
        // Two spellings rather than `$1 IS NULL OR status = $1`: a parameter only ever compared
        // with NULL has no type PostgreSQL can infer.
        let (total, rows): (i64, Vec<ShipmentRow>) = match status {
            Some(status) => (
                sqlx::query_scalar("SELECT COUNT(*) FROM shipments WHERE status = $1")
                    .bind(status.as_str())
                    .fetch_one(self.db.pool())
                    .await?,
                sqlx::query_as(concat!(
                    "SELECT ",
                    shipment_columns!(),
                    " FROM shipments WHERE status = $1
                     ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(status.as_str())
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(self.db.pool())
                .await?,
            ),
            None => (
                sqlx::query_scalar("SELECT COUNT(*) FROM shipments")
                    .fetch_one(self.db.pool())
                    .await?,
                sqlx::query_as(concat!(
                    "SELECT ",
                    shipment_columns!(),
                    " FROM shipments ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
                ))
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(self.db.pool())
                .await?,
            ),
        };
        let shipments = self.with_lines(rows).await?;
        Ok((shipments, u64::try_from(total).unwrap_or(0)))
    }

    /// Attaches their lines to `rows`, reading the lines of all of them in one query.
    async fn with_lines(&self, rows: Vec<ShipmentRow>) -> Result<Vec<Shipment>, sqlx::Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let lines = lines_of(self.db.pool(), &rows).await?;
        attach(rows, lines)
    }
}

/// The lines of the shipments in `rows`, by shipment id, each in its order.
async fn lines_of<'c, E>(
    executor: E,
    rows: &[ShipmentRow],
) -> Result<HashMap<String, Vec<ShipmentLine>>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let placeholders: Vec<String> = (1..=rows.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT shipment_id, product_id, quantity FROM shipment_lines
         WHERE shipment_id IN ({}) ORDER BY shipment_id, position",
        placeholders.join(", ")
    );
    // Only placeholders are spliced in; every id is bound below.
    let mut query = sqlx::query_as::<_, (String, String, i64)>(AssertSqlSafe(sql));
    for row in rows {
        query = query.bind(&row.id);
    }
    let mut lines: HashMap<String, Vec<ShipmentLine>> = HashMap::new();
    for (shipment_id, product_id, quantity) in query.fetch_all(executor).await? {
        lines
            .entry(shipment_id)
            .or_default()
            .push(line(product_id, quantity)?);
    }
    Ok(lines)
}

/// `rows` as shipments, each with its own of `lines`.
fn attach(
    rows: Vec<ShipmentRow>,
    mut lines: HashMap<String, Vec<ShipmentLine>>,
) -> Result<Vec<Shipment>, sqlx::Error> {
    rows.into_iter()
        .map(|row| {
            let own = lines.remove(&row.id).unwrap_or_default();
            row.into_shipment(own)
        })
        .collect()
}

/// A stored line.
fn line(product_id: String, quantity: i64) -> Result<ShipmentLine, sqlx::Error> {
    let quantity = u32::try_from(quantity)
        .map_err(|_| CorruptRow::column("shipment_lines.quantity", quantity))?;
    Ok(ShipmentLine {
        product_id,
        quantity,
    })
}

/// The shipment whose `key` column (`s.id` or `s.order_id`, both unique) is `value`, with its
/// lines, read with one statement: a row per line, each carrying the shipment's columns.
async fn one_with_lines(
    conn: &mut AnyConnection,
    key: &'static str,
    value: &str,
) -> Result<Option<Shipment>, sqlx::Error> {
    struct Joined {
        shipment: ShipmentRow,
        product_id: Option<String>,
        quantity: Option<i64>,
    }
    impl FromRow<'_, AnyRow> for Joined {
        fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
            Ok(Self {
                shipment: ShipmentRow::from_row(row)?,
                product_id: row.try_get("product_id")?,
                quantity: row.try_get("quantity")?,
            })
        }
    }
    // Only a column name is spliced in, one of two fixed ones; the value is bound.
    let sql = format!(
        "SELECT s.id, s.order_id, s.tracking_number, s.status, s.name, s.line1, s.city,
                s.postal_code, s.country, s.cost_minor, s.currency, s.created_at, s.updated_at,
                l.product_id, l.quantity
         FROM shipments s LEFT JOIN shipment_lines l ON l.shipment_id = s.id
         WHERE {key} = $1 ORDER BY l.position"
    );
    let rows: Vec<Joined> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(value)
        .fetch_all(&mut *conn)
        .await?;
    let mut lines = Vec::with_capacity(rows.len());
    let mut shipment = None;
    for row in rows {
        if let (Some(product_id), Some(quantity)) = (row.product_id, row.quantity) {
            lines.push(line(product_id, quantity)?);
        }
        shipment.get_or_insert(row.shipment);
    }
    shipment.map(|s| s.into_shipment(lines)).transpose()
}

/// Writes the lines of shipment `id` in their order, one statement for all of them.
async fn insert_lines(
    conn: &mut AnyConnection,
    id: &str,
    lines: &[ShipmentLine],
) -> Result<(), sqlx::Error> {
    for (chunk_no, chunk) in lines.chunks(LINES_PER_STATEMENT).enumerate() {
        // `($1, $2, $3, $4), ($1, $5, $6, $7), ...`: the shipment id is bound once. Only
        // placeholders are spliced in; every value is bound below.
        let rows = (0..chunk.len())
            .map(|i| format!("($1, ${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO shipment_lines (shipment_id, position, product_id, quantity) VALUES {rows}"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(id);
        for (i, line) in chunk.iter().enumerate() {
            let position = (chunk_no * LINES_PER_STATEMENT + i) as i64;
            query = query
                .bind(position)
                .bind(&line.product_id)
                .bind(i64::from(line.quantity));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
