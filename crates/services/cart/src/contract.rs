//! The cart's published contract: the request and response bodies of its HTTP API.
//!
//! These types are shared with [`crate::client::CartClient`] and with every service that calls
//! the cart (the storefront, orders at checkout), so changing a field here changes the public
//! API: add fields, never rename or remove them without bumping the contract version.

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Money;
use flotilla_chassis::events::PublishedEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The version of this contract (the OpenAPI documents and [`PUBLISHED_EVENTS`]), compared with
/// the last released snapshot under `contracts/cart/` by `flotilla contracts check`: a change
/// that breaks a caller or consumer (a removed operation or field, a narrowed type, a new
/// required input...) fails CI unless this is raised. Additive changes keep it.
pub const CONTRACT_VERSION: u32 = 1;

/// The events cart publishes (none): part of the contract above.
pub const PUBLISHED_EVENTS: &[PublishedEvent] = &[];

/// A user's cart, priced from the catalog when it is read.
///
/// Prices are never stored in the cart: they are looked up on every read, so the cart always
/// shows what checkout would charge right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cart {
    /// The owner of the cart (always the caller).
    pub user_id: String,
    /// The lines, oldest first (by when the product was first added, then by product id).
    pub items: Vec<CartLine>,
    /// The sum of the line totals of the available lines; zero EUR for a cart with none.
    pub total: Money,
    /// The sum of the quantities of the available lines.
    pub item_count: u32,
    /// Counts the changes to the cart's lines. A checkout claims the cart at the version whose
    /// lines it priced ([`CheckoutClaim`]), so lines changed since are never ordered by mistake
    /// and one content is checked out once. Absent (0) from carts older than the field.
    #[serde(default)]
    pub version: u64,
}

/// One product in a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CartLine {
    /// The catalog's product id.
    #[schema(value_type = String, example = "p0000042")]
    pub product_id: ProductId,
    /// The product's display name (empty when the product is no longer available).
    pub name: String,
    /// The product's picture (empty when the product is no longer available).
    pub image_url: String,
    /// The catalog's current unit price (zero when the product is no longer available).
    pub unit_price: Money,
    /// How many the user wants: 1 to the service's `max_quantity`.
    pub quantity: u32,
    /// `unit_price × quantity` (zero when the product is no longer available).
    pub line_total: Money,
    /// False when the product no longer exists in the catalog: the line is still shown, so the
    /// user can see what disappeared and remove it, but it counts toward neither `total` nor
    /// `item_count`.
    pub available: bool,
}

/// `PUT /items/{product_id}`: how many of a product the cart should hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetQuantity {
    /// The new quantity: 0 removes the line; more than the service's `max_quantity` (99 unless
    /// configured otherwise) is refused with 422.
    #[schema(minimum = 0, maximum = 99, example = 2)]
    pub quantity: u32,
}

/// The problem `type` of a claim refused because another order's checkout of this cart is
/// still running (409).
pub const PROBLEM_CART_CLAIMED: &str = "urn:flotilla:problem:cart-claimed";

/// The problem `type` of a claim refused because the cart's lines changed since the version
/// the checkout read (409); among them, the lines an order just took out.
pub const PROBLEM_CART_CHANGED: &str = "urn:flotilla:problem:cart-changed";

/// Longest claim the cart grants (7 days, like a reservation).
pub const MAX_CLAIM_TTL_SECS: u64 = 7 * 24 * 3600;

/// `PUT /claims/{order_id}` (internal, for orders): claims the caller's cart for one order's
/// checkout, so the same lines cannot be checked out twice.
///
/// Granted only while the cart is at `version` and no other order's claim is running; a repeat
/// for the same order is granted again (idempotent). The claim ends when the order is
/// confirmed (its lines leave the cart) or cancelled (the lines stay and may be checked out
/// again), or when `ttl_secs` pass without either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutClaim {
    /// The cart's version whose lines the order was priced from ([`Cart::version`]).
    pub version: u64,
    /// How long the claim lasts if the order never ends: 1 to [`MAX_CLAIM_TTL_SECS`].
    #[schema(example = 1200)]
    pub ttl_secs: u64,
}

/// A granted claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedCart {
    /// The order the cart is claimed for.
    pub order_id: String,
    /// The version claimed.
    pub version: u64,
    /// When the claim lapses if the order has not ended (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `POST /claims/{order_id}/taken` (internal, for orders): the order was confirmed, so its lines
/// leave the caller's cart and its claim ends. `order.confirmed` does the same; whichever comes
/// first does it, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TakenOrder {
    /// What was ordered: each line shrinks by its quantity (and goes when nothing is left).
    pub lines: Vec<TakenLine>,
}

/// One line of a confirmed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TakenLine {
    /// The catalog's product id.
    #[schema(value_type = String)]
    pub product_id: ProductId,
    /// How many were ordered.
    pub quantity: u32,
}

/// The answer to `POST /claims/{order_id}/taken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TakenOut {
    /// True when this call took the lines out; false when they had been taken out before.
    pub taken: bool,
}
