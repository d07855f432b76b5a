//! The cart's published contract: the request and response bodies of its HTTP API.
//!
//! These types are shared with [`crate::client::CartClient`] and with every service that calls
//! the cart (the storefront, orders at checkout), so changing a field here changes the public
//! API: add fields, never rename or remove them without bumping the contract version.

use flotilla_chassis::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
}

/// One product in a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CartLine {
    /// The catalog's product id.
    #[schema(example = "p0000042")]
    pub product_id: String,
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
