//! The inventory's published contract: the request and response bodies of its HTTP API and the
//! problem types a caller can branch on.
//!
//! These types are shared with [`crate::client::InventoryClient`] and with every service that
//! calls the inventory (orders' checkout saga, the storefront, the ops console), so changing a
//! field here changes the public API: add fields, never rename or remove them without bumping
//! the contract version.

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::events::PublishedEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The version of this contract (the OpenAPI documents and [`PUBLISHED_EVENTS`]), compared with
/// the last released snapshot under `contracts/inventory/` by `flotilla contracts check`: a change
/// that breaks a caller or consumer (a removed operation or field, a narrowed type, a new
/// required input...) fails CI unless this is raised. Additive changes keep it.
pub const CONTRACT_VERSION: u32 = 1;

/// The events inventory publishes (none): part of the contract above.
pub const PUBLISHED_EVENTS: &[PublishedEvent] = &[];

/// How many units of a product can still be reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockLevel {
    /// The catalog's product id.
    #[schema(value_type = String, example = "p0000042")]
    pub product_id: ProductId,
    /// Units not held by any reservation nor sold: never negative.
    pub available: i64,
}

/// `PUT /stock/{product_id}`: the new number of reservable units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetStock {
    /// 0 to 1,000,000,000. Units already held by reservations are not counted here and are
    /// not affected.
    #[schema(minimum = 0, maximum = 1_000_000_000, example = 100)]
    pub available: i64,
}

/// One product of a reservation and how many of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct ReservationLine {
    /// The catalog's product id (appears at most once per reservation).
    #[schema(value_type = String, example = "p0000042")]
    pub product_id: ProductId,
    /// Units reserved: 1 to the service's `max_quantity_per_line`.
    #[schema(example = 2)]
    pub quantity: i64,
}

/// `POST /reservations`: hold stock for every line, or for none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReserveRequest {
    /// Chosen by the caller, and the idempotency key of the request: 1 to 100 characters from
    /// `[A-Za-z0-9._:-]` (a UUID, an order id plus a suffix).
    #[schema(example = "order-0193f1c2-reservation")]
    pub reservation_id: String,
    /// 1 to the service's `max_lines` lines, each product at most once.
    pub lines: Vec<ReservationLine>,
    /// How long the hold lasts before it is released automatically (1 s to 7 days); the
    /// service's `reservation_ttl_secs` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// Where a reservation is in its life: `held` until it is committed (the units are sold) or
/// released (the units are back in stock; on request or because it expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    /// The units are out of `available`, waiting for commit or release.
    Held,
    /// The units are sold; final.
    Committed,
    /// The units went back to `available`; final.
    Released,
}

impl ReservationStatus {
    /// The status's wire (and storage) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Committed => "committed",
            ReservationStatus::Released => "released",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "held" => Some(ReservationStatus::Held),
            "committed" => Some(ReservationStatus::Committed),
            "released" => Some(ReservationStatus::Released),
            _ => None,
        }
    }
}

/// A reservation as the inventory holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    /// The caller's reservation id.
    pub id: String,
    /// Where it is in its life.
    pub status: ReservationStatus,
    /// What it holds, ordered by product id.
    pub lines: Vec<ReservationLine>,
    /// When a held reservation stops being committable and is released (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Why it was released: [`RELEASED_ON_REQUEST`] or [`RELEASED_EXPIRED`]; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_reason: Option<String>,
}

/// `released_reason` of a reservation released by `POST /reservations/{id}/release`.
pub const RELEASED_ON_REQUEST: &str = "released";
/// `released_reason` of a reservation released because it expired.
pub const RELEASED_EXPIRED: &str = "expired";

/// `GET /admin/summary`: reservation counts and the units they hold, for tests and operators.
///
/// For every product, `available + held + committed` units only change when an admin sets the
/// stock, so `sum(available) + units_held + units_committed` is the stock ever supplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventorySummary {
    /// Reservations currently held.
    pub held: u64,
    /// Reservations committed.
    pub committed: u64,
    /// Reservations released (on request or expired).
    pub released: u64,
    /// Units held by the held reservations.
    pub units_held: i64,
    /// Units sold through committed reservations.
    pub units_committed: i64,
}

/// `POST /admin/expire`: what one pass of the expiry task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExpiryPass {
    /// Held reservations found past their expiry and released by this pass.
    pub released: u64,
}

/// The `type` URIs of the problems only the inventory answers with, for callers to match on
/// (`problem.kind == problem_types::OUT_OF_STOCK`).
pub mod problem_types {
    /// 409 on reserve: a line asks for more than is available (or the product has no stock);
    /// nothing was reserved. The detail lists the product ids.
    pub const OUT_OF_STOCK: &str = "urn:flotilla:problem:out-of-stock";
    /// 409 on reserve: the reservation id is already used for different lines.
    pub const RESERVATION_CONFLICT: &str = "urn:flotilla:problem:reservation-conflict";
    /// 409 on commit: the reservation was released (on request or because it expired).
    pub const RESERVATION_RELEASED: &str = "urn:flotilla:problem:reservation-released";
    /// 409 on release: the reservation is committed; its units are sold.
    pub const RESERVATION_COMMITTED: &str = "urn:flotilla:problem:reservation-committed";
}
