//! Everything that can go wrong in a cart request, and the one place where it becomes
//! problem+json with the status a client can act on (the 409s carry the published types
//! [`crate::contract::PROBLEM_CART_CLAIMED`] and [`crate::contract::PROBLEM_CART_CHANGED`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_chassis::Problem;
use flotilla_chassis::transport::ClientError;

use crate::contract::MAX_CLAIM_TTL_SECS;
use crate::domain::{PricingError, QuantityTooLarge};

/// Everything that can go wrong in a cart request, each with the status a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// The product does not exist in the catalog (or its id could not be one).
    #[error("unknown product")]
    UnknownProduct,
    /// More than `max_quantity`.
    #[error("quantity {0}")]
    Quantity(#[from] QuantityTooLarge),
    /// Adding a line to a cart that already holds `max_lines`.
    #[error("the cart is full: it holds at most {max} different products")]
    CartFull { max: u32 },
    /// The order id of a claim is not an id.
    #[error("an order id is 1 to 64 ASCII letters, digits, '-' or '_'")]
    OrderId,
    /// A claim's lifetime out of bounds.
    #[error("must be between 1 and {MAX_CLAIM_TTL_SECS} seconds")]
    ClaimTtl,
    /// Another order's checkout of the cart is running.
    #[error("this cart is already being checked out by another order")]
    Claimed,
    /// The lines changed since the version the checkout read.
    #[error("the cart changed since it was read for this checkout")]
    Changed,
    /// The catalog's prices cannot be totalled.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The catalog could not be asked.
    #[error(transparent)]
    Catalog(#[from] ClientError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<CartError> for Problem {
    fn from(err: CartError) -> Self {
        match err {
            CartError::UnknownProduct => Problem::not_found("unknown product"),
            CartError::Quantity(e) => Problem::invalid("quantity", e.to_string()),
            CartError::CartFull { .. } => {
                Problem::new(StatusCode::CONFLICT, "cart-full", err.to_string())
            }
            CartError::OrderId => Problem::invalid("order_id", err.to_string()),
            CartError::ClaimTtl => Problem::invalid("ttl_secs", err.to_string()),
            CartError::Claimed => {
                Problem::new(StatusCode::CONFLICT, "cart-claimed", err.to_string())
            }
            CartError::Changed => {
                Problem::new(StatusCode::CONFLICT, "cart-changed", err.to_string())
            }
            CartError::Pricing(e) => {
                // Only a catalog that breaks its own rules (one currency, sane prices) gets here.
                tracing::error!(error = %e, "catalog prices cannot be totalled");
                Problem::unavailable("the catalog's prices for this cart cannot be added up")
            }
            CartError::Catalog(e) => e.into(),
            CartError::Storage(e) => e.into(),
        }
    }
}

impl IntoResponse for CartError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
