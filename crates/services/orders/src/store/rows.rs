//! Turning stored rows into [`Order`]s: the one SELECT every order read starts from, and the
//! two follow-up queries (lines, history) that complete a whole page of orders at once instead
//! of one query per order.

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Db;
use flotilla_chassis::clock::at_millis;
use flotilla_chassis::db::{CorruptRow, placeholders};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

use super::money;
use crate::contract::{Address, Order, OrderLine, OrderStatus, StatusChange};

/// The columns of an order and what its saga learnt (payment, shipment, tracking number).
pub const ORDER_SELECT: &str = "SELECT o.id, o.user_id, o.status, o.reason, o.currency,
        o.subtotal_minor, o.shipping_minor, o.total_minor, o.address_name, o.address_line1,
        o.address_city, o.address_postal_code, o.address_country, o.created_at, o.updated_at,
        s.payment_id, s.shipment_id, s.tracking_number
    FROM orders o LEFT JOIN sagas s ON s.order_id = o.id";

/// The orders of `rows` (from [`ORDER_SELECT`]), in the same order, with lines and history.
pub async fn complete(db: &Db, rows: Vec<AnyRow>) -> Result<Vec<Order>, sqlx::Error> {
    let mut orders = rows.iter().map(order_head).collect::<Result<Vec<_>, _>>()?;
    if orders.is_empty() {
        return Ok(orders);
    }
    let ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    let mut lines = lines_of(db, &ids).await?;
    let mut history = history_of(db, &ids).await?;
    for order in &mut orders {
        order.lines = lines.remove(&order.id).unwrap_or_default();
        order.history = history.remove(&order.id).unwrap_or_default();
    }
    Ok(orders)
}

fn order_head(row: &AnyRow) -> Result<Order, sqlx::Error> {
    let currency: String = row.try_get("currency")?;
    let status: String = row.try_get("status")?;
    let status =
        OrderStatus::parse(&status).ok_or_else(|| CorruptRow::column("orders.status", &status))?;
    Ok(Order {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        status,
        reason: row.try_get("reason")?,
        lines: Vec::new(),
        subtotal: money(row.try_get("subtotal_minor")?, &currency)?,
        shipping: money(row.try_get("shipping_minor")?, &currency)?,
        total: money(row.try_get("total_minor")?, &currency)?,
        address: address(row)?,
        payment_id: row.try_get("payment_id")?,
        shipment_id: row.try_get("shipment_id")?,
        tracking_number: row.try_get("tracking_number")?,
        history: Vec::new(),
        created_at: at_millis(row.try_get("created_at")?),
        updated_at: at_millis(row.try_get("updated_at")?),
    })
}

/// The delivery address of an order row (the `address_*` columns, read by orders and sagas
/// alike).
pub(super) fn address(row: &AnyRow) -> Result<Address, sqlx::Error> {
    Ok(Address {
        name: row.try_get("address_name")?,
        line1: row.try_get("address_line1")?,
        city: row.try_get("address_city")?,
        postal_code: row.try_get("address_postal_code")?,
        country: row.try_get("address_country")?,
    })
}

async fn lines_of(db: &Db, ids: &[String]) -> Result<HashMap<String, Vec<OrderLine>>, sqlx::Error> {
    let sql = format!(
        "SELECT l.order_id, l.product_id, l.name, l.unit_price_minor, l.quantity,
                l.line_total_minor, o.currency
         FROM order_lines l JOIN orders o ON o.id = l.order_id
         WHERE l.order_id IN ({}) ORDER BY l.order_id, l.line_no",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    let mut by_order: HashMap<String, Vec<OrderLine>> = HashMap::new();
    for row in query.fetch_all(db.pool()).await? {
        let currency: String = row.try_get("currency")?;
        let quantity: i64 = row.try_get("quantity")?;
        let product_id: String = row.try_get("product_id")?;
        let line = OrderLine {
            product_id: ProductId::parse(&product_id)
                .ok_or_else(|| CorruptRow::column("order_lines.product_id", &product_id))?,
            name: row.try_get("name")?,
            unit_price: money(row.try_get("unit_price_minor")?, &currency)?,
            quantity: u32::try_from(quantity)
                .map_err(|_| CorruptRow::column("order_lines.quantity", quantity))?,
            line_total: money(row.try_get("line_total_minor")?, &currency)?,
        };
        by_order
            .entry(row.try_get("order_id")?)
            .or_default()
            .push(line);
    }
    Ok(by_order)
}

async fn history_of(
    db: &Db,
    ids: &[String],
) -> Result<HashMap<String, Vec<StatusChange>>, sqlx::Error> {
    let sql = format!(
        "SELECT order_id, status, note, at FROM order_history
         WHERE order_id IN ({}) ORDER BY order_id, seq",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    let mut by_order: HashMap<String, Vec<StatusChange>> = HashMap::new();
    for row in query.fetch_all(db.pool()).await? {
        let change = StatusChange {
            status: row.try_get("status")?,
            note: row.try_get("note")?,
            at: at_millis(row.try_get("at")?),
        };
        by_order
            .entry(row.try_get("order_id")?)
            .or_default()
            .push(change);
    }
    Ok(by_order)
}
