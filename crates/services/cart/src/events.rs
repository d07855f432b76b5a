//! The events the cart consumes: `order.confirmed`, after which the ordered products leave the
//! buyer's cart and the order's claim on it ends, and `order.cancelled`, after which the order's
//! claim ends and its products stay, to be checked out again.
//!
//! Checkout does not empty the cart: between placing an order and its confirmation the user may
//! keep shopping, and those later additions must survive. So each ordered line is taken out by
//! the ordered quantity (the line goes when nothing would be left), in the consumer's
//! transaction, so the inbox that records the event and the change to the cart commit together
//! and a redelivered event cannot take the products out twice; and orders may have said so
//! first (`POST /claims/{order_id}/taken`), which `taken_orders` remembers, so the event then
//! changes nothing.
//!
//! The payload is mirrored here rather than imported from the orders crate: a consumer depends on
//! the event schema, not on the publisher's code. Only the fields the cart uses are declared;
//! serde ignores the rest, so fields orders adds later do not break the cart (a tolerant reader).

use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::events::{Event, EventHandler, HandlerError};
use futures::future::BoxFuture;
use serde::Deserialize;
use tracing::Instrument;

use flotilla_catalog::contract::ProductId;

use crate::domain::Quantity;
use crate::store::CartStore;

/// The event type the cart subscribes to.
pub const ORDER_CONFIRMED: &str = "order.confirmed";

/// The version of the `order.confirmed` payload this module understands; any other version is
/// refused (and, after the platform's retries, parked as a dead letter).
pub const ORDER_CONFIRMED_VERSION: u32 = 1;

/// The other event type the cart subscribes to.
pub const ORDER_CANCELLED: &str = "order.cancelled";

/// The version of the `order.cancelled` payload this module understands.
pub const ORDER_CANCELLED_VERSION: u32 = 1;

/// The part of an `order.cancelled` v1 payload the cart reads.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderCancelled {
    /// The order whose claim ends.
    pub order_id: String,
    /// The buyer, whose cart it claimed.
    pub user_id: String,
}

/// Ends a cancelled order's claim on the buyer's cart, so the same lines can be checked out
/// again (after a declined card, say). Orders asks for the same thing directly when the saga ends
/// within the checkout request; this is the way that cannot be lost.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderCancelledHandler;

impl EventHandler for OrderCancelledHandler {
    fn handle<'a>(
        &'a self,
        tx: &'a mut sqlx::AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let order: OrderCancelled = event.decode(ORDER_CANCELLED_VERSION)?;
            CartStore::release(tx, &order.user_id, &order.order_id).await?;
            tracing::debug!(
                event_id = %event.id,
                order_id = %order.order_id,
                "cancelled order's claim on the cart ended"
            );
            Ok(())
        })
    }
}

/// The part of an `order.confirmed` v1 payload the cart reads.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderConfirmed {
    /// The order, for the logs.
    pub order_id: String,
    /// The buyer, whose cart the products leave.
    pub user_id: String,
    /// What was ordered.
    pub lines: Vec<OrderedLine>,
}

/// One line of a confirmed order.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderedLine {
    /// The catalog's product id.
    pub product_id: ProductId,
    /// How many were ordered.
    pub quantity: u32,
}

/// Takes the products of a confirmed order out of the buyer's cart.
#[derive(Debug, Clone)]
pub struct OrderConfirmedHandler {
    clock: SharedClock,
}

impl OrderConfirmedHandler {
    /// A handler stamping the lines it changes with `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self { clock }
    }
}

impl EventHandler for OrderConfirmedHandler {
    fn handle<'a>(
        &'a self,
        tx: &'a mut sqlx::AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let order: OrderConfirmed = event.decode(ORDER_CONFIRMED_VERSION)?;
            let span = tracing::info_span!(
                "order_confirmed",
                event_id = %event.id,
                order_id = %order.order_id,
                user_id = %order.user_id
            );
            self.take_out(tx, &order).instrument(span).await
        })
    }
}

impl OrderConfirmedHandler {
    /// Takes the order's lines out of the buyer's cart, in `tx`.
    async fn take_out(
        &self,
        tx: &mut sqlx::AnyConnection,
        order: &OrderConfirmed,
    ) -> Result<(), HandlerError> {
        let now = self.clock.now();
        let changes: Vec<(ProductId, Quantity)> = cart_changes(&order.lines).collect();
        let taken =
            CartStore::take_out_order(tx, &order.user_id, &order.order_id, &changes, now).await?;
        if taken {
            tracing::debug!("ordered products taken out of the cart");
        } else {
            tracing::debug!("ordered products were taken out already (orders said so first)");
        }
        Ok(())
    }
}

/// The changes an order's lines ask of a cart (see [`crate::domain::ordered_changes`]).
fn cart_changes(lines: &[OrderedLine]) -> impl Iterator<Item = (ProductId, Quantity)> + '_ {
    crate::domain::ordered_changes(lines.iter().map(|line| (line.product_id, line.quantity)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_names_no_product_fails_the_payload() {
        // Orders writes product ids from its own typed lines, so such a payload is not from it:
        // refused (and, after the retries, parked as a dead letter), never half applied.
        let payload = serde_json::json!({
            "order_id": "o1",
            "user_id": "alice",
            "lines": [{ "product_id": "../x", "quantity": 1 }],
        });
        assert!(serde_json::from_value::<OrderConfirmed>(payload).is_err());
    }

    #[test]
    fn the_payload_tolerates_fields_the_cart_does_not_read() {
        let event = Event {
            id: "e1".into(),
            event_type: ORDER_CONFIRMED.into(),
            version: 1,
            source: "orders".into(),
            time: "2026-01-01T00:00:00Z".into(),
            traceparent: None,
            payload: serde_json::json!({
                "order_id": "o1",
                "user_id": "alice",
                "lines": [{ "product_id": "p0000001", "quantity": 2, "unit_price": 5 }],
                "total": { "amount_minor": 10, "currency": "EUR" },
                "tracking_number": null,
            }),
        };
        let order: OrderConfirmed = event.decode(ORDER_CONFIRMED_VERSION).expect("decodes");
        assert_eq!(order.user_id, "alice");
        assert_eq!(order.lines.len(), 1);
        let v2 = Event {
            version: 2,
            ..event
        };
        assert!(
            v2.decode::<OrderConfirmed>(ORDER_CONFIRMED_VERSION)
                .is_err()
        );
    }
}
