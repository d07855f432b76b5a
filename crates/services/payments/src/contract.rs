//! The payments service's published contract: the request and response bodies of its HTTP API
//! and the problem types a caller can branch on.
//!
//! These types are shared with [`crate::client::PaymentsClient`] and with every service that
//! calls payments (the orders saga), so changing a field here changes the public API: add
//! fields, never rename or remove them without bumping the contract version.

use flotilla_chassis::events::PublishedEvent;
use flotilla_chassis::{Money, Problem};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The version of this contract (the OpenAPI documents and [`PUBLISHED_EVENTS`]), compared with
/// the last released snapshot under `contracts/payments/` by `flotilla contracts check`: a change
/// that breaks a caller or consumer (a removed operation or field, a narrowed type, a new
/// required input...) fails CI unless this is raised. Additive changes keep it.
pub const CONTRACT_VERSION: u32 = 1;

/// The events payments publishes (none): part of the contract above.
pub const PUBLISHED_EVENTS: &[PublishedEvent] = &[];

/// `type` of the 402 answered when the card is declined at authorization (see [`DeclineProblem`]).
pub const PROBLEM_CARD_DECLINED: &str = "urn:flotilla:problem:card-declined";
/// `type` of the 402 answered when the card was authorized but its capture is declined; the
/// payment stays `authorized` (void it).
pub const PROBLEM_CAPTURE_DECLINED: &str = "urn:flotilla:problem:capture-declined";
/// `type` of the 503 answered when the simulated provider fails; nothing was recorded, so the
/// same request with the same key may be retried.
pub const PROBLEM_PROCESSING_ERROR: &str = "urn:flotilla:problem:processing-error";
/// `type` of the 409 answered when an idempotency key is reused with different parameters.
pub const PROBLEM_IDEMPOTENCY_CONFLICT: &str = "urn:flotilla:problem:idempotency-conflict";
/// `type` of the 409 answered when a payment that was captured is asked to capture again.
pub const PROBLEM_ALREADY_CAPTURED: &str = "urn:flotilla:problem:already-captured";
/// `type` of the 409 answered when a payment's state does not allow the operation (e.g. a
/// refund of a payment that was never captured).
pub const PROBLEM_INVALID_STATE: &str = "urn:flotilla:problem:invalid-state";

/// `POST /payments`: authorize `amount` on a card for an order.
///
/// The card number is read once, reduced to its brand and last four digits, and never stored,
/// logged or returned; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizeRequest {
    /// The order this payment is for (1 to 128 characters).
    #[schema(example = "ord_0190a1b2c3d4")]
    pub order_id: String,
    /// How much to authorize: more than zero and at most the configured maximum.
    pub amount: Money,
    /// The card number, 12 to 19 digits; spaces are allowed and ignored.
    #[schema(example = "4242 4242 4242 4242")]
    pub card_number: String,
}

impl std::fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeRequest")
            .field("order_id", &self.order_id)
            .field("amount", &self.amount)
            .field("card_number", &"<redacted>")
            .finish()
    }
}

/// Where a payment is in its life. `authorized` is the only state that moves to two others
/// (`captured` or `voided`); `captured` moves only to `refunded`; the rest are final.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// The amount is held on the card, not yet taken.
    Authorized,
    /// The amount was taken.
    Captured,
    /// The hold was released without taking anything.
    Voided,
    /// The amount was taken and then given back in full.
    Refunded,
    /// The card was declined at authorization; nothing was held.
    Declined,
}

impl PaymentStatus {
    /// Every status, in the order of the lifecycle.
    pub const ALL: [PaymentStatus; 5] = [
        PaymentStatus::Authorized,
        PaymentStatus::Captured,
        PaymentStatus::Voided,
        PaymentStatus::Refunded,
        PaymentStatus::Declined,
    ];

    /// The wire (and column) name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Declined => "declined",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payment as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// The payment's id (`pay_` and 32 hex digits).
    #[schema(example = "pay_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b")]
    pub id: String,
    /// The order it is for.
    pub order_id: String,
    /// The amount authorized (and, once captured, taken; refunds and voids are always full).
    pub amount: Money,
    /// Where the payment is in its life.
    pub status: PaymentStatus,
    /// The last four digits of the card.
    #[schema(example = "4242")]
    pub card_last4: String,
    /// The card's brand (`visa`, `mastercard`, `amex` or `unknown`).
    #[schema(example = "visa")]
    pub card_brand: String,
    /// When the payment was authorized (or declined), RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its status last changed, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Why a card was declined at authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclineCode {
    /// A generic decline.
    CardDeclined,
    /// The card has too little money on it.
    InsufficientFunds,
}

impl DeclineCode {
    /// The wire name, as in the `decline_code` member.
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineCode::CardDeclined => "card_declined",
            DeclineCode::InsufficientFunds => "insufficient_funds",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [DeclineCode::CardDeclined, DeclineCode::InsufficientFunds]
            .into_iter()
            .find(|code| code.as_str() == s)
    }
}

/// The 402 body of a declined authorization: a problem document with two extension members
/// (RFC 9457 §3.2), which a client reading a plain [`Problem`] finds in its `extensions` (the
/// typed client's `decline_code` does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeclineProblem {
    /// The standard members (`type` is `urn:flotilla:problem:card-declined`).
    #[serde(flatten)]
    pub problem: Problem,
    /// Why the card was declined.
    pub decline_code: DeclineCode,
    /// The payment recorded with status `declined`.
    pub payment_id: String,
}

/// One money movement of a payment, from the append-only ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    /// The entry's id.
    pub id: String,
    /// The payment it belongs to.
    pub payment_id: String,
    /// What happened.
    pub kind: LedgerKind,
    /// How much (always the payment's full amount).
    pub amount: Money,
    /// When, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The kinds of ledger entries; a payment has at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LedgerKind {
    /// An amount was held.
    Authorize,
    /// The held amount was taken.
    Capture,
    /// The hold was released.
    Void,
    /// The taken amount was given back.
    Refund,
}

impl LedgerKind {
    /// The wire (and column) name.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Authorize => "authorize",
            LedgerKind::Capture => "capture",
            LedgerKind::Void => "void",
            LedgerKind::Refund => "refund",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            LedgerKind::Authorize,
            LedgerKind::Capture,
            LedgerKind::Void,
            LedgerKind::Refund,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == s)
    }
}

/// `GET /admin/summary`: the ledger's totals in one currency, and how many payments are in each
/// status. `captured_total - refunded_total` is the money the shop holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentSummary {
    /// Sum of all authorizations, in minor units.
    pub authorized_total: i64,
    /// Sum of all captures.
    pub captured_total: i64,
    /// Sum of all refunds.
    pub refunded_total: i64,
    /// Sum of all voids.
    pub voided_total: i64,
    /// Payments per status (every status is present, zero included).
    pub count_by_status: BTreeMap<String, u64>,
    /// The currency of the totals and counts.
    #[schema(example = "EUR")]
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::Currency;
    use flotilla_chassis::clock::{at_millis, rfc3339};

    /// Times go on the wire as the same RFC 3339 text payments wrote when they were strings (the
    /// chassis' `rfc3339` of the stored milliseconds), and read back as the same instant. A
    /// replayed answer is stored text, so this is also what a retry gets back.
    #[test]
    fn times_keep_their_wire_text() {
        for millis in [0, 1_750_000_000_000, 1_750_000_000_123] {
            let entry = LedgerEntry {
                id: "led_1".into(),
                payment_id: "pay_1".into(),
                kind: LedgerKind::Capture,
                amount: Money::new(100, Currency::EUR),
                at: at_millis(millis),
            };
            let json = serde_json::to_value(&entry).expect("serialises");
            assert_eq!(json["at"], rfc3339(millis));
            assert_eq!(
                serde_json::from_value::<LedgerEntry>(json).expect("reads"),
                entry
            );
        }
    }
}
