//! Everything that can go wrong in an orders request, and the one place where it becomes
//! problem+json: each variant has the status and stable `type` a client can act on (see the
//! `PROBLEM_*` constants of [`crate::contract`]).
//!
//! Anything that fails before the order is stored leaves nothing behind, so a 503 for a peer
//! that is down can simply be retried with the same idempotency key.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Problem;
use flotilla_chassis::money::MoneyError;
use flotilla_chassis::problem::FieldError;
use flotilla_chassis::transport::ClientError;

use crate::domain::PricingError;

/// An orders request that cannot be served as asked.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// The key was used before with a different request (409).
    #[error("this Idempotency-Key was already used for a different checkout request")]
    IdempotencyConflict,
    /// Fields of the request are invalid (422, one entry per field).
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    /// The cart holds nothing that can be bought (422).
    #[error("the cart is empty: there is nothing to check out")]
    EmptyCart,
    /// The cart holds more lines than one order may (422).
    #[error("the cart holds {lines} products; one order takes at most {max}")]
    TooManyLines {
        /// Lines in the cart.
        lines: usize,
        /// The configured maximum.
        max: u32,
    },
    /// Another checkout of the same cart holds it (409).
    #[error(
        "this cart is already being checked out by another order; see your orders, or try again when it has finished"
    )]
    CheckoutInProgress,
    /// The cart changed while it was being checked out (409).
    #[error("your cart changed while it was being checked out; review it and try again")]
    CartChanged,
    /// Products of the cart are gone from the catalog (409).
    #[error("no longer available: {}", crate::domain::listed(.0))]
    ProductUnavailable(Vec<ProductId>),
    /// Shipping cannot deliver there (422, shipping's own problem, fields under `address.`).
    #[error("shipping cannot deliver this order")]
    Undeliverable(Box<Problem>),
    /// The prices cannot be added up: a peer broke its own rules (503).
    #[error("the order's amounts cannot be added up: {0}")]
    Pricing(MoneyError),
    /// A peer could not be asked (503).
    #[error(transparent)]
    Dependency(#[from] ClientError),
    /// No such order, or not the caller's (404).
    #[error("no such order")]
    NotFound,
    /// A query parameter is invalid (400).
    #[error("{0}")]
    BadQuery(String),
    /// An operator's action does not fit the saga's state (409).
    #[error("{0}")]
    SagaActionRefused(String),
    /// An executor holds the saga right now, or took it meanwhile (409).
    #[error("{0}")]
    SagaBusy(String),
    /// The database failed (500, or 503 when it is merely busy).
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<PricingError> for OrdersError {
    fn from(err: PricingError) -> Self {
        match err {
            PricingError::Unavailable(ids) => OrdersError::ProductUnavailable(ids),
            PricingError::Money(e) => OrdersError::Pricing(e),
        }
    }
}

impl From<MoneyError> for OrdersError {
    fn from(err: MoneyError) -> Self {
        OrdersError::Pricing(err)
    }
}

impl From<OrdersError> for Problem {
    fn from(err: OrdersError) -> Self {
        let detail = err.to_string();
        match err {
            OrdersError::BadQuery(_) => Problem::bad_request(detail),
            OrdersError::IdempotencyConflict => {
                Problem::new(StatusCode::CONFLICT, "idempotency-conflict", detail)
            }
            OrdersError::Invalid(errors) => Problem::invalid_fields(errors),
            OrdersError::EmptyCart => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "empty-cart", detail)
            }
            OrdersError::TooManyLines { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "too-many-lines", detail)
            }
            OrdersError::CheckoutInProgress => {
                Problem::new(StatusCode::CONFLICT, "checkout-in-progress", detail)
            }
            OrdersError::CartChanged => Problem::new(StatusCode::CONFLICT, "cart-changed", detail),
            OrdersError::ProductUnavailable(_) => {
                Problem::new(StatusCode::CONFLICT, "product-unavailable", detail)
            }
            OrdersError::Undeliverable(problem) => undeliverable(*problem),
            OrdersError::Pricing(e) => {
                tracing::error!(error = %e, "order amounts cannot be totalled");
                Problem::unavailable("the prices for this order cannot be added up right now")
            }
            OrdersError::Dependency(e) => e.into(),
            OrdersError::NotFound => Problem::not_found(detail),
            OrdersError::SagaActionRefused(_) => {
                Problem::new(StatusCode::CONFLICT, "saga-action-refused", detail)
            }
            OrdersError::SagaBusy(_) => Problem::new(StatusCode::CONFLICT, "saga-busy", detail),
            OrdersError::Storage(e) => e.into(),
        }
    }
}

/// Shipping's 422 for the quote, re-addressed to our request: its fields are the address's.
fn undeliverable(shipping: Problem) -> Problem {
    let slug = shipping
        .kind
        .rsplit(':')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("validation")
        .to_owned();
    let detail = shipping
        .detail
        .unwrap_or_else(|| "shipping cannot deliver to this address".to_owned());
    let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, &slug, detail);
    problem.errors = shipping
        .errors
        .into_iter()
        .map(|e| FieldError {
            field: format!("address.{}", e.field),
            message: e.message,
        })
        .collect();
    problem
}

impl IntoResponse for OrdersError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_type() {
        let cases = [
            (
                OrdersError::IdempotencyConflict,
                409,
                "idempotency-conflict",
            ),
            (OrdersError::EmptyCart, 422, "empty-cart"),
            (
                OrdersError::TooManyLines { lines: 3, max: 2 },
                422,
                "too-many-lines",
            ),
            (
                OrdersError::ProductUnavailable(ProductId::from_number(1).into_iter().collect()),
                409,
                "product-unavailable",
            ),
            (OrdersError::NotFound, 404, "not-found"),
            (OrdersError::CheckoutInProgress, 409, "checkout-in-progress"),
            (OrdersError::CartChanged, 409, "cart-changed"),
            (
                OrdersError::SagaActionRefused("done".into()),
                409,
                "saga-action-refused",
            ),
            (OrdersError::SagaBusy("held".into()), 409, "saga-busy"),
        ];
        for (err, status, slug) in cases {
            let problem = Problem::from(err);
            assert_eq!(problem.status, status);
            assert_eq!(problem.kind, format!("urn:flotilla:problem:{slug}"));
        }
    }

    #[test]
    fn shipping_fields_are_reported_under_the_address() {
        let mut shipping = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported-destination",
            "no shipping to AQ",
        );
        shipping.errors.push(FieldError {
            field: "country".into(),
            message: "unsupported".into(),
        });
        let problem = Problem::from(OrdersError::Undeliverable(Box::new(shipping)));
        assert_eq!(problem.status, 422);
        assert_eq!(problem.kind, "urn:flotilla:problem:unsupported-destination");
        assert_eq!(problem.errors[0].field, "address.country");
    }
}
