//! The events the service consumes, `order.confirmed` and `order.cancelled`, and the simulated
//! mailer that turns each into one recorded message.
//!
//! The payloads are mirrored here rather than imported from the orders crate: a consumer depends
//! on the event schema, not on the publisher's code. Unknown fields are ignored (a tolerant
//! reader), so orders may add fields without breaking this service; a missing field, a malformed
//! id or another version is refused, and after the platform's retries the event is parked as a
//! dead letter for an operator to look at.
//!
//! Each message is written in the consumer's transaction, the one that records the event in the
//! inbox, so a redelivered event sends no second message.

use flotilla_chassis::Money;
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::events::{Event, EventHandler, HandlerError};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;
use tracing::Instrument;

use crate::domain::{
    CancelledOrder, ConfirmedOrder, Draft, IdError, OrderId, OrderedLine, SenderAddress, UserId,
};
use crate::store::NotificationsStore;

/// The confirmation event's type.
pub const ORDER_CONFIRMED: &str = "order.confirmed";
/// The cancellation event's type.
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// The payload version of both events this module understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// `order.confirmed` v1, as orders publishes it.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderConfirmedV1 {
    /// The order.
    pub order_id: String,
    /// The buyer.
    pub user_id: String,
    /// What was ordered.
    pub lines: Vec<OrderLineV1>,
    /// What it costs.
    pub total: Money,
    /// The shipment's tracking number, once there is one.
    pub tracking_number: Option<String>,
}

/// One line of [`OrderConfirmedV1`].
#[derive(Debug, Clone, Deserialize)]
pub struct OrderLineV1 {
    /// The catalog's product id.
    pub product_id: String,
    /// How many.
    pub quantity: u32,
}

/// `order.cancelled` v1, as orders publishes it.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderCancelledV1 {
    /// The order.
    pub order_id: String,
    /// The buyer.
    pub user_id: String,
    /// Why it was cancelled.
    pub reason: String,
    /// What it would have cost.
    pub total: Money,
}

/// A payload id that breaks the id rules.
fn bad_id(field: &str) -> impl FnOnce(IdError) -> HandlerError + '_ {
    move |err| HandlerError::permanent(format!("{field} {err}"))
}

impl TryFrom<OrderConfirmedV1> for ConfirmedOrder {
    type Error = HandlerError;

    fn try_from(payload: OrderConfirmedV1) -> Result<Self, Self::Error> {
        Ok(ConfirmedOrder {
            order_id: OrderId::parse(&payload.order_id).map_err(bad_id("order_id"))?,
            user_id: UserId::parse(&payload.user_id).map_err(bad_id("user_id"))?,
            lines: payload
                .lines
                .into_iter()
                .map(|line| OrderedLine {
                    product_id: line.product_id,
                    quantity: line.quantity,
                })
                .collect(),
            total: payload.total,
            tracking_number: payload.tracking_number,
        })
    }
}

impl TryFrom<OrderCancelledV1> for CancelledOrder {
    type Error = HandlerError;

    fn try_from(payload: OrderCancelledV1) -> Result<Self, Self::Error> {
        Ok(CancelledOrder {
            order_id: OrderId::parse(&payload.order_id).map_err(bad_id("order_id"))?,
            user_id: UserId::parse(&payload.user_id).map_err(bad_id("user_id"))?,
            reason: payload.reason,
            total: payload.total,
        })
    }
}

/// The email simulator: "sends" a message by recording it, signed with the configured sender.
#[derive(Debug)]
pub struct SimulatedMailer {
    sender: SenderAddress,
    clock: SharedClock,
}

impl SimulatedMailer {
    /// A mailer signing with `sender` and stamping messages with `clock`.
    pub fn new(sender: SenderAddress, clock: SharedClock) -> Self {
        Self { sender, clock }
    }

    /// Records `draft` as the message caused by `event`, in the consumer's transaction.
    async fn send(
        &self,
        tx: &mut sqlx::AnyConnection,
        event: &Event,
        draft: &Draft,
    ) -> Result<(), HandlerError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = self.clock.now();
        if NotificationsStore::record(tx, &id, draft, &event.id, now).await? {
            tracing::info!(message_id = %id, kind = draft.kind.as_str(), "message sent");
        } else {
            // The inbox should have stopped this delivery; the unique event id did instead.
            tracing::warn!("a message for this event exists already; not sent again");
        }
        Ok(())
    }
}

/// An order event payload this service turns into a message.
pub trait Notice: DeserializeOwned + Send + 'static {
    /// The message it asks for, signed with `sender`; an error when the payload breaks the
    /// schema's promises (a malformed id).
    fn draft(self, sender: &SenderAddress) -> Result<Draft, HandlerError>;
}

impl Notice for OrderConfirmedV1 {
    fn draft(self, sender: &SenderAddress) -> Result<Draft, HandlerError> {
        Ok(ConfirmedOrder::try_from(self)?.compose(sender))
    }
}

impl Notice for OrderCancelledV1 {
    fn draft(self, sender: &SenderAddress) -> Result<Draft, HandlerError> {
        Ok(CancelledOrder::try_from(self)?.compose(sender))
    }
}

/// Sends the message an event whose payload is `P` asks for: one handler shape for every order
/// event, subscribed once per event type.
#[derive(Debug)]
pub struct NoticeHandler<P> {
    mailer: Arc<SimulatedMailer>,
    // `fn() -> P`: the handler makes `P`s, it holds none, so it is `Send + Sync` whatever `P` is.
    payload: PhantomData<fn() -> P>,
}

impl<P> NoticeHandler<P> {
    /// A handler sending through `mailer`.
    pub fn new(mailer: Arc<SimulatedMailer>) -> Self {
        Self {
            mailer,
            payload: PhantomData,
        }
    }
}

impl<P: Notice> EventHandler for NoticeHandler<P> {
    fn handle<'a>(
        &'a self,
        tx: &'a mut sqlx::AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let payload: P = event.decode(SUPPORTED_VERSION)?;
            let draft = payload.draft(&self.mailer.sender)?;
            let span = message_span(event, &draft);
            self.mailer.send(tx, event, &draft).instrument(span).await
        })
    }
}

/// The span a message is sent in: which event caused it and whom it is for.
fn message_span(event: &Event, draft: &Draft) -> tracing::Span {
    tracing::info_span!(
        "send_message",
        event_id = %event.id,
        event_type = %event.event_type,
        order_id = %draft.order_id.as_str(),
        user_id = %draft.user_id.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, version: u32, payload: serde_json::Value) -> Event {
        Event {
            id: "e1".into(),
            event_type: event_type.into(),
            version,
            source: "orders".into(),
            time: "2026-01-01T00:00:00Z".into(),
            traceparent: None,
            payload,
        }
    }

    #[test]
    fn a_confirmation_payload_decodes_with_extra_fields_and_a_null_tracking_number() {
        let payload = serde_json::json!({
            "order_id": "o1",
            "user_id": "alice",
            "lines": [{ "product_id": "p0000001", "quantity": 2, "name": "Kettle" }],
            "total": { "amount_minor": 1999, "currency": "EUR" },
            "tracking_number": null,
            "shipping_address": "a field added later",
        });
        let decoded: OrderConfirmedV1 = event(ORDER_CONFIRMED, 1, payload)
            .decode(SUPPORTED_VERSION)
            .expect("decodes");
        let order = ConfirmedOrder::try_from(decoded).expect("valid");
        assert_eq!(order.user_id.as_str(), "alice");
        assert_eq!(order.lines[0].quantity, 2);
        assert_eq!(order.tracking_number, None);
    }

    #[test]
    fn other_versions_missing_fields_and_bad_ids_are_refused() {
        let good = serde_json::json!({
            "order_id": "o1", "user_id": "alice", "reason": "out of stock",
            "total": { "amount_minor": 1, "currency": "EUR" },
        });
        let v2 = event(ORDER_CANCELLED, 2, good.clone());
        assert!(v2.decode::<OrderCancelledV1>(SUPPORTED_VERSION).is_err());
        let missing = event(ORDER_CANCELLED, 1, serde_json::json!({ "order_id": "o1" }));
        assert!(
            missing
                .decode::<OrderCancelledV1>(SUPPORTED_VERSION)
                .is_err()
        );
        let mut bad = good;
        bad["user_id"] = "".into();
        let decoded: OrderCancelledV1 = event(ORDER_CANCELLED, 1, bad)
            .decode(SUPPORTED_VERSION)
            .expect("decodes");
        let err = CancelledOrder::try_from(decoded).expect_err("empty user id");
        assert!(err.to_string().starts_with("user_id"), "{err}");
    }
}
