//! Everything that can go wrong in an inventory request, and the one place where it becomes
//! problem+json: each variant has the status and stable `type` a caller can act on (see
//! [`crate::contract::problem_types`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_chassis::Problem;

use flotilla_catalog::contract::ProductId;

use crate::domain::InvalidInput;

/// An inventory request that cannot be served as asked.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A field breaks a rule (422).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The `Idempotency-Key` header is unusable or disagrees with the body (400).
    #[error("Idempotency-Key: {0}")]
    IdempotencyKey(&'static str),
    /// The product has no stock row, or its id could not be one (404).
    #[error("no stock is kept for this product")]
    UnknownProduct,
    /// No reservation has this id, or the id could not be one (404).
    #[error("no such reservation")]
    UnknownReservation,
    /// Some lines ask for more than is available; nothing was reserved (409).
    #[error("not enough stock for {}", list(.0))]
    OutOfStock(Vec<ProductId>),
    /// The reservation id is already used for different lines (409).
    #[error("reservation {0} already exists with different lines")]
    ReservationConflict(String),
    /// Commit of a released reservation (409).
    #[error("reservation {id} was released ({reason}) and can no longer be committed")]
    ReservationReleased {
        /// The reservation.
        id: String,
        /// Why it was released.
        reason: String,
    },
    /// Release of a committed reservation (409).
    #[error("reservation {0} is committed: its units are sold and cannot be released")]
    ReservationCommitted(String),
    /// The database failed (500, or 503 when it is merely busy).
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

fn list(products: &[ProductId]) -> String {
    products
        .iter()
        .map(ProductId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<InventoryError> for Problem {
    fn from(err: InventoryError) -> Self {
        let detail = err.to_string();
        let conflict = |slug: &str| Problem::new(StatusCode::CONFLICT, slug, detail.clone());
        match err {
            InventoryError::Invalid(e) => Problem::invalid(&e.field, e.message),
            InventoryError::IdempotencyKey(_) => Problem::bad_request(detail),
            InventoryError::UnknownProduct | InventoryError::UnknownReservation => {
                Problem::not_found(detail)
            }
            InventoryError::OutOfStock(_) => conflict("out-of-stock"),
            InventoryError::ReservationConflict(_) => conflict("reservation-conflict"),
            InventoryError::ReservationReleased { .. } => conflict("reservation-released"),
            InventoryError::ReservationCommitted(_) => conflict("reservation-committed"),
            InventoryError::Storage(e) => e.into(),
        }
    }
}

impl IntoResponse for InventoryError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::problem_types;

    fn seeded(n: u64) -> ProductId {
        ProductId::from_number(n).expect("a seven-digit number")
    }

    #[test]
    fn conflicts_carry_the_published_types() {
        let cases = [
            (
                InventoryError::OutOfStock(vec![seeded(1), seeded(2)]),
                problem_types::OUT_OF_STOCK,
            ),
            (
                InventoryError::ReservationConflict("r1".into()),
                problem_types::RESERVATION_CONFLICT,
            ),
            (
                InventoryError::ReservationReleased {
                    id: "r1".into(),
                    reason: "expired".into(),
                },
                problem_types::RESERVATION_RELEASED,
            ),
            (
                InventoryError::ReservationCommitted("r1".into()),
                problem_types::RESERVATION_COMMITTED,
            ),
        ];
        for (err, kind) in cases {
            let problem = Problem::from(err);
            assert_eq!(problem.status, 409);
            assert_eq!(problem.kind, kind);
        }
        let problem = Problem::from(InventoryError::OutOfStock(vec![seeded(1), seeded(2)]));
        assert_eq!(
            problem.detail.as_deref(),
            Some("not enough stock for p0000001, p0000002")
        );
    }
}
