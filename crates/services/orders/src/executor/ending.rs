//! The last write of a saga: how it leaves its order (CONFIRMED with the payment and shipment,
//! or CANCELLED with the reason a customer reads) and the event that tells the fleet, stored in
//! one transaction so the event exists if and only if the order changed.

use flotilla_chassis::events::NewEvent;
use time::OffsetDateTime;

use crate::contract::{
    ORDER_CANCELLED, ORDER_CANCELLED_VERSION, ORDER_CONFIRMED, ORDER_CONFIRMED_VERSION,
    OrderCancelled, OrderConfirmed, OrderStatus, OrderedItem,
};
use crate::saga::{OrderEnding, Transition};
use crate::store::sagas::SagaRecord;

/// How a saga finishing with `transition` at `at` leaves its order, and the event that says so.
/// The final step is a local one and learns nothing, so the order shows what the saga knew
/// before it.
pub(super) fn ending_of(
    saga: &SagaRecord,
    transition: &Transition,
    at: OffsetDateTime,
) -> Result<(OrderEnding, NewEvent), serde_json::Error> {
    if transition.state.order_status() == Some(OrderStatus::Confirmed) {
        let payload = OrderConfirmed {
            order_id: saga.order_id.clone(),
            user_id: saga.user_id.clone(),
            lines: saga
                .lines
                .iter()
                .map(|(product_id, quantity)| OrderedItem {
                    product_id: *product_id,
                    quantity: *quantity,
                })
                .collect(),
            total: saga.total,
            tracking_number: saga.refs.tracking_number.clone(),
        };
        let ending = OrderEnding {
            status: OrderStatus::Confirmed,
            reason: None,
            note: "paid, stock sold and shipment created".to_owned(),
            at,
            refs: saga.refs.clone(),
        };
        let event = NewEvent::new(ORDER_CONFIRMED, ORDER_CONFIRMED_VERSION, &payload)?;
        return Ok((ending, event));
    }
    let reason = transition
        .state
        .failure
        .clone()
        .unwrap_or_else(|| "the order could not be completed".to_owned());
    let payload = OrderCancelled {
        order_id: saga.order_id.clone(),
        user_id: saga.user_id.clone(),
        reason: reason.clone(),
        total: saga.total,
    };
    let event = NewEvent::new(ORDER_CANCELLED, ORDER_CANCELLED_VERSION, &payload)?;
    let ending = OrderEnding {
        status: OrderStatus::Cancelled,
        note: reason.clone(),
        reason: Some(reason),
        at,
        refs: saga.refs.clone(),
    };
    Ok((ending, event))
}
