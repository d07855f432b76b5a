//! The shipping service's published contract: the request and response bodies of its HTTP API,
//! and the problem types a caller may branch on.
//!
//! These types are shared with [`crate::client::ShippingClient`] and with every service that
//! calls shipping: orders quotes at checkout, creates a shipment in its saga, and reuses
//! [`Address`] in its own contract. Changing a field here changes the public API: add fields,
//! never rename or remove them without bumping the contract version.

pub(crate) mod address;

pub use address::{Address, MAX_POSTAL_CODE_LEN};

use flotilla_chassis::Money;
use flotilla_chassis::events::PublishedEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use address::{country_schema, postal_code_schema};

/// The version of this contract (the OpenAPI documents and [`PUBLISHED_EVENTS`]), compared with
/// the last released snapshot under `contracts/shipping/` by `flotilla contracts check`: a change
/// that breaks a caller or consumer (a removed operation or field, a narrowed type, a new
/// required input...) fails CI unless this is raised. Additive changes keep it.
pub const CONTRACT_VERSION: u32 = 1;

/// The events shipping publishes (none): part of the contract above.
pub const PUBLISHED_EVENTS: &[PublishedEvent] = &[];

/// The postal code of the test address: a shipment to it is always refused by the (simulated)
/// carrier with [`PROBLEM_CARRIER_REJECTED`], like a payment provider's test card that declines.
/// Quotes for it are priced normally.
pub const TEST_REJECTED_POSTAL_CODE: &str = "00000";

/// Problem `type` of a 422 for a destination the shop does not ship to.
pub const PROBLEM_UNSUPPORTED_DESTINATION: &str = "urn:flotilla:problem:unsupported-destination";
/// Problem `type` of a 422 when the carrier refuses the shipment (a business failure: retrying
/// the same request will not help).
pub const PROBLEM_CARRIER_REJECTED: &str = "urn:flotilla:problem:carrier-rejected";
/// Problem `type` of a 409 when an order already has a shipment to another address or with
/// other lines.
pub const PROBLEM_SHIPMENT_CONFLICT: &str = "urn:flotilla:problem:shipment-conflict";

/// Most items one quote or shipment may hold.
pub const MAX_ITEMS: u32 = 1000;

/// `POST /quotes`: what a shipment would cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteRequest {
    /// Destination country, ISO 3166-1 alpha-2 (two upper-case letters).
    #[schema(schema_with = country_schema, example = "FR")]
    pub country: String,
    /// Destination postal code (same rules as [`Address::postal_code`]).
    #[schema(schema_with = postal_code_schema, example = "75001")]
    pub postal_code: String,
    /// Number of items in the parcel, 1 to 1000 (the sum of the quantities of an order's lines).
    #[schema(minimum = 1, maximum = 1000, example = 3)]
    pub items: u32,
    /// Total weight in grams, when known; every started kilogram above 2 kg costs extra.
    #[serde(default)]
    #[schema(value_type = Option<u64>, maximum = 4_294_967_295_u64, example = 3500)]
    pub weight_grams: Option<u32>,
}

/// A priced, stored quote. Pass its id when creating the shipment to be charged this amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    /// The quote id.
    #[schema(example = "0190b2c4-7e1a-7c3e-9f00-0123456789ab")]
    pub id: String,
    /// The destination country it was priced for.
    #[schema(example = "FR")]
    pub country: String,
    /// The shipping cost.
    pub amount: Money,
    /// When the quote stops being honoured (RFC 3339); a shipment created later is priced anew.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(example = "2026-11-26T21:44:00Z")]
    pub expires_at: OffsetDateTime,
}

/// One product in a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShipmentLine {
    /// The catalog's product id, 1 to 64 characters.
    #[schema(example = "p0000042")]
    pub product_id: String,
    /// How many, at least 1.
    #[schema(minimum = 1, example = 2)]
    pub quantity: u32,
}

/// `POST /shipments`: ship an order's lines to an address. Idempotent by `order_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateShipment {
    /// The order being shipped, 1 to 128 characters; an order has at most one shipment.
    #[schema(example = "0190b2c4-7e1a-7c3e-9f00-0123456789ab")]
    pub order_id: String,
    /// A quote to charge; ignored (and the shipment priced now) when it is unknown, expired or
    /// for another country.
    #[serde(default)]
    pub quote_id: Option<String>,
    /// Where to.
    pub address: Address,
    /// What, 1 or more lines holding at most 1000 items in all.
    pub lines: Vec<ShipmentLine>,
}

/// Where a shipment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShipmentStatus {
    /// Handed to the carrier, with a tracking number.
    Created,
    /// Cancelled (the order's saga compensating); final.
    Cancelled,
}

impl ShipmentStatus {
    /// The wire (and stored) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Created => "created",
            ShipmentStatus::Cancelled => "cancelled",
        }
    }
}

/// A shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Shipment {
    /// The shipment id.
    #[schema(example = "0190b2c4-7e1a-7c3e-9f00-0123456789ab")]
    pub id: String,
    /// The order it ships.
    pub order_id: String,
    /// The carrier's tracking number: `FLT` and 12 upper-case letters or digits.
    #[schema(example = "FLT7K2Q9D0XW4MZ")]
    pub tracking_number: String,
    /// `created` or `cancelled`.
    pub status: ShipmentStatus,
    /// Where to (trimmed).
    pub address: Address,
    /// What, in the order given.
    pub lines: Vec<ShipmentLine>,
    /// What the shipping costs: the quote's amount, or the price when it was created.
    pub cost: Money,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::Currency;
    use flotilla_chassis::clock::{at_millis, rfc3339};

    /// Times go on the wire as the same RFC 3339 text shipping wrote when they were strings (the
    /// chassis' `rfc3339` of the stored milliseconds), and read back as the same instant.
    #[test]
    fn times_keep_their_wire_text() {
        for millis in [0, 1_750_000_000_000, 1_750_000_000_123] {
            let quote = Quote {
                id: "q".into(),
                country: "DE".into(),
                amount: Money::new(490, Currency::EUR),
                expires_at: at_millis(millis),
            };
            let json = serde_json::to_value(&quote).expect("serialises");
            assert_eq!(json["expires_at"], rfc3339(millis));
            assert_eq!(serde_json::from_value::<Quote>(json).expect("reads"), quote);
        }
    }
}
