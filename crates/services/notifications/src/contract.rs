//! The notifications service's published contract: the response bodies of its HTTP API.
//!
//! These types are shared with [`crate::client::NotificationsClient`] and with every caller (the
//! storefront's "my messages", the ops console), so changing a field here changes the public
//! API: add fields, never rename or remove them without bumping the contract version.

use flotilla_chassis::events::PublishedEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The version of this contract (the OpenAPI documents and [`PUBLISHED_EVENTS`]), compared with
/// the last released snapshot under `contracts/notifications/` by `flotilla contracts check`: a change
/// that breaks a caller or consumer (a removed operation or field, a narrowed type, a new
/// required input...) fails CI unless this is raised. Additive changes keep it.
pub const CONTRACT_VERSION: u32 = 1;

/// The events notifications publishes (none): part of the contract above.
pub const PUBLISHED_EVENTS: &[PublishedEvent] = &[];

/// Largest `page_size` either list accepts; asking for more is a 400.
pub const MAX_PAGE_SIZE: u32 = 100;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An order was confirmed (`order.confirmed`).
    OrderConfirmed,
    /// An order was cancelled (`order.cancelled`).
    OrderCancelled,
}

impl MessageKind {
    /// The kind's wire name, also how it is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::OrderConfirmed => "order_confirmed",
            MessageKind::OrderCancelled => "order_cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "order_confirmed" => Some(MessageKind::OrderConfirmed),
            "order_cancelled" => Some(MessageKind::OrderCancelled),
            _ => None,
        }
    }
}

/// A message the service "sent" (the email simulator records instead of sending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// The message's id (a UUIDv7).
    pub id: String,
    /// The recipient.
    pub user_id: String,
    /// The order the message is about.
    pub order_id: String,
    /// What it is about.
    pub kind: MessageKind,
    /// The subject line.
    #[schema(example = "Your order o-123 is confirmed")]
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// When it was sent (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(example = "2026-01-01T12:00:00Z")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in [MessageKind::OrderConfirmed, MessageKind::OrderCancelled] {
            assert_eq!(MessageKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).expect("serialises");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(MessageKind::parse("order_shipped"), None);
    }

    /// Times go on the wire as the same RFC 3339 text the service wrote when they were strings
    /// (the chassis' `rfc3339` of the stored milliseconds), and read back as the same instant.
    #[test]
    fn times_keep_their_wire_text() {
        use flotilla_chassis::clock::{at_millis, rfc3339};
        for millis in [0, 1_750_000_000_000, 1_750_000_000_123] {
            let message = Message {
                id: "m".into(),
                user_id: "u".into(),
                order_id: "o".into(),
                kind: MessageKind::OrderConfirmed,
                subject: "s".into(),
                body: "b".into(),
                created_at: at_millis(millis),
            };
            let json = serde_json::to_value(&message).expect("serialises");
            assert_eq!(json["created_at"], rfc3339(millis));
            assert_eq!(
                serde_json::from_value::<Message>(json).expect("reads"),
                message
            );
        }
    }
}
