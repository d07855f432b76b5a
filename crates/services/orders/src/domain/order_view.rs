//! How an order reads around its saga, built from what checkout decided and what the saga's
//! final transaction wrote rather than read back: the request that placed an order answers with
//! it, and reading it back would race the saga (a slow checkout's answer would turn into a
//! finished order at random).

use flotilla_chassis::Money;
use time::OffsetDateTime;

use super::{OrderId, PricedLine, Totals};
use crate::contract::{Address, Order, OrderLine, OrderStatus, StatusChange};
use crate::saga::OrderEnding;

/// The history note of a placed order.
pub const PLACED_NOTE: &str =
    "order placed: reserving stock, authorizing payment, arranging shipment";

/// An order as checkout priced it, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedOrder {
    pub id: OrderId,
    pub user_id: String,
    /// The priced lines (at least one), in the cart's order.
    pub lines: Vec<PricedLine>,
    pub totals: Totals,
    /// Where it ships (trimmed).
    pub address: Address,
    /// The shipping quote to honour.
    pub quote_id: Option<String>,
}

impl PricedOrder {
    /// The order as a read returns it once stored at `at`: PENDING, with its first history
    /// entry.
    pub fn placed(&self, at: OffsetDateTime) -> Order {
        let currency = self.totals.total.currency;
        Order {
            id: self.id.as_str().to_owned(),
            user_id: self.user_id.clone(),
            status: OrderStatus::Pending,
            reason: None,
            lines: self
                .lines
                .iter()
                .map(|line| OrderLine {
                    product_id: line.product_id,
                    name: line.name.clone(),
                    unit_price: Money::new(line.unit_price.amount_minor, currency),
                    quantity: line.quantity,
                    line_total: Money::new(line.line_total.amount_minor, currency),
                })
                .collect(),
            subtotal: self.totals.subtotal,
            shipping: self.totals.shipping,
            total: self.totals.total,
            address: self.address.clone(),
            payment_id: None,
            shipment_id: None,
            tracking_number: None,
            history: vec![StatusChange {
                status: OrderStatus::Pending.as_str().to_owned(),
                note: Some(PLACED_NOTE.to_owned()),
                at,
            }],
            created_at: at,
            updated_at: at,
        }
    }
}

/// `placed` (a [`PricedOrder::placed`]) as a read returns it once its saga ended with `ending`.
pub fn ended(mut placed: Order, ending: &OrderEnding) -> Order {
    placed.status = ending.status;
    placed.reason = ending.reason.clone();
    placed.payment_id = ending.refs.payment_id.clone();
    placed.shipment_id = ending.refs.shipment_id.clone();
    placed.tracking_number = ending.refs.tracking_number.clone();
    placed.history.push(StatusChange {
        status: ending.status.as_str().to_owned(),
        note: Some(ending.note.clone()),
        at: ending.at,
    });
    placed.updated_at = ending.at;
    placed
}
