//! The orders service's published contract: the request and response bodies of its HTTP API,
//! the admin views of its sagas, and the events it publishes.
//!
//! These types are shared with [`crate::client::OrdersClient`] (the storefront's checkout,
//! confirmation and history pages) and with the consumers of [`ORDER_CONFIRMED`] and
//! [`ORDER_CANCELLED`] (notifications, cart), so changing a field here changes the public API:
//! add fields, never rename or remove them without bumping the contract (or event) version.

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Money;
use flotilla_chassis::audit::AuditEntry;
use flotilla_chassis::events::{PublishedEvent, payload_schema};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

pub use flotilla_shipping::contract::Address;

/// The version of this contract (the OpenAPI documents and [`PUBLISHED_EVENTS`]), compared with
/// the last released snapshot under `contracts/orders/` by `flotilla contracts check`: a change
/// that breaks a caller or consumer (a removed operation or field, a narrowed type, a new
/// required input...) fails CI unless this is raised. Additive changes keep it.
pub const CONTRACT_VERSION: u32 = 1;

/// The events orders publishes, each with its payload's schema: part of the contract above.
pub const PUBLISHED_EVENTS: &[PublishedEvent] = &[
    PublishedEvent {
        event_type: ORDER_CONFIRMED,
        version: ORDER_CONFIRMED_VERSION,
        schema: payload_schema::<OrderConfirmed>,
    },
    PublishedEvent {
        event_type: ORDER_CANCELLED,
        version: ORDER_CANCELLED_VERSION,
        schema: payload_schema::<OrderCancelled>,
    },
];

/// `type` of the 409 answered when an `Idempotency-Key` is reused with a different body.
pub const PROBLEM_IDEMPOTENCY_CONFLICT: &str = "urn:flotilla:problem:idempotency-conflict";
/// `type` of the 422 answered when the cart holds nothing that can be bought.
pub const PROBLEM_EMPTY_CART: &str = "urn:flotilla:problem:empty-cart";
/// `type` of the 422 answered when the cart holds more lines than one order may.
pub const PROBLEM_TOO_MANY_LINES: &str = "urn:flotilla:problem:too-many-lines";
/// `type` of the 409 answered when a product of the cart is no longer in the catalog.
pub const PROBLEM_PRODUCT_UNAVAILABLE: &str = "urn:flotilla:problem:product-unavailable";
/// `type` of the 409 answered when another checkout of the same cart (another
/// `Idempotency-Key`) is placing or running its order: a cart is checked out once.
pub const PROBLEM_CHECKOUT_IN_PROGRESS: &str = "urn:flotilla:problem:checkout-in-progress";
/// `type` of the 409 answered when the cart changed while it was being checked out (another
/// checkout's order took its lines, or the customer edited it): look at the cart again.
pub const PROBLEM_CART_CHANGED: &str = "urn:flotilla:problem:cart-changed";
/// `type` of the 409 answered when an operator's action does not fit the saga's state (retry of
/// a finished saga, compensation past the pivot, ...): the detail says why.
pub const PROBLEM_SAGA_ACTION_REFUSED: &str = "urn:flotilla:problem:saga-action-refused";
/// `type` of the 409 answered when an executor holds the saga right now (it is running a step
/// or waiting a short backoff), or took it while the action was being decided: look again.
pub const PROBLEM_SAGA_BUSY: &str = "urn:flotilla:problem:saga-busy";

/// `POST /`: check out the caller's cart, shipping to `address` and paying with the card.
///
/// The card number is used for the payment's authorization and forgotten once that has an
/// answer; it never appears in a response, and `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutRequest {
    /// Where to ship.
    pub address: Address,
    /// 12 to 19 digits with a valid (Luhn) check digit; spaces are allowed and ignored.
    #[schema(example = "4242 4242 4242 4242")]
    pub card_number: String,
}

impl std::fmt::Debug for CheckoutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutRequest")
            .field("address", &self.address)
            .field("card_number", &"<redacted>")
            .finish()
    }
}

/// Where an order is: `PENDING` while its saga runs, then `CONFIRMED` or `CANCELLED` for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderStatus {
    /// Stock, payment and shipment are being arranged.
    Pending,
    /// Paid, stock sold, shipment created; final.
    Confirmed,
    /// Given up (see `reason`); everything done on its behalf was undone; final.
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 3] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
    ];

    /// The wire (and column) name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// True for `CONFIRMED` and `CANCELLED`: the order will not change any more.
    pub fn is_terminal(self) -> bool {
        self != OrderStatus::Pending
    }
}

/// One product of an order, priced at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    /// The catalog's product id.
    #[schema(value_type = String, example = "p0000042")]
    pub product_id: ProductId,
    /// The product's name at checkout.
    pub name: String,
    /// The catalog's price at checkout.
    pub unit_price: Money,
    /// How many.
    pub quantity: u32,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusChange {
    /// The status the order moved to (`PENDING`, `CONFIRMED`, `CANCELLED`).
    pub status: String,
    /// Why, or what happened.
    pub note: Option<String>,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// The order id (`ord_` and 32 hex digits).
    #[schema(example = "ord_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b")]
    pub id: String,
    /// Who placed it.
    pub user_id: String,
    /// Where it is.
    pub status: OrderStatus,
    /// Why it was cancelled (set only when `CANCELLED`).
    pub reason: Option<String>,
    /// What was bought, in the cart's order.
    pub lines: Vec<OrderLine>,
    /// The sum of the line totals.
    pub subtotal: Money,
    /// The shipping cost quoted at checkout.
    pub shipping: Money,
    /// `subtotal + shipping`: what the card is charged.
    pub total: Money,
    /// Where it ships.
    pub address: Address,
    /// The payment, once authorized.
    pub payment_id: Option<String>,
    /// The shipment, once created.
    pub shipment_id: Option<String>,
    /// The carrier's tracking number, once shipped.
    pub tracking_number: Option<String>,
    /// Every status the order has had, oldest first.
    pub history: Vec<StatusChange>,
    /// When it was placed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Type of the event published when an order is confirmed.
pub const ORDER_CONFIRMED: &str = "order.confirmed";
/// Payload version of [`ORDER_CONFIRMED`] this crate publishes.
pub const ORDER_CONFIRMED_VERSION: u32 = 1;
/// Type of the event published when an order is cancelled.
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// Payload version of [`ORDER_CANCELLED`] this crate publishes.
pub const ORDER_CANCELLED_VERSION: u32 = 1;

/// One product of a confirmed order and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderedItem {
    /// The catalog's product id.
    #[schema(value_type = String, example = "p0000042")]
    pub product_id: ProductId,
    /// How many were bought.
    pub quantity: u32,
}

/// Payload of [`ORDER_CONFIRMED`] v1: the order is paid, its stock sold and its shipment made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: String,
    /// Who placed it.
    pub user_id: String,
    /// What was bought.
    pub lines: Vec<OrderedItem>,
    /// What was charged.
    pub total: Money,
    /// The carrier's tracking number.
    pub tracking_number: Option<String>,
}

/// Payload of [`ORDER_CANCELLED`] v1: the order was given up and everything undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: String,
    /// Who placed it.
    pub user_id: String,
    /// Why, in words a customer can read.
    pub reason: String,
    /// What the order would have cost (nothing was kept).
    pub total: Money,
}

/// `GET /admin/sagas/{order_id}`: one order's checkout saga and its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SagaView {
    /// The order the saga is for.
    pub order_id: String,
    /// `running`, `compensating` or `done`.
    #[schema(example = "running")]
    pub status: String,
    /// The next step to run; for a finished saga, `CONFIRM` or `CANCEL`.
    #[schema(example = "AUTHORIZE")]
    pub step: String,
    /// Why the saga is compensating (or was cancelled).
    pub failure: Option<String>,
    /// Failed attempts of the current step.
    pub attempts: u32,
    /// Every step outcome, oldest first.
    pub steps: Vec<SagaStepView>,
    /// When the saga last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Set when an operator set the saga aside for manual review: the recovery loop leaves it
    /// alone until an operator retries or compensates it.
    #[serde(default)]
    pub review: Option<SagaReview>,
    /// The operators' actions on this saga, oldest first (only in `GET /admin/sagas/{order_id}`;
    /// empty in lists).
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
}

/// Why and by whom a saga was set aside for manual review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SagaReview {
    /// What the operator wrote.
    pub note: String,
    /// The operator's user id.
    pub by: String,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// `POST /admin/sagas/{order_id}/review`: why the saga is set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewRequest {
    /// What needs looking at (required, at most 1000 characters).
    #[schema(
        example = "payments says the card was charged twice; checking with the provider",
        min_length = 1,
        max_length = 1000,
        pattern = r"\S"
    )]
    pub note: String,
}

/// One step outcome of a saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SagaStepView {
    /// The step (`RESERVE`, `AUTHORIZE`, ..., `CANCEL_SHIPMENT`, `VOID_OR_REFUND`, ...).
    pub step: String,
    /// `do` for a forward step, `compensate` for an undo.
    pub action: String,
    /// `ok`, `failed` or `skipped` (nothing to undo).
    pub outcome: String,
    /// What happened.
    pub detail: Option<String>,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// `GET /admin/summary`: orders per status and the money confirmed orders brought in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrdersSummary {
    /// Orders whose saga is still running.
    pub pending: u64,
    /// Confirmed orders.
    pub confirmed: u64,
    /// Cancelled orders.
    pub cancelled: u64,
    /// Sum of the totals of confirmed orders, in minor units.
    pub confirmed_total_minor: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::clock::{at_millis, rfc3339};

    #[test]
    fn times_go_on_the_wire_as_the_same_rfc_3339_text_as_before() {
        for millis in [1_733_500_000_123, 1_733_500_000_000, 1_733_500_000_500] {
            let change = StatusChange {
                status: "PENDING".to_owned(),
                note: None,
                at: at_millis(millis),
            };
            let json = serde_json::to_value(&change).expect("serialises");
            assert_eq!(json["at"], rfc3339(millis));
            let back: StatusChange = serde_json::from_value(json).expect("parses");
            assert_eq!(back, change);
        }
    }
}
